"""Slice positions of real slices (0 = inferior, 1 = superior), the distribution synthetic slices draw their
conditioned position from: :func:`slice_positions_of` a code file, a slice dataset or items, and
:func:`training_slice_positions` of a run's training split.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai_vqvae2.data.datasets import make_slice_dataset
from monai_vqvae2.data.splits import load_split
from monai_vqvae2.transforms import SlicePreprocessing

__all__ = ["slice_positions_of", "training_slice_positions"]


def slice_positions_of(source: Any) -> np.ndarray:
    """Normalised slice positions (0 = inferior, 1 = superior) of real slices, to draw synthetic positions from.

    Args:
        source: a code file written by :func:`~monai_vqvae2.inferers.extract_codes` (path to the ``.npz``; cheap), a
            :class:`~monai_vqvae2.data.SliceDataset` (read from its descriptors, without decoding pixels), a
            :class:`~monai_vqvae2.data.CodeDataset`, or any sequence/dataset of dict items with a
            ``"slice_position"`` key (items marked ``"synthetic": True`` are left out).

    Returns:
        the finite positions, float64 ``(N,)``, in dataset order.

    Raises:
        FileNotFoundError: a code file path that does not exist.
        TypeError: ``source`` is none of the above.
        ValueError: no finite ``slice_position`` at all.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"code file {str(path)!r} does not exist; run the prior stage's code extraction.")
        with np.load(path, allow_pickle=False) as stored:
            if "slice_position" not in stored.files:
                raise ValueError(f"{str(path)!r} has no 'slice_position' array; expected a file from extract_codes.")
            values = np.asarray(stored["slice_position"], dtype=np.float64)
        what = repr(str(path))
    elif isinstance(getattr(source, "slice_items", None), list):  # SliceDataset: descriptors, no pixels
        values = np.array([item.get("slice_position", math.nan) for item in source.slice_items], dtype=np.float64)
        what = type(source).__name__
    elif isinstance(getattr(source, "slice_position", None), torch.Tensor):  # CodeDataset
        values = source.slice_position.double().reshape(-1).numpy()
        what = type(source).__name__
    else:
        if isinstance(source, Mapping) or not (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
            raise TypeError(
                "`source` must be a code file path, a SliceDataset, a CodeDataset or a sequence of slice items, "
                f"got {type(source).__name__}."
            )
        collected = []
        for index in range(len(source)):
            item = source[index]
            if not isinstance(item, Mapping):
                raise TypeError(f"`source[{index}]` must be a dict item, got {type(item).__name__}.")
            if item.get("synthetic") is True:
                continue
            collected.append(float(item.get("slice_position", math.nan)))
        values = np.array(collected, dtype=np.float64)
        what = type(source).__name__
    finite = values[np.isfinite(values)]
    if not finite.size:
        raise ValueError(f"no finite 'slice_position' in {what}: real slice items must carry their slice position.")
    return finite


def training_slice_positions(
    codes_file: str | os.PathLike,
    split_file: str | os.PathLike | None = None,
    split: str = "train",
    preprocessing: SlicePreprocessing | Mapping[str, Any] | None = None,
    **options: Any,
) -> np.ndarray:
    """Slice positions of the real training slices: from the prior stage's code file when it exists (cheap), else
    from the split file's items through :func:`~monai_vqvae2.data.make_slice_dataset` (decodes every volume once).

    Args:
        codes_file: ``<output_dir>/codes/train.npz`` as the prior stage writes it.
        split_file: the run's ``split.json``, used when ``codes_file`` does not exist.
        split: the split whose slices to use with ``split_file``.
        preprocessing: the run's :class:`~monai_vqvae2.transforms.SlicePreprocessing`, the same as training used,
            since it decides which slices are kept; ``None``: the defaults.
        options: fields of :class:`~monai_vqvae2.transforms.SlicePreprocessing` replacing those of
            ``preprocessing``, e.g. ``image_size=128``.

    Returns:
        the positions, float64 ``(N,)``.

    Raises:
        FileNotFoundError: neither file exists.
        ValueError: ``split`` is not in the split file, or no finite position.
    """
    if Path(codes_file).is_file():
        return slice_positions_of(codes_file)
    if split_file is None or not Path(split_file).is_file():
        raise FileNotFoundError(
            f"neither the code file {str(codes_file)!r} nor the split file {str(split_file)!r} exists; train the "
            "autoencoder (which writes the split) or the priors (which write the code file) first."
        )
    splits = load_split(split_file)
    if split not in splits:
        raise ValueError(f"`split` must be one of {sorted(splits)}, got {split!r}.")
    return slice_positions_of(make_slice_dataset(splits[split], preprocessing, cache=None, **options))
