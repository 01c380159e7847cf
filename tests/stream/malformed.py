"""Builders of valid and malformed wire messages, one per malformed reason (test helpers)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from stream import SCHEMA_VERSION
from stream.codec import Headers, encode_batch
from stream.schema import event_schema, shower_schema

__all__ = [
    "BUILDERS",
    "EVENTS",
    "GRID",
    "HEADER_ONLY_VERSION",
    "SHOWERS",
    "SHOWER_BUILDERS",
    "event_batch",
    "interleave",
    "shower_batch",
]

FEATURES = ["f0", "f1", "f2", "f3", "f4"]
GRID = (4, 5, 6)
EVENTS = event_schema(FEATURES)
SHOWERS = shower_schema(GRID, "test")


def event_batch(first_id: int, n: int, schema: pa.Schema = EVENTS, seed: int = 0) -> pa.RecordBatch:
    """``n`` events with ids ``first_id ...``, five float32 features."""
    rng = np.random.default_rng([seed, first_id])
    arrays = [pa.array(np.arange(first_id, first_id + n, dtype=np.uint64))]
    arrays += [pa.array(rng.normal(size=n).astype(np.float32)) for _ in schema.names[1:]]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def shower_batch(
    first_id: int, n: int, cells: int = 7, schema: pa.Schema = SHOWERS, seed: int = 0
) -> pa.RecordBatch:
    """``n`` sparse showers of ``cells`` cells each inside ``GRID``."""
    rng = np.random.default_rng([seed, first_id])
    size = int(np.prod(GRID))
    index = pa.array(
        [rng.choice(size, cells, replace=False).astype(np.int32) for _ in range(n)],
        pa.list_(pa.int32()),
    )
    energy = pa.array(
        [rng.exponential(10.0, cells).astype(np.float32) for _ in range(n)], pa.list_(pa.float32())
    )
    ids = pa.array(np.arange(first_id, first_id + n, dtype=np.uint64))
    incident = pa.array(rng.uniform(10, 100, n).astype(np.float32))
    return pa.RecordBatch.from_arrays([ids, incident, index, energy], schema=schema)


def _random_bytes(rng: np.random.Generator) -> tuple[bytes, Headers]:
    data = rng.integers(0, 256, int(rng.integers(1, 2000)), dtype=np.uint8).tobytes()
    if data.startswith(b"\xff\xff\xff\xff"):
        data = b"\x00" + data
    return data, []


def _truncated(rng: np.random.Generator) -> tuple[bytes, Headers]:
    value, headers = encode_batch(event_batch(0, 50, seed=int(rng.integers(1 << 30))))
    return value[: int(rng.integers(4, len(value) - 8))], headers


def _bad_version(rng: np.random.Generator) -> tuple[bytes, Headers]:
    batch = event_batch(0, 5)
    version = str(int(rng.integers(int(SCHEMA_VERSION) + 1, 99))).encode()
    schema = batch.schema.with_metadata({**batch.schema.metadata, b"schema_version": version})
    value, headers = encode_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
    return value, headers


def _bad_version_header_only(rng: np.random.Generator) -> tuple[bytes, Headers]:
    value, headers = encode_batch(event_batch(0, 5))
    return value, [(k, b"7" if k == "schema_version" else v) for k, v in headers]


def _wrong_types(rng: np.random.Generator) -> tuple[bytes, Headers]:
    batch = event_batch(0, 5)
    column = int(rng.integers(1, len(FEATURES) + 1))
    fields = list(batch.schema)
    fields[column] = pa.field(fields[column].name, pa.float64(), nullable=False)
    schema = pa.schema(fields, metadata=batch.schema.metadata)
    arrays = list(batch.columns)
    arrays[column] = arrays[column].cast(pa.float64())
    return encode_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))


def _non_finite(rng: np.random.Generator) -> tuple[bytes, Headers]:
    batch = event_batch(0, 20)
    column = int(rng.integers(1, len(FEATURES) + 1))
    values = batch.column(column).to_numpy().copy()
    values[int(rng.integers(0, 20))] = [np.nan, np.inf, -np.inf][int(rng.integers(0, 3))]
    return encode_batch(batch.set_column(column, batch.schema.field(column), pa.array(values)))


def _shower_bad_grid(rng: np.random.Generator) -> tuple[bytes, Headers]:
    if rng.random() < 0.5:
        return encode_batch(shower_batch(0, 3, schema=shower_schema((4, 5, 7), "test")))
    batch = shower_batch(0, 3)
    bad = pa.array([[0, int(np.prod(GRID))]] * 3, pa.list_(pa.int32()))
    energy = pa.array([[1.0, 2.0]] * 3, pa.list_(pa.float32()))
    return encode_batch(
        pa.RecordBatch.from_arrays([batch.column(0), batch.column(1), bad, energy], schema=SHOWERS)
    )


def _empty(rng: np.random.Generator) -> tuple[bytes, Headers]:
    if rng.random() < 0.5:
        return b"", []
    return encode_batch(event_batch(0, 0))


BUILDERS: dict[str, Callable[[np.random.Generator], tuple[bytes, Headers]]] = {
    "not_arrow": _random_bytes,
    "truncated": _truncated,
    "bad_schema_version": _bad_version,
    "wrong_types": _wrong_types,
    "non_finite": _non_finite,
    "empty": _empty,
}
"""Malformed event messages by reason (each builder takes a numpy Generator)."""

SHOWER_BUILDERS: dict[str, Callable[[np.random.Generator], tuple[bytes, Headers]]] = {
    "bad_grid": _shower_bad_grid,
}
"""Malformed shower messages by reason."""

HEADER_ONLY_VERSION = _bad_version_header_only


def interleave(
    rng: np.random.Generator, valid_at: set[int], n_bad: int, per_valid: int, seed: int
) -> tuple[list[tuple[bytes, Headers]], Counter[str], list[int]]:
    """A stream of ``n_bad`` malformed messages (reasons drawn uniformly from ``BUILDERS``)
    with valid event messages of ``per_valid`` events at the positions ``valid_at``.

    Returns:
        ``(messages, expected count per reason, ids of the valid events in order)``.
    """
    reasons = sorted(BUILDERS)
    picks = rng.integers(0, len(reasons), n_bad)
    stream: list[tuple[bytes, Headers]] = []
    expected: Counter[str] = Counter()
    ids: list[int] = []
    bad_i = valid_i = 0
    for position in range(n_bad + len(valid_at)):
        if position in valid_at:
            first = valid_i * per_valid
            stream.append(encode_batch(event_batch(first, per_valid, seed=seed)))
            ids.extend(range(first, first + per_valid))
            valid_i += 1
        else:
            reason = reasons[picks[bad_i]]
            stream.append(BUILDERS[reason](rng))
            expected[reason] += 1
            bad_i += 1
    return stream, expected, ids
