"""Shower sources: contract (schema, determinism, resume) for the simulator and files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import uproot

from stream.errors import SourceError
from stream.schema import validate_batch
from stream.showers.io import write_showers
from stream.showers.simulator import simulate
from stream.showers.sparse import batch_to_dense
from stream.source import Source
from stream.sources import open_source


def _events(source: Source, start: int = 0) -> pa.Table:
    return pa.Table.from_batches(list(source.batches(start)), schema=source.schema)


def _check_contract(source: Source, n: int) -> None:
    assert isinstance(source, Source)
    batches = list(source.batches())
    for batch in batches:
        validate_batch(batch, source.schema)
    table = pa.Table.from_batches(batches, schema=source.schema)
    assert table.num_rows == n
    resumed = _events(source, 3)
    assert resumed.equals(table.slice(3))


@pytest.mark.parametrize("geometry", ["ecal", "ahcal"])
def test_simulator_source_contract(geometry: str) -> None:
    options = {
        "showers": {
            "n_events": 7,
            "batch_size": 3,
            "seed": 9,
            "energy_min": 20.0,
            "energy_max": 30.0,
        }
    }
    source = open_source(f"showers:{geometry}", options)
    assert source.spec == f"showers:{geometry}"
    _check_contract(source, 7)
    again = _events(open_source(f"showers:{geometry}", options))
    assert again.equals(_events(source))
    energies = again.column("incident_energy").to_numpy()
    assert energies.min() >= 20.0
    assert energies.max() <= 30.0
    # The batch holds exactly what simulate() makes for the same energies and seed.
    ids, e, dense = batch_to_dense(next(source.batches()))
    np.testing.assert_array_equal(dense, simulate(geometry, e, seed=9)[: len(ids)])


def test_simulator_source_endless_and_bad_options() -> None:
    source = open_source("showers:ecal", {"showers": {"batch_size": 2}})
    first = next(source.batches(10))
    assert first.column("event_id").to_pylist() == [10, 11]
    with pytest.raises(SourceError, match="unknown shower geometry"):
        open_source("showers:fcal")
    with pytest.raises(SourceError, match="batch_size"):
        open_source("showers:ecal", {"showers": {"batch_size": 0}})
    with pytest.raises(SourceError, match="unexpected keyword"):
        open_source("showers:ecal", {"showers": {"n_event": 3}})


@pytest.mark.parametrize(
    ("kind", "name", "fmt"),
    [
        ("zarr", "s.zarr", "zarr"),
        ("ild", "s.h5", "ild"),
        ("calochallenge", "c.h5", "calochallenge"),
        ("root", "s.root", "root"),
    ],
)
def test_file_source_contract(tmp_path: Path, kind: str, name: str, fmt: str) -> None:
    energies = np.linspace(10, 50, 8)
    showers = simulate("ahcal", energies, seed=1)
    path = write_showers(tmp_path / name, energies, showers, "ahcal", format=fmt)
    source = open_source(f"{kind}:{path}", {kind: {"batch_size": 3}})
    _check_contract(source, 8)
    _, e, dense = batch_to_dense(
        pa.Table.from_batches(list(source.batches())).combine_chunks().to_batches()[0]
    )
    np.testing.assert_array_equal(dense, showers)
    np.testing.assert_allclose(e, energies, rtol=1e-6)


def test_root_source_tree_argument_and_flat_trees(tmp_path: Path) -> None:
    energies = np.array([10.0, 20.0])
    path = write_showers(
        tmp_path / "s.root", energies, simulate("ecal", energies, 0), "ecal", tree="hits"
    )
    source = open_source(f"root:{path}:hits")
    assert source.spec == f"root:{path}:hits"
    assert sum(b.num_rows for b in source.batches()) == 2
    flat = tmp_path / "flat.root"
    with uproot.recreate(flat) as handle:
        handle.mktree("events", {"mjj": np.float64}).extend({"mjj": np.array([1.0, 2.0])})
    events = open_source(f"root:{flat}:events")  # a flat tree is an event source
    assert events.schema.names == ["event_id", "mjj"]
    assert next(iter(events.batches())).column("mjj").to_pylist() == [1.0, 2.0]
    with pytest.raises(SourceError, match="does not exist"):
        open_source(f"root:{tmp_path / 'none.root'}")
    with pytest.raises(SourceError, match="needs a path"):
        open_source("zarr")
