"""Masked autoregressive flows with rational-quadratic spline blocks, batched over members.

Neural spline flows (Durkan, Bekasov, Murray, Papamakarios, arXiv 1906.04958): each MADE
block maps feature ``x_d`` through a monotonic rational-quadratic spline on
``[-tail_bound, tail_bound]`` (identity outside: linear tails), whose ``n_bins`` widths,
heights and ``n_bins - 1`` inner knot derivatives are the MADE output of features
``< d``. A spline can put a narrow peak (a resonance mass) where an affine block has to
bend the whole distribution, which is why it is offered beside the affine MAF of
:mod:`models.flows.batched_maf` (the OnlineFlow hyperparameter ``transform``).

Conventions follow ``nflows.transforms.MaskedPiecewiseRationalQuadraticAutoregressiveTransform``
with ``tails="linear"`` and ``use_residual_blocks=False`` so that a member is
weight-for-weight the nflows flow (tested): per feature the outputs are
``[widths (K), heights (K), derivatives (K - 1)]`` (nflows 0.14 means to divide the width
and height logits by ``sqrt(hidden_features)`` but its MADE has no such attribute, so it
does not; neither do we), bins are at least ``1e-3`` of the interval wide and
high, derivatives are ``1e-3 + softplus(.)``, and the boundary derivatives are 1. Every
block first reverses the feature order, as in the affine MAF.

The weights carry a leading member dimension and are multiplied by their MADE masks in
the forward pass (plain autograd; no hand-written backward as for the affine blocks), so
all members train as one batched computation and masked weights never receive a gradient.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from models.flows.checks import positive_float, positive_int
from models.flows.made import made_masks

__all__ = ["BatchedSplineMAF", "rational_quadratic_spline", "spline_knots"]

MIN_BIN_WIDTH = 1e-3  # also the smallest bin height (nflows' defaults are equal)
MIN_DERIVATIVE = 1e-3
_LOG_2PI = math.log(2.0 * math.pi)


def spline_knots(width_logits: torch.Tensor, height_logits: torch.Tensor, *, tail_bound: float) -> torch.Tensor:
    """The ``K + 1`` knots of the splines from their unnormalised bin widths and heights.

    Bins are a softmax share of the interval ``[-tail_bound, tail_bound]``, at least
    ``MIN_BIN_WIDTH`` of it wide and high (nflows' separate width and height minima are both
    1e-3 by default; one constant serves both here). The first knot is exactly
    ``-tail_bound`` and the last exactly ``tail_bound``; a bin's width is the difference of
    its knots, so that ``x - x_k <= x_{k+1} - x_k`` holds in floating point for every ``x`` of
    the bin and the bins tile the interval without gaps.

    Args:
        width_logits, height_logits: ``S + (K,)``.
        tail_bound: half-width of the interval (> 0).

    Returns:
        ``S + (2, K + 1)``: x-knots at ``[..., 0, :]``, y-knots at ``[..., 1, :]``, increasing.
    """
    n_bins = width_logits.shape[-1]
    logits = torch.stack([width_logits, height_logits], dim=-2)  # S + (2, K)
    # softmax by hand: torch's kernel is slow for rows of a few bins (~20 ns a value)
    exp = (logits - logits.detach().amax(dim=-1, keepdim=True)).exp()
    span = 2 * tail_bound
    size = (exp / exp.sum(dim=-1, keepdim=True)).mul(span * (1.0 - MIN_BIN_WIDTH * n_bins)).add(span * MIN_BIN_WIDTH)
    inner = torch.cumsum(size[..., :-1], dim=-1).sub(tail_bound)  # the K - 1 inner knots
    return F.pad(F.pad(inner, (1, 0), value=-tail_bound), (0, 1), value=tail_bound)


def rational_quadratic_spline(
    inputs: torch.Tensor,
    width_logits: torch.Tensor,
    height_logits: torch.Tensor,
    derivative_logits: torch.Tensor,
    *,
    tail_bound: float,
    inverse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Monotonic rational-quadratic spline with linear (identity) tails, element-wise.

    Points outside ``[-tail_bound, tail_bound]`` (``±inf`` included) pass unchanged with
    log-derivative 0; the spline is evaluated at the clamped point there and discarded, so
    its gradients are finite and zero. NaN inputs give NaN outputs and log-derivatives.
    A point exactly on a knot belongs to the bin above it (the top bound to the last bin),
    in the forward (x-knots) and in the inverse (y-knots) alike, so knots map to knots.

    The inverse solves ``a xi^2 + b xi + c = 0`` for the bin fraction ``xi`` in ``[0, 1]``
    with the discriminant written as a sum of squares (``(h d_k - dy (d_k + d_{k+1}))^2 +
    4 s^2 dy (y_{k+1} - y)``, never negative, no cancellation) and the root formula chosen by
    the sign of ``b`` (no cancellation either), so that flat or steep bins keep float32 accuracy.

    Args:
        inputs: any shape ``S``.
        width_logits, height_logits: ``S + (K,)`` unnormalised bin widths and heights.
        derivative_logits: ``S + (K - 1,)`` unnormalised derivatives at the inner knots.
        tail_bound: the spline acts on ``[-tail_bound, tail_bound]``; identity outside.
        inverse: evaluate the inverse map instead.

    Returns:
        ``outputs`` and ``log|d outputs / d inputs|``, both of shape ``S``.

    Raises:
        ValueError: logits whose last dimensions do not fit together, naming them.

    Example:
        >>> x = torch.linspace(-3, 3, 7)
        >>> y, logdet = rational_quadratic_spline(
        ...     x, torch.zeros(7, 4), torch.zeros(7, 4), torch.full((7, 3), 0.5413), tail_bound=2.0)
        >>> torch.allclose(y, x, atol=1e-3)  # equal bins and unit slopes: the identity
        True
    """
    n_bins = width_logits.shape[-1]
    if height_logits.shape[-1] != n_bins or derivative_logits.shape[-1] != n_bins - 1:
        msg = (
            f"rational_quadratic_spline: width_logits and height_logits need K, derivative_logits K - 1 "
            f"entries, got {width_logits.shape[-1]}, {height_logits.shape[-1]}, {derivative_logits.shape[-1]}"
        )
        raise ValueError(msg)
    # NaN is neither below nor above the interval: it goes through the spline and stays NaN.
    outside = (inputs < -tail_bound) | (inputs > tail_bound)
    x = inputs.clamp(-tail_bound, tail_bound)  # evaluated everywhere, kept only inside
    knots = spline_knots(width_logits, height_logits, tail_bound=tail_bound)  # S + (2, K + 1)
    inner = F.softplus(derivative_logits).add(MIN_DERIVATIVE)
    derivatives = F.pad(inner, (1, 1), value=1.0)  # the K + 1 knots; 1 at both ends

    # k in 0..K-1: the number of inner knots <= x (for NaN some bin in that range, harmless).
    search = knots[..., 1 if inverse else 0, 1:-1]
    k = torch.searchsorted(search.contiguous(), x.unsqueeze(-1).contiguous(), right=True)
    index = k.unsqueeze(-2).expand(*k.shape[:-1], 2, 1)
    lower = knots.gather(-1, index).squeeze(-1)
    upper = knots.gather(-1, index + 1).squeeze(-1)
    x_k, y_k = lower[..., 0], lower[..., 1]
    w_k, h_k = upper[..., 0] - x_k, upper[..., 1] - y_k
    d = derivatives.gather(-1, torch.cat([k, k + 1], dim=-1))
    d_k, d_k1 = d[..., 0], d[..., 1]
    slope = h_k / w_k
    curvature = d_k + d_k1 - 2 * slope
    if inverse:
        dy, dy_above = x - y_k, upper[..., 1] - x  # both >= 0 by the bin search
        b = h_k * d_k - dy * curvature  # a = h_k * slope - b, c = -slope * dy
        root = ((h_k * d_k - dy * (d_k + d_k1)).square() + 4 * slope.square() * dy * dy_above).sqrt()
        # xi = 2c / (-b - root) for b >= 0, (-b + root) / 2a for b < 0 (then a > 0); one division,
        # so that the branch not taken never divides by zero (no NaN in the gradients).
        negative = b < 0
        numerator = torch.where(negative, root - b, 2 * slope * dy)
        xi = numerator / torch.where(negative, 2 * (h_k * slope - b), b + root)
        # Rounding can put xi an ulp past 1 at the top of a bin (y = tail_bound): clamp the value
        # but keep the gradient, which a plain clamp would set to zero there.
        xi = xi + (xi.clamp(0.0, 1.0) - xi).detach()
        result = xi * w_k + x_k
    else:
        xi = ((x - x_k) / w_k).clamp(0.0, 1.0)
    mix = xi * (1 - xi)
    denominator = slope + curvature * mix
    if not inverse:
        result = y_k + h_k * (slope * xi.square() + d_k * mix) / denominator
    derivative = slope.square() * (d_k1 * xi.square() + 2 * slope * mix + d_k * (1 - xi).square())
    log_derivative = torch.log(derivative) - 2 * torch.log(denominator)
    outputs = torch.where(outside, inputs, result)
    logabsdet = torch.where(outside, 0.0, -log_derivative if inverse else log_derivative)
    return outputs, logabsdet


def _check_positive(name: str, value: object, minimum: int = 1) -> int:
    return positive_int("BatchedSplineMAF", name, value, minimum)


class BatchedSplineMAF(nn.Module):
    """``n_members`` independent spline MAFs evaluated together (the API of ``BatchedMAF``).

    Args:
        n_members: ensemble size M.
        features: dimension D of the flow.
        n_blocks: MADE blocks B (each preceded by an order reversal).
        hidden_features: units H per hidden layer.
        n_hidden_layers: hidden layers L per MADE (>= 1).
        n_bins: spline bins K per feature (>= 2).
        tail_bound: half-width of the spline interval in the standardised space (> 0).
        generator: optional seeded generator for the initial weights.

    Raises:
        ValueError: for a bad size or bound, naming it.

    Example:
        >>> maf = BatchedSplineMAF(n_members=2, features=3, n_blocks=2, hidden_features=8, n_bins=4)
        >>> maf.log_prob(torch.zeros(2, 5, 3)).shape
        torch.Size([2, 5])
    """

    def __init__(
        self,
        n_members: int,
        features: int,
        n_blocks: int = 5,
        hidden_features: int = 32,
        n_hidden_layers: int = 2,
        *,
        n_bins: int = 8,
        tail_bound: float = 4.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.n_members = _check_positive("n_members", n_members)
        self.features = _check_positive("features", features)
        self.n_blocks = _check_positive("n_blocks", n_blocks)
        self.hidden_features = _check_positive("hidden_features", hidden_features)
        self.n_hidden_layers = _check_positive("n_hidden_layers", n_hidden_layers)
        self.n_bins = _check_positive("n_bins", n_bins, minimum=2)
        self.tail_bound = positive_float("BatchedSplineMAF", "tail_bound", tail_bound)
        self.params_per_feature = 3 * n_bins - 1
        m, d, b, h, k, p = n_members, features, n_blocks, hidden_features, n_hidden_layers - 1, self.params_per_feature
        self.shapes: dict[str, tuple[int, ...]] = {
            "input.weight": (b, m, h, d),
            "input.bias": (b, m, h),
            "hidden.weight": (b, k, m, h, h),
            "hidden.bias": (b, k, m, h),
            "output.weight": (b, m, p * d, h),
            "output.bias": (b, m, p * d),
        }
        self.tensors = nn.ParameterDict({name.replace(".", "_"): nn.Parameter(torch.empty(s)) for name, s in self.shapes.items()})
        masks = made_masks(d, h, outputs_per_feature=p)
        self.register_buffer("mask_input", masks.input, persistent=False)
        self.register_buffer("mask_hidden", masks.hidden, persistent=False)
        self.register_buffer("mask_output", masks.output, persistent=False)
        self._size = sum(math.prod(s) for s in self.shapes.values())
        self.reset_parameters(generator)

    def extra_repr(self) -> str:
        return (
            f"n_members={self.n_members}, features={self.features}, n_blocks={self.n_blocks}, "
            f"hidden_features={self.hidden_features}, n_hidden_layers={self.n_hidden_layers}, "
            f"n_bins={self.n_bins}, tail_bound={self.tail_bound}"
        )

    @property
    def n_parameters(self) -> int:
        """Number of weights of all members together (length of the flat vector)."""
        return self._size

    # ------------------------------------------------------------------ weights
    def _named(self) -> dict[str, torch.Tensor]:
        return {name: self.tensors[name.replace(".", "_")] for name in self.shapes}

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of a flat vector shaped as in :attr:`shapes`."""
        if flat.shape != (self._size,):
            msg = f"BatchedSplineMAF: flat weights must have shape ({self._size},), got {tuple(flat.shape)}"
            raise ValueError(msg)
        views, start = {}, 0
        for name, shape in self.shapes.items():
            size = math.prod(shape)
            views[name] = flat[start : start + size].view(shape)
            start += size
        return views

    def flat_weights(self) -> torch.Tensor:
        """A detached copy of the live weights as one flat vector (masked entries zero)."""
        return torch.cat([t.detach().reshape(-1) for t in self._masked_weights(self._named()).values()])

    @torch.no_grad()
    def load_flat(self, flat: torch.Tensor) -> None:
        """Set the live weights from a flat vector."""
        for name, value in self.unflatten(flat.to(self.tensors["input_weight"].device)).items():
            self.tensors[name.replace(".", "_")].copy_(value)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Initialise like ``nn.Linear`` (uniform in ±1/sqrt(fan_in)); masked entries zero."""
        fan_in = {"input": self.features, "hidden": self.hidden_features, "output": self.hidden_features}
        device = "cpu" if generator is None else generator.device
        for name, shape in self.shapes.items():
            bound = 1.0 / math.sqrt(fan_in[name.split(".")[0]])
            values = torch.rand(shape, generator=generator, device=device).mul_(2 * bound).sub_(bound)
            self.tensors[name.replace(".", "_")].copy_(values)
        masked = self._masked_weights(self._named())
        for name, value in masked.items():
            self.tensors[name.replace(".", "_")].copy_(value)

    def mask_gradient(self) -> None:
        """Nothing to do: the masks enter the forward pass, so masked weights get no gradient."""

    def _masked_weights(self, w: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = dict(w)
        out["input.weight"] = w["input.weight"] * self.mask_input
        out["hidden.weight"] = w["hidden.weight"] * self.mask_hidden
        out["output.weight"] = w["output.weight"] * self.mask_output
        return out

    def _weights(self, flat: torch.Tensor | None) -> dict[str, torch.Tensor]:
        return self._masked_weights(self._named() if flat is None else self.unflatten(flat))

    # ------------------------------------------------------------------ flow
    def _expand(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n_members, -1, -1)
        if x.dim() != 3 or x.shape[0] != self.n_members or x.shape[2] != self.features:
            msg = (
                f"BatchedSplineMAF: inputs must have shape (N, {self.features}) or "
                f"({self.n_members}, N, {self.features}), got {tuple(x.shape)}"
            )
            raise ValueError(msg)
        return x

    def _blocks(self, w: Mapping[str, torch.Tensor]) -> list[dict[str, tuple[torch.Tensor, ...]]]:
        """The weights of each block, split with ``unbind`` (whose backward stacks the block
        gradients; indexing ``w[name][block]`` made a zero tensor of the whole stack per block)."""
        split = {name: tensor.unbind(0) for name, tensor in w.items()}
        return [
            {
                "input": (split["input.weight"][b], split["input.bias"][b]),
                "hidden": split["hidden.weight"][b].unbind(0) + split["hidden.bias"][b].unbind(0),
                "output": (split["output.weight"][b], split["output.bias"][b]),
            }
            for b in range(self.n_blocks)
        ]

    def _made(self, block: Mapping[str, tuple[torch.Tensor, ...]], x: torch.Tensor) -> torch.Tensor:
        """MADE output ``(M, N, D, P)`` of one block (weights from :meth:`_blocks`) for inputs ``(M, N, D)``."""
        weight, bias = block["input"]
        h = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2)).relu()
        hidden = block["hidden"]
        layers = len(hidden) // 2
        for layer in range(layers):
            h = torch.baddbmm(hidden[layers + layer].unsqueeze(1), h, hidden[layer].transpose(1, 2)).relu()
        weight, bias = block["output"]
        out = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
        return out.view(x.shape[0], x.shape[1], self.features, self.params_per_feature)

    def _spline(self, x: torch.Tensor, params: torch.Tensor, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        from models.flows.spline_kernel import spline  # fused on CPU; imports this module

        return spline(x, params, n_bins=self.n_bins, tail_bound=self.tail_bound, inverse=inverse)

    def transform(self, x: torch.Tensor, flat: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Map data ``(M, N, D)`` (or shared ``(N, D)``) to the base space: ``z``, ``log|det|``."""
        blocks = self._blocks(self._weights(flat))
        z = self._expand(x)
        logabsdet = torch.zeros(z.shape[:2], device=z.device, dtype=z.dtype)
        for block in blocks:
            z = z.flip(-1)
            z, log_derivative = self._spline(z, self._made(block, z), inverse=False)
            logabsdet = logabsdet + log_derivative.sum(-1)
        return z, logabsdet

    def log_prob(self, x: torch.Tensor, flat: torch.Tensor | None = None) -> torch.Tensor:
        """Log-density ``(M, N)`` under the standard normal base, per member."""
        z, logabsdet = self.transform(x, flat)
        return logabsdet - 0.5 * (z.square().sum(-1) + self.features * _LOG_2PI)

    @torch.no_grad()
    def inverse(self, z: torch.Tensor, flat: torch.Tensor | None = None) -> torch.Tensor:
        """Map base-space points ``(M, N, D)`` back to data space (D MADE passes per block)."""
        blocks = self._blocks(self._weights(flat))
        y = self._expand(z).clone()
        for block in reversed(blocks):
            x = torch.zeros_like(y)
            for i in range(self.features):
                params = self._made(block, x)[:, :, i]
                x[:, :, i] = self._spline(y[:, :, i], params, inverse=True)[0]
            y = x.flip(-1)
        return y
