"""BIB-AE (models.bibae): learning, losses, KDE sampling, seeds, snapshots, stages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from emulator.snapshot import load_snapshot, write_snapshot
from models.bibae import BIBAE, PRESETS
from models.bibae.kde import LatentKDE
from models.bibae.losses import SortedKernelMMD, mmd
from models.protocol import BufferReport, OnlineModel
from models.registry import build_model
from models.shower_data import to_sparse
from stream.showers.simulator import sample_energies, simulate

TINY: dict[str, Any] = {
    "preset": "small", "latent_dims": 4, "noise_dims": 4, "encoder_channels": [2, 4], "encoder_hidden": 16,
    "decoder_hidden": 16, "decoder_coarse_channels": 2, "decoder_channels": [4, 2], "critic_channels": 2,
    "critic_hidden": 8, "latent_critic_hidden": 4, "post_processor_channels": 4, "post_processor_layers": 1,
    "mmd_top": 100, "main_buffers": 1, "pp_identity_buffers": 1, "pp_buffers": 1, "critic_steps": 2, "seed": 3,
}


def _buffer(n: int, seed: int, geometry: str = "ecal") -> dict[str, torch.Tensor]:
    energies = sample_energies(seed, 0, n, 10.0, 100.0).astype(np.float32)
    showers = simulate(geometry, energies, seed)
    return to_sparse(torch.from_numpy(energies), torch.from_numpy(showers))


@pytest.fixture(scope="module")
def buffers() -> list[dict[str, torch.Tensor]]:
    return [_buffer(24, seed) for seed in range(3)]


def _assert_same_state(a: BIBAE, b: BIBAE) -> None:
    assert a.training_state() == b.training_state()
    ta, tb = a.state_tensors(), b.state_tensors()
    assert set(ta) == set(tb)
    for key, value in ta.items():
        assert torch.equal(value.cpu(), tb[key].cpu()), key


def _energies(n: int) -> dict[str, torch.Tensor]:
    return {"incident_energy": torch.linspace(15.0, 85.0, n)}


def test_is_online_model_and_rebuilds_from_json() -> None:
    model = build_model("bibae", TINY)
    assert isinstance(model, OnlineModel)
    assert model.kind == "bibae"
    assert model.device == torch.device("cpu")
    hyperparameters = json.loads(json.dumps(model.hyperparameters()))
    assert build_model("bibae", hyperparameters).hyperparameters() == model.hyperparameters()
    assert "stage='main'" in repr(model)


def test_presets_build() -> None:
    assert set(PRESETS) == {"full", "small", "pion"}
    assert PRESETS["full"].latent_dims + PRESETS["full"].noise_dims == 512
    assert PRESETS["small"].model_shape == (30, 10, 10)
    assert PRESETS["pion"].grid_shape == (48, 25, 25)
    with pytest.raises(ValueError, match="unknown preset"):
        BIBAE("huge")
    with pytest.raises(ValueError, match="unknown settings"):
        BIBAE("small", latent_dim=3)
    with pytest.raises(ValueError, match="kld_weight"):
        BIBAE("small", kld_weight=-1.0)


def test_tiny_configuration_overfits_a_few_showers() -> None:
    data = _buffer(8, seed=11)
    model = BIBAE(**{**TINY, "main_buffers": 10, "reconstruction_weight": 10.0, "critic_steps": 1,
                     "learning_rate": 3e-3, "kld_weight": 0.0, "latent_mmd_weight": 0.0, "latent_critic_weight": 0.0,
                     "critic_weight": 0.1, "decoder_hidden": 64, "decoder_coarse_channels": 4, "latent_dims": 8})
    first = model.train_on_buffer(data, 1, 8).metrics["reconstruction"]
    report = model.train_on_buffer(data, 250, 8)
    assert report.passes == 250
    assert report.metrics["reconstruction"] < 0.3 * first, (first, report.metrics["reconstruction"])


def test_sorted_kernel_mmd_zero_for_equal_spectra_and_grows_with_shift() -> None:
    generator = torch.Generator().manual_seed(0)
    showers = torch.rand(16, 30, 10, 10, generator=generator).pow(8) * 50
    loss = SortedKernelMMD(top=500, window=5, stride=10)
    assert float(loss(showers, showers.clone())) == 0.0
    shuffled = showers[torch.randperm(16, generator=generator)]
    assert float(loss(shuffled, showers)) < 1e-6  # the same spectra in another order
    values = [float(loss(showers * (1 + shift), showers)) for shift in (0.05, 0.2, 0.5, 1.0)]
    assert all(b > a > 0 for a, b in zip(values, values[1:], strict=False)), values
    x = torch.randn(200, 3, generator=generator)
    assert float(mmd(x, x)) == 0.0
    assert float(mmd(x + 1.0, x)) > float(mmd(x + 0.2, x)) > 0


def test_kde_rejection_returns_energies_within_tolerance() -> None:
    generator = torch.Generator().manual_seed(1)
    energy = torch.rand(3000, generator=generator) * 0.9 + 0.1
    latent = torch.randn(3000, 3, generator=generator) + energy.unsqueeze(1) * 4
    kde = LatentKDE(4, max_points=10_000)
    kde.add(torch.cat((latent, energy.unsqueeze(1)), 1))
    targets = torch.tensor([0.15, 0.3, 0.5, 0.5, 0.9] * 40)
    draws = kde.sample_at(3, targets, 0.01, torch.Generator().manual_seed(2))
    assert ((draws[:, 3] - targets).abs() <= 0.01 * targets + 1e-7).all()
    # the latents follow the energy they were drawn at
    assert float(draws[targets == 0.9, 0].mean()) - float(draws[targets == 0.15, 0].mean()) > 2.0
    with pytest.raises(ValueError, match="no draw within"):
        kde.sample_at(3, torch.tensor([5.0]), 0.01, generator, max_rounds=3)


def test_stages_kde_fit_and_sampling_variants(buffers: list[dict[str, torch.Tensor]]) -> None:
    model = BIBAE(**TINY)
    stages = []
    for data in buffers + buffers[:1]:
        report = model.train_on_buffer(data, 1, 8)
        stages.append(report.metrics["stage"])
        model.end_buffer()
        after = model.after_buffer(data)
    assert stages == [0.0, 1.0, 2.0, 3.0]
    assert report.steps == 0  # done: nothing left to train
    assert after["kde_points"] == 96.0  # every buffer from the end of the main stage on (4 x 24)
    condition = _energies(10)
    for mode in ("normal", "kde"):
        for post_process in (False, True):
            out = model.sample(10, seed=4, condition=condition, mode=mode, post_process=post_process)
            assert out["showers"].shape == (10, 30, 10, 10)
            assert out["showers"].dtype == torch.float32
            assert torch.isfinite(out["showers"]).all()
            assert (out["showers"] >= 0).all()
            assert torch.equal(out["incident_energy"], condition["incident_energy"])
    full = model.sample(10, seed=4, condition=condition, full_grid=True)["showers"]
    assert full.shape == (10, 30, 30, 30)
    assert float(full[:, :, :10].abs().sum()) == 0.0
    assert model.latent_kld(simulate("ecal", np.array([50.0], np.float32), 1), torch.tensor([50.0])).shape == (4,)


def test_same_seed_same_result(buffers: list[dict[str, torch.Tensor]]) -> None:
    first, second = BIBAE(**TINY), BIBAE(**TINY)
    assert first.train_on_buffer(buffers[0], 2, 8).loss == second.train_on_buffer(buffers[0], 2, 8).loss
    _assert_same_state(first, second)
    a = first.sample(6, seed=9, condition=_energies(6))["showers"]
    assert torch.equal(a, second.sample(6, seed=9, condition=_energies(6))["showers"])
    assert not torch.equal(a, first.sample(6, seed=10, condition=_energies(6))["showers"])


def test_passes_differ_and_stop_ends_the_buffer(buffers: list[dict[str, torch.Tensor]]) -> None:
    model = BIBAE(**TINY)
    asked: list[int] = []
    report = model.train_on_buffer(buffers[0], 5, 8, stop=lambda done: asked.append(done) or done >= 2)
    assert isinstance(report, BufferReport)
    assert report.passes == 2
    assert asked == [1, 2]
    assert report.metrics["stage"] == 0.0
    assert {"critic_loss", "generator_loss", "latent_critic_loss", "lr_generator"} <= set(report.metrics)


def test_snapshot_round_trip_and_exact_resume(tmp_path: Path, buffers: list[dict[str, torch.Tensor]]) -> None:
    straight, interrupted = BIBAE(**TINY), BIBAE(**TINY)
    for model in (straight, interrupted):
        model.train_on_buffer(buffers[0], 1, 8)
        model.end_buffer()
        model.after_buffer(buffers[0])  # main stage over: the KDE is fitted
    write_snapshot(tmp_path / "snap", interrupted, {"events_seen": 24})
    resumed = load_snapshot(tmp_path / "snap").model
    assert isinstance(resumed, BIBAE)
    _assert_same_state(interrupted, resumed)
    assert resumed.kde.n_points == 24
    condition = _energies(5)
    assert torch.equal(
        interrupted.sample(5, seed=1, condition=condition, mode="kde")["showers"],
        resumed.sample(5, seed=1, condition=condition, mode="kde")["showers"],
    )
    for model in (straight, resumed):
        model.train_on_buffer(buffers[1], 2, 8)  # Post Processor stage
        model.end_buffer()
        model.after_buffer(buffers[1])
    _assert_same_state(straight, resumed)


def test_bad_input_is_named(buffers: list[dict[str, torch.Tensor]]) -> None:
    model = BIBAE(**TINY)
    with pytest.raises(ValueError, match="grid_shape"):
        model.train_on_buffer(dict(buffers[0], grid_shape=torch.tensor([48, 25, 25])), 1, 8)
    with pytest.raises(ValueError, match="incident_energy"):
        model.sample(3, seed=0)
    with pytest.raises(ValueError, match="not fitted"):
        model.sample(3, seed=0, condition=_energies(3), mode="kde")
    with pytest.raises(ValueError, match="mode"):
        model.sample(3, seed=0, condition=_energies(3), mode="flow")


def test_pion_additions_minibatch_second_critic_and_visible_energy() -> None:
    data = _buffer(8, seed=5, geometry="ahcal")
    settings = {k: v for k, v in TINY.items() if k != "preset"}
    model = BIBAE("pion", **{**settings, "second_critic_reset_buffers": 1, "minibatch_kernels": 3})
    assert model.critic2 is not None
    assert model.critic.minibatch is not None
    model.train_on_buffer(data, 1, 4)
    before = {k: v.clone() for k, v in model.critic2.state_dict().items()}
    trained_critic = {k: v.clone() for k, v in model.critic.state_dict().items()}
    model.end_buffer()  # resets the second critic only
    assert any(not torch.equal(before[k], v) for k, v in model.critic2.state_dict().items())
    assert all(torch.equal(trained_critic[k], v) for k, v in model.critic.state_dict().items())
    assert not any(p in model.optimizers["critic"].state for p in model.critic2.parameters())
    visible = torch.tensor([500.0, 900.0])
    out = model.sample(2, seed=0, condition={"incident_energy": torch.tensor([30.0, 60.0]), "visible_energy": visible})
    assert out["showers"].shape == (2, 48, 25, 25)
    assert torch.allclose(out["showers"].flatten(1).sum(1), visible, rtol=1e-4)


def probe_bibae(model: BIBAE, buffer: dict[str, torch.Tensor], n_iter: int, batch_size: int) -> list[dict[str, Any]]:
    """Per pass: the shower order and the latent noise drawn per shower (contract-test probe)."""
    n = buffer["cell_offsets"].numel() - 1
    passes: list[dict[str, Any]] = []

    def record(pass_index: int, index: torch.Tensor, noise: torch.Tensor) -> None:
        if pass_index == len(passes):
            passes.append({"order": [], "noise": torch.zeros(n, noise.shape[1]), "weights": None})
        passes[pass_index]["order"].append(index.clone())
        passes[pass_index]["noise"][index] = noise.detach().cpu()

    model.on_batch = record
    model.train_on_buffer(buffer, n_iter, batch_size)
    model.on_batch = None
    for entry in passes:
        entry["order"] = torch.cat(entry["order"])
    return passes


def test_passes_differ_in_order_and_noise(buffers: list[dict[str, torch.Tensor]]) -> None:
    first, second = probe_bibae(BIBAE(**TINY), buffers[0], 2, 8)
    assert not torch.equal(first["order"], second["order"])
    assert torch.equal(first["order"].sort().values, torch.arange(24))
    assert torch.equal(second["order"].sort().values, torch.arange(24))
    assert not torch.equal(first["noise"], second["noise"])
