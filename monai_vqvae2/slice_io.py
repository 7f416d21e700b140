"""Axial slices on disk and on screen: the display orientation, NIfTI slice files and PNG grids of slices.

MONAI's ``Orientationd("RAS")`` lays an axial slice out as ``(X, Y)``: the first index grows towards the patient's
right (``X = R``), the second towards anterior (``Y = A``). Every slice the package trains on, generates or shows is
in *display order* instead: a quarter turn of that layout, with row 0 anterior and column 0 the patient's left
(anterior up, neurological convention). :func:`to_display` and :func:`from_display` are that quarter turn and its
inverse, and :data:`DISPLAY_ROT90_K` is the same turn for MONAI's ``Rotate90d``; every conversion of the package goes
through them. Generated slices are stored as ``(X, Y, 1)`` RAS NIfTI files (:func:`nifti_slice_bytes`,
:func:`read_slice_nifti`) and shown as PNG grids (:func:`write_grid_png`); a whole volume is shown by its axial,
coronal and sagittal mid-slices (:func:`orthogonal_views`).
"""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path
from typing import TypeVar

import nibabel as nib
import numpy as np
import torch
from PIL import Image

from monai_vqvae2.io import atomic_write

__all__ = [
    "DISPLAY_ROT90_K",
    "LABEL_COLOURS",
    "from_display",
    "label_overlay",
    "nifti_slice_bytes",
    "orthogonal_views",
    "read_slice_nifti",
    "slice_affine",
    "slice_pictures",
    "to_display",
    "write_grid_png",
]

# quarter turns (counter-clockwise, first spatial axis towards the second) from the RAS ``(X, Y)`` layout of an axial
# slice to display order; MONAI's ``Rotate90d(k=DISPLAY_ROT90_K, spatial_axes=(0, 1))`` makes the same turn
DISPLAY_ROT90_K = 1

Slices = TypeVar("Slices", torch.Tensor, np.ndarray)

#: RGB colour of each tissue class in label overlays (background, CSF, grey matter, white matter); further classes
#: cycle through the three tissue colours
LABEL_COLOURS = ((0, 0, 0), (40, 120, 255), (255, 140, 0), (60, 220, 90))


def _rot90(slices: Slices, k: int) -> Slices:
    """``slices`` turned ``k`` quarter turns on its last two dimensions (a view for NumPy arrays)."""
    if isinstance(slices, torch.Tensor):
        return torch.rot90(slices, k=k, dims=(-2, -1))
    return np.rot90(slices, k=k, axes=(-2, -1))


def to_display(slices: Slices) -> Slices:
    """Turn axial slices from MONAI's RAS ``(X, Y)`` layout to display order (anterior up, patient's left on the
    left), on the last two dimensions.

    Args:
        slices: a tensor or array ``(..., X, Y)``.

    Returns:
        the slices ``(..., Y, X)`` in display order: a new tensor for a tensor, a view for a NumPy array.

    Raises:
        RuntimeError: a tensor with fewer than two dimensions.
        ValueError: an array with fewer than two dimensions.
    """
    return _rot90(slices, DISPLAY_ROT90_K)


def from_display(slices: Slices) -> Slices:
    """Turn axial slices from display order back to MONAI's RAS ``(X, Y)`` layout: the inverse of
    :func:`to_display`, on the last two dimensions.

    Args:
        slices: a tensor or array ``(..., H, W)`` in display order.

    Returns:
        the slices ``(..., W, H)`` as ``(X, Y)``: a new tensor for a tensor, a view for a NumPy array.

    Raises:
        RuntimeError: a tensor with fewer than two dimensions.
        ValueError: an array with fewer than two dimensions.
    """
    return _rot90(slices, -DISPLAY_ROT90_K)


def orthogonal_views(volume: np.ndarray) -> np.ndarray:
    """The axial, coronal and sagittal mid-slices of a RAS volume ``(X, Y, Z)`` side by side, each on a square of the
    volume's largest size (zero padded, centred).

    Orientation: axial as every slice of the package (anterior up, the patient's left on the left,
    :func:`to_display`), coronal superior up with the patient's left on the left, sagittal
    superior up with anterior on the left.

    Args:
        volume: ``(X, Y, Z)`` in RAS.

    Returns:
        ``(N, 3 N)`` with ``N = max(X, Y, Z)``.
    """
    x, y, z = (size // 2 for size in volume.shape)
    views = [
        to_display(volume[:, :, z]),
        volume[:, y, :].T[::-1],  # rows: superior first; columns: X, left to right
        volume[x, :, :].T[::-1, ::-1],  # rows: superior first; columns: anterior first
    ]
    side = max(volume.shape)
    canvas = np.zeros((side, 3 * side), dtype=np.float32)
    for index, view in enumerate(views):
        top, left = (side - view.shape[0]) // 2, index * side + (side - view.shape[1]) // 2
        canvas[top : top + view.shape[0], left : left + view.shape[1]] = view
    return canvas


def slice_affine(height: int, width: int, spacing: float = 1.0, position_mm: float = 0.0) -> np.ndarray:
    """RAS affine of a generated axial slice stored as ``(X, Y, 1)``: ``spacing`` mm pixels, centred on the origin,
    at height ``position_mm`` on the inferior-superior axis.

    Args:
        height: rows of the slice in display order.
        width: columns of the slice in display order.
        spacing: pixel size in mm.
        position_mm: position of the slice on the inferior-superior axis, in mm.

    Returns:
        the ``(4, 4)`` affine.
    """
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = [-(width - 1) * spacing / 2, -(height - 1) * spacing / 2, position_mm]
    return affine


def _grid(images: np.ndarray, columns: int) -> np.ndarray:
    count, height, width = images.shape
    rows = math.ceil(count / columns)
    grid = np.zeros((rows * height, columns * width), dtype=images.dtype)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid[row * height : (row + 1) * height, column * width : (column + 1) * width] = image
    return grid


def slice_pictures(images: torch.Tensor) -> np.ndarray:
    """``(B, 1, H, W)`` images to float32 ``(B, H, W)`` pictures clamped to [0, 1], on the CPU.

    Args:
        images: generated slices, display order (anterior up).

    Returns:
        the pictures, as :func:`nifti_slice_bytes` and :func:`write_grid_png` take them.
    """
    return images[:, 0].detach().float().cpu().clamp(0, 1).numpy()


def nifti_slice_bytes(picture: np.ndarray, spacing: float = 1.0) -> bytes:
    """A picture ``(H, W)`` in display order (anterior up) as gzipped NIfTI bytes, ``(X, Y, 1)`` in RAS with
    :func:`slice_affine`. The gzip header carries no time stamp, so equal pictures give byte-identical files.

    Args:
        picture: one picture of :func:`slice_pictures` (stored as float32), or an integer class map (stored as
            uint8, classes 0..255).
        spacing: pixel size in mm written in the affine.

    Returns:
        the bytes of a ``.nii.gz`` file (read back by :func:`read_slice_nifti`).
    """
    # display order back to (X=R, Y=A); class maps stay integers
    volume = from_display(picture)[:, :, None]
    volume = volume.astype(np.uint8 if np.issubdtype(picture.dtype, np.integer) else np.float32)
    image = nib.Nifti1Image(volume, slice_affine(*picture.shape, spacing=spacing))
    return gzip.compress(image.to_bytes(), mtime=0)


def read_slice_nifti(path: str | os.PathLike) -> np.ndarray:
    """Read a slice written by :func:`~monai_vqvae2.inferers.write_samples` or a bank back into display order: the
    inverse of the writers.

    Args:
        path: an ``(X, Y, 1)`` NIfTI file.

    Returns:
        the picture ``(H, W)``, float32, anterior up.

    Raises:
        ValueError: the file does not hold one ``(X, Y, 1)`` slice.
    """
    volume = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
    if volume.ndim != 3 or volume.shape[2] != 1:
        raise ValueError(f"{path} must hold one slice of shape (X, Y, 1), got {volume.shape}.")
    return np.ascontiguousarray(to_display(volume[:, :, 0]))  # (X=R, Y=A) back to display order


def label_overlay(
    picture: np.ndarray | torch.Tensor, label: np.ndarray | torch.Tensor, alpha: float = 0.45
) -> np.ndarray:
    """A grey picture with its class map blended over it in :data:`LABEL_COLOURS` (background left grey).

    Args:
        picture: ``(H, W)`` in [0, 1].
        label: ``(H, W)`` class indices, aligned with ``picture``.
        alpha: opacity of the colours.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    picture = np.clip(np.asarray(picture, dtype=np.float32), 0, 1)
    label = np.asarray(label).astype(np.int64)
    if picture.shape != label.shape:
        raise ValueError(f"`picture` {picture.shape} and `label` {label.shape} must have the same shape.")
    palette = np.asarray(
        [LABEL_COLOURS[0]] + [LABEL_COLOURS[1 + (c - 1) % 3] for c in range(1, max(label.max(), 0) + 1)]
    )
    grey = np.repeat(picture[..., None] * 255, 3, axis=-1)
    colour = palette[np.clip(label, 0, None)].astype(np.float32)
    blend = np.where((label > 0)[..., None], (1 - alpha) * grey + alpha * colour, grey)
    return blend.round().astype(np.uint8)


def write_grid_png(path: Path, pictures: np.ndarray, labels: np.ndarray | None = None) -> Path:
    """Pictures ``(B, H, W)`` in [0, 1] side by side in a near-square 8-bit grid, written atomically. With ``labels``
    each cell is a pair: the picture, and beside it the picture with its label map overlaid (:func:`label_overlay`).

    Args:
        path: the PNG file to write.
        pictures: the pictures of :func:`slice_pictures`, in order, row by row.
        labels: optional class maps ``(B, H, W)`` aligned with ``pictures``.

    Returns:
        ``path``.
    """
    columns = max(1, math.ceil(math.sqrt(len(pictures))))
    if labels is None:
        grid = (_grid(pictures, columns) * 255).round().astype(np.uint8)
    else:
        if len(labels) != len(pictures):
            raise ValueError(f"{len(labels)} label maps for {len(pictures)} pictures; give one per picture.")
        grey = (np.asarray(pictures) * 255).round().astype(np.uint8)
        cells = [
            np.concatenate([np.repeat(image[..., None], 3, axis=-1), label_overlay(picture, label)], axis=1)
            for image, picture, label in zip(grey, pictures, labels)
        ]
        grid = np.stack([_grid(np.stack(cells)[..., channel], columns) for channel in range(3)], axis=-1)
    return atomic_write(path, lambda temporary: Image.fromarray(grid).save(temporary, "PNG"))
