"""Shower flows trained by ``python -m emulator run``: killed with SIGKILL mid-run and restarted,
the run ends with exactly the weights (and optimiser state) of an uninterrupted run.

Both runs train a tiny ``layerflow`` model from ``showers:ecal`` through the embedded
transport, across the teacher and the student stage. The interrupted run is killed once
its snapshot covers at least one buffer and before the last; restarted with the same
command, it resumes from that snapshot (model state, stream position, counters).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from emulator.snapshot import load_snapshot

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
seed = 2
device = "cpu"
threads = 1

[source]
spec = "showers:ecal"
events = 320

[showers]
energy_min = 10.0
energy_max = 100.0
batch_size = 32

[trigger]
mode = "l1"
[[trigger.hlt]]
name = "HLT_store_all"
cuts = []
prescale = 1

[buffer]
size = 64
batch_size = 16
n_iter = 12
policy = "block"

[model]
kind = "layerflow"
[model.hyperparameters]
layer_blocks = 1
layer_hidden = 8
shower_blocks = 1
shower_hidden = 8
shower_context_embedding = 4
student_layer_blocks = 1
student_layer_hidden = 8
student_blocks = 1
student_hidden = 8
student_context_embedding = 4
main_buffers = 3
student_buffers = 2

[snapshot]
every_buffers = 1
store_events = false
"""


def _command(config: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "emulator", "run", "--config", str(config), "--out", str(out), "--quiet", "--json"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}


def _trained(out: Path) -> int:
    try:
        return int(json.loads((out / "manifest.json").read_text())["events_trained"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return -1


def test_kill_9_and_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    done = subprocess.run(_command(config, straight), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["events_trained"] == 320

    with (tmp_path / "killed.log").open("w") as log:
        proc = subprocess.Popen(_command(config, interrupted), cwd=ROOT, env=_env(), stdout=log, stderr=log)
        deadline = time.monotonic() + 240
        try:
            while proc.poll() is None and _trained(interrupted) < 64 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert proc.poll() is None, "the run ended before it could be killed"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    killed_at = _trained(interrupted)
    assert 64 <= killed_at < 320, killed_at
    resumed = subprocess.run(_command(config, interrupted), cwd=ROOT, env=_env(), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    a, b = load_snapshot(straight), load_snapshot(interrupted)
    assert a.manifest["events_trained"] == b.manifest["events_trained"] == 320
    assert a.model.training_state() == b.model.training_state()
    assert a.model.stage_name == "done"
    tensors_a, tensors_b = a.model.state_tensors(), b.model.state_tensors()
    assert set(tensors_a) == set(tensors_b)
    for key, value in tensors_a.items():
        assert torch.equal(value, tensors_b[key]), f"state tensor {key!r} differs after kill -9 at {killed_at} events"
