"""Whole-volume datasets for 3D models: every source file becomes one volume on a fixed grid.

A volume is small enough to cache whole (160×192×160 float32 voxels are 20 MB), and a 3D model's batch is volumes, so
MONAI's caching datasets are used as they are, at volume level (slice datasets need their own indexing:
:mod:`monai_vqvae2.data.datasets`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.data import CacheDataset, Dataset, PersistentDataset
from monai.data.utils import pickle_hashing

from monai_vqvae2.data.datasets import CACHE_MODES, _fingerprint, _normalise_items
from monai_vqvae2.transforms import SlicePreprocessing, as_preprocessing, volume_grid, whole_volume_transforms

__all__ = ["SplitVolumeDatasets", "make_volume_dataset", "volume_cache_name"]


def volume_cache_name(
    volume_size: Sequence[int], voxel_size: Sequence[float], preprocessing: SlicePreprocessing
) -> str:
    """Name of the disk-cache folder of volumes on this grid with these settings: ``volumes-<digest>``, so that a run
    with other settings never reads a volume cached under the old ones."""
    description = json.dumps(
        {"volume_size": list(volume_size), "voxel_size": list(voxel_size), "preprocessing": preprocessing.to_dict()},
        sort_keys=True,
    )
    return "volumes-" + hashlib.sha256(description.encode()).hexdigest()[:16]


def _volume_cache_key(item: dict[str, Any]) -> bytes:
    """``hash_func`` of the disk cache: the file and its size and modification time (a rewritten file is decoded
    again); the item's other entries are not part of the pixels."""
    return pickle_hashing({"source": str(item["image"]), "file": _fingerprint(str(item["image"]))})


def make_volume_dataset(
    items: Sequence[dict[str, Any] | str | os.PathLike],
    volume_size: int | Sequence[int] = (160, 192, 160),
    voxel_size: float | Sequence[float] = 1.0,
    preprocessing: SlicePreprocessing | Mapping[str, Any] | None = None,
    cache: str | None = "memory",
    cache_dir: str | os.PathLike | None = None,
    num_workers: int = 0,
) -> Dataset:
    """A dataset of whole brain volumes ``{"image": (1, X, Y, Z), "source", "subject", "session", ...}`` on one grid
    (``source``: the file), through :func:`~monai_vqvae2.transforms.whole_volume_transforms`.

    Args:
        items: dicts with an ``"image"`` path (and ``"subject"``, ``"session"``, kept in every item), as
            :func:`~monai_vqvae2.apps.discover_dataset` and the run's split give them, or plain paths.
        volume_size: voxels ``(X, Y, Z)`` of the grid (an int for a cube); for a VQ-VAE-2, a multiple of its total
            downsampling.
        voxel_size: voxel size in mm (one for all axes, or three).
        preprocessing: the run's :class:`~monai_vqvae2.transforms.SlicePreprocessing` (or a mapping of its fields);
            ``None``: the defaults.
        cache: ``"memory"`` (``CacheDataset``: every volume decoded once, up front), ``"disk"``
            (``PersistentDataset`` under ``cache_dir/volumes-<digest>``, see :func:`volume_cache_name`; a file
            rewritten since is decoded again) or ``None`` (decoded at every access).
        cache_dir: folder of the disk cache; required with ``cache="disk"``.
        num_workers: worker threads filling the memory cache.

    Returns:
        a MONAI dataset, one item per source file; a file that cannot be read raises
        :class:`~monai_vqvae2.transforms.errors.InvalidImageError` naming it.

    Raises:
        TypeError: ``items`` that are not a sequence of paths or dicts with an ``"image"`` path.
        ValueError: no items, a file listed twice, a bad grid, an unknown ``cache`` or a disk cache without a folder.
    """
    sources = [{**item, "source": item["image"]} for item in _normalise_items(items)]
    size, spacing = volume_grid(volume_size, voxel_size)
    settings = as_preprocessing(preprocessing)
    if cache not in CACHE_MODES:
        raise ValueError(f"`cache` must be one of {CACHE_MODES}, got {cache!r}.")
    chain = whole_volume_transforms(size, spacing, preprocessing=settings)
    if cache == "memory":
        dataset = CacheDataset(sources, chain, cache_rate=1.0, num_workers=num_workers, progress=False)
    elif cache == "disk":
        if cache_dir is None:
            raise ValueError('`cache="disk"` needs a `cache_dir`.')
        folder = Path(cache_dir) / volume_cache_name(size, spacing, settings)
        dataset = PersistentDataset(sources, chain, cache_dir=folder, hash_func=_volume_cache_key)
    else:
        dataset = Dataset(sources, chain)
    # what the volumes are made with, read by code extraction (as a SliceDataset's ``preprocessing``)
    dataset.preprocessing = settings
    dataset.volume_grid = {"volume_size": list(size), "voxel_size": list(spacing)}
    return dataset


class SplitVolumeDatasets(Mapping[str, Dataset]):
    """The whole-volume datasets of a run's splits, all on one grid; each is built on first access, then kept. The
    3D counterpart of :class:`~monai_vqvae2.data.SplitSliceDatasets`: ``bundle/configs/volumes.yaml`` puts it in
    place of the slices, and the stages read it as they read slices (``@slices['train']``).

    Args:
        split: split name to items, e.g. from :func:`~monai_vqvae2.data.load_split`.
        volume_size: as :func:`make_volume_dataset`.
        voxel_size: as :func:`make_volume_dataset`.
        preprocessing: as :func:`make_volume_dataset`.
        cache: as :func:`make_volume_dataset`.
        cache_dir: as :func:`make_volume_dataset`.
        labels: must be ``False``: tissue label maps are read with slices only, so far.

    Raises:
        ValueError: ``labels=True``.
    """

    def __init__(
        self,
        split: Mapping[str, Sequence[dict[str, Any]]],
        volume_size: int | Sequence[int] = (160, 192, 160),
        voxel_size: float | Sequence[float] = 1.0,
        preprocessing: SlicePreprocessing | Mapping[str, Any] | None = None,
        cache: str | None = "memory",
        cache_dir: str | os.PathLike | None = None,
        labels: bool = False,
    ) -> None:
        if labels:
            raise ValueError(
                "`labels=True`: tissue label maps are read with axial slices only, so far; whole volumes "
                "(volumes.yaml) take `labels: false`."
            )
        self.split = dict(split)
        self.volume_size, self.voxel_size = volume_grid(volume_size, voxel_size)
        self.preprocessing = as_preprocessing(preprocessing)
        self.options = {"cache": cache, "cache_dir": cache_dir}
        self._built: dict[str, Dataset] = {}

    def __getitem__(self, name: str) -> Dataset:
        if name not in self.split:
            raise KeyError(f"no split {name!r}; the splits are {list(self.split)}.")
        if name not in self._built:
            self._built[name] = make_volume_dataset(
                self.split[name], self.volume_size, self.voxel_size, self.preprocessing, **self.options
            )
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.split)

    def __len__(self) -> int:
        return len(self.split)
