"""Fuzz: over 10 000 malformed messages mixed into a valid stream through a real broker.

The consumer must deliver every valid event exactly once and count every bad message
under its reason, exactly; the dead-letter topic must hold one copy of each.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from kafka import KafkaConsumer

from stream.codec import encode_batch
from stream.kafka.transport import KafkaTransport
from tests.stream.kafka_helpers import drain, ids_of, new_topic, produce_raw
from tests.stream.malformed import BUILDERS, SHOWER_BUILDERS, SHOWERS, interleave, shower_batch

pytestmark = pytest.mark.kafka

N_BAD = 10_200
N_VALID = 400
PER_VALID = 50


def _mixed_stream(
    seed: int,
) -> tuple[list[tuple[bytes, list[tuple[str, bytes]]]], Counter[str], list[int]]:
    rng = np.random.default_rng(seed)
    valid_at = set(rng.choice(N_BAD + N_VALID, N_VALID, replace=False).tolist())
    return interleave(rng, valid_at, N_BAD, PER_VALID, seed)


def test_fuzzed_event_stream_delivers_all_valid_and_counts_every_bad_one(kafka_broker: str) -> None:
    topic = new_topic(kafka_broker, partitions=3, prefix="fuzz")
    dead = new_topic(kafka_broker, partitions=1, prefix="fuzz-dlq")
    stream, expected, ids = _mixed_stream(seed=2024)
    assert sum(expected.values()) >= 10_000
    assert set(expected) == set(BUILDERS)
    produce_raw(kafka_broker, topic, stream, partitions=3)
    with KafkaTransport(
        kafka_broker,
        topic,
        schema=None,
        dead_letter_topic=dead,
        poll_max_records=500,
        idle_timeout_s=3.0,
    ) as transport:
        messages = drain(transport, len(ids), timeout_s=240)
        while not transport.exhausted:  # bad messages after the last valid one
            assert transport.poll(0.5) == []
        got = ids_of(messages)
        assert len(got) == len(ids)
        assert sorted(got) == ids
        assert transport.counters == dict(expected)
        assert transport.stats["messages"] == N_VALID
    consumer = KafkaConsumer(
        dead, bootstrap_servers=kafka_broker, auto_offset_reset="earliest", consumer_timeout_ms=5000
    )
    dead_reasons = Counter(dict(record.headers)["dlq_reason"].decode() for record in consumer)
    consumer.close()
    assert dead_reasons == expected


def test_fuzzed_shower_stream_counts_bad_grids(kafka_broker: str) -> None:
    topic = new_topic(kafka_broker, partitions=2, prefix="fuzz-showers")
    rng = np.random.default_rng(7)
    stream = []
    expected: Counter[str] = Counter()
    ids: list[int] = []
    builders = {**SHOWER_BUILDERS, "not_arrow": BUILDERS["not_arrow"]}
    for i in range(600):
        if i % 3 == 0:
            batch = shower_batch(i * 10, 10)
            stream.append(encode_batch(batch))
            ids.extend(range(i * 10, i * 10 + 10))
        else:
            reason = sorted(builders)[int(rng.integers(0, len(builders)))]
            stream.append(builders[reason](rng))
            expected[reason] += 1
    produce_raw(kafka_broker, topic, stream, partitions=2)
    with KafkaTransport(
        kafka_broker, topic, schema=SHOWERS, poll_max_records=500, idle_timeout_s=2.0
    ) as transport:
        messages = drain(transport, len(ids), timeout_s=120)
        while not transport.exhausted:
            transport.poll(0.5)
        assert sorted(ids_of(messages)) == ids
        assert transport.counters == dict(expected)
