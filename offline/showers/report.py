"""Write the report directory: ``metrics.json``, PNG plots and ``index.html``.

The HTML page is plain (no scripts, no external assets): a run header, a metrics table,
the per-observable JSD table and the plots, all referenced relatively, so the directory
can be copied or served as is.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["render_html", "write_metrics"]


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


def _fmt(value: Any) -> str:
    if isinstance(value, Mapping):
        if "mean" in value and "std" in value:
            return f"{_fmt(value['mean'])} ± {_fmt(value['std'])}"
        if "value" in value and "error" in value:
            return f"{_fmt(value['value'])} ± {_fmt(value['error'])}"
        return html.escape(json.dumps(_clean(value)))
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "–"
    return html.escape(str(value))


_HEADLINE = (
    ("classifier_auc", "Classifier AUC, high-level features (mean ± std over runs)"),
    ("classifier_jsd", "Classifier JSD = (ln 2 − BCE)/ln 2, calibrated"),
    ("cell_classifier_auc", "Classifier AUC, cells"),
    ("cell_classifier_jsd", "Classifier JSD, cells"),
    ("s_jsd", "S_JSD (mean JSD over observables)"),
    ("fpd", "FPD (high-level features)"),
    ("kpd", "KPD (high-level features)"),
)


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
    rows = []
    for key, label in _HEADLINE:
        if key in metrics:
            rows.append(f"<tr><td>{html.escape(label)}</td><td>{_fmt(metrics[key])}</td></tr>")
    timing = metrics.get("ms_per_shower", {})
    if isinstance(timing, Mapping):
        for device in ("cpu", "gpu"):
            if timing.get(device) is not None:
                batch = timing.get("best_batch_size", {}).get("cuda" if device == "gpu" else "cpu")
                rows.append(
                    f"<tr><td>Generation time, {device} (batch {batch})</td><td>{_fmt(timing[device])} ms/shower</td></tr>"
                )
    jsd_rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{_fmt(value)}</td></tr>"
        for name, value in sorted(metrics.get("jsd", {}).items())
    )
    run_rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{_fmt(v)}</td></tr>" for k, v in run.items()
    )
    sections = []
    titles = {
        "histograms": "Observables (reference binning, ratio Gen/Ref)",
        "energy_points": "Linearity and resolution (μ90, σ90)",
        "correlations": "Pearson correlations",
        "showers_3d": "3-D renderings",
    }
    for section, files in plots.items():
        images = "".join(
            f'<a href="{html.escape(f)}"><img src="{html.escape(f)}" alt="{html.escape(f)}" loading="lazy"></a>'
            for f in files
        )
        sections.append(
            f"<h2>{html.escape(titles.get(section, section))}</h2><div class='grid'>{images}</div>"
        )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Shower validation: {html.escape(str(run.get("model", "")))}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
td, th {{ border: 1px solid #bbb; padding: 0.3em 0.8em; text-align: left; }}
.grid img {{ width: 32%; min-width: 320px; margin: 0.3em; border: 1px solid #ddd; }}
</style></head><body>
<h1>Shower validation: {html.escape(str(run.get("model", "")))}</h1>
<h2>Run</h2><table>{run_rows}</table>
<h2>Metrics</h2><table><tr><th>Metric</th><th>Value</th></tr>{"".join(rows)}</table>
<h2>Jensen–Shannon distance per observable</h2><table><tr><th>Observable</th><th>JSD</th></tr>{jsd_rows}</table>
<p>All metrics: <a href="metrics.json">metrics.json</a></p>
{"".join(sections)}
</body></html>
"""
    path = out_dir / "index.html"
    path.write_text(page)
    return path
