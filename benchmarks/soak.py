"""Soak test of exactly-once resume: kill -9 the trainer many times, count lost and repeated events.

Starts a tansu broker (unless ``--bootstrap``), replays toy events onto a topic with
several partitions, and runs ``python -m emulator run`` (tiny ``test-gaussian`` model,
trained ids recorded) over Kafka. The trainer is killed with SIGKILL ``--kills`` times at
seeded random moments, each time after its snapshot moved on, and restarted with the same
command; it resumes from its snapshot. At the end the trained ids (union of the
``trained_ids`` parts) are compared with the produced ids.

Prints one line per kill, then ``kills``, ``lost`` and ``duplicated``, and a last JSON line.

Example:
    python benchmarks/soak.py --kills 20 --events 300000
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, benchmarks/ comes first on sys.path, where benchmarks/stream.py would
# shadow the stream package: put the repository root first instead.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]

from stream.kafka.local_broker import LocalBroker  # noqa: E402
from tests.integration import (  # noqa: E402 - the trainer runs the tests' fast Gaussian model
    env,
    manifest_or_empty,
    position_skips,
    read_trained_ids,
    trainer_command,
    write_gaussian_config,
)


def _start_tansu() -> tuple[LocalBroker, str]:
    broker = LocalBroker()
    broker.start()
    return broker, broker.bootstrap


def soak(
    bootstrap: str, events: int, kills: int, seed: int, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Replay, kill and restart the trainer; returns the counts."""
    import numpy as np

    topic = f"soak-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [sys.executable, "-m", "stream.replay", "--bootstrap", bootstrap, "--topic", topic, "--source", "toy",
         "--events", str(events), "--partitions", str(args.partitions), "--batch-events", str(args.batch_events),
         "--no-progress"],
        env=env(), cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    config = write_gaussian_config(work / "run.toml", size=args.buffer, n_iter=args.n_iter, every=args.every)
    out = work / "run"
    command = trainer_command(config, bootstrap, topic, out, "--events", str(events))
    rng = np.random.default_rng(seed)
    log = (work / "trainer.log").open("a")
    done = 0
    begin = time.monotonic()
    while done < kills:
        before = manifest_or_empty(out).get("events_trained", -1)
        proc = subprocess.Popen(
            command, env=env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log
        )
        if done % 4 == 0:
            time.sleep(float(rng.uniform(0.3, 3.0)))  # any moment, also during start-up
        else:
            while proc.poll() is None and manifest_or_empty(out).get("events_trained", -1) == before:
                time.sleep(0.02)
            time.sleep(float(rng.uniform(0.0, 0.5)))
        if proc.poll() is not None:
            print(f"trainer finished before kill {done + 1}", flush=True)
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        done += 1
        manifest = manifest_or_empty(out)
        print(
            f"kill {done:2d}: snapshot events_trained={manifest.get('events_trained', 0):>8} "
            f"skip={sum(position_skips(manifest))} at {time.monotonic() - begin:6.1f} s",
            flush=True,
        )
    final = subprocess.run(
        command, env=env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, check=False
    )
    log.close()
    if final.returncode != 0:
        msg = f"final trainer run failed ({final.returncode}); see {work / 'trainer.log'}"
        raise RuntimeError(msg)
    ids = read_trained_ids(out)
    values, counts = np.unique(ids, return_counts=True)
    expected = np.arange(events, dtype=np.uint64)  # the toy source numbers events from 0
    lost = int(len(np.setdiff1d(expected, values)))
    duplicated = int((counts - 1).sum())
    manifest = manifest_or_empty(out)
    return {
        "kills": done,
        "events": events,
        "trained_ids": int(len(ids)),
        "lost": lost,
        "duplicated": duplicated,
        "unexpected": int(len(np.setdiff1d(values, expected))),
        "events_trained": int(manifest.get("events_trained", 0)),
        "seconds": round(time.monotonic() - begin, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the soak, print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", help="use this broker instead of starting tansu")
    parser.add_argument(
        "--events", type=int, default=300_000, help="events replayed (default 300 000)"
    )
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--partitions", type=int, default=3, help="topic partitions (default 3)")
    parser.add_argument(
        "--batch-events", type=int, default=1000, help="events per message (default 1000)"
    )
    parser.add_argument(
        "--buffer", type=int, default=1700, help="trainer buffer size (default 1700)"
    )
    parser.add_argument(
        "--n-iter", type=int, default=20,
        help="passes per buffer (default 20: a run long enough for every kill, even on idle cores)",
    )
    parser.add_argument("--every", type=int, default=2, help="snapshot every N buffers (default 2)")
    args = parser.parse_args(argv)
    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        broker, bootstrap = _start_tansu()
    try:
        with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
            result = soak(bootstrap, args.events, args.kills, args.seed, Path(tmp), args)
    finally:
        if broker is not None:
            broker.stop()
    print(
        f"kills {result['kills']}  lost {result['lost']}  duplicated {result['duplicated']}  "
        f"(events {result['events']:,}, trained ids {result['trained_ids']:,}, {result['seconds']} s)"
    )
    print(json.dumps(result))
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
