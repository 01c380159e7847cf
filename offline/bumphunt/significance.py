"""Significances of the bump hunt: ensemble (arXiv 2202.09375) and classical data.

Ensemble (second half of the members, each measured in the window found by the first
half): O_i is member i's count in the window, B_i its background fit integrated over the
window, both scaled to the real number of events. Then

    O = mean(O_i),  B = mean(B_i),  S = O − B,
    δ_O = (2/N_ens)·σ(O_i),  δ_B = (2/N_ens)·σ(B_i),  δ_S = √(δ_O² + δ_B²),
    significance = S / √(δ_S² + B).

N_ens is the full ensemble size (so 2/N_ens = 1/(number of measuring members)); σ is the
sample standard deviation (``ddof=1``) over the measuring members. One printed version of
the paper writes √(O² + B²) inside δ_S: a typo for the propagated error √(δ_O² + δ_B²).

**What δ stands for** (``uncertainty``). The paper's ``"paper"`` option, 2/N_ens·σ, is the
default. All members were trained on the same data, so the spread of these bootstrap
replicas estimates the data's statistical error, which averaging members does not
shrink; two alternatives are offered so that a coverage study can tell which is honest:
``"spread"``, δ = σ (the bootstrap error of one replica), and ``"stderr"``,
δ = σ/√M with M the number of measuring members (σ/√(N_ens/2)), the standard error of a
mean of independent estimates.

**Sampling noise.** O_i and B_i come from a finite sample of member i: with ``n`` draws
scaled by ``scale = n_events/n`` to events, multinomial noise adds
``scale² · c(1 − c/n) ≈ scale · O_i`` to Var(O_i) (``c`` the sample count in the window)
and the fit's own variance to Var(B_i). That is not spread between members, so it is
subtracted: σ² = max(σ²_observed − mean sampling variance, 0)
(``sampling_variance_*`` arguments; zero keeps the raw spread).

Data: S / √B with S = O − B, O the observed count and B the background fit to the same
(prescaled) data, both in the window found by the scan of that data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "UNCERTAINTY_OPTIONS",
    "EnsembleSignificance",
    "crossover_prescale",
    "data_significance",
    "ensemble_significance",
    "uncertainty_options",
]

FORMULA = (
    "S = O - B;  dO = (2/N_ens)*std(O_i);  dB = (2/N_ens)*std(B_i);  "
    "dS = sqrt(dO^2 + dB^2);  significance = S / sqrt(dS^2 + B)"
)
"""The paper's formula (``uncertainty="paper"``, sampling noise kept)."""


UNCERTAINTY_OPTIONS = ("paper", "spread", "stderr")


@dataclass(frozen=True)
class EnsembleSignificance:
    """Ensemble estimate of a bump (all counts in real events).

    Attributes:
        observed: O, mean window count of the measuring members.
        background: B, mean fitted background in the window.
        delta_observed: δ_O.
        delta_background: δ_B.
        signal: S = O − B.
        delta_signal: δ_S.
        significance: S / √(δ_S² + B).
        n_members: N_ens, the full ensemble size.
        uncertainty: which δ (``"paper"``, ``"spread"``, ``"stderr"``).
        spread_observed: σ(O_i) after removing the sampling variance.
        spread_background: σ(B_i) after removing the sampling variance.
    """

    observed: float
    background: float
    delta_observed: float
    delta_background: float
    signal: float
    delta_signal: float
    significance: float
    n_members: int
    uncertainty: str = "paper"
    spread_observed: float = float("nan")
    spread_background: float = float("nan")

    def as_dict(self) -> dict[str, float | str]:
        """Plain dictionary (for JSON)."""
        return asdict(self)


def ensemble_significance(
    observed: Sequence[float],
    background: Sequence[float],
    n_members: int,
    *,
    ddof: int = 1,
    uncertainty: str = "paper",
    sampling_variance_observed: float = 0.0,
    sampling_variance_background: float = 0.0,
) -> EnsembleSignificance:
    """Combine per-member window counts O_i and backgrounds B_i (see the module docstring).

    Args:
        observed: O_i of the measuring members (real-event units).
        background: B_i of the same members.
        n_members: N_ens, the size of the whole ensemble (both halves).
        ddof: degrees of freedom removed in the standard deviation.
        uncertainty: ``"paper"`` (2/N_ens·σ), ``"spread"`` (σ) or ``"stderr"`` (σ/√M).
        sampling_variance_observed: mean sampling variance of one O_i, subtracted from
            the variance of the O_i.
        sampling_variance_background: the same for the B_i.

    Returns:
        O, B, their errors and the significance.

    Example:
        >>> r = ensemble_significance([110.0, 130.0], [90.0, 90.0], n_members=4)
        >>> (r.signal, round(r.delta_observed, 4), r.delta_background)
        (30.0, 7.0711, 0.0)
        >>> round(r.significance, 4)
        2.5355
    """
    o = np.asarray(observed, dtype=np.float64)
    b = np.asarray(background, dtype=np.float64)
    if o.shape != b.shape or o.ndim != 1:
        msg = f"significance: need equal 1-D O_i and B_i, got shapes {o.shape} and {b.shape}"
        raise ValueError(msg)
    if o.size <= ddof:
        msg = f"significance: need more than {ddof} measuring member(s), got {o.size}"
        raise ValueError(msg)
    if n_members < o.size:
        msg = f"significance: n_members ({n_members}) is smaller than the measuring members ({o.size})"
        raise ValueError(msg)
    if uncertainty not in UNCERTAINTY_OPTIONS:
        msg = f"significance: uncertainty must be one of {UNCERTAINTY_OPTIONS}, got {uncertainty!r}"
        raise ValueError(msg)
    factor = {"paper": 2.0 / n_members, "spread": 1.0, "stderr": 1.0 / math.sqrt(o.size)}[
        uncertainty
    ]
    sigma_o = math.sqrt(max(float(np.var(o, ddof=ddof)) - sampling_variance_observed, 0.0))
    sigma_b = math.sqrt(max(float(np.var(b, ddof=ddof)) - sampling_variance_background, 0.0))
    d_o = factor * sigma_o
    d_b = factor * sigma_b
    big_o, big_b = float(o.mean()), float(b.mean())
    s = big_o - big_b
    d_s = math.hypot(d_o, d_b)
    denominator = math.sqrt(d_s**2 + big_b)
    sig = s / denominator if denominator > 0 else float("nan")
    return EnsembleSignificance(
        big_o, big_b, d_o, d_b, s, d_s, sig, int(n_members), uncertainty, sigma_o, sigma_b
    )


def uncertainty_options(
    observed: Sequence[float],
    background: Sequence[float],
    n_members: int,
    *,
    sampling_variance_observed: float = 0.0,
    sampling_variance_background: float = 0.0,
) -> dict[str, EnsembleSignificance]:
    """:func:`ensemble_significance` under each δ option (``paper``, ``spread``, ``stderr``).

    Example:
        >>> r = uncertainty_options([110.0, 130.0], [90.0, 90.0], n_members=4)
        >>> {k: round(v.delta_signal, 3) for k, v in r.items()}
        {'paper': 7.071, 'spread': 14.142, 'stderr': 10.0}
    """
    return {
        option: ensemble_significance(
            observed,
            background,
            n_members,
            uncertainty=option,
            sampling_variance_observed=sampling_variance_observed,
            sampling_variance_background=sampling_variance_background,
        )
        for option in UNCERTAINTY_OPTIONS
    }


def data_significance(observed: float, background: float) -> float:
    """S / √B with S = O − B.

    Example:
        >>> data_significance(120.0, 100.0)
        2.0
    """
    if background <= 0:
        return float("nan")
    return (observed - background) / math.sqrt(background)


def crossover_prescale(ensemble: float, data: Mapping[int, float]) -> int | None:
    """Smallest prescale factor from which on the ensemble beats the data.

    The ensemble must be more significant at that factor and at every larger one listed
    (data significance falls roughly as 1/√k, but fluctuates).

    Returns:
        The factor, or ``None`` if the data win at the largest factor.

    Example:
        >>> crossover_prescale(3.0, {1: 9.0, 2: 6.5, 4: 2.9, 8: 3.1, 16: 1.5})
        16
        >>> crossover_prescale(3.0, {1: 9.0, 2: 6.5, 4: 2.9, 8: 2.5, 16: 1.5})
        4
    """
    crossover = None
    for factor in sorted(data, reverse=True):
        value = data[factor]
        if math.isfinite(ensemble) and (not math.isfinite(value) or ensemble > value):
            crossover = factor
        else:
            break
    return crossover
