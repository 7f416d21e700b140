"""The error of a file that cannot be used as training data, and the mapping of reader errors onto it."""

from __future__ import annotations

import gzip
import os
import re
import zlib

__all__ = ["PERMISSION_PROBLEM", "InvalidImageError", "as_invalid_image"]


class InvalidImageError(ValueError):
    """A file that cannot be used as training data.

    Raised for missing, unreadable, corrupt or truncated files, broken symbolic links, headers that disagree with
    their data or declare more than ``max_voxels`` voxels, complex or multi-component (RGB) voxel types, mismatched
    Analyze ``.hdr``/``.img`` pairs, a 2D file where a 3D volume is expected, NaN/Inf voxels and constant (e.g.
    all-zero) volumes. The message always starts with the file path.

    Args:
        path: the offending file.
        problem: what is wrong with it, in words.
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # keep the two-argument constructor picklable (DataLoader worker processes)
        return (type(self), (self.path, self.problem))


_SHORT_READ = re.compile(r"Expected (\d+) bytes, got (\d+) bytes")


#: Problem text of an :class:`InvalidImageError` for a file that the operating system refuses to read.
PERMISSION_PROBLEM = "permission denied: it cannot be read (check the permissions of the file and of its folders)."


def as_invalid_image(error: BaseException, path: str | os.PathLike) -> InvalidImageError:
    """Map an exception raised while reading or transforming ``path`` to an :class:`InvalidImageError`.

    Returns the :class:`InvalidImageError` found in the exception chain (MONAI wraps every transform error in a
    ``RuntimeError``), or a new one naming ``path`` whose problem is worded from the innermost exception: a
    compressed stream that ends early or holds fewer bytes than the header declares is "truncated", a refused
    ``open`` is "permission denied", anything else "could not be read or processed".

    Args:
        error: the exception raised.
        path: the file being read.

    Returns:
        the :class:`InvalidImageError` to raise (``from error``).
    """
    seen, current, root = set(), error, error
    while current is not None and id(current) not in seen:
        if isinstance(current, InvalidImageError):
            return current
        seen.add(id(current))
        root = current
        current = current.__cause__ or current.__context__
    lines = str(root).strip().splitlines() or [""]
    cause = f"{type(root).__name__}: {lines[0].strip()}"
    short_read = _SHORT_READ.search(lines[0])
    # MONAI's LoadImage turns a reader's exception into the text of a RuntimeError (with its traceback)
    if isinstance(root, PermissionError) or "\nPermissionError: " in str(root):
        problem = PERMISSION_PROBLEM
    elif isinstance(root, EOFError):
        problem = f"truncated: the compressed data ends before its end-of-stream marker ({cause}); was it cut short?"
    elif short_read:
        problem = (
            f"truncated: the header declares {short_read.group(1)} bytes of voxel data, the file holds only "
            f"{short_read.group(2)}."
        )
    elif isinstance(root, (zlib.error, gzip.BadGzipFile)):
        problem = f"corrupt compressed data ({cause})."
    else:
        problem = f"could not be read or processed ({cause}); the file may be corrupt or truncated."
    return InvalidImageError(path, problem)
