"""A ready-to-use hierarchical sampler from a trained VQ-VAE-2 and the prior checkpoints its prior stages wrote."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from monai_vqvae2.inferers.sampler import HierarchicalSampler
from monai_vqvae2.networks import level_names, prior_for_level, unwrap

__all__ = ["load_sampler", "prior_checkpoints"]


def prior_checkpoints(checkpoint_dir: str | os.PathLike, num_levels: int) -> list[str]:
    """Best prior checkpoints as the prior stage writes them, coarsest first: ``<dir>/prior_<level>/model.pt``.

    Args:
        checkpoint_dir: the folder the prior stages wrote into.
        num_levels: levels of the VQ-VAE-2, named by :func:`~monai_vqvae2.networks.level_names`.

    Returns:
        one checkpoint path per level, coarsest first.
    """
    return [str(Path(checkpoint_dir) / f"prior_{name}" / "model.pt") for name in level_names(num_levels)]


def load_sampler(
    vqvae: torch.nn.Module,
    prior_checkpoints: Sequence[str | os.PathLike],
    spatial_shape: Sequence[int],
    device: str | torch.device = "cpu",
    num_scalars: int = 0,
    num_classes: int = 0,
    **prior_settings: Any,
) -> HierarchicalSampler:
    """A :class:`~monai_vqvae2.inferers.HierarchicalSampler` from a (loaded) VQ-VAE-2 and one prior checkpoint per
    level, coarsest first; priors are built by :func:`~monai_vqvae2.networks.prior_for_level` with
    ``prior_settings`` and loaded with ``torch.load(..., weights_only=True)``.

    Args:
        vqvae: the trained VQ-VAE-2, or a view holding it as ``.network``.
        prior_checkpoints: one prior ``state_dict`` file per level, coarsest first.
        spatial_shape: size ``(H, W)`` of the images to sample.
        device: where the priors are loaded and run.
        num_scalars: scalar conditions the priors were trained with (e.g. 1 for the slice position).
        num_classes: classes of the class condition the priors were trained with (0: none).
        prior_settings: further arguments of :func:`~monai_vqvae2.networks.prior_for_level`.

    Returns:
        the sampler, its networks in evaluation mode.

    Raises:
        ValueError: not one checkpoint per level.
    """
    vqvae = unwrap(vqvae)
    if len(prior_checkpoints) != vqvae.num_levels:
        raise ValueError(
            f"`prior_checkpoints` needs {vqvae.num_levels} files (one per level, coarsest first), "
            f"got {len(prior_checkpoints)}."
        )
    priors = []
    for level, checkpoint in enumerate(prior_checkpoints):
        prior = prior_for_level(vqvae, level, num_scalars=num_scalars, num_classes=num_classes, **prior_settings)
        prior.load_state_dict(torch.load(checkpoint, map_location=device, weights_only=True))
        priors.append(prior.to(device).eval())
    return HierarchicalSampler(vqvae.eval(), priors, spatial_shape=spatial_shape)
