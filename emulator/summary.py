"""What a finished (or interrupted) run reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunSummary"]


@dataclass
class RunSummary:
    """Figures of a finished (or interrupted) run.

    Attributes:
        events_seen: events read from the stream (all of them, before the trigger).
        events_trained: events in trained buffers.
        events_dropped: events lost to a full buffer (policy ``drop``).
        events_stored: events the classical trigger stored (prescaled HLT paths).
        buffers_trained: buffers trained.
        steps: optimiser steps (batched steps for an ensemble), over the whole run.
        resumed_steps: the steps done before this process resumed the run (0 for a fresh
            one); ``train_s`` and ``wall_s`` count this process only, so rates use
            ``steps - resumed_steps``.
        last_loss: the model's loss on the last buffer.
        n_iter_last: passes over the last buffer.
        blocked_s: seconds the filling side waited for the trainer (policy ``block``).
        trainer_idle_s: seconds the trainer waited for a full buffer.
        train_s: seconds the trainer spent training (``steps / train_s`` is its rate).
        wall_s: wall time of the run.
        bad_messages: reason → malformed messages counted and skipped.
        interrupted: ended by Ctrl-C.
        storage: bytes a classical trigger stores vs bytes of the model.
        buffer_bytes: host memory of the two training buffers.
        end_reason: why the stream ended (``"events"``, ``"exhausted"``, ``"idle"``, ``"interrupt"``).
    """

    events_seen: int = 0
    events_trained: int = 0
    events_dropped: int = 0
    events_stored: int = 0
    buffers_trained: int = 0
    steps: int = 0
    resumed_steps: int = 0
    last_loss: float = float("nan")
    n_iter_last: int = 0
    blocked_s: float = 0.0
    trainer_idle_s: float = 0.0
    train_s: float = 0.0
    wall_s: float = 0.0
    bad_messages: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False
    storage: dict[str, Any] = field(default_factory=dict)
    buffer_bytes: int = 0
    end_reason: str = ""

    @property
    def steps_this_process(self) -> int:
        """Optimiser steps taken since this process started (or resumed) the run."""
        return self.steps - self.resumed_steps

    @property
    def ms_per_step(self) -> float:
        """Wall milliseconds per optimiser step of this process (nan before any step).

        A resumed run divides this process's wall time by this process's steps, not by the
        steps of the whole run.
        """
        steps = self.steps_this_process
        return 1e3 * self.wall_s / steps if steps else float("nan")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = dict(self.__dict__)
        data["ms_per_step"] = self.ms_per_step
        return data
