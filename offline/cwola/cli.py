"""Command line of the CWoLa search: ``python -m offline.cwola SNAPSHOT``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]

DESCRIPTION = """\
Weakly supervised dijet search (CWoLa hunting, arXiv 1805.02664) on samples of an
OnlineFlow snapshot trained online on the dijet stream, compared with the same search on
the stored events at prescale factors (arXiv 2202.09375, section 9.3).

A classifier (3 dense layers of 64, class-weighted cross entropy, Adam 1e-3) learns to
tell the signal region 3.3 <= m_jj < 3.7 TeV from the sidebands using m_j1, m_j1 - m_j2,
tau21_j1, tau21_j2; its score is the mean of the 10 lowest-validation-loss epochs. It is
trained on flow samples (--samples, + --val-samples for validation), on the stored events
at every prescale factor (every 9th event for validation), and, as references, idealised
(SR data vs an independent SR background sample) and supervised (signal vs background).
Each training is repeated for --seeds classifier seeds; max SIC = max eps_S/sqrt(eps_B)
over cuts keeping at least --min-background test background events, mean +- std over
seeds. The matching prescale is the smallest prescale factor whose data max SIC the
flow reaches.

Test events: SR events of --test (labelled Parquet, generated with another seed; add
signal-enriched events with --signal-test). Without --test the last --holdout fraction of
the stored events is held out (the flow has seen those; the summary says so).
Outputs in --out (default SNAPSHOT/cwola): roc.png, sic.png, summary.json.
"""

EPILOG = """\
examples:
  python -m offline.cwola runs/dijet/ --test ~/runs/dijet/test.parquet --signal-test ~/runs/dijet/signal.parquet --json
  python -m offline.cwola runs/dijet/ --paper        # 500 k + 62.5 k samples, 100 epochs, 10 seeds
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``--help`` shows the procedure and an example)."""
    parser = argparse.ArgumentParser(
        prog="python -m offline.cwola", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("snapshot", type=Path, help="snapshot directory of an OnlineFlow trained on the dijet features")
    parser.add_argument("--test", type=Path, help="labelled held-out events (Parquet file or directory)")
    parser.add_argument("--signal-test", type=Path, help="signal-enriched events added to the test signal")
    parser.add_argument("--stored", type=Path, help="stored events (default: the snapshot's stored_events)")
    parser.add_argument("--holdout", type=float, default=0.25, help="fraction of stored events held out without --test")
    parser.add_argument("--samples", type=int, default=100_000, help="flow samples for training (paper: 500000)")
    parser.add_argument("--val-samples", type=int, default=12_500, help="flow samples for validation (paper: 62500)")
    parser.add_argument("--epochs", type=int, default=20, help="classifier epochs (paper: 100)")
    parser.add_argument("--seeds", type=int, default=3, help="classifier seeds per training (paper: 10)")
    parser.add_argument("--batch-size", type=int, default=128, help="classifier batch size")
    parser.add_argument("--checkpoints", type=int, default=10, help="lowest-validation-loss epochs averaged")
    parser.add_argument("--paper", action="store_true", help="the paper's sizes: 500k/62.5k samples, 100 epochs, 10 seeds")
    parser.add_argument("--prescales", default="1,2,5,10,20", help="prescale factors of the stored events")
    parser.add_argument("--sr", default="3300,3700", help="signal region LOW,HIGH in m_jj (GeV)")
    parser.add_argument("--pt-lead-min", type=float, default=1200.0, help="trigger cut applied to test events (GeV)")
    parser.add_argument("--min-background", type=int, default=25, help="test background events a max-SIC cut must keep")
    parser.add_argument("--no-references", action="store_true", help="skip the idealised and supervised trainings")
    parser.add_argument("--sample-seed", type=int, default=0, help="seed of the flow samples")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per classifier (1 is fastest for this tiny net)")
    parser.add_argument("--out", type=Path, help="output directory (default SNAPSHOT/cwola)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    return parser


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        msg = f"{name} must be comma-separated integers, got {text!r}"
        raise ValueError(msg) from err


def _run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from emulator.snapshot import load_snapshot
    from offline.cwola.analysis import CwolaSettings, run_cwola
    from offline.cwola.classifier import ClassifierSettings
    from offline.cwola.data import EventSet, SignalRegion, flow_samples, read_events
    from offline.cwola.errors import CwolaError
    from offline.cwola.plots import plot_roc, plot_sic

    if args.paper:
        args.samples, args.val_samples, args.epochs, args.seeds = 500_000, 62_500, 100, 10
    try:
        low, high = (float(v) for v in args.sr.split(","))
    except ValueError as err:
        msg = f"--sr must be LOW,HIGH in GeV, got {args.sr!r}"
        raise CwolaError(msg) from err
    if not 0.0 < args.holdout < 1.0:
        msg = f"--holdout must be in (0, 1), got {args.holdout}"
        raise CwolaError(msg)
    settings = CwolaSettings(
        region=SignalRegion(low, high), flow_samples=args.samples, flow_val_samples=args.val_samples,
        prescales=_ints(args.prescales, "--prescales"), seeds=args.seeds,
        classifier=ClassifierSettings(epochs=args.epochs, batch_size=args.batch_size, checkpoints=args.checkpoints, threads=args.threads),
        min_background=args.min_background, sample_seed=args.sample_seed, references=not args.no_references,
    )
    snapshot = load_snapshot(args.snapshot)
    stored_path = args.stored or snapshot.stored_events_path
    if stored_path is None:
        msg = f"snapshot {str(args.snapshot)!r} stored no events (snapshot.store_events = false); pass --stored"
        raise CwolaError(msg)
    stored = read_events(stored_path, pt_lead_min=None)
    if args.test is not None:
        test = read_events(args.test, pt_lead_min=args.pt_lead_min, need_labels=True)
        test_source = str(args.test)
    else:
        cut = int(round(len(stored) * (1.0 - args.holdout)))
        test, stored = stored.take(np.arange(cut, len(stored))), stored.take(np.arange(cut))
        test_source = f"last {args.holdout:g} of the stored events (seen by the flow)"
    if args.signal_test is not None:
        extra = read_events(args.signal_test, pt_lead_min=args.pt_lead_min, need_labels=True)
        extra = extra.take(extra.is_signal >= 0.5)
        assert test.is_signal is not None
        assert extra.is_signal is not None
        test = EventSet(np.r_[test.x, extra.x], np.r_[test.is_signal, extra.is_signal])

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    begin = time.monotonic()
    flow_train, dropped = flow_samples(snapshot.model, settings.flow_samples, seed=settings.sample_seed)
    flow_val, dropped_val = flow_samples(snapshot.model, settings.flow_val_samples, seed=settings.sample_seed + 1)
    log(f"cwola: sampled {len(flow_train)} + {len(flow_val)} flow events in {time.monotonic() - begin:.1f} s")
    result = run_cwola(flow_train, flow_val, stored, test, settings, progress=log)
    summary = result["summary"]
    summary.update({
        "snapshot": str(args.snapshot),
        "stored_events": str(stored_path),
        "test_source": test_source,
        "signal_test": str(args.signal_test) if args.signal_test else None,
        "flow_samples_dropped_non_finite": dropped + dropped_val,
        "events_trained_by_flow": snapshot.manifest.get("events_trained"),
    })
    out = args.out or args.snapshot / "cwola"
    summary["plots"] = [str(plot_roc(result["curves"], out / "roc.png")), str(plot_sic(result["curves"], out / "sic.png"))]
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Run the search; 0 done, 2 a user error (bad argument or input), 1 anything else."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from emulator.errors import SnapshotError
    from offline.cwola.errors import CwolaError

    try:
        summary = _run(args)
    except (CwolaError, SnapshotError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary))
    else:
        data = ", ".join(f"{k}: {v:.2f}" for k, v in summary["max_sic_data"].items())
        print(f"max SIC flow {summary['max_sic_flow']:.2f} ± {summary['max_sic_flow_std']:.2f}; data (fraction: SIC) {data}; "
              f"matching prescale {summary['matching_prescale']}; plots in {Path(summary['plots'][0]).parent}")
    return 0
