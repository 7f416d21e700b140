"""Builders of small images and networks for the quality report's tests: smooth random textures, flat square
'brains' of known intensity, and an untrained tiny VQ-VAE-2."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from monai_vqvae2.networks import VQVAE2

SIZE = 32


def tiny_vqvae() -> VQVAE2:
    torch.manual_seed(0)
    return VQVAE2(
        spatial_dims=2,
        in_channels=1,
        out_channels=1,
        channels=8,
        num_res_channels=4,
        num_embeddings=16,
        embedding_dim=4,
    )


def textures(count: int, seed: int) -> torch.Tensor:
    """Distinct smooth random textures in [0, 1], ``(count, 1, SIZE, SIZE)``."""
    noise = torch.rand(count, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
    smooth = F.avg_pool2d(noise, 3, stride=1, padding=1, count_include_pad=False)
    low, high = smooth.amin(dim=(1, 2, 3), keepdim=True), smooth.amax(dim=(1, 2, 3), keepdim=True)
    return (smooth - low) / (high - low)


def flat_brains(values: list[float], sizes: list[int] | None = None) -> torch.Tensor:
    """``(len(values), 1, SIZE, SIZE)``: a centred square 'brain' of one intensity each (side ``sizes[i]``, default
    16) on a black background."""
    images = torch.zeros(len(values), 1, SIZE, SIZE)
    for index, value in enumerate(values):
        side = 16 if sizes is None else sizes[index]
        start = (SIZE - side) // 2
        images[index, 0, start : start + side, start : start + side] = value
    return images
