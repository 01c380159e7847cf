"""Bump hunt with OnlineFlow ensembles (arXiv 2202.09375) versus stored, prescaled data.

Contract: reads snapshots only through :func:`emulator.snapshot.load_snapshot` and samples
``model.sample(n, seed=...) -> {"mass": (n_members, n)}``; nothing here depends on how the
flow is built. The steps are separate modules, each usable alone:

* :mod:`~offline.bumphunt.histogram`: binning, chunked sampling into per-member histograms;
* :mod:`~offline.bumphunt.fit`: background fit α·exp(−βm + γm² + … + ζm⁵);
* :mod:`~offline.bumphunt.scan`: BumpHunter (numba; matches pyBumpHunter);
* :mod:`~offline.bumphunt.ensemble`: locate with one half, measure with the other;
* :mod:`~offline.bumphunt.significance`: the significance formulas, crossover prescale;
* :mod:`~offline.bumphunt.prescale`, :mod:`~offline.bumphunt.classical`,
  :mod:`~offline.bumphunt.data`: the classical comparison and the null sample;
* :mod:`~offline.bumphunt.refit`, :mod:`~offline.bumphunt.trials`: refitted
  pseudo-experiments and the toy-calibrated significance;
* :mod:`~offline.bumphunt.merge`: shards of one ensemble (of one data stream) versus a
  time series;
* :mod:`~offline.bumphunt.uncertainty`: S and δ_S of a snapshot under each δ option;
* :mod:`~offline.bumphunt.propose`: the window found as a trigger path for the next run;
* :mod:`~offline.bumphunt.analysis`, :mod:`~offline.bumphunt.plots`,
  :mod:`~offline.bumphunt.cli`: the whole analysis and ``python -m offline.bumphunt``.

Names are re-exported lazily so importing the package stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "BumpHuntError",
    "BumpHuntSettings",
    "MassBinning",
    "ScanConfig",
    "analyse",
    "bump_hunt",
    "crossover_prescale",
    "data_significance",
    "ensemble_bump_hunt",
    "ensemble_significance",
    "fit_background",
    "group_snapshots",
    "main",
    "prescale",
    "sample_member_histograms",
    "scan_histogram",
    "signal_estimates",
    "propose_trigger_path",
    "bump_hunt_refit",
    "uncertainty_options",
    "window_significance",
]

_HOME = {
    "BumpHuntError": "errors",
    "BumpHuntSettings": "analysis",
    "analyse": "analysis",
    "MassBinning": "histogram",
    "sample_member_histograms": "histogram",
    "ScanConfig": "scan",
    "bump_hunt": "scan",
    "scan_histogram": "scan",
    "crossover_prescale": "significance",
    "data_significance": "significance",
    "ensemble_significance": "significance",
    "ensemble_bump_hunt": "ensemble",
    "fit_background": "fit",
    "group_snapshots": "merge",
    "main": "cli",
    "prescale": "prescale",
    "signal_estimates": "uncertainty",
    "propose_trigger_path": "propose",
    "window_significance": "propose",
    "bump_hunt_refit": "scan",
    "uncertainty_options": "significance",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"offline.bumphunt.{_HOME[name]}"), name)
    msg = f"module 'offline.bumphunt' has no attribute {name!r}"
    raise AttributeError(msg)
