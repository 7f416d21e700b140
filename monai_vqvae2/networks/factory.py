"""Build the prior of one VQ-VAE-2 level with the sizes, codebooks and conditioning that level implies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monai_vqvae2.networks.pixelcnn import PixelCNNPrior
from monai_vqvae2.networks.vqvae2 import VQVAE2

__all__ = ["PRIOR_EMBEDDING_INITS", "init_prior_embeddings", "prior_for_level"]

PRIOR_EMBEDDING_INITS = ("codebook", "random")


def prior_for_level(
    vqvae: VQVAE2,
    level: int,
    top_attention_every: int = 4,
    finer_attention_every: int = 0,
    num_scalars: int = 0,
    num_classes: int = 0,
    **prior_kwargs: Any,
) -> PixelCNNPrior:
    """The :class:`PixelCNNPrior` of level ``level`` (0 = coarsest) of ``vqvae``: its codebook size, and for finer
    levels the coarser level's codebook and upsampling factor as spatial condition. Training and sampling configs
    both build their priors here, so the two always agree.

    Args:
        vqvae: the autoencoder whose codes the prior models.
        level: level index, coarsest first.
        top_attention_every: ``attention_every`` of the top prior (PixelSNAIL-style causal attention).
        finer_attention_every: ``attention_every`` of the finer levels' priors; with attention every position sees
            the whole map above and left of it, not only a convolutional neighbourhood; 0 disables.
        num_scalars: global scalar conditions (1 for the normalised slice position).
        num_classes: global class labels.
        prior_kwargs: any other :class:`PixelCNNPrior` argument (``channels``, ``num_layers``, ``kernel_size``,
            ``num_heads``, ``dropout``, ...). Each one is either one value for every level or a list or tuple of one
            value per level, coarsest first (e.g. ``dropout=[0.1, 0.0]``: dropout in the top prior only).

    Returns:
        the prior.

    Raises:
        ValueError: ``level`` out of range, or a per-level list whose length is not the number of levels.
    """
    if not 0 <= level < vqvae.num_levels:
        raise ValueError(f"`level` must be in [0, {vqvae.num_levels - 1}] for this VQ-VAE-2, got {level}.")
    prior_kwargs = {name: _value_of_level(name, value, level, vqvae.num_levels) for name, value in prior_kwargs.items()}
    return PixelCNNPrior(
        spatial_dims=vqvae.spatial_dims,
        num_embeddings=vqvae.num_embeddings[level],
        attention_every=top_attention_every if level == 0 else finer_attention_every,
        condition_num_embeddings=vqvae.num_embeddings[level - 1] if level > 0 else None,
        condition_upsample=vqvae.downsample_factors[level - 1] if level > 0 else 2,
        num_scalars=num_scalars,
        num_classes=num_classes,
        **prior_kwargs,
    )


def _value_of_level(name: str, value: Any, level: int, num_levels: int) -> Any:
    """``value`` itself, or its entry for ``level`` when it is a list or tuple of one value per level."""
    if not isinstance(value, (list, tuple)):
        return value
    if len(value) != num_levels:
        raise ValueError(
            f"`{name}` must be one value or one value per level ({num_levels}, coarsest first), got {list(value)}."
        )
    return value[level]


def init_prior_embeddings(
    prior: PixelCNNPrior, vqvae: VQVAE2, level: int, mode: str | Sequence[str] = "codebook"
) -> PixelCNNPrior:
    """Start the code embeddings of the prior of level ``level`` from ``vqvae``'s trained codebooks
    (:meth:`PixelCNNPrior.init_embeddings`): its own level's and, for a finer level, the coarser level's it is
    conditioned on. Call it once the autoencoder's weights are loaded and before training; a resumed or loaded
    prior's checkpoint replaces these values.

    Args:
        prior: a prior built by :func:`prior_for_level` for ``vqvae`` and ``level``.
        vqvae: the trained autoencoder.
        level: level index, coarsest first.
        mode: ``"codebook"``, or ``"random"`` to keep the prior's random initialisation; one for every level or one
            per level, coarsest first (the bundle: ``["random", "codebook"]``, see ``train_prior.yaml``).

    Returns:
        ``prior``, initialised in place.

    Raises:
        ValueError: an unknown mode, a list of modes that is not one per level, or a ``level`` out of range.
    """
    if not 0 <= level < vqvae.num_levels:
        raise ValueError(f"`level` must be in [0, {vqvae.num_levels - 1}] for this VQ-VAE-2, got {level}.")
    modes = [mode] * vqvae.num_levels if isinstance(mode, str) else list(mode)
    if len(modes) != vqvae.num_levels or any(m not in PRIOR_EMBEDDING_INITS for m in modes):
        raise ValueError(
            f"`mode` must be one of {PRIOR_EMBEDDING_INITS} or one of them per level ({vqvae.num_levels} levels, "
            f"coarsest first), got {mode!r}."
        )
    if modes[level] == "codebook":
        condition = vqvae.quantizers[level - 1].codebook if level > 0 else None
        prior.init_embeddings(vqvae.quantizers[level].codebook, condition)
    return prior
