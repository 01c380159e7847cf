"""MADE connectivity: degrees and masks of a masked autoencoder (arXiv 1502.03509).

The degrees follow ``nflows.transforms.made`` with sequential (not random) hidden
degrees, so that a MADE built from these masks is weight-for-weight interchangeable with
an ``nflows`` MADE without residual blocks:

* inputs carry degrees ``1..D``;
* hidden units carry ``arange(H) % max(1, D - 1) + min(1, D - 1)``;
* hidden units see inputs (or hidden units) of lower or equal degree;
* each output pair ``(unconstrained scale, shift)`` of feature ``d`` (degree ``d + 1``)
  sees hidden units of strictly lower degree, interleaved as ``[s_0, t_0, s_1, t_1, ...]``.

Feature ``d``'s parameters therefore depend on features ``0..d-1`` only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["MADEMasks", "made_masks"]


@dataclass(frozen=True)
class MADEMasks:
    """Binary float masks of one MADE, shaped like ``nn.Linear`` weights ``(out, in)``.

    Attributes:
        input: ``(hidden, features)`` mask of the first layer.
        hidden: ``(hidden, hidden)`` mask of every hidden-to-hidden layer.
        output: ``(P * features, hidden)`` mask of the output layer.
    """

    input: torch.Tensor
    hidden: torch.Tensor
    output: torch.Tensor


def made_masks(features: int, hidden_features: int, outputs_per_feature: int = 2) -> MADEMasks:
    """Masks of a MADE with ``features`` inputs and ``outputs_per_feature`` outputs per feature.

    Args:
        features: autoregressive dimension D.
        hidden_features: units per hidden layer H.
        outputs_per_feature: outputs P of each feature, grouped per feature (affine: 2; a
            spline of K bins: 3K - 1), in the order ``[feature 0 outputs, feature 1 ...]``.

    Returns:
        The three masks (first, hidden-to-hidden, output layer).

    Example:
        >>> masks = made_masks(3, 4)
        >>> masks.input.tolist()
        [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]
        >>> masks.output[:2].sum().item()  # feature 0 sees nothing
        0.0
    """
    input_degrees = torch.arange(1, features + 1)
    step = max(1, features - 1)
    offset = min(1, features - 1)
    hidden_degrees = torch.arange(hidden_features) % step + offset
    output_degrees = input_degrees.repeat_interleave(outputs_per_feature)
    return MADEMasks(
        input=(hidden_degrees[:, None] >= input_degrees[None, :]).float(),
        hidden=(hidden_degrees[:, None] >= hidden_degrees[None, :]).float(),
        output=(output_degrees[:, None] > hidden_degrees[None, :]).float(),
    )
