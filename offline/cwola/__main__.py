"""``python -m offline.cwola``: see :mod:`offline.cwola.cli`."""

from __future__ import annotations

from offline.cwola.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
