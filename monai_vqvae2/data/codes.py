"""Code maps of a trained VQ-VAE-2, stored compactly for prior training.

Prior training reads index maps, never images: :func:`~monai_vqvae2.inferers.extract_codes` runs the autoencoder
over a slice dataset once and writes one ``.npz`` file (``uint16`` index maps per level, coarsest first, plus each
slice's subject, source file, slice index and normalised slice position, and the settings it was made with).
:class:`CodeDataset` serves them to a ``DataLoader`` and can check that they come from the checkpoint in use.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from monai_vqvae2.provenance import file_digest

__all__ = ["CODE_FILE_FORMAT", "CodeDataset", "file_digest", "read_code_settings"]

#: version of the code file layout written by :func:`~monai_vqvae2.inferers.extract_codes`
CODE_FILE_FORMAT = 1


def read_code_settings(path: str | os.PathLike) -> dict[str, Any] | None:
    """The settings recorded in a code file (format, number of slices, codebook sizes, checkpoint and its SHA-256),
    or ``None`` when ``path`` is missing or not a code file."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            return json.loads(str(stored["settings"]))
    except (OSError, ValueError, KeyError):
        return None


class CodeDataset(Dataset):
    """Index maps of one level from a file written by :func:`~monai_vqvae2.inferers.extract_codes`, for prior
    training.

    Items: ``{"indices": LongTensor (h, w), "condition": LongTensor (coarser level's map; only for levels > 0 when
    ``with_condition``), "slice_position": FloatTensor (1,), "subject": str}``.

    Args:
        path: the ``.npz`` code file.
        level: level index, 0 = coarsest (top).
        with_condition: include the next coarser level's map as ``condition``.
        checkpoint: the autoencoder checkpoint in use; when given, the codes must have been extracted from this very
            file (same SHA-256), so that a prior never trains on the codes of an earlier autoencoder.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``level`` is not in the file, ``with_condition`` for the coarsest level, or codes of another
            checkpoint.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        level: int = 0,
        with_condition: bool | None = None,
        checkpoint: str | os.PathLike | None = None,
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"code file {str(path)!r} does not exist; extract the codes first (the bundle's extract_codes stage)."
            )
        with np.load(path, allow_pickle=False) as stored:
            num_levels = sum(1 for key in stored.files if key.startswith("level"))
            if not 0 <= level < num_levels:
                raise ValueError(f"`level` must be in [0, {num_levels - 1}] for {path.name}, got {level}.")
            with_condition = level > 0 if with_condition is None else with_condition
            if with_condition and level == 0:
                raise ValueError("`with_condition=True` needs a coarser level; level 0 is the coarsest.")
            self.indices = torch.from_numpy(stored[f"level{level}"].astype(np.int64))
            self.condition = torch.from_numpy(stored[f"level{level - 1}"].astype(np.int64)) if with_condition else None
            self.slice_position = torch.from_numpy(stored["slice_position"].astype(np.float32))
            self.subject: Sequence[str] = stored["subject"].tolist()
            self.settings = json.loads(str(stored["settings"]))
        if checkpoint is not None and self.settings.get("checkpoint_sha256") != file_digest(checkpoint):
            source = self.settings.get("checkpoint")
            origin = (
                f"an earlier state of {source!r} (its SHA-256 has changed)"
                if source == str(checkpoint)
                else f"{source!r}, not from {str(checkpoint)!r}"
            )
            raise ValueError(
                f"the codes in {str(path)!r} were extracted from {origin}; extract the codes again (the bundle's "
                "extract_codes stage)."
            )
        self.level = level

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = {
            "indices": self.indices[index],
            "slice_position": self.slice_position[index : index + 1],
            "subject": self.subject[index],
        }
        if self.condition is not None:
            item["condition"] = self.condition[index]
        return item
