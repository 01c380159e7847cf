"""Double buffer: one preallocated buffer fills while the model trains on the other.

Each :class:`Buffer` holds ``capacity`` events in preallocated arrays, one per column
(events: ``(capacity,)`` float32 per feature) plus the event ids. Columns whose per-event
shape is :data:`RAGGED` hold a variable number of values per event, concatenated, with
one shared ``(capacity + 1,)`` row-pointer array (``cell_offsets``): showers arrive sparse
(about 4 % of the ILD grid's cells are hit) and stay sparse here, ``cell_index`` (int64,
flat grid index) and ``cell_energy`` (float32 MeV) beside ``incident_energy`` (GeV); the
model densifies one batch at a time. Ragged storage starts at 512 values per event and
doubles when a buffer needs more. Besides the
training data it carries what must be written with the snapshot that follows its
training: the stream position of its last event, the trigger counters at that point, the
events a classical trigger stored while it filled, and counts.

:class:`DoubleBuffer` owns two buffers and hands them between the filling side and the
training side with a condition variable; the training side never waits on an unfinished
buffer, and the filling side waits (``block``) or drops (``drop``) when both are busy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["OFFSETS", "RAGGED", "Buffer", "ColumnLayout", "DoubleBuffer", "Ragged"]

ColumnLayout = Mapping[str, tuple[tuple[int, ...] | None, Any]]
"""Column name → (per-event shape, or :data:`RAGGED`; numpy dtype)."""

RAGGED = None
"""Per-event shape of a column with a variable number of values per event."""

OFFSETS = "cell_offsets"
"""Name of the row pointers shared by the ragged columns (``view()`` returns it)."""

_RAGGED_START = 512


@dataclass
class Ragged:
    """Input of the ragged columns of :meth:`Buffer.add`: per-event lengths and the values.

    Attributes:
        lengths: ``(n,)`` values per event.
        values: ``(sum(lengths),)`` the events' values, concatenated in event order.
    """

    lengths: np.ndarray
    values: np.ndarray


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
        self.columns = {}
        self.ragged = [name for name, (shape, _) in self.layout.items() if shape is RAGGED]
        for name, (shape, dtype) in self.layout.items():
            size = (self.capacity * _RAGGED_START,) if shape is RAGGED else (self.capacity, *shape)
            self.columns[name] = np.zeros(size, dtype=dtype)
        self.offsets = np.zeros(self.capacity + 1, dtype=np.int64)
        self.event_ids = np.zeros(self.capacity, dtype=np.uint64)

    @property
    def nbytes(self) -> int:
        """Host memory held by the buffer's arrays."""
        return sum(a.nbytes for a in self.columns.values()) + self.offsets.nbytes + self.event_ids.nbytes

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
        if self.ragged:
            self._add_ragged(columns, n)
        for name, (shape, _) in self.layout.items():
            if name not in columns:
                msg = f"buffer column {name!r} missing from input (got {sorted(columns)})"
                raise ValueError(msg)
            if shape is RAGGED:
                continue
            values = columns[name]
            if not isinstance(values, np.ndarray):
                msg = f"buffer column {name!r} must be an array, got {type(values).__name__}"
                raise ValueError(msg)
            if values.shape[1:] != tuple(shape):
                msg = f"buffer column {name!r}: per-event shape {values.shape[1:]}, expected {tuple(shape)}"
                raise ValueError(msg)
            self.columns[name][self.size : self.size + n] = values[:n]
        self.event_ids[self.size : self.size + n] = event_ids[:n]
        self.size += n
        return n

    def _add_ragged(self, columns: Mapping[str, Any], n: int) -> None:
        lengths = None
        for name in self.ragged:
            column = columns.get(name)
            if not isinstance(column, Ragged):
                msg = f"buffer column {name!r} is ragged: pass a Ragged(lengths, values), got {type(column).__name__}"
                raise ValueError(msg)
            if lengths is None:
                lengths = np.asarray(column.lengths[:n], dtype=np.int64)
            elif not np.array_equal(lengths, column.lengths[:n]):
                msg = f"ragged buffer columns {self.ragged} differ in length for some event"
                raise ValueError(msg)
        assert lengths is not None
        start = int(self.offsets[self.size])
        total = int(lengths.sum())
        for name in self.ragged:
            array = self.columns[name]
            if start + total > array.shape[0]:
                grown = np.zeros(max(2 * array.shape[0], start + total), dtype=array.dtype)
                grown[:start] = array[:start]
                self.columns[name] = array = grown
            values = columns[name].values  # type: ignore[union-attr]
            if len(values) < total:
                msg = f"ragged buffer column {name!r}: {len(values)} values for lengths summing to {total}"
                raise ValueError(msg)
            array[start : start + total] = values[:total]
        self.offsets[self.size + 1 : self.size + n + 1] = start + np.cumsum(lengths)

    def view(self) -> dict[str, np.ndarray]:
        """The filled part of every column (no copy); ragged columns come with ``cell_offsets``."""
        out = {}
        for name, array in self.columns.items():
            if name in self.ragged:
                out[name] = array[: int(self.offsets[self.size])]
            else:
                out[name] = array[: self.size]
        if self.ragged:
            out[OFFSETS] = self.offsets[: self.size + 1]
        return out

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
        self._both = (self.filling, self._spare)
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

    def nbytes(self) -> int:
        """Host memory of both buffers."""
        return sum(b.nbytes for b in self._both)

    def swap(self, wait: bool, on_wait: Callable[[], None] | None = None) -> bool:
        """Hand the filling buffer to the trainer and start filling the spare one.

        Args:
            wait: block until the trainer has finished its buffer (``block`` policy);
                otherwise return False at once when it is still busy.
            on_wait: called about every 0.5 s while waiting (e.g. to refresh progress).

        Returns:
            True if the swap happened.
        """
        with self._cond:
            if self._spare is None:
                if not wait:
                    return False
                while self._spare is None and not self._closed:
                    self._cond.wait(0.5)
                    if on_wait is not None and self._spare is None:
                        self._cond.release()
                        try:
                            on_wait()
                        finally:
                            self._cond.acquire()
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
