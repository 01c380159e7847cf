"""``python -m emulator run`` as a process: Ctrl-C leaves a valid snapshot, errors exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from emulator.snapshot import load_snapshot
from tests.emulator import gaussian_model  # noqa: F401 - registers "test-gaussian"

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = "import sys; import tests.emulator.gaussian_model; from emulator.cli import main; raise SystemExit(main(sys.argv[1:]))"

CONFIG = """
seed = 1
device = "cpu"
[source]
spec = "toy"
[toy]
batch_size = 500
[buffer]
size = 2000
batch_size = 100
n_iter = 20
[model]
kind = "test-gaussian"
[snapshot]
record_trained_ids = true
"""


def _run(args: list[str], **kw: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", LAUNCH, *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)  # type: ignore[call-overload]


def test_ctrl_c_leaves_a_valid_snapshot(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    out = tmp_path / "snap"
    proc = _run(["run", "--config", str(config), "--out", str(out), "--quiet"])
    deadline = time.monotonic() + 60
    while not (out / "manifest.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "interrupted" in stdout
    snap = load_snapshot(out)
    trained = snap.manifest["events_trained"]
    assert trained > 0
    ids = np.concatenate([pq.read_table(p).column("event_id").to_numpy() for p in sorted((out / "trained_ids").glob("*.parquet"))])
    np.testing.assert_array_equal(np.sort(ids), np.arange(trained))
    assert snap.manifest["events_seen"] == trained


def test_bad_config_exits_2_with_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[buffer]\nsize = 0\n")
    proc = _run(["run", "--config", str(config), "--out", str(tmp_path / "o")])
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "buffer.size must be an integer >= 1, got 0" in stderr
    assert not (tmp_path / "o").exists()


def test_json_summary_and_resume_noop(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    out = tmp_path / "snap"
    proc = _run(["run", "--config", str(config), "--out", str(out), "--events", "5000", "--quiet", "--json"])
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["events_trained"] == 5000
    assert summary["storage"]["model_events_seen"] == 5000
    again = _run(["run", "--config", str(config), "--out", str(out), "--events", "5000", "--quiet", "--json"])
    stdout, _ = again.communicate(timeout=120)
    assert json.loads(stdout.strip().splitlines()[-1])["events_trained"] == 5000
