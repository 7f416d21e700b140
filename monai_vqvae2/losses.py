"""Reconstruction loss of the autoencoder stage."""

from __future__ import annotations

import torch
from monai.losses import SSIMLoss
from torch import nn

__all__ = ["ReconstructionLoss"]

RECONSTRUCTION_KINDS = ("mse", "l1")


class ReconstructionLoss(nn.Module):
    """Pixel loss (MSE or L1) plus an optional SSIM term: ``pixel + ssim_weight * (1 - SSIM)``.

    Args:
        kind: ``"mse"`` or ``"l1"``.
        ssim_weight: weight of MONAI's :class:`~monai.losses.SSIMLoss` (0 disables it).
        spatial_dims: spatial dimensions of the images (for the SSIM term).
        data_range: intensity range of the images (for the SSIM term).

    Raises:
        ValueError: unknown ``kind`` or negative ``ssim_weight``.
    """

    def __init__(self, kind: str = "mse", ssim_weight: float = 0.0, spatial_dims: int = 2, data_range: float = 1.0):
        super().__init__()
        if kind not in RECONSTRUCTION_KINDS:
            raise ValueError(f"`kind` must be one of {RECONSTRUCTION_KINDS}, got {kind!r}.")
        if ssim_weight < 0:
            raise ValueError(f"`ssim_weight` must be >= 0, got {ssim_weight}.")
        self.pixel_loss = nn.MSELoss() if kind == "mse" else nn.L1Loss()
        self.ssim_weight = ssim_weight
        self.ssim_loss = SSIMLoss(spatial_dims=spatial_dims, data_range=data_range) if ssim_weight > 0 else None

    def forward(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss of ``reconstruction`` against ``target`` (both ``(B, C, *spatial)``)."""
        loss = self.pixel_loss(reconstruction, target)
        if self.ssim_loss is not None:
            loss = loss + self.ssim_weight * self.ssim_loss(reconstruction, target)
        return loss
