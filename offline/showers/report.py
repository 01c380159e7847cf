"""Write the report directory: ``metrics.json``, PNG plots and ``index.html``.

The HTML page is plain (no scripts, no external assets): a run header, a metrics table,
the per-observable JSD table and the plots, all referenced relatively, so the directory
can be copied or served as is. Every JSD, S_JSD and classifier number stands beside its
*floor*, the reference-vs-reference value at the same sample size (``metrics["floors"]``,
:mod:`offline.showers.floors`). :func:`format_table` is the short table the command line
prints.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["format_table", "headline_rows", "render_html", "write_metrics"]


def _clean(value: Any) -> Any:
    """Make ``value`` JSON-safe: NaN and infinities become ``None``, numpy scalars floats."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_metrics(metrics: Mapping[str, Any], out_dir: Path) -> Path:
    """Write ``metrics.json`` (sorted keys, NaN as null) and return its path."""
    path = out_dir / "metrics.json"
    path.write_text(json.dumps(_clean(metrics), indent=2, sort_keys=True, allow_nan=False) + "\n")
    return path


def _num(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "–" if value is None else str(value)
    if not math.isfinite(value):
        return "–"
    return f"{value:.{digits}g}"


def _pm(value: Any, error: Any) -> str:
    return _num(value) if error is None else f"{_num(value)} ± {_num(error, 2)}"


def _fmt(value: Any) -> str:
    if isinstance(value, Mapping):
        if "mean" in value and ("error" in value or "std" in value):
            return html.escape(_pm(value["mean"], value.get("error", value.get("std"))))
        if "value" in value and "error" in value:
            return html.escape(_pm(value["value"], value["error"]))
        return html.escape(json.dumps(_clean(value)))
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "–"
    return html.escape(str(value))


def _classifier_row(
    metrics: Mapping[str, Any], key: str, label: str
) -> tuple[str, str, str] | None:
    entry = metrics.get(key)
    if not isinstance(entry, Mapping):
        return None
    value = _pm(entry.get("mean"), entry.get("error"))
    if entry.get("consistent_with_zero") and (entry.get("mean") or 0.0) < 0:
        value += " (consistent with 0)"
    floor = metrics.get("floors", {}).get(key)
    floor_text = _pm(floor.get("mean"), floor.get("error")) if isinstance(floor, Mapping) else "–"
    return label, value, floor_text


def headline_rows(metrics: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(metric, value ± error, floor)`` rows of the headline numbers.

    Example:
        >>> headline_rows({"s_jsd": 0.06, "floors": {"s_jsd": 0.058, "s_jsd_spread": 0.002}})
        [('S_JSD (mean JSD over observables)', '0.06', '0.058 ± 0.002')]
    """
    rows: list[tuple[str, str, str]] = []
    floors = metrics.get("floors", {})
    for key, label in (
        ("classifier_auc", "Classifier AUC, high-level features"),
        ("classifier_jsd", "Classifier JSD = (ln 2 − BCE)/ln 2"),
        ("cell_classifier_auc", "Classifier AUC, cells"),
        ("cell_classifier_jsd", "Classifier JSD, cells"),
    ):
        row = _classifier_row(metrics, key, label)
        if row is not None:
            rows.append(row)
    if "s_jsd" in metrics:
        floor = _pm(floors["s_jsd"], floors.get("s_jsd_spread")) if "s_jsd" in floors else "–"
        rows.append(("S_JSD (mean JSD over observables)", _num(metrics["s_jsd"]), floor))
    for key, label in (("fpd", "FPD (high-level features)"), ("kpd", "KPD (high-level features)")):
        entry = metrics.get(key)
        if isinstance(entry, Mapping):
            rows.append((label, _pm(entry.get("value"), entry.get("error")), "0"))
    return rows


def format_table(metrics: Mapping[str, Any], report: str | None = None) -> str:
    """The short table ``python -m offline.showers`` prints (``--json`` prints JSON instead).

    Example:
        >>> print(format_table({"s_jsd": 0.06, "floors": {"s_jsd": 0.058}}))
        metric                             value ± error  floor (ref vs ref)
        --------------------------------------------------------------------
        S_JSD (mean JSD over observables)  0.06           0.058
    """
    rows = [("metric", "value ± error", "floor (ref vs ref)"), *headline_rows(metrics)]
    timing = metrics.get("ms_per_shower", {})
    if isinstance(timing, Mapping) and timing.get("cpu") is not None:
        rows.append(("Generation time, cpu [ms/shower]", _num(timing["cpu"]), ""))
    jsd = metrics.get("jsd", {})
    floors = metrics.get("floors", {}).get("jsd", {})
    if jsd:
        worst = max(jsd, key=lambda k: jsd[k] / floors[k] if floors.get(k) else jsd[k])
        rows.append((f"Largest JSD/floor: {worst}", _num(jsd[worst]), _num(floors.get(worst))))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}".rstrip() for r in rows]
    lines.insert(1, "-" * (sum(widths) + 4))
    n = metrics.get("n_reference")
    if n is not None:
        lines.append(
            f"n = {n} showers per sample; ± = statistical error; floor = a perfect model at this n"
        )
    if report:
        lines.append(f"report: {report}")
    return "\n".join(lines)


_TITLES = {
    "histograms": "Observables (reference binning, ratio Gen/Ref with statistical errors)",
    "energy_points": "Linearity and resolution (calibrated visible energy, RMS90)",
    "correlations": "Pearson correlations",
    "showers_3d": "3-D renderings (colour: log10 cell energy / MeV)",
}
_WIDE = {"correlations"}


def render_html(
    metrics: Mapping[str, Any],
    plots: Mapping[str, list[str]],
    run: Mapping[str, Any],
    out_dir: Path,
) -> Path:
    """Write ``index.html`` and return its path.

    Args:
        metrics: the content of ``metrics.json``.
        plots: section -> PNG file names (relative to ``out_dir``).
        run: run settings shown in the header (model, geometry, n, seed, reference).
        out_dir: report directory.
    """
    rows = [
        f"<tr><td>{html.escape(label)}</td><td>{html.escape(value)}</td><td>{html.escape(floor)}</td></tr>"
        for label, value, floor in headline_rows(metrics)
    ]
    timing = metrics.get("ms_per_shower", {})
    if isinstance(timing, Mapping):
        for device in ("cpu", "gpu"):
            if timing.get(device) is not None:
                batch = timing.get("best_batch_size", {}).get("cuda" if device == "gpu" else "cpu")
                rows.append(
                    f"<tr><td>Generation time, {device} (batch {batch})</td>"
                    f"<td>{_fmt(timing[device])} ms/shower</td><td></td></tr>"
                )
    floors = metrics.get("floors", {})
    jsd_floor, jsd_spread = floors.get("jsd", {}), floors.get("jsd_spread", {})
    jsd_rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{_fmt(value)}</td>"
        f"<td>{html.escape(_pm(jsd_floor.get(name), jsd_spread.get(name)))}</td></tr>"
        for name, value in sorted(metrics.get("jsd", {}).items())
    )
    run_rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{_fmt(v)}</td></tr>" for k, v in run.items()
    )
    sections = []
    for section, files in plots.items():
        images = "".join(
            f'<a href="{html.escape(f)}"><img src="{html.escape(f)}" alt="{html.escape(f)}" loading="lazy"></a>'
            for f in files
        )
        css = "grid wide" if section in _WIDE else "grid"
        sections.append(
            f"<h2>{html.escape(_TITLES.get(section, section))}</h2><div class='{css}'>{images}</div>"
        )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Shower validation: {html.escape(str(run.get("model", "")))}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
td, th {{ border: 1px solid #bbb; padding: 0.3em 0.8em; text-align: left; }}
.grid img {{ width: 32%; min-width: 320px; margin: 0.3em; border: 1px solid #ddd; }}
.grid.wide img {{ width: 48%; min-width: 480px; }}
</style></head><body>
<h1>Shower validation: {html.escape(str(run.get("model", "")))}</h1>
<h2>Run</h2><table>{run_rows}</table>
<h2>Metrics</h2>
<p>± is the statistical error of the number (classifier: one test split, DeLong for the AUC;
FPD: bootstrap over the samples; KPD: spread over batches). The floor is what a perfect
generator scores with the same number of showers (reference vs reference): a value is good
when it is close to its floor. A classifier JSD below 0 within its error is consistent with 0.</p>
<table><tr><th>Metric</th><th>Value</th><th>Floor (ref vs ref)</th></tr>{"".join(rows)}</table>
<h2>Jensen–Shannon distance per observable</h2>
<table><tr><th>Observable</th><th>JSD</th><th>Floor ± spread</th></tr>{jsd_rows}</table>
<p>All metrics: <a href="metrics.json">metrics.json</a></p>
{"".join(sections)}
</body></html>
"""
    path = out_dir / "index.html"
    path.write_text(page)
    return path
