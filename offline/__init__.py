"""Offline tools that read snapshots and data files: bump hunt, shower validation.

Contract: ``offline`` imports ``models`` to sample and :mod:`emulator.snapshot` to read
snapshots; never the trainer.
"""

from __future__ import annotations

__all__: list[str] = []
