"""Charged-particle crossings of a sensor layer: where they hit and what they deposit.

The reference simulator turns a shower profile into visible energy one sensor crossing
at a time. A crossing lands at radius ``r`` drawn from a core or a tail component of the
radial profile ``f(r) = 2 r R² / (r² + R²)²`` (inverse CDF ``r = R √(u / (1 − u))``)
at a uniform azimuth, and deposits a Landau-distributed energy whose most probable
value is one MIP of the sensor (:func:`landau_table`: quantiles of the Landau
distribution from :mod:`scipy.stats`, truncated at
:data:`~stream.showers.parameters.LANDAU_MAX_QUANTILE`, interpolated linearly). Hadronic
crossings may be heavily ionising (an exponential extra energy in MIP).
Crossings that land outside the grid are lost (lateral leakage).
"""

from __future__ import annotations

import functools
import math

import numba as nb
import numpy as np

from stream.showers.parameters import LANDAU_MAX_QUANTILE
from stream.showers.rng import sample_exponential, sample_uniform_pair

__all__ = ["deposit_crossings", "gamma_layer_fraction", "landau_energy", "landau_table"]

_TABLE_SIZE = 4096


@functools.lru_cache(maxsize=8)
def _standard_landau_quantiles(size: int, max_quantile: float) -> tuple[np.ndarray, float]:
    from scipy import optimize, stats

    u = np.linspace(0.0, max_quantile, size)
    u[0] = 1e-6
    quantiles = stats.landau.ppf(u)
    mode = optimize.minimize_scalar(lambda x: -stats.landau.pdf(x), bracket=(-1.0, 0.0, 1.0)).x
    return quantiles, float(mode)


def landau_table(mip_mev: float, width: float, max_quantile: float = LANDAU_MAX_QUANTILE) -> np.ndarray:
    """Quantile table of the energy of one crossing (MeV), most probable value ``mip_mev``.

    Args:
        mip_mev: most probable energy of a MIP crossing (MeV).
        width: Landau scale ξ relative to ``mip_mev``.
        max_quantile: highest quantile tabulated (truncates the delta-ray tail).

    Returns:
        float64 array of ``4096`` quantiles at equally spaced probabilities in
        ``[0, max_quantile]``; sample with ``table[u * (size − 1)]`` (interpolated).
    """
    quantiles, mode = _standard_landau_quantiles(_TABLE_SIZE, max_quantile)
    table = mip_mev * (1.0 + width * (quantiles - mode))
    return np.maximum(table, 0.0)


@nb.njit(inline="always", cache=True)
def landau_energy(u: float, table: np.ndarray) -> float:
    """Energy of one crossing (MeV) at probability ``u`` of the quantile ``table``."""
    x = u * (table.shape[0] - 1)
    i = int(x)
    return table[i] + (x - i) * (table[i + 1] - table[i])


@nb.njit(cache=True)
def deposit_crossings(
    state: np.ndarray,
    layer: np.ndarray,
    n: int,
    centre_x: float,
    centre_y: float,
    inv_cell_mm: float,
    r_core_mm: float,
    r_tail_mm: float,
    p_core: float,
    table: np.ndarray,
    heavy_fraction: float,
    heavy_mean_mev: float,
) -> int:
    """Add ``n`` crossings to ``layer`` (``(x, y)`` float32 MeV); return how many landed.

    Args:
        state: event random state (see :mod:`stream.showers.rng`).
        layer: the ``(n_x, n_y)`` slice of the event's dense grid, updated in place.
        n: number of crossings.
        centre_x: shower axis in cell units along x (``n_x / 2`` is the grid centre).
        centre_y: shower axis in cell units along y.
        inv_cell_mm: 1 / cell size (1/mm).
        r_core_mm: radius R of the core component (mm).
        r_tail_mm: radius R of the tail component (mm).
        p_core: probability of the core component.
        table: Landau quantile table in MeV (:func:`landau_table`).
        heavy_fraction: probability that a crossing is heavily ionising.
        heavy_mean_mev: mean extra energy of a heavily ionising crossing (MeV).
    """
    nx, ny = layer.shape
    landed = 0
    core = r_core_mm * inv_cell_mm
    tail = r_tail_mm * inv_cell_mm
    for _ in range(n):
        # 32-bit uniforms in pairs: component choice and radius, azimuth, Landau and heavy flag.
        u_component, u = sample_uniform_pair(state)
        radius = core if u_component < p_core else tail
        while True:
            a, b = sample_uniform_pair(state)
            a = 2.0 * a - 1.0
            b = 2.0 * b - 1.0
            s = a * a + b * b
            if 0.0 < s <= 1.0:
                break
        # r = R sqrt(u / (1 - u)) along the unit vector (a, b) / sqrt(s).
        scale = radius * math.sqrt(u / ((1.0 - u) * s))
        fx = centre_x + a * scale
        fy = centre_y + b * scale
        if fx < 0.0 or fy < 0.0 or fx >= nx or fy >= ny:
            continue
        u_landau, u_heavy = sample_uniform_pair(state)
        energy = landau_energy(u_landau, table)
        if heavy_fraction > 0.0 and u_heavy < heavy_fraction:
            energy += heavy_mean_mev * sample_exponential(state)
        layer[int(fx), int(fy)] += energy
        landed += 1
    return landed


@nb.njit(cache=True)
def _gamma_pdf(t: float, shape: float, rate: float, log_norm: float) -> float:
    if t <= 0.0:
        return 0.0
    return math.exp(log_norm + (shape - 1.0) * math.log(t) - rate * t)


@nb.njit(cache=True)
def gamma_layer_fraction(start: float, stop: float, shape: float, rate: float) -> float:
    """Fraction of a Gamma(shape, rate) profile between depths ``start`` and ``stop``.

    Simpson's rule on 8 intervals (profiles here have shape > 1 and vary slowly over one
    layer); depths below 0 contribute nothing.
    """
    lo = max(start, 0.0)
    if stop <= lo:
        return 0.0
    log_norm = shape * math.log(rate) - math.lgamma(shape)
    h = (stop - lo) / 8.0
    total = _gamma_pdf(lo, shape, rate, log_norm) + _gamma_pdf(stop, shape, rate, log_norm)
    for k in range(1, 8):
        weight = 4.0 if k % 2 == 1 else 2.0
        total += weight * _gamma_pdf(lo + k * h, shape, rate, log_norm)
    return total * h / 3.0
