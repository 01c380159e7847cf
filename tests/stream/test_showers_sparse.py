"""Dense <-> sparse shower batches."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from stream.errors import SchemaError
from stream.schema import grid_shape_of, shower_schema, validate_batch
from stream.showers.simulator import simulate
from stream.showers.sparse import batch_to_dense, dense_to_batch, geometry_of_schema, schema_for


def test_round_trip_is_exact() -> None:
    energies = np.array([10.0, 55.5, 99.0], dtype=np.float32)
    showers = simulate("ecal", energies, seed=4)
    showers[1] = 0.0  # an empty shower survives too
    batch = dense_to_batch(np.array([7, 8, 9]), energies, showers, "ecal")
    validate_batch(batch, shower_schema((30, 30, 30), "ecal"))
    assert geometry_of_schema(batch.schema).name == "ecal"
    ids, back_energies, back = batch_to_dense(batch)
    np.testing.assert_array_equal(ids, [7, 8, 9])
    np.testing.assert_array_equal(back_energies, energies)
    np.testing.assert_array_equal(back, showers)
    # Sliced batches decode too.
    _, _, sliced = batch_to_dense(batch.slice(2))
    np.testing.assert_array_equal(sliced, showers[2:])


def test_custom_grid_and_ordering() -> None:
    grid = np.zeros((2, 2, 3, 4), dtype=np.float32)
    grid[0, 1, 2, 3] = 1.5
    grid[0, 0, 0, 1] = 0.25
    batch = dense_to_batch(np.array([0, 1]), np.array([[1.0], [2.0]]), grid, (2, 3, 4))
    assert grid_shape_of(batch.schema) == (2, 3, 4)
    assert batch.column("cell_index").to_pylist() == [[1, 23], []]
    np.testing.assert_array_equal(batch_to_dense(batch)[2], grid)


def test_shape_mismatch_and_bad_index_are_named() -> None:
    with pytest.raises(ValueError, match=r"expected \(N, 30, 30, 30\)"):
        dense_to_batch(np.array([0]), np.array([1.0]), np.zeros((1, 30, 30, 29)), "ecal")
    with pytest.raises(ValueError, match="event_ids and energies"):
        dense_to_batch(np.array([0, 1]), np.array([1.0]), np.zeros((1, 30, 30, 30)), "ecal")
    schema = schema_for((1, 2, 2))
    bad = pa.RecordBatch.from_arrays(
        [
            pa.array([5], pa.uint64()),
            pa.array([1.0], pa.float32()),
            pa.array([[9]], pa.list_(pa.int32())),
            pa.array([[1.0]], pa.list_(pa.float32())),
        ],
        schema=schema,
    )
    with pytest.raises(SchemaError, match="event_id 5 has a cell_index outside the grid"):
        batch_to_dense(bad)
