"""Lookup-table BumpHunter scan of integer pseudo-data; exact, same answer as the full scan.

Private module used by :mod:`offline.bumphunt.scan`. In every pseudo-experiment a window
has the same expected count ``b``; only its observed integer count ``n`` changes, and
the local p-value ``P(Poisson(b) >= n)`` decreases with ``n``. So each window gets, once
per scan, a table of ``p(n)`` for ``n`` from ``floor(b) + 1`` to ``b + 8√b + 12``:

* the top entry is anchored on scipy's ``gammainc`` and the Poisson probability of
  Loader (2000) (``stirlerr``/``bd0``, full relative precision); the table is filled
  downward, ``p(n) = p(n + 1) + P(X = n)`` with ``P(X = n - 1) = P(X = n)·n/b``: sums of
  positive terms, relative error about 1e-12 (the tests check < 1e-11 against
  ``gammainc`` over all tables of the benchmark histogram);
* one sentinel before it (``p = 1``: no excess) and one after it (``p = 0``: outside
  the table) make the lookup branch-free.

A pseudo-experiment is then prefix sums of its integer counts and one table read per
window. The minimum is exact whenever it is unambiguous: the best table value must be
more than ``RELATIVE_MARGIN`` (1e-9, a hundred times the table error) below every other
window's, and inside the table. Otherwise (near-ties, counts beyond the table, p-values
near underflow; essentially never for pseudo-data) the pseudo-experiment is scanned again
by the exhaustive exact scan of :mod:`offline.bumphunt._kernels`. The winner's
``log p`` is always recomputed with ``gammainc``, so every number is the one of the
exhaustive scan, bit for bit. When the tables would exceed ``MAX_TABLE_ENTRIES`` (huge
expected counts), the pruned exact scan is used instead.

Pseudo-experiments run in batches of ``_BATCH``, window-major, with int32 prefix sums
when the largest possible total fits (about three times faster than int64 here).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from offline.bumphunt._kernels import _bd0, _gammainc, _prefix, log_tail_pvalue, scan_one
from offline.bumphunt._poisson import draw_batch, poisson_sampler

__all__ = [
    "MAX_TABLE_ENTRIES",
    "RELATIVE_MARGIN",
    "poisson_pmf",
    "scan_counts",
    "scan_pseudo_counter",
    "window_tables",
]

RELATIVE_MARGIN = 1e-9
MAX_TABLE_ENTRIES = 1 << 23
_SIGMAS = 8.0
_BATCH = 128
_INT32_MAX = 2**31 - 1
_SMALLEST = 1e-270
_NO_EXCESS = np.int64(1) << np.int64(61)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


@njit(cache=True)
def _stirlerr(n: float) -> float:
    """``log(n!) − (n + ½)·log(n) + n − log√(2π)`` for ``n >= 1`` (Loader 2000)."""
    if n <= 15.0:
        return math.lgamma(n + 1.0) - (n + 0.5) * math.log(n) + n - _LOG_SQRT_2PI
    nn = n * n
    s0, s1, s2, s3, s4 = 1.0 / 12, 1.0 / 360, 1.0 / 1260, 1.0 / 1680, 1.0 / 1188
    if n > 500.0:
        return (s0 - s1 / nn) / n
    if n > 80.0:
        return (s0 - (s1 - s2 / nn) / nn) / n
    if n > 35.0:
        return (s0 - (s1 - (s2 - s3 / nn) / nn) / nn) / n
    return (s0 - (s1 - (s2 - (s3 - s4 / nn) / nn) / nn) / nn) / n


@njit(cache=True)
def poisson_pmf(k: float, lam: float) -> float:
    """``P(Poisson(λ) = k)`` for integer ``k >= 0``, ``λ > 0``, to full relative precision.

    Example:
        >>> round(poisson_pmf(3.0, 2.0), 12)
        0.180447044315
    """
    if k == 0.0:
        return math.exp(-lam)
    return math.exp(-_stirlerr(k) - _bd0(k, lam)) / math.sqrt(2.0 * math.pi * k)


@njit(cache=True)
def _fill_pvalues(b: float, base: int, out: np.ndarray) -> None:
    """``out[i] = P(Poisson(b) >= base + i)``; 0 where that is below ``_SMALLEST``."""
    size = out.shape[0]
    top = base + size - 1
    tail = _gammainc(top + 1.0, b)  # P(X >= top + 1)
    pmf = poisson_pmf(float(top), b)
    for i in range(size - 1, -1, -1):
        n = base + i
        if pmf < _SMALLEST:  # lost precision (tiny b): restart from exact values
            pmf = poisson_pmf(float(n), b)
            tail = _gammainc(n + 1.0, b)
        p = tail + pmf
        out[i] = p if pmf >= _SMALLEST else 0.0
        tail = p
        pmf *= n / b


@njit(cache=True)
def _window_layout(cum_ref: np.ndarray, lo: int, hi: int, widths: np.ndarray, step: int) -> tuple:
    """:func:`window_tables` with the sentinels set but the p-values not yet filled in;
    also returns ``(base, size)``: table ``j`` holds ``p(base[j] ..)``, ``size[j]`` entries.
    """
    n_windows = 0
    for wi in range(widths.shape[0]):
        n_windows += len(range(lo, hi - widths[wi] + 1, step))
    start = np.empty(n_windows, dtype=np.int64)
    stop = np.empty(n_windows, dtype=np.int64)
    base = np.empty(n_windows, dtype=np.int64)
    size = np.zeros(n_windows, dtype=np.int64)
    expected = np.empty(n_windows)
    j = 0
    total = 0
    for wi in range(widths.shape[0]):
        w = widths[wi]
        for pos in range(lo, hi - w + 1, step):
            b = cum_ref[pos + w] - cum_ref[pos]
            start[j] = pos
            stop[j] = pos + w
            expected[j] = b
            if b > 0.0:
                base[j] = np.int64(math.floor(b)) + 1  # smallest n with n > b
                top = math.floor(b + _SIGMAS * math.sqrt(b) + 12.0)
                size[j] = max(np.int64(top) - base[j] + 1, 1)
            else:
                base[j] = _NO_EXCESS
            total += size[j] + 2
            j += 1
    shift = np.empty(n_windows, dtype=np.int64)
    first = np.empty(n_windows, dtype=np.int64)
    last = np.empty(n_windows, dtype=np.int64)
    if total > MAX_TABLE_ENTRIES:
        return start, stop, shift, first, last, np.empty(0), expected, base, size
    table = np.empty(total)
    offset = 0
    for j in range(n_windows):
        table[offset] = 1.0
        table[offset + 1 + size[j]] = 0.0
        shift[j] = offset + 1 - base[j]
        first[j] = offset
        last[j] = offset + 1 + size[j]
        offset += size[j] + 2
    return start, stop, shift, first, last, table, expected, base, size


@njit(cache=True)
def window_tables(
    cum_ref: np.ndarray, lo: int, hi: int, widths: np.ndarray, step: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Windows in scan order and their p-value tables.

    Returns:
        ``(start, stop, shift, first, last, table, expected)``: window ``j`` covers bins
        ``start[j] .. stop[j] - 1`` and holds ``expected[j]`` background events; its
        p-value for observed count ``n`` is ``table[clip(n + shift[j], first[j],
        last[j])]``. ``table`` is empty when it would exceed ``MAX_TABLE_ENTRIES``.
    """
    start, stop, shift, first, last, table, expected, base, size = _window_layout(
        cum_ref, lo, hi, widths, step
    )
    if table.shape[0] > 0:
        for j in range(start.shape[0]):
            if size[j] > 0:
                _fill_pvalues(expected[j], base[j], table[first[j] + 1 : last[j]])
    return start, stop, shift, first, last, table, expected


@njit(cache=True)
def _best_windows(
    cum: np.ndarray,
    windows: tuple,
    best: np.ndarray,
    winner: np.ndarray,
    ambiguous: np.ndarray,
) -> None:
    """Smallest table p-value per column of ``cum`` (prefix sums, one histogram per column).

    Fills ``best`` (1: no excess, 0: outside a table), ``winner`` (window index, -1:
    none) and ``ambiguous`` (1 when another window came within ``RELATIVE_MARGIN`` of
    the best). Window-major, so that one window's table stays in cache over the batch;
    the update rule is the one of a sequential scan in window order (ties keep the first
    window). int32 prefix sums run about three times faster than int64 here.
    """
    start, stop, shift, first, last, table, _ = windows
    m = best.shape[0]
    above = np.empty(m)  # a value under this is a new best or a near-tie
    for p in range(m):
        best[p] = 1.0
        above[p] = 1.0
        winner[p] = -1
        ambiguous[p] = 0
    for j in range(start.shape[0]):
        low_edge = cum[start[j]]
        high_edge = cum[stop[j]]
        sh = shift[j]
        lo_index = first[j]
        hi_index = last[j]
        for p in range(m):
            value = table[min(max(high_edge[p] - low_edge[p] + sh, lo_index), hi_index)]
            if value < above[p]:
                current = best[p]
                if value < current * (1.0 - RELATIVE_MARGIN):
                    ambiguous[p] = 0
                else:
                    ambiguous[p] = 1
                    if value >= current:
                        continue
                best[p] = value
                above[p] = min(value * (1.0 + RELATIVE_MARGIN), 1.0)
                winner[p] = j


@njit(cache=True)
def _finish(
    cum: np.ndarray,
    cum_ref: np.ndarray,
    lo: int,
    hi: int,
    widths: np.ndarray,
    step: int,
    windows: tuple,
    column: int,
    best: float,
    winner: int,
    ambiguous: int,
    cum_float: np.ndarray,
) -> tuple[float, int, int]:
    """Exact ``(log_pvalue, position, width)`` of column ``column`` of ``cum``."""
    start, stop, _, _, _, table, expected = windows
    if table.shape[0] == 0 or ambiguous != 0 or best == 0.0:
        for i in range(cum.shape[0]):
            cum_float[i] = cum[i, column]
        return scan_one(cum_float, cum_ref, lo, hi, widths, step, table.shape[0] == 0)
    if winner < 0:
        w = widths[0]
        return 0.0, (lo if hi - w + 1 > lo else 0), w
    n = float(cum[stop[winner], column] - cum[start[winner], column])
    return log_tail_pvalue(n, expected[winner]), start[winner], stop[winner] - start[winner]


@njit(cache=True)
def _scan_batch(
    cum: np.ndarray,
    cum_ref: np.ndarray,
    lo: int,
    hi: int,
    widths: np.ndarray,
    step: int,
    windows: tuple,
    first_index: int,
    logp: np.ndarray,
    pos: np.ndarray,
    width: np.ndarray,
) -> None:
    """Scan the columns of ``cum`` into ``logp[first_index:]`` etc."""
    m = cum.shape[1]
    best = np.empty(m)
    winner = np.empty(m, dtype=np.int64)
    ambiguous = np.empty(m, dtype=np.int64)
    if windows[5].shape[0] > 0:
        _best_windows(cum, windows, best, winner, ambiguous)
    cum_float = np.empty(cum.shape[0])
    for p in range(m):
        i = first_index + p
        logp[i], pos[i], width[i] = _finish(
            cum,
            cum_ref,
            lo,
            hi,
            widths,
            step,
            windows,
            p,
            best[p],
            winner[p],
            ambiguous[p],
            cum_float,
        )


@njit(parallel=True, cache=True)
def scan_pseudo_counter(
    reference: np.ndarray, seed: int, n_pseudo: int, lo: int, hi: int, widths: np.ndarray, step: int
) -> np.ndarray:
    """Draw and scan ``n_pseudo`` pseudo-histograms; returns their minimum ``log p``.

    Pseudo-experiment ``i`` is row ``i`` of
    :func:`offline.bumphunt._poisson.pseudo_histograms`, whatever the number of threads.
    One parallel region (batches of ``_BATCH`` pseudo-experiments): on a busy machine
    every region costs a wake-up of every thread.
    """
    n_bins = reference.shape[0]
    cum_ref = np.empty(n_bins + 1)
    _prefix(reference, cum_ref)
    ptrs, offset, size, low, prob, alias = poisson_sampler(reference)
    windows = window_tables(cum_ref, lo, hi, widths, step)
    most = 0  # largest possible total count: int32 prefix sums if it fits
    for k in range(n_bins):
        if size[k] == 0:  # PTRS bin: unbounded
            most = _INT32_MAX
            break
        most += low[k] + size[k] - 1
    small = most < _INT32_MAX
    logp = np.empty(n_pseudo)
    pos = np.empty(n_pseudo, dtype=np.int64)
    width = np.empty(n_pseudo, dtype=np.int64)
    n_batches = (n_pseudo + _BATCH - 1) // _BATCH
    for c in prange(n_batches):
        first = c * _BATCH
        m = min(_BATCH, n_pseudo - first)
        state = np.empty(m, dtype=np.uint64)
        if small:
            cum32 = np.empty((n_bins + 1, m), dtype=np.int32)
            draw_batch(ptrs, offset, size, low, prob, alias, seed, first, state, cum32)
            _scan_batch(cum32, cum_ref, lo, hi, widths, step, windows, first, logp, pos, width)
        else:
            cum64 = np.empty((n_bins + 1, m), dtype=np.int64)
            draw_batch(ptrs, offset, size, low, prob, alias, seed, first, state, cum64)
            _scan_batch(cum64, cum_ref, lo, hi, widths, step, windows, first, logp, pos, width)
    return logp


@njit(cache=True)
def _fill_prefix(observed: np.ndarray, first: int, cum: np.ndarray) -> None:
    """Prefix sums of rows ``first ..`` of ``observed`` into the columns of ``cum``."""
    n_bins = observed.shape[1]
    m = cum.shape[1]
    for p in range(m):
        cum[0, p] = 0
    for k in range(n_bins):
        for p in range(m):
            cum[k + 1, p] = cum[k, p] + np.int64(observed[first + p, k])


@njit(parallel=True, cache=True)
def scan_counts(
    observed: np.ndarray, reference: np.ndarray, lo: int, hi: int, widths: np.ndarray, step: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scan each row of integer-valued ``observed`` (n_hist, n_bins) against ``reference``.

    Same result as ``_kernels.scan_given`` (bit for bit); rows must hold non-negative
    integers below 2⁵³.
    """
    n_hist, n_bins = observed.shape
    cum_ref = np.empty(n_bins + 1)
    _prefix(reference, cum_ref)
    windows = window_tables(cum_ref, lo, hi, widths, step)
    most = 0.0  # largest total count: int32 prefix sums if it fits (plain loops: an
    for i in range(n_hist):  # array expression would become one more parallel region)
        total = 0.0
        for k in range(n_bins):
            total += observed[i, k]
        most = max(most, total)
    small = most < _INT32_MAX
    logp = np.empty(n_hist)
    pos = np.empty(n_hist, dtype=np.int64)
    width = np.empty(n_hist, dtype=np.int64)
    n_batches = (n_hist + _BATCH - 1) // _BATCH
    for c in prange(n_batches):
        first = c * _BATCH
        m = min(_BATCH, n_hist - first)
        if small:
            cum32 = np.empty((n_bins + 1, m), dtype=np.int32)
            _fill_prefix(observed, first, cum32)
            _scan_batch(cum32, cum_ref, lo, hi, widths, step, windows, first, logp, pos, width)
        else:
            cum64 = np.empty((n_bins + 1, m), dtype=np.int64)
            _fill_prefix(observed, first, cum64)
            _scan_batch(cum64, cum_ref, lo, hi, widths, step, windows, first, logp, pos, width)
    return logp, pos, width
