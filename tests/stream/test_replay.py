"""Replay CLI end to end (file and broker), plus its parts: rate limit, re-batching, options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stream.generators.toy import ToySpectrumConfig, ToySpectrumSource
from stream.kafka.producer import topic_partitions
from stream.kafka.transport import KafkaTransport
from stream.options import load_options, parse_option_strings
from stream.rate import TokenBucket
from stream.rebatch import rebatch
from stream.replay import main, replay_batches
from tests.stream.kafka_helpers import drain, ids_of, new_topic


def _toy_ids_and_mass(n: int, seed: int) -> tuple[list[int], np.ndarray]:
    batches = list(ToySpectrumSource(ToySpectrumConfig(n_events=n, seed=seed)).batches())
    return list(range(n)), np.concatenate([b.column("mass").to_numpy() for b in batches])


def test_replay_to_parquet_writes_the_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "toy.parquet"
    assert (
        main(
            [
                "--source",
                "toy",
                "--events",
                "50000",
                "--out",
                str(out),
                "--option",
                "toy.seed=3",
                "--no-progress",
            ]
        )
        == 0
    )
    table = pq.read_table(out)
    ids, mass = _toy_ids_and_mass(50_000, seed=3)
    assert table.column("event_id").to_pylist() == ids
    np.testing.assert_array_equal(table.column("mass").to_numpy(), mass)
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("events=50000 messages=3 bytes=")


def test_replay_config_file_and_option_override(tmp_path: Path) -> None:
    config = tmp_path / "opts.toml"
    config.write_text('seed = 99\n[toy]\nseed = 1\nsignal_fraction = 0.5\n[run]\nname = "x"\n')
    assert load_options(config, ["toy.seed=4"]) == {
        "toy": {"seed": 4, "signal_fraction": 0.5},
        "run": {"name": "x"},
    }
    out = tmp_path / "t.parquet"
    assert (
        main(
            [
                "--source",
                "toy",
                "--events",
                "1000",
                "--out",
                str(out),
                "--config",
                str(config),
                "--no-progress",
            ]
        )
        == 0
    )
    assert pq.read_table(out).column("is_signal").to_numpy().mean() > 0.3
    assert (
        main(["--source", "toy", "--out", str(out), "--option", "toy.nope=1", "--no-progress"]) == 1
    )
    with pytest.raises(ValueError, match="KIND.KEY=VALUE"):
        parse_option_strings(["seed=3"])


def test_loops_shift_event_ids_and_cap_events() -> None:
    source = ToySpectrumSource(ToySpectrumConfig(n_events=30, batch_size=8, seed=0))
    batches = list(replay_batches(source, events=70, loop=3, batch_events=20))
    ids = np.concatenate([b.column("event_id").to_numpy() for b in batches])
    assert ids.tolist() == list(range(70))
    assert [b.num_rows for b in batches] == [20, 10, 20, 10, 10]
    mass = np.concatenate([b.column("mass").to_numpy() for b in batches])
    np.testing.assert_array_equal(mass[30:60], mass[:30])  # the same events again
    endless = replay_batches(source, events=95, loop=0, batch_events=30)
    assert sum(b.num_rows for b in endless) == 95


def test_rebatch_caps_bytes() -> None:
    batch = pa.record_batch({"x": np.arange(1000, dtype=np.float64)})  # 8 bytes per row
    sizes = [b.num_rows for b in rebatch([batch], max_events=500, max_bytes=800)]
    assert sizes == [100] * 10
    with pytest.raises(ValueError, match="max_events"):
        list(rebatch([batch], max_events=0))


def test_token_bucket_paces_events() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(rate=10_000, burst=10_000, clock=lambda: now[0], sleep=sleep)
    for _ in range(10):
        bucket.acquire(5_000)
    assert now[0] == pytest.approx(4.0)  # 50 000 events at 10 000/s with a 10 000 burst
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0)


def test_help_has_an_example() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stream.replay", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "python -m stream.replay --bootstrap" in result.stdout
    assert "--rate" in result.stdout


@pytest.mark.kafka
def test_replay_cli_to_broker_end_to_end(kafka_broker: str) -> None:
    topic = new_topic(kafka_broker, prefix="replay")
    cmd = [
        sys.executable, "-m", "stream.replay", "--bootstrap", kafka_broker, "--topic", topic, "--source", "toy",
        "--events", "100000", "--partitions", "3", "--batch-events", "7000", "--rate", "50000",
        "--option", "toy.seed=8", "--loop", "2",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    fields = dict(item.split("=") for item in summary.split())
    assert fields["events"] == "100000"
    assert fields["messages"] == str(-(-100_000 // 7000))
    assert float(fields["seconds"]) >= 0.9  # 100 000 events at 50 000/s, a 50 000 burst free
    assert "ev" in result.stderr  # tqdm bar
    assert topic_partitions(kafka_broker, topic) == 3
    with KafkaTransport(kafka_broker, topic, idle_timeout_s=1.5) as transport:
        messages = drain(transport, 100_000)
        assert sorted(ids_of(messages)) == list(range(100_000))
        assert {m.partition for m in messages} == {0, 1, 2}
        assert transport.schema.names == ["event_id", "mass", "is_signal"]
        assert transport.counters == {}


@pytest.mark.kafka
def test_replay_key_modes(kafka_broker: str) -> None:
    topic = new_topic(kafka_broker, partitions=2, prefix="keys")
    assert main(["--bootstrap", kafka_broker, "--topic", topic, "--source", "toy", "--events", "4000",
                 "--batch-events", "1000", "--key", "fixed:run-7", "--no-progress"]) == 0  # fmt: skip
    with KafkaTransport(kafka_broker, topic, idle_timeout_s=1.0) as transport:
        messages = drain(transport, 4000)
        assert len({m.partition for m in messages}) == 1  # one key, one partition
    assert (
        main(
            [
                "--bootstrap",
                kafka_broker,
                "--topic",
                topic,
                "--source",
                "toy",
                "--key",
                "bogus",
                "--no-progress",
            ]
        )
        == 1
    )


def test_parquet_corrupted_in_the_middle_is_an_error_not_a_silent_replay(tmp_path: Path) -> None:
    """Parts are written with page checksums; a flipped byte in a data page stops the replay."""
    from stream.replay import main

    good = tmp_path / "good.parquet"
    assert main(["--source", "toy", "--events", "200000", "--out", str(good), "--no-progress",
                 "--batch-events", "20000"]) == 0
    data = bytearray(good.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # zero a stretch inside a data page
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(bytes(data))
    assert main(["--source", f"parquet:{bad}", "--out", str(tmp_path / "copy.parquet"), "--no-progress"]) == 1
    assert main(["--source", f"parquet:{good}", "--out", str(tmp_path / "copy2.parquet"), "--no-progress"]) == 0
