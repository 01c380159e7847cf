"""The online training loop: consume → trigger → fill one buffer while training on the other.

Two threads share a :class:`emulator.double_buffer.DoubleBuffer`:

* the **training side** runs in the caller's (main) thread: it takes a full buffer, calls
  the model's ``train_on_buffer`` (N_iter passes in batches of N_batch), ``end_buffer``
  (SWA) and ``after_buffer`` (work between buffers), and writes snapshots;
* the **filling side** runs in a ``filler`` thread: it polls the transport, runs the
  trigger menu, copies accepted events into the filling buffer and, when it is full,
  swaps. With the ``block`` policy it waits for the trainer (replay as fast as training
  allows); with ``drop`` (real time) events arriving to a full buffer are lost and counted.

Training stays in the main thread on purpose: PyTorch's CPU kernels run on an OpenMP
team that belongs to the thread that starts them. When the model is built in the main
thread and trained in another, two teams exist, libgomp sees more threads than cores and
stops its workers spinning between kernels; the thousands of small kernels of a training
step then each wait for a sleeping worker (measured: 3.6 → 11.6 ms per batched step of the
paper's ensemble on 2 cores). The filling side uses numpy, pyarrow and numba only.

With ``n_iter_min < n_iter_max`` the model keeps passing over its buffer until the other
buffer is full (asked through the ``stop`` callback after each pass), at least
``n_iter_min`` and at most ``n_iter_max`` times.

After a buffer is trained, every ``snapshot.every_buffers`` buffers (and after the last), a
snapshot is written with the stream position of the last event of that buffer, so a
restarted run resumes exactly there: no event lost, none trained twice. Stored (prescaled)
events, trained event ids and per-buffer metrics are written as Parquet parts
(:mod:`emulator.side_files`) before the manifest that covers them.

End of stream: the source is exhausted, ``source.events`` is reached, Ctrl-C, or (with
``until_idle_s``) the transport has been read to the end of every partition and then
delivered nothing, not even a malformed message, for that long; time spent blocked on a
full buffer never counts as idle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from emulator.adapter import BatchAdapter, adapter_for
from emulator.config import RunConfig
from emulator.double_buffer import Buffer, DoubleBuffer
from emulator.errors import ConfigError
from emulator.interrupt import Interrupt
from emulator.manifest import RunManifest
from emulator.progress import Progress
from emulator.side_files import METRICS_DIR, STORED_EVENTS_DIR, TRAINED_IDS_DIR, SideFiles
from emulator.snapshot import write_snapshot
from emulator.summary import RunSummary
from emulator.trigger import TriggerMenu, TriggerState
from models.protocol import OnlineModel
from stream.transport import Message, StreamPosition, Transport

__all__ = ["METRICS_DIR", "STORED_EVENTS_DIR", "TRAINED_IDS_DIR", "RunSummary", "Trainer"]

log = logging.getLogger(__name__)


@dataclass
class _Trained:
    """What the snapshot after a trained buffer needs (the buffer itself is refilled)."""

    index: int
    position: dict[str, Any]
    trigger_counters: dict[str, Any]
    events_seen: int
    events_dropped: int
    bad_messages: dict[str, int]


class Trainer:
    """Runs the online training of one model from one transport.

    Args:
        config: the run configuration.
        transport: where messages come from (embedded or Kafka).
        model: the model to train (already on its device).
        out: snapshot directory.
        resume: continue from the snapshot in ``out`` (its manifest must exist).
        progress: show a progress bar on stderr.
        until_idle_s: end the stream once every partition is read to its end and nothing
            arrived for this many seconds (time blocked on a full buffer excluded).
        on_buffer: optional callback after each trained buffer (tests, monitoring).
        data_identity: what the manifest records as the data stream (see
            :func:`emulator.manifest.data_identity`).
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
        data_identity: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.transport = transport
        self.model = model
        self.out = Path(out)
        self.progress = progress
        self.until_idle_s = until_idle_s
        self.on_buffer = on_buffer
        self.data_identity = dict(data_identity or {})
        self.menu = TriggerMenu.from_mapping(config.trigger)
        self.device = torch.device(model.device)
        self.summary = RunSummary()
        self.position = StreamPosition()
        self.side = SideFiles(self.out)
        self._adapter: BatchAdapter | None = None
        self._buffers: DoubleBuffer | None = None
        self._buffers_ready = threading.Event()
        self._fill_done = threading.Event()
        self._stop = threading.Event()
        self._fill_error: BaseException | None = None
        self._pending_stored: list[tuple[int, list[pa.RecordBatch]]] = []
        self._pending_ids: list[tuple[int, np.ndarray]] = []
        self._metrics_rows: list[dict[str, Any]] = []
        self._unwritten: _Trained | None = None
        self._lock = threading.Lock()
        self._buffer_index_base = 0
        self._bad_base: dict[str, int] = {}
        self._bar = Progress(False, None, 0)
        if resume:
            self._resume()
        else:
            self.side.drop_from(0)  # left by a run killed before its first manifest

    # ------------------------------------------------------------------ resume
    def _resume(self) -> None:
        manifest = RunManifest.read(self.out)
        self.position = StreamPosition.from_json(manifest.position)
        s = self.summary
        s.events_seen = manifest.events_seen
        s.events_trained = manifest.events_trained
        s.events_dropped = manifest.events_dropped
        s.buffers_trained = manifest.buffers_trained
        s.steps = s.resumed_steps = manifest.steps
        s.bad_messages = dict(manifest.bad_messages)
        self._bad_base = dict(s.bad_messages)
        self.menu.restore_counters(manifest.trigger)
        s.events_stored = self.menu.events_stored
        self._buffer_index_base = manifest.next_buffer_index
        self.side.drop_from(self._buffer_index_base)
        self.transport.seek(self.position)
        log.info("resumed from %s: %d events seen, %d trained", self.out, s.events_seen, s.events_trained)

    # -------------------------------------------------------------- main entry
    def run(self) -> RunSummary:
        """Consume until the stream ends, ``source.events`` is reached or Ctrl-C."""
        self.out.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        self._bar = Progress(self.progress, self.config.source.events, self.summary.events_seen)
        with Interrupt() as interrupt:
            filler = threading.Thread(target=self._fill_guarded, args=(interrupt,), name="filler", daemon=True)
            filler.start()
            try:
                self._train_loop()
            except BaseException:
                self._stop.set()
                if self._buffers is not None:
                    self._buffers.close()
                raise
            finally:
                while filler.is_alive():
                    filler.join(0.5)
                    self._refresh()
                if self._buffers is not None:
                    self._buffers.close()
                self._refresh(force=True)
                self._bar.close()
            if self._fill_error is not None:
                raise self._fill_error
            self.summary.interrupted = interrupt.requested.is_set()
        self.summary.bad_messages = self._bad_now()
        self.summary.wall_s = time.monotonic() - start
        self.summary.storage = self.storage_report()
        if self._buffers is not None:
            self.summary.buffer_bytes = self._buffers.nbytes()
        return self.summary

    def _start(self, schema: pa.Schema) -> None:
        self._schema = schema
        self._adapter = adapter_for(schema)
        _refuse_truth(getattr(self._adapter, "truth", ()), self.menu.columns, getattr(self.model, "columns", None))
        self._buffers = DoubleBuffer(self.config.buffer.size, self._adapter.layout, self._buffer_index_base)
        self._buffers_ready.set()

    # ----------------------------------------------------------- filling side
    def _bad_now(self) -> dict[str, int]:
        merged = dict(self._bad_base)
        for reason, count in self.transport.counters.items():
            merged[reason] = merged.get(reason, 0) + count
        return merged

    def _caught_up(self) -> bool:
        """True when the transport has delivered everything up to the partitions' ends."""
        caught_up = getattr(self.transport, "caught_up", None)
        return bool(caught_up()) if callable(caught_up) else True

    def _fill_guarded(self, interrupt: Interrupt) -> None:
        try:
            self._fill(interrupt)
        except BaseException as err:  # noqa: BLE001 - re-raised by run() in the main thread
            self._fill_error = err
            if self._buffers is not None:
                self._buffers.close()
        finally:
            self._fill_done.set()

    def _fill(self, interrupt: Interrupt) -> None:
        limit = self.config.source.events
        last_activity = time.monotonic()
        while not interrupt.requested.is_set() and not self._stop.is_set():
            if limit is not None and self.summary.events_seen >= limit:
                self.summary.end_reason = "events"
                break
            if self.transport.exhausted:
                self.summary.end_reason = "exhausted"
                break
            bad_before = sum(self.transport.counters.values())
            messages = self.transport.poll(0.2)
            now = time.monotonic()
            if messages or sum(self.transport.counters.values()) != bad_before:
                last_activity = now
            elif self.until_idle_s is not None and now - last_activity > self.until_idle_s:
                if self._caught_up():
                    log.info("every partition read to its end and nothing new for %.1f s: end of stream",
                             self.until_idle_s)
                    self.summary.end_reason = "idle"
                    break
                last_activity = now  # behind the end offsets: the broker is slow, not idle
            for message in messages:
                if self._buffers is None:
                    self._start(message.batch.schema)
                if limit is not None and self.summary.events_seen >= limit:
                    break
                if limit is not None and self.summary.events_seen + message.batch.num_rows > limit:
                    message = Message(
                        message.batch.slice(0, limit - self.summary.events_seen), message.topic,
                        message.partition, message.offset, message.first_event, message.total_events,
                        message.next_offset,
                    )
                self._consume(message, interrupt)
            if messages:
                last_activity = time.monotonic()  # time blocked on a full buffer is not idle
            self._refresh()
        if interrupt.requested.is_set():
            self.summary.end_reason = "interrupt"
        # End of stream (or Ctrl-C): the partly filled buffer is trained too.
        if self._buffers is not None and self._buffers.filling.size > 0 and not self._stop.is_set():
            self._swap_at_end()

    def _consume(self, message: Message, interrupt: Interrupt) -> None:
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
                    if not buffers.swap(wait=True, on_wait=self._refresh):
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
        self._buffers.swap(wait=True, on_wait=self._refresh)

    # ----------------------------------------------------------- training side
    def _train_loop(self) -> None:
        while not self._buffers_ready.is_set():
            if self._fill_done.is_set():
                return
            self._buffers_ready.wait(0.1)
        assert self._buffers is not None
        buffers = self._buffers
        while True:
            if self._fill_error is not None:
                break
            t0 = time.monotonic()
            buffer = buffers.take(0.1)
            if buffer is None:
                if self._fill_done.is_set() and not buffers.other_ready():
                    break
                if self.summary.buffers_trained > 0:
                    self.summary.trainer_idle_s += time.monotonic() - t0
                continue
            self._train_buffer(buffer)
            buffers.give_back(buffer)
        if self._unwritten is not None and self._fill_error is None:
            self._write(self._unwritten)

    def _tensors(self, buffer: Buffer) -> dict[str, torch.Tensor]:
        assert self._adapter is not None
        data = {name: torch.from_numpy(values).to(self.device) for name, values in buffer.view().items()}
        for name, value in self._adapter.constants.items():
            data[name] = torch.as_tensor(value).to(self.device)
        return data

    def _train_buffer(self, buffer: Buffer) -> None:
        assert self._buffers is not None
        cfg = self.config.buffer
        data = self._tensors(buffer)
        low, high = cfg.iter_bounds
        stop = None
        if low < high:
            buffers = self._buffers

            def stop(passes: int) -> bool:
                # Adaptive N_iter: keep training until the other buffer is full (or the stream ended).
                return passes >= low and (buffers.filling_is_full() or self._fill_done.is_set())

        t0 = time.monotonic()
        report = self.model.train_on_buffer(data, high, cfg.batch_size, stop=stop)
        self.model.end_buffer()
        extra = self.model.after_buffer(data)
        train_s = time.monotonic() - t0
        steps, n_iter = report.steps, report.passes
        metrics = {**report.metrics, **extra}
        self._metrics_rows.append(
            {"buffer_index": buffer.index, "events": buffer.size, "passes": n_iter, "steps": steps,
             "train_s": train_s, "loss": report.loss, **metrics}
        )
        s = self.summary
        with self._lock:
            s.events_trained += buffer.size
            s.buffers_trained += 1
            s.steps += steps
            s.train_s += train_s
            s.last_loss = report.loss
            s.n_iter_last = n_iter
        self._bar.metrics = metrics
        if self.config.snapshot.store_events:
            self._pending_stored.append((buffer.index, list(buffer.stored)))
        if self.config.snapshot.record_trained_ids:
            self._pending_ids.append((buffer.index, buffer.event_ids[: buffer.size].copy()))
        trained = _Trained(buffer.index, dict(buffer.position or {}), dict(buffer.trigger_counters or {}),
                           buffer.events_seen, buffer.events_dropped, dict(buffer.bad_messages))
        last = self._fill_done.is_set() and not self._buffers.other_ready()
        if s.buffers_trained % self.config.snapshot.every_buffers == 0 or last:
            self._write(trained)
        else:
            self._unwritten = trained
        self._refresh()
        if self.on_buffer is not None:
            self.on_buffer(s)

    def _write(self, trained: _Trained) -> None:
        """Write the parts of the pending buffers, then the manifest that covers them."""
        for index, batches in self._pending_stored:
            self.side.write_stored(index, batches, self._schema)
        for index, ids in self._pending_ids:
            self.side.write_ids(index, ids)
        self.side.write_metrics(self._metrics_rows)
        self._pending_stored.clear()
        self._pending_ids.clear()
        self._metrics_rows = []
        s = self.summary
        position = StreamPosition.from_json(trained.position)
        manifest = RunManifest(
            config=self.config.to_json(),
            source=self.config.source.spec if not self.config.kafka.bootstrap else f"kafka:{self.config.kafka.topic}",
            data_identity=self.data_identity,
            events_seen=trained.events_seen,
            events_trained=s.events_trained,
            events_dropped=trained.events_dropped,
            events_stored=int(trained.trigger_counters.get("events_stored", 0)),
            buffers_trained=s.buffers_trained,
            next_buffer_index=trained.index + 1,
            steps=s.steps,
            last_loss=s.last_loss,
            bad_messages=trained.bad_messages,
            offsets={t: {str(p): o for p, o in parts.items()} for t, parts in position.offsets.items()},
            position=trained.position,
            trigger=trained.trigger_counters,
            stored_events=STORED_EVENTS_DIR if self.config.snapshot.store_events else None,
            trained_ids=TRAINED_IDS_DIR if self.config.snapshot.record_trained_ids else None,
            metrics=METRICS_DIR,
        )
        write_snapshot(self.out, self.model, manifest.to_json())
        self._unwritten = None
        s.storage = self.storage_report()

    # -------------------------------------------------------------- reporting
    def storage_report(self) -> dict[str, Any]:
        """Bytes a classical trigger stores (prescaled events) vs bytes of the model."""
        stored_bytes = self.side.stored_bytes()
        snapshot_bytes = self.side.snapshot_bytes()
        return {
            "stored_events": self.summary.events_stored,
            "stored_bytes": stored_bytes,
            "snapshot_bytes": snapshot_bytes,
            "model_events_seen": self.summary.events_trained,
            "ratio_stored_to_snapshot": stored_bytes / snapshot_bytes if snapshot_bytes else None,
        }

    def _refresh(self, force: bool = False) -> None:
        self._bar.refresh(self.summary, sum(self._bad_now().values()), force=force)


def _refuse_truth(truth: Any, cut_columns: Any, model_columns: Any) -> None:
    """Refuse a trigger cut or a model column on generator truth (``is_signal``).

    Raises:
        ConfigError: naming the truth columns and where they were asked for.
    """
    truth = set(truth)
    for where, columns in (("the trigger menu cuts on", cut_columns), ("the model trains on", model_columns)):
        asked = sorted(truth & set(columns or ()))
        if asked:
            msg = (f"{where} {asked}, which the stream marks as generator truth: truth columns are stored "
                   "for evaluation but never reach the trigger or the training buffers")
            raise ConfigError(msg)
