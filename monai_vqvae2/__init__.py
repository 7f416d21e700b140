"""monai-vqvae2: hierarchical VQ-VAE-2 and PixelCNN priors for brain MRI, built on MONAI."""

from __future__ import annotations

from importlib import metadata

from monai_vqvae2.bundle import bundle_path

__all__ = ["__version__", "bundle_path"]

try:
    # the one version, from pyproject.toml via the installed metadata (tests check that metadata.json agrees)
    __version__ = metadata.version("monai-vqvae2")
except metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
