"""Embedded transport: a source running in-process behind a bounded queue.

Same verbs as the Kafka transport (:class:`stream.transport.Transport`). There is one
topic, ``"embedded"``, with one partition; a message's offset is the event number of its
first event in the source's stream, so a position ``offsets + skip`` is simply the number of
events consumed and :meth:`EmbeddedTransport.seek` restarts the (deterministic) source
there. The queue is bounded, so a slow consumer slows the producer thread (backpressure).
"""

from __future__ import annotations

import queue
import threading
import time

import pyarrow as pa

from stream.errors import TransportError
from stream.source import Source
from stream.transport import Message, StreamPosition

__all__ = ["EMBEDDED_TOPIC", "EmbeddedTransport"]

EMBEDDED_TOPIC = "embedded"
_END = object()


class EmbeddedTransport:
    """In-process transport over a :class:`stream.source.Source`.

    Args:
        source: the source to replay.
        max_queue: messages held in the queue at most (backpressure beyond that).
        max_events: stop after this many events in total (counted from event 0), or None.
    """

    def __init__(self, source: Source, max_queue: int = 8, max_events: int | None = None) -> None:
        self.source = source
        self.schema: pa.Schema = source.schema
        self.counters: dict[str, int] = {}
        self.max_queue = max_queue
        self.max_events = max_events
        self._queue: queue.Queue[object] = queue.Queue(max_queue)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._done = False
        self._start_event = 0

    def __repr__(self) -> str:
        return f"EmbeddedTransport(source={self.source.spec!r}, max_queue={self.max_queue})"

    def _produce(self, start_event: int) -> None:
        event = start_event
        try:
            for batch in self.source.batches(start_event):
                if self.max_events is not None and event + batch.num_rows > self.max_events:
                    batch = batch.slice(0, max(self.max_events - event, 0))
                if batch.num_rows == 0:
                    break
                message = Message(batch, EMBEDDED_TOPIC, 0, event, 0, batch.num_rows, event + batch.num_rows)
                while not self._stop.is_set():
                    try:
                        self._queue.put(message, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
                event += batch.num_rows
                if self.max_events is not None and event >= self.max_events:
                    break
        except BaseException as err:  # noqa: BLE001 - handed to the consumer thread
            self._error = err
        while not self._stop.is_set():
            try:
                self._queue.put(_END, timeout=0.1)
                return
            except queue.Full:
                continue

    def _ensure_started(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._produce, args=(self._start_event,), daemon=True, name="embedded-source")
            self._thread.start()

    def poll(self, timeout_s: float) -> list[Message]:
        """Return available messages (waits up to ``timeout_s`` for the first one)."""
        self._ensure_started()
        if self._done:
            return []
        out: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                wait = max(deadline - time.monotonic(), 0.0) if not out else 0.0
                item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                return out
            if item is _END:
                self._done = True
                if self._error is not None:
                    msg = f"source {self.source.spec!r} failed: {self._error}"
                    raise TransportError(msg) from self._error
                return out
            assert isinstance(item, Message)
            out.append(item)
            if len(out) >= self.max_queue:
                return out

    def seek(self, position: StreamPosition) -> None:
        """Restart the source at the event number the position points to."""
        if self._thread is not None:
            msg = "seek must be called before the first poll of an embedded transport"
            raise TransportError(msg)
        offset = position.offsets.get(EMBEDDED_TOPIC, {}).get(0, 0)
        skip = position.skip.get(EMBEDDED_TOPIC, {}).get(0, 0)
        self._start_event = offset + skip

    @property
    def exhausted(self) -> bool:
        """True once a finite source has delivered everything."""
        return self._done

    def close(self) -> None:
        """Stop the producer thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
