"""Crash-safe file writes: write to a temporary file in the target folder, then rename over the target."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["atomic_torch_save", "atomic_write", "atomic_write_json", "remove_stale_temporaries"]


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(temporary_path)`` and atomically move the result to ``path``.

    A crash or kill during ``write`` leaves ``path`` as it was (the old file or nothing) and no partial file behind.

    Args:
        path: destination file; its parent folder is created if needed.
        write: writes the whole content to the path it is given.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(descriptor)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that :func:`atomic_write` calls for ``path`` left behind when their process was
    killed (SIGKILL runs no cleanup). Call it when a new run starts writing ``path``.

    Returns:
        the files removed.
    """
    path = Path(path)
    stale = sorted(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []
    for temporary in stale:
        temporary.unlink(missing_ok=True)
    return stale


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return atomic_write(path, lambda temporary: temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` atomically."""
    return atomic_write(path, lambda temporary: torch.save(obj, temporary))
