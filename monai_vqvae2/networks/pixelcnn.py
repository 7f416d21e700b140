"""Gated PixelCNN prior over VQ-VAE-2 code maps, with optional causal self-attention and conditioning.

The network and its incremental (cached) evaluation live side by side so that the two stay in step: every tensor the
incremental state computes for one position is the same formula, on the same weights, as the full forward pass. The
layers both use are in :mod:`monai_vqvae2.networks.pixelcnn_blocks`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from monai_vqvae2.networks.pixelcnn_blocks import (
    GatedMaskedBlock,
    RasterCausalSelfAttention,
    gated_activation,
    position_encoding,
    principal_components,
    scalar_encoding,
)

__all__ = ["PixelCNNIncrementalState", "PixelCNNPrior"]


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

    Only ``spatial_dims=2`` is implemented. :class:`PixelCNNIncrementalState` evaluates the same network one position
    at a time with cached activations, for fast sampling (see :class:`monai_vqvae2.inferers.HierarchicalSampler`).

    Args:
        spatial_dims: must be 2.
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
        position_frequencies: frequencies ``F`` of the position encoding (:func:`position_encoding`, ``4F``
            features); 0 disables.
        scalar_frequencies: frequencies ``F`` at which each scalar condition is also given as sines and cosines
            (:func:`scalar_encoding`); 0 passes the scalars as they are.

    Raises:
        NotImplementedError: ``spatial_dims == 3``.
        ValueError: any other invalid argument.

    Example::

        top_prior = PixelCNNPrior(spatial_dims=2, num_embeddings=512, attention_every=4, num_scalars=1)
        bottom_prior = PixelCNNPrior(spatial_dims=2, num_embeddings=512, condition_num_embeddings=512)
        indices_top, indices_bottom = vqvae.index_quantize(images)  # (B, 32, 32), (B, 64, 64)
        logits_top = top_prior(indices_top, scalars=slice_position)  # (B, 512, 32, 32)
        logits_bottom = bottom_prior(indices_bottom, condition=indices_top)  # (B, 512, 64, 64)
        loss = F.cross_entropy(logits_bottom, indices_bottom)
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
    ) -> None:
        super().__init__()
        if spatial_dims == 3:
            raise NotImplementedError(
                "PixelCNNPrior supports `spatial_dims=2` only; 3D code maps (a depth stack) are not implemented."
            )
        if spatial_dims != 2:
            raise ValueError(f"`spatial_dims` must be 2, got {spatial_dims}.")
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

        spatial = condition_num_embeddings is not None or position_frequencies > 0
        global_ = num_classes > 0 or num_scalars > 0
        self.embedding = nn.Embedding(num_embeddings, channels)
        conditioned = condition_num_embeddings is not None
        self.condition_embedding = nn.Embedding(condition_num_embeddings, channels) if conditioned else None
        self.condition_conv = nn.Conv2d(channels, channels, 3, padding=1) if conditioned else None
        # a map of codes of aligned images depends on where in the map a code sits (background at the border, the
        # midline in the middle), which the convolutions and attention cannot see: give every position its coordinates
        self.position_projection = (
            nn.Sequential(nn.Conv2d(4 * position_frequencies, channels, 1), nn.ELU(), nn.Conv2d(channels, channels, 1))
            if position_frequencies
            else None
        )
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
        """Spatial ``(B, C, H, W)`` and global ``(B, C)`` conditioning features (``None`` where unused)."""
        spatial = None
        if self.condition_embedding is not None and condition is not None:
            embedded = self.condition_embedding(condition.long()).permute(0, 3, 1, 2)
            spatial = F.elu(self.condition_conv(embedded))
            factor = self.condition_upsample
            spatial = spatial.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)
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
            indices: code map ``(B, H, W)``, integers in ``[0, num_embeddings)``.
            condition: coarser level's code map ``(B, H / condition_upsample, W / condition_upsample)``; required
                exactly when the prior was built with ``condition_num_embeddings``.
            labels: class labels ``(B,)``; required exactly when ``num_classes > 0``.
            scalars: scalar conditions ``(B, num_scalars)``; required exactly when ``num_scalars > 0``.

        Returns:
            logits ``(B, num_embeddings, H, W)``.

        Raises:
            ValueError: wrong shape, dtype or range of ``indices`` or of a condition, or a missing/unexpected condition.
        """
        if not isinstance(indices, torch.Tensor) or indices.ndim != 3:
            shape = tuple(indices.shape) if isinstance(indices, torch.Tensor) else type(indices).__name__
            raise ValueError(f"`indices` must be a code map of shape (B, H, W), got {shape}.")
        batch_size, *spatial_shape = indices.shape
        if not torch.compiler.is_compiling():  # value checks read tensors back, which would split a compiled graph
            self._check_index_range(indices, self.num_embeddings, "indices")
            self.check_conditions(batch_size, spatial_shape, condition, labels, scalars)
        spatial, global_ = self.condition_features(spatial_shape, condition, labels, scalars)
        embedded = self.embedding(indices.long()).permute(0, 3, 1, 2)
        vertical, horizontal = embedded, embedded
        for index, block in enumerate(self.blocks):
            vertical, horizontal = block(vertical, horizontal, block.condition_bias(spatial, global_))
            if str(index) in self.attentions:
                horizontal = self.attentions[str(index)](horizontal, embedded)
        return self.output(horizontal)

    def incremental_state(
        self,
        batch_size: int,
        spatial_shape: Sequence[int],
        condition: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        scalars: torch.Tensor | None = None,
    ) -> PixelCNNIncrementalState:
        """A :class:`PixelCNNIncrementalState` for generating a ``(batch_size, *spatial_shape)`` map position by
        position (call in eval mode, under ``torch.no_grad()``)."""
        return PixelCNNIncrementalState(self, batch_size, spatial_shape, condition, labels, scalars)


class PixelCNNIncrementalState:
    """Cached, position-by-position evaluation of a :class:`PixelCNNPrior` (in the spirit of Fast PixelCNN++,
    Ramachandran et al. 2017, https://arxiv.org/abs/1704.06001).

    The vertical stack at row ``i`` depends only on rows above, so :meth:`begin_row` computes it for row ``i`` alone
    from cached rows of every layer (a ``1 × W`` output per layer). :meth:`logits` then runs the horizontal stack,
    attention and output head for one position from cached left neighbours, attention keys/values of all earlier
    positions, and the row's vertical-to-horizontal features. Conditioning is computed once in the constructor.
    :meth:`commit` stores the chosen code. Gives the same logits as :meth:`PixelCNNPrior.forward` up to floating-point
    summation order. Usage, in raster order::

        state = prior.incremental_state(batch_size, (H, W), condition=indices_top)
        for row in range(H):
            state.begin_row(row)
            for column in range(W):
                logits = state.logits(column)  # (B, K)
                state.commit(column, choose(logits))

    Args:
        prior: the network (its current weights, dtype and device are used; put it in eval mode).
        batch_size: number of maps generated together.
        spatial_shape: ``(H, W)`` of the map.
        condition: as in :meth:`PixelCNNPrior.forward`.
        labels: as in :meth:`PixelCNNPrior.forward`.
        scalars: as in :meth:`PixelCNNPrior.forward`.

    Raises:
        ValueError: invalid shape or conditions (see :meth:`PixelCNNPrior.check_conditions`).
    """

    def __init__(
        self,
        prior: PixelCNNPrior,
        batch_size: int,
        spatial_shape: Sequence[int],
        condition: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        scalars: torch.Tensor | None = None,
    ) -> None:
        spatial_shape = tuple(int(s) for s in spatial_shape)
        if len(spatial_shape) != 2 or min(spatial_shape) < 1:
            raise ValueError(f"`spatial_shape` must be (H, W) with positive sizes, got {spatial_shape}.")
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
        prior.check_conditions(batch_size, spatial_shape, condition, labels, scalars)
        self.prior = prior
        self.batch_size = batch_size
        self.height, self.width = spatial_shape
        self.row = -1
        half = prior.kernel_size // 2
        self.half = half
        channels = prior.channels
        weight = prior.embedding.weight
        options = {"dtype": weight.dtype, "device": weight.device}
        height, width = spatial_shape

        spatial, global_ = prior.condition_features(spatial_shape, condition, labels, scalars)
        self.spatial = spatial is not None
        self.biases = [block.condition_bias(spatial, global_) for block in prior.blocks]
        # padded maps (data at [half + i, half + j]) of the code embedding and of each block's vertical output
        self.embedded = torch.zeros(batch_size, channels, height + half, width + 2 * half, **options)
        self.vertical = [torch.zeros_like(self.embedded) for _ in prior.blocks]
        # current row, channels last (data at [:, half + j]): code embedding and each layer's horizontal output
        self.embedded_row = torch.zeros(batch_size, width + half, channels, **options)
        self.rows = [torch.zeros_like(self.embedded_row) for _ in prior.blocks]
        self.row_features: list[torch.Tensor] = [self.embedded_row] * len(prior.blocks)  # set by begin_row
        # per-position weights of the horizontal convolutions, laid out to match a (B, kernel, C) slice
        self.horizontal_weights = [
            block.horizontal.weight.squeeze(2).permute(0, 2, 1).reshape(2 * channels, -1) for block in prior.blocks
        ]
        self.horizontal_out_weights = [block.horizontal_out.weight.flatten(1) for block in prior.blocks]
        self.attention_layers = {int(key): module for key, module in prior.attentions.items()}
        length = height * width
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}
        self.attention_inputs: dict[int, torch.Tensor] = {}
        for index, attention in self.attention_layers.items():
            shape = (batch_size, attention.num_heads, length + 1, attention.head_dim)
            self.keys[index] = torch.zeros(shape, **options)
            self.values[index] = torch.zeros(shape, **options)
            null_key, null_value = attention.null_key_value.chunk(2)
            self.keys[index][:, :, 0] = null_key.view(attention.num_heads, attention.head_dim)
            self.values[index][:, :, 0] = null_value.view(attention.num_heads, attention.head_dim)
        output = prior.output
        self.output_weights = (output[1].weight.flatten(1), output[1].bias, output[3].weight.flatten(1), output[3].bias)

    def begin_row(self, row: int) -> None:
        """Compute every layer's vertical stack for ``row``; all rows above must be committed."""
        half, width = self.half, self.width
        self.row = row
        for index, block in enumerate(self.prior.blocks):
            if block.first:
                source = self.embedded[:, :, row : row + half]  # code rows row - half .. row - 1
            else:
                source = self.vertical[index - 1][:, :, row : row + half + 1]  # rows row - half .. row
            features = block.vertical(source)  # (B, 2C, 1, W)
            bias = self.biases[index]
            if bias is not None:
                bias = bias[:, :, row : row + 1] if self.spatial else bias
                features = features + bias
            to_horizontal = block.vertical_to_horizontal(features)
            if bias is not None:
                to_horizontal = to_horizontal + bias
            self.row_features[index] = to_horizontal[:, :, 0].transpose(1, 2).contiguous()  # (B, W, 2C)
            out = gated_activation(features, 1)
            if not block.first:
                out = out + self.vertical[index - 1][:, :, half + row : half + row + 1, half : half + width]
            self.vertical[index][:, :, half + row : half + row + 1, half : half + width] = out

    def logits(self, column: int) -> torch.Tensor:
        """Logits ``(B, num_embeddings)`` of position ``(row, column)``; every earlier position must be committed."""
        half, batch = self.half, self.batch_size
        horizontal = self.embedded_row
        for index, block in enumerate(self.prior.blocks):
            if block.first:
                window = horizontal[:, column : column + half]  # columns column - half .. column - 1
            else:
                window = horizontal[:, column : column + half + 1]  # columns column - half .. column
            features = F.linear(window.reshape(batch, -1), self.horizontal_weights[index], block.horizontal.bias)
            features = features + self.row_features[index][:, column]
            out = F.linear(
                gated_activation(features, -1), self.horizontal_out_weights[index], block.horizontal_out.bias
            )
            if not block.first:
                out = out + horizontal[:, half + column]
            if index in self.attention_layers:
                self.attention_inputs[index] = out
                out = self._attend(index, out, self.row * self.width + column)
            self.rows[index][:, half + column] = out
            horizontal = self.rows[index]
        weight1, bias1, weight2, bias2 = self.output_weights
        hidden = F.linear(F.elu(horizontal[:, half + column]), weight1, bias1)
        return F.linear(F.elu(hidden), weight2, bias2)

    def _attend(self, index: int, stream: torch.Tensor, position: int) -> torch.Tensor:
        attention = self.attention_layers[index]
        query = attention.query(stream).view(self.batch_size, attention.num_heads, 1, attention.head_dim)
        keys = self.keys[index][:, :, : position + 1]  # the "nothing" slot and positions before `position`
        scores = (query @ keys.transpose(-1, -2)) * attention.scale
        attended = torch.softmax(scores, dim=-1) @ self.values[index][:, :, : position + 1]
        return stream + attention.out(attended.reshape(self.batch_size, -1))

    def commit(self, column: int, indices: torch.Tensor) -> None:
        """Store the codes ``(B,)`` chosen for position ``(row, column)``."""
        half = self.half
        embedded = F.embedding(indices, self.prior.embedding.weight)  # (B, C)
        self.embedded[:, :, half + self.row, half + column] = embedded
        self.embedded_row[:, half + column] = embedded
        position = self.row * self.width + column
        for index, attention in self.attention_layers.items():
            key_value = attention.key_value(torch.cat([self.attention_inputs[index], embedded], dim=-1))
            key, value = key_value.chunk(2, dim=-1)
            self.keys[index][:, :, position + 1] = key.view(self.batch_size, attention.num_heads, attention.head_dim)
            self.values[index][:, :, position + 1] = value.view(self.batch_size, attention.num_heads, -1)
