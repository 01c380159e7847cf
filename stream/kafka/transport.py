"""``KafkaTransport``: the :class:`stream.transport.Transport` protocol over a Kafka topic.

The transport assigns *all* partitions of its topic by hand (no group rebalancing: every
trainer process sees every event, see DESIGN.md), decodes each message with
:func:`stream.codec.decode_message`, and hands out :class:`stream.transport.Message`
objects. Malformed messages are counted per reason in ``counters``, optionally copied to a
dead-letter topic, and skipped; ``poll`` never raises for them.

Exactly-once resume: :meth:`KafkaTransport.seek` takes a :class:`StreamPosition`; each
partition restarts at ``offsets[topic][partition]`` and the first message there is
sliced by ``skip[topic][partition]`` events (``Message.first_event`` says by how many).

A broker that is down or restarting is retried with exponential backoff (logged through
:mod:`logging`); the transport reconnects and continues from the next offset it had not
delivered, so nothing is lost or repeated as long as the broker kept its log.

Example:
    >>> transport = KafkaTransport("127.0.0.1:9092", "events", idle_timeout_s=5)  # doctest: +SKIP
    >>> while not transport.exhausted:                                            # doctest: +SKIP
    ...     for message in transport.poll(1.0):
    ...         train(message.batch)
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from stream.codec import decode_message
from stream.errors import MalformedMessage, TransportError
from stream.kafka.backoff import Backoff
from stream.kafka.producer import MAX_MESSAGE_BYTES, make_producer
from stream.kafka.security import client_security, masked_security
from stream.transport import Message, StreamPosition

__all__ = ["KafkaTransport"]

log = logging.getLogger(__name__)

_STARTS = ("earliest", "latest", "committed")


class KafkaTransport:
    """Consume one topic as decoded Arrow batches, with exact seek and resume.

    Args:
        bootstrap: ``HOST:PORT[,HOST:PORT...]``.
        topic: the topic to read (all its partitions).
        schema: expected topic schema; ``None`` learns it from the first valid message.
        group_id: consumer group used for offset commits (:meth:`commit`) and
            ``start="committed"``; partitions are always assigned by hand.
        security: SASL/TLS client settings (:mod:`stream.kafka.security`); never logged.
        dead_letter_topic: topic receiving a copy of each malformed message, with headers
            ``dlq_reason``, ``dlq_detail`` and ``dlq_source`` (``topic/partition/offset``).
        poll_max_records: most messages returned by one :meth:`poll`.
        idle_timeout_s: :attr:`exhausted` turns true after this many seconds of polling
            without any new message; ``None`` (default) means an endless stream.
        schema_timeout_s: how long reading :attr:`schema` waits for a first valid message.
        start: where partitions absent from a :meth:`seek` position start: ``"earliest"``,
            ``"latest"``, or ``"committed"`` (the group's commits, else earliest).
        backoff_initial_s: first retry delay after a broker failure.
        backoff_max_s: largest retry delay.
        consumer_options: further kafka-python consumer settings (override the defaults).
        partitions: read only these partitions (e.g. one consumer per partition);
            ``None`` (default) reads all of them.

    Attributes:
        counters: malformed messages per reason (see :data:`stream.codec.MALFORMED_REASONS`).
        stats: ``messages``, ``events``, ``bytes`` delivered, ``reconnects``,
            ``dead_letter_failed``, ``topic_recreated``.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        schema: pa.Schema | None = None,
        group_id: str | None = None,
        security: Mapping[str, Any] | None = None,
        dead_letter_topic: str | None = None,
        poll_max_records: int = 64,
        idle_timeout_s: float | None = None,
        schema_timeout_s: float = 60.0,
        start: str = "earliest",
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 10.0,
        consumer_options: Mapping[str, Any] | None = None,
        partitions: Sequence[int] | None = None,
    ) -> None:
        if not topic:
            msg = "KafkaTransport needs a topic name"
            raise ValueError(msg)
        if poll_max_records < 1:
            msg = f"poll_max_records must be >= 1, got {poll_max_records}"
            raise ValueError(msg)
        if start not in _STARTS:
            msg = f"start must be one of {_STARTS}, got {start!r}"
            raise ValueError(msg)
        self.bootstrap = bootstrap
        self.topic = topic
        self.group_id = group_id
        self.dead_letter_topic = dead_letter_topic
        self.poll_max_records = poll_max_records
        self.idle_timeout_s = idle_timeout_s
        self.schema_timeout_s = schema_timeout_s
        self.start = start
        self._security = client_security(security)
        self._consumer_options = dict(consumer_options or {})
        self._only = None if partitions is None else sorted({int(p) for p in partitions})
        self._schema = schema
        self.counters: dict[str, int] = {}
        self.stats: dict[str, int] = {
            "messages": 0,
            "events": 0,
            "bytes": 0,
            "reconnects": 0,
            "dead_letter_failed": 0,
            "topic_recreated": 0,
        }
        self._backoff = Backoff(initial_s=backoff_initial_s, max_s=backoff_max_s)
        self._retry_at = 0.0
        self._consumer: Any = None
        self._dead_letter_producer: Any = None
        self._partitions: list[int] = []
        self._next: dict[int, int] = {}
        self._skip: dict[int, tuple[int, int]] = {}
        self._seeked = False
        self._pending: deque[Message] = deque()
        self._idle_s = 0.0
        self._closed = False
        self._topic_id: Any = None
        self._outage_since: float | None = None
        self._verify_topic = False
        self._last_token: tuple[int, ...] = ()

    def __repr__(self) -> str:
        return (
            f"KafkaTransport(bootstrap={self.bootstrap!r}, topic={self.topic!r}, group_id={self.group_id!r}, "
            f"security={masked_security(self._security)}, dead_letter_topic={self.dead_letter_topic!r}, "
            f"idle_timeout_s={self.idle_timeout_s})"
        )

    # -- schema ---------------------------------------------------------------------------

    @property
    def schema(self) -> pa.Schema:
        """The topic schema; learned from the first valid message if none was given.

        Raises:
            TransportError: no valid message arrived within ``schema_timeout_s``.
        """
        deadline = time.monotonic() + self.schema_timeout_s
        while self._schema is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                msg = (
                    f"topic {self.topic!r} on {self.bootstrap!r}: no valid message within "
                    f"{self.schema_timeout_s:.0f} s to learn the schema from (bad messages so far: {self.counters})"
                )
                raise TransportError(msg)
            self._pending.extend(self._poll_broker(min(remaining, 1.0)))
        return self._schema

    @schema.setter
    def schema(self, value: pa.Schema) -> None:
        self._schema = value

    # -- Transport verbs ------------------------------------------------------------------

    def poll(self, timeout_s: float) -> list[Message]:
        """Messages available within ``timeout_s`` seconds (possibly none).

        Malformed messages are counted, dead-lettered and skipped; broker failures are
        retried with backoff. Neither raises.
        """
        self._check_open()
        if self._pending:
            return [
                self._pending.popleft()
                for _ in range(min(self.poll_max_records, len(self._pending)))
            ]
        return self._poll_broker(timeout_s)

    def seek(self, position: StreamPosition) -> None:
        """Continue from ``position``; partitions it does not name restart per ``start``.

        Raises:
            ValueError: a negative offset or skip in ``position`` (names the partition).
        """
        self._check_open()
        offsets = position.offsets.get(self.topic, {})
        skips = position.skip.get(self.topic, {})
        for partition, offset in offsets.items():
            skip = skips.get(partition, 0)
            if offset < 0 or skip < 0:
                msg = f"topic {self.topic!r} partition {partition}: invalid position offset={offset} skip={skip}"
                raise ValueError(msg)
        self._pending.clear()
        self._next = {int(p): int(o) for p, o in offsets.items()}
        self._skip = {
            int(p): (int(offsets[p]), int(s)) for p, s in skips.items() if s and p in offsets
        }
        self._seeked = True
        self._idle_s = 0.0
        if self._consumer is not None and self._partitions:
            self._position_partitions(explicit=True)

    @property
    def exhausted(self) -> bool:
        """True after ``idle_timeout_s`` seconds of polling without a new message.

        Kafka topics are endless: without an idle timeout this is always false.
        """
        if self.idle_timeout_s is None or self._pending:
            return False
        return self._idle_s >= self.idle_timeout_s

    def caught_up(self) -> bool:
        """True when every assigned partition has been read to its current end offset.

        Malformed messages count as read (they were counted and skipped). False while
        delivered-but-unconsumed messages are pending or the broker cannot be asked; true
        when no partition is assigned (there is nothing known to read).
        """
        if self._pending:
            return False
        if self._consumer is None or not self._partitions:
            return True
        from kafka.structs import TopicPartition

        partitions = [TopicPartition(self.topic, p) for p in self._partitions]
        try:
            ends = self._consumer.end_offsets(partitions)
            positions = {tp.partition: self._consumer.position(tp) for tp in partitions}
        except Exception as err:  # noqa: BLE001 - any client error: we cannot tell, so not caught up
            log.debug("topic %r: end offsets unavailable: %s", self.topic, err)
            return False
        return all(
            max(self._next.get(tp.partition, 0), positions.get(tp.partition) or 0) >= end
            for tp, end in ends.items()
        )

    def close(self) -> None:
        """Close the consumer and flush the dead-letter producer."""
        if self._closed:
            return
        self._closed = True
        self._drop_consumer()
        if self._dead_letter_producer is not None:
            try:
                self._dead_letter_producer.flush(timeout=10)
                self._dead_letter_producer.close(timeout=10)
            except Exception as err:
                log.warning(
                    "dead-letter producer for %r did not close cleanly: %s",
                    self.dead_letter_topic,
                    err,
                )
            self._dead_letter_producer = None

    def __enter__(self) -> KafkaTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- extras ---------------------------------------------------------------------------

    @property
    def partitions(self) -> list[int]:
        """Partitions assigned so far (empty until the topic was found)."""
        return list(self._partitions)

    def position(self) -> StreamPosition:
        """Next undelivered offset per partition (messages handed out count as consumed)."""
        return StreamPosition(
            {self.topic: dict(self._next)}, {self.topic: {p: 0 for p in self._next}}
        )

    def commit(self, position: StreamPosition) -> None:
        """Commit ``position`` for ``group_id`` (skip counts travel in the commit metadata).

        Raises:
            ValueError: the transport has no ``group_id``.
            TransportError: the broker refused the commit.
        """
        if self.group_id is None:
            msg = f"topic {self.topic!r}: commit needs a group_id"
            raise ValueError(msg)
        from kafka.structs import OffsetAndMetadata, TopicPartition

        consumer = self._connected_consumer()
        skips = position.skip.get(self.topic, {})
        offsets = {
            TopicPartition(self.topic, p): OffsetAndMetadata(
                o, json.dumps({"skip": skips.get(p, 0)}), -1
            )
            for p, o in position.offsets.get(self.topic, {}).items()
        }
        try:
            consumer.commit(offsets)
        except Exception as err:
            msg = f"topic {self.topic!r}: commit for group {self.group_id!r} failed: {err}"
            raise TransportError(msg) from err

    # -- internals ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            msg = f"KafkaTransport for topic {self.topic!r} is closed"
            raise TransportError(msg)

    def _connected_consumer(self) -> Any:
        deadline = time.monotonic() + 30.0
        while not self._ensure_connected(deadline):
            if time.monotonic() > deadline:
                msg = f"topic {self.topic!r} on {self.bootstrap!r}: not reachable"
                raise TransportError(msg)
        return self._consumer

    def _consumer_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap.split(","),
            "client_id": "trigger-emulator",
            "group_id": self.group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "allow_auto_create_topics": False,
            "max_poll_records": self.poll_max_records,
            "max_partition_fetch_bytes": MAX_MESSAGE_BYTES,
            "fetch_max_bytes": 4 * MAX_MESSAGE_BYTES,
            "max_poll_interval_ms": 5000,
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 1000,
            "request_timeout_ms": 10000,
            "reconnect_backoff_ms": 100,
            "reconnect_backoff_max_ms": 5000,
            "bootstrap_timeout_ms": 5000,
            "metadata_max_age_ms": 5000,
        }
        settings.update(self._security)
        settings.update(self._consumer_options)
        return settings

    def _fail(self, what: str, err: BaseException) -> None:
        delay = self._backoff.next_delay()
        self._retry_at = time.monotonic() + delay
        log.warning(
            "topic %r on %s: %s (%s: %s); retry %d in %.1f s",
            self.topic,
            self.bootstrap,
            what,
            type(err).__name__,
            err,
            self._backoff.attempts,
            delay,
        )

    def _drop_consumer(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)
            except Exception as err:
                log.debug("closing consumer for %r: %s", self.topic, err)
            self._consumer = None
            self._partitions = []

    def _ensure_connected(self, deadline: float) -> bool:
        """Connect and assign partitions, honouring the backoff; False if not ready yet."""
        if self._consumer is not None and self._partitions:
            return True
        now = time.monotonic()
        if now < self._retry_at:
            time.sleep(max(0.0, min(self._retry_at, deadline) - now))
            if time.monotonic() < self._retry_at:
                return False
        if self._consumer is None:
            import kafka

            settings = self._consumer_settings()
            if "bootstrap_timeout_ms" not in self._consumer_options:
                # the constructor blocks while bootstrapping: keep within the caller's timeout
                remaining_ms = int((deadline - time.monotonic()) * 1000)
                settings["bootstrap_timeout_ms"] = min(5000, max(200, remaining_ms))
            try:
                self._consumer = kafka.KafkaConsumer(**settings)
            except Exception as err:
                self._fail("broker unavailable", err)
                return False
        try:
            partitions = sorted(self._consumer.partitions_for_topic(self.topic) or ())
        except Exception as err:
            self._drop_consumer()
            self._fail("metadata request failed", err)
            return False
        if not partitions:
            self._fail("topic does not exist yet", LookupError(self.topic))
            return False
        if self._only is not None:
            missing = sorted(set(self._only) - set(partitions))
            if missing:
                log.warning("topic %r has no partition(s) %s; reading %s", self.topic, missing, partitions)
            partitions = [p for p in partitions if p in self._only]
            if not partitions:
                self._fail("none of the requested partitions exists", LookupError(self._only))
                return False
        from kafka.structs import TopicPartition

        self._consumer.assign([TopicPartition(self.topic, p) for p in partitions])
        self._partitions = partitions
        self._position_partitions(explicit=self._seeked)
        if self._backoff.attempts:
            log.info(
                "topic %r on %s: connected, partitions %s", self.topic, self.bootstrap, partitions
            )
        self._backoff.reset()
        return True

    def _position_partitions(self, explicit: bool) -> None:
        from kafka.structs import TopicPartition

        unknown = sorted(set(self._next) - set(self._partitions))
        if unknown:
            log.warning(
                "topic %r has no partition(s) %s named in the position; ignored",
                self.topic,
                unknown,
            )
        for partition in self._partitions:
            tp = TopicPartition(self.topic, partition)
            if partition in self._next:
                self._consumer.seek(tp, self._next[partition])
            elif self.start == "latest":
                self._consumer.seek_to_end(tp)
            elif self.start == "committed" and self.group_id is not None and not explicit:
                self._seek_committed(tp)
            else:
                self._consumer.seek_to_beginning(tp)

    def _seek_committed(self, tp: Any) -> None:
        committed = self._consumer.committed(tp, metadata=True)
        if committed is None or committed.offset < 0:
            self._consumer.seek_to_beginning(tp)
            return
        self._consumer.seek(tp, committed.offset)
        self._next[tp.partition] = committed.offset
        try:
            skip = int(json.loads(committed.metadata or "{}").get("skip", 0))
        except (ValueError, AttributeError):
            skip = 0
        if skip:
            self._skip[tp.partition] = (committed.offset, skip)

    def _poll_broker(self, timeout_s: float) -> list[Message]:
        begin = time.monotonic()
        deadline = begin + max(0.0, timeout_s)
        messages: list[Message] = []
        if not self._ensure_connected(deadline):
            self._idle_s += time.monotonic() - begin
            return messages
        try:
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
            records = self._consumer.poll(
                timeout_ms=remaining_ms, max_records=self.poll_max_records
            )
        except Exception as err:
            self.stats["reconnects"] += 1
            self._verify_topic = True
            self._drop_consumer()
            self._fail("poll failed", err)
            self._idle_s += time.monotonic() - begin
            return messages
        if records and self._reconnected_since_check():
            try:
                self._consumer.topics()  # fresh metadata: is it still the same topic?
            except Exception as err:
                self._drop_consumer()
                self._fail("metadata request after reconnect failed", err)
                return messages
        if self._topic_recreated():
            self._idle_s += time.monotonic() - begin
            return messages
        received = 0
        for tp, batch_records in records.items():
            for record in batch_records:
                received += 1
                message = self._handle(tp.partition, record)
                if message is not None:
                    messages.append(message)
        if received:
            self._idle_s = 0.0
            self._note_connection(True)
        else:
            self._idle_s += time.monotonic() - begin
            self._note_connection(self._broker_connected())
        return messages

    def _connection_token(self) -> tuple[int, ...]:
        """Identity of the client's live connections (changes when it reconnects)."""
        try:
            conns = self._consumer._client._manager._conns
            return tuple(sorted(id(c) for c in conns.values()))
        except Exception:
            return ()

    def _reconnected_since_check(self) -> bool:
        """True once after an outage or a new connection: records may come from a new log."""
        token = self._connection_token()
        changed = self._verify_topic or token != self._last_token
        self._verify_topic = False
        self._last_token = token
        return changed

    def _broker_connected(self) -> bool:
        """Whether the client holds a live connection to any broker (True if unknown)."""
        try:
            client = self._consumer._client
            brokers = client.cluster.brokers()
            return not brokers or any(
                client.connected(getattr(b, "node_id", getattr(b, "nodeId", None))) for b in brokers
            )
        except Exception:
            return True

    def _note_connection(self, connected: bool) -> None:
        """Log the start and end of a broker outage (the client retries with backoff)."""
        if not connected and self._outage_since is None:
            self._outage_since = time.monotonic()
            self._verify_topic = True
            self.stats["reconnects"] += 1
            log.warning(
                "topic %r: lost the connection to %s; reconnecting with exponential backoff (up to %.0f s)",
                self.topic,
                self.bootstrap,
                self._consumer_settings()["reconnect_backoff_max_ms"] / 1000,
            )
        elif connected and self._outage_since is not None:
            log.warning(
                "topic %r: reconnected to %s after %.1f s; resuming at offsets %s",
                self.topic,
                self.bootstrap,
                time.monotonic() - self._outage_since,
                self._next,
            )
            self._outage_since = None

    def _topic_recreated(self) -> bool:
        """Detect a topic deleted and created again (a broker that lost its log).

        Offsets of the new topic have nothing to do with the old ones, so every partition
        restarts at its beginning; the loss is logged. Uses the topic id of the client's
        metadata (brokers without topic ids never trigger this).
        """
        cluster = getattr(self._consumer, "_cluster", None)
        topic_id = getattr(cluster, "topic_id", lambda _name: None)(self.topic)
        if topic_id is None:
            return False
        if self._topic_id is None or self._topic_id == topic_id:
            self._topic_id = topic_id
            return False
        log.warning(
            "topic %r was recreated on %s (topic id %s -> %s): the broker lost its log; "
            "positions %s are void, restarting every partition at its beginning",
            self.topic,
            self.bootstrap,
            self._topic_id,
            topic_id,
            self._next,
        )
        self._topic_id = topic_id
        self.stats["topic_recreated"] += 1
        self._next = {}
        self._skip = {}
        self._seeked = False
        self._drop_consumer()
        return True

    def _handle(self, partition: int, record: Any) -> Message | None:
        offset = int(record.offset)
        if offset < self._next.get(partition, 0):
            return None  # already delivered (defensive: a re-fetch after reconnect)
        self._next[partition] = offset + 1
        try:
            batch = decode_message(record.value, record.headers, self._schema)
        except MalformedMessage as err:
            self.counters[err.reason] = self.counters.get(err.reason, 0) + 1
            log.debug(
                "topic %r partition %d offset %d skipped: %s", self.topic, partition, offset, err
            )
            self._dead_letter(partition, record, err)
            return None
        if self._schema is None:
            self._schema = batch.schema
            log.info(
                "topic %r: learned schema from partition %d offset %d: %s",
                self.topic,
                partition,
                offset,
                batch.schema.names,
            )
        n_events = batch.num_rows
        first = 0
        pending = self._skip.get(partition)
        if pending is not None and offset >= pending[0]:
            del self._skip[partition]
            if offset == pending[0]:
                first = min(pending[1], n_events)
                batch = batch.slice(first)
        self.stats["messages"] += 1
        self.stats["bytes"] += len(record.value)
        self.stats["events"] += batch.num_rows
        if batch.num_rows == 0:
            return None
        return Message(batch, self.topic, partition, offset, first_event=first, n_events=n_events)

    def _dead_letter(self, partition: int, record: Any, err: MalformedMessage) -> None:
        if self.dead_letter_topic is None:
            return
        try:
            if self._dead_letter_producer is None:
                self._dead_letter_producer = make_producer(self.bootstrap, self._security)
            headers = list(record.headers or []) + [
                ("dlq_reason", err.reason.encode()),
                ("dlq_detail", err.detail[:500].encode(errors="replace")),
                ("dlq_source", f"{self.topic}/{partition}/{record.offset}".encode()),
            ]
            self._dead_letter_producer.send(
                self.dead_letter_topic, value=record.value, key=record.key, headers=headers
            )
        except Exception as send_err:
            self.stats["dead_letter_failed"] += 1
            log.warning("dead-letter copy to %r failed: %s", self.dead_letter_topic, send_err)
