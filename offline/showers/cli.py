"""Command line of ``python -m offline.showers``: validate a shower generator.

Example:
    python -m offline.showers --model reference --n 10000 --geometry ecal --out report/
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["build_parser", "main"]

_EXAMPLES = """\
examples:
  # the reference simulator against an independent held-out sample (toolkit self-test)
  python -m offline.showers --model reference --n 10000 --geometry ecal --out report/

  # against showers in a file (format detected; force with --format)
  python -m offline.showers --model reference --reference photons.h5 --format calochallenge --out report/

  # the CaloChallenge classifier settings (2 x 2048, 50 epochs; slow on a CPU), JSON output
  python -m offline.showers --n 2000 --classifier calochallenge --json --out report/

  # a BIB-AE trained online (python -m emulator run --config configs/showers-bibae-small.toml)
  python -m offline.showers --model bibae --snapshot ~/runs/bibae-small --n 2000 --sampling kde --out report/

The report directory holds index.html (open it in a browser), metrics.json and PNG plots.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the docs)."""
    from offline.showers.classifier import CLASSIFIER_PRESETS
    from offline.showers.registry import available_models

    parser = argparse.ArgumentParser(
        prog="python -m offline.showers",
        description=(
            "Validate generated calorimeter showers against reference showers: observables, "
            "JSD and S_JSD, correlations, classifier AUC/JSD, FPD/KPD, timing; writes an HTML report."
        ),
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        default="reference",
        choices=available_models(),
        help="generator to validate (default: reference)",
    )
    parser.add_argument(
        "--snapshot", type=Path, default=None,
        help="snapshot directory of a trained model (needed for bibae and layerflow)",
    )
    parser.add_argument(
        "--sampling", choices=("normal", "kde"), default=None,
        help="BIB-AE latent sampling: normal (N(0,1)) or kde (KDE of encoded training showers)",
    )
    parser.add_argument(
        "--post-processor", choices=("auto", "on", "off"), default="auto",
        help="BIB-AE Post Processor: auto (on once trained), on, off (default: auto)",
    )
    parser.add_argument("--n", type=int, default=10_000, help="showers per sample (default: 10000)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("showers-report"),
        help="report directory (default: showers-report)",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="reference showers (Zarr, ILD HDF5, CaloChallenge HDF5, ROOT hit tree); default: simulate a held-out sample",
    )
    parser.add_argument(
        "--format", default=None, help="force the reader format of --reference (default: detect)"
    )
    parser.add_argument(
        "--geometry",
        default="ecal",
        choices=("ecal", "ahcal"),
        help="calorimeter geometry (default: ecal)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the reference sample; models derive theirs (default: 0)",
    )
    parser.add_argument(
        "--classifier",
        default="fast",
        choices=sorted(CLASSIFIER_PRESETS),
        help="classifier settings: fast (2 x 128, early stopping, 5 runs) or calochallenge "
        "(the challenge's 2 x 2048, Adam 2e-4, 50 epochs, 1 run) (default: fast)",
    )
    parser.add_argument(
        "--classifier-runs",
        type=int,
        default=None,
        help="classifier trainings with different seeds (default: the preset's)",
    )
    parser.add_argument(
        "--cell-classifier",
        action="store_true",
        help="also train the classifier on cells (slow on CPU)",
    )
    parser.add_argument(
        "--cell-classifier-max",
        type=int,
        default=2000,
        help="showers per class for the cell classifier",
    )
    parser.add_argument(
        "--no-plots", action="store_true", help="skip the PNG plots (metrics and HTML only)"
    )
    parser.add_argument("--no-physics-distances", action="store_true", help="skip FPD and KPD")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the headline metrics as one JSON line instead of a table",
    )
    return parser


def _model_options(args: argparse.Namespace) -> dict[str, object]:
    """Factory keywords of the chosen model from the snapshot options (an error if misused)."""
    snapshot_models = ("bibae", "layerflow")
    if args.model not in snapshot_models:
        if args.snapshot is not None or args.sampling is not None or args.post_processor != "auto":
            msg = f"--snapshot, --sampling and --post-processor apply to {', '.join(snapshot_models)}, not {args.model!r}"
            raise ValueError(msg)
        return {}
    options: dict[str, object] = {"snapshot": args.snapshot}
    if args.sampling is not None:
        options["mode"] = args.sampling
    if args.post_processor != "auto":
        options["post_process"] = args.post_processor == "on"
    return options


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the validation, print the headline metrics (table or JSON).

    Returns:
        0 on success, 2 on bad input (the message names the problem).
    """
    args = build_parser().parse_args(argv)
    from offline.showers.classifier import classifier_preset
    from offline.showers.pipeline import RunConfig, run_validation
    from offline.showers.report import format_table
    from offline.showers.validation import ValidationSettings

    runs = {} if args.classifier_runs is None else {"n_runs": args.classifier_runs}
    try:
        settings = ValidationSettings(
            classifier=classifier_preset(args.classifier, **runs),
            cell_classifier=args.cell_classifier,
            cell_classifier_max=args.cell_classifier_max,
            physics_distances=not args.no_physics_distances,
            progress=not args.quiet,
        )
        config = RunConfig(
            model=args.model,
            n=args.n,
            out_dir=args.out,
            geometry=args.geometry,
            seed=args.seed,
            reference=args.reference,
            format=args.format,
            plots=not args.no_plots,
            progress=not args.quiet,
            validation=settings,
            model_options=_model_options(args),
        )
        metrics = run_validation(config)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = str(Path(args.out) / "index.html")
    if args.json:
        keys = ("classifier_auc", "classifier_jsd", "s_jsd", "fpd", "kpd", "ms_per_shower")
        headline = {key: metrics.get(key) for key in keys}
        floors = metrics.get("floors", {})
        headline["floors"] = {
            key: floors.get(key) for key in ("classifier_auc", "classifier_jsd", "s_jsd")
        }
        headline["report"] = report
        print(json.dumps(headline, default=str))
    else:
        print(format_table(metrics, report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
