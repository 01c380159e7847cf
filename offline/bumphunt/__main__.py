"""``python -m offline.bumphunt``: see :mod:`offline.bumphunt.cli`."""

from __future__ import annotations

from offline.bumphunt.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
