"""monai-vqvae2: hierarchical VQ-VAE-2 and PixelCNN priors for brain MRI, built on MONAI."""

from __future__ import annotations

__version__ = "0.1.0"
