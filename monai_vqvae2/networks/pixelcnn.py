"""Gated PixelCNN prior over VQ-VAE-2 code maps and code volumes, with optional causal self-attention and conditioning.

Its incremental (cached) evaluation is in :mod:`monai_vqvae2.networks.pixelcnn_incremental`: every tensor it computes
for one position is the same formula, on the same weights, as the full forward pass here. The layers both use are in
:mod:`monai_vqvae2.networks.pixelcnn_blocks`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.layers import Conv
from torch import nn

from monai_vqvae2.networks.pixelcnn_blocks import (
    DepthCausalStack,
    GatedMaskedBlock,
    RasterCausalSelfAttention,
    position_encoding,
    principal_components,
    scalar_encoding,
)
from monai_vqvae2.networks.pixelcnn_incremental import PixelCNNIncrementalState, PixelCNNVolumeIncrementalState

__all__ = ["ATTENTION_SPANS", "PixelCNNIncrementalState", "PixelCNNPrior"]

ATTENTION_SPANS = ("slice", "volume")


class PixelCNNPrior(nn.Module):
    """Gated PixelCNN prior over a code map (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
    Decoders", https://arxiv.org/abs/1606.05328), with optional PixelSNAIL-style causal self-attention (Chen et al.
    2018, https://arxiv.org/abs/1712.09763), as used for the VQ-VAE-2 priors (Razavi et al. 2019).

    A vertical stack (rows above) and a horizontal stack (the current row, to the left) remove the blind spot of a
    plain masked convolution; every layer is a gated residual block ``tanh(a) * sigmoid(b)``. The first layer excludes
    the current position (mask 'A'), later layers include the horizontal stream's own position (mask 'B'). After
    ``L = num_layers`` layers the logit at ``(i, j)`` depends on rows ``i - nL .. i - 1``, columns ``j - nL .. j + nL``
    and on row ``i``, columns ``j - nL .. j - 1`` (``n = kernel_size // 2``); with attention, on every earlier position
    in raster order.

    Conditioning:
        - spatial (the bottom prior): the coarser level's code map, embedded, refined by a 3×3 convolution and
          upsampled by nearest-neighbour repetition (``condition_upsample``) to this level's size, is added into every
          block through a 1×1 convolution;
        - global: class labels (``num_classes``, an embedding) and scalars (``num_scalars``, e.g. the normalised slice
          position in [0, 1], a small MLP) are added as a per-block bias;
        - position (``position_frequencies > 0``): sines and cosines of each position's row and column coordinates,
          through a small 1×1 MLP, are added to the spatial condition. Without it a PixelCNN cannot tell where in
          the map it is (the last row from any other, the centre from the border), which matters for aligned images
          such as brain slices (the coordinate "background" channels of PixelSNAIL serve the same purpose).

    Volumes (``spatial_dims=3``, a ``(D, H, W)`` code volume in raster order: slice by slice): the 2D stacks above run
    over every slice, and a depth stack (:class:`~monai_vqvae2.networks.pixelcnn_blocks.DepthCausalStack`, the vertical
    stack one dimension up, ``num_layers`` gated 3D convolutions) adds to the spatial condition of slice ``d`` what
    slices ``d - nL .. d - 1`` hold (in-plane within ``nL``; the 2D stacks then widen that further). Attention, where
    used, attends within the slice or, with ``attention_span="volume"``, to every earlier position of the volume. The
    coarser level's codes and the position encoding are three-dimensional.

    :class:`~monai_vqvae2.networks.pixelcnn_incremental.PixelCNNIncrementalState` (2D) and
    :class:`~monai_vqvae2.networks.pixelcnn_incremental.PixelCNNVolumeIncrementalState` (3D) evaluate the same network
    one position at a time with cached activations, for fast sampling (see
    :class:`monai_vqvae2.inferers.HierarchicalSampler`).

    Args:
        spatial_dims: 2 for code maps ``(B, H, W)``, 3 for code volumes ``(B, D, H, W)``.
        num_embeddings: number of codes ``K`` of the modelled level (the output classes).
        channels: hidden width ``C`` of both stacks.
        num_layers: number of gated blocks (the first one is of type 'A').
        kernel_size: odd kernel size ``k >= 3``; each layer widens the receptive field by ``k // 2``.
        attention_every: add a causal self-attention layer after every ``attention_every``-th block; 0 disables.
        num_heads: attention heads; must divide ``channels``.
        dropout: dropout probability inside the blocks and on the attention weights.
        condition_num_embeddings: codes of the conditioning (coarser) level; ``None`` for no spatial condition.
        condition_upsample: integer factor from the condition's size to this level's size.
        num_classes: number of class labels for global conditioning; 0 disables.
        num_scalars: number of scalar conditions (e.g. 1 for the slice position); 0 disables.
        position_frequencies: frequencies ``F`` of the position encoding (:func:`position_encoding`, ``2F`` features
            per axis); 0 disables.
        scalar_frequencies: frequencies ``F`` at which each scalar condition is also given as sines and cosines
            (:func:`scalar_encoding`); 0 passes the scalars as they are.
        attention_span: for a volume, what each attention layer attends to: ``"slice"`` (the earlier positions of the
            position's slice; the depth stack brings the earlier slices) or ``"volume"`` (every earlier position of
            the volume in raster order; volumes only).

    Raises:
        ValueError: an invalid argument.

    Example::

        top_prior = PixelCNNPrior(spatial_dims=2, num_embeddings=512, attention_every=4, num_scalars=1)
        bottom_prior = PixelCNNPrior(spatial_dims=2, num_embeddings=512, condition_num_embeddings=512)
        indices_top, indices_bottom = vqvae.index_quantize(images)  # (B, 32, 32), (B, 64, 64)
        logits_top = top_prior(indices_top, scalars=slice_position)  # (B, 512, 32, 32)
        logits_bottom = bottom_prior(indices_bottom, condition=indices_top)  # (B, 512, 64, 64)
        loss = F.cross_entropy(logits_bottom, indices_bottom)
        volume_prior = PixelCNNPrior(spatial_dims=3, num_embeddings=512)  # code volumes (B, D, H, W), slice by slice
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        num_embeddings: int = 512,
        channels: int = 128,
        num_layers: int = 12,
        kernel_size: int = 5,
        attention_every: int = 0,
        num_heads: int = 4,
        dropout: float = 0.0,
        condition_num_embeddings: int | None = None,
        condition_upsample: int = 2,
        num_classes: int = 0,
        num_scalars: int = 0,
        position_frequencies: int = 0,
        scalar_frequencies: int = 0,
        attention_span: str = "slice",
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"`spatial_dims` must be 2 (code maps) or 3 (code volumes), got {spatial_dims!r}.")
        for name, value, minimum in (
            ("num_embeddings", num_embeddings, 1),
            ("channels", channels, 1),
            ("num_layers", num_layers, 1),
            ("attention_every", attention_every, 0),
            ("num_heads", num_heads, 1),
            ("condition_upsample", condition_upsample, 1),
            ("num_classes", num_classes, 0),
            ("num_scalars", num_scalars, 0),
            ("position_frequencies", position_frequencies, 0),
            ("scalar_frequencies", scalar_frequencies, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"`kernel_size` must be an odd integer >= 3, got {kernel_size!r}.")
        if attention_span not in ATTENTION_SPANS:
            raise ValueError(f"`attention_span` must be one of {ATTENTION_SPANS}, got {attention_span!r}.")
        if attention_span == "volume" and spatial_dims == 2:
            raise ValueError("`attention_span='volume'` is for code volumes (`spatial_dims=3`); a map has one slice.")
        if attention_every and channels % num_heads:
            raise ValueError(f"`num_heads` ({num_heads}) must divide `channels` ({channels}) when attention is used.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1), got {dropout}.")
        if condition_num_embeddings is not None and (
            isinstance(condition_num_embeddings, bool)
            or not isinstance(condition_num_embeddings, int)
            or condition_num_embeddings < 1
        ):
            raise ValueError(
                f"`condition_num_embeddings` must be None or an integer >= 1, got {condition_num_embeddings!r}."
            )

        self.spatial_dims = spatial_dims
        self.num_embeddings = num_embeddings
        self.channels = channels
        self.num_layers = num_layers
        self.kernel_size = kernel_size
        self.attention_every = attention_every
        self.num_heads = num_heads
        self.condition_num_embeddings = condition_num_embeddings
        self.condition_upsample = condition_upsample
        self.num_classes = num_classes
        self.num_scalars = num_scalars
        self.position_frequencies = position_frequencies
        self.scalar_frequencies = scalar_frequencies
        self.attention_span = attention_span

        spatial = condition_num_embeddings is not None or position_frequencies > 0 or spatial_dims == 3
        global_ = num_classes > 0 or num_scalars > 0
        conv = Conv[Conv.CONV, spatial_dims]
        self.embedding = nn.Embedding(num_embeddings, channels)
        conditioned = condition_num_embeddings is not None
        self.condition_embedding = nn.Embedding(condition_num_embeddings, channels) if conditioned else None
        self.condition_conv = conv(channels, channels, 3, padding=1) if conditioned else None
        # a map of codes of aligned images depends on where in the map a code sits (background at the border, the
        # midline in the middle), which the convolutions and attention cannot see: give every position its coordinates
        self.position_projection = (
            nn.Sequential(
                conv(2 * spatial_dims * position_frequencies, channels, 1), nn.ELU(), conv(channels, channels, 1)
            )
            if position_frequencies
            else None
        )
        self.depth_stack = DepthCausalStack(channels, kernel_size, num_layers, dropout) if spatial_dims == 3 else None
        self.label_embedding = nn.Embedding(num_classes, channels) if num_classes else None
        self.scalar_projection = (
            nn.Sequential(
                nn.Linear(num_scalars * (1 + 2 * scalar_frequencies), channels), nn.ELU(), nn.Linear(channels, channels)
            )
            if num_scalars
            else None
        )
        self.blocks = nn.ModuleList(
            GatedMaskedBlock(channels, kernel_size, index == 0, dropout, spatial, global_)
            for index in range(num_layers)
        )
        # attention after blocks attention_every - 1, 2 * attention_every - 1, ... (keys are block indices)
        self.attentions = nn.ModuleDict(
            {
                str(index): RasterCausalSelfAttention(channels, num_heads, dropout)
                for index in range(num_layers)
                if attention_every and (index + 1) % attention_every == 0
            }
        )
        self.output = nn.Sequential(
            nn.ELU(), nn.Conv2d(channels, channels, 1), nn.ELU(), nn.Conv2d(channels, num_embeddings, 1)
        )

    # ------------------------------------------------------------------ initialisation
    @torch.no_grad()
    def init_embeddings(self, codebook: torch.Tensor, condition_codebook: torch.Tensor | None = None) -> None:
        """Start the code embeddings from the autoencoder's codebooks instead of random vectors.

        Each embedding row becomes its code's coordinates along the codebook's leading principal components, scaled to
        unit variance (as ``nn.Embedding``'s own initialisation); where ``channels`` exceeds the codebook's dimension the
        remaining columns keep their random values. Codes the autoencoder treats as alike then start alike, so
        what the prior learns about one code carries over to its neighbours from the first step. A randomly embedded
        prior has to learn 512 unrelated vectors first, and in the few hundred steps of a CPU budget it does not:
        measured on the demo's 32×32 bottom codes after 7 epochs, 2.54 bits per code from random embeddings against
        1.96 from the codebooks (``benchmarks/README.md``, "Prior embeddings", also for the top prior, where lower bits
        did not give better samples).

        Args:
            codebook: ``(num_embeddings, D)`` code vectors of the modelled level.
            condition_codebook: ``(condition_num_embeddings, D')`` code vectors of the conditioning (coarser) level;
                only for a prior built with ``condition_num_embeddings``.

        Raises:
            ValueError: a codebook whose number of rows does not match, or a condition codebook for a prior without a
                spatial condition.
        """
        targets = [("codebook", self.embedding, codebook)]
        if condition_codebook is not None:
            if self.condition_embedding is None:
                raise ValueError(
                    "`condition_codebook` was given but this prior was built without a spatial condition "
                    "(`condition_num_embeddings=None`)."
                )
            targets.append(("condition_codebook", self.condition_embedding, condition_codebook))
        for name, embedding, vectors in targets:
            if not isinstance(vectors, torch.Tensor) or vectors.ndim != 2 or len(vectors) != embedding.num_embeddings:
                shape = tuple(vectors.shape) if isinstance(vectors, torch.Tensor) else type(vectors).__name__
                raise ValueError(
                    f"`{name}` must be a ({embedding.num_embeddings}, D) tensor of code vectors, got {shape}."
                )
            components = principal_components(vectors, embedding.embedding_dim)
            embedding.weight[:, : components.shape[1]] = components.to(embedding.weight)

    # ------------------------------------------------------------------ validation and conditioning
    def check_conditions(
        self,
        batch_size: int,
        spatial_shape: Sequence[int],
        condition: torch.Tensor | None,
        labels: torch.Tensor | None,
        scalars: torch.Tensor | None,
    ) -> None:
        """Check the conditioning inputs against the constructor's settings for a ``(batch_size, *spatial_shape)`` map.

        Raises:
            ValueError: a condition that is missing, unexpected, of the wrong shape or out of range.
        """
        if self.condition_num_embeddings is None:
            if condition is not None:
                raise ValueError(
                    "`condition` was given but this prior was built without a spatial condition "
                    "(`condition_num_embeddings=None`)."
                )
        else:
            if condition is None:
                raise ValueError(
                    f"This prior was built with `condition_num_embeddings={self.condition_num_embeddings}`; "
                    "pass `condition` (the coarser level's indices, (B, h, w))."
                )
            factor = self.condition_upsample
            expected = (batch_size, *(s // factor for s in spatial_shape))
            if any(s % factor for s in spatial_shape) or tuple(condition.shape) != expected:
                raise ValueError(
                    f"`condition` must have shape {expected} (indices of shape {(batch_size, *spatial_shape)} divided "
                    f"by `condition_upsample={factor}`), got {tuple(condition.shape)}."
                )
            self._check_index_range(condition, self.condition_num_embeddings, "condition")
        if self.num_classes == 0:
            if labels is not None:
                raise ValueError("`labels` was given but this prior was built with `num_classes=0`.")
        else:
            if labels is None:
                raise ValueError(f"This prior was built with `num_classes={self.num_classes}`; pass `labels` (B,).")
            if tuple(labels.shape) != (batch_size,):
                raise ValueError(f"`labels` must have shape ({batch_size},), got {tuple(labels.shape)}.")
            self._check_index_range(labels, self.num_classes, "labels")
        if self.num_scalars == 0:
            if scalars is not None:
                raise ValueError("`scalars` was given but this prior was built with `num_scalars=0`.")
        else:
            if scalars is None:
                raise ValueError(
                    f"This prior was built with `num_scalars={self.num_scalars}`; pass `scalars` "
                    f"({batch_size}, {self.num_scalars})."
                )
            if tuple(scalars.shape) != (batch_size, self.num_scalars) or not scalars.is_floating_point():
                raise ValueError(
                    f"`scalars` must be a floating tensor of shape ({batch_size}, {self.num_scalars}), "
                    f"got {scalars.dtype} of shape {tuple(scalars.shape)}."
                )

    @staticmethod
    def _check_index_range(values: torch.Tensor, num: int, name: str) -> None:
        if values.is_floating_point() or values.is_complex() or values.dtype == torch.bool:
            raise ValueError(f"`{name}` must be an integer tensor, got {values.dtype}.")
        if values.numel() and (int(values.min()) < 0 or int(values.max()) >= num):
            raise ValueError(
                f"`{name}` values must be in [0, {num - 1}], got range [{int(values.min())}, {int(values.max())}]."
            )

    def condition_features(
        self,
        spatial_shape: Sequence[int],
        condition: torch.Tensor | None,
        labels: torch.Tensor | None,
        scalars: torch.Tensor | None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Spatial ``(B, C, *spatial_shape)`` and global ``(B, C)`` conditioning features (``None`` where unused); a
        volume prior's depth stack, which depends on the codes themselves, is not part of them."""
        spatial = None
        if self.condition_embedding is not None and condition is not None:
            embedded = self.condition_embedding(condition.long()).movedim(-1, 1)
            spatial = F.elu(self.condition_conv(embedded))
            for dim in range(2, 2 + self.spatial_dims):
                spatial = spatial.repeat_interleave(self.condition_upsample, dim=dim)
        if self.position_projection is not None:
            weight = self.position_projection[0].weight
            encoded = self.position_projection(position_encoding(spatial_shape, self.position_frequencies, weight))
            spatial = encoded if spatial is None else spatial + encoded
        global_ = None
        if self.label_embedding is not None and labels is not None:
            global_ = self.label_embedding(labels.long())
        if self.scalar_projection is not None and scalars is not None:
            projected = self.scalar_projection(
                scalar_encoding(scalars.to(self.embedding.weight.dtype), self.scalar_frequencies)
            )
            global_ = projected if global_ is None else global_ + projected
        return spatial, global_

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        indices: torch.Tensor,
        condition: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        scalars: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits of every position's code given the codes before it in raster order.

        Args:
            indices: code map ``(B, H, W)`` (or volume ``(B, D, H, W)`` for ``spatial_dims=3``), integers in
                ``[0, num_embeddings)``.
            condition: coarser level's codes, every spatial size divided by ``condition_upsample``; required exactly
                when the prior was built with ``condition_num_embeddings``.
            labels: class labels ``(B,)``; required exactly when ``num_classes > 0``.
            scalars: scalar conditions ``(B, num_scalars)``; required exactly when ``num_scalars > 0``.

        Returns:
            logits ``(B, num_embeddings, *spatial)``.

        Raises:
            ValueError: wrong shape, dtype or range of ``indices`` or of a condition, or a missing/unexpected condition.
        """
        if not isinstance(indices, torch.Tensor) or indices.ndim != 1 + self.spatial_dims:
            shape = tuple(indices.shape) if isinstance(indices, torch.Tensor) else type(indices).__name__
            expected = "a code map of shape (B, H, W)" if self.spatial_dims == 2 else "a code volume (B, D, H, W)"
            raise ValueError(f"`indices` must be {expected}, got {shape}.")
        batch_size, *spatial_shape = indices.shape
        if not torch.compiler.is_compiling():  # value checks read tensors back, which would split a compiled graph
            self._check_index_range(indices, self.num_embeddings, "indices")
            self.check_conditions(batch_size, spatial_shape, condition, labels, scalars)
        spatial, global_ = self.condition_features(spatial_shape, condition, labels, scalars)
        embedded = self.embedding(indices.long()).movedim(-1, 1)
        if self.depth_stack is not None:  # a volume: its slices become a batch of maps, conditioned on the ones before
            depth_features = self.depth_stack(embedded)
            spatial = depth_features if spatial is None else spatial + depth_features
            embedded, spatial = _slices(embedded), _slices(spatial)
            global_ = None if global_ is None else global_.repeat_interleave(spatial_shape[0], dim=0)
        vertical, horizontal = embedded, embedded
        for index, block in enumerate(self.blocks):
            vertical, horizontal = block(vertical, horizontal, block.condition_bias(spatial, global_))
            if str(index) in self.attentions:
                horizontal = self._attend(self.attentions[str(index)], horizontal, embedded, spatial_shape)
        logits = self.output(horizontal)
        if self.depth_stack is not None:
            logits = logits.view(batch_size, spatial_shape[0], *logits.shape[1:]).transpose(1, 2)
        return logits

    def _attend(
        self, attention: nn.Module, horizontal: torch.Tensor, embedded: torch.Tensor, spatial_shape: Sequence[int]
    ) -> torch.Tensor:
        """One attention layer over each map, or, for a volume with ``attention_span="volume"``, over the whole volume
        in raster order (its slices, stacked as one tall map, are the volume's raster order)."""
        if self.depth_stack is None or self.attention_span == "slice":
            return attention(horizontal, embedded)
        depth, height, width = spatial_shape
        stacked = [t.reshape(-1, depth, t.shape[1], height, width).transpose(1, 2) for t in (horizontal, embedded)]
        stacked = [t.reshape(t.shape[0], t.shape[1], depth * height, width) for t in stacked]
        attended = attention(*stacked).reshape(-1, horizontal.shape[1], depth, height, width)
        return attended.transpose(1, 2).reshape(horizontal.shape)

    def incremental_state(
        self,
        batch_size: int,
        spatial_shape: Sequence[int],
        condition: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        scalars: torch.Tensor | None = None,
    ) -> PixelCNNIncrementalState | PixelCNNVolumeIncrementalState:
        """A :class:`~monai_vqvae2.networks.pixelcnn_incremental.PixelCNNIncrementalState` (``spatial_dims=2``) or
        :class:`~monai_vqvae2.networks.pixelcnn_incremental.PixelCNNVolumeIncrementalState` (3) for generating a
        ``(batch_size, *spatial_shape)`` code map or volume position by position (call in eval mode, under
        ``torch.no_grad()``)."""
        state = PixelCNNIncrementalState if self.spatial_dims == 2 else PixelCNNVolumeIncrementalState
        return state(self, batch_size, spatial_shape, condition, labels, scalars)


def _slices(volume: torch.Tensor) -> torch.Tensor:
    """``(B, C, D, H, W)`` as the batch of maps ``(B * D, C, H, W)``, slices of one volume consecutive."""
    batch, channels, depth, height, width = volume.shape
    return volume.transpose(1, 2).reshape(batch * depth, channels, height, width)
