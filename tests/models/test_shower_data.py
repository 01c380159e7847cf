"""models.shower_data: densify per batch against a straightforward dense construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.shower_data import central_window, check_shower_buffer, crop, densify, to_sparse
from stream.showers.simulator import simulate
from stream.showers.sparse import batch_to_dense, dense_to_batch


def _buffer_from_arrow(n: int = 6) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """A sparse buffer built by hand from the stream's record batch of simulated showers."""
    energies = np.linspace(10.0, 90.0, n).astype(np.float32)
    dense = simulate("ecal", energies, seed=3)
    batch = dense_to_batch(np.arange(n), energies, dense, "ecal")
    index_col, energy_col = batch.column("cell_index"), batch.column("cell_energy")
    data = {
        "incident_energy": torch.from_numpy(energies.copy()),
        "cell_offsets": torch.from_numpy(np.asarray(index_col.offsets).astype(np.int64)),
        "cell_index": torch.from_numpy(np.asarray(index_col.values).astype(np.int64)),
        "cell_energy": torch.from_numpy(np.asarray(energy_col.values).astype(np.float32)),
        "grid_shape": torch.tensor([30, 30, 30]),
    }
    return data, batch_to_dense(batch)[2]


def test_densify_matches_dense_construction() -> None:
    data, dense = _buffer_from_arrow()
    check_shower_buffer(data, (30, 30, 30))
    index = torch.tensor([4, 0, 4, 2])
    got = densify(data, index)
    expected = torch.zeros(4, 30 * 30 * 30)
    for row, event in enumerate(index.tolist()):  # one cell at a time, as plainly as possible
        start, stop = int(data["cell_offsets"][event]), int(data["cell_offsets"][event + 1])
        for k in range(start, stop):
            expected[row, int(data["cell_index"][k])] += float(data["cell_energy"][k])
    assert torch.equal(got.reshape(4, -1), expected)
    assert torch.equal(got, torch.from_numpy(dense[index.numpy()]))


def test_window_densify_equals_crop_of_dense() -> None:
    data, dense = _buffer_from_arrow()
    window = central_window((30, 30, 30), (10, 10))
    assert window == (slice(10, 20), slice(10, 20))
    index = torch.arange(6)
    assert torch.equal(densify(data, index, window=window), crop(torch.from_numpy(dense), (10, 10)))


def test_to_sparse_round_trip_and_empty_shower() -> None:
    showers = torch.zeros(3, 2, 3, 4)
    showers[0, 1, 2, 3] = 1.5
    showers[2, 0, 0, 0] = 2.0
    data = to_sparse(torch.tensor([1.0, 2.0, 3.0]), showers)
    assert data["cell_offsets"].tolist() == [0, 1, 1, 2]
    assert torch.equal(densify(data, torch.arange(3)), showers)


def test_check_names_the_problem() -> None:
    data, _ = _buffer_from_arrow(2)
    with pytest.raises(ValueError, match="grid_shape"):
        check_shower_buffer(data, (48, 25, 25))
    bad = dict(data, cell_index=data["cell_index"] + 27_000)
    with pytest.raises(ValueError, match="outside the grid"):
        check_shower_buffer(bad)
    with pytest.raises(ValueError, match="lacks"):
        check_shower_buffer({k: v for k, v in data.items() if k != "cell_energy"})
    with pytest.raises(ValueError, match="does not fit"):
        central_window((30, 30, 30), (40, 10))
