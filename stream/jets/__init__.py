"""Jets for the dijet anomaly-detection stream: anti-kT clustering, masses, N-subjettiness.

Contract: every function takes flat particle arrays (massless ``pT`` in GeV, ``η``, ``φ``)
plus per-event counts, the layout both the Pythia generator
(:mod:`stream.generators.dijet`) and the LHC Olympics reader (:mod:`stream.readers.lhco`)
produce, so the two give the same features from the same particles. Clustering uses the
``fastjet`` package (optional extra ``dijet``), imported only when a function needs it;
N-subjettiness (arXiv 1011.2268) is computed here in numpy.
"""

from __future__ import annotations

from stream.jets.features import (
    DIJET_COLUMNS,
    DIJET_FEATURES,
    DIJET_UNITS,
    dijet_features,
    dijet_schema,
)
from stream.jets.kinematics import delta_phi, four_momenta, invariant_mass, rapidity
from stream.jets.nsubjettiness import n_subjettiness, tau_ratio

__all__ = [
    "DIJET_COLUMNS",
    "DIJET_FEATURES",
    "DIJET_UNITS",
    "delta_phi",
    "dijet_features",
    "dijet_schema",
    "four_momenta",
    "invariant_mass",
    "n_subjettiness",
    "rapidity",
    "tau_ratio",
]
