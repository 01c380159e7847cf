"""The online training loop: consume → trigger → fill one buffer while training on the other.

Two threads share a :class:`emulator.double_buffer.DoubleBuffer`:

* the **filling side** (the caller's thread) polls the transport, runs the trigger menu,
  copies accepted events into the filling buffer and, when it is full, swaps. With the
  ``block`` policy it waits for the trainer (replay as fast as training allows); with
  ``drop`` (real time) events arriving to a full buffer are lost and counted.
* the **training side** iterates over its buffer N_iter times in batches of N_batch.
  With ``n_iter_min < n_iter_max`` the trainer keeps iterating until the other buffer is
  full (so it is never idle), at least ``n_iter_min`` and at most ``n_iter_max`` times; the
  progress line shows when the input outruns it (blocked seconds or dropped events).

After a buffer is trained the model's ``end_buffer`` runs (SWA) and, every
``snapshot.every_buffers`` buffers, a snapshot is written with the stream position of the
last event of that buffer, so a restarted run resumes exactly there: no event lost, none
trained twice. Stored (prescaled) events and, optionally, trained event ids are written as
Parquet parts tagged with their buffer index before the manifest that covers them.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from emulator.adapter import BatchAdapter, adapter_for
from emulator.config import RunConfig
from emulator.double_buffer import Buffer, DoubleBuffer
from emulator.snapshot import read_manifest, write_snapshot
from emulator.trigger import TriggerMenu, TriggerState
from models.protocol import OnlineModel
from stream.transport import Message, StreamPosition, Transport

__all__ = ["METRICS_DIR", "RunSummary", "Trainer", "TRAINED_IDS_DIR", "STORED_EVENTS_DIR"]

log = logging.getLogger(__name__)

STORED_EVENTS_DIR = "stored_events"
TRAINED_IDS_DIR = "trained_ids"
METRICS_DIR = "metrics"
"""One Parquet part per snapshot: a row per trained buffer (index, passes, steps, loss, the model's metrics)."""


@dataclass
class RunSummary:
    """Figures of a finished (or interrupted) run."""

    events_seen: int = 0
    events_trained: int = 0
    events_dropped: int = 0
    events_stored: int = 0
    buffers_trained: int = 0
    steps: int = 0
    last_loss: float = float("nan")
    n_iter_last: int = 0
    blocked_s: float = 0.0
    trainer_idle_s: float = 0.0
    wall_s: float = 0.0
    bad_messages: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False
    storage: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


class _Interrupt:
    """Turns the first Ctrl-C into a stop request; a second one aborts at once."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._previous: Any = None

    def __enter__(self) -> _Interrupt:
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


def _part_name(buffer_index: int) -> str:
    return f"part-{buffer_index:08d}.parquet"


def _part_index(path: Path) -> int:
    return int(path.stem.split("-")[1])


class Trainer:
    """Runs the online training of one model from one transport.

    Args:
        config: the run configuration.
        transport: where messages come from (embedded or Kafka).
        model: the model to train (already on its device).
        out: snapshot directory.
        resume: continue from the snapshot in ``out`` (its manifest must exist).
        progress: show a progress bar on stderr.
        until_idle_s: end the stream after this many seconds without messages.
        on_buffer: optional callback after each trained buffer (tests, monitoring).
    """

    def __init__(
        self,
        config: RunConfig,
        transport: Transport,
        model: OnlineModel,
        out: str | Path,
        *,
        resume: bool = False,
        progress: bool = True,
        until_idle_s: float | None = None,
        on_buffer: Callable[[RunSummary], None] | None = None,
    ) -> None:
        self.config = config
        self.transport = transport
        self.model = model
        self.out = Path(out)
        self.progress = progress
        self.until_idle_s = until_idle_s
        self.on_buffer = on_buffer
        self.menu = TriggerMenu.from_mapping(config.trigger)
        self.device = torch.device(model.device)
        self.summary = RunSummary()
        self.position = StreamPosition()
        self._adapter: BatchAdapter | None = None
        self._buffers: DoubleBuffer | None = None
        self._fill_done = threading.Event()
        self._train_error: BaseException | None = None
        self._pending_stored: list[tuple[int, list[pa.RecordBatch]]] = []
        self._pending_ids: list[tuple[int, np.ndarray]] = []
        self._metrics_rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._buffer_index_base = 0
        if resume:
            self._resume()
        else:
            self._drop_parts_from(0)  # left by a run killed before its first manifest

    # ------------------------------------------------------------------ resume
    def _resume(self) -> None:
        manifest = read_manifest(self.out)
        self.position = StreamPosition.from_json(manifest.get("position", {}))
        s = self.summary
        s.events_seen = int(manifest.get("events_seen", 0))
        s.events_trained = int(manifest.get("events_trained", 0))
        s.events_dropped = int(manifest.get("events_dropped", 0))
        s.buffers_trained = int(manifest.get("buffers_trained", 0))
        s.steps = int(manifest.get("steps", 0))
        s.bad_messages = dict(manifest.get("bad_messages", {}))
        self._bad_base = dict(s.bad_messages)
        self.menu.restore_counters(manifest.get("trigger", {}))
        s.events_stored = self.menu.events_stored
        self._buffer_index_base = int(manifest.get("next_buffer_index", s.buffers_trained))
        self._drop_parts_from(self._buffer_index_base)
        self.transport.seek(self.position)
        log.info("resumed from %s: %d events seen, %d trained", self.out, s.events_seen, s.events_trained)

    def _drop_parts_from(self, first_index: int) -> None:
        """Delete parts of buffers ``>= first_index``: written after the last manifest, not covered by it."""
        for sub in (STORED_EVENTS_DIR, TRAINED_IDS_DIR, METRICS_DIR):
            for part in (self.out / sub).glob("part-*.parquet"):
                if _part_index(part) >= first_index:
                    part.unlink()

    # -------------------------------------------------------------- main entry
    def run(self) -> RunSummary:
        """Consume until the stream ends, ``source.events`` is reached or Ctrl-C."""
        self.out.mkdir(parents=True, exist_ok=True)
        self._bad_base = getattr(self, "_bad_base", {})
        start = time.monotonic()
        limit = self.config.source.events
        bar = self._progress_bar(limit)
        trainer_thread: threading.Thread | None = None
        with _Interrupt() as interrupt:
            try:
                last_message = time.monotonic()
                while not interrupt.requested.is_set():
                    if self._train_error is not None:
                        raise self._train_error
                    if limit is not None and self.summary.events_seen >= limit:
                        break
                    if self.transport.exhausted:
                        break
                    messages = self.transport.poll(0.2)
                    if not messages:
                        if self.until_idle_s is not None and time.monotonic() - last_message > self.until_idle_s:
                            log.info("no message for %.1f s: end of stream", self.until_idle_s)
                            break
                        self._refresh(bar)
                        continue
                    last_message = time.monotonic()
                    for message in messages:
                        if self._buffers is None:
                            self._start(message.batch.schema)
                            trainer_thread = threading.Thread(target=self._train_loop, name="trainer", daemon=True)
                            trainer_thread.start()
                        if limit is not None and self.summary.events_seen >= limit:
                            break
                        if limit is not None and self.summary.events_seen + message.batch.num_rows > limit:
                            message = Message(
                                message.batch.slice(0, limit - self.summary.events_seen), message.topic,
                                message.partition, message.offset, message.first_event, message.total_events,
                                message.next_offset,
                            )
                        self._consume(message, interrupt)
                    self._refresh(bar)
                # End of stream (or Ctrl-C): the partly filled buffer is trained too.
                if self._buffers is not None and self._buffers.filling.size > 0:
                    self._swap_at_end()
            finally:
                self._fill_done.set()
                if trainer_thread is not None:
                    while trainer_thread.is_alive():
                        trainer_thread.join(1.0)
                        self._refresh(bar)
                if self._buffers is not None:
                    self._buffers.close()
                if bar is not None:
                    self._refresh(bar)
                    bar.close()
            if self._train_error is not None:
                raise self._train_error
            self.summary.interrupted = interrupt.requested.is_set()
        self.summary.bad_messages = self._bad_now()
        self.summary.wall_s = time.monotonic() - start
        self.summary.storage = self.storage_report()
        return self.summary

    def _start(self, schema: pa.Schema) -> None:
        self._schema = schema
        self._adapter = adapter_for(schema)
        self._buffers = DoubleBuffer(self.config.buffer.size, self._adapter.layout, self._buffer_index_base)

    # ----------------------------------------------------------- filling side
    def _bad_now(self) -> dict[str, int]:
        merged = dict(self._bad_base)
        for reason, count in self.transport.counters.items():
            merged[reason] = merged.get(reason, 0) + count
        return merged

    def _consume(self, message: Message, interrupt: _Interrupt) -> None:
        assert self._adapter is not None
        assert self._buffers is not None
        batch = message.batch
        n = batch.num_rows
        columns = self._adapter.trigger_columns(batch)
        menu_before = self.menu.state()
        decision = self.menu.run(columns)
        train_rows = np.flatnonzero(decision.train)
        segment_start = 0
        seen_before = self.summary.events_seen
        k = 0
        policy_block = self.config.buffer.policy == "block"
        while k < len(train_rows):
            buffers = self._buffers
            if buffers.filling.full:
                row = int(train_rows[k])
                if policy_block or buffers.trainer_idle:
                    t0 = time.monotonic()
                    self._close_segment(message, batch, decision.stored, segment_start, row, seen_before, menu_before, columns)
                    if not buffers.swap(wait=True):
                        return
                    self.summary.blocked_s += time.monotonic() - t0
                    segment_start = row
                else:
                    dropped = len(train_rows) - k
                    self.summary.events_dropped += dropped
                    break
            rows = train_rows[k : k + buffers.filling.room]
            ids, values = self._adapter.rows(batch, rows)
            k += buffers.filling.add(ids, values)
        # The rest of the message belongs to the buffer now filling.
        stored_rows = np.flatnonzero(decision.stored[segment_start:]) + segment_start
        if len(stored_rows) and self.config.snapshot.store_events:
            self._buffers.filling.stored.append(batch.take(pa.array(stored_rows)))
        self.summary.events_seen = seen_before + n
        self.summary.events_stored = self.menu.events_stored
        self.position.advance(
            message.topic, message.partition, message.offset, message.first_event + n, message.total_events,
            message.following_offset,
        )
        if interrupt.requested.is_set():
            return

    def _close_segment(
        self,
        message: Message,
        batch: pa.RecordBatch,
        stored_mask: np.ndarray,
        start: int,
        row: int,
        seen_before: int,
        menu_before: TriggerState,
        columns: Mapping[str, np.ndarray],
    ) -> None:
        """Book everything up to ``row`` of this message onto the full buffer."""
        assert self._buffers is not None
        buffer = self._buffers.filling
        stored_rows = np.flatnonzero(stored_mask[start:row]) + start
        if len(stored_rows) and self.config.snapshot.store_events:
            buffer.stored.append(batch.take(pa.array(stored_rows)))
        position = self.position.copy()
        position.advance(
            message.topic, message.partition, message.offset, message.first_event + row, message.total_events,
            message.following_offset,
        )
        buffer.position = position.to_json()
        if row == batch.num_rows:
            buffer.trigger_counters = self.menu.counters()
        else:
            buffer.trigger_counters = self.menu.counters_after(menu_before, columns, row)
        buffer.events_seen = seen_before + row
        buffer.events_dropped = self.summary.events_dropped
        buffer.bad_messages = self._bad_now()

    def _swap_at_end(self) -> None:
        assert self._buffers is not None
        buffer = self._buffers.filling
        buffer.position = self.position.to_json()
        buffer.trigger_counters = self.menu.counters()
        buffer.events_seen = self.summary.events_seen
        buffer.events_dropped = self.summary.events_dropped
        buffer.bad_messages = self._bad_now()
        self._buffers.swap(wait=True)

    # ----------------------------------------------------------- training side
    def _train_loop(self) -> None:
        assert self._buffers is not None
        try:
            while True:
                t0 = time.monotonic()
                buffer = self._buffers.take(0.1)
                if buffer is None:
                    if self._fill_done.is_set() and not self._buffers.other_ready():
                        return
                    if self.summary.buffers_trained > 0:
                        self.summary.trainer_idle_s += time.monotonic() - t0
                    continue
                self._train_buffer(buffer)
                self._buffers.give_back(buffer)
        except BaseException as err:  # noqa: BLE001 - re-raised in the filling thread
            self._train_error = err
            self._buffers.close()

    def _train_buffer(self, buffer: Buffer) -> None:
        assert self._buffers is not None
        cfg = self.config.buffer
        data = {name: torch.from_numpy(values).to(self.device) for name, values in buffer.view().items()}
        low, high = cfg.iter_bounds
        stop = None
        if low < high:
            def stop(passes: int) -> bool:
                # Adaptive N_iter: keep training until the other buffer is full (or the stream ended).
                return passes >= low and (self._buffers.filling_is_full() or self._fill_done.is_set())  # type: ignore[union-attr]
        report = self.model.train_on_buffer(data, high, cfg.batch_size, stop=stop)
        steps, n_iter = report.steps, report.passes or high
        self.model.end_buffer()
        extra = self.model.after_buffer(data)
        self._metrics_rows.append(
            {"buffer_index": buffer.index, "events": buffer.size, "passes": n_iter, "steps": steps,
             "loss": report.loss, **report.metrics, **extra}
        )
        s = self.summary
        with self._lock:
            s.events_trained += buffer.size
            s.buffers_trained += 1
            s.steps += steps
            s.last_loss = report.loss
            s.n_iter_last = n_iter
        if self.config.snapshot.store_events:
            self._pending_stored.append((buffer.index, list(buffer.stored)))
        if self.config.snapshot.record_trained_ids:
            self._pending_ids.append((buffer.index, buffer.event_ids[: buffer.size].copy()))
        last = self._fill_done.is_set() and not self._buffers.other_ready()
        if s.buffers_trained % self.config.snapshot.every_buffers == 0 or last:
            self._write(buffer)
        if self.on_buffer is not None:
            self.on_buffer(s)

    def _write(self, buffer: Buffer) -> None:
        """Write the parts of the pending buffers, then the manifest that covers them."""
        assert self._adapter is not None
        for index, batches in self._pending_stored:
            directory = self.out / STORED_EVENTS_DIR
            directory.mkdir(parents=True, exist_ok=True)
            if batches:
                table = pa.Table.from_batches(batches)
            else:
                table = self._empty_stored_table()
            pq.write_table(table, directory / _part_name(index))
        for index, ids in self._pending_ids:
            directory = self.out / TRAINED_IDS_DIR
            directory.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table({"event_id": pa.array(ids, pa.uint64())}), directory / _part_name(index))
        if self._metrics_rows:
            directory = self.out / METRICS_DIR
            directory.mkdir(parents=True, exist_ok=True)
            rows = self._metrics_rows
            names = list(dict.fromkeys(k for row in rows for k in row))
            table = pa.table({k: [row.get(k) for row in rows] for k in names})
            pq.write_table(table, directory / _part_name(rows[0]["buffer_index"]))
            self._metrics_rows = []
        self._pending_stored.clear()
        self._pending_ids.clear()
        s = self.summary
        position = StreamPosition.from_json(buffer.position or {})
        manifest = {
            "config": self.config.to_json(),
            "source": self.config.source.spec if not self.config.kafka.bootstrap else f"kafka:{self.config.kafka.topic}",
            "events_seen": buffer.events_seen,
            "events_trained": s.events_trained,
            "events_dropped": buffer.events_dropped,
            "events_stored": int((buffer.trigger_counters or {}).get("events_stored", 0)),
            "buffers_trained": s.buffers_trained,
            "next_buffer_index": buffer.index + 1,
            "steps": s.steps,
            "last_loss": s.last_loss,
            "bad_messages": buffer.bad_messages,
            "offsets": {t: {str(p): o for p, o in parts.items()} for t, parts in position.offsets.items()},
            "position": buffer.position,
            "trigger": buffer.trigger_counters,
            "stored_events": STORED_EVENTS_DIR if self.config.snapshot.store_events else None,
            "trained_ids": TRAINED_IDS_DIR if self.config.snapshot.record_trained_ids else None,
        }
        write_snapshot(self.out, self.model, manifest)
        manifest_storage = self.storage_report()
        s.storage = manifest_storage

    def _empty_stored_table(self) -> pa.Table:
        return self._schema.empty_table()

    # -------------------------------------------------------------- reporting
    def storage_report(self) -> dict[str, Any]:
        """Bytes a classical trigger stores (prescaled events) vs bytes of the model."""
        stored_dir = self.out / STORED_EVENTS_DIR
        stored_bytes = sum(p.stat().st_size for p in stored_dir.glob("part-*.parquet")) if stored_dir.exists() else 0
        weights = sorted(self.out.glob("weights-*.safetensors"))
        snapshot_bytes = sum(p.stat().st_size for p in weights) + (
            (self.out / "manifest.json").stat().st_size if (self.out / "manifest.json").exists() else 0
        )
        return {
            "stored_events": self.summary.events_stored,
            "stored_bytes": stored_bytes,
            "snapshot_bytes": snapshot_bytes,
            "model_events_seen": self.summary.events_trained,
            "ratio_stored_to_snapshot": stored_bytes / snapshot_bytes if snapshot_bytes else None,
        }

    def _progress_bar(self, total: int | None) -> Any:
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=total, initial=self.summary.events_seen, unit="ev", unit_scale=True, dynamic_ncols=True,
                    desc="events", mininterval=1.0)

    def _refresh(self, bar: Any) -> None:
        if bar is None:
            return
        now = time.monotonic()
        if now - getattr(self, "_last_refresh", 0.0) < 1.0 and self.summary.events_seen != bar.total:
            return
        self._last_refresh = now
        s = self.summary
        bar.n = s.events_seen
        bad = sum(self._bad_now().values())
        bar.set_postfix(
            trained=f"{s.events_trained:,}", dropped=f"{s.events_dropped:,}", bad=bad, buffers=s.buffers_trained,
            n_iter=s.n_iter_last, loss=f"{s.last_loss:.4g}", blocked=f"{s.blocked_s:.0f}s", refresh=False,
        )
        bar.refresh()
