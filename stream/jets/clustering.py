"""Anti-kT jets and exclusive-kT subjet axes, through the ``fastjet`` package.

Many events are clustered in one call (FastJet's awkward-array interface, one C++ loop),
which is what makes clustering in Python affordable: a few thousand LHCO-sized events
per second on one core. Jets use the E-scheme (four-vectors add). ``fastjet`` is an
optional dependency (extra ``dijet``); it is imported on first use, with its banner
silenced so command-line tools can print clean JSON.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream.jets.kinematics import rapidity

__all__ = ["LeadingJets", "cluster_leading_jets", "exclusive_kt_axes"]

_MAX_R = 1000.0
"""FastJet's largest allowed R: exclusive kT with it never merges with the beam."""

_state: dict[str, Any] = {}


def _modules() -> tuple[Any, Any]:
    """``(fastjet, awkward)``, imported once, banner silenced."""
    if "fastjet" not in _state:
        try:
            import awkward
            import fastjet
            import fastjet._swig
        except ImportError as err:  # pragma: no cover - depends on the installation
            msg = "jet clustering needs the 'fastjet' package: pip install 'trigger-emulator[dijet]'"
            raise ImportError(msg) from err
        fastjet._swig.ClusterSequence.set_fastjet_banner_stream(None)
        _state["fastjet"], _state["awkward"] = fastjet, awkward
    return _state["fastjet"], _state["awkward"]


@dataclass(frozen=True)
class LeadingJets:
    """The ``n_leading`` highest-pT jets of each event and their constituents.

    Attributes:
        px, py, pz, energy: jet four-momenta (GeV), shape ``(n_events, n_leading)``,
            zero where an event has fewer jets.
        n_jets: number of jets per event (all of them, not only the leading ones).
        constituents: ``(px, py, pz, E)`` of the leading jets' constituents, flat.
        jet_of: flat jet index ``event * n_leading + slot`` of every constituent.
    """

    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    energy: np.ndarray
    n_jets: np.ndarray
    constituents: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    jet_of: np.ndarray

    @property
    def n_leading(self) -> int:
        """Jets kept per event."""
        return int(self.px.shape[1])


def _events(awkward: Any, counts: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray, energy: np.ndarray) -> Any:
    columns = {"px": px, "py": py, "pz": pz, "E": energy}
    return awkward.zip({k: awkward.unflatten(np.ascontiguousarray(v, dtype=np.float64), counts) for k, v in columns.items()})


def cluster_leading_jets(
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    energy: np.ndarray,
    counts: np.ndarray,
    radius: float = 1.0,
    n_leading: int = 2,
) -> LeadingJets:
    """Cluster every event with anti-kT (arXiv 0802.1189) and keep the leading jets.

    Args:
        px, py, pz, energy: particle four-momenta (GeV), flat over all events.
        counts: particles per event (sums to the length of the flat arrays).
        radius: jet radius R.
        n_leading: jets kept per event, by decreasing pT.

    Returns:
        The leading jets and their constituents (:class:`LeadingJets`).
    """
    fastjet, ak = _modules()
    counts = np.asarray(counts, dtype=np.int64)
    n_events = counts.size
    shape = (n_events, n_leading)
    if n_events == 0:
        empty = np.zeros(0)
        zeros = np.zeros(shape)
        return LeadingJets(zeros, zeros, zeros, zeros, np.zeros(0, np.int64), (empty, empty, empty, empty), np.zeros(0, np.int64))
    sequence = fastjet.ClusterSequence(_events(ak, counts, px, py, pz, energy), fastjet.JetDefinition(fastjet.antikt_algorithm, radius))
    jets = sequence.inclusive_jets()
    constituents = sequence.constituents()
    order = ak.argsort(np.hypot(jets.px, jets.py), axis=1, ascending=False)
    n_jets = ak.to_numpy(ak.num(jets, axis=1)).astype(np.int64)
    jets = jets[order][:, :n_leading]
    constituents = constituents[order][:, :n_leading]
    arrays = []
    for field in ("px", "py", "pz", "E"):
        padded = ak.fill_none(ak.pad_none(jets[field], n_leading, axis=1, clip=True), 0.0)
        arrays.append(ak.to_numpy(padded).astype(np.float64).reshape(shape))
    kept = ak.to_numpy(ak.num(jets, axis=1)).astype(np.int64)
    slot = np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept)
    jet_ids = np.repeat(np.arange(n_events), kept) * n_leading + slot
    per_jet = ak.to_numpy(ak.flatten(ak.num(constituents, axis=2))).astype(np.int64)
    cpx, cpy, cpz, ce = (ak.to_numpy(ak.flatten(constituents[f], axis=None)).astype(np.float64) for f in ("px", "py", "pz", "E"))
    return LeadingJets(arrays[0], arrays[1], arrays[2], arrays[3], n_jets, (cpx, cpy, cpz, ce), np.repeat(jet_ids, per_jet))


def exclusive_kt_axes(
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    energy: np.ndarray,
    jet_of: np.ndarray,
    n_jets: int,
    n_axes: tuple[int, ...] = (1, 2),
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Exclusive-kT subjet axes of every jet (the axes of N-subjettiness, arXiv 1011.2268).

    Each jet's constituents are reclustered with the kT algorithm at FastJet's largest R
    (no beam distance) and the clustering is undone until ``N`` subjets remain.

    Args:
        px, py, pz, energy: constituent four-momenta (GeV), flat, grouped by jet
            (``jet_of`` non-decreasing).
        jet_of: jet index of each constituent, in ``[0, n_jets)``.
        n_jets: number of jet slots (slots without constituents get NaN axes).
        n_axes: the ``N`` values wanted.

    Returns:
        ``{N: (rapidity, phi)}``, arrays of shape ``(n_jets, N)``; NaN where a jet has
        fewer than ``N`` constituents.
    """
    fastjet, ak = _modules()
    jet_of = np.asarray(jet_of, dtype=np.int64)
    if jet_of.size and np.any(np.diff(jet_of) < 0):
        msg = "exclusive_kt_axes: constituents must be grouped by jet (jet_of non-decreasing)"
        raise ValueError(msg)
    present, per_jet = np.unique(jet_of, return_counts=True)
    result = {n: (np.full((n_jets, n), np.nan), np.full((n_jets, n), np.nan)) for n in n_axes}
    if present.size == 0:
        return result
    sequence = fastjet.ClusterSequence(_events(ak, per_jet, px, py, pz, energy), fastjet.JetDefinition(fastjet.kt_algorithm, _MAX_R))
    for n in n_axes:
        with warnings.catch_warnings():
            # fastjet 3.5 compares the JetDefinition with algorithm enums and so warns
            # about "jet-finders other than kt" even for kT itself.
            warnings.filterwarnings("ignore", message="dcut and exclusive jets", category=UserWarning)
            axes = sequence.exclusive_jets_up_to(n)
        got = ak.to_numpy(ak.num(axes, axis=1)).astype(np.int64)
        flat = {f: ak.to_numpy(ak.flatten(axes[f])).astype(np.float64) for f in ("px", "py", "pz", "E")}
        rows = np.repeat(present, got)
        cols = np.arange(got.sum()) - np.repeat(np.cumsum(got) - got, got)
        rap, phi = result[n]
        rap[rows, cols] = rapidity(flat["pz"], flat["E"])
        phi[rows, cols] = np.arctan2(flat["py"], flat["px"])
    return result
