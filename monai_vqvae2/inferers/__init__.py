"""Inferers: slice-wise volume reconstruction (and, later, hierarchical sampling from the priors)."""

from __future__ import annotations

from monai_vqvae2.inferers.preview import SaveAxialPreviewd
from monai_vqvae2.inferers.slices import AxialSliceInferer

__all__ = ["AxialSliceInferer", "SaveAxialPreviewd"]
