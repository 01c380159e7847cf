"""Sparse shower buffers, densified one batch at a time.

A shower buffer reaches a model as a mapping of name to tensor (CSR layout, one row per
shower):

* ``"incident_energy"``: ``(N,)`` float32, GeV;
* ``"cell_offsets"``: ``(N + 1,)`` int64 row pointers into the cell arrays;
* ``"cell_index"``: ``(nnz,)`` int64 flat index into the ``(L, X, Y)`` grid (C order,
  layer slowest);
* ``"cell_energy"``: ``(nnz,)`` float32, MeV;
* ``"grid_shape"``: ``(3,)`` int64, ``(L, X, Y)``.

:func:`densify` builds the dense ``(b, L, X, Y)`` grids of the rows one batch needs, so a
buffer of 10 000 ECAL showers costs about 4 % of its dense 1.08 GB. :func:`central_window`
and :func:`crop` cut the central ``size_x × size_y`` columns of every layer (the ``small``
BIB-AE preset models the central 10 × 10 × 30 region of the 30 × 30 × 30 ECAL grid).
:func:`to_sparse` builds a buffer from dense grids (tests, benchmarks, offline tools).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping

import torch

from models.bootstrap import derive_seed

__all__ = [
    "SHOWER_KEYS",
    "ShuffledPasses",
    "central_window",
    "check_shower_buffer",
    "crop",
    "densify",
    "grid_shape",
    "n_showers",
    "to_sparse",
]

SHOWER_KEYS = ("incident_energy", "cell_offsets", "cell_index", "cell_energy", "grid_shape")
"""Keys every sparse shower buffer holds."""


def grid_shape(data: Mapping[str, torch.Tensor]) -> tuple[int, int, int]:
    """The ``(L, X, Y)`` grid shape of a shower buffer.

    Raises:
        ValueError: ``grid_shape`` missing or not three positive integers.
    """
    if "grid_shape" not in data:
        msg = f"shower buffer lacks 'grid_shape' (has {sorted(data)})"
        raise ValueError(msg)
    shape = tuple(int(s) for s in torch.as_tensor(data["grid_shape"]).reshape(-1).tolist())
    if len(shape) != 3 or min(shape) < 1:
        msg = f"shower buffer 'grid_shape' must be three positive integers (L, X, Y), got {shape}"
        raise ValueError(msg)
    return shape  # type: ignore[return-value]


def n_showers(data: Mapping[str, torch.Tensor]) -> int:
    """Number of showers in a buffer (rows of ``cell_offsets`` minus one)."""
    return int(data["cell_offsets"].numel()) - 1


def check_shower_buffer(
    data: Mapping[str, torch.Tensor], expected_shape: tuple[int, int, int] | None = None
) -> None:
    """Check the keys, dtypes and lengths of a sparse shower buffer.

    Args:
        data: the buffer.
        expected_shape: the grid a model was built for (None: any).

    Raises:
        ValueError: a missing key, a wrong length or dtype, unsorted row pointers, a cell
            index outside the grid, non-finite energies or a grid of another shape; the
            message names the key and the values.
    """
    missing = [k for k in SHOWER_KEYS if k not in data]
    if missing:
        msg = (
            f"shower buffer lacks {missing} (has {sorted(data)}); expected keys {list(SHOWER_KEYS)}"
        )
        raise ValueError(msg)
    shape = grid_shape(data)
    if expected_shape is not None and shape != tuple(expected_shape):
        msg = f"shower buffer has grid_shape {shape}, the model expects {tuple(expected_shape)}"
        raise ValueError(msg)
    offsets, index, energy = data["cell_offsets"], data["cell_index"], data["cell_energy"]
    incident = data["incident_energy"]
    if offsets.dim() != 1 or offsets.numel() < 1 or offsets.dtype != torch.int64:
        msg = f"shower buffer 'cell_offsets' must be a 1-D int64 tensor of N + 1 row pointers, got {offsets.dtype} {tuple(offsets.shape)}"
        raise ValueError(msg)
    n = offsets.numel() - 1
    if incident.shape != (n,):
        msg = f"shower buffer 'incident_energy' has shape {tuple(incident.shape)}, expected ({n},) from cell_offsets"
        raise ValueError(msg)
    if index.dim() != 1 or energy.shape != index.shape or index.dtype != torch.int64:
        msg = (
            f"shower buffer 'cell_index' ({index.dtype} {tuple(index.shape)}) and 'cell_energy' "
            f"({tuple(energy.shape)}) must be 1-D of equal length, cell_index int64"
        )
        raise ValueError(msg)
    if (
        int(offsets[0]) != 0
        or int(offsets[-1]) != index.numel()
        or bool((offsets[1:] < offsets[:-1]).any())
    ):
        msg = f"shower buffer 'cell_offsets' must rise from 0 to nnz = {index.numel()}, got {int(offsets[0])} .. {int(offsets[-1])}"
        raise ValueError(msg)
    n_cells = shape[0] * shape[1] * shape[2]
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n_cells):
        msg = f"shower buffer 'cell_index' has values in [{int(index.min())}, {int(index.max())}], outside the grid {shape} (0..{n_cells - 1})"
        raise ValueError(msg)
    if not bool(torch.isfinite(energy).all()) or not bool(torch.isfinite(incident).all()):
        msg = "shower buffer has non-finite 'cell_energy' or 'incident_energy' values"
        raise ValueError(msg)


def densify(
    data: Mapping[str, torch.Tensor],
    index: torch.Tensor,
    *,
    device: torch.device | str | None = None,
    window: tuple[slice, slice] | None = None,
) -> torch.Tensor:
    """Dense grids of the showers ``index`` of a sparse buffer.

    Args:
        data: a sparse shower buffer (see the module docstring).
        index: ``(b,)`` int64 row numbers (any order, repeats allowed).
        device: where to build the grids (default: the device of ``cell_energy``).
        window: optional ``(x slice, y slice)`` (from :func:`central_window`): only the
            cells inside it are scattered, giving ``(b, L, x, y)`` of the window.

    Returns:
        ``(b, L, X, Y)`` float32 MeV (the window's size when one is given). Cells listed
        twice in a row are summed.

    Example:
        >>> data = to_sparse(torch.tensor([10.0]), torch.arange(8.0).reshape(1, 2, 2, 2))
        >>> densify(data, torch.tensor([0, 0]))[1, 1, 1]
        tensor([6., 7.])
    """
    shape = grid_shape(data)
    offsets = data["cell_offsets"]
    index = torch.as_tensor(index, dtype=torch.int64).to(offsets.device)
    target = torch.device(device) if device is not None else data["cell_energy"].device
    starts, stops = offsets[index], offsets[index + 1]
    counts = stops - starts
    total = int(counts.sum())
    rows = torch.repeat_interleave(torch.arange(index.numel(), device=offsets.device), counts)
    # position of every selected cell in the cell arrays: start of its row + rank within it
    first = torch.cumsum(counts, 0) - counts
    within = torch.arange(total, device=offsets.device) - torch.repeat_interleave(first, counts)
    positions = torch.repeat_interleave(starts, counts) + within
    cells = data["cell_index"][positions]
    values = data["cell_energy"][positions].to(torch.float32)
    layers, n_x, n_y = shape
    if window is not None:
        x_slice, y_slice = window
        x0, x1 = x_slice.start or 0, x_slice.stop if x_slice.stop is not None else n_x
        y0, y1 = y_slice.start or 0, y_slice.stop if y_slice.stop is not None else n_y
        layer, rest = torch.div(cells, n_x * n_y, rounding_mode="floor"), cells % (n_x * n_y)
        x, y = torch.div(rest, n_y, rounding_mode="floor"), rest % n_y
        keep = (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
        n_x, n_y = x1 - x0, y1 - y0
        cells = (layer[keep] * n_x + (x[keep] - x0)) * n_y + (y[keep] - y0)
        rows, values = rows[keep], values[keep]
    out = torch.zeros(index.numel(), layers * n_x * n_y, dtype=torch.float32, device=target)
    out.index_put_((rows.to(target), cells.to(target)), values.to(target), accumulate=True)
    return out.view(index.numel(), layers, n_x, n_y)


def central_window(shape: tuple[int, int, int], size: tuple[int, int]) -> tuple[slice, slice]:
    """The central ``size`` columns of an ``(L, X, Y)`` grid, as ``(x slice, y slice)``.

    The window starts at ``(X - size_x) // 2``: for the 30 × 30 ECAL grid (photons enter at
    the corner of the four central cells, between cells 14 and 15) a 10 × 10 window covers
    cells 10..19 in x and in y, five cells on each side of the beam.

    Raises:
        ValueError: a window larger than the grid or not positive.

    Example:
        >>> central_window((30, 30, 30), (10, 10))
        (slice(10, 20, None), slice(10, 20, None))
    """
    _, n_x, n_y = shape
    size_x, size_y = size
    if not (0 < size_x <= n_x and 0 < size_y <= n_y):
        msg = f"central window {tuple(size)} does not fit the grid {tuple(shape)} (x, y sizes 1..{n_x}, 1..{n_y})"
        raise ValueError(msg)
    x0, y0 = (n_x - size_x) // 2, (n_y - size_y) // 2
    return slice(x0, x0 + size_x), slice(y0, y0 + size_y)


def crop(showers: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The central ``size`` columns of dense ``(..., L, X, Y)`` showers (a view).

    Example:
        >>> crop(torch.zeros(2, 30, 30, 30), (10, 10)).shape
        torch.Size([2, 30, 10, 10])
    """
    x_slice, y_slice = central_window(tuple(showers.shape[-3:]), size)  # type: ignore[arg-type]
    return showers[..., x_slice, y_slice]


def to_sparse(incident_energy: torch.Tensor, showers: torch.Tensor) -> dict[str, torch.Tensor]:
    """A sparse shower buffer from dense grids (non-zero cells, increasing index).

    Args:
        incident_energy: ``(N,)`` GeV.
        showers: ``(N, L, X, Y)`` MeV.

    Raises:
        ValueError: shapes that disagree.

    Example:
        >>> data = to_sparse(torch.tensor([5.0]), torch.tensor([[[[0.0, 2.0]]]]))
        >>> data["cell_index"].tolist(), data["cell_offsets"].tolist()
        ([1], [0, 1])
    """
    showers = torch.as_tensor(showers)
    if showers.dim() != 4 or torch.as_tensor(incident_energy).shape != (showers.shape[0],):
        msg = (
            f"to_sparse: need showers (N, L, X, Y) and incident_energy (N,), got {tuple(showers.shape)} "
            f"and {tuple(torch.as_tensor(incident_energy).shape)}"
        )
        raise ValueError(msg)
    flat = showers.reshape(showers.shape[0], -1)
    rows, cells = torch.nonzero(flat, as_tuple=True)
    counts = torch.bincount(rows, minlength=flat.shape[0])
    offsets = torch.zeros(flat.shape[0] + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(counts, 0)
    return {
        "incident_energy": torch.as_tensor(incident_energy, dtype=torch.float32).clone(),
        "cell_offsets": offsets,
        "cell_index": cells.to(torch.int64),
        "cell_energy": flat[rows, cells].to(torch.float32),
        "grid_shape": torch.tensor(showers.shape[1:], dtype=torch.int64),
    }


class ShuffledPasses:
    """The pass loop of a shower model: up to ``n_iter`` seeded, shuffled passes in batches.

    Iterating yields ``(pass_index, index, noise)`` per batch: the rows of the buffer for
    the batch and the pass's noise generator (on ``device``). The order of pass ``p`` of
    buffer ``b`` comes from ``derive_seed(seed, ORDER_TAG, b, p)`` on a CPU generator and
    its noise from ``derive_seed(seed, NOISE_TAG, b, p)``, so a pass replays exactly after
    a resume. :meth:`record` adds a batch's figures to the pass's averages (weighted by the
    batch's showers; non-finite values, from a skipped step, are left out); after every
    pass ``stop(passes_done)`` is asked and True ends the loop.

    After the loop, :attr:`passes` is the number of passes done and :attr:`means` the
    averages of the last pass.
    """

    ORDER_TAG = 2
    NOISE_TAG = 3

    def __init__(
        self,
        n: int,
        n_iter: int,
        batch_size: int,
        *,
        seed: int,
        buffers_seen: int,
        device: torch.device | str = "cpu",
        stop: Callable[[int], bool] | None = None,
    ) -> None:
        self.n, self.n_iter, self.batch_size = n, n_iter, batch_size
        self.seed, self.buffers_seen, self.device, self.stop = seed, buffers_seen, device, stop
        self.passes = 0
        self.means: dict[str, float] = {}
        self._totals: dict[str, float] = {}
        self._counts: dict[str, float] = {}

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor, torch.Generator]]:
        for pass_index in range(self.n_iter):
            order_generator = torch.Generator().manual_seed(
                derive_seed(self.seed, self.ORDER_TAG, self.buffers_seen, pass_index)
            )
            noise = torch.Generator(device=self.device)
            noise.manual_seed(derive_seed(self.seed, self.NOISE_TAG, self.buffers_seen, pass_index))
            order = torch.randperm(self.n, generator=order_generator)
            self._totals, self._counts = {}, {}
            for start in range(0, self.n, self.batch_size):
                yield pass_index, order[start : start + self.batch_size], noise
            self.means = {key: value / self._counts[key] for key, value in self._totals.items()}
            self.passes += 1
            if self.stop is not None and self.stop(self.passes):
                return

    def record(self, figures: Mapping[str, float], weight: float) -> None:
        """Add one batch's figures to the current pass's averages, with ``weight`` showers."""
        for key, value in figures.items():
            if math.isfinite(value):
                self._totals[key] = self._totals.get(key, 0.0) + value * weight
                self._counts[key] = self._counts.get(key, 0.0) + weight
