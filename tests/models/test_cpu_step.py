"""The compiled CPU step of the affine OnlineFlow (models/flows/maf_step.c) against torch.

The kernel must do what the torch path does: the same gradients (checked through Adam's
first moment after one step, which is (1 - beta1) * gradient), the same Adam update, the
masked weights and moments kept at exactly zero, the same losses, and a pass of several
batches equal to the batches stepped one by one. Tolerances are float32 rounding of
differently ordered sums: 1e-5 of the largest gradient, 1e-5 relative on losses.
"""

from __future__ import annotations

import copy
from itertools import pairwise

import pytest
import torch

from models.flows import cpu_step
from models.flows.batched_maf import BatchedMAF
from models.flows.ensemble import OnlineFlowEnsemble
from models.flows.spline_maf import BatchedSplineMAF

pytestmark = pytest.mark.skipif(cpu_step.kernel_library() is None, reason="no C compiler for the step kernel")

SHAPES = [
    # members, features, blocks, hidden, hidden layers, events
    (20, 4, 5, 32, 2, 250),  # the paper's settings
    (3, 2, 2, 10, 1, 37),  # hidden not a multiple of 4, events not of 16, one hidden layer
    (2, 6, 3, 13, 3, 50),  # three hidden layers
    (1, 1, 1, 8, 2, 16),  # one feature: every weight but the biases is masked
]


def _pair(shape: tuple[int, ...], lr: float = 1e-3) -> tuple[BatchedMAF, torch.optim.Adam, BatchedMAF, torch.optim.Adam]:
    m, d, b, h, layers, _ = shape
    flow = BatchedMAF(m, d, b, h, layers, generator=torch.Generator().manual_seed(3))
    twin = copy.deepcopy(flow)
    return (flow, torch.optim.Adam(flow.parameters(), lr=lr, fused=True),
            twin, torch.optim.Adam(twin.parameters(), lr=lr, fused=True))


def _batch(shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    m, d, _, _, _, n = shape
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(m, n, d, generator=generator) * 1.5
    w = torch.poisson(torch.ones(m, n), generator=generator)
    return x, w


def _torch_step(flow: BatchedMAF, optimizer: torch.optim.Adam, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    loss = (w * flow.log_prob(x)).sum(dim=1).div_(-x.shape[1])
    optimizer.zero_grad(set_to_none=True)
    loss.sum().backward()
    optimizer.step()
    return loss.detach()


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_one_step_has_torchs_gradient_update_and_loss(shape: tuple[int, ...]) -> None:
    flow, optimizer, twin, twin_optimizer = _pair(shape)
    x, w = _batch(shape, seed=1)
    expected_loss = _torch_step(flow, optimizer, x, w)
    kernel = cpu_step.step_kernel(twin, twin_optimizer)
    assert kernel is not None
    loss = kernel.step(x, w)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-5, atol=1e-5)
    for p, q in zip(flow.layers, twin.layers, strict=True):
        state, twin_state = optimizer.state[p], twin_optimizer.state[q]
        assert float(twin_state["step"]) == float(state["step"]) == 1.0
        gradient = p.grad
        scale = float(gradient.abs().max()) + 1e-12
        torch.testing.assert_close(twin_state["exp_avg"], state["exp_avg"], rtol=0, atol=1e-5 * scale)
        torch.testing.assert_close(twin_state["exp_avg_sq"], state["exp_avg_sq"], rtol=0, atol=1e-5 * scale**2)
        # Adam's first step moves every weight with a clear gradient by lr * sign(gradient).
        clear = gradient.abs() > 1e-3 * scale
        torch.testing.assert_close(q.detach()[clear], p.detach()[clear], rtol=0, atol=1e-6)
    for parameter, mask in twin._masked():
        assert torch.all(parameter.detach()[mask == 0] == 0)
        state = twin_optimizer.state[parameter]
        assert torch.all(state["exp_avg"][mask == 0] == 0)
        assert torch.all(state["exp_avg_sq"][mask == 0] == 0)


def test_a_pass_equals_its_batches_stepped_one_by_one() -> None:
    """Ten batches with a short last one, members stepped in one call vs ten torch steps."""
    shape = (4, 4, 3, 16, 2, 0)
    flow, optimizer, twin, twin_optimizer = _pair(shape, lr=1e-4)
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(4, 930, 4, generator=generator)
    w = torch.poisson(torch.ones(4, 930), generator=generator)
    starts = [*range(0, 930, 100), 930]
    expected = torch.stack([_torch_step(flow, optimizer, x[:, a:b], w[:, a:b]) for a, b in pairwise(starts)])
    kernel = cpu_step.step_kernel(twin, twin_optimizer)
    assert kernel is not None
    losses = kernel.train_pass(x, w, starts)
    assert losses.shape == (10, 4)
    torch.testing.assert_close(losses, expected, rtol=1e-5, atol=1e-5)
    for p, q in zip(flow.layers, twin.layers, strict=True):
        torch.testing.assert_close(q.detach(), p.detach(), rtol=0, atol=2e-5)  # 10 steps of 1e-4 at most 1e-3
        assert float(twin_optimizer.state[q]["step"]) == 10.0
    probe = torch.randn(4, 500, 4, generator=generator)
    torch.testing.assert_close(twin.log_prob(probe), flow.log_prob(probe), rtol=1e-5, atol=1e-4)


def test_bad_batches_are_refused_and_change_nothing() -> None:
    flow, _, twin, twin_optimizer = _pair((2, 3, 1, 8, 2, 0))
    kernel = cpu_step.step_kernel(twin, twin_optimizer)
    assert kernel is not None
    x, w = torch.randn(2, 20, 3), torch.ones(2, 20)
    with pytest.raises(ValueError, match="boundaries"):
        kernel.train_pass(x, w, [0, 10, 10, 20])
    with pytest.raises(ValueError, match="inputs must be"):
        kernel.train_pass(torch.randn(2, 20, 4), w, [0, 20])
    for p, q in zip(flow.layers, twin.layers, strict=True):
        assert torch.equal(p, q)


def _train(monkeypatch: pytest.MonkeyPatch, step: str, threads: int = 2) -> OnlineFlowEnsemble:
    monkeypatch.setenv("ONLINEFLOW_STEP", step)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = OnlineFlowEnsemble(n_members=4, n_blocks=3, hidden_features=16, learning_rate=1e-3, seed=2)
        generator = torch.Generator().manual_seed(0)
        for _ in range(2):
            mass = torch.exp(torch.randn(1200, generator=generator) * 0.3 + 7.0)
            model.train_on_buffer({"mass": mass}, n_iter=3, batch_size=250)
            model.end_buffer()
    finally:
        torch.set_num_threads(previous)
    return model


def test_ensemble_training_is_the_same_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same seed: the kernel run equals itself bit for bit (1 or 2 threads: members are
    independent and each is computed by one thread), and the torch run to rounding."""
    kernel_run = _train(monkeypatch, "kernel")
    again = _train(monkeypatch, "kernel", threads=1)
    torch_run = _train(monkeypatch, "torch")
    assert torch.equal(kernel_run.weights("live"), again.weights("live"))
    assert kernel_run.steps == torch_run.steps == 2 * 3 * 5
    probe = {"mass": torch.exp(torch.randn(2000, generator=torch.Generator().manual_seed(9)) * 0.3 + 7.0)}
    torch.testing.assert_close(kernel_run.log_prob(probe, noise_samples=2), torch_run.log_prob(probe, noise_samples=2),
                               rtol=1e-4, atol=1e-3)


def test_the_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = BatchedMAF(2, 3, 1, 8)
    optimizer = torch.optim.Adam(flow.parameters(), fused=True)
    monkeypatch.setenv("ONLINEFLOW_STEP", "torch")
    assert cpu_step.step_kernel(flow, optimizer) is None
    monkeypatch.setenv("ONLINEFLOW_STEP", "fast")
    with pytest.raises(ValueError, match="ONLINEFLOW_STEP must be one of"):
        cpu_step.step_kernel(flow, optimizer)
    monkeypatch.setenv("ONLINEFLOW_STEP", "kernel")
    spline = BatchedSplineMAF(2, 3, 1, 8)
    with pytest.raises(RuntimeError, match="not an affine BatchedMAF"):
        cpu_step.step_kernel(spline, torch.optim.Adam(spline.parameters()))
    decayed = torch.optim.Adam(flow.parameters(), weight_decay=0.1)
    with pytest.raises(RuntimeError, match="weight decay"):
        cpu_step.step_kernel(flow, decayed)
    monkeypatch.setenv("ONLINEFLOW_STEP", "auto")
    assert cpu_step.step_kernel(spline, torch.optim.Adam(spline.parameters())) is None
    assert cpu_step.step_kernel(flow, optimizer) is not None


def test_without_a_compiler_the_torch_step_runs(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("TRIGGER_EMULATOR_CACHE", str(tmp_path / "cache"))
    cpu_step.kernel_library.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="training uses the torch step"):
            assert cpu_step.kernel_library() is None
        flow = BatchedMAF(2, 3, 1, 8)
        monkeypatch.setenv("ONLINEFLOW_STEP", "auto")
        assert cpu_step.step_kernel(flow, torch.optim.Adam(flow.parameters(), fused=True)) is None
    finally:
        cpu_step.kernel_library.cache_clear()
