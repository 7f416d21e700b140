"""File checks made before decoding: existence, permissions, Analyze ``.hdr``/``.img`` pairs and their sizes,
truncated ``.nii``, NIfTI/Analyze header dims and voxel types, PNG verification and the ``max_voxels`` limit.

Every problem is an :class:`~monai_vqvae2.transforms.errors.InvalidImageError` that names the file, so that a
corrupt or hostile header cannot make a reader allocate gigabytes or fail with a bare decoding traceback.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.openers import ImageOpener
from PIL import Image as PILImage

from monai_vqvae2.transforms.errors import PERMISSION_PROBLEM, InvalidImageError

__all__ = ["MAX_VOXELS", "RAS_LABELS", "check_axcodes", "check_image_file", "check_max_voxels", "is_analyze_path"]

#: Default limit on the voxels a file may declare (512 x 512 x 512 = 134 million): 0.5 GiB as float32, a few GiB
#: at the peak of the chain, which holds several copies. OASIS volumes have 176 x 208 x 176 = 6.4 million voxels and
#: 0.5 mm whole-head scans about 100 million, so only corrupt or hostile headers come near it.
MAX_VOXELS = 512**3
_ANALYZE_HEADER_BYTES = 348
#: NIfTI-1 / Analyze 7.5 datatype codes nibabel cannot read, for clearer messages.
_UNSUPPORTED_DATATYPES = {1: "DT_BINARY, one bit per voxel"}


def is_analyze_path(path: str | os.PathLike) -> bool:
    """True for an Analyze 7.5 (or NIfTI-pair) ``.hdr``/``.img`` file name."""
    return str(path).lower().endswith((".hdr", ".img", ".hdr.gz", ".img.gz"))


#: the two ends of each RAS world axis (as ``Orientationd``'s ``labels``): left to right, posterior to anterior,
#: inferior to superior
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


def check_axcodes(axcodes: str) -> str:
    """``axcodes`` in upper case, checked to be three axis codes, one of L/R, P/A and I/S each (``ValueError``
    otherwise)."""
    codes = str(axcodes).upper()
    axes = [next((i for i, pair in enumerate(RAS_LABELS) if c in pair), None) for c in codes]
    if len(codes) != 3 or None in axes or len(set(axes)) != 3:
        raise ValueError(f"`axcodes` must be three codes, one of L/R, P/A and I/S each (e.g. 'LAS'), got {axcodes!r}.")
    return codes


def check_max_voxels(max_voxels: int) -> int:
    """``max_voxels`` as an int, checked to be positive (``ValueError`` otherwise)."""
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
    limit = check_max_voxels(max_voxels)
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
