"""Four-momenta of massless particles and the kinematic quantities built from them.

Units: momenta and energies in GeV; ``η`` (pseudorapidity), rapidity ``y`` and ``φ``
(radians) are dimensionless. All functions are vectorised over numpy arrays.
"""

from __future__ import annotations

import numpy as np

__all__ = ["delta_phi", "four_momenta", "invariant_mass", "rapidity", "transverse_momentum"]


def four_momenta(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(px, py, pz, E)`` in GeV of massless particles given ``pT`` (GeV), ``η``, ``φ``.

    Example:
        >>> [round(float(v), 6) for v in four_momenta(np.array(3.0), np.array(0.0), np.array(0.0))]
        [3.0, 0.0, 0.0, 3.0]
    """
    pt = np.asarray(pt, dtype=np.float64)
    eta = np.asarray(eta, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    return pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)


def invariant_mass(px: np.ndarray, py: np.ndarray, pz: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Invariant mass ``sqrt(E² − p²)`` in GeV; rounding below zero gives 0.

    Example:
        >>> float(invariant_mass(np.array(0.0), np.array(0.0), np.array(3.0), np.array(5.0)))
        4.0
    """
    m2 = np.square(energy) - np.square(px) - np.square(py) - np.square(pz)
    return np.sqrt(np.maximum(m2, 0.0))


def transverse_momentum(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """``pT = sqrt(px² + py²)`` in GeV.

    Example:
        >>> float(transverse_momentum(np.array(3.0), np.array(4.0)))
        5.0
    """
    return np.hypot(px, py)


def rapidity(pz: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Rapidity ``y = ½ ln((E + pz)/(E − pz))``; 0 for a zero four-vector.

    Example:
        >>> round(float(rapidity(np.array(3.0), np.array(5.0))), 6)
        0.693147
    """
    pz = np.asarray(pz, dtype=np.float64)
    energy = np.asarray(energy, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = 0.5 * np.log((energy + pz) / (energy - pz))
    return np.where(energy > np.abs(pz), y, np.where(energy > 0, np.sign(pz) * 1e3, 0.0))


def delta_phi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a − b`` wrapped into ``[−π, π)``.

    Example:
        >>> round(float(delta_phi(np.array(3.0), np.array(-3.0))), 6)
        -0.283185
    """
    return np.mod(np.asarray(a) - np.asarray(b) + np.pi, 2.0 * np.pi) - np.pi
