"""Trigger-menu throughput: events per second on one core for a realistic menu.

A menu of 4 L1 paths and 4 HLT paths with prescales (cuts on 5 feature columns) runs over
batches of 20 000-event records (the size of one Kafka message), the way the emulator
calls it. Numba is pinned to one thread; the first call (JIT compile) is excluded.
The figure to beat is the LHC bunch-crossing rate, 40 MHz.

Example:
    python benchmarks/trigger.py --events 20000000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence

import numba
import numpy as np

from emulator.trigger import TriggerMenu

MENU = {
    "mode": "l1",
    "l1": [
        {"name": "L1_SingleJet", "cuts": ["pt1 > 180"], "prescale": 1},
        {"name": "L1_HT", "cuts": ["ht > 360"], "prescale": 1},
        {"name": "L1_DoubleJet", "cuts": ["pt1 > 100", "pt2 > 100", "deta < 1.5"], "prescale": 5},
        {"name": "L1_ZeroBias", "cuts": [], "prescale": 10000},
    ],
    "hlt": [
        {"name": "HLT_PFJet500", "cuts": ["pt1 > 500"], "prescale": 1},
        {"name": "HLT_PFHT1050", "cuts": ["ht > 1050"], "prescale": 1},
        {"name": "HLT_DiJet_mjj", "cuts": ["mjj > 1.2", "deta < 1.3"], "prescale": 20},
        {"name": "HLT_ZeroBias", "cuts": [], "prescale": 1000},
    ],
}


def make_events(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Synthetic jet features (GeV, TeV for mjj) with falling spectra."""
    rng = np.random.default_rng(seed)
    pt1 = 30 + rng.exponential(80, n)
    pt2 = pt1 * rng.uniform(0.3, 1.0, n)
    return {"pt1": pt1, "pt2": pt2, "ht": pt1 + pt2 + rng.exponential(50, n),
            "deta": np.abs(rng.normal(0, 1.5, n)), "mjj": (pt1 + pt2) * rng.uniform(1.0, 3.0, n) / 1000}


def measure(events: int, batch: int, repeats: int) -> list[float]:
    """Events/s of each repeat over ``events`` events in batches of ``batch``."""
    data = make_events(batch * 8)
    slices = [{k: v[i * batch : (i + 1) * batch] for k, v in data.items()} for i in range(8)]
    menu = TriggerMenu.from_mapping(MENU)
    menu.run(slices[0])  # JIT compile
    rates = []
    n_batches = max(events // batch, 1)
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n_batches):
            menu.run(slices[i % 8])
        rates.append(n_batches * batch / (time.perf_counter() - start))
    return rates


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print a table and a JSON line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000_000, help="events per repeat")
    parser.add_argument("--batch", type=int, default=20_000, help="events per record batch")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    numba.set_num_threads(1)
    rates = measure(args.events, args.batch, args.repeats)
    median = statistics.median(rates)
    menu = TriggerMenu.from_mapping(MENU)
    print(f"menu: {len(menu.l1)} L1 + {len(menu.hlt)} HLT paths, batch {args.batch:,} events, one core")
    for i, r in enumerate(rates):
        print(f"  repeat {i}: {r / 1e6:8.1f} M events/s")
    print(f"median: {median / 1e6:.1f} M events/s (goal >= 40 M/s, the LHC bunch-crossing rate)")
    print(json.dumps({"events_per_s": median, "repeats": rates, "batch": args.batch, "goal": 40e6}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
