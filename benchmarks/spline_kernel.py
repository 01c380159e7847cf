"""Fused CPU spline kernels against the torch reference, side by side in one process.

Times, with the kernels on and off in alternation (medians over ``--repeats``):

* the spline alone, forward and backward, at the shape of one shower-flow block
  (30 layers × 128 showers × 100 cells) and of one OnlineFlow block on the dijet
  stream (250 events × 10 features);
* a whole training step of the dijet OnlineFlow (``configs/dijet-spline-parquet.toml``'s
  flow, 5 spline blocks of 8 bins) and of the shower flows with spline blocks
  (``shower_transform = "rq_spline"``, 3 blocks of 4 bins, context moments).

Usage::

    python benchmarks/spline_kernel.py --repeats 5 --threads 1

The last line is JSON: ``ms_*`` per case for ``fused`` and ``reference``, and
``speedup_*`` (reference / fused).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.flows.spline_kernel import FUSED, spline  # noqa: E402

DIJET = {
    "columns": ["mjj", "mj1", "delta_mj", "tau21_j1", "tau21_j2"], "log_columns": ["mjj", "mj1"], "noise_dims": 5,
    "n_members": 1, "n_blocks": 5, "transform": "rq_spline", "n_bins": 8, "tail_bound": 4.0, "hidden_features": 128,
    "n_hidden_layers": 2, "learning_rate": 1e-4, "bootstrap": "none", "swa_start": 10, "seed": 0,
}
SHOWERS = {"context_moments": True, "shower_transform": "rq_spline", "shower_blocks": 3, "shower_bins": 4}


def _spline_case(shape: tuple[int, ...], k: int, inner: int = 1) -> Callable[[], float]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=generator) * 2.0
    params = torch.randn(*shape, 3 * k - 1, generator=generator).requires_grad_()

    def run() -> float:
        start = time.perf_counter()
        for _ in range(inner):
            params.grad = None
            y, logdet = spline(x, params, n_bins=k, tail_bound=5.0)
            (y.sum() + logdet.sum()).backward()
        return (time.perf_counter() - start) / inner

    return run


def _dijet_step() -> Callable[[], float]:
    from models.registry import build_model

    generator = torch.Generator().manual_seed(0)
    n = 5000
    data = {
        "mjj": 3000 + 600 * torch.rand(n, generator=generator), "mj1": 50 + 500 * torch.rand(n, generator=generator),
        "delta_mj": 300 * torch.rand(n, generator=generator), "tau21_j1": torch.rand(n, generator=generator),
        "tau21_j2": torch.rand(n, generator=generator),
    }
    model = build_model("onlineflow", DIJET)

    def run() -> float:
        start = time.perf_counter()
        report = model.train_on_buffer(data, 1, 250)
        return (time.perf_counter() - start) / report.steps

    return run


def _shower_step() -> Callable[[], float]:
    from models.shower_data import to_sparse
    from models.showerflow import LayerShowerFlow
    from stream.showers.simulator import sample_energies, simulate

    energies = sample_energies(0, 0, 512, 10.0, 100.0).astype(np.float32)
    data = to_sparse(torch.from_numpy(energies), torch.from_numpy(simulate("ecal", energies, 0)))
    model = LayerShowerFlow(**SHOWERS)

    def run() -> float:
        start = time.perf_counter()
        report = model.train_on_buffer(data, 1, 128)
        return (time.perf_counter() - start) / report.steps

    return run


def measure(cases: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Median ms of every case with the kernels on and off, alternating (one warm-up each)."""
    times: dict[str, dict[bool, list[float]]] = {name: {True: [], False: []} for name in cases}
    for run in cases.values():
        for fused in (True, False):
            FUSED["enabled"] = fused
            run()
    for repeat in range(repeats):
        for name, run in cases.items():
            for fused in ((True, False) if repeat % 2 == 0 else (False, True)):
                FUSED["enabled"] = fused
                times[name][fused].append(run() * 1000)
        print(f"repeat {repeat + 1}/{repeats}", file=sys.stderr, flush=True)
    FUSED["enabled"] = True
    out: dict[str, float] = {}
    for name, by_flag in times.items():
        fused, reference = statistics.median(by_flag[True]), statistics.median(by_flag[False])
        out[f"ms_{name}_fused"] = round(fused, 3)
        out[f"ms_{name}_reference"] = round(reference, 3)
        out[f"speedup_{name}"] = round(reference / fused, 2)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="example: python benchmarks/spline_kernel.py --repeats 5 --threads 1",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per case and setting (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch (and kernel) threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="the spline alone, no training steps")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    cases: dict[str, Callable[[], float]] = {
        "spline_shower_block": _spline_case((30, 128, 100), 4),
        "spline_dijet_block": _spline_case((1, 250, 10), 8, inner=50),
    }
    if not args.quick:
        cases["step_dijet_onlineflow"] = _dijet_step()
        cases["step_shower_flows"] = _shower_step()
    result = measure(cases, args.repeats)
    result["threads"] = args.threads
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
