"""Ancestral sampling from a VQ-VAE-2 and its PixelCNN priors: top codes, then each finer level, then the decoder."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from monai_vqvae2.networks.pixelcnn import PixelCNNPrior
from monai_vqvae2.networks.vqvae2 import VQVAE2

__all__ = ["HierarchicalSampler", "SampleOutput"]

SAMPLING_METHODS = ("fast", "naive")


class SampleOutput(NamedTuple):
    """What :meth:`HierarchicalSampler.sample` returns.

    Attributes:
        images: decoded samples ``(B, out_channels, *spatial_shape)``.
        indices: sampled code maps ``(B, *latent_shape[l])``, one per level, coarsest first.
        labels: class maps ``(B, 1, *spatial_shape)`` (long) decoded from the same codes as ``images`` when the
            VQ-VAE-2 has a label decoder (``label_channels``), else ``None``.
    """

    images: torch.Tensor
    indices: list[torch.Tensor]
    labels: torch.Tensor | None = None


def _choose(logits: torch.Tensor, uniforms: torch.Tensor, temperature: float, top_k: int | None) -> torch.Tensor:
    """Inverse-CDF draw from ``softmax(logits / temperature)`` restricted to the ``top_k`` largest logits.

    Args:
        logits: ``(B, K)``.
        uniforms: ``(B,)`` float64 in [0, 1), one per sample for this position.

    Returns:
        code indices ``(B,)``, long.
    """
    logits = logits.double() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        threshold = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    cumulative = torch.softmax(logits, dim=-1).cumsum(dim=-1)
    targets = (uniforms * cumulative[:, -1]).unsqueeze(-1)
    # first code whose cumulative probability exceeds the target (never a zero-probability code)
    chosen = torch.searchsorted(cumulative, targets, right=True).squeeze(-1)
    return chosen.clamp_(max=logits.shape[-1] - 1)


def level_temperatures(temperature: float | Sequence[float], num_levels: int | None = None) -> list[float]:
    """Softmax temperatures, one per level (coarsest first), from one number for every level or one per level.

    A lower temperature for the finer levels than for the top keeps the diversity of the anatomy (top codes) while
    sharpening the texture the finer priors add (e.g. ``[0.8, 0.5]``).

    Args:
        temperature: a positive finite number, or a sequence of them.
        num_levels: the number of levels a sequence must have; ``None`` checks only the values.

    Returns:
        the temperatures as floats (``num_levels`` of them when given and ``temperature`` is one number).

    Raises:
        ValueError: a value that is not a positive finite number, or a sequence of the wrong length.
    """
    values = list(temperature) if isinstance(temperature, (list, tuple)) else [temperature]
    for value in values:
        if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"`temperature` must be a positive finite number or one per level, got {temperature!r}.")
    if not values:
        raise ValueError("`temperature` must be a positive finite number or one per level, got an empty sequence.")
    if isinstance(temperature, (list, tuple)):
        if num_levels is not None and len(values) != num_levels:
            raise ValueError(
                f"`temperature` has {len(values)} values but the VQ-VAE-2 has {num_levels} levels (one per level, "
                "coarsest first, or one number for all)."
            )
        return [float(value) for value in values]
    return [float(temperature)] * (num_levels or 1)


class HierarchicalSampler:
    """Generate images from a trained :class:`~monai_vqvae2.networks.VQVAE2` and one
    :class:`~monai_vqvae2.networks.PixelCNNPrior` per level (Razavi et al. 2019, https://arxiv.org/abs/1906.00446).

    Levels are sampled coarsest first; the prior of every finer level is conditioned on the codes just sampled for the
    previous (coarser) level, then :meth:`VQVAE2.decode_samples` decodes all levels.

    Two methods give the **same codes** for the same seed:

    - ``"naive"``: for each position in raster order, one full prior forward over the whole map;
    - ``"fast"``: :class:`~monai_vqvae2.networks.pixelcnn.PixelCNNIncrementalState` — per row, one ``1 × W`` vertical
      pass per layer; per position, the horizontal stack, attention (against cached keys/values) and output head at
      that position only. Conditioning is computed once per batch.

    Exactness: all random numbers are drawn up front from a local ``torch.Generator`` (one float64 uniform per sample
    and position, in raster order, level after level, for all ``num_samples`` before batching), and each code is
    chosen by inverting the CDF of the softmax in float64. The priors run in ``dtype`` (float64 by default) during
    sampling, so the two methods' logits agree to ~1e-15 and choose the same codes unless a uniform falls within that
    distance of a CDF boundary. Results do not depend on ``batch_size``. The global RNG is never used.

    Args:
        vqvae: the trained autoencoder.
        priors: one prior per level, **coarsest first**; the prior of level ``l > 0`` must have
            ``condition_num_embeddings == vqvae.num_embeddings[l - 1]``, the top prior none.
        spatial_shape: image spatial shape to generate, e.g. ``(256, 256)``; fixes every level's latent shape.
        dtype: floating type the priors run in while sampling (on copies; the given priors are not modified).

    Raises:
        TypeError: a prior that is not a :class:`~monai_vqvae2.networks.PixelCNNPrior`.
        ValueError: priors that do not match the VQ-VAE-2's levels, codes or latent shapes.

    Example::

        sampler = HierarchicalSampler(vqvae, [top_prior, bottom_prior], spatial_shape=(256, 256))
        output = sampler.sample(4, temperature=0.9, scalars=0.5, seed=1)
        output.images  # (4, 1, 256, 256)
        indices_top, indices_bottom = output.indices  # (4, 32, 32), (4, 64, 64)
    """

    def __init__(
        self,
        vqvae: VQVAE2,
        priors: Sequence[PixelCNNPrior],
        spatial_shape: Sequence[int],
        dtype: torch.dtype = torch.float64,
    ) -> None:
        priors = list(priors)
        if len(priors) != vqvae.num_levels:
            raise ValueError(
                f"`priors` needs {vqvae.num_levels} entries (one per VQ-VAE-2 level, coarsest first), got {len(priors)}."
            )
        if not dtype.is_floating_point:
            raise ValueError(f"`dtype` must be a floating type, got {dtype}.")
        self.latent_shapes = vqvae.latent_shapes(spatial_shape)
        for level, prior in enumerate(priors):
            if not isinstance(prior, PixelCNNPrior):
                raise TypeError(f"`priors[{level}]` must be a PixelCNNPrior, got {type(prior).__name__}.")
            if prior.num_embeddings != vqvae.num_embeddings[level]:
                raise ValueError(
                    f"`priors[{level}].num_embeddings` is {prior.num_embeddings} but level {level} of the VQ-VAE-2 has "
                    f"{vqvae.num_embeddings[level]} codes."
                )
            if level == 0:
                if prior.condition_num_embeddings is not None:
                    raise ValueError(
                        "`priors[0]` (the top level) has no coarser level to condition on, but was built with "
                        f"`condition_num_embeddings={prior.condition_num_embeddings}`."
                    )
                continue
            if prior.condition_num_embeddings != vqvae.num_embeddings[level - 1]:
                raise ValueError(
                    f"`priors[{level}].condition_num_embeddings` must be {vqvae.num_embeddings[level - 1]} (the codes "
                    f"of level {level - 1}), got {prior.condition_num_embeddings}."
                )
            coarse, fine = self.latent_shapes[level - 1], self.latent_shapes[level]
            if tuple(s * prior.condition_upsample for s in coarse) != tuple(fine):
                raise ValueError(
                    f"`priors[{level}].condition_upsample={prior.condition_upsample}` does not map level {level - 1}'s "
                    f"latent shape {coarse} to level {level}'s {fine} for `spatial_shape={tuple(spatial_shape)}`."
                )
        self.vqvae = vqvae
        self.priors = priors
        self.spatial_shape = tuple(int(s) for s in spatial_shape)
        self.dtype = dtype

    def _global_conditions(
        self, num_samples: int, labels: torch.Tensor | int | None, scalars: torch.Tensor | float | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        num_classes = max(prior.num_classes for prior in self.priors)
        num_scalars = max(prior.num_scalars for prior in self.priors)
        if labels is None and num_classes:
            raise ValueError(f"A prior was built with `num_classes={num_classes}`; pass `labels`.")
        if labels is not None:
            if not num_classes:
                raise ValueError("`labels` was given but no prior was built with `num_classes > 0`.")
            labels = torch.as_tensor(labels)
            if labels.ndim == 0:
                labels = labels.expand(num_samples)
            if tuple(labels.shape) != (num_samples,):
                raise ValueError(f"`labels` must be an int or have shape ({num_samples},), got {tuple(labels.shape)}.")
        if scalars is None and num_scalars:
            raise ValueError(f"A prior was built with `num_scalars={num_scalars}`; pass `scalars`.")
        if scalars is not None:
            if not num_scalars:
                raise ValueError("`scalars` was given but no prior was built with `num_scalars > 0`.")
            scalars = torch.as_tensor(scalars, dtype=torch.float64)
            if scalars.ndim == 0:
                scalars = scalars.expand(num_samples, num_scalars)
            if tuple(scalars.shape) != (num_samples, num_scalars):
                raise ValueError(
                    f"`scalars` must be a float or have shape ({num_samples}, {num_scalars}), "
                    f"got {tuple(scalars.shape)}."
                )
        return labels, scalars

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        temperature: float | Sequence[float] = 1.0,
        top_k: int | None = None,
        labels: torch.Tensor | int | None = None,
        scalars: torch.Tensor | float | None = None,
        seed: int = 0,
        method: str = "fast",
        batch_size: int | None = None,
    ) -> SampleOutput:
        """Sample ``num_samples`` code hierarchies and decode them.

        Args:
            num_samples: number of images ``B``.
            temperature: softmax temperature (> 0), one for every level or one per level (coarsest first, see
                :func:`level_temperatures`); below 1 sharpens the priors.
            top_k: keep only the ``top_k`` most likely codes at each position; ``None`` (or a value at least a
                level's code count) keeps all.
            labels: class labels ``(B,)`` or one int for all, for priors built with ``num_classes > 0``.
            scalars: scalar conditions ``(B, S)`` (e.g. the normalised slice position) or one float for all, for priors
                built with ``num_scalars = S > 0``.
            seed: seed of the local generator; same seed, same samples (with either method and any ``batch_size``).
            method: ``"fast"`` (cached incremental evaluation) or ``"naive"`` (one full forward per position).
            batch_size: samples generated together; ``None`` for all at once.

        Returns:
            a :class:`SampleOutput`: ``images`` ``(B, out_channels, *spatial_shape)``, ``indices`` (coarsest first) and,
            for a VQ-VAE-2 with a label decoder, the ``labels`` of the images.

        Raises:
            ValueError: an invalid argument or a condition that does not match the priors.
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"`num_samples` must be a positive integer, got {num_samples!r}.")
        temperatures = level_temperatures(temperature, len(self.priors))
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"`top_k` must be None or a positive integer, got {top_k!r}.")
        if method not in SAMPLING_METHODS:
            raise ValueError(f"`method` must be one of {SAMPLING_METHODS}, got {method!r}.")
        if batch_size is None:
            batch_size = num_samples
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be None or a positive integer, got {batch_size!r}.")
        labels, scalars = self._global_conditions(num_samples, labels, scalars)

        device = next(self.vqvae.parameters()).device
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        uniforms = [
            torch.rand((num_samples, math.prod(shape)), generator=generator, dtype=torch.float64).to(device)
            for shape in self.latent_shapes
        ]
        priors = [copy.deepcopy(prior).to(device=device, dtype=self.dtype).eval() for prior in self.priors]
        if labels is not None:
            labels = labels.to(device)
        if scalars is not None:
            scalars = scalars.to(device=device, dtype=self.dtype)

        level_indices: list[list[torch.Tensor]] = [[] for _ in priors]
        for start in range(0, num_samples, batch_size):
            chunk = slice(start, min(start + batch_size, num_samples))
            condition = None
            for level, prior in enumerate(priors):
                indices = self._sample_level(
                    prior,
                    self.latent_shapes[level],
                    uniforms[level][chunk],
                    condition=condition,
                    labels=labels[chunk] if labels is not None and prior.num_classes else None,
                    scalars=scalars[chunk] if scalars is not None and prior.num_scalars else None,
                    temperature=temperatures[level],
                    top_k=top_k,
                    method=method,
                )
                level_indices[level].append(indices)
                condition = indices
        indices = [torch.cat(parts) for parts in level_indices]

        was_training = self.vqvae.training
        self.vqvae.eval()
        try:
            quantized = self.vqvae.embed(indices)  # looked up once for the image and the label decoders
            images = self.vqvae.decode(quantized)
            labels = None
            if self.vqvae.label_decoder is not None:
                labels = self.vqvae.decode_labels(quantized).argmax(dim=1, keepdim=True)
        finally:
            self.vqvae.train(was_training)
        return SampleOutput(images, indices, labels)

    @staticmethod
    def _sample_level(
        prior: nn.Module,
        shape: Sequence[int],
        uniforms: torch.Tensor,
        condition: torch.Tensor | None,
        labels: torch.Tensor | None,
        scalars: torch.Tensor | None,
        temperature: float,
        top_k: int | None,
        method: str,
    ) -> torch.Tensor:
        """Codes ``(B, *shape)`` of one level (a map or a volume); ``uniforms`` is ``(B, prod(shape))`` in raster
        order. A volume's rows are numbered through its slices (``d * H + h``)."""
        *outer, width = shape
        num_rows = math.prod(outer)
        batch = uniforms.shape[0]
        indices = torch.zeros((batch, *shape), dtype=torch.long, device=uniforms.device)
        flat = indices.view(batch, -1)
        if method == "naive":
            for position in range(num_rows * width):
                logits = prior(indices, condition, labels, scalars).flatten(2)[:, :, position]
                flat[:, position] = _choose(logits, uniforms[:, position], temperature, top_k)
            return indices
        state = prior.incremental_state(batch, shape, condition, labels, scalars)
        for row in range(num_rows):
            state.begin_row(row)
            for column in range(width):
                position = row * width + column
                chosen = _choose(state.logits(column), uniforms[:, position], temperature, top_k)
                flat[:, position] = chosen
                state.commit(column, chosen)
        return indices
