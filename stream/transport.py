"""The ``Transport`` protocol and the stream position used for exactly-once resume.

A transport hands out :class:`Message` objects, each a decoded record batch with the
coordinates it came from (topic, partition, offset). The consumer tracks a
:class:`StreamPosition`: for each topic and partition, the next message offset to read
and how many events of that message were already consumed. A trainer stores the position
of the last event of each trained buffer in its snapshot; on restart the transport seeks
there, so no event is lost and none is trained twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

__all__ = ["Message", "StreamPosition", "Transport"]


@dataclass(frozen=True)
class Message:
    """One decoded message: a record batch and where it came from.

    Attributes:
        batch: the decoded Arrow record batch.
        topic: topic name (``"embedded"`` for the in-process transport).
        partition: partition number.
        offset: offset of the message in its partition.
        first_event: index, within the original message, of ``batch``'s first row
            (non-zero only for the first message after a seek into a partly used message).
        n_events: number of events in the original message.
        next_offset: offset of the message that follows (-1: ``offset + 1``, as in Kafka;
            the embedded transport numbers messages by event, so it sets this).
    """

    batch: pa.RecordBatch
    topic: str
    partition: int
    offset: int
    first_event: int = 0
    n_events: int = -1
    next_offset: int = -1

    @property
    def following_offset(self) -> int:
        """Offset of the message after this one."""
        return self.next_offset if self.next_offset >= 0 else self.offset + 1

    @property
    def total_events(self) -> int:
        """Events in the original, unsliced message."""
        return self.n_events if self.n_events >= 0 else self.first_event + self.batch.num_rows


@dataclass
class StreamPosition:
    """Where a consumer stands: per topic and partition, the next offset and events done.

    ``offsets[topic][partition]`` is the offset of the next message not yet fully
    consumed; ``skip[topic][partition]`` the number of leading events of that message
    already consumed (0 when the message is untouched).
    """

    offsets: dict[str, dict[int, int]] = field(default_factory=dict)
    skip: dict[str, dict[int, int]] = field(default_factory=dict)

    def advance(
        self, topic: str, partition: int, offset: int, events_used: int, events_in_message: int,
        next_offset: int | None = None,
    ) -> None:
        """Record that ``events_used`` leading events of message ``offset`` are consumed.

        ``next_offset`` is the offset after this message (default ``offset + 1``).
        """
        if events_used >= events_in_message:
            self.offsets.setdefault(topic, {})[partition] = offset + 1 if next_offset is None else next_offset
            self.skip.setdefault(topic, {})[partition] = 0
        else:
            self.offsets.setdefault(topic, {})[partition] = offset
            self.skip.setdefault(topic, {})[partition] = events_used

    def copy(self) -> StreamPosition:
        """Deep copy."""
        return StreamPosition(
            {t: dict(p) for t, p in self.offsets.items()}, {t: dict(p) for t, p in self.skip.items()}
        )

    def to_json(self) -> dict[str, Any]:
        """JSON form: ``{"offsets": {topic: {partition: offset}}, "skip": {...}}``."""
        return {
            "offsets": {t: {str(p): o for p, o in parts.items()} for t, parts in self.offsets.items()},
            "skip": {t: {str(p): s for p, s in parts.items()} for t, parts in self.skip.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StreamPosition:
        """Inverse of :meth:`to_json`."""
        offsets = {t: {int(p): int(o) for p, o in parts.items()} for t, parts in data.get("offsets", {}).items()}
        skip = {t: {int(p): int(s) for p, s in parts.items()} for t, parts in data.get("skip", {}).items()}
        return cls(offsets, skip)


@runtime_checkable
class Transport(Protocol):
    """Delivers messages of one topic; the same verbs for Kafka and the embedded queue.

    ``counters`` maps a bad-message reason to its count (malformed messages are counted
    and skipped, never raised to the trainer). ``exhausted`` is true once a finite stream
    has delivered everything.
    """

    schema: pa.Schema
    counters: dict[str, int]

    def poll(self, timeout_s: float) -> list[Message]:
        """Return the messages available within ``timeout_s`` seconds (possibly none)."""
        ...

    def seek(self, position: StreamPosition) -> None:
        """Continue from ``position`` (events before it are not delivered again)."""
        ...

    @property
    def exhausted(self) -> bool:
        """True when a finite stream has delivered everything."""
        ...

    def close(self) -> None:
        """Stop background work and release resources."""
        ...
