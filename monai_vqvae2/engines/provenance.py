"""What produced a run's outputs: seed, settings and package versions, written beside the outputs."""

from __future__ import annotations

import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from monai_vqvae2.io import atomic_write_json

__all__ = ["package_versions", "record_run"]

PACKAGES = ("monai-vqvae2", "torch", "monai", "pytorch-ignite", "nibabel", "nilearn", "numpy")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a run depends on (``None`` when one is missing)."""
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
