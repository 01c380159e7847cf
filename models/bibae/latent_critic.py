"""Latent critic: one small Wasserstein critic per latent dimension.

arXiv 2005.05334: besides the KLD and the MMD to N(0, 1), each encoded latent's marginal
is pushed towards N(0, 1) by an adversarial critic on that one dimension. Here the
``latent_dims`` critics are one batched module (weights with a leading dimension axis),
so one call scores every dimension; the losses average the scores over dimensions and
samples, as one critic applied to every latent value would.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.bibae.layers import leaky

__all__ = ["LatentCritic"]


class LatentCritic(nn.Module):
    """``(b, D)`` latents → ``(b, D)`` scores, one 1 → h → h → 1 MLP per dimension.

    Args:
        dims: latent dimensions ``D``.
        hidden: width ``h`` of each MLP.

    Example:
        >>> LatentCritic(4, 8)(torch.randn(5, 4)).shape
        torch.Size([5, 4])
    """

    def __init__(self, dims: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(dims, hidden))
        self.b1 = nn.Parameter(torch.zeros(dims, hidden))
        self.w2 = nn.Parameter(torch.randn(dims, hidden, hidden) / math.sqrt(hidden))
        self.b2 = nn.Parameter(torch.zeros(dims, hidden))
        self.w3 = nn.Parameter(torch.randn(dims, hidden) / math.sqrt(hidden))
        self.b3 = nn.Parameter(torch.zeros(dims))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Per-dimension scores (higher: more like N(0, 1))."""
        h = leaky(z.unsqueeze(-1) * self.w1 + self.b1)
        h = leaky(torch.einsum("bdh,dhk->bdk", h, self.w2) + self.b2)
        return (h * self.w3).sum(-1) + self.b3
