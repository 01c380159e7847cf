"""The progress line of a run: events, trained, dropped, bad messages, loss and model metrics."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from emulator.summary import RunSummary

__all__ = ["Progress"]

_SHOWN_METRICS = ("stage", "critic_loss", "generator_loss", "loss_member_min", "loss_member_max")
"""Model metrics shown in the progress line when the model reports them."""


class Progress:
    """A tqdm bar on stderr refreshed at most once a second (or nothing when disabled).

    Args:
        enabled: show the bar.
        total: events expected (None: unknown).
        initial: events already seen (a resumed run).
    """

    def __init__(self, enabled: bool, total: int | None, initial: int) -> None:
        self._bar: Any = None
        self._last = 0.0
        self.metrics: Mapping[str, float] = {}
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, unit="ev", unit_scale=True, dynamic_ncols=True,
                             desc="events", mininterval=1.0)

    def refresh(self, summary: RunSummary, bad: int, *, force: bool = False) -> None:
        """Show the summary's figures (rate-limited unless ``force``)."""
        if self._bar is None:
            return
        now = time.monotonic()
        if not force and now - self._last < 1.0:
            return
        self._last = now
        s = summary
        self._bar.n = s.events_seen
        extra = {k: f"{self.metrics[k]:.4g}" for k in _SHOWN_METRICS if k in self.metrics}
        self._bar.set_postfix(
            trained=f"{s.events_trained:,}", dropped=f"{s.events_dropped:,}", bad=bad, buffers=s.buffers_trained,
            n_iter=s.n_iter_last, loss=f"{s.last_loss:.4g}", **extra, blocked=f"{s.blocked_s:.0f}s",
            ms_step=f"{1e3 * s.train_s / s.steps_this_process:.2f}" if s.steps_this_process else "-", refresh=False,
        )
        self._bar.refresh()

    def close(self) -> None:
        """Close the bar."""
        if self._bar is not None:
            self._bar.close()
