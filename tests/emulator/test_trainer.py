"""Trainer loop on the embedded transport: buffer swaps, N_iter, snapshots, resume."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from emulator.config import RunConfig
from emulator.errors import ConfigError, SnapshotError
from emulator.run import run_training
from emulator.snapshot import load_snapshot
from tests.emulator import gaussian_model  # noqa: F401 - registers "test-gaussian"


def _config(events: int, **buffer: int | str) -> RunConfig:
    table = {
        "seed": 3,
        "device": "cpu",
        "source": {"spec": "toy", "events": events},
        "toy": {"batch_size": 700},
        "trigger": {"mode": "l1", "hlt": [{"name": "HLT_ps4", "cuts": ["mass > 0.5"], "prescale": 4}]},
        "buffer": {"size": 1000, "batch_size": 100, "n_iter": 2, **buffer},
        "model": {"kind": "test-gaussian", "hyperparameters": {"columns": ["mass"]}},
        "snapshot": {"record_trained_ids": True},
    }
    return RunConfig.from_mapping(table)


def _ids(out: Path, sub: str = "trained_ids") -> np.ndarray:
    parts = sorted((out / sub).glob("part-*.parquet"))
    return np.concatenate([pq.read_table(p).column("event_id").to_numpy() for p in parts])


def test_single_run_trains_every_event_once(tmp_path: Path) -> None:
    summary = run_training(_config(12_345), tmp_path, progress=False)
    assert summary.events_seen == 12_345
    assert summary.events_trained == 12_345
    assert summary.buffers_trained == 13  # 12 full buffers + the partial last one
    ids = _ids(tmp_path)
    np.testing.assert_array_equal(np.sort(ids), np.arange(12_345))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["events_seen"] == 12_345
    assert manifest["position"] == {"offsets": {"embedded": {"0": 12_345}}, "skip": {"embedded": {"0": 0}}}
    # Stored = events with mass > 0.5, every 4th of them, exactly.
    stored = pq.read_table(tmp_path / "stored_events")
    from stream.generators.toy import ToySpectrumConfig, ToySpectrumSource

    mass = np.concatenate([b.column("mass").to_numpy() for b in ToySpectrumSource(ToySpectrumConfig(seed=3, n_events=12_345)).batches()])
    passing = np.flatnonzero(mass > 0.5)
    np.testing.assert_array_equal(np.sort(stored.column("event_id").to_numpy()), passing[3::4])
    assert manifest["trigger"]["paths"]["HLT_ps4"]["accepted"] == len(passing) // 4


def test_resume_at_buffer_boundary_gives_identical_weights(tmp_path: Path) -> None:
    full = tmp_path / "full"
    run_training(_config(9000), full, progress=False)
    split = tmp_path / "split"
    first = run_training(_config(4000), split, progress=False)
    second = run_training(_config(9000), split, progress=False)
    # Rates of a resumed run count this process's steps only (its wall time is its own).
    assert first.resumed_steps == 0
    assert second.resumed_steps == first.steps
    assert second.steps_this_process == second.steps - first.steps > 0
    assert second.ms_per_step == pytest.approx(1e3 * second.wall_s / second.steps_this_process)
    a, b = load_snapshot(full).model, load_snapshot(split).model
    for key, value in a.state_tensors().items():
        torch.testing.assert_close(value, b.state_tensors()[key], rtol=0, atol=0)
    np.testing.assert_array_equal(np.sort(_ids(split)), np.arange(9000))
    ma = json.loads((full / "manifest.json").read_text())
    mb = json.loads((split / "manifest.json").read_text())
    assert ma["trigger"] == mb["trigger"]
    np.testing.assert_array_equal(
        np.sort(_ids(full, "stored_events")), np.sort(_ids(split, "stored_events"))
    )


@pytest.mark.parametrize("stop", [1, 999, 1001, 4321, 6999])
def test_resume_anywhere_trains_each_event_exactly_once(tmp_path: Path, stop: int) -> None:
    run_training(_config(stop), tmp_path, progress=False)
    run_training(_config(7000), tmp_path, progress=False)
    ids = _ids(tmp_path)
    assert len(ids) == 7000
    np.testing.assert_array_equal(np.sort(ids), np.arange(7000))


def test_adaptive_n_iter_stays_in_bounds(tmp_path: Path) -> None:
    seen: list[int] = []
    from emulator.run import build_transport
    from emulator.trainer import Trainer
    from models.registry import build_model

    # Filling is slow (50-event messages, a trigger run each) and an iteration is fast (one
    # step of 1000 events), so the trainer has spare time to use on extra iterations.
    config = _config(20_000, n_iter=1, n_iter_min=1, n_iter_max=50, batch_size=1000)
    config = replace(config, source_options={"toy": {"batch_size": 50}})
    model = build_model("test-gaussian", {"columns": ["mass"]})
    transport = build_transport(config)
    trainer = Trainer(config, transport, model, tmp_path, progress=False, on_buffer=lambda s: seen.append(s.n_iter_last))
    summary = trainer.run()
    transport.close()
    assert summary.events_trained == 20_000
    assert all(1 <= n <= 50 for n in seen)
    assert max(seen) > 1  # the trainer used the time the filling side needed


def test_drop_policy_counts_every_lost_event(tmp_path: Path) -> None:
    config = _config(30_000, n_iter=200, policy="drop")
    summary = run_training(config, tmp_path, progress=False)
    assert summary.events_dropped > 0
    assert summary.events_trained + summary.events_dropped == 30_000
    assert len(_ids(tmp_path)) == summary.events_trained


def test_bad_config_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match="buffer.policy"):
        RunConfig.from_mapping({"buffer": {"policy": "sometimes"}})
    with pytest.raises(ConfigError, match=r"model: unknown keys \['knd'\]"):
        RunConfig.from_mapping({"model": {"knd": "x"}})
    with pytest.raises(ConfigError, match="buffer.n_iter_min"):
        RunConfig.from_mapping({"buffer": {"n_iter_min": 5, "n_iter_max": 2}})


def test_kafka_secrets_never_reach_the_manifest(tmp_path: Path) -> None:
    secret = "s3cr3t-pa55"
    table = {
        "source": {"spec": "toy", "events": 2000},
        "buffer": {"size": 1000, "batch_size": 100, "n_iter": 1},
        "model": {"kind": "test-gaussian"},
        "kafka": {"topic": "events", "security": {"security_protocol": "SASL_SSL", "sasl_plain_username": "alice",
                                                   "sasl_plain_password": secret}},
    }
    config = RunConfig.from_mapping(table)
    assert secret not in repr(config.kafka)
    assert secret not in json.dumps(config.to_json())
    run_training(config, tmp_path, progress=False)  # embedded transport: kafka section unused
    text = (tmp_path / "manifest.json").read_text()
    assert secret not in text
    assert "sasl_plain_password" in text  # the key is listed, so a reader knows one was set


def test_misspelled_table_and_hyperparameter_are_errors_that_name_the_allowed_keys() -> None:
    with pytest.raises(ConfigError, match=r"unknown table \[bufer\]; did you mean \[buffer\]\?"):
        RunConfig.from_mapping({"bufer": {"size": 100}})
    with pytest.raises(ConfigError, match=r"'hiden_features' \(did you mean 'hidden_features'\?\); allowed: .*n_blocks"):
        RunConfig.from_mapping({"model": {"kind": "onlineflow", "hyperparameters": {"hiden_features": 8}}})
    RunConfig.from_mapping({"toy": {"signal_fraction": 0.1}})  # a source kind's table is fine


def test_resume_with_another_config_is_refused_and_names_the_keys(tmp_path: Path) -> None:
    run_training(_config(2500), tmp_path, progress=False)
    changed = _config(5000, batch_size=50)
    with pytest.raises(SnapshotError, match=r"differs in: buffer\.batch_size.*--fresh"):
        run_training(changed, tmp_path, progress=False)
    assert json.loads((tmp_path / "manifest.json").read_text())["events_seen"] == 2500  # nothing lost
    run_training(_config(5000), tmp_path, progress=False)  # more events: a legitimate resume
    assert json.loads((tmp_path / "manifest.json").read_text())["events_seen"] == 5000


def test_out_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("not a snapshot")
    with pytest.raises(SnapshotError, match="is a file"):
        run_training(_config(100), target, progress=False)
    assert target.read_text() == "not a snapshot"


def test_metrics_table_has_one_row_per_buffer_and_the_manifest_names_the_data(tmp_path: Path) -> None:
    from emulator.side_files import read_parts

    summary = run_training(_config(5500), tmp_path, progress=False)
    table = read_parts(tmp_path / "metrics").to_pydict()
    assert table["buffer_index"] == list(range(summary.buffers_trained))
    assert sum(table["events"]) == 5500
    assert all(p == 2 for p in table["passes"])
    assert "mean_0" in table  # the model's after_buffer metrics are kept too
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    identity = manifest["data_identity"]
    assert identity["source"] == "toy"
    assert identity["seed"] == 3
    other = tmp_path / "other"
    run_training(replace(_config(1000), source_options={"toy": {"seed": 4, "batch_size": 500}}), other, progress=False)
    assert json.loads((other / "manifest.json").read_text())["data_identity"]["id"] != identity["id"]
