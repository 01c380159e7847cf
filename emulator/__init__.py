"""Trigger emulator: trigger menu, double buffer, trainer loop, snapshots, run CLI.

Contract: ``emulator`` knows rates, triggers, buffers, the training loop and snapshots; it
talks to models only through :class:`models.protocol.OnlineModel`. Offline tools may read
snapshots with :mod:`emulator.snapshot` and nothing else from this package.
"""

from __future__ import annotations

__all__: list[str] = []
