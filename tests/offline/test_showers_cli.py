"""``python -m offline.showers``: report directory, file references, errors, model registry."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from offline.showers import main
from offline.showers.errors import UnknownModelError
from offline.showers.registry import available_models, get_model, register_model
from offline.showers.toy import toy_showers

pytest.importorskip("stream.showers.simulator")


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def test_help_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "python -m offline.showers --model reference" in out
    assert "--reference" in out
    assert "--geometry" in out


def test_module_entry_point_runs() -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "offline.showers", "--help"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "examples:" in proc.stdout


def test_reference_model_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    argv = ["--model", "reference", "--n", "300", "--out", str(out), "--geometry", "ecal", "--seed", "3",
            "--classifier-runs", "2", "--cell-classifier", "--cell-classifier-max", "150", "--quiet",
            "--json"]  # fmt: skip
    assert main(argv) == 0
    headline = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert headline["report"].endswith("index.html")
    assert headline["floors"]["classifier_auc"]["mean"] == 0.5

    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["classifier_auc"]) >= {"mean", "error", "std"}
    auc = metrics["classifier_auc"]
    assert abs(auc["mean"] - 0.5) < 4 * auc["error"]
    # 60 test showers per class: the exact null spread sqrt((m + n + 1) / (12 m n)).
    assert metrics["floors"]["classifier_auc"]["error"] == pytest.approx(0.0527, abs=1e-3)
    floors = metrics["floors"]
    assert set(floors["jsd"]) == set(metrics["jsd"])
    assert 0.5 * floors["s_jsd"] < metrics["s_jsd"] < 2 * floors["s_jsd"]
    assert abs(metrics["classifier_jsd"]["mean"]) < 3 * metrics["classifier_jsd"]["error"]
    assert _finite(metrics["s_jsd"])
    assert metrics["s_jsd"] < 0.3
    assert {
        "visible_energy",
        "n_hits",
        "shower_start",
        "longitudinal_profile",
        "hit_energy",
    } <= set(metrics["jsd"])
    assert _finite(metrics["classifier_jsd"]["mean"])
    assert _finite(metrics["cell_classifier_auc"]["mean"])
    assert _finite(metrics["fpd"]["value"])
    assert _finite(metrics["kpd"]["value"])
    assert metrics["ms_per_shower"]["cpu"] > 0
    assert "gpu" in metrics["ms_per_shower"]
    assert metrics["run"]["geometry"] == "ecal"
    assert metrics["n_reference"] == 300

    page = (out / "index.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) >= 18
    for name in images:
        assert not name.startswith("/")
        assert (out / name).is_file()
    for required in (
        "linearity.png",
        "resolution.png",
        "correlations.png",
        "overlay3d.png",
        "shower3d_0.png",
    ):
        assert required in images
    assert "Classifier AUC" in page
    assert "metrics.json" in page
    assert "Floor (ref vs ref)" in page


def test_terminal_output_is_a_short_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--n", "200", "--out", str(tmp_path / "r"), "--classifier-runs", "1", "--no-plots",
            "--no-physics-distances", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[0] == "metric"
    assert "floor" in lines[0]
    assert any(line.startswith("S_JSD") for line in lines)
    assert len(lines) < 15
    assert max(len(line) for line in lines) < 120
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["n_reference"] == 200
    assert metrics["classifier"]["config"]["name"] == "fast"


def test_reference_from_a_calochallenge_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    io = pytest.importorskip("stream.showers.io")
    simulator = pytest.importorskip("stream.showers.simulator")
    energies = np.repeat([20.0, 60.0], 100)
    path = io.write_showers(
        tmp_path / "ref.h5",
        energies,
        simulator.simulate("ahcal", energies, seed=9),
        "ahcal",
        format="calochallenge",
    )
    out = tmp_path / "report"
    argv = ["--reference", str(path), "--format", "calochallenge", "--geometry", "ahcal", "--n", "150",
            "--out", str(out), "--classifier-runs", "1", "--no-plots", "--no-physics-distances", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_reference"] == 150
    assert metrics["run"]["geometry"] == "ahcal"
    assert metrics["energy_points"]["reference"]["energy_gev"] == [20.0, 60.0]
    assert "fpd" not in metrics
    assert (out / "index.html").is_file()


def test_bad_input_returns_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["--reference", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "r"), "--quiet"])
        == 2
    )
    assert "missing.h5" in capsys.readouterr().err
    assert main(["--n", "5", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    with pytest.raises(SystemExit):
        main(["--model", "no-such-model"])


class _ToyModel:
    name = "toy"
    devices = ("cpu",)

    def __init__(self, geometry: object, scale: float = 1.0) -> None:
        self.scale = scale

    def generate(
        self, energies_gev: np.ndarray, seed: int, *, first_event: int = 0, device: str = "cpu"
    ) -> np.ndarray:
        return toy_showers(energies_gev, seed + first_event, energy_scale=self.scale)


def test_model_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    from offline.showers import registry

    monkeypatch.setattr(registry.GENERATORS, "_factories", {})
    assert "reference" in available_models()
    register_model("toy-test", _ToyModel)
    model = get_model("toy-test", "ecal", scale=2.0)
    assert model.scale == 2.0
    assert model.generate(np.array([10.0]), 0).shape == (1, 12, 10, 10)
    with pytest.raises(UnknownModelError, match="unknown model 'bibae-not-yet'.*known: .*reference"):
        get_model("bibae-not-yet", "ecal")
    with pytest.raises(ValueError, match="model names"):
        register_model("bad name", _ToyModel)
    reference = get_model("reference", "ecal")
    assert reference.generate(np.array([20.0]), 1).shape == (1, 30, 30, 30)
    assert not np.array_equal(
        reference.generate(np.array([20.0]), 1), reference.generate(np.array([20.0]), 2)
    )


def test_generate_timed_picks_the_best_batch_and_yields_everything() -> None:
    from offline.showers.timing import GenerationTiming, generate_timed

    energies = np.linspace(10.0, 90.0, 300)
    timing = GenerationTiming()
    chunks = list(
        generate_timed(
            _ToyModel("ecal"), energies, 1, batch_sizes=(16, 64), chunk_size=100, timing=timing
        )
    )
    np.testing.assert_array_equal(np.concatenate([c[0] for c in chunks]), energies)
    assert sum(c[1].shape[0] for c in chunks) == 300
    record = timing.to_dict()
    assert record["cpu"] > 0
    assert record["gpu"] is None
    assert record["best_batch_size"]["cpu"] in (16, 64)
    assert set(record["probes"]["cpu"]) == {"16", "64"}
