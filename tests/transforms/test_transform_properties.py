"""Property test of the volume chain on arbitrary NIfTI files: a clear error or well-formed slices, nothing else.

Random shapes (1-sized axes, 2D and 4D where 3D is expected), voxel types and values (all-zero, constant, NaN/Inf
sprinkled, huge and tiny magnitudes, a bright block on a dark background; and, in a second test, arbitrary values
element by element) are written as real NIfTI files and run through ``volume_transforms(image_size=16)``. The only exception allowed is ``InvalidImageError`` naming the file;
every slice produced is a finite float32 ``(1, 16, 16)`` tensor in ``[0, 1]`` with ``slice_position`` in ``[0, 1]``.
"""

from __future__ import annotations

import gzip
import struct
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from monai_vqvae2.transforms import volume_transforms
from monai_vqvae2.transforms.errors import InvalidImageError

DTYPES = ("uint8", "int16", "int32", "float32", "float64", "bool")
VALUES = ("zeros", "constant", "random", "nonfinite", "huge", "tiny", "block", "block")  # block: usable volumes
AFFINES = {
    "RAS": np.eye(4),
    "LPS": np.diag([-1.0, -1.0, 1.0, 1.0]),
    "PIR": np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]),
}
CHAIN = volume_transforms(image_size=16)

shapes = st.one_of(
    st.tuples(st.integers(2, 7), st.integers(2, 7), st.integers(2, 7)),  # 3D
    st.tuples(st.integers(2, 6), st.integers(2, 6), st.integers(2, 6), st.just(1)),  # OASIS-like (X, Y, Z, 1)
    st.lists(st.integers(1, 7), min_size=3, max_size=3).map(tuple),  # 1-sized axes: a 2D image stored as 3D
    st.lists(st.integers(1, 9), min_size=2, max_size=2).map(tuple),  # 2D where 3D is expected
    st.tuples(st.integers(2, 5), st.integers(2, 5), st.integers(2, 5), st.just(2)),  # two frames
)


def _values(kind: str, shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    """An array of ``dtype`` whose values follow ``kind`` (integer types cannot hold NaN/Inf: random values)."""
    if dtype == np.bool_:
        return rng.random(shape) > 0.5
    floating = np.issubdtype(dtype, np.floating)
    top = float(np.finfo(dtype).max if floating else np.iinfo(dtype).max)
    bottom = float(np.finfo(dtype).min if floating else np.iinfo(dtype).min)
    if kind == "zeros":
        values = np.zeros(shape)
    elif kind == "constant":
        values = np.full(shape, rng.choice([-7.0, 1.0, 42.0, min(top, 1e6)]))
    elif kind == "huge":
        values = (
            rng.uniform(bottom / 2, top / 2, shape) if floating else rng.integers(bottom, top, shape, endpoint=True)
        )
        values.flat[: max(1, values.size // 3)] = top  # the extremes themselves
    elif kind == "tiny" and floating:
        values = rng.integers(0, 4, shape) * float(np.finfo(dtype).smallest_subnormal)
    elif kind == "block":
        values = np.zeros(shape)
        inner = tuple(slice(n // 4, max(n // 4 + 1, n - n // 4)) for n in shape)
        values[inner] = rng.uniform(10, 100, values[inner].shape)
    else:  # "random", "nonfinite", and "tiny" for integer types
        values = rng.normal(50, 20, shape)
    if kind == "nonfinite" and floating:
        values.flat[rng.integers(0, values.size, max(1, values.size // 10))] = rng.choice([np.nan, np.inf, -np.inf])
    if not floating:
        values = np.clip(np.round(values), bottom, top)
    return values.astype(dtype)


def _write(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Write NIfTI-1. nibabel cannot write bool: it is stored as uint8 with the header's DT_BINARY datatype code,
    which is what a "bool" NIfTI file is."""
    image = nib.Nifti1Image(data.astype(np.uint8) if data.dtype == np.bool_ else data, affine)
    raw = bytearray(image.to_bytes())
    if data.dtype == np.bool_:
        struct.pack_into("<2h", raw, 70, 1, 1)  # datatype DT_BINARY, bitpix 1
    path.write_bytes(gzip.compress(bytes(raw), compresslevel=1) if path.name.endswith(".gz") else bytes(raw))


def _slices_or_clear_error(data: np.ndarray, affine: np.ndarray, compressed: bool) -> None:
    """Write ``data``, run the chain, check the outcome: an ``InvalidImageError`` naming the file, or good slices."""
    with tempfile.TemporaryDirectory() as folder:  # one folder per example (pytest's tmp_path is per test)
        path = Path(folder) / ("volume.nii.gz" if compressed else "volume.nii")
        _write(path, data, affine)
        try:
            slices = CHAIN({"image": str(path)})
        except InvalidImageError as error:
            assert str(error).startswith(f"{path}: "), error
            event(f"refused: {' '.join(error.problem.split()[:3])}")
            return
    event(f"accepted: {len(slices)} slice(s)")
    assert data.dtype != np.bool_ and data.ndim >= 3
    assert isinstance(slices, list)
    for item in slices:
        image = item["image"]
        assert type(image) is torch.Tensor and image.dtype == torch.float32 and image.shape == (1, 16, 16)
        assert bool(torch.isfinite(image).all())
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0, (float(image.min()), float(image.max()))
        assert 0.0 <= item["slice_position"] <= 1.0
        assert item["source"] == str(path)


@settings(max_examples=30, deadline=None)
@given(
    shape=shapes,
    dtype=st.sampled_from(DTYPES),
    kind=st.sampled_from(VALUES),
    orientation=st.sampled_from(sorted(AFFINES)),
    compressed=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # float64 beyond float32, on loading
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_volume_chain_on_typical_and_degenerate_volumes(shape, dtype, kind, orientation, compressed, seed):
    data = _values(kind, shape, np.dtype(dtype), np.random.default_rng(seed))
    _slices_or_clear_error(data, AFFINES[orientation], compressed)


@settings(max_examples=30, deadline=None)
@given(
    data=st.sampled_from(DTYPES[:-1]).flatmap(
        lambda dtype: arrays(dtype, array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=6))
    ),
    orientation=st.sampled_from(sorted(AFFINES)),
)
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_volume_chain_on_arbitrary_voxel_values(data, orientation):
    """Any value a voxel type can hold, element by element (subnormals, extremes, NaN, signed zeros, ...)."""
    _slices_or_clear_error(data, AFFINES[orientation], compressed=False)


def test_interpolation_overshoot_is_clipped(tmp_path):
    """Bilinear upsampling of an all-ones 3 x 2 slice gives 1.0000001 (rounding of the weights): it is clipped."""
    volume = np.zeros((10, 10, 10), np.float32)
    volume[4:6, 4:7, 3:7] = 100.0  # cropped (margin 0): 2 x 3 x 4 voxels, all bright; 3 x 2 slices in display order
    path = tmp_path / "block.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(path))
    slices = volume_transforms(16, crop_margin=0)({"image": str(path)})
    assert len(slices) == 4
    assert all(float(s["image"].max()) == 1.0 for s in slices)
