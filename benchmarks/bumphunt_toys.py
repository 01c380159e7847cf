"""Toy study of the bump-hunt statistics (issue 11): does what offline.bumphunt reports hold?

Background-only toys (exp(−m), no signal) for

* **data**: a histogram of ``--events`` events, fitted, scanned, and calibrated with
  refitted pseudo-experiments; and
* **flow-like ensembles**: ``--members`` Poisson(1) bootstrap replicas of such a data
  set, each sampled ``--samples`` times (what an online-bootstrap ensemble that learnt
  its data exactly would give), through :func:`offline.bumphunt.ensemble.ensemble_bump_hunt`.

It prints the Kolmogorov–Smirnov p-value of the global p-values against uniform (with and
without refitting the pseudo-experiments), P(p < 0.05), the mean calibrated significance
(0 under the null) beside the paper's data S/√B (about 2 under the null: the best of
~225 windows), the local significance of one fixed signal ensemble against
``--samples`` (it must not grow), and the time a refit costs. Last line: one JSON object.

    python benchmarks/bumphunt_toys.py            # ~2-4 minutes on 2 cores
    python benchmarks/bumphunt_toys.py --toys 300 --pseudo 300
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from offline.bumphunt.ensemble import ensemble_bump_hunt  # noqa: E402
from offline.bumphunt.fit import fit_background  # noqa: E402
from offline.bumphunt.histogram import MassBinning, MemberHistograms  # noqa: E402
from offline.bumphunt.scan import bump_hunt, bump_hunt_refit  # noqa: E402
from offline.bumphunt.significance import data_significance  # noqa: E402

__all__ = ["bootstrap_members", "main"]

BINNING = MassBinning()


def _bin_index(masses: np.ndarray) -> np.ndarray:
    """Bin of each mass, ``n_bins`` for overflow (masses are ≥ 0)."""
    return np.minimum((masses / BINNING.width).astype(np.int64), BINNING.n_bins)


def bootstrap_members(
    masses: np.ndarray, n_members: int, samples: int, rng: np.random.Generator
) -> MemberHistograms:
    """Flow-like ensemble: member j is a Poisson(1) bootstrap replica of ``masses``, sampled."""
    index = _bin_index(masses)
    counts = np.zeros((n_members, BINNING.n_bins))
    for j in range(n_members):
        replica = np.bincount(index, weights=rng.poisson(1.0, masses.size), minlength=BINNING.n_bins + 1)
        counts[j] = rng.multinomial(samples, replica / replica.sum())[: BINNING.n_bins]
    return MemberHistograms(counts, samples, BINNING)


def _signal_members(n_events: int, samples: int, n_members: int, rng: np.random.Generator) -> MemberHistograms:
    """Members that all learnt exp(−m) plus a 1 % bump at m = 1 (N(1, 0.04))."""
    edges = BINNING.edges
    background = np.exp(-edges[:-1]) - np.exp(-edges[1:])
    signal = np.diff(stats.norm.cdf(edges, 1.0, 0.04))
    p = 0.99 * background + 0.01 * signal
    p = np.append(p, 1.0 - p.sum())
    counts = np.stack([rng.multinomial(samples, p)[:-1] for _ in range(n_members)]).astype(float)
    return MemberHistograms(counts, samples, BINNING)


def _ks(values: Sequence[float]) -> float:
    return float(stats.kstest(np.asarray(values), "uniform").pvalue)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the toy study; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--toys", type=int, default=200, help="background-only toys per study (default 200)")
    parser.add_argument("--pseudo", type=int, default=200, help="pseudo-experiments per scan (default 200)")
    parser.add_argument("--events", type=int, default=150_000, help="events per data toy (default 150000)")
    parser.add_argument("--members", type=int, default=20, help="members of a flow-like ensemble")
    parser.add_argument("--flow-events", type=int, default=100_000, help="events per flow-like toy")
    parser.add_argument("--samples", type=int, default=1_000_000, help="samples per member of flow-like toys")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    warnings.simplefilter("ignore", RuntimeWarning)

    # warm the compiled kernels so the timings below are of the work
    warm = np.histogram(rng.exponential(1.0, 10_000), BINNING.edges)[0].astype(float)
    bump_hunt_refit(warm, fit_background(warm, BINNING.edges), n_pseudo=10)
    bump_hunt(warm, warm + 1.0, n_pseudo=10)

    p_refit, p_plain, z_data, s_over_b = [], [], [], []
    t_refit = t_plain = 0.0
    t0 = time.perf_counter()
    for i in range(args.toys):
        counts = np.histogram(rng.exponential(1.0, args.events), BINNING.edges)[0].astype(float)
        fit = fit_background(counts, BINNING.edges, 5)
        t = time.perf_counter()
        hunt = bump_hunt_refit(counts, fit, n_pseudo=args.pseudo, seed=i)
        t_refit += time.perf_counter() - t
        t = time.perf_counter()
        plain = bump_hunt(counts, fit.expected, n_pseudo=args.pseudo, seed=i)
        t_plain += time.perf_counter() - t
        p_refit.append(hunt.global_pvalue)
        p_plain.append(plain.global_pvalue)
        z_data.append(hunt.calibrated_significance)
        lo, hi = hunt.scan.low_bin, hunt.scan.high_bin
        s_over_b.append(data_significance(float(counts[lo:hi].sum()), fit.window_count(lo, hi)))
    data_seconds = time.perf_counter() - t0

    p_flow, z_flow, sig_flow = [], [], []
    t0 = time.perf_counter()
    for i in range(args.toys):
        hists = bootstrap_members(rng.exponential(1.0, args.flow_events), args.members, args.samples, rng)
        result = ensemble_bump_hunt(hists, args.flow_events, n_pseudo=args.pseudo, seed=i)
        p_flow.append(result.locate.global_pvalue)
        z_flow.append(result.locate.calibrated_significance)
        sig_flow.append(result.significance.significance)
    flow_seconds = time.perf_counter() - t0

    z_local = {}
    for samples in (100_000, 1_000_000, 10_000_000):
        hists = _signal_members(200_000, samples, 6, np.random.default_rng(7))
        z_local[samples] = ensemble_bump_hunt(hists, 200_000, n_pseudo=0).locate.scan.local_significance

    n = args.toys
    sem = 1.0 / math.sqrt(n)
    rows = [
        ("data: KS p of global p (refitted pseudo-experiments)", _ks(p_refit)),
        ("data: KS p of global p (not refitted)", _ks(p_plain)),
        ("data: mean global p, refitted / not", f"{np.mean(p_refit):.3f} / {np.mean(p_plain):.3f}"),
        ("data: P(p < 0.05), refitted / not", f"{np.mean(np.array(p_refit) < 0.05):.3f} / {np.mean(np.array(p_plain) < 0.05):.3f}"),
        ("data: mean calibrated significance", f"{np.mean(z_data):+.3f} ± {np.std(z_data) * sem:.3f}"),
        ("data: mean S/sqrt(B), paper's procedure", f"{np.mean(s_over_b):.2f} ± {np.std(s_over_b):.2f} (spread)"),
        ("flow-like: KS p of global p (refitted)", _ks(p_flow)),
        ("flow-like: mean calibrated significance", f"{np.mean(z_flow):+.3f} ± {np.std(z_flow) * sem:.3f}"),
        ("flow-like: mean ensemble significance (paper)", f"{np.mean(sig_flow):.2f} ± {np.std(sig_flow):.2f} (spread)"),
        ("local significance vs --samples (1e5, 1e6, 1e7)", ", ".join(f"{v:.2f}" for v in z_local.values())),
        ("ms per scan with refit / without", f"{1e3 * t_refit / n:.1f} / {1e3 * t_plain / n:.1f} ({args.pseudo} pseudo-experiments)"),
        ("seconds: data toys / flow-like toys", f"{data_seconds:.1f} / {flow_seconds:.1f}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{n} background-only toys; data {args.events} events; flow-like {args.members} replicas of {args.flow_events} events, {args.samples} samples each")
    for name, value in rows:
        print(f"{name:<{width}}  {value:.3g}" if isinstance(value, float) else f"{name:<{width}}  {value}")
    summary = {
        "toys": n,
        "pseudo": args.pseudo,
        "ks_pvalue_data": _ks(p_refit),
        "ks_pvalue_data_no_refit": _ks(p_plain),
        "ks_pvalue_flow": _ks(p_flow),
        "mean_pvalue_data": float(np.mean(p_refit)),
        "mean_pvalue_data_no_refit": float(np.mean(p_plain)),
        "mean_calibrated_significance_data": float(np.mean(z_data)),
        "mean_calibrated_significance_flow": float(np.mean(z_flow)),
        "mean_data_s_over_sqrt_b": float(np.mean(s_over_b)),
        "mean_flow_significance_paper": float(np.mean(sig_flow)),
        "local_significance_vs_samples": {str(k): v for k, v in z_local.items()},
        "ms_per_scan_refit": 1e3 * t_refit / n,
        "ms_per_scan_no_refit": 1e3 * t_plain / n,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
