"""Turn record batches into what the trigger and the buffer need, per topic kind.

Events: features arrive as float32 (the event schema's feature type); the trigger sees
every feature column cast to float64 (its kernel computes in float64), the buffer stores
them as float32 without a conversion. Showers: the trigger sees ``incident_energy`` (GeV) and the hit count; the
buffer gets dense ``(L, X, Y)`` float32 images (MeV), built only for accepted rows.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pyarrow as pa

from emulator.double_buffer import ColumnLayout
from stream.schema import EVENT_ID, feature_columns, grid_shape_of, schema_kind

__all__ = ["BatchAdapter", "EventAdapter", "ShowerAdapter", "adapter_for"]


class BatchAdapter(Protocol):
    """Per-kind conversion of record batches."""

    layout: ColumnLayout

    def trigger_columns(self, batch: pa.RecordBatch) -> dict[str, np.ndarray]:
        """Columns the trigger menu may cut on (float64, one value per event)."""
        ...

    def rows(self, batch: pa.RecordBatch, indices: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Event ids and buffer columns of the selected rows."""
        ...


def _ids(batch: pa.RecordBatch) -> np.ndarray:
    return batch.column(EVENT_ID).to_numpy(zero_copy_only=False).astype(np.uint64, copy=False)


class EventAdapter:
    """Flat events: every feature column goes to the buffer as float32."""

    def __init__(self, schema: pa.Schema) -> None:
        self.columns = feature_columns(schema)
        self.layout: ColumnLayout = {c: ((), np.float32) for c in self.columns}

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
    """Sparse showers: densified only for the rows that go into the buffer."""

    def __init__(self, schema: pa.Schema) -> None:
        self.grid = grid_shape_of(schema)
        self.layout: ColumnLayout = {"showers": (self.grid, np.float32), "incident_energy": ((), np.float32)}

    def trigger_columns(self, batch: pa.RecordBatch) -> dict[str, np.ndarray]:
        """``incident_energy`` (GeV) and ``n_cells`` (stored cells per shower)."""
        energy = batch.column("incident_energy").to_numpy(zero_copy_only=False).astype(np.float64)
        offsets = batch.column("cell_index").offsets.to_numpy()
        return {"incident_energy": energy, "n_cells": np.diff(offsets).astype(np.float64)}

    def rows(self, batch: pa.RecordBatch, indices: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Dense float32 showers (MeV) of the selected rows."""
        from stream.showers.sparse import batch_to_dense

        ids, energy, dense = batch_to_dense(batch.take(pa.array(indices)))
        return np.asarray(ids, dtype=np.uint64), {
            "showers": np.asarray(dense, dtype=np.float32),
            "incident_energy": np.asarray(energy, dtype=np.float32),
        }


def adapter_for(schema: pa.Schema) -> BatchAdapter:
    """The adapter for a topic's schema kind."""
    if schema_kind(schema) == "showers":
        return ShowerAdapter(schema)
    return EventAdapter(schema)
