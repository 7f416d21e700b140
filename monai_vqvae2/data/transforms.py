"""MONAI dict transforms that turn 3D brain volumes (NIfTI / Analyze 7.5) and PNG slices into 2D training slices.

The chains reuse MONAI wherever a transform exists (``LoadImaged`` with ``NibabelReader``, ``EnsureChannelFirstd``,
``Orientationd``, ``Spacingd``, ``ScaleIntensityRange``, ``CropForegroundd``, ``Rotate90d``, ``Resized``,
``ResizeWithPadOrCropd``, ``EnsureTyped``). Four small transforms fill the gaps MONAI leaves:

- :class:`CheckImageFiled` — checks a file *before* decoding (broken links, permissions, Analyze ``.hdr``/``.img``
  pairs and sizes, truncated ``.nii``, header dims, voxel type, ``max_voxels``), so that the error names the file
  and the problem rather than a reader traceback, and a hostile header cannot make the reader allocate gigabytes;
- :class:`ValidateVolumed` — rejects 2D files, 4D series, NaN/Inf voxels, constant volumes and intensity ranges
  too wide for float32 after loading;
- :class:`AssumeAnalyzeOrientationd` — Analyze 7.5 stores no orientation; this states the assumption explicitly;
- :class:`ExtractAxialSlicesd` — splits a volume into axial slices, keeps those with enough brain and records
  each slice's index and normalised inferior-to-superior position. MONAI's ``SplitDimd`` splits, but cannot
  drop slices or attach positions.

Slice convention: every output slice is ``(1, H, W)`` float32 in ``[0, 1]`` in *display order*: row 0 is anterior,
column 0 is the patient's left (neurological convention), as an axial slice is usually shown: the quarter turn of
:func:`monai_vqvae2.slice_io.to_display`, made here by ``Rotate90d(k=DISPLAY_ROT90_K)``.

Errors: the chains returned here raise :class:`~monai_vqvae2.data.errors.InvalidImageError` (a ``ValueError``
naming the file) for every problem of an input file, including reader errors, rather than MONAI's
``RuntimeError("applying transform ...")`` wrapper.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
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
    ScaleIntensityRange,
    ScaleIntensityRanged,
    Spacingd,
)
from monai.transforms.utils_pytorch_numpy_unification import percentile
from nibabel.openers import ImageOpener
from PIL import Image as PILImage

from monai_vqvae2.data.errors import PERMISSION_PROBLEM, InvalidImageError, as_invalid_image
from monai_vqvae2.slice_io import DISPLAY_ROT90_K

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

RESIZE_MODES = ("longest", "pad")
#: Default limit on the voxels a file may declare (512 x 512 x 512 = 134 million): 0.5 GiB as float32, a few GiB
#: at the peak of the chain, which holds several copies. OASIS volumes have 176 x 208 x 176 = 6.4 million voxels and
#: 0.5 mm whole-head scans about 100 million, so only corrupt or hostile headers come near it.
MAX_VOXELS = 512**3
_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
_ANALYZE_HEADER_BYTES = 348
#: Half the float32 range: a wider intensity range overflows ``value - minimum`` in float32 arithmetic.
_MAX_INTENSITY_SPAN = float(np.finfo(np.float32).max) / 2
#: NIfTI-1 / Analyze 7.5 datatype codes nibabel cannot read, for clearer messages.
_UNSUPPORTED_DATATYPES = {1: "DT_BINARY, one bit per voxel"}


def is_analyze_path(path: str | os.PathLike) -> bool:
    """True for an Analyze 7.5 (or NIfTI-pair) ``.hdr``/``.img`` file name."""
    return str(path).lower().endswith((".hdr", ".img", ".hdr.gz", ".img.gz"))


def _source_path(image: Any, fallback: Any = None) -> str:
    if isinstance(image, MetaTensor):
        name = image.meta.get("filename_or_obj")
        if name:
            return str(name)
    return str(fallback) if fallback is not None else "<in-memory image>"


def _check_max_voxels(max_voxels: int) -> int:
    if isinstance(max_voxels, bool) or not isinstance(max_voxels, (int, np.integer)) or max_voxels < 1:
        raise ValueError(f"`max_voxels` must be a positive int, got {max_voxels!r}.")
    return int(max_voxels)


def _raw_header_problem(path: Path) -> str | None:
    """Why nibabel refused a NIfTI-1/Analyze 7.5 header, read from its raw bytes; ``None`` when nothing is found."""
    try:
        with ImageOpener(str(path)) as stream:
            raw = stream.read(_ANALYZE_HEADER_BYTES)
    except (OSError, EOFError, zlib.error):  # not even a readable (gzip) stream: nibabel's reason is all there is
        return None
    if len(raw) < _ANALYZE_HEADER_BYTES:
        return f"the header is cut short ({len(raw)} of {_ANALYZE_HEADER_BYTES} bytes)"
    order = next((o for o in "<>" if struct.unpack_from(o + "i", raw)[0] == _ANALYZE_HEADER_BYTES), None)
    if order is None:  # not a NIfTI-1/Analyze header at all (or NIfTI-2)
        return None
    dims = list(struct.unpack_from(order + "8h", raw, 40))
    datatype = struct.unpack_from(order + "h", raw, 70)[0]
    if not 1 <= dims[0] <= 7:
        return f"header dim[0] = {dims[0]} is not a number of dimensions in 1..7 (dim = {dims})"
    if datatype in _UNSUPPORTED_DATATYPES:
        return (
            f"datatype {datatype} ({_UNSUPPORTED_DATATYPES[datatype]}) is not supported; expected integer or "
            "floating-point intensities"
        )
    return None


def _load_header(path: Path, what: str) -> Any:
    """nibabel's image of ``path``; loading is lazy, so only the header is read."""
    try:
        return nib.load(str(path))
    except PermissionError:
        raise
    except Exception as error:  # nibabel raises several types for bad headers
        found = _raw_header_problem(path)
        reason = f": {found}" if found else ""
        raise InvalidImageError(path, f"{what}{reason} ({type(error).__name__}: {error}).") from error


def _check_header(path: Path, image: Any, max_voxels: int) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, voxel type and expected uncompressed size (with the header) declared by a header, checked."""
    header = image.header
    shape = tuple(int(n) for n in header.get_data_shape())
    if not shape or min(shape) < 1:
        dims = [int(n) for n in header["dim"]]
        raise InvalidImageError(
            path, f"header declares shape {shape} (dim = {dims}): every dimension must be at least 1."
        )
    voxels = math.prod(shape)
    if voxels > max_voxels:
        raise InvalidImageError(
            path,
            f"header declares {'×'.join(map(str, shape))} = {voxels:.1e} voxels, above the limit "
            f"max_voxels={max_voxels}; its data was not read (raise `max_voxels` to load it).",
        )
    dtype = header.get_data_dtype()
    if dtype.kind == "c":
        raise InvalidImageError(path, f"has complex voxels ({dtype}); expected real intensities (save the magnitude).")
    if dtype.fields is not None or dtype.kind not in "biuf":
        raise InvalidImageError(
            path, f"has multi-component voxels ({dtype}, e.g. RGB); expected one grey-level intensity per voxel."
        )
    # a loaded image's header reports offset 0; the array proxy knows where the voxels start
    offset = int(getattr(image.dataobj, "offset", header.get_data_offset()))
    return shape, dtype, offset + voxels * dtype.itemsize


def _check_analyze_pair(path: Path, max_voxels: int) -> None:
    stem = str(path)[: -len(".hdr")] if path.name.lower().endswith((".hdr", ".img")) else str(path)
    header_path, image_path = Path(stem + ".hdr"), Path(stem + ".img")
    for part, other in ((header_path, image_path), (image_path, header_path)):
        if not part.is_file():
            broken = " (a broken symbolic link)" if part.is_symlink() else ""
            raise InvalidImageError(
                path, f"mismatched Analyze .hdr/.img pair: {part.name} is missing{broken} beside {other.name}."
            )
    header_size = header_path.stat().st_size
    if header_size < _ANALYZE_HEADER_BYTES:
        raise InvalidImageError(
            header_path, f"truncated Analyze header: {header_size} bytes, an Analyze 7.5 header has 348."
        )
    image = _load_header(header_path, "unreadable Analyze header")
    shape, dtype, expected = _check_header(header_path, image, max_voxels)
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


def _check_png(file: Path, max_voxels: int) -> None:
    try:
        with PILImage.open(file) as image:
            width, height = image.size
            image.verify()
    except PermissionError:
        raise
    except Exception as error:
        raise InvalidImageError(file, f"not a readable PNG image ({type(error).__name__}: {error}).") from error
    if width * height > max_voxels:
        raise InvalidImageError(
            file,
            f"declares {width}×{height} = {width * height:.1e} pixels, above the limit max_voxels={max_voxels}; "
            "its data was not read (raise `max_voxels` to load it).",
        )


def _check_nifti(file: Path, max_voxels: int) -> None:
    image = _load_header(file, "not a readable NIfTI file")
    shape, dtype, expected = _check_header(file, image, max_voxels)
    if not file.name.lower().endswith(".nii"):  # compressed: the data size is only known while decoding
        return
    actual = file.stat().st_size
    if actual < expected:
        raise InvalidImageError(
            file,
            f"truncated: header declares shape {shape} of {dtype} ({expected} bytes with the header), "
            f"file has {actual} bytes.",
        )
    if actual > expected:
        dims = [int(n) for n in image.header["dim"]]
        raise InvalidImageError(
            file,
            f"header declares shape {shape} of {dtype} (dim = {dims}; {expected} bytes with the header), but the "
            f"file has {actual} bytes: the header's dims do not match the data.",
        )


def check_image_file(path: str | os.PathLike, max_voxels: int = MAX_VOXELS) -> None:
    """Check a file before decoding it, reading at most its header.

    Checks that the file exists (and is not a broken symbolic link), can be read and is not empty; that a NIfTI or
    Analyze header is readable, declares dimensions of at least 1, at most ``max_voxels`` voxels in all and
    real-valued, single-component voxels (not complex, not RGB); for Analyze 7.5 that both ``.hdr`` and ``.img``
    exist and that the ``.img`` has exactly the byte size its header declares; for uncompressed NIfTI the same
    for the file; for PNG that PIL can identify and verify it and that it has at most ``max_voxels`` pixels.
    (A truncated ``.nii.gz`` can only be detected while decoding.)

    Args:
        path: image file.
        max_voxels: largest number of voxels (pixels for PNG) a file may declare; larger files are refused before
            any voxel is read, so that a corrupt or hostile header cannot exhaust memory.

    Raises:
        InvalidImageError: naming the file and the problem ("permission denied" when the system refuses to read).
        ValueError: ``max_voxels`` is not a positive int.
    """
    limit = _check_max_voxels(max_voxels)
    file = Path(path)
    try:
        if not file.exists():
            if file.is_symlink():
                raise InvalidImageError(
                    file,
                    f"is a broken symbolic link (to {os.readlink(file)!r}, which does not exist or loops back).",
                )
            raise InvalidImageError(file, "does not exist.")
        if not file.is_file():
            raise InvalidImageError(file, "is not a file.")
        if file.stat().st_size == 0:
            raise InvalidImageError(file, "is empty (0 bytes).")
        name = file.name.lower()
        if name.endswith((".hdr", ".img")):
            _check_analyze_pair(file, limit)
        elif name.endswith(".png"):
            _check_png(file, limit)
        elif name.endswith((".nii", ".nii.gz")):
            _check_nifti(file, limit)
    except PermissionError as error:
        raise InvalidImageError(file, PERMISSION_PROBLEM) from error
    except OSError as error:
        raise InvalidImageError(file, f"could not be read ({type(error).__name__}: {error}).") from error


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
        self.max_voxels = _check_max_voxels(max_voxels)

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


class _ScalePercentilesd(MapTransform):
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


def _image_size(image_size: int | Sequence[int]) -> tuple[int, int]:
    size = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else tuple(image_size)
    if len(size) != 2 or any(int(s) != s or s < 1 for s in size):
        raise ValueError(f"`image_size` must be a positive int or (H, W), got {image_size!r}.")
    return int(size[0]), int(size[1])


def _slice_tail(image_key: str, size: tuple[int, int], resize_mode: str) -> list:
    """Per-slice transforms shared by volumes and PNGs: fit into ``size`` and make a plain float32 tensor in
    ``[0, 1]``."""
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"`resize_mode` must be one of {RESIZE_MODES}, got {resize_mode!r}.")
    tail: list = []
    if resize_mode == "longest":
        tail += [
            Resized(image_key, spatial_size=max(size), size_mode="longest", mode="bilinear", anti_aliasing=True),
            # interpolation may overshoot 1 by a float32 rounding step: an identity scaling that clips to [0, 1]
            ScaleIntensityRanged(image_key, a_min=0.0, a_max=1.0, b_min=0.0, b_max=1.0, clip=True),
        ]
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
    max_voxels: int = MAX_VOXELS,
) -> Compose:
    """The volume part of :func:`volume_transforms`, up to and including the brain crop: one 3D volume out, with
    every geometric step recorded so that ``monai.transforms.Invertd`` can map results back onto the file's voxel
    grid (the inference stage does this to write reconstructions with the input's affine).

    Steps: :class:`CheckImageFiled` → ``LoadImaged(reader="NibabelReader")`` → ``EnsureChannelFirstd`` →
    :class:`ValidateVolumed` → :class:`AssumeAnalyzeOrientationd` → ``Orientationd("RAS")`` → optional
    ``Spacingd(pixdim)`` → percentile scaling (``ScaleIntensityRange`` between the ``percentiles``; a volume
    whose two percentiles are equal is refused) → ``CropForegroundd``.

    Args:
        image_key: key holding the file path, then the image.
        foreground_threshold: normalised intensity above which a voxel counts as brain (crop).
        percentiles: lower and upper intensity percentiles mapped to 0 and 1 (whole volume, values clipped).
        pixdim: resample to these voxel sizes in mm; ``None`` keeps the file's grid.
        crop_margin: voxels kept around the brain bounding box.
        analyze_axcodes: orientation assumed for Analyze files, see :class:`AssumeAnalyzeOrientationd`.
        max_voxels: files declaring more voxels are refused before their data is read, see
            :func:`check_image_file`.

    Returns:
        a MONAI ``Compose``; called on a file it raises :class:`InvalidImageError` naming the file for any problem.

    Raises:
        ValueError: bad arguments.
    """
    lower, upper = (float(p) for p in percentiles)
    if not 0.0 <= lower < upper <= 100.0:
        raise ValueError(f"`percentiles` must be (lower, upper) with 0 <= lower < upper <= 100, got {percentiles}.")
    if crop_margin < 0:
        raise ValueError(f"`crop_margin` must be >= 0, got {crop_margin}.")
    steps: list = [
        CheckImageFiled(image_key, max_voxels=max_voxels),
        LoadImaged(image_key, reader="NibabelReader", image_only=True, dtype=np.float32),
        EnsureChannelFirstd(image_key),
        ValidateVolumed(image_key, spatial_dims=3),
        AssumeAnalyzeOrientationd(image_key, axcodes=analyze_axcodes),
        Orientationd(image_key, axcodes="RAS", labels=_RAS_LABELS),
    ]
    if pixdim is not None:
        steps.append(Spacingd(image_key, pixdim=tuple(float(p) for p in pixdim), mode="bilinear"))
    steps += [
        _ScalePercentilesd(image_key, lower=lower, upper=upper),
        CropForegroundd(
            image_key,
            source_key=image_key,
            select_fn=_AboveThreshold(foreground_threshold),
            margin=crop_margin,
            allow_smaller=True,
        ),
    ]
    return _FileChain(steps, path_key=image_key)


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
    max_voxels: int = MAX_VOXELS,
) -> Compose:
    """The volume-to-slices chain: one dict ``{"image": path, ...}`` in, a list of slice dicts out.

    Steps: :class:`CheckImageFiled` → ``LoadImaged(reader="NibabelReader")`` (reads NIfTI and Analyze 7.5; MONAI's
    default reader refuses ``.hdr``/``.img``) → ``EnsureChannelFirstd`` (also turns OASIS' ``(X, Y, Z, 1)`` into
    ``(1, X, Y, Z)``) → :class:`ValidateVolumed` → :class:`AssumeAnalyzeOrientationd` → ``Orientationd("RAS")`` →
    optional ``Spacingd(pixdim)`` → percentile scaling (``percentiles`` to ``[0, 1]`` with ``ScaleIntensityRange``,
    clipped) → ``CropForegroundd`` (``> foreground_threshold``, ``crop_margin`` voxels of margin) →
    :class:`ExtractAxialSlicesd` → per slice: ``Rotate90d`` (display order, anterior up) → ``Resized``
    (``resize_mode="longest"``: longest side to the target, aspect ratio kept, anti-aliased, clipped to ``[0, 1]``) →
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
        max_voxels: files declaring more voxels are refused before their data is read, see
            :func:`check_image_file`.

    Returns:
        a MONAI ``Compose``; called on a file it raises :class:`InvalidImageError` naming the file for any problem
        (unreadable, truncated, hostile header, NaN/Inf, constant, ...).

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
            max_voxels=max_voxels,
        ).transforms,
        ExtractAxialSlicesd(
            image_key, min_brain_fraction=min_brain_fraction, foreground_threshold=foreground_threshold
        ),
        Rotate90d(image_key, k=DISPLAY_ROT90_K, spatial_axes=(0, 1)),  # slice_io.to_display, as a MONAI transform
        *_slice_tail(image_key, size, resize_mode),
    ]
    return _FileChain(steps, path_key=image_key)


def png_slice_transforms(
    image_size: int | Sequence[int] = 256,
    *,
    image_key: str = "image",
    max_value: float = 255.0,
    resize_mode: str = "longest",
    max_voxels: int = MAX_VOXELS,
) -> Compose:
    """The chain for preprocessed PNG slices: ``{"image": path, ...}`` in, one slice dict out.

    Steps: :class:`CheckImageFiled` → ``LoadImaged`` with MONAI's ``PILReader`` (colour images converted to grey:
    RGB, RGBA, grey + alpha and palette images become 8-bit luma ``L = 0.299 R + 0.587 G + 0.114 B``, the alpha
    channel is dropped; 16-bit grey images stay 16-bit; ``reverse_indexing=False`` so arrays stay in display order
    ``(H, W)``, like volume slices) → ``EnsureChannelFirstd`` → :class:`ValidateVolumed` (2D; values above
    ``max_value``, e.g. a 16-bit PNG with the default 255, are refused rather than clipped) →
    ``ScaleIntensityRanged`` (``[0, max_value]`` to ``[0, 1]``) → ``Resized``/``ResizeWithPadOrCropd`` →
    ``EnsureTyped``. PNG slices are not filtered by brain fraction: the folders already hold a curated selection.

    Args:
        image_size: output slice size, an int (square) or ``(H, W)``.
        image_key: key holding the file path, then the image.
        max_value: intensity mapped to 1 (255 for 8-bit PNGs, 65535 for 16-bit PNGs).
        resize_mode: ``"longest"`` or ``"pad"``, as in :func:`volume_transforms`.
        max_voxels: images declaring more pixels are refused before their data is read, see
            :func:`check_image_file`.

    Returns:
        a MONAI ``Compose``; called on a file it raises :class:`InvalidImageError` naming the file for any problem.

    Raises:
        ValueError: bad arguments.
    """
    size = _image_size(image_size)
    if not max_value > 0 or not math.isfinite(max_value):
        raise ValueError(f"`max_value` must be a positive number, got {max_value}.")
    return _FileChain(
        [
            CheckImageFiled(image_key, max_voxels=max_voxels),
            LoadImaged(
                image_key,
                reader=PILReader(converter=_to_grayscale, reverse_indexing=False),
                image_only=True,
                dtype=np.float32,
            ),
            EnsureChannelFirstd(image_key),
            ValidateVolumed(image_key, spatial_dims=2, allow_constant=True, max_value=max_value),
            ScaleIntensityRanged(image_key, a_min=0.0, a_max=float(max_value), b_min=0.0, b_max=1.0, clip=True),
            *_slice_tail(image_key, size, resize_mode),
        ],
        path_key=image_key,
    )
