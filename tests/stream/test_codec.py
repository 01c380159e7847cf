"""Arrow IPC codec: round trips, headers, and every malformed reason."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from stream import SCHEMA_VERSION
from stream.codec import MALFORMED_REASONS, decode_message, encode_batch, header_dict
from stream.errors import MalformedMessage
from stream.schema import event_schema, shower_schema
from tests.stream.malformed import (
    BUILDERS,
    EVENTS,
    HEADER_ONLY_VERSION,
    SHOWER_BUILDERS,
    SHOWERS,
    event_batch,
    shower_batch,
)


def test_event_round_trip_keeps_values_and_metadata() -> None:
    batch = event_batch(10, 1000)
    value, headers = encode_batch(batch)
    head = header_dict(headers)
    assert head["schema_version"] == SCHEMA_VERSION.encode()
    assert head["kind"] == b"events"
    assert head["n_events"] == b"1000"
    decoded = decode_message(value, headers, EVENTS)
    assert decoded.equals(batch)
    assert decoded.schema.metadata == batch.schema.metadata


def test_shower_round_trip() -> None:
    batch = shower_batch(0, 50)
    value, headers = encode_batch(batch)
    decoded = decode_message(value, headers, SHOWERS)
    assert decoded.equals(batch)
    assert decoded.column("cell_index").to_pylist() == batch.column("cell_index").to_pylist()


def test_decode_without_headers_or_expected_schema_learns_the_batch() -> None:
    batch = event_batch(0, 3)
    value, _ = encode_batch(batch)
    assert decode_message(value, None, None).equals(batch)
    showers = shower_batch(0, 3)
    assert decode_message(encode_batch(showers)[0]).equals(showers)


def test_sliced_batch_round_trips() -> None:
    batch = shower_batch(0, 20).slice(5, 10)
    value, headers = encode_batch(batch)
    assert decode_message(value, headers, SHOWERS).column("event_id").to_pylist() == list(
        range(5, 15)
    )


@pytest.mark.parametrize("reason", sorted(BUILDERS))
def test_each_event_reason_is_detected(reason: str) -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        value, headers = BUILDERS[reason](rng)
        with pytest.raises(MalformedMessage) as info:
            decode_message(value, headers, EVENTS)
        assert info.value.reason == reason, info.value.detail


@pytest.mark.parametrize("reason", sorted(SHOWER_BUILDERS))
def test_each_shower_reason_is_detected(reason: str) -> None:
    rng = np.random.default_rng(2)
    for _ in range(10):
        value, headers = SHOWER_BUILDERS[reason](rng)
        with pytest.raises(MalformedMessage) as info:
            decode_message(value, headers, SHOWERS)
        assert info.value.reason == reason, info.value.detail


def test_reasons_list_covers_the_builders() -> None:
    assert set(BUILDERS) | set(SHOWER_BUILDERS) == set(MALFORMED_REASONS)


def test_header_version_is_checked_before_decoding() -> None:
    value, headers = HEADER_ONLY_VERSION(np.random.default_rng(0))
    with pytest.raises(MalformedMessage, match="header schema_version '7'") as info:
        decode_message(value, headers, EVENTS)
    assert info.value.reason == "bad_schema_version"


def test_kind_mismatch_is_wrong_types() -> None:
    value, headers = encode_batch(shower_batch(0, 2))
    with pytest.raises(MalformedMessage, match="topic carries 'events'") as info:
        decode_message(value, headers, EVENTS)
    assert info.value.reason == "wrong_types"
    with pytest.raises(MalformedMessage) as info:
        decode_message(value, [], EVENTS)  # no headers: the batch metadata says so too
    assert info.value.reason == "wrong_types"


def test_event_features_are_float32_and_float64_is_wrong_types() -> None:
    assert all(EVENTS.field(name).type == pa.float32() for name in EVENTS.names[1:])
    assert EVENTS.field("event_id").type == pa.uint64()
    batch = event_batch(0, 4)
    wide = pa.schema(
        [pa.field(f.name, pa.float64() if f.name != "event_id" else f.type, nullable=False) for f in EVENTS],
        metadata=EVENTS.metadata,
    )
    value, headers = encode_batch(batch.cast(wide))
    for expected in (EVENTS, None):
        with pytest.raises(MalformedMessage, match="column 'f0' has type double, expected float") as info:
            decode_message(value, headers, expected)
        assert info.value.reason == "wrong_types"


def test_other_feature_columns_are_wrong_types() -> None:
    other = event_schema(["mass"])
    value, headers = encode_batch(event_batch(0, 4, schema=other))
    with pytest.raises(MalformedMessage, match="column 'f0' missing") as info:
        decode_message(value, headers, EVENTS)
    assert info.value.reason == "wrong_types"


def test_nulls_are_wrong_types() -> None:
    schema = pa.schema(
        [pa.field("event_id", pa.uint64()), pa.field("f", pa.float32())],
        metadata=event_schema(["f"]).metadata,
    )
    batch = pa.RecordBatch.from_arrays(
        [pa.array([1, 2], pa.uint64()), pa.array([1.0, None], pa.float32())], schema=schema
    )
    with pytest.raises(MalformedMessage, match="null") as info:
        decode_message(*encode_batch(batch), event_schema(["f"]))
    assert info.value.reason == "wrong_types"


def test_non_finite_in_cell_energy_and_mismatched_lists() -> None:
    batch = shower_batch(0, 2)
    energy = pa.array([[1.0, np.nan], [2.0, 3.0]], pa.list_(pa.float32()))
    index = pa.array([[0, 1], [2, 3]], pa.list_(pa.int32()))
    bad = pa.RecordBatch.from_arrays(
        [batch.column(0), batch.column(1), index, energy], schema=SHOWERS
    )
    with pytest.raises(MalformedMessage, match="cell_energy") as info:
        decode_message(*encode_batch(bad), SHOWERS)
    assert info.value.reason == "non_finite"
    short = pa.array([[1.0], [2.0, 3.0]], pa.list_(pa.float32()))
    bad = pa.RecordBatch.from_arrays(
        [batch.column(0), batch.column(1), index, short], schema=SHOWERS
    )
    with pytest.raises(MalformedMessage, match="row 0: 2 cell indices but 1") as info:
        decode_message(*encode_batch(bad), SHOWERS)
    assert info.value.reason == "bad_grid"


def test_negative_cell_index_is_bad_grid() -> None:
    batch = shower_batch(0, 1)
    index = pa.array([[-1]], pa.list_(pa.int32()))
    energy = pa.array([[1.0]], pa.list_(pa.float32()))
    bad = pa.RecordBatch.from_arrays(
        [batch.column(0), batch.column(1), index, energy], schema=SHOWERS
    )
    with pytest.raises(MalformedMessage, match="cell_index -1 outside grid") as info:
        decode_message(*encode_batch(bad), SHOWERS)
    assert info.value.reason == "bad_grid"


def test_shower_grid_differs_without_expected_schema_is_still_valid() -> None:
    other = shower_schema((2, 2, 2), "tiny")
    index = pa.array([[0, 7]], pa.list_(pa.int32()))
    energy = pa.array([[1.0, 2.0]], pa.list_(pa.float32()))
    batch = pa.RecordBatch.from_arrays(
        [pa.array([0], pa.uint64()), pa.array([1.0], pa.float32()), index, energy], schema=other
    )
    assert decode_message(*encode_batch(batch)).num_rows == 1
