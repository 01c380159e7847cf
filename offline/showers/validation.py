"""Compare a generated shower sample with a reference sample: every metric in one call.

:func:`compare_summaries` takes two :class:`~offline.showers.summary.ShowerSummary`
objects (same incident energies, same geometry) and returns a :class:`ValidationResult`
holding the histograms on common binning, the Jensen-Shannon distance of each and S_JSD
(single-model reduction, see :mod:`offline.showers.jsd`), the correlation matrices, the
mu90/sigma90 points, the classifier tests (high-level features, and cells if asked) and
FPD/KPD on the high-level features. :meth:`ValidationResult.metrics` is what
``metrics.json`` holds.

Histograms compared (each named in ``jsd``): every scalar observable; ``longitudinal_profile``
and ``radial_profile`` (energy-weighted distributions of layer and ring, all showers);
``hit_energy`` (pooled cell spectrum, log bins, cropped to the reference's range with
out-of-range entries in the edge bins).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from offline.showers.classifier import ClassifierConfig, ClassifierResult, classifier_test
from offline.showers.correlations import CorrelationComparison, compare_correlations
from offline.showers.energy_points import (
    EnergyPointSummary,
    energy_point_edges,
    energy_point_summary,
)
from offline.showers.features import cell_features, high_level_features
from offline.showers.jsd import HistogramPair, s_jsd
from offline.showers.physics_distances import PhysicsDistance, fpd, kpd
from offline.showers.summary import ShowerSummary

__all__ = ["ValidationResult", "ValidationSettings", "compare_summaries", "hit_energy_pair"]

_LOG_BINNED = {"visible_energy", "n_hits"}


@dataclass(frozen=True)
class ValidationSettings:
    """What to compute and how.

    Attributes:
        n_bins: bins per observable histogram.
        classifier: settings of the high-level classifier.
        cell_classifier: also run the classifier on cells (slow for big grids).
        cell_classifier_config: its settings.
        cell_classifier_max: showers per class for the cell classifier.
        physics_distances: compute FPD and KPD.
        kpd_batches: KPD batches.
        kpd_batch_size: KPD batch size.
        progress: tqdm bars on stderr.
    """

    n_bins: int = 50
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    cell_classifier: bool = False
    cell_classifier_config: ClassifierConfig = field(
        default_factory=lambda: ClassifierConfig(
            hidden=(512, 512, 512), learning_rate=2e-4, n_runs=3, patience=4, epochs=30
        )
    )
    cell_classifier_max: int = 2000
    physics_distances: bool = True
    kpd_batches: int = 10
    kpd_batch_size: int = 2000
    progress: bool = False


@dataclass
class ValidationResult:
    """Everything :func:`compare_summaries` measured (see the module docstring)."""

    histograms: dict[str, HistogramPair]
    jsd: dict[str, float]
    s_jsd: float
    correlations: CorrelationComparison
    reference_points: EnergyPointSummary
    generated_points: EnergyPointSummary
    classifier: ClassifierResult | None
    cell_classifier: ClassifierResult | None
    fpd: PhysicsDistance | None
    kpd: PhysicsDistance | None
    extra: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """JSON-ready metrics (the content of ``metrics.json`` without timing)."""
        out: dict[str, Any] = {
            "s_jsd": self.s_jsd,
            "s_jsd_definition": "mean over observables of the JSD (single compared model: normalisers = 1)",
            "jsd": dict(self.jsd),
            "correlation_difference": {
                "max_abs": self.correlations.max_abs_difference,
                "mean_abs_offdiagonal": self.correlations.mean_abs_difference,
                "constant_observables": self.correlations.constant,
            },
            "energy_points": {
                "reference": self.reference_points.to_dict(),
                "generated": self.generated_points.to_dict(),
            },
        }
        if self.classifier is not None:
            out["classifier_auc"] = {
                "mean": self.classifier.auc_mean,
                "std": self.classifier.auc_std,
            }
            out["classifier_jsd"] = {
                "mean": self.classifier.jsd_mean,
                "std": self.classifier.jsd_std,
            }
            out["classifier"] = self.classifier.to_dict()
        if self.cell_classifier is not None:
            out["cell_classifier_auc"] = {
                "mean": self.cell_classifier.auc_mean,
                "std": self.cell_classifier.auc_std,
            }
            out["cell_classifier_jsd"] = {
                "mean": self.cell_classifier.jsd_mean,
                "std": self.cell_classifier.jsd_std,
            }
            out["cell_classifier"] = self.cell_classifier.to_dict()
        if self.fpd is not None or self.kpd is not None:
            out["fpd_kpd_implementation"] = (
                "offline.showers.physics_distances (arXiv:2211.10295, follows jetnet.evaluation.fpd/kpd; "
                "jetnet itself is not installed: it would downgrade numpy)"
            )
        if self.fpd is not None:
            out["fpd"] = self.fpd.to_dict()
        if self.kpd is not None:
            out["kpd"] = self.kpd.to_dict()
        out.update(self.extra)
        return out


def hit_energy_pair(reference: ShowerSummary, generated: ShowerSummary) -> HistogramPair:
    """Pooled hit spectra on the reference's fine edges, cropped to its occupied range."""
    if not np.array_equal(reference.hit_edges, generated.hit_edges):
        msg = "the two summaries used different hit-energy edges (different thresholds?)"
        raise ValueError(msg)
    ref, gen, edges = reference.hit_counts, generated.hit_counts, reference.hit_edges
    occupied = np.flatnonzero(ref > 0)
    if occupied.size == 0:
        msg = "the reference sample has no hit above threshold"
        raise ValueError(msg)
    lo, hi = int(occupied[0]), int(occupied[-1]) + 1
    gen_cropped = gen[lo:hi].copy()
    gen_cropped[0] += gen[:lo].sum()
    gen_cropped[-1] += gen[hi:].sum()
    return HistogramPair(edges[lo : hi + 1], ref[lo:hi].copy(), gen_cropped)


def _profile_pair(
    ref_profile: np.ndarray, gen_profile: np.ndarray, width: float = 1.0
) -> HistogramPair:
    edges = np.arange(ref_profile.shape[1] + 1, dtype=np.float64) * width
    return HistogramPair(edges, ref_profile.sum(axis=0), gen_profile.sum(axis=0))


def compare_summaries(
    reference: ShowerSummary, generated: ShowerSummary, settings: ValidationSettings | None = None
) -> ValidationResult:
    """Compute every validation metric of ``generated`` against ``reference``.

    Raises:
        ValueError: different grids or thresholds.
    """
    cfg = settings or ValidationSettings()
    if reference.grid_shape != generated.grid_shape:
        msg = f"reference grid {reference.grid_shape} differs from generated grid {generated.grid_shape}"
        raise ValueError(msg)
    if reference.threshold_mev != generated.threshold_mev:
        msg = f"thresholds differ: {reference.threshold_mev} and {generated.threshold_mev} MeV"
        raise ValueError(msg)
    ref_obs, gen_obs = reference.observables, generated.observables
    ref_scalars, gen_scalars = ref_obs.scalars(), gen_obs.scalars()

    histograms: dict[str, HistogramPair] = {}
    for name in ref_scalars:
        log = name in _LOG_BINNED and bool(np.all(ref_scalars[name] > 0))
        histograms[name] = HistogramPair.from_samples(
            ref_scalars[name], gen_scalars[name], cfg.n_bins, log=log
        )
    histograms["longitudinal_profile"] = _profile_pair(
        ref_obs.longitudinal_profile, gen_obs.longitudinal_profile
    )
    histograms["radial_profile"] = _profile_pair(
        ref_obs.radial_profile, gen_obs.radial_profile, ref_obs.radial_bin_width
    )
    histograms["hit_energy"] = hit_energy_pair(reference, generated)
    jsd = {name: pair.distance for name, pair in histograms.items()}

    edges = energy_point_edges(reference.energies)
    points = None if edges is not None else np.unique(reference.energies)
    ref_points = energy_point_summary(
        reference.energies, ref_obs.visible_energy, edges=edges, points=points
    )
    gen_points = energy_point_summary(
        generated.energies, gen_obs.visible_energy, edges=edges, points=points
    )

    correlations = compare_correlations(ref_scalars, gen_scalars)

    threshold = reference.threshold_mev
    ref_hl = high_level_features(ref_obs, reference.energies, threshold)
    gen_hl = high_level_features(gen_obs, generated.energies, threshold)
    clf = classifier_test(
        ref_hl, gen_hl, cfg.classifier, progress=cfg.progress, label="classifier (high-level)"
    )
    cell_clf = None
    if cfg.cell_classifier:
        k = min(cfg.cell_classifier_max, len(reference.kept), len(generated.kept))
        ref_cells = cell_features(reference.kept[:k], reference.energies[:k], threshold)
        gen_cells = cell_features(generated.kept[:k], generated.energies[:k], threshold)
        cell_clf = classifier_test(
            ref_cells,
            gen_cells,
            cfg.cell_classifier_config,
            progress=cfg.progress,
            label="classifier (cells)",
        )

    fpd_value = kpd_value = None
    if cfg.physics_distances:
        ref_pd = high_level_features(ref_obs, reference.energies, threshold, include_profile=False)
        gen_pd = high_level_features(gen_obs, generated.energies, threshold, include_profile=False)
        fpd_value = fpd(ref_pd, gen_pd)
        kpd_value = kpd(ref_pd, gen_pd, num_batches=cfg.kpd_batches, batch_size=cfg.kpd_batch_size)

    return ValidationResult(
        histograms=histograms,
        jsd=jsd,
        s_jsd=s_jsd(jsd),
        correlations=correlations,
        reference_points=ref_points,
        generated_points=gen_points,
        classifier=clf,
        cell_classifier=cell_clf,
        fpd=fpd_value,
        kpd=kpd_value,
    )
