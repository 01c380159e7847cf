"""ILD-style HDF5 shower files (as used for BIB-AE / CaloClouds photon and pion samples).

Layout: a group (e.g. ``30x30``; the root group works too) holding

* ``energy``: ``(N, 1)`` or ``(N,)`` incident energies in GeV;
* ``layers``: ``(N, layers, x, y)`` cell energies in MeV (e.g. ``(N, 30, 30, 30)``).

The reader finds the group by itself when there is exactly one group with both
datasets; pass ``key`` otherwise. The writer adds the geometry as group attributes,
which other ILD tools ignore.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from stream.showers.errors import ShowerFileError
from stream.showers.geometry import Geometry, get_geometry
from stream.showers.io.base import ShowerChunk, ShowerFile, geometry_for_shape, validate_arrays

__all__ = ["ILDShowerFile", "find_ild_groups", "write_ild"]


def find_ild_groups(handle: h5py.File) -> list[str]:
    """Names of the groups (``""`` = root) holding both ``energy`` and ``layers`` datasets."""
    found = []

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Group) and "energy" in obj and "layers" in obj:
            found.append(name)

    if "energy" in handle and "layers" in handle:
        found.append("")
    handle.visititems(visit)
    return found


def write_ild(path: str | Path, energies_gev: np.ndarray, showers: np.ndarray, geometry: str | Geometry | None = None,
              key: str | None = None) -> Path:
    """Write an ILD-style HDF5 file (``key/energy`` (N, 1) GeV, ``key/layers`` (N, L, X, Y) MeV).

    Args:
        path: output file (overwritten).
        energies_gev: ``(N,)`` incident energies (GeV).
        showers: ``(N, layers, x, y)`` MeV.
        geometry: recorded in the group attributes when given.
        key: group name (default ``"{x}x{y}"``, e.g. ``30x30``).
    """
    energies = np.asarray(energies_gev, dtype=np.float32).reshape(-1)
    showers = np.asarray(showers, dtype=np.float32)
    validate_arrays(path, "write", energies, showers)
    key = key if key is not None else f"{showers.shape[2]}x{showers.shape[3]}"
    with h5py.File(path, "w") as handle:
        group = handle.require_group(key) if key else handle
        group.create_dataset("energy", data=energies[:, None])
        chunks = (min(max(showers.shape[0], 1), 64), *showers.shape[1:])
        group.create_dataset("layers", data=showers, chunks=chunks, compression="gzip", compression_opts=4)
        group.attrs["energy_unit"] = "GeV"
        group.attrs["cell_energy_unit"] = "MeV"
        if geometry is not None:
            for name, value in get_geometry(geometry).to_metadata().items():
                group.attrs[name] = value
    return Path(path)


class ILDShowerFile(ShowerFile):
    """Read an ILD-style HDF5 file in slices.

    Args:
        path: the ``.hdf5`` file.
        key: group holding ``energy`` and ``layers`` (found automatically if unique).

    Raises:
        ShowerFileError: missing file or key, ambiguous groups, wrong shapes.
    """

    format = "ild"

    def __init__(self, path: str | Path, key: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            msg = f"{str(self.path)!r}: file does not exist"
            raise ShowerFileError(msg)
        self._handle = h5py.File(self.path, "r")
        try:
            self._open(key)
        except Exception:
            self._handle.close()
            raise

    def _open(self, key: str | None) -> None:
        if key is None:
            groups = find_ild_groups(self._handle)
            if len(groups) != 1:
                msg = (f"{str(self.path)!r}: expected one group with 'energy' and 'layers', found {groups}; "
                       f"top-level keys: {sorted(self._handle.keys())}; pass key=")
                raise ShowerFileError(msg)
            key = groups[0]
        self.key = key
        group = self._handle[key] if key else self._handle
        for name in ("energy", "layers"):
            if name not in group:
                full = f"{key}/{name}" if key else name
                msg = f"{str(self.path)!r}: dataset {full!r} missing (keys in group {key or '/'!r}: {sorted(group.keys())})"
                raise ShowerFileError(msg)
        self._energy = group["energy"]
        self._layers = group["layers"]
        n = self._layers.shape[0] if self._layers.ndim else 0
        if self._layers.ndim != 4 or self._energy.shape not in ((n,), (n, 1)):
            msg = (f"{str(self.path)!r} [{key}/energy, {key}/layers]: expected (N, 1) and (N, layers, x, y), "
                   f"got {self._energy.shape} and {self._layers.shape}")
            raise ShowerFileError(msg)
        unit = group.attrs.get("energy_unit", "GeV")
        unit = unit.decode() if isinstance(unit, bytes) else str(unit)
        if unit != "GeV":
            msg = f"{str(self.path)!r} [{key}/energy]: energy_unit is {unit!r}; ILD files hold GeV"
            raise ShowerFileError(msg)
        self.n_events = int(n)
        self.grid_shape = tuple(int(s) for s in self._layers.shape[1:])  # type: ignore[assignment]
        try:
            self.geometry = Geometry.from_metadata({k: str(v) for k, v in group.attrs.items()})
        except (ValueError, TypeError, KeyError):
            self.geometry = geometry_for_shape(self.grid_shape)

    def _read(self, start: int, stop: int) -> ShowerChunk:
        energies = np.asarray(self._energy[start:stop], dtype=np.float32).reshape(-1)
        showers = np.asarray(self._layers[start:stop], dtype=np.float32)
        return ShowerChunk(np.arange(start, stop, dtype=np.uint64), energies, showers)

    def close(self) -> None:
        """Close the HDF5 handle."""
        self._handle.close()
