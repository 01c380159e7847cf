"""Layer flow and per-layer shower flows with fast IAF students (arXiv 2302.11594, 2110.11377).

Contract: :class:`LayerShowerFlow` (kind ``"layerflow"``) implements
:class:`models.protocol.OnlineModel` on sparse shower buffers (:mod:`models.shower_data`);
it imports nothing from ``stream`` or ``emulator``. Its settings are
:class:`ShowerFlowConfig`. ``LayerShowerFlow.sample(n, seed=..., condition=
{"incident_energy": ...}, student=False | True)`` returns showers in MeV on the modelled
window (``sample_shape``, 30 × 10 × 10 by default), each layer summing to the layer
flow's energy. One idea per module: ``conditional_maf`` (member-batched conditional
MAF/IAF), ``preprocessing`` (dequantisation, logs, standardisation, contexts),
``config``, ``model``. Names are imported lazily so importing the package stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["STAGES", "ConditionalMAF", "LayerShowerFlow", "ShowerFlowConfig", "ShowerPreprocessor"]

_WHERE = {
    "STAGES": "models.showerflow.model",
    "ConditionalMAF": "models.showerflow.conditional_maf",
    "LayerShowerFlow": "models.showerflow.model",
    "ShowerFlowConfig": "models.showerflow.config",
    "ShowerPreprocessor": "models.showerflow.preprocessing",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    msg = f"module 'models.showerflow' has no attribute {name!r}"
    raise AttributeError(msg)
