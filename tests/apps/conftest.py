"""Fixtures of the dataset tests, shared with tests/data: a small OASIS-1 tree and the file builders."""

from __future__ import annotations

from tests.data.conftest import build, oasis1_tree

__all__ = ["build", "oasis1_tree"]
