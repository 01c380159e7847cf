"""BIB-AE decoder: latents + noise + conditions → dense → 3-D (transposed) convolutions.

arXiv 2005.05334: the decoder sees the ``latent_dims`` encoded latents, ``noise_dims``
extra N(0, 1) variables (24 + 488 = 512 in the paper) and the conditions. Dense layers
produce a half-resolution grid of ``coarse_channels``; a stride-2 transposed
convolution brings it to full resolution (cropped to the exact grid), plain
convolutions with LayerNorm and LeakyReLU refine it, and a final convolution with ReLU
gives non-negative cell energies (exact zeros for empty cells).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from models.bibae.layers import ConvNorm3d, leaky

__all__ = ["Decoder"]


class Decoder(nn.Module):
    """``(b, latent + noise)`` and ``(b, c)`` conditions → ``(b, L, X, Y)`` cells (network units).

    Args:
        shape: ``(L, X, Y)`` of the output grid.
        input_dims: latents plus noise variables.
        condition_dims: conditioning inputs.
        hidden: width of the dense layers.
        coarse_channels: channels of the half-resolution grid.
        channels: channels of the transposed convolution, then of each full-resolution
            convolution.

    Example:
        >>> dec = Decoder((30, 10, 10), 16, 1, 32, 4, (8, 4))
        >>> dec(torch.randn(2, 16), torch.rand(2, 1)).shape
        torch.Size([2, 30, 10, 10])
    """

    def __init__(
        self, shape: tuple[int, int, int], input_dims: int, condition_dims: int, hidden: int, coarse_channels: int,
        channels: tuple[int, ...],
    ) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.coarse = tuple(math.ceil(s / 2) for s in shape)
        self.coarse_channels = coarse_channels
        self.dense1 = nn.Linear(input_dims + condition_dims, hidden)
        self.dense2 = nn.Linear(hidden + condition_dims, hidden)
        self.dense3 = nn.Linear(hidden + condition_dims, coarse_channels * math.prod(self.coarse))
        self.upsample = nn.ConvTranspose3d(coarse_channels, channels[0], kernel_size=4, stride=2, padding=1, bias=False)
        self.upsample_norm = nn.LayerNorm(list(self.shape))
        blocks, previous = [], channels[0]
        for width in channels[1:]:
            blocks.append(ConvNorm3d(previous, width, self.shape))
            previous = width
        self.refine = nn.Sequential(*blocks)
        self.out = nn.Conv3d(previous, 1, kernel_size=3, padding=1)

    def forward(self, z: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Decode; returns non-negative cells in network units."""
        x = leaky(self.dense1(torch.cat((z, condition), 1)))
        x = leaky(self.dense2(torch.cat((x, condition), 1)))
        x = leaky(self.dense3(torch.cat((x, condition), 1)))
        x = x.view(-1, self.coarse_channels, *self.coarse)
        x = self.upsample(x)[..., : self.shape[0], : self.shape[1], : self.shape[2]]
        x = leaky(self.upsample_norm(x))
        return F.relu(self.out(self.refine(x))).squeeze(1)
