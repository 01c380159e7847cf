"""The ``Source`` protocol: anything that yields Arrow record batches of one schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import pyarrow as pa

__all__ = ["Source"]


@runtime_checkable
class Source(Protocol):
    """A finite or endless producer of record batches sharing one schema.

    Attributes:
        spec: the source spec string that builds it (``KIND[:ARGUMENT]``, see DESIGN.md).
        schema: the Arrow schema of every batch (``stream.schema``).

    ``batches(start_event)`` yields batches beginning at the ``start_event``-th event of
    the stream (0 = from the start), so a replay or an embedded trainer can resume a
    deterministic source exactly. Sources are deterministic for a fixed seed.
    """

    spec: str
    schema: pa.Schema

    def batches(self, start_event: int = 0) -> Iterator[pa.RecordBatch]:
        """Yield record batches, starting at event number ``start_event``."""
        ...
