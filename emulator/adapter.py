"""Turn record batches into what the trigger and the buffer need, per topic kind.

Events: features arrive as float32 (the event schema's feature type); the trigger sees
every feature column cast to float64 (its kernel computes in float64), the buffer stores
them as float32 without a conversion. Showers: the trigger sees ``incident_energy`` (GeV) and the hit count; the
buffer keeps them sparse (ragged ``cell_index`` int64 and ``cell_energy`` float32 MeV),
and the grid shape reaches the model as the constant ``grid_shape`` (see
:mod:`models.protocol`).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from emulator.double_buffer import RAGGED, ColumnLayout, Ragged
from stream.errors import SchemaError
from stream.schema import EVENT_ID, grid_shape_of, schema_kind, training_columns, truth_columns

__all__ = ["BatchAdapter", "EventAdapter", "ShowerAdapter", "adapter_for"]


class BatchAdapter(Protocol):
    """Per-kind conversion of record batches."""

    layout: ColumnLayout
    constants: dict[str, np.ndarray]
    """Extra tensors handed to the model with every buffer (e.g. ``grid_shape``)."""

    def trigger_columns(self, batch: pa.RecordBatch) -> dict[str, np.ndarray]:
        """Columns the trigger menu may cut on (float64, one value per event)."""
        ...

    def rows(self, batch: pa.RecordBatch, indices: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """Event ids and buffer columns of the selected rows."""
        ...


def _ids(batch: pa.RecordBatch) -> np.ndarray:
    return batch.column(EVENT_ID).to_numpy(zero_copy_only=False).astype(np.uint64, copy=False)


class EventAdapter:
    """Flat events: every feature column but the truth goes to the buffer as float32.

    Truth columns (``is_signal``; :func:`stream.schema.truth_columns`) reach neither the
    trigger menu nor the buffer (the trainer refuses a cut or a model column on one, naming
    it); the classical trigger stores whole records, truth included.
    """

    def __init__(self, schema: pa.Schema) -> None:
        self.columns = training_columns(schema)
        self.truth = truth_columns(schema)
        self.layout: ColumnLayout = {c: ((), np.float32) for c in self.columns}
        self.constants: dict[str, np.ndarray] = {}

    def trigger_columns(self, batch: pa.RecordBatch) -> dict[str, np.ndarray]:
        """Feature columns as float64 arrays (cast from the float32 wire values)."""
        return {c: batch.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in self.columns}

    def rows(self, batch: pa.RecordBatch, indices: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Selected rows as float32 columns."""
        ids = _ids(batch)[indices]
        return ids, {
            c: batch.column(c).to_numpy(zero_copy_only=False)[indices].astype(np.float32, copy=False) for c in self.columns
        }


class ShowerAdapter:
    """Sparse showers: the accepted rows' cells go into ragged buffer columns as they are."""

    def __init__(self, schema: pa.Schema) -> None:
        self.grid = grid_shape_of(schema)
        self.layout: ColumnLayout = {
            "incident_energy": ((), np.float32), "cell_index": (RAGGED, np.int64), "cell_energy": (RAGGED, np.float32),
        }
        self.constants = {"grid_shape": np.asarray(self.grid, dtype=np.int64)}
        self.n_cells = int(np.prod(self.grid))

    def trigger_columns(self, batch: pa.RecordBatch) -> dict[str, np.ndarray]:
        """``incident_energy`` (GeV) and ``n_cells`` (stored cells per shower)."""
        energy = batch.column("incident_energy").to_numpy(zero_copy_only=False).astype(np.float64)
        offsets = batch.column("cell_index").offsets.to_numpy()
        return {"incident_energy": energy, "n_cells": np.diff(offsets).astype(np.float64)}

    def rows(self, batch: pa.RecordBatch, indices: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """The selected rows' energies and cells (ragged, no densifying).

        Raises:
            SchemaError: index and energy lists of different lengths, or a cell index
                outside the grid (names the event id).
        """
        from stream.showers.sparse import batch_cells

        taken = batch.take(pa.array(indices))
        offsets, cells, energies = batch_cells(taken)
        ids = _ids(taken)
        if len(cells) and (cells.min() < 0 or cells.max() >= self.n_cells):
            bad = int(np.flatnonzero((cells < 0) | (cells >= self.n_cells))[0])
            event = int(np.searchsorted(offsets, bad, side="right") - 1)
            msg = f"shower event {int(ids[event])}: cell index {int(cells[bad])} outside the grid {self.grid}"
            raise SchemaError(msg)
        lengths = np.diff(offsets)
        return ids, {
            "incident_energy": taken.column("incident_energy").to_numpy(zero_copy_only=False).astype(np.float32),
            "cell_index": Ragged(lengths, cells),
            "cell_energy": Ragged(lengths, energies),
        }


def adapter_for(schema: pa.Schema) -> BatchAdapter:
    """The adapter for a topic's schema kind."""
    if schema_kind(schema) == "showers":
        return ShowerAdapter(schema)
    return EventAdapter(schema)
