"""``python -m offline.showers``: validate generated showers against reference showers."""

from __future__ import annotations

from offline.showers.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
