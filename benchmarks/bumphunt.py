"""Benchmark: our numba BumpHunter scan versus pyBumpHunter 0.5.1, same process.

Both get the same input histograms (toy spectrum m in [0, 5], bins of 0.1, exponential
background with a small bump at m = 1), the same windows (2 to 6 bins, width step 1,
scan step 1) and the same number of pseudo-experiments. Each timing includes drawing the
pseudo-data and scanning data and pseudo-data; numba is compiled and warmed up first
(first-call time reported, excluded). pyBumpHunter runs single-threaded (``nworker=1``,
its fastest setting here: its threads share the GIL); ours runs with numba's default
threads and with one thread. The runs are interleaved (one of each per round) so that a
busy machine slows all of them alike; medians over ``--repeat`` rounds. The last line is
one JSON object: ``speedup`` (default threads), ``speedup_single_thread``, ...

Example:
    python benchmarks/bumphunt.py --pseudo 10000 --repeat 5
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

__all__ = ["main"]


def _inputs(events: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from offline.bumphunt.histogram import MassBinning

    binning = MassBinning()
    background = events * np.exp(-binning.centers) * binning.width
    data = np.random.default_rng(seed).poisson(background).astype(float)
    data[9:11] += 1.5 * np.sqrt(background[9:11].sum())  # ~3 sigma local: global p in (0, 1)
    return binning.edges, data, background


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print a table, then one JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="example: python benchmarks/bumphunt.py --pseudo 10000 --repeat 5",
    )
    parser.add_argument("--pseudo", type=int, default=10_000, help="pseudo-experiments per scan")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (median reported)")
    parser.add_argument(
        "--events", type=float, default=1e5, help="background events in the histogram"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    import numba
    from pyBumpHunter import BumpHunter1D

    from offline.bumphunt.scan import ScanConfig, bump_hunt

    edges, data, background = _inputs(args.events, args.seed)
    config = ScanConfig(2, 6, 1, 1)

    def ours(policy: str = "counter"):  # noqa: ANN202
        return bump_hunt(
            data, background, config, n_pseudo=args.pseudo, seed=args.seed, seed_policy=policy
        )

    def theirs():  # noqa: ANN202
        hunter = BumpHunter1D(
            rang=[0, 5],
            bins=edges,
            width_min=2,
            width_max=6,
            width_step=1,
            scan_step=1,
            npe=args.pseudo,
            nworker=1,
            seed=args.seed,
        )
        with contextlib.redirect_stdout(io.StringIO()):
            hunter.bump_scan(data, background, is_hist=True)
        return hunter

    t0 = time.perf_counter()
    ours()
    ours("pybumphunter")
    compile_s = time.perf_counter() - t0
    threads = numba.get_num_threads()

    def single(policy: str = "counter"):  # noqa: ANN202
        numba.set_num_threads(1)
        try:
            return ours(policy)
        finally:
            numba.set_num_threads(threads)

    runs = {
        "theirs": theirs,
        "ours": ours,
        "ours_1": single,
        "ours_pbh": lambda: ours("pybumphunter"),
        "ours_pbh_1": lambda: single("pybumphunter"),
    }
    times: dict[str, list[float]] = {key: [] for key in runs}
    results = {}
    for _ in range(args.repeat):
        for key, fn in runs.items():
            t = time.perf_counter()
            results[key] = fn()
            times[key].append(time.perf_counter() - t)
    median = {key: statistics.median(values) for key, values in times.items()}
    t_theirs, r_theirs = median["theirs"], results["theirs"]
    t_ours, r_ours = median["ours"], results["ours"]
    t_ours_pbh, r_ours_pbh = median["ours_pbh"], results["ours_pbh"]

    same_window = (r_ours.scan.low_bin, r_ours.scan.width) == (
        int(r_theirs.min_loc_ar[0]),
        int(r_theirs.min_width_ar[0]),
    )
    same_local = bool(np.isclose(r_ours.scan.local_pvalue, r_theirs.min_Pval_ar[0], rtol=1e-12))
    rows = [
        ("pyBumpHunter 0.5.1 (nworker=1)", t_theirs, r_theirs.global_Pval),
        (f"ours, counter pseudo-data ({threads} threads)", t_ours, r_ours.global_pvalue),
        ("ours, counter pseudo-data (1 thread)", median["ours_1"], results["ours_1"].global_pvalue),
        (
            f"ours, pyBumpHunter's pseudo-data ({threads} thr.)",
            t_ours_pbh,
            r_ours_pbh.global_pvalue,
        ),
        (
            "ours, pyBumpHunter's pseudo-data (1 thread)",
            median["ours_pbh_1"],
            results["ours_pbh_1"].global_pvalue,
        ),
    ]
    print(
        f"{args.pseudo} pseudo-experiments, 50 bins, widths 2-6, median of {args.repeat}; first calls {compile_s:.2f} s (excluded)"
    )
    print(f"{'implementation':<45} {'time [ms]':>10} {'global p':>10}")
    for name, t, p in rows:
        print(f"{name:<45} {1e3 * t:>10.2f} {p:>10.4f}")
    print(
        f"window: ours bins [{r_ours.scan.low_bin}, {r_ours.scan.high_bin}), pyBumpHunter loc {r_theirs.min_loc_ar[0]} width {r_theirs.min_width_ar[0]}"
    )
    print(
        f"local p: ours {r_ours.scan.local_pvalue:.6e}, pyBumpHunter {r_theirs.min_Pval_ar[0]:.6e}"
    )
    summary = {
        "speedup": t_theirs / t_ours,
        "speedup_single_thread": t_theirs / median["ours_1"],
        "speedup_same_pseudo_data": t_theirs / t_ours_pbh,
        "speedup_same_pseudo_data_single_thread": t_theirs / median["ours_pbh_1"],
        "same_window": bool(same_window),
        "same_local_pvalue": same_local,
        "identical_global_pvalue_same_pseudo_data": bool(
            r_ours_pbh.global_pvalue == r_theirs.global_Pval
        ),
        "global_pvalue_ours": r_ours.global_pvalue,
        "global_pvalue_pybumphunter": float(r_theirs.global_Pval),
        "t_ours_s": t_ours,
        "t_ours_single_thread_s": median["ours_1"],
        "t_ours_pybumphunter_pseudo_s": t_ours_pbh,
        "t_pybumphunter_s": t_theirs,
        "compile_s": compile_s,
        "n_pseudo": args.pseudo,
        "threads": threads,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
