"""Slice transforms on volumes with known content: shapes, value ranges, kept slices, positions, orientation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from monai_vqvae2.transforms import (
    AssumeAnalyzeOrientationd,
    ExtractAxialSlicesd,
    png_slice_transforms,
    volume_transforms,
)

FULL = list(range(5, 15))  # z of the full slices of the known volume (see conftest.known_volume)
CROP_START, CROP_DEPTH = 1, 18  # z range of the cropped volume: 1..18


def _brain_box(image: torch.Tensor) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(image[0].numpy() > 0.5)
    return rows.min(), rows.max(), cols.min(), cols.max()


def _notch_corner(image: torch.Tensor) -> str:
    """Which corner of the brain rectangle is empty: 'top-left', 'top-right', ... or 'none'."""
    top, bottom, left, right = _brain_box(image)
    pixels = image[0].numpy()
    corners = {
        "top-left": (top, left),
        "top-right": (top, right),
        "bottom-left": (bottom, left),
        "bottom-right": (bottom, right),
    }
    empty = [name for name, (r, c) in corners.items() if pixels[r, c] < 0.5]
    return empty[0] if len(empty) == 1 else "none"


@pytest.mark.parametrize(
    "min_fraction, expected_z", [(0.1, FULL), (0.01, [3, 4, *FULL, 15, 16]), (0.0, [3, 4, *FULL, 15, 16])]
)
def test_kept_slices_and_positions(tmp_path, build, min_fraction, expected_z):
    path = build.write_nifti(tmp_path / "vol.nii.gz", build.known_volume())
    slices = volume_transforms(32, min_brain_fraction=min_fraction, resize_mode="pad")(
        {"image": str(path), "subject": "S1", "session": "S1_a", "age": 70.0}
    )
    assert [s["slice_index"] for s in slices] == expected_z
    assert [s["slice_position"] for s in slices] == pytest.approx(
        [(z - CROP_START) / (CROP_DEPTH - 1) for z in expected_z]
    )
    for s in slices:
        assert isinstance(s["image"], torch.Tensor) and not isinstance(s["image"], MetaTensor)
        assert s["image"].shape == (1, 32, 32) and s["image"].dtype == torch.float32
        assert float(s["image"].min()) == 0.0 and float(s["image"].max()) == 1.0
        assert (s["subject"], s["session"], s["age"], s["source"]) == ("S1", "S1_a", 70.0, str(path))
    full = [s for s in slices if s["slice_index"] in FULL and s["slice_index"] != build.NOTCH_SLICE]
    assert all(float(s["image"].sum()) == 12 * 16 for s in full)  # "pad" mode: pixels are the voxels


def test_display_orientation_nifti_and_analyze(tmp_path, build):
    """Anterior at the top, patient left on the image left, for RAS NIfTI, LPS NIfTI and OASIS-style Analyze."""
    ras = build.known_volume()
    nifti = build.write_nifti(tmp_path / "ras.nii.gz", ras)
    lps_affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    lps = build.write_nifti(tmp_path / "lps.nii.gz", np.ascontiguousarray(ras[::-1, ::-1]), lps_affine)
    analyze = build.write_analyze(tmp_path / "oasis_t88.hdr", ras)  # stored radiologically, (20, 24, 20, 1)
    chain = volume_transforms(32, min_brain_fraction=0.1, resize_mode="pad")
    results = [chain({"image": str(p)}) for p in (nifti, lps, analyze)]
    for slices in results:
        top = slices[-1]
        assert top["slice_index"] == build.NOTCH_SLICE and top["slice_position"] == pytest.approx(13 / 17)
        assert _notch_corner(top["image"]) == "top-left"
        bottom, right = _brain_box(top["image"])[1], _brain_box(top["image"])[3]
        assert (bottom - _brain_box(top["image"])[0] + 1, right - _brain_box(top["image"])[2] + 1) == (16, 12)
        assert all(_notch_corner(s["image"]) == "none" for s in slices[:-1])
    for other in results[1:]:
        assert all(torch.equal(a["image"], b["image"]) for a, b in zip(results[0], other))


def test_analyze_orientation_assumption_can_be_changed(tmp_path, build):
    analyze = build.write_analyze(tmp_path / "neuro.hdr", build.known_volume())
    slices = volume_transforms(32, min_brain_fraction=0.1, resize_mode="pad", analyze_axcodes="RAS")(
        {"image": str(analyze)}
    )
    assert _notch_corner(slices[-1]["image"]) == "top-right"  # told the storage is neurological: mirrored
    with pytest.raises(ValueError, match=r"`axcodes` must be three codes.* got 'LAX'"):
        AssumeAnalyzeOrientationd("image", axcodes="LAX")


def test_analyze_affine_is_rebuilt_from_axcodes(tmp_path, build):
    analyze = build.write_analyze(tmp_path / "a.hdr", build.known_volume())
    loaded = Compose([LoadImaged("image", reader="NibabelReader", image_only=True), EnsureChannelFirstd("image")])(
        {"image": str(analyze)}
    )
    assert loaded["image"].shape == (1, 20, 24, 20)
    out = AssumeAnalyzeOrientationd("image", axcodes="PIR")(loaded)["image"].affine.numpy()
    assert np.array_equal(np.sign(out[:3, :3]), np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]]))


def test_resize_longest_keeps_aspect_and_range(tmp_path, build):
    path = build.write_nifti(tmp_path / "vol.nii", build.known_volume())
    slices = volume_transforms((64, 48), min_brain_fraction=0.1)({"image": str(path)})
    assert len(slices) == 10
    for s in slices:
        assert s["image"].shape == (1, 64, 48)
        assert 0.0 <= float(s["image"].min()) and float(s["image"].max()) <= 1.0 + 1e-6
    top, bottom, left, right = _brain_box(slices[0]["image"])
    # cropped slice is 20 (rows) x 16 (cols), scaled by 64/20 = 3.2: brain 16 x 12 voxels -> about 51 x 38 pixels
    assert bottom - top + 1 == pytest.approx(51, abs=2) and right - left + 1 == pytest.approx(38, abs=2)


def test_percentile_normalisation(tmp_path, build):
    volume = build.known_volume()
    volume[4:16, 4:20, 5:15] = np.linspace(10, 1000, 12 * 16 * 10).reshape(12, 16, 10)
    path = build.write_nifti(tmp_path / "ramp.nii.gz", volume)
    slices = volume_transforms(32, min_brain_fraction=0.1, resize_mode="pad", percentiles=(0, 90))({"image": str(path)})
    values = torch.cat([s["image"].flatten() for s in slices])
    assert float(values.min()) == 0.0 and float(values.max()) == 1.0
    assert float((values == 1.0).float().sum()) > 0  # clipped above the 90th percentile


def test_spacing_option_resamples(tmp_path, build):
    path = build.write_nifti(tmp_path / "vol.nii.gz", build.known_volume())
    slices = volume_transforms(32, min_brain_fraction=0.1, pixdim=(1.0, 1.0, 2.0), resize_mode="pad")(
        {"image": str(path)}
    )
    assert len(slices) == 5  # 10 full 1 mm slices -> 5 slices of 2 mm
    assert all(s["image"].shape == (1, 32, 32) for s in slices)


def test_extract_axial_slices_standalone():
    image = torch.zeros((1, 6, 6, 5))
    image[:, 1:5, 1:5, 1:4] = 1.0
    label = (image > 0).float() * 2
    slices = ExtractAxialSlicesd(["image", "label"], min_brain_fraction=0.2, start_coord_key=None)(
        {"image": image, "label": label, "subject": "x"}
    )
    assert [s["slice_index"] for s in slices] == [1, 2, 3]
    assert [s["slice_position"] for s in slices] == [0.25, 0.5, 0.75]
    assert all(s["label"].shape == (1, 6, 6) and float(s["label"].max()) == 2.0 for s in slices)
    assert ExtractAxialSlicesd("image", min_brain_fraction=0.5)({"image": image}) == []
    lpi = MetaTensor(image, affine=torch.diag(torch.tensor([-1.0, -1.0, -1.0, 1.0])))
    with pytest.raises(ValueError, match=r"needs the last axis to point superior .* \('L', 'P', 'I'\)"):
        ExtractAxialSlicesd("image")({"image": lpi})
    with pytest.raises(ValueError, match=r"`min_brain_fraction` must be in \[0, 1\], got 1.5"):
        ExtractAxialSlicesd("image", min_brain_fraction=1.5)


def test_png_chain(tmp_path, build):
    pixels = np.zeros((16, 12), np.uint8)
    pixels[0, 0] = 255
    pixels[4:12, 2:10] = 128
    path = build.write_png(tmp_path / "case_001_slice_3.nii.png", pixels)
    out = png_slice_transforms(32)({"image": str(path), "slice_index": 3})
    assert out["image"].shape == (1, 32, 32) and out["image"].dtype == torch.float32
    assert out["source"] == str(path) and out["slice_index"] == 3
    same_size = png_slice_transforms((16, 12), resize_mode="pad")({"image": str(path)})["image"][0]
    assert float(same_size[0, 0]) == 1.0  # display order kept: row 0, column 0 is the top-left pixel
    assert float(same_size[8, 5]) == pytest.approx(128 / 255)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image_size": 0}, r"`image_size` must be a positive int or \(H, W\), got 0"),
        ({"percentiles": (99, 1)}, r"`percentiles` must be \(lower, upper\) with 0 <= lower < upper <= 100"),
        ({"resize_mode": "stretch"}, r"`resize_mode` must be one of \('longest', 'pad'\), got 'stretch'"),
        ({"crop_margin": -1}, r"`crop_margin` must be an int >= 0, got -1"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        volume_transforms(**kwargs)
