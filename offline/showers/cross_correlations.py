"""Pearson and Spearman correlations of one set of variables with another, with bootstrap errors.

:func:`cross_correlations` correlates every *row* variable (e.g. a BIB-AE latent mean) with
every *column* variable (e.g. a shower observable) over the same ``n`` showers:

* **Pearson** ``r``: covariance over the product of the standard deviations.
* **Spearman** ``rho``: the Pearson correlation of the ranks (ties get their average rank,
  so integer observables such as the number of hits are handled).
* **Error**: the standard deviation of the estimate over ``bootstrap`` replicas of the
  showers, drawn with replacement from a seeded generator (the same replicas for every
  entry and both coefficients). It makes no assumption on the joint distribution; for
  bivariate-normal data it agrees with the Fisher-z error propagated back to ``r``,
  ``(1 - r²) / sqrt(n - 3)``, which the tests check.

A variable that is constant over the showers has no correlation: its entries are NaN
and its name is listed in :attr:`CrossCorrelation.constant` (a replica in which a
variable happens to be constant is left out of that entry's error).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

__all__ = ["CrossCorrelation", "correlation_block", "cross_correlations"]


def correlation_block(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``rows`` ``(n, k)`` with each of ``columns``.

    Returns:
        ``(k, m)``; NaN where either variable is constant.

    Example:
        >>> x = np.array([[1.0], [2.0], [3.0]])
        >>> correlation_block(x, np.hstack([2 * x, -x, np.ones_like(x)])).round(6).tolist()
        [[1.0, -1.0, nan]]
    """
    a = np.asarray(rows, dtype=np.float64)
    b = np.asarray(columns, dtype=np.float64)
    a_constant = a.max(axis=0) == a.min(axis=0)
    b_constant = b.max(axis=0) == b.min(axis=0)
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    norm_a = np.sqrt(np.einsum("ij,ij->j", a, a))
    norm_b = np.sqrt(np.einsum("ij,ij->j", b, b))
    safe_a = np.where(a_constant, 1.0, norm_a)
    safe_b = np.where(b_constant, 1.0, norm_b)
    matrix = np.clip((a.T @ b) / np.outer(safe_a, safe_b), -1.0, 1.0)
    matrix[a_constant, :] = np.nan
    matrix[:, b_constant] = np.nan
    return matrix


def _ranks(values: np.ndarray) -> np.ndarray:
    return np.asarray(rankdata(values, method="average", axis=0), dtype=np.float64)


@dataclass(frozen=True)
class CrossCorrelation:
    """Correlations of the row variables with the column variables, with their errors.

    Attributes:
        rows: names of the row variables.
        columns: names of the column variables.
        pearson: ``(k, m)`` Pearson coefficients.
        spearman: ``(k, m)`` Spearman coefficients.
        pearson_error: ``(k, m)`` bootstrap standard deviations of :attr:`pearson`.
        spearman_error: ``(k, m)`` bootstrap standard deviations of :attr:`spearman`.
        n: number of showers (pairs).
        bootstrap: number of bootstrap replicas behind the errors.
        constant: names of variables that are constant (their entries are NaN).
    """

    rows: list[str]
    columns: list[str]
    pearson: np.ndarray
    spearman: np.ndarray
    pearson_error: np.ndarray
    spearman_error: np.ndarray
    n: int
    bootstrap: int
    constant: list[str]

    def entry(self, row: str, column: str) -> dict[str, float | None]:
        """``pearson``, ``spearman`` and their ``*_error`` of one pair (None for NaN).

        Raises:
            KeyError: an unknown row or column (the known ones are named).
        """
        if row not in self.rows or column not in self.columns:
            msg = (
                f"no correlation of {row!r} with {column!r}; "
                f"rows {self.rows}, columns {self.columns}"
            )
            raise KeyError(msg)
        i, j = self.rows.index(row), self.columns.index(column)
        values = {
            "pearson": self.pearson[i, j],
            "pearson_error": self.pearson_error[i, j],
            "spearman": self.spearman[i, j],
            "spearman_error": self.spearman_error[i, j],
        }
        return {key: None if math.isnan(v) else float(v) for key, v in values.items()}

    def to_json(self) -> dict[str, object]:
        """``{"pearson": {row: {column: {"value", "error"}}}, "spearman": ...}`` and settings."""
        out: dict[str, object] = {
            "n": self.n,
            "bootstrap_replicas": self.bootstrap,
            "constant": list(self.constant),
        }
        for kind in ("pearson", "spearman"):
            table: dict[str, dict[str, dict[str, float | None]]] = {}
            for row in self.rows:
                table[row] = {}
                for column in self.columns:
                    entry = self.entry(row, column)
                    table[row][column] = {"value": entry[kind], "error": entry[f"{kind}_error"]}
            out[kind] = table
        return out


def _as_matrix(variables: Mapping[str, np.ndarray], what: str) -> tuple[list[str], np.ndarray]:
    names = list(variables)
    if not names:
        msg = f"cross_correlations needs at least one {what} variable"
        raise ValueError(msg)
    columns = [np.asarray(variables[name], dtype=np.float64).reshape(-1) for name in names]
    lengths = {name: col.size for name, col in zip(names, columns, strict=True)}
    if len(set(lengths.values())) != 1:
        msg = f"{what} variables differ in length: {lengths}"
        raise ValueError(msg)
    matrix = np.stack(columns, axis=1)
    bad = [name for name, col in zip(names, columns, strict=True) if not np.all(np.isfinite(col))]
    if bad:
        msg = f"{what} variables {bad} hold non-finite values"
        raise ValueError(msg)
    return names, matrix


def cross_correlations(
    rows: Mapping[str, np.ndarray],
    columns: Mapping[str, np.ndarray],
    *,
    bootstrap: int = 200,
    seed: int = 0,
) -> CrossCorrelation:
    """Pearson and Spearman correlations of every row variable with every column variable.

    Args:
        rows: name -> ``(n,)`` values (e.g. latent means).
        columns: name -> ``(n,)`` values over the same showers (e.g. observables).
        bootstrap: replicas for the errors (0: no errors, NaN; otherwise at least 2).
        seed: seed of the replicas (same seed, same errors).

    Returns:
        The coefficients and their bootstrap errors.

    Raises:
        ValueError: no variables, unequal lengths, fewer than 3 showers, non-finite values,
            ``bootstrap`` negative or 1.

    Example:
        >>> x = np.arange(10.0)
        >>> table = cross_correlations({"x": x}, {"x^3": x**3, "-x": -x}, bootstrap=0)
        >>> table.spearman.round(6).tolist(), bool(table.pearson[0, 0] < 1)
        ([[1.0, -1.0]], True)
    """
    if (
        isinstance(bootstrap, bool)
        or not isinstance(bootstrap, int)
        or bootstrap < 0
        or bootstrap == 1
    ):
        msg = f"bootstrap must be 0 (no errors) or an integer >= 2 (replicas), got {bootstrap!r}"
        raise ValueError(msg)
    row_names, a = _as_matrix(rows, "row")
    column_names, b = _as_matrix(columns, "column")
    if a.shape[0] != b.shape[0]:
        msg = (
            f"row variables have {a.shape[0]} values, column variables {b.shape[0]}: "
            "they must describe the same showers"
        )
        raise ValueError(msg)
    n = a.shape[0]
    if n < 3:
        msg = f"cross_correlations needs at least 3 showers, got {n}"
        raise ValueError(msg)
    k = a.shape[1]
    both = np.hstack((a, b))
    pearson = correlation_block(a, b)
    ranks = _ranks(both)
    spearman = correlation_block(ranks[:, :k], ranks[:, k:])
    constant = [
        name
        for name, col in zip(row_names + column_names, both.T, strict=True)
        if col.max() == col.min()
    ]
    pearson_error = np.full(pearson.shape, np.nan)
    spearman_error = np.full(pearson.shape, np.nan)
    if bootstrap:
        rng = np.random.default_rng(seed)
        p_reps = np.empty((bootstrap, *pearson.shape))
        s_reps = np.empty_like(p_reps)
        for rep in range(bootstrap):
            sample = both[rng.integers(0, n, n)]
            p_reps[rep] = correlation_block(sample[:, :k], sample[:, k:])
            sample_ranks = _ranks(sample)
            s_reps[rep] = correlation_block(sample_ranks[:, :k], sample_ranks[:, k:])
        defined = ~np.isnan(pearson)
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", RuntimeWarning
            )  # a replica where a variable is constant
            pearson_error[defined] = np.nanstd(p_reps, axis=0, ddof=1)[defined]
            spearman_error[defined] = np.nanstd(s_reps, axis=0, ddof=1)[defined]
    return CrossCorrelation(
        rows=row_names,
        columns=column_names,
        pearson=pearson,
        spearman=spearman,
        pearson_error=pearson_error,
        spearman_error=spearman_error,
        n=n,
        bootstrap=bootstrap,
        constant=constant,
    )
