"""Label files beside images: the volume and PNG chains carry an aligned label of class indices, and refuse labels
with unknown values or on another grid, naming the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_vqvae2.transforms import PNG_TISSUE_VALUES, MapLabelValuesd, png_slice_transforms, volume_transforms
from monai_vqvae2.transforms.errors import InvalidImageError


def tissue_label(volume: np.ndarray) -> np.ndarray:
    """Classes 1..3 inside the brain of ``known_volume`` by x band (CSF, grey, white), 0 outside."""
    label = np.zeros(volume.shape, dtype=np.int16)
    brain = volume > 0
    x = np.arange(volume.shape[0])[:, None, None] * np.ones(volume.shape)
    label[brain & (x < 8)] = 1
    label[brain & (x >= 8) & (x < 12)] = 2
    label[brain & (x >= 12)] = 3
    return label


def test_volume_chain_carries_the_label_through_every_step_with_nearest_neighbours(tmp_path, build):
    volume = build.known_volume()
    image = build.write_analyze(tmp_path / "s1" / "image.hdr", volume)
    label = build.write_analyze(tmp_path / "s1" / "image_fseg.hdr", tissue_label(volume))
    chain = volume_transforms(32, crop_margin=2, min_brain_fraction=0.5, label_key="label")
    slices = chain({"image": str(image), "label": str(label)})
    plain = volume_transforms(32, crop_margin=2, min_brain_fraction=0.5)({"image": str(image)})
    assert len(slices) == len(plain) == len(build.FULL_SLICES)
    for item, reference in zip(slices, plain):
        assert torch.equal(item["image"], reference["image"])  # the label changes nothing of the image
        assert item["label"].dtype == torch.int64 and item["label"].shape == (1, 32, 32)
        assert set(item["label"].unique().tolist()) == {0, 1, 2, 3}
        assert item["label_source"] == str(label)
        # nearest neighbours: every labelled pixel lies on the image's brain, and the brain is labelled
        brain = item["image"] > 0.5
        assert bool((item["label"][brain] > 0).all())
        assert float((item["label"] > 0).float().mean()) == pytest.approx(float(brain.float().mean()), abs=0.02)
    # display order: column 0 is the patient's left (low x in RAS), so CSF (x < 8) is on the left of every row
    middle = slices[len(slices) // 2]["label"][0]
    row = middle[middle.shape[0] // 2]
    labelled = row[row > 0]
    assert labelled[0] == 1 and labelled[-1] == 3


def test_png_chain_maps_the_mask_grey_levels_to_classes(tmp_path, build):
    pixels = np.zeros((16, 16), dtype=np.uint8)
    pixels[4:12, 4:12] = 200
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[4:12, 4:8], mask[4:12, 8:10], mask[4:12, 10:12] = PNG_TISSUE_VALUES[1:]
    image = build.write_png(tmp_path / "case_001_slice_0.nii.png", pixels)
    label = build.write_png(tmp_path / "seg_001_slice_0.nii.png", mask)
    item = png_slice_transforms(32, label_key="label")({"image": str(image), "label": str(label)})
    assert item["label"].dtype == torch.int64 and item["label"].shape == (1, 32, 32)
    expected = torch.as_tensor(mask // 85, dtype=torch.int64).repeat_interleave(2, 0).repeat_interleave(2, 1)
    assert torch.equal(item["label"][0], expected)


def test_a_label_with_unknown_values_is_refused_naming_the_file(tmp_path, build):
    volume = build.known_volume()
    image = build.write_analyze(tmp_path / "image.hdr", volume)
    wrong = tissue_label(volume)
    wrong[wrong == 3] = 7
    label = build.write_analyze(tmp_path / "image_fseg.hdr", wrong)
    with pytest.raises(
        InvalidImageError, match=r"image_fseg\.hdr.*holds the value\(s\) 7, expected only \[0, 1, 2, 3\]"
    ):
        volume_transforms(32, label_key="label")({"image": str(image), "label": str(label)})


def test_a_label_on_another_grid_is_refused_naming_both_files(tmp_path, build):
    volume = build.known_volume()
    image = build.write_analyze(tmp_path / "image.hdr", volume)
    label = build.write_analyze(tmp_path / "small_fseg.hdr", tissue_label(volume)[:, :, :18])
    with pytest.raises(
        InvalidImageError, match=r"small_fseg\.hdr.*has shape \(20, 24, 18\), but its image .*image\.hdr"
    ):
        volume_transforms(32, label_key="label")({"image": str(image), "label": str(label)})
    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    nifti_image = build.write_nifti(tmp_path / "image.nii.gz", volume)
    nifti_label = build.write_nifti(tmp_path / "shifted.nii.gz", tissue_label(volume), affine=shifted)
    with pytest.raises(InvalidImageError, match=r"shifted\.nii\.gz.*another affine.*by up to 5 mm"):
        volume_transforms(32, label_key="label")({"image": str(nifti_image), "label": str(nifti_label)})


def test_a_missing_label_file_is_refused_naming_it(tmp_path, build):
    image = build.write_analyze(tmp_path / "image.hdr", build.known_volume())
    with pytest.raises(InvalidImageError, match="missing_fseg.hdr"):
        volume_transforms(32, label_key="label")({"image": str(image), "label": str(tmp_path / "missing_fseg.hdr")})


@pytest.mark.parametrize("values", [(), (0, 1, 1), (0, 0.5)])
def test_label_values_must_be_distinct_integers(values):
    with pytest.raises(ValueError, match="`values` must be distinct integers"):
        MapLabelValuesd("label", values=values)
