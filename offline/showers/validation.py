"""Compare a generated shower sample with a reference sample: every metric in one call.

:func:`compare_summaries` takes two :class:`~offline.showers.summary.ShowerSummary`
objects (same incident energies, same geometry) and returns a :class:`ValidationResult`
holding the histograms on common binning, the Jensen-Shannon distance of each and S_JSD
(single-model reduction, see :mod:`offline.showers.jsd`), their statistical floors
(:mod:`offline.showers.floors`), the correlation matrices, the mu90/sigma90 points of the
calibrated (layer-weighted) visible energy with the narrowest-90 % window (RMS90), the
classifier tests (high-level features, and cells if asked) and FPD/KPD on the high-level
features (paired samples, see :mod:`offline.showers.physics_distances`).
:meth:`ValidationResult.metrics` is what ``metrics.json`` holds; its ``floors`` entry holds
the reference-vs-reference value of every JSD, of S_JSD and of the classifier AUC and JSD
at the same sample size.

Histograms compared (each named in ``jsd``): every scalar observable; ``longitudinal_profile``
and ``radial_profile`` (energy-weighted distributions of layer and ring, all showers);
``hit_energy`` (pooled cell spectrum, log bins, cropped to the reference's range with
out-of-range entries in the edge bins).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from offline.showers.auc_error import null_auc_error
from offline.showers.classifier import ClassifierConfig, ClassifierResult, classifier_test
from offline.showers.correlations import CorrelationComparison, compare_correlations
from offline.showers.energy_points import (
    EnergyPointSummary,
    energy_point_edges,
    energy_point_summary,
)
from offline.showers.features import cell_features, high_level_features
from offline.showers.floors import JSDFloors, jsd_floors
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
        kpd_batch_size: KPD batch size (arXiv:2211.10295: 5000; capped at half the pairs).
        fpd_bootstrap: bootstrap replicas for the FPD error.
        paired: generated shower ``i`` shares the incident energy of reference shower
            ``i`` (true for ``python -m offline.showers``); FPD/KPD then draw their two
            sides from disjoint pairs.
        floors: estimate the reference-vs-reference floors.
        floor_replicas: replicas of the energy-local bootstrap.
        floor_window: energy neighbours on each side in that bootstrap.
        layer_weights: sampling weight per layer for the calibrated visible energy of
            the linearity and resolution points (``None``: unweighted sum).
        energy_point_method: ``"smallest"`` (RMS90, narrowest 90 % window) or
            ``"central"`` (equal tails).
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
    kpd_batch_size: int = 5000
    fpd_bootstrap: int = 10
    paired: bool = True
    floors: bool = True
    floor_replicas: int = 30
    floor_window: int = 2
    layer_weights: tuple[float, ...] | None = None
    energy_point_method: str = "smallest"
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
    floors: JSDFloors | None = None
    energy_observable: str = "visible_energy"
    energy_point_method: str = "smallest"
    extra: dict[str, Any] = field(default_factory=dict)

    def floor_metrics(self) -> dict[str, Any]:
        """The ``floors`` entry of ``metrics.json`` (reference vs reference at the same n)."""
        out: dict[str, Any] = self.floors.to_dict() if self.floors is not None else {}
        for key, clf in (
            ("classifier", self.classifier),
            ("cell_classifier", self.cell_classifier),
        ):
            if clf is None:
                continue
            out[f"{key}_auc"] = {"mean": 0.5, "error": null_auc_error(clf.n_test, clf.n_test)}
            out[f"{key}_jsd"] = {"mean": 0.0, "error": clf.jsd_error}
        if out:
            out["classifier_method"] = (
                "AUC: 0.5 with the exact null spread sqrt((m+n+1)/(12mn)) at the test sizes; "
                "classifier JSD: 0 within the estimator's error"
            )
        return out

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
        out["energy_points"]["observable"] = self.energy_observable
        out["energy_points"]["method"] = self.energy_point_method
        for key, clf in (
            ("classifier", self.classifier),
            ("cell_classifier", self.cell_classifier),
        ):
            if clf is None:
                continue
            out[f"{key}_auc"] = {"mean": clf.auc_mean, "error": clf.auc_error, "std": clf.auc_std}
            out[f"{key}_jsd"] = {
                "mean": clf.jsd_mean,
                "error": clf.jsd_error,
                "std": clf.jsd_std,
                "consistent_with_zero": clf.jsd_consistent_with_zero,
            }
            out[key] = clf.to_dict()
        floors = self.floor_metrics()
        if floors:
            out["floors"] = floors
        if self.fpd is not None or self.kpd is not None:
            out["fpd_kpd_implementation"] = (
                "offline.showers.physics_distances (arXiv:2211.10295 definitions and defaults: FPD 1/N "
                "extrapolation, bootstrap error; KPD polynomial kernel of degree 4; paired samples drawn "
                "from disjoint pairs; jetnet itself is not installed: it would downgrade numpy)"
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
    """Energy-weighted histogram; bin variances from the per-shower contents (showers independent)."""
    edges = np.arange(ref_profile.shape[1] + 1, dtype=np.float64) * width
    return HistogramPair(
        edges,
        ref_profile.sum(axis=0),
        gen_profile.sum(axis=0),
        reference_variance=np.square(ref_profile).sum(axis=0),
        generated_variance=np.square(gen_profile).sum(axis=0),
    )


def _calibrated_energy(summary: ShowerSummary, weights: tuple[float, ...] | None) -> np.ndarray:
    if weights is None:
        return summary.observables.visible_energy
    w = np.asarray(weights, dtype=np.float64)
    profile = summary.observables.longitudinal_profile
    if w.shape != (profile.shape[1],):
        msg = f"layer_weights has {w.size} entries for {profile.shape[1]} layers"
        raise ValueError(msg)
    return profile @ w


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
        reference.energies,
        _calibrated_energy(reference, cfg.layer_weights),
        edges=edges,
        points=points,
        method=cfg.energy_point_method,
    )
    gen_points = energy_point_summary(
        generated.energies,
        _calibrated_energy(generated, cfg.layer_weights),
        edges=edges,
        points=points,
        method=cfg.energy_point_method,
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
    paired = cfg.paired and len(reference) == len(generated)
    if cfg.physics_distances:
        ref_pd = high_level_features(ref_obs, reference.energies, threshold, include_profile=False)
        gen_pd = high_level_features(gen_obs, generated.energies, threshold, include_profile=False)
        fpd_value = fpd(ref_pd, gen_pd, num_bootstrap=cfg.fpd_bootstrap, paired=paired)
        kpd_value = kpd(
            ref_pd,
            gen_pd,
            num_batches=cfg.kpd_batches,
            batch_size=cfg.kpd_batch_size,
            paired=paired,
        )
    floors = (
        jsd_floors(reference, histograms, n_replicas=cfg.floor_replicas, window=cfg.floor_window)
        if cfg.floors
        else None
    )

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
        floors=floors,
        energy_observable=(
            "calibrated visible energy (layer-weighted sum)"
            if cfg.layer_weights is not None
            else "visible energy (unweighted sum)"
        ),
        energy_point_method=cfg.energy_point_method,
    )
