"""Parquet parts beside a snapshot: stored events, trained event ids, per-buffer metrics.

Each part is named after the index of the first buffer it holds (``part-00000042.parquet``)
and written before the manifest that covers it; a resumed run deletes parts of buffers at
or after its manifest's ``next_buffer_index`` (written after that manifest, not covered by
it). Parts are written with page checksums (CRC32) and readers verify them, so a file
corrupted on disk is an error, not silently different data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["METRICS_DIR", "STORED_EVENTS_DIR", "TRAINED_IDS_DIR", "SideFiles", "read_parts"]

STORED_EVENTS_DIR = "stored_events"
TRAINED_IDS_DIR = "trained_ids"
METRICS_DIR = "metrics"
"""One row per trained buffer: index, events, passes, steps, loss and the model's metrics."""


def _part_name(buffer_index: int) -> str:
    return f"part-{buffer_index:08d}.parquet"


def _part_index(path: Path) -> int:
    return int(path.stem.split("-")[1])


def read_parts(directory: str | Path) -> pa.Table:
    """All parts of one side directory as one table, checksums verified, in buffer order.

    Raises:
        FileNotFoundError: the directory does not exist.
        OSError: a part is corrupt (pyarrow names the file).
    """
    directory = Path(directory)
    if not directory.is_dir():
        msg = f"no side directory {str(directory)!r}"
        raise FileNotFoundError(msg)
    parts = sorted(directory.glob("part-*.parquet"), key=_part_index)
    tables = [pq.read_table(p, page_checksum_verification=True) for p in parts]
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="default")


class SideFiles:
    """Writes and prunes the parts of one snapshot directory.

    Args:
        out: the snapshot directory.
    """

    def __init__(self, out: Path) -> None:
        self.out = out

    def drop_from(self, first_index: int) -> None:
        """Delete parts of buffers ``>= first_index``: written after the last manifest."""
        for sub in (STORED_EVENTS_DIR, TRAINED_IDS_DIR, METRICS_DIR):
            for part in (self.out / sub).glob("part-*.parquet"):
                if _part_index(part) >= first_index:
                    part.unlink()

    def _write(self, sub: str, index: int, table: pa.Table) -> None:
        directory = self.out / sub
        directory.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, directory / _part_name(index), write_page_checksum=True)

    def write_stored(self, index: int, batches: list[pa.RecordBatch], schema: pa.Schema) -> None:
        """The events the classical trigger stored while buffer ``index`` filled."""
        self._write(STORED_EVENTS_DIR, index, pa.Table.from_batches(batches) if batches else schema.empty_table())

    def write_ids(self, index: int, ids: np.ndarray) -> None:
        """The ids of the events trained in buffer ``index``."""
        self._write(TRAINED_IDS_DIR, index, pa.table({"event_id": pa.array(ids, pa.uint64())}))

    def write_metrics(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """One part with a row per buffer (named after the first buffer's index)."""
        rows = list(rows)
        if not rows:
            return
        names = list(dict.fromkeys(k for row in rows for k in row))
        columns = {k: [row.get(k) for row in rows] for k in names}
        self._write(METRICS_DIR, int(rows[0]["buffer_index"]), pa.table(columns))

    def stored_bytes(self) -> int:
        """Bytes of the stored-event parts."""
        directory = self.out / STORED_EVENTS_DIR
        return sum(p.stat().st_size for p in directory.glob("part-*.parquet")) if directory.exists() else 0

    def snapshot_bytes(self) -> int:
        """Bytes of the weights file(s) and the manifest."""
        weights = sum(p.stat().st_size for p in self.out.glob("weights-*.safetensors"))
        manifest = self.out / "manifest.json"
        return weights + (manifest.stat().st_size if manifest.exists() else 0)
