"""Validation plots of the reference shower sample (the features generative models must learn).

Run ``python -m stream.showers.plots --out docs/img``. For ECAL photons and AHCAL pions at
fixed energies it draws: the cell-energy spectrum with its MIP peak, the visible energy
versus E with the relative resolution and its fit ``a/√E ⊕ b``, the longitudinal
profiles and the shower-maximum depth versus ln E, the spread of the longitudinal
centre of gravity, the number of hits versus E, and one event display. It prints the
fitted numbers as JSON (quoted in ``docs/showers.md``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stream.showers.geometry import Geometry, get_geometry
from stream.showers.simulator import simulate

__all__ = ["fit_resolution", "main", "make_plots", "shower_summaries"]

ENERGIES_GEV = (10.0, 20.0, 30.0, 50.0, 70.0, 100.0)


def fit_resolution(energies: np.ndarray, resolution: np.ndarray) -> tuple[float, float]:
    """Fit ``σ/E = a/√E ⊕ b`` (quadrature sum); return ``(a, b)`` as fractions.

    Example:
        >>> e = np.array([10.0, 40.0, 90.0])
        >>> a, b = fit_resolution(e, np.hypot(0.2 / np.sqrt(e), 0.01))
        >>> round(a, 3), round(b, 3)
        (0.2, 0.01)
    """
    from scipy.optimize import curve_fit

    def model(e: np.ndarray, a: float, b: float) -> np.ndarray:
        return np.sqrt(a * a / e + b * b)

    (a, b), _ = curve_fit(model, energies, resolution, p0=(0.2, 0.01), bounds=([0.0, 0.0], [10.0, 1.0]))
    return float(a), float(b)


def _robust_resolution(values: np.ndarray) -> float:
    low, mid, high = np.percentile(values, [15.87, 50.0, 84.13])
    return float((high - low) / 2.0 / mid)


def shower_summaries(geometry: Geometry, n_per_energy: int, seed: int = 1) -> dict[str, np.ndarray]:
    """Simulate ``n_per_energy`` showers at each of :data:`ENERGIES_GEV` and summarise them.

    Returns:
        dict of per-energy arrays: ``visible`` (raw sum, MeV), ``calibrated`` (sum with
        :meth:`Geometry.layer_weights`), ``hits`` (cells above threshold), ``cog_z``
        (layer units), ``profile`` (mean energy per layer), ``max_layer``, plus
        ``cells`` (cell energies of the first energy point, MeV) and ``example``.
    """
    weights = geometry.layer_weights()
    layers = np.arange(geometry.n_layers)
    out: dict[str, list] = {k: [] for k in ("visible", "calibrated", "hits", "cog_z", "profile", "max_layer")}
    buffer = np.empty((n_per_energy, *geometry.shape), dtype=np.float32)
    cells = example = None
    for k, energy in enumerate(ENERGIES_GEV):
        showers = simulate(geometry, np.full(n_per_energy, energy), seed=seed, first_event=k * n_per_energy,
                           out=buffer)
        per_layer = showers.sum(axis=(2, 3), dtype=np.float64)
        visible = per_layer.sum(axis=1)
        out["visible"].append(visible)
        out["calibrated"].append((per_layer * weights).sum(axis=1))
        out["hits"].append((showers > geometry.threshold_mev).sum(axis=(1, 2, 3)))
        out["cog_z"].append((per_layer * layers).sum(axis=1) / np.maximum(visible, 1e-9))
        out["profile"].append(per_layer.mean(axis=0))
        out["max_layer"].append(np.argmax(per_layer, axis=1))
        if energy == 50.0:
            cells = showers[showers > 0].copy()
            example = showers[0].copy()
    result: dict[str, np.ndarray] = {k: np.array(v) for k, v in out.items()}
    result["cells"] = cells if cells is not None else np.zeros(0)
    result["example"] = example if example is not None else np.zeros(geometry.shape)
    return result


def make_plots(out_dir: str | Path, n_per_energy: int = 1000, seed: int = 1) -> dict[str, dict[str, float]]:
    """Draw all validation plots into ``out_dir`` (PNG) and return the fitted numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    energies = np.array(ENERGIES_GEV)
    numbers: dict[str, dict[str, float]] = {}
    for name in ("ecal", "ahcal"):
        geo = get_geometry(name)
        s = shower_summaries(geo, n_per_energy, seed)
        label = f"{name.upper()} ({geo.particle}, parametric)"
        calibrated = s["calibrated"]
        response = calibrated.mean(axis=1)
        if name == "ecal":
            resolution = calibrated.std(axis=1) / response
            res_label = "σ/mean of calibrated sum"
        else:
            resolution = np.array([_robust_resolution(v) for v in calibrated])
            res_label = "central 68% half-width / median"
        a, b = fit_resolution(energies, resolution)
        slope, intercept = np.polyfit(energies, response, 1)
        raw_slope = np.polyfit(energies, s["visible"].mean(axis=1), 1)[0]
        max_slope = np.polyfit(np.log(energies), s["max_layer"].mean(axis=1), 1)[0]
        numbers[name] = {
            "resolution_stochastic": round(a, 4), "resolution_constant": round(b, 4),
            "calibrated_mev_per_gev": round(float(slope), 2), "calibrated_intercept_mev": round(float(intercept), 1),
            "raw_visible_mev_per_gev": round(float(raw_slope), 2),
            "shower_max_layers_per_lnE": round(float(max_slope), 2),
            "hits_at_10_gev": round(float(s["hits"][0].mean()), 1),
            "hits_at_100_gev": round(float(s["hits"][-1].mean()), 1),
            "cog_z_spread_50_gev": round(float(s["cog_z"][3].std()), 2),
        }

        # 1. Cell spectrum with MIP peak.
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.hist(s["cells"] / geo.mip_mev, bins=list(np.logspace(-1, 3, 160)), histtype="step", color="k")
        ax.axvline(1.0, color="C1", ls="--", label=f"1 MIP = {geo.mip_mev} MeV")
        ax.axvline(geo.threshold_mip, color="C2", ls=":", label=f"threshold {geo.threshold_mip} MIP")
        ax.set(xscale="log", yscale="log", xlabel="cell energy [MIP]", ylabel="cells",
               title=f"{label}: cell spectrum at 50 GeV")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / f"{name}_cell_spectrum.png", dpi=110)
        plt.close(fig)

        # 2. Linearity and resolution.
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        ax1.errorbar(energies, response, yerr=calibrated.std(axis=1), fmt="o", label="calibrated sum")
        ax1.errorbar(energies, s["visible"].mean(axis=1), yerr=s["visible"].std(axis=1), fmt="s", label="raw sum")
        ax1.plot(energies, slope * energies + intercept, "C0-", lw=0.8,
                 label=f"fit {slope:.1f} MeV/GeV · E {intercept:+.0f} MeV")
        ax1.set(xlabel="incident energy [GeV]", ylabel="visible energy [MeV]", title=label)
        ax1.legend()
        grid = np.linspace(energies[0], energies[-1], 100)
        ax2.plot(energies, resolution, "o", label=res_label)
        ax2.plot(grid, np.sqrt(a * a / grid + b * b), "-",
                 label=f"{100 * a:.1f}%/√E ⊕ {100 * b:.1f}%")
        ax2.set(xlabel="incident energy [GeV]", ylabel="relative resolution")
        ax2.legend()
        fig.tight_layout()
        fig.savefig(out_dir / f"{name}_linearity_resolution.png", dpi=110)
        plt.close(fig)

        # 3. Longitudinal profiles and shower max vs ln E.
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        for k, energy in enumerate(energies):
            ax1.plot(np.arange(geo.n_layers), s["profile"][k], drawstyle="steps-mid", label=f"{energy:.0f} GeV")
        ax1.set(yscale="log", xlabel="layer", ylabel="mean energy per layer [MeV]", title=label)
        ax1.legend(fontsize=8)
        mean_max = s["max_layer"].mean(axis=1)
        ax2.errorbar(np.log(energies), mean_max, yerr=s["max_layer"].std(axis=1), fmt="o", label="layer of maximum")
        ax2.errorbar(np.log(energies), s["cog_z"].mean(axis=1), yerr=s["cog_z"].std(axis=1), fmt="s",
                     label="centre of gravity")
        ax2.set(xlabel="ln(E / GeV)", ylabel="layer", title=f"slope {max_slope:.2f} layers per unit ln E")
        ax2.legend()
        fig.tight_layout()
        fig.savefig(out_dir / f"{name}_longitudinal.png", dpi=110)
        plt.close(fig)

        # 4. CoG-z spread and number of hits.
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        for k, energy in enumerate(energies):
            ax1.hist(s["cog_z"][k], bins=60, histtype="step", label=f"{energy:.0f} GeV")
        ax1.set(xlabel="centre of gravity z [layer]", ylabel="showers", title=label)
        ax1.legend(fontsize=8)
        for k, energy in enumerate(energies):
            ax2.hist(s["hits"][k], bins=50, histtype="step", label=f"{energy:.0f} GeV")
        ax2.set(xlabel=f"hits above {geo.threshold_mip} MIP", ylabel="showers")
        ax2.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / f"{name}_cog_hits.png", dpi=110)
        plt.close(fig)

        # 5. Event display: energy summed over y (layer vs x) and over layers (x vs y).
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        example = s["example"]
        side = example.sum(axis=2).T
        front = example.sum(axis=0).T
        for ax, image, xlabel, ylabel in ((ax1, side, "layer", "x cell"), (ax2, front, "x cell", "y cell")):
            shown = np.where(image > 0, image, np.nan)
            mesh = ax.imshow(shown, origin="lower", norm=matplotlib.colors.LogNorm(), aspect="auto", cmap="viridis")
            ax.set(xlabel=xlabel, ylabel=ylabel)
            fig.colorbar(mesh, ax=ax, label="MeV")
        ax1.set_title(f"{label}: one 50 GeV shower")
        fig.tight_layout()
        fig.savefig(out_dir / f"{name}_event.png", dpi=110)
        plt.close(fig)
    return numbers


def main(argv: Sequence[str] | None = None) -> int:
    """Make the validation plots.

    Example:
        python -m stream.showers.plots --out docs/img --showers 1000
    """
    parser = argparse.ArgumentParser(
        description="Validation plots of the parametric reference showers (ECAL photons, AHCAL pions).",
        epilog="example: python -m stream.showers.plots --out docs/img",
    )
    parser.add_argument("--out", default="docs/img", help="output directory for the PNG files")
    parser.add_argument("--showers", type=int, default=1000, help="showers per energy point (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    args = parser.parse_args(argv)
    numbers = make_plots(args.out, args.showers, args.seed)
    print(json.dumps(numbers, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
