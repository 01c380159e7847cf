"""Snapshots: atomic writes, corrupt or missing parts give errors naming the path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from emulator.errors import SnapshotError
from emulator.snapshot import load_snapshot, write_snapshot
from models.registry import build_model
from tests.emulator import gaussian_model  # noqa: F401 - registers "test-gaussian"


def _model() -> gaussian_model.GaussianTestModel:
    model = build_model("test-gaussian", {"columns": ["mass", "pt"], "seed": 4})
    model.train_on_buffer({"mass": torch.rand(500), "pt": torch.rand(500) * 3}, 2, 50)
    model.end_buffer()
    return model


def test_round_trip_and_repeated_writes(tmp_path: Path) -> None:
    model = _model()
    write_snapshot(tmp_path, model, {"events_seen": 10})
    (tmp_path / "stored_events").mkdir()
    write_snapshot(tmp_path, model, {"events_seen": 20})
    snap = load_snapshot(tmp_path)
    assert snap.manifest["events_seen"] == 20
    assert snap.manifest["model_kind"] == "test-gaussian"
    assert (tmp_path / "stored_events").is_dir()
    assert len(list(tmp_path.glob("weights-*.safetensors"))) == 1
    for key, value in model.state_tensors().items():
        torch.testing.assert_close(snap.model.state_tensors()[key], value)
    assert snap.model.sample(10, seed=1)["pt"].tolist() == model.sample(10, seed=1)["pt"].tolist()


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="does not exist"):
        load_snapshot(tmp_path / "nope")


def test_missing_manifest_lists_files(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(SnapshotError, match=r"no manifest.json \(found: \['x.txt'\]\)"):
        load_snapshot(tmp_path)


def test_corrupt_manifest_and_weights(tmp_path: Path) -> None:
    write_snapshot(tmp_path, _model(), {})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    (tmp_path / manifest["weights"]).write_bytes(b"garbage")
    with pytest.raises(SnapshotError, match="corrupt"):
        load_snapshot(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(SnapshotError, match="not valid JSON"):
        load_snapshot(tmp_path)


def test_unknown_model_kind(tmp_path: Path) -> None:
    write_snapshot(tmp_path, _model(), {})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["model_kind"] = "mystery"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="unknown model kind 'mystery'"):
        load_snapshot(tmp_path)
