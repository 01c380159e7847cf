"""Counter-based random numbers for numba kernels (one independent stream per event).

Every shower owns a 64-bit state derived from ``(seed, event number)`` with SplitMix64,
so a shower does not depend on how the events are cut into batches or spread over
threads: the stream can restart at any event and numba's ``prange`` stays
deterministic. The generator is SplitMix64 (Steele, Lea & Flood 2014), which passes
BigCrush; the samplers (uniform, normal, Poisson, gamma, beta, exponential) take the
state as a one-element ``uint64`` array and advance it in place.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from stream.counter_rng import GOLDEN, MIX1, MIX2, mix64, uniform53

__all__ = [
    "event_seed",
    "event_seeds",
    "next_u64",
    "sample_uniform_pair",
    "sample_beta",
    "sample_exponential",
    "sample_gamma",
    "sample_normal",
    "sample_poisson",
    "sample_uniform",
]

_GOLDEN = GOLDEN
_MIX1 = MIX1
_MIX2 = MIX2
_mix = mix64


@nb.njit(inline="always", cache=True)
def next_u64(state: np.ndarray) -> np.uint64:
    """Advance ``state`` (uint64 array of length 1) and return 64 random bits."""
    state[0] += _GOLDEN
    return _mix(state[0])


@nb.njit(inline="always", cache=True)
def sample_uniform(state: np.ndarray) -> float:
    """Uniform double in [0, 1)."""
    return uniform53(next_u64(state))


_S32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_TWO_M32 = 1.0 / 4294967296.0


@nb.njit(inline="always", cache=True)
def sample_uniform_pair(state: np.ndarray) -> tuple[float, float]:
    """Two uniforms in [0, 1) with 32-bit resolution from one 64-bit draw (hot loops)."""
    z = next_u64(state)
    return float(z >> _S32) * _TWO_M32, float(z & _LOW32) * _TWO_M32


@nb.njit(cache=True)
def event_seed(seed: int, event: int, stream: int) -> np.uint64:
    """Starting state of stream ``stream`` of event ``event`` for a run seeded with ``seed``."""
    z = _mix(np.uint64(seed) + _GOLDEN)
    z = _mix(z ^ (np.uint64(event) * _MIX1 + _GOLDEN))
    return _mix(z ^ (np.uint64(stream) * _MIX2 + _GOLDEN))


@nb.njit(cache=True)
def event_seeds(seed: int, first_event: int, n: int, stream: int) -> np.ndarray:
    """States of ``n`` consecutive events starting at ``first_event``."""
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        out[i] = event_seed(seed, first_event + i, stream)
    return out


@nb.njit(cache=True)
def sample_normal(state: np.ndarray) -> float:
    """Standard normal (Box–Muller, one value per call)."""
    u1 = sample_uniform(state)
    u2 = sample_uniform(state)
    return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)


@nb.njit(cache=True)
def sample_exponential(state: np.ndarray) -> float:
    """Exponential with unit mean."""
    return -math.log(1.0 - sample_uniform(state))


@nb.njit(cache=True)
def sample_poisson(state: np.ndarray, lam: float) -> int:
    """Poisson(lam): inversion for lam < 10, Hörmann's PTRS rejection otherwise (exact)."""
    if lam <= 0.0:
        return 0
    if lam < 10.0:
        limit = math.exp(-lam)
        k = 0
        p = sample_uniform(state)
        while p > limit:
            k += 1
            p *= sample_uniform(state)
        return k
    slam = math.sqrt(lam)
    loglam = math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    v_r = 0.9277 - 3.6224 / (b - 2.0)
    while True:
        u = sample_uniform(state) - 0.5
        v = sample_uniform(state)
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= v_r:
            return int(k)
        if k < 0 or (us < 0.013 and v > us):
            continue
        if (math.log(v) + math.log(inv_alpha) - math.log(a / (us * us) + b)) <= (
            -lam + k * loglam - math.lgamma(k + 1.0)
        ):
            return int(k)


@nb.njit(cache=True)
def sample_gamma(state: np.ndarray, shape: float) -> float:
    """Gamma(shape, scale=1) by Marsaglia & Tsang (boosted for shape < 1)."""
    boost = 1.0
    if shape < 1.0:
        boost = sample_uniform(state) ** (1.0 / shape)
        shape += 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = sample_normal(state)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = sample_uniform(state)
        if u < 1.0 - 0.0331 * x * x * x * x:
            return d * v * boost
        if math.log(u) < 0.5 * x * x + d * (1.0 - v + math.log(v)):
            return d * v * boost


@nb.njit(cache=True)
def sample_beta(state: np.ndarray, a: float, b: float) -> float:
    """Beta(a, b) from two gamma variates."""
    x = sample_gamma(state, a)
    y = sample_gamma(state, b)
    return x / (x + y)
