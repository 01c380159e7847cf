"""Online Poisson bootstrap: one independent Poisson(1) weight per event and member.

The online bootstrap (Oza & Russell 2001; used by "Ephemeral Learning",
arXiv 2202.09375) replaces resampling a fixed data set with replacement by giving every
event that streams past an independent ``Poisson(1)`` count per ensemble member. Over a
long stream each member then sees a bootstrap replicate of the data, and the spread of
the members estimates the statistical uncertainty of the fit.

Weights are drawn from a seeded :class:`torch.Generator` on the model's device, and the
generator can be re-keyed (e.g. per buffer), so a run resumed from a snapshot draws the
same weights as an uninterrupted one.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["PoissonBootstrap", "derive_seed"]


def derive_seed(*keys: int) -> int:
    """Mix integer keys into one 63-bit seed (stable across runs and platforms).

    Args:
        keys: non-negative integers (base seed, buffer index, stream id, ...).

    Returns:
        A seed suitable for :meth:`torch.Generator.manual_seed`.

    Example:
        >>> derive_seed(0, 1) == derive_seed(0, 1) != derive_seed(0, 2)
        True
    """
    words = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31 | int(words[1])) & ((1 << 63) - 1)


class PoissonBootstrap:
    """Per-member, per-event Poisson(1) weights for an online bootstrap.

    Args:
        n_members: ensemble size (rows of the weight matrix).
        seed: base seed of the generator.
        device: where the weights (and the generator) live.

    Raises:
        ValueError: if ``n_members`` is not a positive integer.

    Example:
        >>> bootstrap = PoissonBootstrap(n_members=3, seed=1)
        >>> bootstrap.weights(5).shape
        torch.Size([3, 5])
    """

    def __init__(self, n_members: int, seed: int = 0, device: torch.device | str = "cpu") -> None:
        if not isinstance(n_members, int) or n_members < 1:
            msg = f"PoissonBootstrap: n_members must be a positive integer, got {n_members!r}"
            raise ValueError(msg)
        self.n_members = n_members
        self.seed = int(seed)
        self.device = torch.device(device)
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(derive_seed(self.seed))
        self._rates = torch.ones(0, device=self.device)

    def __repr__(self) -> str:
        return f"PoissonBootstrap(n_members={self.n_members}, seed={self.seed}, device={str(self.device)!r})"

    def reseed(self, *keys: int) -> None:
        """Restart the generator from ``derive_seed(seed, *keys)`` (e.g. keys = buffer index)."""
        self._generator.manual_seed(derive_seed(self.seed, *keys))

    def to(self, device: torch.device | str) -> PoissonBootstrap:
        """Move to ``device`` (the generator restarts from the base seed) and return self."""
        device = torch.device(device)
        if device != self.device:
            self.device = device
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(derive_seed(self.seed))
            self._rates = torch.ones(0, device=device)
        return self

    def weights(self, n_events: int) -> torch.Tensor:
        """Draw a ``(n_members, n_events)`` float32 tensor of independent Poisson(1) counts.

        Raises:
            ValueError: if ``n_events`` is negative.
        """
        if n_events < 0:
            msg = f"PoissonBootstrap.weights: n_events must be >= 0, got {n_events!r}"
            raise ValueError(msg)
        size = self.n_members * n_events
        if self._rates.numel() < size:
            self._rates = torch.ones(size, device=self.device)
        rates = self._rates[:size].view(self.n_members, n_events)
        return torch.poisson(rates, generator=self._generator)
