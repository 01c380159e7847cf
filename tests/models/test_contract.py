"""Contract test over every registered :class:`~models.protocol.OnlineModel` kind.

Every kind in :func:`models.registry.registered_kinds` must have an entry in ``CASES``
(small, fast hyperparameters, a buffer factory and the expected sample shapes). A new
model family adds its entry here; the test fails, naming the kind, until it does.

Checked for each kind: it is an ``OnlineModel``; it fits a buffer and reports steps;
``end_buffer`` (SWA/stage update) runs; hyperparameters are JSON and rebuild the model;
the state survives ``write_snapshot``/``load_snapshot`` exactly; samples have the
declared shapes; the same seed gives the same samples (also after loading); and training
resumed from a snapshot continues exactly like an uninterrupted run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from emulator.snapshot import load_snapshot, write_snapshot
from models.protocol import BufferReport, OnlineModel
from models.registry import build_model, registered_kinds


def _events(n: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    mass = 1000 + torch.empty(n).exponential_(1 / 300, generator=generator)
    return {"mass": mass, "is_signal": (torch.rand(n, generator=generator) < 0.01).float(), "event_id": torch.arange(n)}


@dataclass(frozen=True)
class ContractCase:
    """How to exercise one model kind quickly.

    Attributes:
        hyperparameters: small constructor arguments (JSON-serialisable).
        buffer: ``seed -> buffer`` mapping of column to tensor.
        sample_shapes: ``n -> {column: expected shape}`` of ``sample(n, ...)``.
        condition: optional ``n -> condition`` for conditional models.
        n_iter: passes per buffer.
        batch_size: events per step.
    """

    hyperparameters: dict[str, Any]
    buffer: Callable[[int], dict[str, torch.Tensor]]
    sample_shapes: Callable[[int], dict[str, tuple[int, ...]]]
    condition: Callable[[int], dict[str, torch.Tensor]] | None = None
    n_iter: int = 2
    batch_size: int = 64
    probe: Callable[[Any, dict[str, torch.Tensor], int, int], list[dict[str, Any]]] | None = None


def _record_passes(
    model: Any, buffer: dict[str, torch.Tensor], n_iter: int, batch_size: int,
    unpack: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
) -> list[dict[str, Any]]:
    """Per pass: the event order, and per event the noise and the weights a model's probe saw.

    ``unpack`` turns the arguments of the model's ``on_batch`` probe into ``(index, noise,
    weights)`` with events on the last axis of noise and weights (weights may be None).
    """
    passes: list[dict[str, Any]] = []

    def record(pass_index: int, *args: torch.Tensor) -> None:
        index, noise, weights = unpack(*args)
        if pass_index == len(passes):
            passes.append({"order": [], "noise": {}, "weights": {} if weights is not None else None})
        entry = passes[pass_index]
        entry["order"].append(index.clone())
        for k, event in enumerate(index.tolist()):
            entry["noise"][event] = noise[..., k].detach().clone()
            if weights is not None:
                entry["weights"][event] = weights[..., k].detach().clone()

    model.on_batch = record
    model.train_on_buffer(buffer, n_iter, batch_size)
    model.on_batch = None
    for entry in passes:
        entry["order"] = torch.cat(entry["order"])
        events = sorted(entry["noise"])
        entry["noise"] = torch.stack([entry["noise"][e] for e in events], -1)
        if entry["weights"] is not None:
            entry["weights"] = torch.stack([entry["weights"][e] for e in events], -1)
    return passes


def _probe_onlineflow(model: Any, buffer: dict[str, torch.Tensor], n_iter: int, batch_size: int) -> list[dict[str, Any]]:
    """OnlineFlow's probe gets ``(index, inputs (M, b, features), weights (M, b))``; noise = inputs[..., 1:]."""
    return _record_passes(
        model, buffer, n_iter, batch_size,
        lambda index, inputs, weights: (index, inputs[..., 1:].transpose(1, 2), weights),
    )


def _probe_bibae(model: Any, buffer: dict[str, torch.Tensor], n_iter: int, batch_size: int) -> list[dict[str, Any]]:
    """BIB-AE's probe gets ``(index, noise (b, dims))``: the decoder's extra noise, no per-event weights."""
    return _record_passes(model, buffer, n_iter, batch_size, lambda index, noise: (index, noise.T, None))


def _showers(n: int, seed: int) -> dict[str, torch.Tensor]:
    import numpy as np

    from models.shower_data import to_sparse
    from stream.showers.simulator import sample_energies, simulate

    energies = sample_energies(seed, 0, n, 10.0, 100.0).astype(np.float32)
    return to_sparse(torch.from_numpy(energies), torch.from_numpy(simulate("ecal", energies, seed)))


_TINY_BIBAE: dict[str, Any] = {
    "preset": "small", "latent_dims": 4, "noise_dims": 4, "encoder_channels": [2, 4], "encoder_hidden": 16,
    "decoder_hidden": 16, "decoder_coarse_channels": 2, "decoder_channels": [4, 2], "critic_channels": 2,
    "critic_hidden": 8, "latent_critic_hidden": 4, "post_processor_channels": 4, "post_processor_layers": 1,
    "mmd_top": 100, "main_buffers": 1, "pp_identity_buffers": 1, "pp_buffers": 1, "critic_steps": 2, "seed": 3,
}


_TINY_LAYERFLOW: dict[str, Any] = {
    "layer_blocks": 1, "layer_hidden": 8, "shower_blocks": 1, "shower_hidden": 8, "shower_context_embedding": 4,
    "student_layer_blocks": 1, "student_layer_hidden": 8, "student_blocks": 1, "student_hidden": 8,
    "student_context_embedding": 4, "main_buffers": 1, "student_buffers": 1, "seed": 5,
}


def _probe_layerflow(model: Any, buffer: dict[str, torch.Tensor], n_iter: int, batch_size: int) -> list[dict[str, Any]]:
    """The shower flows' probe gets ``(index, dequantisation noise (b, cells))``, no per-event weights."""
    return _record_passes(model, buffer, n_iter, batch_size, lambda index, noise: (index, noise.T, None))


CASES: dict[str, ContractCase] = {
    "onlineflow": ContractCase(
        hyperparameters={"n_members": 3, "n_blocks": 2, "hidden_features": 8, "noise_dims": 1, "swa_start": 0, "seed": 4},
        buffer=lambda seed: _events(256, seed),
        sample_shapes=lambda n: {"mass": (3, n)},
        probe=_probe_onlineflow,
    ),
    "bibae": ContractCase(
        hyperparameters=_TINY_BIBAE,
        buffer=lambda seed: _showers(16, seed),
        sample_shapes=lambda n: {"showers": (n, 30, 10, 10), "incident_energy": (n,)},
        condition=lambda n: {"incident_energy": torch.linspace(15.0, 85.0, n)},
        batch_size=8,
        probe=_probe_bibae,
    ),
    "layerflow": ContractCase(
        hyperparameters=_TINY_LAYERFLOW,
        buffer=lambda seed: _showers(16, seed),
        sample_shapes=lambda n: {"showers": (n, 30, 10, 10), "incident_energy": (n,), "layer_energy": (n, 30)},
        condition=lambda n: {"incident_energy": torch.linspace(15.0, 85.0, n)},
        batch_size=8,
        probe=_probe_layerflow,
    ),
    # A variant of a kind ("kind:variant"): the same contract with other hyperparameters.
    "onlineflow:rq_spline": ContractCase(
        hyperparameters={"n_members": 3, "n_blocks": 2, "hidden_features": 8, "noise_dims": 1, "swa_start": 0, "seed": 4,
                         "transform": "rq_spline", "n_bins": 4},
        buffer=lambda seed: _events(256, seed),
        sample_shapes=lambda n: {"mass": (3, n)},
        probe=_probe_onlineflow,
    ),
    "layerflow:rq_spline": ContractCase(
        hyperparameters={**_TINY_LAYERFLOW, "shower_transform": "rq_spline", "shower_bins": 3,
                         "student_transform": "rq_spline", "student_bins": 3},
        buffer=lambda seed: _showers(16, seed),
        sample_shapes=lambda n: {"showers": (n, 30, 10, 10), "incident_energy": (n,), "layer_energy": (n, 30)},
        condition=lambda n: {"incident_energy": torch.linspace(15.0, 85.0, n)},
        batch_size=8,
        probe=_probe_layerflow,
    ),
    # The trainer tests' tiny Gaussian (tests/emulator/gaussian_model.py) obeys the contract too.
    "test-gaussian": ContractCase(
        hyperparameters={"columns": ["mass"], "learning_rate": 1e-4, "seed": 2},
        buffer=lambda seed: {"mass": 1 + torch.randn(256, generator=torch.Generator().manual_seed(seed))},
        sample_shapes=lambda n: {"mass": (n,)},
    ),
}


VARIANTS = [key for key in CASES if ":" in key]


def _registered(kind: str) -> str:
    """The registry kind of a case key (``"onlineflow:rq_spline"`` -> ``"onlineflow"``)."""
    return kind.split(":", 1)[0]


def _case(kind: str) -> ContractCase:
    if kind not in CASES:
        pytest.fail(f"model kind {kind!r} is registered but has no entry in CASES of {__file__}")
    return CASES[kind]


def _train(model: OnlineModel, case: ContractCase, seed: int) -> BufferReport:
    report = model.train_on_buffer(case.buffer(seed), case.n_iter, case.batch_size)
    model.end_buffer()
    return report


def _sample(model: OnlineModel, case: ContractCase, n: int, seed: int) -> dict[str, torch.Tensor]:
    condition = case.condition(n) if case.condition else None
    return model.sample(n, seed=seed, condition=condition)


def _assert_same_state(a: OnlineModel, b: OnlineModel) -> None:
    assert a.training_state() == b.training_state()
    tensors_a, tensors_b = a.state_tensors(), b.state_tensors()
    assert set(tensors_a) == set(tensors_b)
    for key, value in tensors_a.items():
        assert torch.equal(value.cpu(), tensors_b[key].cpu()), f"state tensor {key!r} differs"


@pytest.fixture(params=registered_kinds() + VARIANTS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


def test_kind_is_listed() -> None:
    assert "onlineflow" in registered_kinds()


def test_fit_swa_snapshot_sample(kind: str, tmp_path: Path) -> None:
    case = _case(kind)
    model = build_model(_registered(kind), case.hyperparameters)
    assert isinstance(model, OnlineModel)
    assert model.kind == _registered(kind)
    report = _train(model, case, seed=0)
    assert isinstance(report, BufferReport)
    assert report.steps > 0
    assert torch.isfinite(torch.tensor(report.loss))

    hyperparameters = json.loads(json.dumps(model.hyperparameters()))
    json.dumps(model.training_state())
    assert build_model(_registered(kind), hyperparameters).hyperparameters() == model.hyperparameters()

    write_snapshot(tmp_path / "snapshot", model, {"events_seen": 256})
    loaded = load_snapshot(tmp_path / "snapshot").model
    assert loaded.kind == _registered(kind)
    _assert_same_state(model, loaded)

    samples = _sample(model, case, 17, seed=5)
    assert {k: tuple(v.shape) for k, v in samples.items()} == case.sample_shapes(17)
    assert all(torch.isfinite(v).all() for v in samples.values())
    again = _sample(model, case, 17, seed=5)
    from_loaded = _sample(loaded, case, 17, seed=5)
    other_seed = _sample(model, case, 17, seed=6)
    for column, values in samples.items():
        assert torch.equal(values, again[column]), column
        assert torch.equal(values.cpu(), from_loaded[column].cpu()), column
        if column not in (case.condition(17) if case.condition else {}):  # a condition comes back as given
            assert not torch.equal(values, other_seed[column]), column


def test_resume_from_snapshot_is_exact(kind: str, tmp_path: Path) -> None:
    case = _case(kind)
    straight = build_model(_registered(kind), case.hyperparameters)
    interrupted = build_model(_registered(kind), case.hyperparameters)
    _train(straight, case, seed=0)
    _train(interrupted, case, seed=0)
    write_snapshot(tmp_path / "snapshot", interrupted, {})
    resumed = load_snapshot(tmp_path / "snapshot").model
    _train(straight, case, seed=1)
    _train(resumed, case, seed=1)
    _assert_same_state(straight, resumed)


def test_stop_callback_ends_the_buffer(kind: str) -> None:
    """``stop`` is asked after every pass; stopping after k passes equals ``n_iter = k``."""
    case = _case(kind)
    asked: list[int] = []
    capped, stopped = (build_model(_registered(kind), case.hyperparameters) for _ in range(2))
    full = capped.train_on_buffer(case.buffer(0), 2, case.batch_size)
    early = stopped.train_on_buffer(case.buffer(0), 5, case.batch_size, stop=lambda done: asked.append(done) or done >= 2)
    assert asked == [1, 2]
    assert full.passes == early.passes == 2
    assert early.steps == full.steps
    _assert_same_state(capped, stopped)
    assert model_device(capped) == torch.device("cpu")
    capped.end_buffer()
    metrics = capped.after_buffer(case.buffer(0))
    assert all(isinstance(v, float) for v in metrics.values())


def model_device(model: OnlineModel) -> torch.device:
    """The protocol's ``device`` (a property or an attribute)."""
    return torch.device(model.device)


def test_passes_differ_in_order_and_noise_agree_in_weights(kind: str) -> None:
    """Two passes over one buffer: a new order and new noise, the same bootstrap weights."""
    case = _case(kind)
    if case.probe is None:
        pytest.skip(f"{kind} draws no per-event weights or noise")
    model = build_model(_registered(kind), case.hyperparameters)
    passes = case.probe(model, case.buffer(0), 2, case.batch_size)
    assert len(passes) == 2
    first, second = passes
    assert not torch.equal(first["order"], second["order"])
    assert torch.equal(first["order"].sort().values, second["order"].sort().values)
    if first["noise"] is not None:
        assert not torch.equal(first["noise"], second["noise"])
    if first["weights"] is not None:
        assert torch.equal(first["weights"], second["weights"]), "bootstrap weights changed between passes"


def test_same_seed_same_training(kind: str) -> None:
    case = _case(kind)
    first, second = (build_model(_registered(kind), case.hyperparameters) for _ in range(2))
    assert _train(first, case, seed=0).loss == _train(second, case, seed=0).loss
    _assert_same_state(first, second)
