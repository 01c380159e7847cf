"""Replay any source onto a Kafka topic (or into a Parquet file) as Arrow record batches.

Each message is one Arrow IPC stream holding many events (:mod:`stream.codec`), with the
schema version and kind in its headers. Rate control is a token bucket on events per
second; without ``--rate`` events go out as fast as the broker takes them.

Looping (``--loop K``, 0 = endless) replays the source K times; pass ``k`` (from 0) adds
``k × events per pass`` to ``event_id`` so ids stay unique across passes.

Example:
    python -m stream.replay --bootstrap 127.0.0.1:9092 --topic events --source toy \\
        --events 1000000 --rate 200000 --partitions 3 --option toy.seed=3
    python -m stream.replay --source parquet:events.parquet --out copy.parquet
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from stream.codec import encode_batch
from stream.errors import SourceError, TransportError
from stream.options import load_options
from stream.rate import TokenBucket
from stream.rebatch import rebatch
from stream.schema import EVENT_ID
from stream.source import Source

__all__ = ["ReplaySummary", "main", "replay_batches", "replay_to_kafka", "replay_to_parquet"]

log = logging.getLogger(__name__)

DEFAULT_BATCH_EVENTS = 20_000
DEFAULT_MAX_MESSAGE_BYTES = 900_000
KEY_MODES = ("round-robin", "none", "event-id", "fixed:TEXT")


@dataclass
class ReplaySummary:
    """What a replay wrote.

    Attributes:
        events: events written.
        messages: messages (record batches) written.
        bytes: encoded bytes written (message values, or the file size).
        seconds: wall time.
    """

    events: int = 0
    messages: int = 0
    bytes: int = 0
    seconds: float = 0.0

    @property
    def events_per_s(self) -> float:
        """Average rate."""
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """One readable ``key=value`` line."""
        return (
            f"events={self.events} messages={self.messages} bytes={self.bytes} "
            f"seconds={self.seconds:.3f} events_per_s={self.events_per_s:.0f}"
        )


def replay_batches(
    source: Source,
    events: int | None = None,
    loop: int = 1,
    batch_events: int = DEFAULT_BATCH_EVENTS,
    max_message_bytes: int | None = DEFAULT_MAX_MESSAGE_BYTES,
) -> Iterator[pa.RecordBatch]:
    """The batches a replay sends: re-cut, looped, capped at ``events``.

    Args:
        source: any :class:`stream.source.Source`.
        events: stop after this many events (``None``: when the passes end).
        loop: passes over the source (0 = endless).
        batch_events: events per message.
        max_message_bytes: byte cap per message (fewer events for wide records).

    Raises:
        ValueError: negative ``loop`` or non-positive ``events``.
    """
    if loop < 0:
        msg = f"loop must be >= 0 (0 = endless), got {loop}"
        raise ValueError(msg)
    if events is not None and events < 1:
        msg = f"events must be >= 1, got {events}"
        raise ValueError(msg)
    sent = 0
    per_pass = 0
    passes = 0
    while loop == 0 or passes < loop:
        shift = passes * per_pass
        pass_events = 0
        for batch in rebatch(source.batches(), batch_events, max_message_bytes):
            if events is not None and sent + batch.num_rows > events:
                batch = batch.slice(0, events - sent)
            if shift:
                batch = _shift_ids(batch, shift)
            sent += batch.num_rows
            pass_events += batch.num_rows
            yield batch
            if events is not None and sent >= events:
                return
        if pass_events == 0:
            if passes == 0:
                log.warning("source %r yielded no events", source.spec)
            return
        per_pass = per_pass or pass_events
        passes += 1


def _shift_ids(batch: pa.RecordBatch, shift: int) -> pa.RecordBatch:
    index = batch.schema.get_field_index(EVENT_ID)
    ids = batch.column(index).to_numpy(zero_copy_only=False).astype(np.uint64) + np.uint64(shift)
    return batch.set_column(index, batch.schema.field(index), pa.array(ids, pa.uint64()))


def _progress(total: int | None, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="ev",
        unit_scale=True,
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
    )


def _key_for(mode: str, batch: pa.RecordBatch) -> bytes | None:
    if mode == "event-id":
        return str(batch.column(EVENT_ID)[0].as_py()).encode()
    if mode.startswith("fixed:"):
        return mode.removeprefix("fixed:").encode()
    return None


def replay_to_kafka(
    source: Source,
    bootstrap: str,
    topic: str,
    *,
    rate: float | None = None,
    events: int | None = None,
    loop: int = 1,
    partitions: int | None = None,
    key: str = "round-robin",
    batch_events: int = DEFAULT_BATCH_EVENTS,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    security: Mapping[str, Any] | None = None,
    progress: bool = True,
    wait_s: float = 60.0,
) -> ReplaySummary:
    """Publish ``source`` to ``topic``, one record batch per message.

    Args:
        source: any source.
        bootstrap: ``HOST:PORT``.
        topic: target topic; created with ``partitions`` partitions if given.
        rate: events per second (token bucket); ``None`` = as fast as possible.
        events: stop after this many events.
        loop: passes over the source (0 = endless).
        partitions: create the topic with this many partitions (kept if it exists).
        key: ``round-robin`` (messages spread over partitions in turn), ``none`` (the
            client's partitioner), ``event-id`` (first event id as key) or ``fixed:TEXT``.
        batch_events: events per message.
        max_message_bytes: byte cap per message.
        security: SASL/TLS client settings.
        progress: show a tqdm bar on stderr.
        wait_s: how long to wait for the broker to come up.

    Raises:
        ValueError: an unknown key mode.
        TransportError: the broker is unreachable or rejected messages.
    """
    from stream.kafka.producer import ensure_topic, make_producer, wait_for_broker

    if key not in KEY_MODES[:3] and not key.startswith("fixed:"):
        msg = f"unknown key mode {key!r}; use one of {list(KEY_MODES)}"
        raise ValueError(msg)
    wait_for_broker(bootstrap, security, wait_s)
    if partitions is not None:
        ensure_topic(bootstrap, topic, partitions, security)
    producer = make_producer(bootstrap, security)
    n_partitions = len(producer.partitions_for(topic) or ()) if key == "round-robin" else 0
    failures: list[BaseException] = []
    bucket = TokenBucket(rate, burst=max(rate, batch_events)) if rate else None
    summary = ReplaySummary()
    begin = time.monotonic()
    bar = _progress(events, progress)
    try:
        for index, batch in enumerate(
            replay_batches(source, events, loop, batch_events, max_message_bytes)
        ):
            if bucket is not None:
                bucket.acquire(batch.num_rows)
            partition = index % n_partitions if n_partitions else None
            value, headers = encode_batch(batch)
            future = producer.send(
                topic, value=value, key=_key_for(key, batch), partition=partition, headers=headers
            )
            future.add_errback(failures.append)
            summary.events += batch.num_rows
            summary.messages += 1
            summary.bytes += len(value)
            bar.update(batch.num_rows)
            if failures:
                break
        producer.flush()
    finally:
        bar.close()
        producer.close()
        summary.seconds = time.monotonic() - begin
    if failures:
        msg = f"topic {topic!r} on {bootstrap!r}: {len(failures)} message(s) not delivered, first error: {failures[0]}"
        raise TransportError(msg)
    return summary


def replay_to_parquet(
    source: Source,
    path: str | Path,
    *,
    events: int | None = None,
    loop: int = 1,
    batch_events: int = DEFAULT_BATCH_EVENTS,
    progress: bool = True,
) -> ReplaySummary:
    """Write ``source`` to a Parquet file (one row group per message-sized batch).

    Raises:
        ValueError: ``loop`` = 0 without ``events`` (an endless file).
    """
    import pyarrow.parquet as pq

    if loop == 0 and events is None:
        msg = "writing a file needs --events when --loop is 0 (endless)"
        raise ValueError(msg)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = ReplaySummary()
    begin = time.monotonic()
    bar = _progress(events, progress)
    try:
        with pq.ParquetWriter(path, source.schema, write_page_checksum=True) as writer:
            for batch in replay_batches(source, events, loop, batch_events, None):
                writer.write_batch(batch)
                summary.events += batch.num_rows
                summary.messages += 1
                bar.update(batch.num_rows)
    finally:
        bar.close()
    summary.seconds = time.monotonic() - begin
    summary.bytes = path.stat().st_size
    return summary


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stream.replay",
        description="Replay a source onto a Kafka topic (or into a Parquet file) as Arrow record batches.",
        epilog=(
            "examples:\n"
            "  python -m stream.replay --bootstrap 127.0.0.1:9092 --topic events --source toy \\\n"
            "      --events 1000000 --rate 200000 --partitions 3 --option toy.seed=3\n"
            "  python -m stream.replay --source toy --events 100000 --out toy.parquet\n"
            "  python -m stream.replay --bootstrap kafka:9092 --topic showers --source showers:ecal \\\n"
            "      --config configs/showers-bibae.toml --loop 0"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--source", required=True, help="source spec KIND[:ARGUMENT], e.g. toy, parquet:PATH"
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--bootstrap", help="Kafka bootstrap HOST:PORT")
    target.add_argument("--out", type=Path, help="write a Parquet file instead of publishing")
    parser.add_argument("--topic", help="Kafka topic (required with --bootstrap)")
    parser.add_argument(
        "--rate", type=float, help="events per second (default: as fast as possible)"
    )
    parser.add_argument("--events", type=int, help="stop after N events")
    parser.add_argument(
        "--loop", type=int, default=1, help="passes over the source, 0 = endless (default 1)"
    )
    parser.add_argument("--partitions", type=int, help="create the topic with P partitions")
    parser.add_argument(
        "--key", default="round-robin", help="round-robin (default), none, event-id or fixed:TEXT"
    )
    parser.add_argument(
        "--batch-events", type=int, default=DEFAULT_BATCH_EVENTS, help="events per message"
    )
    parser.add_argument(
        "--max-message-bytes",
        type=int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help="byte cap per message",
    )
    parser.add_argument(
        "--option", action="append", default=[], metavar="KIND.KEY=VALUE", help="generator option"
    )
    parser.add_argument("--config", type=Path, help="TOML file whose tables are option sections")
    parser.add_argument("--security-protocol", help="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    parser.add_argument("--sasl-mechanism", help="e.g. PLAIN, SCRAM-SHA-256")
    parser.add_argument("--sasl-username", help="SASL user")
    parser.add_argument(
        "--sasl-password-env", help="name of the environment variable holding the SASL password"
    )
    parser.add_argument("--ssl-cafile", help="CA bundle for TLS")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _security(args: argparse.Namespace) -> dict[str, Any]:
    import os

    settings: dict[str, Any] = {
        "security_protocol": args.security_protocol,
        "sasl_mechanism": args.sasl_mechanism,
        "sasl_plain_username": args.sasl_username,
        "ssl_cafile": args.ssl_cafile,
    }
    if args.sasl_password_env:
        if args.sasl_password_env not in os.environ:
            msg = f"environment variable {args.sasl_password_env!r} (SASL password) is not set"
            raise ValueError(msg)
        settings["sasl_plain_password"] = os.environ[args.sasl_password_env]
    return {k: v for k, v in settings.items() if v is not None}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.bootstrap and not args.topic:
        print("error: --topic is required with --bootstrap", file=sys.stderr)
        return 2
    from stream.sources import open_source

    try:
        options = load_options(args.config, args.option)
        source = open_source(args.source, options)
        if args.out is not None:
            summary = replay_to_parquet(
                source,
                args.out,
                events=args.events,
                loop=args.loop,
                batch_events=args.batch_events,
                progress=not args.no_progress,
            )
        else:
            summary = replay_to_kafka(
                source,
                args.bootstrap,
                args.topic,
                rate=args.rate,
                events=args.events,
                loop=args.loop,
                partitions=args.partitions,
                key=args.key,
                batch_events=args.batch_events,
                max_message_bytes=args.max_message_bytes,
                security=_security(args),
                progress=not args.no_progress,
            )
    except (SourceError, ValueError, TransportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(summary.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
