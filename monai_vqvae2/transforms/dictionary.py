"""The dictionary transforms that fill the gaps MONAI leaves in the volume and PNG chains.

- :class:`CheckImageFiled` — checks a file *before* decoding (broken links, permissions, Analyze ``.hdr``/``.img``
  pairs and sizes, truncated ``.nii``, header dims, voxel type, ``max_voxels``), so that the error names the file
  and the problem rather than a reader traceback, and a hostile header cannot make the reader allocate gigabytes;
- :class:`ValidateVolumed` — rejects 2D files, 4D series, NaN/Inf voxels, constant volumes and intensity ranges
  too wide for float32 after loading;
- :class:`AssumeAnalyzeOrientationd` — Analyze 7.5 stores no orientation; this states the assumption explicitly;
- :class:`ExtractAxialSlicesd` — splits a volume into axial slices, keeps those with enough brain and records
  each slice's index and normalised inferior-to-superior position. MONAI's ``SplitDimd`` splits, but cannot
  drop slices or attach positions;
- :class:`ScalePercentilesd` — percentile scaling to ``[0, 1]`` that refuses volumes without contrast.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, ScaleIntensityRange
from monai.transforms.utils_pytorch_numpy_unification import percentile

from monai_vqvae2.transforms.checks import (
    MAX_VOXELS,
    RAS_LABELS,
    check_axcodes,
    check_image_file,
    check_max_voxels,
    is_analyze_path,
)
from monai_vqvae2.transforms.errors import InvalidImageError
from monai_vqvae2.transforms.settings import SlicePreprocessing

__all__ = [
    "RAS_LABELS",
    "AssumeAnalyzeOrientationd",
    "CheckImageFiled",
    "ExtractAxialSlicesd",
    "ScalePercentilesd",
    "ValidateVolumed",
]

#: Half the float32 range: a wider intensity range overflows ``value - minimum`` in float32 arithmetic.
_MAX_INTENSITY_SPAN = float(np.finfo(np.float32).max) / 2


def _source_path(image: Any, fallback: Any = None) -> str:
    if isinstance(image, MetaTensor):
        name = image.meta.get("filename_or_obj")
        if name:
            return str(name)
    return str(fallback) if fallback is not None else "<in-memory image>"


class CheckImageFiled(MapTransform):
    """Dict wrapper of :func:`check_image_file`: validate the files named by ``keys`` before ``LoadImaged``.

    MONAI's readers raise bare decoding errors (or read a short ``.img`` without complaint); this makes every
    problem an :class:`InvalidImageError` that names the file.

    Args:
        keys: keys holding file paths.
        path_keys: keys under which each checked path is also stored as a string (one per key), so that it
            survives ``LoadImaged`` and travels with every slice; default ``"source"``; ``None`` stores nothing.
            (Not ``f"{key}_path"``: MONAI treats ``f"{key}_*"`` entries as metadata dicts.)
        max_voxels: largest number of voxels (pixels for PNG) a file may declare, see :func:`check_image_file`.
        allow_missing_keys: do not fail when a key is absent.

    Raises:
        ValueError: ``path_keys`` does not give one name per key, or ``max_voxels`` is not a positive int.
    """

    def __init__(
        self,
        keys: KeysCollection,
        path_keys: str | Sequence[str] | None = "source",
        max_voxels: int = MAX_VOXELS,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        names = (path_keys,) if isinstance(path_keys, str) else tuple(path_keys or ())
        if path_keys is not None and len(names) != len(self.keys):
            raise ValueError(f"`path_keys` needs one name per key ({len(self.keys)}), got {path_keys!r}.")
        self.path_keys = names
        self.max_voxels = check_max_voxels(max_voxels)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for number, key in enumerate(self.key_iterator(d)):
            check_image_file(d[key], max_voxels=self.max_voxels)
            if self.path_keys:
                d[self.path_keys[number]] = str(d[key])
        return d


class ValidateVolumed(MapTransform):
    """Reject images that would train on garbage: wrong dimensionality, several volumes, NaN/Inf, constant values,
    an intensity range too wide for float32 arithmetic, or values above the expected maximum.

    Place it after ``LoadImaged`` and ``EnsureChannelFirstd`` (images are ``(C, *spatial)``).

    Args:
        keys: image keys.
        spatial_dims: expected number of spatial dimensions (3 for volumes, 2 for PNG slices).
        allow_constant: accept constant images (e.g. an empty PNG slice).
        max_value: reject images with larger values (they would be clipped by a fixed-range normalisation, e.g. a
            16-bit PNG normalised by 255); ``None`` checks nothing.
        allow_missing_keys: do not fail when a key is absent.

    Raises:
        InvalidImageError: naming the file and the problem.
    """

    def __init__(
        self,
        keys: KeysCollection,
        spatial_dims: int = 3,
        allow_constant: bool = False,
        max_value: float | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if spatial_dims not in (2, 3):
            raise ValueError(f"`spatial_dims` must be 2 or 3, got {spatial_dims}.")
        self.spatial_dims = spatial_dims
        self.allow_constant = allow_constant
        self.max_value = None if max_value is None else float(max_value)

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
                hint = " (values beyond the float32 range, ±3.4e+38, become infinite)" if inf else ""
                raise InvalidImageError(
                    path, f"contains {nan} NaN and {inf} infinite voxel(s) of {values.numel()}{hint}."
                )
            low, high = float(values.min()), float(values.max())
            if not self.allow_constant and high == low:
                what = "all zeros" if low == 0 else f"constant (every voxel = {low:g})"
                raise InvalidImageError(path, f"is {what}: no image content.")
            if high - low > _MAX_INTENSITY_SPAN:
                raise InvalidImageError(
                    path,
                    f"has intensities from {low:.3g} to {high:.3g}, a range wider than float32 arithmetic allows "
                    f"({_MAX_INTENSITY_SPAN:.2g}); rescale the image.",
                )
            if self.max_value is not None and high > self.max_value:
                raise InvalidImageError(
                    path,
                    f"has values up to {high:g}, above max_value={self.max_value:g} (a 16-bit image?); they would be "
                    f"clipped: set the maximum (`max_value` / `png_max_value`) to the image's range, e.g. 65535.",
                )
        return d


class ScalePercentilesd(MapTransform):
    """``ScaleIntensityRangePercentilesd(lower, upper, b_min=0, b_max=1, clip=True)`` that refuses volumes whose two
    percentiles coincide: MONAI's transform then returns ``image - a_min`` unscaled and unclipped (values outside
    ``[0, 1]``), which happens when more than ``upper - lower`` percent of the voxels share one value."""

    def __init__(self, keys: KeysCollection, lower: float, upper: float) -> None:
        super().__init__(keys)
        self.lower, self.upper = float(lower), float(upper)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            low, high = (float(v) for v in percentile(image, [self.lower, self.upper]))
            if not high > low:
                raise InvalidImageError(
                    _source_path(image, d.get("source")),
                    f"has equal {self.lower:g}th and {self.upper:g}th intensity percentiles ({low:g}): at least "
                    f"{self.upper - self.lower:g}% of its voxels have the same value, so there is no contrast to "
                    "normalise (an almost empty image?).",
                )
            d[key] = ScaleIntensityRange(a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True)(image)
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

    def __init__(
        self, keys: KeysCollection, axcodes: str = SlicePreprocessing.analyze_axcodes, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.axcodes = check_axcodes(axcodes)

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
                world = next(i for i, pair in enumerate(RAS_LABELS) if code in pair)
                rotation[world, axis] = (1.0 if code == RAS_LABELS[world][1] else -1.0) * zooms[axis]
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
        min_brain_fraction: float = SlicePreprocessing.min_brain_fraction,
        foreground_threshold: float = SlicePreprocessing.foreground_threshold,
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
