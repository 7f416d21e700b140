"""Slice datasets: volumes decoded once, cached per slice in memory or on disk, indexed by slice.

:func:`make_slice_dataset` runs the transform chain of :mod:`monai_vqvae2.transforms` once per source file
(a volume gives its kept axial slices, a PNG gives one slice), then hands the slices to MONAI's caching
datasets at *slice* level, so that a ``DataLoader`` index is a slice and shuffling mixes volumes:

- ``cache="memory"``: ``monai.data.CacheDataset`` holds every slice;
- ``cache="disk"``: ``monai.data.PersistentDataset`` stores one ``.pt`` file per slice under ``cache_dir``, and an
  ``index.json`` of the slices of every source (keyed by file size and modification time), so that a new run
  with the same settings starts without decoding anything;
- ``cache=None``: nothing is kept; every access decodes its volume again (small-memory debugging only).

Caching volumes instead of slices would make every slice access read (or copy) the whole volume.
"""

from __future__ import annotations

import json
import operator
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import CacheDataset, Dataset, PersistentDataset
from monai.data.utils import pickle_hashing
from monai.transforms import Compose, Transform, apply_transform

from monai_vqvae2.data.errors import BadInputPolicy, check_on_error
from monai_vqvae2.io import atomic_write
from monai_vqvae2.transforms import SlicePreprocessing, as_preprocessing, png_slice_transforms, volume_transforms
from monai_vqvae2.transforms.errors import InvalidImageError, as_invalid_image

__all__ = ["CACHE_MODES", "SliceDataset", "SplitSliceDatasets", "make_slice_dataset"]

CACHE_MODES = ("memory", "disk", None)
_INDEX_FILE = "index.json"
_SLICE_KEYS = ("image", "label", "source", "slice_index", "slice_position")
_CACHE_FORMAT = 2


def _plain(value: Any) -> Any:
    """numpy scalars to Python scalars, so that slice descriptors are JSON- and hash-friendly."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _fingerprint(path: str) -> str:
    """Size and modification time of a file (both files of an Analyze pair); ``"missing"`` if absent."""
    parts = [path]
    if path.lower().endswith(".hdr"):
        parts.append(path[:-4] + ".img")
    try:
        stats = [os.stat(p) for p in parts]
    except OSError:
        return "missing"
    return ";".join(f"{s.st_size}-{s.st_mtime_ns}" for s in stats)


class _SourceProcessor:
    """Source item -> list of slice dicts, through the volume or the PNG chain. Picklable for worker processes."""

    def __init__(self, volume_chain: Compose, png_chain: Compose) -> None:
        self.volume_chain = volume_chain
        self.png_chain = png_chain

    def __call__(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        path = str(item["image"])
        is_png = path.lower().endswith(".png")
        try:
            result = (self.png_chain if is_png else self.volume_chain)(dict(item))
        except InvalidImageError:
            raise
        except Exception as error:  # chains built elsewhere may still raise MONAI's wrapper
            raise as_invalid_image(error, path) from error
        slices = result if isinstance(result, list) else [result]
        for slice_item in slices:
            slice_item["source"] = path
            if is_png:
                slice_item.setdefault("slice_index", 0)
                slice_item.setdefault("slice_position", 0.5)
            slice_item["slice_index"] = int(slice_item["slice_index"])
            slice_item["slice_position"] = float(slice_item["slice_position"])
        return slices


class _SourceList(torch.utils.data.Dataset):
    """Runs the processor on each source; returns the slices or the error (errors are handled by the caller)."""

    def __init__(self, sources: Sequence[dict[str, Any]], processor: _SourceProcessor) -> None:
        self.sources = sources
        self.processor = processor

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> tuple[int, list[dict[str, Any]] | InvalidImageError]:
        try:
            return index, self.processor(self.sources[index])
        except InvalidImageError as error:
            return index, error


def _identity(sample: Any) -> Any:
    return sample


def _run_sources(
    sources: Sequence[dict[str, Any]], processor: _SourceProcessor, num_workers: int
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]] | InvalidImageError]]:
    """Process sources in order, in ``num_workers`` worker processes (0: in this process)."""
    if not sources:
        return
    loader = torch.utils.data.DataLoader(
        _SourceList(sources, processor),
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_identity,
    )
    for index, result in loader:
        yield sources[index], result


class _SliceStore:
    """Processed slices by source path; recomputes a source on a miss (keeping the ``keep_recent`` last ones)."""

    def __init__(self, processor: _SourceProcessor, keep_recent: int = 2) -> None:
        self.processor = processor
        self.keep_recent = keep_recent
        self._held: dict[str, dict[int, dict[str, Any]]] = {}
        self._recent: OrderedDict[str, dict[int, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _by_index(slices: Sequence[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        return {int(s["slice_index"]): s for s in slices}

    def put(self, source: str, slices: Sequence[dict[str, Any]]) -> None:
        self._held[source] = self._by_index(slices)

    def drop(self, source: str) -> None:
        self._held.pop(source, None)

    def clear(self) -> None:
        self._held.clear()
        self._recent.clear()

    def get(self, descriptor: dict[str, Any]) -> dict[str, Any]:
        source, index = str(descriptor["image"]), int(descriptor["slice_index"])
        with self._lock:
            slices = self._held.get(source) or self._recent.get(source)
            if slices is None:
                slices = self._by_index(self.processor(dict(descriptor)))
                self._recent[source] = slices
                while len(self._recent) > self.keep_recent:
                    self._recent.popitem(last=False)
        if index not in slices:
            raise InvalidImageError(
                source, f"slice {index} is no longer produced (the file or the settings changed); rebuild the dataset."
            )
        return slices[index]

    def __getstate__(self) -> dict[str, Any]:  # worker processes start empty and get their own lock
        return {"processor": self.processor, "keep_recent": self.keep_recent}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["processor"], state["keep_recent"])  # type: ignore[misc]


class _SliceFromSource(Transform):
    """Deterministic first step of the slice-level datasets: descriptor -> processed slice dict.

    Being a deterministic MONAI ``Transform``, its output is what ``CacheDataset``/``PersistentDataset`` cache.
    """

    def __init__(self, store: _SliceStore) -> None:
        self.store = store

    def __call__(self, descriptor: dict[str, Any]) -> dict[str, Any]:
        return dict(self.store.get(descriptor))


class _SliceCacheKey:
    """``hash_func`` of the ``PersistentDataset``: source path, slice index and the source's size and mtime.

    Metadata (subject, clinical values, ...) is left out of the key: :class:`SliceDataset` lays the current
    descriptor over every cached slice, so joining new clinical data does not invalidate the pixel cache.
    """

    def __init__(self, fingerprints: dict[str, str]) -> None:
        self.fingerprints = fingerprints

    def __call__(self, descriptor: dict[str, Any]) -> bytes:
        source = str(descriptor["image"])
        fingerprint = self.fingerprints.get(source) or _fingerprint(source)
        return pickle_hashing({"source": source, "slice_index": int(descriptor["slice_index"]), "file": fingerprint})


def _descriptor(slice_item: dict[str, Any], source: str) -> dict[str, Any]:
    """Everything but the pixels (and the label, whose file is ``"label_source"``), with ``"image"`` pointing at the
    source file: small, JSON-able, hashable."""
    descriptor = {
        k: _plain(v) for k, v in slice_item.items() if k != "label" and not isinstance(v, (torch.Tensor, np.ndarray))
    }
    descriptor["image"] = source
    return descriptor


def _read_index(path: Path) -> dict[str, Any]:
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return index.get("sources", {}) if index.get("format") == _CACHE_FORMAT else {}


def _write_index(path: Path, sources: dict[str, Any]) -> None:
    atomic_write(
        path, lambda temporary: temporary.write_text(json.dumps({"format": _CACHE_FORMAT, "sources": sources}))
    )


def _normalise_items(items: Sequence[dict[str, Any] | str | os.PathLike], labels: bool = False) -> list[dict[str, Any]]:
    if isinstance(items, (str, os.PathLike, dict)) or not isinstance(items, Sequence):
        raise TypeError(f"`items` must be a sequence of dicts (see discover_dataset), got {type(items).__name__}.")
    if not items:
        raise ValueError("`items` is empty: nothing to load.")
    sources, seen = [], set()
    for number, entry in enumerate(items):
        item = dict(entry) if isinstance(entry, dict) else {"image": entry}
        if not isinstance(item.get("image"), (str, os.PathLike)):
            raise TypeError(f"`items[{number}]` needs an 'image' file path, got {entry!r}.")
        item["image"] = os.path.normpath(Path(item["image"]).expanduser().absolute())
        if item["image"] in seen:
            raise ValueError(f"`items[{number}]`: {item['image']} is listed twice.")
        seen.add(item["image"])
        if labels:
            if not isinstance(item.get("label"), (str, os.PathLike)) or not str(item["label"]):
                raise ValueError(
                    f"`items[{number}]` ({item['image']}) has no 'label' file, and labels=True: discover the dataset "
                    "with labels=True (discover_dataset), or give each item a 'label' path."
                )
            item["label"] = os.path.normpath(Path(item["label"]).expanduser().absolute())
        stem = Path(item["image"]).name.split(".")[0]
        item["subject"] = str(item.get("subject", stem))
        item["session"] = str(item.get("session", item["subject"]))
        sources.append(item)
    return sources


class SliceDataset(torch.utils.data.Dataset):
    """A dataset of single 2D slices; index ``i`` is a slice, so a shuffling ``DataLoader`` mixes volumes.

    Built by :func:`make_slice_dataset`. Items are dicts with ``"image"`` (float32 tensor ``(1, H, W)`` in
    ``[0, 1]``), with labels ``"label"`` (int64 tensor ``(1, H, W)`` of class indices) and ``"label_source"`` (its
    file), ``"subject"``, ``"session"``, ``"slice_index"``, ``"slice_position"`` (0 = inferior, 1 = superior),
    ``"source"`` (the file) and every other key of the discovered item (``""`` where an item lacks a key that
    others have, so that batches collate).

    Args:
        base: the MONAI dataset holding the slices (``CacheDataset``, ``PersistentDataset`` or ``Dataset``).
        slice_items: one descriptor per slice (no pixels), in dataset order.
        skipped: ``(path, problem)`` for every source skipped with ``on_error="skip"``.
        transform: applied to every item on every access, after the cache (e.g. random augmentation).
        preprocessing: the settings the slices were made with (``None``: unknown).
        labels: the cached slices hold a ``"label"`` tensor too.
    """

    def __init__(
        self,
        base: Dataset,
        slice_items: Sequence[dict[str, Any]],
        skipped: Sequence[tuple[str, str]] = (),
        transform: Callable | None = None,
        preprocessing: SlicePreprocessing | None = None,
        labels: bool = False,
    ) -> None:
        self.base = base
        self.slice_items = list(slice_items)
        self.skipped = list(skipped)
        self.transform = transform
        self.preprocessing = preprocessing
        self.labels = labels

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = operator.index(index)
        item = dict(self.slice_items[index])  # current metadata (the cache may hold older metadata)
        cached = self.base[index]
        item["image"] = cached["image"]
        if self.labels:
            item["label"] = cached["label"]
        return apply_transform(self.transform, item) if self.transform is not None else item

    @property
    def subjects(self) -> list[str]:
        """Sorted subject ids present in the dataset."""
        return sorted({str(item["subject"]) for item in self.slice_items})


def make_slice_dataset(
    items: Sequence[dict[str, Any]],
    preprocessing: SlicePreprocessing | Mapping[str, Any] | None = None,
    cache: str | None = "memory",
    cache_dir: str | os.PathLike | None = None,
    num_workers: int = 0,
    on_error: str = "raise",
    transform: Callable | None = None,
    labels: bool = False,
    **options: Any,
) -> SliceDataset:
    """Build a slice-level dataset from discovered items (volumes and/or PNG slices).

    Each source file is decoded and transformed once (:func:`~monai_vqvae2.transforms.volume_transforms` for
    NIfTI/Analyze, :func:`~monai_vqvae2.transforms.png_slice_transforms` for PNG), and its slices are cached.
    The dataset is ready for ``monai.data.DataLoader(dataset, batch_size=..., shuffle=True)``.

    Args:
        items: items from :func:`~monai_vqvae2.apps.discover_dataset` (or a split of them).
        preprocessing: the run's :class:`~monai_vqvae2.transforms.SlicePreprocessing` (or a mapping of its fields);
            ``None``: the defaults.
        cache: ``"memory"`` (``CacheDataset``), ``"disk"`` (``PersistentDataset`` in ``cache_dir``, reused across
            runs) or ``None`` (no cache: every access decodes its volume again).
        cache_dir: folder for ``cache="disk"`` (a subfolder per preprocessing setting is created); only valid then.
        num_workers: worker processes used to decode the sources once (0: this process).
        on_error: ``"raise"`` (default: the first bad file raises :class:`InvalidImageError` naming it) or
            ``"skip"`` (one ``BadInputWarning`` per bad file naming it, then one with the count).
        transform: optional callable (e.g. MONAI random transforms) applied to every slice on every access.
        labels: every item has a ``"label"`` file (``discover_dataset(..., labels=True)``) and every slice gets its
            label slice (int64 class indices, the same geometry; FSL FAST values for volumes, the PNG release's grey
            levels for PNG masks): items ``{"image", "label", ...}`` that MONAI segmentation pipelines take as they
            are. Cached apart from the same slices without labels.
        options: fields of :class:`~monai_vqvae2.transforms.SlicePreprocessing` replacing those of
            ``preprocessing``, e.g. ``image_size=128, min_brain_fraction=0.2``.

    Returns:
        a :class:`SliceDataset`; its ``preprocessing`` attribute holds the settings it was built with.

    Raises:
        InvalidImageError: a bad source file with ``on_error="raise"``.
        TypeError: ``items`` is not a sequence of dicts with an ``"image"`` path, or an unknown option.
        ValueError: bad arguments, an item without its label file (``labels=True``), or no slice left at all.
    """
    settings = as_preprocessing(preprocessing, **options)
    if cache not in CACHE_MODES:
        raise ValueError(f"`cache` must be one of {CACHE_MODES}, got {cache!r}.")
    if cache == "disk" and cache_dir is None:
        raise ValueError("`cache_dir` is required with cache='disk'.")
    if cache != "disk" and cache_dir is not None:
        raise ValueError(f"`cache_dir` is only used with cache='disk', got cache={cache!r}; drop it or use 'disk'.")
    if int(num_workers) != num_workers or num_workers < 0:
        raise ValueError(f"`num_workers` must be an int >= 0, got {num_workers!r}.")
    check_on_error(on_error)
    min_brain_fraction = settings.min_brain_fraction
    label_key = "label" if labels else None
    processor = _SourceProcessor(
        volume_transforms(preprocessing=settings, label_key=label_key),
        png_slice_transforms(preprocessing=settings, label_key=label_key),
    )
    sources = _normalise_items(items, labels=labels)
    store = _SliceStore(processor)
    bridge = Compose([_SliceFromSource(store)])
    # a source is reused from the disk cache only while its image (and its label) are unchanged
    fingerprints = {
        source["image"]: ";".join(_fingerprint(source[key]) for key in ("image", label_key) if key)
        for source in sources
    }
    cache_key = _SliceCacheKey(fingerprints)

    index: dict[str, Any] = {}
    cache_root: Path | None = None
    if cache == "disk":
        cache_root = (
            Path(cache_dir).expanduser() / f"slices-{_CACHE_FORMAT}-{settings.digest()}{'-labels' if labels else ''}"
        )
        cache_root.mkdir(parents=True, exist_ok=True)
        index = _read_index(cache_root / _INDEX_FILE)

    def reusable(source: dict[str, Any]) -> bool:
        fingerprint = fingerprints[source["image"]]
        return "missing" not in fingerprint and index.get(source["image"], {}).get("fingerprint") == fingerprint

    policy = BadInputPolicy(on_error, stage="loading")
    descriptors: dict[str, list[dict[str, Any]]] = {}
    for source in sources:  # sources unchanged since they were cached: current metadata over cached descriptors
        if reusable(source):
            metadata = {k: _plain(v) for k, v in source.items() if k not in _SLICE_KEYS}
            descriptors[source["image"]] = [
                {**metadata, **{k: d[k] for k in _SLICE_KEYS if k in d}} for d in index[source["image"]]["slices"]
            ]
    to_process = [source for source in sources if source["image"] not in descriptors]
    for source, result in _run_sources(to_process, processor, int(num_workers)):
        path = source["image"]
        if isinstance(result, InvalidImageError):
            policy.handle(result, path)
            continue
        if not result:
            warnings.warn(
                f"{path}: no axial slice has a brain fraction >= {min_brain_fraction}; it contributes no slice.",
                stacklevel=2,
            )
        descriptors[path] = [_descriptor(slice_item, path) for slice_item in result]
        store.put(path, result)
        if cache_root is not None:  # write this source's slices now, then free them
            primer = PersistentDataset(descriptors[path], transform=bridge, cache_dir=cache_root, hash_func=cache_key)
            for number in range(len(primer)):
                primer[number]
            store.drop(path)
            index[path] = {"fingerprint": fingerprints[path], "slices": descriptors[path]}
    policy.summarise(len(sources))
    if cache_root is not None and to_process:
        _write_index(cache_root / _INDEX_FILE, index)

    slice_items = [d for source in sources for d in descriptors.get(source["image"], [])]
    all_keys = {key for d in slice_items for key in d}
    if any(len(d) != len(all_keys) for d in slice_items):  # e.g. PNG "split" beside volumes: batches must collate
        slice_items = [{**dict.fromkeys(sorted(all_keys), ""), **d} for d in slice_items]
    if not slice_items:
        raise ValueError(
            f"no slice left: {len(policy.skipped)} of {len(sources)} source(s) skipped as bad input, the others have "
            f"no slice with a brain fraction >= {min_brain_fraction}."
        )
    base: Dataset
    if cache == "memory":
        base = CacheDataset(slice_items, transform=bridge, cache_rate=1.0, num_workers=1, progress=False)
    elif cache == "disk":
        base = PersistentDataset(slice_items, transform=bridge, cache_dir=cache_root, hash_func=cache_key)
    else:
        base = Dataset(slice_items, transform=bridge)
    store.clear()
    return SliceDataset(
        base, slice_items, skipped=policy.skipped, transform=transform, preprocessing=settings, labels=labels
    )


class SplitSliceDatasets(Mapping[str, SliceDataset]):
    """The slice datasets of a run's splits, all with one preprocessing; each is built on first access, then kept.

    The bundle defines it once (``slices`` in ``common.yaml``) and every stage reads the splits it needs
    (``@slices['train']``); a split that no stage asks for is never decoded.

    Args:
        split: split name to items, e.g. from :func:`~monai_vqvae2.data.load_split`.
        preprocessing: the run's :class:`~monai_vqvae2.transforms.SlicePreprocessing` (or a mapping of its fields);
            ``None``: the defaults.
        cache: as :func:`make_slice_dataset`.
        cache_dir: as :func:`make_slice_dataset`.
        on_error: as :func:`make_slice_dataset`.
        labels: as :func:`make_slice_dataset`.

    Example::

        slices = SplitSliceDatasets(load_split("runs/x/split.json"), SlicePreprocessing(image_size=128))
        loader = DataLoader(slices["train"], batch_size=16, shuffle=True)
    """

    def __init__(
        self,
        split: Mapping[str, Sequence[dict[str, Any]]],
        preprocessing: SlicePreprocessing | Mapping[str, Any] | None = None,
        cache: str | None = "memory",
        cache_dir: str | os.PathLike | None = None,
        on_error: str = "raise",
        labels: bool = False,
    ) -> None:
        self.split = dict(split)
        self.preprocessing = as_preprocessing(preprocessing)
        self.options = {"cache": cache, "cache_dir": cache_dir, "on_error": on_error, "labels": labels}
        self._built: dict[str, SliceDataset] = {}

    def __getitem__(self, name: str) -> SliceDataset:
        if name not in self.split:
            raise KeyError(f"no split {name!r}; the splits are {list(self.split)}.")
        if name not in self._built:
            self._built[name] = make_slice_dataset(self.split[name], self.preprocessing, **self.options)
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.split)

    def __len__(self) -> int:
        return len(self.split)
