"""Does the report mean what it says? Reference vs reference, and known distortions.

``python -m offline.showers.study --n 1000 5000 40000`` compares two independent samples
of the reference simulator at each ``n`` (a perfect model: AUC must be 0.5 within its
error, JSDs on their floors, FPD/KPD consistent with 0), and with ``--distortions``
three known distortions at the first ``n``: a +3 % energy scale, layer 10 removed, and the
structure across layers removed (:meth:`EMShowerParameters.without_structure`). It
prints one table row per case; the figures in ``docs/showers.md`` come from it.

Example:
    python -m offline.showers.study --n 5000 --distortions
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from offline.showers.classifier import classifier_preset
from offline.showers.summary import ShowerSummary, SummaryBuilder
from offline.showers.validation import ValidationSettings, compare_summaries

__all__ = ["main", "study_row"]

Distortion = Callable[[np.ndarray], np.ndarray]


def _sample(
    n: int, seed: int, *, distortion: Distortion | None = None, structure: bool = True,
    reference: bool = False, chunk: int = 2000,
) -> ShowerSummary:  # fmt: skip
    from stream.showers.geometry import ECAL
    from stream.showers.parameters import EMShowerParameters
    from stream.showers.simulator import sample_energies, simulate

    params = EMShowerParameters() if structure else EMShowerParameters().without_structure()
    energies = sample_energies(0, 0, n, ECAL.energy_min_gev, ECAL.energy_max_gev)
    builder = SummaryBuilder(ECAL.threshold_mev, 4, per_shower_hits=reference)
    buffer = np.empty((min(chunk, n), *ECAL.shape), np.float32)
    for lo in range(0, n, chunk):
        part = energies[lo : lo + chunk]
        showers = simulate(ECAL, part, seed, first_event=lo, em_parameters=params,
                           out=buffer[: part.size])  # fmt: skip
        builder.add(part, distortion(showers) if distortion else showers)
    return builder.build()


def study_row(
    reference: ShowerSummary, generated: ShowerSummary, settings: ValidationSettings
) -> dict:
    """The headline numbers of one comparison with their errors and floors."""
    result = compare_summaries(reference, generated, settings)
    metrics = result.metrics()
    floors = metrics["floors"]
    ratio = {k: v / floors["jsd"][k] for k, v in metrics["jsd"].items()}
    worst = max(ratio, key=lambda k: ratio[k])
    pull = {
        k: (v - floors["jsd"][k]) / max(floors["jsd_spread"][k], 1e-12)
        for k, v in metrics["jsd"].items()
    }
    return {
        "auc": metrics["classifier_auc"]["mean"],
        "auc_error": metrics["classifier_auc"]["error"],
        "auc_floor_error": floors["classifier_auc"]["error"],
        "classifier_jsd": metrics["classifier_jsd"]["mean"],
        "classifier_jsd_error": metrics["classifier_jsd"]["error"],
        "s_jsd": metrics["s_jsd"],
        "s_jsd_floor": floors["s_jsd"],
        "s_jsd_floor_spread": floors["s_jsd_spread"],
        "worst_jsd": worst,
        "worst_jsd_value": metrics["jsd"][worst],
        "worst_jsd_floor": floors["jsd"][worst],
        "worst_jsd_spread": floors["jsd_spread"][worst],
        "max_jsd_pull": max(pull.values()),
        "jsd_beyond_3_spreads": sorted(k for k, v in pull.items() if v > 3),
        "fpd": metrics.get("fpd"),
        "kpd": metrics.get("kpd"),
    }


def _print_row(label: str, row: dict) -> None:
    fpd, kpd = row["fpd"] or {}, row["kpd"] or {}
    print(
        f"{label:<28} AUC {row['auc']:.3f} ± {row['auc_error']:.3f} (floor 0.5 ± {row['auc_floor_error']:.3f})"
        f" | cJSD {row['classifier_jsd']:+.4f} ± {row['classifier_jsd_error']:.4f}"
        f" | S_JSD {row['s_jsd']:.4f} (floor {row['s_jsd_floor']:.4f} ± {row['s_jsd_floor_spread']:.4f})"
        f" | max JSD/floor {row['worst_jsd']} {row['worst_jsd_value']:.4f} (floor {row['worst_jsd_floor']:.4f}"
        f" ± {row['worst_jsd_spread']:.4f}), >3 spreads: {len(row['jsd_beyond_3_spreads'])}"
        f" | FPD {fpd.get('value', float('nan')):.2e} ± {fpd.get('error', float('nan')):.1e}"
        f" | KPD {kpd.get('value', float('nan')):.2e} ± {kpd.get('error', float('nan')):.1e}",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the study and print one row per case (``--json``: one JSON line per case)."""
    parser = argparse.ArgumentParser(
        prog="python -m offline.showers.study",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--n", type=int, nargs="+", default=[5000], help="showers per sample")
    parser.add_argument(
        "--distortions", action="store_true", help="also the known distortions (first n)"
    )
    parser.add_argument("--classifier", default="fast", help="classifier preset (default: fast)")
    parser.add_argument(
        "--classifier-runs", type=int, default=None, help="runs (default: the preset's)"
    )
    parser.add_argument("--pairs", type=int, default=1, help="independent reference pairs per n")
    parser.add_argument("--json", action="store_true", help="one JSON line per case")
    args = parser.parse_args(argv)
    runs = {} if args.classifier_runs is None else {"n_runs": args.classifier_runs}
    from stream.showers.geometry import ECAL

    settings = ValidationSettings(
        classifier=classifier_preset(args.classifier, **runs),
        layer_weights=tuple(float(w) for w in ECAL.layer_weights()),
    )
    for n in args.n:
        reference = _sample(n, 0, reference=True)
        for pair in range(args.pairs):
            row = study_row(reference, _sample(n, 1000 + pair), settings)
            _emit(args.json, f"reference n={n} pair {pair}", row)
        if args.distortions and n == args.n[0]:
            for label, options in (
                ("+3 % energy scale", {"distortion": lambda s: s * np.float32(1.03)}),
                ("layer 10 removed", {"distortion": _drop_layer_10}),
                ("structure removed", {"structure": False}),
            ):
                row = study_row(reference, _sample(n, 2000, **options), replace(settings))
                _emit(args.json, f"{label} n={n}", row)
    return 0


def _drop_layer_10(showers: np.ndarray) -> np.ndarray:
    out = showers.copy()
    out[:, 10] = 0.0
    return out


def _emit(as_json: bool, label: str, row: dict) -> None:
    if as_json:
        print(json.dumps({"case": label, **row}, default=float), flush=True)
    else:
        _print_row(label, row)


if __name__ == "__main__":
    raise SystemExit(main())
