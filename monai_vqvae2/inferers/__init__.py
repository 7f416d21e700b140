"""Inferers: slice-wise volume reconstruction, hierarchical sampling from the priors, and writing samples."""

from __future__ import annotations

from monai_vqvae2.inferers.preview import SaveAxialPreviewd
from monai_vqvae2.inferers.sampler import HierarchicalSampler, SampleOutput
from monai_vqvae2.inferers.slices import AxialSliceInferer
from monai_vqvae2.inferers.writer import (
    load_sampler,
    prior_checkpoints,
    sample_to_folder,
    slice_affine,
    write_samples,
)

__all__ = [
    "AxialSliceInferer",
    "HierarchicalSampler",
    "SampleOutput",
    "SaveAxialPreviewd",
    "load_sampler",
    "prior_checkpoints",
    "sample_to_folder",
    "slice_affine",
    "write_samples",
]
