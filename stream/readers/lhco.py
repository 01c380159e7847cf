"""LHC Olympics 2020 R&D files (arXiv 2101.08320) as a dijet event source.

The R&D file (``events_anomalydetection.h5``) is a pandas DataFrame written to HDF5: one
row per event, 700 hadrons × (pT [GeV], η, φ) zero-padded to 2100 columns, then a
truth label (1 = signal) in column 2100; the black-box files have the 2100 particle
columns only. This reader needs neither pandas nor PyTables: it reads the HDF5 layout
pandas writes with h5py, both of pandas' layouts:

* ``fixed`` (``df.to_hdf(path, key="df")``, the LHCO files): group ``/KEY`` with
  ``pandas_type = "frame"`` and one float block ``block0_values`` of shape
  ``(rows, columns)`` (attribute ``transposed = 1``) or ``(columns, rows)``;
* ``table`` (``format="table"``): group ``/KEY`` with ``pandas_type = "frame_table"`` and a
  compound dataset ``table`` whose field ``values_block_0`` holds the columns.

Rows are read ``batch_size`` at a time (never the whole file) and clustered with the same
code as the Pythia generator (:func:`stream.jets.dijet_features`), so both give the same
five features; ``event_id`` is the row number and ``batches(start_event)`` starts at that
row. A file without a label column gives no ``is_signal`` column. Any other layout is
refused with a :class:`stream.errors.SourceError` naming the file, the key and the shape.

Spec: ``lhco:PATH`` (options in the ``[lhco]`` config section: ``key``, ``batch_size``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from stream.errors import SourceError
from stream.schema import event_schema
from stream.sources import register_source

__all__ = ["LHCOSource", "lhco_particles"]

_COLUMNS_PER_PARTICLE = 3


def lhco_particles(rows: np.ndarray, n_particles: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flat ``(pt, eta, phi, counts)`` of the non-padding particles of LHCO rows.

    A particle slot is padding when its pT is 0 (the file's zero padding).

    Example:
        >>> rows = np.array([[5.0, 0.1, 0.2, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
        >>> pt, eta, phi, counts = lhco_particles(rows, 2)
        >>> pt.tolist(), counts.tolist()
        ([5.0, 1.0, 4.0], [1, 2])
    """
    particles = np.asarray(rows, dtype=np.float64)[:, : _COLUMNS_PER_PARTICLE * n_particles]
    particles = particles.reshape(rows.shape[0], n_particles, _COLUMNS_PER_PARTICLE)
    real = particles[:, :, 0] > 0
    flat = particles[real]
    return flat[:, 0], flat[:, 1], flat[:, 2], real.sum(axis=1)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class LHCOSource:
    """Dijet features of an LHC Olympics HDF5 file, clustered chunk by chunk.

    Args:
        path: the HDF5 file.
        key: the pandas key (default: ``df`` or the file's only group).
        batch_size: rows read and clustered per record batch.
        radius: anti-kT radius R.

    Raises:
        SourceError: missing file, missing key (lists the keys), or a layout that is not
            a pandas frame of ``3·n`` or ``3·n + 1`` float columns (names the shape).

    Example:
        ``LHCOSource("events_anomalydetection.h5").batches()`` yields record batches of
        :func:`stream.jets.dijet_schema` (``is_signal`` from column 2100).
    """

    def __init__(self, path: str | Path, key: str | None = None, batch_size: int = 5_000, radius: float = 1.0) -> None:
        import h5py

        try:  # registers blosc & co. when installed, for files written with complib="blosc"
            import hdf5plugin  # noqa: F401
        except ImportError:
            pass
        self.path = Path(path)
        self.spec = f"lhco:{self.path}"
        self.batch_size = int(batch_size)
        self.radius = float(radius)
        if self.batch_size <= 0:
            msg = f"lhco: batch_size must be positive, got {batch_size!r}"
            raise SourceError(msg)
        if not self.path.is_file():
            msg = f"lhco: file {str(self.path)!r} does not exist"
            raise SourceError(msg)
        try:
            handle = h5py.File(self.path, "r")
        except OSError as err:
            msg = f"lhco: {str(self.path)!r} is not an HDF5 file ({err})"
            raise SourceError(msg) from err
        with handle:
            self.key = self._choose_key(handle, key)
            self.layout, self.n_rows, self.n_columns, self.transposed = self._inspect(handle[self.key])
        self.has_label = self.n_columns % _COLUMNS_PER_PARTICLE == 1
        self.n_particles = self.n_columns // _COLUMNS_PER_PARTICLE
        from stream.jets.features import DIJET_COLUMNS, DIJET_UNITS

        self.columns = [c for c in DIJET_COLUMNS if self.has_label or c != "is_signal"]
        self.schema: pa.Schema = event_schema(self.columns, DIJET_UNITS)

    def __repr__(self) -> str:
        return (f"LHCOSource({str(self.path)!r}, key={self.key!r}, layout={self.layout!r}, rows={self.n_rows}, "
                f"particles={self.n_particles}, label={self.has_label})")

    def _where(self) -> str:
        return f"{str(self.path)!r} key {self.key!r}"

    def _choose_key(self, handle: Any, key: str | None) -> str:
        keys = list(handle.keys())
        if key is None:
            key = "df" if "df" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                msg = f"lhco: {str(self.path)!r} has keys {keys}; say which with the option lhco.key=NAME"
                raise SourceError(msg)
        if key not in handle:
            msg = f"lhco: key {key!r} not found in {str(self.path)!r} (keys: {keys})"
            raise SourceError(msg)
        return key

    def _inspect(self, node: Any) -> tuple[str, int, int, bool]:
        """``(layout, rows, columns, transposed)`` of a pandas frame, or a SourceError."""
        import h5py

        if not isinstance(node, h5py.Group):
            msg = (f"lhco: {self._where()} is a plain dataset of shape {node.shape}, not a pandas frame "
                   "(expected a group with block0_values or table, as DataFrame.to_hdf writes)")
            raise SourceError(msg)
        kind = _text(node.attrs.get("pandas_type", ""))
        if kind == "frame" and "block0_values" in node:
            blocks = int(node.attrs.get("nblocks", 1))
            if blocks != 1:
                msg = f"lhco: {self._where()} holds {blocks} column blocks (mixed dtypes); expected one float block"
                raise SourceError(msg)
            values = node["block0_values"]
            transposed = bool(values.attrs.get("transposed", False))
            if values.ndim != 2:
                msg = f"lhco: {self._where()} block0_values has shape {values.shape}, expected (rows, columns)"
                raise SourceError(msg)
            rows, columns = values.shape if transposed else values.shape[::-1]
            self._check_columns(columns, values.shape)
            if "axis0" in node and "block0_items" in node and not np.array_equal(node["axis0"][()], node["block0_items"][()]):
                msg = f"lhco: {self._where()} stores its columns out of order (block0_items differs from axis0)"
                raise SourceError(msg)
            return "fixed", int(rows), int(columns), transposed
        if kind == "frame_table" and "table" in node:
            table = node["table"]
            names = table.dtype.names or ()
            fields = [n for n in names if n.startswith("values_block_")]
            if fields != ["values_block_0"]:
                msg = f"lhco: {self._where()} table has value fields {fields}; expected one float block values_block_0"
                raise SourceError(msg)
            shape = table.dtype["values_block_0"].shape
            columns = int(shape[0]) if shape else 1
            self._check_columns(columns, (table.shape[0], columns))
            return "table", int(table.shape[0]), columns, True
        msg = (f"lhco: {self._where()} is not a pandas frame (pandas_type {kind!r}, members {list(node.keys())}); "
               "expected DataFrame.to_hdf output in fixed or table format")
        raise SourceError(msg)

    def _check_columns(self, columns: int, shape: tuple[int, ...]) -> None:
        if columns < _COLUMNS_PER_PARTICLE or columns % _COLUMNS_PER_PARTICLE == 2:
            msg = (f"lhco: {self._where()} has {columns} columns (stored shape {tuple(shape)}); expected "
                   "3 per particle (pT, eta, phi), e.g. 2100, plus optionally one label column (2101)")
            raise SourceError(msg)

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as a float64 array ``(rows, columns)``."""
        import h5py

        with h5py.File(self.path, "r") as handle:
            node = handle[self.key]
            try:
                if self.layout == "table":
                    rows = node["table"][start:stop]["values_block_0"]
                elif self.transposed:
                    rows = node["block0_values"][start:stop]
                else:
                    rows = node["block0_values"][:, start:stop].T
            except OSError as err:
                msg = f"lhco: cannot read rows {start}:{stop} of {self._where()} ({err}); a compressed file may need 'pip install hdf5plugin'"
                raise SourceError(msg) from err
        return np.asarray(rows, dtype=np.float64).reshape(stop - start, self.n_columns)

    def batches(self, start_event: int = 0) -> Iterator[pa.RecordBatch]:
        """Yield clustered batches from row ``start_event`` on."""
        from stream.jets.features import dijet_features

        for start in range(max(0, start_event), self.n_rows, self.batch_size):
            stop = min(start + self.batch_size, self.n_rows)
            rows = self.read_rows(start, stop)
            if not np.all(np.isfinite(rows)):
                bad = int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0]) + start
                msg = f"lhco: row {bad} of {self._where()} holds a NaN or infinite value"
                raise SourceError(msg)
            features = dijet_features(*lhco_particles(rows, self.n_particles), radius=self.radius)
            arrays = [pa.array(np.arange(start, stop, dtype=np.uint64))]
            for name in self.columns:
                if name == "is_signal":
                    label = rows[:, -1]
                    if not np.all((label == 0) | (label == 1)):
                        bad = int(np.flatnonzero((label != 0) & (label != 1))[0])
                        msg = f"lhco: row {start + bad} of {self._where()} has label {float(label[bad])!r} in its last column; expected 0 or 1"
                        raise SourceError(msg)
                    arrays.append(pa.array(label.astype(np.float32)))
                else:
                    arrays.append(pa.array(features[name].astype(np.float32)))
            yield pa.RecordBatch.from_arrays(arrays, schema=self.schema)



@register_source("lhco")
def _lhco(argument: str | None, options: Mapping[str, Any]) -> LHCOSource:
    if not argument:
        msg = "lhco source needs a path: 'lhco:PATH'"
        raise SourceError(msg)
    allowed = {"key", "batch_size", "radius"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        msg = f"lhco: unknown options {unknown} (allowed: {sorted(allowed)})"
        raise SourceError(msg)
    return LHCOSource(argument, **options)
