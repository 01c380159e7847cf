"""Plain-numpy reference implementation of the shower observables.

Computes exactly what :func:`offline.showers.observables.compute_observables` computes
(same definitions, see that module), vectorised over showers with numpy only. It is the
reference the numba path is tested against and the baseline of ``benchmarks/showers.py``.
Large inputs are processed in chunks of ``chunk_size`` showers to bound memory.
"""

from __future__ import annotations

import numpy as np

from offline.showers.errors import ShowerDataError
from offline.showers.observables import (
    ShowerObservables,
    _resolve_settings,
    depth_boundaries,
    transverse_coordinates,
    validate_showers,
)

__all__ = ["compute_observables_numpy", "hit_energy_histogram_numpy", "shower_start_numpy"]


def shower_start_numpy(
    layer_profile: np.ndarray, start_threshold_mev: float, sustain_layers: int
) -> np.ndarray:
    """First layer from which the layer energy stays above threshold for ``sustain_layers`` layers.

    Args:
        layer_profile: ``(N, layers)`` MeV per layer.
        start_threshold_mev: layer energy marking the start.
        sustain_layers: window length (cut at the last layer).

    Returns:
        ``(N,)`` int64; ``layers`` where no layer qualifies.

    Example:
        >>> shower_start_numpy(np.array([[0.0, 5.0, 0.0, 5.0, 6.0, 7.0]]), 1.0, 3).tolist()
        [3]
    """
    above = layer_profile >= start_threshold_mev
    n, n_layers = above.shape
    ok = np.ones_like(above)
    for k in range(sustain_layers):
        shifted = np.ones_like(above)
        shifted[:, : n_layers - k] = above[:, k:]
        ok &= shifted
    start = np.where(ok.any(axis=1), ok.argmax(axis=1), n_layers)
    return start.astype(np.int64)


def _chunk_observables(
    showers: np.ndarray,
    threshold: float,
    start_threshold: float,
    sustain: int,
    n_radial: int,
    radial_width: float,
) -> ShowerObservables:
    n, n_layers, n_x, n_y = showers.shape
    if np.isnan(showers).any():
        bad = np.isnan(showers).any(axis=(1, 2, 3))
        msg = f"showers contain NaN cell energies ({int(bad.sum())} showers, first at index {int(np.flatnonzero(bad)[0])})"
        raise ShowerDataError(msg)
    is_hit = showers >= threshold
    hits = np.where(is_hit, showers, 0).astype(np.float64)
    n_hits = is_hit.sum(axis=(1, 2, 3)).astype(np.int64)
    layer = hits.sum(axis=(2, 3))
    transverse = hits.sum(axis=1)
    total = layer.sum(axis=1)
    x_profile = transverse.sum(axis=2)
    y_profile = transverse.sum(axis=1)
    xc = transverse_coordinates(n_x)
    yc = transverse_coordinates(n_y)
    zc = np.arange(n_layers, dtype=np.float64)
    safe = np.where(total > 0, total, 1.0)
    cx = x_profile @ xc / safe
    cy = y_profile @ yc / safe
    cz = layer @ zc / safe
    vx = (x_profile * (xc[None, :] - cx[:, None]) ** 2).sum(axis=1) / safe
    vy = (y_profile * (yc[None, :] - cy[:, None]) ** 2).sum(axis=1) / safe
    vz = (layer * (zc[None, :] - cz[:, None]) ** 2).sum(axis=1) / safe
    cog = np.stack([cx, cy, cz], axis=1)
    width = np.sqrt(np.stack([vx, vy, vz], axis=1))

    dist = np.sqrt(
        (xc[None, :, None] - cx[:, None, None]) ** 2 + (yc[None, None, :] - cy[:, None, None]) ** 2
    )
    ring = np.minimum((dist / radial_width).astype(np.int64), n_radial - 1)
    ring = ring + (np.arange(n) * n_radial)[:, None, None]
    radial = np.bincount(ring.ravel(), weights=transverse.ravel(), minlength=n * n_radial).reshape(
        n, n_radial
    )

    b1, b2 = depth_boundaries(n_layers)
    thirds = np.stack(
        [layer[:, :b1].sum(axis=1), layer[:, b1:b2].sum(axis=1), layer[:, b2:].sum(axis=1)], axis=1
    )
    fractions = np.where(total[:, None] > 0, thirds / safe[:, None], 0.0)
    start = shower_start_numpy(layer, start_threshold, sustain)
    return ShowerObservables(
        visible_energy=total,
        n_hits=n_hits,
        center_of_gravity=cog,
        width=width,
        longitudinal_profile=layer,
        radial_profile=radial,
        shower_start=start,
        depth_fractions=fractions,
        radial_bin_width=float(radial_width),
    )


def compute_observables_numpy(
    showers: np.ndarray,
    threshold_mev: float,
    *,
    start_threshold_mev: float | None = None,
    sustain_layers: int = 3,
    n_radial_bins: int | None = None,
    radial_bin_width: float = 1.0,
    chunk_size: int = 256,
) -> ShowerObservables:
    """Numpy twin of :func:`offline.showers.observables.compute_observables`.

    Args:
        showers: ``(N, layers, x, y)`` cell energies in MeV.
        threshold_mev: readout threshold in MeV.
        start_threshold_mev: see :func:`~offline.showers.observables.compute_observables`.
        sustain_layers: see :func:`~offline.showers.observables.compute_observables`.
        n_radial_bins: see :func:`~offline.showers.observables.compute_observables`.
        radial_bin_width: ring width in cells.
        chunk_size: showers per vectorised chunk (bounds memory).

    Returns:
        The same :class:`~offline.showers.observables.ShowerObservables`.
    """
    arr = validate_showers(showers)
    start_thr, sustain, n_rad = _resolve_settings(
        arr.shape,
        threshold_mev,
        start_threshold_mev,
        sustain_layers,
        n_radial_bins,
        radial_bin_width,
    )
    if chunk_size < 1:
        msg = f"chunk_size must be positive, got {chunk_size!r}"
        raise ValueError(msg)
    parts = [
        _chunk_observables(
            arr[lo : lo + chunk_size],
            float(threshold_mev),
            start_thr,
            sustain,
            n_rad,
            float(radial_bin_width),
        )
        for lo in range(0, max(arr.shape[0], 1), chunk_size)
    ]
    return ShowerObservables.concatenate(parts)


def hit_energy_histogram_numpy(
    showers: np.ndarray, edges: np.ndarray, threshold_mev: float
) -> np.ndarray:
    """Numpy twin of :func:`offline.showers.hit_spectrum.hit_energy_histogram`."""
    arr = validate_showers(showers)
    values = arr[arr >= threshold_mev]
    counts, _ = np.histogram(values, bins=np.asarray(edges, dtype=np.float64))
    return counts.astype(np.int64)
