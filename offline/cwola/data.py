"""Inputs of the CWoLa search: signal region, flow samples, stored and labelled test events.

Features (:data:`stream.jets.DIJET_FEATURES`, masses in GeV): ``mjj`` selects the signal
region (SR, 3.3–3.7 TeV) and the sidebands (SB, everything outside); the classifier sees
the other four, ``mj1``, ``delta_mj``, ``tau21_j1``, ``tau21_j2``. Event files are Parquet
(one file, or a directory of parts read in name order, the stored events' layout); their
trigger selection ``pt_lead > 1200`` GeV is applied here too so the test events match
what the flow and the stored events saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from offline.cwola.errors import CwolaError
from offline.parquet import read_columns

__all__ = [
    "CLASSIFIER_FEATURES",
    "FEATURES",
    "EventSet",
    "SignalRegion",
    "flow_samples",
    "prescaled",
    "read_events",
]

FEATURES = ("mjj", "mj1", "delta_mj", "tau21_j1", "tau21_j2")
CLASSIFIER_FEATURES = FEATURES[1:]


@dataclass(frozen=True)
class SignalRegion:
    """An ``m_jj`` window (GeV): SR inside ``[low, high)``, sidebands outside.

    Example:
        >>> SignalRegion().contains(np.array([3200.0, 3300.0, 3699.0, 3700.0])).tolist()
        [False, True, True, False]
    """

    low: float = 3300.0
    high: float = 3700.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and 0 <= self.low < self.high):
            msg = f"signal region must satisfy 0 <= low < high, got [{self.low}, {self.high})"
            raise CwolaError(msg)

    def contains(self, mjj: np.ndarray) -> np.ndarray:
        """Boolean mask of events inside the SR."""
        return (mjj >= self.low) & (mjj < self.high)


@dataclass
class EventSet:
    """Events as a feature matrix: ``x`` (n, 5) in :data:`FEATURES` order, truth ``is_signal`` or None."""

    x: np.ndarray
    is_signal: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, mask: np.ndarray) -> EventSet:
        """The events where ``mask`` holds (a boolean mask or an index array)."""
        return EventSet(self.x[mask], None if self.is_signal is None else self.is_signal[mask])

    @property
    def mjj(self) -> np.ndarray:
        """``m_jj`` in GeV."""
        return self.x[:, 0]

    def classifier_inputs(self) -> np.ndarray:
        """The four classifier features (everything but ``mjj``)."""
        return self.x[:, 1:]


def read_events(
    path: str | Path, pt_lead_min: float | None = 1200.0, need_labels: bool = False
) -> EventSet:
    """Read the five features (and ``is_signal``) of a Parquet file or directory of parts.

    Args:
        path: file, or directory of ``*.parquet`` parts (read in name order).
        pt_lead_min: keep events with ``pt_lead`` above this (GeV) when the column exists;
            None keeps all.
        need_labels: raise if there is no ``is_signal`` column.

    Raises:
        CwolaError: missing path or parts, missing columns (named), unreadable file,
            non-finite features.
    """
    columns = read_columns(
        path, FEATURES, ("is_signal", "pt_lead"), what="events", error=CwolaError
    )
    if need_labels and "is_signal" not in columns:
        msg = f"events {str(path)!r} lack columns ['is_signal'] (columns: {sorted(columns)})"
        raise CwolaError(msg)
    n_rows = len(columns[FEATURES[0]])
    keep = np.ones(n_rows, dtype=bool)
    if pt_lead_min is not None and "pt_lead" in columns:
        keep &= columns["pt_lead"] > pt_lead_min
    x = np.column_stack([columns[c][keep] for c in FEATURES])
    if not np.all(np.isfinite(x)):
        msg = f"events {str(path)!r} hold NaN or infinite features"
        raise CwolaError(msg)
    labels = columns["is_signal"][keep] if "is_signal" in columns else None
    return EventSet(x, labels)


def flow_samples(model: Any, n: int, seed: int) -> tuple[EventSet, int]:
    """``n`` events sampled from a snapshot's model, spread over its members.

    Returns:
        ``(events, dropped)``: the finite samples and the number of non-finite ones dropped.

    Raises:
        CwolaError: the model does not produce the five features.
    """
    columns = list(getattr(model, "columns", FEATURES))
    missing = [c for c in FEATURES if c not in columns]
    if missing:
        msg = f"the snapshot's model does not model {missing} (its columns: {columns}); train it on {list(FEATURES)}"
        raise CwolaError(msg)
    members = int(getattr(model, "n_members", 1))
    per_member = -(-n // members)
    drawn = model.sample(per_member, seed=seed)
    x = np.column_stack(
        [drawn[c].detach().cpu().double().numpy().reshape(-1)[:n] for c in FEATURES]
    )
    finite = np.all(np.isfinite(x), axis=1)
    return EventSet(x[finite]), int((~finite).sum())


def prescaled(events: EventSet, factor: int) -> EventSet:
    """Every ``factor``-th event, as a trigger prescale keeps them (storage order).

    Example:
        >>> len(prescaled(EventSet(np.zeros((10, 5))), 3))
        4
    """
    if factor < 1:
        msg = f"prescale factor must be >= 1, got {factor}"
        raise CwolaError(msg)
    return events.take(np.arange(0, len(events), factor))
