"""BumpHunter scan: injected bumps, equality with pyBumpHunter, pseudo-experiments."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from scipy.special import gammainc

from offline.bumphunt import _kernels, _lookup, _poisson
from offline.bumphunt.histogram import MassBinning
from offline.bumphunt.scan import ScanConfig, bump_hunt, pseudo_histograms, scan_histogram

BINNING = MassBinning()
EDGES = BINNING.edges
BACKGROUND = 2e4 * np.exp(-BINNING.centers) * 0.1


def _data(seed: int, bump: float, bins: slice = slice(9, 11)) -> np.ndarray:
    data = np.random.default_rng(seed).poisson(BACKGROUND).astype(float)
    data[bins] += bump
    return data


def _pybumphunter(data: np.ndarray, background: np.ndarray, npe: int, seed: int):
    from pyBumpHunter import BumpHunter1D

    hunter = BumpHunter1D(
        rang=[0, 5],
        bins=EDGES,
        width_min=2,
        width_max=6,
        width_step=1,
        scan_step=1,
        npe=npe,
        nworker=1,
        seed=seed,
    )
    with contextlib.redirect_stdout(io.StringIO()):
        hunter.bump_scan(data, background, is_hist=True)
    return hunter


def test_finds_injected_bump() -> None:
    result = scan_histogram(_data(1, 250.0), BACKGROUND)
    assert result.edges(EDGES) == pytest.approx((0.9, 1.1))
    assert result.local_significance > 4


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_window_and_local_pvalue_as_pybumphunter(seed: int) -> None:
    data = _data(seed, 40.0 * seed, slice(20, 23))
    ours = scan_histogram(data, BACKGROUND)
    theirs = _pybumphunter(data, BACKGROUND, npe=0, seed=seed)
    assert (ours.low_bin, ours.width) == (theirs.min_loc_ar[0], theirs.min_width_ar[0])
    assert ours.local_pvalue == pytest.approx(theirs.min_Pval_ar[0], rel=1e-12)


def test_no_excess_gives_pybumphunter_default() -> None:
    data = np.floor(BACKGROUND * 0.5)
    ours = scan_histogram(data, BACKGROUND)
    theirs = _pybumphunter(data, BACKGROUND, npe=0, seed=0)
    assert (ours.low_bin, ours.width, ours.local_pvalue) == (
        theirs.min_loc_ar[0],
        theirs.min_width_ar[0],
        1.0,
    )


def test_pseudo_experiments_identical_with_pybumphunter_seed_policy() -> None:
    data = _data(4, 60.0)
    theirs = _pybumphunter(data, BACKGROUND, npe=500, seed=11)
    ours = bump_hunt(data, BACKGROUND, n_pseudo=500, seed=11, seed_policy="pybumphunter")
    np.testing.assert_allclose(
        ours.pseudo_test_statistics, -np.log(theirs.min_Pval_ar[1:]), rtol=1e-12, atol=1e-12
    )
    assert ours.global_pvalue == theirs.global_Pval


def test_counter_pseudo_experiments_consistent_with_pybumphunter() -> None:
    data = _data(5, 45.0)
    npe = 2000
    theirs = _pybumphunter(data, BACKGROUND, npe=npe, seed=3)
    ours = bump_hunt(data, BACKGROUND, n_pseudo=npe, seed=3)
    p1, p2 = ours.global_pvalue, theirs.global_Pval
    sigma = np.sqrt(max(p1 * (1 - p1), p2 * (1 - p2), 1e-4) * 2 / npe)
    assert abs(p1 - p2) < 4 * sigma
    # reproducible, independent of threads
    again = bump_hunt(data, BACKGROUND, n_pseudo=npe, seed=3)
    np.testing.assert_array_equal(ours.pseudo_test_statistics, again.pseudo_test_statistics)


def test_pruned_scan_equals_exhaustive_scan() -> None:
    pseudo = pseudo_histograms(BACKGROUND, 300, seed=2)
    widths = ScanConfig().widths()
    full = _kernels.scan_given(pseudo, BACKGROUND, 0, 50, widths, 1, False)
    pruned = _kernels.scan_given(pseudo, BACKGROUND, 0, 50, widths, 1, True)
    for a, b in zip(full, pruned, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "background",
    [
        BACKGROUND,  # int32 prefix sums, every window in its table
        BACKGROUND * 50.0,  # PTRS bins above 1e5: int64 prefix sums
        np.r_[1e-9, 1e-6, 0.0, 0.02, np.full(8, 0.3)],  # tiny counts, empty bin
        np.full(12, 4e10),  # tables too large: pruned exact scan
    ],
    ids=["int32", "int64", "tiny", "huge"],
)
def test_lookup_scan_equals_exhaustive_scan(background: np.ndarray) -> None:
    n_bins = background.size
    widths = np.arange(2, min(7, n_bins), dtype=np.int64)
    lo = int(np.flatnonzero(background)[0])
    hi = int(np.flatnonzero(background)[-1]) + 1
    pseudo = pseudo_histograms(background, 1500, seed=4)
    full = _kernels.scan_given(pseudo, background, lo, hi, widths, 1, False)
    lookup = _lookup.scan_counts(pseudo, background, lo, hi, widths, 1)
    for a, b in zip(full, lookup, strict=True):
        np.testing.assert_array_equal(a, b)
    # the fused kernel draws exactly pseudo_histograms' numbers
    fused = _lookup.scan_pseudo_counter(background, 4, 1500, lo, hi, widths, 1)
    np.testing.assert_array_equal(fused, full[0])


def test_lookup_scan_resolves_near_ties_exactly() -> None:
    # two identical halves: windows with the same p-value in every pseudo-experiment
    background = np.r_[BACKGROUND[:20], BACKGROUND[:20]]
    widths = ScanConfig().widths()
    pseudo = pseudo_histograms(background, 500, seed=8)
    pseudo[:, 20:] = pseudo[:, :20]
    full = _kernels.scan_given(pseudo, background, 0, 40, widths, 1, False)
    lookup = _lookup.scan_counts(pseudo, background, 0, 40, widths, 1)
    for a, b in zip(full, lookup, strict=True):
        np.testing.assert_array_equal(a, b)


def test_pvalue_tables_match_gammainc() -> None:
    cum_ref = np.r_[0.0, np.cumsum(BACKGROUND)]
    widths = ScanConfig().widths()
    start, stop, shift, first, last, table, expected = _lookup.window_tables(
        cum_ref, 0, 50, widths, 1
    )
    worst = 0.0
    for j in range(start.size):
        n = np.arange(first[j] + 1, last[j]) - shift[j]
        exact = gammainc(n.astype(float), expected[j])
        assert table[first[j]] == 1.0
        assert table[last[j]] == 0.0
        assert np.all(n > expected[j])
        worst = max(worst, float(np.max(np.abs(table[first[j] + 1 : last[j]] / exact - 1))))
    assert worst < _lookup.RELATIVE_MARGIN / 100


def test_counter_pseudo_data_are_poisson() -> None:
    lam = np.array([0.5, 3.0, 25.0, 800.0, 3e5])  # alias tables, PTRS for the last
    draws = pseudo_histograms(lam, 20000, seed=9)
    np.testing.assert_allclose(draws.mean(axis=0), lam, rtol=0.05)
    np.testing.assert_allclose(draws.var(axis=0), lam, rtol=0.06)
    assert np.all(draws == np.round(draws))


@pytest.mark.parametrize("lam", [0.05, 3.0, 47.5, 2500.0])
def test_alias_sampler_frequencies(lam: float) -> None:
    from scipy.stats import chisquare, poisson

    draws = pseudo_histograms(np.array([lam]), 200_000, seed=5)[:, 0].astype(int)
    edges = np.unique(np.r_[0, poisson.ppf(np.linspace(0.02, 0.98, 25), lam), 1e9].astype(int))
    observed = np.histogram(draws, edges)[0]
    expected = np.diff(poisson.cdf(edges - 1, lam)) * draws.size
    expected *= observed.sum() / expected.sum()
    assert chisquare(observed, expected).pvalue > 1e-4


def test_alias_tables_cover_the_distribution() -> None:
    ptrs, offset, size, low, prob, alias = _poisson.poisson_sampler(np.array([0.0, 0.7, 9e4, 2e5]))
    assert (size[0], low[0]) == (1, 0)
    assert size[3] == 0  # PTRS
    from scipy.stats import poisson

    for k, lam in ((1, 0.7), (2, 9e4)):
        lo, hi = low[k], low[k] + size[k] - 1
        assert poisson.cdf(lo - 1, lam) + poisson.sf(hi, lam) < 1e-17
        table = slice(offset[k], offset[k + 1])
        assert np.all((prob[table] > 0) & (prob[table] <= 1))
        assert np.all((alias[table] >= lo) & (alias[table] <= hi))


def test_tail_bounds_bracket_exact_pvalue() -> None:
    for b in (0.7, 5.0, 40.0, 900.0, 3e4):
        for n in np.unique(np.ceil(b + np.array([0.1, 1, 3, 10]) * np.sqrt(b) + 1)):
            p = gammainc(n, b)
            z_low, z_high = _kernels.poisson_tail_bounds(n, b)
            from scipy.stats import norm

            assert norm.sf(z_high) <= p * (1 + 1e-9)
            assert p <= norm.sf(z_low) * (1 + 1e-9)


def test_log_pvalue_beyond_double_precision() -> None:
    # gammainc underflows to 0 here; the series keeps windows ordered.
    a = _kernels.log_tail_pvalue(2e6, 1e6)
    b = _kernels.log_tail_pvalue(2.1e6, 1e6)
    assert np.isfinite(a)
    assert np.isfinite(b)
    assert b < a < -1e5
    assert _kernels.log_tail_pvalue(120.0, 100.0) == pytest.approx(
        np.log(gammainc(120.0, 100.0)), rel=1e-12
    )


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="bins"):
        scan_histogram(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="no positive bin"):
        scan_histogram(np.ones(4), np.zeros(4))
    with pytest.raises(ValueError, match="width_max"):
        ScanConfig(width_min=4, width_max=2)
