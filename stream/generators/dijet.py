"""Pythia 8 dijet events for the anomaly-detection study (arXiv 2202.09375, section 9.3).

LHC-Olympics-like events (R&D set, arXiv 2101.08320) at particle level: pp at √s = 13 TeV,
QCD dijet background (``HardQCD:all``, pT-hat above ``pt_hat_min``) and a W′ (3.5 TeV) →
X (500 GeV) Y (100 GeV) signal with X, Y → qq (Pythia's W′ → W Z with the W and Z masses
set to X and Y and their decays restricted to quarks), mixed with probability
``signal_fraction`` per event. Visible final-state particles (no neutrinos) with
``|η| < eta_max`` are reduced to massless (pT, η, φ), as in the LHCO files, and clustered
by :func:`stream.jets.dijet_features` (anti-kT, R = 1.0), the same code the
``lhco:PATH`` reader uses. No detector simulation: docs/dijet.md lists what differs from
the Delphes-based public set.

Every event is generated, with its leading-jet pT in the column ``pt_lead``: the
``pt_lead > 1200`` GeV selection is a path of the trigger menu (configs/dijet.toml), not
a hidden cut. ``is_signal`` is the truth flag, for evaluation only.

Reproducibility: event ``i`` is signal when a uniform number drawn from
``SeedSequence([seed, i])`` is below ``signal_fraction``, and Pythia's generator is
re-seeded from the same sequence before the event, so an event depends on ``(seed, i)``
only, not on the number of worker processes or where a run was resumed
(``batches(start_event)``). Pythia's initialisation uses ``seed`` itself. (One caveat:
when Pythia finds a phase-space weight above its maximum it raises the maximum and warns;
events after that in the same process can differ from a fresh run.)

Parallelism: ``workers`` processes (default: the cores this process may use), each with
its own two Pythia instances, generate and cluster ``chunk_size`` events per task; record
batches come out in event order. ``python -m stream.generators.dijet --events N --out
FILE.parquet`` writes a Parquet file resumably (finished parts are kept across restarts)
and prints the throughput; ``--option dijet.KEY=VALUE`` sets :class:`DijetConfig` fields.

Needs the ``pythia`` extra (``pythia8mc``) and the ``dijet`` extra (``fastjet``); the
module imports neither until events are generated.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from stream.errors import SourceError
from stream.jets.features import dijet_batch, dijet_features, dijet_schema
from stream.sources import register_source

__all__ = [
    "DijetConfig",
    "DijetSource",
    "ParticleMaker",
    "PythiaDijets",
    "dijet_config",
    "event_randomness",
    "generate_events",
    "main",
    "write_parquet",
]

_PYTHIA_SEED_MAX = 900_000_000
"""Pythia accepts seeds 1 ... 900 000 000."""


@dataclass(frozen=True)
class DijetConfig:
    """Settings of the dijet generator (the ``[dijet]`` config section).

    Attributes:
        signal_fraction: probability that an event is signal (W′ → XY).
        seed: base seed of the event randomness and of Pythia's initialisation.
        n_events: total events (None: endless).
        batch_size: events per record batch (and per Kafka message).
        chunk_size: events per worker task.
        workers: generator processes (0: every core this process may use).
        sqrt_s: centre-of-mass energy (GeV).
        pt_hat_min: lower pT-hat of the QCD 2 → 2 process (GeV); the trigger cuts at
            1200 GeV on the leading jet, so events below it matter only near threshold.
        w_prime_mass: W′ mass (GeV).
        x_mass: mass of X, the heavier W′ daughter (GeV).
        y_mass: mass of Y, the lighter W′ daughter (GeV).
        jet_radius: anti-kT radius R.
        eta_max: particles with ``|η|`` above this are dropped (detector acceptance).
    """

    signal_fraction: float = 0.01
    seed: int = 0
    n_events: int | None = None
    batch_size: int = 1_000
    chunk_size: int = 50
    workers: int = 0
    sqrt_s: float = 13_000.0
    pt_hat_min: float = 1_200.0
    w_prime_mass: float = 3_500.0
    x_mass: float = 500.0
    y_mass: float = 100.0
    jet_radius: float = 1.0
    eta_max: float = 5.0

    def __post_init__(self) -> None:
        checks = {
            "signal_fraction": 0.0 <= self.signal_fraction <= 1.0,
            "seed": isinstance(self.seed, int) and self.seed >= 0,
            "n_events": self.n_events is None or (isinstance(self.n_events, int) and self.n_events >= 0),
            "batch_size": isinstance(self.batch_size, int) and self.batch_size > 0,
            "chunk_size": isinstance(self.chunk_size, int) and self.chunk_size > 0,
            "workers": isinstance(self.workers, int) and self.workers >= 0,
            "sqrt_s": self.sqrt_s > 0,
            "pt_hat_min": self.pt_hat_min >= 0,
            "w_prime_mass": self.w_prime_mass > self.x_mass + self.y_mass,
            "x_mass": self.x_mass > 0,
            "y_mass": self.y_mass > 0,
            "jet_radius": self.jet_radius > 0,
            "eta_max": self.eta_max > 0,
        }
        for key, ok in checks.items():
            if not ok:
                msg = f"dijet: invalid {key} = {getattr(self, key)!r}"
                raise SourceError(msg)

    @property
    def n_workers(self) -> int:
        """Processes used (``workers``, or the usable cores when 0)."""
        return self.workers or len(os.sched_getaffinity(0))


def event_randomness(seed: int, start: int, stop: int, signal_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Signal flags and Pythia seeds of events ``start ... stop − 1``.

    Returns:
        ``(is_signal, pythia_seed)``: bool and int64 arrays; both depend on ``(seed, i)`` only.

    Example:
        >>> flags, seeds = event_randomness(0, 10, 13, 0.5)
        >>> flags.tolist() == event_randomness(0, 0, 13, 0.5)[0][10:].tolist()
        True
        >>> bool(((seeds >= 1) & (seeds <= 900_000_000)).all())
        True
    """
    flags = np.empty(stop - start, dtype=bool)
    seeds = np.empty(stop - start, dtype=np.int64)
    for k, event in enumerate(range(start, stop)):
        bits = np.random.SeedSequence([seed, event]).generate_state(2, np.uint64)
        flags[k] = float(bits[0] >> np.uint64(11)) * 2.0**-53 < signal_fraction
        seeds[k] = 1 + int(bits[1] % np.uint64(_PYTHIA_SEED_MAX))
    return flags, seeds


class ParticleMaker(Protocol):
    """Makes the visible particles of one event: ``(pt [GeV], eta, phi)`` arrays."""

    def particles(self, signal: bool, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Particles of one signal or background event generated with ``seed``."""
        ...


def _pythia_settings(config: DijetConfig, signal: bool) -> list[str]:
    common = [
        f"Beams:eCM = {config.sqrt_s}",
        "Random:setSeed = on",
        f"Random:seed = {1 + config.seed % _PYTHIA_SEED_MAX}",
        "Print:quiet = on",
        "Next:numberCount = 0",
    ]
    if not signal:
        return [*common, "HardQCD:all = on", f"PhaseSpace:pTHatMin = {config.pt_hat_min}"]
    return [
        *common,
        "NewGaugeBoson:ffbar2Wprime = on",
        f"34:m0 = {config.w_prime_mass}",
        "34:onMode = off",
        "34:onIfAll = 23 24",
        "Wprime:coup2WZ = 1",  # the W' W Z coupling, 0 by default (no W' -> WZ at all)
        f"24:m0 = {config.x_mass}",  # X: the W+- with the X mass, decaying to quarks only
        "24:onMode = off",
        "24:onIfAny = 1 2 3 4 5",
        f"23:m0 = {config.y_mass}",  # Y: the Z with the Y mass, decaying to quarks only
        "23:onMode = off",
        "23:onIfAny = 1 2 3 4 5",
    ]


class PythiaDijets:
    """Pythia 8 background and signal instances, built on first use (one per process).

    Args:
        config: the generator settings.

    Raises:
        SourceError: ``pythia8mc`` missing, or Pythia refusing the settings.
    """

    def __init__(self, config: DijetConfig) -> None:
        self.config = config
        self._instances: dict[bool, Any] = {}
        self.failures = 0

    def _instance(self, signal: bool) -> Any:
        if signal not in self._instances:
            try:
                import pythia8mc
            except ImportError as err:
                msg = "dijet: the generator needs Pythia 8: pip install 'trigger-emulator[pythia,dijet]'"
                raise SourceError(msg) from err
            pythia = pythia8mc.Pythia("", False)
            for line in _pythia_settings(self.config, signal):
                if not pythia.readString(line):
                    msg = f"dijet: Pythia refused the setting {line!r}"
                    raise SourceError(msg)
            if not pythia.init():
                msg = f"dijet: Pythia failed to initialise the {'signal' if signal else 'background'} process"
                raise SourceError(msg)
            self._instances[signal] = pythia
        return self._instances[signal]

    def particles(self, signal: bool, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Visible final-state particles of one event, massless (pT, η, φ), ``|η| < eta_max``."""
        pythia = self._instance(signal)
        for attempt in range(10):
            pythia.rndm.init(1 + (seed + attempt * 7_919) % _PYTHIA_SEED_MAX)
            if pythia.next():
                break
            self.failures += 1
        else:
            msg = f"dijet: Pythia failed 10 times to generate an event (seed {seed})"
            raise SourceError(msg)
        values = [(p.pT(), p.eta(), p.phi()) for p in pythia.event if p.isFinal() and p.isVisible()]
        arr = np.array(values, dtype=np.float64).reshape(-1, 3)
        arr = arr[np.abs(arr[:, 1]) < self.config.eta_max]
        return arr[:, 0], arr[:, 1], arr[:, 2]


def generate_events(maker: ParticleMaker, config: DijetConfig, start: int, stop: int) -> pa.RecordBatch:
    """Generate and cluster events ``start ... stop − 1`` into one record batch."""
    flags, seeds = event_randomness(config.seed, start, stop, config.signal_fraction)
    parts = [maker.particles(bool(flag), int(seed)) for flag, seed in zip(flags, seeds, strict=True)]
    counts = np.array([p[0].size for p in parts], dtype=np.int64)
    pt, eta, phi = (np.concatenate([p[k] for p in parts]) if parts else np.zeros(0) for k in range(3))
    features = dijet_features(pt, eta, phi, counts, radius=config.jet_radius)
    return dijet_batch(np.arange(start, stop, dtype=np.uint64), features, flags)


_WORKER: dict[str, Any] = {}


def _init_worker(maker: ParticleMaker, config: DijetConfig) -> None:
    _WORKER["maker"], _WORKER["config"] = maker, config


def _run_task(task: tuple[int, int]) -> pa.RecordBatch:
    return generate_events(_WORKER["maker"], _WORKER["config"], *task)


class DijetSource:
    """The dijet generator as a :class:`stream.source.Source` (spec ``dijet``).

    Args:
        config: generator settings.
        maker: the particle maker (default :class:`PythiaDijets`); tests pass a cheaper one.

    Example:
        ``DijetSource(DijetConfig(n_events=1000, workers=2)).batches()`` yields batches of
        :func:`stream.jets.dijet_schema`.
    """

    def __init__(self, config: DijetConfig | None = None, maker: ParticleMaker | None = None) -> None:
        self.config = config or DijetConfig()
        self.maker: ParticleMaker = maker if maker is not None else PythiaDijets(self.config)
        self.spec = "dijet"
        self.schema: pa.Schema = dijet_schema()

    def __repr__(self) -> str:
        return f"DijetSource({self.config})"

    def _tasks(self, start_event: int) -> Iterator[tuple[int, int, bool]]:
        """``(first, stop, closes_batch)`` work items in event order."""
        total, chunk, batch = self.config.n_events, self.config.chunk_size, self.config.batch_size
        event = start_event
        while total is None or event < total:
            end = event + batch if total is None else min(event + batch, total)
            for first in range(event, end, chunk):
                stop = min(first + chunk, end)
                yield first, stop, stop == end
            event = end

    def batches(self, start_event: int = 0) -> Iterator[pa.RecordBatch]:
        """Yield batches of ``batch_size`` events in event order from ``start_event``."""
        tasks = self._tasks(max(0, start_event))
        workers = self.config.n_workers
        pending: list[pa.RecordBatch] = []
        if workers == 1:
            for first, stop, closes in tasks:
                pending.append(generate_events(self.maker, self.config, first, stop))
                if closes:
                    yield self._join(pending)
            return
        # forkserver, not fork: the emulator runs sources beside other threads, and a
        # forked child could inherit a lock one of them held.
        context = multiprocessing.get_context("forkserver" if sys.platform == "linux" else "spawn")
        pool = context.Pool(workers, initializer=_init_worker, initargs=(self.maker, self.config))
        try:
            inflight: collections.deque[tuple[Any, bool]] = collections.deque()
            for first, stop, closes in tasks:
                inflight.append((pool.apply_async(_run_task, ((first, stop),)), closes))
                while len(inflight) >= 2 * workers or (inflight and inflight[0][0].ready()):
                    result, done = inflight.popleft()
                    pending.append(result.get())
                    if done:
                        yield self._join(pending)
            while inflight:
                result, done = inflight.popleft()
                pending.append(result.get())
                if done:
                    yield self._join(pending)
        finally:
            pool.terminate()
            pool.join()

    def _join(self, pending: list[pa.RecordBatch]) -> pa.RecordBatch:
        """The pending task outputs as one record batch (and ``pending`` emptied)."""
        table = pa.Table.from_batches(pending, schema=self.schema).combine_chunks()
        pending.clear()
        batches = table.to_batches()
        return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=self.schema)


def dijet_config(options: Mapping[str, Any]) -> DijetConfig:
    """A :class:`DijetConfig` from a ``[dijet]`` option mapping (unknown keys named)."""
    allowed = {f.name for f in dataclasses.fields(DijetConfig)}
    unknown = sorted(set(options) - allowed)
    if unknown:
        msg = f"dijet: unknown options {unknown} (allowed: {sorted(allowed)})"
        raise SourceError(msg)
    return DijetConfig(**options)


@register_source("dijet")
def _dijet(argument: str | None, options: Mapping[str, Any]) -> DijetSource:
    if argument:
        msg = f"dijet source takes no argument (got 'dijet:{argument}'); set options in the [dijet] section"
        raise SourceError(msg)
    return DijetSource(dijet_config(options))


def write_parquet(source: DijetSource, out: Path, n_events: int, part_events: int = 10_000, progress: bool = True) -> dict[str, Any]:
    """Write events ``0 ... n_events − 1`` of ``source`` to ``out``, resumably.

    Parts of ``part_events`` events go to ``OUT.parts/`` in event order (each written to a
    temporary name, then renamed); a rerun keeps the finished parts and generates from the
    first missing one; at the end the parts are joined into ``out`` and removed.

    Returns:
        A summary: events, generated (this run), seconds, events/s (per core too), signal
        events, events passing ``pt_lead > 1200``, bytes.
    """
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    bounds = [(first, min(first + part_events, n_events)) for first in range(0, n_events, part_events)]
    names = [parts / f"part-{first:010d}-{stop:010d}.parquet" for first, stop in bounds]
    done = 0
    while done < len(names) and names[done].exists():
        done += 1
    begin, generated = time.monotonic(), 0
    if done < len(names):
        config = dataclasses.replace(source.config, n_events=n_events)
        buffered: list[pa.RecordBatch] = []
        rows, index = 0, done
        for batch in DijetSource(config, source.maker).batches(bounds[done][0]):
            buffered.append(batch)
            rows += batch.num_rows
            generated += batch.num_rows
            first, stop = bounds[index]
            while index < len(names) and rows >= stop - first:
                table = pa.Table.from_batches(buffered, schema=source.schema)
                head, rest = table.slice(0, stop - first), table.slice(stop - first)
                tmp = names[index].with_suffix(".tmp")
                pq.write_table(head, tmp)
                os.replace(tmp, names[index])
                buffered, rows, index = rest.to_batches(), rest.num_rows, index + 1
                if progress:
                    rate = generated / max(time.monotonic() - begin, 1e-9)
                    print(f"dijet: {stop}/{n_events} events ({rate:.1f} events/s)", file=sys.stderr, flush=True)
                if index < len(names):
                    first, stop = bounds[index]
    seconds = time.monotonic() - begin
    table = pa.concat_tables([pq.read_table(name) for name in names]) if names else source.schema.empty_table()
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(table.replace_schema_metadata(source.schema.metadata), tmp)
    os.replace(tmp, out)
    for name in names:
        name.unlink()
    parts.rmdir()
    rate = generated / seconds if seconds > 0 else 0.0
    return {
        "events": table.num_rows,
        "generated": generated,
        "seconds": round(seconds, 2),
        "events_per_s": round(rate, 2),
        "events_per_s_per_core": round(rate / source.config.n_workers, 2),
        "workers": source.config.n_workers,
        "signal_events": int(np.sum(table.column("is_signal").to_numpy())),
        "passing_pt_lead_1200": int(np.sum(table.column("pt_lead").to_numpy() > 1200)),
        "bytes": out.stat().st_size,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m stream.generators.dijet``: generate dijet events into a Parquet file."""
    import json

    from stream.options import parse_option_strings

    parser = argparse.ArgumentParser(
        prog="python -m stream.generators.dijet",
        description="Generate Pythia 8 dijet events (QCD + W' -> XY signal), cluster them, write Parquet. "
        "Resumable: rerunning the same command keeps the finished parts.",
        epilog="example: python -m stream.generators.dijet --events 300000 --out ~/runs/dijet/train.parquet "
        "--option dijet.seed=1 --option dijet.workers=2",
    )
    parser.add_argument("--events", type=int, required=True, help="number of events")
    parser.add_argument("--out", type=Path, required=True, help="output Parquet file")
    parser.add_argument("--option", action="append", default=[], help="dijet.KEY=VALUE (DijetConfig fields)")
    parser.add_argument("--part-events", type=int, default=10_000, help="events per resumable part")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    try:
        options = parse_option_strings(args.option)
        unknown = sorted(set(options) - {"dijet"})
        if unknown:
            msg = f"options must be dijet.KEY=VALUE, got sections {unknown}"
            raise SourceError(msg)
        if args.events <= 0 or args.part_events <= 0:
            msg = f"--events and --part-events must be positive, got {args.events} and {args.part_events}"
            raise SourceError(msg)
        source = DijetSource(dijet_config({**options.get("dijet", {}), "n_events": args.events}))
        summary = write_parquet(source, args.out, args.events, args.part_events, progress=not args.quiet)
    except (SourceError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
