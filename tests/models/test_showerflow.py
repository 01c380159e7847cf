"""Layer and shower flows (models.showerflow): stages, sampling, rescaling, seeds, snapshots, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from emulator.snapshot import load_snapshot, write_snapshot
from models.protocol import BufferReport, OnlineModel
from models.registry import build_model
from models.shower_data import to_sparse
from models.showerflow import STAGES, LayerShowerFlow
from models.showerflow.preprocessing import layer_moments
from stream.showers.simulator import sample_energies, simulate

TINY: dict[str, Any] = {
    "layer_blocks": 2, "layer_hidden": 8, "shower_blocks": 1, "shower_hidden": 8, "shower_context_embedding": 4,
    "student_layer_blocks": 1, "student_layer_hidden": 8, "student_blocks": 1, "student_hidden": 8,
    "student_context_embedding": 4, "main_buffers": 1, "student_buffers": 1, "seed": 3,
}


def _buffer(n: int, seed: int) -> dict[str, torch.Tensor]:
    energies = sample_energies(seed, 0, n, 10.0, 100.0).astype(np.float32)
    return to_sparse(torch.from_numpy(energies), torch.from_numpy(simulate("ecal", energies, seed)))


@pytest.fixture(scope="module")
def buffers() -> list[dict[str, torch.Tensor]]:
    return [_buffer(24, seed) for seed in range(3)]


@pytest.fixture(scope="module")
def trained(buffers: list[dict[str, torch.Tensor]]) -> LayerShowerFlow:
    """A tiny model through both stages."""
    model = LayerShowerFlow(**TINY)
    for data in buffers[:2]:
        model.train_on_buffer(data, 2, 8)
        model.end_buffer()
    return model


def _energies(n: int) -> dict[str, torch.Tensor]:
    return {"incident_energy": torch.linspace(15.0, 85.0, n)}


def _assert_same_state(a: LayerShowerFlow, b: LayerShowerFlow) -> None:
    assert a.training_state() == b.training_state()
    ta, tb = a.state_tensors(), b.state_tensors()
    assert set(ta) == set(tb)
    for key, value in ta.items():
        assert torch.equal(value.cpu(), tb[key].cpu()), key


def test_is_online_model_and_rebuilds_from_json() -> None:
    model = build_model("layerflow", TINY)
    assert isinstance(model, OnlineModel)
    assert model.kind == "layerflow"
    assert model.device == torch.device("cpu")
    assert model.sample_shape == (30, 10, 10)
    hyperparameters = json.loads(json.dumps(model.hyperparameters()))
    assert build_model("layerflow", hyperparameters).hyperparameters() == model.hyperparameters()
    assert "stage='main'" in repr(model)
    assert model.shower_flows.n_members == 30
    assert model.shower_flows.context_features == 502
    assert model.config.context_features == 2 + 5 * 100


def test_stages_metrics_and_student_sampling(trained: LayerShowerFlow, buffers: list[dict[str, torch.Tensor]]) -> None:
    model = LayerShowerFlow(**TINY)
    reports = []
    for data in buffers:
        reports.append(model.train_on_buffer(data, 1, 8))
        model.end_buffer()
        assert model.after_buffer(data) == {"next_stage": float(model.stage)}
    assert [r.metrics["stage"] for r in reports] == [0.0, 1.0, 2.0]
    assert model.stage_name == STAGES[2]
    assert {"nll_layer_energies", "nll_cells_per_layer", "grad_norm", "lr_teacher"} <= set(reports[0].metrics)
    assert {"student_x_mse", "student_z_mse"} <= set(reports[1].metrics)
    assert reports[2].steps == 0
    assert reports[0].steps == 3
    assert isinstance(reports[0], BufferReport)
    assert all(np.isfinite(r.loss) for r in reports[:2])
    # the teacher's learning rate decayed once, the student's once
    assert reports[2].metrics["lr_teacher"] == pytest.approx(1e-3 * 0.93)
    assert reports[2].metrics["lr_student"] == pytest.approx(1e-3 * 0.93)
    for student in (False, True):
        out = trained.sample(9, seed=4, condition=_energies(9), student=student)
        assert out["showers"].shape == (9, 30, 10, 10)
        assert out["showers"].dtype == torch.float32
        assert torch.isfinite(out["showers"]).all()
        assert bool(((out["showers"] == 0) | (out["showers"] >= trained.config.threshold_mev)).all())
        assert float(out["showers"].sum()) > 0
        assert torch.equal(out["incident_energy"], _energies(9)["incident_energy"])
    full = trained.sample(4, seed=4, condition=_energies(4), full_grid=True)["showers"]
    assert full.shape == (4, 30, 30, 30)
    assert float(full[:, :, :10].abs().sum()) == 0.0


def test_layers_sum_to_the_layer_flow_energy(trained: LayerShowerFlow) -> None:
    for student in (False, True):
        out = trained.sample(50, seed=1, condition=_energies(50), student=student, batch_size=16)
        sums = out["showers"].sum((2, 3))
        torch.testing.assert_close(sums, out["layer_energy"], rtol=1e-4, atol=0)
    # the layer energies are the layer flow's (the same base draw through its inverse), 0 where it drew t < threshold
    generator = torch.Generator().manual_seed(1)
    energy = _energies(16)["incident_energy"]
    base = torch.randn(1, 16, 30, generator=generator)
    pre = trained.preprocessor
    t = pre.layer_energy_from_features(trained.layer_flow.inverse(base, pre.energy_features(energy).unsqueeze(0))[0])
    out = trained.sample(16, seed=1, condition={"incident_energy": energy})
    torch.testing.assert_close(out["layer_energy"], torch.where(t >= 0.1, t, torch.zeros_like(t)), rtol=1e-5, atol=0)


def test_same_seed_same_sample_and_batches_do_not_matter_within_a_chunk(trained: LayerShowerFlow) -> None:
    a = trained.sample(12, seed=9, condition=_energies(12))["showers"]
    assert torch.equal(a, trained.sample(12, seed=9, condition=_energies(12))["showers"])
    assert not torch.equal(a, trained.sample(12, seed=10, condition=_energies(12))["showers"])
    student = trained.sample(12, seed=9, condition=_energies(12), student=True)["showers"]
    assert torch.equal(student, trained.sample(12, seed=9, condition=_energies(12), student=True)["showers"])
    assert not torch.equal(a, student)


def test_same_seed_same_training(buffers: list[dict[str, torch.Tensor]]) -> None:
    first, second = LayerShowerFlow(**TINY), LayerShowerFlow(**TINY)
    assert first.train_on_buffer(buffers[0], 2, 8).loss == second.train_on_buffer(buffers[0], 2, 8).loss
    _assert_same_state(first, second)
    other = LayerShowerFlow(**{**TINY, "seed": 4})
    other.train_on_buffer(buffers[0], 2, 8)
    assert not torch.equal(other.state_tensors()["module.shower_flows.input_weight"],
                           first.state_tensors()["module.shower_flows.input_weight"])


def test_snapshot_round_trip_and_exact_resume(tmp_path: Path, buffers: list[dict[str, torch.Tensor]]) -> None:
    straight, interrupted = LayerShowerFlow(**TINY), LayerShowerFlow(**TINY)
    for model in (straight, interrupted):
        model.train_on_buffer(buffers[0], 1, 8)
        model.end_buffer()
    write_snapshot(tmp_path / "snap", interrupted, {"events_seen": 24})
    resumed = load_snapshot(tmp_path / "snap").model
    assert isinstance(resumed, LayerShowerFlow)
    _assert_same_state(interrupted, resumed)
    assert bool(resumed.preprocessor.fitted)
    assert torch.equal(interrupted.sample(5, seed=1, condition=_energies(5))["showers"],
                       resumed.sample(5, seed=1, condition=_energies(5))["showers"])
    for model in (straight, resumed):
        model.train_on_buffer(buffers[1], 2, 8)  # student stage
        model.end_buffer()
    _assert_same_state(straight, resumed)


@pytest.mark.parametrize("moments", [False, True], ids=["images", "images+moments"])
def test_teacher_forcing_sees_only_the_five_previous_layers(buffers: list[dict[str, torch.Tensor]], moments: bool) -> None:
    """The log-density of layer 12 does not change when layers outside 7..11 change."""
    model = LayerShowerFlow(**TINY, context_moments=moments)
    model.train_on_buffer(buffers[0], 1, 8)
    generator = torch.Generator().manual_seed(0)
    cells = model._cells(buffers[1], torch.arange(6))
    energy = buffers[1]["incident_energy"][:6]
    changed = cells.clone()
    changed[:, [0, 3, 6, 13, 20]] = changed[:, [0, 3, 6, 13, 20]] * 3 + 1  # not 7..11 (nor 12 itself)

    def layer_12(values: torch.Tensor) -> torch.Tensor:
        w, e, y, context, _ = model._features(values, energy, torch.Generator().manual_seed(5))
        return model.shower_flows.log_prob(y[12:13], context[12:13], member=12)

    torch.testing.assert_close(layer_12(cells), layer_12(changed))
    touched = cells.clone()
    touched[:, 9] = touched[:, 9] * 3 + 1
    assert not torch.allclose(layer_12(cells), layer_12(touched))
    del generator


def test_bad_input_is_named(buffers: list[dict[str, torch.Tensor]]) -> None:
    model = LayerShowerFlow(**TINY)
    with pytest.raises(ValueError, match="unknown settings"):
        LayerShowerFlow(shower_hiden=8)
    with pytest.raises(ValueError, match="noise_low_mev"):
        LayerShowerFlow(noise_low_mev=-1.0)
    with pytest.raises(ValueError, match="noise_high_mev < threshold_mev"):
        LayerShowerFlow(noise_high_mev=0.2)
    with pytest.raises(ValueError, match="crop"):
        LayerShowerFlow(crop=[40, 10])
    with pytest.raises(ValueError, match="student_transform"):
        LayerShowerFlow(student_transform="spline")
    with pytest.raises(ValueError, match="student_bins"):
        LayerShowerFlow(student_bins=1)
    with pytest.raises(ValueError, match="grid_shape"):
        model.train_on_buffer(dict(buffers[0], grid_shape=torch.tensor([48, 25, 25])), 1, 8)
    with pytest.raises(ValueError, match="incident_energy must be > 0"):
        model.train_on_buffer(dict(buffers[0], incident_energy=buffers[0]["incident_energy"] * 0), 1, 8)
    with pytest.raises(ValueError, match="batch_size"):
        model.train_on_buffer(buffers[0], 1, 0)
    with pytest.raises(ValueError, match="incident_energy"):
        model.sample(3, seed=0)
    with pytest.raises(ValueError, match="3 finite energies"):
        model.sample(3, seed=0, condition={"incident_energy": torch.tensor([10.0, float("nan"), 20.0])})
    with pytest.raises(ValueError, match="students are not trained yet"):
        model.sample(3, seed=0, condition=_energies(3), student=True)
    with pytest.raises(KeyError, match="buffers_seen"):
        model.load_state(model.state_tensors(), {"steps": 0})


def test_a_non_finite_step_is_skipped_and_counted(buffers: list[dict[str, torch.Tensor]]) -> None:
    model = LayerShowerFlow(**TINY)
    model.train_on_buffer(buffers[0], 1, 8)
    before = {k: v.clone() for k, v in model.state_tensors().items() if k.startswith("module.shower_flows")}
    assert np.isnan(model._optimise("teacher", torch.tensor(float("nan"), requires_grad=True)))
    assert model.skipped_steps == 1
    assert model.training_state()["skipped_steps"] == 1
    after = model.state_tensors()
    assert all(torch.equal(value, after[key]) for key, value in before.items())


def test_generation_conditions_on_the_moments_of_the_layers_it_generated(buffers: list[dict[str, torch.Tensor]]) -> None:
    """With ``context_moments`` the flow of layer l sees the moments of generated layers l-1 .. l-5."""
    model = LayerShowerFlow(**TINY, context_moments=True)
    model.train_on_buffer(buffers[0], 1, 8)
    model.end_buffer()
    c = model.config
    seen: dict[int, torch.Tensor] = {}
    inverse = model.shower_flows.inverse

    def recording(z: torch.Tensor, context: torch.Tensor, member: int | None = None, **kw: Any) -> torch.Tensor:
        seen[int(member or 0)] = context[0].clone()
        return inverse(z, context, member=member, **kw)

    model.shower_flows.inverse = recording  # type: ignore[method-assign]
    showers = model.sample(6, seed=2, condition=_energies(6))["showers"].flatten(2)
    tail = 2 + c.history * c.cells
    for layer in (1, 4, 12, 29):
        for k in range(1, min(layer, c.history) + 1):
            expected = layer_moments(showers[:, layer - k], c.model_shape[1:])
            got = seen[layer][:, tail + 4 * (k - 1) : tail + 4 * k]
            torch.testing.assert_close(got, expected)
    assert float(seen[12][:, tail:].abs().sum()) > 0
    # and teacher forcing on those showers builds the same moment columns
    _, _, _, context, _ = model._features(showers.view(6, *c.model_shape).flatten(2), _energies(6)["incident_energy"],
                                          torch.Generator().manual_seed(0))
    torch.testing.assert_close(context[12, :, tail:], seen[12][:, tail:])


def test_a_snapshot_without_the_fitted_ranges_loads_unbounded(trained: LayerShowerFlow) -> None:
    """Snapshots written before the quantile maps kept their fitted range (OPTIONAL_STATE) still load."""
    tensors = {k: v for k, v in trained.state_tensors().items() if not k.endswith((".low", ".high"))}
    assert len(tensors) < len(trained.state_tensors())
    model = LayerShowerFlow(**TINY)
    model.load_state(tensors, trained.training_state())
    low, high = model.preprocessor.layer_map.bounds()
    assert bool(torch.isinf(low).all())
    assert bool(torch.isinf(high).all())
    assert bool(torch.isfinite(trained.preprocessor.layer_map.bounds()[1]).all())
    with pytest.raises(Exception, match="x_knots"):
        model.load_state({k: v for k, v in tensors.items() if not k.endswith("x_knots")}, trained.training_state())
