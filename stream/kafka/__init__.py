"""Kafka transport: consumer (:class:`KafkaTransport`), producer helpers, topic CLI.

Contract: messages are Arrow IPC streams of one record batch (:mod:`stream.codec`);
the consumer assigns every partition of its topic by hand and resumes exactly from a
:class:`stream.transport.StreamPosition`. Names are imported lazily, so importing this
package does not import kafka-python.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Backoff",
    "KafkaTransport",
    "client_security",
    "ensure_topic",
    "make_producer",
    "masked_security",
    "publish_batch",
    "wait_for_broker",
]

_HOMES = {
    "Backoff": "stream.kafka.backoff",
    "KafkaTransport": "stream.kafka.transport",
    "client_security": "stream.kafka.security",
    "masked_security": "stream.kafka.security",
    "ensure_topic": "stream.kafka.producer",
    "make_producer": "stream.kafka.producer",
    "publish_batch": "stream.kafka.producer",
    "wait_for_broker": "stream.kafka.producer",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    msg = f"module 'stream.kafka' has no attribute {name!r}"
    raise AttributeError(msg)
