"""The slice preprocessing of a run as one frozen value: every chain, dataset, stage and cache reads it from here.

A run's slices depend on ten options (size, brain fraction, intensity percentiles, crop, resampling, orientation of
Analyze files, ...). They are declared once, with their one set of defaults, in :class:`SlicePreprocessing`; the
chains of :mod:`monai_vqvae2.transforms.pipelines`, :func:`~monai_vqvae2.data.make_slice_dataset` and the bundle's
``preprocessing`` entry all take this object, so a training run, its code extraction, its evaluation and its
quality report cannot disagree on which slices exist. Its :meth:`~SlicePreprocessing.digest` names the disk cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from monai_vqvae2.transforms.checks import MAX_VOXELS, check_axcodes, check_max_voxels

__all__ = ["RESIZE_MODES", "SlicePreprocessing", "as_preprocessing"]

RESIZE_MODES = ("longest", "pad")


def _image_size(image_size: int | Sequence[int]) -> tuple[int, int]:
    size = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else tuple(image_size)
    if len(size) != 2 or any(isinstance(s, bool) or int(s) != s or s < 1 for s in size):
        raise ValueError(f"`image_size` must be a positive int or (H, W), got {image_size!r}.")
    return int(size[0]), int(size[1])


@dataclasses.dataclass(frozen=True)
class SlicePreprocessing:
    """How source files become training slices: one frozen, hashable value with the defaults of the whole package.

    Build it once (``SlicePreprocessing(image_size=128)``, or the bundle's ``preprocessing`` entry) and pass it to
    :func:`~monai_vqvae2.transforms.volume_transforms`, :func:`~monai_vqvae2.transforms.png_slice_transforms`,
    :func:`~monai_vqvae2.transforms.volume_preprocessing` and :func:`~monai_vqvae2.data.make_slice_dataset`.
    Values are normalised on construction (an int ``image_size`` becomes ``(H, W)``, sequences become tuples), so
    equal settings compare and hash equal; ``dataclasses.replace(settings, crop_margin=0)`` gives a changed copy.

    Args:
        image_size: output slice size ``(H, W)``; an int means a square.
        min_brain_fraction: volume slices with a smaller fraction of brain pixels (inside the 3D brain bounding box)
            are dropped (PNG slices are always kept).
        foreground_threshold: normalised intensity above which a voxel counts as brain (crop and brain fraction).
        percentiles: lower and upper intensity percentiles of each volume mapped to 0 and 1 (values clipped).
        pixdim: resample volumes to these voxel sizes in mm, e.g. ``(1, 1, 1)``; ``None`` keeps each file's grid.
        crop_margin: voxels kept around the brain bounding box.
        resize_mode: ``"longest"`` (longest side to the target, aspect ratio kept, then zero padding) or ``"pad"``
            (centre pad/crop only, no scaling).
        analyze_axcodes: orientation assumed for Analyze 7.5 files, which store none (see
            :class:`~monai_vqvae2.transforms.AssumeAnalyzeOrientationd`).
        png_max_value: PNG intensity mapped to 1 (255 for 8-bit PNGs, 65535 for 16-bit PNGs).
        max_voxels: files whose header declares more voxels (pixels for PNG) are refused before their data is read.

    Raises:
        ValueError: a value outside its range, naming the field.
    """

    image_size: tuple[int, int] = (256, 256)
    min_brain_fraction: float = 0.1
    foreground_threshold: float = 0.05
    percentiles: tuple[float, float] = (0.5, 99.5)
    pixdim: tuple[float, ...] | None = None
    crop_margin: int = 2
    resize_mode: str = "longest"
    analyze_axcodes: str = "LAS"
    png_max_value: float = 255.0
    max_voxels: int = MAX_VOXELS

    def __post_init__(self) -> None:
        normalised = {
            "image_size": _image_size(self.image_size),
            "min_brain_fraction": float(self.min_brain_fraction),
            "foreground_threshold": float(self.foreground_threshold),
            "percentiles": tuple(float(p) for p in self.percentiles),
            "pixdim": tuple(float(p) for p in self.pixdim) if self.pixdim is not None else None,
            "analyze_axcodes": check_axcodes(self.analyze_axcodes),
            "png_max_value": float(self.png_max_value),
            "max_voxels": check_max_voxels(self.max_voxels),
        }
        for name, value in normalised.items():
            object.__setattr__(self, name, value)  # frozen: normalise once, here
        if not 0.0 <= self.min_brain_fraction <= 1.0:
            raise ValueError(f"`min_brain_fraction` must be in [0, 1], got {self.min_brain_fraction}.")
        if not 0.0 <= self.foreground_threshold < 1.0:
            raise ValueError(f"`foreground_threshold` must be in [0, 1), got {self.foreground_threshold}.")
        if len(self.percentiles) != 2 or not 0.0 <= self.percentiles[0] < self.percentiles[1] <= 100.0:
            raise ValueError(
                f"`percentiles` must be (lower, upper) with 0 <= lower < upper <= 100, got {self.percentiles}."
            )
        if self.pixdim is not None and (len(self.pixdim) != 3 or not all(p > 0 for p in self.pixdim)):
            raise ValueError(f"`pixdim` must be None or three positive voxel sizes in mm, got {self.pixdim}.")
        if isinstance(self.crop_margin, bool) or int(self.crop_margin) != self.crop_margin or self.crop_margin < 0:
            raise ValueError(f"`crop_margin` must be an int >= 0, got {self.crop_margin!r}.")
        object.__setattr__(self, "crop_margin", int(self.crop_margin))
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"`resize_mode` must be one of {RESIZE_MODES}, got {self.resize_mode!r}.")
        if not self.png_max_value > 0 or not math.isfinite(self.png_max_value):
            raise ValueError(f"`png_max_value` must be a positive number, got {self.png_max_value}.")

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON values (tuples as lists), e.g. for a run record."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def digest(self) -> str:
        """A short SHA-256 of the settings: equal settings, equal digest (the name of a disk cache)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


_FIELDS = tuple(field.name for field in dataclasses.fields(SlicePreprocessing))


def as_preprocessing(
    preprocessing: SlicePreprocessing | Mapping[str, Any] | None = None, **options: Any
) -> SlicePreprocessing:
    """One :class:`SlicePreprocessing` from what a caller gave: the object itself, a mapping of its fields (e.g. a
    parsed config), or nothing (the defaults), with ``options`` replacing single fields.

    Args:
        preprocessing: the settings, a mapping of fields, or ``None``.
        options: fields to replace, e.g. ``image_size=128``; ``None`` values are ignored.

    Returns:
        the settings.

    Raises:
        TypeError: ``preprocessing`` of another type, or an option that is not a field (the fields are listed).
        ValueError: a value outside its range.
    """
    unknown = sorted(set(options) - set(_FIELDS))
    if unknown:
        raise TypeError(f"unknown preprocessing option(s) {unknown}; the options are {list(_FIELDS)}.")
    options = {name: value for name, value in options.items() if value is not None}
    if preprocessing is None:
        return SlicePreprocessing(**options)
    if isinstance(preprocessing, Mapping):
        return as_preprocessing(None, **{**preprocessing, **options})
    if not isinstance(preprocessing, SlicePreprocessing):
        raise TypeError(
            f"`preprocessing` must be a SlicePreprocessing, a mapping of its fields or None, got "
            f"{type(preprocessing).__name__}."
        )
    return dataclasses.replace(preprocessing, **options) if options else preprocessing
