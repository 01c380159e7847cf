"""Fused CPU kernels of the rational-quadratic spline (numba), with its analytic backward.

:func:`models.flows.spline_maf.rational_quadratic_spline` is the reference: about a hundred
torch operations on tensors of shape ``S + (K,)`` forward and as many again backward, each
allocating its result. On the shower flows (30 × 128 × 100 cells a block) that made a
spline block's elementwise part cost ten times its matrix products. Here one pass over
the elements computes the knots, finds the bin and evaluates the spline; the backward
pass recomputes them per element and applies the chain rule by hand (through the bin
formula, the cumulative sums of the knots, the softmax of the bin sizes and the softplus
of the derivatives), so nothing of shape ``S + (K,)`` is stored or allocated.

Conventions are exactly those of the reference (tested against it and against
``torch.autograd.gradcheck`` in float64): bins at least ``MIN_BIN_WIDTH`` of the interval
wide and high, knots at exactly ``±tail_bound``, inner derivatives ``MIN_DERIVATIVE +
softplus``, boundary derivatives 1, a point on a knot in the bin above it, identity (and
zero parameter gradient) outside the interval, NaN in gives NaN out. Arithmetic inside a
kernel is float64, so float32 results agree with the reference to float32 rounding.

:func:`spline` is the entry point: the fused kernels on CPU tensors, the reference
elsewhere (CUDA) and for an inverse that needs a gradient (never used by the flows:
their inverse runs without one).
"""

from __future__ import annotations

import math
import types
from typing import Any

import numba as nb
import numpy as np
import torch

__all__ = ["FUSED", "pick", "serial_twin", "spline", "threads"]

FUSED = {"enabled": True}
"""Set ``FUSED["enabled"] = False`` to run the torch reference on CPU too (benchmarks, tests)."""

_CHUNK = 512  # elements per parallel work item (scratch arrays are allocated once per chunk)


@nb.njit(cache=True, inline="always")
def _sizes(p: np.ndarray, offset: int, k: int, bound: float, minimum: float, probs: np.ndarray, knots: np.ndarray) -> None:
    """Softmax ``probs`` of ``p[offset:offset+k]`` and the ``k + 1`` knots on ``[-bound, bound]``."""
    top = p[offset]
    for i in range(1, k):
        top = max(top, p[offset + i])
    total = 0.0
    for i in range(k):
        probs[i] = math.exp(p[offset + i] - top)
        total += probs[i]
    span = 2.0 * bound
    knots[0] = -bound
    acc = -bound
    for i in range(k):
        probs[i] /= total
        if i < k - 1:
            acc += probs[i] * (span * (1.0 - minimum * k)) + span * minimum
            knots[i + 1] = acc
    knots[k] = bound


@nb.njit(cache=True, inline="always")
def _softplus(c: float) -> float:
    return c if c > 20.0 else math.log1p(math.exp(c))


@nb.njit(cache=True, inline="always")
def _bin(knots: np.ndarray, k: int, v: float) -> int:
    """Number of inner knots ``<= v`` (``searchsorted(..., right=True)``): the bin of ``v``."""
    b = 0
    for i in range(1, k):
        if knots[i] <= v:
            b += 1
    return b


@nb.njit(cache=True, parallel=True)
def _forward_kernel(x, params, k, bound, min_size, min_derivative, inverse, out, logdet):  # noqa: ANN001, PLR0913
    n = x.shape[0]
    chunks = (n + _CHUNK - 1) // _CHUNK
    for c in nb.prange(chunks):
        px = np.empty(k)
        py = np.empty(k)
        kx = np.empty(k + 1)
        ky = np.empty(k + 1)
        for e in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
            v = np.float64(x[e])
            if v < -bound or v > bound:
                out[e] = x[e]
                logdet[e] = 0.0
                continue
            if v != v:  # NaN in, NaN out
                out[e] = v
                logdet[e] = v
                continue
            p = params[e]
            _sizes(p, 0, k, bound, min_size, px, kx)
            _sizes(p, k, k, bound, min_size, py, ky)
            b = _bin(ky if inverse else kx, k, v)
            x0, x1, y0, y1 = kx[b], kx[b + 1], ky[b], ky[b + 1]
            d0 = 1.0 if b == 0 else _softplus(np.float64(p[2 * k + b - 1])) + min_derivative
            d1 = 1.0 if b == k - 1 else _softplus(np.float64(p[2 * k + b])) + min_derivative
            w, h = x1 - x0, y1 - y0
            s = h / w
            curvature = d0 + d1 - 2.0 * s
            if inverse:
                dy, above = v - y0, y1 - v
                bb = h * d0 - dy * curvature
                root = math.sqrt((h * d0 - dy * (d0 + d1)) ** 2 + 4.0 * s * s * dy * above)
                xi = (root - bb) / (2.0 * (h * s - bb)) if bb < 0.0 else 2.0 * s * dy / (bb + root)
                xi = min(max(xi, 0.0), 1.0)
                result = xi * w + x0
            else:
                xi = min(max((v - x0) / w, 0.0), 1.0)
            mix = xi * (1.0 - xi)
            den = s + curvature * mix
            if not inverse:
                result = y0 + h * (s * xi * xi + d0 * mix) / den
            deriv = s * s * (d1 * xi * xi + 2.0 * s * mix + d0 * (1.0 - xi) ** 2)
            ld = math.log(deriv) - 2.0 * math.log(den)
            out[e] = result
            logdet[e] = -ld if inverse else ld


@nb.njit(cache=True, parallel=True)
def _backward_kernel(x, params, k, bound, min_size, min_derivative, grad_out, grad_logdet, grad_x, grad_params):  # noqa: ANN001, PLR0913, PLR0915
    n = x.shape[0]
    chunks = (n + _CHUNK - 1) // _CHUNK
    scale = 2.0 * bound * (1.0 - min_size * k)  # d(bin size) / d(softmax share)
    for c in nb.prange(chunks):
        px = np.empty(k)
        py = np.empty(k)
        kx = np.empty(k + 1)
        ky = np.empty(k + 1)
        gkx = np.empty(k + 1)
        gky = np.empty(k + 1)
        for e in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
            v = np.float64(x[e])
            gp = grad_params[e]
            for i in range(3 * k - 1):
                gp[i] = 0.0
            g_out, g_ld = np.float64(grad_out[e]), np.float64(grad_logdet[e])
            if v < -bound or v > bound:
                grad_x[e] = g_out
                continue
            if v != v:
                grad_x[e] = v
                for i in range(3 * k - 1):
                    gp[i] = v
                continue
            p = params[e]
            _sizes(p, 0, k, bound, min_size, px, kx)
            _sizes(p, k, k, bound, min_size, py, ky)
            b = _bin(kx, k, v)
            x0, x1, y0, y1 = kx[b], kx[b + 1], ky[b], ky[b + 1]
            c0 = np.float64(p[2 * k + b - 1]) if b > 0 else 0.0
            c1 = np.float64(p[2 * k + b]) if b < k - 1 else 0.0
            d0 = 1.0 if b == 0 else _softplus(c0) + min_derivative
            d1 = 1.0 if b == k - 1 else _softplus(c1) + min_derivative
            w, h = x1 - x0, y1 - y0
            s = h / w
            raw = (v - x0) / w
            xi = min(max(raw, 0.0), 1.0)
            mix = xi * (1.0 - xi)
            curvature = d0 + d1 - 2.0 * s
            den = s + curvature * mix
            num = s * xi * xi + d0 * mix
            a = d1 * xi * xi + 2.0 * s * mix + d0 * (1.0 - xi) ** 2
            hd, hnd = h / den, h * num / (den * den)
            # output = y0 + h num / den;  log-derivative = 2 log s + log a - 2 log den
            dden_dxi = curvature * (1.0 - 2.0 * xi)
            g_xi = g_out * (hd * (2.0 * s * xi + d0 * (1.0 - 2.0 * xi)) - hnd * dden_dxi) + g_ld * (
                (2.0 * d1 * xi + 2.0 * s * (1.0 - 2.0 * xi) - 2.0 * d0 * (1.0 - xi)) / a - 2.0 * dden_dxi / den
            )
            if raw < 0.0 or raw > 1.0:  # the clamp passes no gradient there, as in the reference
                g_xi = 0.0
            dden_ds = 1.0 - 2.0 * mix
            g_s = g_out * (hd * xi * xi - hnd * dden_ds) + g_ld * (2.0 / s + 2.0 * mix / a - 2.0 * dden_ds / den)
            g_d0 = g_out * (hd - hnd) * mix + g_ld * ((1.0 - xi) ** 2 / a - 2.0 * mix / den)
            g_d1 = -g_out * hnd * mix + g_ld * (xi * xi / a - 2.0 * mix / den)
            g_h = g_out * num / den + g_s / w
            grad_x[e] = g_xi / w
            for i in range(k + 1):
                gkx[i] = 0.0
                gky[i] = 0.0
            gkx[b] += g_xi * (xi - 1.0) / w + g_s * s / w
            gkx[b + 1] += -g_xi * xi / w - g_s * s / w
            gky[b] += g_out - g_h
            gky[b + 1] += g_h
            _size_gradients(gp, 0, px, gkx, k, scale)
            _size_gradients(gp, k, py, gky, k, scale)
            if b > 0:  # d0 is an inner derivative: min + softplus(c0)
                gp[2 * k + b - 1] += g_d0 * (1.0 if c0 > 20.0 else 1.0 / (1.0 + math.exp(-c0)))
            if b < k - 1:
                gp[2 * k + b] += g_d1 * (1.0 if c1 > 20.0 else 1.0 / (1.0 + math.exp(-c1)))


@nb.njit(cache=True, inline="always")
def _size_gradients(gp: np.ndarray, offset: int, probs: np.ndarray, g_knots: np.ndarray, k: int, scale: float) -> None:
    """Gradients of the ``k`` size logits at ``gp[offset:]`` from those of the knots.

    Inner knot ``i`` is ``-bound + sum_{j < i} size_j``, so size ``j`` (0-based) moves the
    inner knots ``j + 1 .. k - 1`` (the last size none: the top knot is fixed); a size is
    ``scale * softmax_j + constant``.
    """
    tail = 0.0
    weighted = 0.0
    for j in range(k - 1, -1, -1):
        g_share = scale * tail
        if j >= 1:
            tail += g_knots[j]
        gp[offset + j] = g_share
        weighted += g_share * probs[j]
    for j in range(k):
        gp[offset + j] = probs[j] * (gp[offset + j] - weighted)


def serial_twin(kernel: Any) -> Any:
    """``kernel`` (a ``parallel=True`` numba function) compiled without ``parallel``, cached under
    its own name (``<name>_serial``): its ``prange`` loops run on the calling thread.

    With :func:`pick` and :func:`threads`, a one-thread call never starts numba's OpenMP
    pool. Once started, the pool's idle threads took the caller's core on a busy machine:
    the dijet OnlineFlow's training step ran at 40-67 ms against 16.5 ms without it, or
    14.7 ms with ``OMP_WAIT_POLICY=PASSIVE`` (measured side by side, the other core busy).
    """
    py = kernel.py_func
    twin = types.FunctionType(py.__code__, py.__globals__, py.__name__ + "_serial", py.__defaults__, py.__closure__)
    twin.__qualname__ = py.__qualname__ + "_serial"
    return nb.njit(cache=True)(twin)


def threads() -> int:
    """Threads for a kernel call: torch's intra-op threads, at most numba's; numba is set to them.

    At one thread numba's threading layer is not touched (asking it its thread count starts
    its pool)."""
    wanted = max(1, min(torch.get_num_threads(), nb.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    if wanted > 1 and nb.get_num_threads() != wanted:
        nb.set_num_threads(wanted)
    return wanted


def pick(kernel: Any, serial: Any) -> Any:
    """The kernel to call: its serial twin at one thread (:func:`threads`), else the parallel one."""
    return serial if threads() == 1 else kernel


_FORWARD_SERIAL = serial_twin(_forward_kernel)
_BACKWARD_SERIAL = serial_twin(_backward_kernel)


def _constants() -> tuple[float, float]:
    from models.flows.spline_maf import MIN_BIN_WIDTH, MIN_DERIVATIVE

    return MIN_BIN_WIDTH, MIN_DERIVATIVE


class _FusedSpline(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inputs: torch.Tensor, params: torch.Tensor, n_bins: int, tail_bound: float) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]  # noqa: ANN001
        flat_x = inputs.detach().contiguous().reshape(-1)
        flat_p = params.detach().contiguous().reshape(-1, params.shape[-1])
        out, logdet = torch.empty_like(flat_x), torch.empty_like(flat_x)
        min_size, min_derivative = _constants()
        pick(_forward_kernel, _FORWARD_SERIAL)(flat_x.numpy(), flat_p.numpy(), n_bins, float(tail_bound), min_size,
                                               min_derivative, False, out.numpy(), logdet.numpy())
        ctx.save_for_backward(flat_x, flat_p)
        ctx.spline = (n_bins, float(tail_bound), inputs.shape, params.shape)
        return out.view(inputs.shape), logdet.view(inputs.shape)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor | None, grad_logdet: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, None, None]:  # type: ignore[override]  # noqa: ANN001
        flat_x, flat_p = ctx.saved_tensors
        n_bins, tail_bound, x_shape, p_shape = ctx.spline
        zeros = torch.zeros_like(flat_x)
        g_out = zeros if grad_out is None else grad_out.detach().contiguous().reshape(-1).to(flat_x.dtype)
        g_ld = zeros if grad_logdet is None else grad_logdet.detach().contiguous().reshape(-1).to(flat_x.dtype)
        grad_x, grad_p = torch.empty_like(flat_x), torch.empty_like(flat_p)
        min_size, min_derivative = _constants()
        pick(_backward_kernel, _BACKWARD_SERIAL)(flat_x.numpy(), flat_p.numpy(), n_bins, tail_bound, min_size,
                                                 min_derivative, g_out.numpy(), g_ld.numpy(), grad_x.numpy(),
                                                 grad_p.numpy())
        return grad_x.view(x_shape), grad_p.view(p_shape), None, None


def _fusable(inputs: torch.Tensor, params: torch.Tensor) -> bool:
    return (
        FUSED["enabled"]
        and inputs.device.type == "cpu"
        and params.device.type == "cpu"
        and inputs.dtype in (torch.float32, torch.float64)
        and params.dtype == inputs.dtype
        and params.shape[:-1] == inputs.shape
    )


def spline(
    inputs: torch.Tensor, params: torch.Tensor, *, n_bins: int, tail_bound: float, inverse: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rational-quadratic spline of :func:`~models.flows.spline_maf.rational_quadratic_spline`
    with its parameters packed as ``params = S + (3K - 1,)`` (``[widths, heights, derivatives]``).

    Fused kernels on CPU; the reference on other devices and for an inverse that needs a
    gradient.

    Example:
        >>> x = torch.linspace(-3, 3, 7)
        >>> params = torch.cat([torch.zeros(7, 8), torch.full((7, 3), 0.5407)], dim=-1)
        >>> y, logdet = spline(x, params, n_bins=4, tail_bound=2.0)
        >>> torch.allclose(y, x, atol=1e-3)  # equal bins and unit slopes: the identity
        True
    """
    expected = 3 * n_bins - 1
    if params.shape[-1] != expected:
        msg = f"spline: params need 3K - 1 = {expected} entries in their last dimension, got {params.shape[-1]}"
        raise ValueError(msg)
    needs_grad = torch.is_grad_enabled() and (inputs.requires_grad or params.requires_grad)
    if _fusable(inputs, params) and not (inverse and needs_grad):
        if inverse or not needs_grad:
            flat_x = inputs.detach().contiguous().reshape(-1)
            out, logdet = torch.empty_like(flat_x), torch.empty_like(flat_x)
            min_size, min_derivative = _constants()
            # a strided view is read in place (the shower flows' inverse hands a transposed one)
            pick(_forward_kernel, _FORWARD_SERIAL)(flat_x.numpy(), params.detach().reshape(-1, expected).numpy(),
                                                   n_bins, float(tail_bound), min_size, min_derivative, inverse,
                                                   out.numpy(), logdet.numpy())
            return out.view(inputs.shape), logdet.view(inputs.shape)
        return _FusedSpline.apply(inputs, params, n_bins, float(tail_bound))  # type: ignore[no-any-return]
    from models.flows.spline_maf import rational_quadratic_spline

    k = n_bins
    widths, heights, derivatives = params.split([k, k, k - 1], dim=-1)
    return rational_quadratic_spline(inputs, widths, heights, derivatives, tail_bound=tail_bound, inverse=inverse)
