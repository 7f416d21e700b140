"""SlicePreprocessing: one frozen value with the package's one set of defaults, read by every chain and dataset."""

from __future__ import annotations

import dataclasses
import inspect
import json

import numpy as np
import pytest
import torch

import monai_vqvae2.data
import monai_vqvae2.transforms
from monai_vqvae2.data import SplitSliceDatasets, make_slice_dataset
from monai_vqvae2.transforms import (
    MAX_VOXELS,
    AssumeAnalyzeOrientationd,
    ExtractAxialSlicesd,
    SlicePreprocessing,
    as_preprocessing,
    volume_transforms,
)
from tests.data.conftest import known_volume, write_nifti

FIELDS = [field.name for field in dataclasses.fields(SlicePreprocessing)]


def test_defaults_are_normalised_frozen_and_hashable():
    settings = SlicePreprocessing()
    assert FIELDS == [
        "image_size", "min_brain_fraction", "foreground_threshold", "percentiles", "pixdim", "crop_margin",
        "resize_mode", "analyze_axcodes", "png_max_value", "max_voxels",
    ]  # fmt: skip
    assert settings.to_dict() == {
        "image_size": [256, 256],
        "min_brain_fraction": 0.1,
        "foreground_threshold": 0.05,
        "percentiles": [0.5, 99.5],
        "pixdim": None,
        "crop_margin": 2,
        "resize_mode": "longest",
        "analyze_axcodes": "LAS",
        "png_max_value": 255.0,
        "max_voxels": MAX_VOXELS,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.image_size = (64, 64)
    same = SlicePreprocessing(image_size=[256, 256], percentiles=[0.5, 99.5], analyze_axcodes="las", crop_margin=2.0)
    assert same == settings and hash(same) == hash(settings) and same.digest() == settings.digest()
    assert same.image_size == (256, 256) and same.percentiles == (0.5, 99.5) and same.analyze_axcodes == "LAS"
    assert SlicePreprocessing(image_size=128).image_size == (128, 128)
    assert SlicePreprocessing(pixdim=[1, 1, 2]).pixdim == (1.0, 1.0, 2.0)
    assert len(settings.digest()) == 16 and SlicePreprocessing(crop_margin=3).digest() != settings.digest()
    assert json.loads(json.dumps(settings.to_dict())) == settings.to_dict()


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("image_size", 0, r"`image_size` must be a positive int or \(H, W\), got 0"),
        ("image_size", (8, 8, 8), r"`image_size` must be a positive int or \(H, W\), got \(8, 8, 8\)"),
        ("min_brain_fraction", 1.5, r"`min_brain_fraction` must be in \[0, 1\], got 1.5"),
        ("foreground_threshold", 1.0, r"`foreground_threshold` must be in \[0, 1\), got 1.0"),
        ("percentiles", (99, 1), r"`percentiles` must be \(lower, upper\) with 0 <= lower < upper <= 100"),
        ("pixdim", (1, 1), r"`pixdim` must be None or three positive voxel sizes in mm, got \(1.0, 1.0\)"),
        ("crop_margin", -1, r"`crop_margin` must be an int >= 0, got -1"),
        ("resize_mode", "stretch", r"`resize_mode` must be one of \('longest', 'pad'\), got 'stretch'"),
        ("analyze_axcodes", "LLS", r"`axcodes` must be three codes, one of L/R, P/A and I/S each"),
        ("png_max_value", float("inf"), r"`png_max_value` must be a positive number, got inf"),
        ("max_voxels", 0, r"`max_voxels` must be a positive int, got 0"),
    ],
)
def test_a_bad_value_names_its_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        SlicePreprocessing(**{field: value})


def test_as_preprocessing_takes_the_object_a_mapping_or_nothing_and_replaces_single_fields():
    base = SlicePreprocessing(image_size=64, crop_margin=0)
    assert as_preprocessing(base) is base
    assert as_preprocessing(base, min_brain_fraction=0.3) == SlicePreprocessing(64, 0.3, crop_margin=0)
    assert as_preprocessing(base, image_size=None) is base  # None: not given
    assert as_preprocessing({"image_size": 64, "crop_margin": 0}) == base
    assert as_preprocessing(None, image_size=64, crop_margin=0) == base
    with pytest.raises(
        TypeError, match=r"unknown preprocessing option\(s\) \['size'\]; the options are \['image_size'"
    ):
        as_preprocessing(base, size=64)
    with pytest.raises(
        TypeError, match="`preprocessing` must be a SlicePreprocessing, a mapping of its fields or None"
    ):
        as_preprocessing(64)


def issubclass_of_exception(member) -> bool:
    return inspect.isclass(member) and issubclass(member, BaseException)


def test_no_function_of_transforms_or_data_declares_another_default_for_a_preprocessing_option():
    """The options are declared once: every builder, transform and dataset either takes the settings object or has
    the settings' own default for a parameter of the same name."""
    defaults = SlicePreprocessing()
    checked = 0
    for package in (monai_vqvae2.transforms, monai_vqvae2.data):
        for name in package.__all__:
            member = getattr(package, name)
            if not (inspect.isfunction(member) or inspect.isclass(member)) or issubclass_of_exception(member):
                continue
            for parameter in inspect.signature(member).parameters.values():
                if parameter.name in FIELDS and parameter.default is not inspect.Parameter.empty:
                    checked += 1
                    assert parameter.default in (None, getattr(defaults, parameter.name)), (name, parameter.name)
    assert checked >= 4  # e.g. ExtractAxialSlicesd's min_brain_fraction and foreground_threshold
    assert ExtractAxialSlicesd("image").min_brain_fraction == defaults.min_brain_fraction
    assert AssumeAnalyzeOrientationd("image").axcodes == defaults.analyze_axcodes


def test_the_chain_and_the_dataset_use_the_settings_they_are_given(tmp_path):
    volume = write_nifti(tmp_path / "v.nii.gz", known_volume())
    settings = SlicePreprocessing(image_size=(24, 20), min_brain_fraction=0.2, resize_mode="pad", crop_margin=0)
    from_object = volume_transforms(preprocessing=settings)({"image": str(volume)})
    from_options = volume_transforms((24, 20), min_brain_fraction=0.2, resize_mode="pad", crop_margin=0)(
        {"image": str(volume)}
    )
    assert len(from_object) == len(from_options) > 0
    for left, right in zip(from_object, from_options):
        assert torch.equal(left["image"], right["image"]) and left["image"].shape == (1, 24, 20)

    dataset = make_slice_dataset([{"image": str(volume), "subject": "s"}], settings)
    assert dataset.preprocessing == settings and len(dataset) == len(from_object)
    np.testing.assert_array_equal(dataset[0]["image"].numpy(), from_object[0]["image"].numpy())
    assert make_slice_dataset([{"image": str(volume)}], settings, min_brain_fraction=0.9).preprocessing == (
        dataclasses.replace(settings, min_brain_fraction=0.9)
    )

    cache_dir = tmp_path / "cache"
    make_slice_dataset([{"image": str(volume)}], settings, cache="disk", cache_dir=cache_dir)
    assert [p.name for p in cache_dir.iterdir()] == [f"slices-2-{settings.digest()}"]


def test_split_slice_datasets_build_each_split_once_on_first_use(tmp_path):
    volume = write_nifti(tmp_path / "v.nii.gz", known_volume())
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a volume")  # a split nobody asks for is never decoded
    split = {"train": [{"image": str(volume), "subject": "a"}], "test": [{"image": str(broken), "subject": "b"}]}
    slices = SplitSliceDatasets(split, {"image_size": 16, "min_brain_fraction": 0.2})
    assert slices.preprocessing == SlicePreprocessing(image_size=16, min_brain_fraction=0.2)
    assert list(slices) == ["train", "test"] and len(slices) == 2
    train = slices["train"]
    assert slices["train"] is train and train.subjects == ["a"] and train[0]["image"].shape == (1, 16, 16)
    with pytest.raises(ValueError, match="broken.nii.gz"):
        slices["test"]
    with pytest.raises(KeyError, match=r"no split 'validation'; the splits are \['train', 'test'\]"):
        slices["validation"]
