"""Numba kernel of electromagnetic (photon) showers in a sampling calorimeter (GFlash).

Per event:

1. The shower maximum ``T`` and the profile shape ``α`` are drawn from GFlash's
   correlated lognormal distribution (:class:`~stream.showers.parameters.EMShowerParameters`),
   ``β = (α − 1)/T``; a photon first converts at an exponential depth ``t0``.
2. The charged track length of the shower, ``visible_fraction · E/E_c`` (in X0), is
   spread over the absorber layers by the Gamma profile; the expected number of sensor
   crossings behind layer ``i`` is the track length in that layer divided by the
   layer's thickness in X0. The actual number is Poisson. Depth beyond the last layer
   is lost (longitudinal leakage).
3. Each crossing either continues a charged track of the layer in front (slope plus a
   multiple-scattering kick) or is placed afresh with the GFlash core + tail radial
   profile at the layer's depth, around a shower core that wanders from layer to layer
   (an AR(1) random walk after the conversion); the radii fluctuate event by event
   (lognormal) and the impact point is spread over a square (one ECAL cell by default).
   It deposits a Landau energy scaled by its path in the sensor, shared between cells
   when the path crosses a cell boundary (:mod:`stream.showers.tracks`).

Sampling fluctuations, hit-count fluctuations, leakage and the correlations between
layers therefore follow from the model; nothing is smeared afterwards.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np

from stream.showers.deposit import gamma_layer_fraction
from stream.showers.rng import sample_exponential, sample_normal, sample_poisson, sample_uniform
from stream.showers.tracks import place_tracks

_TRACK_CAPACITY = 2048

__all__ = ["simulate_em_showers"]


@nb.njit(cache=True)
def _em_event(
    energy_gev: float,
    state: np.ndarray,
    boundaries_x0: np.ndarray,
    critical_energy_mev: float,
    atomic_number: float,
    moliere_radius_mm: float,
    inv_cell_mm: float,
    visible_fraction: float,
    par: Any,
    table: np.ndarray,
    pitch_cells: np.ndarray,
    half_depth_cells: float,
    grid: np.ndarray,
    tracks: np.ndarray,
) -> None:
    n_layers, nx, ny = grid.shape
    ln_e = math.log(energy_gev)
    ln_y = math.log(energy_gev * 1000.0 / critical_energy_mev)
    # Correlated lognormal fluctuations of T and alpha (GFlash eq. 4-7).
    mean_ln_t = math.log(max(ln_y + par.t_offset, 0.5))
    mean_ln_a = math.log(par.a0 + (par.a1 + par.a2 / atomic_number) * ln_y)
    sigma_ln_t = 1.0 / (par.t_sigma0 + par.t_sigma1 * ln_y)
    sigma_ln_a = 1.0 / (par.a_sigma0 + par.a_sigma1 * ln_y)
    rho = min(par.rho0 + par.rho1 * ln_y, 0.999)
    g1 = sample_normal(state)
    g2 = sample_normal(state)
    t_max = math.exp(mean_ln_t + sigma_ln_t * g1)
    alpha = math.exp(mean_ln_a + sigma_ln_a * (rho * g1 + math.sqrt(1.0 - rho * rho) * g2))
    alpha = max(alpha, 1.01)
    beta = (alpha - 1.0) / t_max
    t0 = par.conversion_length_x0 * sample_exponential(state) if par.conversion_length_x0 > 0 else 0.0
    track_length = visible_fraction * energy_gev * 1000.0 / critical_energy_mev
    # Radial coefficients (GFlash eq. 10-12), energy-dependent parts.
    z1 = par.z1_0 + par.z1_1 * ln_e
    z2 = par.z2_0 + par.z2_1 * atomic_number
    k1 = par.k1_0 + par.k1_1 * atomic_number
    k4 = par.k4_0 + par.k4_1 * ln_e
    p1 = par.p1_0 + par.p1_1 * atomic_number
    p2 = par.p2_0 + par.p2_1 * atomic_number
    p3 = par.p3_0 + par.p3_1 * ln_e
    spread = par.impact_spread_mm * inv_cell_mm
    centre_x = 0.5 * nx + spread * (sample_uniform(state) - 0.5)
    centre_y = 0.5 * ny + spread * (sample_uniform(state) - 0.5)
    lateral = math.exp(par.lateral_scale_sigma * sample_normal(state)) * inv_cell_mm * moliere_radius_mm
    wander = par.axis_wander_mm * inv_cell_mm
    rho_w = par.axis_wander_correlation
    step_x = 0.0
    step_y = 0.0
    n_previous = 0
    previous = tracks[0]
    current = tracks[1]
    for i in range(n_layers):
        start = boundaries_x0[i]
        stop = boundaries_x0[i + 1]
        if stop <= t0:
            continue
        if wander > 0.0:
            innovation = wander * math.sqrt(1.0 - rho_w * rho_w)
            step_x = rho_w * step_x + innovation * sample_normal(state)
            step_y = rho_w * step_y + innovation * sample_normal(state)
            centre_x += step_x
            centre_y += step_y
        fraction = gamma_layer_fraction(start - t0, stop - t0, alpha, beta)
        expected = track_length * fraction / (stop - start)
        n = sample_poisson(state, expected)
        if n == 0:
            n_previous = 0
            continue
        tau = (0.5 * (max(start, t0) + stop) - t0) / t_max
        r_core = (z1 + z2 * tau) * lateral
        r_tail = k1 * (math.exp(par.k3 * (tau - par.k2)) + math.exp(k4 * (tau - par.k2))) * lateral
        q = (p2 - tau) / p3
        p_core = min(max(p1 * math.exp(q - math.exp(q)), 0.0), 1.0)
        n_previous = place_tracks(state, grid[i], n, centre_x, centre_y, r_core, r_tail, p_core, table,
                                  previous, n_previous, current, par.continuation_probability,
                                  pitch_cells[i], par.slope_spread, par.scattering_kick, half_depth_cells)
        previous, current = current, previous


@nb.njit(parallel=True, cache=True)
def simulate_em_showers(
    energies_gev: np.ndarray,
    seeds: np.ndarray,
    boundaries_x0: np.ndarray,
    critical_energy_mev: float,
    atomic_number: float,
    moliere_radius_mm: float,
    cell_size_mm: float,
    visible_fraction: float,
    par: Any,
    table: np.ndarray,
    pitch_mm: np.ndarray,
    sensor_thickness_mm: float,
    out: np.ndarray,
) -> None:
    """Fill ``out`` (``(N, layers, x, y)`` float32, overwritten) with photon showers in MeV.

    Args:
        energies_gev: incident energies, shape ``(N,)`` (GeV).
        seeds: per-event random states, shape ``(N,)`` uint64 (:func:`~stream.showers.rng.event_seeds`).
        boundaries_x0: absorber boundaries in X0, shape ``(layers + 1,)``.
        critical_energy_mev: critical energy of the absorber (MeV).
        atomic_number: Z of the absorber.
        moliere_radius_mm: effective Molière radius (mm).
        cell_size_mm: cell side (mm).
        visible_fraction: fraction of the track length seen as crossings.
        par: :meth:`EMShowerParameters.as_tuple`.
        table: Landau table in MeV.
        pitch_mm: distance from each sensor to the next (mm), shape ``(layers,)``.
        sensor_thickness_mm: sensor thickness (mm).
        out: output grid, written in place.
    """
    inv_cell = 1.0 / cell_size_mm
    pitch_cells = pitch_mm * inv_cell
    half_depth = 0.5 * sensor_thickness_mm * inv_cell
    for e in nb.prange(energies_gev.shape[0]):
        state = np.empty(1, dtype=np.uint64)
        state[0] = seeds[e]
        tracks = np.empty((2, _TRACK_CAPACITY, 4), dtype=np.float32)
        out[e][:] = 0.0
        _em_event(energies_gev[e], state, boundaries_x0, critical_energy_mev, atomic_number,
                  moliere_radius_mm, inv_cell, visible_fraction, par, table, pitch_cells, half_depth,
                  out[e], tracks)
