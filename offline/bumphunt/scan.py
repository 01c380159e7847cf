"""BumpHunter scan (Choudalakis, arXiv 1101.0390) of a binned spectrum against a background.

For every window of ``width_min`` to ``width_max`` bins (step ``width_step``), shifted by
``scan_step`` bins, the local p-value is the Poisson probability of observing at least
the observed count given the expected one (excess only). The most significant window
defines the test statistic ``t = −log p_min``; the global p-value is the fraction of
background-only pseudo-experiments (Poisson around the expected histogram) whose own
``t`` is at least as large.

Numerically the scan follows pyBumpHunter 0.5.1 (``BumpHunter1D`` with ``mode="excess"``,
no side-bands) exactly: same scan range, same window counts, same p-value function, same
tie-breaking — see :mod:`offline.bumphunt._kernels`. It is compiled with numba (cached
on disk) and runs the pseudo-experiments in parallel. Pseudo-experiments are scanned
through per-window lookup tables of the p-value (:mod:`offline.bumphunt._lookup`), with
the same result as the exhaustive scan.

Pseudo-data policies (``seed_policy``):

* ``"counter"`` (default): pseudo-experiment ``i`` is drawn inside the compiled loop from
  its own counter-based stream ``(seed, i)`` (alias tables per bin, see
  :mod:`offline.bumphunt._poisson`); same seed, same numbers, whatever the number of
  threads.
* ``"pybumphunter"``: the pseudo-histograms pyBumpHunter itself draws
  (``numpy.random.seed(seed)`` then ``numpy.random.poisson(expected[:, None],
  (n_bins, n_pseudo))``), so both tools give the identical global p-value.

**Refitted pseudo-experiments** (:func:`bump_hunt_refit`, what the analysis uses): the
observed ``t`` is taken against a background fitted to the same data, which absorbs part
of any fluctuation. A calibration that scans the pseudo-data against the fixed fit they
were drawn from gives them no such help, so their ``t`` is larger and the global p-value
too large (measured: mean p 0.68 under the null). :func:`bump_hunt_refit` refits the
background to every pseudo-experiment (batched Fisher scoring,
:mod:`offline.bumphunt.refit`) and scans it against its own fit, exactly as the data
were treated, so the global p-value is uniform under the null. The plain
:func:`bump_hunt` (no refit) stays for comparisons with pyBumpHunter, which does not
refit either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import ndtri_exp

from offline.bumphunt import _kernels, _lookup, _poisson

if TYPE_CHECKING:
    from offline.bumphunt.fit import BackgroundFit

from offline.bumphunt.trials import (
    calibrated_log_pvalue,
    effective_trials,
    significance_from_log_pvalue,
)

__all__ = [
    "BumpHuntResult",
    "ScanConfig",
    "ScanResult",
    "bump_hunt",
    "bump_hunt_refit",
    "format_pvalue",
    "pseudo_histograms",
    "scan_histogram",
]

SEED_POLICIES = ("counter", "pybumphunter")


@dataclass(frozen=True)
class ScanConfig:
    """Window settings of the scan, in bins.

    Attributes:
        width_min: narrowest window.
        width_max: widest window.
        width_step: increment of the width.
        scan_step: shift of the window position.
    """

    width_min: int = 2
    width_max: int = 6
    width_step: int = 1
    scan_step: int = 1

    def __post_init__(self) -> None:
        for key in ("width_min", "width_max", "width_step", "scan_step"):
            if getattr(self, key) < 1:
                msg = f"scan: {key} must be a positive number of bins, got {getattr(self, key)!r}"
                raise ValueError(msg)
        if self.width_max < self.width_min:
            msg = f"scan: width_max ({self.width_max}) is below width_min ({self.width_min})"
            raise ValueError(msg)

    def widths(self) -> np.ndarray:
        """The window widths that are tried, in bins."""
        return np.arange(self.width_min, self.width_max + 1, self.width_step, dtype=np.int64)


@dataclass(frozen=True)
class ScanResult:
    """The most significant window of one histogram.

    Attributes:
        low_bin: index of the window's first bin.
        width: window width in bins.
        log_pvalue: natural log of the local p-value (0 when nothing is in excess); finite
            even where the p-value underflows.
        observed: observed count in the window.
        expected: expected background count in the window.
    """

    low_bin: int
    width: int
    log_pvalue: float
    observed: float
    expected: float

    @property
    def high_bin(self) -> int:
        """Index one past the window's last bin."""
        return self.low_bin + self.width

    @property
    def local_pvalue(self) -> float:
        """Local p-value (may underflow to 0.0; see :attr:`log_pvalue`)."""
        return float(np.exp(self.log_pvalue))

    @property
    def local_significance(self) -> float:
        """One-sided Gaussian equivalent of the local p-value, Φ̄⁻¹(p)."""
        return float(-ndtri_exp(self.log_pvalue))

    @property
    def test_statistic(self) -> float:
        """``t = −log p_min``."""
        return -self.log_pvalue

    def edges(self, bin_edges: np.ndarray) -> tuple[float, float]:
        """The window as ``(low, high)`` in the units of ``bin_edges``."""
        return float(bin_edges[self.low_bin]), float(bin_edges[self.high_bin])


@dataclass(frozen=True)
class BumpHuntResult:
    """Scan of the data plus the pseudo-experiment calibration.

    Attributes:
        scan: the most significant window of the data.
        pseudo_test_statistics: ``t`` of every pseudo-experiment.
        n_exceeding: pseudo-experiments with ``t >= t_data``.
        refit: whether each pseudo-experiment was refitted (:func:`bump_hunt_refit`).
        invalid_pseudo_fits: pseudo-experiments whose refit did not converge (kept).
        calibration_statistic: the data's ``t`` under the Gaussian window statistic
            (:mod:`offline.bumphunt.gaussian_scan`) when the pseudo-experiments are
            Gaussian fluctuations; None: the scan's own ``t``.
    """

    scan: ScanResult
    pseudo_test_statistics: np.ndarray
    n_exceeding: int
    refit: bool = False
    invalid_pseudo_fits: int = 0
    calibration_statistic: float | None = None

    @property
    def observed_statistic(self) -> float:
        """The data's ``t`` under the calibration's statistic (the scan's unless the
        pseudo-experiments used :mod:`offline.bumphunt.gaussian_scan`)."""
        if self.calibration_statistic is None:
            return self.scan.test_statistic
        return self.calibration_statistic

    @property
    def effective_trials(self) -> float:
        """Fitted effective number of windows (:func:`offline.bumphunt.trials.effective_trials`)."""
        return effective_trials(self.pseudo_test_statistics)

    @property
    def calibrated_log_pvalue(self) -> float:
        """log of the toy-calibrated global p-value, finite beyond the toys' reach."""
        return calibrated_log_pvalue(self.observed_statistic, self.effective_trials)

    @property
    def calibrated_significance(self) -> float:
        """Φ̄⁻¹ of the calibrated global p-value (≈ N(0, 1) under the null)."""
        return significance_from_log_pvalue(self.calibrated_log_pvalue)

    @property
    def global_pvalue_text(self) -> str:
        """The global p-value for people: ``"< 1e-3 (1000 pseudo-experiments)"`` when none exceeds."""
        return format_pvalue(self.n_exceeding, self.n_pseudo)

    @property
    def n_pseudo(self) -> int:
        """Number of pseudo-experiments."""
        return int(self.pseudo_test_statistics.size)

    @property
    def global_pvalue(self) -> float:
        """Fraction of pseudo-experiments at least as significant as the data."""
        return self.n_exceeding / self.n_pseudo if self.n_pseudo else float("nan")

    @property
    def global_pvalue_uncertainty(self) -> float:
        """Binomial standard error of :attr:`global_pvalue`."""
        p = self.global_pvalue
        return float(np.sqrt(p * (1.0 - p) / self.n_pseudo)) if self.n_pseudo else float("nan")

    @property
    def global_significance(self) -> float:
        """Φ̄⁻¹ of the global p-value; a lower limit Φ̄⁻¹(1/n) when no pseudo-experiment exceeds."""
        if not self.n_pseudo:
            return float("nan")
        p = max(self.global_pvalue, 1.0 / self.n_pseudo)
        return float(-ndtri_exp(np.log(p))) if p < 1.0 else 0.0


def format_pvalue(n_exceeding: int, n_pseudo: int) -> str:
    """A global p-value from ``n_exceeding`` of ``n_pseudo`` pseudo-experiments, as text.

    Example:
        >>> format_pvalue(0, 1000), format_pvalue(25, 1000), format_pvalue(0, 300)
        ('< 1e-3 (1000 pseudo-experiments)', '0.025 (1000 pseudo-experiments)', '< 0.00333 (300 pseudo-experiments)')
    """
    if n_pseudo <= 0:
        return "not computed (0 pseudo-experiments)"
    if n_exceeding == 0:
        bound = 1.0 / n_pseudo
        text = f"{bound:.0e}".replace("e-0", "e-") if 10 ** round(math.log10(bound)) == bound else f"{bound:.3g}"
        return f"< {text} ({n_pseudo} pseudo-experiments)"
    return f"{n_exceeding / n_pseudo:.4g} ({n_pseudo} pseudo-experiments)"


def _check_histograms(observed: np.ndarray, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    obs = np.ascontiguousarray(observed, dtype=np.float64)
    ref = np.ascontiguousarray(expected, dtype=np.float64)
    if ref.ndim != 1:
        msg = f"scan: expected histogram must be 1-D, got shape {ref.shape}"
        raise ValueError(msg)
    if obs.shape[-1] != ref.shape[0]:
        msg = f"scan: observed histogram has {obs.shape[-1]} bins, expected one has {ref.shape[0]}"
        raise ValueError(msg)
    for name, arr in (("observed", obs), ("expected", ref)):
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            msg = f"scan: {name} histogram has negative or non-finite entries"
            raise ValueError(msg)
    return obs, ref


def _scan_range(expected: np.ndarray) -> tuple[int, int]:
    nonzero = np.flatnonzero(expected)
    if nonzero.size == 0:
        msg = "scan: the expected (background) histogram has no positive bin"
        raise ValueError(msg)
    return int(nonzero[0]), int(nonzero[-1]) + 1


def scan_histogram(
    observed: np.ndarray, expected: np.ndarray, config: ScanConfig | None = None
) -> ScanResult:
    """Find the most significant excess window of ``observed`` over ``expected``.

    Args:
        observed: observed counts per bin (integer-valued or not).
        expected: expected background counts per bin.
        config: window settings (default: 2 to 6 bins, steps of 1).

    Returns:
        The window with the smallest local p-value (first one on ties).

    Example:
        >>> ref = np.full(20, 100.0)
        >>> obs = ref.copy(); obs[8:10] += 60
        >>> r = scan_histogram(obs, ref)
        >>> (r.low_bin, r.width)
        (8, 2)
    """
    config = config or ScanConfig()
    obs, ref = _check_histograms(observed, expected)
    if obs.ndim != 1:
        msg = f"scan: observed histogram must be 1-D, got shape {obs.shape}"
        raise ValueError(msg)
    lo, hi = _scan_range(ref)
    logp, low, w = _kernels.scan_single(obs, ref, lo, hi, config.widths(), config.scan_step)
    low, w = int(low), int(w)
    return ScanResult(
        low, w, float(logp), float(obs[low : low + w].sum()), float(ref[low : low + w].sum())
    )


def pseudo_histograms(
    expected: np.ndarray, n_pseudo: int, seed: int, seed_policy: str = "counter"
) -> np.ndarray:
    """Background-only pseudo-histograms, shape ``(n_pseudo, n_bins)``.

    The scan draws ``"counter"`` pseudo-data internally without storing them; this
    function exists to inspect them (same numbers).
    """
    _check_policy(seed_policy)
    ref = np.ascontiguousarray(expected, dtype=np.float64)
    if seed_policy == "pybumphunter":
        rng = np.random.RandomState(seed)  # noqa: NPY002 - the legacy stream pyBumpHunter uses
        return rng.poisson(lam=ref[:, None], size=(ref.size, n_pseudo)).T.astype(np.float64)
    return _poisson.pseudo_histograms(ref, int(seed), int(n_pseudo))


def _check_policy(seed_policy: str) -> None:
    if seed_policy not in SEED_POLICIES:
        msg = f"scan: unknown seed_policy {seed_policy!r}; choose one of {SEED_POLICIES}"
        raise ValueError(msg)


def bump_hunt(
    observed: np.ndarray,
    expected: np.ndarray,
    config: ScanConfig | None = None,
    *,
    n_pseudo: int = 1000,
    seed: int = 0,
    seed_policy: str = "counter",
) -> BumpHuntResult:
    """Scan ``observed`` and calibrate the result with background-only pseudo-experiments.

    Args:
        observed: observed counts per bin.
        expected: expected background counts per bin.
        config: window settings.
        n_pseudo: number of pseudo-experiments (0: local result only).
        seed: seed of the pseudo-data.
        seed_policy: ``"counter"`` or ``"pybumphunter"`` (see the module docstring).

    Returns:
        The data scan, the pseudo-experiments' test statistics and the exceedance count.
    """
    config = config or ScanConfig()
    _check_policy(seed_policy)
    if n_pseudo < 0:
        msg = f"scan: n_pseudo must be >= 0, got {n_pseudo}"
        raise ValueError(msg)
    scan = scan_histogram(observed, expected, config)
    _, ref = _check_histograms(observed, expected)
    lo, hi = _scan_range(ref)
    widths = config.widths()
    if n_pseudo == 0:
        t_pseudo = np.empty(0)
    elif seed_policy == "counter":
        t_pseudo = -_lookup.scan_pseudo_counter(
            ref, int(seed), int(n_pseudo), lo, hi, widths, config.scan_step
        )
    else:
        pseudo = pseudo_histograms(ref, n_pseudo, seed, seed_policy)
        t_pseudo = -_lookup.scan_counts(pseudo, ref, lo, hi, widths, config.scan_step)[0]
    n_exceeding = int(np.count_nonzero(t_pseudo >= scan.test_statistic))
    return BumpHuntResult(scan, t_pseudo, n_exceeding)


def bump_hunt_refit(
    observed: np.ndarray,
    fit: BackgroundFit,
    config: ScanConfig | None = None,
    *,
    n_pseudo: int = 1000,
    seed: int = 0,
    extra_variance: np.ndarray | None = None,
    fluctuations: np.ndarray | None = None,
    statistic: str = "poisson",
) -> BumpHuntResult:
    """Scan ``observed`` against ``fit`` and calibrate with refitted pseudo-experiments.

    Pseudo-experiment ``i`` is drawn (``"counter"`` policy) around ``fit.expected``, the
    background is refitted to it from ``fit``'s parameters over the same bins, and it is
    scanned against its own fit, as the data were (see the module docstring).

    ``extra_variance`` (per bin) adds Gaussian noise of that variance to every
    pseudo-experiment, for a histogram that fluctuates more than Poisson counts: the
    ensemble's locating histogram is a mean of bootstrap replicas, which adds the
    replicas' spread over their number.

    ``fluctuations`` ``(k, n_bins)`` replaces the Poisson draws altogether: pseudo-experiment
    ``i`` is ``fit.expected + Σ_j g_ij fluctuations_j`` with ``g_ij ~ N(0, 1)``, i.e. a
    Gaussian of covariance ``fluctuationsᵀ fluctuations``. The ensemble's locating
    histogram is a smooth mean of flow samples, not a count: it fluctuates as the members
    do, correlated across bins, and has no Poisson noise of its own, so pseudo-experiments
    drawn as counts would make every smooth histogram look "too quiet" (measured on
    background-only runs: mean calibrated significance −5.1 with Poisson pseudo-data).
    :mod:`offline.bumphunt.ensemble` passes a basis of the members' covariance (less their
    sampling noise) and adds the sampling noise through ``extra_variance``.

    Args:
        observed: observed counts per bin (the histogram ``fit`` was fitted to).
        fit: the background fit to ``observed``.
        config: window settings.
        n_pseudo: number of pseudo-experiments (0: local result only).
        seed: seed of the pseudo-data.
        statistic: ``"poisson"`` (BumpHunter's local p-values, for counts) or
            ``"gaussian"`` (:mod:`offline.bumphunt.gaussian_scan`, for smooth histograms;
            the window is still located by the Poisson scan).

    Returns:
        As :func:`bump_hunt`, with ``refit=True`` and the count of refits that did not
        converge (their last iterate is used).
    """
    from offline.bumphunt.refit import refit_many

    config = config or ScanConfig()
    if n_pseudo < 0:
        msg = f"scan: n_pseudo must be >= 0, got {n_pseudo}"
        raise ValueError(msg)
    expected = np.asarray(fit.expected, dtype=np.float64)
    scan = scan_histogram(observed, expected, config)
    if n_pseudo == 0:
        return BumpHuntResult(scan, np.empty(0), 0, refit=True)
    lo, hi = _scan_range(expected)
    if fluctuations is not None:
        basis = np.atleast_2d(np.asarray(fluctuations, dtype=np.float64))
        if basis.shape[1] != expected.size or not np.all(np.isfinite(basis)):
            msg = f"scan: fluctuations must be finite, shape (k, {expected.size}); got {basis.shape}"
            raise ValueError(msg)
        g = np.random.default_rng([int(seed), 0xF1C7]).standard_normal((int(n_pseudo), basis.shape[0]))
        pseudo = np.clip(expected[None, :] + g @ basis, 0.0, None)
        integer = False
    else:
        pseudo = _poisson.pseudo_histograms(expected, int(seed), int(n_pseudo))
        integer = extra_variance is None
    if extra_variance is not None:
        sd = np.sqrt(np.clip(np.asarray(extra_variance, dtype=np.float64), 0.0, None))
        noise = np.random.default_rng([int(seed), 0x5EED]).standard_normal(pseudo.shape)
        pseudo = np.clip(pseudo + noise * sd[None, :], 0.0, None)
    refits = refit_many(pseudo, fit.edges, fit.scale, fit.coefficients, mask=fit.mask)
    references = np.where(np.isfinite(refits.expected), refits.expected, expected[None, :])
    invalid = int(np.count_nonzero(~refits.converged))
    if statistic not in ("poisson", "gaussian"):
        msg = f"scan: statistic must be 'poisson' or 'gaussian', got {statistic!r}"
        raise ValueError(msg)
    if statistic == "gaussian":
        from offline.bumphunt.gaussian_scan import gaussian_statistics, window_grid, window_sums

        positions, sizes = window_grid(lo, hi, config.widths(), config.scan_step)
        excess = window_sums(pseudo, positions, sizes) - window_sums(references, positions, sizes)
        sigma = excess.std(axis=0, ddof=1)
        t_gauss, _ = gaussian_statistics(excess, sigma)
        observed_excess = window_sums(observed, positions, sizes) - window_sums(expected, positions, sizes)
        t_observed = float(gaussian_statistics(observed_excess, sigma)[0][0])
        n_exceeding = int(np.count_nonzero(t_gauss >= t_observed))
        return BumpHuntResult(
            scan, t_gauss, n_exceeding, refit=True, invalid_pseudo_fits=invalid, calibration_statistic=t_observed
        )
    logp, _, _ = _kernels.scan_paired(
        pseudo,
        np.ascontiguousarray(references),
        lo,
        hi,
        config.widths(),
        config.scan_step,
        integer,  # pruning is exact for integer counts only
    )
    t_pseudo = -logp
    n_exceeding = int(np.count_nonzero(t_pseudo >= scan.test_statistic))
    return BumpHuntResult(scan, t_pseudo, n_exceeding, refit=True, invalid_pseudo_fits=invalid)
