"""Weakly supervised dijet search (CWoLa hunting) on OnlineFlow samples vs prescaled data.

"Classification without labels" (Metodiev, Nachman, Thaler, arXiv 1708.02949; CWoLa
hunting, Collins, Howe, Nachman, arXiv 1805.02664): a classifier trained to tell events in
a signal region of ``m_jj`` (3.3–3.7 TeV) from those in the sidebands learns whatever the
signal region has in excess. "Ephemeral Learning" (arXiv 2202.09375, section 9.3) trains
it on samples of a flow trained online on every triggered event and compares with the
same search on the stored events at prescale factors 1, 2, 5, 10, 20.

Contract: reads snapshots only through :func:`emulator.snapshot.load_snapshot` and samples
``model.sample(n, seed=...) -> {column: (n_members, n)}``; labelled test events come from
Parquet files. The steps are separate modules:

* :mod:`~offline.cwola.data`: signal region, flow samples, stored and test events;
* :mod:`~offline.cwola.classifier`: the 3×64 dense classifier and its checkpoint ensemble;
* :mod:`~offline.cwola.metrics`: ROC, SIC and max SIC;
* :mod:`~offline.cwola.analysis`: every training (flow, data at each prescale,
  idealised, supervised) over classifier seeds, and the matching prescale;
* :mod:`~offline.cwola.plots`, :mod:`~offline.cwola.cli`: PNGs and ``python -m offline.cwola``.

Names are re-exported lazily so importing the package stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ClassifierSettings",
    "CwolaError",
    "CwolaSettings",
    "SignalRegion",
    "main",
    "matching_prescale",
    "max_sic",
    "roc_curve",
    "run_cwola",
    "train_classifier",
]

_HOME = {
    "ClassifierSettings": "classifier",
    "train_classifier": "classifier",
    "CwolaError": "errors",
    "CwolaSettings": "analysis",
    "run_cwola": "analysis",
    "matching_prescale": "analysis",
    "SignalRegion": "data",
    "max_sic": "metrics",
    "roc_curve": "metrics",
    "main": "cli",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"offline.cwola.{_HOME[name]}"), name)
    msg = f"module 'offline.cwola' has no attribute {name!r}"
    raise AttributeError(msg)
