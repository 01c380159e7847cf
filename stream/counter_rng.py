"""SplitMix64, the counter-based generator behind the project's numba kernels.

SplitMix64 (Steele, Lea & Flood 2014) advances a 64-bit state by a fixed odd constant and
scrambles it with :func:`mix64`; it passes BigCrush. Kernels derive one state per event or
pseudo-experiment from ``(seed, index)``, so results do not depend on batching or on how
numba's ``prange`` spreads work over threads. Used by the reference shower simulator
(:mod:`stream.showers.rng`) and the bump hunt's pseudo-data (``offline.bumphunt``).
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["GOLDEN", "MIX1", "MIX2", "TWO_M53", "mix64", "uniform53"]

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
"""The state increment (2^64 / golden ratio)."""
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
TWO_M53 = 1.0 / 9007199254740992.0
"""2^-53: turns the top 53 bits into a double in [0, 1)."""
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)


@nb.njit(inline="always", cache=True)
def mix64(z: np.uint64) -> np.uint64:
    """The SplitMix64 output function (a bijection of 64-bit words)."""
    z = (z ^ (z >> _S30)) * MIX1
    z = (z ^ (z >> _S27)) * MIX2
    return z ^ (z >> _S31)


@nb.njit(inline="always", cache=True)
def uniform53(bits: np.uint64) -> float:
    """A double in [0, 1) from the top 53 of 64 random bits."""
    return float(bits >> _S11) * TWO_M53
