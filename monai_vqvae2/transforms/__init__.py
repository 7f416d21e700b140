"""Transforms: the run's slice preprocessing settings, the file checks, the dictionary transforms MONAI lacks, and the
chains that turn brain volumes (NIfTI / Analyze 7.5) and PNG slices into 2D training slices, or volumes into whole
volumes on one fixed grid.

- :mod:`~monai_vqvae2.transforms.settings`: :class:`SlicePreprocessing`, the one frozen value of the ten
  preprocessing options (and their defaults) that every chain, dataset and bundle stage reads;
- :mod:`~monai_vqvae2.transforms.checks`: checks of a file before decoding (:func:`check_image_file`);
- :mod:`~monai_vqvae2.transforms.dictionary`: :class:`CheckImageFiled`, :class:`ValidateVolumed`,
  :class:`AssumeAnalyzeOrientationd`, :class:`ExtractAxialSlicesd`;
- :mod:`~monai_vqvae2.transforms.labels`: tissue labels beside images (:data:`TISSUE_CLASSES`,
  :class:`MapLabelValuesd`, :class:`CheckAlignedd`), which the chains carry with ``label_key``;
- :mod:`~monai_vqvae2.transforms.pipelines`: :func:`volume_preprocessing`, :func:`volume_transforms`,
  :func:`png_slice_transforms`, :func:`whole_volume_transforms` (and its grid, :func:`volume_grid`);
- :mod:`~monai_vqvae2.transforms.errors`: :class:`~monai_vqvae2.transforms.errors.InvalidImageError`, raised for
  every problem of an input file.
"""

from __future__ import annotations

from monai_vqvae2.transforms.checks import MAX_VOXELS, check_image_file, is_analyze_path
from monai_vqvae2.transforms.dictionary import (
    AssumeAnalyzeOrientationd,
    CheckImageFiled,
    ExtractAxialSlicesd,
    ValidateVolumed,
)
from monai_vqvae2.transforms.labels import (
    FSL_TISSUE_VALUES,
    PNG_TISSUE_VALUES,
    TISSUE_CLASSES,
    CheckAlignedd,
    MapLabelValuesd,
)
from monai_vqvae2.transforms.pipelines import (
    png_slice_transforms,
    volume_grid,
    volume_preprocessing,
    volume_transforms,
    whole_volume_transforms,
)
from monai_vqvae2.transforms.settings import RESIZE_MODES, SlicePreprocessing, as_preprocessing

__all__ = [
    "FSL_TISSUE_VALUES",
    "MAX_VOXELS",
    "PNG_TISSUE_VALUES",
    "RESIZE_MODES",
    "TISSUE_CLASSES",
    "AssumeAnalyzeOrientationd",
    "CheckAlignedd",
    "CheckImageFiled",
    "ExtractAxialSlicesd",
    "MapLabelValuesd",
    "SlicePreprocessing",
    "ValidateVolumed",
    "as_preprocessing",
    "check_image_file",
    "is_analyze_path",
    "png_slice_transforms",
    "volume_grid",
    "volume_preprocessing",
    "volume_transforms",
    "whole_volume_transforms",
]
