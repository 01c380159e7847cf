"""Statistical errors of a ROC AUC measured on one test set.

* :func:`delong_auc` gives the AUC (Mann-Whitney statistic, ties counted one half) and
  its standard error from DeLong, DeLong & Clarke-Pearson (Biometrics 44 (1988) 837):
  the variance of the two-sample U-statistic estimated from its structural components,
  ``Var = s10² / m + s01² / n``. It is the error of *this* AUC from the finite test
  sample; it does not include the variation from retraining the network.
* :func:`null_auc_error` is the exact standard deviation of the AUC under the null
  hypothesis (both classes drawn from one distribution):
  ``sqrt((m + n + 1) / (12 m n))`` (Mann-Whitney; Hanley & McNeil, Radiology 143 (1982)
  29, at AUC = 0.5). It is the floor beside every classifier AUC: what a perfect
  generator gives at the same test size.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata

__all__ = ["delong_auc", "null_auc_error"]


def delong_auc(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """AUC of ``scores`` for ``labels`` (1 = positive) and its DeLong standard error.

    Args:
        scores: ``(N,)`` classifier outputs (any monotone scale).
        labels: ``(N,)`` 0 or 1.

    Returns:
        ``(auc, error)``.

    Raises:
        ValueError: when a class is empty or the shapes differ.

    Example:
        >>> auc, err = delong_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
        >>> round(auc, 3), round(err, 3)
        (0.75, 0.354)
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if s.shape != y.shape:
        msg = f"scores and labels differ in length: {s.size} and {y.size}"
        raise ValueError(msg)
    pos, neg = s[y == 1], s[y == 0]
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        msg = f"need both classes for an AUC, got {m} positives and {n} negatives"
        raise ValueError(msg)
    all_ranks = rankdata(np.concatenate([pos, neg]))
    # Structural components: for each positive, the fraction of negatives below it (ties 1/2).
    v10 = (all_ranks[:m] - rankdata(pos)) / n
    v01 = 1.0 - (all_ranks[m:] - rankdata(neg)) / m
    auc = float(v10.mean())
    var = (v10.var(ddof=1) / m if m > 1 else 0.0) + (v01.var(ddof=1) / n if n > 1 else 0.0)
    return auc, float(math.sqrt(max(var, 0.0)))


def null_auc_error(m: int, n: int) -> float:
    """Standard deviation of the AUC of ``m`` vs ``n`` events from the same distribution.

    Example:
        >>> round(null_auc_error(400, 400), 4)
        0.0204
    """
    if m < 1 or n < 1:
        msg = f"need at least one event per class, got {m} and {n}"
        raise ValueError(msg)
    return math.sqrt((m + n + 1) / (12.0 * m * n))
