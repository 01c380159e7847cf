"""Member-batched conditional masked autoregressive flows (MAF), and the same blocks run as IAF.

Papamakarios et al., "Masked Autoregressive Flow for Density Estimation" (arXiv
1705.07057), MADE conditioners (arXiv 1502.03509). ``M`` flows of one architecture
(*members*: the 30 per-layer shower flows, or a single layer-energy flow) keep their
weights in tensors with a leading member dimension, so one training step over all of
them is a handful of batched matrix products (:func:`torch.baddbmm`), as in
:class:`models.flows.batched_maf.BatchedMAF`, here with a context.

Architecture of one member (the function of ``nflows`` 0.14
``MaskedAutoregressiveFlow(features=D, hidden_features=H, context_features=C,
num_layers=B, num_blocks_per_layer=K, use_residual_blocks=False)``, optionally behind an
``embedding_net = nn.Linear(C, E)`` as ``nflows.flows.base.Flow`` applies it): each of the
``B`` blocks reverses the feature order, then maps ``x`` to
``z_d = scale_d * x_d + shift_d`` with ``scale_d = softplus(max(s_d, -20)) + 1e-3`` and ``(s_d,
shift_d)`` the MADE output of features ``< d``. The MADE is

    h_1 = relu(W_in x + b_in + relu(W_c c + b_c))        # masked W_in, dense context layer
    h_k = relu(W_k h_{k-1} + b_k),  k = 2..K+1            # masked
    (s, shift) = W_out h_{K+1} + b_out                    # masked, rows [s_0, t_0, s_1, ...]

with the degrees of :mod:`models.flows.made`. The base is a standard normal.

With ``transform="rq_spline"`` each block maps ``x_d`` through a monotonic
rational-quadratic spline instead (neural spline flows, arXiv 1906.04958, as
:mod:`models.flows.spline_maf` implements it: ``K`` bins on ``[-tail_bound, tail_bound]``,
identity tails), whose ``3K - 1`` parameters per feature are the MADE output, rows
``[widths_0, heights_0, derivatives_0, widths_1, ...]``. A member is then the function of
nflows' ``MaskedPiecewiseRationalQuadraticAutoregressiveTransform(tails="linear")`` blocks
(tested). A spline can make the two-peaked conditional distribution of a cell (below the
threshold, or hit) that an affine block has to bend the whole space for.

Context masks: member ``m`` may see only some context columns (a shower flow of layer
``l`` sees the images of layers ``l-5 .. l-1`` only). ``context_mask`` ``(M, C)`` is
multiplied into the first context weights in every forward pass, so the columns a member
must not see have exactly no effect (their weights get no gradient either).

Directions:

* :meth:`ConditionalMAF.transform` is the parallel direction ``x -> z`` (density
  evaluation of a MAF; *sampling* of an IAF, which is the same map read as ``z -> x``).
* :meth:`ConditionalMAF.inverse` is the sequential direction. Its default ``"incremental"``
  method computes every hidden unit exactly once, at the step where it becomes final
  (unit of degree ``j`` at feature ``j``), so a whole inverse costs the multiply-adds of
  one forward pass, spread over ``D`` steps per block; ``"passes"`` is the textbook ``D``
  full forward passes per block (a reference for tests and benchmarks).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.flows.made import made_masks
from models.flows.spline_kernel import spline
from models.flows.spline_maf import MIN_DERIVATIVE

__all__ = ["SCALE_EPSILON", "SOFTPLUS_FLOOR", "TRANSFORMS", "ConditionalMAF"]

TRANSFORMS = ("affine", "rq_spline")
"""Block transforms of :class:`ConditionalMAF`."""

SCALE_EPSILON = 1e-3
"""Added to ``softplus(s)`` so no scale reaches zero (nflows' convention)."""

SOFTPLUS_FLOOR = -20.0
"""Unconstrained scales are clamped here before ``softplus``: below it ``softplus < 2e-9``, far
under ``SCALE_EPSILON``, and ``exp`` of much lower values gives denormal floats, which made
``softplus`` 8x slower in sampling."""

_IDENTITY_SCALE = math.log(math.e - 1.0)  # softplus(0.5413) = 1: blocks start near the identity
_IDENTITY_DERIVATIVE = math.log(math.expm1(1.0 - MIN_DERIVATIVE))  # spline knots start at slope 1
_LOG_2PI = math.log(2.0 * math.pi)
_INVERSE_METHODS = ("incremental", "passes")


def _biased_bmm(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``bias + a @ b`` batched, ``bias`` broadcast over the result.

    Without gradients ``bmm`` then an in-place add: :func:`torch.baddbmm` first copies a
    stride-0 (broadcast) bias into its result, which on the CPU cost as much as the product
    itself in sampling (1.7 against 0.8 ms at 4096 × 64 × 200, measured side by side). With
    gradients (training) ``baddbmm``, as before.
    """
    if torch.is_grad_enabled():
        return torch.baddbmm(bias, a, b)
    return torch.bmm(a, b).add_(bias)


def _positive(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        msg = f"ConditionalMAF: {name} must be an integer >= {minimum}, got {value!r}"
        raise ValueError(msg)
    return value


class ConditionalMAF(nn.Module):
    """``n_members`` conditional MAFs of one architecture, evaluated together.

    Args:
        n_members: number of flows M.
        features: dimension D of each flow.
        context_features: context columns C (>= 1).
        n_blocks: MADE blocks B (each preceded by an order reversal).
        hidden_features: units H per hidden layer.
        n_hidden_layers: hidden layers per MADE (>= 1).
        context_embedding: width E of a per-member linear embedding of the context that
            all blocks share (None: each block's context layer sees the raw context).
        context_mask: ``(M, C)`` 0/1 columns each member may see (default: all).
        transform: ``"affine"`` (MAF blocks) or ``"rq_spline"`` (rational-quadratic spline
            blocks).
        n_bins: spline bins K per feature (``rq_spline`` only; >= 2).
        tail_bound: half-width of the spline interval in the Gaussianised feature space
            (``rq_spline`` only; identity outside).
        generator: seeded generator of the initial weights.

    Raises:
        ValueError: a non-positive size, an unknown transform or a context mask of the
            wrong shape (named).

    Example:
        >>> flow = ConditionalMAF(2, features=3, context_features=1, n_blocks=2, hidden_features=8)
        >>> x, c = torch.randn(2, 5, 3), torch.randn(2, 5, 1)
        >>> flow.log_prob(x, c).shape
        torch.Size([2, 5])
        >>> bool(torch.allclose(flow.inverse(flow.transform(x, c)[0], c), x, atol=1e-5))
        True
    """

    def __init__(
        self,
        n_members: int,
        features: int,
        context_features: int,
        n_blocks: int = 4,
        hidden_features: int = 64,
        n_hidden_layers: int = 2,
        context_embedding: int | None = None,
        context_mask: torch.Tensor | None = None,
        *,
        transform: str = "affine",
        n_bins: int = 8,
        tail_bound: float = 5.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if transform not in TRANSFORMS:
            msg = f"ConditionalMAF: transform must be one of {TRANSFORMS}, got {transform!r}"
            raise ValueError(msg)
        self.transform_kind = transform
        self.n_bins = _positive("n_bins", n_bins, minimum=2)
        if isinstance(tail_bound, bool) or not isinstance(tail_bound, int | float) or not (
            math.isfinite(tail_bound) and tail_bound > 0
        ):
            msg = f"ConditionalMAF: tail_bound must be a finite number > 0, got {tail_bound!r}"
            raise ValueError(msg)
        self.tail_bound = float(tail_bound)
        self.params_per_feature = p = 2 if transform == "affine" else 3 * self.n_bins - 1
        self.n_members = m = _positive("n_members", n_members)
        self.features = d = _positive("features", features)
        self.context_features = c = _positive("context_features", context_features)
        self.n_blocks = b = _positive("n_blocks", n_blocks)
        self.hidden_features = h = _positive("hidden_features", hidden_features)
        self.n_hidden_layers = _positive("n_hidden_layers", n_hidden_layers)
        self.context_embedding = None if context_embedding is None else _positive("context_embedding", context_embedding)
        k = self.n_hidden_layers - 1
        e = c if self.context_embedding is None else self.context_embedding
        if context_mask is None:
            context_mask = torch.ones(m, c)
        context_mask = torch.as_tensor(context_mask, dtype=torch.float32)
        if context_mask.shape != (m, c):
            msg = f"ConditionalMAF: context_mask must have shape ({m}, {c}), got {tuple(context_mask.shape)}"
            raise ValueError(msg)
        self.register_buffer("context_mask", context_mask.unsqueeze(1).contiguous(), persistent=False)
        self.input_weight = nn.Parameter(torch.empty(b, m, h, d))
        self.input_bias = nn.Parameter(torch.empty(b, m, h))
        self.hidden_weight = nn.Parameter(torch.empty(b, k, m, h, h))
        self.hidden_bias = nn.Parameter(torch.empty(b, k, m, h))
        self.output_weight = nn.Parameter(torch.empty(b, m, p * d, h))
        self.output_bias = nn.Parameter(torch.empty(b, m, p * d))
        # one dense context layer for all blocks: rows [block 0 units, block 1 units, ...]
        self.context_weight = nn.Parameter(torch.empty(m, b * h, e))
        self.context_bias = nn.Parameter(torch.empty(m, b * h))
        if self.context_embedding is not None:
            self.embedding_weight: nn.Parameter | None = nn.Parameter(torch.empty(m, e, c))
            self.embedding_bias: nn.Parameter | None = nn.Parameter(torch.empty(m, e))
        else:
            self.embedding_weight = self.embedding_bias = None
        masks = made_masks(d, h, outputs_per_feature=p)
        self.register_buffer("input_mask", masks.input.clone(), persistent=False)
        self.register_buffer("hidden_mask", masks.hidden.clone(), persistent=False)
        self.register_buffer("output_mask", masks.output.clone(), persistent=False)
        step, offset = max(1, d - 1), min(1, d - 1)
        self.register_buffer("degrees", torch.arange(h) % step + offset, persistent=False)
        self.reset_parameters(generator)

    def extra_repr(self) -> str:
        return (
            f"n_members={self.n_members}, features={self.features}, context_features={self.context_features}, "
            f"n_blocks={self.n_blocks}, hidden_features={self.hidden_features}, n_hidden_layers={self.n_hidden_layers}, "
            f"context_embedding={self.context_embedding}, transform={self.transform_kind!r}"
            + (f", n_bins={self.n_bins}, tail_bound={self.tail_bound}" if self.transform_kind == "rq_spline" else "")
            + f", parameters_per_member={self.n_parameters // self.n_members}"
        )

    @property
    def n_parameters(self) -> int:
        """Weights of all members together (masked entries included)."""
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """``nn.Linear``-style uniform initialisation; output layers start near the identity.

        The output weights are scaled by 0.01 and the scale biases set to
        ``softplus^-1(1)`` (splines: the knot-derivative biases set so the slopes are 1, and
        the near-zero width and height logits give equal bins), so every block starts close
        to ``z = x`` (stable first steps).
        """
        def uniform(tensor: torch.Tensor, fan_in: int, factor: float = 1.0) -> None:
            bound = factor / math.sqrt(max(1, fan_in))
            values = torch.rand(tensor.shape, generator=generator, device="cpu" if generator is None else generator.device)
            tensor.copy_(values.mul_(2 * bound).sub_(bound))

        h, e = self.hidden_features, self.context_weight.shape[-1]
        uniform(self.input_weight, self.features)
        uniform(self.input_bias, self.features)
        uniform(self.hidden_weight, h)
        uniform(self.hidden_bias, h)
        uniform(self.output_weight, h, 0.01)
        uniform(self.output_bias, h, 0.01)
        per_feature = self.output_bias.view(self.n_blocks, self.n_members, self.features, self.params_per_feature)
        if self.transform_kind == "affine":
            per_feature[..., 0].add_(_IDENTITY_SCALE)
        else:
            per_feature[..., 2 * self.n_bins :].add_(_IDENTITY_DERIVATIVE)
        uniform(self.context_weight, e)
        uniform(self.context_bias, e)
        if self.embedding_weight is not None and self.embedding_bias is not None:
            uniform(self.embedding_weight, self.context_features)
            uniform(self.embedding_bias, self.context_features)
        self.input_weight.mul_(self.input_mask)
        self.hidden_weight.mul_(self.hidden_mask)
        self.output_weight.mul_(self.output_mask)
        first = self.embedding_weight if self.embedding_weight is not None else self.context_weight
        first.mul_(self.context_mask)

    # ------------------------------------------------------------------ checks
    def _check(self, x: torch.Tensor, context: torch.Tensor, members: int, what: str) -> None:
        if x.dim() != 3 or x.shape[0] != members or x.shape[2] != self.features:
            msg = f"ConditionalMAF: {what} must have shape ({members}, N, {self.features}), got {tuple(x.shape)}"
            raise ValueError(msg)
        if context.shape != (members, x.shape[1], self.context_features):
            msg = (
                f"ConditionalMAF: context must have shape ({members}, {x.shape[1]}, {self.context_features}), "
                f"got {tuple(context.shape)}"
            )
            raise ValueError(msg)

    def _member_index(self, member: int | None) -> slice:
        if member is None:
            return slice(None)
        if isinstance(member, bool) or not isinstance(member, int) or not 0 <= member < self.n_members:
            msg = f"ConditionalMAF: member must be an integer in 0..{self.n_members - 1}, got {member!r}"
            raise ValueError(msg)
        return slice(member, member + 1)

    # ------------------------------------------------------------------ context
    def context_terms(self, context: torch.Tensor, member: int | None = None) -> torch.Tensor:
        """``relu(W_c e(c) + b_c)`` of every block: ``(B, M, N, H)`` (one product for all blocks)."""
        sel = self._member_index(member)
        mask = self.context_mask[sel]
        if self.embedding_weight is not None and self.embedding_bias is not None:
            embedded = _biased_bmm(
                self.embedding_bias[sel].unsqueeze(1), context, (self.embedding_weight[sel] * mask).transpose(1, 2)
            )
            weight = self.context_weight[sel]
        else:
            embedded, weight = context, self.context_weight[sel] * mask
        terms = _biased_bmm(self.context_bias[sel].unsqueeze(1), embedded, weight.transpose(1, 2)).relu_()
        m, n = context.shape[0], context.shape[1]
        return terms.view(m, n, self.n_blocks, self.hidden_features).permute(2, 0, 1, 3)

    # ------------------------------------------------------------------ parallel direction
    def transform(
        self, x: torch.Tensor, context: torch.Tensor, member: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The parallel map ``x -> z`` of all blocks, with ``log|det dz/dx|``.

        Args:
            x: ``(M, N, D)`` (``(1, N, D)`` with ``member``).
            context: ``(M, N, C)``.
            member: evaluate only this member.

        Returns:
            ``z`` ``(M, N, D)`` and the log-determinant ``(M, N)``.

        Raises:
            ValueError: inputs of the wrong shape (named, with the expected shape).
        """
        sel = self._member_index(member)
        members = self.n_members if member is None else 1
        self._check(x, context, members, "x")
        terms = self.context_terms(context, member)
        input_weight = (self.input_weight[:, sel] * self.input_mask).unbind(0)
        hidden_weight = (self.hidden_weight[:, :, sel] * self.hidden_mask).unbind(0)
        output_weight = (self.output_weight[:, sel] * self.output_mask).unbind(0)
        input_bias, hidden_bias = self.input_bias[:, sel].unbind(0), self.hidden_bias[:, :, sel].unbind(0)
        output_bias = self.output_bias[:, sel].unbind(0)
        logabsdet = x.new_zeros(x.shape[:2])
        for block in range(self.n_blocks):
            x = x.flip(-1)
            h = _biased_bmm(input_bias[block].unsqueeze(1), x, input_weight[block].transpose(1, 2))
            h = (h + terms[block]).relu()
            for weight, bias in zip(hidden_weight[block].unbind(0), hidden_bias[block].unbind(0), strict=True):
                h = _biased_bmm(bias.unsqueeze(1), h, weight.transpose(1, 2)).relu()
            params = _biased_bmm(output_bias[block].unsqueeze(1), h, output_weight[block].transpose(1, 2))
            x, log_derivative = self._elementwise(x, params.view(*x.shape, self.params_per_feature), inverse=False)
            logabsdet = logabsdet + log_derivative.sum(-1)
        return x, logabsdet

    def _elementwise(self, x: torch.Tensor, params: torch.Tensor, *, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """One block's map of ``x`` (shape ``S``) given its parameters ``S + (P,)``: output, log-derivative."""
        if self.transform_kind == "affine":
            scale = F.softplus(params[..., 0].clamp_min(SOFTPLUS_FLOOR)) + SCALE_EPSILON
            if inverse:
                return (x - params[..., 1]) / scale, -torch.log(scale)
            return x * scale + params[..., 1], torch.log(scale)
        return spline(x, params, n_bins=self.n_bins, tail_bound=self.tail_bound, inverse=inverse)

    def log_prob(self, x: torch.Tensor, context: torch.Tensor, member: int | None = None) -> torch.Tensor:
        """Log-density ``(M, N)`` of ``x`` ``(M, N, D)`` given ``context`` ``(M, N, C)``."""
        z, logabsdet = self.transform(x, context, member)
        return logabsdet - 0.5 * (z.square().sum(-1) + self.features * _LOG_2PI)

    # ------------------------------------------------------------------ sequential direction
    @torch.no_grad()
    def inverse(
        self, z: torch.Tensor, context: torch.Tensor, member: int | None = None, *, method: str = "incremental"
    ) -> torch.Tensor:
        """The sequential map ``z -> x`` (sampling a MAF; density evaluation of an IAF).

        Args:
            z: ``(M, N, D)`` base-space points (``(1, N, D)`` with ``member``).
            context: ``(M, N, C)``.
            member: invert only this member.
            method: ``"incremental"`` (each hidden unit computed once, at the step where it
                becomes final) or ``"passes"`` (``D`` full MADE passes per block).

        Returns:
            ``x`` ``(M, N, D)``.

        Raises:
            ValueError: inputs of the wrong shape, an unknown method.
        """
        if method not in _INVERSE_METHODS:
            msg = f"ConditionalMAF.inverse: method must be one of {_INVERSE_METHODS}, got {method!r}"
            raise ValueError(msg)
        sel = self._member_index(member)
        members = self.n_members if member is None else 1
        self._check(z, context, members, "z")
        terms = self.context_terms(context, member)
        invert = self._invert_incremental if method == "incremental" else self._invert_passes
        y = z
        for block in reversed(range(self.n_blocks)):
            x_reversed = invert(y, block, sel, terms[block])
            y = x_reversed.flip(-1)
        return y

    def _block_weights(self, block: int, sel: slice) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor]:
        w_in = self.input_weight[block, sel] * self.input_mask
        w_hidden = [w * self.hidden_mask for w in self.hidden_weight[block, :, sel].unbind(0)]
        w_out = self.output_weight[block, sel] * self.output_mask
        return (w_in, self.input_bias[block, sel], w_hidden, list(self.hidden_bias[block, :, sel].unbind(0)),
                w_out, self.output_bias[block, sel])

    def _invert_passes(self, y: torch.Tensor, block: int, sel: slice, term: torch.Tensor) -> torch.Tensor:
        """Solve one block by ``D`` full MADE passes (feature ``j`` is final after pass ``j``)."""
        w_in, b_in, w_hidden, b_hidden, w_out, b_out = self._block_weights(block, sel)
        x = torch.zeros_like(y)
        p = self.params_per_feature
        for j in range(self.features):
            h = (_biased_bmm(b_in.unsqueeze(1), x, w_in.transpose(1, 2)) + term).relu_()
            for weight, bias in zip(w_hidden, b_hidden, strict=True):
                h = _biased_bmm(bias.unsqueeze(1), h, weight.transpose(1, 2)).relu_()
            rows = slice(p * j, p * (j + 1))
            params = _biased_bmm(b_out[:, rows].unsqueeze(1), h, w_out[:, rows].transpose(1, 2))
            x[..., j] = self._elementwise(y[..., j], params, inverse=True)[0]
        return x

    def _invert_incremental(self, y: torch.Tensor, block: int, sel: slice, term: torch.Tensor) -> torch.Tensor:
        """Solve one block computing each hidden unit once (layout ``(M, units, N)``).

        Hidden units sorted by degree: units of degree ``<= j`` are a prefix
        ``[0, stop_j)``; those of degree exactly ``j`` (``[start_j, stop_j)``) see inputs
        ``< j`` and earlier-layer units of degree ``<= j`` only, so they are final at step
        ``j``, where feature ``j``'s scale and shift (which see units of degree ``<= j``)
        are needed.
        """
        w_in, b_in, w_hidden, b_hidden, w_out, b_out = self._block_weights(block, sel)
        d, h, p = self.features, self.hidden_features, self.params_per_feature
        order = torch.argsort(self.degrees, stable=True)
        counts = torch.bincount(self.degrees, minlength=d).tolist()
        stops = torch.tensor(counts).cumsum(0).tolist()
        w_in = w_in[:, order].contiguous()
        base = (b_in.unsqueeze(1) + term)[..., order].transpose(1, 2).contiguous()  # (M, H, N)
        w_hidden = [w[:, order][:, :, order].contiguous() for w in w_hidden]
        b_hidden = [b[:, order].unsqueeze(-1) for b in b_hidden]
        w_out = w_out[:, :, order].contiguous()
        b_out = b_out.unsqueeze(-1)
        m, n = y.shape[0], y.shape[1]
        y_t = y.transpose(1, 2).contiguous()  # (M, D, N)
        x_t = torch.zeros_like(y_t)
        activations = [y.new_empty(m, h, n) for _ in range(self.n_hidden_layers)]
        for j in range(d):
            stop = stops[j]
            start = stop - counts[j]
            if stop > start:
                first = base[:, start:stop]
                if j > 0:
                    first = torch.baddbmm(first, w_in[:, start:stop, :j], x_t[:, :j])
                activations[0][:, start:stop] = first.relu_()
                for layer, (weight, bias) in enumerate(zip(w_hidden, b_hidden, strict=True)):
                    pre = _biased_bmm(bias[:, start:stop], weight[:, start:stop, :stop], activations[layer][:, :stop])
                    activations[layer + 1][:, start:stop] = pre.relu_()
            rows = slice(p * j, p * (j + 1))
            if stop > 0:
                params = _biased_bmm(b_out[:, rows], w_out[:, rows, :stop], activations[-1][:, :stop])
            else:
                params = b_out[:, rows].expand(m, p, n)
            if p == 2:  # affine: in place, without the (M, N, P) layout
                scale = F.softplus(params[:, 0].clamp_min(SOFTPLUS_FLOOR)).add_(SCALE_EPSILON)
                torch.div(y_t[:, j] - params[:, 1], scale, out=x_t[:, j])
            else:
                x_t[:, j] = self._elementwise(y_t[:, j], params.transpose(1, 2), inverse=True)[0]
        return x_t.transpose(1, 2)

