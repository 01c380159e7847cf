"""Re-cut a stream of record batches into messages of bounded events and bytes.

Sources yield batches of whatever size suits them; a Kafka message should hold many
events (throughput) but stay under the broker's message size limit.

Example:
    >>> import pyarrow as pa
    >>> parts = [pa.record_batch({"x": list(range(n))}) for n in (3, 4, 5)]
    >>> [b.num_rows for b in rebatch(parts, max_events=5)]
    [5, 5, 2]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa

__all__ = ["rebatch"]


def rebatch(
    batches: Iterable[pa.RecordBatch], max_events: int, max_bytes: int | None = None
) -> Iterator[pa.RecordBatch]:
    """Yield batches of exactly ``max_events`` rows (the last may be shorter).

    Args:
        batches: input batches sharing one schema.
        max_events: rows per output batch (> 0).
        max_bytes: if given, fewer rows per batch so that each stays near this size
            (estimated from the average row size of the input; at least one row).

    Raises:
        ValueError: ``max_events`` < 1 or ``max_bytes`` < 1.
    """
    if max_events < 1:
        msg = f"max_events must be >= 1, got {max_events}"
        raise ValueError(msg)
    if max_bytes is not None and max_bytes < 1:
        msg = f"max_bytes must be >= 1, got {max_bytes}"
        raise ValueError(msg)
    held: list[pa.RecordBatch] = []
    held_rows = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        limit = max_events
        if max_bytes is not None:
            per_row = max(1.0, batch.nbytes / batch.num_rows)
            limit = max(1, min(max_events, int(max_bytes / per_row)))
        held.append(batch)
        held_rows += batch.num_rows
        while held_rows >= limit:
            table = pa.Table.from_batches(held)
            yield _one_batch(table.slice(0, limit))
            rest = table.slice(limit)
            held = rest.to_batches() if rest.num_rows else []
            held_rows = rest.num_rows
    if held_rows:
        yield _one_batch(pa.Table.from_batches(held))


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    batches = table.to_batches()
    if len(batches) == 1:
        return batches[0]
    return table.combine_chunks().to_batches()[0]
