"""Fuzz through the trainer: over 10 000 malformed messages mixed into a valid stream.

The trainer process must train every valid event exactly once and its snapshot manifest
must count every bad message under its reason, exactly (``bad_messages``).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from stream.codec import Headers
from tests.integration import read_trained_ids, run, trainer_command
from tests.stream.kafka_helpers import new_topic, produce_raw
from tests.stream.malformed import BUILDERS, interleave

pytestmark = pytest.mark.kafka

N_BAD = 10_200
N_VALID = 120
PER_VALID = 25

CONFIG = """
seed = 3
device = "cpu"
[buffer]
size = 700
batch_size = 100
n_iter = 1
[model]
kind = "test-gaussian"
[model.hyperparameters]
columns = ["f0", "f3"]
[snapshot]
store_events = false
record_trained_ids = true
"""


def _mixed_stream(seed: int) -> tuple[list[tuple[bytes, Headers]], Counter[str], list[int]]:
    rng = np.random.default_rng(seed)
    # the first message is valid (the trainer learns the topic schema from it); a bad
    # tail after the last valid one must be counted too
    valid_at = {0} | set(
        (rng.choice(N_BAD + N_VALID - 200, N_VALID - 1, replace=False) + 1).tolist()
    )
    while len(valid_at) < N_VALID:
        valid_at.add(int(rng.integers(1, N_BAD)))
    return interleave(rng, valid_at, N_BAD, PER_VALID, seed)


def test_trainer_trains_every_valid_event_and_counts_every_bad_message(
    kafka_broker: str, tmp_path: Path
) -> None:
    topic = new_topic(kafka_broker, partitions=1, prefix="fuzz-train")
    stream, expected, ids = _mixed_stream(seed=11)
    assert sum(expected.values()) >= 10_000
    assert set(expected) == set(BUILDERS)
    produce_raw(kafka_broker, topic, stream, partitions=1)
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    out = tmp_path / "run"
    result = run(
        trainer_command(config, kafka_broker, topic, out, "--until-idle", "3"),
        tmp_path / "trainer.log",
        timeout_s=240,
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["events_seen"] == len(ids)
    assert manifest["events_trained"] == len(ids)
    assert manifest["bad_messages"] == dict(expected)
    assert summary["bad_messages"] == dict(expected)
    trained = read_trained_ids(out)
    np.testing.assert_array_equal(np.sort(trained), np.asarray(ids, np.uint64))
