"""``offline.showers --model bibae --snapshot DIR``: a trained snapshot through the same report."""

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
from stream.showers.simulator import sample_energies, simulate

TINY = {
    "preset": "small", "latent_dims": 4, "noise_dims": 4, "encoder_channels": [2, 4], "encoder_hidden": 16,
    "decoder_hidden": 16, "decoder_coarse_channels": 2, "decoder_channels": [4, 2], "critic_channels": 2,
    "critic_hidden": 8, "latent_critic_hidden": 4, "post_processor_channels": 4, "post_processor_layers": 1,
    "mmd_top": 100, "main_buffers": 1, "pp_identity_buffers": 1, "pp_buffers": 1, "critic_steps": 1, "seed": 3,
}


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = build_model("bibae", TINY)
    energies = sample_energies(1, 0, 16, 10.0, 100.0).astype(np.float32)
    data = to_sparse(torch.from_numpy(energies), torch.from_numpy(simulate("ecal", energies, 1)))
    model.train_on_buffer(data, 1, 8)
    model.end_buffer()
    model.after_buffer(data)
    out = tmp_path_factory.mktemp("bibae") / "snapshot"
    write_snapshot(out, model, {"events_seen": 16})
    return out


def test_bibae_snapshot_gives_the_same_metrics_as_the_reference_model(snapshot: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    code = main(["--model", "bibae", "--snapshot", str(snapshot), "--n", "60", "--out", str(out), "--no-plots",
                 "--no-physics-distances", "--quiet", "--classifier-runs", "1", "--json"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["s_jsd"] <= 1.0
    assert 0.5 <= metrics["classifier_auc"]["mean"] <= 1.0  # an untrained model is told apart
    assert metrics["ms_per_shower"]["cpu"] > 0
    assert metrics["run"]["grid"] == "30×10×10"  # the small preset's central window, reference cropped alike
    assert metrics["floors"]["classifier_auc"]["mean"] == 0.5


def test_snapshot_model_errors_are_user_errors(snapshot: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", "bibae", "--n", "40", "--out", str(tmp_path / "a"), "--quiet"]) == 2
    assert "--snapshot DIR" in capsys.readouterr().err
    assert main(["--model", "bibae", "--snapshot", str(tmp_path / "missing"), "--n", "40", "--out",
                 str(tmp_path / "b"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--model", "reference", "--snapshot", str(snapshot), "--n", "40", "--out", str(tmp_path / "c"),
                 "--quiet"]) == 2
    assert "apply to bibae" in capsys.readouterr().err


def test_the_reference_is_never_the_training_stream_by_default(snapshot: Path, tmp_path: Path) -> None:
    # A snapshot trained on the simulator stream seed 0 (``showers:ecal``): the simulated reference
    # of the same seed would be its first N training showers.
    trained = tmp_path / "trained"
    write_snapshot(trained, build_model("bibae", TINY), {"data_identity": {"source": "showers:ecal", "seed": 0}})
    args = ["--model", "bibae", "--snapshot", str(trained), "--n", "60", "--no-plots", "--no-physics-distances",
            "--quiet", "--classifier-runs", "1"]
    assert main([*args, "--out", str(tmp_path / "default")]) == 0
    run = json.loads((tmp_path / "default" / "metrics.json").read_text())["run"]
    assert (run["seed"], run["training_seed"], run["reference_is_training_data"]) == (1, 0, False)
    with pytest.warns(UserWarning, match="training showers"):
        assert main([*args, "--seed", "0", "--out", str(tmp_path / "same")]) == 0
    run = json.loads((tmp_path / "same" / "metrics.json").read_text())["run"]
    assert (run["seed"], run["reference_is_training_data"]) == (0, True)
    # Another source (or none recorded): the default seed stays 0.
    assert main([*args[:3], str(snapshot), *args[4:], "--out", str(tmp_path / "other")]) == 0
    run = json.loads((tmp_path / "other" / "metrics.json").read_text())["run"]
    assert (run["seed"], run["training_seed"]) == (0, None)
