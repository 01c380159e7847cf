"""Exponential backoff with a cap, for retrying a broker that is down or restarting.

Example:
    >>> b = Backoff(initial_s=0.1, max_s=0.4, jitter=0.0)
    >>> [b.next_delay() for _ in range(4)]
    [0.1, 0.2, 0.4, 0.4]
    >>> b.reset(); b.next_delay()
    0.1
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Delays ``initial_s, 2·initial_s, 4·initial_s, ...`` capped at ``max_s``.

    Attributes:
        initial_s: first delay in seconds.
        max_s: largest delay in seconds.
        jitter: relative random spread added to each delay (0 = none), so that many
            clients do not reconnect in lock step.
        attempts: failures since the last :meth:`reset`.
    """

    initial_s: float = 0.2
    max_s: float = 10.0
    jitter: float = 0.1
    attempts: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.max_s < self.initial_s or self.jitter < 0:
            msg = f"backoff needs 0 < initial_s <= max_s and jitter >= 0, got {self!r}"
            raise ValueError(msg)

    def next_delay(self) -> float:
        """Delay before the next attempt; counts one more failure."""
        delay = min(self.max_s, self.initial_s * 2.0**self.attempts)
        self.attempts += 1
        if self.jitter:
            delay *= 1.0 + self.jitter * random.random()
        return delay

    def reset(self) -> None:
        """Forget past failures (after a success)."""
        self.attempts = 0
