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

  # the latent space of that BIB-AE: KLD per latent, correlations of the top latents with the observables
  python -m offline.showers.latent --snapshot ~/runs/bibae-small --n 5000 --out report/latent

  # layer + shower flows (configs/showers-layerflow.toml): the MAF teacher, then its IAF student
  python -m offline.showers --model layerflow --snapshot ~/runs/layerflow --n 10000 --out report/teacher
  python -m offline.showers --model layerflow --snapshot ~/runs/layerflow --n 10000 --student --out report/student

  # the reference simulator against itself on the same central window (the reference-vs-reference row)
  python -m offline.showers --model reference --window 10x10 --n 10000 --out report/reference

  # several reports side by side in one table (markdown + JSON) and plots
  python -m offline.showers.compare report/reference report/bibae report/teacher report/student --out report/compare

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
    parser.add_argument(
        "--student", action="store_true",
        help="layerflow: sample with the IAF students (one parallel pass per layer) instead of the MAF teacher",
    )
    parser.add_argument(
        "--rescale", choices=("layer", "none"), default=None,
        help="layerflow: rescale each generated layer to the layer flow's energy (layer, the default) or "
        "keep the shower flow's hits as generated (none; a diagnostic of what the rescaling changes)",
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
        "--window", metavar="XxY", default=None,
        help="validate the central X x Y cells of every layer (e.g. 10x10, the region of BIB-AE small and "
        "layerflow), so the reference model compares on the same region as a windowed model",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the reference sample; models derive theirs (default: the snapshot's training "
        "seed + 1 for a snapshot trained on the simulator, so the reference is held out; else 0)",
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
        if (args.snapshot is not None or args.sampling is not None or args.post_processor != "auto" or args.student
                or args.rescale is not None):
            msg = (
                f"--snapshot, --sampling, --post-processor, --student and --rescale apply to {', '.join(snapshot_models)}, "
                f"not {args.model!r}"
            )
            raise ValueError(msg)
        return {}
    if args.student and args.model != "layerflow":
        msg = f"--student applies to layerflow (its IAF students), not {args.model!r}"
        raise ValueError(msg)
    if args.rescale is not None and args.model != "layerflow":
        msg = f"--rescale applies to layerflow, not {args.model!r}"
        raise ValueError(msg)
    if args.model == "layerflow" and (args.sampling is not None or args.post_processor != "auto"):
        msg = "--sampling and --post-processor apply to bibae, not 'layerflow'"
        raise ValueError(msg)
    options: dict[str, object] = {"snapshot": args.snapshot}
    if args.student:
        options["student"] = True
    if args.rescale is not None:
        options["rescale"] = args.rescale
    if args.sampling is not None:
        options["mode"] = args.sampling
    if args.post_processor != "auto":
        options["post_process"] = args.post_processor == "on"
    return options


def _geometry(name: str, window: str | None) -> object:
    """The validation geometry: ``name``, or its central ``window`` ("XxY") of every layer.

    Raises:
        ValueError: a window that is not two positive sizes within the grid.
    """
    if window is None:
        return name
    import dataclasses

    from stream.showers.geometry import get_geometry

    geometry = get_geometry(name)
    try:
        n_x, n_y = (int(part) for part in window.lower().split("x"))
    except ValueError as err:
        msg = f"--window must look like 10x10, got {window!r}"
        raise ValueError(msg) from err
    if not (0 < n_x <= geometry.n_x and 0 < n_y <= geometry.n_y):
        msg = f"--window {window!r} does not fit the {geometry.name} grid {geometry.shape}"
        raise ValueError(msg)
    if (n_x, n_y) == (geometry.n_x, geometry.n_y):
        return name
    return dataclasses.replace(geometry, name=f"{geometry.name}-central{n_x}x{n_y}", n_x=n_x, n_y=n_y)


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
            geometry=_geometry(args.geometry, args.window),  # type: ignore[arg-type]
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
