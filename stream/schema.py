"""Arrow schemas of the records on the wire, one per topic kind, with a schema version.

Two kinds exist:

* ``events``: flat feature records. Column ``event_id`` (uint64) plus float32 feature
  columns (units are stated per column in the field metadata, e.g. ``mass`` is in the
  toy's dimensionless mass units, ``mjj`` in GeV for the dijet stream). Features are float32 because
  trigger-level quantities carry no more precision than that (CMS NanoAOD stores them as
  ``Float_t``) and the buffer trains on float32 anyway; it makes an event 28 bytes on
  the wire instead of 48, and bytes through the client and broker are what limit the
  stream. Sources cast their features to float32 (a generator computes in float64 and
  casts); consumers that need float64 (the trigger menu) cast after decoding.
* ``showers``: sparse calorimeter images. ``event_id`` (uint64), ``incident_energy``
  (float32, GeV), ``cell_index`` (list<int32>, flat C-order index into the grid) and
  ``cell_energy`` (list<float32>, MeV). The grid shape ``(layers, x, y)`` lives in the
  schema metadata under ``grid_shape`` as ``"30,30,30"``, the geometry name under
  ``geometry``.

Metadata keys (bytes in Arrow): ``kind``, ``schema_version`` and, for showers,
``grid_shape`` and ``geometry``. Field metadata: ``unit``, and ``role = truth`` on a
generator's truth columns (``is_signal``): they travel with the events and are stored by
the classical trigger for evaluation, but :func:`training_columns` leaves them out, so
neither the trigger menu nor a training buffer ever sees them. ``is_signal`` counts as
truth by its name too (files written before the marker existed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa

from stream import SCHEMA_VERSION
from stream.errors import SchemaError

__all__ = [
    "EVENT_ID",
    "FEATURE_TYPE",
    "event_schema",
    "feature_columns",
    "training_columns",
    "truth_columns",
    "grid_shape_of",
    "schema_kind",
    "shower_schema",
    "validate_batch",
]

EVENT_ID = "event_id"
FEATURE_TYPE = pa.float32()
"""Arrow type of every event feature column (see the module docstring for why float32)."""
TRUTH_NAMES = ("is_signal",)
"""Columns that are generator truth by their name, whatever their metadata."""


def event_schema(
    columns: Sequence[str], units: Mapping[str, str] | None = None, truth: Sequence[str] = TRUTH_NAMES
) -> pa.Schema:
    """Schema of an event topic: ``event_id`` (uint64) then one float32 column per feature.

    Args:
        columns: feature column names, in order.
        units: optional unit string per column, stored as field metadata.
        truth: the columns among ``columns`` that are generator truth (marked
            ``role = truth``; kept out of the trigger and the buffers).

    Returns:
        The Arrow schema with ``kind=events`` and the schema version in its metadata.

    Example:
        >>> event_schema(["mass"]).names
        ['event_id', 'mass']
        >>> event_schema(["mass"]).field("mass").type
        DataType(float)
    """
    if not columns:
        msg = "an event schema needs at least one feature column"
        raise SchemaError(msg)
    units = dict(units or {})
    fields = [pa.field(EVENT_ID, pa.uint64(), nullable=False)]
    for name in columns:
        meta = {b"unit": units[name].encode()} if name in units else {}
        if name in truth:
            meta[b"role"] = b"truth"
        fields.append(pa.field(name, FEATURE_TYPE, nullable=False, metadata=meta or None))
    return pa.schema(fields, metadata={b"kind": b"events", b"schema_version": SCHEMA_VERSION.encode()})


def shower_schema(grid_shape: tuple[int, int, int], geometry: str = "custom") -> pa.Schema:
    """Schema of a shower topic (sparse cells; energies in MeV, incident energy in GeV).

    Example:
        >>> grid_shape_of(shower_schema((30, 30, 30), "ecal"))
        (30, 30, 30)
    """
    if len(grid_shape) != 3 or any(int(s) <= 0 for s in grid_shape):
        msg = f"grid_shape must be three positive integers (layers, x, y), got {grid_shape!r}"
        raise SchemaError(msg)
    fields = [
        pa.field(EVENT_ID, pa.uint64(), nullable=False),
        pa.field("incident_energy", pa.float32(), nullable=False, metadata={b"unit": b"GeV"}),
        pa.field("cell_index", pa.list_(pa.int32()), nullable=False),
        pa.field("cell_energy", pa.list_(pa.float32()), nullable=False, metadata={b"unit": b"MeV"}),
    ]
    meta = {
        b"kind": b"showers",
        b"schema_version": SCHEMA_VERSION.encode(),
        b"grid_shape": ",".join(str(int(s)) for s in grid_shape).encode(),
        b"geometry": geometry.encode(),
    }
    return pa.schema(fields, metadata=meta)


def schema_kind(schema: pa.Schema) -> str:
    """Return ``"events"`` or ``"showers"`` from the schema metadata."""
    meta = schema.metadata or {}
    kind = meta.get(b"kind", b"").decode()
    if kind not in ("events", "showers"):
        msg = f"schema has no valid 'kind' metadata (got {kind!r}); expected 'events' or 'showers'"
        raise SchemaError(msg)
    return kind


def grid_shape_of(schema: pa.Schema) -> tuple[int, int, int]:
    """Grid shape ``(layers, x, y)`` of a shower schema."""
    raw = (schema.metadata or {}).get(b"grid_shape")
    if raw is None:
        msg = "shower schema has no 'grid_shape' metadata"
        raise SchemaError(msg)
    parts = tuple(int(p) for p in raw.decode().split(","))
    if len(parts) != 3:
        msg = f"grid_shape metadata must have three entries, got {raw.decode()!r}"
        raise SchemaError(msg)
    return parts  # type: ignore[return-value]


def feature_columns(schema: pa.Schema) -> list[str]:
    """Feature column names of an event schema (everything but ``event_id``, truth included)."""
    return [n for n in schema.names if n != EVENT_ID]


def truth_columns(schema: pa.Schema) -> list[str]:
    """Generator truth columns: marked ``role = truth``, or named in :data:`TRUTH_NAMES`.

    Example:
        >>> truth_columns(event_schema(["mass", "is_signal"]))
        ['is_signal']
    """
    return [
        f.name
        for f in schema
        if f.name != EVENT_ID and (f.name in TRUTH_NAMES or (f.metadata or {}).get(b"role") == b"truth")
    ]


def training_columns(schema: pa.Schema) -> list[str]:
    """The columns a trigger may cut on and a buffer holds: the features without the truth.

    Example:
        >>> training_columns(event_schema(["mass", "is_signal"]))
        ['mass']
    """
    truth = set(truth_columns(schema))
    return [n for n in feature_columns(schema) if n not in truth]


def validate_batch(batch: pa.RecordBatch, expected: pa.Schema) -> None:
    """Check a batch against the expected schema (names, types, version, grid).

    Raises:
        SchemaError: naming the first mismatch (column, expected and received type).
    """
    meta = batch.schema.metadata or {}
    version = meta.get(b"schema_version", b"").decode()
    if version != SCHEMA_VERSION:
        msg = f"schema_version {version!r} is not the supported {SCHEMA_VERSION!r}"
        raise SchemaError(msg)
    for field in expected:
        if field.name not in batch.schema.names:
            msg = f"column {field.name!r} missing; batch has {batch.schema.names}"
            raise SchemaError(msg)
        got = batch.schema.field(field.name).type
        if got != field.type:
            msg = f"column {field.name!r} has type {got}, expected {field.type}"
            raise SchemaError(msg)
    if schema_kind(expected) == "showers" and grid_shape_of(batch.schema) != grid_shape_of(expected):
        msg = f"grid_shape {grid_shape_of(batch.schema)} differs from expected {grid_shape_of(expected)}"
        raise SchemaError(msg)
