"""Command line of the bump hunt: ``python -m offline.bumphunt SNAPSHOT [SNAPSHOT ...]``."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]

DESCRIPTION = """\
Bump hunt of "Ephemeral Learning" (Butter et al., arXiv 2202.09375) on samples of an
OnlineFlow ensemble snapshot, compared with the stored (prescaled) events.

Procedure: sample every member (--samples each) and histogram m in [0, 5], bins of 0.1;
fit p(m) = a*exp(-b m + c m^2 + d m^3 + e m^4 + f m^5) (binned Poisson likelihood);
BumpHunter (arXiv 1101.0390) with windows of 2 to 6 bins on the summed histogram of the
FIRST half of the members locates the window; each member of the SECOND half gives O_i
(count in the window) and B_i (its own fit in the window), scaled to the events the model
was trained on (manifest events_trained; events_seen if absent). Then

    O = mean(O_i), B = mean(B_i), S = O - B
    dO = (2/N_ens) std(O_i),  dB = (2/N_ens) std(B_i),  dS = sqrt(dO^2 + dB^2)
    significance = S / sqrt(dS^2 + B)

(One printed version of the paper reads sqrt(O^2 + B^2) for dS: a typo for the
propagated error sqrt(dO^2 + dB^2), which is what is computed.)
--uncertainty spread uses std(O_i) itself, stderr std(O_i)/sqrt(N_ens/2); the known
sampling variance of each member's window count and fit is subtracted from the spread
first (--sampling-noise keep: not). The locating scan uses the first half's MEAN
histogram in events, so its local p-value does not depend on --samples.
The stored events are hunted alike for each prescale factor (keep every k-th event),
with significance S/sqrt(B); the crossover prescale is the factor from which on the
ensemble is more significant (paper: 4). --null runs the same on background-only data
(paper: about 2 sigma for both).

Calibrated comparison: the data's S/sqrt(B) is the best of ~225 windows chosen on the
same events (about 2 under the null). Global p-values come from pseudo-experiments with
the background refitted to each (--no-refit: not), and both the ensemble's and the
data's scans are converted into a toy-calibrated significance (effective number of
windows fitted to the pseudo-experiments; ~N(0,1) under the null):
crossover_prescale_calibrated compares those.

--propose-trigger FILE.toml writes the window found as an HLT path (prescale 1) that a
run configuration reads; append it to the next run's configuration.

Several directories: snapshots of one run at different times give a curve of
significance vs events seen; directories with equal config and events_seen but different
member seeds are shards of one ensemble and are merged (said in the output).
"""

EPILOG = """\
examples:
  python -m offline.bumphunt snapshot/ --json
  python -m offline.bumphunt snapshot/ --samples 1000000 --plots out/bumphunt
  python -m offline.bumphunt run/t1 run/t2 run/t3          # curve vs events seen
  python -m offline.bumphunt shard0/ shard1/ --null       # one ensemble in two shards
  python -m offline.bumphunt snapshot/ --propose-trigger window.toml
"""


def _prescales(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError as err:
        msg = f"prescales must be comma-separated integers, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from err
    if not values or min(values) < 1:
        msg = f"prescales must be integers >= 1, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return values


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        msg = f"must be a positive integer, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from err
    if value < 1:
        msg = f"must be a positive integer, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        msg = f"must be an integer >= 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from err
    if value < 0:
        msg = f"must be an integer >= 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (its help text states the procedure and the formula)."""
    parser = argparse.ArgumentParser(
        prog="python -m offline.bumphunt",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "snapshots", nargs="+", type=Path, metavar="SNAPSHOT", help="snapshot directories"
    )
    parser.add_argument(
        "--samples", type=_positive, default=10_000_000, help="samples per member (default 10M)"
    )
    parser.add_argument(
        "--chunk-size", type=_positive, default=1_000_000, help="samples per member per call"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of sampling and pseudo-experiments"
    )
    parser.add_argument("--device", default="cpu", help="device to sample on (cpu, cuda, cuda:1)")
    parser.add_argument(
        "--pseudo", type=_non_negative, default=1000, help="pseudo-experiments per scan (default 1000)"
    )
    parser.add_argument(
        "--uncertainty",
        choices=("paper", "spread", "stderr"),
        default="paper",
        help="delta of O and B: paper (2/N_ens)*std, spread std, stderr std/sqrt(N_ens/2)",
    )
    parser.add_argument(
        "--sampling-noise",
        choices=("subtract", "keep"),
        default="subtract",
        help="subtract the members' known sampling variance from their spread (default) or keep it",
    )
    parser.add_argument(
        "--no-refit",
        action="store_true",
        help="do not refit the background to each pseudo-experiment (uncalibrated, as pyBumpHunter)",
    )
    parser.add_argument(
        "--locate-pseudo",
        choices=("members", "members+absorbed", "members+data", "poisson"),
        default="members",
        help="how the flow's calibration pseudo-experiments fluctuate: members' covariance / (N/2) "
        "(default), plus the training data's fluctuation the flow absorbed (fitted on this "
        "ensemble; needs every training event stored), plus one replica's covariance for the "
        "data, or Poisson counts (before the fix)",
    )
    parser.add_argument(
        "--propose-trigger",
        type=Path,
        default=None,
        metavar="FILE.toml",
        help="write the window found as a prescale-1 HLT path for the next run's configuration",
    )
    parser.add_argument(
        "--propose-from",
        choices=("ensemble", "data"),
        default="ensemble",
        help="window to propose: the ensemble's (default) or the stored data's at prescale 1",
    )
    parser.add_argument(
        "--prescales", type=_prescales, default=(1, 2, 4, 8, 16, 32), help="e.g. 1,2,4,8,16,32"
    )
    parser.add_argument(
        "--fit-order",
        type=int,
        default=5,
        choices=range(1, 6),
        help="order of the exponent polynomial",
    )
    parser.add_argument(
        "--null", action="store_true", help="null test: background-only data and snapshot"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--plots", type=Path, default=None, help="plot directory (default SNAPSHOT/bumphunt)"
    )
    parser.add_argument("--no-plots", action="store_true", help="do not write plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def _table(report: dict[str, Any]) -> str:
    lines = []
    if report.get("merged_shards"):
        lines.append(
            f"merged {len(report['snapshots'])} shards into one ensemble of {report['n_members']} members"
        )
    lo, hi = report["window"]
    rows = [
        ("snapshot(s)", ", ".join(report["snapshots"])),
        ("members", report["n_members"]),
        (
            "normalised to",
            f"{report['normalised_to']['events']} ({report['normalised_to']['key']})",
        ),
        ("window", f"[{lo:.2f}, {hi:.2f}]"),
        ("local p-value (locate)", report["local_pvalue"]),
        ("local significance (locate)", report["local_significance"]),
        ("global p-value (locate)", report["global_pvalue_text"]),
        ("calibrated significance", report["significance_calibrated"]),
        ("O ± δ_O", f"{_fmt(report['O'])} ± {_fmt(report['delta_O'])}"),
        ("B ± δ_B", f"{_fmt(report['B'])} ± {_fmt(report['delta_B'])}"),
        ("S ± δ_S", f"{_fmt(report['S'])} ± {_fmt(report['delta_S'])}"),
        ("ensemble significance", f"{_fmt(report['significance'])} (delta: {report['uncertainty']})"),
        (
            "significance by delta",
            ", ".join(f"{k} {_fmt(v)}" for k, v in report["significance_options"].items()),
        ),
    ]
    width = max(len(r[0]) for r in rows)
    lines += [f"{name:<{width}}  {_fmt(value)}" for name, value in rows]
    if report["data"]:
        lines.append("")
        lines.append(f"data ({report['data_source']}):")
        lines.append(
            f"{'prescale':>8}  {'events':>10}  {'window':>13}  {'O':>10}  {'B':>10}  {'S/sqrt(B)':>9}"
            f"  {'calibrated':>10}  global p"
        )
        for k, d in report["data"].items():
            w = f"[{d['window'][0]:.2f}, {d['window'][1]:.2f}]"
            flag = "" if d["fit_valid"] else "  (invalid fit)"
            lines.append(
                f"{k:>8}  {d['n_events']:>10}  {w:>13}  {d['O']:>10.1f}  {d['B']:>10.1f}  {d['significance']:>9.3f}"
                f"  {d['calibrated_significance']:>10.3f}  {d['global_pvalue_text']}{flag}"
            )
        lines.append(f"crossover prescale (paper's procedure): {report['crossover_prescale']}")
        lines.append(f"crossover prescale (calibrated): {report['crossover_prescale_calibrated']}")
    if "curve" in report:
        lines.append("")
        lines.append("significance vs events seen:")
        for point in report["curve"]:
            lines.append(f"  {point['events_seen']:>12}  {_fmt(point['significance'])}")
    for warning in report.get("warnings", []):
        lines.append(f"warning: {warning}")
    if report.get("plots"):
        lines.append(f"plots written to {report['plots_directory']}: " + ", ".join(Path(p).name for p in report["plots"]))
    if report.get("proposed_trigger"):
        lines.append(f"proposed trigger path {report['proposed_trigger']['name']} written to {report['proposed_trigger']['file']}")
    lines.append("timings [s]: " + ", ".join(f"{k} {v:.2f}" for k, v in report["timings"].items()))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bump hunt; see ``--help``."""
    args = build_parser().parse_args(argv)
    from emulator.errors import SnapshotError
    from offline.bumphunt.analysis import BumpHuntSettings, analyse
    from offline.bumphunt.errors import BumpHuntError
    from offline.bumphunt.plots import plot_all

    try:
        settings = BumpHuntSettings(
            uncertainty=args.uncertainty,
            sampling_noise=args.sampling_noise,
            refit_pseudo=not args.no_refit,
            locate_pseudo=args.locate_pseudo,
            samples=args.samples,
            chunk_size=args.chunk_size,
            seed=args.seed,
            n_pseudo=args.pseudo,
            prescales=args.prescales,
            fit_order=args.fit_order,
            device=args.device,
            null=args.null,
            progress=not args.no_progress,
        )
        report, analyses = analyse(args.snapshots, settings)
        if args.propose_trigger is not None:
            report["proposed_trigger"] = _propose(args, report)
    except (SnapshotError, BumpHuntError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.no_plots:
        t0 = time.perf_counter()
        directory = args.plots or Path(args.snapshots[-1]) / "bumphunt"
        report["plots"] = [str(p) for p in plot_all(analyses, directory)]
        report["plots_directory"] = str(directory)
        report["timings"]["plots"] = time.perf_counter() - t0
        if args.json:  # stdout holds the JSON only
            print(f"plots written to {directory}", file=sys.stderr)
    report["timings"]["total"] = sum(report["timings"].values())
    if args.json:
        print(json.dumps(report, default=_json_default))
    else:
        print(_table(report))
    return 0


def _propose(args: argparse.Namespace, report: dict[str, Any]) -> dict[str, Any]:
    from offline.bumphunt.errors import BumpHuntError
    from offline.bumphunt.propose import propose_trigger_path, write_trigger_toml

    origin = str(args.snapshots[-1])
    if args.propose_from == "data":
        if "1" not in report["data"]:
            msg = "--propose-from data needs the stored data at prescale 1 (snapshot has no stored events, or --prescales lacks 1)"
            raise BumpHuntError(msg)
        window, significance = report["data"]["1"]["window"], report["data"]["1"]["significance"]
    else:
        window, significance = report["window"], report["significance"]
    path = propose_trigger_path(window, origin=origin, significance=significance)
    written = write_trigger_toml(args.propose_trigger, [path])
    return {**path, "file": str(written), "from": args.propose_from}


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
