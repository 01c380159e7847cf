"""Numba kernels of the BumpHunter scan (arXiv 1101.0390): window p-values and pseudo-data.

Private module: :mod:`offline.bumphunt.scan` is the public interface. Conventions follow
pyBumpHunter 0.5.1 so both give the same numbers on the same histograms:

* the scan runs over the bins between the first and last non-zero bin of the reference;
* window counts are prefix-sum differences (sequential ``cumsum``, bit-identical);
* the local p-value of a window with ``n > b > 0`` is ``P(Poisson(b) >= n)``, computed as
  the regularised lower incomplete gamma function ``gammainc(n, b)`` (scipy's own
  implementation, called through its Cython C-API); otherwise it is 1;
* ties resolve to the smallest width, then the leftmost position.

Two speed-ups keep the results exact:

* **Pruning** (integer counts only, i.e. pseudo-data): Short's bounds (2013) for the
  Poisson tail, ``Φ̄(√(2H(n, b))) < P(X >= n) < Φ̄(sign(n-1-b)·√(2H(n-1, b)))`` with
  ``H(k, b) = k·log(k/b) − k + b``, exclude every window whose lower bound is above the
  upper bound of the most promising window; only the few remaining candidates get the
  (expensive) exact ``gammainc``. Excluded windows are strictly less significant, so the
  minimum and its position are unchanged.
* **Fused pseudo-data**: Poisson pseudo-histograms are drawn inside the parallel loop from
  a counter-based generator (SplitMix64 stream per pseudo-experiment, seeded by
  ``(seed, index)``), so results do not depend on the number of threads.

Where ``gammainc`` underflows (p < 1e-290, which happens for the 10⁸-sample ensemble
histograms), ``log p`` comes from the convergent series of the incomplete gamma function
in log space, so windows stay ordered even far beyond double precision.
"""

from __future__ import annotations

import ctypes
import math

import numpy as np
from numba import njit, prange
from numba.extending import get_cython_function_address

__all__ = [
    "log_tail_pvalue",
    "poisson_tail_bounds",
    "scan_given",
    "scan_one",
    "scan_pseudo_counter",
]

_gammainc = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double, ctypes.c_double)(
    get_cython_function_address("scipy.special.cython_special", "gammainc")
)

_TINY = 1e-290
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0


@njit
def log_tail_pvalue(n: float, b: float) -> float:
    """``log P(Poisson(b) >= n)`` for ``n > b > 0`` (continuous ``n`` as ``gammainc``)."""
    p = _gammainc(n, b)
    if p > _TINY:
        return math.log(p)
    # Series: P(n, b) = b^n e^-b / Γ(n+1) · Σ_k b^k / ((n+1)···(n+k)); ratio b/(n+k) < 1.
    term = 1.0
    total = 1.0
    k = 1.0
    while term > 1e-17 * total:
        term *= b / (n + k)
        total += term
        k += 1.0
    return n * math.log(b) - b - math.lgamma(n + 1.0) + math.log(total)


@njit(cache=True)
def _h(k: float, b: float) -> float:
    """Chernoff exponent H(k, b) = k log(k/b) − k + b (0·log 0 = 0)."""
    if k <= 0.0:
        return b
    return k * math.log(k / b) - k + b


@njit(cache=True)
def poisson_tail_bounds(n: float, b: float) -> tuple[float, float]:
    """Signed normal-score bounds ``(z_low, z_high)`` with Φ̄(z_high) < P(X>=n) < Φ̄(z_low).

    For integer ``n > b > 0`` (Short 2013). Used by the pruning and checked by the tests.
    """
    z_high = math.sqrt(2.0 * _h(n, b))
    n1 = n - 1.0
    z_low = math.sqrt(2.0 * _h(n1, b))
    if n1 <= b:
        z_low = -z_low
    return z_low, z_high


@njit(cache=True)
def _prefix(values: np.ndarray, out: np.ndarray) -> None:
    out[0] = 0.0
    for i in range(values.shape[0]):
        out[i + 1] = out[i] + values[i]


@njit
def scan_one(
    cum_obs: np.ndarray,
    cum_ref: np.ndarray,
    lo: int,
    hi: int,
    widths: np.ndarray,
    step: int,
    prune: bool,
) -> tuple[float, int, int]:
    """Most significant window of one histogram given prefix sums.

    Returns:
        ``(log_pvalue, position, width)``; ``log_pvalue`` is 0 (p = 1) without any excess.
    """
    best_logp = 0.0
    # pyBumpHunter's answer when nothing is in excess: first width, at the scan start
    # (or at bin 0 when that width does not fit).
    best_width = widths[0]
    best_pos = lo if hi - best_width + 1 > lo else 0
    if not prune:
        for wi in range(widths.shape[0]):
            w = widths[wi]
            for pos in range(lo, hi - w + 1, step):
                n = cum_obs[pos + w] - cum_obs[pos]
                b = cum_ref[pos + w] - cum_ref[pos]
                if n > b and b > 0.0:
                    lp = log_tail_pvalue(n, b)
                    if lp < best_logp:
                        best_logp = lp
                        best_pos = pos
                        best_width = w
        return best_logp, best_pos, best_width
    # Pass 1 (no logarithms): the window with the largest Bernstein lower bound of H,
    # 3(n-b)^2 / (2(n+2b)) <= H(n, b), is the most promising one.
    top_num = -1.0
    top_den = 1.0
    top_n = 0.0
    top_b = 0.0
    for wi in range(widths.shape[0]):
        w = widths[wi]
        for pos in range(lo, hi - w + 1, step):
            n = cum_obs[pos + w] - cum_obs[pos]
            b = cum_ref[pos + w] - cum_ref[pos]
            if n > b and b > 0.0:
                d = n - b
                # lower = 1.5 d^2 / (n + 2b), compared without division
                num = d * d
                den = n + 2.0 * b
                if num * top_den > top_num * den:
                    top_num = num
                    top_den = den
                    top_n = n
                    top_b = b
    if top_num < 0.0:
        return best_logp, best_pos, best_width
    # Its p-value is below Φ̄(√(2H(n-1, b))), so the minimum is too: windows with
    # H(n, b) below H(n-1, b) of that window are strictly less significant.
    threshold = -1.0
    if top_n - 1.0 > top_b:
        threshold = _h(top_n - 1.0, top_b) * (1.0 - 1e-9) - 1e-12
    # Pass 2: (n-b)^2/b >= H(n, b) rules most windows out before any logarithm.
    for wi in range(widths.shape[0]):
        w = widths[wi]
        for pos in range(lo, hi - w + 1, step):
            n = cum_obs[pos + w] - cum_obs[pos]
            b = cum_ref[pos + w] - cum_ref[pos]
            if n > b and b > 0.0:
                d = n - b
                if d * d >= threshold * b and _h(n, b) >= threshold:
                    lp = log_tail_pvalue(n, b)
                    if lp < best_logp:
                        best_logp = lp
                        best_pos = pos
                        best_width = w
    return best_logp, best_pos, best_width


@njit(parallel=True)
def scan_given(
    observed: np.ndarray,
    reference: np.ndarray,
    lo: int,
    hi: int,
    widths: np.ndarray,
    step: int,
    prune: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scan each row of ``observed`` (n_hist, n_bins) against one ``reference``."""
    n_hist, n_bins = observed.shape
    cum_ref = np.empty(n_bins + 1)
    _prefix(reference, cum_ref)
    logp = np.empty(n_hist)
    pos = np.empty(n_hist, dtype=np.int64)
    width = np.empty(n_hist, dtype=np.int64)
    for i in prange(n_hist):
        cum_obs = np.empty(n_bins + 1)
        _prefix(observed[i], cum_obs)
        logp[i], pos[i], width[i] = scan_one(cum_obs, cum_ref, lo, hi, widths, step, prune)
    return logp, pos, width


@njit(cache=True)
def _mix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(cache=True)
def _uniform(state: np.ndarray) -> float:
    state[0] += _GOLDEN
    return float(_mix(state[0]) >> _S11) * _INV53


@njit(cache=True)
def poisson_table(expected: np.ndarray) -> np.ndarray:
    """Per-bin constants of the Poisson samplers (computed once, not per draw)."""
    table = np.zeros((expected.shape[0], 7))
    for i in range(expected.shape[0]):
        lam = expected[i]
        table[i, 0] = lam
        if lam <= 0.0:
            continue
        if lam < 10.0:
            table[i, 1] = math.exp(-lam)
            continue
        slam = math.sqrt(lam)
        b = 0.931 + 2.53 * slam
        table[i, 1] = math.log(lam)
        table[i, 2] = b
        table[i, 3] = -0.059 + 0.02483 * b  # a
        table[i, 4] = math.log(1.1239 + 1.1328 / (b - 3.4))  # log(1/alpha)
        table[i, 5] = 0.9277 - 3.6224 / (b - 2.0)  # v_r
        table[i, 6] = -lam
    return table


@njit(cache=True)
def _poisson(row: np.ndarray, state: np.ndarray) -> float:
    """One Poisson draw: multiplication method below 10, PTRS (Hörmann 1993) above."""
    lam = row[0]
    if lam <= 0.0:
        return 0.0
    if lam < 10.0:
        limit = row[1]
        count = 0.0
        prod = _uniform(state)
        while prod > limit:
            prod *= _uniform(state)
            count += 1.0
        return count
    loglam = row[1]
    b = row[2]
    a = row[3]
    log_invalpha = row[4]
    vr = row[5]
    while True:
        u = _uniform(state) - 0.5
        v = _uniform(state)
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return k
        if k < 0.0 or (us < 0.013 and v > us):
            continue
        if math.log(v) + log_invalpha - math.log(a / (us * us) + b) <= row[
            6
        ] + k * loglam - math.lgamma(k + 1.0):
            return k


@njit(cache=True)
def pseudo_histogram(table: np.ndarray, seed: int, index: int, out: np.ndarray) -> None:
    """Fill ``out`` with pseudo-experiment ``index`` from stream ``(seed, index)``.

    ``table`` is :func:`poisson_table` of the expected counts.
    """
    state = np.empty(1, dtype=np.uint64)
    state[0] = _mix(_mix(np.uint64(seed) + _GOLDEN) + np.uint64(index))
    for i in range(table.shape[0]):
        out[i] = _poisson(table[i], state)


@njit(parallel=True)
def scan_pseudo_counter(
    reference: np.ndarray, seed: int, n_pseudo: int, lo: int, hi: int, widths: np.ndarray, step: int
) -> np.ndarray:
    """Draw and scan ``n_pseudo`` pseudo-histograms; returns their minimum ``log p``."""
    n_bins = reference.shape[0]
    cum_ref = np.empty(n_bins + 1)
    _prefix(reference, cum_ref)
    table = poisson_table(reference)
    logp = np.empty(n_pseudo)
    n_chunks = min(n_pseudo, 256)
    for c in prange(n_chunks):
        hist = np.empty(n_bins)
        cum_obs = np.empty(n_bins + 1)
        for i in range(c * n_pseudo // n_chunks, (c + 1) * n_pseudo // n_chunks):
            pseudo_histogram(table, seed, i, hist)
            _prefix(hist, cum_obs)
            logp[i] = scan_one(cum_obs, cum_ref, lo, hi, widths, step, True)[0]
    return logp
