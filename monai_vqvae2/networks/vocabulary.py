"""The words the stages share about a VQ-VAE-2: the network inside its wrappers, and the names of its levels."""

from __future__ import annotations

import torch

from monai_vqvae2.networks.vqvae2 import VQVAE2

__all__ = ["level_names", "unwrap"]


def unwrap(network: torch.nn.Module) -> torch.nn.Module:
    """The module inside ``DistributedDataParallel``/``DataParallel`` and reconstruction views.

    Args:
        network: a network, possibly wrapped (several times) in ``DistributedDataParallel``, ``DataParallel`` or a
            view holding it as ``.network`` (e.g. :class:`~monai_vqvae2.networks.VQVAE2Reconstructor`).

    Returns:
        the innermost module: a :class:`~monai_vqvae2.networks.VQVAE2` is never unwrapped further.
    """
    while True:
        if isinstance(network, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
            network = network.module
        elif not isinstance(network, VQVAE2) and isinstance(getattr(network, "network", None), torch.nn.Module):
            network = network.network
        else:
            return network


def level_names(num_levels: int) -> list[str]:
    """Names of the levels, coarsest first: ``["top", "bottom"]``, ``["top", "middle", "bottom"]``, ...

    Args:
        num_levels: levels of the hierarchy.

    Returns:
        ``["bottom"]`` for one level, ``["top", "bottom"]`` for two, ``["top", "middle", "bottom"]`` for three, and
        ``["top", "level1", ..., "bottom"]`` for more.
    """
    if num_levels == 1:
        return ["bottom"]
    if num_levels == 2:
        return ["top", "bottom"]
    if num_levels == 3:
        return ["top", "middle", "bottom"]
    return ["top"] + [f"level{level}" for level in range(1, num_levels - 1)] + ["bottom"]
