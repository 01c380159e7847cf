"""PNG plots of the BIB-AE latent study (:mod:`offline.showers.latent`; mplhep style, Agg backend).

* :func:`plot_latent_kld`: ``latent_kld.png``, the KLD of every latent to N(0, 1) in
  decreasing order (bars with the standard error of the mean; the correlated top latents
  coloured), tick labels naming the latent index; a logarithmic axis when the KLDs span
  more than a factor 50 (collapsed latents sit near 0).
* :func:`plot_latent_correlations`: ``latent_correlations.png``, the Pearson and the
  Spearman matrix of the top latents against the observables, the coefficient and its
  bootstrap error printed in every cell, one colour bar from −1 to 1.
* :func:`plot_latent_vs_observables`: ``latent_vs_observables.png``, a 2-D histogram of
  each top latent's mean against the centre of gravity in z, the visible energy and the
  response (visible over incident energy), on
  one logarithmic colour scale of showers per bin, with both coefficients in each panel
  (the axes span the 0.2-99.8 % range of each variable, so outliers do not squeeze the bulk).

Every function returns the file names it wrote (relative to ``out_dir``).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import colors  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402

from offline.showers.latent import OBSERVABLES, LatentStudy  # noqa: E402
from offline.showers.plots import AXIS_LABELS  # noqa: E402

__all__ = [
    "plot_latent_correlations",
    "plot_latent_kld",
    "plot_latent_study",
    "plot_latent_vs_observables",
]

_STYLE = mplhep.style.ROOT
_LABELS = {
    **AXIS_LABELS,
    "incident_energy": "Incident energy [GeV]",
    "visible_per_incident": "Visible / incident energy [MeV/GeV]",
}
_SHORT = {
    "cog_z": "CoG z\n[layer]",
    "cog_x": "CoG x\n[cells]",
    "cog_y": "CoG y\n[cells]",
    "visible_energy": "E$_\\mathrm{vis}$\n[MeV]",
    "n_hits": "hits",
    "incident_energy": "E$_\\mathrm{inc}$\n[GeV]",
    "visible_per_incident": "E$_\\mathrm{vis}$/E$_\\mathrm{inc}$\n[MeV/GeV]",
}
_TOP_COLOUR, _OTHER_COLOUR = "tab:red", "0.55"


def _core_range(values: np.ndarray, tail: float = 0.2) -> tuple[float, float]:
    """The range between the ``tail`` and ``100 - tail`` percentiles, widened if it is empty."""
    lo, hi = np.percentile(values, (tail, 100.0 - tail))
    if hi <= lo:
        lo, hi = float(lo) - 0.5, float(hi) + 0.5
    return float(lo), float(hi)


def plot_latent_kld(study: LatentStudy, out_dir: Path) -> list[str]:
    """``latent_kld.png``: the per-latent KLD, sorted in decreasing order."""
    order = study.order
    values, errors = study.kld[order], study.kld_error[order]
    top = set(study.top)
    dims = len(order)
    with plt.style.context(_STYLE):
        fig, ax = plt.subplots(figsize=(max(8.0, 0.42 * dims + 2.5), 6))
        x = np.arange(dims)
        bar_colours = [_TOP_COLOUR if int(i) in top else _OTHER_COLOUR for i in order]
        ax.bar(
            x,
            values,
            yerr=errors,
            color=bar_colours,
            width=0.8,
            capsize=2,
            error_kw={"elinewidth": 1},
        )
        ax.set_xticks(
            x,
            [str(int(i)) for i in order],
            fontsize=13 if dims <= 32 else 9,
            rotation=0 if dims <= 32 else 90,
        )
        ax.tick_params(axis="x", which="minor", bottom=False, top=False)
        ax.set_xlim(-0.7, dims - 0.3)
        ax.set_xlabel("Latent index, sorted by KLD")
        ax.set_ylabel("KLD to N(0, 1) [nats]")
        positive = values[values > 0]
        if positive.size and positive.max() > 50 * positive.min():
            ax.set_yscale("log")
        handles = [
            matplotlib.patches.Patch(color=_TOP_COLOUR, label=f"top {len(top)} (correlated)"),
            matplotlib.patches.Patch(color=_OTHER_COLOUR, label="other latents"),
        ]
        ax.legend(
            handles=handles,
            fontsize=13,
            title=f"{study.n} showers, total KLD {study.kld.sum():.2f}",
            title_fontsize=13,
            loc="upper right",
        )
        fig.tight_layout()
        fig.savefig(out_dir / "latent_kld.png", dpi=100)
        plt.close(fig)
    return ["latent_kld.png"]


def _matrix_panel(
    ax: plt.Axes, values: np.ndarray, errors: np.ndarray, rows: list[str], title: str
) -> AxesImage:
    image = ax.imshow(
        np.nan_to_num(values, nan=0.0), cmap="RdBu_r", vmin=-1.0, vmax=1.0, aspect="auto"
    )
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            value = values[i, j]
            text = (
                "—"
                if np.isnan(value)
                else f"{value:+.2f}" + ("" if np.isnan(errors[i, j]) else f"\n±{errors[i, j]:.2f}")
            )
            shade = "white" if not np.isnan(value) and abs(value) > 0.6 else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=12, color=shade)
    ax.set_xticks(np.arange(len(OBSERVABLES)), [_SHORT[name] for name in OBSERVABLES], fontsize=12)
    ax.set_yticks(np.arange(len(rows)), rows, fontsize=13)
    ax.tick_params(which="both", length=0)
    ax.set_title(title, fontsize=16)
    return image


def plot_latent_correlations(study: LatentStudy, out_dir: Path) -> list[str]:
    """``latent_correlations.png``: Pearson and Spearman of the top latents with the observables."""
    table = study.correlations
    rows = [f"z{i} (KLD {study.kld[i]:.2f})" for i in study.top]
    height = 2.0 + 1.0 * len(rows)
    with plt.style.context(_STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(17, height), sharey=True)
        image = _matrix_panel(axes[0], table.pearson, table.pearson_error, rows, "Pearson r")
        _matrix_panel(axes[1], table.spearman, table.spearman_error, rows, "Spearman ρ")
        bar = fig.colorbar(image, ax=list(axes), fraction=0.03, pad=0.02)
        bar.set_label("Correlation with the latent mean μ", fontsize=16)
        bar.ax.tick_params(labelsize=14)
        fig.suptitle(
            f"Top latents by KLD vs shower observables "
            f"({study.n} showers, ± bootstrap, {table.bootstrap} replicas)",
            fontsize=15,
        )
        fig.savefig(out_dir / "latent_correlations.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
    return ["latent_correlations.png"]


def plot_latent_vs_observables(
    study: LatentStudy,
    out_dir: Path,
    observables: tuple[str, ...] = ("cog_z", "visible_energy", "visible_per_incident"),
    bins: int | None = None,
) -> list[str]:
    """``latent_vs_observables.png``: 2-D histograms of each top latent's mean.

    One row per top latent, one column per observable (CoG-z, visible energy, response).

    Args:
        study: the latent study.
        out_dir: output directory.
        observables: the x variables, one column of panels each.
        bins: bins per axis (default: ``sqrt(n / 4)`` within 10..50).
    """
    rows = study.top
    if bins is None:  # n / bins² = 4 showers per 2-D bin on average (35 bins at n = 5000)
        bins = int(np.clip(np.sqrt(study.n / 4.0), 10, 50))
    histograms = {}
    for index in rows:
        y = study.mu[:, index]
        for name in observables:
            x = study.observables[name]
            window = (
                _core_range(x),
                _core_range(y),
            )  # outliers would squeeze the bulk into a few bins
            histograms[index, name] = np.histogram2d(x, y, bins=bins, range=window)
    peak = max(float(h[0].max()) for h in histograms.values())
    norm = colors.LogNorm(vmin=1.0, vmax=max(peak, 2.0))
    with plt.style.context(_STYLE):
        fig, axes = plt.subplots(
            len(rows),
            len(observables),
            figsize=(6.0 * len(observables) + 1.5, 4.2 * len(rows)),
            squeeze=False,
        )
        mesh = None
        for r, index in enumerate(rows):
            for c, name in enumerate(observables):
                ax = axes[r, c]
                counts, x_edges, y_edges = histograms[index, name]
                masked = np.ma.masked_less(counts.T, 1.0)
                mesh = ax.pcolormesh(x_edges, y_edges, masked, norm=norm, cmap="viridis")
                entry = study.correlations.entry(f"z{index}", name)
                text = (
                    f"r = {entry['pearson']:+.3f}\nρ = {entry['spearman']:+.3f}"
                    if entry["pearson"] is not None
                    else "constant"
                )
                ax.text(
                    0.03,
                    0.96,
                    text,
                    transform=ax.transAxes,
                    ha="left",
                    va="top",
                    fontsize=15,
                    bbox={
                        "facecolor": "white",
                        "alpha": 0.85,
                        "edgecolor": "0.6",
                        "boxstyle": "round",
                    },
                )
                ax.set_xlabel(_LABELS[name], fontsize=17)
                ax.set_ylabel(f"z{index} mean μ", fontsize=17)
                ax.tick_params(labelsize=15)
        fig.tight_layout(rect=(0, 0, 0.9, 1))
        if mesh is not None:
            colour_axis = fig.add_axes((0.92, 0.1, 0.02, 0.8))
            bar = fig.colorbar(mesh, cax=colour_axis)
            bar.set_label("Showers per bin", fontsize=18)
            bar.ax.tick_params(labelsize=15)
        fig.savefig(out_dir / "latent_vs_observables.png", dpi=80)
        plt.close(fig)
    return ["latent_vs_observables.png"]


def plot_latent_study(study: LatentStudy, out_dir: Path) -> list[str]:
    """All three plots; returns their file names."""
    out_dir = Path(out_dir)
    return [
        *plot_latent_kld(study, out_dir),
        *plot_latent_correlations(study, out_dir),
        *plot_latent_vs_observables(study, out_dir),
    ]
