"""Errors of the bump hunt."""

from __future__ import annotations

__all__ = ["BumpHuntError"]


class BumpHuntError(ValueError):
    """The bump hunt cannot run on its input (names the snapshot, file or value)."""
