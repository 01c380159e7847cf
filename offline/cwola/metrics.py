"""ROC curves, significance improvement (SIC) and its maximum, in numpy.

For a cut on the classifier score, ``ε_S`` and ``ε_B`` are the signal and background
efficiencies; the ROC is drawn as background rejection ``1/ε_B`` against ``ε_S`` and
``SIC = ε_S / sqrt(ε_B)`` is the factor by which the cut improves ``S/sqrt(B)``. The
maximum is taken only where at least ``min_background`` test background events pass the
cut (relative statistical error of ε_B at most ``1/sqrt(min_background)``), otherwise
the largest SIC is the luck of the last few background events.
"""

from __future__ import annotations

import numpy as np

__all__ = ["max_sic", "roc_curve", "sic_curve"]


def roc_curve(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(eps_s, eps_b, n_background_passing)`` for every cut on ``scores``, tightest last.

    Args:
        scores: classifier outputs (higher: more signal-like).
        labels: 1 for signal, 0 for background.
        weights: optional event weights (default 1).

    Example:
        >>> s, b, n = roc_curve(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 0, 1, 0]))
        >>> s.tolist(), b.tolist(), n.tolist()
        ([0.5, 0.5, 1.0, 1.0], [0.0, 0.5, 0.5, 1.0], [0.0, 1.0, 1.0, 2.0])
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels) > 0.5
    w = np.ones_like(scores) if weights is None else np.asarray(weights, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    sig = np.cumsum(np.where(labels[order], w[order], 0.0))
    bkg = np.cumsum(np.where(labels[order], 0.0, w[order]))
    count = np.cumsum(~labels[order]).astype(np.float64)
    # One point per distinct score (ties cut together).
    last = np.r_[np.flatnonzero(np.diff(scores[order]) != 0), scores.size - 1]
    total_s, total_b = max(sig[-1], 1e-300), max(bkg[-1], 1e-300)
    return sig[last] / total_s, bkg[last] / total_b, count[last]


def sic_curve(eps_s: np.ndarray, eps_b: np.ndarray) -> np.ndarray:
    """``ε_S / sqrt(ε_B)`` (0 where ``ε_B`` is 0).

    Example:
        >>> sic_curve(np.array([0.5, 0.2]), np.array([0.25, 0.0])).tolist()
        [1.0, 0.0]
    """
    eps_b = np.asarray(eps_b, dtype=np.float64)
    return np.divide(eps_s, np.sqrt(eps_b), out=np.zeros_like(eps_b), where=eps_b > 0)


def max_sic(scores: np.ndarray, labels: np.ndarray, min_background: int = 25) -> float:
    """Largest SIC over cuts that keep at least ``min_background`` background events.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> labels = np.r_[np.ones(1000), np.zeros(100_000)]
        >>> scores = np.r_[rng.normal(2, 1, 1000), rng.normal(0, 1, 100_000)]
        >>> 3.0 < max_sic(scores, labels) < 6.0
        True
    """
    eps_s, eps_b, count = roc_curve(scores, labels)
    sic = sic_curve(eps_s, eps_b)
    ok = count >= min_background
    return float(sic[ok].max()) if ok.any() else 0.0
