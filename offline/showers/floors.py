"""Statistical floors: what a perfect generator scores at the same sample size.

A Jensen-Shannon distance between two finite histograms is positive even when both come
from the same distribution: with ``k`` occupied bins and ``n`` entries per sample it is
about ``sqrt((k - 1) / (4 n ln 2))`` (mean JSD 0.058 at n = 5000, 0.020 at n = 40 000 for
the ECAL observables). A JSD, an S_JSD or a classifier AUC means something only next to
this *floor*, the reference-vs-reference value at the same ``n``.

**Histogram floors** (:func:`jsd_floors`) are estimated from the reference sample alone,
by an *energy-local bootstrap*: generated showers are made at the reference's incident
energies (shower ``i`` of both samples has energy ``E_i``), so the floor must be that of
two samples that share their energies. Each replica draws two pseudo-samples; for every
reference shower ``i`` the two pseudo-samples take two *different* showers chosen at
random among the ``2 window + 1`` reference showers nearest in incident energy
(:func:`energy_local_pairs`). Each pseudo-sample has ``n`` showers at (almost) the
energies of the reference, the difference of any bin content between them has the
variance of two independent samples at those energies, and their JSD on the report's
binning estimates the floor; the mean over replicas is the floor and the standard deviation over replicas its
spread (the scatter of a perfect model's JSD from one sample to the next). Per-shower
quantities make this exact for every histogram: scalar observables, the per-shower
longitudinal and radial profiles (energy-weighted histograms are sums over showers), and
the per-shower hit histograms of the reference
(:attr:`~offline.showers.summary.ShowerSummary.hit_counts_per_shower`; without them the
hit-energy floor falls back to two multinomial draws of the pooled spectrum, which
ignores the correlation of hits within a shower and so underestimates it).

Thirty replicas by default: the energy-weighted profiles are dominated by a few bins (the
two innermost rings hold 84 % of the ECAL radial profile), so their JSD behaves like a
χ with few degrees of freedom and has a wide spread (radial profile at n = 40 000:
floor 0.00077 ± 0.00032 from 40 replicas, while 10 replicas had once given ± 0.0002 and
flagged an independent reference sample at 0.0013; three independent reference pairs
at the same energies gave 0.00056, 0.00080 and 0.00107, on the floor).

**Classifier floors** need no resampling: for samples from one distribution the AUC is
0.5 with the exact Mann-Whitney spread ``sqrt((m + n + 1) / (12 m n))`` at the test
sizes (:func:`offline.showers.auc_error.null_auc_error`), and the classifier JSD is 0
within the estimator's own error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from offline.showers.jsd import HistogramPair, histogram_with_overflow, jensen_shannon_distance
from offline.showers.summary import ShowerSummary

__all__ = ["JSDFloors", "energy_local_pairs", "jsd_floors"]


@dataclass(frozen=True)
class JSDFloors:
    """Reference-vs-reference JSDs at the reference's sample size.

    Attributes:
        jsd: observable -> floor (mean over replicas).
        jsd_spread: observable -> standard deviation over replicas.
        s_jsd: floor of S_JSD (mean over replicas of the replica's S_JSD).
        s_jsd_spread: its standard deviation over replicas.
        n: showers per pseudo-sample.
        n_replicas: replicas drawn.
        window: energy neighbours on each side.
    """

    jsd: dict[str, float]
    jsd_spread: dict[str, float]
    s_jsd: float
    s_jsd_spread: float
    n: int
    n_replicas: int
    window: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (the ``floors`` entry of ``metrics.json`` without the classifier)."""
        return {
            "n": self.n,
            "method": (
                f"energy-local bootstrap of the reference ({self.n_replicas} replicas, "
                f"{2 * self.window + 1} energy neighbours): mean over replicas, spread = std"
            ),
            "jsd": dict(self.jsd),
            "jsd_spread": dict(self.jsd_spread),
            "s_jsd": self.s_jsd,
            "s_jsd_spread": self.s_jsd_spread,
        }


def energy_local_pairs(
    energies: np.ndarray, rng: np.random.Generator, window: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of two pseudo-samples: for each shower, two *different* energy neighbours.

    Shower ``i`` (at position ``p`` in incident-energy order) gets the window of
    ``2 window + 1`` consecutive positions around ``p`` (shifted inwards at the ends);
    the two pseudo-samples take two distinct members of it. Drawing the two without
    replacement makes the variance of the difference of any bin content exactly that of
    two independent samples at the same energies (two draws *with* replacement would
    share showers and understate it by the factor ``1 - 1/(2 window + 1)``).

    Args:
        energies: ``(N,)`` incident energies.
        rng: random generator.
        window: neighbours on each side in incident-energy order (at least 1).

    Returns:
        ``(first, second)``: ``(N,)`` integer indices into ``energies`` each; entry ``i``
        of both is a neighbour of shower ``i``, and the two are never equal.

    Example:
        >>> a, b = energy_local_pairs(np.array([10.0, 50.0, 20.0, 90.0]), np.random.default_rng(0), 1)
        >>> bool(np.all(a != b)), sorted(set(a.tolist()) | set(b.tolist()))
        (True, [0, 1, 2, 3])
    """
    e = np.asarray(energies, dtype=np.float64).reshape(-1)
    size = 2 * window + 1
    if window < 1 or e.size < size:
        msg = f"need window >= 1 and at least {size} showers, got window {window} and {e.size} showers"
        raise ValueError(msg)
    order = np.lexsort((rng.random(e.size), e))
    start = np.clip(np.arange(e.size) - window, 0, e.size - size)
    first = rng.integers(0, size, e.size)
    second = (first + rng.integers(1, size, e.size)) % size
    out_first = np.empty(e.size, dtype=np.int64)
    out_second = np.empty(e.size, dtype=np.int64)
    out_first[order] = order[start + first]
    out_second[order] = order[start + second]
    return out_first, out_second


def _hit_slice(reference: ShowerSummary, pair: HistogramPair) -> tuple[int, int]:
    lo = int(np.argmin(np.abs(reference.hit_edges - pair.edges[0])))
    return lo, lo + pair.edges.size - 1


def _crop(counts: np.ndarray, lo: int, hi: int) -> np.ndarray:
    out = counts[lo:hi].astype(np.float64)
    out[0] += counts[:lo].sum()
    out[-1] += counts[hi:].sum()
    return out


def _replica_histograms(
    reference: ShowerSummary,
    histograms: Mapping[str, HistogramPair],
    scalars: Mapping[str, np.ndarray],
    idx: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    obs = reference.observables
    out: dict[str, np.ndarray] = {}
    for name, pair in histograms.items():
        if name in scalars:
            out[name] = histogram_with_overflow(scalars[name][idx], pair.edges)
        elif name == "longitudinal_profile":
            out[name] = obs.longitudinal_profile[idx].sum(axis=0)
        elif name == "radial_profile":
            out[name] = obs.radial_profile[idx].sum(axis=0)
        elif name == "hit_energy":
            lo, hi = _hit_slice(reference, pair)
            per_shower = reference.hit_counts_per_shower
            if per_shower is not None:
                out[name] = _crop(per_shower[idx].sum(axis=0, dtype=np.int64), lo, hi)
            else:
                total = int(reference.hit_counts.sum())
                p = reference.hit_counts / max(reference.hit_counts.sum(), 1.0)
                out[name] = _crop(rng.multinomial(total, p), lo, hi)
    return out


def jsd_floors(
    reference: ShowerSummary,
    histograms: Mapping[str, HistogramPair],
    *,
    n_replicas: int = 30,
    window: int = 2,
    seed: int = 0,
) -> JSDFloors:
    """Floors of every histogram JSD and of S_JSD by the energy-local bootstrap.

    Args:
        reference: the reference sample's summary (ideally with per-shower hits).
        histograms: the report's histogram pairs (their edges are reused).
        n_replicas: replicas (pairs of pseudo-samples).
        window: energy neighbours on each side.
        seed: random seed.

    Returns:
        Mean and spread of each floor.

    Raises:
        ValueError: fewer than two replicas or an unknown histogram name.
    """
    if n_replicas < 2:
        msg = f"n_replicas must be at least 2, got {n_replicas}"
        raise ValueError(msg)
    scalars = reference.observables.scalars()
    known = set(scalars) | {"longitudinal_profile", "radial_profile", "hit_energy"}
    unknown = sorted(set(histograms) - known)
    if unknown:
        msg = f"no floor recipe for histograms {unknown}"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    values: dict[str, list[float]] = {name: [] for name in histograms}
    s_values = []
    for _ in range(n_replicas):
        idx1, idx2 = energy_local_pairs(reference.energies, rng, window)
        first = _replica_histograms(reference, histograms, scalars, idx1, rng)
        second = _replica_histograms(reference, histograms, scalars, idx2, rng)
        replica = []
        for name in histograms:
            d = jensen_shannon_distance(first[name], second[name])
            values[name].append(d)
            replica.append(d)
        s_values.append(float(np.mean(replica)))
    return JSDFloors(
        jsd={k: float(np.mean(v)) for k, v in values.items()},
        jsd_spread={k: float(np.std(v, ddof=1)) for k, v in values.items()},
        s_jsd=float(np.mean(s_values)),
        s_jsd_spread=float(np.std(s_values, ddof=1)),
        n=len(reference),
        n_replicas=n_replicas,
        window=window,
    )
