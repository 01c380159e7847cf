"""Shower parameterisations of the reference simulator (GFlash, Bock), as frozen dataclasses.

:class:`EMShowerParameters` holds the GFlash coefficients for homogeneous media
(Grindhammer & Peters, hep-ex/0001020, section 2): the mean, spread and correlation of
the lognormal event-by-event fluctuations of the shower maximum ``T`` and of the shape
``α`` of the Gamma longitudinal profile, and the two-component (core + tail) radial
profile ``f(r) = p f_C(r) + (1 − p) f_T(r)`` with ``f_i(r) = 2 r R_i² / (r² + R_i²)²``.
Energies in the formulas are in GeV except ``y = E / E_c``; depths in X0, radii in
Molière radii.

:class:`HadronShowerParameters` holds the hadronic model: shower start exponential in
interaction lengths, event-by-event electromagnetic fraction (Groom's mean
``1 − (E/E0)^(m−1)`` with Beta-distributed fluctuations), Bock et al.'s longitudinal
profile (NIM 186 (1981) 533: electromagnetic Gamma term in X0 plus hadronic Gamma term
in λI sharing the shape ``a``) and a core + tail radial profile of the hadronic part
that widens with depth.

Both convert to plain named tuples (:meth:`as_tuple`) that numba kernels accept.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import astuple, dataclass, fields, replace
from typing import Any

__all__ = ["EMShowerParameters", "HadronShowerParameters", "LANDAU_MAX_QUANTILE"]

LANDAU_MAX_QUANTILE = 0.99
"""Landau samples are drawn below this quantile (delta electrons escaping thin sensors)."""


_TUPLE_TYPES: dict[type, type] = {}


def _as_namedtuple(obj: Any) -> Any:
    # One named-tuple class per dataclass, so numba compiles its kernels once.
    kind = type(obj)
    if kind not in _TUPLE_TYPES:
        _TUPLE_TYPES[kind] = namedtuple(kind.__name__ + "Tuple", [f.name for f in fields(obj)])
    return _TUPLE_TYPES[kind](*(float(v) for v in astuple(obj)))


@dataclass(frozen=True)
class EMShowerParameters:
    """GFlash electromagnetic shower coefficients (homogeneous media, hep-ex/0001020).

    Longitudinal (``y = E/E_c``; ``ln`` natural log)::

        <ln T> = ln(ln y + t_offset)                σ(ln T) = 1 / (t_sigma0 + t_sigma1 ln y)
        <ln α> = ln(a0 + (a1 + a2 / Z) ln y)        σ(ln α) = 1 / (a_sigma0 + a_sigma1 ln y)
        ρ(ln T, ln α) = rho0 + rho1 ln y            β = (α − 1) / T

    Radial (``τ = t / T``, E in GeV, radii in Molière radii)::

        R_C = z1 + z2 τ,  z1 = z1_0 + z1_1 ln E,  z2 = z2_0 + z2_1 Z
        R_T = k1 (exp(k3 (τ − k2)) + exp(k4 (τ − k2))),  k1 = k1_0 + k1_1 Z,  k4 = k4_0 + k4_1 ln E
        p = p1 exp((p2 − τ)/p3 − exp((p2 − τ)/p3)),  p1 = p1_0 + p1_1 Z,  p2 = p2_0 + p2_1 Z,
        p3 = p3_0 + p3_1 ln E

    Structure beyond GFlash (event-by-event and layer-to-layer correlations):

    Attributes:
        conversion_length_x0: mean depth of the first photon conversion (9/7 X0); the
            electron profile starts there. Set 0 for incident electrons.
        continuation_probability: probability that a sensor crossing continues a
            charged track of the layer in front (same slope plus a scattering kick)
            rather than being drawn afresh from the radial profile.
        slope_spread: half-width of the uniform track slope ``dx/dz`` (per component) of
            fresh crossings; sets the path in the sensor and the charge sharing between cells.
        scattering_kick: half-width of the uniform slope change of a continuing track
            from one layer to the next (multiple scattering in the absorber).
        lateral_scale_sigma: lognormal event-by-event spread of the radial profile's radii.
        axis_wander_mm: step of the random walk of the shower core from layer to layer
            after the conversion (mm, Gaussian per component).
        axis_wander_correlation: AR(1) correlation of that walk's steps.
        impact_spread_mm: side of the square over which the impact point is spread
            uniformly around the nominal point (ILD-like default: one ECAL cell, 5 mm).
    """

    t_offset: float = -0.812
    t_sigma0: float = -1.4
    t_sigma1: float = 1.26
    a0: float = 0.81
    a1: float = 0.458
    a2: float = 2.26
    a_sigma0: float = -0.58
    a_sigma1: float = 0.86
    rho0: float = 0.705
    rho1: float = 0.023
    z1_0: float = 0.0251
    z1_1: float = 0.00319
    z2_0: float = 0.1162
    z2_1: float = -0.000381
    k1_0: float = 0.659
    k1_1: float = -0.00309
    k2: float = 0.645
    k3: float = -2.59
    k4_0: float = 0.3585
    k4_1: float = 0.0421
    p1_0: float = 2.632
    p1_1: float = -0.00094
    p2_0: float = 0.401
    p2_1: float = 0.00187
    p3_0: float = 1.313
    p3_1: float = -0.0686
    conversion_length_x0: float = 9.0 / 7.0
    continuation_probability: float = 0.5
    slope_spread: float = 0.5
    scattering_kick: float = 0.2
    lateral_scale_sigma: float = 0.12
    axis_wander_mm: float = 0.6
    axis_wander_correlation: float = 0.7
    impact_spread_mm: float = 5.0

    def without_structure(self) -> EMShowerParameters:
        """The same profiles with every correlation beyond GFlash switched off.

        Tracks do not continue, the lateral profile and the axis do not fluctuate, and the
        impact point is fixed: a generator that ignores the structure. Slopes (charge
        sharing) stay, so the cell spectrum is unchanged.
        """
        return replace(
            self,
            continuation_probability=0.0,
            lateral_scale_sigma=0.0,
            axis_wander_mm=0.0,
            impact_spread_mm=0.0,
        )

    def as_tuple(self) -> Any:
        """The coefficients as a named tuple of floats (numba-friendly)."""
        return _as_namedtuple(self)


@dataclass(frozen=True)
class HadronShowerParameters:
    """Hadronic shower model (Bock profile, Groom EM fraction, core + tail radial).

    Attributes:
        interaction_length_ratio: pion interaction length in units of the absorber λI.
        em_fraction_e0_gev: E0 of the mean EM fraction ``1 − (E/E0)^(m−1)`` (GeV).
        em_fraction_m: exponent m of the mean EM fraction.
        em_fraction_concentration: κ of the Beta(μκ, (1−μ)κ) event-by-event EM fraction.
        shape_a0: Bock ``a = shape_a0 + shape_a1 ln E`` (E in GeV), shared by both terms.
        shape_a1: see ``shape_a0``.
        shape_sigma: lognormal event-by-event spread of ``a``.
        shape_min: lower bound of ``a`` (keeps the profile finite at the shower start).
        em_slope_b: Bock ``b`` of the EM term (per X0).
        had_slope_d0: Bock ``d = had_slope_d0 + had_slope_d1 ln E`` of the hadronic term (per λI).
        had_slope_d1: see ``had_slope_d0``.
        h_over_e: visible response of the hadronic part relative to the EM part.
        heavy_fraction: fraction of hadronic-part crossings by heavily ionising particles.
        heavy_mean_mip: mean extra energy (in MIP, exponential) of such a crossing.
        core_radius_mm: radius of the hadronic core at the shower start (mm).
        core_growth_mm: growth of the core radius per λI after the start (mm).
        tail_radius_mm: radius of the hadronic halo at the shower start (mm).
        tail_growth_mm: growth of the halo radius per λI after the start (mm).
        core_probability: probability that a hadronic crossing belongs to the core.
    """

    interaction_length_ratio: float = 1.21
    em_fraction_e0_gev: float = 0.96
    em_fraction_m: float = 0.85
    em_fraction_concentration: float = 15.0
    shape_a0: float = 0.6165
    shape_a1: float = 0.3183
    shape_sigma: float = 0.1
    shape_min: float = 1.05
    em_slope_b: float = 0.2198
    had_slope_d0: float = 0.9099
    had_slope_d1: float = -0.0237
    h_over_e: float = 0.8
    heavy_fraction: float = 0.3
    heavy_mean_mip: float = 8.0
    core_radius_mm: float = 20.0
    core_growth_mm: float = 10.0
    tail_radius_mm: float = 70.0
    tail_growth_mm: float = 30.0
    core_probability: float = 0.55

    def as_tuple(self) -> Any:
        """The parameters as a named tuple of floats (numba-friendly)."""
        return _as_namedtuple(self)
