"""One entry point for shower files: detect the format, open, read in chunks, write.

Formats: ``zarr`` (native store), ``ild`` (ILD-style HDF5), ``calochallenge``
(CaloChallenge-style HDF5) and ``root`` (ROOT hit trees). Readers are imported on
first use, so importing this module stays light.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from stream.showers.errors import ShowerFileError
from stream.showers.geometry import Geometry
from stream.showers.io.base import ShowerChunk, ShowerFile

__all__ = ["FORMATS", "detect_format", "open_showers", "read_all", "read_chunks", "write_showers"]

FORMATS = ("zarr", "ild", "calochallenge", "root")

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ROOT_MAGIC = b"root"


def detect_format(path: str | Path) -> str:
    """Guess the format of a shower file from its content (and name, for Zarr).

    Returns:
        one of :data:`FORMATS`.

    Raises:
        ShowerFileError: missing path or unknown content (names what was found).
    """
    path = Path(path)
    if not path.exists():
        msg = f"{str(path)!r}: no such file or directory"
        raise ShowerFileError(msg)
    if path.is_dir():
        if (path / "zarr.json").exists() or (path / ".zgroup").exists():
            return "zarr"
        msg = f"{str(path)!r}: a directory but not a Zarr store (no zarr.json or .zgroup)"
        raise ShowerFileError(msg)
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(_ROOT_MAGIC):
        return "root"
    if head == _HDF5_MAGIC:
        import h5py

        from stream.showers.io.ild_hdf5 import find_ild_groups

        with h5py.File(path, "r") as handle:
            if "incident_energies" in handle and "showers" in handle:
                return "calochallenge"
            if find_ild_groups(handle):
                return "ild"
            keys = sorted(handle.keys())
        msg = (f"{str(path)!r}: HDF5 file with keys {keys}, neither CaloChallenge ('incident_energies', "
               f"'showers') nor ILD (a group with 'energy' and 'layers')")
        raise ShowerFileError(msg)
    msg = f"{str(path)!r}: unknown shower file format (first bytes {head!r}); known: {FORMATS}"
    raise ShowerFileError(msg)


def open_showers(path: str | Path, format: str | None = None, **options: Any) -> ShowerFile:  # noqa: A002
    """Open a shower file for chunked reading.

    Args:
        path: file or Zarr directory.
        format: one of :data:`FORMATS`; detected when ``None``.
        **options: reader options: ``key`` (zarr, ild), ``grid_shape`` (calochallenge,
            root), ``tree`` (root).

    Example:
        >>> import tempfile
        >>> p = write_showers(tempfile.mkdtemp() + "/s.zarr", np.array([10.0]),
        ...                   np.zeros((1, 30, 30, 30), np.float32), "ecal")
        >>> open_showers(p).n_events
        1
    """
    fmt = format or detect_format(path)
    try:
        if fmt == "zarr":
            from stream.showers.io.zarr_format import ZarrShowerFile

            return ZarrShowerFile(path, **options)
        if fmt == "ild":
            from stream.showers.io.ild_hdf5 import ILDShowerFile

            return ILDShowerFile(path, **options)
        if fmt == "calochallenge":
            from stream.showers.io.calochallenge import CaloChallengeShowerFile

            return CaloChallengeShowerFile(path, **options)
        if fmt == "root":
            from stream.showers.io.root_hits import RootHitsShowerFile

            return RootHitsShowerFile(path, **options)
    except TypeError as err:
        msg = f"{str(path)!r}: bad reader option for format {fmt!r}: {err}"
        raise ShowerFileError(msg) from err
    msg = f"unknown shower file format {fmt!r}; known: {FORMATS}"
    raise ShowerFileError(msg)


def read_chunks(path: str | Path, chunk_size: int = 1000, format: str | None = None,  # noqa: A002
                **options: Any) -> Iterator[ShowerChunk]:
    """Iterate over a shower file in chunks of ``chunk_size`` events (never loads it whole)."""
    with open_showers(path, format, **options) as reader:
        yield from reader.read_chunks(chunk_size)


def read_all(path: str | Path, format: str | None = None, **options: Any) -> ShowerChunk:  # noqa: A002
    """Read a whole shower file: ``(event_ids, energies GeV, showers MeV)``."""
    with open_showers(path, format, **options) as reader:
        return reader.read_all()


def write_showers(path: str | Path, energies_gev: np.ndarray, showers: np.ndarray,
                  geometry: str | Geometry | None = None, format: str | None = None,  # noqa: A002
                  **options: Any) -> Path:
    """Write showers in ``format`` (default: from the suffix; ``.zarr``/directory → zarr,
    ``.root`` → root, ``.h5``/``.hdf5`` → ild unless ``format="calochallenge"``).
    """
    path = Path(path)
    fmt = format or {".root": "root", ".h5": "ild", ".hdf5": "ild"}.get(path.suffix, "zarr")
    if fmt == "zarr":
        from stream.showers.io.zarr_format import write_zarr

        if geometry is None:
            msg = f"{str(path)!r}: writing Zarr needs a geometry"
            raise ShowerFileError(msg)
        return write_zarr(path, energies_gev, showers, geometry, **options)
    if fmt == "ild":
        from stream.showers.io.ild_hdf5 import write_ild

        return write_ild(path, energies_gev, showers, geometry, **options)
    if fmt == "calochallenge":
        from stream.showers.io.calochallenge import write_calochallenge

        return write_calochallenge(path, energies_gev, showers, geometry)
    if fmt == "root":
        from stream.showers.io.root_hits import write_root_hits

        return write_root_hits(path, energies_gev, showers, geometry, **options)
    msg = f"unknown shower file format {fmt!r}; known: {FORMATS}"
    raise ShowerFileError(msg)
