"""The slice transforms, kept at their former path: they live in :mod:`monai_vqvae2.transforms`."""

from __future__ import annotations

from monai_vqvae2.transforms import (
    MAX_VOXELS,
    RESIZE_MODES,
    AssumeAnalyzeOrientationd,
    CheckImageFiled,
    ExtractAxialSlicesd,
    ValidateVolumed,
    check_image_file,
    is_analyze_path,
    png_slice_transforms,
    volume_preprocessing,
    volume_transforms,
)

__all__ = [
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
