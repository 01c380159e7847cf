"""Layer-by-layer lateral diagnosis of generated showers against reference showers.

The shower-level observables of the validation report (``cog_x``, ``width_x``, ``n_hits``)
say *that* a model's showers are too wide or too centred; this says *where* in depth it
happens and whether the core follows from one layer to the next. Per layer ``l`` (of the
hits, cells at or above the threshold; cells in units of one cell, measured from the
centre of the modelled window):

* ``cog_x_std``: the spread over showers of the energy-weighted centre of gravity in x
  (how far the core wanders from shower to shower);
* ``width_x``: the mean energy-weighted standard deviation in x (layers with hits only);
* ``hits``: the mean number of hits;
* ``core_fraction``: the mean share of the layer's energy in its hottest cell;
* ``cog_x_follow``: the correlation over showers of ``cog_x`` in layers ``l`` and ``l + 1``
  (how well the core position carries on; showers with hits in both layers).

Run::

    python -m offline.showers.lateral --snapshot ~/runs/layerflow --n 4000 --out report/lateral.json

It simulates a held-out reference sample (seed: the snapshot's training seed + 1, as
``offline.showers`` does), samples the snapshot at the same incident energies, prints a
table every ``--every`` layers and writes the per-layer figures of both as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["lateral_profile", "main"]

PROFILE_KEYS = ("cog_x_std", "width_x", "hits", "core_fraction", "cog_x_follow")


def lateral_profile(showers: np.ndarray, threshold_mev: float = 0.1) -> dict[str, np.ndarray]:
    """Per-layer lateral figures of ``showers`` ``(N, L, X, Y)`` MeV (module docstring).

    Args:
        showers: cell energies (MeV); cells below ``threshold_mev`` are ignored.
        threshold_mev: the hit threshold (MeV).

    Returns:
        ``{key: (L,) array}`` for the keys of :data:`PROFILE_KEYS` (``cog_x_follow`` has
        NaN in the last layer and wherever fewer than three showers have hits in both).

    Raises:
        ValueError: an array that is not 4-D or holds fewer than two showers.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> s = np.zeros((50, 3, 4, 4)); s[np.arange(50), :, rng.integers(0, 4, 50), 1] = 1.0
        >>> p = lateral_profile(s)
        >>> p["width_x"].tolist(), bool(p["cog_x_follow"][0] > 0.99)
        ([0.0, 0.0, 0.0], True)
    """
    s = np.asarray(showers, dtype=np.float64)
    if s.ndim != 4 or s.shape[0] < 2:
        msg = f"lateral_profile: showers must be (N >= 2, L, X, Y), got shape {s.shape}"
        raise ValueError(msg)
    s = np.where(s >= threshold_mev, s, 0.0)
    n_x = s.shape[2]
    x = np.arange(n_x) - (n_x - 1) / 2
    total = s.sum((2, 3))
    has = total > 0
    safe = np.where(has, total, 1.0)
    profile = s.sum(3)
    cog = (profile * x).sum(2) / safe
    width = np.sqrt(np.maximum((profile * x**2).sum(2) / safe - cog**2, 0.0))
    core = s.max((2, 3)) / safe
    layers = s.shape[1]
    follow = np.full(layers, np.nan)
    for layer in range(layers - 1):
        both = has[:, layer] & has[:, layer + 1]
        a, b = cog[both, layer], cog[both, layer + 1]
        if both.sum() >= 3 and a.std() > 0 and b.std() > 0:
            follow[layer] = float(np.corrcoef(a, b)[0, 1])

    def masked(values: np.ndarray, reduce: Any) -> np.ndarray:
        out = np.full(layers, np.nan)
        for layer in range(layers):
            if has[:, layer].sum() >= 2:
                out[layer] = reduce(values[has[:, layer], layer])
        return out

    return {
        "cog_x_std": masked(cog, np.std),
        "width_x": masked(width, np.mean),
        "hits": (s > 0).sum((2, 3)).mean(0).astype(np.float64),
        "core_fraction": masked(core, np.mean),
        "cog_x_follow": follow,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m offline.showers.lateral",
        description="Per-layer lateral figures (core wander, width, hits, core share, layer-to-layer "
        "following of the core) of a snapshot's showers against held-out reference showers.",
        epilog="example:\n  python -m offline.showers.lateral --snapshot ~/runs/layerflow --n 4000 --out lateral.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--snapshot", type=Path, required=True, help="snapshot directory of a trained shower model")
    parser.add_argument("--n", type=int, default=4000, help="showers per sample (default: 4000)")
    parser.add_argument("--seed", type=int, default=None,
                        help="reference seed (default: the snapshot's training seed + 1)")
    parser.add_argument("--every", type=int, default=3, help="print every this many layers (default: 3)")
    parser.add_argument("--out", type=Path, default=None, help="write the per-layer figures as JSON here")
    parser.add_argument("--student", action="store_true", help="layerflow: sample with the students")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``python -m offline.showers.lateral --help``)."""
    args = _parser().parse_args(argv)
    if args.n < 2 or args.every < 1:
        print("error: --n must be >= 2 and --every >= 1", file=sys.stderr)
        return 2
    from offline.showers.pipeline import _central, simulate_reference
    from offline.showers.snapshot_model import SnapshotGenerator, reference_seed

    options: dict[str, Any] = {"student": True} if args.student else {}
    try:
        generator = SnapshotGenerator("ecal", args.snapshot, **options)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    geometry = generator.reference_geometry()
    seed = reference_seed(generator.training_seed, args.seed)
    energies, showers = [], []
    # the central window the model generates, cropped as the validation report crops it
    for chunk_energies, chunk in _central(simulate_reference(generator.geometry, args.n, seed), geometry.shape):
        energies.append(chunk_energies)
        showers.append(chunk)
    e = np.concatenate(energies)
    ref = np.concatenate(showers)
    gen = generator.generate(e, seed + 1)
    profiles = {"reference": lateral_profile(ref), generator.name: lateral_profile(gen)}
    names = list(profiles)
    print(f"n = {args.n} showers, reference seed {seed}; figures in cells ({names[0]} / {names[1]})")
    print("layer  " + "  ".join(f"{key:>17s}" for key in PROFILE_KEYS))
    for layer in range(0, ref.shape[1], args.every):
        cells = [f"{profiles[names[0]][key][layer]:8.3f}/{profiles[names[1]][key][layer]:<8.3f}" for key in PROFILE_KEYS]
        print(f"{layer:5d}  " + "  ".join(cells))
    result = {"n": args.n, "reference_seed": seed, "snapshot": str(args.snapshot),
              "profiles": {name: {k: [None if np.isnan(v) else float(v) for v in p[k]] for k in PROFILE_KEYS}
                           for name, p in profiles.items()}}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
        print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
