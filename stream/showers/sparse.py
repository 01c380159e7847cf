"""Dense shower grids <-> sparse Arrow record batches of the shower schema (numba).

A batch holds one row per shower: ``event_id`` (uint64), ``incident_energy`` (float32,
GeV), ``cell_index`` (list<int32>, flat C-order index into ``(layers, x, y)``) and
``cell_energy`` (list<float32>, MeV). Only cells with non-zero energy are stored, in
increasing index order, so ``batch_to_dense(dense_to_batch(...))`` is exact.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import pyarrow as pa

from stream.errors import SchemaError
from stream.schema import grid_shape_of, shower_schema
from stream.showers.geometry import Geometry, get_geometry

__all__ = ["batch_cells", "batch_to_dense", "dense_to_batch", "geometry_of_schema", "schema_for"]


def schema_for(geometry: str | Geometry | tuple[int, int, int]) -> pa.Schema:
    """Shower schema for ``geometry``, carrying its full description in the metadata.

    Args:
        geometry: a name, a :class:`Geometry`, or a bare grid shape ``(layers, x, y)``
            (then the schema's geometry is ``"custom"``).

    Example:
        >>> grid_shape_of(schema_for("ahcal"))
        (48, 25, 25)
    """
    if isinstance(geometry, tuple):
        layers, n_x, n_y = (int(s) for s in geometry)
        return shower_schema((layers, n_x, n_y), "custom")
    geo = get_geometry(geometry)
    schema = shower_schema(geo.shape, geo.name)
    meta = dict(schema.metadata or {})
    meta[b"geometry_json"] = geo.to_metadata()["geometry_json"].encode()
    return schema.with_metadata(meta)


def geometry_of_schema(schema: pa.Schema) -> Geometry | None:
    """The :class:`Geometry` described by a shower schema's metadata, or ``None`` if unknown."""
    try:
        return Geometry.from_metadata(schema.metadata or {})
    except ValueError:
        return None


@nb.njit(parallel=True, cache=True)
def _count_nonzero(flat: np.ndarray) -> np.ndarray:
    counts = np.zeros(flat.shape[0], dtype=np.int64)
    for e in nb.prange(flat.shape[0]):
        c = 0
        for j in range(flat.shape[1]):
            if flat[e, j] != 0.0:
                c += 1
        counts[e] = c
    return counts


@nb.njit(parallel=True, cache=True)
def _gather(flat: np.ndarray, offsets: np.ndarray, index: np.ndarray, energy: np.ndarray) -> None:
    for e in nb.prange(flat.shape[0]):
        k = offsets[e]
        for j in range(flat.shape[1]):
            v = flat[e, j]
            if v != 0.0:
                index[k] = j
                energy[k] = v
                k += 1


@nb.njit(parallel=True, cache=True)
def _scatter(offsets: np.ndarray, index: np.ndarray, energy: np.ndarray, n_cells: int, flat: np.ndarray) -> np.ndarray:
    bad = np.zeros(offsets.shape[0] - 1, dtype=np.bool_)
    for e in nb.prange(offsets.shape[0] - 1):
        for k in range(offsets[e], offsets[e + 1]):
            j = index[k]
            if j < 0 or j >= n_cells:
                bad[e] = True
            else:
                flat[e, j] += energy[k]
    return bad


def dense_to_batch(
    event_ids: np.ndarray,
    energies: np.ndarray,
    showers: np.ndarray,
    geometry: str | Geometry | tuple[int, int, int],
) -> pa.RecordBatch:
    """Encode dense showers as one sparse record batch.

    Args:
        event_ids: shape ``(N,)``, non-negative integers.
        energies: incident energies, shape ``(N,)`` or ``(N, 1)`` (GeV).
        showers: dense grids, shape ``(N, layers, x, y)`` (MeV) matching ``geometry``.
        geometry: name, :class:`Geometry` or grid shape (goes into the schema metadata).

    Returns:
        A record batch of :func:`schema_for` ``(geometry)``.

    Raises:
        ValueError: shapes disagree with each other or with the geometry.

    Example:
        >>> grid = np.zeros((1, 30, 30, 30), np.float32); grid[0, 0, 0, 1] = 2.5
        >>> b = dense_to_batch(np.array([7]), np.array([10.0]), grid, "ecal")
        >>> b.column("cell_index").to_pylist(), b.column("cell_energy").to_pylist()
        ([[1]], [[2.5]])
    """
    schema = schema_for(geometry)
    shape = grid_shape_of(schema)
    name = geometry if isinstance(geometry, tuple) else get_geometry(geometry).name
    showers = np.asarray(showers)
    energies = np.asarray(energies).reshape(-1) if np.ndim(energies) == 2 else np.asarray(energies)
    event_ids = np.asarray(event_ids)
    if showers.ndim != 4 or showers.shape[1:] != shape:
        msg = f"dense_to_batch: showers have shape {showers.shape}, expected (N, {', '.join(map(str, shape))}) for geometry {name!r}"
        raise ValueError(msg)
    n = showers.shape[0]
    if energies.shape != (n,) or event_ids.shape != (n,):
        msg = f"dense_to_batch: need event_ids and energies of shape ({n},), got {event_ids.shape} and {energies.shape}"
        raise ValueError(msg)
    flat = np.ascontiguousarray(showers.reshape(n, -1), dtype=np.float32)
    counts = _count_nonzero(flat)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if offsets[-1] > np.iinfo(np.int32).max:
        msg = f"dense_to_batch: {offsets[-1]} cells exceed one Arrow list array; pass fewer showers"
        raise ValueError(msg)
    index = np.empty(offsets[-1], dtype=np.int32)
    energy = np.empty(offsets[-1], dtype=np.float32)
    _gather(flat, offsets, index, energy)
    offsets32 = pa.array(offsets.astype(np.int32))
    arrays = [
        pa.array(event_ids.astype(np.uint64, copy=False)),
        pa.array(energies.astype(np.float32, copy=False)),
        pa.ListArray.from_arrays(offsets32, pa.array(index)),
        pa.ListArray.from_arrays(offsets32, pa.array(energy)),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def batch_cells(batch: pa.RecordBatch, where: str = "shower batch") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cells of a shower record batch as CSR arrays, without densifying.

    Args:
        batch: a record batch of the shower schema (a slice or ``take`` is fine).
        where: how error messages name the caller.

    Returns:
        ``(offsets, index, energy)``: int64 ``(N + 1,)`` row pointers starting at 0, int64
        flat cell indices and float32 cell energies (MeV).

    Raises:
        SchemaError: a missing column, or index and energy lists of different lengths.
    """
    for name in ("event_id", "incident_energy", "cell_index", "cell_energy"):
        if name not in batch.schema.names:
            msg = f"{where}: column {name!r} missing; batch has {batch.schema.names}"
            raise SchemaError(msg)
    index_col = batch.column("cell_index")
    energy_col = batch.column("cell_energy")
    idx_offsets = np.asarray(index_col.offsets).astype(np.int64)
    en_offsets = np.asarray(energy_col.offsets).astype(np.int64)
    if not np.array_equal(idx_offsets - idx_offsets[0], en_offsets - en_offsets[0]):
        msg = f"{where}: cell_index and cell_energy lists differ in length for some event"
        raise SchemaError(msg)
    index = np.asarray(index_col.values)[idx_offsets[0] : idx_offsets[-1]].astype(np.int64)
    energy = np.asarray(energy_col.values)[en_offsets[0] : en_offsets[-1]].astype(np.float32, copy=False)
    return idx_offsets - idx_offsets[0], index, energy


def batch_to_dense(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode a shower record batch into dense grids.

    Args:
        batch: a record batch of the shower schema (grid shape from its metadata).

    Returns:
        ``(event_ids, energies, showers)``: uint64 ``(N,)``, float32 ``(N,)`` GeV and
        float32 ``(N, layers, x, y)`` MeV.

    Raises:
        SchemaError: missing column or metadata, index and energy lists of different
            lengths, or a cell index outside the grid (names the event).
    """
    shape = grid_shape_of(batch.schema)
    offsets, index, energy = batch_cells(batch, "batch_to_dense")
    n = batch.num_rows
    n_cells = int(np.prod(shape))
    flat = np.zeros((n, n_cells), dtype=np.float32)
    bad = _scatter(offsets, index, energy, n_cells, flat)
    ids = np.asarray(batch.column("event_id")).astype(np.uint64)
    if bad.any():
        msg = f"batch_to_dense: event_id {int(ids[np.argmax(bad)])} has a cell_index outside the grid {shape} (0..{n_cells - 1})"
        raise SchemaError(msg)
    energies = np.asarray(batch.column("incident_energy")).astype(np.float32)
    return ids, energies, flat.reshape(n, *shape)
