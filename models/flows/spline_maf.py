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

from models.flows.made import made_masks

__all__ = ["BatchedSplineMAF", "rational_quadratic_spline"]

MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3
_LOG_2PI = math.log(2.0 * math.pi)
# softplus(_BOUNDARY) + MIN_DERIVATIVE == 1: the spline meets the identity tails smoothly.
_BOUNDARY = math.log(math.expm1(1.0 - MIN_DERIVATIVE))


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

    Args:
        inputs: any shape ``S``.
        width_logits, height_logits: ``S + (K,)`` unnormalised bin widths and heights.
        derivative_logits: ``S + (K - 1,)`` unnormalised derivatives at the inner knots.
        tail_bound: the spline acts on ``[-tail_bound, tail_bound]``; identity outside.
        inverse: evaluate the inverse map instead.

    Returns:
        ``outputs`` and ``log|d outputs / d inputs|``, both of shape ``S``.

    Example:
        >>> x = torch.linspace(-3, 3, 7)
        >>> y, logdet = rational_quadratic_spline(
        ...     x, torch.zeros(7, 4), torch.zeros(7, 4), torch.full((7, 3), 0.5413), tail_bound=2.0)
        >>> torch.allclose(y, x, atol=1e-3)  # equal bins and unit slopes: the identity
        True
    """
    n_bins = width_logits.shape[-1]
    inside = (inputs >= -tail_bound) & (inputs <= tail_bound)
    x = inputs.clamp(-tail_bound, tail_bound)  # evaluated everywhere, kept only inside
    # Widths and heights together: bin sizes (at least MIN_BIN_* of the interval) and the
    # lower knot of every bin, from -tail_bound; the last upper knot is tail_bound.
    logits = torch.stack([width_logits, height_logits], dim=-2)  # S + (2, K)
    # softmax by hand: torch's kernel is slow for rows of a few bins (~20 ns a value)
    exp = (logits - logits.detach().amax(dim=-1, keepdim=True)).exp()
    size = (exp / exp.sum(dim=-1, keepdim=True)).mul(2 * tail_bound * (1.0 - MIN_BIN_WIDTH * n_bins)).add(
        2 * tail_bound * MIN_BIN_WIDTH
    )
    lower = F.pad(torch.cumsum(size[..., :-1], dim=-1), (1, 0)).sub(tail_bound)
    inner = F.softplus(derivative_logits).add(MIN_DERIVATIVE)
    derivatives = F.pad(inner, (1, 1), value=1.0)  # the K + 1 knots; 1 at both ends

    search = lower[..., 1 if inverse else 0, 1:]
    k = torch.searchsorted(search.contiguous(), x.unsqueeze(-1).contiguous(), right=True)
    picked = lower.gather(-1, k.unsqueeze(-2).expand(*k.shape[:-1], 2, 1)).squeeze(-1)
    sizes = size.gather(-1, k.unsqueeze(-2).expand(*k.shape[:-1], 2, 1)).squeeze(-1)
    x_k, y_k, w_k, h_k = picked[..., 0], picked[..., 1], sizes[..., 0], sizes[..., 1]
    d = derivatives.gather(-1, torch.cat([k, k + 1], dim=-1))
    d_k, d_k1 = d[..., 0], d[..., 1]
    slope = h_k / w_k
    curvature = d_k + d_k1 - 2 * slope
    if inverse:
        dy = x - y_k
        a = h_k * (slope - d_k) + dy * curvature
        b = h_k * d_k - dy * curvature
        c = -slope * dy
        discriminant = (b.square() - 4 * a * c).clamp(min=0.0)
        xi = ((2 * c) / (-b - discriminant.sqrt())).clamp(0.0, 1.0)
        result = xi * w_k + x_k
    else:
        xi = ((x - x_k) / w_k).clamp(0.0, 1.0)
    mix = xi * (1 - xi)
    denominator = slope + curvature * mix
    if not inverse:
        result = y_k + h_k * (slope * xi.square() + d_k * mix) / denominator
    derivative = slope.square() * (d_k1 * xi.square() + 2 * slope * mix + d_k * (1 - xi).square())
    log_derivative = torch.log(derivative) - 2 * torch.log(denominator)
    outputs = torch.where(inside, result, inputs)
    logabsdet = torch.where(inside, -log_derivative if inverse else log_derivative, 0.0)
    return outputs, logabsdet


def _check_positive(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        msg = f"BatchedSplineMAF: {name} must be an integer >= {minimum}, got {value!r}"
        raise ValueError(msg)
    return value


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
        if isinstance(tail_bound, bool) or not isinstance(tail_bound, int | float) or not (
            math.isfinite(tail_bound) and tail_bound > 0
        ):
            msg = f"BatchedSplineMAF: tail_bound must be a finite number > 0, got {tail_bound!r}"
            raise ValueError(msg)
        self.tail_bound = float(tail_bound)
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

    def _made(self, w: Mapping[str, torch.Tensor], block: int, x: torch.Tensor) -> torch.Tensor:
        """MADE output ``(M, N, D, P)`` of one block for inputs ``(M, N, D)``."""
        h = torch.baddbmm(w["input.bias"][block].unsqueeze(1), x, w["input.weight"][block].transpose(1, 2)).relu()
        for layer in range(self.n_hidden_layers - 1):
            weight = w["hidden.weight"][block, layer].transpose(1, 2)
            h = torch.baddbmm(w["hidden.bias"][block, layer].unsqueeze(1), h, weight).relu()
        out = torch.baddbmm(w["output.bias"][block].unsqueeze(1), h, w["output.weight"][block].transpose(1, 2))
        return out.view(x.shape[0], x.shape[1], self.features, self.params_per_feature)

    def _spline(self, x: torch.Tensor, params: torch.Tensor, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.n_bins
        return rational_quadratic_spline(
            x, params[..., :k], params[..., k : 2 * k], params[..., 2 * k :],
            tail_bound=self.tail_bound, inverse=inverse,
        )

    def transform(self, x: torch.Tensor, flat: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Map data ``(M, N, D)`` (or shared ``(N, D)``) to the base space: ``z``, ``log|det|``."""
        w = self._weights(flat)
        z = self._expand(x)
        logabsdet = torch.zeros(z.shape[:2], device=z.device, dtype=z.dtype)
        for block in range(self.n_blocks):
            z = z.flip(-1)
            z, log_derivative = self._spline(z, self._made(w, block, z), inverse=False)
            logabsdet = logabsdet + log_derivative.sum(-1)
        return z, logabsdet

    def log_prob(self, x: torch.Tensor, flat: torch.Tensor | None = None) -> torch.Tensor:
        """Log-density ``(M, N)`` under the standard normal base, per member."""
        z, logabsdet = self.transform(x, flat)
        return logabsdet - 0.5 * (z.square().sum(-1) + self.features * _LOG_2PI)

    @torch.no_grad()
    def inverse(self, z: torch.Tensor, flat: torch.Tensor | None = None) -> torch.Tensor:
        """Map base-space points ``(M, N, D)`` back to data space (D MADE passes per block)."""
        w = self._weights(flat)
        y = self._expand(z).clone()
        for block in reversed(range(self.n_blocks)):
            x = torch.zeros_like(y)
            for i in range(self.features):
                params = self._made(w, block, x)[:, :, i]
                x[:, :, i] = self._spline(y[:, :, i], params, inverse=True)[0]
            y = x.flip(-1)
        return y
