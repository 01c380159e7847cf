"""Generator truth (``is_signal``) is stored with the events but never reaches the trigger or a buffer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emulator.adapter import EventAdapter
from emulator.config import RunConfig
from emulator.errors import ConfigError
from emulator.run import run_training
from stream.schema import event_schema, training_columns, truth_columns
from tests.emulator import gaussian_model  # noqa: F401 - registers "test-gaussian"


def _config(cuts: list[str], columns: list[str]) -> RunConfig:
    return RunConfig.from_mapping({
        "seed": 3,
        "device": "cpu",
        "source": {"spec": "toy", "events": 3000},
        "trigger": {"mode": "hlt", "hlt": [{"name": "HLT_all", "cuts": cuts, "prescale": 1}]},
        "buffer": {"size": 1000, "batch_size": 100, "n_iter": 1},
        "model": {"kind": "test-gaussian", "hyperparameters": {"columns": columns}},
    })


def test_truth_is_marked_in_the_schema_and_by_name() -> None:
    schema = event_schema(["mass", "is_signal", "label"], truth=["is_signal", "label"])
    assert schema.field("label").metadata == {b"role": b"truth"}
    assert truth_columns(schema) == ["is_signal", "label"]
    assert training_columns(schema) == ["mass"]
    # A file written before the marker existed: is_signal is truth by its name.
    old = pa.schema([pa.field("event_id", pa.uint64()), pa.field("mass", pa.float32()), pa.field("is_signal", pa.float32())])
    assert truth_columns(old) == ["is_signal"]


def test_the_buffer_rows_carry_no_truth() -> None:
    schema = event_schema(["mass", "is_signal"])
    adapter = EventAdapter(schema)
    batch = pa.RecordBatch.from_arrays(
        [pa.array([0, 1, 2], pa.uint64()), pa.array([1.0, 2.0, 3.0], pa.float32()), pa.array([0.0, 1.0, 0.0], pa.float32())],
        schema=schema,
    )
    ids, rows = adapter.rows(batch, np.array([0, 2]))
    assert list(rows) == ["mass"]
    np.testing.assert_array_equal(ids, [0, 2])
    assert list(adapter.trigger_columns(batch)) == ["mass"]


def test_a_run_stores_the_truth_and_trains_without_it(tmp_path: Path) -> None:
    summary = run_training(_config(["mass > 0.5"], ["mass"]), tmp_path, progress=False)
    assert summary.events_trained > 0
    stored = pq.read_table(tmp_path / "stored_events")
    assert "is_signal" in stored.column_names  # kept for the evaluation


@pytest.mark.parametrize(
    ("cuts", "columns", "where"),
    [(["is_signal > 0.5"], ["mass"], "trigger menu cuts on"), (["mass > 0.5"], ["mass", "is_signal"], "model trains on")],
)
def test_asking_for_truth_is_refused_with_a_clear_error(tmp_path: Path, cuts: list[str], columns: list[str], where: str) -> None:
    with pytest.raises(ConfigError, match=rf"{where} \['is_signal'\].*generator truth"):
        run_training(_config(cuts, columns), tmp_path, progress=False)
