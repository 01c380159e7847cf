"""Export one member of a :class:`~models.flows.batched_maf.BatchedMAF` (or of a
:class:`~models.flows.spline_maf.BatchedSplineMAF`) as an nflows flow.

Used by the equivalence tests and the benchmark baseline, and handy for anyone who wants
a single member as a plain ``nflows`` model. Mapping (member ``m``, block ``b``, hidden
layer ``k``), into ``nflows.flows.MaskedAutoregressiveFlow(features=D,
hidden_features=H, num_layers=B, num_blocks_per_layer=L - 1, use_residual_blocks=False)``
whose transform list is ``[ReversePermutation, MADE-affine] * B``::

    _transform._transforms[2b+1].autoregressive_net.initial_layer  <- input.{weight,bias}[b, m]
    ....autoregressive_net.blocks[k].linear                        <- hidden.{weight,bias}[b, k, m]
    ....autoregressive_net.final_layer                             <- output.{weight,bias}[b, m]

nflows stores unmasked weights and multiplies by its mask in every forward pass; ours
are already masked, and the masks are identical (see :mod:`models.flows.made`), so the
two flows compute the same function. A spline member maps the same way onto
``[ReversePermutation, MaskedPiecewiseRationalQuadraticAutoregressiveTransform(tails="linear",
use_residual_blocks=False)] * B`` (:func:`build_nflows_spline_maf`).
"""

from __future__ import annotations

from typing import Any

import torch

from models.flows.batched_maf import BatchedMAF
from models.flows.spline_maf import BatchedSplineMAF

__all__ = ["build_nflows_maf", "build_nflows_spline_maf", "load_member_into_nflows"]


def build_nflows_maf(features: int, n_blocks: int, hidden_features: int, n_hidden_layers: int) -> Any:
    """An untrained ``nflows`` MAF with the architecture of a :class:`BatchedMAF` member."""
    from nflows.flows import MaskedAutoregressiveFlow

    return MaskedAutoregressiveFlow(
        features=features,
        hidden_features=hidden_features,
        num_layers=n_blocks,
        num_blocks_per_layer=n_hidden_layers - 1,
        use_residual_blocks=False,
    )


def build_nflows_spline_maf(maf: BatchedSplineMAF) -> Any:
    """An untrained nflows flow with the architecture of a :class:`BatchedSplineMAF` member."""
    from nflows.distributions import StandardNormal
    from nflows.flows import Flow
    from nflows.transforms import CompositeTransform, ReversePermutation
    from nflows.transforms.autoregressive import (
        MaskedPiecewiseRationalQuadraticAutoregressiveTransform as Spline,
    )

    transforms: list[Any] = []
    for _ in range(maf.n_blocks):
        transforms += [
            ReversePermutation(maf.features),
            Spline(maf.features, maf.hidden_features, num_bins=maf.n_bins, tails="linear", tail_bound=maf.tail_bound,
                   num_blocks=maf.n_hidden_layers - 1, use_residual_blocks=False),
        ]
    return Flow(CompositeTransform(transforms), StandardNormal([maf.features]))


@torch.no_grad()
def load_member_into_nflows(
    maf: BatchedMAF | BatchedSplineMAF, member: int, flow: Any | None = None, flat: torch.Tensor | None = None
) -> Any:
    """Copy the weights of ``member`` (from ``flat``, default live) into an nflows MAF.

    Args:
        maf: the batched ensemble (affine or spline blocks).
        member: member index in ``0..n_members-1``.
        flow: an nflows flow from :func:`build_nflows_maf` or :func:`build_nflows_spline_maf`
            (built if omitted).
        flat: weights to copy (e.g. SWA weights); default the live weights.

    Returns:
        The nflows flow, on the device of ``maf``.

    Raises:
        ValueError: for a member index out of range.
    """
    if not 0 <= member < maf.n_members:
        msg = f"member must be in 0..{maf.n_members - 1}, got {member!r}"
        raise ValueError(msg)
    if flow is None and isinstance(maf, BatchedSplineMAF):
        flow = build_nflows_spline_maf(maf)
    elif flow is None:
        flow = build_nflows_maf(maf.features, maf.n_blocks, maf.hidden_features, maf.n_hidden_layers)
    flow = flow.to(next(maf.parameters()).device)
    w = maf.unflatten(maf.flat_weights() if flat is None else flat)
    for b in range(maf.n_blocks):
        net = flow._transform._transforms[2 * b + 1].autoregressive_net
        net.initial_layer.weight.copy_(w["input.weight"][b, member])
        net.initial_layer.bias.copy_(w["input.bias"][b, member])
        for k, block in enumerate(net.blocks):
            block.linear.weight.copy_(w["hidden.weight"][b, k, member])
            block.linear.bias.copy_(w["hidden.bias"][b, k, member])
        net.final_layer.weight.copy_(w["output.weight"][b, member])
        net.final_layer.bias.copy_(w["output.bias"][b, member])
    return flow
