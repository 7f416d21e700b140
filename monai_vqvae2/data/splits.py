"""Subject-level train/validation/test splits, saved as JSON so that runs are reproducible.

Slices of one brain are near-duplicates, and OASIS-1 ``MR1``/``MR2`` or OASIS-3 sessions of one participant are
the same brain: splitting by slice or by session leaks test data into training. Every function here works on
subjects.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai_vqvae2.io import atomic_write

__all__ = [
    "SPLIT_NAMES",
    "check_fractions",
    "check_no_subject_overlap",
    "check_outside_dataset",
    "load_split",
    "save_split",
    "split_by_subject",
]

SPLIT_NAMES = ("train", "validation", "test")


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """``fractions`` as three floats (train, validation, test), checked: non-negative, finite, summing to 1.

    Raises:
        ValueError: not three non-negative finite numbers, or they do not sum to 1.
    """
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or any(not math.isfinite(f) or f < 0 for f in values):
        raise ValueError(f"`fractions` must be three non-negative numbers (train, validation, test), got {fractions}.")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"`fractions` must sum to 1, got {fractions} (sum {sum(values):.6g}).")
    return values  # type: ignore[return-value]


def _subject_counts(num_subjects: int, fractions: tuple[float, float, float]) -> list[int]:
    """Subjects per split: rounded fractions, at least one per split with a positive fraction when possible."""
    positive = sum(f > 0 for f in fractions)
    minimum = [1 if f > 0 and num_subjects >= positive else 0 for f in fractions]
    validation = max(round(fractions[1] * num_subjects), minimum[1])
    test = max(round(fractions[2] * num_subjects), minimum[2])
    while num_subjects - validation - test < minimum[0]:
        if validation - minimum[1] >= test - minimum[2] and validation > minimum[1]:
            validation -= 1
        else:
            test -= 1
    train = num_subjects - validation - test
    if fractions[0] == 0 and train > 0:  # rounding left subjects over: give them to the larger other split
        if fractions[1] >= fractions[2]:
            validation += train
        else:
            test += train
        train = 0
    return [train, validation, test]


def split_by_subject(
    items: Sequence[dict[str, Any]], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, list[dict[str, Any]]]:
    """Split items into train/validation/test so that no subject appears in two splits.

    Subjects are sorted, shuffled with ``random.Random(seed)`` and cut by ``fractions`` (counts are rounded;
    a split with a positive fraction gets at least one subject when there are enough subjects). The result does
    not depend on the order of ``items``. Items that already carry a ``"split"`` key (the preprocessed PNG
    folders, or a CSV list with a ``split`` column) keep it.

    Args:
        items: discovered items, each with ``"subject"``.
        fractions: train, validation and test fractions of subjects, summing to 1.
        seed: shuffling seed.

    Returns:
        ``{"train": [...], "validation": [...], "test": [...]}``, each list in the original item order.

    Raises:
        ValueError: bad ``fractions``, an item without ``subject``, or an unknown ``split`` value.
    """
    fractions = check_fractions(fractions)
    assigned: dict[str, str] = {}
    subjects = set()
    for number, item in enumerate(items):
        if "subject" not in item:
            raise ValueError(f"`items[{number}]` has no 'subject' key: {item!r}.")
        if "split" in item:
            if item["split"] not in SPLIT_NAMES:
                raise ValueError(f"`items[{number}]['split']` must be one of {SPLIT_NAMES}, got {item['split']!r}.")
        else:
            subjects.add(str(item["subject"]))
    order = sorted(subjects)
    random.Random(seed).shuffle(order)
    counts = _subject_counts(len(order), fractions)
    start = 0
    for name, count in zip(SPLIT_NAMES, counts):
        for subject in order[start : start + count]:
            assigned[subject] = name
        start += count
    split: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLIT_NAMES}
    for item in items:
        split[item["split"] if "split" in item else assigned[str(item["subject"])]].append(item)
    return split


def check_no_subject_overlap(split: dict[str, Sequence[dict[str, Any]]]) -> None:
    """Raise when a subject appears in more than one split.

    Args:
        split: mapping split name -> items.

    Raises:
        ValueError: naming the first subjects found in several splits.
    """
    where: dict[str, set[str]] = defaultdict(set)
    for name, items in split.items():
        for item in items:
            where[str(item.get("subject"))].add(name)
    crossing = {subject: sorted(names) for subject, names in where.items() if len(names) > 1}
    if crossing:
        shown = dict(sorted(crossing.items())[:5])
        raise ValueError(f"{len(crossing)} subject(s) appear in several splits, e.g. {shown}.")


def save_split(split: dict[str, Sequence[dict[str, Any]]], path: str | os.PathLike) -> Path:
    """Write a split as JSON, atomically (temporary file in the same folder, then ``os.replace``).

    Args:
        split: ``{"train": [...], "validation": [...], "test": [...]}`` as returned by :func:`split_by_subject`.
        path: destination ``.json`` file; parent folders are created.

    Returns:
        the path written.

    Raises:
        ValueError: missing or unknown split names, or items that JSON cannot encode.
    """
    if set(split) != set(SPLIT_NAMES):
        raise ValueError(f"`split` must have exactly the keys {SPLIT_NAMES}, got {sorted(split)}.")
    destination = Path(path).expanduser()
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        text = json.dumps({name: list(split[name]) for name in SPLIT_NAMES}, indent=1)
    except TypeError as error:
        raise ValueError(f"`split` items must be JSON-serialisable (paths as str): {error}.") from error
    atomic_write(destination, lambda temporary: temporary.write_text(text + "\n", encoding="utf-8"))
    return destination


def load_split(path: str | os.PathLike) -> dict[str, list[dict[str, Any]]]:
    """Read a split written by :func:`save_split`.

    Args:
        path: the JSON file.

    Returns:
        ``{"train": [...], "validation": [...], "test": [...]}``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not valid JSON, or not a split (wrong keys, items without ``image``/``subject``).
    """
    source = Path(path).expanduser()
    if not source.is_file():
        raise FileNotFoundError(f"split file {str(source)!r} does not exist.")
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"split file {str(source)!r} is not valid JSON: {error}.") from error
    if not isinstance(data, dict) or set(data) != set(SPLIT_NAMES):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"split file {str(source)!r} must hold exactly the keys {SPLIT_NAMES}, got {found}.")
    for name in SPLIT_NAMES:
        if not isinstance(data[name], list) or not all(
            isinstance(item, dict) and "image" in item and "subject" in item for item in data[name]
        ):
            raise ValueError(
                f"split file {str(source)!r}: {name!r} must be a list of items with 'image' and 'subject' keys."
            )
    return {name: data[name] for name in SPLIT_NAMES}


def check_outside_dataset(path: str | os.PathLike, dataset_dir: Any, name: str = "path") -> None:
    """Raise when ``path`` lies inside the folder ``dataset_dir``: nothing of a run is ever written under the data.

    Every bundle stage calls it on ``output_dir`` before writing anything.

    Args:
        path: where something is about to be written.
        dataset_dir: the dataset being read; only an existing folder is checked (``None``, a file list or a
            sequence of paths names no folder).
        name: the argument or config key ``path`` came from, for the message.

    Raises:
        ValueError: ``path`` is ``dataset_dir`` or below it (symbolic links resolved).
    """
    if not isinstance(dataset_dir, (str, os.PathLike)) or not Path(dataset_dir).expanduser().is_dir():
        return
    data = Path(dataset_dir).expanduser().resolve()
    target = Path(path).expanduser().resolve()
    if target == data or data in target.parents:
        raise ValueError(
            f"`{name}` {str(path)!r} is inside the dataset folder {str(data)!r}; outputs, caches, splits and codes "
            "are never written under the data: choose an `output_dir` outside it."
        )
