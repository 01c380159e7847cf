"""Shower flows in the validation report: ``--model layerflow [--student]``, ``--window`` and the comparison.

The end-to-end reports (a trained snapshot through ``python -m offline.showers``, four
validations) take a minute on a CPU and are marked slow; the comparison logic and the
user errors are checked fast on hand-written reports and an untrained snapshot.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from emulator.snapshot import write_snapshot
from models.registry import build_model
from models.shower_data import to_sparse
from offline.showers.cli import main
from offline.showers.compare import compare_reports
from offline.showers.compare import main as compare_main
from stream.showers.simulator import sample_energies, simulate
from tests.models.test_showerflow import TINY

FAST = ["--n", "60", "--no-physics-distances", "--quiet", "--classifier-runs", "1", "--json"]


def _data(seed: int) -> dict[str, torch.Tensor]:
    energies = sample_energies(seed, 0, 16, 10.0, 100.0).astype(np.float32)
    return to_sparse(torch.from_numpy(energies), torch.from_numpy(simulate("ecal", energies, seed)))


def _write_report(directory: Path, model: str, grid: str = "30×10×10", auc: float = 0.7) -> Path:
    directory.mkdir(parents=True)
    metrics = {
        "run": {"model": model, "grid": grid, "geometry": "ecal-central10x10", "threshold_mev": 0.1, "n_showers": 100,
                "seed": 0, "reference": "simulated held-out sample (seed 0)", "classifier": "fast"},
        "classifier": {"config": {"name": "fast", "hidden": [128, 128]}},
        "classifier_auc": {"mean": auc, "error": 0.01, "std": 0.005},
        "classifier_jsd": {"mean": 0.2, "error": 0.01},
        "floors": {"classifier_auc": {"mean": 0.5, "error": 0.02}, "s_jsd": 0.05, "jsd": {"n_hits": 0.01, "cog_z": 0.02}},
        "s_jsd": 0.1, "jsd": {"n_hits": 0.05, "cog_z": 0.03}, "ms_per_shower": {"cpu": 1.5, "gpu": None},
        "fpd": {"value": 0.01, "error": 0.001}, "kpd": {"value": 0.001, "error": 0.0005},
    }
    (directory / "metrics.json").write_text(json.dumps(metrics))
    return directory


def test_comparison_of_reports_tables_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dirs = [str(_write_report(tmp_path / name, name, auc=auc))
            for name, auc in (("reference", 0.5), ("bibae", 0.99), ("layerflow", 0.8))]
    out = tmp_path / "compare"
    assert compare_main([*dirs, "--labels", "reference", "BIB-AE small", "teacher", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| BIB-AE small | 0.990 ± 0.010 | 0.500 ± 0.020 |" in printed
    comparison = json.loads((out / "compare.json").read_text())
    assert [r["label"] for r in comparison["rows"]] == ["reference", "BIB-AE small", "teacher"]
    assert comparison["common"]["run.grid"] == "30×10×10"
    assert comparison["jsd"]["n_hits"] == {"reference": 0.05, "BIB-AE small": 0.05, "teacher": 0.05, "floor": 0.01}
    for name in ("compare.md", "index.html", "auc.png", "jsd.png", "timing.png"):
        assert (out / name).is_file(), name
    # default labels are the model names; equal labels are told apart by directory
    assert [r["label"] for r in compare_reports(dirs)["rows"]] == ["reference", "bibae", "layerflow"]


def test_comparison_refuses_reports_of_different_regions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    window = str(_write_report(tmp_path / "window", "layerflow"))
    full = str(_write_report(tmp_path / "full", "reference", grid="30×30×30"))
    with pytest.raises(ValueError, match=r'run.grid differs \(layerflow: "30×10×10", reference: "30×30×30"\)'):
        compare_reports([window, full])
    assert compare_main([window, full, "--out", str(tmp_path / "c")]) == 2
    assert "--allow-mismatch" in capsys.readouterr().err
    allowed = compare_reports([window, full], allow_mismatch=True)
    assert any("run.grid" in m for m in allowed["mismatches"])
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        compare_reports([tmp_path])
    with pytest.raises(ValueError, match="2 labels for 1 reports"):
        compare_reports([window], ["a", "b"])


def test_student_and_window_errors_are_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    untrained = tmp_path / "untrained"
    write_snapshot(untrained, build_model("layerflow", TINY), {"events_seen": 0})
    base = ["--n", "40", "--quiet", "--no-plots"]
    assert main(["--model", "layerflow", "--snapshot", str(untrained), "--student", *base, "--out", str(tmp_path / "a")]) == 2
    assert "not trained yet" in capsys.readouterr().err
    assert main(["--model", "reference", "--student", *base, "--out", str(tmp_path / "b")]) == 2
    assert "--student and --rescale apply to" in capsys.readouterr().err
    assert main(["--model", "bibae", "--snapshot", str(untrained), "--rescale", "none", *base,
                 "--out", str(tmp_path / "b")]) == 2
    assert "--rescale applies to layerflow" in capsys.readouterr().err
    assert main(["--model", "bibae", "--snapshot", str(untrained), "--student", *base, "--out", str(tmp_path / "b")]) == 2
    assert "--student applies to layerflow" in capsys.readouterr().err
    assert main(["--model", "layerflow", "--snapshot", str(untrained), "--sampling", "kde", *base,
                 "--out", str(tmp_path / "b")]) == 2
    assert "apply to bibae" in capsys.readouterr().err
    assert main(["--model", "reference", "--window", "40x10", *base, "--out", str(tmp_path / "c")]) == 2
    assert "does not fit" in capsys.readouterr().err
    assert main(["--model", "reference", "--window", "ten", *base, "--out", str(tmp_path / "d")]) == 2
    assert "--window must look like" in capsys.readouterr().err


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Reports of a tiny model trained through both stages (teacher, student) and of the reference."""
    model = build_model("layerflow", TINY)
    for seed in (1, 2):
        model.train_on_buffer(_data(seed), 1, 8)
        model.end_buffer()
    root = tmp_path_factory.mktemp("reports")
    snapshot = root / "snapshot"
    write_snapshot(snapshot, model, {"events_seen": 32})
    runs = {
        "teacher": ["--model", "layerflow", "--snapshot", str(snapshot)],
        "student": ["--model", "layerflow", "--snapshot", str(snapshot), "--student", "--no-plots"],
        "reference": ["--model", "reference", "--window", "10x10", "--no-plots"],
    }
    for name, args in runs.items():
        assert main([*args, *FAST, "--out", str(root / name)]) == 0, name
    return {name: root / name for name in runs}


@pytest.mark.slow
def test_teacher_and_student_write_the_same_metrics_on_the_central_window(reports: dict[str, Path]) -> None:
    teacher = json.loads((reports["teacher"] / "metrics.json").read_text())
    student = json.loads((reports["student"] / "metrics.json").read_text())
    reference = json.loads((reports["reference"] / "metrics.json").read_text())
    for metrics in (teacher, student, reference):
        assert metrics["run"]["grid"] == "30×10×10"
        assert metrics["run"]["geometry"] == "ecal-central10x10"
        assert 0.0 <= metrics["classifier_auc"]["mean"] <= 1.0
        assert metrics["floors"]["classifier_auc"]["mean"] == 0.5
    assert teacher["run"]["model"] == "layerflow"
    assert student["run"]["model"] == "layerflow-student=True"
    assert set(teacher) == set(student)
    assert teacher["ms_per_shower"]["cpu"] > 0
    assert teacher["s_jsd"] != student["s_jsd"]  # the student's showers differ from the teacher's
    comparison = compare_reports([reports[n] for n in ("reference", "teacher", "student")])
    assert [r["model"] for r in comparison["rows"]] == ["reference", "layerflow", "layerflow-student=True"]
    assert comparison["mismatches"] == []
