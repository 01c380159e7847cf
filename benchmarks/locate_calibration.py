"""How well the locating scan's pseudo-experiments describe real flows (issue 11, the width).

Reads the background-only runs of a coverage study (``python -m benchmarks.coverage``),
samples every run's snapshot once (cached beside the study, so a second call is quick)
and measures, over the runs:

- the flow's calibrated significance of the locating scan under each ``--locate-pseudo``
  option given (mean, standard deviation; under the null they should be 0 and 1), with
  the study's runs split into two halves (even and odd seeds), so that a choice made on one
  half can be checked on the other;
- where the pseudo-experiments go wrong: the run-to-run variance of the locating mean's
  residual (its deviation from its own background fit) against the variance the members
  predict for it (their residuals' covariance over half their number), per bin and for
  window sums of each width, and the lag correlations of both. A ratio above 1 means the
  members' spread misses a part of the locating mean's fluctuation that all members share.

Last line: one JSON object with ``calibrated`` (option → mean, std, per half),
``variance_ratio`` (width → median over windows), ``lag_correlation`` and
``spread_to_sampling_noise`` (median over runs; below 1 the calibration is biased, see
the README).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

EXAMPLE = """example:
  python -m benchmarks.coverage --runs 20 --out ~/runs/cov          # the runs (about 15 min)
  python -m benchmarks.locate_calibration ~/runs/cov --n-pseudo 400  # this study (about 2 min)
"""


def _cache(study: Path, samples: int) -> list[Path]:
    """Sample every finished null run once; the member histograms go to ``study/locate-cache``."""
    import torch

    from emulator.snapshot import load_snapshot
    from offline.bumphunt.analysis import BumpHuntSettings, training_events
    from offline.bumphunt.data import read_stored_events
    from offline.bumphunt.histogram import sample_member_histograms

    settings = BumpHuntSettings(samples=samples, n_pseudo=0, prescales=(), progress=False)
    cache = study / "locate-cache"
    cache.mkdir(exist_ok=True)
    runs = sorted(p for p in study.glob("null-*") if (p / "estimates.json").exists())
    if not runs:
        msg = f"{study}: no finished background-only runs (null-*/estimates.json); run benchmarks.coverage first"
        raise SystemExit(msg)
    files = []
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for k, run in enumerate(runs, 1):
        dest = cache / f"{run.name}-{samples}.npz"
        files.append(dest)
        if dest.exists():
            continue
        t0 = time.perf_counter()
        snap = load_snapshot(run)
        n_events, _ = training_events(snap.manifest)
        seed = int(json.loads((run / "estimates.json").read_text())["seed"])
        h = sample_member_histograms(snap.model, samples, settings.binning, seed=seed, column=settings.column,
                                     progress=False)
        train = None
        if snap.stored_events_path is not None:
            stored = read_stored_events(snap.stored_events_path, settings.column)[settings.column]
            if stored.size == n_events:
                train = np.histogram(stored, bins=settings.binning.edges)[0].astype(np.float64)
        np.savez(dest, counts=h.counts, samples=samples, n_events=n_events, seed=seed,
                 train=train if train is not None else np.empty(0))
        print(f"[{k}/{len(runs)}] sampled {run.name} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return files


def _lag_correlation(cov: np.ndarray, lags: int) -> list[float]:
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    return [float(np.mean(np.diag(corr, k))) for k in range(lags)]


def study(files: list[Path], options: Sequence[str], n_pseudo: int) -> dict[str, Any]:
    """Calibrated significances per option and the run-to-run diagnostics."""
    from offline.bumphunt.analysis import BumpHuntSettings
    from offline.bumphunt.ensemble import ensemble_bump_hunt, spread_to_sampling_noise
    from offline.bumphunt.fit import fit_background
    from offline.bumphunt.histogram import MemberHistograms
    from offline.bumphunt.scan import _scan_range

    binning = BumpHuntSettings().binning
    edges = binning.edges
    z: dict[str, list[tuple[int, float]]] = {o: [] for o in options}
    residuals, predicted = [], []
    spread_ratio: list[float] = []
    for path in files:
        a = np.load(path)
        counts, samples, n_events, seed = a["counts"], int(a["samples"]), float(a["n_events"]), int(a["seed"])
        histograms = MemberHistograms(counts=counts, samples_per_member=samples, binning=binning)
        train = a["train"] if a["train"].size else None
        spread_ratio.append(spread_to_sampling_noise(counts))
        for option in options:
            if option == "members+absorbed" and train is None:
                continue
            with warnings.catch_warnings():
                # the spread-to-noise warning is what this study measures: kept in the summary
                warnings.filterwarnings("ignore", "ensemble bump hunt: the members' own spread", RuntimeWarning)
                ens = ensemble_bump_hunt(histograms, n_events, n_pseudo=n_pseudo, seed=seed, locate_pseudo=option,
                                         training_counts=train)
            z[option].append((seed, float(ens.locate.calibrated_significance)))
        scale = n_events / samples
        half = counts.shape[0] // 2
        locating = counts[:half].mean(axis=0) * scale
        expected = fit_background(locating, edges, 5).expected
        residuals.append(locating - expected)
        member_res = np.array([m * scale - fit_background(m * scale, edges, 5).expected for m in counts])
        d = member_res - member_res.mean(axis=0)
        predicted.append(d.T @ d / (counts.shape[0] - 1) / half)
        lo, hi = _scan_range(expected)
    r = np.array(residuals)[:, lo:hi]
    truth = np.cov(r.T)
    pred = np.mean(predicted, axis=0)[lo:hi, lo:hi]
    ratios = {}
    for width in (1, 2, 4, 6):
        k = np.zeros((hi - lo - width + 1, hi - lo))
        for i in range(k.shape[0]):
            k[i, i : i + width] = 1.0
        ratios[width] = float(np.median(np.diag(k @ truth @ k.T) / np.diag(k @ pred @ k.T)))
    summary: dict[str, Any] = {"runs": len(files), "n_pseudo": n_pseudo, "calibrated": {}, "variance_ratio": ratios,
                               "spread_to_sampling_noise": float(np.median(spread_ratio)) if spread_ratio else float("nan"),
                               "lag_correlation": {"run_to_run": _lag_correlation(truth, 8),
                                                   "members": _lag_correlation(pred, 8)}}
    for option, values in z.items():
        if not values:
            continue
        v = np.array([x for _, x in values])
        halves = {name: np.array([x for s, x in values if s % 2 == parity]) for name, parity in (("even", 0), ("odd", 1))}
        summary["calibrated"][option] = {
            "mean": float(v.mean()), "std": float(v.std(ddof=1)), "runs": int(v.size),
            "per_run": [round(x, 3) for x in v.tolist()],
            **{f"{name}_mean": float(h.mean()) for name, h in halves.items() if h.size > 1},
            **{f"{name}_std": float(h.std(ddof=1)) for name, h in halves.items() if h.size > 1},
        }
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Sample (or reuse), measure, print the table and the JSON line."""
    from offline.bumphunt.ensemble import LOCATE_PSEUDO

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.locate_calibration", description=__doc__.split("\n\n")[0], epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("study", type=Path, help="a coverage study directory (with null-XX runs)")
    parser.add_argument("--samples", type=int, default=500_000, help="samples per member (default 500 k)")
    parser.add_argument("--n-pseudo", type=int, default=400, help="pseudo-experiments per scan (default 400)")
    parser.add_argument("--options", default="members,members+absorbed",
                        help=f"comma-separated --locate-pseudo options (of {', '.join(sorted(LOCATE_PSEUDO))})")
    args = parser.parse_args(argv)
    options = [o for o in args.options.split(",") if o]
    bad = [o for o in options if o not in LOCATE_PSEUDO]
    if bad:
        parser.error(f"unknown option(s) {bad}; choose from {sorted(LOCATE_PSEUDO)}")
    if args.samples < 1 or args.n_pseudo < 20:
        parser.error("--samples must be positive and --n-pseudo at least 20")
    if not args.study.is_dir():
        parser.error(f"no study directory {args.study}")
    files = _cache(args.study, args.samples)
    summary = study(files, options, args.n_pseudo)
    print(f"{summary['runs']} background-only runs, {args.n_pseudo} pseudo-experiments each")
    for option, c in summary["calibrated"].items():
        print(f"  calibrated significance, {option:18s}: mean {c['mean']:+.2f}  std {c['std']:.2f}"
              f"  (even seeds {c.get('even_mean', float('nan')):+.2f} / {c.get('even_std', float('nan')):.2f},"
              f" odd {c.get('odd_mean', float('nan')):+.2f} / {c.get('odd_std', float('nan')):.2f})")
    print("  run-to-run variance of the locating residual / the members' prediction (median over windows): "
          + ", ".join(f"width {w}: {r:.2f}" for w, r in summary["variance_ratio"].items()))
    print(f"  members' own spread / their sampling noise (median over runs): {summary['spread_to_sampling_noise']:.2f}")
    print("  lag correlation, run to run:", " ".join(f"{x:+.2f}" for x in summary["lag_correlation"]["run_to_run"]))
    print("  lag correlation, members:   ", " ".join(f"{x:+.2f}" for x in summary["lag_correlation"]["members"]))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
