"""End to end: ``python -m offline.bumphunt`` on a small real OnlineFlow snapshot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emulator.snapshot import write_snapshot
from offline.bumphunt.cli import main
from stream.generators.toy import ToySpectrumConfig, toy_spectrum_chunk

ROOT = Path(__file__).resolve().parents[2]


def _snapshot(directory: Path, *, seed: int = 0, events: int = 40_000, stored: bool = True) -> Path:
    from models.flows.ensemble import OnlineFlowEnsemble

    model = OnlineFlowEnsemble(n_members=4, n_blocks=1, hidden_features=8, seed=seed)
    manifest = {
        "config": {"source": {"spec": "toy"}, "toy": {"slope": 1.0, "signal_fraction": 0.005}},
        "events_seen": events,
        "events_trained": events,
        "stored_events": "stored_events" if stored else None,
    }
    write_snapshot(directory, model, manifest)
    if stored:
        mass, is_signal = toy_spectrum_chunk(ToySpectrumConfig(seed=3, signal_fraction=0.02), 0)
        part = directory / "stored_events"
        part.mkdir(exist_ok=True)
        table = pa.table(
            {
                "event_id": pa.array(np.arange(mass.size, dtype=np.uint64)),
                "mass": mass,
                "is_signal": is_signal,
            }
        )
        pq.write_table(table, part / "part-00000000.parquet")
    return directory


ARGS = [
    "--samples",
    "20000",
    "--chunk-size",
    "7000",
    "--pseudo",
    "50",
    "--no-progress",
    "--fit-order",
    "3",
]


def test_json_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snap = _snapshot(tmp_path / "snap")
    assert main([str(snap), "--json", *ARGS]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    report = json.loads(out[0])
    for key in (
        "window",
        "significance",
        "crossover_prescale",
        "data_significance",
        "n_members",
        "timings",
        "O",
        "B",
        "delta_O",
        "delta_B",
        "local_pvalue",
    ):
        assert key in report, key
    assert report["n_members"] == 4
    assert len(report["window"]) == 2
    assert report["window"][0] < report["window"][1]
    assert sorted(report["data_significance"], key=int) == ["1", "2", "4", "8", "16", "32"]
    assert report["data"]["4"]["n_events"] == 5000
    # the 2 % bump at m = 1 in the stored data is found at prescale 1
    assert report["data"]["1"]["window"][0] <= 1.0 <= report["data"]["1"]["window"][1]
    assert report["normalised_to"] == {"key": "events_trained", "events": 40_000}
    assert {"load", "sample", "ensemble_fit_scan", "data", "plots", "total"} <= set(
        report["timings"]
    )
    for name in ("spectrum.png", "significance_vs_prescale.png"):
        assert (snap / "bumphunt" / name).stat().st_size > 0


def test_table_null_and_curve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    early = _snapshot(tmp_path / "t1", events=10_000)
    late = _snapshot(tmp_path / "t2", events=40_000)
    plots = tmp_path / "plots"
    assert main([str(early), str(late), "--null", "--plots", str(plots), *ARGS]) == 0
    text = capsys.readouterr().out
    assert "ensemble significance" in text
    assert "crossover prescale" in text
    assert "truth-signal events removed" in text
    assert "signal_fraction" in text
    assert (plots / "significance_vs_events.png").exists()


def test_shards_are_merged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _snapshot(tmp_path / "a", seed=1, stored=False)
    b = _snapshot(tmp_path / "b", seed=2, stored=False)
    assert main([str(a), str(b), "--json", "--no-plots", *ARGS]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["merged_shards"] is True
    assert report["n_members"] == 8
    assert report["crossover_prescale"] is None
    assert "curve" not in report


def test_missing_snapshot_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:")
    assert "nope" in err
    assert "\n" not in err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    assert main([str(broken)]) == 2


def test_help_mentions_formula_and_paper() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "offline.bumphunt", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "2202.09375" in result.stdout
    assert "sqrt(O^2 + B^2)" in result.stdout
    assert "python -m offline.bumphunt snapshot/" in result.stdout


def test_calibrated_keys_and_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snap = _snapshot(tmp_path / "snap")
    assert main([str(snap), "--json", *ARGS]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert f"plots written to {snap / 'bumphunt'}" in captured.err
    assert sorted(report["data_significance_calibrated"], key=int) == ["1", "2", "4", "8", "16", "32"]
    assert "crossover_prescale_calibrated" in report
    assert report["invalid_fits"]["count"] == 0
    assert report["invalid_fits"]["members"] == []
    # the 2 % bump at prescale 1 is far beyond 50 pseudo-experiments: p = 0 is written
    # as a bound, and the calibrated significance still says how far
    assert report["data"]["1"]["global_pvalue"] == 0.0
    assert report["data"]["1"]["global_pvalue_text"] == "< 0.02 (50 pseudo-experiments)"
    assert report["data_significance_calibrated"]["1"] > 5
    assert set(report["delta_S_options"]) == {"paper", "spread", "stderr"}
    d = report["delta_S_options"]
    assert d["spread"] == pytest.approx(d["paper"] * report["n_members"] / 2)
    assert d["stderr"] == pytest.approx(d["spread"] / np.sqrt(report["n_members"] / 2))
    assert report["sampling_noise"]["policy"] == "subtract"
    assert main([str(snap), "--no-plots", "--uncertainty", "spread", *ARGS]) == 0
    text = capsys.readouterr().out
    assert "(delta: spread)" in text
    assert "crossover prescale (calibrated)" in text
    assert "< 0.02 (50 pseudo-experiments)" in text


@pytest.mark.parametrize("argument", ["--samples", "--chunk-size"])
def test_zero_sizes_exit_2_without_traceback(argument: str, tmp_path: Path) -> None:
    snap = _snapshot(tmp_path / "snap", stored=False)
    result = subprocess.run(
        [sys.executable, "-m", "offline.bumphunt", str(snap), argument, "0"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"argument {argument}: must be a positive integer, got '0'" in result.stderr


def test_cuda_without_cuda_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    snap = _snapshot(tmp_path / "snap", stored=False)
    assert main([str(snap), "--device", "cuda", *ARGS]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err
    assert "corrupt" not in err


def test_signal_estimates_for_coverage(tmp_path: Path) -> None:
    from offline.bumphunt.analysis import BumpHuntSettings
    from offline.bumphunt.uncertainty import signal_estimates

    snap = _snapshot(tmp_path / "snap", stored=False)
    settings = BumpHuntSettings(samples=20_000, chunk_size=20_000, n_pseudo=0, prescales=(), progress=False, fit_order=3)
    est = signal_estimates(snap, settings)
    assert set(est.delta_signal) == {"paper", "spread", "stderr"}
    assert est.delta_signal["spread"] == pytest.approx(est.delta_signal["paper"] * 4 / 2)
    assert est.delta_signal["stderr"] == pytest.approx(est.delta_signal["spread"] / np.sqrt(2))
    for option, delta in est.delta_signal.items():
        assert est.significance[option] == pytest.approx(est.signal / np.sqrt(delta**2 + est.background))
    assert est.n_members == 4
    assert est.events == 40_000
