"""The run part of a snapshot manifest, typed: one reader, one writer.

:func:`emulator.snapshot.write_snapshot` adds the model's part (kind, hyperparameters,
training state, weights file, versions, time); everything about the run and the stream
lives in :class:`RunManifest`, built by the trainer and read back on resume and by the
offline tools.

``data_identity`` says which data the model was trained on, so that shards of one
ensemble are pooled only when they read the same stream: ``source`` (the spec, or
``kafka:TOPIC``), ``seed`` (the generator's resolved seed, or null), ``options`` (the
generator's resolved options) and ``id``, the first 16 hex digits of the SHA-256 of the
canonical JSON of the other three.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["RunManifest", "data_identity"]


def data_identity(source: str, seed: int | None = None, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Identity of a data stream: source spec, resolved seed and options, and their hash.

    Example:
        >>> a = data_identity("toy", 0, {"slope": 1.0})
        >>> a["id"] == data_identity("toy", 0, {"slope": 1.0})["id"] != data_identity("toy", 1, {"slope": 1.0})["id"]
        True
    """
    body = {"source": source, "seed": seed, "options": dict(options or {})}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {**body, "id": digest}


@dataclass
class RunManifest:
    """Run and stream fields of ``manifest.json``.

    Attributes:
        config: the run configuration (:meth:`emulator.config.RunConfig.to_json`).
        source: the source spec, or ``kafka:TOPIC``.
        data_identity: see :func:`data_identity`.
        events_seen, events_trained, events_dropped, events_stored: counts.
        buffers_trained: buffers trained; ``next_buffer_index`` numbers the next one.
        steps: optimiser steps; ``last_loss`` the last buffer's loss.
        bad_messages: reason → count of malformed messages skipped.
        offsets: topic → partition → next offset (a summary of ``position``).
        position: :class:`stream.transport.StreamPosition` JSON of the last trained event.
        trigger: trigger counters at that event.
        stored_events, trained_ids, metrics: side directories beside the snapshot (or null).
    """

    config: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    data_identity: dict[str, Any] = field(default_factory=dict)
    events_seen: int = 0
    events_trained: int = 0
    events_dropped: int = 0
    events_stored: int = 0
    buffers_trained: int = 0
    next_buffer_index: int = 0
    steps: int = 0
    last_loss: float = float("nan")
    bad_messages: dict[str, int] = field(default_factory=dict)
    offsets: dict[str, dict[str, int]] = field(default_factory=dict)
    position: dict[str, Any] = field(default_factory=dict)
    trigger: dict[str, Any] = field(default_factory=dict)
    stored_events: str | None = None
    trained_ids: str | None = None
    metrics: str | None = None

    @classmethod
    def from_mapping(cls, manifest: Mapping[str, Any]) -> RunManifest:
        """The run fields of a parsed manifest (model fields are ignored; missing ones default).

        ``next_buffer_index`` defaults to ``buffers_trained`` (manifests before it existed).
        """
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in manifest.items() if k in known and v is not None}
        run = cls(**values)
        if "next_buffer_index" not in manifest:
            run.next_buffer_index = run.buffers_trained
        for name in ("events_seen", "events_trained", "events_dropped", "events_stored", "buffers_trained",
                     "next_buffer_index", "steps"):
            setattr(run, name, int(getattr(run, name)))
        run.bad_messages = {str(k): int(v) for k, v in run.bad_messages.items()}
        return run

    @classmethod
    def read(cls, directory: str | Path) -> RunManifest:
        """Read the run fields of the snapshot in ``directory``.

        Raises:
            SnapshotError: no snapshot there, or a corrupt manifest (named).
        """
        from emulator.snapshot import read_manifest

        return cls.from_mapping(read_manifest(directory))

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON-ready dictionary."""
        return asdict(self)
