"""Benchmark of the shower tools: reference simulator throughput (and, later, observables).

Run: ``python benchmarks/showers.py [--events 20000] [--repeat 3]``. Prints a table, then
as the last line one JSON object: ``{"showers_per_s": ..., ...}``. The observables part
(``offline/showers``) adds its ratio under ``observables_speedup`` in :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import numba
import numpy as np

from stream.showers.geometry import get_geometry
from stream.showers.simulator import sample_energies, simulate
from stream.showers.sparse import batch_to_dense, dense_to_batch

__all__ = ["bench_simulator", "bench_sparse", "main"]


def _best_rate(fn, n: int, repeat: int) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def bench_simulator(geometry: str, n_events: int, repeat: int = 3, batch: int = 1000) -> float:
    """Showers per second of :func:`simulate` (10–100 GeV uniform).

    Runs in batches of ``batch`` showers into one reused output buffer, as the
    ``showers:`` source does.
    """
    energies = sample_energies(0, 0, n_events, 10.0, 100.0)
    simulate(geometry, energies[:8], seed=0)  # compile / load cache
    buffer = np.empty((batch, *get_geometry(geometry).shape), dtype=np.float32)

    def run() -> None:
        for first in range(0, n_events, batch):
            part = energies[first : first + batch]
            simulate(geometry, part, seed=1, first_event=first, out=buffer[: part.size])

    return _best_rate(run, n_events, repeat)


def bench_sparse(n_events: int, repeat: int = 3) -> tuple[float, float]:
    """Showers per second of ECAL dense→sparse and sparse→dense conversion."""
    energies = sample_energies(0, 0, n_events, 10.0, 100.0)
    showers = simulate("ecal", energies, seed=2)
    ids = np.arange(n_events)
    batch = dense_to_batch(ids, energies, showers, "ecal")
    batch_to_dense(batch)
    encode = _best_rate(lambda: dense_to_batch(ids, energies, showers, "ecal"), n_events, repeat)
    decode = _best_rate(lambda: batch_to_dense(batch), n_events, repeat)
    return encode, decode


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks, print a table and a final JSON line.

    Example:
        python benchmarks/showers.py --events 20000
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000, help="ECAL showers per timing (default 20000)")
    parser.add_argument("--repeat", type=int, default=3, help="timings per measurement; the best is kept")
    args = parser.parse_args(argv)

    results: dict[str, float | None] = {}
    rows = []
    ecal = bench_simulator("ecal", args.events, args.repeat)
    rows.append(("simulate showers:ecal (10-100 GeV photons)", f"{ecal:,.0f} showers/s"))
    ahcal = bench_simulator("ahcal", max(args.events // 4, 100), args.repeat)
    rows.append(("simulate showers:ahcal (10-100 GeV pions)", f"{ahcal:,.0f} showers/s"))
    encode, decode = bench_sparse(min(args.events, 5000), args.repeat)
    rows.append(("ecal dense -> sparse batch", f"{encode:,.0f} showers/s"))
    rows.append(("ecal sparse batch -> dense", f"{decode:,.0f} showers/s"))
    results["showers_per_s"] = round(ecal, 1)
    results["ahcal_showers_per_s"] = round(ahcal, 1)
    results["sparse_encode_per_s"] = round(encode, 1)
    results["sparse_decode_per_s"] = round(decode, 1)

    # Observables (offline/showers): to be added by its owner, e.g.
    #   speedup = bench_observables(...); rows.append((...)); results["observables_speedup"] = speedup
    results.setdefault("observables_speedup", None)

    print(f"threads: {numba.get_num_threads()}")
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>20}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
