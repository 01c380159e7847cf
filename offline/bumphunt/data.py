"""Event data for the classical side of the comparison: stored events and null samples.

Stored events are the Parquet file(s) a classical trigger would have written beside the
snapshot (``Snapshot.stored_events_path``: one file, or a directory of ``part-*.parquet``
written per buffer), with columns ``event_id``, ``mass`` and ``is_signal``. They are read
in storage order (parts sorted by name), the order a prescale counter sees them. Features
are float32 on the stream (schema version 2) and float64 in parts written before; every
part is cast to float64 on reading, so both kinds mix in one directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from offline.bumphunt.errors import BumpHuntError
from offline.parquet import read_columns

__all__ = ["column_unit", "find_config_value", "null_masses", "read_stored_events"]


def read_stored_events(path: str | Path, column: str = "mass") -> dict[str, np.ndarray]:
    """Read ``column`` (and ``is_signal`` if present) of the stored events, in storage order.

    Returns:
        ``{column: values}`` (and ``is_signal``), float64 arrays whatever the stored type.

    Raises:
        BumpHuntError: missing path, no Parquet parts, missing column, unreadable file.
    """
    columns = read_columns(path, [column], ["is_signal"], what="stored events", error=BumpHuntError)
    return {c: columns[c] for c in (column, "is_signal") if c in columns}


def column_unit(path: str | Path, column: str = "mass") -> str | None:
    """The unit stored in the field metadata of ``column`` (``b"unit"``), or None."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    parts = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    try:
        schema = pq.read_schema(parts[0]) if parts else None
    except (OSError, pa.ArrowException):
        return None
    if schema is None or column not in schema.names:
        return None
    meta = schema.field(column).metadata or {}
    unit = meta.get(b"unit")
    return unit.decode() if unit else None


def find_config_value(config: Any, key: str) -> Any:
    """First value stored under ``key`` anywhere in a nested configuration (or None)."""
    if isinstance(config, Mapping):
        if key in config:
            return config[key]
        for value in config.values():
            found = find_config_value(value, key)
            if found is not None:
                return found
    elif isinstance(config, list | tuple):
        for value in config:
            found = find_config_value(value, key)
            if found is not None:
                return found
    return None


def null_masses(
    stored: Mapping[str, np.ndarray] | None,
    n_events: int,
    config: Any,
    seed: int,
    column: str = "mass",
) -> tuple[np.ndarray, str]:
    """A λ = 0 (background-only) data sample for the null test.

    The stored events without their truth-signal events if the truth flag is there (same
    trigger, same size up to the removed signal); otherwise ``n_events`` events of
    :mod:`stream.generators.toy` with ``signal_fraction=0`` and the run's slope.

    Returns:
        ``(masses, description)``; masses are float64 (the toy's float32 stream values).
    """
    if stored is not None and "is_signal" in stored:
        keep = stored["is_signal"] == 0
        return stored[column][keep], "stored events with truth-signal events removed"
    from stream.generators.toy import CHUNK, ToySpectrumConfig, toy_spectrum_chunk

    slope = find_config_value(config, "slope") or 1.0
    toy = ToySpectrumConfig(slope=float(slope), signal_fraction=0.0, seed=int(seed))
    chunks = [toy_spectrum_chunk(toy, k)[0] for k in range(-(-n_events // CHUNK))]
    masses = np.concatenate(chunks)[:n_events].astype(np.float64) if chunks else np.empty(0)
    return masses, f"toy background (slope {float(slope)}, signal_fraction 0, seed {seed})"
