"""A tiny, fast toy shower generator for tests, examples and benchmarks.

Not physics: a Gamma-shaped longitudinal profile starting after an exponentially
distributed depth, an exponential transverse spread around a slightly jittered axis, and
a visible energy with a stochastic resolution term. It has the knobs the validation tests
need (energy scale, a removed layer) and runs in milliseconds for thousands of showers.
The reference simulator lives in :mod:`stream.showers.simulator`; use that for anything
that should look like a real calorimeter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["toy_showers"]


def toy_showers(
    energies_gev: np.ndarray,
    seed: int,
    *,
    grid_shape: Sequence[int] = (12, 10, 10),
    energy_scale: float = 1.0,
    drop_layer: int | None = None,
    sampling_mev_per_gev: float = 10.0,
    deposits_per_gev: float = 8.0,
) -> np.ndarray:
    """Dense toy showers ``(N, layers, x, y)`` in MeV.

    Args:
        energies_gev: ``(N,)`` incident energies in GeV.
        seed: random seed; same seed, same showers.
        grid_shape: ``(layers, x, y)``.
        energy_scale: multiplies every cell energy (a miscalibration).
        drop_layer: index of a layer whose cells are set to zero (a dead layer).
        sampling_mev_per_gev: mean visible energy per incident GeV.
        deposits_per_gev: mean number of energy deposits per incident GeV.

    Returns:
        float32 array of cell energies.

    Example:
        >>> toy_showers(np.array([10.0, 20.0]), seed=1).shape
        (2, 12, 10, 10)
    """
    energies = np.asarray(energies_gev, dtype=np.float64).reshape(-1)
    if np.any(~np.isfinite(energies)) or np.any(energies <= 0):
        msg = "energies_gev must be finite and positive"
        raise ValueError(msg)
    n_layers, n_x, n_y = (int(s) for s in grid_shape)
    rng = np.random.default_rng(seed)
    n = energies.size
    n_dep = np.maximum(rng.poisson(deposits_per_gev * energies), 1)
    owner = np.repeat(np.arange(n), n_dep)
    total = n_dep.sum()

    resolution = np.sqrt(0.15**2 / energies + 0.01**2)
    visible = (
        sampling_mev_per_gev
        * energies
        * np.clip(1.0 + resolution * rng.standard_normal(n), 0.05, None)
    )
    start = rng.exponential(1.0, n)
    shape_a = 2.0 + 0.5 * np.log(energies)
    axis_x = rng.normal(0.0, 0.5, n)
    axis_y = rng.normal(0.0, 0.5, n)

    depth = start[owner] + rng.gamma(shape_a[owner], 1.6)
    radius = rng.exponential(1.2, total) * (1.0 + 0.05 * depth)
    phi = rng.uniform(0.0, 2.0 * np.pi, total)
    x = axis_x[owner] + radius * np.cos(phi) + n_x / 2.0
    y = axis_y[owner] + radius * np.sin(phi) + n_y / 2.0
    weight = rng.exponential(1.0, total)
    weight_sum = np.bincount(owner, weights=weight, minlength=n)
    weight = weight / weight_sum[owner] * visible[owner]

    layer = depth.astype(np.int64)
    ix = np.floor(x).astype(np.int64)
    iy = np.floor(y).astype(np.int64)
    inside = (layer < n_layers) & (ix >= 0) & (ix < n_x) & (iy >= 0) & (iy < n_y)
    flat = ((owner * n_layers + layer) * n_x + ix) * n_y + iy
    cells = np.bincount(flat[inside], weights=weight[inside], minlength=n * n_layers * n_x * n_y)
    showers = (cells * energy_scale).astype(np.float32).reshape(n, n_layers, n_x, n_y)
    if drop_layer is not None:
        if not 0 <= drop_layer < n_layers:
            msg = f"drop_layer must be in [0, {n_layers}), got {drop_layer!r}"
            raise ValueError(msg)
        showers[:, drop_layer] = 0.0
    return showers
