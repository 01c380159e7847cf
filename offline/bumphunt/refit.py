"""Batched refits of the background shape: many histograms at once, by Fisher scoring.

The calibrated global p-value refits the background to every pseudo-experiment (see
:mod:`offline.bumphunt.calibrate`), a thousand fits per scan. One MIGRAD fit per
pseudo-experiment costs tens of milliseconds; these fits start at the parameters the
pseudo-data were drawn from, so a few Fisher-scoring steps (Newton's method with the
expected Hessian of the Poisson deviance, always positive semi-definite) reach the
minimum, and numpy does them for all histograms together.

The model is that of :mod:`offline.bumphunt.fit`: the expected count of bin b is
``μ_b = Σ_j w_bj exp(Σ_k c_k x_bj^k)`` (Gauss–Legendre nodes x_bj of the bin, in
``x = m / scale``), fitted by minimising the deviance ``2 Σ_b [μ_b − n_b + n_b log(n_b/μ_b)]``
over the bins selected by ``mask``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BatchFit", "deviance", "quadrature", "refit_many"]

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)


def quadrature(edges: np.ndarray, scale: float, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Powers of x at the quadrature nodes ``(n_bins, n_nodes, order+1)`` and node weights."""
    edges = np.asarray(edges, dtype=np.float64)
    lo, hi = edges[:-1, None], edges[1:, None]
    half = 0.5 * (hi - lo)
    x = (0.5 * (hi + lo) + half * _NODES[None, :]) / scale
    return x[..., None] ** np.arange(order + 1), half * _WEIGHTS[None, :]


def _expected(coefficients: np.ndarray, powers: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """μ ``(n, n_bins)`` and the node terms ``(n, n_bins, n_nodes)`` for coefficients ``(n, k)``."""
    with np.errstate(over="ignore"):
        terms = np.exp(np.einsum("bjk,nk->nbj", powers, coefficients)) * weights
    return terms.sum(axis=2), terms


def deviance(counts: np.ndarray, mu: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Baker–Cousins deviance of each row over the masked bins (``inf`` for bad μ).

    Example:
        >>> float(deviance(np.array([[4.0, 0.0]]), np.array([[4.0, 1.0]]), np.array([True, True]))[0])
        2.0
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        n_log = np.where(counts > 0, counts * np.log(np.where(counts > 0, counts, 1.0) / mu), 0.0)
        terms = np.where(mask, mu - counts + n_log, 0.0)
        out = 2.0 * terms.sum(axis=-1)
    bad = ~np.all(np.isfinite(mu) & (mu > 0), axis=-1)
    return np.where(bad | ~np.isfinite(out), np.inf, out)


@dataclass
class BatchFit:
    """Result of :func:`refit_many`.

    Attributes:
        coefficients: ``(n, k)`` internal coefficients (powers of ``m / scale``).
        expected: ``(n, n_bins)`` fitted counts.
        deviance: ``(n,)`` deviance at the end.
        converged: ``(n,)`` whether the Newton decrement fell below the tolerance.
        iterations: steps taken.
    """

    coefficients: np.ndarray
    expected: np.ndarray
    deviance: np.ndarray
    converged: np.ndarray
    iterations: int


def refit_many(
    counts: np.ndarray,
    edges: np.ndarray,
    scale: float,
    start: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    max_iter: int = 50,
    tolerance: float = 1e-9,
) -> BatchFit:
    """Fit the background shape to each row of ``counts`` by Fisher scoring.

    Args:
        counts: ``(n, n_bins)`` histograms.
        edges: bin edges.
        scale: mass scale of the internal polynomial (``x = m / scale``).
        start: ``(k,)`` or ``(n, k)`` starting coefficients; ``k - 1`` is the order.
        mask: bins that enter the fit (default all).
        max_iter: most steps.
        tolerance: convergence when the Newton decrement ``gᵀF⁻¹g`` is below
            ``tolerance · (1 + deviance)``.

    Returns:
        The fitted coefficients, expected counts and convergence flags.

    Example:
        >>> from offline.bumphunt.fit import background_counts
        >>> edges = np.linspace(0, 5, 51)
        >>> truth = np.array([np.log(1e4), -5.0])
        >>> fit = refit_many(background_counts(truth, edges, 5.0)[None], edges, 5.0, np.array([9.0, -4.0]))
        >>> np.round(fit.coefficients[0], 6).tolist(), bool(fit.converged[0])
        ([9.21034, -5.0], True)
    """
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    n, n_bins = counts.shape
    mask = np.ones(n_bins, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    coefficients = np.array(np.broadcast_to(start, (n, np.shape(start)[-1])), dtype=np.float64)
    k = coefficients.shape[1]
    powers, weights = quadrature(edges, scale, k - 1)
    mu, terms = _expected(coefficients, powers, weights)
    dev = deviance(counts, mu, mask)
    converged = np.zeros(n, dtype=bool)
    stalled = np.zeros(n, dtype=bool)  # no step lowers the deviance: stop there
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - reported
        active = ~converged & ~stalled & np.isfinite(dev)
        if not active.any():
            break
        idx = np.flatnonzero(active)
        m_mu, m_terms = mu[idx], terms[idx]
        dmu = np.einsum("nbj,bjk->nbk", m_terms, powers)
        weight = np.where(mask, 1.0, 0.0)
        grad = 2.0 * np.einsum("nb,nbk->nk", weight * (1.0 - counts[idx] / m_mu), dmu)
        fisher = 2.0 * np.einsum("nb,nbk,nbl->nkl", weight / m_mu, dmu, dmu)
        fisher += 1e-12 * np.eye(k) * np.trace(fisher, axis1=1, axis2=2)[:, None, None]
        try:
            step = np.linalg.solve(fisher, grad[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(fisher[0], grad[0], rcond=None)[0][None] if idx.size == 1 else np.zeros_like(grad)
        decrement = np.einsum("nk,nk->n", grad, step)
        done = decrement < tolerance * (1.0 + dev[idx])
        converged[idx[done]] = True
        todo = ~done
        if not todo.any():
            continue
        idx, step, decrement = idx[todo], step[todo], decrement[todo]
        t = np.ones(idx.size)
        for _ in range(30):  # step halving until the deviance does not rise
            trial = coefficients[idx] - t[:, None] * step
            t_mu, t_terms = _expected(trial, powers, weights)
            t_dev = deviance(counts[idx], t_mu, mask)
            better = t_dev <= dev[idx] + 1e-12 * (1.0 + np.abs(dev[idx]))
            if better.all():
                break
            t = np.where(better, t, 0.5 * t)
        stuck = idx[~better]
        stalled[stuck] = True
        # rounding, not a bad direction, when the decrement is already tiny
        converged[stuck] = decrement[~better] < 1e-6 * (1.0 + dev[stuck])
        idx, trial = idx[better], trial[better]
        coefficients[idx] = trial
        mu[idx], terms[idx], dev[idx] = t_mu[better], t_terms[better], t_dev[better]
    return BatchFit(coefficients, mu, dev, converged, iterations)
