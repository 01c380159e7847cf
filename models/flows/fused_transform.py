"""Hand-written forward and backward of the whole :class:`BatchedMAF` transform.

Training the batched MAF ensemble on a CPU is bound by memory traffic and per-operation
overhead rather than by arithmetic: a batch of 250 events through 20 members is a few
hundred small kernels, most of them passes over ``(members, hidden, events)``
activations that no longer fit in the L2 cache. With plain autograd every layer costs a
dozen kernels (matrix products, transposes, strided slices, copies, gradient
accumulation). :func:`fused_transform` computes the transform of all blocks as ONE
:class:`torch.autograd.Function` instead:

* the layout is ``(members, features, events)``; the output layer's rows are re-indexed
  per step to ``[s_0..s_{D-1}, t_0..t_{D-1}]`` so the scale and shift rows are two
  contiguous halves, and element-wise work over all blocks (``log scale``,
  ``1/scale``, ``sigmoid``) is one kernel each;
* order reversals cost nothing: the flow input is held in data order, the reverse of
  what block 0's MADE expects, so block 0 runs with its first weight's columns and its
  output rows reversed and yields the reverse of its output, which is block 1's input
  as it expects it; blocks ``0, 2, 4, ...`` run reversed, ``1, 3, ...`` as stored, and only
  ``z`` itself is reversed once at the end when the number of blocks is odd (the
  log-determinant and the base density do not depend on the order);
* activations live in a :class:`MAFWorkspace` of preallocated buffers written by
  ``out=`` kernels, handed out by a :class:`WorkspacePool` to a training forward pass
  and taken back after its backward pass, so a training loop allocates them once;
* the backward pass is written out: per layer one product for the weight gradient and
  one for the input gradient, ReLU gradients in place, gradients written over activations
  that are no longer needed (so they are still in cache), and the MADE masks applied to the weight gradients
  (so masked weights, kept at zero, stay zero under any optimiser).

The mathematics is that of :meth:`BatchedMAF.transform`; the log-density under the
standard normal base comes out of the same pass.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["SCALE_EPSILON", "MAFWorkspace", "WorkspacePool", "fused_transform"]

SCALE_EPSILON = 1e-3
_LOG_2PI = math.log(2.0 * math.pi)
_SOFTPLUS_THRESHOLD = 20.0  # torch.nn.functional.softplus default: identity above it


class _Orders:
    """Index tensors re-ordering features and output rows (see the module docstring)."""

    def __init__(self, features: int, device: torch.device) -> None:
        pairs = torch.arange(2 * features, device=device).view(features, 2)  # row of (s_d, t_d)
        self.reverse = torch.arange(features - 1, -1, -1, device=device)
        rows = pairs.T.reshape(-1)  # [s_0..s_{D-1}, t_0..t_{D-1}]
        rows_reversed = pairs.flip(0).T.reshape(-1)  # [s_{D-1}..s_0, t_{D-1}..t_0]
        # Indexed by "is this block's input held reversed?"
        self.rows = (rows, rows_reversed)
        self.rows_inverse = (torch.argsort(rows), torch.argsort(rows_reversed))


@functools.lru_cache(maxsize=16)
def _orders(features: int, device: torch.device) -> _Orders:
    return _Orders(features, device)


class MAFWorkspace:
    """Preallocated buffers of one pass through ``n_blocks`` MADE blocks.

    Buffers are ``(..., members, rows, events)``. With ``saving`` (a training pass) every
    block keeps its input, hidden activations and MADE output for the backward pass, and
    the backward buffers exist; without, one slot is reused by all blocks. The per-block
    views are made once here, not on every step.

    Args:
        n_blocks: MADE blocks B.
        n_hidden_layers: hidden layers L per MADE.
        n_members: ensemble size M.
        features: flow dimension D.
        hidden_features: hidden units H.
        n_events: events N of the batch.
        saving: keep per-block activations and allocate the backward buffers.
        dtype: floating dtype of the weights.
        device: device of the weights.
    """

    def __init__(
        self,
        n_blocks: int,
        n_hidden_layers: int,
        n_members: int,
        features: int,
        hidden_features: int,
        n_events: int,
        *,
        saving: bool,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        slots = n_blocks if saving else 1
        m, d, h, n = n_members, features, hidden_features, n_events

        def new(*shape: int) -> torch.Tensor:
            return torch.empty(shape, dtype=dtype, device=device)

        self.key = (n_blocks, n_hidden_layers, m, d, h, n, dtype, device)
        self.saving = saving
        self.owner: object | None = None  # token of the forward pass whose activations are stored
        self.scales = new(n_blocks, m, d, n)  # softplus(s) + eps
        inputs = new(slots, m, d, n)  # block inputs, in the order they are held
        hidden = new(slots, n_hidden_layers, m, h, n)  # post-ReLU activations
        params = new(slots, m, 2 * d, n)  # MADE outputs, rows [s_0..s_{D-1}, t_0..t_{D-1}]
        self.params = params
        self.inputs = list(inputs.unbind(0))
        self.hidden = [list(layers.unbind(0)) for layers in hidden.unbind(0)]
        self.log_scale_rows = [p[:, :d] for p in params.unbind(0)]
        self.shift_rows = [p[:, d:] for p in params.unbind(0)]
        self.params_of = list(params.unbind(0))
        self.scale_of = list(self.scales.unbind(0))
        if saving:
            self.per_scale = new(n_blocks, m, d, n)  # log-scales, then dL/dscale
            self.sigmoids = new(n_blocks, m, d, n)  # softplus'(s)
            self.grad_params = new(m, 2 * d, n)
            self.grad_hidden = new(m, h, n)  # dL/d(pre-activation) of the top hidden layer
            self.grad_direct = new(m, d, n)  # dL/d(block input)
            self.per_scale_of = list(self.per_scale.unbind(0))
            self.sigmoid_of = list(self.sigmoids.unbind(0))
            self.grad_log_scale_rows = self.grad_params[:, :d]
            self.grad_shift_rows = self.grad_params[:, d:]

    def __repr__(self) -> str:
        b, layers, m, d, h, n, dtype, device = self.key
        return (
            f"MAFWorkspace(n_blocks={b}, n_hidden_layers={layers}, n_members={m}, features={d}, "
            f"hidden_features={h}, n_events={n}, saving={self.saving}, dtype={dtype}, device={device})"
        )


class WorkspacePool:
    """Free training workspaces, at most ``capacity`` per shape.

    A training forward pass takes a workspace (or builds one when none is free, e.g.
    while an earlier graph has not been back-propagated yet) and its backward pass gives
    it back, so a training loop allocates its activations once.
    """

    def __init__(self, capacity: int = 2) -> None:
        self.capacity = capacity
        self._free: dict[tuple[Any, ...], list[MAFWorkspace]] = {}

    def __repr__(self) -> str:
        return f"WorkspacePool(capacity={self.capacity}, free={sum(map(len, self._free.values()))})"

    def take(self, key: tuple[Any, ...]) -> MAFWorkspace | None:
        """A free workspace with ``key`` (see :attr:`MAFWorkspace.key`), or None."""
        free = self._free.get(key)
        return free.pop() if free else None

    def give(self, workspace: MAFWorkspace) -> None:
        """Return a workspace whose backward pass is done."""
        free = self._free.setdefault(workspace.key, [])
        if len(free) < self.capacity and all(w is not workspace for w in free):
            free.append(workspace)

    def clear(self) -> None:
        """Drop all free workspaces (their memory is released)."""
        self._free.clear()


class _FusedMAF(torch.autograd.Function):
    """Forward and hand-written backward of all blocks; see the module docstring."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        workspace: MAFWorkspace,
        pool: WorkspacePool,
        masks: Sequence[torch.Tensor | None],
        n_blocks: int,
        *layers: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ws = workspace
        d = x.shape[2]
        order = _orders(d, x.device)
        per_block = len(layers) // n_blocks
        n_hidden = per_block // 2 - 1
        ws.owner = token = object()
        held = x.transpose(1, 2)
        if ws.saving:
            held = ws.inputs[0].copy_(held)
        weights_of = []  # per block the weights as used (first and last re-indexed)
        for b in range(n_blocks):
            slot, flipped = (b if ws.saving else 0), b % 2 == 0
            block = layers[b * per_block : (b + 1) * per_block]
            rows = order.rows[flipped]
            weights = [block[0].index_select(2, order.reverse) if flipped else block[0], *block[2:-2:2]]
            weights.append(block[-2].index_select(1, rows))
            biases = [*block[1:-2:2], block[-1].index_select(1, rows)]
            weights_of.append(weights)
            below = held
            for k in range(n_hidden):
                below = torch.baddbmm(biases[k].unsqueeze(-1), weights[k], below, out=ws.hidden[slot][k]).relu_()
            torch.baddbmm(biases[-1].unsqueeze(-1), weights[-1], below, out=ws.params_of[slot])
            scale = torch._C._nn.softplus(ws.log_scale_rows[slot], 1, _SOFTPLUS_THRESHOLD, out=ws.scale_of[b])
            scale.add_(SCALE_EPSILON)
            out = ws.inputs[b + 1 if ws.saving else 0] if b + 1 < n_blocks else None
            held = torch.addcmul(ws.shift_rows[slot], scale, held, out=out)
        log_scales = torch.log(ws.scales, out=ws.per_scale) if ws.saving else ws.scales.log_()
        logabsdet = log_scales.sum((0, 2))
        log_prob = torch.add(logabsdet, held.square().sum(1), alpha=-0.5).sub_(0.5 * d * _LOG_2PI)
        z = held.index_select(1, order.reverse) if n_blocks % 2 else held
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(*layers)
        ctx.workspace, ctx.pool, ctx.token, ctx.n_blocks = ws, pool, token, n_blocks
        ctx.held, ctx.order, ctx.weights_of, ctx.masks = held, order, weights_of, masks
        return z, logabsdet, log_prob

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(  # type: ignore[override]
        ctx: Any, grad_z: torch.Tensor | None, grad_logabsdet: torch.Tensor | None, grad_log_prob: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        ws: MAFWorkspace = ctx.workspace
        if ws.owner is not ctx.token:
            msg = (
                "BatchedMAF: the activations of this graph were overwritten by a later forward pass "
                "(a second backward with retain_graph=True after another forward?); recompute log_prob"
            )
            raise RuntimeError(msg)
        layers, held, order = ctx.saved_tensors, ctx.held, ctx.order
        n_blocks = ctx.n_blocks
        per_block = len(layers) // n_blocks
        n_hidden = per_block // 2 - 1
        m, d, n = held.shape
        # dL/d(final held output) and dL/dlog|det| (the log-density adds both).
        if grad_z is not None and n_blocks % 2:
            grad_z = grad_z.index_select(1, order.reverse)
        grad_det = grad_logabsdet
        if grad_log_prob is not None:
            grad_det = grad_log_prob if grad_det is None else grad_det + grad_log_prob
            minus_grad = torch.mul(held, grad_log_prob.unsqueeze(1))
            grad_y = minus_grad.neg_() if grad_z is None else grad_z - minus_grad
        else:
            grad_y = grad_z if grad_z is not None else torch.zeros_like(held)
        if grad_det is None:
            ws.per_scale.zero_()
        else:  # per_scale becomes dL/dscale of every block
            torch.div(grad_det.view(1, m, 1, n), ws.scales, out=ws.per_scale)
        torch.sigmoid(ws.params[:, :, :d], out=ws.sigmoids)

        grads: list[torch.Tensor] = []
        needs_input = ctx.needs_input_grad[0]
        for b in reversed(range(n_blocks)):
            weights, flipped, hidden = ctx.weights_of[b], b % 2 == 0, ws.hidden[b]
            block_input = ws.inputs[b]
            grad_scale = ws.per_scale_of[b].addcmul_(grad_y, block_input)
            torch.mul(grad_scale, ws.sigmoid_of[b], out=ws.grad_log_scale_rows)
            ws.grad_shift_rows.copy_(grad_y)
            torch.mul(grad_y, ws.scale_of[b], out=ws.grad_direct)
            # Output layer, then the hidden layers top-down; g is dL/d(pre-activation). The
            # gradient of layer k overwrites activation k+1, dead by then and still in cache.
            block_grads = [torch.bmm(ws.grad_params, hidden[-1].mT), ws.grad_params.sum(-1)]
            g = ws.grad_params
            for k in reversed(range(n_hidden)):
                out = ws.grad_hidden if k == n_hidden - 1 else hidden[k + 1]
                g = torch.bmm(weights[k + 1].mT, g, out=out)
                torch.ops.aten.threshold_backward.grad_input(g, hidden[k], 0, grad_input=g)
                block_grads.append(g.sum(-1))
                if k > 0:
                    block_grads.append(torch.bmm(g, hidden[k - 1].mT))
            grad_first = torch.bmm(block_input, g.mT)  # (D, H): the faster product here
            if flipped:
                grad_first = grad_first.index_select(1, order.reverse)
            rows_inverse = order.rows_inverse[flipped]
            # block_grads: [output W, output b, b_{L-1}, W_{L-1}, ..., b_1, W_1, b_0]
            block_layers = [grad_first.mT, *block_grads[:1:-1]]
            block_layers += [block_grads[0].index_select(1, rows_inverse), block_grads[1].index_select(1, rows_inverse)]
            grads[:0] = block_layers
            if b > 0 or needs_input:
                grad_y = ws.grad_direct.baddbmm_(weights[0].mT, g)
        masked = [(grad, mask) for grad, mask in zip(grads, ctx.masks, strict=True) if mask is not None]
        if masked:
            torch._foreach_mul_([grad for grad, _ in masked], [mask for _, mask in masked])
        ctx.pool.give(ws)
        grad_x = grad_y.transpose(1, 2).clone() if needs_input else None
        return (grad_x, None, None, None, None, *grads)


def fused_transform(
    x: torch.Tensor,
    layers: Sequence[torch.Tensor],
    n_blocks: int,
    pool: WorkspacePool,
    masks: Sequence[torch.Tensor | None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Map ``x`` through all MAF blocks; differentiable, with a hand-written backward.

    Args:
        x: ``(M, N, D)`` inputs (may be an expanded view).
        layers: per block ``[input.weight, input.bias, (hidden.weight, hidden.bias) * (L-1),
            output.weight, output.bias]`` with a leading member dimension, blocks in order;
            masked weights must already be zero. Output rows are ``[s_0, t_0, s_1, ...]``.
        n_blocks: number of blocks B.
        pool: where training workspaces are kept between steps.
        masks: per entry of ``layers`` a 0/1 mask its gradient is multiplied with (or
            None); by default no gradient is masked.

    Returns:
        ``z`` as an ``(M, N, D)`` (transposed) view, ``log|det dz/dx|`` and the
        log-density under a standard normal base, both ``(M, N)``.
    """
    m, n, d = x.shape
    weight = layers[0]
    n_hidden_layers = len(layers) // (2 * n_blocks) - 1
    saving = torch.is_grad_enabled() and (x.requires_grad or any(t.requires_grad for t in layers))
    key = (n_blocks, n_hidden_layers, m, d, weight.shape[1], n, weight.dtype, weight.device)
    workspace = pool.take(key) if saving else None
    if workspace is None:
        workspace = MAFWorkspace(*key[:6], saving=saving, dtype=weight.dtype, device=weight.device)
    masks = [None] * len(layers) if masks is None else masks
    z, logabsdet, log_prob = _FusedMAF.apply(x, workspace, pool, masks, n_blocks, *layers)
    return z.transpose(1, 2), logabsdet, log_prob
