"""Inferers: slice-wise volume reconstruction, hierarchical sampling from the priors, writing samples and banks of
synthetic slices."""

from __future__ import annotations

from monai_vqvae2.inferers.bank import generate_bank, model_digest
from monai_vqvae2.inferers.preview import SaveAxialPreviewd
from monai_vqvae2.inferers.sampler import HierarchicalSampler, SampleOutput
from monai_vqvae2.inferers.slices import AxialSliceInferer
from monai_vqvae2.inferers.writer import (
    load_sampler,
    prior_checkpoints,
    read_slice_nifti,
    sample_to_folder,
    slice_affine,
    write_samples,
)

__all__ = [
    "AxialSliceInferer",
    "HierarchicalSampler",
    "SampleOutput",
    "SaveAxialPreviewd",
    "generate_bank",
    "load_sampler",
    "model_digest",
    "prior_checkpoints",
    "read_slice_nifti",
    "sample_to_folder",
    "slice_affine",
    "write_samples",
]
