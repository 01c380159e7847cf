"""Building blocks shared by the BIB-AE networks: a 3-D convolution with LayerNorm.

The networks of arXiv 2005.05334 normalise with LayerNorm over the spatial grid of each
channel (never BatchNorm: the WGAN-GP critics need per-sample gradients, and the
encoder and decoder must not mix showers of one batch).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ConvNorm3d", "conv_output_shape", "leaky"]

_SLOPE = 0.2


def leaky(x: torch.Tensor) -> torch.Tensor:
    """LeakyReLU with slope 0.2 (the papers' choice)."""
    return F.leaky_relu(x, _SLOPE)


def conv_output_shape(
    shape: tuple[int, ...], kernel: int, stride: int, padding: int
) -> tuple[int, ...]:
    """Spatial output shape of a convolution.

    Example:
        >>> conv_output_shape((30, 10, 10), kernel=3, stride=2, padding=1)
        (15, 5, 5)
    """
    return tuple((s + 2 * padding - kernel) // stride + 1 for s in shape)


class ConvNorm3d(nn.Module):
    """Conv3d (no bias) → LayerNorm over the spatial grid → LeakyReLU(0.2).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        in_shape: spatial input shape ``(D, H, W)``.
        kernel: kernel size.
        stride: stride.
        padding: zero padding.
    """

    def __init__(
        self, in_channels: int, out_channels: int, in_shape: tuple[int, int, int], kernel: int = 3, stride: int = 1,
        padding: int = 1,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False)
        self.out_shape = conv_output_shape(in_shape, kernel, stride, padding)
        self.norm = nn.LayerNorm(list(self.out_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(b, in, D, H, W)`` → ``(b, out, *out_shape)``."""
        return leaky(self.norm(self.conv(x)))
