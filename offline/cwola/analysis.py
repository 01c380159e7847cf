"""Every CWoLa training of the study and its summary: flow, data at prescales, references.

For each classifier seed:

* **flow**: flow samples labelled SR (1) vs SB (0), with separate flow samples for
  validation;
* **data at prescale k** (k = 1, 2, 5, 10, 20, i.e. 100 % ... 5 % of the stored events):
  every k-th stored event, SR vs SB, every 9th of them for validation (the 8 : 1 split of
  500 k : 62.5 k);
* **idealised**: SR events of the data vs an independent SR background sample (the
  stored SR background split in two halves by truth: one half with all SR signal is
  class 1, the other half class 0), the best a perfect background model gives;
* **supervised**: SR signal vs SR background by truth.

Each is scored on the labelled SR test events; max SIC is reported as mean ± standard
deviation over the seeds. The *matching prescale* is the smallest prescale factor k at
which the flow's mean max SIC is at least the data's: the flow is then worth the stored
events prescaled by k (paper: about 10).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from offline.cwola.classifier import ClassifierSettings, train_classifier
from offline.cwola.data import EventSet, SignalRegion, prescaled
from offline.cwola.errors import CwolaError
from offline.cwola.metrics import roc_curve, sic_curve

__all__ = ["CurveSet", "CwolaSettings", "fraction_key", "matching_prescale", "run_cwola", "split_validation"]

EPS_GRID = np.linspace(0.01, 1.0, 100)
"""Signal efficiencies at which curves of different seeds are averaged."""


@dataclass(frozen=True)
class CwolaSettings:
    """Sizes and choices of the study (defaults run on a laptop; see the CLI's ``--paper``).

    Attributes:
        region: the ``m_jj`` signal region (GeV).
        flow_samples: flow events for training (paper: 500 000).
        flow_val_samples: flow events for validation (paper: 62 500).
        prescales: prescale factors of the stored events compared.
        seeds: classifier seeds per training.
        classifier: network and optimiser settings.
        min_background: test background events that must pass a cut for its SIC to count.
        sample_seed: seed of the flow samples.
        references: also train the idealised and supervised references.
    """

    region: SignalRegion = field(default_factory=SignalRegion)
    flow_samples: int = 100_000
    flow_val_samples: int = 12_500
    prescales: tuple[int, ...] = (1, 2, 5, 10, 20)
    seeds: int = 3
    classifier: ClassifierSettings = field(default_factory=ClassifierSettings)
    min_background: int = 25
    sample_seed: int = 0
    references: bool = True

    def __post_init__(self) -> None:
        if self.flow_samples < 1 or self.flow_val_samples < 1 or self.seeds < 1 or self.min_background < 1:
            msg = f"flow_samples, flow_val_samples, seeds and min_background must be >= 1, got {self}"
            raise CwolaError(msg)
        if not self.prescales or any(k < 1 for k in self.prescales):
            msg = f"prescales must be integers >= 1, got {self.prescales}"
            raise CwolaError(msg)


def fraction_key(prescale: int) -> str:
    """The JSON key of a prescale factor: the fraction of events kept.

    Example:
        >>> [fraction_key(k) for k in (1, 2, 5, 10, 20)]
        ['1', '0.5', '0.2', '0.1', '0.05']
    """
    return f"{1.0 / prescale:g}"


def split_validation(events: EventSet, every: int = 9) -> tuple[EventSet, EventSet]:
    """``(training, validation)``: every ``every``-th event goes to validation.

    Example:
        >>> train, val = split_validation(EventSet(np.zeros((18, 5))))
        >>> len(train), len(val)
        (16, 2)
    """
    index = np.arange(len(events))
    return events.take(index % every != every - 1), events.take(index % every == every - 1)


@dataclass
class CurveSet:
    """ROC/SIC curves of one kind of training over seeds, on :data:`EPS_GRID`."""

    label: str
    max_sic: list[float] = field(default_factory=list)
    eps_b: list[np.ndarray] = field(default_factory=list)
    background_passing: list[np.ndarray] = field(default_factory=list)
    min_background: int = 1

    def add(self, scores: np.ndarray, labels: np.ndarray, min_background: int) -> float:
        """Score one seed; returns its max SIC."""
        eps_s, eps_b, count = roc_curve(scores, labels)
        sic = sic_curve(eps_s, eps_b)
        ok = count >= min_background
        best = float(sic[ok].max()) if ok.any() else 0.0
        self.max_sic.append(best)
        # eps_b as a function of eps_s (both non-decreasing along the curve).
        self.eps_b.append(np.interp(EPS_GRID, eps_s, eps_b))
        self.background_passing.append(np.interp(EPS_GRID, eps_s, count))
        self.min_background = min_background
        return best

    def summary(self) -> tuple[float, float]:
        """Mean and standard deviation (over seeds) of the max SIC."""
        values = np.array(self.max_sic)
        return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0

    def sic(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std over seeds of SIC on :data:`EPS_GRID`; NaN where fewer than
        ``min_background`` test background events pass (the curve is noise there)."""
        curves = np.array([sic_curve(EPS_GRID, b) for b in self.eps_b])
        enough = np.min(self.background_passing, axis=0) >= self.min_background
        return np.where(enough, curves.mean(axis=0), np.nan), np.where(enough, curves.std(axis=0), np.nan)

    def rejection(self) -> np.ndarray:
        """Background rejection ``1/ε_B`` on :data:`EPS_GRID` (from the seed-averaged ε_B);
        NaN where fewer than ``min_background`` test background events pass."""
        mean_b = np.mean(self.eps_b, axis=0)
        enough = np.min(self.background_passing, axis=0) >= self.min_background
        return np.divide(1.0, mean_b, out=np.full_like(mean_b, np.nan), where=(mean_b > 0) & enough)


def matching_prescale(flow: float, data: dict[int, float]) -> int | None:
    """Smallest prescale factor whose data max SIC the flow reaches (None: none).

    Example:
        >>> matching_prescale(8.0, {1: 12.0, 2: 10.0, 5: 7.5, 10: 5.0})
        5
        >>> matching_prescale(3.0, {1: 12.0, 2: 10.0}) is None
        True
    """
    for factor in sorted(data):
        if flow >= data[factor]:
            return factor
    return None


def _cwola_labels(events: EventSet, region: SignalRegion) -> tuple[np.ndarray, np.ndarray]:
    return events.classifier_inputs(), region.contains(events.mjj).astype(np.float64)


def _idealised(events: EventSet, region: SignalRegion) -> tuple[np.ndarray, np.ndarray]:
    sr = events.take(region.contains(events.mjj))
    assert sr.is_signal is not None
    background = np.flatnonzero(sr.is_signal < 0.5)
    data = np.r_[np.flatnonzero(sr.is_signal >= 0.5), background[0::2]]
    template = background[1::2]
    x = np.r_[sr.classifier_inputs()[data], sr.classifier_inputs()[template]]
    return x, np.r_[np.ones(data.size), np.zeros(template.size)]


def _supervised(events: EventSet, region: SignalRegion) -> tuple[np.ndarray, np.ndarray]:
    sr = events.take(region.contains(events.mjj))
    assert sr.is_signal is not None
    return sr.classifier_inputs(), (sr.is_signal >= 0.5).astype(np.float64)


def run_cwola(
    flow_train: EventSet,
    flow_val: EventSet,
    stored: EventSet,
    test: EventSet,
    settings: CwolaSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every training and return the summary (JSON-ready) and the curves.

    Args:
        flow_train, flow_val: flow samples for training and validation.
        stored: the stored (triggered) events, with truth for the references.
        test: labelled held-out events (SR events are used).
        settings: sizes and choices.
        progress: called with one line per finished training.

    Returns:
        ``{"summary": {...}, "curves": {label: CurveSet}}``.

    Raises:
        CwolaError: no signal or no background among the SR test events, empty classes.
    """
    settings = settings or CwolaSettings()
    region = settings.region
    if test.is_signal is None:
        msg = "the test events have no is_signal column; labelled events are needed for ROC curves"
        raise CwolaError(msg)
    test_sr = test.take(region.contains(test.mjj))
    assert test_sr.is_signal is not None
    n_sig, n_bkg = int((test_sr.is_signal >= 0.5).sum()), int((test_sr.is_signal < 0.5).sum())
    if n_sig == 0 or n_bkg == 0:
        msg = f"the SR test events need signal and background, got {n_sig} signal and {n_bkg} background"
        raise CwolaError(msg)
    begin = time.monotonic()
    train, val = split_validation(stored)
    jobs: dict[str, Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = {}

    def pair(events_train: EventSet, events_val: EventSet, how: Callable[[EventSet, SignalRegion], tuple[np.ndarray, np.ndarray]]) -> Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        return lambda: (*how(events_train, region), *how(events_val, region))

    jobs["flow"] = pair(flow_train, flow_val, _cwola_labels)
    for factor in settings.prescales:
        jobs[f"data_{factor}"] = pair(prescaled(train, factor), prescaled(val, factor), _cwola_labels)
    if settings.references and stored.is_signal is not None:
        jobs["idealised"] = pair(train, val, _idealised)
        jobs["supervised"] = pair(train, val, _supervised)
    curves: dict[str, CurveSet] = {}
    for name, make in jobs.items():
        x, y, x_val, y_val = make()
        curves[name] = CurveSet(name)
        for seed in range(settings.seeds):
            ensemble = train_classifier(x, y, x_val, y_val, settings.classifier, seed=seed)
            best = curves[name].add(ensemble.predict(test_sr.classifier_inputs()), test_sr.is_signal, settings.min_background)
            if progress is not None:
                progress(f"cwola: {name} seed {seed}: max SIC {best:.2f} ({len(y)} training events, "
                         f"{int(y.sum())} in class 1; {time.monotonic() - begin:.0f} s)")
    flow_mean, flow_std = curves["flow"].summary()
    data = {k: curves[f"data_{k}"].summary() for k in settings.prescales}
    summary: dict[str, Any] = {
        "max_sic_flow": flow_mean,
        "max_sic_flow_std": flow_std,
        "max_sic_data": {fraction_key(k): v[0] for k, v in data.items()},
        "max_sic_data_std": {fraction_key(k): v[1] for k, v in data.items()},
        "prescales": {fraction_key(k): k for k in settings.prescales},
        "matching_prescale": matching_prescale(flow_mean, {k: v[0] for k, v in data.items()}),
        "max_sic_per_seed": {name: c.max_sic for name, c in curves.items()},
        "signal_region_gev": [region.low, region.high],
        "events": {
            "flow_train": len(flow_train),
            "flow_validation": len(flow_val),
            "stored": len(stored),
            "stored_train": len(train),
            "stored_validation": len(val),
            "stored_sr": int(region.contains(stored.mjj).sum()),
            "test_sr_signal": n_sig,
            "test_sr_background": n_bkg,
        },
        "seeds": settings.seeds,
        "epochs": settings.classifier.epochs,
        "checkpoints": settings.classifier.checkpoints,
        "min_background": settings.min_background,
        "seconds": round(time.monotonic() - begin, 1),
    }
    if stored.is_signal is not None:
        sr = region.contains(stored.mjj)
        s = int((stored.is_signal[sr] >= 0.5).sum())
        summary["events"]["stored_sr_signal"] = s
        summary["stored_sr_s_over_b"] = s / max(int(sr.sum()) - s, 1)
    for name in ("idealised", "supervised"):
        if name in curves:
            mean, std = curves[name].summary()
            summary[f"max_sic_{name}"], summary[f"max_sic_{name}_std"] = mean, std
    for key, value in list(summary.items()):
        if isinstance(value, float) and not math.isfinite(value):
            summary[key] = None
    return {"summary": summary, "curves": curves}
