"""Stochastic weight averaging (SWA): a running arithmetic mean of model weights.

Izmailov et al., "Averaging Weights Leads to Wider Optima and Better Generalization"
(arXiv 1803.05407). Here the average is updated once per buffer (after a warm-up of
buffers chosen by the model), not per step: the average of the weights at the end of
buffers ``k+1 .. n`` is what an OnlineFlow ensemble samples from.

The average is kept as ``average += (weights - average) / (count + 1)`` on the weights'
own device and dtype; it is exactly the arithmetic mean up to floating-point rounding.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["StochasticWeightAverage"]


class StochasticWeightAverage:
    """Running arithmetic mean of named weight tensors.

    Attributes:
        count: how many weight sets have been averaged.
        average: name → averaged tensor (empty until the first :meth:`update`).

    Example:
        >>> swa = StochasticWeightAverage()
        >>> swa.update({"w": torch.tensor([1.0])})
        >>> swa.update({"w": torch.tensor([3.0])})
        >>> swa.count, swa.average["w"].item()
        (2, 2.0)
    """

    def __init__(self) -> None:
        self.count = 0
        self.average: dict[str, torch.Tensor] = {}

    def __repr__(self) -> str:
        return f"StochasticWeightAverage(count={self.count}, tensors={sorted(self.average)})"

    @torch.no_grad()
    def update(self, weights: Mapping[str, torch.Tensor]) -> None:
        """Add one set of weights to the average.

        Raises:
            ValueError: if the names or shapes differ from those averaged so far.
        """
        if self.count == 0:
            self.average = {k: v.detach().clone() for k, v in weights.items()}
            self.count = 1
            return
        if set(weights) != set(self.average):
            msg = f"SWA update: weight names {sorted(weights)} differ from averaged names {sorted(self.average)}"
            raise ValueError(msg)
        fraction = 1.0 / (self.count + 1)
        for name, value in weights.items():
            if value.shape != self.average[name].shape:
                msg = f"SWA update: weight {name!r} has shape {tuple(value.shape)}, expected {tuple(self.average[name].shape)}"
                raise ValueError(msg)
            self.average[name].lerp_(value.detach().to(self.average[name].dtype), fraction)
        self.count += 1

    def load(self, average: Mapping[str, torch.Tensor], count: int) -> None:
        """Restore an average of ``count`` weight sets (``count == 0`` clears it).

        Raises:
            ValueError: for a negative ``count`` or a positive ``count`` without tensors.
        """
        if count < 0 or (count > 0 and not average):
            msg = f"SWA load: count must be >= 0 and come with tensors, got count={count!r} with {len(average)} tensors"
            raise ValueError(msg)
        self.count = int(count)
        self.average = {k: v.detach().clone() for k, v in average.items()} if count else {}

    def to(self, device: torch.device | str) -> StochasticWeightAverage:
        """Move the averaged tensors to ``device`` and return self."""
        self.average = {k: v.to(device) for k, v in self.average.items()}
        return self
