"""Benchmark: batched OnlineFlow ensemble vs a loop over independent nflows MAFs.

Measures member-steps per second (one optimiser step of one member on one batch) of the
ensemble's training step, against the straightforward alternative: ``n_members``
separate ``nflows`` MAFs of the same architecture, each with its own Adam, stepped one
after another on the same batch, in the same process and run. Each figure is the median
over several repetitions. The ensemble's step is the compiled CPU step
(:mod:`models.flows.cpu_step`, a pass of ``--steps`` batches per call) where it runs,
else the torch step of :class:`models.flows.batched_maf.BatchedMAF` (fused
forward/backward, fused Adam); both are timed, the torch one as ``torch_speedup``.

It also measures, side by side in the same process:

* ``ms_per_step``: milliseconds per batched step of ``OnlineFlowEnsemble.train_on_buffer``
  (shuffle, noise, bootstrap weights, the step), and ``ms_per_step_torch``, the same with
  the torch step (``ONLINEFLOW_STEP=torch``);
* ``ms_per_step_run``: the same for a short ``python -m emulator run`` at the paper's
  settings (``configs/bumphunt.toml``, two buffers, so the filling side is blocked on a
  full buffer while the first trains): the run summary's wall time over its steps;
* ``gflops``: the step's dense matrix-product FLOPs (forward
  ``2·N·M·B·(H·D + (L−1)·H² + 2D·H)``, backward about twice that: 0.211 GFLOP at the
  paper's settings; the compiled step skips the masked ~38 % of them) over
  ``ms_per_step``, and ``peak_fraction``, that over the machine's own sgemm rate (a
  2048³ product, same threads).

Prints a table and, as the last line, one JSON object with ``speedup``,
``member_steps_per_s``, ``baseline_member_steps_per_s``, ``ms_per_step``,
``ms_per_step_torch``, ``ms_per_step_run``, ``gflops``, ``sgemm_gflops`` and
``peak_fraction``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from models.bootstrap import PoissonBootstrap
from models.flows.batched_maf import BatchedMAF
from models.flows.cpu_step import step_kernel
from models.flows.ensemble import OnlineFlowEnsemble
from models.flows.nflows_bridge import build_nflows_maf

__all__ = ["main", "run_benchmark", "run_step_rate", "sgemm_gflops", "step_flops"]

ROOT = Path(__file__).resolve().parent.parent

EXAMPLE = (
    "example: python -m benchmarks.ensemble --members 20 --batch-size 250 --steps 30 --repeats 5"
)


def _time_steps(step: Callable[[], object], n_steps: int, device: torch.device) -> float:
    for _ in range(3):  # warm-up
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(n_steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


@contextlib.contextmanager
def _torch_step() -> object:
    """Within: OnlineFlowEnsemble trains with the torch step, not the compiled one."""
    before = os.environ.get("ONLINEFLOW_STEP")
    os.environ["ONLINEFLOW_STEP"] = "torch"
    try:
        yield
    finally:
        if before is None:
            del os.environ["ONLINEFLOW_STEP"]
        else:
            os.environ["ONLINEFLOW_STEP"] = before


def step_flops(n_members: int, batch_size: int, features: int, n_blocks: int, hidden: int, n_hidden_layers: int) -> float:
    """Matrix-product FLOPs of one batched training step (forward + backward ≈ 3 × forward).

    Example:
        >>> round(step_flops(20, 250, 4, 5, 32, 2) / 1e9, 3)
        0.211
    """
    per_event = hidden * features + (n_hidden_layers - 1) * hidden * hidden + 2 * features * hidden
    return 3 * 2 * batch_size * n_members * n_blocks * per_event


def sgemm_gflops(size: int = 2048, repeats: int = 5) -> float:
    """The machine's float32 matrix-product rate (median of ``repeats``), GFLOP/s."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def run_step_rate(events: int = 20_000, threads: int = 0) -> float:
    """ms per step of ``python -m emulator run --config configs/bumphunt.toml --events N``."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "emulator", "run", "--config", str(ROOT / "configs" / "bumphunt.toml"),
                   "--events", str(events), "--out", out, "--device", "cpu", "--fresh", "--quiet", "--json"]
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            msg = f"emulator run failed ({result.returncode}): {result.stderr[-2000:]}"
            raise RuntimeError(msg)
        summary = json.loads(result.stdout.strip().splitlines()[-1])
    return 1e3 * summary["wall_s"] / summary["steps"]


def run_benchmark(
    n_members: int = 20,
    batch_size: int = 250,
    n_steps: int = 30,
    repeats: int = 5,
    features: int = 4,
    n_blocks: int = 5,
    hidden_features: int = 32,
    n_hidden_layers: int = 2,
    device: str = "cpu",
    sample_events: int = 20_000,
) -> dict[str, float]:
    """Time both implementations and return their medians and the speedup.

    Returns:
        ``member_steps_per_s`` (batched), ``baseline_member_steps_per_s`` (nflows loop),
        ``speedup`` (their ratio), the medians in seconds per step, the member-steps per
        second of the full ``OnlineFlowEnsemble.train_on_buffer`` path and, if
        ``sample_events``, the sampling rate (events per second over all members).
    """
    dev = torch.device(device)
    torch.manual_seed(0)
    data = torch.randn(batch_size, features, device=dev)

    maf = BatchedMAF(n_members, features, n_blocks, hidden_features, n_hidden_layers).to(dev)
    optimizer = torch.optim.Adam(maf.parameters(), lr=1e-5, fused=True)
    bootstrap = PoissonBootstrap(n_members, seed=0, device=dev)

    def batched_step() -> None:
        weights = bootstrap.weights(batch_size)
        loss = (weights * maf.log_prob(data)).sum(dim=1).div_(-batch_size).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # BatchedMAF's backward pass also masks the weight gradients
        optimizer.step()

    flows = [
        build_nflows_maf(features, n_blocks, hidden_features, n_hidden_layers).to(dev)
        for _ in range(n_members)
    ]
    optimizers = [torch.optim.Adam(f.parameters(), lr=1e-5) for f in flows]

    def loop_step() -> None:
        weights = bootstrap.weights(batch_size)
        for m, (flow, opt) in enumerate(zip(flows, optimizers, strict=True)):
            loss = -(weights[m] * flow.log_prob(data)).sum() / batch_size
            opt.zero_grad()
            loss.backward()
            opt.step()

    # The compiled CPU step (models/flows/cpu_step.py): a pass of n_steps batches per call.
    kernel_maf = copy.deepcopy(maf)
    kernel = step_kernel(kernel_maf, torch.optim.Adam(kernel_maf.parameters(), lr=1e-5, fused=True))
    pass_x = torch.randn(n_members, batch_size * n_steps, features, device=dev)
    pass_w = bootstrap.weights(batch_size * n_steps)
    starts = [*range(0, batch_size * n_steps, batch_size), batch_size * n_steps]

    def kernel_pass() -> None:
        assert kernel is not None
        kernel.train_pass(pass_x, pass_w, starts)

    # The full training path (shuffling, noise dims, bootstrap, SWA bookkeeping), with the
    # step it uses by default (the kernel on a CPU) and with the torch step.
    def new_ensemble() -> OnlineFlowEnsemble:
        return OnlineFlowEnsemble(
            noise_dims=features - 1,
            n_members=n_members,
            n_blocks=n_blocks,
            hidden_features=hidden_features,
            n_hidden_layers=n_hidden_layers,
            device=dev,
        )

    ensemble, torch_ensemble = new_ensemble(), new_ensemble()
    buffer = {"mass": torch.exp(torch.randn(batch_size * n_steps, device=dev) * 0.3 + 7)}

    def ensemble_steps() -> None:
        ensemble.train_on_buffer(buffer, n_iter=1, batch_size=batch_size)

    def torch_ensemble_steps() -> None:
        with _torch_step():
            torch_ensemble.train_on_buffer(buffer, n_iter=1, batch_size=batch_size)

    batched, loop, full, full_torch, compiled, sampling = [], [], [], [], [], []
    for _ in range(repeats):  # interleave so all see the same machine load
        batched.append(_time_steps(batched_step, n_steps, dev) / n_steps)
        loop.append(_time_steps(loop_step, max(1, n_steps // 4), dev) / max(1, n_steps // 4))
        if kernel is not None:
            compiled.append(_time_steps(kernel_pass, 1, dev) / n_steps)
        full.append(_time_steps(ensemble_steps, 1, dev) / n_steps)
        full_torch.append(_time_steps(torch_ensemble_steps, 1, dev) / n_steps)
        if sample_events:
            sampling.append(_time_steps(lambda: ensemble.sample(sample_events, seed=0), 1, dev))
    batched_s, loop_s = statistics.median(batched), statistics.median(loop)
    step_s = statistics.median(compiled) if compiled else batched_s  # the step training uses
    result = {
        "member_steps_per_s": n_members / step_s,
        "baseline_member_steps_per_s": n_members / loop_s,
        "speedup": loop_s / step_s,
        "step_kernel": 1.0 if compiled else 0.0,
        "kernel_s_per_step": step_s if compiled else float("nan"),
        "batched_s_per_step": batched_s,
        "torch_speedup": loop_s / batched_s,
        "baseline_s_per_step": loop_s,
        "train_on_buffer_member_steps_per_s": n_members / statistics.median(full),
    }
    if sampling:
        result["samples_per_s"] = sample_events * n_members / statistics.median(sampling)
    result["ms_per_step"] = 1e3 * statistics.median(full)
    result["ms_per_step_torch"] = 1e3 * statistics.median(full_torch)
    flops = step_flops(n_members, batch_size, features, n_blocks, hidden_features, n_hidden_layers)
    result["gflops"] = flops / statistics.median(full) / 1e9
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print a table and a final JSON line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ensemble",
        description="Member-steps per second: batched MAF ensemble vs a loop over nflows MAFs.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--members", type=int, default=20, help="ensemble size (default 20)")
    parser.add_argument("--batch-size", type=int, default=250, help="events per step (default 250)")
    parser.add_argument(
        "--steps", type=int, default=30, help="timed batched steps per repeat (default 30)"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="repetitions; medians are reported (default 5)"
    )
    parser.add_argument(
        "--features", type=int, default=4, help="flow dimension: mass + 3 noise (default 4)"
    )
    parser.add_argument("--blocks", type=int, default=5, help="MADE blocks (default 5)")
    parser.add_argument("--hidden", type=int, default=32, help="hidden units (default 32)")
    parser.add_argument(
        "--hidden-layers", type=int, default=2, help="hidden layers per MADE (default 2)"
    )
    parser.add_argument(
        "--sample", type=int, default=20_000, help="events per member to time sampling (0: skip)"
    )
    parser.add_argument(
        "--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help=(
            "torch CPU threads for both sides (default 0: torch's choice, all cores; the "
            "single-thread speedup is then measured as well). On a loaded shared machine "
            "use 1: extra OpenMP threads spin when no core is free"
        ),
    )
    parser.add_argument(
        "--run-events", type=int, default=20_000,
        help="events of the timed 'emulator run' at the paper's settings (default 20000: two buffers; 0: skip)",
    )
    parser.add_argument("--run-repeats", type=int, default=3, help="repeats of that run (default 3)")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    settings = {
        "n_members": args.members,
        "batch_size": args.batch_size,
        "n_steps": args.steps,
        "repeats": args.repeats,
        "features": args.features,
        "n_blocks": args.blocks,
        "hidden_features": args.hidden,
        "n_hidden_layers": args.hidden_layers,
        "device": args.device,
    }
    result = run_benchmark(**settings, sample_events=args.sample)
    threads = torch.get_num_threads()
    if args.device == "cpu":
        result["sgemm_gflops"] = sgemm_gflops()
        result["peak_fraction"] = result["gflops"] / result["sgemm_gflops"]
    if args.run_events:
        runs = [run_step_rate(args.run_events, args.threads) for _ in range(args.run_repeats)]
        result["ms_per_step_run"] = statistics.median(runs)
    if args.threads == 0 and threads > 1 and args.device == "cpu":
        torch.set_num_threads(1)
        single = run_benchmark(**settings, sample_events=0)
        torch.set_num_threads(threads)
        result["speedup_single_thread"] = single["speedup"]
        result["member_steps_per_s_single_thread"] = single["member_steps_per_s"]
    load = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(
        f"device {args.device}, threads {threads}, {args.members} members, batch {args.batch_size}, "
        f"load average {load}"
    )
    print(f"{'implementation':<34}{'ms/step (median)':>18}{'member-steps/s':>18}")
    rows = [("loop of nflows MAFs", result["baseline_s_per_step"]), ("batched BatchedMAF, torch step", result["batched_s_per_step"])]
    if result["step_kernel"]:
        rows.append(("batched, compiled step (a pass)", result["kernel_s_per_step"]))
    rows += [("OnlineFlowEnsemble.train_on_buffer", result["ms_per_step"] / 1e3),
             ("  the same, torch step", result["ms_per_step_torch"] / 1e3)]
    for name, seconds in rows:
        print(f"{name:<34}{seconds * 1e3:>18.2f}{args.members / seconds:>18.0f}")
    if "samples_per_s" in result:
        print(f"sampling: {result['samples_per_s']:.3g} events/s over all members")
    print(f"train_on_buffer: {result['ms_per_step']:.2f} ms per batched step, {result['gflops']:.0f} GFLOP/s"
          + (f" = {100 * result['peak_fraction']:.0f} % of this machine's sgemm ({result['sgemm_gflops']:.0f} GFLOP/s)"
             if "peak_fraction" in result else ""))
    if "ms_per_step_run" in result:
        print(f"emulator run (paper settings, {args.run_events} events): {result['ms_per_step_run']:.2f} ms per step "
              "end to end (goal <= 1.5)")
    print(f"speedup {result['speedup']:.1f}x (goal >= 10x); compiled step over the torch step in train_on_buffer: "
          f"{result['ms_per_step_torch'] / result['ms_per_step']:.2f}x")
    if "speedup_single_thread" in result:
        print(f"speedup with one thread on both sides: {result['speedup_single_thread']:.1f}x")
    print(json.dumps({k: round(v, 6) for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
