"""Where the slices come from: tensors ``(N, 1, H, W)``, datasets of dict items with an ``"image"`` (read lazily),
and folders of generated samples written by :func:`~monai_vqvae2.inferers.write_samples`.

:class:`ImageSet` gives every measure of the report the same random and batched access to any of them, with the same
checks of shape and range; :func:`load_sample_folder` reads a samples folder back into the images it was given.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from monai.utils import convert_to_tensor

from monai_vqvae2.slice_io import read_slice_nifti

__all__ = ["ImageSet", "SampleFolder", "check_same_size", "load_sample_folder", "load_sample_labels"]

# image values may exceed [0, 1] by this much (interpolation round-off) before an input is refused
RANGE_TOLERANCE = 1e-3


class SampleFolder(NamedTuple):
    """What :func:`load_sample_folder` returns.

    Attributes:
        images: ``(N, 1, H, W)`` float32 in [0, 1], display order (anterior up), as given to ``write_samples``.
        positions: the normalised slice position of each sample (0 = inferior, 1 = superior), or ``None`` when the
            manifest records none (absent or ``null``).
    """

    images: torch.Tensor
    positions: list[float] | None


class ImageSet:
    """Random and batched access to 2D slices ``(1, H, W)`` in [0, 1] held in a tensor ``(N, 1, H, W)`` or in a
    dataset of dict items with an ``"image"`` (e.g. :func:`~monai_vqvae2.data.make_slice_dataset`)."""

    def __init__(self, source: Any, name: str) -> None:
        self.name = name
        self._tensor: torch.Tensor | None = None
        self._dataset: Any = None
        if isinstance(source, ImageSet):  # a view keeps the name used in error messages
            self.name, self._tensor, self._dataset = source.name, source._tensor, source._dataset
            self.spatial_shape = source.spatial_shape
            return
        if isinstance(source, torch.Tensor):
            tensor = convert_to_tensor(source, track_meta=False).detach().float().cpu()
            if tensor.ndim != 4 or tensor.shape[1] != 1:
                raise ValueError(
                    f"`{name}` must have shape (N, 1, H, W) (single-channel 2D slices), got {tuple(tensor.shape)}."
                )
            if tensor.shape[0] == 0:
                raise ValueError(f"`{name}` is empty: no slices to compare.")
            self._check_range(tensor, name)
            self._tensor = tensor.clamp(0, 1)
            self.spatial_shape = tuple(tensor.shape[2:])
            return
        if isinstance(source, (str, os.PathLike, dict)) or not hasattr(source, "__getitem__"):
            raise TypeError(
                f"`{name}` must be a tensor (N, 1, H, W) or a dataset of dicts with an 'image', "
                f"got {type(source).__name__}."
            )
        if len(source) == 0:
            raise ValueError(f"`{name}` is empty: no slices to compare.")
        self._dataset = source
        self.spatial_shape = tuple(self._item(0).shape[1:])

    @staticmethod
    def _check_range(tensor: torch.Tensor, name: str) -> None:
        low, high = float(tensor.min()), float(tensor.max())
        if not (math.isfinite(low) and math.isfinite(high)) or low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
            raise ValueError(f"`{name}` must hold intensities in [0, 1], got values in [{low:.4g}, {high:.4g}].")

    def _item(self, index: int) -> torch.Tensor:
        item = self._dataset[index]
        if not isinstance(item, dict) or "image" not in item:
            raise TypeError(f"`{self.name}[{index}]` must be a dict with an 'image', got {type(item).__name__}.")
        image = convert_to_tensor(item["image"], track_meta=False, dtype=torch.float32)
        expected = getattr(self, "spatial_shape", None)
        if image.ndim != 3 or image.shape[0] != 1 or (expected is not None and tuple(image.shape[1:]) != expected):
            wanted = f"(1, {expected[0]}, {expected[1]})" if expected is not None else "(1, H, W)"
            raise ValueError(f"`{self.name}[{index}]['image']` must have shape {wanted}, got {tuple(image.shape)}.")
        self._check_range(image, f"{self.name}[{index}]['image']")
        return image.clamp(0, 1)

    def __len__(self) -> int:
        return len(self._tensor) if self._tensor is not None else len(self._dataset)

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        """Slices ``indices`` as ``(len(indices), 1, H, W)``."""
        if self._tensor is not None:
            return self._tensor[torch.as_tensor(list(indices), dtype=torch.long)]
        if not len(indices):
            return torch.zeros((0, 1, *self.spatial_shape))
        return torch.stack([self._item(int(index)) for index in indices])

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """All slices in order, ``batch_size`` at a time."""
        for start in range(0, len(self), batch_size):
            yield self.get(range(start, min(start + batch_size, len(self))))

    def positions(self) -> list[float] | None:
        """The ``"slice_position"`` of every slice when the dataset records it for all of them, else ``None``."""
        if self._dataset is None:
            return None
        items = getattr(self._dataset, "slice_items", None)  # SliceDataset: metadata without decoding pixels
        if items is None:
            items = [self._dataset[index] for index in range(len(self))]
        positions = [item.get("slice_position") if isinstance(item, dict) else None for item in items]
        return None if any(p is None for p in positions) else [float(p) for p in positions]

    def subset(self, indices: Sequence[int]) -> ImageSet:
        """A view of slices ``indices`` (same name, lazy for datasets)."""
        view = ImageSet(self, self.name)
        if self._tensor is not None:
            view._tensor = self._tensor[torch.as_tensor(list(indices), dtype=torch.long)]
        else:
            view._dataset = _DatasetView(self._dataset, indices)
        return view

    def labels(self, indices: Sequence[int]) -> torch.Tensor:
        """The ``"label"`` maps of slices ``indices`` as ``(len(indices), 1, H, W)`` int64.

        Raises:
            ValueError: the slices are a tensor (no labels), or an item has no ``"label"`` of the image's shape.
        """
        if self._dataset is None:
            raise ValueError(f"`{self.name}` is a tensor of images: give a dataset of {{'image', 'label'}} items.")
        maps = []
        for index in indices:
            item = self._dataset[int(index)]
            label = item.get("label") if isinstance(item, dict) else None
            if label is None or tuple(label.shape) != (1, *self.spatial_shape):
                found = "no 'label'" if label is None else f"a 'label' of shape {tuple(label.shape)}"
                raise ValueError(
                    f"`{self.name}[{int(index)}]` has {found}; label agreement needs (1, "
                    f"{', '.join(map(str, self.spatial_shape))}) label maps (slices made with labels=True)."
                )
            maps.append(convert_to_tensor(label, track_meta=False).long())
        return torch.stack(maps) if maps else torch.zeros((0, 1, *self.spatial_shape), dtype=torch.long)

    def describe(self, index: int) -> dict[str, Any]:
        """Subject and slice index of slice ``index`` where the dataset records them (for the report)."""
        items = getattr(self._dataset, "slice_items", None)
        if items is None:
            return {}
        return {key: items[index][key] for key in ("subject", "slice_index") if key in items[index]}


class _DatasetView:
    """Items ``indices`` of a dataset, keeping a :class:`~monai_vqvae2.data.SliceDataset`'s ``slice_items``."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        items = getattr(dataset, "slice_items", None)
        if items is not None:
            self.slice_items = [items[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.indices[index]]


def check_same_size(images: Sequence[ImageSet]) -> None:
    """Check that every set of ``images`` has the same spatial size.

    Raises:
        ValueError: the sizes differ (the message names every set and its size).
    """
    shapes = {tuple(i.spatial_shape) for i in images}
    if len(shapes) > 1:
        sizes = ", ".join(f"`{i.name}` {tuple(i.spatial_shape)}" for i in images)
        raise ValueError(f"All slices must have the same size to be compared, got {sizes}.")


# -------------------------------------------------------------------------------------------------- samples folder
def load_sample_folder(path: str | os.PathLike) -> SampleFolder:
    """Read a folder written by :func:`~monai_vqvae2.inferers.write_samples` (or ``sample.yaml``) back into the
    images it was given: reads ``manifest.json``, then every listed ``(X, Y, 1)`` RAS NIfTI file, and undoes the
    writer's turn with :func:`~monai_vqvae2.slice_io.read_slice_nifti` to return display order (anterior up).

    Args:
        path: the samples folder.

    Returns:
        a :class:`SampleFolder` ``(images, positions)``: images ``(N, 1, H, W)`` float32, positions from the manifest
        (``None`` when it records none). The samples' label maps: :func:`load_sample_labels`.

    Raises:
        FileNotFoundError: no ``manifest.json`` in ``path``, or a listed file is missing.
        ValueError: a malformed manifest, a file that is not one ``(X, Y, 1)`` slice, slices of different sizes, or
            slice positions recorded for some samples only.
    """
    folder = Path(path)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"No manifest.json in the samples folder {folder}: expected a folder written by "
            "monai_vqvae2.inferers.write_samples (sample.yaml)."
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{manifest_path} is not valid JSON: {error}.") from error
    entries = manifest.get("samples") if isinstance(manifest, dict) else None
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) and "file" in e for e in entries):
        raise ValueError(
            f"{manifest_path} must list the samples as 'samples': [{{'file': ...}}, ...], got {entries!r}."
        )
    pictures = []
    for entry in entries:
        file = folder / entry["file"]
        if not file.is_file():
            raise FileNotFoundError(f"{file} is listed in {manifest_path} but does not exist.")
        pictures.append(read_slice_nifti(file))
    shapes = {p.shape for p in pictures}
    if len(shapes) > 1:
        raise ValueError(f"The samples listed in {manifest_path} have different sizes: {sorted(shapes)}.")
    images = torch.from_numpy(np.ascontiguousarray(np.stack(pictures)))[:, None]
    recorded = [entry.get("slice_position") for entry in entries]  # absent or null: unknown
    known = [value is not None for value in recorded]
    if any(known) and not all(known):
        raise ValueError(f"{manifest_path} records a 'slice_position' for some samples only.")
    positions = [float(value) for value in recorded] if all(known) else None
    return SampleFolder(images, positions)


def load_sample_labels(path: str | os.PathLike) -> torch.Tensor | None:
    """The tissue label maps of a samples folder written with labels (the manifest's ``label`` files, from a
    VQ-VAE-2 with a label decoder), in the order and display orientation of :func:`load_sample_folder`'s images.

    Args:
        path: the samples folder.

    Returns:
        ``(N, 1, H, W)`` int64 class maps, or ``None`` when the samples have no label files.

    Raises:
        FileNotFoundError: no ``manifest.json``, or a listed label file is missing.
        ValueError: label files listed for some samples only, or of different sizes.
    """
    folder = Path(path)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"No manifest.json in the samples folder {folder}.")
    entries = json.loads(manifest_path.read_text(encoding="utf-8")).get("samples") or []
    names = [entry.get("label") if isinstance(entry, dict) else None for entry in entries]
    if not any(names):
        return None
    if not all(names):
        raise ValueError(f"{manifest_path} lists a 'label' file for some samples only.")
    maps = []
    for name in names:
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is listed in {manifest_path} but does not exist.")
        maps.append(np.rint(read_slice_nifti(folder / name)).astype(np.int64))
    if len({m.shape for m in maps}) > 1:
        raise ValueError(f"The label files listed in {manifest_path} have different sizes.")
    return torch.from_numpy(np.stack(maps))[:, None]
