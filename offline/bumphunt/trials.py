"""Toy-calibrated significance of a BumpHunter scan beyond the reach of its toys.

With ``n`` pseudo-experiments the empirical global p-value stops at ``1/n``; a strong
excess (the data at prescale 1, say) gets p = 0 and no usable significance. The
distribution of the scan's test statistic ``t = −log p_min`` under the null is therefore
described by an effective number of independent windows N (the look-elsewhere effect,
Gross & Vitells, arXiv 1005.1891, in its simplest, Šidák form): if the local p-values of
N independent windows were uniform,

    P(t_max ≤ t) = (1 − e^{−t})^N,

and N is fitted to the pseudo-experiments by maximum likelihood, which has the closed
form ``N̂ = −n / Σ_i log(1 − e^{−t_i})``. The calibrated global p-value of an observed
``t`` is then ``1 − (1 − e^{−t})^N̂`` and the calibrated significance its one-sided
Gaussian equivalent Φ̄⁻¹(p), negative when the data are less extreme than a typical
background-only experiment. Since N̂ is fitted to the (refitted) pseudo-experiments, it
absorbs what the refit and the discreteness of Poisson counts do to the local p-values;
:mod:`benchmarks.bumphunt_toys` measures how uniform the result is under the null.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtri, ndtri_exp

__all__ = ["calibrated_log_pvalue", "effective_trials", "significance_from_log_pvalue"]

_T_FLOOR = 1e-6  # t = 0 (no excess anywhere) would make log(1 - e^-t) infinite


def effective_trials(test_statistics: np.ndarray) -> float:
    """Maximum-likelihood N of ``P(t ≤ x) = (1 − e^{−x})^N`` for pseudo-experiment ``t``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> t = -np.log(rng.random((4000, 30)).min(axis=1))  # 30 independent windows
        >>> round(effective_trials(t) / 30, 1)
        1.0
    """
    t = np.maximum(np.asarray(test_statistics, dtype=np.float64), _T_FLOOR)
    if t.size == 0:
        return float("nan")
    return float(-t.size / np.sum(np.log(-np.expm1(-t))))


def calibrated_log_pvalue(t: float, n_trials: float) -> float:
    """``log(1 − (1 − e^{−t})^N)``, accurate for tiny p (large ``t``).

    Example:
        >>> round(math.exp(calibrated_log_pvalue(-math.log(0.01), 1.0)), 6)
        0.01
    """
    if not (math.isfinite(n_trials) and n_trials > 0):
        return float("nan")
    t = max(float(t), _T_FLOOR)
    if t > 700.0:  # e^{-t} underflows: p ≈ N e^{-t}
        return math.log(n_trials) - t
    a = n_trials * math.log1p(-math.exp(-t))
    return math.log(-math.expm1(a))


def significance_from_log_pvalue(log_p: float) -> float:
    """One-sided Gaussian equivalent Φ̄⁻¹(p), for p from 0 (as ``log p``) to 1.

    Example:
        >>> round(significance_from_log_pvalue(math.log(0.5)), 6), round(significance_from_log_pvalue(math.log(0.8)), 4)
        (0.0, -0.8416)
    """
    if not math.isfinite(log_p):
        return float("nan")
    if log_p < math.log(0.5):
        return float(-ndtri_exp(log_p))
    return float(-ndtri(math.exp(log_p))) + 0.0  # no -0.0
