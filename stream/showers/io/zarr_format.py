"""Native shower storage in Zarr: chunked, compressed, geometry in the attributes.

Layout of a store (a directory, Zarr format 3)::

    incident_energy   (N,)             float32  GeV
    showers           (N, L, X, Y)     float32  MeV, chunks (chunk_events, L, X, Y), zstd
    event_id          (N,)             uint64   (optional)
    attrs: kind="showers", geometry, grid_shape, geometry_json, energy_unit="GeV",
           cell_energy_unit="MeV"

:class:`ZarrShowerWriter` appends chunk by chunk (a simulation never has to fit in
memory); :func:`write_zarr` writes arrays in one call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from stream.showers.errors import ShowerFileError
from stream.showers.geometry import Geometry, get_geometry
from stream.showers.io.base import ShowerChunk, ShowerFile, geometry_for_shape, validate_arrays

__all__ = ["ZarrShowerFile", "ZarrShowerWriter", "write_zarr"]


class ZarrShowerWriter:
    """Append showers to a new Zarr store.

    Args:
        path: directory of the store (overwritten).
        geometry: geometry of the showers (name or :class:`Geometry`).
        chunk_events: events per stored chunk.

    Example:
        >>> import tempfile
        >>> with ZarrShowerWriter(tempfile.mkdtemp() + "/s.zarr", "ecal") as w:
        ...     w.append(np.array([10.0]), np.zeros((1, 30, 30, 30), np.float32))
        >>> w.n_events
        1
    """

    def __init__(self, path: str | Path, geometry: str | Geometry, chunk_events: int = 256) -> None:
        self.path = Path(path)
        self.geometry = get_geometry(geometry)
        shape = self.geometry.shape
        self._group = zarr.open_group(str(self.path), mode="w")
        self._group.attrs.update({"kind": "showers", "energy_unit": "GeV", "cell_energy_unit": "MeV",
                                  **self.geometry.to_metadata()})
        self._energy = self._group.create_array("incident_energy", shape=(0,), chunks=(max(chunk_events, 1024),),
                                                dtype="float32")
        self._ids = self._group.create_array("event_id", shape=(0,), chunks=(max(chunk_events, 1024),), dtype="uint64")
        self._showers = self._group.create_array("showers", shape=(0, *shape), chunks=(chunk_events, *shape),
                                                 dtype="float32")
        self.n_events = 0

    def append(self, energies_gev: np.ndarray, showers: np.ndarray, event_ids: np.ndarray | None = None) -> None:
        """Append showers ``(n, L, X, Y)`` MeV with incident energies ``(n,)`` GeV."""
        energies = np.asarray(energies_gev, dtype=np.float32).reshape(-1)
        showers = np.asarray(showers, dtype=np.float32)
        validate_arrays(self.path, "append", energies, showers)
        if showers.shape[1:] != self.geometry.shape:
            msg = f"{str(self.path)!r} [showers]: appending grid {showers.shape[1:]}, store has {self.geometry.shape}"
            raise ShowerFileError(msg)
        n = energies.shape[0]
        ids = np.arange(self.n_events, self.n_events + n, dtype=np.uint64) if event_ids is None else np.asarray(event_ids, dtype=np.uint64)
        self._energy.append(energies)
        self._ids.append(ids)
        self._showers.append(showers)
        self.n_events += n

    def close(self) -> None:
        """Nothing to flush (every append is written); kept for symmetry."""

    def __enter__(self) -> ZarrShowerWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_zarr(path: str | Path, energies_gev: np.ndarray, showers: np.ndarray, geometry: str | Geometry,
               event_ids: np.ndarray | None = None, chunk_events: int = 256) -> Path:
    """Write showers to a new Zarr store and return its path."""
    with ZarrShowerWriter(path, geometry, chunk_events) as writer:
        writer.append(energies_gev, showers, event_ids)
    return Path(path)


class ZarrShowerFile(ShowerFile):
    """Read a Zarr shower store (see the module docstring for the layout).

    Raises:
        ShowerFileError: missing store, missing ``incident_energy``/``showers`` array,
            or arrays of inconsistent shapes.
    """

    format = "zarr"

    def __init__(self, path: str | Path, key: str = "") -> None:
        self.path = Path(path)
        self.key = key
        try:
            root = zarr.open_group(str(self.path), mode="r")
        except (FileNotFoundError, zarr.errors.GroupNotFoundError) as err:
            msg = f"{str(self.path)!r}: not a Zarr group ({err})"
            raise ShowerFileError(msg) from err
        group = root[key] if key else root
        if not isinstance(group, zarr.Group):
            msg = f"{str(self.path)!r}: {key!r} is not a Zarr group"
            raise ShowerFileError(msg)
        names = sorted(group.array_keys())
        arrays: dict[str, zarr.Array] = {}
        for name in ("incident_energy", "showers", "event_id"):
            item = group.get(name)
            if isinstance(item, zarr.Array):
                arrays[name] = item
            elif name != "event_id":
                msg = f"{str(self.path)!r}: Zarr array {name!r} missing (arrays: {names})"
                raise ShowerFileError(msg)
        self._energy = arrays["incident_energy"]
        self._showers = arrays["showers"]
        self._ids = arrays.get("event_id")
        if len(self._showers.shape) != 4 or self._energy.shape != (self._showers.shape[0],):
            msg = (f"{str(self.path)!r} [incident_energy, showers]: expected (N,) and (N, layers, x, y), "
                   f"got {self._energy.shape} and {self._showers.shape}")
            raise ShowerFileError(msg)
        unit = group.attrs.get("energy_unit", "GeV")
        if unit not in ("GeV", "MeV"):
            msg = f"{str(self.path)!r} [incident_energy]: unknown energy_unit {unit!r}; expected 'GeV' or 'MeV'"
            raise ShowerFileError(msg)
        self._scale = 1.0 if unit == "GeV" else 1e-3
        self.n_events = int(self._showers.shape[0])
        self.grid_shape = tuple(int(s) for s in self._showers.shape[1:])  # type: ignore[assignment]
        attrs = dict(group.attrs)
        try:
            self.geometry = Geometry.from_metadata({k: str(v) for k, v in attrs.items()})
        except (ValueError, TypeError, KeyError):
            self.geometry = geometry_for_shape(self.grid_shape)
        if self.geometry is not None and self.geometry.shape != self.grid_shape:
            msg = f"{str(self.path)!r} [showers]: grid {self.grid_shape} differs from geometry {self.geometry.name!r} {self.geometry.shape}"
            raise ShowerFileError(msg)

    def _read(self, start: int, stop: int) -> ShowerChunk:
        energies = np.asarray(self._energy[start:stop], dtype=np.float64) * self._scale
        showers = np.asarray(self._showers[start:stop], dtype=np.float32)
        ids = (np.asarray(self._ids[start:stop], dtype=np.uint64) if self._ids is not None
               else np.arange(start, stop, dtype=np.uint64))
        return ShowerChunk(ids, energies.astype(np.float32), showers)
