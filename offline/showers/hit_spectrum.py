"""Pooled spectrum of hit energies (all cells at or above threshold, all showers), numba.

The cell energy spectrum is one histogram per sample rather than one number per shower,
so it is computed separately from :mod:`offline.showers.observables`; the numpy twin is
:func:`offline.showers.observables_numpy.hit_energy_histogram_numpy`.
:func:`hit_energy_histograms_per_shower` keeps one histogram per shower (the reference
sample's, so that its statistical floor can be estimated by resampling showers).
"""

from __future__ import annotations

import numba
import numpy as np

from offline.showers.observables import validate_showers

__all__ = ["hit_energy_histogram", "hit_energy_histograms_per_shower"]


@numba.njit(parallel=True, cache=True, nogil=True)
def _hit_histogram_kernel(
    flat: np.ndarray, threshold: float, edges: np.ndarray, n_chunks: int
) -> np.ndarray:
    n_bins = edges.shape[0] - 1
    counts = np.zeros((n_chunks, n_bins), dtype=np.int64)
    size = flat.shape[0]
    step = (size + n_chunks - 1) // n_chunks
    for c in numba.prange(n_chunks):
        lo = c * step
        hi = min(size, lo + step)
        for k in range(lo, hi):
            e = flat[k]
            if e >= threshold and e >= edges[0] and e <= edges[n_bins]:
                b = np.searchsorted(edges, e, side="right") - 1
                if b >= n_bins:
                    b = n_bins - 1
                counts[c, b] += 1
    return counts.sum(axis=0)


def hit_energy_histogram(
    showers: np.ndarray, edges: np.ndarray, threshold_mev: float
) -> np.ndarray:
    """Counts of hit energies (all showers pooled) in the bins ``edges`` (MeV).

    Hits outside ``[edges[0], edges[-1]]`` are not counted; the last bin is closed like
    :func:`numpy.histogram`.

    Example:
        >>> s = np.array([[[[0.05, 1.0], [2.5, 7.0]]]], np.float32)
        >>> hit_energy_histogram(s, np.array([0.0, 2.0, 8.0]), threshold_mev=0.1).tolist()
        [1, 2]
    """
    arr = validate_showers(showers)
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        msg = f"edges must be a strictly increasing 1-D array of at least two values, got {edges!r}"
        raise ValueError(msg)
    flat = np.ascontiguousarray(arr).reshape(-1)
    n_chunks = max(1, min(64, flat.size // 1_000_000 + 1))
    return _hit_histogram_kernel(flat, float(threshold_mev), edges, n_chunks)


@numba.njit(parallel=True, cache=True, nogil=True)
def _per_shower_kernel(flat: np.ndarray, threshold: float, edges: np.ndarray) -> np.ndarray:
    n, size = flat.shape
    n_bins = edges.shape[0] - 1
    counts = np.zeros((n, n_bins), dtype=np.uint16)
    for s in numba.prange(n):
        for k in range(size):
            e = flat[s, k]
            if e >= threshold and e >= edges[0] and e <= edges[n_bins]:
                b = np.searchsorted(edges, e, side="right") - 1
                if b >= n_bins:
                    b = n_bins - 1
                if counts[s, b] < 65535:
                    counts[s, b] += 1
    return counts


def hit_energy_histograms_per_shower(
    showers: np.ndarray, edges: np.ndarray, threshold_mev: float
) -> np.ndarray:
    """``(N, bins)`` uint16 hit counts per shower (same binning rules as :func:`hit_energy_histogram`).

    Example:
        >>> s = np.array([[[[0.05, 1.0], [2.5, 7.0]]], [[[3.0, 0.0], [0.0, 0.0]]]], np.float32)
        >>> hit_energy_histograms_per_shower(s, np.array([0.0, 2.0, 8.0]), 0.1).tolist()
        [[1, 2], [0, 1]]
    """
    arr = validate_showers(showers)
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        msg = f"edges must be a strictly increasing 1-D array of at least two values, got {edges!r}"
        raise ValueError(msg)
    flat = np.ascontiguousarray(arr).reshape(arr.shape[0], -1)
    return _per_shower_kernel(flat, float(threshold_mev), edges)
