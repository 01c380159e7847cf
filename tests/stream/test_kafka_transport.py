"""KafkaTransport against a real broker: partitions, exact seek/resume, dead letters, idle, security."""

from __future__ import annotations

import logging
import socket

import pytest
from kafka import KafkaConsumer

from stream.errors import TransportError
from stream.kafka.producer import make_producer, publish_batch
from stream.kafka.transport import KafkaTransport
from stream.transport import Message, StreamPosition, Transport
from tests.stream.kafka_helpers import drain, ids_of, new_topic, produce_events, produce_raw
from tests.stream.malformed import BUILDERS, EVENTS, event_batch

pytestmark = pytest.mark.kafka


def test_delivers_every_partition_and_learns_schema(kafka_broker: str) -> None:
    topic = new_topic(kafka_broker, partitions=3)
    sent = produce_events(kafka_broker, topic, n_messages=12, per_message=100, partitions=3)
    with KafkaTransport(kafka_broker, topic, idle_timeout_s=1.5) as transport:
        assert isinstance(transport, Transport)
        assert transport.schema.names == EVENTS.names  # learned from the first message
        messages = drain(transport, len(sent))
        assert sorted(ids_of(messages)) == sent
        assert transport.partitions == [0, 1, 2]
        assert {m.partition for m in messages} == {0, 1, 2}
        assert all(m.first_event == 0 and m.n_events == 100 for m in messages)
        assert transport.counters == {}
        assert transport.stats["events"] == len(sent)


def test_auto_created_topic_is_read_on_all_its_partitions(kafka_broker: str) -> None:
    topic = new_topic(kafka_broker)  # not created: the first produce auto-creates it
    producer = make_producer(kafka_broker)
    for i in range(20):
        publish_batch(producer, topic, event_batch(i * 10, 10), key=str(i).encode())
    producer.flush()
    n_partitions = len(producer.partitions_for(topic))
    producer.close()
    with KafkaTransport(kafka_broker, topic, schema=EVENTS, idle_timeout_s=1.5) as transport:
        messages = drain(transport, 200)
        assert sorted(ids_of(messages)) == list(range(200))
        assert len(transport.partitions) == n_partitions


def _consume_events(transport: KafkaTransport, budget: int, position: StreamPosition) -> list[int]:
    """Take ``budget`` events like a trainer filling a buffer, advancing ``position``."""
    taken: list[int] = []
    while len(taken) < budget:
        for message in transport.poll(0.5):
            room = budget - len(taken)
            if room <= 0:
                break
            use = min(room, message.batch.num_rows)
            taken.extend(
                ids_of(
                    [
                        Message(
                            message.batch.slice(0, use),
                            message.topic,
                            message.partition,
                            message.offset,
                        )
                    ]
                )
            )
            position.advance(
                message.topic,
                message.partition,
                message.offset,
                message.first_event + use,
                message.total_events,
            )
            if use < message.batch.num_rows:
                return taken  # the rest of this message is left for after the restart
    return taken


@pytest.mark.parametrize("budget", [1, 99, 100, 250, 777])
def test_seek_resumes_exactly_after_a_partly_consumed_message(
    kafka_broker: str, budget: int
) -> None:
    topic = new_topic(kafka_broker, partitions=2)
    sent = produce_events(kafka_broker, topic, n_messages=10, per_message=100, partitions=2)
    position = StreamPosition()
    with KafkaTransport(kafka_broker, topic, schema=EVENTS, poll_max_records=1) as first:
        before = _consume_events(first, budget, position)
    restored = StreamPosition.from_json(position.to_json())
    with KafkaTransport(kafka_broker, topic, schema=EVENTS, idle_timeout_s=1.5) as second:
        second.seek(restored)
        after_messages = drain(second, len(sent) - len(before))
    after = ids_of(after_messages)
    assert len(before) + len(after) == len(sent)
    assert sorted(before + after) == sent  # nothing lost, nothing twice
    partly = {p: s for p, s in restored.skip[topic].items() if s}
    for message in after_messages:
        if (
            message.partition in partly
            and message.offset == restored.offsets[topic][message.partition]
        ):
            assert message.first_event == partly[message.partition]
            assert message.n_events == 100
            assert message.batch.num_rows == 100 - partly[message.partition]


def test_seek_on_a_live_transport_rewinds(kafka_broker: str) -> None:
    topic = new_topic(kafka_broker, partitions=2)
    sent = produce_events(kafka_broker, topic, n_messages=6, per_message=10, partitions=2)
    with KafkaTransport(kafka_broker, topic, schema=EVENTS, idle_timeout_s=1.0) as transport:
        assert sorted(ids_of(drain(transport, len(sent)))) == sent
        position = StreamPosition(
            {topic: {0: 1}}, {topic: {0: 4}}
        )  # partition 1 absent: from the start
        transport.seek(position)
        again = drain(transport, 10 - 4 + 10 + 30)
        # partition 0 holds messages 0, 2, 4 (ids 0-9, 20-29, 40-49); offset 1 skip 4 -> 24..29, 40..49
        expected = (
            list(range(24, 30)) + list(range(40, 50)) + [i for i in sent if (i // 10) % 2 == 1]
        )
        assert sorted(ids_of(again)) == sorted(expected)
        with pytest.raises(ValueError, match="partition 0: invalid position"):
            transport.seek(StreamPosition({topic: {0: -1}}))


def test_malformed_messages_are_counted_and_dead_lettered(kafka_broker: str) -> None:
    import numpy as np

    topic = new_topic(kafka_broker, partitions=1)
    dead = new_topic(kafka_broker, partitions=1, prefix="dlq")
    rng = np.random.default_rng(5)
    bad = [BUILDERS[reason](rng) for reason in sorted(BUILDERS)]
    produce_raw(kafka_broker, topic, bad, partitions=1)
    produce_events(kafka_broker, topic, n_messages=2, per_message=10, partitions=1)
    with KafkaTransport(
        kafka_broker, topic, schema=EVENTS, dead_letter_topic=dead, idle_timeout_s=1.5
    ) as transport:
        assert sorted(ids_of(drain(transport, 20))) == list(range(20))
        assert transport.counters == {reason: 1 for reason in BUILDERS}
    consumer = KafkaConsumer(
        dead, bootstrap_servers=kafka_broker, auto_offset_reset="earliest", consumer_timeout_ms=5000
    )
    copies = list(consumer)
    consumer.close()
    reasons = sorted(dict(r.headers)["dlq_reason"].decode() for r in copies)
    assert reasons == sorted(BUILDERS)
    first = copies[0]
    assert dict(first.headers)["dlq_source"].decode().startswith(f"{topic}/0/")
    assert first.value == bad[int(dict(first.headers)["dlq_source"].decode().rsplit("/", 1)[1])][0]


def test_exhausted_only_with_an_idle_timeout(kafka_broker: str) -> None:
    topic = new_topic(kafka_broker, partitions=1)
    produce_events(kafka_broker, topic, n_messages=1, per_message=5, partitions=1)
    with KafkaTransport(kafka_broker, topic, schema=EVENTS) as endless:
        drain(endless, 5)
        endless.poll(0.5)
        assert not endless.exhausted
    with KafkaTransport(kafka_broker, topic, schema=EVENTS, idle_timeout_s=1.0) as idle:
        assert not idle.exhausted
        drain(idle, 5)
        while not idle.exhausted:
            assert idle.poll(0.3) == []
        assert idle.exhausted


def test_schema_timeout_names_the_topic(kafka_broker: str) -> None:
    topic = new_topic(kafka_broker, partitions=1)
    with (
        KafkaTransport(kafka_broker, topic, schema_timeout_s=1.0) as transport,
        pytest.raises(TransportError, match=topic),
    ):
        _ = transport.schema


def test_security_settings_pass_through_and_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    security = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "trainer",
        "sasl_plain_password": "hunter2",
    }
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    transport = KafkaTransport(
        f"127.0.0.1:{port}", "events", security=security, backoff_initial_s=0.05, backoff_max_s=0.2
    )
    settings = transport._consumer_settings()
    assert {k: settings[k] for k in security} == security
    assert "hunter2" not in repr(transport)
    assert "***" in repr(transport)
    with caplog.at_level(logging.DEBUG):
        assert transport.poll(1.0) == []
        assert transport.poll(1.0) == []
    transport.close()
    assert "hunter2" not in caplog.text
    assert "broker unavailable" in caplog.text
    with pytest.raises(ValueError, match="sasl_plain_pasword"):
        KafkaTransport("127.0.0.1:1", "events", security={"sasl_plain_pasword": "x"})
    with pytest.raises(TransportError, match="closed"):
        transport.poll(0.1)


def test_commit_resumes_at_the_committed_offset(kafka_broker: str) -> None:
    """The skip count travels in the commit metadata; brokers that drop it (tansu) resume at the message."""
    from kafka.structs import TopicPartition

    topic = new_topic(kafka_broker, partitions=1)
    sent = produce_events(kafka_broker, topic, n_messages=3, per_message=10, partitions=1)
    group = f"g-{topic}"
    with KafkaTransport(kafka_broker, topic, schema=EVENTS, group_id=group) as first:
        first.commit(StreamPosition({topic: {0: 1}}, {topic: {0: 3}}))
        committed = first._consumer.committed(TopicPartition(topic, 0), metadata=True)
    assert committed.offset == 1
    kept_skip = 3 if committed.metadata else 0
    with KafkaTransport(
        kafka_broker, topic, schema=EVENTS, group_id=group, start="committed", idle_timeout_s=1.0
    ) as second:
        assert sorted(ids_of(drain(second, 20 - kept_skip))) == sent[10 + kept_skip :]
    with pytest.raises(ValueError, match="needs a group_id"):
        KafkaTransport(kafka_broker, topic).commit(StreamPosition())
