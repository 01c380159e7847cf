"""Background fit of the mass spectrum: p(m) = α·exp(−β m + γ m² + δ m³ + ε m⁴ + ζ m⁵).

The fit is a binned Poisson likelihood (minimised as the Baker–Cousins deviance
``2 Σ [μ − n + n log(n/μ)]`` with iminuit), with the expected count of each bin the
integral of p(m) over the bin (8-point Gauss–Legendre per bin, exact to ~1e-12 for these
smooth shapes). Internally the polynomial is in ``x = m / scale`` (``scale`` = the largest
|edge|) so that all coefficients are of order one; the reported parameters are converted
back to mass units. For robustness the fit starts from a weighted log-linear regression
(a pure exponential) and raises the order one step at a time, each fit starting from the
previous one. The MIGRAD result is then polished by Fisher scoring
(:func:`offline.bumphunt.refit.refit_many`), the same minimiser that refits the
pseudo-experiments, so the data and their pseudo-experiments are fitted alike.

A fit is *valid* when the polished minimum has a vanishing Newton decrement (or MIGRAD
reported a valid minimum); invalid fits are counted and flagged by the callers
(:mod:`offline.bumphunt.ensemble`, :mod:`offline.bumphunt.classical`). ``mask`` leaves
bins out of the fit (a side-band fit around a window).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from iminuit import Minuit

from offline.bumphunt.refit import refit_many

__all__ = ["PARAMETER_NAMES", "BackgroundFit", "background_counts", "fit_background"]

PARAMETER_NAMES = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta")
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)


@dataclass
class BackgroundFit:
    """Result of :func:`fit_background`.

    Attributes:
        parameters: ``alpha`` (counts per mass unit at m = 0), ``beta``, ``gamma``,
            ``delta``, ``epsilon``, ``zeta`` (mass units), absent orders are 0.
        errors: their uncertainties from the exact Hessian of the deviance (``alpha``
            propagated from log α).
        expected: fitted expected counts per bin.
        deviance: Baker–Cousins deviance at the minimum (≈ χ² for large counts).
        ndof: bins minus free parameters.
        valid: whether the minimum is valid (see the module docstring).
        order: polynomial order in the exponent.
        mask: bins that entered the fit.
    """

    parameters: dict[str, float]
    errors: dict[str, float]
    expected: np.ndarray
    deviance: float
    ndof: int
    valid: bool
    order: int
    edges: np.ndarray = field(repr=False)
    _internal: np.ndarray = field(repr=False)
    _scale: float = field(repr=False)
    mask: np.ndarray | None = field(default=None, repr=False)
    _covariance: np.ndarray | None = field(default=None, repr=False)

    @property
    def coefficients(self) -> np.ndarray:
        """Internal coefficients (powers of ``m / scale``), for refits."""
        return self._internal

    @property
    def scale(self) -> float:
        """Mass scale of the internal polynomial."""
        return self._scale

    def window_variance(self, low_bin: int, high_bin: int) -> float:
        """Variance of :meth:`window_count` from the fit's covariance (delta method).

        Meaningful for Poisson counts (the fit of a sample histogram); ``nan`` if the
        covariance is not available.
        """
        if self._covariance is None or not np.all(np.isfinite(self._covariance)):
            return float("nan")
        powers, weights = _design(self.edges, self._scale, len(self._internal) - 1)
        f = np.exp(powers @ self._internal) * weights
        gradient = np.einsum("bj,bjk->k", f[low_bin:high_bin], powers[low_bin:high_bin])
        return float(max(gradient @ self._covariance @ gradient, 0.0))

    def window_count(self, low_bin: int, high_bin: int) -> float:
        """Expected background in bins ``[low_bin, high_bin)``."""
        return float(self.expected[low_bin:high_bin].sum())

    def density(self, mass: np.ndarray) -> np.ndarray:
        """p(m) in counts per mass unit (for drawing the curve)."""
        x = np.asarray(mass, dtype=np.float64) / self._scale
        return np.exp(np.polynomial.polynomial.polyval(x, self._internal))


def _design(edges: np.ndarray, scale: float, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Powers of x at the quadrature nodes ``(n_bins, n_nodes, order+1)`` and node weights."""
    lo, hi = edges[:-1, None], edges[1:, None]
    half = 0.5 * (hi - lo)
    m = 0.5 * (hi + lo) + half * _NODES[None, :]
    x = m / scale
    powers = x[..., None] ** np.arange(order + 1)
    return powers, half * _WEIGHTS[None, :]


def background_counts(coefficients: np.ndarray, edges: np.ndarray, scale: float) -> np.ndarray:
    """Expected counts per bin of exp(Σ c_k (m/scale)^k), integrated over each bin."""
    powers, weights = _design(edges, scale, len(coefficients) - 1)
    return (np.exp(powers @ coefficients) * weights).sum(axis=1)


def _start(counts: np.ndarray, edges: np.ndarray, scale: float, use: np.ndarray) -> np.ndarray:
    """log α and the slope from a weighted straight-line fit of log(density)."""
    widths = np.diff(edges)
    x = 0.5 * (edges[:-1] + edges[1:]) / scale
    mask = (counts > 0) & use
    if mask.sum() < 2:
        msg = f"fit: need at least two non-empty bins, got {int(mask.sum())}"
        raise ValueError(msg)
    y = np.log(counts[mask] / widths[mask])
    c1, c0 = np.polyfit(x[mask], y, 1, w=np.sqrt(counts[mask]))
    return np.array([c0, c1])


def _minimise(
    counts: np.ndarray, powers: np.ndarray, weights: np.ndarray, start: np.ndarray, use: np.ndarray
) -> Minuit:
    n = counts
    on = use.astype(np.float64)
    n_log_n = np.where(n > 0, n * np.log(np.where(n > 0, n, 1.0)), 0.0)

    def expected(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # MIGRAD may probe parameters whose exponent overflows; the deviance turns an
        # infinite mu into 1e300, so the overflow itself is expected, not an error.
        with np.errstate(over="ignore", invalid="ignore"):
            f = np.exp(powers @ c) * weights
            return f.sum(axis=1), f

    def deviance(c: np.ndarray) -> float:
        mu, _ = expected(np.asarray(c))
        if not np.all(np.isfinite(mu)) or np.any(mu <= 0):
            return 1e300
        return float(2.0 * np.sum(on * (mu - n + n_log_n - n * np.log(mu))))

    def gradient(c: np.ndarray) -> np.ndarray:
        mu, f = expected(np.asarray(c))
        dmu = np.einsum("bj,bjk->bk", f, powers)
        return 2.0 * ((on * (1.0 - n / mu))[:, None] * dmu).sum(axis=0)

    minuit = Minuit(deviance, start, grad=gradient)
    minuit.errordef = Minuit.LEAST_SQUARES
    minuit.strategy = 1
    minuit.tol = 1e-3
    minuit.migrad()
    if not minuit.valid:
        minuit.simplex()
        minuit.migrad()
    return minuit


def _covariance(
    counts: np.ndarray, edges: np.ndarray, scale: float, c: np.ndarray, use: np.ndarray
) -> np.ndarray:
    """Covariance of the internal coefficients from the exact Hessian of the deviance.

    (MIGRAD's approximate Hessian underestimates the errors of these strongly
    correlated coefficients.)
    """
    powers, weights = _design(edges, scale, len(c) - 1)
    powers, weights, counts = powers[use], weights[use], counts[use]
    f = np.exp(powers @ c) * weights
    mu = f.sum(axis=1)
    d1 = np.einsum("bj,bjk->bk", f, powers)
    d2 = np.einsum("bj,bjk,bjl->bkl", f, powers, powers)
    hessian = 2.0 * (
        np.einsum("b,bk,bl->kl", counts / mu**2, d1, d1)
        + np.einsum("b,bkl->kl", 1.0 - counts / mu, d2)
    )
    try:
        return 2.0 * np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        return np.full(hessian.shape, np.nan)


def fit_background(
    counts: np.ndarray, edges: np.ndarray, order: int = 5, *, mask: np.ndarray | None = None
) -> BackgroundFit:
    """Fit p(m) = α exp(−β m + γ m² + ...) of polynomial ``order`` to a histogram.

    Args:
        counts: counts per bin (Poisson; scaled counts are fine for the central values).
        edges: bin edges, ``len(counts) + 1`` values.
        order: highest power of m in the exponent (1 to 5; the paper uses 5).
        mask: boolean per bin, the bins that enter the fit (default all); the expected
            counts are still given for every bin.

    Returns:
        The fit result, with expected counts per bin.

    Raises:
        ValueError: bad shapes, negative counts, too few non-empty bins.

    Example:
        >>> edges = np.linspace(0, 5, 51)
        >>> counts = background_counts(np.array([np.log(1e4), -5.0]), edges, 5.0)
        >>> round(fit_background(counts, edges, order=1).parameters["beta"], 4)
        1.0
    """
    counts = np.asarray(counts, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    if counts.ndim != 1 or edges.shape != (counts.size + 1,):
        msg = f"fit: need 1-D counts and len(counts)+1 edges, got shapes {counts.shape} and {edges.shape}"
        raise ValueError(msg)
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        msg = "fit: counts must be finite and non-negative"
        raise ValueError(msg)
    if not 1 <= order <= 5:
        msg = f"fit: order must be between 1 and 5, got {order}"
        raise ValueError(msg)
    use = np.ones(counts.size, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if use.shape != counts.shape:
        msg = f"fit: mask has shape {use.shape}, counts {counts.shape}"
        raise ValueError(msg)
    scale = float(np.max(np.abs(edges)))
    coefficients = _start(counts, edges, scale, use)
    minuit = None
    for k in range(1, order + 1):
        if k > 1:
            coefficients = np.append(coefficients, 0.0)
        powers, weights = _design(edges, scale, k)
        minuit = _minimise(counts, powers, weights, coefficients, use)
        coefficients = np.array(minuit.values)
    assert minuit is not None
    internal = np.array(minuit.values)
    deviance_value = float(minuit.fval)
    polished = refit_many(counts[None], edges, scale, internal, mask=use)
    valid = bool(minuit.valid)
    if np.isfinite(polished.deviance[0]) and polished.deviance[0] <= deviance_value + 1e-9:
        internal = polished.coefficients[0]
        deviance_value = float(polished.deviance[0])
        valid = valid or bool(polished.converged[0])
    valid = valid and bool(np.all(np.isfinite(internal)))
    covariance = _covariance(counts, edges, scale, internal, use)
    internal_errors = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    signs = np.array([1.0, -1.0, 1.0, 1.0, 1.0, 1.0])
    parameters = dict.fromkeys(PARAMETER_NAMES, 0.0)
    errors = dict.fromkeys(PARAMETER_NAMES, 0.0)
    parameters["alpha"] = float(np.exp(internal[0]))
    errors["alpha"] = float(parameters["alpha"] * internal_errors[0])
    for k in range(1, order + 1):
        parameters[PARAMETER_NAMES[k]] = float(signs[k] * internal[k] / scale**k)
        errors[PARAMETER_NAMES[k]] = float(internal_errors[k] / scale**k)
    expected = background_counts(internal, edges, scale)
    return BackgroundFit(
        parameters=parameters,
        errors=errors,
        expected=expected,
        deviance=deviance_value,
        ndof=int(use.sum() - (order + 1)),
        valid=valid,
        order=order,
        edges=edges,
        _internal=internal,
        _scale=scale,
        mask=None if mask is None else use,
        _covariance=covariance,
    )
