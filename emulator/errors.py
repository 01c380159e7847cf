"""Errors raised by the emulator."""

from __future__ import annotations

__all__ = ["ConfigError", "SnapshotError"]


class ConfigError(ValueError):
    """A configuration key has an invalid value (the message names the key and the value)."""


class SnapshotError(ValueError):
    """A snapshot directory is missing, incomplete or corrupt (names the path and the part)."""
