"""The Gaussian window statistic that calibrates a smooth (flow-sampled) histogram.

BumpHunter's local p-value is Poisson: right for counted data, wrong for the ensemble's
locating histogram, which is a mean of flow samples scaled to events. That histogram has
no Poisson noise of its own; it fluctuates as the bootstrap members do, smoothly and
correlated from bin to bin. Scanned with Poisson p-values, every window of it looks
quiet: on ten background-only coverage runs the Poisson-scan statistic ``t`` of the
observed histogram and of Gaussian pseudo-experiments drawn from the members'
covariance were all about 1.1 (local p ≈ e⁻¹), the effective-trials model of
:mod:`offline.bumphunt.trials` (the maximum of N uniform local p-values) did not hold,
and the calibrated significances came out compressed (standard deviation 0.28 instead
of 1) and, for the bump runs, far below what the toys said.

Here each window's excess over its background fit is measured in units of its own
standard deviation under the pseudo-experiments, ``z_w = (n_w − b_w) / σ_w``, and the
statistic is ``t = −log Φ̄(max_w z_w)``. For the maximum of N independent standard
normals ``P(t ≤ x) = (1 − e^{−x})^N``: the same form the effective-trials fit assumes,
so :func:`offline.bumphunt.trials.calibrated_log_pvalue` extrapolates it beyond the
toys' reach in the same way as for counted data.

The window *location* is still BumpHunter's Poisson scan (the paper's procedure); only the
calibrated significance of the flow uses this statistic.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr

__all__ = ["gaussian_statistics", "window_grid", "window_sums"]


def window_grid(lo: int, hi: int, widths: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    """First bins and widths of every window the scan tries, in the scan's order.

    Example:
        >>> pos, w = window_grid(0, 5, np.array([2, 3]), 1)
        >>> pos.tolist(), w.tolist()
        ([0, 1, 2, 3, 0, 1, 2], [2, 2, 2, 2, 3, 3, 3])
    """
    positions, sizes = [], []
    for w in np.asarray(widths, dtype=np.int64):
        p = np.arange(lo, hi - int(w) + 1, int(step), dtype=np.int64)
        positions.append(p)
        sizes.append(np.full(p.size, int(w), dtype=np.int64))
    if not positions:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(positions), np.concatenate(sizes)


def window_sums(histograms: np.ndarray, positions: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Sum of every window of every row, ``(rows, windows)``."""
    h = np.atleast_2d(np.asarray(histograms, dtype=np.float64))
    cum = np.zeros((h.shape[0], h.shape[1] + 1))
    np.cumsum(h, axis=1, out=cum[:, 1:])
    return cum[:, positions + widths] - cum[:, positions]


def gaussian_statistics(
    excess: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``t = −log Φ̄(max_w z_w)`` and the index of that window, for every row of ``excess``.

    Args:
        excess: ``(rows, windows)`` observed minus expected window counts (events).
        sigma: ``(windows,)`` standard deviation of each window's excess under the null;
            windows with ``sigma <= 0`` are left out.

    Raises:
        ValueError: no window has a positive ``sigma``.
    """
    sigma = np.asarray(sigma, dtype=np.float64)
    usable = sigma > 0
    if not np.any(usable):
        msg = "scan: no window fluctuates under the pseudo-experiments (all sigma are 0)"
        raise ValueError(msg)
    z = np.where(usable, np.asarray(excess, dtype=np.float64) / np.where(usable, sigma, 1.0), -np.inf)
    best = np.argmax(z, axis=1)
    z_max = z[np.arange(z.shape[0]), best]
    return -log_ndtr(-z_max), best
