"""PNG plots of a shower validation (mplhep style, Agg backend).

Every function writes one or more PNG files into ``out_dir`` and returns their file
names (relative to ``out_dir``), so the HTML report can reference them relatively.

* :func:`plot_histograms`: every compared histogram (observables, profiles, hit
  spectrum), reference vs generated, with a generated/reference ratio panel whose error
  bars combine both samples' statistical errors (the grey band: the reference's alone),
  and the JSD beside its floor in the legend.
* :func:`plot_energy_points`: mu90 / E (linearity) and the RMS90 resolution
  sigma90 / mu90 of the *calibrated* (layer-weighted) visible energy against the
  incident energy, with ratio panels; the axis labels say which energy and which width.
* :func:`plot_correlations`: ``correlations.png``, the difference matrix with its
  entries printed (readable as a thumbnail), and ``correlations_samples.png``, the
  reference and generated matrices.
* :func:`plot_showers_3d`: 3-D scatter renderings of single showers and overlays (sum
  of all showers) of both samples, with a colour scale.

Logarithmic x axes label only 1-2-5 ticks, so labels never overlap.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402

from offline.showers.energy_points import EnergyPointSummary  # noqa: E402
from offline.showers.jsd import HistogramPair  # noqa: E402
from offline.showers.summary import ShowerSummary  # noqa: E402
from offline.showers.validation import ValidationResult  # noqa: E402

__all__ = [
    "AXIS_LABELS",
    "plot_all",
    "plot_correlations",
    "plot_energy_points",
    "plot_histograms",
    "plot_showers_3d",
]

AXIS_LABELS: dict[str, str] = {
    "visible_energy": "Visible energy [MeV]",
    "n_hits": "Number of hits",
    "cog_x": "Centre of gravity x [cells]",
    "cog_y": "Centre of gravity y [cells]",
    "cog_z": "Centre of gravity z [layer]",
    "width_x": "Width x [cells]",
    "width_y": "Width y [cells]",
    "width_z": "Width z [layers]",
    "shower_start": "Shower start [layer]",
    "fraction_front": "Energy fraction, front third",
    "fraction_middle": "Energy fraction, middle third",
    "fraction_back": "Energy fraction, back third",
    "longitudinal_profile": "Layer",
    "radial_profile": "Distance from shower axis [cells]",
    "hit_energy": "Hit energy [MeV]",
}
_REF_STYLE = {"color": "0.3", "label": "Reference"}
_GEN_STYLE = {"color": "tab:red", "label": "Generated"}
_STYLE = mplhep.style.ROOT


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _log_ticks(axis: matplotlib.axis.Axis) -> None:
    """1-2-5 major ticks with plain labels, unlabelled minor ticks (no overlapping labels)."""
    axis.set_major_locator(ticker.LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(ticker.LogLocator(base=10.0, subs=np.arange(1.0, 10.0)))
    axis.set_minor_formatter(ticker.NullFormatter())


def _histogram_figure(
    name: str, pair: HistogramPair, jsd: float, floor: tuple[float, float] | None, path: Path,
    label: str,
) -> None:  # fmt: skip
    ref_sum = max(pair.reference.sum(), 1e-300)
    gen_sum = max(pair.generated.sum(), 1e-300)
    ref, gen = pair.reference / ref_sum, pair.generated / gen_sum
    ref_var, gen_var = pair.variances()
    ref_err, gen_err = np.sqrt(ref_var) / ref_sum, np.sqrt(gen_var) / gen_sum
    title = f"JSD = {jsd:.4f}"
    if floor is not None:
        title += f"\nfloor (ref vs ref) = {floor[0]:.4f} ± {floor[1]:.4f}"
    with plt.style.context(_STYLE):
        fig, (ax, rax) = plt.subplots(
            2, 1, figsize=(7, 6.5), gridspec_kw={"height_ratios": (3, 1)}, sharex=True
        )
        mplhep.histplot(ref, pair.edges, ax=ax, histtype="fill", alpha=0.35, **_REF_STYLE)
        mplhep.histplot(gen, pair.edges, ax=ax, histtype="step", linewidth=2, **_GEN_STYLE)
        ax.set_ylabel("Fraction")
        ax.legend(title=title, fontsize=12, title_fontsize=11)
        log_x = name in ("hit_energy", "visible_energy", "n_hits") and pair.edges[0] > 0
        if log_x:
            ax.set_xscale("log")
            _log_ticks(rax.xaxis)
        if name in ("hit_energy", "radial_profile"):
            ax.set_yscale("log")
        centres = (
            np.sqrt(pair.edges[1:] * pair.edges[:-1])
            if log_x
            else 0.5 * (pair.edges[1:] + pair.edges[:-1])
        )
        ratio = _ratio(gen, ref)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio_err = np.where(ref > 0, np.hypot(gen_err, ratio * ref_err) / ref, np.nan)
            ref_band = np.where(ref > 0, ref_err / ref, np.nan)
        rax.fill_between(
            pair.edges, np.append(1 - ref_band, np.nan), np.append(1 + ref_band, np.nan),
            step="post", color="0.3", alpha=0.25, linewidth=0,
        )  # fmt: skip
        rax.errorbar(
            centres, ratio, yerr=ratio_err, fmt="o", markersize=3, color=_GEN_STYLE["color"],
            elinewidth=1,
        )  # fmt: skip
        rax.axhline(1.0, color="0.3", linewidth=1)
        rax.set_ylim(0.5, 1.5)
        rax.set_ylabel("Gen / Ref", fontsize=14)
        rax.set_xlabel(label)
        fig.savefig(path, dpi=80, bbox_inches="tight")
        plt.close(fig)


def plot_histograms(result: ValidationResult, out_dir: Path) -> list[str]:
    """One PNG per compared histogram, ``hist_<name>.png``."""
    names = []
    for name, pair in result.histograms.items():
        file = f"hist_{name}.png"
        floors = result.floors
        floor = (
            (floors.jsd[name], floors.jsd_spread[name]) if floors and name in floors.jsd else None
        )
        _histogram_figure(
            name, pair, result.jsd[name], floor, out_dir / file, AXIS_LABELS.get(name, name)
        )
        names.append(file)
    return names


def _points_panel(
    ax: plt.Axes, rax: plt.Axes, ref: EnergyPointSummary, gen: EnergyPointSummary, which: str,
    calibrated: bool, method: str,
) -> None:  # fmt: skip
    energy = "calibrated visible energy" if calibrated else "visible energy (unweighted)"
    width = "RMS90, narrowest 90 %" if method == "smallest" else "central 90 %"
    ax.set_title(f"{energy}; {width}", fontsize=13)
    if which == "linearity":
        r, re_, g, ge = ref.linearity, ref.linearity_error, gen.linearity, gen.linearity_error
        ax.set_ylabel(r"$\mu_{90} / E$ [MeV/GeV]")
    else:
        r, re_, g, ge = (
            ref.relative_width,
            ref.relative_width_error,
            gen.relative_width,
            gen.relative_width_error,
        )
        ax.set_ylabel(r"RMS90 $\sigma_{90} / \mu_{90}$", fontsize=18)
    ax.errorbar(ref.energy_gev, r, yerr=re_, fmt="o", **_REF_STYLE)
    ax.errorbar(gen.energy_gev, g, yerr=ge, fmt="s", mfc="none", **_GEN_STYLE)
    ax.legend(fontsize=12)
    ratio = _ratio(g, r)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_err = ratio * np.hypot(ge / g, re_ / r)
    rax.errorbar(
        gen.energy_gev, ratio, yerr=ratio_err, fmt="s", mfc="none", color=_GEN_STYLE["color"]
    )
    rax.axhline(1.0, color="0.3", linewidth=1)
    rax.set_ylabel("Gen / Ref", fontsize=14)
    rax.set_xlabel("Incident energy [GeV]")


def plot_energy_points(result: ValidationResult, out_dir: Path) -> list[str]:
    """``linearity.png`` and ``resolution.png`` with ratio panels."""
    files = []
    for which, file in (("linearity", "linearity.png"), ("resolution", "resolution.png")):
        with plt.style.context(_STYLE):
            fig, (ax, rax) = plt.subplots(
                2, 1, figsize=(7, 6.5), gridspec_kw={"height_ratios": (3, 1)}, sharex=True
            )
            _points_panel(
                ax, rax, result.reference_points, result.generated_points, which,
                result.energy_observable.startswith("calibrated"), result.energy_point_method,
            )  # fmt: skip
            fig.savefig(out_dir / file, dpi=80, bbox_inches="tight")
            plt.close(fig)
        files.append(file)
    return files


def _matrix_panel(
    fig: plt.Figure, ax: plt.Axes, matrix: np.ndarray, names: list[str], title: str, cmap: str,
    lim: float, annotate: bool,
) -> None:  # fmt: skip
    k = len(names)
    im = ax.imshow(matrix, cmap=cmap, vmin=-lim, vmax=lim)
    ax.set_xticks(range(k), names, rotation=90, fontsize=12)
    ax.set_yticks(range(k), names, fontsize=12)
    ax.set_title(title, fontsize=16)
    ax.minorticks_off()
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if annotate:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{matrix[i, j]:+.2f}", ha="center", va="center", fontsize=9)


def plot_correlations(result: ValidationResult, out_dir: Path) -> list[str]:
    """``correlations.png`` (generated - reference) and ``correlations_samples.png``."""
    corr = result.correlations
    lim = max(0.05, float(np.abs(corr.difference).max()))
    with plt.style.context(_STYLE):
        fig, ax = plt.subplots(figsize=(10, 9), layout="constrained")
        _matrix_panel(
            fig, ax, corr.difference, corr.names,
            f"Correlations: Generated − Reference (max |Δ| = {corr.max_abs_difference:.3f})",
            "PuOr_r", lim, True,
        )  # fmt: skip
        fig.savefig(out_dir / "correlations.png", dpi=80)
        plt.close(fig)
        fig, axes = plt.subplots(1, 2, figsize=(18, 8.5), layout="constrained")
        for ax, matrix, title in (
            (axes[0], corr.reference, "Reference"),
            (axes[1], corr.generated, "Generated"),
        ):
            _matrix_panel(fig, ax, matrix, corr.names, title, "RdBu_r", 1.0, False)
        fig.savefig(out_dir / "correlations_samples.png", dpi=70)
        plt.close(fig)
    return ["correlations.png", "correlations_samples.png"]


def _scatter3d(
    fig: plt.Figure, ax: plt.Axes, image: np.ndarray, threshold: float, title: str,
    colour_label: str = "log10(cell energy / MeV)",
) -> None:  # fmt: skip
    layer, ix, iy = np.nonzero(image >= threshold)
    energy = image[layer, ix, iy]
    if energy.size:
        size = 4.0 + 60.0 * np.log1p(energy / threshold) / np.log1p(energy.max() / threshold)
        points = ax.scatter(
            layer, ix, iy, s=size, c=np.log10(energy), cmap="viridis", alpha=0.7, linewidths=0
        )
        bar = fig.colorbar(points, ax=ax, shrink=0.6, pad=0.12)
        bar.set_label(colour_label, fontsize=10)
        bar.ax.tick_params(labelsize=8)
    n_layers, n_x, n_y = image.shape
    ax.set_xlim(0, n_layers)
    ax.set_ylim(0, n_x)
    ax.set_zlim(0, n_y)
    ax.set_xlabel("layer", fontsize=10)
    ax.set_ylabel("x", fontsize=10)
    ax.set_zlabel("y", fontsize=10)
    ax.tick_params(labelsize=8)
    ax.set_title(title, fontsize=12)


def plot_showers_3d(
    reference: ShowerSummary, generated: ShowerSummary, out_dir: Path, n_single: int = 2
) -> list[str]:
    """``shower3d_<k>.png`` (single showers side by side) and ``overlay3d.png`` (sums)."""
    files = []
    threshold = reference.threshold_mev
    for k in range(min(n_single, len(reference.kept), len(generated.kept))):
        fig = plt.figure(figsize=(12, 5.5))
        for col, (summary, label) in enumerate(
            ((reference, "Reference"), (generated, "Generated"))
        ):
            ax = fig.add_subplot(1, 2, col + 1, projection="3d")
            _scatter3d(
                fig,
                ax,
                summary.kept[k],
                threshold,
                f"{label} shower {k}, E = {summary.energies[k]:.1f} GeV",
            )
        file = f"shower3d_{k}.png"
        fig.savefig(out_dir / file, dpi=80, bbox_inches="tight")
        plt.close(fig)
        files.append(file)
    fig = plt.figure(figsize=(12, 5.5))
    for col, (summary, label) in enumerate(((reference, "Reference"), (generated, "Generated"))):
        ax = fig.add_subplot(1, 2, col + 1, projection="3d")
        mean_image = summary.image_sum / max(len(summary), 1)
        _scatter3d(
            fig,
            ax,
            mean_image,
            max(mean_image.max() * 1e-2, 1e-12),
            f"{label}: overlay of {len(summary)} showers",
            "log10(mean cell energy / MeV)",
        )
    fig.savefig(out_dir / "overlay3d.png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    files.append("overlay3d.png")
    return files


def plot_all(
    result: ValidationResult, reference: ShowerSummary, generated: ShowerSummary, out_dir: Path
) -> dict[str, list[str]]:
    """Every plot; returns section -> file names."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "histograms": plot_histograms(result, out_dir),
        "energy_points": plot_energy_points(result, out_dir),
        "correlations": plot_correlations(result, out_dir),
        "showers_3d": plot_showers_3d(reference, generated, out_dir),
    }
