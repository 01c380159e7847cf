"""BatchedSplineMAF and its rational-quadratic spline: equal to nflows, invertible, learns peaks."""

from __future__ import annotations

import pytest
import torch

from models.flows.ensemble import OnlineFlowEnsemble
from models.flows.spline_maf import BatchedSplineMAF, rational_quadratic_spline


def _perturbed(features: int, n_blocks: int, hidden: int, layers: int, n_bins: int, members: int = 3) -> BatchedSplineMAF:
    generator = torch.Generator().manual_seed(3)
    maf = BatchedSplineMAF(members, features, n_blocks, hidden, layers, n_bins=n_bins, tail_bound=3.0, generator=generator)
    with torch.no_grad():
        for tensor in maf.tensors.values():
            tensor.add_(0.3 * torch.randn(tensor.shape, generator=generator))
    return maf


def _nflows_member(maf: BatchedSplineMAF, member: int):  # noqa: ANN202 (nflows has no types)
    from nflows.distributions import StandardNormal
    from nflows.flows import Flow
    from nflows.transforms import CompositeTransform, ReversePermutation
    from nflows.transforms.autoregressive import (
        MaskedPiecewiseRationalQuadraticAutoregressiveTransform,
    )

    transforms = []
    for _ in range(maf.n_blocks):
        transforms += [
            ReversePermutation(maf.features),
            MaskedPiecewiseRationalQuadraticAutoregressiveTransform(
                maf.features, maf.hidden_features, num_bins=maf.n_bins, tails="linear", tail_bound=maf.tail_bound,
                num_blocks=maf.n_hidden_layers - 1, use_residual_blocks=False,
            ),
        ]
    flow = Flow(CompositeTransform(transforms), StandardNormal([maf.features]))
    w = maf.unflatten(maf.flat_weights())
    with torch.no_grad():
        for b in range(maf.n_blocks):
            net = flow._transform._transforms[2 * b + 1].autoregressive_net
            net.initial_layer.weight.copy_(w["input.weight"][b, member])
            net.initial_layer.bias.copy_(w["input.bias"][b, member])
            for k, block in enumerate(net.blocks):
                block.linear.weight.copy_(w["hidden.weight"][b, k, member])
                block.linear.bias.copy_(w["hidden.bias"][b, k, member])
            net.final_layer.weight.copy_(w["output.weight"][b, member])
            net.final_layer.bias.copy_(w["output.bias"][b, member])
    return flow


@pytest.mark.parametrize(("features", "n_blocks", "hidden", "layers", "n_bins"), [(4, 3, 16, 2, 6), (2, 2, 8, 3, 3), (1, 1, 4, 1, 2)])
def test_log_prob_equals_nflows_member_by_member(features: int, n_blocks: int, hidden: int, layers: int, n_bins: int) -> None:
    maf = _perturbed(features, n_blocks, hidden, layers, n_bins).double()  # float64: exact comparison
    x = torch.randn(300, features, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 1.5
    x[:5] *= 4  # some points in the identity tails
    ours = maf.log_prob(x).detach()
    for member in range(maf.n_members):
        reference = _nflows_member(maf, member).double().log_prob(x).detach()
        torch.testing.assert_close(ours[member], reference, atol=1e-8, rtol=0)


def test_inverse_undoes_transform_and_log_det_is_the_jacobian() -> None:
    maf = _perturbed(3, 2, 8, 2, 5, members=2)
    z = torch.randn(2, 400, 3, generator=torch.Generator().manual_seed(2))
    x = maf.inverse(z)
    back, _ = maf.transform(x)
    torch.testing.assert_close(back, z, atol=1e-4, rtol=0)
    point = x[1, 7].clone().double()
    maf64 = maf.double()
    jacobian = torch.autograd.functional.jacobian(lambda v: maf64.transform(v.view(1, 3).expand(2, 1, 3))[0][1, 0], point)
    _, logdet = maf64.transform(point.view(1, 3).expand(2, 1, 3))
    assert torch.isclose(torch.linalg.det(jacobian).abs().log(), logdet[1, 0], atol=1e-8)


def test_each_output_depends_only_on_earlier_inputs() -> None:
    maf = _perturbed(4, 1, 8, 2, 4, members=1).double()
    point = torch.randn(4, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda v: maf.transform(v.view(1, 1, 4))[0][0, 0], point)
    # one block: the input is reversed, then z_d depends on reversed inputs 0..d only
    in_block_order = jacobian[:, [3, 2, 1, 0]]
    assert torch.all(in_block_order.triu(1) == 0)
    assert torch.all(in_block_order.diagonal() > 0)


def test_spline_is_monotone_invertible_and_identity_in_the_tails() -> None:
    generator = torch.Generator().manual_seed(5)
    x = torch.linspace(-5, 5, 2001)
    widths, heights = torch.randn(2001, 7, generator=generator), torch.randn(2001, 7, generator=generator)
    widths, heights = widths[:1].expand(2001, 7), heights[:1].expand(2001, 7)  # one spline for all points
    derivatives = torch.randn(1, 6, generator=generator).expand(2001, 6)
    x.requires_grad_(True)
    y, logdet = rational_quadratic_spline(x, widths, heights, derivatives, tail_bound=3.0)
    (slope,) = torch.autograd.grad(y.sum(), x)
    x, y, logdet = x.detach(), y.detach(), logdet.detach()
    assert torch.all(y[1:] > y[:-1])
    outside = x.abs() > 3
    assert torch.equal(y[outside], x[outside])
    assert torch.all(logdet[outside] == 0)
    torch.testing.assert_close(y[x.abs() == 3], x[x.abs() == 3], atol=1e-5, rtol=0)  # the knots meet the tails
    torch.testing.assert_close(logdet, slope.log(), atol=1e-4, rtol=0)  # log-det is the log slope
    back, inverse_logdet = rational_quadratic_spline(y, widths, heights, derivatives, tail_bound=3.0, inverse=True)
    torch.testing.assert_close(back, x, atol=1e-4, rtol=0)
    torch.testing.assert_close(inverse_logdet, -logdet, atol=1e-4, rtol=0)


def test_masked_weights_get_no_gradient() -> None:
    maf = _perturbed(4, 2, 8, 2, 4)
    (-maf.log_prob(torch.randn(50, 4)).mean(dim=1).sum()).backward()
    for name in ("input", "hidden", "output"):
        grad = maf.tensors[f"{name}_weight"].grad
        assert grad is not None
        assert torch.all(grad * (1 - getattr(maf, f"mask_{name}")) == 0)


def test_a_narrow_peak_comes_back() -> None:
    """A 10 % resonance 50× narrower than its background, learned online in one buffer.

    The fraction of samples in the peak window (±3 widths) must come back within 1.5 points
    of the 10 % plus the background's share of the window (0.48 %).
    """
    generator = torch.Generator().manual_seed(0)
    n = 8000
    mass = torch.randn(n, generator=generator)
    peak = torch.rand(n, generator=generator) < 0.10
    mass[peak] = 1.5 + 0.02 * torch.randn(int(peak.sum()), generator=generator)
    model = OnlineFlowEnsemble(
        columns=["x"], log_columns=[], noise_dims=0, n_members=1, n_blocks=2, hidden_features=16,
        learning_rate=1e-2, swa_start=0, bootstrap="none", transform="rq_spline", n_bins=16, tail_bound=4.0, seed=1,
    )
    model.train_on_buffer({"x": mass}, n_iter=40, batch_size=500)
    model.end_buffer()
    samples = model.sample(20_000, seed=2)["x"][0]
    in_window = ((samples - 1.5).abs() < 0.06).float().mean().item()
    truth = 0.10 + 0.9 * float(torch.distributions.Normal(0, 1).cdf(torch.tensor(1.56)) - torch.distributions.Normal(0, 1).cdf(torch.tensor(1.44)))
    assert abs(in_window - truth) < 0.015, (in_window, truth)


@pytest.mark.parametrize(
    ("key", "value"), [("transform", "splines"), ("n_bins", 1), ("tail_bound", -1.0), ("tail_bound", float("inf"))]
)
def test_bad_spline_hyperparameters_are_named(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        OnlineFlowEnsemble(**{key: value})


def test_hyperparameters_rebuild_the_spline_flow() -> None:
    model = OnlineFlowEnsemble(n_members=2, n_blocks=1, hidden_features=8, transform="rq_spline", n_bins=5, tail_bound=2.5)
    again = OnlineFlowEnsemble(**model.hyperparameters())
    assert isinstance(again.flow, BatchedSplineMAF)
    assert again.flow.n_bins == 5
    assert again.flow.tail_bound == 2.5
    assert torch.equal(model.flow.flat_weights(), again.flow.flat_weights())
