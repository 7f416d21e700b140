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

__all__ = [
    "BANK_FORMAT",
    "BANK_MANIFEST",
    "BANK_TABLE",
    "bank_file_name",
    "bank_grid_name",
    "bank_label_file_name",
    "load_bank_manifest",
]

BANK_FORMAT = 2
"""Version of the bank manifest format, recorded as ``"format"`` in ``manifest.json``. Format 2 (0.8) calls the
class condition of the priors ``class_label`` (``label`` in format 1, which :func:`load_bank_manifest` still reads)
and adds ``label_file``: the tissue label map of each slice, for a VQ-VAE-2 with a label decoder."""
BANK_MANIFEST = "manifest.json"
"""File name of a bank's manifest."""
BANK_TABLE = "manifest.csv"
"""File name of a bank's per-sample table (one row per file)."""


def bank_file_name(index: int) -> str:
    """File name of sample ``index`` of a bank."""
    return f"synthetic_{index:06d}.nii.gz"


def bank_label_file_name(index: int) -> str:
    """File name of the tissue label map of sample ``index`` of a bank."""
    return f"synthetic_{index:06d}_label.nii.gz"


def bank_grid_name(chunk: int) -> str:
    """File name of the PNG grid of chunk ``chunk`` of a bank."""
    return f"grid_{chunk:04d}.png"


def _from_format_1(manifest: dict[str, Any]) -> dict[str, Any]:
    """A format-1 manifest in format 2: the class condition ``label`` renamed ``class_label`` (``labels`` in the
    settings), no label files."""
    manifest = dict(manifest, format=BANK_FORMAT)
    if isinstance(manifest.get("settings"), dict) and "labels" in manifest["settings"]:
        settings = dict(manifest["settings"])
        settings["class_labels"] = settings.pop("labels")
        settings.setdefault("label_maps", False)
        manifest["settings"] = settings
    if isinstance(manifest.get("samples"), list):
        manifest["samples"] = [
            {("class_label" if key == "label" else key): value for key, value in entry.items()}
            if isinstance(entry, dict)
            else entry
            for entry in manifest["samples"]
        ]
    return manifest


def load_bank_manifest(bank_dir: str | os.PathLike) -> dict[str, Any]:
    """Read the ``manifest.json`` of a bank written by :func:`~monai_vqvae2.synthetic.generate_bank`.

    Args:
        bank_dir: the bank folder.

    Returns:
        the manifest: ``settings``, ``checkpoints``, ``versions``, ``num_samples`` (requested), ``complete``,
        ``chunks`` and ``samples`` (one entry per file, in order), in format :data:`BANK_FORMAT` (a format-1
        manifest is read as format 2).

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
    if isinstance(manifest, dict) and manifest.get("format") == 1:
        manifest = _from_format_1(manifest)
    if not isinstance(manifest, dict) or manifest.get("format") != BANK_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ValueError(f"{str(path)!r} is not a bank manifest of format {BANK_FORMAT} (found format {found!r}).")
    for key in ("settings", "chunks", "samples"):
        if key not in manifest:
            raise ValueError(f"bank manifest {str(path)!r} has no {key!r} entry.")
    return manifest
