"""Are the report's JSD floors right? Independent reference samples against the floor.

Simulates ``--samples`` independent reference samples (``showers:ecal``, seeds 11, 22, ...)
at one set of incident energies, computes the JSD of every pair for the energy-weighted
profiles (the histograms whose floor is hardest to estimate: a few bins carry most of
the energy) and the floor of the first sample by the report's energy-local bootstrap
(:func:`offline.showers.floors.jsd_floors`) with several replica counts. A floor is right
when the independent pairs scatter around it within its spread.

Run: ``python benchmarks/shower_floors.py --n 40000`` (about a minute on 2 cores). Prints
a table, then as the last line one JSON object: ``{"pairs": {...}, "floors": {...}}``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path

if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.modules.pop("stream", None)

import numpy as np  # noqa: E402

from offline.showers.floors import jsd_floors  # noqa: E402
from offline.showers.jsd import jensen_shannon_distance  # noqa: E402
from offline.showers.summary import summarise  # noqa: E402
from offline.showers.validation import _profile_pair  # noqa: E402
from stream.showers.geometry import get_geometry  # noqa: E402
from stream.showers.simulator import sample_energies, simulate  # noqa: E402

PROFILES = ("radial_profile", "longitudinal_profile")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check; see ``--help``."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="example:\n  python benchmarks/shower_floors.py --n 40000 --replicas 10 40",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--n", type=int, default=40_000, help="showers per sample (default 40 000)")
    parser.add_argument("--samples", type=int, default=3, help="independent reference samples (default 3)")
    parser.add_argument("--replicas", type=int, nargs="+", default=[10, 40], help="replica counts of the floor")
    parser.add_argument("--threshold-mev", type=float, default=0.1, help="cell threshold in MeV (default 0.1)")
    args = parser.parse_args(argv)
    if args.n < 10 or args.samples < 2 or min(args.replicas) < 2:
        parser.error("need --n >= 10, --samples >= 2 and every --replicas >= 2")
    geometry = get_geometry("ecal")
    energies = sample_energies(7, 0, args.n, geometry.energy_min_gev, geometry.energy_max_gev)
    seeds = [11 * (k + 1) for k in range(args.samples)]
    summaries = {}
    for seed in seeds:
        chunks = (
            (energies[lo : lo + 2000], simulate(geometry, energies[lo : lo + 2000], seed, first_event=lo))
            for lo in range(0, args.n, 2000)
        )
        summaries[seed] = summarise(chunks, threshold_mev=args.threshold_mev)
    pairs: dict[str, list[float]] = {}
    floors: dict[str, dict[str, list[float]]] = {}
    for name in PROFILES:
        profiles = {s: getattr(summaries[s].observables, name) for s in seeds}
        pairs[name] = [
            jensen_shannon_distance(profiles[a].sum(axis=0), profiles[b].sum(axis=0))
            for a, b in itertools.combinations(seeds, 2)
        ]
        pair = _profile_pair(profiles[seeds[0]], profiles[seeds[1]])
        floors[name] = {}
        for reps in args.replicas:
            f = jsd_floors(summaries[seeds[0]], {name: pair}, n_replicas=reps)
            floors[name][str(reps)] = [f.jsd[name], f.jsd_spread[name]]
    print(f"n = {args.n}, {args.samples} independent reference samples at the same energies")
    for name in PROFILES:
        print(f"  {name:22s} pairs: " + ", ".join(f"{v:.5f}" for v in pairs[name]))
        for reps, (mean, spread) in floors[name].items():
            print(f"  {'':22s} floor ({reps:>3s} replicas): {mean:.5f} ± {spread:.5f}")
    print(json.dumps({"n": args.n, "pairs": pairs, "floors": floors, "pair_mean": {k: float(np.mean(v)) for k, v in pairs.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
