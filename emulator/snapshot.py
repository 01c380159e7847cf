"""Snapshots: a directory with ``manifest.json`` and a weights file (safetensors).

The manifest is the commit point: weights go to a new file ``weights-<seq>.safetensors``
(written to a temporary name, flushed, renamed), then the manifest naming that file is
written to ``manifest.json.tmp`` and atomically renamed over ``manifest.json``; only then
are older weight files removed. A crash at any moment leaves the previous or the new
snapshot complete, never a half one, and the directory itself never disappears. Files the
trainer writes beside the snapshot (stored events, trained ids) are tagged with the buffer
index they belong to, so a resumed run drops parts newer than its manifest. Loading never
executes code: weights are safetensors, the manifest is JSON.

Manifest keys: ``format`` (int), ``model_kind``, ``hyperparameters``, ``training_state``,
``weights`` (file name), ``config`` (the run configuration), ``events_seen``,
``events_trained``, ``events_dropped``, ``bad_messages`` (reason → count), ``offsets``
(topic → partition → next offset), ``position`` (full
:class:`stream.transport.StreamPosition` JSON), ``trigger`` (per-path counters),
``storage`` (bytes of stored events vs snapshot), ``versions`` (library versions),
``time`` (ISO 8601, UTC), ``stored_events`` (directory of the prescaled events' Parquet
parts beside the snapshot, or null).
"""

from __future__ import annotations

import json
import os
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

__all__ = ["MANIFEST", "WEIGHTS", "Snapshot", "library_versions", "load_snapshot", "read_manifest", "write_snapshot"]

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


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_snapshot(directory: str | Path, model: OnlineModel, manifest: Mapping[str, Any]) -> Path:
    """Write ``model`` and ``manifest`` atomically to ``directory``.

    Other files in ``directory`` (stored events, trained ids) are left alone.

    Args:
        directory: the snapshot directory (created if needed).
        model: the model whose tensors and state are saved.
        manifest: run information (events seen, offsets, ...); model fields are added.

    Returns:
        The snapshot directory.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    stamp = f"{int(time.time() * 1000):013d}-{os.getpid()}-{time.monotonic_ns() % 10**9:09d}"
    weights_name = f"weights-{stamp}.safetensors"
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_tensors().items()}
    tmp_weights = target / f".{weights_name}.tmp"
    save_file(tensors, str(tmp_weights))
    with open(tmp_weights, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp_weights, target / weights_name)
    full = {
        "format": FORMAT,
        "model_kind": model.kind,
        "hyperparameters": model.hyperparameters(),
        "training_state": model.training_state(),
        "versions": library_versions(),
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        **manifest,
        "weights": weights_name,
    }
    tmp_manifest = target / f".{MANIFEST}.tmp"
    with open(tmp_manifest, "w") as fh:
        json.dump(full, fh, indent=2, sort_keys=True, default=_json_default)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp_manifest, target / MANIFEST)
    _fsync_dir(target)
    for old in target.glob("weights*.safetensors"):
        if old.name != weights_name:
            old.unlink(missing_ok=True)
    for stale in target.glob(".weights-*.tmp"):
        stale.unlink(missing_ok=True)
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

    def weights_bytes(self) -> int:
        """Size of the weight file in bytes."""
        return (self.path / str(self.manifest.get("weights", WEIGHTS))).stat().st_size


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
    weights = path / str(manifest.get("weights", WEIGHTS))
    if not weights.is_file():
        msg = f"snapshot {str(path)!r} has no weights file {weights.name!r} (named by its manifest)"
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
