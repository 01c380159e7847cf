"""Log-transform and standardisation of event features for a flow.

``u = (t(x) - mean) / std`` per column, where ``t`` is ``log`` for the columns listed in
``log_columns`` and the identity otherwise. ``mean`` and ``std`` are fitted once (on the
first buffer) and then frozen, so that every later buffer is mapped the same way and
the flow's density stays comparable across the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

__all__ = ["LogStandardizer"]


class LogStandardizer:
    """Per-column ``log`` (optional) followed by a frozen standardisation.

    Args:
        columns: feature column names, in flow order.
        log_columns: the subset of ``columns`` that is log-transformed (must be > 0).
        device: where the fitted mean and std live.

    Raises:
        ValueError: if a log column is not among the columns.

    Example:
        >>> scaler = LogStandardizer(["mass"], ["mass"])
        >>> scaler.fit(torch.tensor([[1.0], [100.0]]))
        >>> scaler.forward(torch.tensor([[10.0]])).tolist()
        [[0.0]]
    """

    def __init__(self, columns: Sequence[str], log_columns: Sequence[str], device: torch.device | str = "cpu") -> None:
        unknown = [c for c in log_columns if c not in columns]
        if unknown:
            msg = f"log_columns {unknown} are not in columns {list(columns)}"
            raise ValueError(msg)
        self.columns = list(columns)
        self.log_columns = list(log_columns)
        self.is_log = torch.tensor([c in self.log_columns for c in self.columns], device=device)
        self.mean = torch.zeros(len(self.columns), device=device)
        self.std = torch.ones(len(self.columns), device=device)
        self.fitted = False

    def __repr__(self) -> str:
        return f"LogStandardizer(columns={self.columns}, log_columns={self.log_columns}, fitted={self.fitted})"

    def to(self, device: torch.device | str) -> LogStandardizer:
        """Move the fitted tensors to ``device`` and return self."""
        self.is_log, self.mean, self.std = (t.to(device) for t in (self.is_log, self.mean, self.std))
        return self

    def stack(self, data: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Stack the feature columns of ``data`` to ``(N, C)`` float32, checking them.

        Extra columns (``is_signal``, ``event_id``...) are ignored.

        Raises:
            ValueError: missing column, wrong shape, unequal lengths, NaN/inf, or
                non-positive values in a log column (names column and value).
        """
        missing = [c for c in self.columns if c not in data]
        if missing:
            msg = f"buffer lacks feature column(s) {missing}; it has {sorted(data)}"
            raise ValueError(msg)
        parts: list[torch.Tensor] = []
        for name in self.columns:
            values = torch.as_tensor(data[name])
            if values.dim() != 1:
                msg = f"column {name!r} must be 1-D (N,), got shape {tuple(values.shape)}"
                raise ValueError(msg)
            if parts and values.shape[0] != parts[0].shape[0]:
                msg = f"column {name!r} has {values.shape[0]} events, column {self.columns[0]!r} has {parts[0].shape[0]}"
                raise ValueError(msg)
            parts.append(values.to(self.mean.device, torch.float32))
        x = torch.stack(parts, dim=1)
        finite = torch.isfinite(x)
        if not bool(finite.all()):
            row, col = (~finite).nonzero()[0].tolist()
            msg = f"column {self.columns[col]!r} has a non-finite value {x[row, col].item()} at row {row}"
            raise ValueError(msg)
        bad = (x <= 0) & self.is_log
        if bool(bad.any()):
            row, col = bad.nonzero()[0].tolist()
            msg = (
                f"log column {self.columns[col]!r} needs positive values, got {x[row, col].item()} at row {row} "
                f"({int(bad[:, col].sum())} non-positive in this buffer)"
            )
            raise ValueError(msg)
        return x

    def _log(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(self.is_log, x.log(), x)

    def fit(self, x: torch.Tensor) -> None:
        """Fit mean and std on ``(N, C)`` physical values and freeze them.

        A column with zero spread (or a single event) keeps ``std = 1``.
        """
        t = self._log(x)
        self.mean = t.mean(dim=0)
        std = t.std(dim=0) if t.shape[0] > 1 else torch.ones_like(self.mean)
        self.std = torch.where(std > 0, std, torch.ones_like(std))
        self.fitted = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Physical ``(..., C)`` values to standardised flow coordinates."""
        return (self._log(x) - self.mean) / self.std

    def inverse(self, u: torch.Tensor) -> torch.Tensor:
        """Standardised flow coordinates ``(..., C)`` back to physical values."""
        t = u * self.std + self.mean
        return torch.where(self.is_log, t.exp(), t)

    def log_abs_det_jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """``log|det du/dx|`` per event for physical ``(..., C)`` values, shape ``(...)``."""
        log_x = torch.where(self.is_log, x.log(), torch.zeros_like(x))
        return -(log_x.sum(-1) + self.std.log().sum())
