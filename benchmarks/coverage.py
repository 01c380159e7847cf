"""Coverage study of the ensemble uncertainty δ_S (issue 7 §2; arXiv 2202.09375, Fig. 9.5).

K independent runs of a small configuration (``configs/coverage.toml``): run k trains on
its own toy data (toy seed k) with its own model seed k, then the bump hunt measures S and
δ_S. If δ_S is an honest uncertainty, the mean δ_S over the runs equals the run-to-run
standard deviation of S: the printed ratio mean(δ_S)/std(S) should lie in [0.67, 1.5].
It is given for every δ option (``paper`` 2/N_ens·σ, ``spread`` σ, ``stderr``
σ/√(N_ens/2); see :mod:`offline.bumphunt.significance`), with the statistical error of
the ratio (std(S) over K runs has a relative error of about 1/√(2(K − 1))).

The same K seeds are also run on background only (``signal_fraction = 0``): the null
runs give the run-to-run spread of S without a signal and the mean significance of the
flow and of the stored data (paper's S/√B and toy-calibrated), which should be near 0
for the calibrated figures.

``--bootstrap per_batch`` reruns the study with the bootstrap as it was before the fix
(a fresh Poisson weight for every batch), for the before/after comparison.

Runs go to ``--out`` (default ``~/runs/coverage-<bootstrap>``), one directory each with
its snapshot and ``estimates.json``; a study that is stopped resumes where it was.
Prints a table and, as its last line, one JSON object with ``delta_s_mean``,
``s_spread``, ``ratio`` (default δ option), ``ratio_options``,
``null_significance_mean`` (flow and data) and ``runs``.
"""

from __future__ import annotations

if __name__ == "coverage":
    # Running another script as ``python benchmarks/X.py`` puts benchmarks/ first on sys.path,
    # where this file would pass for the ``coverage`` package (numba probes for it).
    msg = "benchmarks/coverage.py is the coverage study script, not the coverage package"
    raise ImportError(msg)

import argparse
import json
import math
import os
import statistics
import sys
import time
import tomllib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

EXAMPLE = """example:
  python -m benchmarks.coverage --runs 10 --jobs 2            # about 4 min on 2 idle cores (compiled step)
  python -m benchmarks.coverage --runs 10 --bootstrap per_batch   # the pre-fix bootstrap
  python -m benchmarks.coverage --runs 20 --batch-order per_member   # each member its own batch order
  python -m benchmarks.coverage --runs 3 --events 50000 --out /tmp/cov   # a quick look
"""

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "coverage.toml"


def _run_config(
    base: dict[str, Any], seed: int, null: bool, bootstrap: str, events: int | None, batch_order: str = "shared"
) -> dict[str, Any]:
    data = json.loads(json.dumps(base))
    data["seed"] = seed
    data.setdefault("toy", {})["seed"] = seed
    if null:
        data["toy"]["signal_fraction"] = 0.0
    data["model"]["hyperparameters"]["bootstrap"] = bootstrap
    data["model"]["hyperparameters"]["batch_order"] = batch_order
    data["model"]["hyperparameters"]["seed"] = seed
    if events is not None:
        data["source"]["events"] = events
    return data


def one_run(task: dict[str, Any]) -> dict[str, Any]:
    """Train run ``task['seed']`` (unless done) and measure it; returns its estimates."""
    import torch

    torch.set_num_threads(task["threads"])
    from emulator.config import RunConfig
    from emulator.run import run_training
    from emulator.snapshot import MANIFEST
    from offline.bumphunt.analysis import BumpHuntSettings
    from offline.bumphunt.uncertainty import signal_estimates

    out = Path(task["out"])
    result_path = out / "estimates.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    config = RunConfig.from_mapping(task["config"])
    t0 = time.perf_counter()
    summary = None
    manifest = out / MANIFEST
    done = manifest.exists() and json.loads(manifest.read_text()).get("events_seen", 0) >= config.source.events
    if not done:
        summary = run_training(config, out, fresh=not manifest.exists(), progress=False)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    settings = BumpHuntSettings(
        samples=task["samples"], n_pseudo=task["n_pseudo"], prescales=(1,), progress=False,
        null=task["null"], seed=task["seed"],
    )
    est = signal_estimates(out, settings)
    result = {
        "seed": task["seed"],
        "null": task["null"],
        "window": list(est.window),
        "S": est.signal,
        "B": est.background,
        "delta_S": est.delta_signal,
        "significance": est.significance,
        "significance_calibrated": est.significance_calibrated,
        "data_significance": est.data_significance.get(1, float("nan")),
        "data_significance_calibrated": est.data_significance_calibrated.get(1, float("nan")),
        "train_s": train_s,
        "ms_per_step": summary.ms_per_step if summary is not None else None,
        "measure_s": time.perf_counter() - t0,
    }
    result_path.write_text(json.dumps(result, indent=2))
    return result


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if finite else float("nan")


def summarise(signal: list[dict[str, Any]], null: list[dict[str, Any]]) -> dict[str, Any]:
    """Coverage figures of finished runs (see the module docstring)."""
    options = sorted(signal[0]["delta_S"]) if signal else []
    out: dict[str, Any] = {"runs": len(signal), "null_runs": len(null)}
    if len(signal) >= 2:
        s_values = [r["S"] for r in signal]
        spread = statistics.stdev(s_values)
        out["s_mean"] = statistics.fmean(s_values)
        out["s_spread"] = spread
        out["s_spread_rel_error"] = 1 / math.sqrt(2 * (len(signal) - 1))
        out["delta_s_mean_options"] = {o: _mean([r["delta_S"][o] for r in signal]) for o in options}
        out["ratio_options"] = {o: v / spread for o, v in out["delta_s_mean_options"].items()}
        out["delta_s_mean"] = out["delta_s_mean_options"].get("paper", float("nan"))
        out["ratio"] = out["ratio_options"].get("paper", float("nan"))
    if len(null) >= 2:
        s_null = [r["S"] for r in null]
        out["null_s_spread"] = statistics.stdev(s_null)
        out["null_delta_s_mean_options"] = {o: _mean([r["delta_S"][o] for r in null]) for o in options}
        out["null_ratio_options"] = {o: v / out["null_s_spread"] for o, v in out["null_delta_s_mean_options"].items()}
        out["null_significance_mean"] = {
            "flow": _mean([r["significance"]["paper"] for r in null]),
            "data": _mean([r["data_significance"] for r in null]),
            "flow_calibrated": _mean([r["significance_calibrated"] for r in null]),
            "data_calibrated": _mean([r["data_significance_calibrated"] for r in null]),
        }
    return out


def _table(summary: dict[str, Any], bootstrap: str) -> str:
    lines = [f"coverage study, bootstrap = {bootstrap}: {summary['runs']} signal runs, {summary['null_runs']} null runs"]
    if "s_spread" in summary:
        lines.append(f"  S: mean {summary['s_mean']:.1f}, run-to-run std {summary['s_spread']:.1f} "
                     f"(relative error of the std {100 * summary['s_spread_rel_error']:.0f} %)")
        lines.append(f"  {'delta option':<14}{'mean delta_S':>14}{'ratio':>8}   goal [0.67, 1.5]")
        for option, value in summary["delta_s_mean_options"].items():
            ratio = summary["ratio_options"][option]
            mark = "ok" if 0.67 <= ratio <= 1.5 else "--"
            lines.append(f"  {option:<14}{value:>14.1f}{ratio:>8.2f}   {mark}")
    if "null_s_spread" in summary:
        lines.append(f"  null: S run-to-run std {summary['null_s_spread']:.1f}; ratio per option "
                     + ", ".join(f"{o} {r:.2f}" for o, r in summary["null_ratio_options"].items()))
        n = summary["null_significance_mean"]
        lines.append(f"  null significance, mean over runs: flow {n['flow']:.2f} (calibrated {n['flow_calibrated']:.2f}), "
                     f"data S/sqrt(B) {n['data']:.2f} (calibrated {n['data_calibrated']:.2f})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or resume) the study, print the table and the JSON line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.coverage", description=__doc__.split("\n\n")[0], epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=10, help="K independent runs (default 10)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="base run configuration (TOML)")
    parser.add_argument("--events", type=int, help="events per run (default: the config's)")
    parser.add_argument("--bootstrap", choices=("per_event", "per_batch"), default="per_event",
                        help="per_event (the online bootstrap) or per_batch (before the fix)")
    parser.add_argument("--batch-order", choices=("shared", "per_member"), default="shared",
                        help="members see the events in one shared order per pass, or each its own")
    parser.add_argument("--no-null", action="store_true", help="skip the background-only runs")
    parser.add_argument("--samples", type=int, default=500_000,
                        help="samples per member (default 500 k; their sampling variance is subtracted)")
    parser.add_argument("--n-pseudo", type=int, default=50,
                        help="pseudo-experiments per scan, for the calibrated null significances (default 50)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, one thread each (default 2)")
    parser.add_argument("--out", type=Path, help="study directory (default ~/runs/coverage-<bootstrap>)")
    args = parser.parse_args(argv)
    if args.runs < 2 or args.jobs < 1:
        parser.error("--runs must be >= 2 and --jobs >= 1")
    if not args.config.is_file():
        parser.error(f"no config file {args.config}")
    base = tomllib.loads(args.config.read_text())
    out = args.out or Path.home() / "runs" / f"coverage-{args.bootstrap}"
    out.mkdir(parents=True, exist_ok=True)
    tasks = []
    for null in ([False] if args.no_null else [False, True]):
        for k in range(args.runs):
            tasks.append({
                "seed": k, "null": null, "threads": 1 if args.jobs > 1 else (os.cpu_count() or 1),
                "out": str(out / f"{'null' if null else 'signal'}-{k:02d}"),
                "config": _run_config(base, k, null, args.bootstrap, args.events, args.batch_order),
                "samples": args.samples, "n_pseudo": args.n_pseudo,
            })
    results: list[dict[str, Any]] = []
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(one_run, task) for task in tasks]
        for done, future in enumerate(as_completed(futures), 1):
            result = future.result()
            results.append(result)
            kind = "null" if result["null"] else "signal"
            print(f"[{done}/{len(tasks)}] {kind} run {result['seed']}: S = {result['S']:.1f} "
                  f"(delta_S paper {result['delta_S']['paper']:.1f}, spread {result['delta_S']['spread']:.1f}) "
                  f"window {result['window'][0]:.2f}-{result['window'][1]:.2f}, "
                  f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    signal = sorted((r for r in results if not r["null"]), key=lambda r: r["seed"])
    null = sorted((r for r in results if r["null"]), key=lambda r: r["seed"])
    summary = summarise(signal, null)
    summary["bootstrap"] = args.bootstrap
    summary["batch_order"] = args.batch_order
    summary["wall_s"] = time.perf_counter() - start
    summary["per_run"] = {"signal": [[r["S"], r["delta_S"]] for r in signal], "null": [[r["S"], r["delta_S"]] for r in null]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(_table(summary, args.bootstrap))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
