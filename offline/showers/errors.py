"""Errors raised by the shower validation toolkit."""

from __future__ import annotations

__all__ = ["ShowerDataError", "UnknownModelError"]


class ShowerDataError(ValueError):
    """Shower arrays are malformed: wrong rank or shape, NaN cells, mismatched energies."""


class UnknownModelError(KeyError):
    """A generator name is not in the model registry (the message lists the known names)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else super().__str__()
