"""Numba kernel of hadron (pion) showers in a sampling calorimeter.

Per event:

1. The first inelastic interaction happens at an exponential depth (mean: the pion
   interaction length). Every sensor in front of it sees one MIP crossing in the cell
   on the beam axis; a pion that does not interact crosses the whole detector as a MIP
   track.
2. The electromagnetic fraction ``f_em`` is drawn from a Beta distribution around
   Groom's mean ``1 − (E/E0)^(m−1)``.
3. From the interaction point, the longitudinal profile is Bock's: an electromagnetic
   Gamma(a, b) term in X0 carrying ``f_em`` and a hadronic Gamma(a, d) term in λI
   carrying ``1 − f_em``, with ``a`` fluctuating event by event. Each term's visible
   track length (the hadronic one scaled by ``h/e``) is spread over the layers, and the
   number of crossings per sensor is Poisson, as for electromagnetic showers.
4. Electromagnetic crossings follow the GFlash radial profile (Molière radius of the
   sandwich); hadronic crossings a core + halo profile widening with depth, and some
   are heavily ionising (an exponential extra energy; the number of hadronic crossings
   is lowered so that ``h/e`` stays the ratio of visible energies, which enlarges the
   hadronic sampling fluctuations). Everything deposits Landau energies around one MIP.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np

from stream.showers.deposit import deposit_crossings, gamma_layer_fraction
from stream.showers.rng import sample_beta, sample_exponential, sample_normal, sample_poisson

__all__ = ["simulate_hadron_showers"]


@nb.njit(cache=True)
def _hadron_event(
    energy_gev: float,
    state: np.ndarray,
    boundaries_x0: np.ndarray,
    lambda_per_x0: float,
    critical_energy_mev: float,
    atomic_number: float,
    moliere_radius_mm: float,
    inv_cell_mm: float,
    visible_fraction: float,
    mip_mev: float,
    landau_mean_mev: float,
    em: Any,
    had: Any,
    table: np.ndarray,
    grid: np.ndarray,
) -> None:
    n_layers, nx, ny = grid.shape
    centre_x = 0.5 * nx
    centre_y = 0.5 * ny
    ln_e = math.log(energy_gev)
    start_lambda = had.interaction_length_ratio * sample_exponential(state)
    start_x0 = start_lambda / lambda_per_x0
    # Electromagnetic fraction, Beta around Groom's mean.
    mean_em = 1.0 - (energy_gev / had.em_fraction_e0_gev) ** (had.em_fraction_m - 1.0)
    mean_em = min(max(mean_em, 0.02), 0.98)
    kappa = had.em_fraction_concentration
    f_em = sample_beta(state, mean_em * kappa, (1.0 - mean_em) * kappa)
    shape = (had.shape_a0 + had.shape_a1 * ln_e) * math.exp(had.shape_sigma * sample_normal(state))
    shape = max(shape, had.shape_min)
    rate_em = had.em_slope_b
    rate_had = max(had.had_slope_d0 + had.had_slope_d1 * ln_e, 0.05)
    t_max_em = (shape - 1.0) / rate_em
    tracks_em = visible_fraction * f_em * energy_gev * 1000.0 / critical_energy_mev
    heavy_mev = had.heavy_mean_mip * mip_mev
    # h/e is a ratio of visible energies: heavily ionising crossings carry more energy
    # each, so there are correspondingly fewer of them (larger fluctuations).
    heavy_boost = 1.0 + had.heavy_fraction * heavy_mev / landau_mean_mev
    tracks_had = (visible_fraction * had.h_over_e * (1.0 - f_em) * energy_gev * 1000.0 / critical_energy_mev
                  / heavy_boost)
    # GFlash radial coefficients for the electromagnetic part.
    z1 = em.z1_0 + em.z1_1 * ln_e
    z2 = em.z2_0 + em.z2_1 * atomic_number
    k1 = em.k1_0 + em.k1_1 * atomic_number
    k4 = em.k4_0 + em.k4_1 * ln_e
    p1 = em.p1_0 + em.p1_1 * atomic_number
    p2 = em.p2_0 + em.p2_1 * atomic_number
    p3 = em.p3_0 + em.p3_1 * ln_e
    for i in range(n_layers):
        start = boundaries_x0[i]
        stop = boundaries_x0[i + 1]
        thickness = stop - start
        if stop <= start_x0:
            # Before the first interaction: the primary crosses as a MIP on the axis.
            deposit_crossings(state, grid[i], 1, centre_x, centre_y, inv_cell_mm, 0.0, 0.0, 1.0,
                              table, 0.0, 0.0)
            continue
        mid_x0 = 0.5 * (max(start, start_x0) + stop) - start_x0
        # Electromagnetic part (depth in X0 from the interaction).
        frac_em = gamma_layer_fraction(start - start_x0, stop - start_x0, shape, rate_em)
        n_em = sample_poisson(state, tracks_em * frac_em / thickness)
        if n_em > 0:
            tau = mid_x0 / t_max_em
            r_core = (z1 + z2 * tau) * moliere_radius_mm
            r_tail = k1 * (math.exp(em.k3 * (tau - em.k2)) + math.exp(k4 * (tau - em.k2))) * moliere_radius_mm
            q = (p2 - tau) / p3
            p_core = min(max(p1 * math.exp(q - math.exp(q)), 0.0), 1.0)
            deposit_crossings(state, grid[i], n_em, centre_x, centre_y, inv_cell_mm, r_core, r_tail,
                              p_core, table, 0.0, 0.0)
        # Hadronic part (depth in lambda from the interaction).
        frac_had = gamma_layer_fraction((start - start_x0) * lambda_per_x0, (stop - start_x0) * lambda_per_x0,
                                        shape, rate_had)
        n_had = sample_poisson(state, tracks_had * frac_had / thickness)
        if n_had > 0:
            depth_lambda = mid_x0 * lambda_per_x0
            r_core = had.core_radius_mm + had.core_growth_mm * depth_lambda
            r_tail = had.tail_radius_mm + had.tail_growth_mm * depth_lambda
            deposit_crossings(state, grid[i], n_had, centre_x, centre_y, inv_cell_mm, r_core, r_tail,
                              had.core_probability, table, had.heavy_fraction, heavy_mev)


@nb.njit(parallel=True, cache=True)
def simulate_hadron_showers(
    energies_gev: np.ndarray,
    seeds: np.ndarray,
    boundaries_x0: np.ndarray,
    lambda_per_x0: float,
    critical_energy_mev: float,
    atomic_number: float,
    moliere_radius_mm: float,
    cell_size_mm: float,
    visible_fraction: float,
    mip_mev: float,
    em: Any,
    had: Any,
    table: np.ndarray,
    out: np.ndarray,
) -> None:
    """Fill ``out`` (``(N, layers, x, y)`` float32, overwritten) with pion showers in MeV.

    Args:
        energies_gev: incident energies, shape ``(N,)`` (GeV).
        seeds: per-event random states, shape ``(N,)`` uint64.
        boundaries_x0: absorber boundaries in X0, shape ``(layers + 1,)``.
        lambda_per_x0: X0 / λI of the absorber (converts X0 depths to λI).
        critical_energy_mev: critical energy of the absorber (MeV).
        atomic_number: Z of the absorber.
        moliere_radius_mm: effective Molière radius (mm).
        cell_size_mm: cell side (mm).
        visible_fraction: fraction of the EM track length seen as crossings.
        mip_mev: most probable MIP energy (MeV).
        em: :meth:`EMShowerParameters.as_tuple`.
        had: :meth:`HadronShowerParameters.as_tuple`.
        table: Landau table in MeV.
        out: output grid, written in place.
    """
    inv_cell = 1.0 / cell_size_mm
    landau_mean = table.mean()
    for e in nb.prange(energies_gev.shape[0]):
        state = np.empty(1, dtype=np.uint64)
        state[0] = seeds[e]
        out[e][:] = 0.0
        _hadron_event(energies_gev[e], state, boundaries_x0, lambda_per_x0, critical_energy_mev,
                      atomic_number, moliere_radius_mm, inv_cell, visible_fraction, mip_mev, landau_mean, em,
                      had, table, out[e])
