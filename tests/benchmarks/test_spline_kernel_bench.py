"""benchmarks/spline_kernel.py prints both timings and their ratio, and leaves the kernels on."""

from __future__ import annotations

import json

import pytest

from benchmarks.spline_kernel import main
from models.flows.spline_kernel import FUSED


def test_quick_run_prints_timings_and_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--repeats", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for case in ("spline_shower_block", "spline_dijet_block"):
        assert result[f"ms_{case}_fused"] > 0
        assert result[f"ms_{case}_reference"] > 0
        ratio = result[f"ms_{case}_reference"] / result[f"ms_{case}_fused"]
        assert result[f"speedup_{case}"] == pytest.approx(ratio, rel=0.02)
    assert FUSED["enabled"] is True


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(SystemExit):
        main(["--repeats", "0"])
