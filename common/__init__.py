"""Small dependency-free helpers that every package (stream, emulator, models, offline) may import.

Contract: ``common`` imports nothing from the project's other packages and nothing heavy.
"""

from __future__ import annotations

__all__: list[str] = []
