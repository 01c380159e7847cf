"""The ensemble bump hunt of arXiv 2202.09375 on per-member histograms.

1. The first half of the members (``members[: N//2]``) locates the window: their summed
   sample histogram is fitted with the background shape and scanned with BumpHunter.
2. The second half (``members[N//2 :]``) measures it: for each member, O_i is its count in
   the window and B_i its own background fit integrated over the window.
3. Counts are normalised to real events: a member's histogram of ``n_samples`` draws is
   multiplied by ``n_events / n_samples``, where ``n_events`` is the number of events the
   model was trained on (see :func:`offline.bumphunt.analysis.training_events`). The
   sample size is arbitrary; only this normalisation gives counts comparable with data.
4. :func:`offline.bumphunt.significance.ensemble_significance` combines O_i and B_i.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offline.bumphunt.errors import BumpHuntError
from offline.bumphunt.fit import BackgroundFit, fit_background
from offline.bumphunt.histogram import MemberHistograms
from offline.bumphunt.scan import BumpHuntResult, ScanConfig, bump_hunt
from offline.bumphunt.significance import EnsembleSignificance, ensemble_significance

__all__ = ["EnsembleBumpHunt", "ensemble_bump_hunt"]

MIN_MEMBERS = 3


@dataclass
class EnsembleBumpHunt:
    """Result of :func:`ensemble_bump_hunt`.

    Attributes:
        locate: BumpHunter result of the first half (sample units).
        locate_fit: background fit to the first half's summed histogram.
        window_bins: ``(low_bin, high_bin)`` of the window.
        window: ``(low, high)`` in mass units.
        observed: O_i of the measuring members (events).
        background: B_i of the measuring members (events).
        significance: combined O, B, errors and significance.
        scale: events per sample (``n_events / n_samples``).
        mean_counts: mean member histogram in events (for plots).
        std_counts: standard deviation over members per bin, in events.
        total_fit: background fit to the summed histogram of all members (sample units).
        jackknife_std: leave-one-member-out spread of the significance (measuring half).
    """

    locate: BumpHuntResult
    locate_fit: BackgroundFit
    window_bins: tuple[int, int]
    window: tuple[float, float]
    observed: np.ndarray
    background: np.ndarray
    significance: EnsembleSignificance
    scale: float
    mean_counts: np.ndarray
    std_counts: np.ndarray
    total_fit: BackgroundFit
    jackknife_std: float


def ensemble_bump_hunt(
    histograms: MemberHistograms,
    n_events: float,
    *,
    scan: ScanConfig | None = None,
    n_pseudo: int = 1000,
    seed: int = 0,
    fit_order: int = 5,
) -> EnsembleBumpHunt:
    """Locate with the first half of the members, measure with the second half.

    Args:
        histograms: per-member sample histograms.
        n_events: events the model stands for (training population).
        scan: window settings.
        n_pseudo: pseudo-experiments for the global p-value of the locating scan.
        seed: seed of those pseudo-experiments.
        fit_order: polynomial order of the background exponent.

    Raises:
        BumpHuntError: fewer than three members, or no events.
    """
    counts = histograms.counts
    n = histograms.n_members
    if n < MIN_MEMBERS:
        msg = f"ensemble bump hunt needs at least {MIN_MEMBERS} members (one to locate, two to measure), got {n}"
        raise BumpHuntError(msg)
    if not n_events > 0:
        msg = f"ensemble bump hunt needs a positive number of events to normalise to, got {n_events!r}"
        raise BumpHuntError(msg)
    edges = histograms.binning.edges
    scale = float(n_events) / histograms.samples_per_member
    half = n // 2
    locating = counts[:half].sum(axis=0)
    locate_fit = fit_background(locating, edges, fit_order)
    locate = bump_hunt(locating, locate_fit.expected, scan, n_pseudo=n_pseudo, seed=seed)
    low, high = locate.scan.low_bin, locate.scan.high_bin
    observed = []
    background = []
    for member in counts[half:]:
        member_fit = fit_background(member, edges, fit_order)
        observed.append(member[low:high].sum() * scale)
        background.append(member_fit.window_count(low, high) * scale)
    o, b = np.array(observed), np.array(background)
    result = ensemble_significance(o, b, n)
    jack = (
        [
            ensemble_significance(np.delete(o, i), np.delete(b, i), n).significance
            for i in range(o.size)
        ]
        if o.size > 2
        else []
    )
    jackknife_std = float(np.sqrt((len(jack) - 1) * np.var(jack))) if jack else float("nan")
    scaled = counts * scale
    return EnsembleBumpHunt(
        locate=locate,
        locate_fit=locate_fit,
        window_bins=(low, high),
        window=(float(edges[low]), float(edges[high])),
        observed=o,
        background=b,
        significance=result,
        scale=scale,
        mean_counts=scaled.mean(axis=0),
        std_counts=scaled.std(axis=0, ddof=1),
        total_fit=fit_background(counts.sum(axis=0), edges, fit_order),
        jackknife_std=jackknife_std,
    )
