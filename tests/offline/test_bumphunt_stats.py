"""Background fit, significance formulas, prescale, shard grouping, ensemble bump hunt."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from offline.bumphunt.ensemble import ensemble_bump_hunt
from offline.bumphunt.errors import BumpHuntError
from offline.bumphunt.fit import background_counts, fit_background
from offline.bumphunt.histogram import MassBinning, histogram_members, sample_member_histograms
from offline.bumphunt.merge import group_snapshots
from offline.bumphunt.prescale import prescale
from offline.bumphunt.significance import (
    crossover_prescale,
    data_significance,
    ensemble_significance,
)

BINNING = MassBinning()


class FakeEnsemble:
    """Members draw exp(-m) background plus a Gaussian bump at m = 1 (λ varies a little)."""

    def __init__(self, n_members: int = 6, signal_fraction: float = 0.01) -> None:
        self.n_members = n_members
        self.signal_fraction = signal_fraction

    def sample(self, n: int, *, seed: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(seed)
        out = np.empty((self.n_members, n), dtype=np.float32)
        for i in range(self.n_members):
            lam = self.signal_fraction * (1 + 0.05 * (i - self.n_members / 2))
            is_signal = rng.random(n) < lam
            out[i] = np.where(is_signal, rng.normal(1.0, 0.04, n), rng.exponential(1.0, n))
        return {"mass": torch.from_numpy(out)}


def test_fit_recovers_generated_exponential() -> None:
    edges = BINNING.edges
    truth = {"alpha": 2e5, "beta": 1.3, "gamma": 0.05}
    coefficients = np.array(
        [np.log(truth["alpha"]), -truth["beta"] * 5, truth["gamma"] * 25, 0, 0, 0]
    )
    expected = background_counts(coefficients, edges, 5.0)
    counts = np.random.default_rng(0).poisson(expected).astype(float)
    fit = fit_background(counts, edges, order=5)
    assert fit.valid
    for name in ("alpha", "beta", "gamma", "delta", "epsilon", "zeta"):
        true = truth.get(name, 0.0)
        # within 3 standard errors (errors from the exact Hessian)
        assert abs(fit.parameters[name] - true) < 3 * fit.errors[name], name
    # and a plain exponential within 1 %
    fit1 = fit_background(counts, edges, order=2)
    assert fit1.parameters["beta"] == pytest.approx(1.3, rel=0.01)
    assert fit.deviance < fit.ndof + 5 * math.sqrt(2 * fit.ndof)


def test_fit_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        fit_background(-np.ones(50), BINNING.edges)
    with pytest.raises(ValueError, match="edges"):
        fit_background(np.ones(50), BINNING.edges[:-1])


def test_ensemble_significance_by_hand() -> None:
    o = [100.0, 120.0, 110.0, 130.0]
    b = [80.0, 82.0, 78.0, 80.0]
    r = ensemble_significance(o, b, n_members=8)
    d_o = 2 / 8 * np.std(o, ddof=1)
    d_b = 2 / 8 * np.std(b, ddof=1)
    s = 115.0 - 80.0
    assert (r.observed, r.background, r.signal) == (115.0, 80.0, s)
    assert r.delta_observed == pytest.approx(d_o)
    assert r.delta_background == pytest.approx(d_b)
    assert r.delta_signal == pytest.approx(math.sqrt(d_o**2 + d_b**2))
    assert r.significance == pytest.approx(s / math.sqrt(d_o**2 + d_b**2 + 80.0))
    assert data_significance(125.0, 100.0) == 2.5
    with pytest.raises(ValueError, match="measuring member"):
        ensemble_significance([1.0], [1.0], n_members=2)


def test_crossover() -> None:
    data = {1: 8.0, 2: 5.6, 4: 4.0, 8: 2.8, 16: 2.0, 32: 1.4}
    assert crossover_prescale(4.5, data) == 4
    assert crossover_prescale(9.0, data) == 1
    assert crossover_prescale(1.0, data) is None


@pytest.mark.parametrize(("n", "k"), [(1000, 1), (1000, 3), (1001, 4), (7, 32), (0, 2)])
def test_prescale_counts_exactly(n: int, k: int) -> None:
    kept = prescale(np.arange(n), k)
    assert kept.size == -(-n // k)
    np.testing.assert_array_equal(kept, np.arange(0, n, k))
    with pytest.raises(ValueError, match="factor"):
        prescale(np.arange(3), 0)


def test_histogram_matches_numpy() -> None:
    values = np.random.default_rng(1).exponential(1.0, size=(3, 10000))
    ours = histogram_members(values, BINNING)
    for row, counts in zip(values, ours, strict=True):
        np.testing.assert_array_equal(counts, np.histogram(row, BINNING.edges)[0])


def test_group_snapshots() -> None:
    def manifest(events: int, seed: int) -> dict:
        return {
            "config": {"a": 1},
            "events_seen": events,
            "hyperparameters": {"seed": seed},
            "model_kind": "x",
        }

    assert group_snapshots([manifest(20, 0), manifest(10, 0), manifest(10, 1)]) == [[1, 2], [0]]
    with pytest.raises(BumpHuntError, match="same shard"):
        group_snapshots([manifest(10, 0), manifest(10, 0)], ["a", "b"])


@pytest.mark.filterwarnings("ignore:ensemble bump hunt. the members' own spread:RuntimeWarning")
def test_ensemble_bump_hunt_finds_the_bump() -> None:
    model = FakeEnsemble(n_members=6)
    hists = sample_member_histograms(
        model, 200_000, BINNING, seed=1, chunk_size=50_000, progress=False
    )
    assert hists.counts.shape == (6, 50)
    result = ensemble_bump_hunt(hists, n_events=1e6, n_pseudo=100)
    low, high = result.window
    assert low <= 1.0 - 0.04
    assert high >= 1.0 + 0.04
    assert high - low <= 0.4
    assert result.scale == pytest.approx(5.0)
    assert result.significance.signal > 0
    assert result.significance.significance > 3
    assert result.observed.size == 3


def test_ensemble_needs_three_members() -> None:
    hists = sample_member_histograms(FakeEnsemble(n_members=2), 1000, BINNING, progress=False)
    with pytest.raises(BumpHuntError, match="at least 3"):
        ensemble_bump_hunt(hists, n_events=1000)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_histogram_ignores_inf_nan_huge_and_negative(dtype: type) -> None:
    # int((x - low) / width) of a huge or infinite x is INT64_MIN: it must never index.
    bad = np.array([np.inf, -np.inf, np.nan, 9.3e17, 1e300 if dtype is np.float64 else 3e38, -1.0, -1e30, 5.0])
    good = np.array([0.05, 4.95, 2.5])
    values = np.stack([np.concatenate([bad, good]), np.concatenate([good, bad])]).astype(dtype)
    out = histogram_members(values, BINNING)
    for row in out:
        assert row.sum() == 3
        assert (row[0], row[49], row[25]) == (1.0, 1.0, 1.0)


def _shard(seed: int, identity: dict | None, source_seed: int = 0) -> dict:
    manifest = {
        "config": {"seed": source_seed, "source": {"spec": "toy"}},
        "events_seen": 10,
        "hyperparameters": {"seed": seed},
        "model_kind": "x",
    }
    if identity is not None:
        manifest["data_identity"] = identity
    return manifest


def test_shards_of_different_data_are_refused() -> None:
    same = {"source": "toy", "seed": 1, "options": {"slope": 1.0}, "id": "00aa11bb22cc33dd"}
    other = {**same, "seed": 2, "id": "ffee00112233aabb"}
    assert group_snapshots([_shard(1, same), _shard(2, same)]) == [[0, 1]]
    with pytest.raises(BumpHuntError, match="00aa11bb22cc33dd.*ffee00112233aabb") as err:
        group_snapshots([_shard(1, same), _shard(2, other)], ["run1", "run2"])
    assert "'run1'" in str(err.value)
    assert "'run2'" in str(err.value)
    # older manifests: the config's source section and top-level seed decide
    assert group_snapshots([_shard(1, None, 5), _shard(2, None, 5)]) == [[0, 1]]
    with pytest.raises(BumpHuntError, match="seed 1 vs .*seed 2"):
        group_snapshots([_shard(1, None, 1), _shard(2, None, 2)], ["a", "b"])
