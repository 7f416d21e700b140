"""The raise-or-skip policy for bad inputs shared by discovery and dataset building, and the bad-input errors.

:class:`InvalidImageError`, :data:`PERMISSION_PROBLEM` and :func:`as_invalid_image` live in
:mod:`monai_vqvae2.transforms.errors` (the transforms raise them) and are re-exported here.
"""

from __future__ import annotations

import os
import warnings

# the errors of a bad file live beside the transforms that raise them (below this package); re-exported for backward
# compatibility (monai_vqvae2.data.errors.InvalidImageError)
from monai_vqvae2.transforms.errors import PERMISSION_PROBLEM, InvalidImageError, as_invalid_image

__all__ = [
    "ON_ERROR_CHOICES",
    "PERMISSION_PROBLEM",
    "BadInputPolicy",
    "BadInputWarning",
    "InvalidImageError",
    "as_invalid_image",
    "check_on_error",
]

ON_ERROR_CHOICES = ("raise", "skip")


class BadInputWarning(UserWarning):
    """Warning issued for every file skipped with ``on_error="skip"``, and once for the final count."""


def check_on_error(on_error: str) -> str:
    """Validate an ``on_error`` argument.

    Args:
        on_error: ``"raise"`` or ``"skip"``.

    Returns:
        ``on_error`` unchanged.

    Raises:
        ValueError: when ``on_error`` is neither choice.
    """
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"`on_error` must be one of {ON_ERROR_CHOICES}, got {on_error!r}.")
    return on_error


class BadInputPolicy:
    """Apply ``on_error`` to bad files: re-raise, or warn once per file and count.

    Args:
        on_error: ``"raise"`` (default everywhere) or ``"skip"``.
        stage: short description used in the final summary, e.g. ``"discovery"`` or ``"loading"``.
    """

    def __init__(self, on_error: str = "raise", stage: str = "loading") -> None:
        self.on_error = check_on_error(on_error)
        self.stage = stage
        self.skipped: list[tuple[str, str]] = []

    def handle(self, error: Exception, path: str | os.PathLike) -> None:
        """Raise ``error`` (``on_error="raise"``) or record it and warn once naming the file (``"skip"``).

        Args:
            error: the problem found.
            path: the file (or folder) it concerns.

        Raises:
            Exception: ``error`` itself when ``on_error="raise"``.
        """
        if self.on_error == "raise":
            raise error
        message = str(error)
        if not message.startswith(str(path)):
            message = f"{path}: {message}"
        self.skipped.append((str(path), message))
        warnings.warn(f"skipping bad input ({self.stage}): {message}", BadInputWarning, stacklevel=3)

    def summarise(self, total: int) -> None:
        """Warn once with the number of skipped files, if any.

        Args:
            total: number of files considered.
        """
        if self.skipped:
            warnings.warn(
                f"{self.stage}: skipped {len(self.skipped)} of {total} file(s) with bad input (on_error='skip').",
                BadInputWarning,
                stacklevel=3,
            )
