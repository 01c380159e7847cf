"""The Gaussian window statistic that calibrates the flow's smooth histogram (issue 11)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from offline.bumphunt.fit import background_counts, fit_background
from offline.bumphunt.gaussian_scan import gaussian_statistics, window_grid, window_sums
from offline.bumphunt.histogram import MassBinning
from offline.bumphunt.scan import ScanConfig, bump_hunt_refit

EDGES = MassBinning().edges
TRUTH = background_counts(np.array([np.log(4e4), -5.0, 0.0, 0.0, 0.0, 0.0]), EDGES, 5.0)


def test_window_grid_is_the_scans_grid() -> None:
    config = ScanConfig()
    pos, width = window_grid(3, 40, config.widths(), config.scan_step)
    expected = [(p, w) for w in config.widths() for p in range(3, 40 - int(w) + 1, config.scan_step)]
    assert list(zip(pos.tolist(), width.tolist(), strict=True)) == expected
    h = np.random.default_rng(0).random((3, 50))
    sums = window_sums(h, pos, width)
    brute = np.array([[row[p : p + w].sum() for p, w in expected] for row in h])
    np.testing.assert_allclose(sums, brute, rtol=1e-12)


def test_statistic_of_standard_normals_follows_the_max_law() -> None:
    # t = −log Φ̄(max z) for N independent N(0, 1): P(t ≤ x) = (1 − e^{−x})^N exactly.
    rng = np.random.default_rng(1)
    n_windows = 30
    t, _ = gaussian_statistics(rng.standard_normal((4000, n_windows)), np.ones(n_windows))
    u = (1.0 - np.exp(-t)) ** n_windows
    assert stats.kstest(u, "uniform").pvalue > 0.01
    with pytest.raises(ValueError, match="no window fluctuates"):
        gaussian_statistics(np.zeros((1, 3)), np.zeros(3))


def _smooth_field(rng: np.random.Generator, size: int) -> np.ndarray:
    """Correlated, smooth fluctuations (a few broad Gaussians), like a flow's."""
    x = np.arange(TRUTH.size)
    centres = rng.uniform(0, TRUTH.size, size)
    return np.exp(-0.5 * ((x[None, :] - centres[:, None]) / 2.5) ** 2) * 30.0


def test_gaussian_calibration_is_uniform_for_smooth_fluctuations() -> None:
    # A smooth histogram (no Poisson noise) whose fluctuations the pseudo-experiments know:
    # the calibrated global p-value must be uniform and the significance centred on 0.
    rng = np.random.default_rng(2)
    basis = _smooth_field(rng, 40) / math.sqrt(40)
    p, z = [], []
    for i in range(120):
        observed = TRUTH + rng.standard_normal(40) @ basis
        fit = fit_background(observed, EDGES, 5)
        hunt = bump_hunt_refit(observed, fit, n_pseudo=200, seed=i, fluctuations=basis, statistic="gaussian")
        p.append((hunt.n_exceeding + 1) / (hunt.n_pseudo + 1))
        z.append(hunt.calibrated_significance)
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert abs(np.mean(z)) < 4 / math.sqrt(120), np.mean(z)


def test_gaussian_calibration_sees_a_bump() -> None:
    rng = np.random.default_rng(3)
    basis = _smooth_field(rng, 40) / math.sqrt(40)
    observed = TRUTH + rng.standard_normal(40) @ basis
    observed[9:11] += 400.0  # 400 events on a background of about 6 000 in two bins
    fit = fit_background(observed, EDGES, 5)
    hunt = bump_hunt_refit(observed, fit, n_pseudo=200, seed=0, fluctuations=basis, statistic="gaussian")
    assert hunt.n_exceeding == 0
    assert hunt.calibrated_significance > 4.0
    assert 8 <= hunt.scan.low_bin <= 10
    with pytest.raises(ValueError, match="statistic must be"):
        bump_hunt_refit(observed, fit, n_pseudo=10, statistic="chi2")
