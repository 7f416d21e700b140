"""Cached, position-by-position evaluation of a :class:`~monai_vqvae2.networks.PixelCNNPrior`: of a code map, and of a
code volume slice by slice.

Every tensor these states compute for one position is the same formula, on the same weights, as the prior's full
forward pass (:mod:`monai_vqvae2.networks.pixelcnn`); the tests hold the two to the same sampled codes. The prior
builds them (``PixelCNNPrior.incremental_state``), so this module takes it as a plain ``nn.Module`` and does not
import it back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from monai_vqvae2.networks.pixelcnn_blocks import gated_activation

__all__ = ["PixelCNNIncrementalState", "PixelCNNVolumeIncrementalState", "attention_buffers"]


def _checked_request(batch_size: int, spatial_shape: Sequence[int], axes: str) -> tuple[int, ...]:
    """``spatial_shape`` as ints, checked against the ``axes`` a state generates (``"(H, W)"`` or ``"(D, H, W)"``)."""
    spatial_shape = tuple(int(s) for s in spatial_shape)
    if len(spatial_shape) != axes.count(",") + 1 or min(spatial_shape) < 1:
        raise ValueError(f"`spatial_shape` must be {axes} with positive sizes, got {spatial_shape}.")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    return spatial_shape


def attention_buffers(
    prior: nn.Module, batch_size: int, length: int
) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor], int]:
    """Empty attention keys and values of every attention layer of ``prior`` for ``length`` positions, each with the
    learned "nothing" slot first: ``(keys, values, 0)``, layer index to ``(B, heads, length + 1, head_dim)``, and the
    offset of the first position (0)."""
    weight = prior.embedding.weight
    keys, values = {}, {}
    for key, attention in prior.attentions.items():
        shape = (batch_size, attention.num_heads, length + 1, attention.head_dim)
        keys[int(key)] = torch.zeros(shape, dtype=weight.dtype, device=weight.device)
        values[int(key)] = torch.zeros_like(keys[int(key)])
        null_key, null_value = attention.null_key_value.chunk(2)
        keys[int(key)][:, :, 0] = null_key.view(attention.num_heads, attention.head_dim)
        values[int(key)][:, :, 0] = null_value.view(attention.num_heads, attention.head_dim)
    return keys, values, 0


class PixelCNNIncrementalState:
    """Cached, position-by-position evaluation of a :class:`PixelCNNPrior` (in the spirit of Fast PixelCNN++,
    Ramachandran et al. 2017, https://arxiv.org/abs/1704.06001).

    The vertical stack at row ``i`` depends only on rows above, so :meth:`begin_row` computes it for row ``i`` alone
    from cached rows of every layer (a ``1 × W`` output per layer). :meth:`logits` then runs the horizontal stack,
    attention and output head for one position from cached left neighbours, attention keys/values of all earlier
    positions, and the row's vertical-to-horizontal features. Conditioning is computed once in the constructor.
    :meth:`commit` stores the chosen code. Gives the same logits as :meth:`~monai_vqvae2.networks.PixelCNNPrior.forward` up to floating-point
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
        condition: as in :meth:`~monai_vqvae2.networks.PixelCNNPrior.forward`.
        labels: as in :meth:`~monai_vqvae2.networks.PixelCNNPrior.forward`.
        scalars: as in :meth:`~monai_vqvae2.networks.PixelCNNPrior.forward`.
        condition_features: the spatial ``(B, C, H, W)`` and global ``(B, C)`` features of the conditions (see
            :meth:`~monai_vqvae2.networks.PixelCNNPrior.condition_features`), when the caller has computed and checked them (a volume's
            slice); they replace ``condition``, ``labels`` and ``scalars``.
        attention_cache: attention keys and values of a longer sequence this map is part of, and the map's first
            position in it (:func:`attention_buffers`; a volume whose attention spans all its slices); ``None``: the
            map's own.

    Raises:
        ValueError: invalid shape or conditions (see :meth:`~monai_vqvae2.networks.PixelCNNPrior.check_conditions`).
    """

    def __init__(
        self,
        prior: nn.Module,
        batch_size: int,
        spatial_shape: Sequence[int],
        condition: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        scalars: torch.Tensor | None = None,
        condition_features: tuple[torch.Tensor | None, torch.Tensor | None] | None = None,
        attention_cache: tuple[dict[int, torch.Tensor], dict[int, torch.Tensor], int] | None = None,
    ) -> None:
        spatial_shape = _checked_request(batch_size, spatial_shape, "(H, W)")
        if condition_features is None:
            prior.check_conditions(batch_size, spatial_shape, condition, labels, scalars)
            condition_features = prior.condition_features(spatial_shape, condition, labels, scalars)
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

        spatial, global_ = condition_features
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
        self.attention_inputs: dict[int, torch.Tensor] = {}
        if attention_cache is None:
            attention_cache = attention_buffers(prior, batch_size, height * width)
        self.keys, self.values, self.offset = attention_cache
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
                out = self._attend(index, out, self.offset + self.row * self.width + column)
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
        position = self.offset + self.row * self.width + column
        for index, attention in self.attention_layers.items():
            key_value = attention.key_value(torch.cat([self.attention_inputs[index], embedded], dim=-1))
            key, value = key_value.chunk(2, dim=-1)
            self.keys[index][:, :, position + 1] = key.view(self.batch_size, attention.num_heads, attention.head_dim)
            self.values[index][:, :, position + 1] = value.view(self.batch_size, attention.num_heads, -1)


class PixelCNNVolumeIncrementalState:
    """Cached, position-by-position evaluation of a volume prior (:class:`PixelCNNPrior` with ``spatial_dims=3``) over a
    ``(D, H, W)`` code volume in raster order: slice by slice, row by row, position by position.

    At the start of slice ``d`` the depth stack (:class:`~monai_vqvae2.networks.pixelcnn_blocks.DepthCausalStack`) is
    evaluated for slice ``d`` alone, from the cached embeddings of the slices before it and the cached outputs of
    every layer; with the slice's share of the conditioning it becomes the spatial condition of a
    :class:`PixelCNNIncrementalState` that runs the 2D stacks over the slice. Rows are numbered through the volume
    (``row = d * H + h``), so a sampler drives it exactly as a 2D state::

        state = prior.incremental_state(batch_size, (D, H, W), condition=indices_top)
        for row in range(D * H):
            state.begin_row(row)
            for column in range(W):
                logits = state.logits(column)  # (B, K)
                state.commit(column, choose(logits))

    Args:
        prior: the volume prior (its current weights, dtype and device are used; put it in eval mode).
        batch_size: number of volumes generated together.
        spatial_shape: ``(D, H, W)`` of the code volume.
        condition: as in :meth:`~monai_vqvae2.networks.PixelCNNPrior.forward`.
        labels: as in :meth:`~monai_vqvae2.networks.PixelCNNPrior.forward`.
        scalars: as in :meth:`~monai_vqvae2.networks.PixelCNNPrior.forward`.

    Raises:
        ValueError: invalid shape or conditions (see :meth:`~monai_vqvae2.networks.PixelCNNPrior.check_conditions`).
    """

    def __init__(
        self,
        prior: nn.Module,
        batch_size: int,
        spatial_shape: Sequence[int],
        condition: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        scalars: torch.Tensor | None = None,
    ) -> None:
        spatial_shape = _checked_request(batch_size, spatial_shape, "(D, H, W)")
        prior.check_conditions(batch_size, spatial_shape, condition, labels, scalars)
        self.prior = prior
        self.batch_size = batch_size
        self.depth, self.height, self.width = spatial_shape
        self.spatial, self.global_ = prior.condition_features(spatial_shape, condition, labels, scalars)
        stack = prior.depth_stack
        self.half = stack.half
        weight = prior.embedding.weight
        # data of slice d at [half + d]; the zero slices before it are the forward pass's padding
        padded = (batch_size, prior.channels, stack.half + self.depth, self.height, self.width)
        self.embedded = torch.zeros(padded, dtype=weight.dtype, device=weight.device)
        self.layers = [torch.zeros_like(self.embedded) for _ in stack.convs]
        self.codes = torch.zeros((batch_size, self.height, self.width), dtype=torch.long, device=weight.device)
        self.slice_state: PixelCNNIncrementalState | None = None
        self.slice = -1
        volume_span = prior.attention_span == "volume"
        self.attention = attention_buffers(prior, batch_size, math.prod(spatial_shape)) if volume_span else None

    def _begin_slice(self, index: int) -> None:
        """Store the finished slice's codes and evaluate the depth stack for slice ``index``."""
        half, stack = self.half, self.prior.depth_stack
        if index > 0:
            embedded = F.embedding(self.codes, self.prior.embedding.weight)  # (B, H, W, C)
            self.embedded[:, :, half + index - 1] = embedded.permute(0, 3, 1, 2)
        for layer, output in enumerate(self.layers):
            if layer == 0:
                features = stack.layer(0, self.embedded[:, :, index : index + half], None)  # slices index - half ..
            else:
                previous = self.layers[layer - 1]
                features = stack.layer(
                    layer, previous[:, :, index : index + half + 1], previous[:, :, half + index : half + index + 1]
                )
            output[:, :, half + index] = features[:, :, 0]
        spatial = self.layers[-1][:, :, half + index]
        if self.spatial is not None:
            spatial = spatial + self.spatial[:, :, index]
        cache = None
        if self.attention is not None:  # attention over the whole volume: one sequence of keys for every slice
            keys, values, _ = self.attention
            cache = (keys, values, index * self.height * self.width)
        self.slice_state = PixelCNNIncrementalState(
            self.prior,
            self.batch_size,
            (self.height, self.width),
            condition_features=(spatial, self.global_),
            attention_cache=cache,
        )
        self.slice = index

    def begin_row(self, row: int) -> None:
        """Start row ``row = d * H + h`` of the volume; every earlier row must be committed."""
        index, row_in_slice = divmod(row, self.height)
        if index != self.slice:
            self._begin_slice(index)
        self.slice_state.begin_row(row_in_slice)

    def logits(self, column: int) -> torch.Tensor:
        """Logits ``(B, num_embeddings)`` of position ``column`` of the current row."""
        return self.slice_state.logits(column)

    def commit(self, column: int, indices: torch.Tensor) -> None:
        """Store the codes ``(B,)`` chosen for position ``column`` of the current row."""
        self.codes[:, self.slice_state.row, column] = indices
        self.slice_state.commit(column, indices)
