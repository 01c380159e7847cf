"""Build a :class:`stream.source.Source` from its spec string ``KIND[:ARGUMENT]``.

Kinds (see DESIGN.md): ``toy``, ``parquet:PATH``, ``root:PATH[:TREE]``, ``zarr:PATH``,
``ild:PATH``, ``calochallenge:PATH``, ``lhco:PATH``, ``dijet``, ``showers:ecal``,
``showers:ahcal``. Generator options come from a mapping (the config section of the same
name), e.g. ``{"toy": {"signal_fraction": 0.01}}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from common.registry import Registry
from stream.errors import SourceError
from stream.schema import EVENT_ID, FEATURE_TYPE
from stream.source import Source

__all__ = ["SOURCES", "ParquetSource", "open_source", "register_source", "source_kinds"]

SourceFactory = Callable[[str | None, Mapping[str, Any]], Source]
SOURCES: Registry[SourceFactory] = Registry(
    "source kind",
    error=SourceError,
    # Modules that register further kinds on import (skipped if their extra is not installed).
    plugins=("stream.showers.sources", "stream.readers.root_events", "stream.readers.lhco", "stream.generators.dijet"),
)
"""Source kind → factory ``(argument, options) -> Source``."""


def register_source(kind: str) -> Callable[[SourceFactory], SourceFactory]:
    """Decorator registering a factory ``(argument, options) -> Source`` for ``kind``."""
    return SOURCES.register(kind)


def source_kinds() -> list[str]:
    """All known source kinds."""
    return SOURCES.names()


def open_source(spec: str, options: Mapping[str, Mapping[str, Any]] | None = None) -> Source:
    """Build the source named by ``spec``.

    Args:
        spec: ``KIND[:ARGUMENT]``, e.g. ``"toy"`` or ``"parquet:events.parquet"``.
        options: per-kind option mappings (config sections), e.g. ``{"toy": {"seed": 3}}``.

    Raises:
        SourceError: unknown kind (lists the known ones) or bad argument.
    """
    kind, _, argument = spec.partition(":")
    if kind not in SOURCES:
        msg = f"unknown source kind {kind!r} in spec {spec!r}; known kinds: {source_kinds()}"
        raise SourceError(msg)
    opts = dict((options or {}).get(kind, {}))
    return SOURCES.get(kind)(argument or None, opts)


@register_source("toy")
def _toy(argument: str | None, options: Mapping[str, Any]) -> Source:
    from stream.generators.toy import ToySpectrumConfig, ToySpectrumSource

    try:
        config = ToySpectrumConfig(**options)
    except TypeError as err:
        msg = f"toy: bad option in {dict(options)}: {err}"
        raise SourceError(msg) from err
    return ToySpectrumSource(config)


class ParquetSource:
    """Replays an event Parquet file in batches (streamed by row group, never loaded whole).

    The file must hold an ``event_id`` column; every other numeric column becomes a
    float32 feature (the event schema's feature type): float64 values are rounded to the
    nearest float32, integers above 2**24 too. A finite value too large for float32
    raises :class:`stream.errors.SourceError` naming the column and the value, rather
    than turning into infinity.
    """

    def __init__(self, path: str | Path, batch_size: int = 20_000) -> None:
        self.path = Path(path)
        if not self.path.exists():
            msg = f"parquet: file {str(self.path)!r} does not exist"
            raise SourceError(msg)
        self.spec = f"parquet:{self.path}"
        self.batch_size = batch_size
        try:
            # Files written by this project carry page checksums (CRC32); verify them.
            self._file = pq.ParquetFile(self.path, page_checksum_verification=True)
        except (OSError, pa.ArrowException) as err:
            msg = f"parquet: {str(self.path)!r} is not a readable Parquet file: {err}"
            raise SourceError(msg) from err
        names = self._file.schema_arrow.names
        if EVENT_ID not in names:
            msg = f"parquet: {str(self.path)!r} has no {EVENT_ID!r} column (columns: {names})"
            raise SourceError(msg)
        from stream.schema import event_schema

        file_schema = self._file.schema_arrow
        self.schema = event_schema([n for n in names if n != EVENT_ID])
        if file_schema.metadata and b"kind" in file_schema.metadata:
            self.schema = self.schema.with_metadata({**(file_schema.metadata or {}), **(self.schema.metadata or {})})

    def _feature(self, column: pa.Array, name: str) -> pa.Array:
        """``column`` cast to the feature type; raises if a finite value overflows it."""
        cast = pc.cast(column, FEATURE_TYPE, safe=False)
        if pa.types.is_floating(column.type) and column.type.bit_width > FEATURE_TYPE.bit_width:
            overflow = pc.and_(pc.is_finite(column), pc.invert(pc.is_finite(cast)))
            if pc.any(overflow).as_py():
                value = column.filter(overflow)[0].as_py()
                msg = f"parquet: {str(self.path)!r} column {name!r} holds {value!r}, outside the float32 range of event features"
                raise SourceError(msg)
        return cast

    def _checked(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """``batches``, with a corrupt page (checksum or decoding) raised as :class:`SourceError`."""
        seen = 0
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (OSError, pa.ArrowException) as err:
                msg = f"parquet: {str(self.path)!r} is corrupt after event row {seen}: {err}"
                raise SourceError(msg) from err
            seen += batch.num_rows
            yield batch

    def batches(self, start_event: int = 0) -> Iterator[pa.RecordBatch]:
        """Yield batches from event row ``start_event`` (page checksums verified)."""
        seen = 0
        for batch in self._checked(self._file.iter_batches(batch_size=self.batch_size)):
            n = batch.num_rows
            if seen + n <= start_event:
                seen += n
                continue
            if seen < start_event:
                batch = batch.slice(start_event - seen)
            seen += n
            arrays = [batch.column(EVENT_ID).cast(pa.uint64())]
            arrays += [self._feature(batch.column(name), name) for name in self.schema.names[1:]]
            yield pa.RecordBatch.from_arrays(arrays, schema=self.schema)


@register_source("parquet")
def _parquet(argument: str | None, options: Mapping[str, Any]) -> Source:
    if not argument:
        msg = "parquet source needs a path: 'parquet:PATH'"
        raise SourceError(msg)
    return ParquetSource(argument, **options)
