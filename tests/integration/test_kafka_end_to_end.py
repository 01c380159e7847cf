"""End to end: replay → broker → trainer → ``python -m offline.bumphunt`` finds the bump.

Three processes as in production (``docker compose up``): the replay CLI publishes a toy
spectrum with a narrow bump at m = 1.0, the trainer consumes it over Kafka and leaves a
snapshot, and the offline bump hunt on that snapshot puts its window on the bump.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.integration import replay, run, trainer_command
from tests.stream.kafka_helpers import new_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N_EVENTS = 600_000

CONFIG = """
seed = 0
device = "cpu"
[source]
spec = "toy"
[trigger]
mode = "l1"
[[trigger.hlt]]
name = "HLT_store_all"
cuts = []
prescale = 1
[buffer]
size = 10_000
batch_size = 500
n_iter = 3
[model]
kind = "onlineflow"
[model.hyperparameters]
columns = ["mass"]
log_columns = ["mass"]
noise_dims = 3
n_members = 8
n_blocks = 5
hidden_features = 32
n_hidden_layers = 2
learning_rate = 3e-3
[snapshot]
every_buffers = 10
store_events = true
"""


def test_replay_trainer_and_bumphunt_find_the_bump(kafka_broker: str, tmp_path: Path) -> None:
    topic = new_topic(kafka_broker, prefix="e2e")
    replay(
        kafka_broker, topic, N_EVENTS, partitions=3, batch_events=20_000,
        options=["toy.seed=5", "toy.signal_fraction=0.02", "toy.signal_mean=1.0", "toy.signal_width=0.04"],
    )  # fmt: skip
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    out = tmp_path / "run"
    result = run(
        trainer_command(config, kafka_broker, topic, out, "--until-idle", "10", test_model=False),
        tmp_path / "trainer.log",
        timeout_s=900,
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["events_trained"] == N_EVENTS
    hunt = run(
        [sys.executable, "-m", "offline.bumphunt", str(out), "--json", "--samples", "200000"],
        tmp_path / "bumphunt.log",
        timeout_s=300,
    )
    report = json.loads(hunt.stdout.strip().splitlines()[-1])
    low, high = report["window"]
    assert low <= 1.0 <= high, report["window"]
    assert report["events_trained"] == N_EVENTS
