"""Fréchet and kernel physics distances (FPD, KPD) of arXiv:2211.10295.

Implemented here rather than taken from ``jetnet``: ``pip install jetnet`` (0.2.5) would
downgrade numpy to 1.26 and pull coffea, pandas, tables and more into the environment, so
it does not install cleanly. The implementation follows the paper and the reference code
of ``jetnet.evaluation.fpd/kpd``:

* Both samples are divided by the per-feature maximum absolute value of the *reference*
  (``normalise=True``, as jetnet does), so features with different units weigh alike and
  the polynomial kernel stays well conditioned (``|x . y / d| <= 1``).
* **FPD**: the Fréchet (2-Wasserstein between Gaussians) distance
  ``|mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))`` is biased at finite sample size
  roughly like ``1/N``. It is computed at ``num_points`` sample sizes between
  ``min_samples`` and ``max_samples`` (each the mean over ``num_batches`` random
  subsamples), a straight line in ``1/N`` is fitted, and the intercept (``N -> inf``) is
  the FPD; its error is the intercept's standard error from the fit.
* **KPD**: the unbiased estimator of the squared maximum mean discrepancy (MMD^2) with the
  cubic polynomial kernel ``k(x, y) = (x . y / d + 1)^3``, evaluated in ``num_batches``
  batches of ``batch_size`` showers per sample; the KPD is the median over batches and
  the error half the 16-84 % inter-quantile range.

Both are ~0 for samples from the same distribution (KPD can be slightly negative).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

__all__ = ["PhysicsDistance", "frechet_distance", "fpd", "kpd", "mmd_poly_unbiased"]


@dataclass(frozen=True)
class PhysicsDistance:
    """A distance with its uncertainty.

    Attributes:
        value: the estimate.
        error: its uncertainty (see the module docstring).
    """

    value: float
    error: float

    def to_dict(self) -> dict[str, float]:
        """``{"value": ..., "error": ...}``."""
        return {"value": self.value, "error": self.error}


def _check(reference: np.ndarray, generated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(reference, dtype=np.float64)
    y = np.asarray(generated, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        msg = f"feature matrices must be (N, d) with equal d, got {x.shape} and {y.shape}"
        raise ValueError(msg)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        msg = "features must be finite"
        raise ValueError(msg)
    return x, y


def _normalise(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = np.abs(x).max(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return x / scale, y / scale


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet distance between two Gaussians.

    Example:
        >>> round(frechet_distance(np.zeros(2), np.eye(2), np.ones(2), np.eye(2)), 6)
        2.0
    """
    diff = mu1 - mu2
    # Tr (S1 S2)^(1/2) = Tr (S1^(1/2) S2 S1^(1/2))^(1/2): a symmetric PSD matrix, so use eigh.
    w1, v1 = linalg.eigh(sigma1)
    root1 = (v1 * np.sqrt(np.clip(w1, 0.0, None))) @ v1.T
    inner = root1 @ sigma2 @ root1
    trace_covmean = float(
        np.sqrt(np.clip(linalg.eigvalsh(0.5 * (inner + inner.T)), 0.0, None)).sum()
    )
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_covmean)


def _frechet_of_samples(x: np.ndarray, y: np.ndarray) -> float:
    return frechet_distance(
        x.mean(axis=0),
        np.atleast_2d(np.cov(x, rowvar=False)),
        y.mean(axis=0),
        np.atleast_2d(np.cov(y, rowvar=False)),
    )


def fpd(
    reference: np.ndarray,
    generated: np.ndarray,
    *,
    min_samples: int = 5_000,
    max_samples: int = 50_000,
    num_batches: int = 10,
    num_points: int = 8,
    normalise: bool = True,
    seed: int = 42,
) -> PhysicsDistance:
    """Fréchet physics distance extrapolated to infinite sample size.

    Sample sizes are capped at the smaller sample; subsamples are drawn with replacement.

    Args:
        reference: ``(N_r, d)`` reference features.
        generated: ``(N_g, d)`` generated features.
        min_samples: smallest sample size of the fit.
        max_samples: largest sample size of the fit.
        num_batches: subsamples averaged per sample size.
        num_points: sample sizes in the fit.
        normalise: divide by the reference's per-feature maximum absolute value.
        seed: random seed.

    Returns:
        The intercept of the ``1/N`` fit and its standard error.
    """
    x, y = _check(reference, generated)
    if normalise:
        x, y = _normalise(x, y)
    n_max = min(max_samples, len(x), len(y))
    n_min = min(min_samples, max(n_max // 5, 2 * x.shape[1] + 2))
    if n_max < n_min or n_max < 3:
        msg = f"too few showers for FPD: {len(x)} and {len(y)}"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    sizes = np.unique(np.linspace(n_min, n_max, num_points).astype(int))
    values = []
    for n in sizes:
        batch = [
            _frechet_of_samples(x[rng.integers(0, len(x), n)], y[rng.integers(0, len(y), n)])
            for _ in range(num_batches)
        ]
        values.append(np.mean(batch))
    inv_n = 1.0 / sizes
    if len(sizes) < 3:
        return PhysicsDistance(float(values[-1]), float("nan"))
    coeffs, cov = np.polyfit(inv_n, np.asarray(values), 1, cov=True)
    return PhysicsDistance(float(coeffs[1]), float(np.sqrt(max(cov[1, 1], 0.0))))


def mmd_poly_unbiased(
    x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef0: float = 1.0
) -> float:
    """Unbiased MMD^2 with the polynomial kernel ``(gamma x . y + coef0)^degree``.

    ``gamma`` defaults to ``1 / d``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> abs(mmd_poly_unbiased(rng.normal(size=(500, 3)), rng.normal(size=(500, 3)))) < 0.05
        True
    """
    d = x.shape[1]
    g = 1.0 / d if gamma is None else gamma
    m, n = len(x), len(y)
    kxx = (g * x @ x.T + coef0) ** degree
    kyy = (g * y @ y.T + coef0) ** degree
    kxy = (g * x @ y.T + coef0) ** degree
    sum_xx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    sum_yy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sum_xx + sum_yy - 2.0 * kxy.mean())


def kpd(
    reference: np.ndarray,
    generated: np.ndarray,
    *,
    num_batches: int = 10,
    batch_size: int = 5_000,
    normalise: bool = True,
    seed: int = 42,
) -> PhysicsDistance:
    """Kernel physics distance: median of batched unbiased MMD^2 (cubic polynomial kernel).

    Args:
        reference: ``(N_r, d)`` reference features.
        generated: ``(N_g, d)`` generated features.
        num_batches: number of batches.
        batch_size: showers per sample and batch (capped at half the smaller sample).
        normalise: divide by the reference's per-feature maximum absolute value.
        seed: random seed.

    Returns:
        Median and half the 16-84 % inter-quantile range over batches.
    """
    x, y = _check(reference, generated)
    if normalise:
        x, y = _normalise(x, y)
    # At most half of the smaller sample, so batches differ and the spread means something.
    size = min(batch_size, len(x) // 2, len(y) // 2)
    if size < 2:
        msg = f"too few showers for KPD: {len(x)} and {len(y)}"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    vals = np.array(
        [
            mmd_poly_unbiased(
                x[rng.choice(len(x), size, replace=False)],
                y[rng.choice(len(y), size, replace=False)],
            )
            for _ in range(num_batches)
        ]
    )
    q16, q84 = np.percentile(vals, [16.275, 83.725])
    return PhysicsDistance(float(np.median(vals)), float((q84 - q16) / 2.0))
