"""CaloChallenge-style HDF5 shower files (Fast Calorimeter Simulation Challenge 2022).

Convention (as in the challenge data sets): ``incident_energies`` ``(N, 1)`` in **MeV**
and ``showers`` ``(N, n_voxels)`` in MeV, voxels flattened layer-major. This reader
converts incident energies to GeV and reshapes the voxels to ``(layers, a, b)``:

* grid from the file attributes ``grid_shape`` (written by :func:`write_calochallenge`);
* else a known voxel count: 6480 → ``(45, 16, 9)`` (data set 2: layers, angular bins,
  radial bins), 40500 → ``(45, 50, 18)`` (data set 3), 27000 → ECAL ``(30, 30, 30)``,
  30000 → AHCAL ``(48, 25, 25)``;
* else the ``grid_shape`` argument. Data set 1 (irregular binning) has no regular grid
  and needs its own binning file; it is refused with a message saying so.

Attribute ``incident_energy_unit`` (``"MeV"`` or ``"GeV"``) overrides the MeV default.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from stream.showers.errors import ShowerFileError
from stream.showers.geometry import Geometry, get_geometry
from stream.showers.io.base import ShowerChunk, ShowerFile, geometry_for_shape, validate_arrays

__all__ = ["CALOCHALLENGE_GRIDS", "CaloChallengeShowerFile", "write_calochallenge"]

CALOCHALLENGE_GRIDS: dict[int, tuple[int, int, int]] = {
    6480: (45, 16, 9),
    40500: (45, 50, 18),
    27000: (30, 30, 30),
    30000: (48, 25, 25),
}
"""Known voxel counts and their ``(layers, a, b)`` grids."""


def write_calochallenge(path: str | Path, energies_gev: np.ndarray, showers: np.ndarray,
                        geometry: str | Geometry | None = None) -> Path:
    """Write a CaloChallenge-style file (``incident_energies`` (N, 1) MeV, ``showers`` (N, cells) MeV)."""
    energies = np.asarray(energies_gev, dtype=np.float64).reshape(-1)
    showers = np.asarray(showers, dtype=np.float32)
    validate_arrays(path, "write", energies, showers)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("incident_energies", data=(energies * 1000.0)[:, None])
        flat = showers.reshape(showers.shape[0], -1)
        handle.create_dataset("showers", data=flat, chunks=(min(max(flat.shape[0], 1), 64), flat.shape[1]),
                              compression="gzip", compression_opts=4)
        handle.attrs["incident_energy_unit"] = "MeV"
        handle.attrs["grid_shape"] = ",".join(str(s) for s in showers.shape[1:])
        if geometry is not None:
            for name, value in get_geometry(geometry).to_metadata().items():
                handle.attrs[name] = value
    return Path(path)


class CaloChallengeShowerFile(ShowerFile):
    """Read a CaloChallenge-style HDF5 file in slices (energies converted MeV → GeV).

    Args:
        path: the ``.hdf5`` file.
        grid_shape: ``(layers, a, b)`` when the voxel count is not a known one.

    Raises:
        ShowerFileError: missing file or dataset, wrong shapes, unknown voxel count.
    """

    format = "calochallenge"

    def __init__(self, path: str | Path, grid_shape: tuple[int, int, int] | None = None) -> None:
        self.path = Path(path)
        self.key = "incident_energies, showers"
        if not self.path.is_file():
            msg = f"{str(self.path)!r}: file does not exist"
            raise ShowerFileError(msg)
        self._handle = h5py.File(self.path, "r")
        try:
            self._open(grid_shape)
        except Exception:
            self._handle.close()
            raise

    def _open(self, grid_shape: tuple[int, int, int] | None) -> None:
        handle = self._handle
        for name in ("incident_energies", "showers"):
            if name not in handle:
                msg = f"{str(self.path)!r}: dataset {name!r} missing (keys: {sorted(handle.keys())})"
                raise ShowerFileError(msg)
        self._energy = handle["incident_energies"]
        self._showers = handle["showers"]
        n = self._showers.shape[0] if self._showers.ndim else 0
        if self._showers.ndim not in (2, 4) or self._energy.shape not in ((n,), (n, 1)):
            msg = (f"{str(self.path)!r} [incident_energies, showers]: expected (N, 1) and (N, cells), "
                   f"got {self._energy.shape} and {self._showers.shape}")
            raise ShowerFileError(msg)
        n_cells = int(np.prod(self._showers.shape[1:]))
        attr = handle.attrs.get("grid_shape")
        if self._showers.ndim == 4:
            shape = tuple(int(s) for s in self._showers.shape[1:])
        elif grid_shape is not None:
            shape = tuple(int(s) for s in grid_shape)
        elif attr is not None:
            attr = attr.decode() if isinstance(attr, bytes) else str(attr)
            shape = tuple(int(s) for s in attr.split(","))
        elif n_cells in CALOCHALLENGE_GRIDS:
            shape = CALOCHALLENGE_GRIDS[n_cells]
        else:
            msg = (f"{str(self.path)!r} [showers]: {n_cells} voxels per shower is not a known regular grid "
                   f"({sorted(CALOCHALLENGE_GRIDS)}; data set 1 has irregular binning); pass grid_shape=(layers, a, b)")
            raise ShowerFileError(msg)
        if len(shape) != 3 or int(np.prod(shape)) != n_cells:
            msg = f"{str(self.path)!r} [showers]: grid_shape {shape} does not hold {n_cells} voxels"
            raise ShowerFileError(msg)
        unit = handle.attrs.get("incident_energy_unit", "MeV")
        unit = unit.decode() if isinstance(unit, bytes) else str(unit)
        if unit not in ("MeV", "GeV"):
            msg = f"{str(self.path)!r} [incident_energies]: unknown incident_energy_unit {unit!r}; expected 'MeV' or 'GeV'"
            raise ShowerFileError(msg)
        self._scale = 1e-3 if unit == "MeV" else 1.0
        self.n_events = int(n)
        self.grid_shape = shape  # type: ignore[assignment]
        try:
            self.geometry = Geometry.from_metadata({k: str(v) for k, v in handle.attrs.items()})
        except (ValueError, TypeError, KeyError):
            self.geometry = geometry_for_shape(shape)

    def _read(self, start: int, stop: int) -> ShowerChunk:
        energies = np.asarray(self._energy[start:stop], dtype=np.float64).reshape(-1) * self._scale
        showers = np.asarray(self._showers[start:stop], dtype=np.float32).reshape(stop - start, *self.grid_shape)
        return ShowerChunk(np.arange(start, stop, dtype=np.uint64), energies.astype(np.float32), showers)

    def close(self) -> None:
        """Close the HDF5 handle."""
        self._handle.close()
