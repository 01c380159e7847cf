"""Benchmark of the shower tools: reference simulator throughput (and, later, observables).

Run: ``python benchmarks/showers.py [--events 20000] [--repeat 3]``. Prints a table, then
as the last line one JSON object: ``{"showers_per_s": ..., ...}``. The observables part
(``offline/showers``) adds its ratio under ``observables_speedup`` in :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

# Run as a script, sys.path[0] is benchmarks/, where benchmarks/stream.py would shadow the
# ``stream`` package: put the repository root first.
if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.modules.pop("stream", None)

import numba  # noqa: E402
import numpy as np  # noqa: E402

from stream.showers.geometry import get_geometry  # noqa: E402
from stream.showers.simulator import sample_energies, simulate  # noqa: E402
from stream.showers.sparse import batch_to_dense, dense_to_batch  # noqa: E402

__all__ = ["bench_observables", "bench_simulator", "bench_sparse", "main"]


def _best_rate(fn, n: int, repeat: int) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def bench_simulator(geometry: str, n_events: int, repeat: int = 3, batch: int = 1000) -> tuple[float, float]:
    """Showers per second of :func:`simulate` (10–100 GeV uniform).

    Runs in batches of ``batch`` showers into one reused output buffer, as the
    ``showers:`` source does.

    Returns:
        ``(wall, cpu)``: showers per wall-clock second (all numba threads) and per
        CPU-second (process CPU time over all threads, i.e. per fully available core;
        insensitive to other processes sharing the cores).
    """
    energies = sample_energies(0, 0, n_events, 10.0, 100.0)
    simulate(geometry, energies[:8], seed=0)  # compile / load cache
    buffer = np.empty((batch, *get_geometry(geometry).shape), dtype=np.float32)

    def run() -> None:
        for first in range(0, n_events, batch):
            part = energies[first : first + batch]
            simulate(geometry, part, seed=1, first_event=first, out=buffer[: part.size])

    cpu = float("inf")
    wall = 0.0
    for _ in range(repeat):
        c0 = time.process_time()
        wall = max(wall, _best_rate(run, n_events, 1))
        cpu = min(cpu, time.process_time() - c0)
    return wall, n_events / cpu


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


def bench_observables(n_showers: int = 100_000, chunk: int = 2000, repeat: int = 1) -> tuple[float, float, float]:
    """Showers per second of the observables, numba vs plain numpy (``offline.showers``).

    One chunk of ECAL showers (10-100 GeV) is simulated and processed ``n_showers / chunk``
    times by :func:`offline.showers.observables.compute_observables` (numba) and by
    :func:`offline.showers.observables_numpy.compute_observables_numpy`; both must agree.

    Returns:
        ``(numba showers/s, numpy showers/s, speedup)``.
    """
    from offline.showers.observables import compute_observables
    from offline.showers.observables_numpy import compute_observables_numpy

    threshold = get_geometry("ecal").threshold_mev
    energies = sample_energies(3, 0, chunk, 10.0, 100.0)
    showers = simulate("ecal", energies, seed=3)
    fast, slow = compute_observables(showers, threshold), compute_observables_numpy(showers, threshold)
    for name in ("visible_energy", "n_hits", "center_of_gravity", "width", "radial_profile", "shower_start"):
        if not np.allclose(getattr(fast, name), getattr(slow, name), rtol=1e-9, atol=1e-9):
            msg = f"numba and numpy observables differ in {name}"
            raise RuntimeError(msg)
    passes = max(1, n_showers // chunk)

    def numba_run() -> None:
        for _ in range(passes):
            compute_observables(showers, threshold)

    def numpy_run() -> None:
        for _ in range(passes):
            compute_observables_numpy(showers, threshold)

    fast_rate = _best_rate(numba_run, passes * chunk, repeat)
    slow_rate = _best_rate(numpy_run, passes * chunk, repeat)
    return fast_rate, slow_rate, fast_rate / slow_rate


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks, print a table and a final JSON line.

    Example:
        python benchmarks/showers.py --events 20000
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000, help="ECAL showers per timing (default 20000)")
    parser.add_argument("--repeat", type=int, default=3, help="timings per measurement; the best is kept")
    parser.add_argument(
        "--observables-showers", type=int, default=100_000, help="showers per observables timing (default 100000)"
    )
    args = parser.parse_args(argv)

    results: dict[str, float | None] = {}
    rows = []
    ecal, ecal_cpu = bench_simulator("ecal", args.events, args.repeat)
    rows.append(("simulate showers:ecal (10-100 GeV photons)", f"{ecal:,.0f} showers/s"))
    rows.append(("  same, per CPU-second (one free core)", f"{ecal_cpu:,.0f} showers/s"))
    ahcal, _ = bench_simulator("ahcal", max(args.events // 4, 100), args.repeat)
    rows.append(("simulate showers:ahcal (10-100 GeV pions)", f"{ahcal:,.0f} showers/s"))
    encode, decode = bench_sparse(min(args.events, 5000), args.repeat)
    rows.append(("ecal dense -> sparse batch", f"{encode:,.0f} showers/s"))
    rows.append(("ecal sparse batch -> dense", f"{decode:,.0f} showers/s"))
    results["showers_per_s"] = round(ecal, 1)
    results["showers_per_cpu_s"] = round(ecal_cpu, 1)
    results["ahcal_showers_per_s"] = round(ahcal, 1)
    results["sparse_encode_per_s"] = round(encode, 1)
    results["sparse_decode_per_s"] = round(decode, 1)

    # Observables (offline/showers): numba vs plain numpy on --observables-showers ECAL showers.
    obs_fast, obs_slow, speedup = bench_observables(args.observables_showers)
    rows.append(("ecal observables, numba", f"{obs_fast:,.0f} showers/s"))
    rows.append(("ecal observables, numpy reference", f"{obs_slow:,.0f} showers/s"))
    results["observables_per_s"] = round(obs_fast, 1)
    results["observables_numpy_per_s"] = round(obs_slow, 1)
    results["observables_speedup"] = round(speedup, 2)

    print(f"threads: {numba.get_num_threads()}")
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>20}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
