"""Reconstruction critic with the *difference* input (WGAN-GP), optionally with minibatch discrimination.

arXiv 2005.05334: the critic scores pairs (input shower ``a``, candidate ``b``), where
``b`` is either ``a`` itself (the "real" pair) or the decoder's reconstruction of ``a``.
It has four branches joined by dense layers: convolutions on ``b``, convolutions on
``log(1 + b)`` (the low-energy MIP cells), a dense layer on the difference ``b - a``
(how far the reconstruction is from its input, cell by cell), and the conditions.
Trained as a Wasserstein critic with gradient penalty (λ = 10).

The pion study (arXiv 2112.09709) adds minibatch discrimination (Salimans et al.,
arXiv 1606.03498) before the last layer, so that the critic sees the spread of a batch
and the generator cannot collapse the fluctuations.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.bibae.layers import ConvNorm3d, leaky

__all__ = ["Critic", "MinibatchDiscrimination"]


class MinibatchDiscrimination(nn.Module):
    """Appends, per sample, its L1 closeness to the other samples of the batch.

    Args:
        in_features: input width.
        kernels: number of kernels ``B``.
        kernel_dims: dimension ``C`` of each kernel.

    Example:
        >>> MinibatchDiscrimination(6, 3, 2)(torch.randn(4, 6)).shape
        torch.Size([4, 9])
    """

    def __init__(self, in_features: int, kernels: int, kernel_dims: int) -> None:
        super().__init__()
        self.kernels, self.kernel_dims = kernels, kernel_dims
        self.tensor = nn.Parameter(torch.randn(in_features, kernels * kernel_dims) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(b, F)`` → ``(b, F + kernels)``."""
        m = (x @ self.tensor).view(-1, self.kernels, self.kernel_dims)
        distance = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(-1)  # (b, b, kernels)
        closeness = torch.exp(-distance).sum(1) - 1.0  # without the sample itself
        return torch.cat((x, closeness), 1)


class _Branch(nn.Module):
    """Two stride-2 convolutions and one plain one, flattened to ``out_features``."""

    def __init__(self, shape: tuple[int, int, int], channels: int, out_features: int) -> None:
        super().__init__()
        first = ConvNorm3d(1, channels, shape, kernel=3, stride=2, padding=1)
        second = ConvNorm3d(channels, channels, first.out_shape, kernel=3, stride=2, padding=1)
        self.convs = nn.Sequential(first, second, nn.Conv3d(channels, channels, 3, padding=1, bias=False))
        self.dense = nn.Linear(channels * math.prod(second.out_shape), out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return leaky(self.dense(leaky(self.convs(x.unsqueeze(1))).flatten(1)))


class Critic(nn.Module):
    """Scores ``(a, b)`` shower pairs with their conditions; higher means "b is a".

    Args:
        shape: ``(L, X, Y)`` of the showers.
        channels: channels of the convolution branches.
        hidden: width of the dense layers.
        condition_dims: conditioning inputs.
        minibatch_kernels: minibatch-discrimination kernels (0: none).
        minibatch_kernel_dims: their dimension.

    Example:
        >>> critic = Critic((30, 10, 10), 4, 16, 1)
        >>> a = torch.rand(3, 30, 10, 10)
        >>> critic(a, a, torch.rand(3, 1)).shape
        torch.Size([3])
    """

    def __init__(
        self, shape: tuple[int, int, int], channels: int, hidden: int, condition_dims: int, minibatch_kernels: int = 0,
        minibatch_kernel_dims: int = 8,
    ) -> None:
        super().__init__()
        half = max(1, hidden // 2)
        self.linear_branch = _Branch(shape, channels, half)
        self.log_branch = _Branch(shape, channels, half)
        self.difference = nn.Linear(math.prod(shape), half)
        self.condition = nn.Linear(condition_dims, half)
        self.dense1 = nn.Linear(4 * half, hidden)
        self.dense2 = nn.Linear(hidden, hidden)
        self.minibatch = (
            MinibatchDiscrimination(hidden, minibatch_kernels, minibatch_kernel_dims) if minibatch_kernels else None
        )
        self.out = nn.Linear(hidden + minibatch_kernels, 1)

    def forward(self, a: torch.Tensor, b: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """``(b, L, X, Y)`` pairs (network units) and ``(b, c)`` conditions → ``(b,)`` scores."""
        x = torch.cat(
            (
                self.linear_branch(b),
                self.log_branch(torch.log1p(b.clamp_min(0.0))),
                leaky(self.difference((b - a).flatten(1))),
                leaky(self.condition(condition)),
            ),
            1,
        )
        x = leaky(self.dense2(leaky(self.dense1(x))))
        if self.minibatch is not None:
            x = self.minibatch(x)
        return self.out(x).squeeze(1)
