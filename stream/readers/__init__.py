"""Readers of event files users already hold (ROOT flat trees); shower formats live in
:mod:`stream.showers.io`."""

from __future__ import annotations

__all__: list[str] = []
