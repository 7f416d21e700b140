"""The transform names keep their former import paths ``monai_vqvae2.data.transforms`` and ``monai_vqvae2.data``,
and the errors theirs (``monai_vqvae2.data.errors``); :mod:`monai_vqvae2.transforms` never imports
:mod:`monai_vqvae2.data`."""

from __future__ import annotations

from pathlib import Path

import monai_vqvae2.data
import monai_vqvae2.data.errors
import monai_vqvae2.data.transforms
import monai_vqvae2.transforms
import monai_vqvae2.transforms.errors
from tests.tiny import assert_runs_in_a_fresh_interpreter

ROOT = Path(__file__).resolve().parents[2]

# the names monai_vqvae2.data.transforms exported before monai_vqvae2.transforms existed
FORMER_NAMES = [
    "MAX_VOXELS",
    "RESIZE_MODES",
    "AssumeAnalyzeOrientationd",
    "CheckImageFiled",
    "ExtractAxialSlicesd",
    "ValidateVolumed",
    "check_image_file",
    "is_analyze_path",
    "png_slice_transforms",
    "volume_preprocessing",
    "volume_transforms",
]
# the ones monai_vqvae2.data itself exported
FORMER_DATA_NAMES = sorted(set(FORMER_NAMES) - {"RESIZE_MODES", "is_analyze_path"})


def test_the_old_import_paths_give_the_new_objects():
    new_names = {"SlicePreprocessing", "as_preprocessing", "volume_grid", "whole_volume_transforms"}
    new_names |= {"FSL_TISSUE_VALUES", "PNG_TISSUE_VALUES", "TISSUE_CLASSES", "CheckAlignedd", "MapLabelValuesd"}
    assert sorted(monai_vqvae2.transforms.__all__) == sorted([*FORMER_NAMES, *new_names])
    assert sorted(monai_vqvae2.data.transforms.__all__) == sorted(FORMER_NAMES)
    for name in FORMER_NAMES:
        assert getattr(monai_vqvae2.data.transforms, name) is getattr(monai_vqvae2.transforms, name), name
    for name in FORMER_DATA_NAMES:
        assert getattr(monai_vqvae2.data, name) is getattr(monai_vqvae2.transforms, name), name
        assert name in monai_vqvae2.data.__all__, name
    from monai_vqvae2.data import ExtractAxialSlicesd, volume_transforms
    from monai_vqvae2.data.transforms import CheckImageFiled, png_slice_transforms

    assert ExtractAxialSlicesd is monai_vqvae2.transforms.dictionary.ExtractAxialSlicesd
    assert volume_transforms is monai_vqvae2.transforms.pipelines.volume_transforms
    assert CheckImageFiled is monai_vqvae2.transforms.dictionary.CheckImageFiled
    assert png_slice_transforms is monai_vqvae2.transforms.pipelines.png_slice_transforms


def test_the_errors_keep_their_old_paths():
    for name in ("InvalidImageError", "PERMISSION_PROBLEM", "as_invalid_image"):
        assert getattr(monai_vqvae2.data.errors, name) is getattr(monai_vqvae2.transforms.errors, name), name
        assert name in monai_vqvae2.data.errors.__all__, name
    assert monai_vqvae2.data.InvalidImageError is monai_vqvae2.transforms.errors.InvalidImageError


def test_transforms_do_not_import_data():
    code = (
        "import sys\n"
        "import monai_vqvae2.transforms\n"
        "from monai_vqvae2.transforms import *\n"
        "assert 'monai_vqvae2.data' not in sys.modules, sorted(m for m in sys.modules if '.data' in m)\n"
        "import monai_vqvae2.data.transforms\n"
        "assert monai_vqvae2.data.transforms.volume_transforms is monai_vqvae2.transforms.volume_transforms\n"
    )
    assert_runs_in_a_fresh_interpreter(code)
