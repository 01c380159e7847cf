"""Snapshots: a directory with ``manifest.json`` and ``weights.safetensors``.

Written atomically: everything goes to a temporary sibling directory which is then renamed
into place (the previous snapshot is moved aside first and removed after), so a crash
never leaves a half snapshot. Loading never executes code: weights are safetensors, the
manifest is JSON.

Manifest keys: ``format`` (int), ``model_kind``, ``hyperparameters``, ``training_state``,
``config`` (the run configuration), ``events_seen``, ``events_trained``,
``events_dropped``, ``bad_messages`` (reason → count), ``offsets`` (topic → partition →
next offset), ``position`` (full :class:`stream.transport.StreamPosition` JSON),
``trigger`` (per-path counters), ``storage`` (bytes of stored events vs snapshot),
``versions`` (library versions), ``time`` (ISO 8601, UTC), ``stored_events`` (file name of
the prescaled events beside the snapshot, or null).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from emulator.errors import SnapshotError
from models.protocol import OnlineModel
from models.registry import build_model

__all__ = ["MANIFEST", "WEIGHTS", "Snapshot", "library_versions", "load_snapshot", "write_snapshot"]

MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
FORMAT = 1


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the numbers in a snapshot."""
    import numpy
    import pyarrow

    versions = {"torch": torch.__version__, "numpy": numpy.__version__, "pyarrow": pyarrow.__version__}
    try:
        from importlib.metadata import version

        versions["trigger-emulator"] = version("trigger-emulator")
    except Exception:  # noqa: BLE001 - not installed as a distribution (source checkout)
        versions["trigger-emulator"] = "source"
    return versions


def write_snapshot(directory: str | Path, model: OnlineModel, manifest: Mapping[str, Any]) -> Path:
    """Write ``model`` and ``manifest`` atomically to ``directory``.

    Files already in ``directory`` that are not part of a snapshot (e.g. the stored events
    Parquet written by the trainer) are kept.

    Args:
        directory: the snapshot directory (created or replaced).
        model: the model whose tensors and state are saved.
        manifest: run information (events seen, offsets, ...); model fields are added.

    Returns:
        The snapshot directory.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{time.monotonic_ns()}"
    tmp.mkdir()
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_tensors().items()}
    save_file(tensors, str(tmp / WEIGHTS))
    full = {
        "format": FORMAT,
        "model_kind": model.kind,
        "hyperparameters": model.hyperparameters(),
        "training_state": model.training_state(),
        "versions": library_versions(),
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        **manifest,
    }
    with open(tmp / MANIFEST, "w") as fh:
        json.dump(full, fh, indent=2, sort_keys=True, default=_json_default)
        fh.flush()
        os.fsync(fh.fileno())
    if target.exists():
        # Carry over non-snapshot files (stored events etc.).
        for item in target.iterdir():
            if item.name not in (MANIFEST, WEIGHTS) and not (tmp / item.name).exists():
                os.replace(item, tmp / item.name)
        old = target.parent / f".{target.name}.old-{os.getpid()}-{time.monotonic_ns()}"
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
    return target


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    msg = f"manifest value {value!r} of type {type(value).__name__} is not JSON-serialisable"
    raise TypeError(msg)


@dataclass
class Snapshot:
    """A loaded snapshot.

    Attributes:
        path: the snapshot directory.
        manifest: the parsed ``manifest.json``.
        model: the rebuilt model with its weights loaded (on CPU).
    """

    path: Path
    manifest: dict[str, Any]
    model: OnlineModel

    @property
    def stored_events_path(self) -> Path | None:
        """The Parquet file of events a classical trigger would have stored, if written."""
        name = self.manifest.get("stored_events")
        return self.path / name if name else None


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """Read and check ``manifest.json`` of a snapshot directory.

    Raises:
        SnapshotError: missing directory or file, invalid JSON, missing keys.
    """
    path = Path(directory)
    if not path.is_dir():
        msg = f"snapshot directory {str(path)!r} does not exist"
        raise SnapshotError(msg)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        msg = f"snapshot {str(path)!r} has no {MANIFEST} (found: {sorted(p.name for p in path.iterdir())})"
        raise SnapshotError(msg)
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as err:
        msg = f"snapshot manifest {str(manifest_path)!r} is not valid JSON: {err}"
        raise SnapshotError(msg) from err
    for key in ("model_kind", "hyperparameters", "training_state"):
        if key not in manifest:
            msg = f"snapshot manifest {str(manifest_path)!r} lacks key {key!r}"
            raise SnapshotError(msg)
    return manifest


def load_snapshot(directory: str | Path, device: str | torch.device = "cpu") -> Snapshot:
    """Load a snapshot without executing code (JSON + safetensors).

    Raises:
        SnapshotError: missing or corrupt parts, naming the path.
    """
    path = Path(directory)
    manifest = read_manifest(path)
    weights = path / WEIGHTS
    if not weights.is_file():
        msg = f"snapshot {str(path)!r} has no {WEIGHTS}"
        raise SnapshotError(msg)
    try:
        tensors = load_file(str(weights), device=str(device))
    except Exception as err:  # noqa: BLE001 - safetensors raises several types for corrupt files
        msg = f"snapshot weights {str(weights)!r} are corrupt: {err}"
        raise SnapshotError(msg) from err
    model = build_model(manifest["model_kind"], manifest["hyperparameters"])
    model.to(device)
    try:
        model.load_state(tensors, manifest["training_state"])
    except (KeyError, RuntimeError, ValueError) as err:
        msg = f"snapshot {str(path)!r} does not fit model {manifest['model_kind']!r}: {err}"
        raise SnapshotError(msg) from err
    return Snapshot(path, manifest, model)
