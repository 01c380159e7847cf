"""``python -m emulator``: see :mod:`emulator.cli`."""

from __future__ import annotations

from emulator.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
