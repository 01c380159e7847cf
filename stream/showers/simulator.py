"""Parametric reference shower simulator: ``simulate(geometry, energies_gev, seed)``.

Geant4 and the ILD data sets cannot be installed here, so the reference showers come
from a fast *parametric* simulator, not from a full detector simulation. It reproduces
the features generative models must learn (MIP peak of the cell spectrum, visible
energy linear in E with a stochastic resolution, shower maximum growing with ln E,
event-by-event profile fluctuations, hit multiplicities, leakage) from
GFlash-type parameterisations and an explicit sampling of sensor crossings:

* photons in the Si-W ECAL: :mod:`stream.showers.em_kernel`;
* pions in the AHCAL: :mod:`stream.showers.hadron_kernel`.

Every event has its own random stream derived from ``(seed, event number)``, so
``simulate(g, e, seed, first_event=k)`` gives event ``k`` the same shower however the
events are batched, and the kernels run in parallel (numba ``prange``) yet stay
deterministic.
"""

from __future__ import annotations

import numpy as np

from stream.showers.deposit import landau_table
from stream.showers.em_kernel import simulate_em_showers
from stream.showers.geometry import Geometry, get_geometry
from stream.showers.hadron_kernel import simulate_hadron_showers
from stream.showers.parameters import EMShowerParameters, HadronShowerParameters
from stream.showers.rng import event_seeds

__all__ = ["ELECTROMAGNETIC_PARTICLES", "sample_energies", "simulate"]

ELECTROMAGNETIC_PARTICLES = ("photon", "gamma", "e-", "e+")
"""Particles simulated with the electromagnetic model; anything else is a hadron."""

_STREAM_SHOWER = 0
_STREAM_ENERGY = 1


def simulate(
    geometry: str | Geometry,
    energies_gev: np.ndarray,
    seed: int,
    *,
    first_event: int = 0,
    em_parameters: EMShowerParameters | None = None,
    hadron_parameters: HadronShowerParameters | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Simulate one shower per incident energy.

    Args:
        geometry: ``"ecal"``, ``"ahcal"`` or a :class:`Geometry`; its ``particle`` picks
            the electromagnetic or the hadronic model.
        energies_gev: incident energies, shape ``(N,)`` (GeV, > 0).
        seed: run seed; event ``first_event + i`` uses the stream ``(seed, first_event + i)``.
        first_event: event number of ``energies_gev[0]`` (for resumable streams).
        em_parameters: GFlash coefficients (defaults: :class:`EMShowerParameters`).
        hadron_parameters: hadronic model (defaults: :class:`HadronShowerParameters`).
        out: optional C-contiguous float32 buffer of shape ``(N, layers, x, y)`` to fill
            (overwritten); reusing one buffer across calls avoids page faults on fresh
            memory, which otherwise cost a good part of the time.

    Returns:
        Dense showers, shape ``(N, layers, x, y)``, float32, MeV (``out`` if given).

    Raises:
        ValueError: energies not one-dimensional, not finite or not positive, or
            ``out`` of the wrong shape or dtype.

    Example:
        >>> showers = simulate("ecal", np.array([50.0]), seed=1)
        >>> showers.shape, showers.dtype.name
        ((1, 30, 30, 30), 'float32')
    """
    geo = get_geometry(geometry)
    energies = np.ascontiguousarray(energies_gev, dtype=np.float64)
    if energies.ndim != 1:
        msg = f"simulate: energies_gev must have shape (N,), got {energies.shape}"
        raise ValueError(msg)
    if energies.size and not (np.all(np.isfinite(energies)) and energies.min() > 0):
        msg = f"simulate: energies_gev must be finite and > 0 GeV, got min {energies.min()!r}"
        raise ValueError(msg)
    if first_event < 0 or seed < 0:
        msg = f"simulate: seed and first_event must be >= 0, got seed={seed}, first_event={first_event}"
        raise ValueError(msg)
    expected = (energies.size, *geo.shape)
    if out is None:
        out = np.empty(expected, dtype=np.float32)
    elif out.shape != expected or out.dtype != np.float32 or not out.flags.c_contiguous:
        msg = f"simulate: out must be a C-contiguous float32 array of shape {expected}, got {out.dtype} {out.shape}"
        raise ValueError(msg)
    if energies.size == 0:
        return out
    seeds = event_seeds(int(seed), int(first_event), energies.size, _STREAM_SHOWER)
    table = landau_table(geo.mip_mev, geo.landau_width)
    boundaries = geo.layer_boundaries_x0()
    em = (em_parameters or EMShowerParameters()).as_tuple()
    if geo.particle in ELECTROMAGNETIC_PARTICLES:
        pitch = np.asarray(geo.absorber_thickness_mm, dtype=np.float64) + geo.sensor_thickness_mm
        simulate_em_showers(energies, seeds, boundaries, geo.critical_energy_mev, geo.atomic_number,
                            geo.moliere_radius_mm, geo.cell_size_mm, geo.visible_fraction, em, table,
                            pitch, geo.sensor_thickness_mm, out)
    else:
        had = (hadron_parameters or HadronShowerParameters()).as_tuple()
        lambda_per_x0 = geo.radiation_length_mm / geo.interaction_length_mm
        simulate_hadron_showers(energies, seeds, boundaries, lambda_per_x0, geo.critical_energy_mev,
                                geo.atomic_number, geo.moliere_radius_mm, geo.cell_size_mm,
                                geo.visible_fraction, geo.mip_mev, em, had, table, out)
    return out


def sample_energies(seed: int, first_event: int, n: int, energy_min_gev: float, energy_max_gev: float) -> np.ndarray:
    """Incident energies uniform in ``[energy_min_gev, energy_max_gev]``, one stream per event.

    Event ``first_event + i`` always gets the same energy for a given seed and range.

    Example:
        >>> e = sample_energies(0, 0, 4, 10.0, 100.0)
        >>> bool(np.all((e >= 10) & (e <= 100)))
        True
    """
    if not 0 < energy_min_gev <= energy_max_gev:
        msg = f"need 0 < energy_min_gev <= energy_max_gev, got {energy_min_gev}, {energy_max_gev}"
        raise ValueError(msg)
    states = event_seeds(int(seed), int(first_event), int(n), _STREAM_ENERGY)
    u = (states >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
    return energy_min_gev + (energy_max_gev - energy_min_gev) * u
