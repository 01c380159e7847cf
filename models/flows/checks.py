"""Argument checks shared by the flows: one wording for every bad size or bound."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["positive_float", "positive_int"]


def positive_int(owner: str, name: str, value: Any, minimum: int = 1) -> int:
    """``value`` if it is an integer (not a bool) >= ``minimum``.

    Raises:
        ValueError: ``"{owner}: {name} must be an integer >= {minimum}, got {value!r}"``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        msg = f"{owner}: {name} must be an integer >= {minimum}, got {value!r}"
        raise ValueError(msg)
    return value


def positive_float(owner: str, name: str, value: Any) -> float:
    """``float(value)`` if it is a finite number (not a bool) > 0.

    Raises:
        ValueError: ``"{owner}: {name} must be a finite number > 0, got {value!r}"``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
        msg = f"{owner}: {name} must be a finite number > 0, got {value!r}"
        raise ValueError(msg)
    return float(value)
