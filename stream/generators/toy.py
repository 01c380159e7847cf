"""Toy mass spectrum of the bump-hunt study (arXiv 2202.09375, section 3).

Background p_B(m) ∝ exp(−b·m) on m ≥ 0, signal a Gaussian N(μ, σ); each event is signal
with probability λ, so the signal count fluctuates (binomially) as in real data. The mass
is in the dimensionless units of the paper (the bump sits at m = 1).

Events are generated in fixed chunks, chunk k seeded by ``(seed, k)``, so the stream is
identical however it is cut into batches and can restart at any event number. Masses are
drawn in float64 and cast to float32, the feature type of the event schema
(:mod:`stream.schema`); the cast is deterministic, so the same seed gives the same bits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from stream.errors import SourceError
from stream.schema import event_schema

__all__ = ["ToySpectrumConfig", "ToySpectrumSource", "toy_spectrum_chunk"]

CHUNK = 20_000


@dataclass(frozen=True)
class ToySpectrumConfig:
    """Parameters of the toy spectrum (paper defaults).

    Attributes:
        slope: b of the exponential background exp(−b·m) (1/mass unit).
        signal_mean: μ of the Gaussian signal (mass units).
        signal_width: σ of the Gaussian signal (mass units).
        signal_fraction: λ, probability that an event is signal.
        seed: random seed.
        n_events: total events (None: endless).
        batch_size: events per record batch (and per Kafka message).
    """

    slope: float = 1.0
    signal_mean: float = 1.0
    signal_width: float = 0.04
    signal_fraction: float = 0.005
    seed: int = 0
    n_events: int | None = None
    batch_size: int = CHUNK

    def __post_init__(self) -> None:
        checks = {
            "slope": self.slope > 0,
            "signal_width": self.signal_width > 0,
            "signal_fraction": 0.0 <= self.signal_fraction <= 1.0,
            "batch_size": self.batch_size > 0,
            "n_events": self.n_events is None or self.n_events >= 0,
        }
        for key, ok in checks.items():
            if not ok:
                msg = f"toy: invalid {key} = {getattr(self, key)!r}"
                raise SourceError(msg)


def toy_spectrum_chunk(config: ToySpectrumConfig, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Masses and signal flags of chunk ``chunk`` (events ``chunk*CHUNK`` onwards).

    Returns:
        ``(mass, is_signal)``, float32 arrays of length ``CHUNK`` (the values the stream
        carries; the mass is drawn in float64, then cast).

    Example:
        >>> mass, is_signal = toy_spectrum_chunk(ToySpectrumConfig(seed=1), 0)
        >>> mass.dtype, is_signal.dtype, mass.size
        (dtype('float32'), dtype('float32'), 20000)
    """
    rng = np.random.Generator(np.random.PCG64([config.seed, chunk]))
    is_signal = rng.random(CHUNK) < config.signal_fraction
    background = rng.exponential(1.0 / config.slope, CHUNK)
    signal = rng.normal(config.signal_mean, config.signal_width, CHUNK)
    mass = np.where(is_signal, signal, background)
    # A Gaussian signal can reach m < 0 only for absurd settings; reflect to keep m >= 0.
    mass = np.abs(mass)
    return mass.astype(np.float32), is_signal.astype(np.float32)


class ToySpectrumSource:
    """Seeded toy spectrum as a :class:`stream.source.Source`.

    Columns: ``event_id`` (uint64), ``mass`` (float32, dimensionless mass units),
    ``is_signal`` (float32 truth flag, 0/1; never used for training).

    Example:
        >>> src = ToySpectrumSource(ToySpectrumConfig(n_events=5, seed=1))
        >>> sum(b.num_rows for b in src.batches())
        5
    """

    def __init__(self, config: ToySpectrumConfig | None = None) -> None:
        self.config = config or ToySpectrumConfig()
        self.spec = "toy"
        self.schema: pa.Schema = event_schema(["mass", "is_signal"], {"mass": "dimensionless", "is_signal": "truth flag"})

    def __repr__(self) -> str:
        return f"ToySpectrumSource({self.config})"

    def batches(self, start_event: int = 0) -> Iterator[pa.RecordBatch]:
        """Yield batches of ``batch_size`` events from event number ``start_event``."""
        cfg = self.config
        total = cfg.n_events
        event = start_event
        while total is None or event < total:
            n = cfg.batch_size if total is None else min(cfg.batch_size, total - event)
            ids = np.arange(event, event + n, dtype=np.uint64)
            mass = np.empty(n, dtype=np.float32)
            flag = np.empty(n, dtype=np.float32)
            filled = 0
            while filled < n:
                chunk, within = divmod(event + filled, CHUNK)
                m, s = toy_spectrum_chunk(cfg, chunk)
                take = min(n - filled, CHUNK - within)
                mass[filled : filled + take] = m[within : within + take]
                flag[filled : filled + take] = s[within : within + take]
                filled += take
            yield pa.RecordBatch.from_arrays([pa.array(ids), pa.array(mass), pa.array(flag)], schema=self.schema)
            event += n
