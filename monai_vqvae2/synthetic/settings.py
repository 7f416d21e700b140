"""Generation settings shared by :class:`~monai_vqvae2.synthetic.SyntheticSliceDataset` (on the fly) and
:func:`~monai_vqvae2.synthetic.generate_bank`: checked up front, turned into per-batch sampler seeds and per-sample
slice positions and labels, and described for a bank's manifest.

Batch (or bank chunk) ``b`` of a generation seeded ``seed`` is sampled with :func:`batch_seed` and its positions are
drawn with a generator seeded from ``seed`` and ``b`` too, so that a batch never depends on the other batches: this
is why item ``i`` generated on the fly equals sample ``i`` of a bank with ``chunk_size=batch_size``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from monai_vqvae2.inferers.sampler import SAMPLING_METHODS, HierarchicalSampler, level_temperatures

__all__ = [
    "batch_count",
    "batch_seed",
    "check_count",
    "check_sampler",
    "check_sampling",
    "check_seed",
    "global_conditions",
    "is_count",
    "label_spec",
    "position_spec",
    "resolve_labels",
    "resolve_positions",
    "temperature_setting",
]

_SAMPLER_STREAM, _POSITION_STREAM = 0, 1


def is_count(value: Any) -> bool:
    """Whether ``value`` is a positive ``int`` (``bool`` is not).

    Args:
        value: any value.

    Returns:
        True for an ``int`` of at least 1.
    """
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_count(value: Any, name: str) -> int:
    """Check that argument ``name`` is a positive integer (see :func:`is_count`).

    Args:
        value: the argument.
        name: its name, for the error message.

    Returns:
        ``value``.

    Raises:
        ValueError: ``value`` is not a positive integer.
    """
    if not is_count(value):
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return value


def check_seed(seed: Any) -> int:
    """Check a seed: a non-negative integer (Python or NumPy, not ``bool``).

    Args:
        seed: the seed.

    Returns:
        the seed as a Python ``int``.

    Raises:
        ValueError: ``seed`` is not a non-negative integer.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}.")
    return int(seed)


def temperature_setting(temperature: float | Sequence[float]) -> float | list[float]:
    """The temperature as recorded in manifests and passed to the sampler: one float, or a list of floats (one per
    level)."""
    return [float(value) for value in temperature] if isinstance(temperature, (list, tuple)) else float(temperature)


def check_sampling(temperature: Any, top_k: Any, method: Any) -> None:
    """The sampler's own checks, made up front (before the first item or chunk is generated).

    Args:
        temperature: softmax temperature, one number or one per level
            (:func:`~monai_vqvae2.inferers.sampler.level_temperatures`).
        top_k: ``None`` or a positive integer.
        method: one of :data:`~monai_vqvae2.inferers.sampler.SAMPLING_METHODS`.

    Raises:
        ValueError: an argument the sampler would refuse.
    """
    level_temperatures(temperature)
    if top_k is not None and not is_count(top_k):
        raise ValueError(f"`top_k` must be None or a positive integer, got {top_k!r}.")
    if method not in SAMPLING_METHODS:
        raise ValueError(f"`method` must be one of {SAMPLING_METHODS}, got {method!r}.")


def check_sampler(sampler: Any, name: str = "sampler") -> None:
    """Check that argument ``name`` is a :class:`~monai_vqvae2.inferers.HierarchicalSampler` of 2D slices (banks and
    synthetic datasets hold slices).

    Args:
        sampler: the argument.
        name: its name, for the error message.

    Raises:
        TypeError: ``sampler`` is not a ``HierarchicalSampler``.
        ValueError: a sampler of whole volumes.
    """
    if not isinstance(sampler, HierarchicalSampler):
        raise TypeError(f"`{name}` must be a HierarchicalSampler, got {type(sampler).__name__}.")
    if len(sampler.spatial_shape) != 2:
        raise ValueError(
            f"`{name}` generates volumes of shape {sampler.spatial_shape}; synthetic banks and datasets hold 2D slices "
            "(write volumes with monai_vqvae2.inferers.sample_volumes_to_folder)."
        )


def global_conditions(sampler: HierarchicalSampler) -> tuple[int, int]:
    """The global conditions the sampler's priors take.

    Args:
        sampler: a ``HierarchicalSampler``.

    Returns:
        ``(num_scalars, num_classes)`` the sampler's priors were built with (the largest over its priors).
    """
    return max(p.num_scalars for p in sampler.priors), max(p.num_classes for p in sampler.priors)


def batch_seed(seed: int, batch: int) -> int:
    """Sampler seed of batch (or bank chunk) ``batch``: a 32-bit value derived from ``seed`` and ``batch`` only.

    Args:
        seed: the seed of the whole generation.
        batch: the batch (or chunk) number.

    Returns:
        the seed to pass to :meth:`~monai_vqvae2.inferers.HierarchicalSampler.sample` for that batch.
    """
    return int(np.random.SeedSequence([seed, batch, _SAMPLER_STREAM]).generate_state(1)[0])


def batch_count(num_samples: int, batch_size: int, batch: int) -> int:
    """Number of samples in batch (or bank chunk) ``batch`` when ``num_samples`` are cut into ``batch_size`` ones.

    Args:
        num_samples: samples in all.
        batch_size: samples per batch (the last one may be shorter).
        batch: the batch number.

    Returns:
        ``batch_size``, or fewer for the last batch (negative past it).
    """
    return min(batch_size, num_samples - batch * batch_size)


def _position_array(values: Any, name: str, scalar: bool = False) -> np.ndarray:
    """Normalised positions as float64 ``(N,)`` (``(1,)`` for one ``scalar``), each finite and in [0, 1]."""
    scalars = values if isinstance(values, (list, tuple)) else [values]
    if any(isinstance(value, (bool, str, bytes)) for value in scalars):
        raise TypeError(f"`{name}` must be a float or a sequence of floats, got {values!r}.")
    try:
        array = torch.as_tensor(values, dtype=torch.float64).cpu().numpy()
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"`{name}` must be a float or a sequence of floats, got {values!r}.") from error
    if scalar:
        array = array.reshape(1)
    if array.ndim != 1 or not array.size:
        raise ValueError(f"`{name}` must be a non-empty 1-D sequence of floats, got shape {array.shape}.")
    bad = ~(np.isfinite(array) & (array >= 0) & (array <= 1))
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        where = f" at index {index}" if array.size > 1 else ""
        raise ValueError(f"`{name}` holds normalised positions in [0, 1], got {float(array[index])}{where}.")
    return array


def resolve_positions(
    num_scalars: int,
    num_samples: int,
    batch_size: int,
    seed: int,
    slice_positions: float | Sequence[float] | None,
    real_positions: Sequence[float] | None,
) -> np.ndarray | None:
    """One normalised slice position per sample ``(num_samples,)`` float64, or ``None`` for unconditioned priors.

    Positions drawn from ``real_positions`` (sorted first, so only their distribution matters) use one generator per
    batch, seeded by ``seed`` and the batch number, so that a batch's positions do not depend on the other batches.

    Args:
        num_scalars: scalar conditions of the sampler's priors (:func:`global_conditions`): 0 or 1.
        num_samples: samples to generate.
        batch_size: samples per batch (or bank chunk).
        seed: the seed of the whole generation.
        slice_positions: one position for every sample, or one per sample.
        real_positions: positions of real slices to draw each sample's position from, uniformly with replacement.

    Returns:
        the positions, or ``None`` when the priors are not conditioned on the slice position.

    Raises:
        TypeError: positions that are not floats.
        ValueError: both or neither of ``slice_positions`` and ``real_positions`` for conditioned priors, either of
            them for unconditioned ones, priors with more than one scalar condition, or positions outside [0, 1].
    """
    given = "slice_positions" if slice_positions is not None else "real_positions" if real_positions is not None else ""
    if slice_positions is not None and real_positions is not None:
        raise ValueError("Pass either `slice_positions` or `real_positions` (a distribution to draw from), not both.")
    if num_scalars == 0:
        if given:
            raise ValueError(
                f"`{given}` was given but the sampler's priors are not conditioned on the slice position "
                "(they were built with `num_scalars=0`)."
            )
        return None
    if num_scalars != 1:
        raise ValueError(
            f"The sampler's priors take {num_scalars} scalar conditions; synthetic slices set only one, the "
            "normalised slice position (`num_scalars=1`)."
        )
    if not given:
        raise ValueError(
            "The sampler's priors are conditioned on the slice position (`num_scalars=1`): pass `slice_positions` "
            "(one float, or one per sample) or `real_positions` (e.g. `slice_positions_of(real_dataset)`)."
        )
    if slice_positions is not None:
        if np.ndim(slice_positions) == 0:
            return _position_array(slice_positions, "slice_positions", scalar=True).repeat(num_samples)
        positions = _position_array(slice_positions, "slice_positions")
        if len(positions) != num_samples:
            raise ValueError(
                f"`slice_positions` needs one float or {num_samples} values (one per sample), got {len(positions)}."
            )
        return positions
    pool = np.sort(_position_array(real_positions, "real_positions"))
    draws = []
    for batch in range(math.ceil(num_samples / batch_size)):
        generator = np.random.default_rng(np.random.SeedSequence([seed, batch, _POSITION_STREAM]))
        draws.append(generator.choice(pool, size=batch_count(num_samples, batch_size, batch), replace=True))
    return np.concatenate(draws)


def position_spec(slice_positions: Any, real_positions: Any) -> dict[str, Any]:
    """How positions were chosen, for a bank's settings (per-sample values live in the per-sample entries).

    Args:
        slice_positions: as given to :func:`resolve_positions`.
        real_positions: as given to :func:`resolve_positions`.

    Returns:
        ``{"mode": "real", "count", "sha256"}`` (the sorted pool's size and digest), ``{"mode": "fixed", "value"}``,
        ``{"mode": "per_sample"}`` or ``{"mode": "none"}``.
    """
    if real_positions is not None:
        pool = np.sort(_position_array(real_positions, "real_positions")).astype("<f8")
        return {"mode": "real", "count": int(pool.size), "sha256": hashlib.sha256(pool.tobytes()).hexdigest()}
    if slice_positions is None:
        return {"mode": "none"}
    if np.ndim(slice_positions) == 0:
        return {"mode": "fixed", "value": float(slice_positions)}
    return {"mode": "per_sample"}


def resolve_labels(
    num_classes: int, num_samples: int, labels: int | Sequence[int] | None, name: str = "class_labels"
) -> np.ndarray | None:
    """One class label per sample ``(num_samples,)`` int64, or ``None`` for priors without classes.

    Args:
        num_classes: classes of the sampler's priors (:func:`global_conditions`).
        num_samples: samples to generate.
        labels: one label for every sample, or one per sample.
        name: the argument's name in error messages.

    Returns:
        the labels, or ``None`` when the priors have no classes.

    Raises:
        TypeError: labels that are not integers.
        ValueError: labels for priors without classes (or none for priors with classes), not one per sample, or
            outside ``[0, num_classes - 1]``.
    """
    if num_classes == 0:
        if labels is not None:
            raise ValueError(f"`{name}` was given but the sampler's priors were built with `num_classes=0`.")
        return None
    if labels is None:
        raise ValueError(f"The sampler's priors were built with `num_classes={num_classes}`: pass `{name}`.")
    if isinstance(labels, bool):
        raise TypeError(f"`{name}` must be an int or one int per sample, got {labels!r}.")
    array = torch.as_tensor(labels).cpu().numpy()
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"`{name}` must be an int or one int per sample, got {labels!r}.")
    array = np.broadcast_to(array, (num_samples,)).astype(np.int64) if array.ndim == 0 else array.astype(np.int64)
    if array.shape != (num_samples,):
        raise ValueError(f"`{name}` needs one int or {num_samples} values (one per sample), got {array.shape[0]}.")
    if array.min() < 0 or array.max() >= num_classes:
        raise ValueError(f"`{name}` must lie in [0, {num_classes - 1}], got values in [{array.min()}, {array.max()}].")
    return array


def label_spec(labels: Any) -> dict[str, Any]:
    """How labels were chosen, for a bank's settings (per-sample values live in the per-sample entries).

    Args:
        labels: as given to :func:`resolve_labels`.

    Returns:
        ``{"mode": "none"}``, ``{"mode": "fixed", "value"}`` or ``{"mode": "per_sample"}``.
    """
    if labels is None:
        return {"mode": "none"}
    if np.ndim(labels) == 0:
        return {"mode": "fixed", "value": int(labels)}
    return {"mode": "per_sample"}
