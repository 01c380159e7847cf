"""Per-shower observables of dense calorimeter showers, computed with numba.

Showers are dense float arrays ``(N, layers, x, y)`` of cell energies in MeV. Only *hits*
count: cells with energy at or above the readout threshold (0.5 MIP by default, taken from
the geometry). Cells below threshold are treated as empty everywhere below.

Coordinates:

* ``x`` and ``y`` are in cells, measured from the grid centre to the cell centre
  (cell ``i`` sits at ``i + 0.5 - n_x / 2``); multiply by the cell size for mm.
* ``z`` is the layer index (``0`` is the front layer).

Observables per shower (fields of :class:`ShowerObservables`):

* ``visible_energy``: sum of hit energies (MeV).
* ``n_hits``: number of cells at or above threshold.
* ``center_of_gravity``: energy-weighted mean of ``(x, y, z)``.
* ``width``: energy-weighted standard deviation (second central moment, square-rooted)
  of ``(x, y, z)``.
* ``longitudinal_profile``: hit energy per layer (MeV).
* ``radial_profile``: hit energy in rings of width ``radial_bin_width`` cells around the
  shower axis, the line parallel to ``z`` through the shower's own ``(x, y)`` centre of
  gravity; the last ring also collects everything further out.
* ``shower_start``: the first layer ``l`` from which the layer energy stays at or above
  ``start_threshold_mev`` for ``sustain_layers`` consecutive layers (the window is cut at
  the back of the calorimeter). The default threshold is 4 MIP (8 x the 0.5-MIP readout
  threshold): a single penetrating charged particle deposits about 1 MIP per layer, so a
  sustained rise above 4 MIP marks the start of multiplication. Showers that never rise
  get ``layers`` (one past the last layer).
* ``depth_fractions``: fraction of the visible energy in the front, middle and back third
  of the layers (boundaries ``round(layers * k / 3)``).

Empty showers (no hit) get zero energy, centre of gravity at the grid centre in ``x, y``
and ``z = 0``, zero widths and fractions, and ``shower_start = layers``.

:func:`compute_observables` is the fast path (numba, parallel over showers);
:mod:`offline.showers.observables_numpy` computes the same numbers with plain numpy and
serves as the reference in tests and the benchmark.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from offline.showers.errors import ShowerDataError

__all__ = [
    "SCALAR_OBSERVABLES",
    "ShowerObservables",
    "compute_observables",
    "default_radial_bins",
    "default_start_threshold",
    "depth_boundaries",
    "transverse_coordinates",
    "validate_showers",
]

# Allow re-ordering of float sums (vectorised reductions) but keep NaN/inf semantics,
# so NaN cells are still detected.
_REASSOCIATE = {"reassoc", "contract", "nsz"}

SCALAR_OBSERVABLES: tuple[str, ...] = (
    "visible_energy",
    "n_hits",
    "cog_x",
    "cog_y",
    "cog_z",
    "width_x",
    "width_y",
    "width_z",
    "shower_start",
    "fraction_front",
    "fraction_middle",
    "fraction_back",
)
"""Names of the one-number-per-shower observables, in the order of :meth:`ShowerObservables.scalars`."""


@dataclass(frozen=True)
class ShowerObservables:
    """Observables of ``N`` showers (see the module docstring for definitions and units).

    Attributes:
        visible_energy: ``(N,)`` MeV.
        n_hits: ``(N,)`` number of cells at or above threshold.
        center_of_gravity: ``(N, 3)`` columns ``x, y`` (cells from grid centre), ``z`` (layer).
        width: ``(N, 3)`` energy-weighted standard deviations, same units.
        longitudinal_profile: ``(N, layers)`` MeV per layer.
        radial_profile: ``(N, n_radial_bins)`` MeV per ring.
        shower_start: ``(N,)`` layer index, ``layers`` when the shower never starts.
        depth_fractions: ``(N, 3)`` front, middle, back.
        radial_bin_width: ring width in cells.
    """

    visible_energy: np.ndarray
    n_hits: np.ndarray
    center_of_gravity: np.ndarray
    width: np.ndarray
    longitudinal_profile: np.ndarray
    radial_profile: np.ndarray
    shower_start: np.ndarray
    depth_fractions: np.ndarray
    radial_bin_width: float = 1.0

    def __len__(self) -> int:
        return int(self.visible_energy.shape[0])

    def scalars(self) -> dict[str, np.ndarray]:
        """One float64 array ``(N,)`` per name in :data:`SCALAR_OBSERVABLES`."""
        cog, width, frac = self.center_of_gravity, self.width, self.depth_fractions
        columns = (
            self.visible_energy,
            self.n_hits,
            cog[:, 0],
            cog[:, 1],
            cog[:, 2],
            width[:, 0],
            width[:, 1],
            width[:, 2],
            self.shower_start,
            frac[:, 0],
            frac[:, 1],
            frac[:, 2],
        )
        return {
            name: np.asarray(col, dtype=np.float64)
            for name, col in zip(SCALAR_OBSERVABLES, columns, strict=True)
        }

    def subset(self, index: np.ndarray) -> ShowerObservables:
        """Observables of the showers selected by ``index`` (boolean mask or integer array)."""
        return ShowerObservables(
            visible_energy=self.visible_energy[index],
            n_hits=self.n_hits[index],
            center_of_gravity=self.center_of_gravity[index],
            width=self.width[index],
            longitudinal_profile=self.longitudinal_profile[index],
            radial_profile=self.radial_profile[index],
            shower_start=self.shower_start[index],
            depth_fractions=self.depth_fractions[index],
            radial_bin_width=self.radial_bin_width,
        )

    @staticmethod
    def concatenate(parts: list[ShowerObservables]) -> ShowerObservables:
        """Join observables of consecutive chunks."""
        if not parts:
            msg = "cannot concatenate an empty list of ShowerObservables"
            raise ValueError(msg)
        return ShowerObservables(
            visible_energy=np.concatenate([p.visible_energy for p in parts]),
            n_hits=np.concatenate([p.n_hits for p in parts]),
            center_of_gravity=np.concatenate([p.center_of_gravity for p in parts]),
            width=np.concatenate([p.width for p in parts]),
            longitudinal_profile=np.concatenate([p.longitudinal_profile for p in parts]),
            radial_profile=np.concatenate([p.radial_profile for p in parts]),
            shower_start=np.concatenate([p.shower_start for p in parts]),
            depth_fractions=np.concatenate([p.depth_fractions for p in parts]),
            radial_bin_width=parts[0].radial_bin_width,
        )


def validate_showers(showers: np.ndarray, name: str = "showers") -> np.ndarray:
    """Check that ``showers`` is a real-valued ``(N, layers, x, y)`` array and return it.

    Raises:
        ShowerDataError: naming ``name``, the expected and the received shape or dtype.
    """
    arr = np.asarray(showers)
    if arr.ndim != 4:
        msg = f"{name} must have shape (N, layers, x, y), got shape {arr.shape}"
        raise ShowerDataError(msg)
    if not np.issubdtype(arr.dtype, np.floating):
        msg = f"{name} must hold floating-point cell energies in MeV, got dtype {arr.dtype}"
        raise ShowerDataError(msg)
    if min(arr.shape[1:]) < 1:
        msg = f"{name} has an empty grid: shape {arr.shape}"
        raise ShowerDataError(msg)
    return arr


def transverse_coordinates(n_cells: int) -> np.ndarray:
    """Cell-centre coordinates in cells, measured from the grid centre.

    Example:
        >>> transverse_coordinates(4).tolist()
        [-1.5, -0.5, 0.5, 1.5]
    """
    return np.arange(n_cells, dtype=np.float64) + 0.5 - n_cells / 2.0


def default_radial_bins(n_x: int, n_y: int, bin_width: float = 1.0) -> int:
    """Number of rings that covers every distance inside an ``n_x`` by ``n_y`` grid.

    Example:
        >>> default_radial_bins(30, 30)
        43
    """
    return max(1, int(math.ceil(math.hypot(n_x, n_y) / bin_width)))


def default_start_threshold(threshold_mev: float) -> float:
    """Default shower-start threshold: 4 MIP, i.e. 8 x a 0.5-MIP readout threshold."""
    return 8.0 * float(threshold_mev)


def depth_boundaries(n_layers: int) -> tuple[int, int]:
    """First layer of the middle and of the back third.

    Example:
        >>> depth_boundaries(30)
        (10, 20)
    """
    return int(round(n_layers / 3.0)), int(round(2.0 * n_layers / 3.0))


@numba.njit(cache=True, nogil=True)
def _start_and_fractions(
    layer: np.ndarray, total: float, start_threshold: float, sustain: int, b1: int, b2: int
) -> tuple[int, float, float, float]:
    n_layers = layer.shape[0]
    start = n_layers
    for first in range(n_layers):
        ok = True
        last = min(first + sustain, n_layers)
        for k in range(first, last):
            if layer[k] < start_threshold:
                ok = False
                break
        if ok:
            start = first
            break
    f0 = 0.0
    f1 = 0.0
    f2 = 0.0
    if total > 0.0:
        for k in range(n_layers):
            if k < b1:
                f0 += layer[k]
            elif k < b2:
                f1 += layer[k]
            else:
                f2 += layer[k]
        f0 /= total
        f1 /= total
        f2 /= total
    return start, f0, f1, f2


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=_REASSOCIATE)
def _observables_kernel(
    showers: np.ndarray,
    threshold: float,
    start_threshold: float,
    sustain: int,
    n_radial: int,
    radial_width: float,
    visible: np.ndarray,
    n_hits: np.ndarray,
    cog: np.ndarray,
    width: np.ndarray,
    layer_profile: np.ndarray,
    radial: np.ndarray,
    start: np.ndarray,
    fractions: np.ndarray,
    bad: np.ndarray,
) -> None:
    n, n_layers, n_x, n_y = showers.shape
    n_cells = n_x * n_y
    flat = showers.reshape(n, n_layers, n_cells)
    x_off = 0.5 - n_x / 2.0
    y_off = 0.5 - n_y / 2.0
    b1 = int(round(n_layers / 3.0))
    b2 = int(round(2.0 * n_layers / 3.0))
    for s in numba.prange(n):
        # Pass over the cells: flat inner loop without branches, so it vectorises.
        transverse = np.zeros(n_cells)
        total = 0.0
        hits = 0
        sz = 0.0
        szz = 0.0
        nan_seen = False
        for lay in range(n_layers):
            row = flat[s, lay]
            layer_sum = 0.0
            for m in range(n_cells):
                e = row[m]
                is_hit = e >= threshold
                v = np.float64(e) if is_hit else 0.0
                transverse[m] += v
                layer_sum += v
                hits += np.int64(is_hit)
                nan_seen |= e != e
            layer_profile[s, lay] = layer_sum
            total += layer_sum
            sz += layer_sum * lay
            szz += layer_sum * lay * lay
        bad[s] = nan_seen
        visible[s] = total
        n_hits[s] = hits
        # Transverse moments from the (x, y) energy map.
        sx = 0.0
        sy = 0.0
        sxx = 0.0
        syy = 0.0
        for i in range(n_x):
            xi = i + x_off
            for j in range(n_y):
                e = transverse[i * n_y + j]
                yj = j + y_off
                sx += e * xi
                sy += e * yj
                sxx += e * xi * xi
                syy += e * yj * yj
        if total > 0.0:
            cx = sx / total
            cy = sy / total
            cz = sz / total
            vx = max(sxx / total - cx * cx, 0.0)
            vy = max(syy / total - cy * cy, 0.0)
            vz = max(szz / total - cz * cz, 0.0)
        else:
            cx = 0.0
            cy = 0.0
            cz = 0.0
            vx = 0.0
            vy = 0.0
            vz = 0.0
        cog[s, 0] = cx
        cog[s, 1] = cy
        cog[s, 2] = cz
        width[s, 0] = math.sqrt(vx)
        width[s, 1] = math.sqrt(vy)
        width[s, 2] = math.sqrt(vz)
        for i in range(n_x):
            dx = i + x_off - cx
            for j in range(n_y):
                e = transverse[i * n_y + j]
                if e > 0.0:
                    dy = j + y_off - cy
                    b = int(math.sqrt(dx * dx + dy * dy) / radial_width)
                    if b >= n_radial:
                        b = n_radial - 1
                    radial[s, b] += e
        st, f0, f1, f2 = _start_and_fractions(
            layer_profile[s], total, start_threshold, sustain, b1, b2
        )
        start[s] = st
        fractions[s, 0] = f0
        fractions[s, 1] = f1
        fractions[s, 2] = f2


def _resolve_settings(
    shape: tuple[int, ...],
    threshold_mev: float,
    start_threshold_mev: float | None,
    sustain_layers: int,
    n_radial_bins: int | None,
    radial_bin_width: float,
) -> tuple[float, int, int]:
    if not np.isfinite(threshold_mev) or threshold_mev < 0:
        msg = f"threshold_mev must be a finite non-negative energy in MeV, got {threshold_mev!r}"
        raise ValueError(msg)
    if sustain_layers < 1:
        msg = f"sustain_layers must be at least 1, got {sustain_layers!r}"
        raise ValueError(msg)
    if not radial_bin_width > 0:
        msg = f"radial_bin_width must be positive (cells), got {radial_bin_width!r}"
        raise ValueError(msg)
    start_thr = (
        default_start_threshold(threshold_mev)
        if start_threshold_mev is None
        else float(start_threshold_mev)
    )
    n_rad = (
        default_radial_bins(shape[2], shape[3], radial_bin_width)
        if n_radial_bins is None
        else int(n_radial_bins)
    )
    if n_rad < 1:
        msg = f"n_radial_bins must be at least 1, got {n_radial_bins!r}"
        raise ValueError(msg)
    return start_thr, int(sustain_layers), n_rad


def compute_observables(
    showers: np.ndarray,
    threshold_mev: float,
    *,
    start_threshold_mev: float | None = None,
    sustain_layers: int = 3,
    n_radial_bins: int | None = None,
    radial_bin_width: float = 1.0,
) -> ShowerObservables:
    """Observables of every shower (numba, parallel over showers).

    Args:
        showers: ``(N, layers, x, y)`` cell energies in MeV (float32 or float64).
        threshold_mev: readout threshold in MeV; cells below it are ignored.
        start_threshold_mev: layer energy that marks the shower start; default 4 MIP
            (:func:`default_start_threshold`).
        sustain_layers: consecutive layers that must stay above ``start_threshold_mev``.
        n_radial_bins: number of rings; default covers the whole grid.
        radial_bin_width: ring width in cells.

    Returns:
        The observables, float64 (``n_hits`` and ``shower_start`` int64).

    Raises:
        ShowerDataError: wrong rank or dtype, or a NaN cell (the first bad shower is named).

    Example:
        >>> s = np.zeros((1, 3, 2, 2), np.float32); s[0, 1, 0, 0] = 5.0
        >>> obs = compute_observables(s, threshold_mev=0.1)
        >>> float(obs.visible_energy[0]), int(obs.n_hits[0]), obs.center_of_gravity[0].tolist()
        (5.0, 1, [-0.5, -0.5, 1.0])
    """
    arr = validate_showers(showers)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32)
    arr = np.ascontiguousarray(arr)
    start_thr, sustain, n_rad = _resolve_settings(
        arr.shape,
        threshold_mev,
        start_threshold_mev,
        sustain_layers,
        n_radial_bins,
        radial_bin_width,
    )
    n, n_layers = arr.shape[:2]
    visible = np.empty(n)
    n_hits = np.empty(n, dtype=np.int64)
    cog = np.empty((n, 3))
    width = np.empty((n, 3))
    layer_profile = np.empty((n, n_layers))
    radial = np.zeros((n, n_rad))
    start = np.empty(n, dtype=np.int64)
    fractions = np.empty((n, 3))
    bad = np.zeros(n, dtype=np.bool_)
    _observables_kernel(
        arr, float(threshold_mev), start_thr, sustain, n_rad, float(radial_bin_width),
        visible, n_hits, cog, width, layer_profile, radial, start, fractions, bad,
    )  # fmt: skip
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        msg = (
            f"showers contain NaN cell energies ({int(bad.sum())} showers, first at index {first})"
        )
        raise ShowerDataError(msg)
    return ShowerObservables(
        visible_energy=visible,
        n_hits=n_hits,
        center_of_gravity=cog,
        width=width,
        longitudinal_profile=layer_profile,
        radial_profile=radial,
        shower_start=start,
        depth_fractions=fractions,
        radial_bin_width=float(radial_bin_width),
    )
