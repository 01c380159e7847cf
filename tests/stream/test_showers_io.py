"""Shower file readers and writers: round trips, foreign files, bad files."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest
import uproot
import zarr

from stream.showers.errors import ShowerFileError
from stream.showers.io import detect_format, open_showers, read_all, read_chunks, write_showers


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    energies = rng.uniform(10, 100, 7).astype(np.float32)
    showers = np.where(
        rng.random((7, 30, 30, 30)) < 0.02, rng.exponential(0.3, (7, 30, 30, 30)), 0.0
    )
    return energies, showers.astype(np.float32)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("s.zarr", "zarr"), ("s.h5", "ild"), ("s.hdf5", "calochallenge"), ("s.root", "root")],
)
def test_round_trip_with_our_writer(
    tmp_path: Path, sample: tuple[np.ndarray, np.ndarray], name: str, fmt: str
) -> None:
    energies, showers = sample
    path = write_showers(tmp_path / name, energies, showers, "ecal", format=fmt)
    assert detect_format(path) == fmt
    chunk = read_all(path)
    np.testing.assert_allclose(chunk.energies, energies, rtol=1e-6)
    np.testing.assert_array_equal(chunk.showers, showers)
    np.testing.assert_array_equal(chunk.event_ids, np.arange(7))
    pieces = list(read_chunks(path, chunk_size=3))
    assert [p.showers.shape[0] for p in pieces] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([p.showers for p in pieces]), showers)
    with open_showers(path) as reader:
        assert reader.geometry is not None
        assert reader.geometry.name == "ecal"
        assert len(reader) == 7
        assert reader.grid_shape == (30, 30, 30)


def test_reads_foreign_ild_file(tmp_path: Path, sample: tuple[np.ndarray, np.ndarray]) -> None:
    energies, showers = sample
    path = tmp_path / "photons.hdf5"
    with h5py.File(path, "w") as handle:
        group = handle.create_group("30x30")
        group["energy"] = energies[:, None]
        group["layers"] = showers
    reader = open_showers(path)
    assert reader.format == "ild"
    assert reader.key == "30x30"
    assert reader.geometry.name == "ecal"
    np.testing.assert_array_equal(reader.read(2, 5).showers, showers[2:5])
    reader.close()


def test_reads_foreign_calochallenge_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    showers = rng.exponential(1.0, (4, 6480)).astype(np.float32)
    energies_mev = np.array([[1000.0], [2e4], [5e5], [1e6]])
    path = tmp_path / "dataset_2_1.hdf5"
    with h5py.File(path, "w") as handle:
        handle["incident_energies"] = energies_mev
        handle["showers"] = showers
    chunk = read_all(path)
    assert chunk.showers.shape == (4, 45, 16, 9)
    np.testing.assert_allclose(chunk.energies, energies_mev[:, 0] / 1000.0)
    np.testing.assert_array_equal(chunk.showers.reshape(4, -1), showers)


def test_reads_foreign_root_and_zarr(tmp_path: Path, sample: tuple[np.ndarray, np.ndarray]) -> None:
    energies, showers = sample
    flat = showers.reshape(7, -1)
    index = ak.Array([np.nonzero(row)[0].astype(np.int32) for row in flat])
    energy = ak.Array([row[row != 0] for row in flat])
    path = tmp_path / "hits.root"
    with uproot.recreate(path) as handle:
        tree = handle.mktree(
            "hits",
            {
                "incident_energy": np.float64,
                "cell_index": "var * int32",
                "cell_energy": "var * float32",
            },
        )
        tree.extend(
            {
                "incident_energy": energies.astype(np.float64),
                "cell_index": index,
                "cell_energy": energy,
            }
        )
    with pytest.raises(ShowerFileError, match="no 'grid_shape'"):
        open_showers(path)
    chunk = read_all(path, grid_shape=(30, 30, 30))
    np.testing.assert_array_equal(chunk.showers, showers)

    store = tmp_path / "plain.zarr"
    group = zarr.open_group(str(store), mode="w")
    group.create_array("incident_energy", data=energies)
    group.create_array("showers", data=showers, chunks=(2, 30, 30, 30))
    chunk = read_all(store)
    np.testing.assert_array_equal(chunk.showers, showers)
    assert open_showers(store).geometry.name == "ecal"


def test_bad_files_name_file_and_key(tmp_path: Path, sample: tuple[np.ndarray, np.ndarray]) -> None:
    energies, showers = sample
    missing = tmp_path / "missing.h5"
    with h5py.File(missing, "w") as handle:
        handle.create_group("30x30")["energy"] = energies[:, None]
    with pytest.raises(ShowerFileError, match=r"missing\.h5.*HDF5 file with keys \['30x30'\]"):
        detect_format(missing)
    with pytest.raises(ShowerFileError, match=r"missing\.h5.*'30x30/layers' missing"):
        open_showers(missing, "ild", key="30x30")

    wrong = tmp_path / "wrong.h5"
    with h5py.File(wrong, "w") as handle:
        group = handle.create_group("g")
        group["energy"] = energies[:5, None]
        group["layers"] = showers
    with pytest.raises(
        ShowerFileError, match=r"wrong\.h5.*g/energy, g/layers.*\(5, 1\).*\(7, 30, 30, 30\)"
    ):
        open_showers(wrong)

    calo = tmp_path / "calo.h5"
    with h5py.File(calo, "w") as handle:
        handle["incident_energies"] = np.ones((3, 1)) * 1e3
        handle["showers"] = np.zeros((3, 368))
    with pytest.raises(ShowerFileError, match=r"calo\.h5.*\[showers\]: 368 voxels"):
        open_showers(calo)

    root = tmp_path / "flat.root"
    with uproot.recreate(root) as handle:
        handle.mktree("showers", {"incident_energy": np.float32}).extend(
            {"incident_energy": energies}
        )
    with pytest.raises(
        ShowerFileError,
        match=r"flat\.root.*\[showers\]: branches \['cell_index', 'cell_energy'\] missing",
    ):
        open_showers(root)

    store = tmp_path / "bad.zarr"
    zarr.open_group(str(store), mode="w").create_array("showers", data=showers)
    with pytest.raises(ShowerFileError, match=r"bad\.zarr.*'incident_energy' missing"):
        open_showers(store)

    with pytest.raises(ShowerFileError, match="no such file"):
        detect_format(tmp_path / "nothing.h5")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ShowerFileError, match="unknown shower file format"):
        detect_format(text)


def test_nan_and_unit_checks(tmp_path: Path, sample: tuple[np.ndarray, np.ndarray]) -> None:
    energies, showers = sample
    path = tmp_path / "nan.h5"
    bad = showers.copy()
    bad[3, 0, 0, 0] = np.nan
    with h5py.File(path, "w") as handle:
        group = handle.create_group("30x30")
        group["energy"] = energies[:, None]
        group["layers"] = bad
    with open_showers(path) as reader:
        reader.read(0, 3)
        with pytest.raises(ShowerFileError, match=r"nan\.h5.*NaN"):
            reader.read(0, 7)
    with h5py.File(path, "a") as handle:
        handle["30x30"].attrs["energy_unit"] = "MeV"
    with pytest.raises(ShowerFileError, match="energy_unit is 'MeV'"):
        open_showers(path)


def test_zarr_writer_appends_in_chunks(tmp_path: Path) -> None:
    from stream.showers.io.zarr_format import ZarrShowerWriter
    from stream.showers.simulator import simulate

    energies = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    showers = simulate("ahcal", energies, seed=2)
    with ZarrShowerWriter(tmp_path / "a.zarr", "ahcal", chunk_events=2) as writer:
        writer.append(energies[:3], showers[:3])
        writer.append(energies[3:], showers[3:], event_ids=np.array([100, 101]))
        with pytest.raises(ShowerFileError, match=r"appending grid \(30, 30, 30\)"):
            writer.append(energies[:1], np.zeros((1, 30, 30, 30), np.float32))
    reader = open_showers(tmp_path / "a.zarr")
    assert reader.geometry is not None
    assert reader.geometry.name == "ahcal"
    chunk = reader.read_all()
    np.testing.assert_array_equal(chunk.showers, showers)
    np.testing.assert_array_equal(chunk.event_ids, [0, 1, 2, 100, 101])
    with pytest.raises(ShowerFileError, match="not a Zarr store"):
        detect_format(tmp_path)
