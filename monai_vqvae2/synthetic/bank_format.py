"""The on-disk format of a bank of synthetic slices: the names of its files and reading its manifest back.

A bank folder, as :func:`~monai_vqvae2.synthetic.generate_bank` writes it, holds one ``synthetic_<index>.nii.gz`` per
slice (:func:`bank_file_name`), one ``grid_<chunk>.png`` per chunk (:func:`bank_grid_name`), ``manifest.json``
(:data:`BANK_MANIFEST`, format :data:`BANK_FORMAT`; read by :func:`load_bank_manifest`) and ``manifest.csv``
(:data:`BANK_TABLE`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["BANK_FORMAT", "BANK_MANIFEST", "BANK_TABLE", "bank_file_name", "bank_grid_name", "load_bank_manifest"]

BANK_FORMAT = 1
"""Version of the bank manifest format, recorded as ``"format"`` in ``manifest.json``."""
BANK_MANIFEST = "manifest.json"
"""File name of a bank's manifest."""
BANK_TABLE = "manifest.csv"
"""File name of a bank's per-sample table (one row per file)."""


def bank_file_name(index: int) -> str:
    """File name of sample ``index`` of a bank."""
    return f"synthetic_{index:06d}.nii.gz"


def bank_grid_name(chunk: int) -> str:
    """File name of the PNG grid of chunk ``chunk`` of a bank."""
    return f"grid_{chunk:04d}.png"


def load_bank_manifest(bank_dir: str | os.PathLike) -> dict[str, Any]:
    """Read the ``manifest.json`` of a bank written by :func:`~monai_vqvae2.synthetic.generate_bank`.

    Args:
        bank_dir: the bank folder.

    Returns:
        the manifest: ``settings``, ``checkpoints``, ``versions``, ``num_samples`` (requested), ``complete``,
        ``chunks`` and ``samples`` (one entry per file, in order).

    Raises:
        FileNotFoundError: the folder has no manifest.
        ValueError: the manifest is not valid JSON or not a bank manifest of this format.
    """
    path = Path(bank_dir) / BANK_MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"no bank manifest {str(path)!r}; write a bank with monai_vqvae2.synthetic.generate_bank."
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"bank manifest {str(path)!r} is not valid JSON: {error}.") from error
    if not isinstance(manifest, dict) or manifest.get("format") != BANK_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ValueError(f"{str(path)!r} is not a bank manifest of format {BANK_FORMAT} (found format {found!r}).")
    for key in ("settings", "chunks", "samples"):
        if key not in manifest:
            raise ValueError(f"bank manifest {str(path)!r} has no {key!r} entry.")
    return manifest
