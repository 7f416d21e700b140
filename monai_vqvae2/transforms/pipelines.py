"""The chains that turn 3D brain volumes (NIfTI / Analyze 7.5) and PNG slices into 2D training slices, and brain
volumes into whole volumes on one fixed grid (for 3D models).

The chains reuse MONAI wherever a transform exists (``LoadImaged`` with ``NibabelReader``, ``EnsureChannelFirstd``,
``Orientationd``, ``Spacingd``, ``ScaleIntensityRange``, ``CropForegroundd``, ``Rotate90d``, ``Resized``,
``ResizeWithPadOrCropd``, ``EnsureTyped``); the transforms MONAI lacks are in
:mod:`monai_vqvae2.transforms.dictionary`.

Slice convention: every output slice is ``(1, H, W)`` float32 in ``[0, 1]`` in *display order*: row 0 is anterior,
column 0 is the patient's left (neurological convention), as an axial slice is usually shown: the quarter turn of
:func:`monai_vqvae2.slice_io.to_display`, made here by ``Rotate90d(k=DISPLAY_ROT90_K)``.

Errors: the chains returned here raise :class:`~monai_vqvae2.transforms.errors.InvalidImageError` (a ``ValueError``
naming the file) for every problem of an input file, including reader errors, rather than MONAI's
``RuntimeError("applying transform ...")`` wrapper.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.data.image_reader import PILReader
from monai.transforms import (
    Compose,
    CropForegroundd,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    Orientationd,
    Resized,
    ResizeWithPadOrCropd,
    Rotate90d,
    ScaleIntensityRanged,
    Spacingd,
)

from monai_vqvae2.slice_io import DISPLAY_ROT90_K
from monai_vqvae2.transforms.checks import RAS_LABELS
from monai_vqvae2.transforms.dictionary import (
    AssumeAnalyzeOrientationd,
    CheckImageFiled,
    ExtractAxialSlicesd,
    ScalePercentilesd,
    ValidateVolumed,
)
from monai_vqvae2.transforms.errors import as_invalid_image
from monai_vqvae2.transforms.labels import FSL_TISSUE_VALUES, PNG_TISSUE_VALUES, CheckAlignedd, MapLabelValuesd
from monai_vqvae2.transforms.settings import RESIZE_MODES, SlicePreprocessing, as_preprocessing

__all__ = [
    "RESIZE_MODES",
    "png_slice_transforms",
    "volume_grid",
    "volume_preprocessing",
    "volume_transforms",
    "whole_volume_transforms",
]


class _AboveThreshold:
    """Picklable ``select_fn`` for ``CropForegroundd`` (a lambda would break worker processes)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = float(threshold)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return image > self.threshold


class _FileChain(Compose):
    """A ``Compose`` whose failures on a file are :class:`InvalidImageError` naming the file.

    MONAI wraps every transform error in ``RuntimeError("applying transform ...")``; this raises the
    :class:`InvalidImageError` found inside instead, or maps any other error (a reader's ``EOFError``, ...) to one
    naming the file in ``data[path_key]`` (errors on in-memory images are re-raised unchanged).
    """

    def __init__(self, transforms: Sequence[Any], path_key: str) -> None:
        super().__init__(transforms)
        self.path_key = path_key

    def __call__(self, input_: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(input_, *args, **kwargs)
        except Exception as error:
            path = input_.get(self.path_key) if isinstance(input_, Mapping) else None
            named = isinstance(path, (str, os.PathLike))
            found = as_invalid_image(error, path if named else "<in-memory image>")
            if found.__traceback__ is None:  # no InvalidImageError inside: a reader's (or other) error
                if named:
                    raise found from error
                raise
        # re-raised outside the ``except`` block, so that it keeps its own cause and gains no link back to MONAI's
        # RuntimeError wrapper (whose cause it is: that would make the exception chain a cycle)
        raise found


def _to_grayscale(image: Any) -> Any:
    """PIL converter: keep single-channel modes, convert RGB/RGBA/palette images to 8-bit grey."""
    return image if image.mode in ("L", "I", "I;16", "F") else image.convert("L")


def _keys(image_key: str, label_key: str | None) -> list[str]:
    return [image_key] if label_key is None else [image_key, label_key]


def _slice_tail(image_key: str, size: tuple[int, ...], resize_mode: str, label_key: str | None = None) -> list:
    """Per-slice transforms shared by volumes and PNGs (and by whole volumes): fit into ``size`` and make a plain
    float32 tensor in ``[0, 1]`` (and the label, resized with nearest neighbours, an int64 tensor of class
    indices)."""
    tail: list = []
    if resize_mode == "longest":
        tail.append(
            Resized(image_key, spatial_size=max(size), size_mode="longest", mode="bilinear", anti_aliasing=True)
        )
        if label_key is not None:
            tail.append(Resized(label_key, spatial_size=max(size), size_mode="longest", mode="nearest-exact"))
        # interpolation may overshoot 1 by a float32 rounding step: an identity scaling that clips to [0, 1]
        tail.append(ScaleIntensityRanged(image_key, a_min=0.0, a_max=1.0, b_min=0.0, b_max=1.0, clip=True))
    tail += [
        ResizeWithPadOrCropd(_keys(image_key, label_key), spatial_size=size, mode="constant"),
        EnsureTyped(image_key, data_type="tensor", dtype=torch.float32, track_meta=False),
    ]
    if label_key is not None:
        tail.append(EnsureTyped(label_key, data_type="tensor", dtype=torch.int64, track_meta=False))
    return tail


def _label_checks(label_key: str | None, label_values: Sequence[int], spatial_dims: int) -> list:
    """After loading: a label is one channel of known class values."""
    if label_key is None:
        return []
    return [
        ValidateVolumed(label_key, spatial_dims=spatial_dims, allow_constant=True),
        MapLabelValuesd(label_key, values=label_values),
    ]


def volume_preprocessing(
    preprocessing: SlicePreprocessing | Mapping[str, Any] | None = None,
    *,
    image_key: str = "image",
    label_key: str | None = None,
    label_values: Sequence[int] = FSL_TISSUE_VALUES,
    **options: Any,
) -> Compose:
    """The volume part of :func:`volume_transforms`, up to and including the brain crop: one 3D volume out, with
    every geometric step recorded so that ``monai.transforms.Invertd`` can map results back onto the file's voxel
    grid (the inference stage does this to write reconstructions with the input's affine).

    Steps: :class:`CheckImageFiled` → ``LoadImaged(reader="NibabelReader")`` → ``EnsureChannelFirstd`` →
    :class:`ValidateVolumed` → :class:`AssumeAnalyzeOrientationd` → ``Orientationd("RAS")`` → optional
    ``Spacingd(pixdim)`` → percentile scaling (``ScaleIntensityRange`` between the ``percentiles``; a volume
    whose two percentiles are equal is refused) → ``CropForegroundd``.

    Args:
        preprocessing: the run's :class:`~monai_vqvae2.transforms.SlicePreprocessing` (or a mapping of its fields);
            ``None``: the defaults. Only the fields up to the crop are used (``foreground_threshold``,
            ``percentiles``, ``pixdim``, ``crop_margin``, ``analyze_axcodes``, ``max_voxels``).
        image_key: key holding the file path, then the image.
        label_key: key holding the path of a label file on the image's voxel grid (e.g. OASIS-1's ``FSL_SEG``), then
            the label, which follows every geometric step with nearest-neighbour interpolation; ``None``: no label.
        label_values: the stored value of each label class, by class index (:class:`MapLabelValuesd`).
        options: fields of :class:`~monai_vqvae2.transforms.SlicePreprocessing` replacing those of
            ``preprocessing``, e.g. ``crop_margin=0``.

    Returns:
        a MONAI ``Compose``; called on a file it raises :class:`InvalidImageError` naming the file for any problem
        (of a label too: unknown class values, another voxel grid than the image's).

    Raises:
        TypeError: an unknown option.
        ValueError: bad option values.
    """
    settings = as_preprocessing(preprocessing, **options)
    keys = _keys(image_key, label_key)
    lower, upper = settings.percentiles
    steps: list = [
        CheckImageFiled(keys, path_keys=["source", "label_source"][: len(keys)], max_voxels=settings.max_voxels),
        LoadImaged(keys, reader="NibabelReader", image_only=True, dtype=np.float32),
        EnsureChannelFirstd(keys),
        ValidateVolumed(image_key, spatial_dims=3),
        *_label_checks(label_key, label_values, spatial_dims=3),
        AssumeAnalyzeOrientationd(keys, axcodes=settings.analyze_axcodes),
    ]
    if label_key is not None:
        steps.append(CheckAlignedd(label_key, image_key=image_key))
    steps.append(Orientationd(keys, axcodes="RAS", labels=RAS_LABELS))
    if settings.pixdim is not None:
        steps.append(Spacingd(keys, pixdim=settings.pixdim, mode=["bilinear", "nearest"][: len(keys)]))
    steps += [
        ScalePercentilesd(image_key, lower=lower, upper=upper),
        CropForegroundd(
            keys,
            source_key=image_key,
            select_fn=_AboveThreshold(settings.foreground_threshold),
            margin=settings.crop_margin,
            allow_smaller=True,
        ),
    ]
    return _FileChain(steps, path_key=image_key)


def volume_transforms(
    image_size: int | Sequence[int] | None = None,
    *,
    preprocessing: SlicePreprocessing | Mapping[str, Any] | None = None,
    image_key: str = "image",
    label_key: str | None = None,
    label_values: Sequence[int] = FSL_TISSUE_VALUES,
    **options: Any,
) -> Compose:
    """The volume-to-slices chain: one dict ``{"image": path, ...}`` in, a list of slice dicts out.

    Steps: :class:`CheckImageFiled` → ``LoadImaged(reader="NibabelReader")`` (reads NIfTI and Analyze 7.5; MONAI's
    default reader refuses ``.hdr``/``.img``) → ``EnsureChannelFirstd`` (also turns OASIS' ``(X, Y, Z, 1)`` into
    ``(1, X, Y, Z)``) → :class:`ValidateVolumed` → :class:`AssumeAnalyzeOrientationd` → ``Orientationd("RAS")`` →
    optional ``Spacingd(pixdim)`` → percentile scaling (``percentiles`` to ``[0, 1]`` with ``ScaleIntensityRange``,
    clipped) → ``CropForegroundd`` (``> foreground_threshold``, ``crop_margin`` voxels of margin) →
    :class:`ExtractAxialSlicesd` (``min_brain_fraction``) → per slice: ``Rotate90d`` (display order, anterior up) →
    ``Resized`` (``resize_mode="longest"``: longest side to the target, aspect ratio kept, anti-aliased, clipped to
    ``[0, 1]``) → ``ResizeWithPadOrCropd`` (zero-pad to ``image_size``) → ``EnsureTyped`` (plain float32 tensor).

    Because the crop is 3D, all slices of one volume share one scale factor. Compose it in your own pipelines:
    MONAI applies the steps after ``ExtractAxialSlicesd`` to every slice of the list, and ``list_data_collate``
    flattens the lists into a batch.

    Args:
        image_size: output slice size, an int (square) or ``(H, W)``; ``None``: that of ``preprocessing``.
        preprocessing: the run's :class:`~monai_vqvae2.transforms.SlicePreprocessing` (or a mapping of its fields);
            ``None``: the defaults.
        image_key: key holding the file path, then the image.
        label_key: key holding the path of a label volume on the image's voxel grid, then its slices: ``(1, H, W)``
            int64 class indices that follow the image through every step (nearest-neighbour resampling and
            resizing); ``None``: no label. Slices are kept by the image's brain fraction.
        label_values: the stored value of each label class, by class index (default: FSL FAST's 0, 1, 2, 3).
        options: fields of :class:`~monai_vqvae2.transforms.SlicePreprocessing` replacing those of
            ``preprocessing``, e.g. ``min_brain_fraction=0.2, resize_mode="pad"``.

    Returns:
        a MONAI ``Compose``; called on a file it raises :class:`InvalidImageError` naming the file for any problem
        (unreadable, truncated, hostile header, NaN/Inf, constant, a label with unknown values or on another grid,
        ...).

    Raises:
        TypeError: an unknown option.
        ValueError: bad option values.
    """
    settings = as_preprocessing(preprocessing, image_size=image_size, **options)
    keys = _keys(image_key, label_key)
    steps: list = [
        *volume_preprocessing(settings, image_key=image_key, label_key=label_key, label_values=label_values).transforms,
        ExtractAxialSlicesd(
            keys,
            source_key=image_key,
            min_brain_fraction=settings.min_brain_fraction,
            foreground_threshold=settings.foreground_threshold,
        ),
        Rotate90d(keys, k=DISPLAY_ROT90_K, spatial_axes=(0, 1)),  # slice_io.to_display, as a MONAI transform
        *_slice_tail(image_key, settings.image_size, settings.resize_mode, label_key=label_key),
    ]
    return _FileChain(steps, path_key=image_key)


def volume_grid(
    volume_size: int | Sequence[int], voxel_size: float | Sequence[float] = 1.0
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """The fixed grid of whole volumes, checked: ``(volume_size, voxel_size)`` as three positive ints and three positive
    voxel sizes in mm (an int or a float means the same value on every axis).

    Raises:
        ValueError: a size or voxel size that is not positive, or not one or three of them.
    """
    size = (volume_size,) * 3 if isinstance(volume_size, (int, np.integer)) else tuple(volume_size)
    spacing = (voxel_size,) * 3 if isinstance(voxel_size, (int, float, np.number)) else tuple(voxel_size)
    if len(size) != 3 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in size):
        raise ValueError(f"`volume_size` must be a positive int or three of them (X, Y, Z), got {volume_size!r}.")
    if len(spacing) != 3 or not all(float(p) > 0 and np.isfinite(float(p)) for p in spacing):
        raise ValueError(f"`voxel_size` must be a positive voxel size in mm or three of them, got {voxel_size!r}.")
    return tuple(int(s) for s in size), tuple(float(p) for p in spacing)


def whole_volume_transforms(
    volume_size: int | Sequence[int] = (160, 192, 160),
    voxel_size: float | Sequence[float] = 1.0,
    *,
    preprocessing: SlicePreprocessing | Mapping[str, Any] | None = None,
    image_key: str = "image",
    **options: Any,
) -> Compose:
    """The chain for 3D models: one dict ``{"image": path, ...}`` in, one whole volume ``(1, X, Y, Z)`` out, float32
    in ``[0, 1]``, in RAS order on a fixed grid of ``volume_size`` voxels of ``voxel_size`` mm.

    Steps: :func:`volume_preprocessing` with ``Spacingd(pixdim=voxel_size)`` (load, check, orient to RAS, resample,
    percentile scaling, crop to the brain with ``crop_margin``) → ``ResizeWithPadOrCropd(volume_size)`` (the brain
    centred, zero padded; a brain larger than the grid loses its outer voxels symmetrically) → ``EnsureTyped``. Unlike the slice
    chains nothing is rescaled: one voxel is ``voxel_size`` mm in every volume, so the affine of a generated volume is
    ``diag(voxel_size)`` in RAS (:func:`monai_vqvae2.inferers.write_volume_samples`). The default grid, 160×192×160 at
    1 mm, holds an adult brain whole and divides by 8 (a two-level VQ-VAE-2's total downsampling) and by 16.

    Args:
        volume_size: voxels ``(X, Y, Z)`` of the grid (an int for a cube).
        voxel_size: voxel size in mm (one for all axes, or three).
        preprocessing: the run's :class:`~monai_vqvae2.transforms.SlicePreprocessing` (or a mapping of its fields);
            ``None``: the defaults. Its ``foreground_threshold``, ``percentiles``, ``crop_margin``,
            ``analyze_axcodes`` and ``max_voxels`` are used; its ``pixdim`` is replaced by this one.
        image_key: key holding the file path, then the image.
        options: fields of :class:`~monai_vqvae2.transforms.SlicePreprocessing` replacing those of
            ``preprocessing``, e.g. ``crop_margin=0``.

    Returns:
        a MONAI ``Compose``; called on a file it raises :class:`InvalidImageError` naming the file for any problem.

    Raises:
        TypeError: an unknown option.
        ValueError: bad option values, ``volume_size`` or ``voxel_size``.
    """
    size, spacing = volume_grid(volume_size, voxel_size)
    settings = as_preprocessing(preprocessing, **{**options, "pixdim": spacing})
    steps: list = [
        *volume_preprocessing(settings, image_key=image_key).transforms,
        *_slice_tail(image_key, size, resize_mode="pad"),
    ]
    return _FileChain(steps, path_key=image_key)


def png_slice_transforms(
    image_size: int | Sequence[int] | None = None,
    *,
    preprocessing: SlicePreprocessing | Mapping[str, Any] | None = None,
    image_key: str = "image",
    max_value: float | None = None,
    label_key: str | None = None,
    label_values: Sequence[int] = PNG_TISSUE_VALUES,
    **options: Any,
) -> Compose:
    """The chain for preprocessed PNG slices: ``{"image": path, ...}`` in, one slice dict out.

    Steps: :class:`CheckImageFiled` → ``LoadImaged`` with MONAI's ``PILReader`` (colour images converted to grey:
    RGB, RGBA, grey + alpha and palette images become 8-bit luma ``L = 0.299 R + 0.587 G + 0.114 B``, the alpha
    channel is dropped; 16-bit grey images stay 16-bit; ``reverse_indexing=False`` so arrays stay in display order
    ``(H, W)``, like volume slices) → ``EnsureChannelFirstd`` → :class:`ValidateVolumed` (2D; values above
    ``png_max_value``, e.g. a 16-bit PNG with the default 255, are refused rather than clipped) →
    ``ScaleIntensityRanged`` (``[0, png_max_value]`` to ``[0, 1]``) → ``Resized``/``ResizeWithPadOrCropd`` →
    ``EnsureTyped``. PNG slices are not filtered by brain fraction: the folders already hold a curated selection.

    Args:
        image_size: output slice size, an int (square) or ``(H, W)``; ``None``: that of ``preprocessing``.
        preprocessing: the run's :class:`~monai_vqvae2.transforms.SlicePreprocessing` (or a mapping of its fields);
            ``None``: the defaults. The chain uses ``image_size``, ``resize_mode``, ``png_max_value`` and
            ``max_voxels``.
        image_key: key holding the file path, then the image.
        max_value: the same as the ``png_max_value`` option (intensity mapped to 1).
        label_key: key holding the path of a label PNG of the same size (e.g. the ``keras_png_slices_seg_*``
            masks), then the label: ``(1, H, W)`` int64 class indices, resized with nearest neighbours; ``None``: no
            label.
        label_values: the stored grey level of each label class, by class index (default: the OASIS PNG masks' 0,
            85, 170, 255).
        options: fields of :class:`~monai_vqvae2.transforms.SlicePreprocessing` replacing those of
            ``preprocessing``.

    Returns:
        a MONAI ``Compose``; called on a file it raises :class:`InvalidImageError` naming the file for any problem.

    Raises:
        TypeError: an unknown option.
        ValueError: bad option values.
    """
    if max_value is not None:
        options["png_max_value"] = max_value
    settings = as_preprocessing(preprocessing, image_size=image_size, **options)
    keys = _keys(image_key, label_key)
    steps: list = [
        CheckImageFiled(keys, path_keys=["source", "label_source"][: len(keys)], max_voxels=settings.max_voxels),
        LoadImaged(
            keys, reader=PILReader(converter=_to_grayscale, reverse_indexing=False), image_only=True, dtype=np.float32
        ),
        EnsureChannelFirstd(keys),
        ValidateVolumed(image_key, spatial_dims=2, allow_constant=True, max_value=settings.png_max_value),
        *_label_checks(label_key, label_values, spatial_dims=2),
    ]
    if label_key is not None:
        steps.append(CheckAlignedd(label_key, image_key=image_key))
    steps += [
        ScaleIntensityRanged(image_key, a_min=0.0, a_max=settings.png_max_value, b_min=0.0, b_max=1.0, clip=True),
        *_slice_tail(image_key, settings.image_size, settings.resize_mode, label_key=label_key),
    ]
    return _FileChain(steps, path_key=image_key)
