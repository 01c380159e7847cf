"""Kernel density estimate of the BIB-AE latent space, with rejection sampling by energy.

arXiv 2102.12491 (and 2005.05334, sec. 5): sampling the decoder's latents from N(0, 1)
ignores that the encoded training showers do not fill N(0, 1) exactly; drawing them
instead from a KDE fitted to the encoded training showers improves every observable.
The incident energy is one more KDE dimension (latents and energy in one KDE), so that
the latents come with the correlations they have at a given energy; showers at a
*specific* energy are drawn by rejection: KDE draws are kept when their energy lies
within a tolerance of the requested one. The visible-energy variant (test-beam study,
thesis ch. 8) adds the visible energy sum as a further dimension.

The kernel is a Gaussian with the points' covariance times Scott's factor
``n^(-1/(d+4))`` (times ``bandwidth_factor``).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["LatentKDE"]


class LatentKDE:
    """Gaussian KDE over ``(n, d)`` points.

    Args:
        dims: dimensions ``d`` of the points.
        max_points: points kept at most (later ones are ignored).
        bandwidth_factor: multiplies Scott's factor.

    Example:
        >>> kde = LatentKDE(2, max_points=1000)
        >>> kde.add(torch.randn(500, 2))
        >>> g = torch.Generator().manual_seed(0)
        >>> x = kde.sample_at(1, torch.tensor([0.5, -0.2]), 0.05, g)
        >>> bool(((x[:, 1] - torch.tensor([0.5, -0.2])).abs() <= 0.05 * torch.tensor([0.5, 0.2])).all())
        True
    """

    def __init__(self, dims: int, max_points: int = 50_000, bandwidth_factor: float = 1.0) -> None:
        self.dims, self.max_points, self.bandwidth_factor = dims, max_points, float(bandwidth_factor)
        self.points = torch.zeros(0, dims)
        self.cholesky = torch.zeros(dims, dims)

    def __repr__(self) -> str:
        return f"LatentKDE(dims={self.dims}, points={self.n_points}, max_points={self.max_points})"

    @property
    def n_points(self) -> int:
        """Points held."""
        return int(self.points.shape[0])

    @property
    def fitted(self) -> bool:
        """Whether there are enough points to sample (more than ``dims``)."""
        return self.n_points > self.dims

    def add(self, points: torch.Tensor) -> None:
        """Add points (up to ``max_points`` in all) and refit the bandwidth.

        Raises:
            ValueError: wrong width or non-finite values.
        """
        points = points.detach().to(self.points.device, torch.float32)
        if points.dim() != 2 or points.shape[1] != self.dims:
            msg = f"LatentKDE.add: points must have shape (n, {self.dims}), got {tuple(points.shape)}"
            raise ValueError(msg)
        if not bool(torch.isfinite(points).all()):
            msg = "LatentKDE.add: points hold non-finite values"
            raise ValueError(msg)
        room = self.max_points - self.n_points
        if room > 0:
            self.points = torch.cat((self.points, points[:room]), 0)
        if self.fitted:
            self._fit_bandwidth()

    def _fit_bandwidth(self) -> None:
        x = self.points.double()
        covariance = torch.cov(x.T).reshape(self.dims, self.dims)
        factor = self.bandwidth_factor * self.n_points ** (-1.0 / (self.dims + 4))
        jitter = 1e-9 * torch.eye(self.dims, dtype=torch.float64, device=x.device) * covariance.diagonal().mean().clamp_min(1e-12)
        self.cholesky = (torch.linalg.cholesky(covariance + jitter) * factor).float()

    def _check(self) -> None:
        if not self.fitted:
            msg = f"LatentKDE has {self.n_points} points; it needs more than {self.dims} before sampling"
            raise ValueError(msg)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``(n, d)`` draws: a random point plus Gaussian kernel noise."""
        self._check()
        device = self.points.device
        index = torch.randint(self.n_points, (n,), generator=generator, device=device)
        noise = torch.randn(n, self.dims, generator=generator, device=device)
        return self.points[index] + noise @ self.cholesky.T

    def sample_at(
        self, column: int, targets: torch.Tensor, tolerance: float, generator: torch.Generator, *,
        proposals: int = 256, max_rounds: int = 200,
    ) -> torch.Tensor:
        """Rejection sampling: one draw per target whose ``column`` lies within tolerance.

        A draw is accepted for target ``t`` when ``|x[column] - t| <= tolerance * |t|``.

        Args:
            column: the conditioned dimension (e.g. the incident energy).
            targets: ``(n,)`` requested values.
            tolerance: relative tolerance.
            generator: random generator (on the KDE's device).
            proposals: draws per pending target per round.
            max_rounds: rounds before giving up.

        Returns:
            ``(n, d)`` accepted draws.

        Raises:
            ValueError: targets that no draw reached in ``max_rounds`` rounds (outside the
                KDE's range), naming some of them.
        """
        self._check()
        targets = targets.to(self.points.device, torch.float32).reshape(-1)
        out = torch.empty(targets.numel(), self.dims, device=self.points.device)
        pending = torch.arange(targets.numel(), device=self.points.device)
        half_width = tolerance * targets.abs()
        for _ in range(max_rounds):
            if pending.numel() == 0:
                return out
            draws = self.sample(pending.numel() * proposals, generator).view(pending.numel(), proposals, self.dims)
            ok = (draws[..., column] - targets[pending, None]).abs() <= half_width[pending, None]
            accepted = ok.any(1)
            first = ok.float().argmax(1)
            rows = pending[accepted]
            out[rows] = draws[accepted, first[accepted]]
            pending = pending[~accepted]
        if pending.numel():
            shown = targets[pending[:5]].tolist()
            lo, hi = float(self.points[:, column].min()), float(self.points[:, column].max())
            msg = (
                f"LatentKDE.sample_at: no draw within {tolerance:.3g} (relative) of {pending.numel()} targets, e.g. "
                f"{shown}, after {max_rounds} rounds; the KDE's column {column} spans [{lo:.4g}, {hi:.4g}]"
            )
            raise ValueError(msg)
        return out

    # ------------------------------------------------------------------ state
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """``points`` and ``cholesky``."""
        return {"points": self.points, "cholesky": self.cholesky}

    def state_json(self) -> dict[str, Any]:
        """Counters (for checks on load)."""
        return {"n_points": self.n_points}

    def load(self, points: torch.Tensor, cholesky: torch.Tensor) -> None:
        """Restore from :meth:`state_tensors`.

        Raises:
            ValueError: wrong shapes (named).
        """
        if points.dim() != 2 or points.shape[1] != self.dims or cholesky.shape != (self.dims, self.dims):
            msg = (
                f"LatentKDE.load: expected points (n, {self.dims}) and cholesky ({self.dims}, {self.dims}), got "
                f"{tuple(points.shape)} and {tuple(cholesky.shape)}"
            )
            raise ValueError(msg)
        self.points = points.to(self.points.device, torch.float32).clone()
        self.cholesky = cholesky.to(self.points.device, torch.float32).clone()

    def to(self, device: torch.device | str) -> LatentKDE:
        """Move to ``device``; return self."""
        self.points, self.cholesky = self.points.to(device), self.cholesky.to(device)
        return self
