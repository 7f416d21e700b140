"""Building blocks of the VQ-VAE-2 encoders and decoders, one code path for 2D and 3D."""

from __future__ import annotations

import math

import torch
from monai.networks.layers import Act, Conv, get_act_layer
from torch import nn

__all__ = ["DownsampleEncoder", "ResidualStack", "UpsampleDecoder", "num_halvings"]


def num_halvings(factor: int, name: str = "downsample factor") -> int:
    """Number of stride-2 stages that make up a power-of-two resampling ``factor``.

    Raises:
        ValueError: when ``factor`` is not a power of two >= 2.
    """
    if factor < 2 or factor & (factor - 1):
        raise ValueError(f"Each {name} must be a power of two >= 2, got {factor}.")
    return int(math.log2(factor))


class ResidualStack(nn.Module):
    """``num_res_layers`` residual units ``x + conv1x1(act(conv3x3(act(x))))`` followed by an activation, as in
    VQ-VAE (van den Oord et al. 2017) and VQ-VAE-2 (Razavi et al. 2019).

    Args:
        spatial_dims: 2 or 3.
        channels: channels in and out.
        num_res_layers: number of residual units.
        num_res_channels: hidden channels inside each unit.
        act: activation name or ``(name, kwargs)``.
    """

    def __init__(
        self, spatial_dims: int, channels: int, num_res_layers: int, num_res_channels: int, act: str | tuple = Act.RELU
    ) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        self.units = nn.ModuleList(
            nn.Sequential(
                get_act_layer(act),
                conv(channels, num_res_channels, kernel_size=3, padding=1),
                get_act_layer(act),
                conv(num_res_channels, channels, kernel_size=1),
            )
            for _ in range(num_res_layers)
        )
        self.act = get_act_layer(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.units:
            x = x + unit(x)
        return self.act(x)


class DownsampleEncoder(nn.Sequential):
    """Stride-2 4×4 convolutions (one per halving), a 3×3 convolution and a residual stack.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        channels: output (hidden) channels; intermediate stride-2 stages use ``channels // 2``.
        factor: total downsampling, a power of two.
        num_res_layers: residual units after the convolutions.
        num_res_channels: hidden channels of the residual units.
        act: activation name or ``(name, kwargs)``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        channels: int,
        factor: int,
        num_res_layers: int,
        num_res_channels: int,
        act: str | tuple = Act.RELU,
    ) -> None:
        conv = Conv[Conv.CONV, spatial_dims]
        halvings = num_halvings(factor)
        layers: list[nn.Module] = []
        current = in_channels
        for stage in range(halvings):
            out = channels if stage == halvings - 1 and halvings > 1 else max(channels // 2, 1)
            layers += [conv(current, out, kernel_size=4, stride=2, padding=1), get_act_layer(act)]
            current = out
        layers += [
            conv(current, channels, kernel_size=3, padding=1),
            ResidualStack(spatial_dims, channels, num_res_layers, num_res_channels, act),
        ]
        super().__init__(*layers)


class UpsampleDecoder(nn.Sequential):
    """A 3×3 convolution, a residual stack and stride-2 4×4 transposed convolutions (one per doubling).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels (no activation after the last layer).
        channels: hidden channels; intermediate stride-2 stages use ``channels // 2``.
        factor: total upsampling, a power of two.
        num_res_layers: residual units before the transposed convolutions.
        num_res_channels: hidden channels of the residual units.
        act: activation name or ``(name, kwargs)``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        channels: int,
        factor: int,
        num_res_layers: int,
        num_res_channels: int,
        act: str | tuple = Act.RELU,
    ) -> None:
        conv = Conv[Conv.CONV, spatial_dims]
        conv_transpose = Conv[Conv.CONVTRANS, spatial_dims]
        doublings = num_halvings(factor, "upsample factor")
        layers: list[nn.Module] = [
            conv(in_channels, channels, kernel_size=3, padding=1),
            ResidualStack(spatial_dims, channels, num_res_layers, num_res_channels, act),
        ]
        current = channels
        for stage in range(doublings):
            last = stage == doublings - 1
            out = out_channels if last else max(channels // 2, 1)
            layers.append(conv_transpose(current, out, kernel_size=4, stride=2, padding=1))
            if not last:
                layers.append(get_act_layer(act))
            current = out
        super().__init__(*layers)
