"""What produced an output: file digests, package versions and the ``run_<stage>.json`` run records."""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from monai_vqvae2.io import atomic_write_json

__all__ = ["PACKAGES", "checkpoint_records", "file_digest", "package_versions", "record_run"]

# the packages whose versions every run record and manifest lists
PACKAGES = ("monai-vqvae2", "torch", "monai", "pytorch-ignite", "nibabel", "nilearn", "numpy")


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file (identifies the autoencoder checkpoint that produced a code file).

    Args:
        path: the file, read in blocks of 1 MiB.

    Returns:
        the hexadecimal digest.

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_records(checkpoints: Sequence[str | os.PathLike]) -> list[dict[str, str]]:
    """``{"path", "sha256"}`` of each checkpoint file, for manifests.

    Args:
        checkpoints: the checkpoint files.

    Returns:
        one record per file, in order.

    Raises:
        OSError: a file cannot be read.
    """
    return [{"path": str(path), "sha256": file_digest(path)} for path in checkpoints]


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a run depends on (``None`` when one is missing).

    Returns:
        ``{"python": ..., <package>: <version or None>}`` for Python and each of :data:`PACKAGES`.
    """
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def record_run(output_dir: str | Path, seed: int, stage: str, **settings: Any) -> Path:
    """Write ``<output_dir>/run_<stage>.json`` with the seed, the settings, the command line, the time and the
    package versions, so every output folder says how it was made.

    Args:
        output_dir: the run's output folder.
        seed: the run's seed.
        stage: name of the stage (``train_autoencoder``, ``evaluate``, ...).
        settings: any other JSON-serialisable settings worth recording.

    Returns:
        the path written.
    """
    record = {
        "stage": stage,
        "seed": seed,
        "settings": settings,
        "command": sys.argv,
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "versions": package_versions(),
    }
    return atomic_write_json(Path(output_dir) / f"run_{stage}.json", record)
