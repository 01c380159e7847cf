"""Reading event columns from a Parquet file or a directory of parts, for the offline tools.

The emulator stores events beside a snapshot either as one file or as a directory of
``part-*.parquet`` written per buffer; the generators write one file. Both are read here in
storage order (parts sorted by name: the order a prescale counter sees them), with page
checksums verified, and every column cast to float64, so float32 parts (schema version 2)
and float64 parts written before mix in one directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["list_parts", "read_columns"]


def list_parts(path: str | Path, what: str, error: type[Exception]) -> list[Path]:
    """The Parquet files of ``path``: itself, or its ``*.parquet`` parts in name order.

    Args:
        path: a file, or a directory of parts.
        what: how error messages name the data (``"stored events"``).
        error: the exception class to raise (each tool has its own).

    Raises:
        error: the path does not exist, or the directory holds no ``.parquet`` file.
    """
    path = Path(path)
    if path.is_dir():
        parts = sorted(path.glob("*.parquet"))
        if not parts:
            msg = f"{what} directory {str(path)!r} holds no .parquet files"
            raise error(msg)
        return parts
    if path.is_file():
        return [path]
    msg = f"{what} {str(path)!r} do not exist"
    raise error(msg)


def read_columns(
    path: str | Path,
    required: Sequence[str],
    optional: Sequence[str] = (),
    *,
    what: str,
    error: type[Exception],
) -> dict[str, np.ndarray]:
    """Read ``required`` and whichever of ``optional`` exist, as float64, in storage order.

    Returns:
        column name → float64 array; an optional column is present only if every part has it.

    Raises:
        error: a missing path or part, a part without a required column (named, with the
            columns it has), an unreadable part or a page checksum that does not match.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for part in list_parts(path, what, error):
        try:
            names = pq.read_schema(part).names
            missing = [c for c in required if c not in names]
            if missing:
                msg = f"{what} {str(part)!r} lack columns {missing} (columns: {names})"
                raise error(msg)
            wanted = [*required, *(c for c in optional if c in names)]
            table = pq.read_table(part, columns=wanted, page_checksum_verification=True)
            tables.append(
                table.cast(pa.schema([pa.field(c, pa.float64()) for c in table.column_names]))
            )
        except (OSError, pa.ArrowException) as err:
            msg = f"{what} {str(part)!r} are unreadable: {err}"
            raise error(msg) from err
    common = set.intersection(*(set(t.column_names) for t in tables))
    table = pa.concat_tables(
        [t.select([c for c in tables[0].column_names if c in common]) for t in tables]
    )
    return {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}
