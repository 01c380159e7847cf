"""Common reader interface of shower files: chunked reads, validation, geometry lookup.

Every format reader is a :class:`ShowerFile`: it opens lazily, knows the number of
events and the grid shape without reading the data, and reads events in slices
(:meth:`ShowerFile.read_chunks`), so a large file never has to fit in memory; only
:meth:`ShowerFile.read_all` loads everything. Reads return a :class:`ShowerChunk` with
incident energies in GeV and dense showers ``(N, layers, x, y)`` in MeV, whatever the
units and layout on disk.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from stream.showers.errors import ShowerFileError
from stream.showers.geometry import GEOMETRIES, Geometry

__all__ = ["ShowerChunk", "ShowerFile", "geometry_for_shape", "validate_arrays"]


class ShowerChunk(NamedTuple):
    """A slice of a shower file.

    Attributes:
        event_ids: uint64 ``(N,)`` (row numbers when the file stores no ids).
        energies: float32 ``(N,)`` incident energies in GeV.
        showers: float32 ``(N, layers, x, y)`` cell energies in MeV.
    """

    event_ids: np.ndarray
    energies: np.ndarray
    showers: np.ndarray


def geometry_for_shape(shape: tuple[int, ...]) -> Geometry | None:
    """The built-in geometry with grid ``shape``, or ``None``.

    Example:
        >>> geometry_for_shape((30, 30, 30)).name
        'ecal'
    """
    for geo in GEOMETRIES.values():
        if geo.shape == tuple(shape):
            return geo
    return None


def validate_arrays(path: str | Path, where: str, energies: np.ndarray, showers: np.ndarray) -> None:
    """Check that energies are ``(N,)`` finite and positive and showers ``(N, L, X, Y)``.

    Args:
        path: file being read (for the message).
        where: key or keys being read (for the message).
        energies: incident energies (GeV), shape ``(N,)``.
        showers: dense grids, shape ``(N, layers, x, y)``.

    Raises:
        ShowerFileError: naming file, key and shapes.
    """
    if energies.ndim != 1 or showers.ndim != 4 or energies.shape[0] != showers.shape[0]:
        msg = (f"{str(path)!r} [{where}]: expected energies (N,) and showers (N, layers, x, y), "
               f"got {energies.shape} and {showers.shape}")
        raise ShowerFileError(msg)
    if energies.size and not (np.all(np.isfinite(energies)) and energies.min() > 0):
        msg = f"{str(path)!r} [{where}]: incident energies must be finite and > 0, got min {energies.min()!r}"
        raise ShowerFileError(msg)
    if showers.size and not np.all(np.isfinite(showers)):
        msg = f"{str(path)!r} [{where}]: showers contain NaN or infinite cell energies"
        raise ShowerFileError(msg)


class ShowerFile(ABC):
    """A shower file opened for reading.

    Attributes:
        path: the file or directory.
        key: the group or tree inside it.
        n_events: number of showers.
        grid_shape: ``(layers, x, y)``.
        geometry: the :class:`Geometry` recorded in the file or matched by shape, or
            ``None`` for an unknown grid.
    """

    format: ClassVar[str] = ""
    path: Path
    key: str
    n_events: int
    grid_shape: tuple[int, int, int]
    geometry: Geometry | None

    @abstractmethod
    def _read(self, start: int, stop: int) -> ShowerChunk:
        """Events ``start`` to ``stop`` (validated, GeV and MeV)."""

    def read(self, start: int = 0, stop: int | None = None) -> ShowerChunk:
        """Read events ``[start, stop)`` (``stop=None``: to the end).

        Raises:
            ShowerFileError: range outside ``[0, n_events]``.
        """
        stop = self.n_events if stop is None else stop
        if not 0 <= start <= stop <= self.n_events:
            msg = f"{str(self.path)!r} [{self.key}]: cannot read events {start}..{stop} of {self.n_events}"
            raise ShowerFileError(msg)
        chunk = self._read(start, stop)
        validate_arrays(self.path, self.key, chunk.energies, chunk.showers)
        if chunk.showers.shape[1:] != self.grid_shape:
            msg = f"{str(self.path)!r} [{self.key}]: showers have grid {chunk.showers.shape[1:]}, expected {self.grid_shape}"
            raise ShowerFileError(msg)
        return chunk

    def read_chunks(self, chunk_size: int = 1000, start: int = 0) -> Iterator[ShowerChunk]:
        """Yield consecutive chunks of at most ``chunk_size`` events from event ``start``."""
        if chunk_size <= 0:
            msg = f"chunk_size must be > 0, got {chunk_size}"
            raise ValueError(msg)
        for first in range(start, self.n_events, chunk_size):
            yield self.read(first, min(first + chunk_size, self.n_events))

    def read_all(self) -> ShowerChunk:
        """Read every event (loads the whole file)."""
        return self.read(0, self.n_events)

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release the file handle (no-op where nothing is held open)."""

    def __enter__(self) -> ShowerFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __len__(self) -> int:
        return self.n_events

    def __repr__(self) -> str:
        name = self.geometry.name if self.geometry else "custom"
        return (f"{type(self).__name__}(path={str(self.path)!r}, key={self.key!r}, n_events={self.n_events}, "
                f"grid_shape={self.grid_shape}, geometry={name!r})")
