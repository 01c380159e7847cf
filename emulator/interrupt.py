"""Ctrl-C during a run: the first one asks for a clean stop, a second one aborts."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

__all__ = ["Interrupt"]

log = logging.getLogger(__name__)


class Interrupt:
    """Context manager turning the first SIGINT into :attr:`requested`; a second raises.

    Only installs a handler when entered from the main thread (signals go there).
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._previous: Any = None

    def __enter__(self) -> Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested.is_set():
            raise KeyboardInterrupt
        log.warning("interrupt: finishing the buffer in training and writing a snapshot (Ctrl-C again to abort)")
        self.requested.set()

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
