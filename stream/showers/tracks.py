"""Charged tracks that continue from layer to layer, and what one crossing leaves in the sensor.

The electromagnetic kernel places the sensor crossings of a layer either as
*continuations* of crossings of the layer in front (a charged track that goes on: same
slope plus a multiple-scattering kick, displaced by slope × layer pitch) or as *fresh*
crossings drawn from the GFlash radial profile around the (wandering) shower axis.
Every crossing carries a slope ``(tx, ty)``: it crosses the sensor on a path
``sqrt(1 + tx² + ty²)`` times the thickness (its Landau energy scales with it), and its
path inside the sensor may cross a cell boundary, so the energy is *shared* between the
cells in proportion to the path in each. Sharing is what puts hits between 0 and 0.5 MIP
(the region the readout threshold cuts in), besides the Landau straggling.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from stream.showers.deposit import landau_energy
from stream.showers.rng import sample_uniform_pair

__all__ = ["deposit_segment", "place_tracks"]


@nb.njit(cache=True)
def deposit_segment(
    layer: np.ndarray, x: float, y: float, tx: float, ty: float, half_depth: float, energy: float
) -> None:
    """Add ``energy`` along the sensor path centred on ``(x, y)`` (cell units), shared by cells.

    The path runs from ``(x, y) - (tx, ty) · half_depth`` to ``(x, y) + (tx, ty) · half_depth``;
    each cell gets the fraction of the path inside it (at most three pieces: one x and
    one y boundary). Pieces outside the grid are lost.
    """
    nx, ny = layer.shape
    x0 = x - tx * half_depth
    y0 = y - ty * half_depth
    dx = 2.0 * tx * half_depth
    dy = 2.0 * ty * half_depth
    x1 = x0 + dx
    y1 = y0 + dy
    if x0 >= 0.0 and x1 >= 0.0 and y0 >= 0.0 and y1 >= 0.0:
        # Fast path (no floor calls): most paths stay inside one cell.
        i0 = int(x0)
        j0 = int(y0)
        if i0 == int(x1) and j0 == int(y1):
            if i0 < nx and j0 < ny:
                layer[i0, j0] += energy
            return
    ix0 = math.floor(x0)
    iy0 = math.floor(y0)
    t1 = 2.0
    t2 = 2.0
    if ix0 != math.floor(x0 + dx):
        bx = math.floor(x0 + dx) if dx > 0 else math.floor(x0)
        t1 = (bx - x0) / dx
    if iy0 != math.floor(y0 + dy):
        by = math.floor(y0 + dy) if dy > 0 else math.floor(y0)
        t2 = (by - y0) / dy
    if t2 < t1:
        t1, t2 = t2, t1
    for piece in range(3):
        if piece == 0:
            lo, hi = 0.0, min(t1, 1.0)
        elif piece == 1:
            lo, hi = min(t1, 1.0), min(t2, 1.0)
        else:
            lo, hi = min(t2, 1.0), 1.0
        if hi <= lo:
            continue
        mid = 0.5 * (lo + hi)
        cx = x0 + mid * dx
        cy = y0 + mid * dy
        if cx < 0.0 or cy < 0.0 or cx >= nx or cy >= ny:
            continue
        layer[int(cx), int(cy)] += energy * (hi - lo)


@nb.njit(cache=True)
def place_tracks(
    state: np.ndarray,
    layer: np.ndarray,
    n: int,
    centre_x: float,
    centre_y: float,
    r_core: float,
    r_tail: float,
    p_core: float,
    table: np.ndarray,
    previous: np.ndarray,
    n_previous: int,
    current: np.ndarray,
    continuation: float,
    pitch: float,
    slope_spread: float,
    scattering: float,
    half_depth: float,
) -> int:
    """Add ``n`` crossings to ``layer``; record them in ``current``; return how many were recorded.

    Args:
        state: event random state.
        layer: ``(n_x, n_y)`` slice of the event grid (MeV), updated in place.
        n: number of crossings in this sensor.
        centre_x: shower axis (cell units) along x.
        centre_y: shower axis along y.
        r_core: core radius of the radial profile (cells).
        r_tail: tail radius (cells).
        p_core: core probability.
        table: Landau quantile table (MeV).
        previous: ``(k, 4)`` crossings of the layer in front: x, y, tx, ty.
        n_previous: valid rows of ``previous``.
        current: ``(k, 4)`` buffer for this layer's crossings (rows beyond ``k`` are not kept).
        continuation: probability that a crossing continues a track of the layer in front.
        pitch: layer pitch in cell units (displacement per unit slope).
        slope_spread: half-width of the uniform slope of fresh crossings, per component.
        scattering: half-width of the uniform slope kick between layers.
        half_depth: half the sensor thickness in cell units.
    """
    capacity = current.shape[0]
    kept = 0
    for _ in range(n):
        # One 64-bit draw gives the kind (and, rescaled, the track or component choice) and
        # the Landau quantile; a second the slope or kick; fresh crossings add the polar pair.
        u_kind, u_landau = sample_uniform_pair(state)
        a, b = sample_uniform_pair(state)
        if n_previous > 0 and u_kind < continuation:
            k = min(int(u_kind / continuation * n_previous), n_previous - 1)
            tx = previous[k, 2] + scattering * (2.0 * a - 1.0)
            ty = previous[k, 3] + scattering * (2.0 * b - 1.0)
            x = previous[k, 0] + tx * pitch
            y = previous[k, 1] + ty * pitch
        else:
            cut = continuation if n_previous > 0 else 0.0
            u_component = (u_kind - cut) / (1.0 - cut)
            radius = r_core if u_component < p_core else r_tail
            while True:
                c, d = sample_uniform_pair(state)
                c = 2.0 * c - 1.0
                d = 2.0 * d - 1.0
                s = c * c + d * d
                if 0.0 < s < 1.0:
                    break
            # s of a point uniform in the unit disc is itself uniform and independent of the
            # azimuth: r = R sqrt(s / (1 - s)) samples f(r) = 2 r R² / (r² + R²)².
            scale = radius / math.sqrt(1.0 - s)
            x = centre_x + c * scale
            y = centre_y + d * scale
            tx = slope_spread * (2.0 * a - 1.0)
            ty = slope_spread * (2.0 * b - 1.0)
        energy = landau_energy(u_landau, table) * math.sqrt(1.0 + tx * tx + ty * ty)
        deposit_segment(layer, x, y, tx, ty, half_depth, energy)
        if kept < capacity and continuation > 0.0:
            current[kept, 0] = x
            current[kept, 1] = y
            current[kept, 2] = tx
            current[kept, 3] = ty
            kept += 1
    return kept
