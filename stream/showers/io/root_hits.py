"""ROOT hit trees of showers, read and written with uproot.

Layout: a TTree (default name ``showers``) with one entry per shower:

* ``incident_energy``: float, GeV;
* ``cell_index``: jagged int32, flat C-order index into the grid ``(layers, x, y)``;
* ``cell_energy``: jagged float32, MeV (same length as ``cell_index``);
* ``event_id``: uint64 (optional; row numbers otherwise).

The grid shape comes from a ``grid_shape`` string (TObjString ``"L,X,Y"``) next to the
tree, written by :func:`write_root_hits`, or from the ``grid_shape`` argument. The
geometry is stored the same way (``geometry_json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numba as nb
import numpy as np
import uproot

from stream.showers.errors import ShowerFileError
from stream.showers.geometry import Geometry, get_geometry
from stream.showers.io.base import ShowerChunk, ShowerFile, geometry_for_shape, validate_arrays

__all__ = ["HIT_BRANCHES", "RootHitsShowerFile", "is_hit_tree", "write_root_hits"]

HIT_BRANCHES = ("incident_energy", "cell_index", "cell_energy")
"""Branches a shower hit tree must have."""


def is_hit_tree(tree: Any) -> bool:
    """Whether an uproot TTree has the jagged ``cell_index`` and ``cell_energy`` branches."""
    return all(name in tree.keys() for name in HIT_BRANCHES)


@nb.njit(cache=True)
def _fill(offsets: np.ndarray, index: np.ndarray, energy: np.ndarray, flat: np.ndarray) -> int:
    n_cells = flat.shape[1]
    for e in range(offsets.shape[0] - 1):
        for k in range(offsets[e], offsets[e + 1]):
            j = index[k]
            if j < 0 or j >= n_cells:
                return e
            flat[e, j] += energy[k]
    return -1


def _string(handle: Any, name: str) -> str | None:
    if name not in handle:
        return None
    return str(handle[name])


def write_root_hits(path: str | Path, energies_gev: np.ndarray, showers: np.ndarray,
                    geometry: str | Geometry | None = None, tree: str = "showers",
                    event_ids: np.ndarray | None = None) -> Path:
    """Write dense showers as a ROOT hit tree (non-zero cells only)."""
    energies = np.asarray(energies_gev, dtype=np.float32).reshape(-1)
    showers = np.asarray(showers, dtype=np.float32)
    validate_arrays(path, tree, energies, showers)
    n = showers.shape[0]
    flat = showers.reshape(n, -1)
    rows, cols = np.nonzero(flat)
    counts = np.bincount(rows, minlength=n)
    index = ak.unflatten(cols.astype(np.int32), counts)
    energy = ak.unflatten(flat[rows, cols].astype(np.float32), counts)
    ids = np.arange(n, dtype=np.uint64) if event_ids is None else np.asarray(event_ids, dtype=np.uint64)
    with uproot.recreate(path) as handle:
        cells = ak.zip({"index": index, "energy": energy})
        # mktree: a TTree (assigning a dict would write an RNTuple in recent uproot).
        out = handle.mktree(tree, {"event_id": ids.dtype, "incident_energy": energies.dtype, "cell": cells.type},
                            field_name=lambda outer, inner: f"{outer}_{inner}", counter_name=lambda name: f"n{name}")
        out.extend({"event_id": ids, "incident_energy": energies, "cell": cells})
        handle["grid_shape"] = ",".join(str(s) for s in showers.shape[1:])
        if geometry is not None:
            handle["geometry_json"] = get_geometry(geometry).to_metadata()["geometry_json"]
    return Path(path)


class RootHitsShowerFile(ShowerFile):
    """Read a ROOT hit tree in entry ranges.

    Args:
        path: the ``.root`` file.
        tree: tree name (default: ``showers``, or the only tree in the file).
        grid_shape: ``(layers, x, y)`` when the file stores no ``grid_shape`` string.

    Raises:
        ShowerFileError: missing file, tree or branch, unknown grid, index outside the grid.
    """

    format = "root"

    def __init__(self, path: str | Path, tree: str | None = None, grid_shape: tuple[int, int, int] | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            msg = f"{str(self.path)!r}: file does not exist"
            raise ShowerFileError(msg)
        self._handle = uproot.open(self.path)
        try:
            self._open(tree, grid_shape)
        except Exception:
            self._handle.close()
            raise

    def _open(self, tree: str | None, grid_shape: tuple[int, int, int] | None) -> None:
        trees = sorted({k.split(";")[0] for k, c in self._handle.classnames().items() if c == "TTree"})
        if tree is None:
            tree = "showers" if "showers" in trees or len(trees) != 1 else trees[0]
        if tree not in trees:
            msg = f"{str(self.path)!r}: tree {tree!r} not found (trees: {trees})"
            raise ShowerFileError(msg)
        self.key = tree
        self._tree = self._handle[tree]
        missing = [b for b in HIT_BRANCHES if b not in self._tree.keys()]
        if missing:
            msg = f"{str(self.path)!r} [{tree}]: branches {missing} missing (branches: {sorted(self._tree.keys())})"
            raise ShowerFileError(msg)
        stored = _string(self._handle, "grid_shape")
        if grid_shape is None and stored is not None:
            grid_shape = tuple(int(s) for s in stored.split(","))  # type: ignore[assignment]
        if grid_shape is None or len(grid_shape) != 3:
            msg = f"{str(self.path)!r} [{tree}]: no 'grid_shape' string in the file and none given; pass grid_shape=(layers, x, y)"
            raise ShowerFileError(msg)
        self.grid_shape = tuple(int(s) for s in grid_shape)  # type: ignore[assignment]
        self.n_events = int(self._tree.num_entries)
        self._has_ids = "event_id" in self._tree.keys()
        geometry_json = _string(self._handle, "geometry_json")
        self.geometry = (Geometry.from_metadata({"geometry_json": geometry_json}) if geometry_json
                         else geometry_for_shape(self.grid_shape))

    def _read(self, start: int, stop: int) -> ShowerChunk:
        branches = [*HIT_BRANCHES, "event_id"] if self._has_ids else list(HIT_BRANCHES)
        arrays = self._tree.arrays(branches, entry_start=start, entry_stop=stop, library="ak")
        index, energy = arrays["cell_index"], arrays["cell_energy"]
        counts = ak.to_numpy(ak.num(index, axis=1))
        if not np.array_equal(counts, ak.to_numpy(ak.num(energy, axis=1))):
            msg = f"{str(self.path)!r} [{self.key}/cell_index, cell_energy]: jagged branches differ in length"
            raise ShowerFileError(msg)
        offsets = np.zeros(counts.size + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        n = stop - start
        flat = np.zeros((n, int(np.prod(self.grid_shape))), dtype=np.float32)
        bad = _fill(offsets, ak.to_numpy(ak.flatten(index)).astype(np.int64),
                    ak.to_numpy(ak.flatten(energy)).astype(np.float32), flat)
        if bad >= 0:
            msg = f"{str(self.path)!r} [{self.key}/cell_index]: entry {start + bad} has an index outside the grid {self.grid_shape}"
            raise ShowerFileError(msg)
        ids = (ak.to_numpy(arrays["event_id"]).astype(np.uint64) if self._has_ids
               else np.arange(start, stop, dtype=np.uint64))
        energies = ak.to_numpy(arrays["incident_energy"]).astype(np.float32)
        return ShowerChunk(ids, energies, flat.reshape(n, *self.grid_shape))

    def close(self) -> None:
        """Close the ROOT file."""
        self._handle.close()
