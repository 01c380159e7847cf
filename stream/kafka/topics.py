"""Create Kafka topics once the broker is up (the topic-creation step of docker compose).

Example:
    python -m stream.kafka.topics --bootstrap kafka:9092 --topic events --partitions 3 \\
        --topic events-dead-letter --partitions 1
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from stream.errors import TransportError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stream.kafka.topics",
        description="Wait for a Kafka broker, then create topics (existing ones are kept).",
        epilog=(
            "example:\n"
            "  python -m stream.kafka.topics --bootstrap kafka:9092 --topic events --partitions 3 \\\n"
            "      --topic events-dead-letter --partitions 1"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap HOST:PORT")
    parser.add_argument("--topic", action="append", required=True, help="topic name (repeatable)")
    parser.add_argument(
        "--partitions",
        action="append",
        type=int,
        default=[],
        help="partitions of the matching --topic (repeatable; the last one applies to the rest; default 1)",
    )
    parser.add_argument(
        "--wait-s", type=float, default=120.0, help="how long to wait for the broker"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    from stream.kafka.producer import ensure_topic

    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    counts = list(args.partitions) or [1]
    try:
        for index, topic in enumerate(args.topic):
            partitions = counts[min(index, len(counts) - 1)]
            got = ensure_topic(args.bootstrap, topic, partitions, timeout_s=args.wait_s)
            print(f"topic {topic}: {got} partition(s)")
    except (TransportError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
