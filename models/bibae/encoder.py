"""BIB-AE encoder: 3-D convolutions with LayerNorm → dense → Gaussian latent.

arXiv 2005.05334: the shower (in units of ``cell_scale_mev``, as ``log(1 + cells)`` so
that the MIP hits and the dense core both matter) passes stride-2 convolutions, is
flattened, joined by the conditions (incident energy, optionally the visible energy
sum) and mapped by two dense layers to the mean and log-variance of ``latent_dims``
Gaussian latents.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.bibae.layers import ConvNorm3d, leaky

__all__ = ["Encoder"]


class Encoder(nn.Module):
    """Shower + conditions → ``(mu, logvar)`` of the latent Gaussian.

    Args:
        shape: ``(L, X, Y)`` of the input grid.
        channels: channels of the stride-2 convolutions.
        hidden: width of the dense layers.
        latent_dims: number of latents.
        condition_dims: conditioning inputs.

    Example:
        >>> enc = Encoder((30, 10, 10), (4, 8), 32, 6, 1)
        >>> [t.shape for t in enc(torch.rand(2, 30, 10, 10), torch.rand(2, 1))]
        [torch.Size([2, 6]), torch.Size([2, 6])]
    """

    def __init__(
        self, shape: tuple[int, int, int], channels: tuple[int, ...], hidden: int, latent_dims: int, condition_dims: int
    ) -> None:
        super().__init__()
        blocks, spatial, previous = [], tuple(shape), 1
        for width in channels:
            block = ConvNorm3d(previous, width, spatial, kernel=3, stride=2, padding=1)
            blocks.append(block)
            spatial, previous = block.out_shape, width
        self.convs = nn.Sequential(*blocks)
        features = previous * math.prod(spatial)
        self.dense1 = nn.Linear(features + condition_dims, hidden)
        self.dense2 = nn.Linear(hidden + condition_dims, hidden)
        self.mean = nn.Linear(hidden, latent_dims)
        self.log_variance = nn.Linear(hidden, latent_dims)
        self.shape = tuple(shape)

    def forward(self, showers: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(b, L, X, Y)`` cells (network units) and ``(b, c)`` conditions → ``(mu, logvar)``."""
        x = self.convs(torch.log1p(showers).unsqueeze(1)).flatten(1)
        x = leaky(self.dense1(torch.cat((x, condition), 1)))
        x = leaky(self.dense2(torch.cat((x, condition), 1)))
        return self.mean(x), self.log_variance(x).clamp(-12.0, 8.0)
