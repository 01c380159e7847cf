"""Flat ROOT event trees (uproot) as event sources: columns, ids, resume, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import uproot

from stream.errors import SourceError
from stream.readers.root_events import RootEventSource
from stream.sources import open_source


def _write(path: Path, n: int = 50, with_ids: bool = True) -> dict[str, np.ndarray]:
    data = {"mjj": np.linspace(1.0, 3.0, n), "n_jets": np.arange(n, dtype=np.int32) % 7}
    if with_ids:
        data["event_id"] = np.arange(1000, 1000 + n, dtype=np.int64)
    with uproot.recreate(path) as handle:
        handle.mktree("events", {k: v.dtype for k, v in data.items()}).extend(data)
    return data


def test_flat_tree_maps_branches_to_float32_columns(tmp_path: Path) -> None:
    data = _write(tmp_path / "ev.root")
    source = open_source(f"root:{tmp_path / 'ev.root'}:events", {"root": {"batch_size": 16}})
    assert isinstance(source, RootEventSource)
    assert source.schema.names == ["event_id", "mjj", "n_jets"]
    assert source.schema.field("mjj").type == pa.float32()
    table = pa.Table.from_batches(list(source.batches()))
    assert [b.num_rows for b in source.batches()] == [16, 16, 16, 2]
    np.testing.assert_array_equal(table.column("event_id").to_numpy(), data["event_id"])
    np.testing.assert_allclose(table.column("mjj").to_numpy(), data["mjj"], rtol=1e-7)
    np.testing.assert_array_equal(table.column("n_jets").to_numpy(), data["n_jets"])


def test_resume_and_synthesised_ids(tmp_path: Path) -> None:
    _write(tmp_path / "ev.root", with_ids=False)
    source = RootEventSource(tmp_path / "ev.root", "events", batch_size=20)
    resumed = pa.Table.from_batches(list(source.batches(33)))
    assert resumed.column("event_id").to_pylist() == list(range(33, 50))


def test_jagged_branch_and_missing_tree_are_named(tmp_path: Path) -> None:
    import awkward as ak

    path = tmp_path / "jagged.root"
    with uproot.recreate(path) as handle:
        handle["events"] = {"jet_pt": ak.Array([[1.0, 2.0], [3.0]]), "mjj": np.array([1.0, 2.0])}
    with pytest.raises(SourceError, match="jet_pt"):
        RootEventSource(path, "events")
    _write(tmp_path / "ev.root")
    with pytest.raises(SourceError, match="tree 'nope' not found"):
        RootEventSource(tmp_path / "ev.root", "nope")
    with pytest.raises(SourceError, match=r"branches \['pt'\] not in tree"):
        RootEventSource(tmp_path / "ev.root", "events", branches=["pt"])
