"""benchmarks/showerflow.py prints teacher, student and kernel timings with consistent ratios."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.showerflow import main
from models.showerflow import layer_kernel


def test_small_run_prints_the_interface_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--batches", "16", "--repeat", "1", "--threads", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    teacher, student = result["ms_per_shower_teacher"], result["ms_per_shower_student"]
    assert teacher > 0
    assert student > 0
    assert result["student_speedup"] == pytest.approx(teacher / student, rel=0.01)
    fused, unfused = result["ms_per_shower_student_fused"], result["ms_per_shower_student_unfused"]
    assert fused > 0
    assert result["layer_kernel_speedup"] == pytest.approx(unfused / fused, rel=0.01)
    assert result["best_batch"] == {"teacher": 16, "student": 16}
    assert layer_kernel.FUSED["enabled"] is True
    assert torch.is_grad_enabled()  # the benchmark leaves the caller's gradient mode as it was


def test_bad_options_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--option", "shower_transform", "--batches", "4"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["--option", "shower_hiden=8", "--batches", "4"]) == 2
    assert "unknown settings" in capsys.readouterr().err
    assert main(["--snapshot", "nowhere", "--option", "shower_bins=4"]) == 2
    assert "fresh weights" in capsys.readouterr().err
    assert torch.is_grad_enabled()  # the benchmark leaves the caller's gradient mode as it was
