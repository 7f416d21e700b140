"""The dataset names keep their former import path ``monai_vqvae2.data`` (imported lazily from
:mod:`monai_vqvae2.apps`), and ``monai_vqvae2.data``, below it, never imports it itself."""

from __future__ import annotations

from pathlib import Path

import monai_vqvae2.apps
import monai_vqvae2.data
from tests.tiny import assert_runs_in_a_fresh_interpreter

ROOT = Path(__file__).resolve().parents[2]

# the names monai_vqvae2.data exported before monai_vqvae2.apps existed
FORMER_DATA_NAMES = [
    "DATASET_KINDS",
    "LAYOUTS",
    "MNI_NOTICE",
    "OASIS1_IMAGES",
    "default_demo_dir",
    "discover_dataset",
    "discover_nifti_folder",
    "discover_oasis1",
    "discover_oasis3",
    "discover_png_slices",
    "join_clinical_data",
    "prepare_demo_dataset",
    "prepare_split",
    "read_file_list",
]


def test_the_old_import_paths_give_the_new_objects():
    assert monai_vqvae2.data.discover_dataset is monai_vqvae2.apps.discover_dataset
    assert monai_vqvae2.data.prepare_demo_dataset is monai_vqvae2.apps.prepare_demo_dataset
    for name in FORMER_DATA_NAMES:
        assert getattr(monai_vqvae2.data, name) is getattr(monai_vqvae2.apps, name), name
        assert name in dir(monai_vqvae2.data), name
        assert name not in monai_vqvae2.data.__all__, name  # a star import must not import the package above
        assert name in monai_vqvae2.apps.__all__, name
    from monai_vqvae2.data import DATASET_KINDS, join_clinical_data, prepare_split

    assert DATASET_KINDS is monai_vqvae2.apps.DATASET_KINDS
    assert join_clinical_data is monai_vqvae2.apps.join_clinical_data
    assert prepare_split is monai_vqvae2.apps.prepare_split


def test_data_does_not_import_apps():
    code = (
        "import sys\n"
        "import monai_vqvae2.data, monai_vqvae2.engines, monai_vqvae2.inferers, monai_vqvae2.networks\n"
        "from monai_vqvae2.data import *\n"
        "assert 'monai_vqvae2.apps' not in sys.modules, sorted(m for m in sys.modules if '.apps' in m)\n"
        "assert 'nilearn' not in sys.modules\n"
        "assert not hasattr(monai_vqvae2.data, 'no_such_name')\n"
        "assert 'monai_vqvae2.apps' not in sys.modules\n"
        "discover_dataset = monai_vqvae2.data.discover_dataset\n"
        "assert 'monai_vqvae2.apps' in sys.modules\n"
        "import monai_vqvae2.apps\n"
        "assert discover_dataset is monai_vqvae2.apps.discover_dataset\n"
        "assert 'nilearn' not in sys.modules  # only the demo data needs it, and only when it builds sessions\n"
    )
    assert_runs_in_a_fresh_interpreter(code)
