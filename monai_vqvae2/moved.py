"""Old import paths of names that moved to a package higher up the layers, resolved on first access.

A package may only import the packages below it, yet its former names must keep working (``from monai_vqvae2.data
import SyntheticSliceDataset``). :func:`moved_names` gives such a package a module ``__getattr__`` (PEP 562) that
imports the name's new home only when the old path is used. The moved names stay out of the package's ``__all__``,
so ``from package import *`` never imports upward; this module is the one place where such an import happens.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["moved_names"]


def moved_names(package: str, homes: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` for its former names.

    Args:
        package: the package keeping the old paths (its ``__name__``).
        homes: each former name and the module it lives in now, e.g. ``{"generate_bank": "monai_vqvae2.synthetic"}``.

    Returns:
        ``(__getattr__, __dir__)``, to be assigned at the package's module level.

    Example::

        __getattr__, __dir__ = moved_names(__name__, {"generate_bank": "monai_vqvae2.synthetic"})
    """
    homes = dict(homes)

    def __getattr__(name: str) -> Any:
        if name in homes:
            return getattr(importlib.import_module(homes[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *homes})

    return __getattr__, __dir__
