"""The trainer over Kafka as a process: every produced event trained once, even across kill -9.

The replay CLI publishes toy events to a three-partition topic; ``python -m emulator run``
consumes them with the tiny ``test-gaussian`` model and records the ids of the trained
events. The kill test stops the trainer with SIGKILL at seeded random moments and starts
the same command again: it resumes from its snapshot (stream position with the ``skip``
inside a partly consumed message), and the union of trained ids must equal the produced
ids, each exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.integration import (
    ROOT,
    env,
    manifest_or_empty,
    position_skips,
    read_trained_ids,
    replay,
    run,
    topic_ids,
    trainer_command,
    write_gaussian_config,
)
from tests.stream.kafka_helpers import new_topic

pytestmark = pytest.mark.kafka

def test_trainer_consumes_every_event_of_a_partitioned_topic_once(
    kafka_broker: str, tmp_path: Path
) -> None:
    n = 20_000
    topic = new_topic(kafka_broker, prefix="train")
    replay(kafka_broker, topic, n, partitions=3, batch_events=900)
    produced = topic_ids(kafka_broker, topic, n)
    assert len(produced) == n
    out = tmp_path / "run"
    result = run(
        trainer_command(write_gaussian_config(tmp_path / "run.toml"), kafka_broker, topic, out, "--events", str(n)),
        tmp_path / "trainer.log",
        timeout_s=120,
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["events_trained"] == n
    manifest = manifest_or_empty(out)
    assert manifest["events_seen"] == n
    assert manifest["events_trained"] == n
    assert manifest["bad_messages"] == {}
    assert sorted(manifest["offsets"][topic]) == ["0", "1", "2"]  # type: ignore[index]
    ids = read_trained_ids(out)
    np.testing.assert_array_equal(np.sort(ids), np.sort(produced))
    assert len(np.unique(ids)) == n


def kill_and_resume(
    command: list[str], out: Path, log: Path, kills: int, seed: int, timeout_s: float
) -> tuple[int, subprocess.CompletedProcess[str]]:
    """Start ``command``, SIGKILL it ``kills`` times at seeded random moments, then let it finish.

    The first kill comes 0.5–3 s after the start (possibly before any snapshot); later
    ones 0–0.4 s after the snapshot has moved on since the previous kill, so each one
    interrupts a run in progress. Returns the kills done and the last, completed run.
    """
    rng = np.random.default_rng(seed)
    skips: list[int] = []
    deadline = time.monotonic() + timeout_s
    done = 0
    with log.open("a") as err:
        while done < kills:
            before = manifest_or_empty(out).get("events_trained", -1)
            proc = subprocess.Popen(
                command, env=env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err
            )
            try:
                if done == 0:
                    time.sleep(float(rng.uniform(0.5, 3.0)))
                else:
                    while (
                        proc.poll() is None and manifest_or_empty(out).get("events_trained", -1) == before
                    ):
                        if time.monotonic() > deadline:
                            break
                        time.sleep(0.02)
                    time.sleep(float(rng.uniform(0.0, 0.4)))
                if proc.poll() is not None:
                    break  # finished before the kill: nothing left to interrupt
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                done += 1
                skips.extend(position_skips(manifest_or_empty(out)))
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=30)
    remaining = max(10.0, deadline - time.monotonic())
    final = run(command, log.with_suffix(".final.log"), timeout_s=remaining)
    assert any(skips), f"no kill left a snapshot inside a message (skips {skips})"
    return done, final


def test_kill_9_several_times_trains_every_event_exactly_once(
    kafka_broker: str, tmp_path: Path
) -> None:
    n = 60_000
    topic = new_topic(kafka_broker, prefix="kill")
    replay(kafka_broker, topic, n, partitions=3, batch_events=1000)
    produced = topic_ids(kafka_broker, topic, n)
    assert len(produced) == n
    out = tmp_path / "run"
    # buffers of 1 700 events end inside messages of 1 000: positions carry a skip;
    # a snapshot every 2 buffers leaves parts newer than the manifest to clean up.
    # N_iter 25 makes a run last tens of seconds even on idle cores, so the kills land
    # mid-run rather than after the last snapshot.
    command = trainer_command(
        write_gaussian_config(tmp_path / "run.toml", size=1700, n_iter=25, every=2),
        kafka_broker,
        topic,
        out,
        "--events",
        str(n),
    )
    kills, final = kill_and_resume(
        command, out, tmp_path / "trainer.log", kills=4, seed=7, timeout_s=150
    )
    assert kills == 4
    summary = json.loads(final.stdout.strip().splitlines()[-1])
    assert summary["events_seen"] == n
    manifest = manifest_or_empty(out)
    assert manifest["events_trained"] == n
    ids = read_trained_ids(out)
    values, counts = np.unique(ids, return_counts=True)
    assert counts.max() == 1, f"{int((counts > 1).sum())} ids trained more than once"
    np.testing.assert_array_equal(values, np.sort(produced))


def test_until_idle_ends_only_after_every_partition_is_read_and_trained(
    kafka_broker: str, tmp_path: Path
) -> None:
    """A backlog larger than a buffer, garbage interleaved, a trainer slower than the backlog.

    ``--until-idle`` is much shorter than the time to train the backlog, so the filling
    side spends most of the run blocked on a full buffer; that time is not idle, and the
    stream ends only once all four partitions are read to their ends. Every event is
    trained once and every malformed message is counted.
    """
    from tests.stream.kafka_helpers import produce_raw

    n, partitions, garbage = 40_000, 4, 101
    topic = new_topic(kafka_broker, prefix="idle")
    replay(kafka_broker, topic, n, partitions=partitions, batch_events=500)
    rng = np.random.default_rng(5)
    produce_raw(kafka_broker, topic, ((rng.bytes(64), []) for _ in range(garbage)), partitions)
    produced = topic_ids(kafka_broker, topic, n)
    assert len(produced) == n
    out = tmp_path / "run"
    config = write_gaussian_config(tmp_path / "run.toml", size=4000, n_iter=300)
    started = time.monotonic()
    result = run(trainer_command(config, kafka_broker, topic, out, "--until-idle", "3"), tmp_path / "trainer.log",
                 timeout_s=300)
    elapsed = time.monotonic() - started
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["end_reason"] == "idle"
    assert summary["blocked_s"] > 3  # it was blocked longer than the idle limit, and went on
    assert elapsed > 6
    assert summary["events_seen"] == n
    assert summary["events_trained"] == n
    assert sum(summary["bad_messages"].values()) == garbage
    manifest = manifest_or_empty(out)
    assert sorted(manifest["offsets"][topic]) == [str(p) for p in range(partitions)]
    ids = read_trained_ids(out)
    np.testing.assert_array_equal(np.sort(ids), np.sort(produced))
