"""Wire codec: one Arrow record batch per message, IPC stream format, metadata in headers.

A message value is a complete Arrow IPC *stream* (schema message, one record batch,
end-of-stream marker). The message headers repeat what a consumer needs before decoding:
``schema_version``, ``kind`` (``events`` or ``showers``), ``n_events`` and the
``content-type``. Decoding checks everything a trainer relies on and raises
:class:`stream.errors.MalformedMessage` with one of these reasons (the keys of a
transport's ``counters``):

* ``empty``: no bytes, or a stream without rows;
* ``not_arrow``: the bytes are not an Arrow IPC stream;
* ``truncated``: an Arrow IPC stream cut short;
* ``bad_schema_version``: a schema version other than :data:`stream.SCHEMA_VERSION`;
* ``wrong_types``: wrong kind, missing column, wrong column type or null values;
* ``non_finite``: NaN or infinity in a feature, incident energy or cell energy;
* ``bad_grid``: shower grid shape differs from the topic's, a cell index outside the
  grid, or cell index and energy lists of different lengths.

Example:
    >>> from stream.schema import event_schema
    >>> import pyarrow as pa
    >>> schema = event_schema(["mass"])
    >>> batch = pa.RecordBatch.from_pydict({"event_id": pa.array([1, 2], pa.uint64()),
    ...                                     "mass": [0.5, 1.0]}, schema=schema)
    >>> value, headers = encode_batch(batch)
    >>> decode_message(value, headers, schema).num_rows
    2
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa

from stream import SCHEMA_VERSION
from stream.errors import MalformedMessage, SchemaError
from stream.schema import EVENT_ID, grid_shape_of, schema_kind, validate_batch

__all__ = [
    "BAD_GRID",
    "BAD_SCHEMA_VERSION",
    "EMPTY",
    "NON_FINITE",
    "NOT_ARROW",
    "TRUNCATED",
    "WRONG_TYPES",
    "CONTENT_TYPE",
    "MALFORMED_REASONS",
    "Headers",
    "decode_message",
    "encode_batch",
    "header_dict",
]

CONTENT_TYPE = b"application/vnd.apache.arrow.stream"
EMPTY = "empty"
NOT_ARROW = "not_arrow"
TRUNCATED = "truncated"
BAD_SCHEMA_VERSION = "bad_schema_version"
WRONG_TYPES = "wrong_types"
NON_FINITE = "non_finite"
BAD_GRID = "bad_grid"
MALFORMED_REASONS = (
    EMPTY,
    NOT_ARROW,
    TRUNCATED,
    BAD_SCHEMA_VERSION,
    WRONG_TYPES,
    NON_FINITE,
    BAD_GRID,
)
"""Every reason :func:`decode_message` can raise, in the order they are checked."""
Headers = list[tuple[str, bytes]]

_CONTINUATION = b"\xff\xff\xff\xff"
_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"
_TRUNCATION_HINTS = ("Expected to read", "Expected to be able to read", "bytes available")


def encode_batch(batch: pa.RecordBatch) -> tuple[bytes, Headers]:
    """Encode one record batch as an Arrow IPC stream plus Kafka-style headers.

    Args:
        batch: the batch; its schema metadata must carry ``kind`` and ``schema_version``
            (schemas from :mod:`stream.schema` do).

    Returns:
        ``(value, headers)`` where ``headers`` is a list of ``(key, bytes)`` pairs.

    Raises:
        SchemaError: the batch schema lacks ``kind`` metadata.
    """
    kind = schema_kind(batch.schema)
    version = (batch.schema.metadata or {}).get(b"schema_version", SCHEMA_VERSION.encode())
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    headers: Headers = [
        ("content-type", CONTENT_TYPE),
        ("schema_version", version),
        ("kind", kind.encode()),
        ("n_events", str(batch.num_rows).encode()),
    ]
    return sink.getvalue().to_pybytes(), headers


def header_dict(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, bytes]:
    """Headers as a dict (last value wins; ``None`` values dropped).

    Example:
        >>> header_dict([("kind", b"events")])
        {'kind': b'events'}
    """
    return {key: value for key, value in (headers or ()) if value is not None}


def decode_message(
    value: bytes | None,
    headers: Iterable[tuple[str, bytes | None]] | Mapping[str, bytes] | None = None,
    expected: pa.Schema | None = None,
) -> pa.RecordBatch:
    """Decode and validate one message value.

    Args:
        value: the message bytes.
        headers: message headers (list of pairs or a dict); checked before decoding.
        expected: the topic schema. When ``None`` the batch is checked on its own
            (valid kind and version, column types of its kind, finite values, grid).

    Returns:
        The record batch (zero-copy view of ``value``).

    Raises:
        MalformedMessage: with ``reason`` one of :data:`MALFORMED_REASONS`.
    """
    head = dict(headers) if isinstance(headers, Mapping) else header_dict(headers)
    if not value:
        raise MalformedMessage(EMPTY, "message value has no bytes")
    _check_header_version(head)
    expected_kind = schema_kind(expected) if expected is not None else None
    kind_header = head.get("kind")
    if (
        expected_kind is not None
        and kind_header is not None
        and kind_header.decode(errors="replace") != expected_kind
    ):
        raise MalformedMessage(
            WRONG_TYPES,
            f"header kind {kind_header.decode(errors='replace')!r}, topic carries {expected_kind!r}",
        )
    batch = _read_ipc(value)
    _check_schema_metadata(batch.schema, expected)
    kind = expected_kind or _kind_of(batch.schema)
    if kind == "showers":
        _check_grid_metadata(batch.schema, expected)
    _check_types(batch, expected, kind)
    if batch.num_rows == 0:
        raise MalformedMessage(EMPTY, "record batch has no rows")
    if kind == "events":
        _check_finite(batch, [n for n in batch.schema.names if n != EVENT_ID])
    else:
        _check_finite(batch, ["incident_energy", "cell_energy"])
        _check_cells(batch, grid_shape_of(expected if expected is not None else batch.schema))
    return batch


def _check_header_version(head: Mapping[str, bytes]) -> None:
    version = head.get("schema_version")
    if version is not None and version != SCHEMA_VERSION.encode():
        detail = f"header schema_version {version.decode(errors='replace')!r}, supported {SCHEMA_VERSION!r}"
        raise MalformedMessage(BAD_SCHEMA_VERSION, detail)


def _read_ipc(value: bytes) -> pa.RecordBatch:
    if not value.startswith(_CONTINUATION):
        raise MalformedMessage(NOT_ARROW, f"{len(value)} bytes without the Arrow IPC stream marker")
    if not value.endswith(_END_OF_STREAM):
        raise MalformedMessage(
            TRUNCATED, f"Arrow IPC stream of {len(value)} bytes has no end-of-stream marker"
        )
    try:
        reader = pa.ipc.open_stream(value)
        batches = list(reader)
    except (pa.ArrowInvalid, OSError) as err:
        text = str(err)
        reason = TRUNCATED if any(hint in text for hint in _TRUNCATION_HINTS) else NOT_ARROW
        raise MalformedMessage(reason, f"Arrow IPC stream of {len(value)} bytes: {text}") from err
    if not batches:
        raise MalformedMessage(EMPTY, "Arrow IPC stream holds a schema but no record batch")
    if len(batches) == 1:
        return batches[0]
    table = pa.Table.from_batches(batches).combine_chunks()
    return table.to_batches()[0]


def _check_schema_metadata(schema: pa.Schema, expected: pa.Schema | None) -> None:
    meta = schema.metadata or {}
    version = meta.get(b"schema_version")
    if version != SCHEMA_VERSION.encode():
        shown = version.decode(errors="replace") if version is not None else None
        raise MalformedMessage(
            BAD_SCHEMA_VERSION, f"batch schema_version {shown!r}, supported {SCHEMA_VERSION!r}"
        )
    if expected is not None:
        got = meta.get(b"kind", b"").decode(errors="replace")
        want = schema_kind(expected)
        if got != want:
            raise MalformedMessage(WRONG_TYPES, f"batch kind {got!r}, topic carries {want!r}")


def _kind_of(schema: pa.Schema) -> str:
    try:
        return schema_kind(schema)
    except SchemaError as err:
        raise MalformedMessage(WRONG_TYPES, str(err)) from err


def _check_grid_metadata(schema: pa.Schema, expected: pa.Schema | None) -> None:
    try:
        got = grid_shape_of(schema)
    except (SchemaError, ValueError) as err:
        raise MalformedMessage(BAD_GRID, f"batch grid_shape metadata unreadable: {err}") from err
    if any(s <= 0 for s in got):
        raise MalformedMessage(BAD_GRID, f"batch grid_shape {got} has a non-positive size")
    if expected is not None and got != grid_shape_of(expected):
        raise MalformedMessage(
            BAD_GRID, f"batch grid_shape {got}, topic grid_shape {grid_shape_of(expected)}"
        )


def _reference_schema(batch: pa.RecordBatch, kind: str) -> pa.Schema:
    from stream.schema import event_schema, shower_schema

    if kind == "showers":
        return shower_schema(grid_shape_of(batch.schema))
    features = [n for n in batch.schema.names if n != EVENT_ID]
    if not features:
        raise MalformedMessage(
            WRONG_TYPES, f"event batch has no feature column (columns: {batch.schema.names})"
        )
    return event_schema(features)


def _check_types(batch: pa.RecordBatch, expected: pa.Schema | None, kind: str) -> None:
    reference = expected if expected is not None else _reference_schema(batch, kind)
    try:
        validate_batch(batch, reference)
    except SchemaError as err:
        raise MalformedMessage(WRONG_TYPES, str(err)) from err
    if expected is not None and kind == "events" and batch.schema.names != expected.names:
        raise MalformedMessage(
            WRONG_TYPES, f"columns {batch.schema.names}, topic columns {expected.names}"
        )
    for name in reference.names:
        column = batch.column(name)
        nulls = column.null_count
        if isinstance(column, pa.ListArray):
            nulls += column.values.null_count
        if nulls:
            raise MalformedMessage(WRONG_TYPES, f"column {name!r} holds {nulls} null values")


def _values(column: pa.Array) -> np.ndarray:
    if isinstance(column, pa.ListArray):
        column = column.flatten()
    return column.to_numpy(zero_copy_only=False)


def _check_finite(batch: pa.RecordBatch, names: Sequence[str]) -> None:
    for name in names:
        values = _values(batch.column(name))
        finite = np.isfinite(values)
        if not finite.all():
            row = int(np.argmin(finite))
            raise MalformedMessage(
                NON_FINITE, f"column {name!r} holds {values[row]!r} (value {row})"
            )


def _check_cells(batch: pa.RecordBatch, grid: tuple[int, int, int]) -> None:
    index = batch.column("cell_index")
    energy = batch.column("cell_energy")
    index_lengths = index.value_lengths().to_numpy(zero_copy_only=False)
    energy_lengths = energy.value_lengths().to_numpy(zero_copy_only=False)
    if not np.array_equal(index_lengths, energy_lengths):
        row = int(np.argmax(index_lengths != energy_lengths))
        detail = (
            f"row {row}: {index_lengths[row]} cell indices but {energy_lengths[row]} cell energies"
        )
        raise MalformedMessage(BAD_GRID, detail)
    cells = _values(index)
    n_cells = grid[0] * grid[1] * grid[2]
    if cells.size and (cells.min() < 0 or cells.max() >= n_cells):
        bad = int(cells.min()) if cells.min() < 0 else int(cells.max())
        raise MalformedMessage(BAD_GRID, f"cell_index {bad} outside grid {grid} ({n_cells} cells)")
