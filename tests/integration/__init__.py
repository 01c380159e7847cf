"""Integration tests: replay, trainer and offline tools as separate processes on a real broker.

Helpers shared by ``tests/integration/test_kafka_*.py``: start the replay CLI and the
trainer CLI as subprocesses (the trainer can use the ``test-gaussian`` model of
``tests/emulator/gaussian_model.py``), and read the trained event ids a snapshot
directory records. Heavy imports stay inside the functions.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "LAUNCH",
    "ROOT",
    "env",
    "manifest_or_empty",
    "position_skips",
    "write_gaussian_config",
    "read_trained_ids",
    "replay",
    "run",
    "topic_ids",
    "trainer_command",
]

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = (
    "import sys, tests.emulator.gaussian_model; from emulator.cli import main; "
    "raise SystemExit(main(sys.argv[1:]))"
)
"""``python -c`` program: the trainer CLI with the test-gaussian model registered."""


def env() -> dict[str, str]:
    """The environment of a subprocess: repository root on ``PYTHONPATH``, one thread per library."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }


def trainer_command(
    config: Path, bootstrap: str, topic: str, out: Path, *extra: str, test_model: bool = True
) -> list[str]:
    """``python -m emulator run ...`` (through :data:`LAUNCH` when ``test_model``)."""
    head = [sys.executable, "-c", LAUNCH] if test_model else [sys.executable, "-m", "emulator"]
    return [
        *head, "run", "--config", str(config), "--bootstrap", bootstrap, "--topic", topic,
        "--out", str(out), "--quiet", "--json", *extra,
    ]  # fmt: skip


def replay(
    bootstrap: str,
    topic: str,
    events: int,
    partitions: int = 3,
    batch_events: int = 1000,
    options: Sequence[str] = (),
    timeout_s: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m stream.replay --source toy`` to ``topic`` and wait for it."""
    command = [
        sys.executable, "-m", "stream.replay", "--bootstrap", bootstrap, "--topic", topic,
        "--source", "toy", "--events", str(events), "--partitions", str(partitions),
        "--batch-events", str(batch_events), "--no-progress",
    ]  # fmt: skip
    for option in options:
        command += ["--option", option]
    result = subprocess.run(
        command, env=env(), cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if result.returncode != 0:
        msg = f"replay failed ({result.returncode}): {result.stderr[-2000:]}"
        raise RuntimeError(msg)
    return result


def run(command: list[str], log: Path, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with stderr to ``log``; raise with the log's tail if it fails."""
    with log.open("w") as err:
        result = subprocess.run(
            command, env=env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True,
            timeout=timeout_s, check=False,
        )  # fmt: skip
    if result.returncode != 0:
        msg = f"{command[:4]} failed ({result.returncode}): {log.read_text()[-3000:]}"
        raise RuntimeError(msg)
    return result


GAUSSIAN_CONFIG = """
seed = 1
device = "cpu"
[buffer]
size = {size}
batch_size = 100
n_iter = {n_iter}
[model]
kind = "test-gaussian"
[snapshot]
every_buffers = {every}
store_events = false
record_trained_ids = true
"""


def write_gaussian_config(path: Path, size: int = 1700, n_iter: int = 1, every: int = 1) -> Path:
    """Write a trainer config for the fast ``test-gaussian`` model that records trained ids."""
    path.write_text(GAUSSIAN_CONFIG.format(size=size, n_iter=n_iter, every=every))
    return path


def manifest_or_empty(out: Path) -> dict[str, Any]:
    """The snapshot manifest in ``out``, or ``{}`` before the first (or during a write)."""
    import json

    try:
        return dict(json.loads((out / "manifest.json").read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def position_skips(manifest: dict[str, Any]) -> list[int]:
    """The ``skip`` of every partition in a manifest's stream position."""
    position = manifest.get("position") or {}
    return [int(s) for parts in position.get("skip", {}).values() for s in parts.values()]


def read_trained_ids(out: Path) -> Any:
    """All ``event_id`` values of ``out/trained_ids/part-*.parquet`` (uint64 array, unsorted)."""
    import numpy as np
    import pyarrow.parquet as pq

    parts = sorted((out / "trained_ids").glob("part-*.parquet"))
    if not parts:
        return np.empty(0, np.uint64)
    return np.concatenate([pq.read_table(p).column("event_id").to_numpy() for p in parts])


def topic_ids(bootstrap: str, topic: str, expected: int, timeout_s: float = 60) -> Any:
    """Every event id on ``topic`` (read independently of the trainer), as a uint64 array."""
    import numpy as np

    from stream.kafka.transport import KafkaTransport

    ids: list[Any] = []
    got = 0
    with KafkaTransport(bootstrap, topic, idle_timeout_s=2.0, poll_max_records=500) as transport:
        import time

        deadline = time.monotonic() + timeout_s
        while got < expected and not transport.exhausted and time.monotonic() < deadline:
            for message in transport.poll(0.5):
                ids.append(message.batch.column("event_id").to_numpy())
                got += message.batch.num_rows
    return np.concatenate(ids) if ids else np.empty(0, np.uint64)
