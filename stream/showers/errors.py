"""Errors raised by the shower package."""

from __future__ import annotations

from stream.errors import SourceError

__all__ = ["ShowerFileError"]


class ShowerFileError(SourceError):
    """A shower file is missing, of an unknown format, or holds the wrong keys, shapes or units.

    The message names the file, the key and the expected and received shapes.
    """
