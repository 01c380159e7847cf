"""Several validation reports side by side: one table (markdown + JSON) and comparison plots.

``python -m offline.showers.compare DIR [DIR ...] --out OUT`` reads the ``metrics.json``
that ``python -m offline.showers`` wrote into each report directory (the reference
simulator, BIB-AE, the flow teacher, its student...) and writes into ``OUT``:

* ``compare.md`` and ``compare.json``: one row per report (classifier AUC ± error,
  classifier JSD, S_JSD, FPD, KPD, ms per shower) with the reference-vs-reference floors
  beside them, and a second table of the JSD of every observable;
* ``auc.png``, ``jsd.png``, ``energy_points.png``, ``timing.png``: the same figures
  drawn side by side;
* ``index.html``: the plots, the tables, and every report's own plots in one row per
  plot name (linked, not copied).

The reports must come from the same comparison: the same region (grid and geometry),
threshold, number of showers, seed and classifier settings; otherwise the comparison is
refused, naming the setting and the values (``--allow-mismatch`` records the
differences in the outputs instead). The reference-vs-reference AUC is the row of a
``--model reference`` report (an independent sample of the simulator) and, for every
row, the floor ``0.5 ± null spread`` at its test size.

Example:
    python -m offline.showers.compare report/reference report/bibae report/teacher report/student --out report/compare
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["compare_reports", "load_report", "main"]

_SAME = ("run.grid", "run.geometry", "run.threshold_mev", "run.n_showers", "run.seed", "run.reference", "classifier.config")
"""Settings every compared report must share (dotted paths into ``metrics.json``)."""


def _get(metrics: Mapping[str, Any], dotted: str) -> Any:
    value: Any = metrics
    for key in dotted.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def load_report(directory: str | Path) -> dict[str, Any]:
    """The ``metrics.json`` of one report directory.

    Raises:
        FileNotFoundError: the directory holds no ``metrics.json`` (named).
        ValueError: the file is not a JSON object.
    """
    path = Path(directory) / "metrics.json"
    if not path.is_file():
        msg = f"report directory {str(directory)!r} holds no metrics.json (write one with python -m offline.showers --out DIR)"
        raise FileNotFoundError(msg)
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        msg = f"{str(path)!r} is not valid JSON: {err}"
        raise ValueError(msg) from err
    if not isinstance(metrics, dict):
        msg = f"{str(path)!r} holds {type(metrics).__name__}, not a JSON object of metrics"
        raise ValueError(msg)
    return metrics


def _mismatches(reports: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> list[str]:
    out = []
    for key in _SAME:
        values = [_get(m, key) for m in reports]
        if any(v != values[0] for v in values[1:]):
            shown = ", ".join(f"{label}: {json.dumps(v, default=str, ensure_ascii=False)[:80]}" for label, v in zip(labels, values, strict=True))
            out.append(f"{key} differs ({shown})")
    return out


def _row(label: str, directory: str, metrics: Mapping[str, Any]) -> dict[str, Any]:
    auc = metrics.get("classifier_auc") or {}
    cjsd = metrics.get("classifier_jsd") or {}
    floors = metrics.get("floors") or {}
    timing = metrics.get("ms_per_shower") or {}
    fpd, kpd = metrics.get("fpd") or {}, metrics.get("kpd") or {}
    return {
        "label": label,
        "report": directory,
        "model": _get(metrics, "run.model"),
        "auc": auc.get("mean"),
        "auc_error": auc.get("error"),
        "auc_std": auc.get("std"),
        "auc_floor": _get(floors, "classifier_auc.mean"),
        "auc_floor_error": _get(floors, "classifier_auc.error"),
        "classifier_jsd": cjsd.get("mean"),
        "classifier_jsd_error": cjsd.get("error"),
        "s_jsd": metrics.get("s_jsd"),
        "s_jsd_floor": floors.get("s_jsd"),
        "fpd": fpd.get("value"),
        "fpd_error": fpd.get("error"),
        "kpd": kpd.get("value"),
        "kpd_error": kpd.get("error"),
        "ms_per_shower_cpu": timing.get("cpu"),
        "ms_per_shower_gpu": timing.get("gpu"),
        "n_reference": metrics.get("n_reference"),
        "n_generated": metrics.get("n_generated"),
    }


def compare_reports(
    directories: Sequence[str | Path], labels: Sequence[str] | None = None, *, allow_mismatch: bool = False
) -> dict[str, Any]:
    """The comparison of several reports (what ``compare.json`` holds).

    Args:
        directories: report directories of ``python -m offline.showers``.
        labels: one name per report (default: the model name of each run).
        allow_mismatch: record differing settings instead of refusing.

    Returns:
        ``{"common": shared settings, "rows": one dict per report, "jsd": observable ->
        label -> JSD (and "floor"), "mismatches": [...]}``.

    Raises:
        ValueError: no reports, labels of the wrong number, or reports of different
            comparisons (naming the setting and the values).
        FileNotFoundError: a directory without ``metrics.json``.
    """
    if not directories:
        msg = "compare: give at least one report directory"
        raise ValueError(msg)
    reports = [load_report(d) for d in directories]
    if labels is None:
        labels = [str(_get(m, "run.model") or Path(d).name) for m, d in zip(reports, directories, strict=True)]
    if len(labels) != len(reports):
        msg = f"compare: {len(labels)} labels for {len(reports)} reports"
        raise ValueError(msg)
    if len(set(labels)) != len(labels):
        labels = [f"{label} ({Path(d).name})" for label, d in zip(labels, directories, strict=True)]
    mismatches = _mismatches(reports, labels)
    if mismatches and not allow_mismatch:
        msg = "compare: the reports are not one comparison: " + "; ".join(mismatches) + " (--allow-mismatch to compare anyway)"
        raise ValueError(msg)
    first = reports[0]
    common = {key: _get(first, key) for key in _SAME if not any(key in m for m in mismatches)}
    common["classifier"] = _get(first, "run.classifier")
    rows = [_row(label, str(d), m) for label, d, m in zip(labels, directories, reports, strict=True)]
    observables = sorted({name for m in reports for name in (m.get("jsd") or {})})
    jsd: dict[str, dict[str, float | None]] = {}
    for name in observables:
        jsd[name] = {label: (m.get("jsd") or {}).get(name) for label, m in zip(labels, reports, strict=True)}
        jsd[name]["floor"] = _get(first, f"floors.jsd.{name}")
    energy_points = {label: m.get("energy_points") for label, m in zip(labels, reports, strict=True)}
    return {"common": common, "rows": rows, "jsd": jsd, "energy_points": energy_points, "mismatches": mismatches}


# ---------------------------------------------------------------------- text
def _num(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def _pm(value: Any, error: Any, digits: int = 3) -> str:
    text = _num(value, digits)
    return text if text == "–" or _num(error, digits) == "–" else f"{text} ± {_num(error, digits)}"


def markdown(comparison: Mapping[str, Any]) -> str:
    """``compare.md``: the headline table and the per-observable JSD table.

    Example:
        >>> print(markdown({"common": {}, "rows": [{"label": "ref", "auc": 0.5, "auc_error": 0.01}], "jsd": {},
        ...                 "mismatches": []}).splitlines()[2])
        | ref | 0.500 ± 0.010 | – | – | – | – | – | – | – |
    """
    head = ("| model | classifier AUC | AUC floor (ref vs ref) | classifier JSD | S_JSD | S_JSD floor | FPD | KPD "
            "| ms/shower CPU |")
    lines = [head, "|" + "---|" * 9]
    for r in comparison["rows"]:
        lines.append(
            f"| {r['label']} | {_pm(r.get('auc'), r.get('auc_error'))} | {_pm(r.get('auc_floor'), r.get('auc_floor_error'))} "
            f"| {_pm(r.get('classifier_jsd'), r.get('classifier_jsd_error'))} | {_num(r.get('s_jsd'))} "
            f"| {_num(r.get('s_jsd_floor'))} | {_pm(r.get('fpd'), r.get('fpd_error'), 4)} "
            f"| {_pm(r.get('kpd'), r.get('kpd_error'), 4)} | {_num(r.get('ms_per_shower_cpu'), 3)} |"
        )
    jsd = comparison.get("jsd") or {}
    if jsd:
        labels = [r["label"] for r in comparison["rows"]]
        lines += ["", "| JSD | " + " | ".join(labels) + " | floor |", "|" + "---|" * (len(labels) + 2)]
        for name, values in jsd.items():
            cells = " | ".join(_num(values.get(label), 4) for label in labels)
            lines.append(f"| {name} | {cells} | {_num(values.get('floor'), 4)} |")
    common = comparison.get("common") or {}
    if common:
        lines += ["", "Common settings: " + ", ".join(
            f"{k.split('.')[-1]} = {json.dumps(v, default=str, ensure_ascii=False)}" for k, v in common.items() if k != "classifier.config")]
    for mismatch in comparison.get("mismatches") or []:
        lines.append(f"\nWARNING: {mismatch}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- plots
def plot_comparison(comparison: Mapping[str, Any], out_dir: Path) -> list[str]:
    """``auc.png``, ``jsd.png``, ``energy_points.png``, ``timing.png``; returns the names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = comparison["rows"]
    labels = [r["label"] for r in rows]
    x = np.arange(len(rows))
    written = []

    def values(key: str) -> np.ndarray:
        return np.array([r.get(key) if isinstance(r.get(key), int | float) else np.nan for r in rows], dtype=float)

    fig, ax = plt.subplots(figsize=(1.6 * len(rows) + 2, 4))
    ax.bar(x, values("auc") - 0.5, bottom=0.5, yerr=values("auc_error"), color="tab:blue", capsize=4)
    floor_error = float(np.nanmax(values("auc_floor_error"))) if np.isfinite(values("auc_floor_error")).any() else 0.0
    ax.axhspan(0.5 - floor_error, 0.5 + floor_error, color="grey", alpha=0.3, label="0.5 ± null spread (ref vs ref floor)")
    for xi, value in zip(x, values("auc"), strict=True):
        if np.isfinite(value):
            ax.text(xi, value + 0.01, f"{value:.3f}", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(x, labels, rotation=15)
    ax.set_ylim(0.45, 1.05)
    ax.set_ylabel("Classifier AUC (high-level features)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "auc.png", dpi=110)
    plt.close(fig)
    written.append("auc.png")

    jsd = comparison.get("jsd") or {}
    if jsd:
        names = list(jsd)
        fig, ax = plt.subplots(figsize=(max(8, 0.7 * len(names) * len(rows) / 2 + 4), 4.5))
        width = 0.8 / max(1, len(rows))
        positions = np.arange(len(names))
        for k, label in enumerate(labels):
            heights = [jsd[n].get(label) or np.nan for n in names]
            ax.bar(positions + (k - (len(rows) - 1) / 2) * width, heights, width, label=label)
        ax.scatter(positions, [jsd[n].get("floor") or np.nan for n in names], marker="_", s=300, color="black",
                   zorder=3, label="floor (ref vs ref)")
        ax.set_yscale("log")
        ax.set_xticks(positions, names, rotation=45, ha="right")
        ax.set_ylabel("JSD to the reference")
        ax.legend(fontsize=8, ncol=2)
        fig.tight_layout()
        fig.savefig(out_dir / "jsd.png", dpi=110)
        plt.close(fig)
        written.append("jsd.png")

    points = comparison.get("energy_points") or {}
    usable = {k: v for k, v in points.items() if isinstance(v, Mapping) and isinstance(v.get("generated"), Mapping)}
    if usable:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
        reference = next(iter(usable.values()))["reference"]
        for axis, key in ((top, "linearity"), (bottom, "relative_width")):
            axis.plot(reference["energy_gev"], reference[key], "ko", label="reference")
            for label, entry in usable.items():
                axis.plot(entry["generated"]["energy_gev"], entry["generated"][key], "-", marker=".", label=label)
        top.set_ylabel("mu90 / E (calibrated)")
        bottom.set_ylabel("sigma90 / mu90")
        bottom.set_xlabel("Incident energy [GeV]")
        top.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / "energy_points.png", dpi=110)
        plt.close(fig)
        written.append("energy_points.png")

    timing = values("ms_per_shower_cpu")
    if np.isfinite(timing).any():
        fig, ax = plt.subplots(figsize=(1.6 * len(rows) + 2, 3.5))
        ax.bar(x, timing, color="tab:green")
        for xi, value in zip(x, timing, strict=True):
            if np.isfinite(value):
                ax.text(xi, value, f"{value:.3g}", ha="center", va="bottom", fontsize=9)
        ax.set_yscale("log")
        ax.set_xticks(x, labels, rotation=15)
        ax.set_ylabel("ms per shower (CPU, best batch)")
        fig.tight_layout()
        fig.savefig(out_dir / "timing.png", dpi=110)
        plt.close(fig)
        written.append("timing.png")
    return written


def _index_html(comparison: Mapping[str, Any], plots: Sequence[str], out_dir: Path) -> str:
    rows = comparison["rows"]
    parts = ["<!doctype html><meta charset='utf-8'><title>Shower generators compared</title>",
             "<style>body{font-family:sans-serif} td,th{padding:2px 8px} img{max-width:100%}</style>",
             "<h1>Shower generators compared</h1>", "<pre>" + html.escape(markdown(comparison)) + "</pre>"]
    parts += [f"<img src='{html.escape(p)}' style='max-width:900px'><br>" for p in plots]
    own: dict[str, list[str | None]] = {}
    for k, row in enumerate(rows):
        for png in sorted(Path(row["report"]).glob("*.png")):
            own.setdefault(png.name, [None] * len(rows))[k] = os.path.relpath(png, out_dir)
    if own:
        parts.append("<h2>Each report's plots, side by side</h2><table><tr>"
                     + "".join(f"<th>{html.escape(r['label'])}</th>" for r in rows) + "</tr>")
        for _, paths in sorted(own.items()):
            cells = "".join(f"<td><a href='{html.escape(p)}'><img src='{html.escape(p)}' width='360'></a></td>" if p
                            else "<td>–</td>" for p in paths)
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
    return "\n".join(parts) + "\n"


def write_comparison(comparison: Mapping[str, Any], out_dir: str | Path, *, plots: bool = True) -> Path:
    """Write ``compare.json``, ``compare.md``, the plots and ``index.html`` into ``out_dir``; return it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(comparison, indent=2, default=str, ensure_ascii=False) + "\n")
    (out / "compare.md").write_text(markdown(comparison))
    written = plot_comparison(comparison, out) if plots else []
    (out / "index.html").write_text(_index_html(comparison, written, out))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Compare report directories; print the markdown table. Exit 0, or 2 on bad input."""
    parser = argparse.ArgumentParser(
        prog="python -m offline.showers.compare",
        description="Put several shower validation reports side by side (one table, one set of plots).",
        epilog="example:\n  python -m offline.showers.compare report/reference report/bibae report/teacher "
               "report/student \\\n      --labels reference 'BIB-AE small' 'flow teacher' 'flow student' --out report/compare",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("reports", nargs="+", type=Path, help="report directories (each with metrics.json)")
    parser.add_argument("--out", type=Path, default=Path("showers-compare"), help="output directory (default: showers-compare)")
    parser.add_argument("--labels", nargs="+", default=None, help="one label per report (default: the model names)")
    parser.add_argument("--allow-mismatch", action="store_true", help="compare reports of different settings anyway")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    args = parser.parse_args(argv)
    try:
        comparison = compare_reports(args.reports, args.labels, allow_mismatch=args.allow_mismatch)
        out = write_comparison(comparison, args.out, plots=not args.no_plots)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown(comparison), end="")
    print(f"written: {out / 'compare.md'}, {out / 'compare.json'}, {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
