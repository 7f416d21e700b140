"""Dataset-specific code, as MONAI keeps it in ``monai.apps``: discovery of OASIS-1, OASIS-3, PNG-slice, NIfTI-folder
and file-list datasets as MONAI-style lists of dicts, the split of a run, and the embedded demo data.

Typical use::

    from monai.data import DataLoader
    from monai_vqvae2.apps import discover_dataset
    from monai_vqvae2.data import make_slice_dataset, split_by_subject

    items = discover_dataset("/data/oasis1")  # or kind="demo" for the embedded MNI152-derived demo
    split = split_by_subject(items, fractions=(0.8, 0.1, 0.1), seed=0)
    train = make_slice_dataset(split["train"], image_size=128, cache="memory")
    loader = DataLoader(train, batch_size=32, shuffle=True)

The package sits above :mod:`monai_vqvae2.data`, which it builds on. Its modules, each importing only those listed
before it: :mod:`~monai_vqvae2.apps.demo_data` (the demo data derived from nilearn's MNI152 template, the only
module that needs nilearn), :mod:`~monai_vqvae2.apps.folders` (PNG slice folders, NIfTI folders, file lists and the
folder walking every layout shares), :mod:`~monai_vqvae2.apps.oasis` (OASIS-1 and OASIS-3 layouts, OASIS clinical
data) and :mod:`~monai_vqvae2.apps.discovery` (:func:`discover_dataset`, :func:`prepare_split`).
"""

from __future__ import annotations

from monai_vqvae2.apps.demo_data import (
    DEMO_GRID_SHAPE,
    DEMO_MARKER,
    MNI_NOTICE,
    check_demo_dependencies,
    default_demo_dir,
    demo_label_path,
    demo_session_paths,
    prepare_demo_dataset,
)
from monai_vqvae2.apps.discovery import DATASET_KINDS, LAYOUTS, discover_dataset, prepare_split
from monai_vqvae2.apps.folders import discover_nifti_folder, discover_png_slices, read_file_list
from monai_vqvae2.apps.oasis import OASIS1_IMAGES, discover_oasis1, discover_oasis3, join_clinical_data

__all__ = [
    "DATASET_KINDS",
    "DEMO_GRID_SHAPE",
    "DEMO_MARKER",
    "LAYOUTS",
    "MNI_NOTICE",
    "OASIS1_IMAGES",
    "check_demo_dependencies",
    "default_demo_dir",
    "demo_label_path",
    "demo_session_paths",
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
