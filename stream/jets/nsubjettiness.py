"""N-subjettiness τ_N (Thaler and Van Tilburg, arXiv 1011.2268), computed in numpy.

For a jet with constituents ``k`` and ``N`` axes ``j``::

    τ_N = Σ_k pT_k · min_j (ΔR_jk)^β  /  Σ_k pT_k · R0^β

with ``ΔR² = Δy² + Δφ²`` (rapidity and azimuth, as FastJet measures distances), β = 1
and the normalisation radius ``R0`` the jet radius (1.0 here). ``τ21 = τ2 / τ1`` is
small for a two-prong jet (a boosted X → qq) and near 1 for a one-prong QCD jet. The
axes are the exclusive-kT subjets of the jet (:func:`stream.jets.clustering.exclusive_kt_axes`);
a jet with no more constituents than axes has ``τ_N = 0`` (every constituent is an axis).
"""

from __future__ import annotations

import numpy as np

from stream.jets.kinematics import delta_phi

__all__ = ["n_subjettiness", "tau_ratio"]


def n_subjettiness(
    pt: np.ndarray,
    rap: np.ndarray,
    phi: np.ndarray,
    jet_of: np.ndarray,
    axes_rap: np.ndarray,
    axes_phi: np.ndarray,
    beta: float = 1.0,
    radius: float = 1.0,
) -> np.ndarray:
    """τ_N of many jets at once from flat constituent arrays.

    Args:
        pt: constituent transverse momenta (GeV), shape ``(n_constituents,)``.
        rap: constituent rapidities.
        phi: constituent azimuths (radians).
        jet_of: index of each constituent's jet, in ``[0, n_jets)``.
        axes_rap: axis rapidities, shape ``(n_jets, N)``; NaN marks a missing axis (a jet
            with fewer than ``N`` constituents).
        axes_phi: axis azimuths, shape ``(n_jets, N)``.
        beta: angular exponent β.
        radius: normalisation radius R0 (the jet radius).

    Returns:
        τ_N per jet, shape ``(n_jets,)`` (0 for a jet without constituents).

    Example:
        Two constituents of 1 GeV at ΔR = 0.5 from the one axis at the origin:

        >>> n_subjettiness(np.ones(2), np.array([0.5, 0.0]), np.array([0.0, 0.5]),
        ...                np.zeros(2, dtype=int), np.zeros((1, 1)), np.zeros((1, 1)))
        array([0.5])
    """
    axes_rap = np.asarray(axes_rap, dtype=np.float64)
    axes_phi = np.asarray(axes_phi, dtype=np.float64)
    if axes_rap.ndim != 2 or axes_rap.shape != axes_phi.shape:
        msg = f"n_subjettiness: axes must be (n_jets, N) arrays of equal shape, got {axes_rap.shape} and {axes_phi.shape}"
        raise ValueError(msg)
    jet_of = np.asarray(jet_of, dtype=np.int64)
    n_jets = axes_rap.shape[0]
    pt = np.asarray(pt, dtype=np.float64)
    if pt.size == 0:
        return np.zeros(n_jets)
    dy = np.asarray(rap, dtype=np.float64)[:, None] - axes_rap[jet_of]
    dphi = delta_phi(np.asarray(phi, dtype=np.float64)[:, None], axes_phi[jet_of])
    dr2 = np.square(dy) + np.square(dphi)
    dr2 = np.where(np.isnan(dr2), np.inf, dr2)
    nearest = dr2.min(axis=1)
    nearest = np.where(np.isfinite(nearest), nearest, 0.0)
    distance = np.sqrt(nearest) if beta == 1.0 else np.power(nearest, 0.5 * beta)
    numerator = np.bincount(jet_of, weights=pt * distance, minlength=n_jets)
    d0 = np.bincount(jet_of, weights=pt, minlength=n_jets) * radius**beta
    return np.divide(numerator, d0, out=np.zeros(n_jets), where=d0 > 0)


def tau_ratio(tau_high: np.ndarray, tau_low: np.ndarray) -> np.ndarray:
    """``τ_high / τ_low`` (e.g. τ21 = τ2/τ1), 0 where ``τ_low`` is 0.

    Example:
        >>> tau_ratio(np.array([0.1, 0.0]), np.array([0.4, 0.0]))
        array([0.25, 0.  ])
    """
    tau_high = np.asarray(tau_high, dtype=np.float64)
    tau_low = np.asarray(tau_low, dtype=np.float64)
    return np.divide(tau_high, tau_low, out=np.zeros(np.broadcast(tau_high, tau_low).shape), where=tau_low > 0)
