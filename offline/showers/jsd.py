"""Jensen-Shannon distances between observable histograms and the combined score S_JSD.

Histograms of generated and reference samples share the binning of the *reference*:
bins span the reference's 0.1 %-99.9 % quantile range (unit-wide bins for integer
observables with a small range), and values outside are counted in the first or last
bin, so a generated sample that leaks out of the reference range is penalised rather than
dropped.

The Jensen-Shannon distance (base 2) is ``sqrt(JS divergence)``, the same number as
:func:`scipy.spatial.distance.jensenshannon` with ``base=2``: 0 for identical histograms,
1 for histograms with disjoint support.

S_JSD (arXiv:2102.12491, appendix A): for ``M`` compared models (or training epochs) and
observables ``o``, ``S_JSD(m) = mean_o JSD_o(m) / mean_m' JSD_o(m')``, each observable's
distance normalised by its mean over the compared models, then averaged over observables.
With a single compared model every normalised term is ``1`` by construction, so the
normalisation carries no information; :func:`s_jsd` then reduces to the plain average
``mean_o JSD_o`` (equivalently: normalisers fixed to 1), unless explicit normalisers
(for example the per-observable means of an earlier model comparison) are passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "HistogramPair",
    "histogram_with_overflow",
    "jensen_shannon_distance",
    "reference_edges",
    "s_jsd",
    "s_jsd_models",
]


def jensen_shannon_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Base-2 Jensen-Shannon distance between two histograms (counts or densities).

    Args:
        p: non-negative bin contents.
        q: non-negative bin contents, same length.

    Returns:
        The distance in ``[0, 1]``.

    Raises:
        ValueError: on length mismatch, negative or non-finite contents, or an empty histogram.

    Example:
        >>> jensen_shannon_distance(np.array([1, 2, 3]), np.array([2, 4, 6]))
        0.0
        >>> jensen_shannon_distance(np.array([1, 0]), np.array([0, 5]))
        1.0
    """
    a = np.asarray(p, dtype=np.float64).reshape(-1)
    b = np.asarray(q, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        msg = f"histograms differ in length: {a.size} and {b.size} bins"
        raise ValueError(msg)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))) or np.any(a < 0) or np.any(b < 0):
        msg = "histogram contents must be finite and non-negative"
        raise ValueError(msg)
    if a.sum() <= 0 or b.sum() <= 0:
        msg = f"cannot compare an empty histogram (sums {a.sum()} and {b.sum()})"
        raise ValueError(msg)
    a = a / a.sum()
    b = b / b.sum()
    m = 0.5 * (a + b)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_a = np.where(a > 0, a * np.log2(a / m), 0.0).sum()
        kl_b = np.where(b > 0, b * np.log2(b / m), 0.0).sum()
    divergence = min(max(0.5 * (kl_a + kl_b), 0.0), 1.0)
    return float(np.sqrt(divergence))


def reference_edges(
    reference: np.ndarray,
    n_bins: int = 50,
    *,
    quantiles: tuple[float, float] = (0.001, 0.999),
    log: bool = False,
) -> np.ndarray:
    """Bin edges taken from the reference sample.

    Integer-valued samples whose range fits in ``n_bins`` get unit bins centred on the
    integers. ``log=True`` spaces the edges logarithmically (positive values only).

    Example:
        >>> reference_edges(np.array([0, 1, 1, 2, 3])).tolist()
        [-0.5, 0.5, 1.5, 2.5, 3.5]
    """
    x = np.asarray(reference, dtype=np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    if x.size == 0:
        msg = "reference sample is empty (or all non-finite); cannot derive bin edges"
        raise ValueError(msg)
    if np.all(x == np.round(x)) and x.max() - x.min() + 1 <= n_bins:
        return np.arange(x.min() - 0.5, x.max() + 1.0, 1.0)
    if log:
        x = x[x > 0]
        if x.size == 0:
            msg = "log binning needs positive reference values"
            raise ValueError(msg)
        lo, hi = np.quantile(np.log10(x), quantiles)
        if hi <= lo:
            hi = lo + 1e-6
        return 10.0 ** np.linspace(lo, hi, n_bins + 1)
    lo, hi = np.quantile(x, quantiles)
    if hi <= lo:
        half = max(abs(lo) * 1e-6, 1e-9)
        lo, hi = lo - half, hi + half
    return np.linspace(lo, hi, n_bins + 1)


def histogram_with_overflow(
    values: np.ndarray, edges: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Histogram in ``edges`` with out-of-range values counted in the first or last bin.

    NaN values are not counted.

    Example:
        >>> histogram_with_overflow(np.array([-5.0, 0.5, 1.5, 9.0]), np.array([0.0, 1.0, 2.0])).tolist()
        [2.0, 2.0]
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    w = None if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    keep = np.isfinite(x)
    x = x[keep]
    if w is not None:
        w = w[keep]
    edges = np.asarray(edges, dtype=np.float64)
    clipped = np.clip(x, edges[0], edges[-1])
    counts, _ = np.histogram(clipped, bins=edges, weights=w)
    return counts.astype(np.float64)


@dataclass(frozen=True)
class HistogramPair:
    """Reference and generated histograms of one observable on common edges.

    Attributes:
        edges: bin edges (from the reference).
        reference: reference bin contents.
        generated: generated bin contents.
        reference_variance: variance of each reference bin (``None``: Poisson, the counts).
        generated_variance: variance of each generated bin (``None``: Poisson).
    """

    edges: np.ndarray
    reference: np.ndarray
    generated: np.ndarray
    reference_variance: np.ndarray | None = None
    generated_variance: np.ndarray | None = None

    def variances(self) -> tuple[np.ndarray, np.ndarray]:
        """Bin variances ``(reference, generated)`` of the unnormalised contents."""
        ref = self.reference if self.reference_variance is None else self.reference_variance
        gen = self.generated if self.generated_variance is None else self.generated_variance
        return np.asarray(ref, dtype=np.float64), np.asarray(gen, dtype=np.float64)

    @property
    def distance(self) -> float:
        """Jensen-Shannon distance (base 2) between the two histograms."""
        return jensen_shannon_distance(self.reference, self.generated)

    @classmethod
    def from_samples(
        cls,
        reference: np.ndarray,
        generated: np.ndarray,
        n_bins: int = 50,
        *,
        log: bool = False,
    ) -> HistogramPair:
        """Histogram two samples on edges derived from ``reference``."""
        edges = reference_edges(reference, n_bins, log=log)
        return cls(
            edges,
            histogram_with_overflow(reference, edges),
            histogram_with_overflow(generated, edges),
        )


def s_jsd(jsd: Mapping[str, float], normalisers: Mapping[str, float] | None = None) -> float:
    """S_JSD of a single compared model: the (normalised) mean of per-observable JSDs.

    Args:
        jsd: observable -> Jensen-Shannon distance.
        normalisers: observable -> normalisation (its mean JSD over other compared
            models); default 1 for every observable, the single-model reduction.

    Returns:
        ``mean_o jsd[o] / normalisers[o]``.

    Example:
        >>> s_jsd({"a": 0.1, "b": 0.3})
        0.2
    """
    if not jsd:
        msg = "s_jsd needs at least one observable"
        raise ValueError(msg)
    norm = normalisers or {}
    missing = [k for k in norm if k not in jsd]
    if missing:
        msg = f"normalisers name observables without a JSD: {missing}"
        raise ValueError(msg)
    terms = []
    for name, value in jsd.items():
        scale = float(norm.get(name, 1.0))
        if not scale > 0:
            msg = f"normaliser of {name!r} must be positive, got {scale!r}"
            raise ValueError(msg)
        terms.append(float(value) / scale)
    return float(np.mean(terms))


def s_jsd_models(jsd_by_model: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """S_JSD of several compared models (or epochs), as in arXiv:2102.12491 appendix A.

    Args:
        jsd_by_model: model -> (observable -> JSD); every model must list the same observables.

    Returns:
        model -> S_JSD. With one model every value is exactly 1 (see the module docstring).

    Example:
        >>> s = s_jsd_models({"a": {"x": 0.1, "y": 0.2}, "b": {"x": 0.3, "y": 0.2}})
        >>> {k: round(v, 3) for k, v in s.items()}
        {'a': 0.75, 'b': 1.25}
    """
    if not jsd_by_model:
        msg = "s_jsd_models needs at least one model"
        raise ValueError(msg)
    names = list(jsd_by_model)
    observables = set(jsd_by_model[names[0]])
    for model in names[1:]:
        if set(jsd_by_model[model]) != observables:
            msg = f"model {model!r} lists observables {sorted(jsd_by_model[model])}, expected {sorted(observables)}"
            raise ValueError(msg)
    means = {o: float(np.mean([jsd_by_model[m][o] for m in names])) for o in observables}
    out = {}
    for model in names:
        terms = [
            jsd_by_model[model][o] / means[o] if means[o] > 0 else 1.0 for o in sorted(observables)
        ]
        out[model] = float(np.mean(terms))
    return out
