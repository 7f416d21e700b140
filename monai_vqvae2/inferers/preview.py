"""PNG previews of reconstructed volumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from PIL import Image

from monai_vqvae2.io import atomic_write
from monai_vqvae2.slice_io import to_display

__all__ = ["SaveAxialPreviewd"]


def _stem(path: str) -> str:
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".hdr", ".img", ".png"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


class SaveAxialPreviewd(MapTransform):
    """Save the middle axial slice of each key's volume ``(C, X, Y, Z)`` side by side as one PNG (display order,
    anterior up, intensities in [0, 1] clipped), named after the source file: ``<stem>_<postfix>.png``.

    Args:
        keys: the volumes to show, left to right (e.g. ``["image", "pred"]``).
        output_dir: destination folder.
        source_key: key whose ``filename_or_obj`` metadata names the source file.
        postfix: file name postfix.
        allow_missing_keys: skip missing keys instead of raising.
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: str | Path,
        source_key: str = "image",
        postfix: str = "preview",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        self.source_key = source_key
        self.postfix = postfix

    def __call__(self, data: dict) -> dict:
        panels = []
        for key in self.key_iterator(data):
            volume = torch.as_tensor(data[key]).detach().float().cpu()
            if volume.ndim != 4:
                raise ValueError(
                    f"SaveAxialPreviewd expects (C, X, Y, Z) volumes; {key!r} has shape {tuple(volume.shape)}."
                )
            middle = volume[0, :, :, volume.shape[-1] // 2]
            panels.append(to_display(middle).clamp(0, 1).numpy())
        source = getattr(data[self.source_key], "meta", {}).get("filename_or_obj", "volume")
        picture = (np.concatenate(panels, axis=1) * 255).round().astype(np.uint8)
        path = self.output_dir / f"{_stem(str(source))}_{self.postfix}.png"
        atomic_write(path, lambda temporary: Image.fromarray(picture).save(temporary, format="PNG"))
        return data
