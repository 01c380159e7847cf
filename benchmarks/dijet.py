"""Dijet stream throughput: Pythia 8 + FastJet generator per core, and the LHCO reader.

Generator: :class:`stream.generators.dijet.DijetSource` with one worker (in-process),
``--events`` events after a warm-up that initialises both Pythia instances (their
initialisation, a few seconds, is excluded); the time spent clustering is measured
separately by clustering the same particles again. LHCO reader: the same particles are
written in the LHC Olympics R&D layout (700 × (pT, η, φ) + label, pandas fixed format,
float64), replicated to ``--lhco-events`` rows, and read back through ``lhco:PATH``
(HDF5 read, unpadding, clustering, features), one core. Without Pythia the generator
figure is null and the LHCO file holds synthetic two-jet events.

Example:
    python benchmarks/dijet.py --events 300 --lhco-events 20000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# Run as a script, sys.path[0] is benchmarks/, where benchmarks/stream.py would shadow the
# ``stream`` package: put the repository root first.
if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.modules.pop("stream", None)

import h5py  # noqa: E402
import numpy as np  # noqa: E402

from stream.generators.dijet import DijetConfig, DijetSource, PythiaDijets, event_randomness  # noqa: E402
from stream.jets import dijet_features  # noqa: E402
from stream.readers.lhco import LHCOSource  # noqa: E402


def _synthetic(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    events = []
    for _ in range(n):
        k = int(rng.integers(150, 400))
        side = rng.random(k) < 0.5
        pt = rng.exponential(8.0, k) + 0.3
        eta = np.where(side, 0.3, -0.3) + rng.normal(0, 0.4, k)
        phi = np.mod(np.where(side, 0.0, np.pi) + rng.normal(0, 0.4, k) + np.pi, 2 * np.pi) - np.pi
        events.append((pt, eta, phi))
    return events


def measure_generator(n: int, seed: int) -> tuple[float, float, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """``(events/s, clustering share, particles)`` of the one-worker Pythia generator."""
    config = DijetConfig(n_events=n + 20, workers=1, seed=seed, batch_size=n + 20, chunk_size=n + 20)
    maker = PythiaDijets(config)
    flags, seeds = event_randomness(seed, 0, 20, 0.5)
    for flag, s in zip(flags, seeds, strict=True):  # warm-up: both processes initialised
        maker.particles(bool(flag), int(s))
    maker.particles(True, 1)
    maker.particles(False, 2)
    source = DijetSource(DijetConfig(n_events=n + 20, workers=1, seed=seed, batch_size=n, chunk_size=n), maker)
    begin = time.perf_counter()
    batches = list(source.batches(20))
    seconds = time.perf_counter() - begin
    assert sum(b.num_rows for b in batches) == n
    flags, seeds = event_randomness(seed, 20, 20 + n, config.signal_fraction)
    particles = [maker.particles(bool(f), int(s)) for f, s in zip(flags, seeds, strict=True)]
    counts = np.array([p[0].size for p in particles])
    flat = [np.concatenate([p[k] for p in particles]) for k in range(3)]
    begin = time.perf_counter()
    dijet_features(*flat, counts)
    clustering = time.perf_counter() - begin
    return n / seconds, clustering / seconds, particles


def write_lhco(path: Path, particles: list[tuple[np.ndarray, np.ndarray, np.ndarray]], rows: int) -> None:
    """An LHCO R&D-layout file (fixed format, transposed block) of ``rows`` events."""
    table = np.zeros((len(particles), 2101))
    for i, (pt, eta, phi) in enumerate(particles):
        keep = np.argsort(-pt)[:700]
        table[i, : 3 * keep.size] = np.column_stack([pt[keep], eta[keep], phi[keep]]).ravel()
        table[i, -1] = float(i % 10 == 0)
    with h5py.File(path, "w") as f:
        group = f.create_group("df")
        group.attrs.update({"pandas_type": "frame", "ndim": 2, "nblocks": 1})
        values = group.create_dataset("block0_values", shape=(rows, 2101), dtype=np.float64)
        for start in range(0, rows, len(particles)):
            stop = min(start + len(particles), rows)
            values[start:stop] = table[: stop - start]
        values.attrs["transposed"] = np.uint8(1)


def measure_lhco(path: Path, repeats: int) -> list[float]:
    """Events/s of reading and clustering the file, per repeat."""
    rates = []
    for _ in range(repeats):
        source = LHCOSource(path, batch_size=5_000)
        begin = time.perf_counter()
        n = sum(b.num_rows for b in source.batches())
        rates.append(n / (time.perf_counter() - begin))
    return rates


def main(argv: Sequence[str] | None = None) -> int:
    """Run both measurements and print a table and a JSON line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300, help="generated events timed (one core)")
    parser.add_argument("--lhco-events", type=int, default=20_000, help="rows of the LHCO-layout file")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the LHCO read")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import pythia8mc  # noqa: F401

        rate, share, particles = measure_generator(args.events, args.seed)
    except ImportError:
        rate, share, particles = None, None, _synthetic(500, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lhco.h5"
        write_lhco(path, particles, args.lhco_events)
        lhco = measure_lhco(path, args.repeats)
    lhco_rate = float(np.median(lhco))
    multiplicity = float(np.mean([p[0].size for p in particles]))
    if rate is None:
        print("generator: pythia8mc not installed (pip install 'trigger-emulator[pythia,dijet]')")
    else:
        print(f"generator: {rate:.1f} events/s on one core ({args.events} events, Pythia 8 + FastJet, "
              f"clustering {100 * share:.0f} % of the time), {multiplicity:.0f} visible particles per event")
    print(f"lhco reader: {lhco_rate:,.0f} events/s on one core (median of {args.repeats}: "
          + ", ".join(f"{r:,.0f}" for r in lhco) + f"; {args.lhco_events} rows, {multiplicity:.0f} particles per row)")
    print(json.dumps({
        "events_per_s_per_core": rate,
        "clustering_fraction": share,
        "lhco_events_per_s": lhco_rate,
        "lhco_repeats": lhco,
        "particles_per_event": multiplicity,
        "generator_events": args.events,
        "lhco_events": args.lhco_events,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
