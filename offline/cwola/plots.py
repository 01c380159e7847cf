"""ROC (background rejection vs signal efficiency) and SIC curves of the CWoLa study (PNG)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from offline.cwola.analysis import EPS_GRID, CurveSet

__all__ = ["curve_label", "plot_roc", "plot_sic"]


def _pyplot():  # noqa: ANN202 - matplotlib module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curve_label(name: str, curve: CurveSet) -> str:
    """Legend text: what was trained on and its max SIC (mean ± std over seeds)."""
    mean, std = curve.summary()
    if name.startswith("data_"):
        factor = int(name.split("_")[1])
        what = f"data, {100 / factor:g} % (prescale {factor})"
    else:
        what = {"flow": "flow samples", "idealised": "idealised", "supervised": "supervised"}.get(name, name)
    return f"{what}: max SIC {mean:.1f} ± {std:.1f}"


def _style(name: str) -> dict[str, object]:
    if name == "flow":
        return {"color": "black", "linewidth": 2.5}
    if name == "idealised":
        return {"color": "tab:green", "linestyle": "--"}
    if name == "supervised":
        return {"color": "tab:purple", "linestyle": ":"}
    return {"linewidth": 1.3}


def plot_roc(curves: Mapping[str, CurveSet], path: Path) -> Path:
    """Background rejection ``1/ε_B`` against ``ε_S`` (log scale), one line per training."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5.5))
    for name, curve in curves.items():
        ax.plot(EPS_GRID, curve.rejection(), label=curve_label(name, curve), **_style(name))
    ax.plot(EPS_GRID, 1.0 / EPS_GRID, color="grey", linestyle="-.", label="random")
    ax.set_yscale("log")
    ax.set_xlabel(r"signal efficiency $\epsilon_S$")
    ax.set_ylabel(r"background rejection $1/\epsilon_B$")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("CWoLa: SR 3.3-3.7 TeV vs sidebands, SR test events")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_sic(curves: Mapping[str, CurveSet], path: Path) -> Path:
    """``SIC = ε_S/sqrt(ε_B)`` against ``ε_S``, bands: standard deviation over seeds; drawn
    only where at least ``min_background`` test background events pass."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5.5))
    for name, curve in curves.items():
        mean, std = curve.sic()
        line = ax.plot(EPS_GRID, mean, label=curve_label(name, curve), **_style(name))[0]
        ax.fill_between(EPS_GRID, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    ax.plot(EPS_GRID, np.sqrt(EPS_GRID), color="grey", linestyle="-.", label="random")
    ax.set_xlabel(r"signal efficiency $\epsilon_S$")
    ax.set_ylabel(r"SIC $\epsilon_S/\sqrt{\epsilon_B}$")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.set_title("CWoLa significance improvement")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
