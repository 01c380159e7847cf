"""Fused CPU kernel for the per-layer work of shower generation (numba).

After a shower flow (teacher or student) has drawn the Gaussianised cells of one layer,
:meth:`models.showerflow.model.LayerShowerFlow.sample` decodes them (quantile map, log,
exp), rescales the hits to the layer flow's energy (:meth:`ShowerPreprocessor.finish_layer`,
``rescale="layer"``), builds the normalised context image of the layer for the flows of the
next layers and, with ``context_moments``, the layer's centre of gravity and width. In torch
that is about forty element-wise operations on ``(N, P)`` tensors per layer, each allocating
its result; for the IAF students they cost more than the flow passes themselves. Here one
pass per shower does all of it and writes straight into the caller's output views.

The function is that of the torch path (:meth:`ShowerPreprocessor.generated_layer` with
``FUSED["enabled"] = False``), computed in float64 and stored as float32: values agree to
float32 rounding, and a cell within rounding of the threshold may fall on the other side
(tested: values to 1e-5 relative, hit patterns equal but for such cells).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import torch

from models.flows.spline_kernel import pick, serial_twin

__all__ = ["FUSED", "finish_layers", "fusable"]

FUSED = {"enabled": True}
"""Set ``FUSED["enabled"] = False`` to run the torch path on CPU too (benchmarks, tests)."""


@nb.njit(cache=True, parallel=True)
def _kernel(y, grid, table, table_scale, intercept, slope, low, high, knots, log_floor, log_ceiling,  # noqa: ANN001, PLR0913, PLR0915
            threshold, rounds, layer_mev, mean, std, n_x, n_y, want_moments, shower, visible, image, moments):
    b, p = y.shape
    for i in nb.prange(b):
        cells = np.empty(p)
        logs = np.empty(p)
        hit = np.empty(p, dtype=np.bool_)
        used = np.empty(p, dtype=np.bool_)
        best, best_value = 0, -1.0
        for c in range(p):
            v = np.float64(y[i, c])
            if v != v:  # torch.nan_to_num(nan=0, posinf=50, neginf=-50)
                v = 0.0
            elif math.isinf(v):
                v = 50.0 if v > 0.0 else -50.0
            # segment: the knots of the normal-quantile grid at or below v, less one, in [0, K - 2]
            # (the torch path's floor(K * Phi(v) - 1/2)): a table over a fine uniform grid of v
            # gives it to within one knot, one or two comparisons settle it
            cell = int((min(max(v, -_TABLE_RANGE), _TABLE_RANGE) + _TABLE_RANGE) * table_scale)
            segment = table[min(cell, table.shape[0] - 1)]
            while segment < knots - 2 and grid[segment + 1] <= v:
                segment += 1
            while segment > 0 and grid[segment] > v:
                segment -= 1
            log_value = min(max(intercept[c, segment] + slope[c, segment] * v, low[c]), high[c])  # the fitted range
            log_value = min(max(log_value, log_floor), log_ceiling)
            value = math.exp(log_value)
            logs[c] = log_value
            cells[c] = value
            if value > best_value:
                best, best_value = c, value
        t = np.float64(layer_mev[i])
        empty = t < threshold
        for c in range(p):
            hit[c] = cells[c] >= threshold or c == best
        scale = 0.0
        for _ in range(rounds):
            total = 0.0
            for c in range(p):
                used[c] = hit[c]
                if hit[c]:
                    total += cells[c]
            scale = 0.0 if empty else t / max(total, 1e-30)
            changed = False
            for c in range(p):
                if hit[c] and not (cells[c] * scale >= threshold or c == best):
                    hit[c] = False
                    changed = True
            if not changed:
                break
        log_t = math.log(t)
        log_scale = math.log(scale) if scale > 0.0 else 0.0
        total = 0.0
        sum_x = sum_y = sum_xx = sum_yy = 0.0
        for c in range(p):
            energy = cells[c] * scale if used[c] else 0.0
            shower[i, c] = energy
            # log of the context cell: the rescaled hit, or the decoded cell (no log per cell needed)
            log_seen = logs[c] + log_scale if (hit[c] and not empty) else logs[c]
            image[i, c] = (log_seen - log_t - mean[c]) / std[c]
            if want_moments and energy > 0.0:
                ix = np.float64(c // n_y) - (n_x - 1) / 2.0
                iy = np.float64(c % n_y) - (n_y - 1) / 2.0
                total += energy
                sum_x += energy * ix
                sum_y += energy * iy
                sum_xx += energy * ix * ix
                sum_yy += energy * iy * iy
        visible[i] = 0.0 if empty else t
        if want_moments:
            if total > 0.0:
                cog_x, cog_y = sum_x / total, sum_y / total
                moments[i, 0] = cog_x
                moments[i, 1] = cog_y
                moments[i, 2] = math.sqrt(max(sum_xx / total - cog_x * cog_x, 0.0))
                moments[i, 3] = math.sqrt(max(sum_yy / total - cog_y * cog_y, 0.0))
            else:
                for k in range(4):
                    moments[i, k] = 0.0


_KERNEL_SERIAL = serial_twin(_kernel)  # one thread: no OpenMP region per call (models.flows.spline_kernel)

_TABLE_RANGE = 8.0  # |v| beyond which the table saturates (the comparisons walk on from its ends)
_TABLE_CELLS = 4096


def _segment_table(grid: torch.Tensor) -> tuple[np.ndarray, float]:
    """Segment of the lower edge of each of ``_TABLE_CELLS`` uniform cells on ``[-8, 8]``."""
    edges = torch.linspace(-_TABLE_RANGE, _TABLE_RANGE, _TABLE_CELLS + 1, dtype=torch.float64)[:-1]
    segment = (torch.searchsorted(grid, edges, right=True) - 1).clamp(0, grid.shape[0] - 2)
    return segment.to(torch.int64).numpy(), _TABLE_CELLS / (2.0 * _TABLE_RANGE)


def fusable(*tensors: torch.Tensor) -> bool:
    """Whether the fused kernel can run on these tensors (CPU, float32, switch on)."""
    return FUSED["enabled"] and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def finish_layers(  # noqa: PLR0913
    features: torch.Tensor, grid: torch.Tensor, intercept: torch.Tensor, slope: torch.Tensor, low: torch.Tensor,
    high: torch.Tensor, *, knots: int, log_floor: float, log_ceiling: float, threshold_mev: float, rounds: int,
    layer_mev: torch.Tensor, fraction_mean: torch.Tensor, fraction_std: torch.Tensor, shape: tuple[int, int],
    shower: torch.Tensor, visible: torch.Tensor, image: torch.Tensor, moments: torch.Tensor | None,
) -> None:
    """Decode, rescale, image and moments of one generated layer, written into the given views.

    Args:
        features: ``(N, P)`` Gaussianised cells drawn by a shower flow (NaN → 0, ±inf → ±50).
        grid: ``(K,)`` the normal quantiles at ``(k + 1/2) / K``, the maps' y knots.
        intercept, slope: ``(P, K - 1)`` segments of the layer's quantile maps (log MeV per
            Gaussian unit), on the normal-quantile grid of ``K`` knots.
        low, high: ``(P,)`` the range of the fitted log energies, to which the decoding clamps.
        knots: ``K``.
        log_floor, log_ceiling: clamp of the decoded log energies (log MeV).
        threshold_mev: readout threshold (MeV).
        rounds: rescaling rounds.
        layer_mev: ``(N,)`` the layer flow's energies (MeV).
        fraction_mean, fraction_std: ``(P,)`` normalisation of the context image.
        shape: ``(X, Y)`` of the layer.
        shower, visible, image, moments: outputs ``(N, P)`` MeV, ``(N,)`` MeV, ``(N, P)``,
            ``(N, 4)`` cells (or None); views into larger tensors are written in place.
    """
    with torch.no_grad():
        def array(t: torch.Tensor) -> np.ndarray:
            return t.detach().numpy()  # type: ignore[no-any-return]

        moment_out = moments if moments is not None else torch.empty(1, 4)
        grid64 = grid.double()
        table, scale = _segment_table(grid64)
        pick(_kernel, _KERNEL_SERIAL)(
            array(features), array(grid64), table, scale, array(intercept.double()), array(slope.double()),
            array(low.double()), array(high.double()), int(knots), float(log_floor), float(log_ceiling),
            float(threshold_mev), int(rounds), array(layer_mev), array(fraction_mean.double()),
            array(fraction_std.double()), int(shape[0]), int(shape[1]), moments is not None, array(shower),
            array(visible), array(image), array(moment_out))
