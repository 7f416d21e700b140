"""The display orientation, NIfTI slice files and PNG grids of :mod:`monai_vqvae2.slice_io`, and the names' former
import paths."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import Rotate90d
from PIL import Image

import monai_vqvae2.inferers
import monai_vqvae2.inferers.writer
from monai_vqvae2 import slice_io
from monai_vqvae2.slice_io import (
    DISPLAY_ROT90_K,
    LABEL_COLOURS,
    from_display,
    label_overlay,
    nifti_slice_bytes,
    read_slice_nifti,
    slice_affine,
    slice_pictures,
    to_display,
    write_grid_png,
)

# an asymmetric RAS slice (X, Y) = (3, 2): value 10 * x + y, x = 0 on the patient's left, y = 1 anterior
RAS = np.array([[0, 1], [10, 11], [20, 21]], dtype=np.float32)
# the same slice in display order: row 0 anterior (y = 1), column 0 the patient's left (x = 0)
DISPLAY = np.array([[1, 11, 21], [0, 10, 20]], dtype=np.float32)


def test_to_display_puts_anterior_up_and_the_left_on_the_left():
    np.testing.assert_array_equal(to_display(RAS), DISPLAY)
    np.testing.assert_array_equal(from_display(DISPLAY), RAS)
    assert torch.equal(to_display(torch.from_numpy(RAS)), torch.from_numpy(DISPLAY))
    assert torch.equal(from_display(torch.from_numpy(DISPLAY)), torch.from_numpy(RAS))


@pytest.mark.parametrize("shape", [(5, 7), (2, 5, 7), (3, 2, 5, 7)])
def test_from_display_undoes_to_display_exactly(shape):
    generator = torch.Generator().manual_seed(0)
    tensor = torch.rand(shape, generator=generator)
    assert torch.equal(from_display(to_display(tensor)), tensor)
    assert torch.equal(to_display(from_display(tensor)), tensor)
    assert to_display(tensor).shape == (*shape[:-2], shape[-1], shape[-2])  # only the last two dimensions turn
    array = tensor.numpy()
    np.testing.assert_array_equal(from_display(to_display(array)), array)
    np.testing.assert_array_equal(to_display(array), to_display(tensor).numpy())  # NumPy and torch agree


def test_rotate90d_constant_makes_the_same_turn_as_to_display():
    channel_first = torch.from_numpy(RAS)[None]  # (1, X, Y), as the slice pipeline holds a slice
    turned = Rotate90d("image", k=DISPLAY_ROT90_K, spatial_axes=(0, 1))({"image": channel_first})["image"]
    assert torch.equal(torch.as_tensor(turned), to_display(channel_first))
    np.testing.assert_array_equal(np.asarray(turned)[0], DISPLAY)


def test_nifti_slice_round_trip_keeps_the_picture_and_has_the_ras_affine(tmp_path):
    picture = np.random.default_rng(0).random((6, 4), dtype=np.float32)  # (H, W) in display order
    path = tmp_path / "slice.nii.gz"
    path.write_bytes(nifti_slice_bytes(picture, spacing=0.5))
    back = read_slice_nifti(path)
    assert back.dtype == np.float32 and back.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(back, picture)
    image = nib.load(path)
    assert image.shape == (4, 6, 1)  # (X, Y, 1): width along X, height along Y
    np.testing.assert_array_equal(np.asarray(image.dataobj)[:, :, 0], from_display(picture))
    expected = np.array(
        [[0.5, 0, 0, -0.75], [0, 0.5, 0, -1.25], [0, 0, 0.5, 0], [0, 0, 0, 1]]  # centred: -(4-1)*0.5/2, -(6-1)*0.5/2
    )
    np.testing.assert_array_equal(image.affine, expected)
    np.testing.assert_array_equal(slice_affine(6, 4, spacing=0.5), expected)
    assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
    assert nifti_slice_bytes(picture, spacing=0.5) == path.read_bytes()  # no time stamp: byte-identical


def test_slice_affine_places_the_slice_on_the_inferior_superior_axis():
    np.testing.assert_array_equal(slice_affine(3, 5, spacing=2.0, position_mm=7.5)[:3, 3], [-4.0, -2.0, 7.5])


def test_read_slice_nifti_refuses_more_than_one_slice(tmp_path):
    path = tmp_path / "volume.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 6, 2), dtype=np.float32), np.eye(4)), path)
    with pytest.raises(ValueError, match=r"must hold one slice of shape \(X, Y, 1\), got \(4, 6, 2\)"):
        read_slice_nifti(path)


def test_slice_pictures_and_grid_png(tmp_path):
    images = torch.stack([torch.full((1, 2, 3), value) for value in (-1.0, 0.0, 0.5, 1.0, 2.0)])  # (5, 1, 2, 3)
    pictures = slice_pictures(images)
    assert pictures.shape == (5, 2, 3) and pictures.dtype == np.float32
    np.testing.assert_array_equal(pictures[:, 0, 0], [0.0, 0.0, 0.5, 1.0, 1.0])  # clamped to [0, 1]
    path = write_grid_png(tmp_path / "grid.png", pictures)
    grid = np.asarray(Image.open(path))
    assert grid.shape == (2 * 2, 3 * 3) and grid.dtype == np.uint8  # 5 pictures: 3 columns, 2 rows
    assert grid[0, 0] == 0 and grid[0, 3] == 0 and grid[0, 6] == 128 and grid[2, 0] == 255 and grid[2, 3] == 255
    assert (grid[2:, 6:] == 0).all()  # the empty cell stays black


def test_the_old_import_paths_give_the_new_objects():
    for name in ("nifti_slice_bytes", "read_slice_nifti", "slice_affine", "slice_pictures", "write_grid_png"):
        assert getattr(monai_vqvae2.inferers.writer, name) is getattr(slice_io, name), name
        assert name in monai_vqvae2.inferers.writer.__all__, name
    assert monai_vqvae2.inferers.read_slice_nifti is read_slice_nifti
    assert monai_vqvae2.inferers.slice_affine is slice_affine


def test_label_overlay_colours_each_class_and_leaves_the_background_grey():
    picture = np.full((2, 3), 0.5, dtype=np.float32)
    label = np.array([[0, 1, 2], [3, 0, 1]])
    overlay = label_overlay(picture, label, alpha=0.5)
    assert overlay.shape == (2, 3, 3) and overlay.dtype == np.uint8
    np.testing.assert_array_equal(overlay[0, 0], [128, 128, 128])
    for row, column in ((0, 1), (0, 2), (1, 0)):
        expected = np.round(0.5 * 127.5 + 0.5 * np.array(LABEL_COLOURS[label[row, column]]))
        np.testing.assert_array_equal(overlay[row, column], expected)
    with pytest.raises(ValueError, match=r"`picture` \(2, 3\) and `label` \(3, 2\) must have the same shape"):
        label_overlay(picture, label.T)


def test_class_maps_are_stored_as_uint8_slices_and_read_back_exactly(tmp_path):
    label = np.array([[0, 1, 2, 3], [3, 2, 1, 0], [1, 1, 1, 1]], dtype=np.uint8)
    path = tmp_path / "label.nii.gz"
    path.write_bytes(nifti_slice_bytes(label))
    assert nib.load(path).get_data_dtype() == np.uint8
    np.testing.assert_array_equal(read_slice_nifti(path), label)
