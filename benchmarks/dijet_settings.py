"""Choose the dijet OnlineFlow's settings on validation events (never the test set).

Trains one :class:`models.flows.ensemble.OnlineFlowEnsemble` the way the emulator does
(``train_on_buffer`` on buffers of ``--buffer`` events in stream order, then
``end_buffer``, which feeds the SWA) on the events of a generated dijet file that pass
``pt_lead > 1200`` GeV, holding out the last ``--validation`` of them. After every buffer
it prints, for the live and the SWA weights, the validation NLL (nats per event, physical
units: GeV for the masses; noise dimensions integrated out by importance sampling) and the
fraction of flow samples in the signal region 3.3 ≤ m_jj < 3.7 TeV beside that of the
validation events. The figures for ``docs/dijet.md`` came from::

    python benchmarks/dijet_settings.py runs/dijet/train_cut.parquet --lr 1e-4 --n-iter 200
    python benchmarks/dijet_settings.py runs/dijet/train_cut.parquet --lr 1e-3 --n-iter 200
    python benchmarks/dijet_settings.py runs/dijet/train_cut.parquet --lr 3e-4 --n-iter 50

(``train_cut.parquet``: the first 110 000 events of the seed-1 stream; one run takes
3–11 minutes on one core). Last line: one JSON object with the settings and the last
buffer's figures.

``--score SNAPSHOT ...`` instead scores trained snapshots (emulator runs) on the events
file, which must be events none of them trained on (for the 300 k runs: an independent
seed, ``python -m stream.generators.dijet --events 15000 --out validation.parquet
--option dijet.seed=5``)::

    python benchmarks/dijet_settings.py runs/dijet/validation.parquet --validation 14278 \
        --score runs/dijet300k/snapshot runs/dijet300k-lr3/snapshot
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

SIGNAL_REGION_GEV = (3300.0, 3700.0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: python benchmarks/dijet_settings.py runs/dijet/train_cut.parquet --lr 1e-4 --n-iter 200",
    )
    parser.add_argument("events", help="generated dijet Parquet file (python -m stream.generators.dijet)")
    parser.add_argument("--validation", type=int, default=10_000, help="last events held out (default 10000)")
    parser.add_argument("--buffer", type=int, default=10_000, help="events per buffer (default 10000)")
    parser.add_argument("--batch-size", type=int, default=250, help="events per step (default 250)")
    parser.add_argument("--n-iter", type=int, default=200, help="passes per buffer (default 200)")
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 1e-4)")
    parser.add_argument("--swa-start", type=int, default=3, help="buffers before SWA averages (default 3)")
    parser.add_argument("--transform", choices=("affine", "rq_spline"), default="affine",
                        help="MADE blocks: affine (default) or rational-quadratic splines")
    parser.add_argument("--n-blocks", type=int, default=10, help="MADE blocks (default 10)")
    parser.add_argument("--n-bins", type=int, default=8, help="spline bins (rq_spline; default 8)")
    parser.add_argument("--no-log", action="store_true", help="do not log-transform m_jj and m_j1")
    parser.add_argument("--buffers", type=int, default=None, help="stop after this many buffers")
    parser.add_argument("--seed", type=int, default=1, help="model seed (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--score", nargs="+", metavar="SNAPSHOT", default=None,
                        help="score these snapshots on the last --validation events instead of training")
    return parser


def _in_region(mjj: np.ndarray) -> float:
    return float(((mjj >= SIGNAL_REGION_GEV[0]) & (mjj < SIGNAL_REGION_GEV[1])).mean())


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    for name in ("validation", "buffer", "batch_size", "n_iter", "n_blocks"):
        if getattr(args, name) < 1:
            print(f"error: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    torch.set_num_threads(args.threads)
    from models.flows.ensemble import OnlineFlowEnsemble
    from offline.cwola.data import FEATURES, read_events
    from offline.cwola.errors import CwolaError

    try:
        events = read_events(args.events, pt_lead_min=1200.0)
    except CwolaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    x = torch.tensor(events.x, dtype=torch.float32)
    if len(x) < args.validation + (0 if args.score else args.buffer):
        print(f"error: {len(x)} events pass the trigger; need --validation + --buffer", file=sys.stderr)
        return 2
    validation, train = x[-args.validation :], x[: -args.validation]
    if args.score:
        return _score(args.score, validation)
    probe = {c: validation[:5000, i] for i, c in enumerate(FEATURES)}
    model = OnlineFlowEnsemble(
        columns=list(FEATURES), log_columns=[] if args.no_log else ["mjj", "mj1"], noise_dims=5,
        n_members=1, n_blocks=args.n_blocks, hidden_features=128, n_hidden_layers=2, learning_rate=args.lr,
        swa_start=args.swa_start, seed=args.seed, bootstrap="none", transform=args.transform, n_bins=args.n_bins,
    )
    settings = {"transform": args.transform, "n_blocks": args.n_blocks, "n_bins": args.n_bins, "lr": args.lr, "n_iter": args.n_iter, "log_masses": not args.no_log, "swa_start": args.swa_start,
                "train_events": len(train), "validation_events": len(validation),
                "validation_sr_fraction": _in_region(validation[:, 0].numpy())}
    print(json.dumps(settings))
    started, row = time.perf_counter(), {}
    starts = range(0, len(train) - args.buffer + 1, args.buffer)
    for index, start in enumerate(starts):
        if args.buffers is not None and index >= args.buffers:
            break
        buffer = {c: train[start : start + args.buffer, i] for i, c in enumerate(FEATURES)}
        report = model.train_on_buffer(buffer, args.n_iter, args.batch_size)
        model.end_buffer()
        row = {"buffer": index + 1, "train_loss": report.loss, "seconds": round(time.perf_counter() - started, 1)}
        for weights in ("live", "swa"):
            if weights == "swa" and model.swa.count == 0:
                continue
            nll = -model.log_prob(probe, weights=weights, noise_samples=8).reshape(-1).numpy()
            mjj = model.sample(50_000, seed=3, weights=weights)["mjj"].reshape(-1).numpy()
            row[weights] = {"nll": float(np.mean(nll)), "nll_median": float(np.median(nll)),
                            "sr_fraction": _in_region(mjj)}
        print(json.dumps(row), flush=True)
    print(json.dumps({**settings, "last": row}))
    return 0


def _score(snapshots: list[str], validation: torch.Tensor) -> int:
    """Validation NLL and signal-region fraction of each snapshot's SWA (else live) weights."""
    from emulator.snapshot import load_snapshot
    from offline.cwola.data import FEATURES

    probe = {c: validation[:, i] for i, c in enumerate(FEATURES)}
    results = {}
    for path in snapshots:
        model = load_snapshot(path).model
        nll = -model.log_prob(probe, noise_samples=8).reshape(-1).numpy()
        mjj = model.sample(100_000, seed=3)["mjj"].reshape(-1).numpy()
        results[path] = {"nll": float(np.mean(nll)), "nll_error": float(np.std(nll) / np.sqrt(len(nll))),
                         "sr_fraction": _in_region(mjj)}
        print(f"{path}: NLL {results[path]['nll']:.4f} ± {results[path]['nll_error']:.4f} nats, "
              f"SR fraction {results[path]['sr_fraction']:.4f}", flush=True)
    print(json.dumps({"validation_events": len(validation), "validation_sr_fraction": _in_region(validation[:, 0].numpy()),
                      "snapshots": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
