"""Benchmark of BIB-AE shower generation: ms per shower at the best batch size.

Run: ``python benchmarks/bibae.py [--presets full small] [--repeat 5] [--threads N]``.
For each preset the decoder plus Post Processor (the full generation path of
:meth:`models.bibae.BIBAE.sample`, N(0, 1) latents) runs at several batch sizes; each
size is timed ``--repeat`` times after a warm-up and the median taken; the best batch
size's median is the preset's figure. Runs on the CPU and, when present, on CUDA.
Weights are those of a freshly built model: the cost of dense convolutions does not
depend on their values.

Prints a table, then as the last line one JSON object:
``{"ms_per_shower_cpu": {preset: ms}, "ms_per_shower_gpu": {preset: ms} | null, ...}``.
Goals (issue 8): ``full`` ≤ 40 ms on CPU (paper: 418 ms on one Xeon core), ≤ 0.5 ms on a
GPU (paper: 1.42 ms on a V100).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if not __package__:  # run as a script: benchmarks/stream.py must not shadow the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.modules.pop("stream", None)

import torch  # noqa: E402

from models.bibae import BIBAE  # noqa: E402

__all__ = ["bench_preset", "main"]

CPU_BATCHES = (1, 8, 32, 128)
GPU_BATCHES = (64, 512, 2048, 8192)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_preset(
    preset: str, device: torch.device, batches: Sequence[int], repeat: int, post_process: bool = True
) -> dict[int, float]:
    """Median ms per shower of ``sample`` at each batch size.

    Args:
        preset: BIB-AE preset.
        device: where to generate.
        batches: batch sizes (showers per decoder pass).
        repeat: timed repeats per batch size (after one warm-up).
        post_process: include the Post Processor.

    Returns:
        batch size → median ms per shower.
    """
    model = BIBAE(preset).to(device)
    results = {}
    for batch in batches:
        condition = {"incident_energy": torch.linspace(10.0, 100.0, batch, device=device)}
        try:
            model.sample(batch, seed=0, condition=condition, post_process=post_process, batch_size=batch)
            _sync(device)
            times = []
            for k in range(repeat):
                start = time.perf_counter()
                model.sample(batch, seed=k, condition=condition, post_process=post_process, batch_size=batch)
                _sync(device)
                times.append(time.perf_counter() - start)
        except torch.OutOfMemoryError:
            break
        results[batch] = 1e3 * statistics.median(times) / batch
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="example: python benchmarks/bibae.py --repeat 5")
    parser.add_argument("--presets", nargs="+", default=["full", "small"], help="presets to time (default: full small)")
    parser.add_argument("--repeat", type=int, default=5, help="timed repeats per batch size (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    summary: dict[str, object] = {"threads": torch.get_num_threads(), "repeat": args.repeat}
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
        summary["gpu"] = torch.cuda.get_device_name()
    print(f"{'device':<6} {'preset':<7} {'PP':<4} " + " ".join(f"{'b=' + str(b):>10}" for b in (*CPU_BATCHES, *GPU_BATCHES)))
    for device in devices:
        batches = CPU_BATCHES if device.type == "cpu" else GPU_BATCHES
        best: dict[str, float] = {}
        best_batch: dict[str, int] = {}
        no_pp: dict[str, float] = {}
        for preset in args.presets:
            for post_process in (True, False):
                times = bench_preset(preset, device, batches, args.repeat, post_process)
                cells = " ".join(f"{times[b]:>10.3f}" if b in times else f"{'':>10}" for b in batches)
                print(f"{device.type:<6} {preset:<7} {'yes' if post_process else 'no':<4} {cells}  ms/shower", flush=True)
                if post_process:
                    best_batch[preset] = min(times, key=times.__getitem__)
                    best[preset] = round(times[best_batch[preset]], 4)
                else:
                    no_pp[preset] = round(min(times.values()), 4)
        kind = "cpu" if device.type == "cpu" else "gpu"
        summary[f"ms_per_shower_{kind}"] = best
        summary[f"best_batch_{kind}"] = best_batch
        summary[f"ms_per_shower_{kind}_without_post_processor"] = no_pp
    summary.setdefault("ms_per_shower_gpu", None)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
