"""Calorimeter showers: geometries, reference simulator, sparse codec, files and sources.

Contract: a shower is a dense ``(layers, x, y)`` float32 grid of cell energies in MeV
with an incident energy in GeV; on the wire it is a sparse Arrow record batch of the
shower schema (:func:`stream.schema.shower_schema`). Modules:

* :mod:`stream.showers.geometry`: :class:`Geometry`, :data:`ECAL`, :data:`AHCAL`,
  :func:`get_geometry`.
* :mod:`stream.showers.simulator`: :func:`simulate` (parametric, numba-parallel,
  seeded) and :func:`sample_energies`.
* :mod:`stream.showers.sparse`: :func:`dense_to_batch`, :func:`batch_to_dense`.
* :mod:`stream.showers.io`: :func:`open_showers`, :func:`detect_format`, readers and
  writers for Zarr, ILD HDF5, CaloChallenge HDF5 and ROOT hit trees.
* :mod:`stream.showers.sources`: sources ``showers:ecal``, ``showers:ahcal``,
  ``zarr:``, ``ild:``, ``calochallenge:``, ``root:``.

Only the geometry is imported here (numba kernels load on first use).
"""

from __future__ import annotations

from stream.showers.geometry import AHCAL, ECAL, Geometry, get_geometry

__all__ = ["AHCAL", "ECAL", "Geometry", "get_geometry"]
