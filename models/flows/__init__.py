"""Normalising flows trained online: the OnlineFlow ensemble and its parts.

Contract: :class:`OnlineFlowEnsemble` (kind ``"onlineflow"``) implements
:class:`models.protocol.OnlineModel`; :class:`BatchedMAF` is the batched MAF of all
members; :func:`made_masks` gives the MADE connectivity shared with nflows. Names are
imported lazily so that importing the package stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["BatchedMAF", "LogStandardizer", "MADEMasks", "OnlineFlowEnsemble", "made_masks"]

_WHERE = {
    "BatchedMAF": "models.flows.batched_maf",
    "LogStandardizer": "models.flows.preprocessing",
    "MADEMasks": "models.flows.made",
    "OnlineFlowEnsemble": "models.flows.ensemble",
    "made_masks": "models.flows.made",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    msg = f"module 'models.flows' has no attribute {name!r}"
    raise AttributeError(msg)
