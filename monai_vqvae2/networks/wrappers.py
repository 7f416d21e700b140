"""Single-output views of the networks, for TorchScript tracing and MONAI bundle checks."""

from __future__ import annotations

import torch
from torch import nn

from monai_vqvae2.networks.vqvae2 import VQVAE2

__all__ = ["VQVAE2Reconstructor"]


class VQVAE2Reconstructor(nn.Module):
    """Reconstruction-only view of a :class:`~monai_vqvae2.networks.VQVAE2`: ``forward(x)`` returns one tensor.

    ``VQVAE2.forward`` returns ``(reconstruction, quantization_loss)`` like MONAI's ``VQVAE``, which
    ``monai.bundle.verify_net_in_out``, ``ckpt_export`` and ``torch.jit.trace`` users cannot consume. This view shares
    the wrapped network's parameters, so a checkpoint of the network loads into ``view.network``.

    Args:
        network: the VQ-VAE-2 to wrap; if ``None``, one is built from ``network_kwargs``.
        network_kwargs: constructor arguments of :class:`VQVAE2` (convenient in bundle configs).

    Example::

        view = VQVAE2Reconstructor(network=net).eval()
        traced = torch.jit.trace(view, torch.rand(1, 1, 256, 256))
    """

    def __init__(self, network: VQVAE2 | None = None, **network_kwargs) -> None:
        super().__init__()
        if (network is None) == (not network_kwargs):
            if network is None:
                raise ValueError("Give `network` or the VQVAE2 constructor arguments, got neither.")
            raise ValueError("Give either `network` or VQVAE2 constructor arguments, not both.")
        self.network = network if network is not None else VQVAE2(**network_kwargs)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return the reconstruction ``(B, out_channels, *spatial)`` of ``images``."""
        return self.network(images)[0]
