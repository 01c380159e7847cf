"""S and δ_S of one snapshot under each δ option, for coverage studies (issue 7, §2).

A coverage study trains K independent runs and compares the mean δ_S with the
run-to-run spread of S; :func:`signal_estimates` gives, for one snapshot directory, S and
δ_S under each option of :mod:`offline.bumphunt.significance` (``paper``: 2/N_ens·σ,
``spread``: σ, ``stderr``: σ/√(N_ens/2)) with the sampling noise handled as the CLI does,
plus the significance and the data comparison. It runs :func:`offline.bumphunt.analysis.analyse`
without plots; by default without pseudo-experiments and data comparison (fast), which
``settings`` can turn on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from offline.bumphunt.analysis import BumpHuntSettings, analyse

__all__ = ["SignalEstimates", "signal_estimates"]


@dataclass(frozen=True)
class SignalEstimates:
    """S and its uncertainty under each δ option, for one snapshot.

    Attributes:
        window: ``(low, high)`` found by the locating half.
        signal: S = O − B (events).
        background: B (events).
        delta_signal: δ_S per option (``paper``, ``spread``, ``stderr``).
        significance: S/√(δ_S² + B) per option.
        significance_calibrated: toy-calibrated significance of the locating scan (nan
            without pseudo-experiments).
        data_significance: the stored data's S/√B per prescale (empty unless asked).
        data_significance_calibrated: the same, toy-calibrated.
        n_members: members used (N_ens).
        events: events the counts are normalised to.
    """

    window: tuple[float, float]
    signal: float
    background: float
    delta_signal: dict[str, float]
    significance: dict[str, float]
    significance_calibrated: float
    data_significance: dict[int, float] = field(default_factory=dict)
    data_significance_calibrated: dict[int, float] = field(default_factory=dict)
    n_members: int = 0
    events: int = 0


def signal_estimates(
    directory: str | Path, settings: BumpHuntSettings | None = None
) -> SignalEstimates:
    """S and δ_S of the snapshot in ``directory`` under each δ option.

    Args:
        directory: a snapshot directory (an OnlineFlow ensemble).
        settings: analysis settings; default: 2 M samples per member, no
            pseudo-experiments, no data comparison, no progress bars. ``--null``
            studies pass ``BumpHuntSettings(null=True, ...)``.

    Returns:
        The estimates (:class:`SignalEstimates`).

    Raises:
        emulator.errors.SnapshotError: missing or corrupt snapshot.
        BumpHuntError: unusable input.

    Example:
        ``est = signal_estimates("runs/k3"); est.signal, est.delta_signal["spread"]``
    """
    settings = settings or BumpHuntSettings(
        samples=2_000_000, n_pseudo=0, prescales=(), progress=False
    )
    report, _ = analyse([directory], settings)
    return SignalEstimates(
        window=(float(report["window"][0]), float(report["window"][1])),
        signal=float(report["S"]),
        background=float(report["B"]),
        delta_signal=dict(report["delta_S_options"]),
        significance=dict(report["significance_options"]),
        significance_calibrated=float(report["significance_calibrated"]),
        data_significance={int(k): float(v) for k, v in report["data_significance"].items()},
        data_significance_calibrated={
            int(k): float(v) for k, v in report["data_significance_calibrated"].items()
        },
        n_members=int(report["n_members"]),
        events=int(report["normalised_to"]["events"]),
    )
