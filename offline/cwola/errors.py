"""Errors of the CWoLa search."""

from __future__ import annotations

__all__ = ["CwolaError"]


class CwolaError(ValueError):
    """The search cannot run on its input (names the snapshot, file, column or value)."""
