"""Broker outages: the transport retries with backoff, logs, reconnects and loses nothing.

tansu keeps its log in memory, so a restarted tansu has lost its topics: the test checks
that the transport notices the recreated topic, restarts its partitions at the beginning
and delivers the fresh data exactly once. (With Apache Kafka the log survives a restart
and the transport simply continues from its next offsets.)
"""

from __future__ import annotations

import logging
import time

import pytest

from stream.kafka.producer import ensure_topic
from stream.kafka.transport import KafkaTransport
from tests.conftest import TansuBroker
from tests.stream.kafka_helpers import ids_of, produce_events
from tests.stream.malformed import EVENTS

pytestmark = pytest.mark.kafka


def _poll_for(transport: KafkaTransport, seconds: float) -> list[int]:
    got: list[int] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        got.extend(ids_of(transport.poll(0.2)))
    return got


def _poll_until(transport: KafkaTransport, n: int, timeout_s: float = 60.0) -> list[int]:
    got: list[int] = []
    end = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < end:
        got.extend(ids_of(transport.poll(0.2)))
    return got


def test_restart_on_the_same_port_reconnects_without_loss(
    tansu_factory: type[TansuBroker], caplog: pytest.LogCaptureFixture
) -> None:
    broker = tansu_factory()
    broker.start()
    ensure_topic(broker.bootstrap, "restart", 2)
    first = produce_events(
        broker.bootstrap, "restart", n_messages=10, per_message=100, partitions=2
    )
    transport = KafkaTransport(broker.bootstrap, "restart", schema=EVENTS, backoff_max_s=1.0)
    with caplog.at_level(logging.INFO, logger="stream"):
        got = _poll_until(transport, len(first))
        assert sorted(got) == first
        broker.stop()
        assert _poll_for(transport, 2.0) == []  # down: no raise, nothing delivered
        broker.start()  # same port, empty in-memory log
        ensure_topic(broker.bootstrap, "restart", 2)
        # Fewer messages than the old offsets: naive offset reuse would wait or skip them.
        fresh = produce_events(
            broker.bootstrap,
            "restart",
            n_messages=4,
            per_message=100,
            partitions=2,
            first_id=10_000,
        )
        more = produce_events(
            broker.bootstrap,
            "restart",
            n_messages=30,
            per_message=100,
            partitions=2,
            first_id=20_000,
        )
        after = _poll_until(transport, len(fresh) + len(more))
        after += _poll_for(transport, 1.0)
    transport.close()
    assert sorted(after) == sorted(fresh + more)  # every fresh event, once
    assert transport.stats["topic_recreated"] == 1
    assert transport.stats["reconnects"] >= 1
    assert "lost the connection" in caplog.text
    assert "was recreated" in caplog.text


def test_broker_down_at_start_is_retried_with_growing_delays(
    tansu_factory: type[TansuBroker], caplog: pytest.LogCaptureFixture
) -> None:
    broker = tansu_factory()  # port chosen, nothing listening yet
    transport = KafkaTransport(
        broker.bootstrap, "late", schema=EVENTS, backoff_initial_s=0.1, backoff_max_s=0.8
    )
    with caplog.at_level(logging.WARNING, logger="stream"):
        assert _poll_for(transport, 3.0) == []
    delays = [
        float(r.getMessage().rsplit(" in ", 1)[1].split()[0])
        for r in caplog.records
        if "retry" in r.getMessage()
    ]
    assert len(delays) >= 3
    assert delays[1] > delays[0]
    assert max(delays) <= 0.8 * 1.1 + 0.05  # capped (plus jitter and log rounding)
    broker.start()
    ensure_topic(broker.bootstrap, "late", 1)
    sent = produce_events(broker.bootstrap, "late", n_messages=3, per_message=10, partitions=1)
    assert sorted(_poll_until(transport, len(sent))) == sent
    transport.close()
