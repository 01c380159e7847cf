"""PNG plots of the bump hunt (matplotlib Agg backend, mplhep style).

* ``spectrum.png``: ensemble mean spectrum (events) with its member band, the background
  fit, the window and, when available, the unprescaled data; pull panel below.
* ``significance_vs_prescale.png``: data significance per prescale factor, the ensemble
  as a horizontal line with its leave-one-member-out band.
* ``significance_vs_events.png``: significance versus events seen (several snapshots).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec

import numpy as np

if TYPE_CHECKING:
    from offline.bumphunt.analysis import EnsembleAnalysis

_P = ParamSpec("_P")

__all__ = [
    "plot_all",
    "plot_significance_vs_events",
    "plot_significance_vs_prescale",
    "plot_spectrum",
]


def _pyplot():  # noqa: ANN202 - matplotlib module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _mplhep_style(plot: Callable[_P, Path]) -> Callable[_P, Path]:
    """Draw ``plot`` inside an mplhep ROOT style context.

    A context rather than ``plt.style.use``: the style must not leak into later plots of
    the same process (its font lacks glyphs other plots use, e.g. "⊕").
    """

    @functools.wraps(plot)
    def styled(*args: _P.args, **kwargs: _P.kwargs) -> Path:
        import mplhep

        with _pyplot().style.context(mplhep.style.ROOT):
            return plot(*args, **kwargs)

    return styled


def _unit_label(unit: str | None) -> str:
    """Mass axis label with its unit (the toy's dimensionless mass: arbitrary units)."""
    if not unit or unit in ("dimensionless", "1"):
        return "mass m [arb. units]"
    return f"mass m [{unit}]"


@_mplhep_style
def plot_spectrum(analysis: EnsembleAnalysis, path: Path) -> Path:
    """Spectrum with fit, window, ensemble band and a pull panel.

    The legend sits above the axes (never on the data); the member band is drawn opaque
    enough to see on a log scale and again, relative to the fit, in the pull panel, whose
    quantity is written on its axis.
    """
    plt = _pyplot()
    ens = analysis.ensemble
    binning = analysis.histograms.binning
    edges, centers = binning.edges, binning.centers
    fit = ens.total_fit.expected * ens.scale / analysis.histograms.n_members
    fig, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=(8, 8.5), gridspec_kw={"height_ratios": [3, 1.3]}
    )
    mean, std = ens.mean_counts, ens.std_counts
    top.stairs(
        mean + std,
        edges,
        baseline=np.maximum(mean - std, 1e-9),
        fill=True,
        alpha=0.55,
        color="gold",
        ec="darkgoldenrod",
        lw=0.6,
        label="ensemble ±1σ (members)",
    )
    top.stairs(
        mean, edges, color="C0", lw=1.5, label=f"ensemble mean ({analysis.histograms.n_members} members)"
    )
    top.plot(centers, fit, color="C1", lw=1.5, label="background fit")
    if 1 in analysis.data:
        top.errorbar(
            centers,
            analysis.data[1].counts,
            yerr=np.sqrt(analysis.data[1].counts),
            fmt="k.",
            label="stored data",
        )
    for ax in (top, bottom):
        ax.axvspan(
            *ens.window,
            color="C3",
            alpha=0.15,
            label=f"window [{ens.window[0]:g}, {ens.window[1]:g}]" if ax is top else None,
        )
    top.set_yscale("log")
    top.set_ylabel("events / bin")
    top.legend(
        fontsize="x-small",
        loc="lower left",
        bbox_to_anchor=(0.0, 1.01),
        ncol=2,
        columnspacing=1.0,
        frameon=False,
        borderaxespad=0.0,
    )
    denominator = np.sqrt(np.maximum(fit, 0.0) + std**2)
    ok = denominator > 0
    pull = np.divide(mean - fit, denominator, out=np.zeros_like(fit), where=ok)
    band = np.divide(std, denominator, out=np.zeros_like(fit), where=ok)
    bottom.stairs(band, edges, baseline=-band, fill=True, alpha=0.55, color="gold", ec="darkgoldenrod", lw=0.6)
    bottom.stairs(pull, edges, color="C0", lw=1.5)
    bottom.axhline(0.0, color="k", lw=0.8)
    bottom.set_ylabel("pull\n(mean − fit) / √(fit + σ²)", fontsize="x-small")
    limit = max(1.5, float(np.nanmax(np.abs(np.concatenate([pull, band])))) * 1.15)
    bottom.set_ylim(-limit, limit)
    bottom.set_xlabel(_unit_label(analysis.mass_unit))
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


@_mplhep_style
def plot_significance_vs_prescale(analysis: EnsembleAnalysis, path: Path) -> Path:
    """Data significance per prescale factor, the ensemble as a horizontal band."""
    plt = _pyplot()
    factors = sorted(analysis.data)
    values = [analysis.data[k].significance for k in factors]
    sig = analysis.ensemble.significance.significance
    band = analysis.ensemble.jackknife_std
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.plot(factors, values, "ko-", label="stored data, S/√B")
    ax.axhline(sig, color="C0", label="ensemble")
    if np.isfinite(band):
        ax.axhspan(sig - band, sig + band, color="C0", alpha=0.25)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("prescale factor k (keep every k-th event)")
    ax.set_ylabel("significance")
    ax.legend(fontsize="small", frameon=False)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


@_mplhep_style
def plot_significance_vs_events(analyses: Sequence[EnsembleAnalysis], path: Path) -> Path:
    """Significance versus events seen, one point per snapshot (ensemble)."""
    plt = _pyplot()
    events = [(a.report["events_seen"] or 0) / 1e6 for a in analyses]
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.errorbar(
        events,
        [a.report["significance"] for a in analyses],
        yerr=[a.ensemble.jackknife_std for a in analyses],
        fmt="o-",
        label="ensemble",
    )
    if all(1 in a.data for a in analyses):
        ax.plot(events, [a.data[1].significance for a in analyses], "ks--", label="stored data")
    ax.set_xlabel("events seen (millions)")
    ax.set_ylabel("significance")
    ax.legend(fontsize="small", frameon=False)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_all(analyses: Sequence[EnsembleAnalysis], directory: Path) -> list[Path]:
    """All plots of the latest ensemble, plus the curve when there are several."""
    directory.mkdir(parents=True, exist_ok=True)
    latest = analyses[-1]
    paths = [plot_spectrum(latest, directory / "spectrum.png")]
    if latest.data:
        paths.append(
            plot_significance_vs_prescale(latest, directory / "significance_vs_prescale.png")
        )
    if len(analyses) > 1:
        paths.append(
            plot_significance_vs_events(analyses, directory / "significance_vs_events.png")
        )
    return paths
