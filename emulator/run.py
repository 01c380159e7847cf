"""Wire a run together: config → transport → model → trainer (library entry of the CLI)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from emulator.config import RunConfig
from emulator.snapshot import MANIFEST, load_snapshot, read_manifest
from emulator.trainer import RunSummary, Trainer
from models.protocol import OnlineModel
from models.registry import build_model
from stream.transport import Transport

__all__ = ["build_transport", "model_hyperparameters", "resolve_device", "run_training"]

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

    kind = config.source.spec.partition(":")[0]
    options = {name: dict(table) for name, table in config.source_options.items()}
    if kind in _SEEDED_SOURCES:
        options.setdefault(kind, {}).setdefault("seed", config.seed)
    source = open_source(config.source.spec, options)
    return EmbeddedTransport(source, max_events=config.source.events)


def run_training(
    config: RunConfig, out: str | Path, *, fresh: bool = False, progress: bool = True, until_idle_s: float | None = None
) -> RunSummary:
    """Train online from the configured stream and leave a snapshot in ``out``.

    Resumes from ``out`` when it holds a snapshot (unless ``fresh``).
    """
    out = Path(out)
    device = resolve_device(config.device)
    resume = (out / MANIFEST).exists() and not fresh
    model: OnlineModel
    if resume:
        manifest = read_manifest(out)
        if manifest.get("config", {}).get("model") != config.to_json()["model"] and "config" in manifest:
            log.warning("resuming %s with a model section that differs from the snapshot's; the snapshot's is used", out)
        model = load_snapshot(out, device=device).model
    else:
        if fresh and out.exists():
            import shutil

            shutil.rmtree(out)
        model = build_model(config.model.kind, model_hyperparameters(config)).to(device)
    transport = build_transport(config)
    try:
        trainer = Trainer(config, transport, model, out, resume=resume, progress=progress, until_idle_s=until_idle_s)
        return trainer.run()
    finally:
        transport.close()
