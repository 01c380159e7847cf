"""``python -m emulator run``: train a model online from a stream and leave a snapshot.

Example::

    python -m emulator run --config configs/bumphunt-quick.toml --out snapshot/
    python -m offline.bumphunt snapshot/
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from emulator.errors import ConfigError, SnapshotError

__all__ = ["build_parser", "main"]

EPILOG = """\
examples:
  python -m emulator run --config configs/bumphunt-quick.toml --out snapshot/
  python -m emulator run --config configs/bumphunt.toml --events 5000000 --seed 1
  python -m emulator run --config configs/bumphunt-quick.toml \\
      --bootstrap localhost:9092 --topic events --until-idle 30

A run whose --out already holds a snapshot resumes from it (same config), continuing
exactly after the last trained buffer; --fresh starts over and replaces it.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m emulator``."""
    parser = argparse.ArgumentParser(
        prog="python -m emulator",
        description="Streaming trigger emulator: train generative models online at trigger level.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train online and write a snapshot", epilog=EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--config", type=Path, help="TOML run configuration (default: built-in defaults)")
    run.add_argument("--out", type=Path, default=Path("snapshot"), help="snapshot directory (default: snapshot/)")
    run.add_argument("--events", type=int, help="stop after N events in total (overrides source.events)")
    run.add_argument("--seed", type=int, help="master seed (overrides the config's)")
    run.add_argument("--device", help="'auto' (CUDA if present), 'cpu', 'cuda', ...")
    run.add_argument("--threads", type=int, help="torch CPU threads (0: all cores; use 1 when the cores are busy)")
    run.add_argument("--source", help="source spec, e.g. toy or parquet:events.parquet (overrides source.spec)")
    run.add_argument("--bootstrap", help="Kafka bootstrap server HOST:PORT (default: embedded transport)")
    run.add_argument("--topic", help="Kafka topic to consume (with --bootstrap)")
    run.add_argument("--group-id", help="Kafka consumer group (one per ensemble shard)")
    run.add_argument("--until-idle", type=float, metavar="SECONDS", help="end of stream after SECONDS without messages")
    run.add_argument("--fresh", action="store_true", help="ignore and replace an existing snapshot in --out")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--json", action="store_true", help="print the run summary as one JSON line")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from emulator.config import load_config
    from emulator.run import run_training

    try:
        config = load_config(args.config).with_overrides(
            seed=args.seed, events=args.events, device=args.device, threads=args.threads
        )
        if args.source:
            config = replace(config, source=replace(config.source, spec=args.source))
        if args.bootstrap or args.topic or args.group_id:
            kafka = config.kafka
            config = replace(config, kafka=replace(
                kafka,
                bootstrap=args.bootstrap or kafka.bootstrap,
                topic=args.topic or kafka.topic,
                group_id=args.group_id or kafka.group_id,
            ))
        summary = run_training(config, args.out, fresh=args.fresh, progress=not args.quiet, until_idle_s=args.until_idle)
    except (ConfigError, SnapshotError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report = summary.as_dict()
    if args.json:
        print(json.dumps(report, default=float))
    else:
        st = summary.storage
        print(f"snapshot: {args.out}")
        print(f"events seen {summary.events_seen:,}  trained {summary.events_trained:,}  dropped {summary.events_dropped:,}"
              f"  stored {summary.events_stored:,}  buffers {summary.buffers_trained}  in {summary.wall_s:.1f} s")
        if summary.bad_messages:
            print(f"bad messages: {summary.bad_messages}")
        if st:
            print(f"storage: prescaled events {st['stored_bytes'] / 1e6:.2f} MB vs model snapshot "
                  f"{st['snapshot_bytes'] / 1e6:.2f} MB (model has seen {st['model_events_seen']:,} events)")
        if summary.interrupted:
            print("interrupted: the snapshot covers every buffer trained so far")
    return 0
