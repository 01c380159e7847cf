"""The whole bump hunt of arXiv 2202.09375 on one or several snapshot directories.

For each ensemble (one directory, or several shards merged, see
:mod:`offline.bumphunt.merge`): sample every member and histogram, run the ensemble bump
hunt (:mod:`offline.bumphunt.ensemble`), run the classical bump hunt on the stored events
for each prescale factor (:mod:`offline.bumphunt.classical`), and find the crossover
prescale factor. With ``null=True`` the data side uses a background-only sample
(:func:`offline.bumphunt.data.null_masses`) and the snapshot is expected to come from a
background-only (λ = 0) run.

Normalisation: model counts are scaled to ``events_trained`` from the manifest — the
events that went through training buffers, i.e. the population the flow has learnt (the
events that passed the trigger's training path, minus any dropped for a busy trainer).
Only if that is missing or zero does ``events_seen`` stand in (with a warning).

Two comparisons are reported. The paper's: ensemble significance S/√(δ_S² + B) against
the data's S/√B, ``crossover_prescale``. The calibrated one, which treats data and
ensemble alike: both scans converted to a toy-calibrated significance (refitted
pseudo-experiments, :mod:`offline.bumphunt.trials`), ``crossover_prescale_calibrated``.
"""

from __future__ import annotations

import time
import warnings as warnings_module
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from offline.bumphunt.classical import DataBumpHunt, data_bump_hunt
from offline.bumphunt.data import column_unit, find_config_value, null_masses, read_stored_events
from offline.bumphunt.ensemble import SAMPLING_NOISE_POLICIES, EnsembleBumpHunt, ensemble_bump_hunt
from offline.bumphunt.errors import BumpHuntError
from offline.bumphunt.histogram import MassBinning, MemberHistograms, sample_member_histograms
from offline.bumphunt.merge import group_snapshots
from offline.bumphunt.prescale import DEFAULT_PRESCALES
from offline.bumphunt.scan import ScanConfig
from offline.bumphunt.significance import UNCERTAINTY_OPTIONS, crossover_prescale

__all__ = ["BumpHuntSettings", "EnsembleAnalysis", "analyse", "check_device", "training_events"]


@dataclass(frozen=True)
class BumpHuntSettings:
    """Settings of the analysis (paper defaults).

    Attributes:
        samples: samples per member.
        chunk_size: samples per member per ``model.sample`` call.
        seed: seed of sampling and pseudo-experiments.
        n_pseudo: pseudo-experiments per BumpHunter scan.
        prescales: prescale factors of the data comparison.
        binning: mass bins.
        scan: BumpHunter windows.
        fit_order: order of the polynomial in the background exponent.
        device: device to sample on.
        null: null mode (background-only data; background-only snapshot expected).
        progress: show progress bars on stderr.
        column: the mass column of samples and stored events.
        uncertainty: δ option of the ensemble significance (``paper``, ``spread``,
            ``stderr``; see :mod:`offline.bumphunt.significance`).
        sampling_noise: ``subtract`` the known sampling variance from the members'
            spread, or ``keep`` it.
        refit_pseudo: refit the background to every pseudo-experiment (calibrated
            global p-values; about 0.1 s per 1000 pseudo-experiments and scan).
        locate_pseudo: pseudo-experiments of the ensemble's locating scan
            (:data:`offline.bumphunt.ensemble.LOCATE_PSEUDO`).
    """

    samples: int = 10_000_000
    chunk_size: int = 1_000_000
    seed: int = 0
    n_pseudo: int = 1000
    prescales: tuple[int, ...] = DEFAULT_PRESCALES
    binning: MassBinning = field(default_factory=MassBinning)
    scan: ScanConfig = field(default_factory=ScanConfig)
    fit_order: int = 5
    device: str = "cpu"
    null: bool = False
    progress: bool = True
    column: str = "mass"
    uncertainty: str = "paper"
    sampling_noise: str = "subtract"
    refit_pseudo: bool = True
    locate_pseudo: str = "members"

    def __post_init__(self) -> None:
        for key in ("samples", "chunk_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f"{key} must be a positive integer, got {value!r}"
                raise BumpHuntError(msg)
        if self.n_pseudo < 0:
            msg = f"n_pseudo must be >= 0, got {self.n_pseudo!r}"
            raise BumpHuntError(msg)
        if self.uncertainty not in UNCERTAINTY_OPTIONS:
            msg = f"uncertainty must be one of {UNCERTAINTY_OPTIONS}, got {self.uncertainty!r}"
            raise BumpHuntError(msg)
        if self.sampling_noise not in SAMPLING_NOISE_POLICIES:
            msg = f"sampling_noise must be one of {SAMPLING_NOISE_POLICIES}, got {self.sampling_noise!r}"
            raise BumpHuntError(msg)


def check_device(device: str) -> None:
    """Refuse a CUDA device on a machine without CUDA, saying so (not as corrupt weights).

    Raises:
        BumpHuntError: ``device`` names CUDA and CUDA is not available, or the index is
            past the devices there are.
    """
    if not str(device).startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        msg = (
            f"device {device!r}: CUDA is not available on this machine (torch {torch.__version__}, "
            f"CUDA build {torch.version.cuda or 'none'}); use --device cpu"
        )
        raise BumpHuntError(msg)
    _, _, index = str(device).partition(":")
    if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
        msg = f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
        raise BumpHuntError(msg)


@dataclass
class EnsembleAnalysis:
    """Everything computed for one ensemble (kept for plots)."""

    paths: list[Path]
    manifest: dict[str, Any]
    histograms: MemberHistograms
    ensemble: EnsembleBumpHunt
    data: dict[int, DataBumpHunt]
    report: dict[str, Any]
    mass_unit: str | None = None


def training_events(manifest: Mapping[str, Any]) -> tuple[int, str]:
    """The event count model samples are normalised to, and which manifest key it is."""
    trained = manifest.get("events_trained")
    if isinstance(trained, int | float) and trained > 0:
        return int(trained), "events_trained"
    seen = manifest.get("events_seen")
    if isinstance(seen, int | float) and seen > 0:
        return int(seen), "events_seen"
    return 0, "none"


def _sample_group(snapshots: list[Any], settings: BumpHuntSettings) -> MemberHistograms:
    histograms: MemberHistograms | None = None
    for i, snap in enumerate(snapshots):
        seed = (
            settings.seed
            if len(snapshots) == 1
            else int(np.random.SeedSequence([settings.seed, i]).generate_state(1)[0])
        )
        h = sample_member_histograms(
            snap.model,
            settings.samples,
            settings.binning,
            seed=seed,
            chunk_size=settings.chunk_size,
            column=settings.column,
            progress=settings.progress,
        )
        histograms = h if histograms is None else histograms.concatenate(h)
    assert histograms is not None
    return histograms


def _training_histogram(stored: Mapping[str, np.ndarray] | None, settings: BumpHuntSettings, n_events: int) -> np.ndarray:
    """Histogram of the events the ensemble trained on: the stored events, if they are all of them.

    Raises:
        BumpHuntError: no stored events, or fewer than were trained (a prescaled store
            cannot show the training data's own fluctuation).
    """
    if stored is None:
        msg = "--locate-pseudo members+absorbed needs the training events: the snapshot stored none"
        raise BumpHuntError(msg)
    masses = stored[settings.column]
    if masses.size != n_events:
        msg = (f"--locate-pseudo members+absorbed needs every training event stored (prescale 1); "
               f"{masses.size} stored, {n_events} trained")
        raise BumpHuntError(msg)
    edges = settings.binning.edges
    return np.histogram(masses, bins=edges)[0].astype(np.float64)


def _analyse_group(
    snapshots: list[Any], settings: BumpHuntSettings, timings: dict[str, float]
) -> EnsembleAnalysis:
    manifest = snapshots[0].manifest
    warnings: list[str] = []
    n_events, source = training_events(manifest)
    if source != "events_trained":
        warnings.append(
            f"manifest has no positive events_trained; counts normalised to {source} = {n_events}"
        )

    t0 = time.perf_counter()
    histograms = _sample_group(snapshots, settings)
    timings["sample"] += time.perf_counter() - t0

    stored_path = snapshots[0].stored_events_path
    stored = None
    if stored_path is not None and Path(stored_path).exists():
        stored = read_stored_events(stored_path, settings.column)
    training_counts = None
    if settings.locate_pseudo == "members+absorbed":
        training_counts = _training_histogram(stored, settings, n_events)

    t0 = time.perf_counter()
    with warnings_module.catch_warnings(record=True) as caught:
        warnings_module.simplefilter("always", RuntimeWarning)
        ens = ensemble_bump_hunt(
            histograms,
            n_events,
            scan=settings.scan,
            n_pseudo=settings.n_pseudo,
            seed=settings.seed,
            fit_order=settings.fit_order,
            uncertainty=settings.uncertainty,
            sampling_noise=settings.sampling_noise,
            refit_pseudo=settings.refit_pseudo,
            locate_pseudo=settings.locate_pseudo,
            training_counts=training_counts,
        )
    warnings.extend(str(w.message) for w in caught)
    timings["ensemble_fit_scan"] += time.perf_counter() - t0

    t0 = time.perf_counter()
    data_description = "stored events" if stored is not None else None
    if settings.null:
        lam = find_config_value(manifest.get("config"), "signal_fraction")
        if lam:
            warnings.append(
                f"--null: this snapshot was trained with signal_fraction = {lam}, not on background only"
            )
        n_null = int(stored[settings.column].size) if stored is not None else n_events
        masses, data_description = null_masses(
            stored, n_null, manifest.get("config"), settings.seed, settings.column
        )
    else:
        masses = stored[settings.column] if stored is not None else None
        if masses is None:
            warnings.append("snapshot has no stored events: no data comparison")
    data: dict[int, DataBumpHunt] = {}
    if masses is not None and masses.size:
        data = data_bump_hunt(
            masses,
            settings.binning,
            settings.prescales,
            scan=settings.scan,
            n_pseudo=settings.n_pseudo,
            seed=settings.seed,
            fit_order=settings.fit_order,
            refit_pseudo=settings.refit_pseudo,
        )
    timings["data"] += time.perf_counter() - t0

    sig = ens.significance
    scan = ens.locate
    data_sig = {str(k): r.significance for k, r in data.items()}
    data_cal = {str(k): r.calibrated_significance for k, r in data.items()}
    bad_data = [k for k, r in data.items() if not r.fit_valid]
    if bad_data:
        warnings.append(
            f"the background fit of the data is invalid at prescale(s) {bad_data}: flagged "
            f"(fit_valid false) and left out of the crossover"
        )
    if not ens.locate_fit.valid:
        warnings.append("the background fit of the locating half is invalid: the window may be off")
    good = {k: r for k, r in data.items() if r.fit_valid}
    invalid_pseudo = scan.invalid_pseudo_fits + sum(r.hunt.invalid_pseudo_fits for r in data.values())
    if invalid_pseudo:
        warnings.append(f"{invalid_pseudo} pseudo-experiment refit(s) did not converge (kept)")
    invalid_fits = {
        "members": ens.invalid_member_fits,
        "n_members": len(ens.invalid_member_fits),
        "locate": not ens.locate_fit.valid,
        "total": not ens.total_fit.valid,
        "data": bad_data,
        "pseudo": invalid_pseudo,
        "count": len(ens.invalid_member_fits)
        + int(not ens.locate_fit.valid)
        + int(not ens.total_fit.valid)
        + len(bad_data),
    }
    report: dict[str, Any] = {
        "snapshots": [str(s.path) for s in snapshots],
        "merged_shards": len(snapshots) > 1,
        "model_kind": manifest.get("model_kind"),
        "events_seen": manifest.get("events_seen"),
        "events_trained": manifest.get("events_trained"),
        "normalised_to": {"key": source, "events": n_events},
        "samples_per_member": histograms.samples_per_member,
        "n_members": histograms.n_members,
        "n_measuring_members": int(ens.observed.size),
        "window": list(ens.window),
        "window_bins": list(ens.window_bins),
        "O": sig.observed,
        "B": sig.background,
        "S": sig.signal,
        "delta_O": sig.delta_observed,
        "delta_B": sig.delta_background,
        "delta_S": sig.delta_signal,
        "significance": sig.significance,
        "uncertainty": settings.uncertainty,
        "delta_S_options": {k: v.delta_signal for k, v in ens.options.items()},
        "significance_options": {k: v.significance for k, v in ens.options.items()},
        "spread_O": sig.spread_observed,
        "spread_B": sig.spread_background,
        "sampling_noise": {
            "policy": ens.sampling_noise,
            "variance_O": ens.sampling_variance["O"],
            "variance_B": ens.sampling_variance["B"],
        },
        "significance_jackknife_std": ens.jackknife_std,
        "O_i": ens.observed.tolist(),
        "B_i": ens.background.tolist(),
        "local_pvalue": scan.scan.local_pvalue,
        "local_log_pvalue": scan.scan.log_pvalue,
        "local_significance": scan.scan.local_significance,
        "global_pvalue": scan.global_pvalue,
        "global_pvalue_text": scan.global_pvalue_text,
        "global_pvalue_uncertainty": scan.global_pvalue_uncertainty,
        "n_pseudo": scan.n_pseudo,
        "refit_pseudo": settings.refit_pseudo,
        "locate_pseudo": settings.locate_pseudo,
        "absorbed_fluctuation": (
            {"amplitude": ens.absorbed.amplitude, "width_bins": ens.absorbed.width}
            if ens.absorbed is not None else None
        ),
        "spread_to_sampling_noise": ens.spread_to_sampling_noise,
        "effective_trials": scan.effective_trials,
        "significance_calibrated": scan.calibrated_significance,
        "fit": {
            "parameters": ens.total_fit.parameters,
            "errors": ens.total_fit.errors,
            "valid": ens.total_fit.valid,
        },
        "invalid_fits": invalid_fits,
        "null": settings.null,
        "data_source": data_description,
        "data_significance": data_sig,
        "data_significance_calibrated": data_cal,
        "data": {
            str(k): {
                "n_events": r.n_events,
                "window": list(r.window),
                "O": r.observed,
                "B": r.background,
                "significance": r.significance,
                "calibrated_significance": r.calibrated_significance,
                "local_pvalue": r.hunt.scan.local_pvalue,
                "local_significance": r.hunt.scan.local_significance,
                "global_pvalue": r.hunt.global_pvalue,
                "global_pvalue_text": r.hunt.global_pvalue_text,
                "fit_valid": r.fit_valid,
            }
            for k, r in data.items()
        },
        "crossover_prescale": crossover_prescale(
            sig.significance, {k: r.significance for k, r in good.items()}
        )
        if good
        else None,
        "crossover_prescale_calibrated": crossover_prescale(
            scan.calibrated_significance, {k: r.calibrated_significance for k, r in good.items()}
        )
        if good
        else None,
        "warnings": warnings,
    }
    unit = column_unit(stored_path, settings.column) if stored is not None else None
    report["mass_unit"] = unit
    return EnsembleAnalysis(
        [s.path for s in snapshots], manifest, histograms, ens, data, report, unit
    )


def analyse(
    directories: Sequence[str | Path], settings: BumpHuntSettings | None = None
) -> tuple[dict[str, Any], list[EnsembleAnalysis]]:
    """Run the bump hunt on snapshot directories.

    Args:
        directories: one snapshot, shards of one ensemble, or snapshots of one run at
            different times (or a mix; see :func:`offline.bumphunt.merge.group_snapshots`).
        settings: analysis settings.

    Returns:
        ``(report, analyses)``: the JSON-ready report (keys of the latest ensemble at the
        top level; ``groups`` and ``curve`` when there are several) and the per-ensemble
        objects for plotting.

    Raises:
        emulator.errors.SnapshotError: missing or corrupt snapshot.
        BumpHuntError: unusable input.
    """
    from emulator.snapshot import load_snapshot

    settings = settings or BumpHuntSettings()
    check_device(settings.device)
    timings = dict.fromkeys(("load", "sample", "ensemble_fit_scan", "data"), 0.0)
    t0 = time.perf_counter()
    snapshots = [load_snapshot(d, device=settings.device) for d in directories]
    timings["load"] = time.perf_counter() - t0
    groups = group_snapshots([s.manifest for s in snapshots], [str(d) for d in directories])
    analyses = [_analyse_group([snapshots[i] for i in g], settings, timings) for g in groups]
    report = dict(analyses[-1].report)
    if len(analyses) > 1:
        report["groups"] = [a.report for a in analyses]
        report["curve"] = [
            {
                "events_seen": a.report["events_seen"],
                "events_trained": a.report["events_trained"],
                "significance": a.report["significance"],
                "significance_calibrated": a.report["significance_calibrated"],
                "data_significance": a.report["data_significance"],
                "data_significance_calibrated": a.report["data_significance_calibrated"],
            }
            for a in analyses
        ]
    report["timings"] = timings
    return report, analyses
