"""Flat ROOT event trees as a :class:`stream.source.Source` (read with uproot).

A TTree whose branches are numeric scalars (one value per entry) maps to an event topic:
every branch but ``event_id`` becomes a float32 feature column (:func:`stream.schema.event_schema`),
``event_id`` is taken from a branch of that name (any integer type) or, when the tree has
none, is the entry number. Jagged or non-numeric branches are refused, naming them. The
tree is read in chunks of ``batch_size`` entries (never whole), and ``batches(start_event)``
starts at that entry, so a replay can resume.

Spec: ``root:PATH[:TREE]``; a tree of calorimeter hits (jagged ``cell_index`` and
``cell_energy``) is a shower source instead (:mod:`stream.showers.sources`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from stream.errors import SourceError
from stream.schema import EVENT_ID, FEATURE_TYPE, event_schema

__all__ = ["RootEventSource"]


class RootEventSource:
    """Replays a flat TTree as event batches.

    Args:
        path: the ROOT file.
        tree: tree name.
        batch_size: entries per record batch.
        branches: feature branches to read (default: every branch but ``event_id``).

    Raises:
        SourceError: missing file or tree, jagged or non-numeric branches (named).
    """

    def __init__(self, path: str | Path, tree: str, batch_size: int = 20_000, branches: list[str] | None = None) -> None:
        import uproot

        self.path = Path(path)
        self.tree_name = tree
        self.batch_size = int(batch_size)
        if self.batch_size <= 0:
            msg = f"root: batch_size must be positive, got {batch_size!r}"
            raise SourceError(msg)
        self.spec = f"root:{self.path}:{tree}"
        with uproot.open(self.path) as handle:
            if tree not in handle:
                msg = f"root: tree {tree!r} not found in {str(self.path)!r}"
                raise SourceError(msg)
            ttree = handle[tree]
            self.n_entries = int(ttree.num_entries)
            names = list(ttree.keys())
            bad = [n for n in names if not _is_flat_numeric(ttree[n])]
            wanted = list(branches) if branches is not None else [n for n in names if n != EVENT_ID]
            missing = [b for b in wanted if b not in names]
            if missing:
                msg = f"root: branches {missing} not in tree {tree!r} of {str(self.path)!r} (branches: {names})"
                raise SourceError(msg)
            bad = [n for n in bad if n in wanted or n == EVENT_ID]
            if bad:
                types = {n: ttree[n].typename for n in bad}
                msg = (f"root: tree {tree!r} of {str(self.path)!r} has branches that are not one number per "
                       f"entry: {types}; only flat numeric branches map to event columns")
                raise SourceError(msg)
            if not wanted:
                msg = f"root: tree {tree!r} of {str(self.path)!r} has no feature branch (branches: {names})"
                raise SourceError(msg)
            self.features = wanted
            self.has_event_id = EVENT_ID in names
        self.schema: pa.Schema = event_schema(self.features)

    def __repr__(self) -> str:
        return f"RootEventSource({str(self.path)!r}, tree={self.tree_name!r}, entries={self.n_entries}, features={self.features})"

    def batches(self, start_event: int = 0) -> Iterator[pa.RecordBatch]:
        """Yield batches of ``batch_size`` entries from entry ``start_event``."""
        import uproot

        read = self.features + ([EVENT_ID] if self.has_event_id else [])
        with uproot.open(self.path) as handle:
            tree = handle[self.tree_name]
            for start in range(start_event, self.n_entries, self.batch_size):
                stop = min(start + self.batch_size, self.n_entries)
                arrays = tree.arrays(read, entry_start=start, entry_stop=stop, library="np")
                ids = arrays[EVENT_ID].astype(np.uint64) if self.has_event_id else np.arange(start, stop, dtype=np.uint64)
                columns = [pa.array(ids)]
                for name in self.features:
                    values = np.asarray(arrays[name], dtype=np.float64)
                    too_big = np.isfinite(values) & (np.abs(values) > np.finfo(np.float32).max)
                    if too_big.any():
                        msg = f"root: branch {name!r} value {values[too_big][0]!r} does not fit float32"
                        raise SourceError(msg)
                    columns.append(pa.array(values.astype(np.float32), type=FEATURE_TYPE))
                yield pa.RecordBatch.from_arrays(columns, schema=self.schema)


def _is_flat_numeric(branch: object) -> bool:
    interpretation = getattr(branch, "interpretation", None)
    dtype = getattr(interpretation, "to_dtype", None)
    if dtype is None or getattr(interpretation, "inner_shape", ()) not in ((), None):
        return False
    return np.dtype(dtype).kind in "iufb"
