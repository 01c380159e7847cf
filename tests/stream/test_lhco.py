"""The LHC Olympics R&D reader on small files written in pandas' HDF5 layouts."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("fastjet")

from stream.errors import SourceError  # noqa: E402
from stream.jets import DIJET_FEATURES, dijet_features  # noqa: E402
from stream.readers.lhco import LHCOSource, lhco_particles  # noqa: E402
from stream.sources import open_source  # noqa: E402

N_EVENTS, N_PARTICLES = 23, 700


def _rows(seed: int = 0, label: bool = True) -> np.ndarray:
    """LHCO-like rows: two back-to-back sprays of hadrons, zero-padded to 700 particles."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((N_EVENTS, 3 * N_PARTICLES + int(label)))
    for i in range(N_EVENTS):
        n = int(rng.integers(60, 300))
        pt = np.sort(rng.exponential(20.0, n))[::-1] + 0.5
        side = rng.random(n) < 0.5
        eta = np.where(side, 0.4, -0.3) + rng.normal(0, 0.3, n)
        phi = np.mod(np.where(side, 0.0, np.pi) + rng.normal(0, 0.3, n) + np.pi, 2 * np.pi) - np.pi
        rows[i, : 3 * n] = np.column_stack([pt, eta, phi]).ravel()
        if label:
            rows[i, -1] = float(i % 3 == 0)
    return rows


def _write_fixed(path: Path, rows: np.ndarray, transposed: bool = True) -> None:
    """The layout of ``DataFrame(rows).to_hdf(path, key="df")`` (pandas' fixed format)."""
    with h5py.File(path, "w") as f:
        group = f.create_group("df")
        group.attrs.update({"pandas_type": "frame", "ndim": 2, "nblocks": 1, "encoding": "UTF-8", "errors": "strict"})
        columns = np.arange(rows.shape[1], dtype=np.int64)
        for name, index in (("axis0", columns), ("axis1", np.arange(rows.shape[0], dtype=np.int64)), ("block0_items", columns)):
            group.attrs[f"{name}_variety"] = "regular"
            axis = group.create_dataset(name, data=index)
            axis.attrs.update({"kind": "integer", "transposed": np.uint8(1)})
        values = group.create_dataset("block0_values", data=rows if transposed else rows.T)
        values.attrs["transposed"] = np.uint8(transposed)


def _write_table(path: Path, rows: np.ndarray) -> None:
    """The layout of ``to_hdf(..., format="table")``: a compound dataset ``table``."""
    dtype = np.dtype([("index", np.int64), ("values_block_0", np.float64, (rows.shape[1],))])
    table = np.zeros(rows.shape[0], dtype=dtype)
    table["index"] = np.arange(rows.shape[0])
    table["values_block_0"] = rows
    with h5py.File(path, "w") as f:
        group = f.create_group("df")
        group.attrs["pandas_type"] = "frame_table"
        group["table"] = table


def _expected(rows: np.ndarray) -> dict[str, np.ndarray]:
    features = dijet_features(*lhco_particles(rows, N_PARTICLES))
    return {k: v.astype(np.float32) for k, v in features.items()}


def _read(source: LHCOSource, start: int = 0) -> pa.Table:
    return pa.Table.from_batches(list(source.batches(start)), schema=source.schema)


@pytest.mark.parametrize("layout", ["fixed", "fixed-untransposed", "table"])
def test_reads_pandas_layouts_to_the_generator_features(tmp_path: Path, layout: str) -> None:
    rows = _rows()
    path = tmp_path / "rnd.h5"
    if layout == "table":
        _write_table(path, rows)
    else:
        _write_fixed(path, rows, transposed=layout == "fixed")
    source = open_source(f"lhco:{path}", {"lhco": {"batch_size": 5}})
    assert isinstance(source, LHCOSource)
    assert (source.n_rows, source.n_particles, source.has_label) == (N_EVENTS, 700, True)
    table = _read(source)
    expected = _expected(rows)
    assert table.column("event_id").to_pylist() == list(range(N_EVENTS))
    for name in (*DIJET_FEATURES, "pt_lead"):
        np.testing.assert_array_equal(table.column(name).to_numpy(), expected[name])
    assert table.column("is_signal").to_pylist() == [float(i % 3 == 0) for i in range(N_EVENTS)]
    # Hard sprays of ~100 GeV jets: masses and m_jj are in the expected range.
    assert np.all(table.column("mjj").to_numpy() > table.column("mj1").to_numpy())
    assert 0.3 < float(np.median(table.column("tau21_j1").to_numpy())) < 1.0
    resumed = _read(source, start=7)
    assert resumed.column("event_id").to_pylist() == list(range(7, N_EVENTS))
    np.testing.assert_array_equal(resumed.column("mjj").to_numpy(), expected["mjj"][7:])


def test_black_box_file_without_label_has_no_truth_column(tmp_path: Path) -> None:
    path = tmp_path / "bb.h5"
    _write_fixed(path, _rows(label=False))
    source = LHCOSource(path)
    assert not source.has_label
    assert "is_signal" not in source.schema.names
    assert _read(source).num_rows == N_EVENTS


def test_files_written_by_pandas_read_back(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    rows = _rows(seed=3)
    expected = _expected(rows)
    for fmt in ("fixed", "table"):
        path = tmp_path / f"{fmt}.h5"
        pd.DataFrame(rows).to_hdf(path, key="df", format=fmt)
        table = _read(LHCOSource(path, batch_size=10))
        np.testing.assert_array_equal(table.column("mjj").to_numpy(), expected["mjj"])
        np.testing.assert_array_equal(table.column("is_signal").to_numpy(), rows[:, -1].astype(np.float32))
    # ...and our h5py layout is one pandas reads as the same frame.
    ours = tmp_path / "ours.h5"
    _write_fixed(ours, rows)
    np.testing.assert_array_equal(pd.read_hdf(ours, key="df").to_numpy(), rows)


def test_replay_writes_the_five_features(tmp_path: Path) -> None:
    from stream.replay import main

    path, out = tmp_path / "rnd.h5", tmp_path / "events.parquet"
    _write_fixed(path, _rows())
    assert main(["--source", f"lhco:{path}", "--events", "10", "--out", str(out), "--no-progress"]) == 0
    table = pq.read_table(out)
    assert table.num_rows == 10
    assert set(DIJET_FEATURES) <= set(table.column_names)
    np.testing.assert_array_equal(table.column("mj1").to_numpy(), _expected(_rows())["mj1"][:10])


def test_clear_errors_for_other_layouts(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        LHCOSource(tmp_path / "missing.h5")
    wrong = tmp_path / "wrong.h5"
    _write_fixed(wrong, np.zeros((4, 2102)))
    with pytest.raises(SourceError, match=r"2102 columns \(stored shape \(4, 2102\)\)"):
        LHCOSource(wrong)
    with pytest.raises(SourceError, match=r"key 'events' not found .* \(keys: \['df'\]\)"):
        LHCOSource(wrong, key="events")
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["df"] = np.zeros((3, 2101))
    with pytest.raises(SourceError, match=r"plain dataset of shape \(3, 2101\)"):
        LHCOSource(plain)
    bad_label = tmp_path / "label.h5"
    rows = _rows()
    rows[4, -1] = 2.0
    _write_fixed(bad_label, rows)
    with pytest.raises(SourceError, match="row 4 .* has label 2.0"):
        _read(LHCOSource(bad_label))
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(SourceError, match="not an HDF5 file"):
        LHCOSource(text)
    with pytest.raises(SourceError, match="unknown options"):
        open_source(f"lhco:{wrong}", {"lhco": {"chunk": 3}})
