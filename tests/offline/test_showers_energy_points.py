"""mu90 / sigma90 and the per-energy-point summary."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from offline.showers.energy_points import energy_point_edges, energy_point_summary, mu90_sigma90


def truncated_normal_std(fraction: float = 0.9) -> float:
    a = stats.norm.ppf(0.5 + fraction / 2)
    return float(np.sqrt(1 - 2 * a * stats.norm.pdf(a) / fraction))


def test_mu90_sigma90_of_a_gaussian() -> None:
    values = np.random.default_rng(0).normal(100.0, 5.0, 400_000)
    mu, sigma = mu90_sigma90(values)
    assert mu == pytest.approx(100.0, abs=0.02)
    assert sigma == pytest.approx(5.0 * truncated_normal_std(), rel=3e-3)  # 0.7893 sigma


def test_smallest_interval_equals_central_for_a_symmetric_distribution() -> None:
    values = np.random.default_rng(1).normal(0.0, 1.0, 200_000)
    mu_c, sigma_c = mu90_sigma90(values, method="central")
    mu_s, sigma_s = mu90_sigma90(values, method="smallest")
    assert mu_s == pytest.approx(mu_c, abs=0.01)
    assert sigma_s == pytest.approx(sigma_c, rel=5e-3)


def test_mu90_ignores_outliers() -> None:
    values = np.concatenate([np.random.default_rng(2).normal(10.0, 1.0, 10_000), np.full(300, 1e6)])
    assert mu90_sigma90(values)[0] == pytest.approx(10.0, abs=0.15)  # plain mean: ~2.9e4


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="method"):
        mu90_sigma90(np.ones(10), method="median")
    with pytest.raises(ValueError, match="fraction"):
        mu90_sigma90(np.ones(10), fraction=0.0)
    assert np.isnan(mu90_sigma90(np.array([]))[0])
    with pytest.raises(ValueError, match="entries"):
        energy_point_summary(np.ones(3), np.ones(4))


def test_fixed_points_linearity_and_width() -> None:
    rng = np.random.default_rng(3)
    energies = np.repeat([10.0, 50.0, 100.0], 20_000)
    visible = 15.0 * energies * (1 + rng.normal(0, 0.2 / np.sqrt(energies)))
    assert energy_point_edges(energies) is None
    summary = energy_point_summary(energies, visible)
    np.testing.assert_allclose(summary.energy_gev, [10, 50, 100])
    np.testing.assert_allclose(summary.linearity, 15.0, rtol=2e-3)
    expected = 0.2 / np.sqrt([10.0, 50.0, 100.0]) * truncated_normal_std()
    np.testing.assert_allclose(summary.relative_width, expected, rtol=0.03)
    assert set(summary.to_dict()) >= {"mu90", "sigma90", "linearity", "relative_width"}


def test_binned_points_remove_the_spread_inside_a_bin() -> None:
    rng = np.random.default_rng(4)
    energies = rng.uniform(10, 100, 50_000)
    visible = 15.0 * energies * (1 + rng.normal(0, 0.01, energies.size))
    edges = energy_point_edges(energies, bins=5)
    assert edges is not None
    assert edges.size == 6
    summary = energy_point_summary(energies, visible, edges=edges)
    np.testing.assert_allclose(summary.linearity, 15.0, rtol=1e-3)
    np.testing.assert_allclose(summary.relative_width, 0.01 * truncated_normal_std(), rtol=0.05)
