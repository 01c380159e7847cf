"""The committed Pythia sample (tests/data/dijet_sample.parquet, command in tests/data/dijet_README.md).

Needs neither Pythia nor FastJet: it checks that the file is what the generator makes
(schema, event ids, the per-event signal flags of its seed) and that its physics is that
of the study: a W' (3.5 TeV) -> X (500 GeV) Y (100 GeV) signal above a QCD background.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from stream.generators.dijet import event_randomness
from stream.jets.features import DIJET_COLUMNS, DIJET_UNITS
from stream.sources import open_source

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "dijet_sample.parquet"
SEED, EVENTS, SIGNAL_FRACTION = 4, 10_000, 0.1


@pytest.fixture(scope="module")
def sample() -> dict[str, np.ndarray]:
    table = pq.read_table(SAMPLE)
    assert table.column_names == ["event_id", *DIJET_COLUMNS]
    return {name: table.column(name).to_numpy() for name in table.column_names}


def test_sample_is_the_generators_output(sample: dict[str, np.ndarray]) -> None:
    assert SAMPLE.stat().st_size < 3_000_000
    assert sample["event_id"].tolist() == list(range(EVENTS))
    flags, _ = event_randomness(SEED, 0, EVENTS, SIGNAL_FRACTION)
    np.testing.assert_array_equal(sample["is_signal"], flags.astype(np.float32))
    schema = pq.read_schema(SAMPLE)
    assert schema.field("mjj").metadata[b"unit"] == DIJET_UNITS["mjj"].encode()
    source = open_source(f"parquet:{SAMPLE}")
    assert sum(b.num_rows for b in source.batches(9_000)) == 1_000


def test_sample_physics(sample: dict[str, np.ndarray]) -> None:
    passed = sample["pt_lead"] > 1200.0
    signal = (sample["is_signal"] == 1) & passed
    background = (sample["is_signal"] == 0) & passed
    # QCD above pT-hat 1.2 TeV nearly always passes; the W' jets often fall below 1.2 TeV.
    assert 0.9 < passed[sample["is_signal"] == 0].mean() < 1.0
    assert 0.5 < passed[sample["is_signal"] == 1].mean() < 0.8
    assert 3200 < np.median(sample["mjj"][signal]) < 3600
    assert 2800 < np.median(sample["mjj"][background]) < 3400
    mj1, mj2 = sample["mj1"], sample["mj1"] - sample["delta_mj"]
    assert 450 < np.median(mj1[signal]) < 540
    assert 90 < np.median(mj2[signal]) < 160
    assert np.median(mj1[background]) < 300
    # Two-prong X and Y jets: tau21 well below that of QCD jets.
    assert np.median(sample["tau21_j1"][signal]) < 0.25
    assert np.median(sample["tau21_j1"][background]) > 0.4
    assert np.median(sample["tau21_j2"][signal]) < np.median(sample["tau21_j2"][background]) - 0.2
    assert np.all(sample["delta_mj"] >= 0)
    sr = (sample["mjj"] >= 3300) & (sample["mjj"] < 3700)
    assert 0.5 < sr[signal].mean() < 0.8
