"""Double buffer: one preallocated buffer fills while the model trains on the other.

Each :class:`Buffer` holds ``capacity`` events in preallocated arrays, one per column
(events: ``(capacity,)`` float32 per feature; showers: ``showers`` ``(capacity, L, X, Y)``
float32 MeV and ``incident_energy`` ``(capacity,)`` GeV) plus the event ids. Besides the
training data it carries what must be written with the snapshot that follows its
training: the stream position of its last event, the trigger counters at that point, the
events a classical trigger stored while it filled, and counts.

:class:`DoubleBuffer` owns two buffers and hands them between the filling side and the
training side with a condition variable; the training side never waits on an unfinished
buffer, and the filling side waits (``block``) or drops (``drop``) when both are busy.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["Buffer", "ColumnLayout", "DoubleBuffer"]

ColumnLayout = Mapping[str, tuple[tuple[int, ...], Any]]
"""Column name → (per-event shape, numpy dtype)."""


@dataclass
class Buffer:
    """A preallocated training buffer plus the bookkeeping that travels with it."""

    capacity: int
    layout: ColumnLayout
    columns: dict[str, np.ndarray] = field(init=False)
    event_ids: np.ndarray = field(init=False)
    size: int = 0
    index: int = -1
    position: dict[str, Any] | None = None
    trigger_counters: dict[str, Any] | None = None
    events_seen: int = 0
    events_dropped: int = 0
    bad_messages: dict[str, int] = field(default_factory=dict)
    stored: list[pa.RecordBatch] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.columns = {name: np.zeros((self.capacity, *shape), dtype=dtype) for name, (shape, dtype) in self.layout.items()}
        self.event_ids = np.zeros(self.capacity, dtype=np.uint64)

    @property
    def room(self) -> int:
        """Free slots."""
        return self.capacity - self.size

    @property
    def full(self) -> bool:
        """True when no slot is free."""
        return self.size >= self.capacity

    def add(self, event_ids: np.ndarray, columns: Mapping[str, np.ndarray]) -> int:
        """Copy as many events as fit; returns how many were taken (from the front).

        Raises:
            ValueError: a column is missing or has the wrong per-event shape.
        """
        n = min(len(event_ids), self.room)
        if n == 0:
            return 0
        for name, (shape, _) in self.layout.items():
            if name not in columns:
                msg = f"buffer column {name!r} missing from input (got {sorted(columns)})"
                raise ValueError(msg)
            values = columns[name]
            if values.shape[1:] != tuple(shape):
                msg = f"buffer column {name!r}: per-event shape {values.shape[1:]}, expected {tuple(shape)}"
                raise ValueError(msg)
            self.columns[name][self.size : self.size + n] = values[:n]
        self.event_ids[self.size : self.size + n] = event_ids[:n]
        self.size += n
        return n

    def view(self) -> dict[str, np.ndarray]:
        """The filled part of every column (no copy)."""
        return {name: array[: self.size] for name, array in self.columns.items()}

    def reset(self) -> None:
        """Empty the buffer for refilling (arrays are reused, not reallocated)."""
        self.size = 0
        self.index = -1
        self.position = None
        self.trigger_counters = None
        self.events_seen = 0
        self.events_dropped = 0
        self.bad_messages = {}
        self.stored = []


class DoubleBuffer:
    """Two buffers and the hand-over between the filling and the training thread.

    Args:
        capacity: N_buffer, events per buffer.
        layout: column name → (per-event shape, dtype).
        first_index: index given to the first buffer handed to the trainer (a resumed run
            continues the numbering of its snapshot).
    """

    def __init__(self, capacity: int, layout: ColumnLayout, first_index: int = 0) -> None:
        self.capacity = capacity
        self.first_index = first_index
        self.filling = Buffer(capacity, layout)
        self._spare: Buffer | None = Buffer(capacity, layout)
        self._ready: Buffer | None = None
        self._cond = threading.Condition()
        self._closed = False
        self.swaps = 0

    def __repr__(self) -> str:
        return f"DoubleBuffer(capacity={self.capacity}, layout={dict(self.filling.layout)})"

    @property
    def trainer_idle(self) -> bool:
        """True when the training side has handed back its buffer (a swap would not wait)."""
        with self._cond:
            return self._spare is not None

    def swap(self, wait: bool) -> bool:
        """Hand the filling buffer to the trainer and start filling the spare one.

        Args:
            wait: block until the trainer has finished its buffer (``block`` policy);
                otherwise return False at once when it is still busy.

        Returns:
            True if the swap happened.
        """
        with self._cond:
            if self._spare is None:
                if not wait:
                    return False
                while self._spare is None and not self._closed:
                    self._cond.wait(0.1)
                if self._spare is None:
                    return False
            full = self.filling
            full.index = self.first_index + self.swaps
            self.swaps += 1
            self.filling = self._spare
            self.filling.reset()
            self._spare = None
            self._ready = full
            self._cond.notify_all()
            return True

    def wait_other_full(self, timeout_s: float) -> bool:
        """Training side: wait up to ``timeout_s`` for a full buffer to be ready."""
        with self._cond:
            if self._ready is None:
                self._cond.wait(timeout_s)
            return self._ready is not None

    def other_ready(self) -> bool:
        """Training side: True when the filling side has handed over a full buffer."""
        with self._cond:
            return self._ready is not None

    def filling_is_full(self) -> bool:
        """True when the filling buffer has no free slot (used by adaptive N_iter)."""
        return self.filling.full

    def take(self, timeout_s: float) -> Buffer | None:
        """Training side: take the ready buffer (waits up to ``timeout_s``)."""
        with self._cond:
            if self._ready is None:
                self._cond.wait(timeout_s)
            buffer, self._ready = self._ready, None
            return buffer

    def give_back(self, buffer: Buffer) -> None:
        """Training side: return a trained buffer; it becomes the next one to fill."""
        with self._cond:
            self._spare = buffer
            self._cond.notify_all()

    def close(self) -> None:
        """Wake every waiter; no further swaps."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
