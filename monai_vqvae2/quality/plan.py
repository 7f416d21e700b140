"""Which slices each comparison of the report uses: the samples, the **real reference** (as many real slices of
held-out subjects as there are samples) and the **training base** (a seeded subset of the training slices), overall
and, with a position window, per sample slice position."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from monai_vqvae2.quality.images import ImageSet

__all__ = ["REFERENCE", "SETS", "Group", "plan_groups"]

REFERENCE = (
    "Real reference: real slices of held-out (test) subjects at the same slice positions, as many as there are "
    "samples, scored against the same training slices exactly like the samples; a perfect generator lands there."
)
SETS = ("samples", "real")  # the sets scored against the training base, in the order of the report's columns
_POSITION_TOLERANCE = 1e-9  # a slice exactly `position_window` away from a position is kept despite float rounding


class Group(NamedTuple):
    """One comparison: sample indices, real reference slices (indices into the real test set) and the training base
    (indices into the training set), at one slice position (``None``: every position pooled)."""

    position: float | None
    samples: list[int]
    real: list[int]
    base: list[int]


def _draw(rng: np.random.Generator, candidates: Sequence[int], count: int | None) -> list[int]:
    """``count`` of ``candidates`` drawn without replacement (all of them when ``count`` is None or not smaller),
    sorted."""
    candidates = [int(i) for i in candidates]
    if count is None or count >= len(candidates):
        return sorted(candidates)
    return sorted(int(i) for i in rng.choice(np.asarray(candidates), size=count, replace=False))


def plan_groups(
    samples: ImageSet,
    real: ImageSet,
    training: ImageSet,
    sample_positions: Sequence[float] | None,
    window: float | None,
    max_base: int | None,
    seed: int,
) -> tuple[Group, list[Group], dict[str, Any]]:
    """The slices each comparison uses: overall, and per distinct sample position (3 decimals) when ``window`` is
    given. At each position the real reference is a seeded draw of as many real test slices within ``window`` as there
    are samples there, and the training base a seeded draw of at most ``max_base`` training slices within ``window``;
    overall pools them. Without ``window``: all samples, as many real test slices as samples, ``max_base`` training
    slices, from anywhere in the brain."""
    rng = np.random.default_rng(seed)
    if window is None:
        overall = Group(
            None,
            list(range(len(samples))),
            _draw(rng, range(len(real)), len(samples)),
            _draw(rng, range(len(training)), max_base),
        )
        return overall, [], {"position_window": None, "real_test_in_windows": len(real), "training_in_windows": None}
    if not (math.isfinite(window) and window >= 0):
        raise ValueError(f"`position_window` must be a number >= 0 or None, got {window!r}.")
    known = {
        "the samples'": sample_positions,
        "the real test slices'": real.positions(),
        "the training slices'": training.positions(),
    }
    for what, positions in known.items():
        if positions is None:
            raise ValueError(f"`position_window` needs slice positions, but {what} are unknown; set it to None.")
    real_positions = np.asarray(known["the real test slices'"], dtype=np.float64)
    training_positions = np.asarray(known["the training slices'"], dtype=np.float64)
    groups: list[Group] = []
    near_real_all: set[int] = set()
    near_training_all: set[int] = set()
    for position in sorted({round(p, 3) for p in sample_positions}):
        members = [i for i, p in enumerate(sample_positions) if round(p, 3) == position]
        near_real = np.flatnonzero(np.abs(real_positions - position) <= window + _POSITION_TOLERANCE).tolist()
        near_training = np.flatnonzero(np.abs(training_positions - position) <= window + _POSITION_TOLERANCE).tolist()
        for name, near, total in (("real test", near_real, len(real)), ("training", near_training, len(training))):
            if not near:
                raise ValueError(
                    f"`position_window` {window:g} keeps no {name} slice (of {total}) near the sample position "
                    f"{position:g}; widen it or set it to None."
                )
        near_real_all.update(near_real)
        near_training_all.update(near_training)
        groups.append(
            Group(position, members, _draw(rng, near_real, len(members)), _draw(rng, near_training, max_base))
        )
    overall = Group(
        None,
        list(range(len(samples))),
        sorted({i for group in groups for i in group.real}),
        sorted({i for group in groups for i in group.base}),
    )
    for name, kept, total in (("real test", overall.real, len(real)), ("training", overall.base, len(training))):
        if len(kept) < 2:
            raise ValueError(
                f"`position_window` {window:g} keeps {len(kept)} of {total} {name} slices near the sample positions "
                f"{[g.position for g in groups]}; at least 2 are needed: widen it or set it to None."
            )
    selection = {
        "position_window": window,
        "real_test_in_windows": len(near_real_all),
        "training_in_windows": len(near_training_all),
    }
    return overall, groups, selection
