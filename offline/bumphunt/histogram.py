"""Mass binning and streaming histograms of ensemble samples.

The ensemble is sampled in chunks and every chunk is histogrammed at once, so sampling
10 M events from each of 20 members never holds more than one chunk in memory. Samples
outside the histogram range are counted (they matter for the normalisation) but not
binned.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

__all__ = ["MassBinning", "MemberHistograms", "histogram_members", "sample_member_histograms"]


@dataclass(frozen=True)
class MassBinning:
    """Uniform bins of the mass spectrum (paper: m in [0, 5], bins of 0.1).

    Attributes:
        low: lower edge (mass units).
        high: upper edge (mass units).
        width: bin width (mass units).
    """

    low: float = 0.0
    high: float = 5.0
    width: float = 0.1

    def __post_init__(self) -> None:
        if not (self.high > self.low and self.width > 0):
            msg = f"binning: need high > low and width > 0, got low={self.low}, high={self.high}, width={self.width}"
            raise ValueError(msg)
        n = (self.high - self.low) / self.width
        if abs(n - round(n)) > 1e-6:
            msg = f"binning: range [{self.low}, {self.high}] is not a whole number of bins of {self.width}"
            raise ValueError(msg)

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return round((self.high - self.low) / self.width)

    @property
    def edges(self) -> np.ndarray:
        """Bin edges, ``n_bins + 1`` values."""
        return np.round(self.low + self.width * np.arange(self.n_bins + 1), 12)

    @property
    def centers(self) -> np.ndarray:
        """Bin centres."""
        edges = self.edges
        return 0.5 * (edges[:-1] + edges[1:])


@njit(parallel=True, cache=True)
def _fill(
    values: np.ndarray, low: float, high: float, width: float, n_bins: int, out: np.ndarray
) -> None:
    for row in prange(values.shape[0]):
        for j in range(values.shape[1]):
            x = values[row, j]
            # Range check before the integer conversion: int() of a huge or infinite
            # quotient is undefined (INT64_MIN in practice) and would index out of bounds.
            if not (x >= low and x < high):  # also skips NaN
                continue
            k = int((x - low) / width)
            if k >= n_bins:  # x just below high, rounded up by the division
                k = n_bins - 1
            out[row, k] += 1.0


def histogram_members(
    values: np.ndarray, binning: MassBinning, out: np.ndarray | None = None
) -> np.ndarray:
    """Histogram each row of ``values`` (``(n_rows, n)``) into ``out`` (``(n_rows, n_bins)``).

    Bins are half-open ``[low, high)``; values outside (±inf, huge, negative) and NaN are
    not counted.

    Example:
        >>> histogram_members(np.array([[0.05, 0.15, 0.15, 7.0]]), MassBinning(0, 0.3, 0.1))
        array([[1., 2., 0.]])
    """
    values = np.atleast_2d(np.asarray(values))
    if out is None:
        out = np.zeros((values.shape[0], binning.n_bins))
    if out.shape != (values.shape[0], binning.n_bins):
        msg = f"histogram: output has shape {out.shape}, need {(values.shape[0], binning.n_bins)}"
        raise ValueError(msg)
    _fill(
        values, float(binning.low), float(binning.high), float(binning.width), binning.n_bins, out
    )
    return out


@dataclass
class MemberHistograms:
    """Per-member histograms of an ensemble's samples.

    Attributes:
        counts: ``(n_members, n_bins)`` sample counts.
        samples_per_member: samples drawn per member (inside and outside the range).
        binning: the bins.
    """

    counts: np.ndarray
    samples_per_member: int
    binning: MassBinning

    @property
    def n_members(self) -> int:
        """Number of ensemble members."""
        return int(self.counts.shape[0])

    def concatenate(self, other: MemberHistograms) -> MemberHistograms:
        """Members of both (shards of one ensemble sampled alike)."""
        if other.binning != self.binning or other.samples_per_member != self.samples_per_member:
            msg = "histograms: cannot combine ensembles sampled with different binning or sample sizes"
            raise ValueError(msg)
        return MemberHistograms(
            np.concatenate([self.counts, other.counts]), self.samples_per_member, self.binning
        )


def _chunk_seed(seed: int, chunk: int) -> int:
    return int(np.random.SeedSequence([seed, chunk]).generate_state(1, np.uint32)[0])


def sample_member_histograms(
    model: object,
    n_samples: int,
    binning: MassBinning,
    *,
    seed: int = 0,
    chunk_size: int = 1_000_000,
    column: str = "mass",
    progress: bool = True,
) -> MemberHistograms:
    """Sample every member ``n_samples`` times in chunks and histogram as it goes.

    Args:
        model: anything with ``sample(n, seed=...) -> {column: Tensor(n_members, n)}``.
        n_samples: samples per member.
        binning: histogram bins.
        seed: base seed; chunk ``k`` uses a seed derived from ``(seed, k)``.
        chunk_size: samples per member per call.
        column: the sampled column to histogram.
        progress: show a tqdm bar on stderr.

    Returns:
        The per-member histograms.

    Raises:
        ValueError: the model does not return ``column`` as a 2-D array of the asked size.
    """
    from tqdm import tqdm

    if n_samples <= 0 or chunk_size <= 0:
        msg = (
            f"sampling: n_samples and chunk_size must be positive, got {n_samples} and {chunk_size}"
        )
        raise ValueError(msg)
    counts: np.ndarray | None = None
    done = 0
    chunk = 0
    with tqdm(
        total=n_samples, desc="sampling", unit="ev/member", file=sys.stderr, disable=not progress
    ) as bar:
        while done < n_samples:
            n = min(chunk_size, n_samples - done)
            out = model.sample(n, seed=_chunk_seed(seed, chunk))  # type: ignore[attr-defined]
            if column not in out:
                msg = f"sampling: model returned columns {sorted(out)}, not {column!r}"
                raise ValueError(msg)
            values = out[column]
            values = (
                values.detach().to("cpu").numpy()
                if hasattr(values, "detach")
                else np.asarray(values)
            )
            if values.ndim != 2 or values.shape[1] != n:
                msg = f"sampling: expected {column!r} of shape (n_members, {n}), got {tuple(values.shape)}"
                raise ValueError(msg)
            if counts is None:
                counts = np.zeros((values.shape[0], binning.n_bins))
            histogram_members(values, binning, counts)
            done += n
            chunk += 1
            bar.update(n)
    assert counts is not None
    return MemberHistograms(counts, n_samples, binning)
