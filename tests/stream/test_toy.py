"""Toy spectrum generator: statistics within tolerance, determinism, resume, Parquet replay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stream.errors import SourceError
from stream.generators.toy import ToySpectrumConfig, ToySpectrumSource
from stream.sources import open_source


def _all(source: ToySpectrumSource, start: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    batches = list(source.batches(start))
    ids = np.concatenate([b.column("event_id").to_numpy() for b in batches])
    mass = np.concatenate([b.column("mass").to_numpy() for b in batches])
    sig = np.concatenate([b.column("is_signal").to_numpy() for b in batches])
    return ids, mass, sig


def test_signal_fraction_and_slope_within_tolerance() -> None:
    n = 2_000_000
    _, mass, sig = _all(ToySpectrumSource(ToySpectrumConfig(n_events=n, seed=11)))
    lam = sig.mean()
    # Binomial: sigma(lambda) = sqrt(lambda (1 - lambda) / n) = 5.0e-5; allow 4 sigma.
    assert abs(lam - 0.005) < 4 * np.sqrt(0.005 * 0.995 / n)
    background = mass[sig == 0]
    slope = 1.0 / background.mean()  # MLE of b; relative sigma 1/sqrt(N) ~ 7e-4
    assert slope == pytest.approx(1.0, rel=4 / np.sqrt(len(background)))
    signal = mass[sig == 1]
    assert signal.mean() == pytest.approx(1.0, abs=4 * 0.04 / np.sqrt(len(signal)))
    assert signal.std() == pytest.approx(0.04, rel=0.05)


def test_signal_count_fluctuates_between_seeds() -> None:
    counts = [int(_all(ToySpectrumSource(ToySpectrumConfig(n_events=100_000, seed=s)))[2].sum()) for s in range(8)]
    assert len(set(counts)) > 1
    assert np.mean(counts) == pytest.approx(500, abs=4 * np.sqrt(500 / 8))


def test_same_seed_same_stream_and_resume_anywhere() -> None:
    cfg = ToySpectrumConfig(n_events=70_000, seed=5, batch_size=3000)
    ids, mass, _ = _all(ToySpectrumSource(cfg))
    np.testing.assert_array_equal(ids, np.arange(70_000))
    again = _all(ToySpectrumSource(ToySpectrumConfig(n_events=70_000, seed=5, batch_size=777)))[1]
    np.testing.assert_array_equal(mass, again)
    ids2, mass2, _ = _all(ToySpectrumSource(cfg), start=23_456)
    np.testing.assert_array_equal(ids2, np.arange(23_456, 70_000))
    np.testing.assert_array_equal(mass2, mass[23_456:])
    other = _all(ToySpectrumSource(ToySpectrumConfig(n_events=70_000, seed=6)))[1]
    assert not np.array_equal(mass, other)


def test_parquet_round_trip(tmp_path: Path) -> None:
    src = ToySpectrumSource(ToySpectrumConfig(n_events=50_000, seed=2))
    table = pa.Table.from_batches(list(src.batches()))
    path = tmp_path / "toy.parquet"
    pq.write_table(table, path, row_group_size=7000)
    replay = open_source(f"parquet:{path}", {"parquet": {"batch_size": 4096}})
    back = pa.Table.from_batches(list(replay.batches()))
    assert back.column("mass").to_pylist() == table.column("mass").to_pylist()
    resumed = pa.Table.from_batches(list(replay.batches(12_345)))
    assert resumed.column("event_id").to_pylist() == list(range(12_345, 50_000))


def test_toy_features_are_float32_drawn_in_float64() -> None:
    batch = next(ToySpectrumSource(ToySpectrumConfig(n_events=20_000, seed=7)).batches())
    assert batch.schema.field("event_id").type == pa.uint64()
    assert batch.schema.field("mass").type == pa.float32()
    assert batch.schema.field("is_signal").type == pa.float32()
    rng = np.random.Generator(np.random.PCG64([7, 0]))
    is_signal = rng.random(20_000) < 0.005
    background = rng.exponential(1.0, 20_000)
    signal = rng.normal(1.0, 0.04, 20_000)
    expected = np.abs(np.where(is_signal, signal, background)).astype(np.float32)
    np.testing.assert_array_equal(batch.column("mass").to_numpy(), expected)


def test_parquet_float64_and_integer_columns_become_float32(tmp_path: Path) -> None:
    path = tmp_path / "wide.parquet"
    table = pa.table(
        {
            "event_id": pa.array([0, 1, 2], pa.int64()),
            "x": pa.array([0.1, -2.5, 3e38]),
            "n": pa.array([1, 2, 3], pa.int32()),
        }
    )
    pq.write_table(table, path)
    batch = next(open_source(f"parquet:{path}").batches())
    assert batch.schema.types == [pa.uint64(), pa.float32(), pa.float32()]
    np.testing.assert_array_equal(batch.column("x").to_numpy(), np.array([0.1, -2.5, 3e38], np.float32))
    pq.write_table(table.set_column(1, "x", pa.array([0.1, 1e39, 2.0])), path)
    with pytest.raises(SourceError, match=r"column 'x' holds 1e\+39, outside the float32 range"):
        list(open_source(f"parquet:{path}").batches())


@pytest.mark.parametrize(
    ("spec", "options", "needle"),
    [
        ("nosuch", {}, "unknown source kind 'nosuch'"),
        ("toy", {"toy": {"signal_fraction": 1.5}}, "signal_fraction"),
        ("toy", {"toy": {"slopes": 1}}, "slopes"),
        ("parquet:/does/not/exist.parquet", {}, "does not exist"),
        ("parquet", {}, "needs a path"),
    ],
)
def test_bad_specs_raise_clear_errors(spec: str, options: dict, needle: str) -> None:
    with pytest.raises(SourceError, match=needle):
        open_source(spec, options)
