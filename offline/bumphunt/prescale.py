"""Counter-based prescale of stored events: keep every k-th event.

A prescale of k keeps events 0, k, 2k, … in the order they were stored (as a trigger's
prescale counter does), so exactly ⌈n/k⌉ of n events survive, with no randomness.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_PRESCALES", "prescale"]

DEFAULT_PRESCALES = (1, 2, 4, 8, 16, 32)


def prescale(values: np.ndarray, factor: int, offset: int = 0) -> np.ndarray:
    """Every ``factor``-th entry of ``values``, starting at ``offset``.

    Args:
        values: events in storage order (any leading-axis array).
        factor: prescale factor k ≥ 1.
        offset: counter phase, 0 ≤ offset < k.

    Returns:
        A view with ⌈(n − offset)/k⌉ entries.

    Example:
        >>> prescale(np.arange(10), 4)
        array([0, 4, 8])
    """
    if int(factor) != factor or factor < 1:
        msg = f"prescale: factor must be an integer >= 1, got {factor!r}"
        raise ValueError(msg)
    if not 0 <= offset < factor:
        msg = f"prescale: offset must be in [0, {factor}), got {offset}"
        raise ValueError(msg)
    return np.asarray(values)[offset :: int(factor)]
