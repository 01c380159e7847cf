"""Stored events: float32 parts (schema version 2) and older float64 parts read as float64."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from offline.bumphunt.data import null_masses, read_stored_events
from stream.generators.toy import ToySpectrumConfig, ToySpectrumSource


def test_float32_and_float64_parts_mix(tmp_path: Path) -> None:
    source = ToySpectrumSource(ToySpectrumConfig(n_events=3000, seed=4, batch_size=1000))
    batches = list(source.batches())
    assert batches[0].schema.field("mass").type == pa.float32()
    pq.write_table(pa.Table.from_batches(batches[:1]), tmp_path / "part-00000000.parquet")
    old = pa.Table.from_batches(batches[1:]).cast(
        pa.schema([pa.field("event_id", pa.uint64()), pa.field("mass", pa.float64()), pa.field("is_signal", pa.float64())])
    )
    pq.write_table(old, tmp_path / "part-00000001.parquet")
    stored = read_stored_events(tmp_path)
    expected = np.concatenate([b.column("mass").to_numpy() for b in batches])
    assert stored["mass"].dtype == np.float64
    assert stored["is_signal"].dtype == np.float64
    np.testing.assert_array_equal(stored["mass"], expected.astype(np.float64))


def test_null_masses_from_the_toy_are_float64() -> None:
    masses, description = null_masses(None, 25_000, {"toy": {"slope": 1.0}}, seed=1)
    assert masses.dtype == np.float64
    assert masses.size == 25_000
    assert "toy background" in description
