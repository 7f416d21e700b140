"""Hierarchical VQ-VAE-2 (Razavi et al. 2019) for 2D slices and 3D volumes, with any number of levels."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from monai.networks.layers import Act, Conv, get_act_layer
from monai.utils import ensure_tuple_rep
from torch import nn
from torch.utils.checkpoint import checkpoint

from monai_vqvae2.networks.blocks import DownsampleEncoder, UpsampleDecoder, num_halvings
from monai_vqvae2.networks.quantizer import RestartEMAQuantizer

__all__ = ["VQVAE2", "VQVAE2Encoding"]


class VQVAE2Encoding(NamedTuple):
    """What :meth:`VQVAE2.encode` returns; every list holds one entry per level, coarsest first.

    Attributes:
        quantized: quantized latents ``(B, embedding_dim[l], *latent_shape[l])`` with straight-through gradients.
        indices: code indices ``(B, *latent_shape[l])``, dtype long.
        quantization_loss: sum of the levels' commitment losses (a scalar).
    """

    quantized: list[torch.Tensor]
    indices: list[torch.Tensor]
    quantization_loss: torch.Tensor


logger = logging.getLogger(__name__)


def _accept_checkpoints_without_top_decoder(module: nn.Module, incompatible_keys) -> None:
    """``load_state_dict`` post-hook: checkpoints written before the top-only decoder existed (bundle < 0.3) still
    load; the decoder keeps its initial weights until trained, so ``decode_top`` means nothing until then."""
    missing = [key for key in incompatible_keys.missing_keys if "top_decoder." in key]
    if missing:
        logger.warning("Checkpoint has no top-only decoder (%d keys): `decode_top` is untrained.", len(missing))
        for key in missing:
            incompatible_keys.missing_keys.remove(key)


def _per_level(value: int | Sequence[int], num_levels: int, name: str) -> tuple[int, ...]:
    values = tuple(value) if isinstance(value, Sequence) else ensure_tuple_rep(value, num_levels)
    if len(values) != num_levels:
        raise ValueError(f"`{name}` needs {num_levels} entries (one per level, coarsest first), got {len(values)}.")
    if any(int(v) < 1 for v in values):
        raise ValueError(f"`{name}` entries must be positive integers, got {tuple(values)}.")
    return tuple(int(v) for v in values)


class VQVAE2(nn.Module):
    """Hierarchical VQ-VAE-2 from "Generating Diverse High-Fidelity Images with VQ-VAE-2" (Razavi et al. 2019,
    https://arxiv.org/abs/1906.00446), for 2D or 3D images and ``num_levels >= 1`` latent levels.

    The encoder downsamples the image level by level (bottom = finest first, then each coarser level from the previous
    level's features). Quantization runs top-down: the coarsest level is quantized first, and each finer level is
    quantized from its encoder features concatenated with a decoding of the coarser quantized levels. The decoder takes
    all levels: coarser quantized latents are upsampled to the finest latent resolution and concatenated with it.
    Every level has its own :class:`~monai_vqvae2.networks.quantizer.RestartEMAQuantizer` (k-means initialisation,
    dead-code restart), which avoids the codebook collapse that plain EMA codebooks show on brain slices.

    All per-level arguments take an int (same for every level) or a sequence ordered **coarsest level first**, the
    order used everywhere in this package (``index_quantize`` returns the top level's indices first).

    With the defaults a ``(1, 256, 256)`` slice gives a 32×32 top and a 64×64 bottom index map, and a 3D
    ``(1, 64, 64, 64)`` volume gives 8³ and 16³.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: reconstruction channels.
        channels: hidden width of each level's encoder and decoder.
        num_res_layers: residual units in each encoder/decoder stage.
        num_res_channels: hidden channels of the residual units.
        num_levels: number of latent levels.
        downsample_factors: downsampling of each level relative to the next finer one (the finest level relative to
            the image), powers of two, coarsest first. Default: the finest level ×4, every coarser level ×2.
        num_embeddings: codes per level.
        embedding_dim: code size per level.
        commitment_cost: weight of the commitment loss.
        decay: EMA decay of the codebooks.
        epsilon: Laplace smoothing of the EMA cluster sizes.
        codebook_init: ``"kmeans"`` (on the first training batch) or ``"normal"`` (MONAI's ``EMAQuantizer`` default,
            which collapses on brain MRI; kept for comparison).
        restart_threshold: codes whose EMA count falls below this are re-seeded from encoder outputs; 0 disables.
        restart_interval: training updates between dead-code checks.
        seed: seed of the codebook initialisation and restart draws (level ``l`` uses ``seed + l``); draws depend
            only on it and the update count, so resumed runs repeat them exactly.
        act: activation name or ``(name, kwargs)``.
        output_act: optional activation on the reconstruction, e.g. ``"sigmoid"`` for images in [0, 1].
        use_checkpointing: recompute encoder/decoder activations in the backward pass to save memory.
        ddp_sync: synchronise codebook statistics across DDP ranks.
        top_reconstruction_weight: ``None`` (default: no top-only decoder, no extra cost) or the weight of the
            *top-only reconstruction*: a decoder of the coarsest level alone (:attr:`top_decoder`) reconstructs the
            image, and its mean squared error joins the latent loss returned by :meth:`forward` in training. With 0
            the top codes are detached for it: the top-only decoder is a probe that reads what the top level carries
            without shaping it (:meth:`decode_top`). Above 0 the error also flows into the encoder, so the top level
            must carry the coarse anatomy on its own instead of leaving it all to the finer levels — the usual
            VQ-VAE-2 failure on brain MRI, where one top code covers the whole brain and top-level samples carry no
            anatomy. The decoder adds about a quarter to the parameters and, at 256×256, about half to the training
            step time. Ignored when ``num_levels == 1``; the probe is not trained when ``out_channels !=
            in_channels`` (it has no target).
        label_channels: ``None`` (default) or the number of label classes: a *label decoder* reads the same quantized
            latents as the image decoder and gives per-class logits, so every decoded (or sampled) code map yields an
            image and its aligned label map (:meth:`decode_labels`, :meth:`decode_label_samples`,
            :meth:`predict_labels`). It learns in training when :meth:`forward` gets ``labels``: their
            cross-entropy joins the latent loss.
        label_weight: weight of that cross-entropy in the image model. 0 (the default) detaches the decoder input for
            it: only the label decoder learns from the labels, and the rest of the network trains exactly as the same
            model without labels (same codes, same priors). Above 0 the weighted cross-entropy also trains the
            encoder, the codebooks' inputs and the upsampling. On the demo, 0 kept the image and the top level's
            anatomy at the same label Dice (``benchmarks/README.md``, "Image and label together").

    Example::

        net = VQVAE2(spatial_dims=2, in_channels=1, out_channels=1)
        reconstruction, quantization_loss = net(torch.rand(2, 1, 256, 256))
        indices_top, indices_bottom = net.index_quantize(torch.rand(2, 1, 256, 256))  # (2, 32, 32), (2, 64, 64)
        images = net.decode_samples([indices_top, indices_bottom])  # (2, 1, 256, 256)
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        channels: int | Sequence[int] = 128,
        num_res_layers: int | Sequence[int] = 2,
        num_res_channels: int | Sequence[int] = 32,
        num_levels: int = 2,
        downsample_factors: Sequence[int] | None = None,
        num_embeddings: int | Sequence[int] = 512,
        embedding_dim: int | Sequence[int] = 64,
        commitment_cost: float = 0.25,
        decay: float = 0.99,
        epsilon: float = 1e-5,
        codebook_init: str = "kmeans",
        restart_threshold: float = 1.0,
        restart_interval: int = 20,
        seed: int = 0,
        act: str | tuple = Act.RELU,
        output_act: str | tuple | None = None,
        use_checkpointing: bool = False,
        ddp_sync: bool = True,
        top_reconstruction_weight: float | None = None,
        label_channels: int | None = None,
        label_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"`spatial_dims` must be 2 or 3, got {spatial_dims}.")
        if num_levels < 1:
            raise ValueError(f"`num_levels` must be >= 1, got {num_levels}.")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"`in_channels` and `out_channels` must be >= 1, got {in_channels} and {out_channels}.")
        if downsample_factors is None:
            downsample_factors = (2,) * (num_levels - 1) + (4,)
        downsample_factors = tuple(int(f) for f in downsample_factors)
        if len(downsample_factors) != num_levels:
            raise ValueError(
                f"`downsample_factors` needs {num_levels} entries (one per level, coarsest first), "
                f"got {downsample_factors}."
            )
        for factor in downsample_factors:
            num_halvings(factor, "entry of `downsample_factors`")
        if top_reconstruction_weight is not None and not top_reconstruction_weight >= 0:
            raise ValueError(f"`top_reconstruction_weight` must be None or >= 0, got {top_reconstruction_weight}.")
        if label_channels is not None and (isinstance(label_channels, bool) or int(label_channels) < 2):
            raise ValueError(f"`label_channels` must be None or a number of classes >= 2, got {label_channels!r}.")
        if not label_weight >= 0:
            raise ValueError(f"`label_weight` must be >= 0, got {label_weight}.")
        if top_reconstruction_weight and in_channels != out_channels:
            raise ValueError(
                f"`top_reconstruction_weight` > 0 compares the top-only reconstruction with the input, so it needs "
                f"`out_channels` == `in_channels`, got {out_channels} and {in_channels}."
            )

        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_levels = num_levels
        self.downsample_factors = downsample_factors
        self.channels = _per_level(channels, num_levels, "channels")
        self.num_res_layers = _per_level(num_res_layers, num_levels, "num_res_layers")
        self.num_res_channels = _per_level(num_res_channels, num_levels, "num_res_channels")
        self.num_embeddings = _per_level(num_embeddings, num_levels, "num_embeddings")
        self.embedding_dim = _per_level(embedding_dim, num_levels, "embedding_dim")
        self.use_checkpointing = use_checkpointing
        self.top_reconstruction_weight = top_reconstruction_weight
        self.label_channels = None if label_channels is None else int(label_channels)
        self.label_weight = float(label_weight)
        conv = Conv[Conv.CONV, spatial_dims]
        conv_transpose = Conv[Conv.CONVTRANS, spatial_dims]
        bottom = num_levels - 1

        # encoders[l] maps level l+1's features (the image for the bottom level) to level l's features
        self.encoders = nn.ModuleList(
            DownsampleEncoder(
                spatial_dims,
                in_channels if level == bottom else self.channels[level + 1],
                self.channels[level],
                downsample_factors[level],
                self.num_res_layers[level],
                self.num_res_channels[level],
                act,
            )
            for level in range(num_levels)
        )
        # condition_decoders[l - 1] decodes the coarser levels (quantized level l-1, plus its own condition when it has
        # one) to level l's resolution; level l is quantized from its features concatenated with that decoding
        self.condition_decoders = nn.ModuleList(
            UpsampleDecoder(
                spatial_dims,
                self.embedding_dim[level - 1] * (1 if level == 1 else 2),
                self.embedding_dim[level - 1],
                self.channels[level - 1],
                downsample_factors[level - 1],
                self.num_res_layers[level - 1],
                self.num_res_channels[level - 1],
                act,
            )
            for level in range(1, num_levels)
        )
        self.pre_quantization = nn.ModuleList(
            conv(
                self.channels[level] + (self.embedding_dim[level - 1] if level > 0 else 0),
                self.embedding_dim[level],
                kernel_size=1,
            )
            for level in range(num_levels)
        )
        self.quantizers = nn.ModuleList(
            RestartEMAQuantizer(
                spatial_dims,
                self.num_embeddings[level],
                self.embedding_dim[level],
                commitment_cost=commitment_cost,
                decay=decay,
                epsilon=epsilon,
                codebook_init=codebook_init,
                restart_threshold=restart_threshold,
                restart_interval=restart_interval,
                seed=seed + level,
                ddp_sync=ddp_sync,
            )
            for level in range(num_levels)
        )
        # upsamplers[l] brings quantized level l to the finest latent resolution for the decoder
        self.upsamplers = nn.ModuleList()
        for level in range(bottom):
            stages: list[nn.Module] = []
            for coarser in range(level, bottom):
                for _ in range(num_halvings(downsample_factors[coarser])):
                    stages.append(
                        conv_transpose(
                            self.embedding_dim[level], self.embedding_dim[level], kernel_size=4, stride=2, padding=1
                        )
                    )
            self.upsamplers.append(nn.Sequential(*stages))
        self.decoder = UpsampleDecoder(
            spatial_dims,
            sum(self.embedding_dim),
            out_channels,
            self.channels[bottom],
            downsample_factors[bottom],
            self.num_res_layers[bottom],
            self.num_res_channels[bottom],
            act,
        )
        # the image from the coarsest level alone: a probe of what the top carries, or a loss that makes it carry more
        self.top_decoder = (
            UpsampleDecoder(
                spatial_dims,
                self.embedding_dim[0],
                out_channels,
                self.channels[0],
                math.prod(downsample_factors),
                self.num_res_layers[0],
                self.num_res_channels[0],
                act,
            )
            if num_levels > 1 and top_reconstruction_weight is not None
            else None
        )
        # the label map from the same latents as the image: one decoding of the codes gives an aligned pair
        self.label_decoder = (
            UpsampleDecoder(
                spatial_dims,
                sum(self.embedding_dim),
                self.label_channels,
                self.channels[bottom],
                downsample_factors[bottom],
                self.num_res_layers[bottom],
                self.num_res_channels[bottom],
                act,
            )
            if self.label_channels is not None
            else None
        )
        self.output_act = get_act_layer(output_act) if output_act is not None else nn.Identity()
        self.register_load_state_dict_post_hook(_accept_checkpoints_without_top_decoder)

    @property
    def total_downsampling(self) -> int:
        """Downsampling from the image to the coarsest level; every input spatial size must be a multiple of it."""
        return math.prod(self.downsample_factors)

    def latent_shapes(self, spatial_shape: Sequence[int]) -> list[tuple[int, ...]]:
        """Spatial shapes of the index maps for an input of spatial shape ``spatial_shape``, coarsest first.

        Args:
            spatial_shape: input spatial size, e.g. ``(256, 256)``.

        Returns:
            one spatial shape per level, e.g. ``[(32, 32), (64, 64)]`` for the defaults.

        Raises:
            ValueError: when ``spatial_shape`` has the wrong length or a size is not a multiple of
                :attr:`total_downsampling`.
        """
        spatial_shape = tuple(int(s) for s in spatial_shape)
        if len(spatial_shape) != self.spatial_dims:
            raise ValueError(
                f"Expected {self.spatial_dims} spatial sizes for a {self.spatial_dims}D VQVAE2, got {spatial_shape}."
            )
        multiple = self.total_downsampling
        bad = [s for s in spatial_shape if s % multiple or s == 0]
        if bad:
            raise ValueError(
                f"Input spatial size {spatial_shape} is not divisible by the total downsampling {multiple} of the "
                f"{self.num_levels}-level VQVAE2 (downsample_factors={self.downsample_factors}): every spatial size "
                f"must be a positive multiple of {multiple}."
            )
        shapes = []
        for level in range(self.num_levels):
            factor = math.prod(self.downsample_factors[level:])
            shapes.append(tuple(s // factor for s in spatial_shape))
        return shapes

    def _check_images(self, images: torch.Tensor) -> None:
        if images.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"Expected a {self.spatial_dims + 2}D input (B, C, {'H, W' if self.spatial_dims == 2 else 'H, W, D'}) "
                f"for a {self.spatial_dims}D VQVAE2, got shape {tuple(images.shape)}."
            )
        if images.shape[1] != self.in_channels:
            raise ValueError(
                f"Expected {self.in_channels} input channel(s) (`in_channels`), got {images.shape[1]} "
                f"in an input of shape {tuple(images.shape)}."
            )
        self.latent_shapes(images.shape[2:])

    def _run(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.use_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(module, x, use_reentrant=False)  # type: ignore[return-value]
        return module(x)

    def _encode(self, images: torch.Tensor, update: bool) -> VQVAE2Encoding:
        self._check_images(images)
        features: list[torch.Tensor] = []
        hidden = images
        for level in reversed(range(self.num_levels)):
            hidden = self._run(self.encoders[level], hidden)
            features.insert(0, hidden)
        quantized: list[torch.Tensor] = []
        indices: list[torch.Tensor] = []
        loss = images.new_zeros(())
        condition: torch.Tensor | None = None
        for level in range(self.num_levels):
            hidden = features[level]
            if level > 0:
                coarser = quantized[-1] if condition is None else torch.cat([quantized[-1], condition], dim=1)
                condition = self._run(self.condition_decoders[level - 1], coarser)
                hidden = torch.cat([hidden, condition], dim=1)
            level_quantized, level_loss, level_indices = self.quantizers[level](
                self.pre_quantization[level](hidden), update=update
            )
            quantized.append(level_quantized)
            indices.append(level_indices)
            loss = loss + level_loss
        return VQVAE2Encoding(quantized, indices, loss)

    def encode(self, images: torch.Tensor) -> VQVAE2Encoding:
        """Encode and quantize every level (codebooks update only in training mode, as in :meth:`forward`).

        Args:
            images: ``(B, in_channels, *spatial)``, spatial sizes multiples of :attr:`total_downsampling`.

        Returns:
            a :class:`VQVAE2Encoding` (quantized latents, indices, quantization loss), levels coarsest first.
        """
        return self._encode(images, update=True)

    def _decoder_input(self, quantized: Sequence[torch.Tensor]) -> torch.Tensor:
        """All levels at the finest latent resolution, concatenated: what the image and label decoders read."""
        if len(quantized) != self.num_levels:
            raise ValueError(f"Expected {self.num_levels} quantized levels (coarsest first), got {len(quantized)}.")
        parts = [upsample(level) for upsample, level in zip(self.upsamplers, quantized)] + [quantized[-1]]
        return torch.cat(parts, dim=1)

    def decode(self, quantized: Sequence[torch.Tensor]) -> torch.Tensor:
        """Decode quantized latents (coarsest first) to an image ``(B, out_channels, *spatial)``."""
        return self.output_act(self._run(self.decoder, self._decoder_input(quantized)))

    def decode_labels(self, quantized: Sequence[torch.Tensor]) -> torch.Tensor:
        """Decode quantized latents (coarsest first) to label logits ``(B, label_channels, *spatial)``.

        Raises:
            ValueError: the network has no label decoder (``label_channels=None``).
        """
        if self.label_decoder is None:
            raise ValueError("`decode_labels` needs a label decoder: build the VQVAE2 with `label_channels` set.")
        return self._run(self.label_decoder, self._decoder_input(quantized))

    def _label_loss(
        self, quantized: Sequence[torch.Tensor], labels: torch.Tensor, spatial_shape: Sequence[int]
    ) -> torch.Tensor:
        """Cross-entropy of the label decoder against class maps ``(B, 1, *spatial)``; with ``label_weight == 0`` on
        the detached decoder input, so that nothing of the image model learns from it."""
        expected = (quantized[0].shape[0], 1, *spatial_shape)
        if tuple(labels.shape) != expected or labels.dtype.is_floating_point:
            raise ValueError(
                f"`labels` must be an integer class map of shape {expected} (B, 1, *spatial) aligned with the images, "
                f"got {tuple(labels.shape)} of {labels.dtype}."
            )
        if labels.min() < 0 or labels.max() >= self.label_channels:  # type: ignore[operator]
            raise ValueError(
                f"`labels` hold classes {int(labels.min())}..{int(labels.max())}, outside 0..{self.label_channels - 1} "
                f"(`label_channels={self.label_channels}`)."
            )
        if self.label_weight > 0:
            logits = self.decode_labels(quantized)
            return self.label_weight * F.cross_entropy(logits, labels[:, 0].long())
        # detached after the upsampling the image decoder shares: the image model trains as if there were no labels
        logits = self._run(self.label_decoder, self._decoder_input(quantized).detach())  # type: ignore[arg-type]
        return F.cross_entropy(logits, labels[:, 0].long())

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruct ``images``; same contract as :class:`monai.networks.nets.VQVAE`.

        Args:
            images: ``(B, in_channels, *spatial)``, spatial sizes multiples of :attr:`total_downsampling`.
            labels: optional class maps ``(B, 1, *spatial)`` aligned with ``images``, for a network with a label
                decoder; used in training only.

        Returns:
            ``(reconstruction, quantization_loss)``: ``(B, out_channels, *spatial)`` and a scalar: the commitment
            losses summed over levels, plus in training the top-only reconstruction error (see
            ``top_reconstruction_weight``) and, when ``labels`` are given, the label cross-entropy (see
            ``label_weight``).

        Raises:
            ValueError: wrong dimensionality, channel count, or a spatial size that is not a multiple of
                :attr:`total_downsampling`; ``labels`` without a label decoder, of the wrong shape or with classes
                outside ``0..label_channels - 1``.
        """
        if labels is not None and self.label_decoder is None:
            raise ValueError(
                "`labels` were given, but the VQVAE2 has no label decoder: build it with `label_channels`."
            )
        encoding = self._encode(images, update=True)
        loss = encoding.quantization_loss
        if labels is not None and self.training:
            loss = loss + self._label_loss(encoding.quantized, labels, images.shape[2:])
        if self.training and self.top_decoder is not None and self.in_channels == self.out_channels:
            shaping = bool(self.top_reconstruction_weight)  # else a probe: only the top decoder learns from the error
            top = encoding.quantized[0] if shaping else encoding.quantized[0].detach()
            error = F.mse_loss(self.output_act(self._run(self.top_decoder, top)), images)
            loss = loss + (self.top_reconstruction_weight if shaping else 1.0) * error  # type: ignore[operator]
        return self.decode(encoding.quantized), loss

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """The reconstruction alone (what :class:`~monai_vqvae2.networks.VQVAE2Reconstructor` exports)."""
        return self.forward(images)[0]

    @torch.no_grad()
    def index_quantize(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Code indices of every level, coarsest first, without ever updating the codebooks (in any mode).

        Args:
            images: ``(B, in_channels, *spatial)``.

        Returns:
            ``[indices_top, ..., indices_bottom]``, each ``(B, *latent_shape)``, dtype long.
        """
        return self._encode(images, update=False).indices

    def embed(self, indices: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Look up the codes of index maps (coarsest first); returns ``(B, embedding_dim[l], *latent_shape[l])``."""
        if len(indices) != self.num_levels:
            raise ValueError(f"Expected {self.num_levels} index maps (coarsest first), got {len(indices)}.")
        quantized = []
        for level, (quantizer, level_indices) in enumerate(zip(self.quantizers, indices)):
            if level_indices.ndim != self.spatial_dims + 1:
                raise ValueError(
                    f"Index map of level {level} must have shape (B, *{self.spatial_dims} spatial dims), "
                    f"got {tuple(level_indices.shape)}."
                )
            quantized.append(quantizer.embed(level_indices.long()))
        return quantized

    def decode_top(self, indices_top: torch.Tensor) -> torch.Tensor:
        """The top-only reconstruction: decode the coarsest level's indices alone with :attr:`top_decoder`.

        Args:
            indices_top: ``(B, *latent_shape[0])`` top-level indices.

        Returns:
            ``(B, out_channels, *spatial)``: what the top level carries of the image.

        Raises:
            ValueError: the network has no top-only decoder (``top_reconstruction_weight=None``, or one level).
        """
        if self.top_decoder is None:
            raise ValueError(
                "`decode_top` needs a top-only decoder: build the VQVAE2 with num_levels >= 2 and "
                "`top_reconstruction_weight` set (0 for a probe that does not shape the codes)."
            )
        top = self.quantizers[0].embed(indices_top.long())
        return self.output_act(self._run(self.top_decoder, top))

    def decode_samples(self, indices: Sequence[torch.Tensor]) -> torch.Tensor:
        """Decode code indices (e.g. sampled by a prior), coarsest first, to images ``(B, out_channels, *spatial)``."""
        return self.decode(self.embed(indices))

    def decode_label_samples(self, indices: Sequence[torch.Tensor]) -> torch.Tensor:
        """Decode code indices, coarsest first, to class maps ``(B, 1, *spatial)`` (long): the labels of the images
        :meth:`decode_samples` gives for the same indices.

        Raises:
            ValueError: the network has no label decoder (``label_channels=None``).
        """
        return self.decode_labels(self.embed(indices)).argmax(dim=1, keepdim=True)

    @torch.no_grad()
    def predict_labels(self, images: torch.Tensor) -> torch.Tensor:
        """Class maps ``(B, 1, *spatial)`` (long) of ``images``, read from their codes (codebooks never updated).

        Raises:
            ValueError: the network has no label decoder (``label_channels=None``), or bad ``images``.
        """
        return self.decode_labels(self._encode(images, update=False).quantized).argmax(dim=1, keepdim=True)

    def reset_codebook_usage(self) -> None:
        """Start a new usage window on every level's quantizer."""
        for quantizer in self.quantizers:
            quantizer.reset_usage()

    def codebook_usage(self, sync: bool = True) -> list[dict[str, float]]:
        """Usage statistics per level, coarsest first (see ``RestartEMAQuantizer.usage_statistics``)."""
        return [quantizer.usage_statistics(sync=sync) for quantizer in self.quantizers]
