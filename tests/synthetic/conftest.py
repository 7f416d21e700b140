"""Fixtures of the synthetic-slice tests: the tiny sampler (one per test module) and ten real slices to mix with."""

from __future__ import annotations

import pytest

from monai_vqvae2.data import SliceDataset, make_slice_dataset
from monai_vqvae2.inferers import HierarchicalSampler
from tests.data.conftest import known_volume, write_nifti
from tests.tiny import tiny_sampler


@pytest.fixture(scope="module")
def sampler() -> HierarchicalSampler:
    return tiny_sampler()


@pytest.fixture
def real_slices(tmp_path) -> SliceDataset:
    """Ten 32 x 32 real slices of one volume, with a clinical key synthetic items do not have."""
    volume = write_nifti(tmp_path / "sub01.nii.gz", known_volume())
    return make_slice_dataset([{"image": str(volume), "age": 71}], image_size=32)
