"""The five dijet features of the LHC Olympics anomaly searches, from particles to columns.

Both jets are the two highest-pT anti-kT jets (R = 1.0) of the event; of these two,
``j1`` is the heavier and ``j2`` the lighter (so ``delta_mj >= 0``; the ANODE/CATHODE
papers, arXiv 2001.04990 and 2109.00546, name them the other way round and use
``m_J2 − m_J1``, which is the same number). Columns:

* ``mjj`` (GeV): invariant mass of the two jets together;
* ``mj1`` (GeV): mass of the heavier jet;
* ``delta_mj`` (GeV): ``m_j1 − m_j2``;
* ``tau21_j1``, ``tau21_j2`` (dimensionless): N-subjettiness ratio τ2/τ1 (exclusive-kT
  axes, β = 1) of the heavier and of the lighter jet; 0 for a jet with one constituent;
* ``pt_lead`` (GeV): pT of the leading jet, the quantity the dijet trigger path cuts on
  (``pt_lead > 1200``); it is a column, not a cut, so the trigger menu decides;
* ``is_signal`` (truth flag 0/1): kept for evaluation only; a run configuration lists the
  five features as the model's ``columns``, so it never reaches training.

An event with a single jet has ``mj2 = 0``, ``tau21_j2 = 0`` and ``mjj`` the mass of that
jet; an event without particles has every feature 0.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from stream.jets.clustering import cluster_leading_jets, exclusive_kt_axes
from stream.jets.kinematics import four_momenta, invariant_mass, rapidity
from stream.jets.nsubjettiness import n_subjettiness, tau_ratio
from stream.schema import event_schema

__all__ = ["DIJET_COLUMNS", "DIJET_FEATURES", "DIJET_UNITS", "dijet_batch", "dijet_features", "dijet_schema"]

DIJET_FEATURES = ("mjj", "mj1", "delta_mj", "tau21_j1", "tau21_j2")
"""The five features a flow and the CWoLa classifier use (``mjj`` defines the signal region)."""
DIJET_COLUMNS = (*DIJET_FEATURES, "pt_lead", "is_signal")
"""Every feature column of a dijet event record, in order."""
DIJET_UNITS = {
    "mjj": "GeV",
    "mj1": "GeV",
    "delta_mj": "GeV",
    "tau21_j1": "dimensionless",
    "tau21_j2": "dimensionless",
    "pt_lead": "GeV",
    "is_signal": "truth flag (evaluation only)",
}


def dijet_schema() -> pa.Schema:
    """Event schema of a dijet stream (``event_id`` then :data:`DIJET_COLUMNS`, float32).

    Example:
        >>> dijet_schema().names[:3]
        ['event_id', 'mjj', 'mj1']
    """
    return event_schema(list(DIJET_COLUMNS), DIJET_UNITS)


def dijet_features(
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    counts: np.ndarray,
    radius: float = 1.0,
    beta: float = 1.0,
) -> dict[str, np.ndarray]:
    """Cluster events of massless particles and compute the dijet features.

    Args:
        pt: particle transverse momenta (GeV), flat over all events.
        eta: particle pseudorapidities.
        phi: particle azimuths (radians).
        counts: particles per event.
        radius: anti-kT radius R, also the N-subjettiness normalisation radius.
        beta: N-subjettiness angular exponent.

    Returns:
        ``{column: float64 array}`` for :data:`DIJET_FEATURES` and ``pt_lead``, one value
        per event.

    Raises:
        ValueError: if the particle arrays and ``counts`` disagree in length.
    """
    counts = np.asarray(counts, dtype=np.int64)
    pt = np.asarray(pt, dtype=np.float64)
    if not (pt.shape == np.shape(eta) == np.shape(phi)) or pt.ndim != 1 or int(counts.sum()) != pt.size:
        msg = (f"dijet_features: pt, eta, phi must be flat arrays of equal length summing to counts; "
               f"got shapes {pt.shape}, {np.shape(eta)}, {np.shape(phi)} and counts summing to {int(counts.sum())}")
        raise ValueError(msg)
    n_events = counts.size
    jets = cluster_leading_jets(*four_momenta(pt, eta, phi), counts, radius=radius, n_leading=2)
    masses = invariant_mass(jets.px, jets.py, jets.pz, jets.energy)
    mjj = invariant_mass(jets.px.sum(axis=1), jets.py.sum(axis=1), jets.pz.sum(axis=1), jets.energy.sum(axis=1))
    cpx, cpy, cpz, ce = jets.constituents
    c_pt, c_rap, c_phi = np.hypot(cpx, cpy), rapidity(cpz, ce), np.arctan2(cpy, cpx)
    axes = exclusive_kt_axes(cpx, cpy, cpz, ce, jets.jet_of, 2 * n_events, (1, 2))
    tau1 = n_subjettiness(c_pt, c_rap, c_phi, jets.jet_of, *axes[1], beta=beta, radius=radius)
    tau2 = n_subjettiness(c_pt, c_rap, c_phi, jets.jet_of, *axes[2], beta=beta, radius=radius)
    tau21 = tau_ratio(tau2, tau1).reshape(n_events, 2)
    swap = masses[:, 1] > masses[:, 0]
    heavy = np.where(swap, 1, 0)
    rows = np.arange(n_events)
    return {
        "mjj": mjj,
        "mj1": masses[rows, heavy],
        "delta_mj": np.abs(masses[:, 0] - masses[:, 1]),
        "tau21_j1": tau21[rows, heavy],
        "tau21_j2": tau21[rows, 1 - heavy],
        "pt_lead": np.hypot(jets.px[:, 0], jets.py[:, 0]),
    }


def dijet_batch(event_ids: np.ndarray, features: dict[str, np.ndarray], is_signal: np.ndarray) -> pa.RecordBatch:
    """A record batch of the dijet schema (features cast to float32, the wire type)."""
    schema = dijet_schema()
    arrays = [pa.array(np.asarray(event_ids, dtype=np.uint64))]
    for name in DIJET_COLUMNS:
        values = is_signal if name == "is_signal" else features[name]
        arrays.append(pa.array(np.asarray(values, dtype=np.float32)))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
