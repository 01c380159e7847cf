"""Streaming summary of a shower sample: observables, hit spectrum, mean image, a few showers.

A sample of many showers does not have to fit in memory: chunks are reduced as they
arrive to what the validation needs, the per-shower observables, a fine hit-energy
histogram (log-spaced edges from the threshold to ``10^5`` thresholds), the summed
energy image, and the first ``keep`` showers (for the cell-level classifier and the 3-D
renderings). With ``per_shower_hits=True`` (the reference sample) the hit histogram is also
kept per shower, so that the statistical floor of its JSD can be estimated by resampling
showers (:mod:`offline.showers.floors`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from offline.showers.hit_spectrum import hit_energy_histogram, hit_energy_histograms_per_shower
from offline.showers.observables import ShowerObservables, compute_observables

__all__ = ["ShowerSummary", "SummaryBuilder", "fine_hit_edges", "summarise"]


def fine_hit_edges(threshold_mev: float, n_bins: int = 250, decades: float = 5.0) -> np.ndarray:
    """Log-spaced hit-energy edges from the threshold over ``decades`` decades (MeV).

    Example:
        >>> e = fine_hit_edges(0.1, n_bins=5, decades=5.0)
        >>> e[[0, -1]].round(6).tolist()
        [0.1, 10000.0]
    """
    lo = float(threshold_mev) if threshold_mev > 0 else 1e-3
    return lo * np.logspace(0.0, decades, n_bins + 1)


@dataclass
class ShowerSummary:
    """What the validation keeps of one sample.

    Attributes:
        energies: ``(N,)`` incident energies (GeV).
        observables: per-shower observables.
        hit_edges: edges of :attr:`hit_counts` (MeV).
        hit_counts: pooled hit-energy histogram (overflow in the last bin).
        image_sum: sum of all showers ``(layers, x, y)`` (MeV).
        kept: the first ``keep`` showers ``(k, layers, x, y)``.
        threshold_mev: readout threshold used.
        hit_counts_per_shower: ``(N, bins)`` uint16 hit histograms per shower on
            :attr:`hit_edges`, or ``None`` when not kept.
    """

    energies: np.ndarray
    observables: ShowerObservables
    hit_edges: np.ndarray
    hit_counts: np.ndarray
    image_sum: np.ndarray
    kept: np.ndarray
    threshold_mev: float
    hit_counts_per_shower: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.energies.shape[0])

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """``(layers, x, y)``."""
        return tuple(int(s) for s in self.image_sum.shape)  # type: ignore[return-value]


@dataclass
class SummaryBuilder:
    """Accumulates chunks into a :class:`ShowerSummary`.

    Args:
        threshold_mev: readout threshold.
        keep: number of showers kept whole.
        per_shower_hits: also keep the hit histogram of every shower.
    """

    threshold_mev: float
    keep: int = 2000
    per_shower_hits: bool = False
    _per_shower: list[np.ndarray] = field(default_factory=list)
    _energies: list[np.ndarray] = field(default_factory=list)
    _observables: list[ShowerObservables] = field(default_factory=list)
    _kept: list[np.ndarray] = field(default_factory=list)
    _n_kept: int = 0
    _hit_counts: np.ndarray | None = None
    _image: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.hit_edges = fine_hit_edges(self.threshold_mev)

    def add(self, energies_gev: np.ndarray, showers: np.ndarray) -> None:
        """Reduce one chunk.

        Raises:
            ValueError: mismatched lengths or a grid that differs from earlier chunks.
        """
        energies = np.asarray(energies_gev, dtype=np.float64).reshape(-1)
        if energies.size != showers.shape[0]:
            msg = f"chunk has {energies.size} incident energies for {showers.shape[0]} showers"
            raise ValueError(msg)
        if self._image is not None and showers.shape[1:] != self._image.shape:
            msg = f"chunk grid {showers.shape[1:]} differs from earlier chunks' {self._image.shape}"
            raise ValueError(msg)
        self._energies.append(energies)
        self._observables.append(compute_observables(showers, self.threshold_mev))
        edges = self.hit_edges.copy()
        edges[-1] = np.inf
        counts = hit_energy_histogram(showers, edges, self.threshold_mev)
        self._hit_counts = counts if self._hit_counts is None else self._hit_counts + counts
        if self.per_shower_hits:
            self._per_shower.append(
                hit_energy_histograms_per_shower(showers, edges, self.threshold_mev)
            )
        chunk_sum = np.where(showers >= self.threshold_mev, showers, 0).sum(
            axis=0, dtype=np.float64
        )
        self._image = chunk_sum if self._image is None else self._image + chunk_sum
        if self._n_kept < self.keep:
            take = showers[: self.keep - self._n_kept]
            self._kept.append(np.array(take, dtype=np.float32, copy=True))
            self._n_kept += take.shape[0]

    def build(self) -> ShowerSummary:
        """The summary of everything added so far.

        Raises:
            ValueError: when nothing was added.
        """
        if not self._observables or self._image is None or self._hit_counts is None:
            msg = "no showers were added to the summary"
            raise ValueError(msg)
        return ShowerSummary(
            energies=np.concatenate(self._energies),
            observables=ShowerObservables.concatenate(self._observables),
            hit_edges=self.hit_edges,
            hit_counts=self._hit_counts.astype(np.float64),
            image_sum=self._image,
            kept=np.concatenate(self._kept)
            if self._kept
            else np.zeros((0, *self._image.shape), np.float32),
            threshold_mev=float(self.threshold_mev),
            hit_counts_per_shower=np.concatenate(self._per_shower) if self._per_shower else None,
        )


def summarise(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    threshold_mev: float,
    keep: int = 2000,
    per_shower_hits: bool = False,
) -> ShowerSummary:
    """Summarise ``(energies, showers)`` chunks.

    Example:
        >>> s = np.zeros((2, 3, 4, 4), np.float32); s[:, 1, 2, 2] = 3.0
        >>> summary = summarise([(np.array([1.0, 2.0]), s)], threshold_mev=0.1)
        >>> len(summary), summary.observables.visible_energy.tolist()
        (2, [3.0, 3.0])
    """
    builder = SummaryBuilder(threshold_mev, keep, per_shower_hits)
    for energies, showers in chunks:
        builder.add(energies, showers)
    return builder.build()
