"""Built-in generators: the toy bump-hunt spectrum, reference showers, dijets (Pythia)."""

from __future__ import annotations

__all__: list[str] = []
