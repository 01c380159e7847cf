"""Scale-out: two trainer processes, one consumer group each, form one ensemble offline.

Both consume every event of the same topic (DESIGN.md, "Transports"), with disjoint member
seeds (``--seed``), and write their own snapshot. ``python -m offline.bumphunt DIR1 DIR2``
pools them (shard merging, :mod:`offline.bumphunt.merge`): the merged ensemble has the
members of both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration import ROOT, env, replay, run, trainer_command
from tests.stream.kafka_helpers import new_topic

pytestmark = pytest.mark.kafka

N_EVENTS = 20_000
N_MEMBERS = 3

CONFIG = f"""
device = "cpu"
[source]
spec = "toy"
[buffer]
size = 5000
batch_size = 500
n_iter = 1
[model]
kind = "onlineflow"
[model.hyperparameters]
columns = ["mass"]
log_columns = ["mass"]
noise_dims = 1
n_members = {N_MEMBERS}
n_blocks = 2
hidden_features = 8
n_hidden_layers = 1
[snapshot]
store_events = true
"""


def test_two_trainers_in_separate_groups_merge_into_one_ensemble(
    kafka_broker: str, tmp_path: Path
) -> None:
    topic = new_topic(kafka_broker, prefix="shards")
    replay(kafka_broker, topic, N_EVENTS, partitions=3, batch_events=2000)
    config = tmp_path / "flow.toml"
    config.write_text(CONFIG)
    outs = [tmp_path / f"shard{i}" for i in (1, 2)]
    procs = []
    for i, out in enumerate(outs, start=1):
        command = trainer_command(
            config, kafka_broker, topic, out, "--group-id", f"shard-{i}", "--seed", str(i),
            "--events", str(N_EVENTS), test_model=False,
        )  # fmt: skip
        log = (tmp_path / f"shard{i}.log").open("w")
        procs.append(
            (
                subprocess.Popen(
                    command, env=env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True
                ),
                log,
            )
        )
    summaries = []
    for proc, log in procs:
        stdout, _ = proc.communicate(timeout=180)
        log.close()
        assert proc.returncode == 0, Path(log.name).read_text()[-3000:]
        summaries.append(json.loads(stdout.strip().splitlines()[-1]))
    assert [s["events_trained"] for s in summaries] == [N_EVENTS, N_EVENTS]
    manifests = [json.loads((out / "manifest.json").read_text()) for out in outs]
    assert [m["hyperparameters"]["seed"] for m in manifests] == [1, 2]
    assert manifests[0]["events_seen"] == manifests[1]["events_seen"] == N_EVENTS
    result = run(
        [
            sys.executable,
            "-m",
            "offline.bumphunt",
            *map(str, outs),
            "--json",
            "--samples",
            "200000",
        ],
        tmp_path / "bumphunt.log",
        timeout_s=180,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["merged_shards"] is True
    assert "groups" not in report
    assert report["n_members"] == 2 * N_MEMBERS
