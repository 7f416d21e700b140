"""The synthetic-slice names keep their former import paths (``monai_vqvae2.data`` and ``monai_vqvae2.inferers``,
imported lazily from :mod:`monai_vqvae2.synthetic`), and those packages, below it, never import it themselves."""

from __future__ import annotations

from pathlib import Path

import monai_vqvae2.data
import monai_vqvae2.inferers
import monai_vqvae2.synthetic
from tests.tiny import assert_runs_in_a_fresh_interpreter

ROOT = Path(__file__).resolve().parents[2]

# the names each package exported before monai_vqvae2.synthetic existed
FORMER_DATA_NAMES = [
    "MIXED_KEYS",
    "MixedSliceDataset",
    "SyntheticSliceDataset",
    "load_bank_manifest",
    "slice_positions_of",
    "training_slice_positions",
]
FORMER_INFERERS_NAMES = ["generate_bank", "model_digest"]


def test_the_old_import_paths_give_the_new_objects():
    assert monai_vqvae2.data.SyntheticSliceDataset is monai_vqvae2.synthetic.SyntheticSliceDataset
    assert monai_vqvae2.data.MixedSliceDataset is monai_vqvae2.synthetic.MixedSliceDataset
    assert monai_vqvae2.inferers.generate_bank is monai_vqvae2.synthetic.generate_bank
    for package, names in [(monai_vqvae2.data, FORMER_DATA_NAMES), (monai_vqvae2.inferers, FORMER_INFERERS_NAMES)]:
        for name in names:
            assert getattr(package, name) is getattr(monai_vqvae2.synthetic, name), name
            assert name in dir(package), name
            assert name not in package.__all__, name  # a star import must not import the package above
            assert name in monai_vqvae2.synthetic.__all__, name
    from monai_vqvae2.data import load_bank_manifest, training_slice_positions
    from monai_vqvae2.inferers import model_digest

    assert load_bank_manifest is monai_vqvae2.synthetic.load_bank_manifest
    assert training_slice_positions is monai_vqvae2.synthetic.training_slice_positions
    assert model_digest is monai_vqvae2.synthetic.model_digest


def test_data_and_inferers_do_not_import_synthetic():
    code = (
        "import sys\n"
        "import monai_vqvae2.data, monai_vqvae2.inferers\n"
        "from monai_vqvae2.data import *\n"
        "from monai_vqvae2.inferers import *\n"
        "assert 'monai_vqvae2.synthetic' not in sys.modules, sorted(m for m in sys.modules if 'synthetic' in m)\n"
        "assert not hasattr(monai_vqvae2.data, 'no_such_name')\n"
        "assert 'monai_vqvae2.synthetic' not in sys.modules\n"
        "monai_vqvae2.data.SyntheticSliceDataset\n"
        "assert 'monai_vqvae2.synthetic' in sys.modules\n"
    )
    assert_runs_in_a_fresh_interpreter(code)
