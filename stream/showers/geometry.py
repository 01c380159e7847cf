"""Calorimeter grid geometries of the reference showers (ILD Si-W ECAL, ILD AHCAL).

A :class:`Geometry` is everything the simulator, the sparse codec and the file readers
need to know about a detector: the grid shape in the project's ``(layers, x, y)`` order,
the cell size, the absorber sandwich (thickness of every absorber layer, its radiation
and interaction lengths, Molière radius, critical energy, atomic number), the sensor
(thickness, energy of one MIP, relative Landau width) and the analysis threshold. It is
frozen and travels with the data as string metadata (:meth:`Geometry.to_metadata`), so
no detector constant is repeated anywhere else in the code.

Two instances exist:

* :data:`ECAL`: ILD-like Si-W ECAL for photons (arXiv 2005.05334): 30 layers of
  30 × 30 cells of 5 × 5 mm², 20 layers of 2.1 mm W then 10 layers of 4.2 mm W,
  0.5 mm silicon, 1 MIP ≈ 0.2 MeV, hits below 0.5 MIP ignored in evaluation.
* :data:`AHCAL`: ILD-like analogue hadron calorimeter for pions (arXiv 2112.09709):
  48 layers of 25 × 25 tiles of 30 × 30 mm², 18.2 mm steel per layer (17.2 mm plate plus
  1 mm cassette), 3 mm scintillator, 1 MIP ≈ 0.5 MeV.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import numpy as np

__all__ = ["AHCAL", "ECAL", "GEOMETRIES", "Geometry", "get_geometry"]


@dataclass(frozen=True)
class Geometry:
    """A calorimeter grid with its absorber sandwich and readout.

    Attributes:
        name: short name used in specs and metadata (``"ecal"``, ``"ahcal"``).
        n_layers: number of sampling layers (first array axis).
        n_x: cells along x (second array axis).
        n_y: cells along y (third array axis).
        cell_size_mm: side of the square cells (mm).
        absorber: absorber material name (informational).
        absorber_thickness_mm: thickness of the absorber in front of each sensor layer
            (mm), one entry per layer.
        radiation_length_mm: X0 of the absorber (mm); the sandwich depth is counted in
            absorber X0 (the thin sensors add little material).
        interaction_length_mm: nuclear interaction length λI of the absorber (mm).
        moliere_radius_mm: effective Molière radius of the sandwich (mm), the lateral
            scale of electromagnetic showers.
        critical_energy_mev: critical energy of the absorber (MeV).
        atomic_number: Z of the absorber (enters the GFlash parameterisation).
        sensor: sensor material name (informational).
        sensor_thickness_mm: thickness of each sensor layer (mm).
        mip_mev: most probable energy of a minimum-ionising particle crossing one cell
            of the sensor (MeV); the Landau peak of the cell spectrum.
        landau_width: Landau scale ξ relative to ``mip_mev`` (dimensionless).
        visible_fraction: fraction of the electromagnetic track length seen as
            charged-particle crossings of the sensors (e/mip of the sandwich).
        threshold_mip: analysis threshold in MIP; cells below are ignored in evaluation.
        particle: incident particle of the reference sample (``"photon"``, ``"pi+"``).
        energy_min_gev: default lowest incident energy (GeV).
        energy_max_gev: default highest incident energy (GeV).
    """

    name: str
    n_layers: int
    n_x: int
    n_y: int
    cell_size_mm: float
    absorber: str
    absorber_thickness_mm: tuple[float, ...]
    radiation_length_mm: float
    interaction_length_mm: float
    moliere_radius_mm: float
    critical_energy_mev: float
    atomic_number: float
    sensor: str
    sensor_thickness_mm: float
    mip_mev: float
    landau_width: float
    visible_fraction: float
    threshold_mip: float
    particle: str
    energy_min_gev: float = 10.0
    energy_max_gev: float = 100.0

    def __post_init__(self) -> None:
        if min(self.n_layers, self.n_x, self.n_y) <= 0:
            msg = f"geometry {self.name!r}: grid shape {self.shape} must be positive"
            raise ValueError(msg)
        if len(self.absorber_thickness_mm) != self.n_layers:
            msg = (
                f"geometry {self.name!r}: absorber_thickness_mm has {len(self.absorber_thickness_mm)} "
                f"entries, expected one per layer ({self.n_layers})"
            )
            raise ValueError(msg)
        positive = ("cell_size_mm", "radiation_length_mm", "interaction_length_mm", "moliere_radius_mm",
                    "critical_energy_mev", "mip_mev", "landau_width", "visible_fraction")
        for key in positive:
            if not getattr(self, key) > 0:
                msg = f"geometry {self.name!r}: {key} must be > 0, got {getattr(self, key)!r}"
                raise ValueError(msg)
        if not 0 < self.energy_min_gev <= self.energy_max_gev:
            msg = f"geometry {self.name!r}: need 0 < energy_min_gev <= energy_max_gev, got {self.energy_min_gev}, {self.energy_max_gev}"
            raise ValueError(msg)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape ``(layers, x, y)``."""
        return (self.n_layers, self.n_x, self.n_y)

    @property
    def n_cells(self) -> int:
        """Number of cells in the grid."""
        return self.n_layers * self.n_x * self.n_y

    @property
    def threshold_mev(self) -> float:
        """Analysis threshold in MeV (``threshold_mip * mip_mev``)."""
        return self.threshold_mip * self.mip_mev

    def layer_boundaries_x0(self) -> np.ndarray:
        """Depth of the absorber boundaries in X0, shape ``(layers + 1,)``.

        Sensor layer ``i`` sits behind absorber ``i``, at depth ``boundaries[i + 1]``.

        Example:
            >>> round(float(ECAL.layer_boundaries_x0()[-1]), 6)
            24.0
        """
        depth = np.concatenate([[0.0], np.cumsum(self.absorber_thickness_mm)])
        return depth / self.radiation_length_mm

    def layer_boundaries_lambda(self) -> np.ndarray:
        """Depth of the absorber boundaries in interaction lengths, shape ``(layers + 1,)``."""
        return self.layer_boundaries_x0() * (self.radiation_length_mm / self.interaction_length_mm)

    def layer_weights(self) -> np.ndarray:
        """Sampling weight of each layer: its absorber thickness over the thinnest one.

        ``(showers.sum((2, 3)) * weights).sum(1)`` is the calibrated visible energy
        (the sum that ILD-style reconstruction uses), shape ``(layers,)``.

        Example:
            >>> ECAL.layer_weights()[[0, -1]].tolist()
            [1.0, 2.0]
        """
        thickness = np.asarray(self.absorber_thickness_mm, dtype=np.float64)
        return thickness / thickness.min()

    def to_metadata(self) -> dict[str, str]:
        """String metadata (for Arrow schemas, Zarr and HDF5 attributes).

        Returns:
            ``{"geometry": name, "grid_shape": "L,X,Y", "geometry_json": <all fields>}``.
        """
        return {
            "geometry": self.name,
            "grid_shape": ",".join(str(s) for s in self.shape),
            "geometry_json": json.dumps(asdict(self)),
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str] | Mapping[bytes, bytes]) -> Geometry:
        """Rebuild a geometry from :meth:`to_metadata` output (str or bytes keys).

        Falls back to the named built-in geometry when only ``geometry`` is present.

        Raises:
            ValueError: neither ``geometry_json`` nor a known ``geometry`` name is present.
        """
        meta = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                for k, v in metadata.items()}
        if "geometry_json" in meta:
            raw = json.loads(meta["geometry_json"])
            known = {f.name for f in fields(cls)}
            values = {k: v for k, v in raw.items() if k in known}
            values["absorber_thickness_mm"] = tuple(values["absorber_thickness_mm"])
            return cls(**values)
        if meta.get("geometry") in GEOMETRIES:
            return GEOMETRIES[meta["geometry"]]
        msg = f"metadata has no 'geometry_json' and no known 'geometry' name (keys: {sorted(meta)})"
        raise ValueError(msg)


ECAL = Geometry(
    name="ecal",
    n_layers=30,
    n_x=30,
    n_y=30,
    cell_size_mm=5.0,
    absorber="W",
    absorber_thickness_mm=(2.1,) * 20 + (4.2,) * 10,
    radiation_length_mm=3.5,
    interaction_length_mm=99.5,
    moliere_radius_mm=15.0,
    critical_energy_mev=7.97,
    atomic_number=74.0,
    sensor="Si",
    sensor_thickness_mm=0.5,
    mip_mev=0.2,
    landau_width=0.1,
    visible_fraction=0.4,
    threshold_mip=0.5,
    particle="photon",
)
"""ILD-like Si-W ECAL, photons at normal incidence in the grid centre (arXiv 2005.05334)."""

AHCAL = Geometry(
    name="ahcal",
    n_layers=48,
    n_x=25,
    n_y=25,
    cell_size_mm=30.0,
    absorber="Fe",
    absorber_thickness_mm=(18.2,) * 48,
    radiation_length_mm=17.57,
    interaction_length_mm=167.7,
    moliere_radius_mm=25.0,
    critical_energy_mev=21.68,
    atomic_number=26.0,
    sensor="scintillator",
    sensor_thickness_mm=3.0,
    mip_mev=0.5,
    landau_width=0.15,
    visible_fraction=0.8,
    threshold_mip=0.5,
    particle="pi+",
)
"""ILD-like AHCAL (steel-scintillator), positive pions in the grid centre (arXiv 2112.09709)."""

GEOMETRIES: dict[str, Geometry] = {"ecal": ECAL, "ahcal": AHCAL}


def get_geometry(name: str | Geometry) -> Geometry:
    """Return the geometry called ``name`` (``"ecal"``, ``"ahcal"``), or ``name`` itself.

    Raises:
        ValueError: unknown name (lists the known ones).

    Example:
        >>> get_geometry("ecal").shape
        (30, 30, 30)
    """
    if isinstance(name, Geometry):
        return name
    key = str(name).lower()
    if key not in GEOMETRIES:
        msg = f"unknown shower geometry {name!r}; known: {sorted(GEOMETRIES)}"
        raise ValueError(msg)
    return GEOMETRIES[key]
