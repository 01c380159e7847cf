"""JSD and S_JSD, correlation matrices, FPD and KPD."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import distance

from offline.showers.correlations import compare_correlations, pearson_matrix
from offline.showers.jsd import (
    HistogramPair,
    histogram_with_overflow,
    jensen_shannon_distance,
    reference_edges,
    s_jsd,
    s_jsd_models,
)
from offline.showers.physics_distances import fpd, frechet_distance, kpd, mmd_poly_unbiased


def test_jsd_identical_is_zero_and_disjoint_is_one() -> None:
    h = np.array([3.0, 1.0, 0.0, 5.0])
    assert jensen_shannon_distance(h, h) == 0.0
    assert jensen_shannon_distance(h, 10 * h) == pytest.approx(0.0, abs=1e-12)
    assert jensen_shannon_distance(
        np.array([1.0, 2.0, 0.0, 0.0]), np.array([0.0, 0.0, 4.0, 1.0])
    ) == pytest.approx(1.0)


def test_jsd_matches_scipy_base2() -> None:
    rng = np.random.default_rng(0)
    p, q = rng.random(20), rng.random(20)
    assert jensen_shannon_distance(p, q) == pytest.approx(
        distance.jensenshannon(p, q, base=2), rel=1e-9
    )


def test_jsd_rejects_bad_histograms() -> None:
    with pytest.raises(ValueError, match="length"):
        jensen_shannon_distance(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="empty"):
        jensen_shannon_distance(np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        jensen_shannon_distance(np.array([1.0, -1.0]), np.ones(2))


def test_reference_binning_and_overflow() -> None:
    ref = np.random.default_rng(1).normal(size=10_000)
    edges = reference_edges(ref, 20)
    assert edges.size == 21
    counts = histogram_with_overflow(np.array([-100.0, 100.0, np.nan]), edges)
    assert counts[0] == 1
    assert counts[-1] == 1
    assert counts.sum() == 2
    shifted = HistogramPair.from_samples(ref, ref + 10.0, 20)
    assert shifted.distance > 0.95  # everything lands in the overflow bin
    integer = reference_edges(np.array([3, 4, 4, 7]), 50)
    assert integer[0] == 2.5
    assert integer[-1] == 7.5


def test_s_jsd_single_model_reduction() -> None:
    jsd = {"a": 0.1, "b": 0.2, "c": 0.6}
    assert s_jsd(jsd) == pytest.approx(0.3)
    assert s_jsd(jsd, {"a": 0.1, "b": 0.2, "c": 0.6}) == pytest.approx(1.0)
    assert s_jsd_models({"only": jsd}) == {"only": pytest.approx(1.0)}
    models = s_jsd_models({"good": {"a": 0.1, "b": 0.1}, "bad": {"a": 0.3, "b": 0.3}})
    assert models["good"] == pytest.approx(0.5)
    assert models["bad"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="observables"):
        s_jsd_models({"x": {"a": 1.0}, "y": {"b": 1.0}})


def test_correlation_difference_of_identical_inputs_is_zero() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=1000)
    cols = {"a": a, "b": 2 * a + rng.normal(size=1000), "c": rng.normal(size=1000)}
    comparison = compare_correlations(cols, dict(cols))
    np.testing.assert_array_equal(comparison.difference, 0.0)
    assert comparison.max_abs_difference == 0.0
    np.testing.assert_allclose(
        comparison.reference, np.corrcoef(np.stack(list(cols.values()))), atol=1e-12
    )


def test_correlation_handles_constant_columns_and_detects_changes() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=2000)
    matrix, constant = pearson_matrix({"a": a, "k": np.ones(2000)})
    assert constant == ["k"]
    assert matrix[0, 1] == 0.0
    assert matrix[1, 1] == 1.0
    ref = {"a": a, "b": a + rng.normal(size=2000)}
    gen = {"a": a, "b": rng.normal(size=2000)}
    assert compare_correlations(ref, gen).difference[0, 1] == pytest.approx(-np.sqrt(0.5), abs=0.05)
    with pytest.raises(ValueError, match="different observables"):
        compare_correlations(ref, {"a": a})


def test_frechet_distance_of_known_gaussians() -> None:
    assert frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2)) == pytest.approx(
        0.0, abs=1e-12
    )
    # 1-D: (mu1 - mu2)^2 + (s1 - s2)^2
    value = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([0.0]), np.array([[1.0]]))
    assert value == pytest.approx(1.0 + 1.0)


def test_fpd_and_kpd_separate_same_from_shifted() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(6000, 4)), rng.normal(size=(6000, 4))
    z = rng.normal(size=(6000, 4)) + np.array([0.3, 0, 0, 0])
    same_f, shifted_f = (
        fpd(x, y, num_batches=4, num_points=5),
        fpd(x, z, num_batches=4, num_points=5),
    )
    same_k, shifted_k = (
        kpd(x, y, num_batches=5, batch_size=1000),
        kpd(x, z, num_batches=5, batch_size=1000),
    )
    assert abs(same_f.value) < 3 * same_f.error + 2e-3
    assert shifted_f.value > 10 * max(abs(same_f.value), same_f.error)
    assert abs(same_k.value) < 3 * same_k.error + 1e-4
    assert shifted_k.value > 5 * max(abs(same_k.value), same_k.error)
    assert abs(mmd_poly_unbiased(x[:500], y[:500])) < 0.05
    with pytest.raises(ValueError, match="equal d"):
        fpd(x, y[:, :3])
