"""Producer-side helpers: client settings, broker wait, topic creation, batch publishing.

Example:
    >>> producer = make_producer("127.0.0.1:9092")              # doctest: +SKIP
    >>> ensure_topic("127.0.0.1:9092", "events", partitions=3)   # doctest: +SKIP
    3
    >>> publish_batch(producer, "events", batch).get(timeout=10)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from stream.codec import encode_batch
from stream.errors import TransportError
from stream.kafka.backoff import Backoff
from stream.kafka.security import client_security, masked_security

__all__ = [
    "MAX_MESSAGE_BYTES",
    "ensure_topic",
    "make_producer",
    "publish_batch",
    "topic_partitions",
    "wait_for_broker",
]

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest message the helpers produce or fetch (brokers must allow it, see docker-compose.yml)."""


def _client(kind: str, bootstrap: str, security: Mapping[str, Any] | None, **overrides: Any) -> Any:
    import kafka

    settings: dict[str, Any] = {
        "bootstrap_servers": bootstrap.split(","),
        "client_id": "trigger-emulator",
    }
    settings.update(client_security(security))
    settings.update(overrides)
    factory = {
        "producer": kafka.KafkaProducer,
        "admin": kafka.KafkaAdminClient,
        "consumer": kafka.KafkaConsumer,
    }
    return factory[kind](**settings)


def make_producer(
    bootstrap: str, security: Mapping[str, Any] | None = None, **overrides: Any
) -> Any:
    """A ``kafka.KafkaProducer`` tuned for large Arrow messages.

    Args:
        bootstrap: ``HOST:PORT[,HOST:PORT...]``.
        security: SASL/TLS settings (see :mod:`stream.kafka.security`).
        **overrides: further kafka-python producer settings (win over the defaults).

    Raises:
        TransportError: the broker cannot be reached.
    """
    settings: dict[str, Any] = {
        "acks": 1,
        "linger_ms": 5,
        "batch_size": 1024 * 1024,
        "max_request_size": MAX_MESSAGE_BYTES,
        "allow_auto_create_topics": True,
    }
    settings.update(overrides)
    try:
        return _client("producer", bootstrap, security, **settings)
    except Exception as err:
        msg = f"cannot connect a producer to {bootstrap!r} (security {masked_security(security)}): {err}"
        raise TransportError(msg) from err


def wait_for_broker(
    bootstrap: str, security: Mapping[str, Any] | None = None, timeout_s: float = 60.0
) -> None:
    """Block until the broker answers a metadata request, retrying with backoff.

    Raises:
        TransportError: no answer within ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    backoff = Backoff(initial_s=0.2, max_s=5.0)
    while True:
        try:
            admin = _client("admin", bootstrap, security, request_timeout_ms=5000)
            try:
                admin.list_topics()
            finally:
                admin.close()
            return
        except Exception as err:
            delay = backoff.next_delay()
            if time.monotonic() + delay > deadline:
                msg = f"broker {bootstrap!r} did not answer within {timeout_s:.0f} s: {err}"
                raise TransportError(msg) from err
            log.info("broker %s not ready (%s); retrying in %.1f s", bootstrap, err, delay)
            time.sleep(delay)


def topic_partitions(bootstrap: str, topic: str, security: Mapping[str, Any] | None = None) -> int:
    """Number of partitions of ``topic`` (0 if it does not exist)."""
    admin = _client("admin", bootstrap, security)
    try:
        described = admin.describe_topics([topic])
    finally:
        admin.close()
    for entry in described:
        if entry.get("name") == topic and not entry.get("error_code"):
            return len(entry.get("partitions", []))
    return 0


def ensure_topic(
    bootstrap: str,
    topic: str,
    partitions: int,
    security: Mapping[str, Any] | None = None,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> int:
    """Create ``topic`` with ``partitions`` partitions unless it exists.

    Returns:
        The partition count the topic has (an existing topic keeps its own; a differing
        count is logged as a warning).

    Raises:
        ValueError: ``partitions`` < 1.
        TransportError: the topic could not be created or seen within ``timeout_s``.
    """
    if partitions < 1:
        msg = f"topic {topic!r}: partitions must be >= 1, got {partitions}"
        raise ValueError(msg)
    import kafka.errors

    wait_for_broker(bootstrap, security, timeout_s)
    existing = topic_partitions(bootstrap, topic, security)
    if existing == 0:
        admin = _client("admin", bootstrap, security)
        try:
            admin.create_topics(
                {topic: {"num_partitions": partitions, "replication_factor": replication_factor}},
                timeout_ms=int(timeout_s * 1000),
            )
        except kafka.errors.TopicAlreadyExistsError:
            pass
        except Exception as err:
            msg = f"cannot create topic {topic!r} with {partitions} partitions on {bootstrap!r}: {err}"
            raise TransportError(msg) from err
        finally:
            admin.close()
    deadline = time.monotonic() + timeout_s
    while (existing := topic_partitions(bootstrap, topic, security)) == 0:
        if time.monotonic() > deadline:
            msg = f"topic {topic!r} not visible on {bootstrap!r} after {timeout_s:.0f} s"
            raise TransportError(msg)
        time.sleep(0.1)
    if existing != partitions:
        log.warning(
            "topic %r exists with %d partitions (asked for %d); keeping %d",
            topic,
            existing,
            partitions,
            existing,
        )
    return existing


def publish_batch(
    producer: Any,
    topic: str,
    batch: pa.RecordBatch,
    key: bytes | None = None,
    partition: int | None = None,
    extra_headers: list[tuple[str, bytes]] | None = None,
) -> Any:
    """Encode ``batch`` (:func:`stream.codec.encode_batch`) and send it.

    Returns:
        The kafka-python future of the send (``.get(timeout)`` gives the record metadata).
    """
    value, headers = encode_batch(batch)
    return producer.send(
        topic,
        value=value,
        key=key,
        partition=partition,
        headers=headers + list(extra_headers or []),
    )
