"""Wire a run together: config → transport → model → trainer (library entry of the CLI)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from emulator.config import RunConfig
from emulator.errors import SnapshotError
from emulator.lock import exclusive_run
from emulator.manifest import data_identity
from emulator.snapshot import MANIFEST, load_snapshot, read_manifest
from emulator.trainer import RunSummary, Trainer
from models.protocol import OnlineModel
from models.registry import build_model
from stream.transport import Transport

__all__ = [
    "build_transport", "config_differences", "model_hyperparameters", "resolve_device", "run_training",
    "source_options", "stream_identity",
]

log = logging.getLogger(__name__)

_SEEDED_SOURCES = ("toy", "showers", "dijet")


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def model_hyperparameters(config: RunConfig) -> dict[str, Any]:
    """The model's constructor arguments, with the run seed as default seed."""
    params = dict(config.model.hyperparameters)
    params.setdefault("seed", config.seed)
    return params


def source_options(config: RunConfig) -> dict[str, dict[str, Any]]:
    """Per-kind source options with the run seed filled in for seeded generators."""
    kind = config.source.spec.partition(":")[0]
    options = {name: dict(table) for name, table in config.source_options.items()}
    if kind in _SEEDED_SOURCES:
        options.setdefault(kind, {}).setdefault("seed", config.seed)
    return options


def stream_identity(config: RunConfig) -> dict[str, Any]:
    """The data stream this run reads (:func:`emulator.manifest.data_identity`).

    Generators are named by kind, resolved seed and options; files by their spec and
    absolute path; Kafka by topic and bootstrap.
    """
    if config.kafka.bootstrap:
        return data_identity(f"kafka:{config.kafka.topic}", None, {"bootstrap": config.kafka.bootstrap})
    kind, _, argument = config.source.spec.partition(":")
    options = source_options(config).get(kind, {})
    seed = options.get("seed") if kind in _SEEDED_SOURCES else None
    if argument and kind not in _SEEDED_SOURCES:
        options = {**options, "path": str(Path(argument.split(":")[0]).resolve())}
    return data_identity(config.source.spec, seed, {k: v for k, v in options.items() if k != "seed"})


_RESUME_IGNORED = {("source", "events"), ("device",), ("threads",)}
"""Config keys a resumed run may change: how many events in all, where and on how many threads to train."""


def config_differences(old: dict[str, Any], new: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[str]:
    """Dotted keys whose values differ between two config JSONs (resume-safe keys excepted).

    Example:
        >>> config_differences({"buffer": {"size": 1}}, {"buffer": {"size": 2}})
        ['buffer.size']
    """
    keys = sorted(set(old) | set(new))
    differences = []
    for key in keys:
        path = (*prefix, key)
        if path in _RESUME_IGNORED:
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            differences += config_differences(a, b, path)
        elif a != b:
            differences.append(".".join(path))
    return differences


def build_transport(config: RunConfig) -> Transport:
    """The embedded transport over ``source.spec``, or Kafka when a bootstrap is set."""
    if config.kafka.bootstrap:
        from stream.kafka.transport import KafkaTransport

        k = config.kafka
        return KafkaTransport(
            k.bootstrap, k.topic, schema=None, group_id=k.group_id or None, security=dict(k.security),
            dead_letter_topic=k.dead_letter_topic or None,
        )
    from stream.embedded import EmbeddedTransport
    from stream.sources import open_source

    source = open_source(config.source.spec, source_options(config))
    return EmbeddedTransport(source, max_events=config.source.events)


def run_training(
    config: RunConfig, out: str | Path, *, fresh: bool = False, progress: bool = True, until_idle_s: float | None = None
) -> RunSummary:
    """Train online from the configured stream and leave a snapshot in ``out``.

    Resumes from ``out`` when it holds a snapshot (unless ``fresh``).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        msg = f"--out {str(out)!r} is a file, not a snapshot directory; choose another path"
        raise SnapshotError(msg)
    with exclusive_run(out):
        device = resolve_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        resume = (out / MANIFEST).exists() and not fresh
        model: OnlineModel
        if resume:
            manifest = read_manifest(out)
            saved = manifest.get("config")
            if isinstance(saved, dict):
                differences = config_differences(saved, json.loads(json.dumps(config.to_json())))
                if differences:
                    msg = (
                        f"{out} holds a snapshot of a run with another configuration (differs in: "
                        f"{', '.join(differences)}); resume it with its own configuration, or add --fresh to start over"
                    )
                    raise SnapshotError(msg)
            model = load_snapshot(out, device=device).model
        else:
            if fresh and out.exists():
                import shutil

                shutil.rmtree(out)
            model = build_model(config.model.kind, model_hyperparameters(config)).to(device)
        transport = build_transport(config)
        try:
            trainer = Trainer(config, transport, model, out, resume=resume, progress=progress, until_idle_s=until_idle_s,
                              data_identity=stream_identity(config))
            return trainer.run()
        finally:
            transport.close()
