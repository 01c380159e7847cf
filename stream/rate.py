"""Token-bucket rate limit on events per second, for replaying a source at a set rate.

Example:
    >>> clock = iter([0.0, 0.0, 0.5, 1.0]).__next__
    >>> bucket = TokenBucket(rate=1000.0, burst=1000.0, clock=clock, sleep=lambda s: None)
    >>> bucket.acquire(1000)    # the bucket starts full
    0.0
    >>> bucket.acquire(1000)    # half a second later only 500 tokens are back: wait 0.5 s
    0.5
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """Refills ``rate`` tokens per second up to ``burst``; one token is one event.

    Args:
        rate: events per second (> 0).
        burst: bucket size; defaults to one second of events. A request larger than
            the bucket is allowed and paid back by waiting.
        clock: monotonic clock (seconds), injectable for tests.
        sleep: sleep function, injectable for tests.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            msg = f"rate must be > 0 events/s, got {rate!r}"
            raise ValueError(msg)
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate)
        if not self.burst > 0:
            msg = f"burst must be > 0 events, got {burst!r}"
            raise ValueError(msg)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last = clock()

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate:g}, burst={self.burst:g})"

    def acquire(self, events: int) -> float:
        """Take ``events`` tokens, sleeping until the bucket can pay; returns seconds slept."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= events
        if self._tokens >= 0:
            return 0.0
        wait = -self._tokens / self.rate
        self._sleep(wait)
        return wait
