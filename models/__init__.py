"""Generative models trained online: OnlineFlow ensembles, BIB-AE, layer/shower flows.

Contract: ``models`` knows tensors and losses; it imports nothing from ``stream`` or
``emulator``. Every trainable model implements :class:`models.protocol.OnlineModel` and is
registered by kind in :mod:`models.registry` so it can be rebuilt from a snapshot manifest.
"""

from __future__ import annotations

__all__: list[str] = []
