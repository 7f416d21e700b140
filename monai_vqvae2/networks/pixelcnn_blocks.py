"""The layers of the gated PixelCNN prior: gated masked convolution blocks, the depth stack of volume priors, causal
self-attention in raster order, and the sine/cosine encodings of code positions and global scalars.

:class:`~monai_vqvae2.networks.PixelCNNPrior` stacks them, and its incremental state re-evaluates them one position at
a time from the same weights (:mod:`monai_vqvae2.networks.pixelcnn`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DepthCausalStack",
    "GatedMaskedBlock",
    "RasterCausalSelfAttention",
    "gated_activation",
    "position_encoding",
    "principal_components",
    "scalar_encoding",
]


def gated_activation(features: torch.Tensor, dim: int) -> torch.Tensor:
    """Gated activation ``tanh(a) * sigmoid(b)`` of the two halves of ``features`` along ``dim``."""
    value, gate = features.chunk(2, dim=dim)
    return torch.tanh(value) * torch.sigmoid(gate)


def position_encoding(spatial_shape: Sequence[int], frequencies: int, like: torch.Tensor) -> torch.Tensor:
    """Sines and cosines of the normalised coordinates of every position of a ``(H, W)`` or ``(D, H, W)`` map.

    Args:
        spatial_shape: ``(H, W)`` or ``(D, H, W)``.
        frequencies: ``F``; axis coordinates ``c`` in (-1, 1) (cell centres) give ``sin(2^k pi c)``, ``cos(2^k pi c)``
            for ``k = 0 .. F - 1``.
        like: a tensor whose dtype and device the encoding takes.

    Returns:
        ``(1, 2F * N, *spatial_shape)`` for ``N`` axes: the first axis's features, then the next axis's.
    """
    axes = []
    for axis, size in enumerate(spatial_shape):
        centres = (2 * torch.arange(size, dtype=like.dtype, device=like.device) + 1) / size - 1
        angles = (
            centres[None] * (math.pi * 2.0 ** torch.arange(frequencies, dtype=like.dtype, device=like.device))[:, None]
        )
        features = torch.cat([torch.sin(angles), torch.cos(angles)])  # (2F, size)
        shape = [1, 2 * frequencies] + [1] * len(spatial_shape)
        shape[2 + axis] = size
        axes.append(features.view(shape).expand(1, 2 * frequencies, *spatial_shape))
    return torch.cat(axes, dim=1)


def principal_components(vectors: torch.Tensor, max_components: int) -> torch.Tensor:
    """Coordinates of ``vectors`` ``(N, D)`` along their leading principal components, each scaled to unit variance.

    Args:
        vectors: one row per vector.
        max_components: at most this many components (fewer when ``min(N, D)`` is smaller).

    Returns:
        ``(N, k)`` in float64, ``k = min(max_components, rank)``: directions without variance (beyond the vectors'
        numerical rank) are left out. Each component's sign is fixed so that its largest-magnitude coordinate is
        positive (the result does not depend on the SVD routine's sign convention).
    """
    precision = torch.finfo(vectors.dtype if vectors.is_floating_point() else torch.float64).eps
    centred = vectors.detach().to(torch.float64)
    centred = centred - centred.mean(dim=0)
    _, singular_values, right = torch.linalg.svd(centred, full_matrices=False)
    tolerance = singular_values.max() * max(centred.shape) * precision
    rank = int((singular_values > tolerance).sum())
    coordinates = centred @ right[: min(max_components, rank)].T
    if rank == 0:  # identical vectors: no direction to take
        return coordinates
    largest = coordinates.gather(0, coordinates.abs().argmax(dim=0, keepdim=True))
    coordinates = coordinates * torch.where(largest < 0, -1.0, 1.0)
    return coordinates / coordinates.std(dim=0, keepdim=True)


def scalar_encoding(scalars: torch.Tensor, frequencies: int) -> torch.Tensor:
    """Scalars ``(B, S)`` with their sines and cosines ``sin(2^k pi s)``, ``cos(2^k pi s)``, ``k = 0 .. F - 1``.

    A small MLP on a raw scalar in [0, 1] learns only slow functions of it in a short training; anatomy changes fast
    with the slice position (the temporal lobes join the frontal lobe within a few millimetres), so the prior gets the
    position at several frequencies too, as the code positions get theirs (:func:`position_encoding`).

    Returns:
        ``(B, S * (1 + 2F))``: the scalars, then per frequency the sines, then the cosines.
    """
    if not frequencies:
        return scalars
    angles = (
        scalars[:, None, :]
        * (math.pi * 2.0 ** torch.arange(frequencies, dtype=scalars.dtype, device=scalars.device))[:, None]
    )
    return torch.cat([scalars, torch.sin(angles).flatten(1), torch.cos(angles).flatten(1)], dim=1)


class GatedMaskedBlock(nn.Module):
    """One gated layer with a vertical and a horizontal stack (van den Oord et al. 2016, Fig. 2).

    Masks are realised by padding and cropping instead of zeroed weights. The vertical stack at ``(i, j)`` always sees
    rows strictly above ``i`` only (columns ``j - n .. j + n`` per layer, ``n = kernel_size // 2``), so it can feed the
    horizontal stack at the same position without a blind spot. The horizontal stack sees columns ``j - n .. j - 1``
    of row ``i`` in the first layer (mask type 'A') and ``j - n .. j`` afterwards (type 'B').

    Args:
        channels: width of both stacks.
        kernel_size: odd size of the masked kernels.
        first: the first layer (mask type 'A': the current position is hidden; no residual connection).
        dropout: dropout of the gated outputs.
        spatial_condition: add a 1x1-convolved spatial condition (e.g. the coarser level's codes) to the gates.
        global_condition: add a linear map of a global condition (labels, scalars) to the gates.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        first: bool,
        dropout: float,
        spatial_condition: bool,
        global_condition: bool,
    ) -> None:
        super().__init__()
        half = kernel_size // 2
        self.first = first
        self.half = half
        self.vertical = nn.Conv2d(channels, 2 * channels, (half if first else half + 1, kernel_size))
        self.horizontal = nn.Conv2d(channels, 2 * channels, (1, half if first else half + 1))
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal_out = nn.Conv2d(channels, channels, 1)
        self.dropout = nn.Dropout(dropout)
        self.spatial_condition = nn.Conv2d(channels, 2 * channels, 1, bias=False) if spatial_condition else None
        self.global_condition = nn.Linear(channels, 2 * channels, bias=False) if global_condition else None

    def condition_bias(self, spatial: torch.Tensor | None, global_: torch.Tensor | None) -> torch.Tensor | None:
        """``(B, 2C, H, W)`` (spatial condition), ``(B, 2C, 1, 1)`` (global only) or ``None``."""
        bias = self.spatial_condition(spatial) if self.spatial_condition is not None else None
        if self.global_condition is not None:
            global_bias = self.global_condition(global_)[:, :, None, None]
            bias = global_bias if bias is None else bias + global_bias
        return bias

    def forward(
        self, vertical: torch.Tensor, horizontal: torch.Tensor, bias: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        half = self.half
        height, width = vertical.shape[-2:]
        if self.first:  # type 'A': drop the current row / column before shifting them in
            vertical_in = F.pad(vertical[:, :, : height - 1], (half, half, half, 0))
            horizontal_in = F.pad(horizontal[..., : width - 1], (half, 0, 0, 0))
        else:
            vertical_in = F.pad(vertical, (half, half, half, 0))
            horizontal_in = F.pad(horizontal, (half, 0, 0, 0))
        vertical_features = self.vertical(vertical_in)
        if bias is not None:
            vertical_features = vertical_features + bias
        horizontal_features = self.horizontal(horizontal_in) + self.vertical_to_horizontal(vertical_features)
        if bias is not None:
            horizontal_features = horizontal_features + bias
        vertical_out = self.dropout(gated_activation(vertical_features, 1))
        horizontal_out = self.horizontal_out(self.dropout(gated_activation(horizontal_features, 1)))
        if self.first:  # no residual: it would pass the current position's code through
            return vertical_out, horizontal_out
        return vertical + vertical_out, horizontal + horizontal_out


class DepthCausalStack(nn.Module):
    """The depth stack of a volume prior: the vertical stack of :class:`GatedMaskedBlock` taken one dimension up.

    A PixelCNN over a ``(D, H, W)`` code volume in raster order runs its 2D stacks slice by slice; this stack gives
    every position of slice ``d`` what the slices before it hold. Its output at slice ``d`` depends only on slices
    ``d - nL .. d - 1`` (``n = kernel_size // 2``, ``L = num_layers``), at in-plane distance up to ``nL``, so it can
    be added to the condition of every position of slice ``d`` without a blind spot. Like the vertical stack, the first
    layer's kernel covers ``n`` earlier slices (the current one excluded) and later layers ``n + 1`` (their input at
    slice ``d`` already excludes it); every layer is gated, and later layers are residual.

    Args:
        channels: width of the stack (the code embedding's).
        kernel_size: odd in-plane kernel size; the depth kernel is ``kernel_size // 2`` (``+ 1`` after the first layer).
        num_layers: gated 3D convolution layers.
        dropout: dropout of the gated outputs.
    """

    def __init__(self, channels: int, kernel_size: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        half = kernel_size // 2
        self.half = half
        self.convs = nn.ModuleList(
            nn.Conv3d(channels, 2 * channels, (half + (index > 0), kernel_size, kernel_size), padding=(0, half, half))
            for index in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)

    def layer(self, index: int, window: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        """Output of layer ``index`` at the slices its depth ``window`` ends before (first layer) or at (later ones).

        Args:
            index: layer index.
            window: ``(B, C, S, H, W)`` consecutive input slices: the code embedding for layer 0 (its output at
                slice ``d`` reads slices ``d - n .. d - 1``), the previous layer's output after it (``d - n .. d``).
            residual: the previous layer's output at the output slices; ``None`` for the first layer.

        Returns:
            ``(B, C, S - n + 1, H, W)`` for the first layer, ``(B, C, S - n, H, W)`` for later ones.
        """
        out = self.dropout(gated_activation(self.convs[index](window), 1))
        return out if residual is None else out + residual

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        """Depth features ``(B, C, D, H, W)`` of the embedded code volume ``(B, C, D, H, W)``: slice ``d`` of the result
        depends on slices before ``d`` only."""
        depth = embedded.shape[2]
        shift = (0, 0, 0, 0, self.half, 0)  # zero slices before the first one
        features = self.layer(0, F.pad(embedded, shift), None)[:, :, :depth]
        for index in range(1, len(self.convs)):
            features = self.layer(index, F.pad(features, shift), features)
        return features


class RasterCausalSelfAttention(nn.Module):
    """Multi-head self-attention in raster order (PixelSNAIL, Chen et al. 2018, https://arxiv.org/abs/1712.09763).

    Position ``p`` attends to a learned "nothing" slot and to every position ``q < p``, whose keys and values are
    computed from the horizontal stream at ``q`` and the embedding of the code at ``q``. The current position's code
    is excluded (strictly earlier positions only), so the prior stays autoregressive.

    Args:
        channels: width of the stream and of the code embedding.
        num_heads: attention heads (``channels`` must be divisible by it).
        dropout: dropout of the attention weights during training.
    """

    def __init__(self, channels: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.query = nn.Linear(channels, channels)
        self.key_value = nn.Linear(2 * channels, 2 * channels)
        self.null_key_value = nn.Parameter(torch.zeros(2 * channels))
        self.out = nn.Linear(channels, channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, horizontal: torch.Tensor, embedded: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = horizontal.shape
        length = height * width
        stream = horizontal.flatten(2).transpose(1, 2)  # (B, N, C)
        codes = embedded.flatten(2).transpose(1, 2)
        query = self.query(stream).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        key_value = self.key_value(torch.cat([stream, codes], dim=-1))
        key_value = torch.cat([self.null_key_value.expand(batch, 1, -1), key_value], dim=1)  # (B, N + 1, 2C)
        key, value = (
            t.reshape(batch, length + 1, self.num_heads, self.head_dim).transpose(1, 2) for t in key_value.chunk(2, -1)
        )
        # query p may use key slots 0 ("nothing") .. p, i.e. positions q < p: with N queries and N + 1 keys that is
        # exactly the top-left-aligned causal mask of the fused kernel (no N x N mask or weights tensor in Python)
        attended = F.scaled_dot_product_attention(
            query, key, value, dropout_p=self.dropout.p if self.training else 0.0, is_causal=True, scale=self.scale
        )
        attended = attended.transpose(1, 2).reshape(batch, length, channels)
        return horizontal + self.out(attended).transpose(1, 2).reshape(batch, channels, height, width)
