"""Benchmark of shower-flow sampling: the MAF teacher against its IAF student, ms per shower.

Run: ``python benchmarks/showerflow.py [--snapshot DIR] [--repeat 5] [--threads 1]
[--reports TEACHER_REPORT STUDENT_REPORT] [--textbook]``.

Both samplers run the whole generation path of
:meth:`models.showerflow.model.LayerShowerFlow.sample` (layer energies, then 30 layers
one after the other, each conditioned on the five before it, decoded and rescaled), in
one process, at several batch sizes; at each size the teacher and the student are timed
alternately ``--repeat`` times after a warm-up and the medians taken; each sampler's
figure is the median at its best batch size. Both run batched and without gradients;
the teacher inverts its MADE blocks incrementally (every hidden unit computed once, at
the feature where it becomes final: the multiply-adds of one forward pass per block,
spread over 100 sequential steps), which is the fastest exact MAF sampler we have, so
the speed-up is against a fair teacher. ``--textbook`` also times the teacher with one
full MADE pass per feature (how a MAF is usually sampled), at one batch size, for
reference.

Weights come from ``--snapshot`` (a trained ``layerflow`` snapshot) or, without one, from
a freshly built model of the default settings (the cost does not depend on the values).
``--reports`` adds the classifier AUCs of a teacher and a student report of
``python -m offline.showers`` (their ``metrics.json``). Runs on the CPU and, when
present, on CUDA.

Prints a table, then as the last line one JSON object with ``student_speedup``,
``ms_per_shower_teacher``, ``ms_per_shower_student`` (CPU), the per-batch medians, the
GPU figures (or null), the flow passes alone (``network_ms_per_shower_teacher``,
``network_ms_per_shower_student``, ``network_speedup``: what the end-to-end speed-up would be
if the base draws, preprocessing and context building that both samplers share cost
nothing) and, with ``--reports``, ``auc_teacher``, ``auc_student``,
``auc_difference``; ``ms_per_shower_student_fused``, ``ms_per_shower_student_unfused`` and
``layer_kernel_speedup`` (the student at its best batch with the fused per-layer kernel and
with the torch path, alternately timed). Goal (issue 10): student >= 20x faster than the teacher on the CPU,
and <= 0.02 worse in AUC.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: benchmarks/stream.py must not shadow the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.modules.pop("stream", None)

import torch  # noqa: E402

__all__ = ["bench_device", "main"]

CPU_BATCHES = (64, 256, 1024, 4096)
GPU_BATCHES = (256, 1024, 4096, 16384)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(model: Any, n: int, device: torch.device, seed: int, **options: Any) -> float:
    condition = {"incident_energy": torch.linspace(10.0, 100.0, n, device=device)}
    _sync(device)
    start = time.perf_counter()
    model.sample(n, seed=seed, condition=condition, batch_size=n, **options)
    _sync(device)
    return time.perf_counter() - start


def _time_networks(model: Any, n: int, device: torch.device, seed: int, student: bool) -> float:
    """Seconds for the flow passes of one generation alone: the steps of ``_generate`` that are
    the teacher's inverses or the student's forward passes, on random inputs and contexts of the
    right shapes, without the base draws, preprocessing, rescaling and context building that
    both samplers share."""
    c = model.config
    layers, cells = c.model_shape[0], c.cells
    generator = torch.Generator(device=device).manual_seed(seed)
    e = torch.randn(1, n, 1, generator=generator, device=device)
    base_layer = torch.randn(1, n, layers, generator=generator, device=device)
    base_cells = torch.randn(layers, n, cells, generator=generator, device=device)
    context = torch.randn(1, n, c.context_features, generator=generator, device=device)
    _sync(device)
    start = time.perf_counter()
    if student:
        model.layer_student.transform(base_layer, e)
    else:
        model.layer_flow.inverse(base_layer, e, method="incremental")
    for layer in range(layers):
        z = base_cells[layer : layer + 1]
        if student:
            model.shower_student.transform(z, context, member=layer)
        else:
            model.shower_flows.inverse(z, context, member=layer, method="incremental")
    _sync(device)
    return time.perf_counter() - start


def bench_networks(model: Any, device: torch.device, batch: int, repeat: int) -> dict[str, float]:
    """Median ms per shower of the flow passes alone (see :func:`_time_networks`), alternately timed."""
    for student in (False, True):
        _time_networks(model, batch, device, 0, student)
    times: dict[str, list[float]] = {"teacher": [], "student": []}
    for k in range(repeat):
        for name, student in (("teacher", False), ("student", True)):
            times[name].append(_time_networks(model, batch, device, k + 1, student))
    return {name: 1e3 * statistics.median(values) / batch for name, values in times.items()}


def bench_layer_kernel(model: Any, device: torch.device, batch: int, repeat: int) -> tuple[float, float]:
    """Median ms per shower of the student with the fused per-layer kernel and with the torch path
    (:mod:`models.showerflow.layer_kernel`), timed alternately in this process."""
    from models.showerflow import layer_kernel

    times: dict[bool, list[float]] = {True: [], False: []}
    try:
        for k in range(repeat + 1):
            for fused in (True, False):
                layer_kernel.FUSED["enabled"] = fused
                seconds = _time(model, batch, device, k, student=True)
                if k:  # the first round warms up
                    times[fused].append(seconds)
    finally:
        layer_kernel.FUSED["enabled"] = True
    return 1e3 * statistics.median(times[True]) / batch, 1e3 * statistics.median(times[False]) / batch


def bench_device(model: Any, device: torch.device, batches: Sequence[int], repeat: int) -> dict[str, dict[int, float]]:
    """Median ms per shower of the teacher and the student at each batch size (timed alternately).

    Returns:
        ``{"teacher": {batch: ms}, "student": {batch: ms}}``.
    """
    results: dict[str, dict[int, float]] = {"teacher": {}, "student": {}}
    for batch in batches:
        try:
            for student in (False, True):  # warm-up
                _time(model, batch, device, 0, student=student)
            times: dict[str, list[float]] = {"teacher": [], "student": []}
            for k in range(repeat):
                for name, student in (("teacher", False), ("student", True)):
                    times[name].append(_time(model, batch, device, k + 1, student=student))
        except torch.OutOfMemoryError:
            break
        for name, values in times.items():
            results[name][batch] = 1e3 * statistics.median(values) / batch
    return results


def _settings(options: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as layerflow settings (values read as JSON where they parse, else text)."""
    settings: dict[str, Any] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            msg = f"--option needs KEY=VALUE, got {option!r}"
            raise ValueError(msg)
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    return settings


def _model(snapshot: Path | None, device: torch.device, settings: dict[str, Any] | None = None) -> Any:
    if snapshot is not None:
        from emulator.snapshot import load_snapshot

        model = load_snapshot(snapshot, device=str(device)).model
        if model.kind != "layerflow":
            msg = f"snapshot {str(snapshot)!r} holds a {model.kind!r} model, not 'layerflow'"
            raise ValueError(msg)
        return model
    from models.showerflow import LayerShowerFlow

    model = LayerShowerFlow(device=device, **(settings or {}))
    model.buffers_seen = model.config.main_buffers + 1  # untrained weights, but let the student sample
    return model


def _auc(report: Path) -> float:
    metrics = json.loads((Path(report) / "metrics.json").read_text())
    return float(metrics["classifier_auc"]["mean"])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table and the JSON line (gradients off meanwhile)."""
    with torch.no_grad():
        return _main(argv)


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="example: python benchmarks/showerflow.py --snapshot ~/runs/layerflow --threads 1 --repeat 5",
    )
    parser.add_argument("--snapshot", type=Path, default=None, help="trained layerflow snapshot (default: fresh weights)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a layerflow setting for fresh weights (without --snapshot), e.g. shower_transform=rq_spline")
    parser.add_argument("--repeat", type=int, default=5, help="timed repeats per batch size (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--batches", type=int, nargs="+", default=None, help=f"CPU batch sizes (default: {CPU_BATCHES})")
    parser.add_argument("--reports", type=Path, nargs=2, default=None, metavar=("TEACHER", "STUDENT"),
                        help="offline.showers report directories of the teacher and the student (adds their AUCs)")
    parser.add_argument("--textbook", action="store_true",
                        help="also time the teacher with one full MADE pass per feature (one batch size, 1 repeat)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    summary: dict[str, Any] = {"threads": torch.get_num_threads(), "repeat": args.repeat,
                               "snapshot": str(args.snapshot) if args.snapshot else None}
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    summary["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    summary["ms_per_shower_teacher_gpu"] = summary["ms_per_shower_student_gpu"] = summary["student_speedup_gpu"] = None
    for device in devices:
        try:
            if args.snapshot is not None and args.option:
                msg = "--option sets the settings of fresh weights; a --snapshot brings its own"
                raise ValueError(msg)
            model = _model(args.snapshot, device, _settings(args.option))
        except (ValueError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        batches = (args.batches or CPU_BATCHES) if device.type == "cpu" else GPU_BATCHES
        results = bench_device(model, device, batches, args.repeat)
        print(f"{device.type:<5} {'sampler':<8} " + " ".join(f"{'b=' + str(b):>10}" for b in batches) + "  ms/shower")
        for name, times in results.items():
            print(f"{device.type:<5} {name:<8} " + " ".join(f"{times[b]:>10.3f}" if b in times else f"{'':>10}"
                                                        for b in batches), flush=True)
        teacher_batch = min(results["teacher"], key=results["teacher"].__getitem__)
        student_batch = min(results["student"], key=results["student"].__getitem__)
        teacher, student = results["teacher"][teacher_batch], results["student"][student_batch]
        suffix = "" if device.type == "cpu" else "_gpu"
        summary[f"ms_per_shower_teacher{suffix}"] = round(teacher, 4)
        summary[f"ms_per_shower_student{suffix}"] = round(student, 4)
        summary[f"student_speedup{suffix}"] = round(teacher / student, 2)
        summary[f"best_batch{suffix}"] = {"teacher": teacher_batch, "student": student_batch}
        summary[f"ms_per_shower_by_batch{suffix}"] = {
            name: {str(b): round(v, 4) for b, v in times.items()} for name, times in results.items()}
        networks = bench_networks(model, device, teacher_batch, args.repeat)
        summary[f"network_ms_per_shower_teacher{suffix}"] = round(networks["teacher"], 4)
        summary[f"network_ms_per_shower_student{suffix}"] = round(networks["student"], 4)
        summary[f"network_speedup{suffix}"] = round(networks["teacher"] / networks["student"], 2)
        print(f"{device.type:<5} flow passes alone (b={teacher_batch}): teacher {networks['teacher']:.3f}, "
              f"student {networks['student']:.3f} ms/shower, {networks['teacher'] / networks['student']:.1f}x; "
              f"the rest, shared by both: {teacher - networks['teacher']:.3f} (teacher) / "
              f"{results['student'][teacher_batch] - networks['student']:.3f} (student) ms/shower", flush=True)
        if device.type == "cpu":
            fused, unfused = bench_layer_kernel(model, device, student_batch, args.repeat)
            summary["ms_per_shower_student_fused"] = round(fused, 4)
            summary["ms_per_shower_student_unfused"] = round(unfused, 4)
            summary["layer_kernel_speedup"] = round(unfused / fused, 2)
            print(f"cpu   student with the torch per-layer path instead of the fused kernel (b={student_batch}): "
                  f"{unfused:.3f} against {fused:.3f} ms/shower ({unfused / fused:.2f}x)", flush=True)
        if args.textbook and device.type == "cpu":
            batch = min(256, teacher_batch)
            _time(model, 8, device, 0, teacher_inverse="passes")
            textbook = 1e3 * _time(model, batch, device, 1, teacher_inverse="passes") / batch
            summary["ms_per_shower_teacher_textbook"] = round(textbook, 3)
            summary["student_speedup_vs_textbook"] = round(textbook / student, 1)
            print(f"cpu   teacher, one MADE pass per feature (b={batch}): {textbook:.2f} ms/shower", flush=True)
    if args.reports is not None:
        auc_teacher, auc_student = _auc(args.reports[0]), _auc(args.reports[1])
        summary.update({"auc_teacher": auc_teacher, "auc_student": auc_student,
                        "auc_difference": round(auc_student - auc_teacher, 4)})
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
