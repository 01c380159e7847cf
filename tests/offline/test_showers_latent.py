"""``python -m offline.showers.latent``: per-latent KLD and correlations of a BIB-AE's latents."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from emulator.snapshot import write_snapshot
from models.bibae import BIBAE
from models.bibae.losses import kld_per_latent
from offline.showers.cross_correlations import correlation_block, cross_correlations
from offline.showers.latent import (
    OBSERVABLES,
    LatentConfig,
    held_out_seed,
    latent_study,
    main,
    run_latent_study,
)
from offline.showers.pipeline import simulate_reference
from offline.showers.snapshot_model import SnapshotGenerator

TINY = {
    "preset": "small",
    "latent_dims": 4,
    "noise_dims": 4,
    "encoder_channels": [2, 4],
    "encoder_hidden": 16,
    "decoder_hidden": 16,
    "decoder_coarse_channels": 2,
    "decoder_channels": [4, 2],
    "critic_channels": 2,
    "critic_hidden": 8,
    "latent_critic_hidden": 4,
    "post_processor_channels": 4,
    "post_processor_layers": 1,
    "mmd_top": 100,
    "main_buffers": 1,
    "pp_identity_buffers": 1,
    "pp_buffers": 1,
    "critic_steps": 1,
    "seed": 3,
}
TRAINING_STREAM = {"source": "showers:ecal", "seed": 0, "options": {}}


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An (untrained) tiny BIB-AE snapshot that says it was trained on the simulator with seed 0."""
    out = tmp_path_factory.mktemp("bibae-latent") / "snapshot"
    write_snapshot(out, BIBAE(**TINY), {"events_seen": 0, "data_identity": TRAINING_STREAM})
    return out


# ---------------------------------------------------------------- the correlation routine
@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_correlations_of_gaussians_recover_rho_with_the_fisher_error(rho: float) -> None:
    n = 4000
    rng = np.random.default_rng(7)
    x = rng.standard_normal(n)
    y = rho * x + math.sqrt(1.0 - rho * rho) * rng.standard_normal(n)
    table = cross_correlations({"x": x}, {"y": y}, bootstrap=200, seed=1)
    fisher = (1.0 - rho * rho) / math.sqrt(n - 3)  # the Fisher-z error carried back to r
    assert abs(table.pearson[0, 0] - rho) < 4.0 * fisher + 1e-3
    # Spearman of a bivariate normal: (6 / pi) asin(rho / 2)
    assert (
        abs(table.spearman[0, 0] - 6.0 / math.pi * math.asin(rho / 2.0))
        < 5.0 * table.spearman_error[0, 0]
    )
    # 200 replicas estimate a standard deviation to ~5 %: 25 % is 5 of those
    assert table.pearson_error[0, 0] == pytest.approx(fisher, rel=0.25)
    assert table.pearson[0, 0] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)


def test_spearman_equals_scipy_with_ties_and_is_one_for_monotone_transforms() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal(500)
    hits = rng.poisson(np.exp(x + 1.0)).astype(float)  # integer values: many ties
    table = cross_correlations({"x": x}, {"hits": hits, "cube": x**3}, bootstrap=0)
    assert table.spearman[0, 0] == pytest.approx(spearmanr(x, hits).statistic, abs=1e-12)
    assert table.spearman[0, 1] == pytest.approx(1.0, abs=1e-12)
    assert table.pearson[0, 1] < 0.9  # Pearson sees the non-linearity
    assert np.isnan(table.pearson_error).all()  # no replicas, no errors


def test_constant_variable_has_no_correlation_and_same_seed_same_errors() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(200), rng.standard_normal(200)
    first = cross_correlations({"x": x, "flat": np.ones(200)}, {"y": y}, bootstrap=30, seed=5)
    again = cross_correlations({"x": x, "flat": np.ones(200)}, {"y": y}, bootstrap=30, seed=5)
    assert first.constant == ["flat"]
    assert np.isnan(first.pearson[1, 0])
    assert np.isnan(first.pearson_error[1, 0])
    assert first.entry("flat", "y")["spearman"] is None
    nested = first.to_json()["pearson"]
    assert nested["flat"]["y"] == {"value": None, "error": None}  # type: ignore[index]
    np.testing.assert_array_equal(first.pearson_error, again.pearson_error)
    assert correlation_block(np.c_[x], np.c_[2.0 * x + 1.0])[0, 0] == pytest.approx(1.0)


def test_correlation_input_errors_are_named() -> None:
    x = np.arange(10.0)
    with pytest.raises(ValueError, match="same showers"):
        cross_correlations({"x": x}, {"y": x[:5]})
    with pytest.raises(ValueError, match="at least 3 showers"):
        cross_correlations({"x": x[:2]}, {"y": x[:2]})
    with pytest.raises(ValueError, match="bootstrap"):
        cross_correlations({"x": x}, {"y": x}, bootstrap=1)
    with pytest.raises(ValueError, match=r"\['y'\] hold non-finite"):
        cross_correlations({"x": x}, {"y": np.where(x > 5, np.nan, x)})


# ---------------------------------------------------------------- the study on constructed latents
class DepthEncoder:
    """A test encoder whose latents are known functions of the shower.

    z0 = (energy-weighted mean layer - 15) / 2.5 (the centre of gravity in z, computed
    here from its definition), z1 = small noise independent of the shower, z2 = (summed
    energy - 100 MeV) / 50 MeV, z3 = 0; log-variance 0 everywhere, so KLD_i = mean(mu_i²) / 2.
    """

    def __init__(self) -> None:
        self.rng = np.random.default_rng(11)

    def encode(
        self, showers: torch.Tensor, incident_energy: torch.Tensor, *, batch_size: int = 512
    ) -> tuple[torch.Tensor, torch.Tensor]:
        cells = showers.double().numpy()
        per_layer = cells.sum(axis=(2, 3))
        total = per_layer.sum(axis=1)
        depth = (per_layer * np.arange(cells.shape[1])).sum(axis=1) / total
        mu = np.zeros((cells.shape[0], 4))
        mu[:, 0] = (depth - 15.0) / 2.5
        mu[:, 1] = 0.3 * self.rng.standard_normal(cells.shape[0])
        mu[:, 2] = (total - 100.0) / 50.0
        return torch.from_numpy(mu).float(), torch.zeros(cells.shape[0], 4)


def _showers_of_known_depth(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Showers (n, 30, 3, 3) lit symmetrically around a random depth (1 or 3 layers), one column."""
    rng = np.random.default_rng(seed)
    depth = rng.integers(5, 25, n)
    amplitude = rng.uniform(5.0, 50.0, n)
    column = rng.integers(0, 3, (n, 2))
    wide = rng.random(n) < 0.5
    showers = np.zeros((n, 30, 3, 3), np.float32)
    for i in range(n):
        for offset, weight in ((-1, 1.0), (0, 2.0), (1, 1.0)):
            if offset == 0 or wide[i]:
                showers[i, depth[i] + offset, column[i, 0], column[i, 1]] = weight * amplitude[i]
    energies = rng.uniform(10.0, 100.0, n)
    return energies, showers, depth.astype(float)


def test_a_latent_built_to_follow_cog_z_correlates_with_it_and_not_with_the_rest() -> None:
    n = 900
    energies, showers, depth = _showers_of_known_depth(n, seed=2)
    chunks = [
        (energies[lo : lo + 400], showers[lo : lo + 400]) for lo in range(0, n, 400)
    ]  # three chunks
    study = latent_study(DepthEncoder(), chunks, threshold_mev=0.1, top=2, bootstrap=50, seed=0)
    noise = 4.0 / math.sqrt(n)  # 4 standard errors of a zero correlation
    assert study.n == n
    assert list(study.order) == [0, 2, 1, 3]  # KLDs ~2.9, ~0.5, 0.045, 0
    assert study.correlations.constant == []
    assert all(np.diff(study.kld[study.order]) <= 0)
    assert study.top == [0, 2]
    np.testing.assert_allclose(
        study.observables["cog_z"], depth, atol=1e-9
    )  # the observable, chunks in order
    assert study.correlations.pearson[0, OBSERVABLES.index("cog_z")] > 0.9999
    assert study.correlations.spearman[0, OBSERVABLES.index("cog_z")] > 0.9999
    for name in ("cog_x", "cog_y", "visible_energy", "n_hits", "incident_energy"):
        assert abs(study.correlations.pearson[0, OBSERVABLES.index(name)]) < noise, name
    assert study.correlations.pearson[1, OBSERVABLES.index("visible_energy")] > 0.9999
    for name in ("cog_z", "cog_x", "cog_y", "incident_energy"):
        assert abs(study.correlations.pearson[1, OBSERVABLES.index(name)]) < noise, name
    mu = study.mu
    np.testing.assert_allclose(study.kld, 0.5 * (mu * mu).mean(axis=0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(
        study.kld_error, 0.5 * (mu * mu).std(axis=0, ddof=1) / math.sqrt(n), rtol=1e-6, atol=1e-12
    )
    assert study.kld[3] == 0.0
    record = study.to_json()
    assert record["kld"]["sorted"] == [0, 2, 1, 3]
    assert record["top"] == [0, 2]
    assert (
        record["correlations"]["pearson"]["z0"]["cog_z"]["error"] < 1e-3
    )  # an exact function: tiny spread


def test_encoder_weights_that_read_the_energy_give_a_latent_of_correlation_one() -> None:
    """A real BIB-AE encoder set by hand: mu_2 = 5 E / 100 GeV - 2.5, every other latent 0."""
    model = BIBAE(**TINY)
    encoder = model.encoder
    with torch.no_grad():
        for layer in (encoder.dense2, encoder.mean, encoder.log_variance):
            layer.weight.zero_()
            layer.bias.zero_()
        encoder.dense2.weight[0, -1] = (
            1.0  # the condition column E / energy_scale_gev, positive: leaky = identity
        )
        encoder.mean.weight[2, 0] = 5.0
        encoder.mean.bias[2] = -2.5
    rng = np.random.default_rng(4)
    energies = rng.uniform(10.0, 100.0, 300)
    showers = rng.exponential(2.0, (300, 30, 10, 10)).astype(np.float32)
    study = latent_study(model, [(energies, showers)], threshold_mev=0.1, top=2, bootstrap=20)
    assert list(study.order) == [2, 0, 1, 3]  # the others tie at KLD 0 and keep their order
    expected = 0.5 * ((5.0 * energies / 100.0 - 2.5) ** 2).mean()
    assert study.kld[2] == pytest.approx(expected, rel=1e-5)
    assert study.kld[[0, 1, 3]].tolist() == [0.0, 0.0, 0.0]
    assert study.correlations.pearson[0, OBSERVABLES.index("incident_energy")] == pytest.approx(
        1.0, abs=1e-6
    )
    assert study.correlations.spearman[0, OBSERVABLES.index("incident_energy")] == pytest.approx(
        1.0, abs=1e-12
    )
    assert study.correlations.constant == [
        "z0"
    ]  # the second top latent is constant: no correlation
    assert np.isnan(study.correlations.pearson[1]).all()


def test_study_input_errors() -> None:
    energies, showers, _ = _showers_of_known_depth(30, seed=1)
    with pytest.raises(ValueError, match="between 1 and the model's 4 latents"):
        latent_study(DepthEncoder(), [(energies, showers)], 0.1, top=5)
    with pytest.raises(ValueError, match="no showers"):
        latent_study(DepthEncoder(), [], 0.1)
    with pytest.raises(ValueError, match="29 incident energies"):
        latent_study(DepthEncoder(), [(energies[:29], showers)], 0.1)


def test_held_out_seed_avoids_the_training_stream() -> None:
    assert held_out_seed({"data_identity": TRAINING_STREAM}, None) == (1, 0)
    assert held_out_seed({"data_identity": TRAINING_STREAM}, 0) == (0, 0)
    assert held_out_seed({}, None) == (0, None)


# ---------------------------------------------------------------- the command line
def test_cli_kld_equals_kld_per_latent_on_the_same_showers(
    snapshot: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "latent"
    code = main(
        [
            "--snapshot",
            str(snapshot),
            "--n",
            "40",
            "--top",
            "2",
            "--bootstrap",
            "20",
            "--quiet",
            "--json",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    record = json.loads((out / "latent.json").read_text())
    assert (record["seed"], record["training_seed"], record["reference_is_training_data"]) == (
        1,
        0,
        False,
    )
    assert record["grid"] == "30×10×10"  # the small preset's central window
    # the same 40 showers, encoded directly
    generator = SnapshotGenerator("ecal", snapshot, kind="bibae")
    energies, showers = next(
        simulate_reference(generator.reference_geometry(), 40, 1, chunk_size=40)
    )
    expected = kld_per_latent(
        *generator.model.encode(torch.from_numpy(showers), torch.from_numpy(energies))
    ).numpy()
    measured = np.array([row["kld"] for row in record["kld"]["per_latent"]])
    np.testing.assert_allclose(measured, expected, rtol=1e-5)
    ordered = record["kld"]["sorted"]
    assert sorted(ordered) == [0, 1, 2, 3]
    assert all(np.diff(measured[ordered]) <= 0)  # decreasing
    assert record["top"] == ordered[:2] == line["kld_sorted"][:2]
    pearson = record["correlations"]["pearson"][f"z{ordered[0]}"]
    assert set(pearson) == set(OBSERVABLES)
    assert all(-1.0 <= v["value"] <= 1.0 and v["error"] > 0 for v in pearson.values())
    assert line["top"][0]["pearson"]["cog_z"] == [
        pearson["cog_z"]["value"],
        pearson["cog_z"]["error"],
    ]
    assert sorted(record["plots"]) == [
        "latent_correlations.png",
        "latent_kld.png",
        "latent_vs_observables.png",
    ]
    assert all((out / name).stat().st_size > 10_000 for name in record["plots"])


def test_a_full_grid_reference_file_is_cropped_to_the_model_window(
    snapshot: Path, tmp_path: Path
) -> None:
    from offline.showers.observables import compute_observables
    from stream.showers.io import write_showers
    from stream.showers.simulator import sample_energies, simulate

    energies = sample_energies(5, 0, 24, 10.0, 100.0)
    showers = simulate("ecal", energies, 5)  # the full 30 x 30 x 30 grid
    path = write_showers(tmp_path / "photons.zarr", energies, showers, "ecal")
    study, record = run_latent_study(
        LatentConfig(
            snapshot,
            n=24,
            out_dir=tmp_path / "latent",
            reference=path,
            top=1,
            bootstrap=0,
            plots=False,
            progress=False,
        )
    )
    assert (record["reference"], record["grid"], record["seed"]) == (str(path), "30×10×10", None)
    window = showers[:, :, 10:20, 10:20]
    expected = compute_observables(window, record["threshold_mev"]).visible_energy
    np.testing.assert_allclose(study.observables["visible_energy"], expected, rtol=1e-6)
    model = SnapshotGenerator("ecal", snapshot, kind="bibae").model
    direct = kld_per_latent(
        *model.encode(torch.from_numpy(window), torch.from_numpy(energies))
    ).numpy()
    np.testing.assert_allclose(study.kld, direct, rtol=1e-5)


def test_cli_table_and_a_seed_of_training_showers_is_flagged(
    snapshot: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "--snapshot",
            str(snapshot),
            "--n",
            "30",
            "--seed",
            "0",
            "--bootstrap",
            "0",
            "--quiet",
            "--no-plots",
            "--out",
            str(tmp_path / "latent"),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "training showers" in captured.err
    for heading in ("Pearson correlation", "Spearman correlation", "CoG-z", "E_vis", "E_inc"):
        assert heading in captured.out
    assert (
        json.loads((tmp_path / "latent" / "latent.json").read_text())["reference_is_training_data"]
        is True
    )


def test_cli_user_errors_exit_2_with_a_message(
    snapshot: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "flow"
    shutil.copytree(snapshot, other)
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "model_kind": "layerflow"}))
    cases = [
        (["--snapshot", str(other)], "holds a 'layerflow' model"),
        (["--snapshot", str(snapshot), "--n", "5"], "at least 20 showers, got 5"),
        (["--snapshot", str(snapshot), "--top", "9"], "--top 9 exceeds the model's 4 latents"),
        (["--snapshot", str(snapshot), "--bootstrap", "1"], "bootstrap must be 0"),
        (["--snapshot", str(tmp_path / "missing")], "does not exist"),
    ]
    for argv, message in cases:
        assert main([*argv, "--quiet", "--no-plots", "--out", str(tmp_path / "out")]) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_help_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "python -m offline.showers.latent --snapshot" in capsys.readouterr().out
