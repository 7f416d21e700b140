"""MONAI dict transforms that turn 3D brain volumes (NIfTI / Analyze 7.5) and PNG slices into 2D training slices.

The chains reuse MONAI wherever a transform exists (``LoadImaged`` with ``NibabelReader``, ``EnsureChannelFirstd``,
``Orientationd``, ``Spacingd``, ``ScaleIntensityRangePercentilesd``, ``CropForegroundd``, ``Rotate90d``,
``Resized``, ``ResizeWithPadOrCropd``, ``EnsureTyped``). Four small transforms fill the gaps MONAI leaves:

- :class:`CheckImageFiled` — checks a file *before* decoding (Analyze ``.hdr``/``.img`` pairs and sizes,
  truncated ``.nii``), so that the error names the file and the problem rather than a reader traceback;
- :class:`ValidateVolumed` — rejects 2D files, 4D series, NaN/Inf voxels and constant volumes after loading;
- :class:`AssumeAnalyzeOrientationd` — Analyze 7.5 stores no orientation; this states the assumption explicitly;
- :class:`ExtractAxialSlicesd` — splits a volume into axial slices, keeps those with enough brain and records
  each slice's index and normalised inferior-to-superior position. MONAI's ``SplitDimd`` splits, but cannot
  drop slices or attach positions.

Slice convention: every output slice is ``(1, H, W)`` float32 in ``[0, 1]`` in *display order*: row 0 is anterior,
column 0 is the patient's left (neurological convention), as an axial slice is usually shown.
"""

from __future__ import annotations

import math
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.image_reader import PILReader
from monai.transforms import (
    Compose,
    CropForegroundd,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    Orientationd,
    Resized,
    ResizeWithPadOrCropd,
    Rotate90d,
    ScaleIntensityRanged,
    ScaleIntensityRangePercentilesd,
    Spacingd,
)
from PIL import Image as PILImage

from monai_vqvae2.data.errors import InvalidImageError

__all__ = [
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

RESIZE_MODES = ("longest", "pad")
_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
_ANALYZE_HEADER_BYTES = 348


def is_analyze_path(path: str | os.PathLike) -> bool:
    """True for an Analyze 7.5 (or NIfTI-pair) ``.hdr``/``.img`` file name."""
    return str(path).lower().endswith((".hdr", ".img", ".hdr.gz", ".img.gz"))


def _source_path(image: Any, fallback: Any = None) -> str:
    if isinstance(image, MetaTensor):
        name = image.meta.get("filename_or_obj")
        if name:
            return str(name)
    return str(fallback) if fallback is not None else "<in-memory image>"


def _check_analyze_pair(path: Path) -> None:
    stem = str(path)[: -len(".hdr")] if path.name.lower().endswith((".hdr", ".img")) else str(path)
    header_path, image_path = Path(stem + ".hdr"), Path(stem + ".img")
    for part, other in ((header_path, image_path), (image_path, header_path)):
        if not part.is_file():
            raise InvalidImageError(
                path, f"mismatched Analyze .hdr/.img pair: {part.name} is missing beside {other.name}."
            )
    header_size = header_path.stat().st_size
    if header_size < _ANALYZE_HEADER_BYTES:
        raise InvalidImageError(
            header_path, f"truncated Analyze header: {header_size} bytes, an Analyze 7.5 header has 348."
        )
    try:
        header = nib.load(str(header_path)).header
    except Exception as error:  # nibabel raises several types for bad headers
        raise InvalidImageError(header_path, f"unreadable Analyze header ({type(error).__name__}: {error}).") from error
    shape = tuple(int(n) for n in header.get_data_shape())
    dtype = header.get_data_dtype()
    expected = int(header.get_data_offset()) + int(np.prod(shape)) * dtype.itemsize
    actual = image_path.stat().st_size
    if actual < expected:
        raise InvalidImageError(
            image_path,
            f"truncated: {header_path.name} declares shape {shape} of {dtype} ({expected} bytes), "
            f"but {image_path.name} has {actual} bytes.",
        )
    if actual > expected:
        raise InvalidImageError(
            image_path,
            f"mismatched Analyze .hdr/.img pair: {header_path.name} declares shape {shape} of {dtype} "
            f"({expected} bytes), but {image_path.name} has {actual} bytes (does it belong to another header?).",
        )


def check_image_file(path: str | os.PathLike) -> None:
    """Check a file before decoding it.

    Checks that the file exists and is not empty; for Analyze 7.5 that both ``.hdr`` and ``.img`` exist and that
    the ``.img`` has exactly the byte size its header declares; for uncompressed NIfTI that the header is readable
    and the file holds all the voxels it declares; for PNG that PIL can identify and verify it. (A truncated
    ``.nii.gz`` can only be detected while decoding.)

    Args:
        path: image file.

    Raises:
        InvalidImageError: naming the file and the problem.
    """
    file = Path(path)
    if not file.exists():
        raise InvalidImageError(file, "does not exist.")
    if not file.is_file():
        raise InvalidImageError(file, "is not a file.")
    if file.stat().st_size == 0:
        raise InvalidImageError(file, "is empty (0 bytes).")
    name = file.name.lower()
    if name.endswith((".hdr", ".img")):
        _check_analyze_pair(file)
    elif name.endswith(".png"):
        try:
            with PILImage.open(file) as image:
                image.verify()
        except Exception as error:
            raise InvalidImageError(file, f"not a readable PNG image ({type(error).__name__}: {error}).") from error
    elif name.endswith((".nii", ".nii.gz")):
        try:
            image = nib.load(str(file))
        except Exception as error:
            raise InvalidImageError(file, f"not a readable NIfTI file ({type(error).__name__}: {error}).") from error
        if name.endswith(".nii"):
            header = image.header
            expected = int(header.get_data_offset()) + int(np.prod(header.get_data_shape())) * (
                header.get_data_dtype().itemsize
            )
            actual = file.stat().st_size
            if actual < expected:
                raise InvalidImageError(
                    file,
                    f"truncated: header declares shape {tuple(header.get_data_shape())} of {header.get_data_dtype()} "
                    f"({expected} bytes with the header), file has {actual} bytes.",
                )


class CheckImageFiled(MapTransform):
    """Dict wrapper of :func:`check_image_file`: validate the files named by ``keys`` before ``LoadImaged``.

    MONAI's readers raise bare decoding errors (or read a short ``.img`` without complaint); this makes every
    problem an :class:`InvalidImageError` that names the file.

    Args:
        keys: keys holding file paths.
        path_keys: keys under which each checked path is also stored as a string (one per key), so that it
            survives ``LoadImaged`` and travels with every slice; default ``"source"``; ``None`` stores nothing.
            (Not ``f"{key}_path"``: MONAI treats ``f"{key}_*"`` entries as metadata dicts.)
        allow_missing_keys: do not fail when a key is absent.

    Raises:
        ValueError: ``path_keys`` does not give one name per key.
    """

    def __init__(
        self,
        keys: KeysCollection,
        path_keys: str | Sequence[str] | None = "source",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        names = (path_keys,) if isinstance(path_keys, str) else tuple(path_keys or ())
        if path_keys is not None and len(names) != len(self.keys):
            raise ValueError(f"`path_keys` needs one name per key ({len(self.keys)}), got {path_keys!r}.")
        self.path_keys = names

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for number, key in enumerate(self.key_iterator(d)):
            check_image_file(d[key])
            if self.path_keys:
                d[self.path_keys[number]] = str(d[key])
        return d


class ValidateVolumed(MapTransform):
    """Reject images that would train on garbage: wrong dimensionality, several volumes, NaN/Inf, constant values.

    Place it after ``LoadImaged`` and ``EnsureChannelFirstd`` (images are ``(C, *spatial)``).

    Args:
        keys: image keys.
        spatial_dims: expected number of spatial dimensions (3 for volumes, 2 for PNG slices).
        allow_constant: accept constant images (e.g. an empty PNG slice).
        allow_missing_keys: do not fail when a key is absent.

    Raises:
        InvalidImageError: naming the file and the problem.
    """

    def __init__(
        self,
        keys: KeysCollection,
        spatial_dims: int = 3,
        allow_constant: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if spatial_dims not in (2, 3):
            raise ValueError(f"`spatial_dims` must be 2 or 3, got {spatial_dims}.")
        self.spatial_dims = spatial_dims
        self.allow_constant = allow_constant

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            path = _source_path(image, d.get("source"))
            shape = tuple(image.shape)
            spatial = shape[1:]
            expected = f"expected a single {self.spatial_dims}D {'volume' if self.spatial_dims == 3 else 'image'}"
            if len(spatial) != self.spatial_dims:
                raise InvalidImageError(path, f"is {len(spatial)}D (shape {spatial}); {expected}.")
            if shape[0] != 1:
                raise InvalidImageError(
                    path, f"holds {shape[0]} volumes/channels (shape {shape}, channel first); {expected}."
                )
            if min(spatial) < 2:
                raise InvalidImageError(
                    path,
                    f"has a singleton axis (shape {spatial}): a {len(spatial) - 1}D image stored as "
                    f"{len(spatial)}D; {expected}.",
                )
            values = torch.as_tensor(image)
            finite = torch.isfinite(values)
            if not bool(finite.all()):
                nan = int(torch.isnan(values).sum())
                inf = int((~finite).sum()) - nan
                raise InvalidImageError(path, f"contains {nan} NaN and {inf} infinite voxel(s) of {values.numel()}.")
            if not self.allow_constant and bool(values.max() == values.min()):
                value = float(values.flatten()[0])
                what = "all zeros" if value == 0 else f"constant (every voxel = {value:g})"
                raise InvalidImageError(path, f"is {what}: no image content.")
        return d


class AssumeAnalyzeOrientationd(MapTransform):
    """Give Analyze 7.5 images an explicit orientation before ``Orientationd``.

    Analyze headers carry voxel sizes but no orientation. nibabel (like FSL and SPM's default) reads Analyze as
    radiological storage, axis codes ``LAS``: the first axis runs from the patient's right to left, the second
    from posterior to anterior, the third from inferior to superior. The OASIS-1 images were converted from the
    4dfp format by ``4dfptoanalyze``, which (per the 4dfp tools' documentation) flips axial volumes so that the
    first voxel is at the right, occipital, skull-base corner: exactly ``LAS``, and the ``(176, 208, 176)`` axis
    lengths of the T88 images fit left-right/posterior-anterior/inferior-superior. This transform rebuilds the
    affine of images read
    from Analyze ``.hdr``/``.img`` files from ``axcodes`` and the voxel sizes (the origin goes to the volume
    centre), so the assumption is explicit and can be changed for data stored otherwise. NIfTI images, including
    NIfTI pairs (``.hdr``/``.img`` with a ``qform``/``sform``), are left untouched.

    Args:
        keys: image keys (MetaTensors from ``LoadImaged``).
        axcodes: three axis codes of the stored array, one of L/R, P/A and I/S each; default ``"LAS"``.
        allow_missing_keys: do not fail when a key is absent.

    Raises:
        ValueError: invalid ``axcodes``.
    """

    def __init__(self, keys: KeysCollection, axcodes: str = "LAS", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        codes = str(axcodes).upper()
        axes = [next((i for i, pair in enumerate(_RAS_LABELS) if c in pair), None) for c in codes]
        if len(codes) != 3 or None in axes or len(set(axes)) != 3:
            raise ValueError(
                f"`axcodes` must be three codes, one of L/R, P/A and I/S each (e.g. 'LAS'), got {axcodes!r}."
            )
        self.axcodes = codes

    @staticmethod
    def _is_analyze(image: MetaTensor) -> bool:
        if not is_analyze_path(_source_path(image, "")):
            return False
        return not any(float(image.meta.get(code, 0) or 0) > 0 for code in ("qform_code", "sform_code"))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            if not isinstance(image, MetaTensor) or not self._is_analyze(image):
                continue
            affine = np.asarray(image.affine, dtype=np.float64)
            zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
            rotation = np.zeros((3, 3))
            for axis, code in enumerate(self.axcodes):
                world = next(i for i, pair in enumerate(_RAS_LABELS) if code in pair)
                rotation[world, axis] = (1.0 if code == _RAS_LABELS[world][1] else -1.0) * zooms[axis]
            centre = (np.asarray(image.shape[1:4], dtype=np.float64) - 1.0) / 2.0
            new_affine = np.eye(4)
            new_affine[:3, :3] = rotation
            new_affine[:3, 3] = -rotation @ centre
            image.affine = torch.as_tensor(new_affine, dtype=image.affine.dtype)
        return d


class ExtractAxialSlicesd(MapTransform):
    """Split channel-first RAS volumes into axial slices, keeping slices with enough brain.

    The fraction of brain in a slice is the fraction of its pixels whose ``source_key`` intensity exceeds
    ``foreground_threshold``, measured on the volume as it arrives (after ``CropForegroundd`` in
    :func:`volume_transforms`, i.e. inside the brain's bounding box). Kept slices get:

    - ``slice_position``: ``k / (D - 1)`` for slice ``k`` of the ``D`` slices of the volume as it arrives
      (0 = most inferior slice, 1 = most superior; after the foreground crop, 0 and 1 are the bottom and top of
      the brain, so positions are comparable between subjects);
    - ``slice_index``: the slice's index along the superior axis of the volume *before* the crop (uses the
      ``foreground_start_coord`` that ``CropForegroundd`` records; equal to ``k`` without it).

    Every other entry of the input dict (subject, session, clinical values, ...) is copied into each slice.

    Args:
        keys: keys sliced together (e.g. an image and a label).
        source_key: key whose intensities decide the brain fraction, default the first of ``keys``.
        min_brain_fraction: keep slices whose brain fraction is at least this (0 keeps every slice).
        foreground_threshold: intensity above which a pixel counts as brain.
        start_coord_key: key where ``CropForegroundd`` recorded the crop start (``None``: no offset).
        drop_keys: input entries not copied into the slices.
        check_orientation: for MetaTensors, require the last spatial axis to point superior (as after
            ``Orientationd(axcodes="RAS")``).
        allow_missing_keys: do not fail when a key is absent.

    Returns:
        a list of slice dicts; the image entries become ``(C, X, Y)`` plain tensors (X: left to right, Y: posterior
        to anterior). An empty list when no slice has enough brain.

    Raises:
        ValueError: bad arguments, or a volume whose last axis does not point superior.
    """

    def __init__(
        self,
        keys: KeysCollection,
        source_key: str | None = None,
        min_brain_fraction: float = 0.15,
        foreground_threshold: float = 0.05,
        start_coord_key: str | None = "foreground_start_coord",
        drop_keys: Sequence[str] = ("foreground_start_coord", "foreground_end_coord"),
        check_orientation: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if not 0.0 <= min_brain_fraction <= 1.0:
            raise ValueError(f"`min_brain_fraction` must be in [0, 1], got {min_brain_fraction}.")
        self.source_key = source_key if source_key is not None else self.keys[0]
        self.min_brain_fraction = float(min_brain_fraction)
        self.foreground_threshold = float(foreground_threshold)
        self.start_coord_key = start_coord_key
        self.drop_keys = tuple(drop_keys)
        self.check_orientation = check_orientation

    def __call__(self, data: Mapping[Hashable, Any]) -> list[dict[Hashable, Any]]:  # type: ignore[override]
        d = dict(data)
        source = d[self.source_key]
        if source.ndim != 4:
            raise ValueError(
                f"`ExtractAxialSlicesd` needs channel-first 3D images (C, X, Y, Z), got shape {tuple(source.shape)} "
                f"for {_source_path(source, d.get('source'))}."
            )
        if self.check_orientation and isinstance(source, MetaTensor):
            codes = nib.aff2axcodes(np.asarray(source.affine))
            if codes[2] != "S":
                raise ValueError(
                    f"`ExtractAxialSlicesd` needs the last axis to point superior (apply Orientationd(axcodes='RAS') "
                    f"first); got axis codes {codes} for {_source_path(source, d.get('source'))}."
                )
        values = torch.as_tensor(source)
        depth = int(values.shape[-1])
        brain = (values > self.foreground_threshold).float().mean(dim=(0, 1, 2))
        kept = [k for k in range(depth) if float(brain[k]) >= self.min_brain_fraction and float(brain[k]) > 0]
        offset = 0
        if self.start_coord_key is not None and self.start_coord_key in d:
            offset = int(np.asarray(d[self.start_coord_key]).reshape(-1)[-1])
        shared = {k: v for k, v in d.items() if k not in self.keys and k not in self.drop_keys}
        slices = []
        for k in kept:
            item = dict(shared)
            for key in self.key_iterator(d):
                item[key] = torch.as_tensor(d[key])[..., k].clone(memory_format=torch.contiguous_format)
            item["slice_index"] = offset + k
            item["slice_position"] = k / (depth - 1) if depth > 1 else 0.5
            slices.append(item)
        return slices


class _AboveThreshold:
    """Picklable ``select_fn`` for ``CropForegroundd`` (a lambda would break worker processes)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = float(threshold)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return image > self.threshold


def _to_grayscale(image: Any) -> Any:
    """PIL converter: keep single-channel modes, convert RGB/RGBA/palette images to 8-bit grey."""
    return image if image.mode in ("L", "I", "I;16", "F") else image.convert("L")


def _image_size(image_size: int | Sequence[int]) -> tuple[int, int]:
    size = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else tuple(image_size)
    if len(size) != 2 or any(int(s) != s or s < 1 for s in size):
        raise ValueError(f"`image_size` must be a positive int or (H, W), got {image_size!r}.")
    return int(size[0]), int(size[1])


def _slice_tail(image_key: str, size: tuple[int, int], resize_mode: str) -> list:
    """Per-slice transforms shared by volumes and PNGs: fit into ``size`` and make a plain float32 tensor."""
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"`resize_mode` must be one of {RESIZE_MODES}, got {resize_mode!r}.")
    tail: list = []
    if resize_mode == "longest":
        tail.append(
            Resized(image_key, spatial_size=max(size), size_mode="longest", mode="bilinear", anti_aliasing=True)
        )
    tail += [
        ResizeWithPadOrCropd(image_key, spatial_size=size, mode="constant"),
        EnsureTyped(image_key, data_type="tensor", dtype=torch.float32, track_meta=False),
    ]
    return tail


def volume_preprocessing(
    *,
    image_key: str = "image",
    foreground_threshold: float = 0.05,
    percentiles: Sequence[float] = (0.5, 99.5),
    pixdim: Sequence[float] | None = None,
    crop_margin: int = 2,
    analyze_axcodes: str = "LAS",
) -> Compose:
    """The volume part of :func:`volume_transforms`, up to and including the brain crop: one 3D volume out, with
    every geometric step recorded so that ``monai.transforms.Invertd`` can map results back onto the file's voxel
    grid (the inference stage does this to write reconstructions with the input's affine).

    Steps: :class:`CheckImageFiled` → ``LoadImaged(reader="NibabelReader")`` → ``EnsureChannelFirstd`` →
    :class:`ValidateVolumed` → :class:`AssumeAnalyzeOrientationd` → ``Orientationd("RAS")`` → optional
    ``Spacingd(pixdim)`` → ``ScaleIntensityRangePercentilesd`` → ``CropForegroundd``.

    Args:
        image_key: key holding the file path, then the image.
        foreground_threshold: normalised intensity above which a voxel counts as brain (crop).
        percentiles: lower and upper intensity percentiles mapped to 0 and 1 (whole volume, values clipped).
        pixdim: resample to these voxel sizes in mm; ``None`` keeps the file's grid.
        crop_margin: voxels kept around the brain bounding box.
        analyze_axcodes: orientation assumed for Analyze files, see :class:`AssumeAnalyzeOrientationd`.

    Returns:
        a MONAI ``Compose``.

    Raises:
        ValueError: bad arguments.
    """
    lower, upper = (float(p) for p in percentiles)
    if not 0.0 <= lower < upper <= 100.0:
        raise ValueError(f"`percentiles` must be (lower, upper) with 0 <= lower < upper <= 100, got {percentiles}.")
    if crop_margin < 0:
        raise ValueError(f"`crop_margin` must be >= 0, got {crop_margin}.")
    steps: list = [
        CheckImageFiled(image_key),
        LoadImaged(image_key, reader="NibabelReader", image_only=True, dtype=np.float32),
        EnsureChannelFirstd(image_key),
        ValidateVolumed(image_key, spatial_dims=3),
        AssumeAnalyzeOrientationd(image_key, axcodes=analyze_axcodes),
        Orientationd(image_key, axcodes="RAS", labels=_RAS_LABELS),
    ]
    if pixdim is not None:
        steps.append(Spacingd(image_key, pixdim=tuple(float(p) for p in pixdim), mode="bilinear"))
    steps += [
        ScaleIntensityRangePercentilesd(image_key, lower=lower, upper=upper, b_min=0.0, b_max=1.0, clip=True),
        CropForegroundd(
            image_key,
            source_key=image_key,
            select_fn=_AboveThreshold(foreground_threshold),
            margin=crop_margin,
            allow_smaller=True,
        ),
    ]
    return Compose(steps)


def volume_transforms(
    image_size: int | Sequence[int] = 256,
    *,
    image_key: str = "image",
    min_brain_fraction: float = 0.15,
    foreground_threshold: float = 0.05,
    percentiles: Sequence[float] = (0.5, 99.5),
    pixdim: Sequence[float] | None = None,
    crop_margin: int = 2,
    resize_mode: str = "longest",
    analyze_axcodes: str = "LAS",
) -> Compose:
    """The volume-to-slices chain: one dict ``{"image": path, ...}`` in, a list of slice dicts out.

    Steps: :class:`CheckImageFiled` → ``LoadImaged(reader="NibabelReader")`` (reads NIfTI and Analyze 7.5; MONAI's
    default reader refuses ``.hdr``/``.img``) → ``EnsureChannelFirstd`` (also turns OASIS' ``(X, Y, Z, 1)`` into
    ``(1, X, Y, Z)``) → :class:`ValidateVolumed` → :class:`AssumeAnalyzeOrientationd` → ``Orientationd("RAS")`` →
    optional ``Spacingd(pixdim)`` → ``ScaleIntensityRangePercentilesd`` (``percentiles`` to ``[0, 1]``, clipped)
    → ``CropForegroundd`` (``> foreground_threshold``, ``crop_margin`` voxels of margin) →
    :class:`ExtractAxialSlicesd` → per slice: ``Rotate90d`` (display order, anterior up) → ``Resized``
    (``resize_mode="longest"``: longest side to the target, aspect ratio kept, anti-aliased) →
    ``ResizeWithPadOrCropd`` (zero-pad to ``image_size``) → ``EnsureTyped`` (plain float32 tensor).

    Because the crop is 3D, all slices of one volume share one scale factor. Compose it in your own pipelines:
    MONAI applies the steps after ``ExtractAxialSlicesd`` to every slice of the list, and ``list_data_collate``
    flattens the lists into a batch.

    Args:
        image_size: output slice size, an int (square) or ``(H, W)``.
        image_key: key holding the file path, then the image.
        min_brain_fraction: slices whose fraction of brain pixels (inside the 3D brain bounding box) is below this
            are dropped.
        foreground_threshold: normalised intensity above which a voxel counts as brain (crop and fraction).
        percentiles: lower and upper intensity percentiles mapped to 0 and 1 (whole volume, values clipped).
        pixdim: resample to these voxel sizes in mm (e.g. ``(1, 1, 1)``); ``None`` keeps the file's grid.
        crop_margin: voxels kept around the brain bounding box.
        resize_mode: ``"longest"`` (scale to fit, then pad) or ``"pad"`` (centre pad/crop only, no scaling).
        analyze_axcodes: orientation assumed for Analyze files, see :class:`AssumeAnalyzeOrientationd`.

    Returns:
        a MONAI ``Compose``.

    Raises:
        ValueError: bad arguments.
    """
    size = _image_size(image_size)
    steps: list = [
        *volume_preprocessing(
            image_key=image_key,
            foreground_threshold=foreground_threshold,
            percentiles=percentiles,
            pixdim=pixdim,
            crop_margin=crop_margin,
            analyze_axcodes=analyze_axcodes,
        ).transforms,
        ExtractAxialSlicesd(
            image_key, min_brain_fraction=min_brain_fraction, foreground_threshold=foreground_threshold
        ),
        Rotate90d(image_key, k=1, spatial_axes=(0, 1)),
        *_slice_tail(image_key, size, resize_mode),
    ]
    return Compose(steps)


def png_slice_transforms(
    image_size: int | Sequence[int] = 256,
    *,
    image_key: str = "image",
    max_value: float = 255.0,
    resize_mode: str = "longest",
) -> Compose:
    """The chain for preprocessed PNG slices: ``{"image": path, ...}`` in, one slice dict out.

    Steps: :class:`CheckImageFiled` → ``LoadImaged`` with MONAI's ``PILReader`` (colour images converted to grey,
    ``reverse_indexing=False`` so arrays stay in display order ``(H, W)``, like volume slices) →
    ``EnsureChannelFirstd`` → :class:`ValidateVolumed` (2D) → ``ScaleIntensityRanged`` (``[0, max_value]`` to
    ``[0, 1]``) → ``Resized``/``ResizeWithPadOrCropd`` → ``EnsureTyped``. PNG slices are not filtered by brain
    fraction: the folders already hold a curated selection.

    Args:
        image_size: output slice size, an int (square) or ``(H, W)``.
        image_key: key holding the file path, then the image.
        max_value: intensity mapped to 1 (255 for 8-bit PNGs).
        resize_mode: ``"longest"`` or ``"pad"``, as in :func:`volume_transforms`.

    Returns:
        a MONAI ``Compose``.

    Raises:
        ValueError: bad arguments.
    """
    size = _image_size(image_size)
    if not max_value > 0 or not math.isfinite(max_value):
        raise ValueError(f"`max_value` must be a positive number, got {max_value}.")
    return Compose(
        [
            CheckImageFiled(image_key),
            LoadImaged(
                image_key,
                reader=PILReader(converter=_to_grayscale, reverse_indexing=False),
                image_only=True,
                dtype=np.float32,
            ),
            EnsureChannelFirstd(image_key),
            ValidateVolumed(image_key, spatial_dims=2, allow_constant=True),
            ScaleIntensityRanged(image_key, a_min=0.0, a_max=float(max_value), b_min=0.0, b_max=1.0, clip=True),
            *_slice_tail(image_key, size, resize_mode),
        ]
    )
