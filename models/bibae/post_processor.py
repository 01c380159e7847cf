"""Post Processor: 1 × 1 × 1 convolutions that fix the cell-energy spectrum.

arXiv 2005.05334: a network acting on each cell separately (kernel size 1), conditioned
on the shower's energy sum and the incident energy, trained after the main model with
that model frozen; first towards the identity (MSE to its input), then with MSE plus the
sorted-kernel MMD on cell energies (:class:`models.bibae.losses.SortedKernelMMD`). It
restores the MIP peak of the cell spectrum that the decoder smears.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["PostProcessor"]

_SLOPE = 0.01


class PostProcessor(nn.Module):
    """``(b, L, X, Y)`` cells and ``(b, c)`` conditions → corrected cells (network units).

    Args:
        shape: ``(L, X, Y)`` of the showers.
        channels: channels of the 1 × 1 × 1 convolutions.
        layers: number of hidden 1 × 1 × 1 convolutions (>= 1).
        condition_dims: conditioning inputs besides the energy sum.

    Example:
        >>> pp = PostProcessor((30, 10, 10), 8, 2, 1)
        >>> pp(torch.rand(2, 30, 10, 10), torch.rand(2, 1)).shape
        torch.Size([2, 30, 10, 10])
    """

    def __init__(self, shape: tuple[int, int, int], channels: int, layers: int, condition_dims: int) -> None:
        super().__init__()
        self.shape = tuple(shape)
        half = max(1, channels // 2)
        self.condition = nn.Sequential(
            nn.Linear(condition_dims + 1, half), nn.LeakyReLU(_SLOPE), nn.Linear(half, half), nn.LeakyReLU(_SLOPE)
        )
        self.first = nn.Conv3d(2, channels, 1, bias=False)
        self.first_norm = nn.LayerNorm(list(self.shape))
        self.hidden = nn.ModuleList(
            nn.Conv3d(channels + half if i == 0 else channels, channels, 1, bias=False) for i in range(layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(list(self.shape)) for _ in range(layers))
        self.out = nn.Conv3d(channels, 1, 1, bias=False)

    def forward(self, showers: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Corrected, non-negative cells."""
        energy_sum = torch.log1p(showers.flatten(1).sum(1, keepdim=True) / 1000.0)
        c = self.condition(torch.cat((energy_sum, condition), 1))
        x = showers.unsqueeze(1)
        x = F.leaky_relu(self.first_norm(self.first(torch.cat((x, torch.log1p(x)), 1))), _SLOPE)
        for i, (conv, norm) in enumerate(zip(self.hidden, self.norms, strict=True)):
            if i == 0:  # conv(cat(x, c broadcast)) without building the broadcast: split the kernel
                channels = x.shape[1]
                weight = conv.weight
                x = F.conv3d(x, weight[:, :channels]) + F.linear(c, weight[:, channels:].flatten(1))[:, :, None, None, None]
            else:
                x = conv(x)
            x = F.leaky_relu(norm(x), _SLOPE)
        return F.relu(self.out(x)).squeeze(1)
