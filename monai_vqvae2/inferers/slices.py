"""Run a 2D slice autoencoder over every axial slice of a 3D volume, in the geometry it was trained on."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from monai.inferers import Inferer
from monai.utils import convert_to_dst_type, convert_to_tensor

from monai_vqvae2.slice_io import from_display, to_display

__all__ = ["AxialSliceInferer"]


class AxialSliceInferer(Inferer):
    """Reconstruct a volume ``(B, C, X, Y, Z)`` (RAS, axial = last axis) slice by slice with a 2D network.

    Each axial slice goes through the geometry of the training slices (``monai_vqvae2.transforms.volume_transforms``):
    rotated to display order (anterior up), scaled so its longest side is ``image_size`` (aspect ratio kept,
    anti-aliased), centre-padded to ``image_size``; the network output is mapped back the same way, so the result
    lies on the input's voxel grid. MONAI's ``SliceInferer`` tiles slices with windows instead of rescaling them,
    which would show the network brains at another scale than in training.

    Args:
        image_size: side of the square slices the network was trained on.
        sw_batch_size: slices per network call.

    Example::

        inferer = AxialSliceInferer(image_size=256)
        reconstruction = inferer(volume, VQVAE2Reconstructor(net).eval())  # same shape as volume
    """

    def __init__(self, image_size: int = 256, sw_batch_size: int = 16) -> None:
        super().__init__()
        if image_size < 1 or sw_batch_size < 1:
            raise ValueError(f"`image_size` and `sw_batch_size` must be >= 1, got {image_size} and {sw_batch_size}.")
        self.image_size = image_size
        self.sw_batch_size = sw_batch_size

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Return the slice-wise reconstruction of ``inputs``, shape ``(B, C_out, X, Y, Z)`` (a ``MetaTensor`` carrying
        the input's metadata when the input is one)."""
        if inputs.ndim != 5:
            raise ValueError(f"AxialSliceInferer expects volumes (B, C, X, Y, Z), got shape {tuple(inputs.shape)}.")
        volumes = convert_to_tensor(inputs, track_meta=False)  # per-slice views of a MetaTensor batch cannot be cut
        batch, channels, size_x, size_y, depth = volumes.shape
        slices = volumes.permute(0, 4, 1, 2, 3).reshape(batch * depth, channels, size_x, size_y)
        slices = to_display(slices)  # display order, as in training
        height, width = slices.shape[2:]
        scale = self.image_size / max(height, width)
        scaled = (max(1, round(height * scale)), max(1, round(width * scale)))
        pad_top, pad_left = (self.image_size - scaled[0]) // 2, (self.image_size - scaled[1]) // 2
        outputs = []
        for start in range(0, slices.shape[0], self.sw_batch_size):
            chunk = F.interpolate(
                slices[start : start + self.sw_batch_size].float(), size=scaled, mode="bilinear", antialias=True
            )
            padded = F.pad(
                chunk,
                (pad_left, self.image_size - scaled[1] - pad_left, pad_top, self.image_size - scaled[0] - pad_top),
            )
            prediction = network(padded, *args, **kwargs)
            prediction = prediction[:, :, pad_top : pad_top + scaled[0], pad_left : pad_left + scaled[1]]
            outputs.append(F.interpolate(prediction, size=(height, width), mode="bilinear", antialias=True))
        result = from_display(torch.cat(outputs))
        result = result.reshape(batch, depth, -1, size_x, size_y).permute(0, 2, 3, 4, 1)
        # like MONAI's inferers: a MetaTensor input gives a MetaTensor output with its metadata (for Invertd, saving)
        return convert_to_dst_type(result, inputs)[0]
