"""Numba Poisson sampler of the pseudo-experiments: counter-based streams, alias tables.

Private module used by :mod:`offline.bumphunt._lookup` and :mod:`offline.bumphunt.scan`.

* **Streams**: pseudo-experiment ``i`` draws from its own SplitMix64 stream seeded by
  ``(seed, i)``, so results do not depend on the number of threads or on the order in
  which pseudo-experiments run.
* **Alias tables** (Walker 1977, Vose 1991): every bin with ``0 < λ <= LAMBDA_TABLE_MAX``
  gets a table of its Poisson distribution over every count whose probability is above
  ``1e-20`` of the mode's (the mass left out is below 1e-18, far under the 2⁻⁵³
  resolution of a double uniform). One uniform, one table entry and one comparison give
  a draw, exact to that resolution; the counts a bin can produce are bounded by its table.
* **PTRS** (Hörmann 1993) for larger means, where a table would not fit in cache.

Bins with ``λ = 0`` always give 0 and consume no random number.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from stream.counter_rng import GOLDEN, mix64, uniform53

__all__ = [
    "LAMBDA_TABLE_MAX",
    "draw_batch",
    "poisson_sampler",
    "pseudo_histograms",
    "stream_state",
]

LAMBDA_TABLE_MAX = 1e5
_RELATIVE_CUT = 1e-20
_GOLDEN = GOLDEN
_mix = mix64


@njit(cache=True, inline="always")
def stream_state(seed: int, index: int) -> np.uint64:
    """Initial state of the stream of pseudo-experiment ``index``."""
    return _mix(_mix(np.uint64(seed) + _GOLDEN) + np.uint64(index))


@njit(cache=True, inline="always")
def _uniform(state: np.uint64) -> tuple[float, np.uint64]:
    """Uniform double in [0, 1) (53 bits) and the advanced state."""
    state += _GOLDEN
    return uniform53(_mix(state)), state


@njit(cache=True)
def _ptrs_row(lam: float, row: np.ndarray) -> None:
    slam = math.sqrt(lam)
    b = 0.931 + 2.53 * slam
    row[0] = lam
    row[1] = math.log(lam)
    row[2] = b
    row[3] = -0.059 + 0.02483 * b  # a
    row[4] = math.log(1.1239 + 1.1328 / (b - 3.4))  # log(1/alpha)
    row[5] = 0.9277 - 3.6224 / (b - 2.0)  # v_r
    row[6] = -lam


@njit(cache=True)
def _ptrs(row: np.ndarray, state: np.uint64) -> tuple[int, np.uint64]:
    """One Poisson draw by transformed rejection with squeeze (Hörmann 1993), λ >= 10."""
    lam = row[0]
    loglam = row[1]
    b = row[2]
    a = row[3]
    log_invalpha = row[4]
    vr = row[5]
    while True:
        u, state = _uniform(state)
        v, state = _uniform(state)
        u -= 0.5
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return int(k), state
        if k < 0.0 or (us < 0.013 and v > us):
            continue
        if math.log(v) + log_invalpha - math.log(a / (us * us) + b) <= row[
            6
        ] + k * loglam - math.lgamma(k + 1.0):
            return int(k), state


@njit(cache=True)
def _table_range(lam: float) -> tuple[int, int]:
    """Counts ``[first, last]`` whose probability is above ``_RELATIVE_CUT`` of the mode's."""
    mode = int(math.floor(lam))
    first = mode
    weight = 1.0
    while first > 0:
        weight *= first / lam  # p(first - 1) / p(first)
        if weight < _RELATIVE_CUT:
            break
        first -= 1
    last = mode
    weight = 1.0
    while True:
        weight *= lam / (last + 1)
        if weight < _RELATIVE_CUT:
            break
        last += 1
    return first, last


@njit(cache=True)
def _fill_alias(lam: float, first: int, prob: np.ndarray, alias: np.ndarray) -> None:
    """Vose's alias table of Poisson(λ) restricted to ``first .. first + len(prob) - 1``."""
    size = prob.shape[0]
    mode = int(math.floor(lam)) - first
    weight = np.empty(size)
    weight[mode] = 1.0
    for k in range(mode + 1, size):
        weight[k] = weight[k - 1] * lam / (first + k)
    for k in range(mode - 1, -1, -1):
        weight[k] = weight[k + 1] * (first + k + 1) / lam
    weight *= size / weight.sum()
    small = np.empty(size, dtype=np.int64)
    large = np.empty(size, dtype=np.int64)
    n_small = 0
    n_large = 0
    for k in range(size):
        if weight[k] < 1.0:
            small[n_small] = k
            n_small += 1
        else:
            large[n_large] = k
            n_large += 1
    while n_small > 0 and n_large > 0:
        n_small -= 1
        s = small[n_small]
        l_index = large[n_large - 1]
        prob[s] = weight[s]
        alias[s] = first + l_index
        weight[l_index] = (weight[l_index] + weight[s]) - 1.0
        if weight[l_index] < 1.0:
            n_large -= 1
            small[n_small] = l_index
            n_small += 1
    for k in range(n_large):
        prob[large[k]] = 1.0
        alias[large[k]] = first + large[k]
    for k in range(n_small):  # rounding leftovers: their weight is 1 up to rounding
        prob[small[k]] = 1.0
        alias[small[k]] = first + small[k]


@njit(cache=True)
def poisson_sampler(
    expected: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin sampling tables of Poisson(``expected``), computed once per scan.

    Returns:
        ``(ptrs, offset, size, low, probability, alias)``: PTRS constants per bin (used
        where ``size == 0`` and ``λ > 0``), and the alias table of each other bin, entries
        ``offset[k] .. offset[k] + size[k] - 1`` of ``probability``/``alias`` standing for
        counts ``low[k] ..``. ``low[k] + size[k] - 1`` is the largest count bin ``k`` can
        give (unbounded for PTRS bins).
    """
    n_bins = expected.shape[0]
    ptrs = np.zeros((n_bins, 7))
    offset = np.zeros(n_bins + 1, dtype=np.int64)
    size = np.zeros(n_bins, dtype=np.int64)
    low = np.zeros(n_bins, dtype=np.int64)
    for k in range(n_bins):
        lam = expected[k]
        if lam <= 0.0:
            size[k] = 1  # always 0: a one-entry table that consumes no random number
        elif lam <= LAMBDA_TABLE_MAX:
            first, last = _table_range(lam)
            low[k] = first
            size[k] = last - first + 1
        else:
            _ptrs_row(lam, ptrs[k])
        offset[k + 1] = offset[k] + size[k]
    prob = np.ones(offset[n_bins])
    alias = np.zeros(offset[n_bins], dtype=np.int64)
    for k in range(n_bins):
        if expected[k] > 0.0 and size[k] > 0:
            _fill_alias(
                expected[k],
                low[k],
                prob[offset[k] : offset[k + 1]],
                alias[offset[k] : offset[k + 1]],
            )
    return ptrs, offset, size, low, prob, alias


@njit(cache=True)
def draw_batch(
    ptrs: np.ndarray,
    offset: np.ndarray,
    size: np.ndarray,
    low: np.ndarray,
    prob: np.ndarray,
    alias: np.ndarray,
    seed: int,
    first_index: int,
    state: np.ndarray,
    cum: np.ndarray,
) -> None:
    """Draw pseudo-experiments ``first_index ..`` (one per column) as prefix sums.

    Args:
        ptrs: PTRS constants per bin (first array of :func:`poisson_sampler`).
        offset: first table entry of each bin.
        size: table entries per bin (0: PTRS, 1: constant).
        low: count of each bin's first table entry.
        prob: alias-table acceptance probabilities.
        alias: alias-table alternative counts.
        seed: seed of the streams.
        first_index: index of the pseudo-experiment in column 0.
        state: scratch, ``uint64`` of length ``m`` (batch size).
        cum: ``(n_bins + 1, m)`` integers, receives ``0, c_0, c_0 + c_1, ...`` per column.

    Each column depends only on ``(seed, index)``. The loop runs bin by bin with the
    columns innermost: one bin's table stays in cache, and there is no call per draw
    (numba keeps the reference counting of array arguments in such calls).
    """
    m = state.shape[0]
    for p in range(m):
        state[p] = stream_state(seed, first_index + p)
        cum[0, p] = 0
    for k in range(size.shape[0]):
        previous = cum[k]
        current = cum[k + 1]
        n = size[k]
        if n == 1:
            for p in range(m):
                current[p] = previous[p] + low[k]
        elif n == 0:
            row = ptrs[k]
            for p in range(m):
                count, state[p] = _ptrs(row, state[p])
                current[p] = previous[p] + count
        else:
            base = offset[k]
            first = low[k]
            for p in range(m):
                u, state[p] = _uniform(state[p])
                x = u * n
                i = min(int(x), n - 1)
                j = base + i
                count = first + i if x - i < prob[j] else alias[j]
                current[p] = previous[p] + count


@njit(cache=True)
def pseudo_histograms(expected: np.ndarray, seed: int, n_pseudo: int) -> np.ndarray:
    """Pseudo-experiments ``0 .. n_pseudo - 1`` of stream ``seed``, shape ``(n_pseudo, n_bins)``.

    The same numbers as the scan draws internally (:func:`draw_batch`).
    """
    ptrs, offset, size, low, prob, alias = poisson_sampler(expected)
    n_bins = expected.shape[0]
    out = np.empty((n_pseudo, n_bins))
    batch = 64
    state = np.empty(batch, dtype=np.uint64)
    cum = np.empty((n_bins + 1, batch), dtype=np.int64)
    for first in range(0, n_pseudo, batch):
        m = min(batch, n_pseudo - first)
        draw_batch(ptrs, offset, size, low, prob, alias, seed, first, state[:m], cum[:, :m])
        for p in range(m):
            for k in range(n_bins):
                out[first + p, k] = cum[k + 1, p] - cum[k, p]
    return out
