"""Fixtures of the transform tests, shared with tests/data: the file builders (``build``)."""

from __future__ import annotations

from tests.data.conftest import build

__all__ = ["build"]
