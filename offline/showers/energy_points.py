"""Response per incident-energy point: mu90, sigma90, linearity and relative width.

``mu90`` and ``sigma90`` are the mean and standard deviation of the central 90 % of a
distribution: values below the 5 % and above the 95 % quantile are discarded (robust
against the tails that leakage and dead material produce). ``method="smallest"`` uses the
narrowest interval that holds 90 % of the values instead (the CALICE "RMS90" convention).

Energy points are the distinct incident energies when a sample was generated at fixed
points (at most ``max_fixed_points`` distinct values); otherwise showers are grouped in
``bins`` log-spaced energy bins. In a bin the visible energy of each shower is first scaled
by ``mean_bin_energy / incident_energy``, so the spread of incident energies inside the bin
does not widen ``sigma90``.

Linearity is ``mu90 / E`` in MeV of visible energy per GeV of incident energy, the
relative width ``sigma90 / mu90``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EnergyPointSummary", "energy_point_edges", "energy_point_summary", "mu90_sigma90"]


def mu90_sigma90(
    values: np.ndarray, fraction: float = 0.9, method: str = "central"
) -> tuple[float, float]:
    """Mean and standard deviation of the central ``fraction`` of ``values``.

    Args:
        values: 1-D sample.
        fraction: kept fraction, in ``(0, 1]``.
        method: ``"central"`` (cut equal tails) or ``"smallest"`` (narrowest interval).

    Returns:
        ``(mu90, sigma90)``; ``(nan, nan)`` for an empty sample.

    Example:
        >>> mu, sigma = mu90_sigma90(np.arange(101.0))
        >>> round(mu, 6), round(sigma, 3)
        (50.0, 26.268)
    """
    if not 0 < fraction <= 1:
        msg = f"fraction must be in (0, 1], got {fraction!r}"
        raise ValueError(msg)
    x = np.sort(np.asarray(values, dtype=np.float64).reshape(-1))
    if x.size == 0:
        return float("nan"), float("nan")
    if method == "central":
        lo, hi = np.quantile(x, [(1 - fraction) / 2, 1 - (1 - fraction) / 2])
        kept = x[(x >= lo) & (x <= hi)]
    elif method == "smallest":
        k = max(1, int(np.ceil(fraction * x.size)))
        spans = x[k - 1 :] - x[: x.size - k + 1]
        start = int(np.argmin(spans))
        kept = x[start : start + k]
    else:
        msg = f"method must be 'central' or 'smallest', got {method!r}"
        raise ValueError(msg)
    return float(kept.mean()), float(kept.std())


@dataclass(frozen=True)
class EnergyPointSummary:
    """mu90/sigma90 per incident-energy point (all arrays ``(n_points,)``).

    Attributes:
        energy_gev: incident energy of the point (mean inside a bin).
        count: showers in the point.
        mu90: MeV.
        sigma90: MeV.
        mu90_error: statistical error ``sigma90 / sqrt(0.9 n)``.
        sigma90_error: statistical error ``sigma90 / sqrt(2 * 0.9 n)``.
    """

    energy_gev: np.ndarray
    count: np.ndarray
    mu90: np.ndarray
    sigma90: np.ndarray
    mu90_error: np.ndarray
    sigma90_error: np.ndarray

    @property
    def linearity(self) -> np.ndarray:
        """``mu90 / E`` in MeV per GeV."""
        return self.mu90 / self.energy_gev

    @property
    def linearity_error(self) -> np.ndarray:
        """Statistical error of :attr:`linearity`."""
        return self.mu90_error / self.energy_gev

    @property
    def relative_width(self) -> np.ndarray:
        """``sigma90 / mu90``."""
        return self.sigma90 / self.mu90

    @property
    def relative_width_error(self) -> np.ndarray:
        """Statistical error of :attr:`relative_width` (uncorrelated propagation)."""
        rel = self.relative_width
        return rel * np.hypot(self.sigma90_error / self.sigma90, self.mu90_error / self.mu90)

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-ready columns."""
        return {
            "energy_gev": self.energy_gev.tolist(),
            "count": self.count.tolist(),
            "mu90": self.mu90.tolist(),
            "sigma90": self.sigma90.tolist(),
            "linearity": self.linearity.tolist(),
            "relative_width": self.relative_width.tolist(),
        }


def energy_point_edges(
    incident_gev: np.ndarray, bins: int | np.ndarray = 10, max_fixed_points: int = 20
) -> np.ndarray | None:
    """Bin edges to group ``incident_gev``, or ``None`` when it holds few distinct energies.

    Pass the *reference* energies so generated and reference samples share the points.
    """
    energies = np.asarray(incident_gev, dtype=np.float64).reshape(-1)
    if np.unique(energies).size <= max_fixed_points:
        return None
    if isinstance(bins, int | np.integer):
        lo, hi = float(energies.min()), float(energies.max())
        if lo > 0:
            edges = np.geomspace(lo, hi, int(bins) + 1)
        else:
            edges = np.linspace(lo, hi, int(bins) + 1)
        edges[-1] = np.nextafter(hi, np.inf)
        return edges
    return np.asarray(bins, dtype=np.float64)


def energy_point_summary(
    incident_gev: np.ndarray,
    visible_mev: np.ndarray,
    *,
    edges: np.ndarray | None = None,
    points: np.ndarray | None = None,
    min_count: int = 10,
    method: str = "central",
) -> EnergyPointSummary:
    """mu90/sigma90 of the visible energy per energy point.

    Args:
        incident_gev: ``(N,)`` incident energies.
        visible_mev: ``(N,)`` visible energies.
        edges: bin edges (from :func:`energy_point_edges`); ``None`` groups by exact value.
        points: fixed energies to report when ``edges`` is ``None`` (default: the distinct
            values of ``incident_gev``).
        min_count: points with fewer showers are reported with NaN.
        method: passed to :func:`mu90_sigma90`.

    Returns:
        The summary, one entry per point or bin.

    Raises:
        ValueError: when the two arrays differ in length.
    """
    inc = np.asarray(incident_gev, dtype=np.float64).reshape(-1)
    vis = np.asarray(visible_mev, dtype=np.float64).reshape(-1)
    if inc.shape != vis.shape:
        msg = f"incident_gev has {inc.size} entries but visible_mev has {vis.size}"
        raise ValueError(msg)
    groups: list[tuple[float, np.ndarray]] = []
    if edges is None:
        values = np.unique(inc) if points is None else np.asarray(points, dtype=np.float64)
        for e in values:
            groups.append((float(e), vis[np.isclose(inc, e, rtol=1e-6, atol=0.0)]))
    else:
        which = np.digitize(inc, edges) - 1
        for b in range(len(edges) - 1):
            sel = which == b
            mean_e = (
                float(inc[sel].mean())
                if sel.any()
                else float(
                    np.sqrt(edges[b] * edges[b + 1])
                    if edges[b] > 0
                    else 0.5 * (edges[b] + edges[b + 1])
                )
            )
            scaled = vis[sel] * (mean_e / inc[sel]) if sel.any() else vis[sel]
            groups.append((mean_e, scaled))
    energy = np.array([g[0] for g in groups])
    count = np.array([g[1].size for g in groups], dtype=np.int64)
    mu = np.full(len(groups), np.nan)
    sigma = np.full(len(groups), np.nan)
    for k, (_, sample) in enumerate(groups):
        if sample.size >= min_count:
            mu[k], sigma[k] = mu90_sigma90(sample, method=method)
    kept = np.maximum(0.9 * count, 1.0)
    return EnergyPointSummary(
        energy_gev=energy,
        count=count,
        mu90=mu,
        sigma90=sigma,
        mu90_error=sigma / np.sqrt(kept),
        sigma90_error=sigma / np.sqrt(2.0 * kept),
    )
