"""Data: subject-level splits, cached slice datasets (one split or all of a run's) and the code files of a trained
model.

Typical use::

    from monai.data import DataLoader
    from monai_vqvae2.apps import discover_dataset
    from monai_vqvae2.data import make_slice_dataset, split_by_subject

    items = discover_dataset("/data/oasis1")  # or kind="demo" for the embedded MNI152-derived demo
    split = split_by_subject(items, fractions=(0.8, 0.1, 0.1), seed=0)
    train = make_slice_dataset(split["train"], image_size=128, cache="memory")
    loader = DataLoader(train, batch_size=32, shuffle=True)

The slice transforms (preprocessing settings, file checks, dictionary transforms, the volume and PNG chains) live in
:mod:`monai_vqvae2.transforms`, below this package, and are re-exported here. Code extraction is an inference pass
(:func:`monai_vqvae2.inferers.extract_codes`). Dataset discovery (OASIS-1, OASIS-3,
PNG slices, NIfTI folders, file lists), the split of a run and the embedded demo data live in
:mod:`monai_vqvae2.apps`; synthetic slice datasets and banks in :mod:`monai_vqvae2.synthetic`. Both sit above this
package.
"""

from __future__ import annotations

from monai_vqvae2.data.codes import CodeDataset
from monai_vqvae2.data.datasets import CACHE_MODES, SliceDataset, SplitSliceDatasets, make_slice_dataset
from monai_vqvae2.data.errors import BadInputWarning
from monai_vqvae2.data.splits import (
    SPLIT_NAMES,
    check_fractions,
    check_no_subject_overlap,
    check_outside_dataset,
    load_split,
    save_split,
    split_by_subject,
)
from monai_vqvae2.data.volumes import SplitVolumeDatasets, make_volume_dataset
from monai_vqvae2.moved import moved_names
from monai_vqvae2.transforms import (
    MAX_VOXELS,
    AssumeAnalyzeOrientationd,
    CheckImageFiled,
    ExtractAxialSlicesd,
    ValidateVolumed,
    check_image_file,
    png_slice_transforms,
    volume_preprocessing,
    volume_transforms,
)
from monai_vqvae2.transforms.errors import InvalidImageError

__all__ = [
    "CACHE_MODES",
    "MAX_VOXELS",
    "SPLIT_NAMES",
    "AssumeAnalyzeOrientationd",
    "BadInputWarning",
    "CheckImageFiled",
    "CodeDataset",
    "ExtractAxialSlicesd",
    "InvalidImageError",
    "SliceDataset",
    "SplitSliceDatasets",
    "SplitVolumeDatasets",
    "ValidateVolumed",
    "check_fractions",
    "check_image_file",
    "check_no_subject_overlap",
    "check_outside_dataset",
    "load_split",
    "make_slice_dataset",
    "make_volume_dataset",
    "png_slice_transforms",
    "save_split",
    "split_by_subject",
    "volume_preprocessing",
    "volume_transforms",
]

# names this package exported before they moved to packages above it: imported from there on first access, and left
# out of __all__, so that ``from monai_vqvae2.data import *`` never imports upward
_SYNTHETIC_NAMES = (
    "MIXED_KEYS",
    "MixedSliceDataset",
    "SyntheticSliceDataset",
    "load_bank_manifest",
    "slice_positions_of",
    "training_slice_positions",
)
_APPS_NAMES = (
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
)
__getattr__, __dir__ = moved_names(
    __name__,
    {
        **dict.fromkeys(_SYNTHETIC_NAMES, "monai_vqvae2.synthetic"),
        **dict.fromkeys(_APPS_NAMES, "monai_vqvae2.apps"),
        "extract_codes": "monai_vqvae2.inferers",
    },
)
