"""Showers stay sparse in the double buffer and densify per batch to exactly the input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emulator.adapter import ShowerAdapter
from emulator.double_buffer import OFFSETS, Buffer
from models.shower_data import densify
from stream.errors import SchemaError
from stream.showers.simulator import simulate
from stream.showers.sparse import dense_to_batch


def _batch(n: int, seed: int, first_id: int = 0) -> tuple[np.ndarray, object]:
    energies = np.linspace(10, 90, n).astype(np.float32)
    showers = simulate("ecal", energies, seed=seed, first_event=first_id)
    return showers, dense_to_batch(np.arange(first_id, first_id + n), energies, showers, "ecal")


def test_sparse_buffer_densifies_to_the_input_and_is_small() -> None:
    dense_a, batch_a = _batch(30, seed=1)
    dense_b, batch_b = _batch(25, seed=2, first_id=30)
    adapter = ShowerAdapter(batch_a.schema)
    buffer = Buffer(40, adapter.layout)
    taken = 0
    for batch in (batch_a, batch_b):
        rows = np.arange(batch.num_rows)
        ids, values = adapter.rows(batch, rows)
        taken += buffer.add(ids, values)
    assert taken == 40
    assert buffer.full
    view = buffer.view()
    data = {k: torch.from_numpy(v) for k, v in view.items()}
    data.update({k: torch.as_tensor(v) for k, v in adapter.constants.items()})
    expected = np.concatenate([dense_a, dense_b[:10]])
    index = torch.tensor([0, 5, 29, 30, 39])
    torch.testing.assert_close(densify(data, index), torch.from_numpy(expected[index.numpy()]), rtol=0, atol=0)
    assert view[OFFSETS][-1] == np.count_nonzero(expected)
    dense_bytes = 40 * 30 * 30 * 30 * 4
    assert buffer.nbytes < dense_bytes / 3  # 512 cells an event to start with vs 27 000


def test_ragged_storage_grows_when_showers_have_many_hits() -> None:
    dense, batch = _batch(12, seed=3)
    adapter = ShowerAdapter(batch.schema)
    buffer = Buffer(12, adapter.layout)
    before = buffer.columns["cell_energy"].shape[0]
    for start in range(0, 12, 4):  # several adds, so growth keeps what is already there
        ids, values = adapter.rows(batch, np.arange(start, start + 4))
        buffer.add(ids, values)
    data = {k: torch.from_numpy(v) for k, v in buffer.view().items()}
    data.update({k: torch.as_tensor(v) for k, v in adapter.constants.items()})
    assert int(data[OFFSETS][-1]) > before  # it had to grow
    torch.testing.assert_close(densify(data, torch.arange(12)), torch.from_numpy(dense), rtol=0, atol=0)


def test_cell_outside_the_grid_names_the_event() -> None:
    import pyarrow as pa

    _, batch = _batch(2, seed=4)
    index = batch.column("cell_index").to_pylist()
    index[1][0] = 27_000
    bad = batch.set_column(batch.schema.get_field_index("cell_index"), batch.schema.field("cell_index"),
                           pa.array(index, type=pa.list_(pa.int32())))
    with pytest.raises(SchemaError, match="shower event 1: cell index 27000 outside the grid"):
        ShowerAdapter(bad.schema).rows(bad, np.arange(2))
