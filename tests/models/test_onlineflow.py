"""OnlineFlowEnsemble: learning, reproducibility, exact resume, sampling, errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from emulator.snapshot import load_snapshot, write_snapshot
from models.flows.ensemble import OnlineFlowEnsemble
from models.flows.nflows_bridge import load_member_into_nflows
from models.protocol import OnlineModel

SMALL = {"n_members": 3, "n_blocks": 2, "hidden_features": 16, "noise_dims": 1, "swa_start": 0}


def _buffer(n: int, seed: int, log_mean: float = 7.0, log_std: float = 0.3) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    mass = torch.exp(torch.randn(n, generator=generator) * log_std + log_mean)
    return {"mass": mass, "is_signal": torch.zeros(n), "event_id": torch.arange(n, dtype=torch.float64)}


def test_is_an_online_model_with_readable_repr() -> None:
    model = OnlineFlowEnsemble(**SMALL)
    assert isinstance(model, OnlineModel)
    text = repr(model)
    for setting in ("n_members=3", "noise_dims=1", "learning_rate=1e-05", "columns=['mass']"):
        assert setting in text


def test_learns_a_log_normal_mass_spectrum() -> None:
    """Tolerance: |mean log m - 7| < 0.03, |std log m - 0.3| < 0.03, NLL within 0.05 nats."""
    model = OnlineFlowEnsemble(**{**SMALL, "learning_rate": 3e-3}, seed=1)
    for buffer in range(4):
        model.train_on_buffer(_buffer(2000, seed=buffer), n_iter=3, batch_size=100)
        model.end_buffer()
    samples = model.sample(20_000, seed=0)["mass"].log()
    assert samples.shape == (3, 20_000)
    assert torch.all((samples.mean(dim=1) - 7.0).abs() < 0.03)
    assert torch.all((samples.std(dim=1) - 0.3).abs() < 0.03)
    # Density in physical units: compare with the true log-normal density on fresh events.
    test = _buffer(4000, seed=99)
    log_mass = test["mass"].log()
    true = -0.5 * ((log_mass - 7.0) / 0.3) ** 2 - math.log(0.3 * math.sqrt(2 * math.pi)) - log_mass
    learned = model.log_prob(test, noise_samples=8)
    assert learned.shape == (3, 4000)
    assert torch.all((learned.mean(dim=1) - true.mean()).abs() < 0.05)


def test_learns_a_falling_exponential_spectrum() -> None:
    """A dijet-like falling spectrum with a hard edge (harder for a flow in log space).

    Tolerance: the 25/50/75/90 % quantiles of ``m - 1000`` within 30 % of the truth and
    the mean NLL within 0.3 nats of the true entropy ``1 + ln 300``; an untrained flow
    misses both by far (checked below).
    """
    model = OnlineFlowEnsemble(n_members=3, n_blocks=3, hidden_features=16, noise_dims=1, learning_rate=3e-3, seed=1)
    untrained = OnlineFlowEnsemble(n_members=3, n_blocks=3, hidden_features=16, noise_dims=1, seed=1)
    for buffer in range(6):
        generator = torch.Generator().manual_seed(buffer)
        mass = 1000 + torch.empty(2000).exponential_(1 / 300, generator=generator)
        model.train_on_buffer({"mass": mass}, n_iter=3, batch_size=100)
        model.end_buffer()
        if buffer == 0:
            untrained.scaler = model.scaler  # same preprocessing, untrained weights
    levels = torch.tensor([0.25, 0.5, 0.75, 0.9])
    truth = -300 * torch.log(1 - levels)
    quantiles = torch.quantile(model.sample(20_000, seed=0)["mass"] - 1000, levels, dim=1)
    assert torch.all((quantiles / truth[:, None] - 1).abs() < 0.3), quantiles
    mass = 1000 + torch.empty(4000).exponential_(1 / 300, generator=torch.Generator().manual_seed(99))
    entropy = 1 + math.log(300)
    assert torch.all((-model.log_prob({"mass": mass}, noise_samples=8).mean(dim=1) - entropy).abs() < 0.3)
    assert torch.all(-untrained.log_prob({"mass": mass}).mean(dim=1) - entropy > 0.5)


def test_log_prob_matches_nflows_in_the_preprocessed_space() -> None:
    model = OnlineFlowEnsemble(**SMALL)
    model.train_on_buffer(_buffer(300, seed=0), n_iter=1, batch_size=100)
    model.end_buffer()
    inputs = torch.randn(40, 2)
    ours = model.flow_log_prob(inputs)  # SWA weights after one buffer with swa_start=0
    for member in range(3):
        flow = load_member_into_nflows(model.flow, member, flat=model.weights("swa"))
        torch.testing.assert_close(ours[member], flow.log_prob(inputs).detach(), atol=1e-5, rtol=0)


def test_same_seed_same_numbers_and_different_seed_differs() -> None:
    outputs = []
    for seed in (0, 0, 1):
        model = OnlineFlowEnsemble(**SMALL, seed=seed)
        report = model.train_on_buffer(_buffer(500, seed=5), n_iter=2, batch_size=64)
        model.end_buffer()
        outputs.append((report.loss, model.sample(100, seed=3)["mass"], model.state_tensors()))
    assert outputs[0][0] == outputs[1][0]
    assert torch.equal(outputs[0][1], outputs[1][1])
    assert all(torch.equal(v, outputs[1][2][k]) for k, v in outputs[0][2].items())
    assert not torch.equal(outputs[0][1], outputs[2][1])
    model = OnlineFlowEnsemble(**SMALL)
    assert torch.equal(model.sample(50, seed=4)["mass"], model.sample(50, seed=4)["mass"])
    assert not torch.equal(model.sample(50, seed=4)["mass"], model.sample(50, seed=5)["mass"])


def test_resume_from_state_is_exact() -> None:
    straight = OnlineFlowEnsemble(**SMALL)
    first = OnlineFlowEnsemble(**SMALL)
    for model in (straight, first):
        model.train_on_buffer(_buffer(300, seed=0), n_iter=2, batch_size=64)
        model.end_buffer()
    resumed = OnlineFlowEnsemble(**first.hyperparameters())
    resumed.load_state(first.state_tensors(), first.training_state())
    for model in (straight, resumed):
        model.train_on_buffer(_buffer(300, seed=1), n_iter=2, batch_size=64)
        model.end_buffer()
    assert straight.training_state() == resumed.training_state()
    expected = straight.state_tensors()
    assert set(expected) == set(resumed.state_tensors())
    for key, value in resumed.state_tensors().items():
        assert torch.equal(value, expected[key]), key


def test_swa_is_the_mean_of_end_of_buffer_weights_after_warm_up() -> None:
    model = OnlineFlowEnsemble(**{**SMALL, "swa_start": 1, "learning_rate": 1e-3})
    seen = []
    for buffer in range(3):
        model.train_on_buffer(_buffer(200, seed=buffer), n_iter=1, batch_size=50)
        model.end_buffer()
        seen.append(model.flow.flat_weights())
    assert model.swa.count == 2
    torch.testing.assert_close(model.weights("swa"), torch.stack(seen[1:]).mean(dim=0), atol=1e-6, rtol=1e-5)
    assert torch.equal(model.weights("auto"), model.weights("swa"))
    assert not torch.equal(model.weights("live"), model.weights("swa"))


def test_train_report_and_ignored_columns() -> None:
    model = OnlineFlowEnsemble(**SMALL)
    report = model.train_on_buffer(_buffer(250, seed=0), n_iter=2, batch_size=100)
    assert report.steps == 6  # 3 batches (100, 100, 50) per pass
    assert math.isfinite(report.loss)
    assert report.metrics["loss_member_min"] <= report.loss <= report.metrics["loss_member_max"]
    assert model.training_state()["events_trained"] == 500


def test_multiple_columns_and_no_noise() -> None:
    model = OnlineFlowEnsemble(columns=["mass", "mj1"], log_columns=["mass"], noise_dims=0, n_members=2, n_blocks=1)
    data = {"mass": torch.rand(100) + 1, "mj1": torch.randn(100)}
    model.train_on_buffer(data, n_iter=1, batch_size=50)
    samples = model.sample(30, seed=0)
    assert set(samples) == {"mass", "mj1"}
    assert samples["mass"].shape == samples["mj1"].shape == (2, 30)
    assert torch.all(samples["mass"] > 0)
    assert model.log_prob(torch.stack([data["mass"], data["mj1"]], dim=1)).shape == (2, 100)


def test_sample_in_chunks_is_shaped_and_positive() -> None:
    model = OnlineFlowEnsemble(**SMALL)
    model.train_on_buffer(_buffer(200, seed=0), n_iter=1, batch_size=100)
    samples = model.sample(1001, seed=2, chunk_size=100)["mass"]
    assert samples.shape == (3, 1001)
    assert torch.all(samples > 0)
    assert torch.all(torch.isfinite(samples))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("n_members", 0),
        ("n_blocks", -1),
        ("hidden_features", 2.5),
        ("n_hidden_layers", 0),
        ("noise_dims", -1),
        ("learning_rate", 0.0),
        ("learning_rate", float("nan")),
        ("swa_start", -1),
        ("seed", -3),
        ("columns", "mass"),
        ("columns", []),
        ("log_columns", ["pt"]),
        ("device", "not-a-device"),
    ],
)
def test_bad_hyperparameters_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=repr(key)):
        OnlineFlowEnsemble(**{key: value})  # type: ignore[arg-type]


def test_bad_inputs_name_the_problem() -> None:
    model = OnlineFlowEnsemble(**SMALL)
    with pytest.raises(ValueError, match="lacks feature column"):
        model.train_on_buffer({"pt": torch.ones(10)}, 1, 5)
    with pytest.raises(ValueError, match="log column 'mass' needs positive values"):
        model.train_on_buffer({"mass": torch.tensor([1.0, -2.0])}, 1, 5)
    with pytest.raises(ValueError, match="non-finite"):
        model.train_on_buffer({"mass": torch.tensor([1.0, float("nan")])}, 1, 5)
    with pytest.raises(ValueError, match="no events"):
        model.train_on_buffer({"mass": torch.ones(0)}, 1, 5)
    with pytest.raises(ValueError, match="'batch_size'"):
        model.train_on_buffer({"mass": torch.ones(4)}, 1, 0)
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(5, seed=0, condition={"incident_energy": torch.ones(5)})
    with pytest.raises(ValueError, match="no SWA update"):
        model.weights("swa")


# ---------------------------------------------------------------- online bootstrap per event
def _weights_per_pass(model: OnlineFlowEnsemble, buffer: dict[str, torch.Tensor], n_iter: int,
                      stop: object = None) -> list[torch.Tensor]:
    """(members, events) weight matrix each event got in each pass over ``buffer``."""
    n = len(buffer["mass"])
    per_pass: list[torch.Tensor] = []
    seen: list[torch.Tensor] = []

    def record(pass_index: int, index: torch.Tensor, inputs: torch.Tensor, weights: torch.Tensor) -> None:
        while len(per_pass) <= pass_index:
            per_pass.append(torch.full((model.n_members, n), float("nan")))
            seen.append(torch.zeros(n, dtype=torch.long))
        per_pass[pass_index][:, index] = weights
        seen[pass_index][index] += 1

    model.on_batch = record
    model.train_on_buffer(buffer, n_iter, 100, stop=stop)  # type: ignore[arg-type]
    model.on_batch = None
    for count in seen:
        assert torch.equal(count, torch.ones(n, dtype=torch.long)), "every event exactly once per pass"
    return per_pass


def _mass_buffer(n: int, seed: int) -> dict[str, torch.Tensor]:
    return {"mass": 1 + torch.empty(n).exponential_(generator=torch.Generator().manual_seed(seed))}


def test_bootstrap_weight_of_an_event_is_held_for_all_passes() -> None:
    model = OnlineFlowEnsemble(n_members=8, n_blocks=1, hidden_features=4, seed=3)
    passes = _weights_per_pass(model, _mass_buffer(1000, 0), n_iter=4)
    assert len(passes) == 4
    for later in passes[1:]:
        assert torch.equal(passes[0], later)
    # The total weight an event gets over the buffer is Poisson(1) x N_iter, not Poisson(N_iter):
    # its relative spread stays 1 however many passes.
    total = torch.stack(passes).sum(0)
    relative_spread = (total.std() / total.mean()).item()
    assert relative_spread == pytest.approx(1.0, abs=0.05)


def test_bootstrap_weights_are_poisson_one_independent_across_members_and_events() -> None:
    model = OnlineFlowEnsemble(n_members=20, n_blocks=1, hidden_features=4, seed=5)
    weights = _weights_per_pass(model, _mass_buffer(5000, 1), n_iter=1)[0]  # (20, 5000)
    n = weights.numel()
    # Poisson(1): mean 1 and variance 1; standard errors 1/sqrt(n) and sqrt(2)/sqrt(n) about.
    assert weights.mean().item() == pytest.approx(1.0, abs=5 / n**0.5)
    assert weights.var().item() == pytest.approx(1.0, abs=5 * 1.5 / n**0.5)
    assert (weights == 0).float().mean().item() == pytest.approx(math.exp(-1), abs=5 * 0.5 / n**0.5)
    # Per event across members: mean 1, variance 1 (averaged over events).
    assert weights.var(dim=0).mean().item() == pytest.approx(1.0, abs=0.03)
    # Independent across members and across events: correlations compatible with 0.
    member_corr = torch.corrcoef(weights)
    off_diagonal = member_corr[~torch.eye(20, dtype=torch.bool)]
    assert off_diagonal.abs().max().item() < 5 / 5000**0.5
    event_corr = torch.corrcoef(weights.T[:200])
    assert event_corr[~torch.eye(200, dtype=torch.bool)].abs().mean().item() < 0.2


def test_bootstrap_none_gives_every_event_weight_one_in_every_pass() -> None:
    model = OnlineFlowEnsemble(n_members=2, n_blocks=1, hidden_features=4, seed=3, bootstrap="none")
    passes = _weights_per_pass(model, _mass_buffer(500, 0), n_iter=3)
    assert all(torch.equal(p, torch.ones(2, 500)) for p in passes)


def test_adaptive_passes_keep_the_weights_and_change_order_and_noise() -> None:
    model = OnlineFlowEnsemble(n_members=4, n_blocks=1, hidden_features=4, seed=7)
    passes = _weights_per_pass(model, _mass_buffer(600, 2), n_iter=10, stop=lambda done: done >= 3)
    assert len(passes) == 3
    assert all(torch.equal(passes[0], p) for p in passes)


def test_bootstrap_weights_differ_between_buffers_and_survive_resume(tmp_path: Path) -> None:
    hyper = {"n_members": 5, "n_blocks": 1, "hidden_features": 4, "seed": 11, "swa_start": 0}
    straight = OnlineFlowEnsemble(**hyper)
    first = _weights_per_pass(straight, _mass_buffer(500, 3), n_iter=2)[0]
    straight.end_buffer()
    write_snapshot(tmp_path / "snap", straight, {})
    resumed = load_snapshot(tmp_path / "snap").model
    assert isinstance(resumed, OnlineFlowEnsemble)
    second_straight = _weights_per_pass(straight, _mass_buffer(500, 4), n_iter=2)[0]
    second_resumed = _weights_per_pass(resumed, _mass_buffer(500, 4), n_iter=2)[0]
    assert torch.equal(second_straight, second_resumed)
    assert not torch.equal(first, second_straight)
    assert torch.equal(straight.weights("live"), resumed.weights("live"))


def test_per_member_batch_order_shuffles_each_member_and_keeps_its_event_weights() -> None:
    n, members = 600, 6
    model = OnlineFlowEnsemble(n_members=members, n_blocks=1, hidden_features=4, seed=11, batch_order="per_member")
    per_pass: list[torch.Tensor] = []
    orders: list[list[torch.Tensor]] = []

    def record(pass_index: int, index: torch.Tensor, inputs: torch.Tensor, weights: torch.Tensor) -> None:
        assert index.shape == weights.shape == (members, inputs.shape[1])
        while len(per_pass) <= pass_index:
            per_pass.append(torch.full((members, n), float("nan")))
            orders.append([])
        per_pass[pass_index].scatter_(1, index, weights)
        orders[pass_index].append(index)
        # the data column each member sees is its own event's
        expected = model.scaler.forward(model.scaler.stack(buffer))[index][..., 0]
        assert torch.equal(inputs[..., 0], expected)

    buffer = _mass_buffer(n, 4)
    model.on_batch = record
    model.train_on_buffer(buffer, 3, 100)
    model.on_batch = None
    assert len(per_pass) == 3
    for k, pass_orders in enumerate(orders):
        order = torch.cat(pass_orders, dim=1)
        for m in range(members):  # every event exactly once per member and pass
            assert torch.equal(order[m].sort().values, torch.arange(n))
        assert not torch.equal(order[0], order[1]), "members shuffle on their own"
        if k:
            assert not torch.equal(order, torch.cat(orders[0], dim=1)), "a new order every pass"
    for later in per_pass[1:]:  # an event keeps its Poisson(1) weight for every pass, per member
        assert torch.equal(per_pass[0], later)
    assert per_pass[0].mean().item() == pytest.approx(1.0, abs=0.1)


def test_batch_order_is_checked_and_kept_in_the_hyperparameters() -> None:
    with pytest.raises(ValueError, match="batch_order"):
        OnlineFlowEnsemble(n_members=2, n_blocks=1, hidden_features=4, batch_order="random")
    model = OnlineFlowEnsemble(n_members=2, n_blocks=1, hidden_features=4, batch_order="per_member")
    assert model.hyperparameters()["batch_order"] == "per_member"
