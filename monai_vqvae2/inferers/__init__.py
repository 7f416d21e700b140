"""Inferers: slice-wise volume reconstruction, code extraction for the priors, hierarchical sampling from the priors
(of slices or whole volumes) and writing samples.

Banks of synthetic slices (:func:`~monai_vqvae2.synthetic.generate_bank`) live in :mod:`monai_vqvae2.synthetic`,
above this package.
"""

from __future__ import annotations

from monai_vqvae2.inferers.codes import extract_codes
from monai_vqvae2.inferers.loading import load_sampler, prior_checkpoints
from monai_vqvae2.inferers.preview import SaveAxialPreviewd
from monai_vqvae2.inferers.sampler import HierarchicalSampler, SampleOutput
from monai_vqvae2.inferers.slices import AxialSliceInferer
from monai_vqvae2.inferers.volume_writer import (
    orthogonal_views,
    sample_volumes_to_folder,
    volume_affine,
    write_volume_samples,
)
from monai_vqvae2.inferers.writer import read_slice_nifti, sample_to_folder, slice_affine, write_samples
from monai_vqvae2.moved import moved_names

__all__ = [
    "AxialSliceInferer",
    "HierarchicalSampler",
    "SampleOutput",
    "SaveAxialPreviewd",
    "extract_codes",
    "load_sampler",
    "orthogonal_views",
    "prior_checkpoints",
    "read_slice_nifti",
    "sample_to_folder",
    "sample_volumes_to_folder",
    "slice_affine",
    "volume_affine",
    "write_samples",
    "write_volume_samples",
]

# names this package exported before they moved to monai_vqvae2.synthetic, above it: imported from there on first
# access, and left out of __all__, so that ``from monai_vqvae2.inferers import *`` never imports upward
__getattr__, __dir__ = moved_names(__name__, dict.fromkeys(("generate_bank", "model_digest"), "monai_vqvae2.synthetic"))
