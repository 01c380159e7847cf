"""Errors raised by the streaming layer."""

from __future__ import annotations

__all__ = ["SchemaError", "SourceError", "MalformedMessage", "TransportError"]


class SourceError(ValueError):
    """A source spec, file or generator option is invalid (names the thing and the value)."""


class SchemaError(ValueError):
    """A record batch does not match the schema expected for its topic kind."""


class MalformedMessage(ValueError):
    """A message could not be decoded; ``reason`` is a short key used for counters.

    Args:
        reason: short machine-readable reason, e.g. ``"not_arrow"``, ``"bad_schema_version"``.
        detail: human-readable explanation.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TransportError(RuntimeError):
    """The transport cannot deliver messages (broker unreachable after retries, closed queue)."""
