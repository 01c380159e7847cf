"""One run at a time per snapshot directory.

Two trainers writing into the same ``--out`` would interleave their snapshots and stored
events (each would also resume from the other's files). :func:`exclusive_run` takes an
advisory lock on a file beside the directory (``.NAME.lock``, beside rather than inside so
that ``--fresh`` can delete the directory while holding it) and refuses a second run with
the holder's process id. Locks are released by the operating system when a process dies,
so a run killed with ``kill -9`` never leaves a stale lock. Where ``fcntl`` is missing
(Windows) no lock is taken.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from emulator.errors import SnapshotError

__all__ = ["exclusive_run", "lock_path"]


def lock_path(out: Path) -> Path:
    """The lock file of snapshot directory ``out``."""
    out = Path(out).absolute()
    return out.parent / f".{out.name}.lock"


@contextmanager
def exclusive_run(out: Path) -> Iterator[None]:
    """Hold the lock of ``out`` for the duration of the block.

    Raises:
        SnapshotError: another process holds it (its pid is named).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            msg = (
                f"another run (pid {holder}) is writing to {out}; wait for it to finish or stop it "
                f"(Ctrl-C writes a snapshot) before starting a second one"
            )
            raise SnapshotError(msg) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
