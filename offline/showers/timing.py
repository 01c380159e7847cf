"""Generation with timing: probe batch sizes, then generate everything at the fastest.

Each candidate batch size is timed on one batch (after a small warm-up call, so JIT
compilation and CUDA start-up are not counted); the full sample is then generated in
batches of the fastest size, in chunks, and the time per shower of that full run is
reported. When the model lists ``"cuda"`` among its devices and CUDA is available, the
batch sizes are also probed on the GPU (reported, not used to generate).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from offline.showers.registry import ShowerGenerator

__all__ = ["GenerationTiming", "generate_timed", "probe_batch_sizes"]

DEFAULT_BATCH_SIZES: tuple[int, ...] = (64, 256, 1024, 4096)


@dataclass
class GenerationTiming:
    """Milliseconds per shower per device.

    Attributes:
        ms_per_shower: device -> ms per shower at the best batch size (``cpu`` from the
            full run, others from the probe).
        best_batch_size: device -> the fastest batch size.
        probes: device -> (batch size -> ms per shower).
    """

    ms_per_shower: dict[str, float | None] = field(default_factory=dict)
    best_batch_size: dict[str, int] = field(default_factory=dict)
    probes: dict[str, dict[int, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (``gpu`` is ``None`` when no GPU was timed)."""
        out: dict[str, object] = {
            "cpu": self.ms_per_shower.get("cpu"),
            "gpu": self.ms_per_shower.get("cuda"),
        }
        out["best_batch_size"] = dict(self.best_batch_size)
        out["probes"] = {dev: {str(b): ms for b, ms in p.items()} for dev, p in self.probes.items()}
        return out


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def probe_batch_sizes(
    model: ShowerGenerator,
    energies_gev: np.ndarray,
    seed: int,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    device: str = "cpu",
) -> dict[int, float]:
    """ms per shower for one batch of each size (sizes above ``len(energies_gev)`` are skipped).

    Raises:
        ValueError: when no energies are given.
    """
    energies = np.asarray(energies_gev, dtype=np.float64)
    if energies.size == 0:
        msg = "probe_batch_sizes needs at least one incident energy"
        raise ValueError(msg)
    model.generate(energies[: min(8, energies.size)], seed, device=device)
    sizes = sorted({min(int(b), energies.size) for b in batch_sizes if int(b) > 0})
    result = {}
    for b in sizes:
        start = time.perf_counter()
        model.generate(energies[:b], seed, device=device)
        if device == "cuda":
            import torch

            torch.cuda.synchronize()
        result[b] = 1e3 * (time.perf_counter() - start) / b
    return result


def generate_timed(
    model: ShowerGenerator,
    energies_gev: np.ndarray,
    seed: int,
    *,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    chunk_size: int = 2000,
    progress: bool = False,
    timing: GenerationTiming | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(energies, showers)`` chunks of the full sample, timing as described above.

    The timing is written into ``timing`` (pass your own object to read it afterwards);
    ``ms_per_shower["cpu"]`` is final once the iterator is exhausted.
    """
    energies = np.asarray(energies_gev, dtype=np.float64)
    record = timing if timing is not None else GenerationTiming()
    if "cuda" in model.devices and _cuda_available():
        probes = probe_batch_sizes(model, energies, seed, batch_sizes, device="cuda")
        best = min(probes, key=probes.__getitem__)
        record.probes["cuda"], record.best_batch_size["cuda"], record.ms_per_shower["cuda"] = (
            probes,
            best,
            probes[best],
        )
    probes = probe_batch_sizes(model, energies, seed, batch_sizes, device="cpu")
    best = min(probes, key=probes.__getitem__)
    record.probes["cpu"], record.best_batch_size["cpu"] = probes, best
    step = max(best, (chunk_size // best) * best)
    elapsed = 0.0
    bar = tqdm(
        total=energies.size,
        desc=f"generate {model.name}",
        unit="shower",
        disable=not progress,
        leave=False,
    )
    for lo in range(0, energies.size, step):
        chunk_e = energies[lo : lo + step]
        parts = []
        for b_lo in range(0, chunk_e.size, best):
            start = time.perf_counter()
            parts.append(
                model.generate(
                    chunk_e[b_lo : b_lo + best], seed, first_event=lo + b_lo, device="cpu"
                )
            )
            elapsed += time.perf_counter() - start
        bar.update(chunk_e.size)
        yield chunk_e, np.concatenate(parts)
    bar.close()
    record.ms_per_shower["cpu"] = 1e3 * elapsed / max(energies.size, 1)
