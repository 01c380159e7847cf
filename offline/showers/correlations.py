"""Pearson correlation matrices of shower observables and their difference.

The difference is ``generated - reference``: zero where the generator reproduces the
correlations of the reference. Observables that are constant in a sample have an
undefined correlation; their rows and columns are set to 0 (and 1 on the diagonal) so the
matrices stay comparable, and the names of such observables are reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["CorrelationComparison", "compare_correlations", "pearson_matrix"]


def pearson_matrix(columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """Pearson correlation matrix of named columns.

    Args:
        columns: name -> ``(N,)`` values (all the same length, at least two rows).

    Returns:
        ``(matrix, constant)``: the ``(k, k)`` matrix in the order of ``columns`` and the
        names of constant columns (whose off-diagonal entries are set to 0).

    Example:
        >>> m, const = pearson_matrix({"a": np.array([1.0, 2, 3]), "b": np.array([2.0, 4, 6])})
        >>> m.round(6).tolist(), const
        ([[1.0, 1.0], [1.0, 1.0]], [])
    """
    names = list(columns)
    if not names:
        msg = "pearson_matrix needs at least one column"
        raise ValueError(msg)
    data = np.stack([np.asarray(columns[n], dtype=np.float64).reshape(-1) for n in names], axis=0)
    if data.shape[1] < 2:
        msg = f"pearson_matrix needs at least two rows, got {data.shape[1]}"
        raise ValueError(msg)
    if not np.all(np.isfinite(data)):
        bad = [n for n, row in zip(names, data, strict=True) if not np.all(np.isfinite(row))]
        msg = f"non-finite values in columns {bad}"
        raise ValueError(msg)
    std = data.std(axis=1)
    constant = [n for n, s in zip(names, std, strict=True) if s == 0]
    centred = data - data.mean(axis=1, keepdims=True)
    safe = np.where(std > 0, std, 1.0)
    matrix = (centred @ centred.T) / data.shape[1] / np.outer(safe, safe)
    matrix[std == 0, :] = 0.0
    matrix[:, std == 0] = 0.0
    np.fill_diagonal(matrix, 1.0)
    return np.clip(matrix, -1.0, 1.0), constant


@dataclass(frozen=True)
class CorrelationComparison:
    """Correlation matrices of both samples and their difference.

    Attributes:
        names: observable names (row and column order).
        reference: reference matrix.
        generated: generated matrix.
        constant: observables constant in either sample.
    """

    names: list[str]
    reference: np.ndarray
    generated: np.ndarray
    constant: list[str]

    @property
    def difference(self) -> np.ndarray:
        """``generated - reference``."""
        return self.generated - self.reference

    @property
    def max_abs_difference(self) -> float:
        """Largest absolute entry of :attr:`difference`."""
        return float(np.abs(self.difference).max())

    @property
    def mean_abs_difference(self) -> float:
        """Mean absolute off-diagonal entry of :attr:`difference`."""
        k = len(self.names)
        if k < 2:
            return 0.0
        off = ~np.eye(k, dtype=bool)
        return float(np.abs(self.difference[off]).mean())


def compare_correlations(
    reference: Mapping[str, np.ndarray], generated: Mapping[str, np.ndarray]
) -> CorrelationComparison:
    """Pearson matrices of both samples on the same observables, and their difference.

    Raises:
        ValueError: when the two samples name different observables.
    """
    if list(reference) != list(generated):
        msg = f"samples list different observables: {list(reference)} vs {list(generated)}"
        raise ValueError(msg)
    ref, const_ref = pearson_matrix(reference)
    gen, const_gen = pearson_matrix(generated)
    constant = sorted(set(const_ref) | set(const_gen))
    return CorrelationComparison(list(reference), ref, gen, constant)
