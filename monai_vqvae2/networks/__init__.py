"""Networks: the hierarchical VQ-VAE-2, its codebook quantizer and export views."""

from __future__ import annotations

from monai_vqvae2.networks.quantizer import RestartEMAQuantizer, kmeans
from monai_vqvae2.networks.vqvae2 import VQVAE2, VQVAE2Encoding
from monai_vqvae2.networks.wrappers import VQVAE2Reconstructor

__all__ = ["VQVAE2", "VQVAE2Encoding", "VQVAE2Reconstructor", "RestartEMAQuantizer", "kmeans"]
