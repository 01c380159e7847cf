"""Readers and writers of shower files: Zarr, ILD HDF5, CaloChallenge HDF5, ROOT hit trees.

Contract: every reader is a :class:`ShowerFile` returning incident energies in GeV and
dense ``(N, layers, x, y)`` showers in MeV, reads in chunks (:func:`read_chunks`) and
loads a whole file only when asked (:func:`read_all`); every failure is a
:class:`~stream.showers.errors.ShowerFileError` naming the file, key and shapes.
Format modules (h5py, zarr, uproot) load on first use.
"""

from __future__ import annotations

from stream.showers.io.base import ShowerChunk, ShowerFile
from stream.showers.io.detect import (
           FORMATS,
           detect_format,
           open_showers,
           read_all,
           read_chunks,
           write_showers,
)

__all__ = ["FORMATS", "ShowerChunk", "ShowerFile", "detect_format", "open_showers", "read_all", "read_chunks",
           "write_showers"]
