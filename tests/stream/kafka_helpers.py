"""Helpers for tests against a real broker: unique topics, producing, draining."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

import numpy as np

from stream.codec import Headers
from stream.kafka.producer import ensure_topic, make_producer, publish_batch
from stream.kafka.transport import KafkaTransport
from stream.transport import Message
from tests.stream.malformed import event_batch

__all__ = ["drain", "ids_of", "new_topic", "produce_events", "produce_raw"]


def new_topic(bootstrap: str, partitions: int | None = None, prefix: str = "t") -> str:
    """A fresh topic name, created with ``partitions`` partitions if given."""
    topic = f"{prefix}-{uuid.uuid4().hex[:10]}"
    if partitions is not None:
        ensure_topic(bootstrap, topic, partitions)
    return topic


def produce_events(
    bootstrap: str,
    topic: str,
    n_messages: int,
    per_message: int,
    partitions: int,
    first_id: int = 0,
) -> list[int]:
    """Publish ``n_messages`` event batches round robin; returns all event ids sent."""
    producer = make_producer(bootstrap)
    ids: list[int] = []
    for i in range(n_messages):
        start = first_id + i * per_message
        publish_batch(producer, topic, event_batch(start, per_message), partition=i % partitions)
        ids.extend(range(start, start + per_message))
    producer.flush()
    producer.close()
    return ids


def produce_raw(
    bootstrap: str, topic: str, messages: Iterable[tuple[bytes, Headers]], partitions: int
) -> int:
    """Publish raw ``(value, headers)`` pairs round robin; returns how many."""
    producer = make_producer(bootstrap)
    count = 0
    for i, (value, headers) in enumerate(messages):
        producer.send(topic, value=value, headers=headers, partition=i % partitions)
        count += 1
    producer.flush()
    producer.close()
    return count


def ids_of(messages: Iterable[Message]) -> list[int]:
    """All event ids of the messages, in order."""
    out: list[int] = []
    for message in messages:
        out.extend(np.asarray(message.batch.column("event_id")).tolist())
    return out


def drain(
    transport: KafkaTransport, expected_events: int | None = None, timeout_s: float = 60.0
) -> list[Message]:
    """Poll until ``expected_events`` arrived, the transport is exhausted, or timeout."""
    messages: list[Message] = []
    got = 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = transport.poll(0.5)
        messages.extend(batch)
        got += sum(m.batch.num_rows for m in batch)
        if expected_events is not None and got >= expected_events:
            break
        if transport.exhausted:
            break
    return messages
