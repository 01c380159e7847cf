"""docker-compose.yml: structure, and each service's command run against the test broker.

There is no Docker engine here: the file is parsed, and the commands of the services that
run project code are executed with their environment, the broker address replaced by the
tansu broker of the test session (the Kafka service itself is Apache Kafka's image).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.kafka.producer import topic_partitions
from stream.kafka.transport import KafkaTransport
from tests.stream.kafka_helpers import drain, new_topic

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _command(
    service: dict[str, Any], bootstrap: str, replace: dict[str, str] | None = None
) -> list[str]:
    args = shlex.split(service["command"])
    args = [bootstrap if a == "kafka:9092" else a for a in args]
    for flag, value in (replace or {}).items():
        args[args.index(flag) + 1] = value
    assert args[:2] == ["python", "-m"]
    return [sys.executable, *args[1:]]


def _env(service: dict[str, Any], bootstrap: str) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in (service.get("environment") or {}).items():
        env[key] = bootstrap if value == "kafka:9092" else str(value)
    return env


def test_compose_structure() -> None:
    services = _compose()["services"]
    assert {"kafka", "topics", "replay", "trainer", "trainer-gpu"} <= set(services)
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert "healthcheck" in kafka
    for name in ("topics", "replay", "trainer", "trainer-gpu"):
        assert services[name]["depends_on"]["kafka"]["condition"] == "service_healthy", name
        build = services[name]["build"]
        assert (build if isinstance(build, str) else build["context"]) == "."
    for name in ("replay", "trainer", "trainer-gpu"):
        assert (
            services[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
        )
    assert "./snapshots:/snapshots" in services["trainer"]["volumes"]
    assert "--out /snapshots/" in services["trainer"]["command"]
    gpu = services["trainer-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "/whl/cu" in gpu["build"]["args"]["TORCH_INDEX"]  # a CUDA build of torch for the GPU image
    assert "python -m emulator run" in services["trainer"]["command"]
    assert "--bootstrap kafka:9092" in services["trainer"]["command"]


def test_dockerfile_installs_cpu_torch_then_the_kafka_extra() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in text  # CPU wheels by default
    torch_line = text.index("pip install torch==2.13.0 --index-url ${TORCH_INDEX}")
    assert torch_line < text.index('pip install ".[kafka]"')


@pytest.mark.kafka
def test_topics_and_replay_commands_run_against_a_broker(kafka_broker: str) -> None:
    services = _compose()["services"]
    topics = services["topics"]
    result = subprocess.run(
        _command(topics, kafka_broker),
        env=_env(topics, kafka_broker),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert topic_partitions(kafka_broker, "events") == 3
    assert topic_partitions(kafka_broker, "events-dead-letter") == 1
    replay = services["replay"]
    topic = new_topic(kafka_broker, prefix="compose")
    command = _command(replay, kafka_broker, {"--events": "30000", "--topic": topic})
    result = subprocess.run(
        command,
        env=_env(replay, kafka_broker),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("events=30000 ")
    with KafkaTransport(kafka_broker, topic, idle_timeout_s=1.5) as transport:
        assert sum(m.batch.num_rows for m in drain(transport, 30_000)) == 30_000


@pytest.mark.kafka
@pytest.mark.slow
def test_trainer_command_runs_against_a_broker(kafka_broker: str, tmp_path: Path) -> None:
    trainer = _compose()["services"]["trainer"]
    config = ROOT / "configs" / "bumphunt-quick.toml"
    if not config.exists():
        pytest.skip(f"{config} is not in the tree yet")
    topic = new_topic(kafka_broker, partitions=3, prefix="compose-train")
    replay = _compose()["services"]["replay"]
    subprocess.run(
        _command(replay, kafka_broker, {"--events": "20000", "--topic": topic}),
        env=_env(replay, kafka_broker), check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    command = _command(
        trainer,
        kafka_broker,
        {
            "--topic": topic,
            "--out": str(tmp_path / "run"),
            "--until-idle": "5",
            "--config": str(config),
        },
    )
    result = subprocess.run(
        command,
        env=_env(trainer, kafka_broker),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["events_trained"] == 20_000
    assert manifest["model_kind"] == "onlineflow"
