"""A second run into the same snapshot directory is refused while the first holds it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emulator.errors import SnapshotError
from emulator.lock import exclusive_run, lock_path
from emulator.run import run_training
from tests.emulator.test_trainer import _config


def test_a_second_run_is_refused_and_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "snapshot"
    run_training(_config(3000), out, progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in out.rglob("*")}
    # another process holds the lock (a real process: flock is per open file)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom emulator.lock import exclusive_run\n"
         f"with exclusive_run({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SnapshotError, match=rf"another run \(pid {holder.pid}\) is writing to"):
            run_training(_config(6000), out, progress=False)
        with pytest.raises(SnapshotError, match="another run"):
            run_training(_config(6000), out, progress=False, fresh=True)  # --fresh must not delete it either
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    assert {p.name: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    # the dead holder left no stale lock: the run resumes
    summary = run_training(_config(6000), out, progress=False)
    assert summary.events_trained == 6000


def test_the_lock_lies_beside_the_directory_and_is_released(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with exclusive_run(out):
        assert lock_path(out) == tmp_path / ".run.lock"
        assert lock_path(out).read_text().strip().isdigit()
    with exclusive_run(out):  # released on exit
        pass
