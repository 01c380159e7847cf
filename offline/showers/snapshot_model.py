"""Shower generators backed by a trained snapshot (BIB-AE, shower flows): one report for all.

:class:`SnapshotGenerator` loads a snapshot with :func:`emulator.snapshot.load_snapshot` (JSON
+ safetensors, no code runs on load) and generates with the model's
:meth:`models.protocol.OnlineModel.sample`, conditioned on the reference showers'
incident energies. Models that generate a window of the grid (the BIB-AE ``small``
preset: the central 10 × 10 cells of all 30 layers) say so with ``sample_shape``; then
:meth:`SnapshotGenerator.reference_geometry` gives the geometry of that window (the same
detector with ``n_x``, ``n_y`` of the window, which the reference simulator reproduces
cell for cell), and file references are cropped to the same central window.

Sampling options are passed as keywords of the model's ``sample`` (BIB-AE: ``mode``
``"normal"`` or ``"kde"``, ``post_process``).

Example:
    ``python -m offline.showers --model bibae --snapshot ~/runs/bibae-small --n 2000 --sampling kde --out report/``
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SnapshotGenerator", "held_out_seed", "reference_seed", "training_seed"]


class SnapshotGenerator:
    """A trained model of a snapshot as a :class:`offline.showers.registry.ShowerGenerator`.

    Args:
        geometry: the detector geometry of the validation (a name or a Geometry).
        snapshot: the snapshot directory.
        kind: the model kind the snapshot must hold (e.g. ``"bibae"``), or None for any.
        device: where to generate (``"cpu"``, ``"cuda"``).
        sample_options: keywords for the model's ``sample`` (e.g. ``mode="kde"``).

    Raises:
        ValueError: no snapshot there, a corrupt one, or one of another kind (named).
    """

    devices: tuple[str, ...] = ("cpu", "cuda")

    def __init__(
        self, geometry: Any, snapshot: str | Path | None = None, kind: str | None = None, device: str = "cpu",
        **sample_options: Any,
    ) -> None:
        if snapshot is None:
            msg = f"model {kind or 'snapshot'!r} needs a trained snapshot: pass --snapshot DIR"
            raise ValueError(msg)
        from emulator.snapshot import load_snapshot

        loaded = load_snapshot(snapshot, device=device)  # SnapshotError is a ValueError
        if kind is not None and loaded.model.kind != kind:
            msg = f"snapshot {str(snapshot)!r} holds a {loaded.model.kind!r} model, not {kind!r}"
            raise ValueError(msg)
        self.model = loaded.model
        self.snapshot = Path(snapshot)
        # The seed of the simulator stream it trained on (None: another source), so the
        # validation can draw its reference from another one.
        self.training_seed = training_seed(loaded.manifest)
        self.kind = loaded.model.kind
        self.device = device
        self.sample_options = {k: v for k, v in sample_options.items() if v is not None}
        suffix = "-".join(f"{k}={v}" for k, v in sorted(self.sample_options.items()))
        self.name = f"{self.kind}{'-' + suffix if suffix else ''}"
        from stream.showers.geometry import get_geometry

        self.geometry = get_geometry(geometry)

    def __repr__(self) -> str:
        return f"SnapshotGenerator(snapshot={str(self.snapshot)!r}, kind={self.kind!r}, options={self.sample_options})"

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """Shape ``(layers, x, y)`` of the generated showers."""
        shape = getattr(self.model, "sample_shape", None)
        return tuple(int(s) for s in shape) if shape is not None else tuple(self.geometry.shape)  # type: ignore[return-value]

    def reference_geometry(self) -> Any:
        """The geometry the reference must have: the validation's, or its central window.

        Raises:
            ValueError: the model's layers differ from the geometry's, or its window is larger.
        """
        layers, n_x, n_y = self.sample_shape
        if (layers, n_x, n_y) == tuple(self.geometry.shape):
            return self.geometry
        if layers != self.geometry.shape[0] or n_x > self.geometry.shape[1] or n_y > self.geometry.shape[2]:
            msg = f"model {self.name!r} generates {self.sample_shape}, which is no window of {self.geometry.name} {self.geometry.shape}"
            raise ValueError(msg)
        return dataclasses.replace(self.geometry, name=f"{self.geometry.name}-central{n_x}x{n_y}", n_x=n_x, n_y=n_y)

    def generate(self, energies_gev: np.ndarray, seed: int, *, first_event: int = 0, device: str = "cpu") -> np.ndarray:
        """Showers ``sample_shape`` float32 MeV for ``energies_gev`` (GeV); seeded per chunk."""
        import torch

        energies = torch.as_tensor(np.asarray(energies_gev, dtype=np.float32))
        out = self.model.sample(
            len(energies), seed=int(seed) * 1_000_003 + int(first_event),
            condition={"incident_energy": energies.to(self.model.device)}, **self.sample_options,
        )
        return out["showers"].detach().cpu().numpy().astype(np.float32, copy=False)


def held_out_seed(manifest: Mapping[str, Any], seed: int | None) -> tuple[int, int | None]:
    """The reference seed to use, and the seed of the simulator stream the snapshot trained on.

    Args:
        manifest: the snapshot's manifest (its ``data_identity``).
        seed: the requested seed, or None for the default: the training seed + 1 for a
            snapshot trained on the reference simulator (``showers:...`` source), else 0.

    Returns:
        ``(seed, training seed or None)``.

    Example:
        >>> held_out_seed({"data_identity": {"source": "showers:ecal", "seed": 0}}, None)
        (1, 0)
        >>> held_out_seed({"data_identity": {"source": "zarr:photons.zarr", "seed": None}}, None)
        (0, None)
    """
    trained = training_seed(manifest)
    return reference_seed(trained, seed), trained


def training_seed(manifest: Mapping[str, Any]) -> int | None:
    """Seed of the reference-simulator stream (``showers:...``) a snapshot trained on, else None.

    Example:
        >>> training_seed({"data_identity": {"source": "showers:ecal", "seed": 4}})
        4
    """
    identity = manifest.get("data_identity") or {}
    trained = identity.get("seed") if str(identity.get("source", "")).startswith("showers:") else None
    return int(trained) if isinstance(trained, int) and not isinstance(trained, bool) else None


def reference_seed(trained: int | None, seed: int | None) -> int:
    """The requested reference seed, or by default one the snapshot did not train on.

    Example:
        >>> reference_seed(0, None), reference_seed(None, None), reference_seed(0, 7)
        (1, 0, 7)
    """
    if seed is not None:
        return int(seed)
    return trained + 1 if trained is not None else 0
