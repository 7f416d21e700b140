"""Synthetic slices as dataset items: generated on the fly by a
:class:`~monai_vqvae2.inferers.HierarchicalSampler` or read from a bank folder written by
:func:`~monai_vqvae2.synthetic.generate_bank` (:class:`SyntheticSliceDataset`), and mixed with real slices at a
chosen ratio (:class:`MixedSliceDataset`).

Synthetic items carry the keys of real slice items (see :class:`~monai_vqvae2.data.SliceDataset`) plus
``"synthetic": True``, so that the two mix in one ``DataLoader`` batch; from a VQ-VAE-2 with a label decoder they
carry the tissue ``"label"`` map too, like real slices made with ``labels=True``, and mix as pairs
(``keys=PAIRED_KEYS``)::

    real = make_slice_dataset(split["train"], image_size=256)
    synthetic = SyntheticSliceDataset(sampler, 1000, real_positions=slice_positions_of(real), seed=1)
    mixed = MixedSliceDataset(real, synthetic, synthetic_fraction=0.3, seed=0)
    loader = DataLoader(mixed, batch_size=16, shuffle=True, num_workers=2)
"""

from __future__ import annotations

import math
import operator
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import apply_transform

from monai_vqvae2.inferers.sampler import HierarchicalSampler
from monai_vqvae2.slice_io import read_slice_nifti
from monai_vqvae2.synthetic.bank_format import load_bank_manifest
from monai_vqvae2.synthetic.settings import (
    batch_count,
    batch_seed,
    check_count,
    check_sampler,
    check_sampling,
    check_seed,
    global_conditions,
    is_count,
    resolve_labels,
    resolve_positions,
    temperature_setting,
)

__all__ = ["MIXED_KEYS", "PAIRED_KEYS", "MixedSliceDataset", "SyntheticSliceDataset"]

MIXED_KEYS = ("image", "subject", "session", "source", "slice_index", "slice_position", "synthetic")
"""Keys :class:`MixedSliceDataset` keeps by default: those real and synthetic slice items both have."""
PAIRED_KEYS = (*MIXED_KEYS, "label")
"""Keys of image + tissue label pairs: real slices made with ``labels=True`` and synthetic slices of a VQ-VAE-2 with a
label decoder both have them (``MixedSliceDataset(..., keys=PAIRED_KEYS)``)."""

SYNTHETIC_SUBJECT = "synthetic"
GENERATED_SOURCE = "generated"
_GENERATION_DEFAULTS: dict[str, Any] = {
    "slice_positions": None,
    "real_positions": None,
    "class_labels": None,
    "seed": 0,
    "temperature": 1.0,
    "top_k": None,
    "method": "fast",
    "batch_size": 16,
}


class SyntheticSliceDataset(torch.utils.data.Dataset):
    """Synthetic 2D slices as dataset items, generated on the fly by a
    :class:`~monai_vqvae2.inferers.HierarchicalSampler` or read from a bank folder written by
    :func:`~monai_vqvae2.synthetic.generate_bank`.

    Items have the keys of real slice items (:class:`~monai_vqvae2.data.SliceDataset`): ``"image"`` (float32
    ``(1, H, W)`` in [0, 1]), ``"subject"`` and ``"session"`` (``"synthetic"``), ``"source"`` (``"generated"``, or
    the bank file), ``"slice_index"`` (-1), ``"slice_position"`` (float; NaN when the priors are not conditioned on
    it), plus ``"synthetic"`` (True), ``"index"`` (the item's index), ``"seed"`` (the sampler seed of its batch),
    for a VQ-VAE-2 with a label decoder (``label_channels``) ``"label"`` (the tissue class map of the image, int64
    ``(1, H, W)``, decoded from the same codes; ``"label_source"`` names its bank file or ``"generated"``) and, for
    priors with classes, ``"class_label"``. No value is ``None``, so items collate.

    On the fly, items are generated ``batch_size`` at a time; batch ``b`` is sampled with a seed derived from
    ``seed`` and ``b`` only, and its positions are drawn with their own generator seeded the same way, so item ``i``
    is the same whatever order items are read in, in any worker process. The last batch is kept, so reading in order
    generates every batch once; reading in random order (a shuffling ``DataLoader``) generates a whole batch per
    item: use ``batch_size=1`` or a bank then. With the same ``seed`` and ``batch_size``, item ``i`` equals sample
    ``i`` of a bank generated with ``chunk_size=batch_size`` and the same settings.

    Args:
        source: a ``HierarchicalSampler`` (generate on the fly) or a bank folder (read its files).
        num_samples: number of items; for a bank, ``None`` takes all its samples.
        slice_positions: normalised slice position (0 = inferior, 1 = superior) of every item, one float or one per
            item; only for priors conditioned on it (``num_scalars=1``).
        real_positions: positions of real slices (e.g. :func:`~monai_vqvae2.synthetic.slice_positions_of` of the
            training set); each item's position is drawn from them, uniformly with replacement. Exclusive with
            ``slice_positions``.
        class_labels: class condition of every item (one int or one per item), for priors built with
            ``num_classes > 0``.
        seed: seed the batch seeds and positions derive from.
        temperature: softmax temperature of the priors, one number or one per level (coarsest first).
        top_k: sample among the ``top_k`` most likely codes only.
        method: ``"fast"`` (cached) or ``"naive"``; both give the same codes.
        batch_size: items generated together.
        transform: applied to every item on every access (e.g. MONAI random augmentation).

    Raises:
        TypeError: ``source`` is neither a sampler nor a folder.
        ValueError: invalid arguments, positions for unconditioned priors (or none for conditioned ones), or a
            generation argument given with a bank.
        FileNotFoundError: a bank folder without manifest.

    Example::

        synthetic = SyntheticSliceDataset(sampler, 256, real_positions=slice_positions_of(train), seed=3)
        synthetic[0]["image"].shape  # (1, 256, 256)
        banked = SyntheticSliceDataset("runs/oasis1/bank")  # the slices of a bank written by generate_bank
    """

    def __init__(
        self,
        source: HierarchicalSampler | str | os.PathLike,
        num_samples: int | None = None,
        slice_positions: float | Sequence[float] | None = None,
        real_positions: Sequence[float] | None = None,
        class_labels: int | Sequence[int] | None = None,
        seed: int = 0,
        temperature: float | Sequence[float] = 1.0,
        top_k: int | None = None,
        method: str = "fast",
        batch_size: int = 16,
        transform: Callable | None = None,
    ) -> None:
        self.transform = transform
        self.sampler: HierarchicalSampler | None = None
        self.bank_dir: Path | None = None
        self.manifest: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._cache: tuple[int, torch.Tensor, torch.Tensor | None] | None = None
        if isinstance(source, (str, os.PathLike)):
            given = {
                "slice_positions": slice_positions,
                "real_positions": real_positions,
                "class_labels": class_labels,
                "seed": seed,
                "temperature": temperature,
                "top_k": top_k,
                "method": method,
                "batch_size": batch_size,
            }
            for name, value in given.items():
                default = _GENERATION_DEFAULTS[name]
                if value is None if default is None else not isinstance(value, bool) and value == default:
                    continue
                raise ValueError(
                    f"`{name}` only applies to slices generated on the fly; the bank {str(source)!r} was "
                    "generated with the settings in its manifest."
                )
            self.bank_dir = Path(source)
            self.manifest = load_bank_manifest(self.bank_dir)
            available = len(self.manifest["samples"])
            if num_samples is not None and not (is_count(num_samples) and num_samples <= available):
                raise ValueError(
                    f"`num_samples` must be None or an integer in [1, {available}] (the bank's samples), "
                    f"got {num_samples!r}."
                )
            self.num_samples = available if num_samples is None else num_samples
            entries = self.manifest["samples"][: self.num_samples]
            self.slice_positions = (
                None
                if all(entry.get("slice_position") is None for entry in entries)
                else np.array([entry["slice_position"] for entry in entries], dtype=np.float64)
            )
            self.class_labels = (
                None
                if all(entry.get("class_label") is None for entry in entries)
                else np.array([entry["class_label"] for entry in entries], dtype=np.int64)
            )
            self.has_label_maps = bool(self.manifest["settings"].get("label_maps"))
            return
        if not hasattr(source, "sample"):
            raise TypeError(
                f"`source` must be a HierarchicalSampler or a bank folder path, got {type(source).__name__}."
            )
        check_sampler(source, "source")
        if num_samples is None:
            raise ValueError("`num_samples` is required when generating on the fly.")
        self.num_samples = check_count(num_samples, "num_samples")
        self.batch_size = check_count(batch_size, "batch_size")
        self.seed = check_seed(seed)
        check_sampling(temperature, top_k, method)
        num_scalars, num_classes = global_conditions(source)
        self.slice_positions = resolve_positions(
            num_scalars, self.num_samples, self.batch_size, self.seed, slice_positions, real_positions
        )
        self.class_labels = resolve_labels(num_classes, self.num_samples, class_labels)
        self.has_label_maps = source.vqvae.label_decoder is not None
        self.sampler = source
        self.temperature = temperature_setting(temperature)
        self.top_k = top_k
        self.method = method
        self.batch_seeds = [batch_seed(self.seed, b) for b in range(math.ceil(self.num_samples / self.batch_size))]

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = operator.index(index)
        if index < 0:
            index += self.num_samples
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} is out of range for {self.num_samples} synthetic slices.")
        item = self._bank_item(index) if self.bank_dir is not None else self._generated_item(index)
        return apply_transform(self.transform, item) if self.transform is not None else item

    def _metadata(self, index: int, source: str, seed: int) -> dict[str, Any]:
        item: dict[str, Any] = {
            "subject": SYNTHETIC_SUBJECT,
            "session": SYNTHETIC_SUBJECT,
            "source": source,
            "slice_index": -1,
            "slice_position": math.nan if self.slice_positions is None else float(self.slice_positions[index]),
            "synthetic": True,
            "index": index,
            "seed": seed,
        }
        if self.class_labels is not None:
            item["class_label"] = int(self.class_labels[index])
        return item

    def _generated_item(self, index: int) -> dict[str, Any]:
        batch, offset = divmod(index, self.batch_size)
        images, labels = self._batch(batch)
        item = {"image": images[offset].clone(), **self._metadata(index, GENERATED_SOURCE, self.batch_seeds[batch])}
        if labels is not None:
            item["label"], item["label_source"] = labels[offset].clone(), GENERATED_SOURCE
        return item

    def _batch(self, batch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images and label maps (``None`` without a label decoder) of on-the-fly batch ``batch``."""
        with self._lock:
            if self._cache is not None and self._cache[0] == batch:
                return self._cache[1], self._cache[2]
            start = batch * self.batch_size
            stop = start + batch_count(self.num_samples, self.batch_size, batch)
            output = self.sampler.sample(
                stop - start,
                temperature=self.temperature,
                top_k=self.top_k,
                labels=None if self.class_labels is None else torch.from_numpy(self.class_labels[start:stop]),
                scalars=None
                if self.slice_positions is None
                else torch.from_numpy(self.slice_positions[start:stop])[:, None],
                seed=self.batch_seeds[batch],
                method=self.method,
            )
            images = output.images.detach().float().cpu().clamp(0, 1)
            labels = None if output.labels is None else output.labels.detach().cpu().long()
            self._cache = (batch, images, labels)
            return images, labels

    def _bank_item(self, index: int) -> dict[str, Any]:
        entry = self.manifest["samples"][index]
        path = self.bank_dir / entry["file"]
        if not path.is_file():
            raise FileNotFoundError(
                f"bank file {str(path)!r} is listed in the manifest but missing; run generate_bank again to restore it."
            )
        image = torch.from_numpy(read_slice_nifti(path))[None]
        item = {"image": image, **self._metadata(index, str(path), int(entry["chunk_seed"]))}
        if self.has_label_maps:
            label_path = self.bank_dir / entry["label_file"]
            if not label_path.is_file():
                raise FileNotFoundError(
                    f"bank label file {str(label_path)!r} is listed in the manifest but missing; run generate_bank "
                    "again to restore it."
                )
            item["label"] = torch.from_numpy(read_slice_nifti(label_path).round().astype(np.int64))[None]
            item["label_source"] = str(label_path)
        return item

    def __getstate__(self) -> dict[str, Any]:  # worker processes start without the cached batch and get their own lock
        state = dict(self.__dict__)
        state["_cache"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class MixedSliceDataset(torch.utils.data.Dataset):
    """Real and synthetic slices in one dataset, a chosen fraction of the items synthetic.

    Which indices are synthetic is fixed at construction by ``seed``: exactly ``round(length * synthetic_fraction)``
    of the ``length`` indices, one at a random place in each of that many equal strata of the indices, so that any
    ``n`` consecutive indices hold ``n * synthetic_fraction`` synthetic ones give or take 2 (a loader without
    shuffling gets the fraction in every batch). The ``k``-th real index reads ``real[k % len(real)]``
    and the ``k``-th synthetic index ``synthetic[(k + epoch * num_synthetic) % len(synthetic)]``, so with the default
    ``length`` every real item appears exactly once per epoch, and :meth:`set_epoch` moves on to the next synthetic
    items of a large pool (a bank) each epoch without changing which indices are synthetic.

    The plan deliberately does not follow ``set_random_state``: MONAI's ``DataLoader`` calls ``set_random_state`` of
    a dataset with a different seed in every worker process, which would give each worker its own plan (items seen
    twice or never, and a fraction that no longer holds). Without it, MONAI seeds the random transforms of ``real``
    and ``synthetic`` per worker, as it does for any dataset.

    Items are those of ``real`` and ``synthetic`` restricted to ``keys``, with ``"synthetic"`` set (False for real
    items), so that default collation works: real items carry keys (clinical data, ``"session"``, ...) that synthetic
    ones lack.

    Args:
        real: the real slice items (e.g. :func:`~monai_vqvae2.data.make_slice_dataset`).
        synthetic: the synthetic slice items (e.g. :class:`SyntheticSliceDataset`).
        synthetic_fraction: fraction of synthetic items, in [0, 1).
        seed: seed of the plan.
        length: number of items; ``None`` for ``len(real)`` real items plus
            ``round(len(real) * synthetic_fraction / (1 - synthetic_fraction))`` synthetic ones.
        keys: keys kept in every item (each must be in every item; ``"synthetic"`` is added when missing); ``None``
            keeps every key.
        transform: applied to every item after mixing (e.g. the same augmentation for real and synthetic slices).

    Attributes:
        is_synthetic: ``(length,)`` bool, which indices are synthetic.
        num_synthetic: how many are.

    Raises:
        ValueError: an empty ``real``, a ``synthetic_fraction`` outside [0, 1), an empty ``synthetic`` with a
            positive fraction, a bad ``length`` or ``seed``.

    Example::

        mixed = MixedSliceDataset(real, synthetic, synthetic_fraction=0.3, seed=0)
        loader = monai.data.DataLoader(mixed, batch_size=16, shuffle=True, num_workers=2)
    """

    def __init__(
        self,
        real: Sequence[dict[str, Any]],
        synthetic: Sequence[dict[str, Any]],
        synthetic_fraction: float,
        seed: int = 0,
        length: int | None = None,
        keys: Sequence[str] | None = MIXED_KEYS,
        transform: Callable | None = None,
    ) -> None:
        if isinstance(synthetic_fraction, bool) or not isinstance(synthetic_fraction, (int, float)):
            raise TypeError(f"`synthetic_fraction` must be a number in [0, 1), got {synthetic_fraction!r}.")
        if not 0 <= synthetic_fraction < 1:
            raise ValueError(f"`synthetic_fraction` must be in [0, 1), got {synthetic_fraction!r}.")
        if len(real) == 0:
            raise ValueError("`real` is empty: mixing needs real slices.")
        if synthetic_fraction > 0 and len(synthetic) == 0:
            raise ValueError(f"`synthetic` is empty but `synthetic_fraction` is {synthetic_fraction}.")
        seed = check_seed(seed)
        if length is None:
            num_synthetic = math.floor(len(real) * synthetic_fraction / (1 - synthetic_fraction) + 0.5)
            length = len(real) + num_synthetic
        else:
            length = check_count(length, "length")
            num_synthetic = math.floor(length * synthetic_fraction + 0.5)
        if keys is not None:
            if isinstance(keys, str) or not all(isinstance(key, str) for key in keys):
                raise ValueError(f"`keys` must be None or a sequence of key names, got {keys!r}.")
            keys = tuple(keys) if "synthetic" in keys else (*keys, "synthetic")
        self.real = real
        self.synthetic = synthetic
        self.synthetic_fraction = float(synthetic_fraction)
        self.seed = seed
        self.num_synthetic = num_synthetic
        self.keys = keys
        self.transform = transform
        self.epoch = 0
        is_synthetic = np.zeros(length, dtype=bool)
        if num_synthetic:
            edges = np.arange(num_synthetic + 1) * length // num_synthetic  # strata of at least one index
            offsets = np.random.default_rng(seed).random(num_synthetic) * np.diff(edges)
            is_synthetic[edges[:-1] + offsets.astype(np.int64)] = True
        self.is_synthetic = is_synthetic
        self._rank = np.where(is_synthetic, np.cumsum(is_synthetic), np.cumsum(~is_synthetic)) - 1

    def __len__(self) -> int:
        return len(self.is_synthetic)

    def set_epoch(self, epoch: int) -> None:
        """Read the next ``num_synthetic`` items of ``synthetic`` (cyclically) for epoch ``epoch`` (>= 0)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"`epoch` must be a non-negative integer, got {epoch!r}.")
        self.epoch = epoch

    def source_of(self, index: int) -> tuple[bool, int]:
        """``(synthetic, index in that dataset)`` of item ``index``."""
        index = operator.index(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} mixed slices.")
        if self.is_synthetic[index]:
            return True, int((self._rank[index] + self.epoch * self.num_synthetic) % len(self.synthetic))
        return False, int(self._rank[index] % len(self.real))

    def __getitem__(self, index: int) -> dict[str, Any]:
        synthetic, source_index = self.source_of(index)
        item = (self.synthetic if synthetic else self.real)[source_index]
        if not isinstance(item, Mapping):
            kind = "synthetic" if synthetic else "real"
            raise TypeError(f"{kind} item {source_index} must be a dict, got {type(item).__name__}.")
        item = dict(item)
        item["synthetic"] = synthetic
        if self.keys is not None:
            missing = [key for key in self.keys if key not in item]
            if missing:
                kind = "synthetic" if synthetic else "real"
                raise ValueError(
                    f"{kind} item {source_index} has no {missing[0]!r}; pass `keys` that every item has "
                    f"(it has {sorted(item)})."
                )
            item = {key: item[key] for key in self.keys}
        return apply_transform(self.transform, item) if self.transform is not None else item
