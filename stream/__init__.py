"""Streaming layer: schemas, codecs, sources and generators, transports, replay CLI.

Contract: ``stream`` knows bytes, Arrow schemas, topics and offsets, and nothing of
models. Every source is an iterator of Arrow record batches (see :class:`Source`);
every transport hands out :class:`Message` objects carrying their position so a
trainer can resume exactly. Nothing heavy is imported here.
"""

from __future__ import annotations

__all__ = ["SCHEMA_VERSION"]

SCHEMA_VERSION = "2"
"""Version of the wire schemas in :mod:`stream.schema` (2: event features are float32)."""
