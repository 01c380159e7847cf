"""Numba kernels of the BumpHunter scan (arXiv 1101.0390): exact window p-values.

Private module: :mod:`offline.bumphunt.scan` is the public interface. Conventions follow
pyBumpHunter 0.5.1 so both give the same numbers on the same histograms:

* the scan runs over the bins between the first and last non-zero bin of the reference;
* window counts are prefix-sum differences (sequential ``cumsum``, bit-identical);
* the local p-value of a window with ``n > b > 0`` is ``P(Poisson(b) >= n)``, computed as
  the regularised lower incomplete gamma function ``gammainc(n, b)`` (scipy's own
  implementation, called through its Cython C-API); otherwise it is 1;
* ties resolve to the smallest width, then the leftmost position.

**Pruning** (integer counts only) keeps the result exact: Short's bounds (2013) for the
Poisson tail, ``Φ̄(√(2H(n, b))) < P(X >= n) < Φ̄(sign(n-1-b)·√(2H(n-1, b)))`` with
``H(k, b) = k·log(k/b) − k + b``, exclude every window whose lower bound is above the
upper bound of the most promising window; only the few remaining candidates get the
(expensive) exact ``gammainc``. Excluded windows are strictly less significant, so the
minimum and its position are unchanged. Pseudo-experiments normally use the faster
lookup-table scan of :mod:`offline.bumphunt._lookup`; this one is its fallback (huge
expected counts) and its reference.

Where ``gammainc`` underflows (p < 1e-290, which happens for the 10⁸-sample ensemble
histograms), ``log p`` comes from the convergent series of the incomplete gamma function
in log space, so windows stay ordered even far beyond double precision.
"""

from __future__ import annotations

import math

import llvmlite.binding as llvm
import numpy as np
from numba import njit, prange, types
from numba.extending import get_cython_function_address

__all__ = [
    "log_tail_pvalue",
    "poisson_tail_bounds",
    "scan_given",
    "scan_one",
    "scan_paired",
    "scan_single",
]

# scipy's gammainc bound by symbol name (not by address), so that callers can be cached.
llvm.add_symbol(
    "offline_bumphunt_gammainc",
    get_cython_function_address("scipy.special.cython_special", "gammainc"),
)
_gammainc = types.ExternalFunction(
    "offline_bumphunt_gammainc", types.float64(types.float64, types.float64)
)

_TINY = 1e-290


@njit(cache=True)
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
def _bd0(x: float, m: float) -> float:
    """Deviance ``x·log(x/m) + m − x`` for ``x, m > 0`` without cancellation (Loader 2000)."""
    if abs(x - m) < 0.1 * (x + m):
        v = (x - m) / (x + m)
        s = (x - m) * v
        ej = 2.0 * x * v
        v = v * v
        for j in range(1, 1000):
            ej *= v
            s1 = s + ej / (2 * j + 1)
            if s1 == s:
                return s1
            s = s1
    return x * math.log(x / m) + m - x


@njit(cache=True)
def _h(k: float, b: float) -> float:
    """Chernoff exponent H(k, b) = k log(k/b) − k + b (0·log 0 = 0).

    Computed as Loader's deviance: the direct formula loses all digits for ``k, b ~ 1e10``
    (huge ensemble histograms), which would break the pruning.
    """
    if k <= 0.0:
        return b
    return _bd0(k, b)


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


@njit(cache=True)
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


@njit(cache=True)
def scan_single(
    observed: np.ndarray,
    reference: np.ndarray,
    lo: int,
    hi: int,
    widths: np.ndarray,
    step: int,
) -> tuple[float, int, int]:
    """Exhaustive scan of one histogram (no parallel region: one histogram is too little)."""
    n_bins = reference.shape[0]
    cum_ref = np.empty(n_bins + 1)
    _prefix(reference, cum_ref)
    cum_obs = np.empty(n_bins + 1)
    _prefix(observed, cum_obs)
    return scan_one(cum_obs, cum_ref, lo, hi, widths, step, False)


@njit(parallel=True, cache=True)
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


@njit(parallel=True, cache=True)
def scan_paired(
    observed: np.ndarray,
    references: np.ndarray,
    lo: int,
    hi: int,
    widths: np.ndarray,
    step: int,
    prune: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scan each row of ``observed`` against its own row of ``references`` (refitted toys)."""
    n_hist, n_bins = observed.shape
    logp = np.empty(n_hist)
    pos = np.empty(n_hist, dtype=np.int64)
    width = np.empty(n_hist, dtype=np.int64)
    for i in prange(n_hist):
        cum_ref = np.empty(n_bins + 1)
        _prefix(references[i], cum_ref)
        cum_obs = np.empty(n_bins + 1)
        _prefix(observed[i], cum_obs)
        logp[i], pos[i], width[i] = scan_one(cum_obs, cum_ref, lo, hi, widths, step, prune)
    return logp, pos, width
