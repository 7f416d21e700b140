"""Networks: the hierarchical VQ-VAE-2, its codebook quantizer, export views, the PixelCNN priors and the vocabulary
the stages share about them (:func:`unwrap`, :func:`level_names`)."""

from __future__ import annotations

from monai_vqvae2.networks.factory import init_prior_embeddings, prior_for_level
from monai_vqvae2.networks.pixelcnn import PixelCNNPrior
from monai_vqvae2.networks.pixelcnn_incremental import PixelCNNIncrementalState, PixelCNNVolumeIncrementalState
from monai_vqvae2.networks.quantizer import RestartEMAQuantizer, kmeans, perplexity
from monai_vqvae2.networks.vocabulary import level_names, unwrap
from monai_vqvae2.networks.vqvae2 import VQVAE2, VQVAE2Encoding
from monai_vqvae2.networks.wrappers import VQVAE2Reconstructor

__all__ = [
    "VQVAE2",
    "PixelCNNIncrementalState",
    "PixelCNNPrior",
    "PixelCNNVolumeIncrementalState",
    "RestartEMAQuantizer",
    "VQVAE2Encoding",
    "VQVAE2Reconstructor",
    "init_prior_embeddings",
    "kmeans",
    "level_names",
    "perplexity",
    "prior_for_level",
    "unwrap",
]
