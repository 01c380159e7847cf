"""CWoLa search: metrics by hand, trainings on synthetic dijet features, the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from offline.cwola.analysis import CwolaSettings, matching_prescale, run_cwola
from offline.cwola.classifier import ClassifierSettings
from offline.cwola.cli import main
from offline.cwola.data import FEATURES, EventSet, SignalRegion, prescaled, read_events
from offline.cwola.errors import CwolaError
from offline.cwola.metrics import max_sic, roc_curve

FAST = ClassifierSettings(epochs=12, batch_size=256, checkpoints=3)


def synthetic_events(n: int, signal_fraction: float, seed: int) -> EventSet:
    """Dijet-like features (GeV): falling m_jj with jet masses that grow with it; a narrow
    3.5 TeV signal with m_j1 ~ 500, m_j1 - m_j2 ~ 400 GeV and two-prong jets, overlapping
    the background's broad mass tail so that no cut separates them perfectly."""
    rng = np.random.default_rng(seed)
    signal = rng.random(n) < signal_fraction
    k = int(signal.sum())
    mjj = 2000.0 + rng.exponential(600.0, n)
    mj1 = rng.gamma(2.0, 130.0, n) * (mjj / 3000.0)
    delta = mj1 * rng.uniform(0.0, 0.9, n)
    tau1, tau2 = rng.beta(4, 2.5, n), rng.beta(4, 2.5, n)
    mjj[signal] = rng.normal(3500.0, 80.0, k)
    mj1[signal] = rng.normal(500.0, 50.0, k)
    delta[signal] = mj1[signal] - rng.normal(100.0, 40.0, k)
    tau1[signal], tau2[signal] = rng.beta(2, 4, k), rng.beta(3, 4, k)
    return EventSet(np.column_stack([mjj, mj1, delta, tau1, tau2]), signal.astype(np.float64))


def _write(events: EventSet, path: Path, pt_lead: np.ndarray | None = None) -> Path:
    columns = {name: events.x[:, i].astype(np.float32) for i, name in enumerate(FEATURES)}
    columns["event_id"] = np.arange(len(events), dtype=np.uint64)
    if pt_lead is not None:
        columns["pt_lead"] = pt_lead.astype(np.float32)
    if events.is_signal is not None:
        columns["is_signal"] = events.is_signal.astype(np.float32)
    pq.write_table(pa.table(columns), path)
    return path


def test_roc_and_max_sic_by_hand() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.array([1, 1, 0, 1, 0, 0])
    eps_s, eps_b, count = roc_curve(scores, labels)
    assert eps_s.tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    assert eps_b.tolist() == pytest.approx([0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    # Keeping >= 1 background event: best is eps_s = 1, eps_b = 1/3 -> sqrt(3).
    assert max_sic(scores, labels, min_background=1) == pytest.approx(np.sqrt(3))
    assert max_sic(scores, labels, min_background=3) == pytest.approx(1.0)
    assert matching_prescale(9.0, {1: 12.0, 2: 9.0, 5: 4.0}) == 2


def test_signal_region_and_prescale() -> None:
    events = synthetic_events(1000, 0.05, 0)
    sr = SignalRegion().contains(events.mjj)
    assert np.all(events.mjj[sr] >= 3300)
    assert np.all(events.mjj[sr] < 3700)
    assert len(prescaled(events, 20)) == 50
    with pytest.raises(CwolaError, match="low < high"):
        SignalRegion(3700, 3300)


def test_perfect_flow_matches_data_and_background_only_flow_does_not() -> None:
    stored = synthetic_events(20_000, 0.02, 1)
    test = synthetic_events(60_000, 0.02, 2)
    settings = CwolaSettings(prescales=(1, 5, 20), seeds=2, classifier=FAST, min_background=10)
    # A perfect flow: fresh draws from the data's own distribution, as many as stored.
    perfect = run_cwola(synthetic_events(20_000, 0.02, 3), synthetic_events(4_000, 0.02, 4), stored, test, settings)
    s = perfect["summary"]
    # Measured: supervised 4.7 (trained on the 1300 SR events only), idealised 6.3,
    # data 8.7 / 4.1 / 3.8 at prescale 1 / 5 / 20, perfect flow 9.3.
    assert s["max_sic_supervised"] > 3.0
    assert s["max_sic_idealised"] > 4.0
    assert s["max_sic_data"]["1"] > 6.0
    assert s["max_sic_data"]["1"] > s["max_sic_data"]["0.05"] + 2.0
    assert s["max_sic_flow"] > 0.6 * s["max_sic_data"]["1"]
    assert s["matching_prescale"] in (1, 5)
    assert set(s["max_sic_data_std"]) == {"1", "0.2", "0.05"}
    assert s["events"]["test_sr_signal"] > 500
    # A flow that learned no signal: CWoLa finds nothing (SIC near 1, random).
    settings_flow_only = CwolaSettings(prescales=(1,), seeds=1, classifier=FAST, min_background=10, references=False)
    blind = run_cwola(synthetic_events(20_000, 0.0, 5), synthetic_events(4_000, 0.0, 6), stored, test, settings_flow_only)
    assert blind["summary"]["max_sic_flow"] < 0.5 * blind["summary"]["max_sic_data"]["1"]
    assert blind["summary"]["matching_prescale"] is None


def _snapshot(tmp_path: Path, stored: EventSet) -> Path:
    from emulator.snapshot import write_snapshot
    from models.flows.ensemble import OnlineFlowEnsemble

    model = OnlineFlowEnsemble(columns=list(FEATURES), log_columns=[], noise_dims=1, n_members=1, n_blocks=1,
                               hidden_features=16, learning_rate=1e-3)
    buffer = {name: torch.as_tensor(stored.x[:, i], dtype=torch.float32) for i, name in enumerate(FEATURES)}
    model.train_on_buffer(buffer, n_iter=2, batch_size=256)
    directory = tmp_path / "snap"
    directory.mkdir()
    _write(stored, directory / "stored.parquet")
    write_snapshot(directory, model, {"stored_events": "stored.parquet", "events_trained": len(stored)})
    return directory


def test_cli_json_plots_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stored = synthetic_events(8_000, 0.03, 7)
    snapshot = _snapshot(tmp_path, stored)
    test = synthetic_events(20_000, 0.03, 8)
    # The trigger cut is applied to the test file: events at pt_lead 1000 are dropped.
    pt = np.where(np.arange(20_000) % 4 == 0, 1000.0, 1500.0)
    test_file = _write(test, tmp_path / "test.parquet", pt)
    signal_file = _write(synthetic_events(2_000, 1.0, 9), tmp_path / "signal.parquet")
    args = [str(snapshot), "--test", str(test_file), "--signal-test", str(signal_file), "--samples", "6000",
            "--val-samples", "1000", "--epochs", "3", "--seeds", "2", "--checkpoints", "2", "--prescales", "1,2",
            "--batch-size", "256", "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["max_sic_data"]) == {"1", "0.5"}
    assert summary["max_sic_flow"] >= 0.0
    assert summary["matching_prescale"] in (1, 2, None)
    assert summary["events"]["flow_train"] == 6000
    n_test_sr = SignalRegion().contains(test.mjj[pt > 1200]).sum()
    n_signal_sr = SignalRegion().contains(read_events(signal_file).mjj).sum()
    assert summary["events"]["test_sr_signal"] + summary["events"]["test_sr_background"] == n_test_sr + n_signal_sr
    assert summary["max_sic_supervised"] > 2.0
    for name in ("roc.png", "sic.png", "summary.json"):
        assert (snapshot / "cwola" / name).stat().st_size > 1000
    # User errors: exit code 2 and a message naming the thing.
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([str(snapshot), "--test", str(tmp_path / "missing.parquet")]) == 2
    assert "missing.parquet" in capsys.readouterr().err
    assert main([str(snapshot), "--sr", "3.3"]) == 2
    unlabelled = tmp_path / "unlabelled.parquet"
    _write(EventSet(test.x), unlabelled)
    assert main([str(snapshot), "--test", str(unlabelled)]) == 2
    assert "lack columns ['is_signal']" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "python -m offline.cwola runs/dijet/" in capsys.readouterr().out
