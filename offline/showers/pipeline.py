"""The validation run behind ``python -m offline.showers``: load, generate, compare, report.

1. **Reference sample**: read from a file (Zarr, ILD HDF5, CaloChallenge HDF5 or ROOT
   hit tree, via :func:`stream.showers.io.open_showers`), the first ``n`` showers; or, by
   default, ``n`` showers simulated with the reference simulator at seed ``seed`` and
   incident energies drawn uniformly in the geometry's default range.
2. **Generated sample**: the chosen model (:mod:`offline.showers.registry`) generates one
   shower per reference incident energy, timed at the best batch size
   (:mod:`offline.showers.timing`).
3. **Comparison** (:func:`offline.showers.validation.compare_summaries`) and the report
   directory: plots, ``metrics.json``, ``index.html``.

Both samples are reduced chunk by chunk (:mod:`offline.showers.summary`), so ``n`` is
limited by time, not memory.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from offline.showers.errors import ShowerDataError
from offline.showers.registry import get_model
from offline.showers.snapshot_model import reference_seed
from offline.showers.summary import ShowerSummary, SummaryBuilder
from offline.showers.timing import GenerationTiming, generate_timed
from offline.showers.validation import ValidationSettings, compare_summaries

__all__ = ["RunConfig", "load_reference", "run_validation", "simulate_reference"]


@dataclass(frozen=True)
class RunConfig:
    """Settings of one validation run (the CLI's options).

    Attributes:
        model: registry name of the generator.
        n: number of showers per sample.
        out_dir: report directory (created).
        geometry: ``"ecal"`` or ``"ahcal"`` (a file's own geometry wins if it has one).
        seed: seed of the held-out reference sample and of the energies; models get
            their own seed derived from it. None (the default): 0, or for a snapshot
            trained on the reference simulator (``showers:...``) its training seed + 1, so
            the reference showers are never the ones it trained on (an explicit seed equal
            to the training seed warns and sets ``run.reference_is_training_data``).
        reference: reference file, or ``None`` to simulate one.
        format: reader format, or ``None`` to detect it.
        chunk_size: showers per chunk.
        plots: write the PNG plots.
        progress: tqdm bars on stderr.
        validation: metric settings.
        model_options: keywords of the model's factory (a snapshot model's ``snapshot``,
            ``mode``, ``post_process``).
    """

    model: str = "reference"
    n: int = 10_000
    out_dir: Path = Path("showers-report")
    geometry: str = "ecal"
    seed: int | None = None
    reference: Path | None = None
    format: str | None = None
    chunk_size: int = 2000
    plots: bool = True
    progress: bool = True
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    model_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n < 20:
            msg = f"n must be at least 20 showers per sample, got {self.n}"
            raise ValueError(msg)
        if self.seed is not None and self.seed < 0:
            msg = f"seed must be >= 0, got {self.seed}"
            raise ValueError(msg)


def simulate_reference(
    geometry: Any, n: int, seed: int, chunk_size: int = 2000, progress: bool = False
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(energies, showers)`` chunks of a held-out reference sample from the simulator."""
    from stream.showers.simulator import sample_energies, simulate

    energies = sample_energies(
        int(seed), 0, int(n), geometry.energy_min_gev, geometry.energy_max_gev
    )
    for lo in tqdm(
        range(0, n, chunk_size), desc="simulate reference", disable=not progress, leave=False
    ):
        chunk = energies[lo : lo + chunk_size]
        yield chunk, simulate(geometry, chunk, int(seed), first_event=lo)


def load_reference(
    path: Path, n: int, format: str | None = None, chunk_size: int = 2000, progress: bool = False
) -> tuple[Any, Iterator[tuple[np.ndarray, np.ndarray]], int]:
    """Open a reference file: ``(geometry or None, chunk iterator of the first n showers, count)``.

    Raises:
        ShowerDataError: when the shower readers are not available.
    """
    try:
        from stream.showers.io import open_showers
    except ImportError as exc:  # pragma: no cover - depends on the stream package state
        msg = (
            f"cannot read reference file {str(path)!r}: stream.showers.io is not available ({exc})"
        )
        raise ShowerDataError(msg) from exc
    handle = open_showers(path, format=format)
    count = min(int(n), len(handle))

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        try:
            for lo in tqdm(
                range(0, count, chunk_size),
                desc="read reference",
                disable=not progress,
                leave=False,
            ):
                chunk = handle.read(lo, min(lo + chunk_size, count))
                yield np.asarray(chunk.energies, dtype=np.float64), chunk.showers
        finally:
            handle.close()

    return getattr(handle, "geometry", None), chunks(), count


def _summarise(
    chunks: Iterator[tuple[np.ndarray, np.ndarray]],
    threshold: float,
    keep: int,
    per_shower_hits: bool = False,
) -> ShowerSummary:
    builder = SummaryBuilder(threshold, keep, per_shower_hits)
    for energies, showers in chunks:
        builder.add(energies, showers)
    return builder.build()


def _central(
    chunks: Iterator[tuple[np.ndarray, np.ndarray]], shape: tuple[int, int, int]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Reference chunks cropped to the central ``shape[1] x shape[2]`` cells of every layer."""
    for energies, showers in chunks:
        _, n_x, n_y = showers.shape[1:]
        x0, y0 = (n_x - shape[1]) // 2, (n_y - shape[2]) // 2
        yield energies, np.ascontiguousarray(showers[:, :, x0 : x0 + shape[1], y0 : y0 + shape[2]])


def run_validation(config: RunConfig) -> dict[str, Any]:
    """Run the whole validation and write the report; return the metrics.

    Raises:
        ShowerDataError: when the reference file's grid does not match the geometry.
    """
    from stream.showers.geometry import get_geometry

    started = time.perf_counter()
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    geometry = get_geometry(config.geometry)
    keep = max(config.validation.cell_classifier_max, 4) if config.validation.cell_classifier else 4
    model = get_model(config.model, geometry, **dict(config.model_options))
    window_of = getattr(model, "reference_geometry", None)
    full_geometry = geometry
    if callable(window_of):  # a model of a window of the grid (BIB-AE small: the central 10 x 10)
        geometry = window_of()
    trained_seed = getattr(model, "training_seed", None)
    seed = reference_seed(trained_seed, config.seed)
    config = replace(config, seed=seed)
    reference_is_training = config.reference is None and trained_seed is not None and seed == trained_seed
    if reference_is_training:
        warnings.warn(
            f"--seed {seed} is the seed of the simulator stream the snapshot trained on: the reference "
            "showers are training showers, not held-out ones (leave --seed out to draw another stream)",
            stacklevel=2,
        )
    if config.reference is not None:
        file_geometry, chunks, count = load_reference(
            config.reference, config.n, config.format, config.chunk_size, config.progress
        )
        if file_geometry is not None and geometry is full_geometry:
            geometry = file_geometry
        elif geometry is not full_geometry:
            chunks = _central(chunks, geometry.shape)
        reference = _summarise(chunks, geometry.threshold_mev, keep, per_shower_hits=True)
        if reference.grid_shape != geometry.shape:
            msg = f"reference {str(config.reference)!r} has grid {reference.grid_shape}, geometry {geometry.name!r} has {geometry.shape}"
            raise ShowerDataError(msg)
        reference_label = str(config.reference)
    else:
        reference = _summarise(
            simulate_reference(geometry, config.n, seed, config.chunk_size, config.progress),
            geometry.threshold_mev,
            keep,
            per_shower_hits=True,
        )
        reference_label = f"simulated held-out sample (seed {seed})"

    timing = GenerationTiming()
    generated = _summarise(
        generate_timed(
            model,
            reference.energies,
            seed,
            chunk_size=config.chunk_size,
            progress=config.progress,
            timing=timing,
        ),
        geometry.threshold_mev,
        keep,
    )
    settings = config.validation
    if settings.layer_weights is None:
        settings = replace(
            settings, layer_weights=tuple(float(w) for w in geometry.layer_weights())
        )
    result = compare_summaries(reference, generated, settings)
    metrics = result.metrics()
    metrics["ms_per_shower"] = timing.to_dict()
    metrics["n_reference"] = len(reference)
    metrics["n_generated"] = len(generated)
    run = {
        "model": getattr(model, "name", config.model),
        "geometry": geometry.name,
        "grid": "×".join(str(s) for s in geometry.shape),
        "threshold_mev": geometry.threshold_mev,
        "n_showers": len(reference),
        "seed": seed,
        "training_seed": trained_seed,
        "reference_is_training_data": reference_is_training,
        "reference": reference_label,
        "classifier": settings.classifier.name,
    }
    metrics["run"] = run

    from offline.showers.report import render_html, write_metrics

    plots: dict[str, list[str]] = {}
    if config.plots:
        from offline.showers.plots import plot_all

        plots = plot_all(result, reference, generated, out_dir)
    metrics["wall_time_s"] = time.perf_counter() - started
    write_metrics(metrics, out_dir)
    render_html(metrics, plots, run, out_dir)
    return metrics
