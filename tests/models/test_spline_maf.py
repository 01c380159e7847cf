"""BatchedSplineMAF and its rational-quadratic spline: equal to nflows, invertible, learns peaks."""

from __future__ import annotations

import pytest
import torch

from models.flows.ensemble import OnlineFlowEnsemble
from models.flows.nflows_bridge import build_nflows_spline_maf, load_member_into_nflows
from models.flows.spline_maf import BatchedSplineMAF, rational_quadratic_spline, spline_knots


def _perturbed(features: int, n_blocks: int, hidden: int, layers: int, n_bins: int, members: int = 3) -> BatchedSplineMAF:
    generator = torch.Generator().manual_seed(3)
    maf = BatchedSplineMAF(members, features, n_blocks, hidden, layers, n_bins=n_bins, tail_bound=3.0, generator=generator)
    with torch.no_grad():
        for tensor in maf.tensors.values():
            tensor.add_(0.3 * torch.randn(tensor.shape, generator=generator))
    return maf


def _nflows_member(maf: BatchedSplineMAF, member: int):  # noqa: ANN202 (nflows has no types)
    """Member ``member`` as an nflows flow, in the dtype of ``maf``."""
    flow = build_nflows_spline_maf(maf).to(next(maf.parameters()).dtype)
    return load_member_into_nflows(maf, member, flow)


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


# ---------------------------------------------------------------------------- edge cases
def _random_spline(n_bins: int, seed: int, scale: float = 1.0, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    """One spline's ``(width, height, derivative)`` logits, ``(K,), (K,), (K - 1,)``."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(scale * torch.randn(size, generator=generator, dtype=dtype) for size in (n_bins, n_bins, n_bins - 1))


def _spline_at(x: torch.Tensor, logits: tuple[torch.Tensor, ...], **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
    expanded = [t.expand(*x.shape, t.shape[-1]) for t in logits]
    return rational_quadratic_spline(x, *expanded, **kwargs)  # type: ignore[arg-type]


def test_knots_map_onto_knots_exactly_both_ways_and_the_log_slope_there_is_the_knot_derivative() -> None:
    bound = 3.0
    for seed in range(20):
        logits = _random_spline(6, seed, scale=2.0)
        knots = spline_knots(logits[0], logits[1], tail_bound=bound)
        assert torch.equal(knots[:, 0], torch.full((2,), -bound))
        assert torch.equal(knots[:, -1], torch.full((2,), bound))
        assert torch.all(knots.diff(dim=-1) > 0)
        y, logdet = _spline_at(knots[0], logits, tail_bound=bound)
        assert torch.equal(y[:-1], knots[1, :-1])  # a knot starts its bin: xi = 0 exactly
        assert abs(y[-1].item() - bound) <= 4.8e-7  # the top bound: xi = 1 exactly, y within an ulp
        slopes = torch.cat([torch.ones(1), torch.nn.functional.softplus(logits[2]) + 1e-3, torch.ones(1)])
        torch.testing.assert_close(logdet, slopes.log(), atol=1e-5, rtol=0)
        x, inverse_logdet = _spline_at(knots[1], logits, tail_bound=bound, inverse=True)
        assert torch.equal(x[:-1], knots[0, :-1])  # the inverse finds the same bin (right-closed search)
        assert abs(x[-1].item() - bound) <= 4.8e-7
        torch.testing.assert_close(inverse_logdet[:-1], -slopes[:-1].log(), atol=1e-5, rtol=0)
        # at the top bound xi is 1 within a few ulps, and the log-slope there moves by ~2 s / d_K per unit of xi
        torch.testing.assert_close(inverse_logdet[-1], -slopes[-1].log(), atol=1e-3, rtol=0)
        # one ulp below every inner knot: the top of the bin below, forward and inverse agree
        below = torch.nextafter(knots[0, 1:-1], torch.tensor(-10.0))
        back, _ = _spline_at(_spline_at(below, logits, tail_bound=bound)[0], logits, tail_bound=bound, inverse=True)
        torch.testing.assert_close(back, below, atol=1e-5, rtol=0)


def test_the_bound_tails_nan_and_inf() -> None:
    bound = 2.5
    logits = _random_spline(5, 7, scale=1.5)
    eps = 1e-6
    x = torch.tensor([-float("inf"), -1e30, -bound - eps, -bound, -bound + eps, bound - eps, bound, bound + eps, 1e30, float("inf")])
    for inverse in (False, True):
        y, logdet = _spline_at(x, logits, tail_bound=bound, inverse=inverse)
        outside = x.abs() > bound
        assert torch.equal(y[outside], x[outside])  # ±inf stay ±inf: identity tails
        assert torch.all(logdet[outside] == 0)
        torch.testing.assert_close(y[~outside], x[~outside], atol=2e-5, rtol=0)  # the spline meets the tails
        assert torch.all(logdet[~outside].abs() < 1e-4)  # with slope 1 (boundary derivatives 1)
        nan_y, nan_logdet = _spline_at(torch.tensor([float("nan"), 0.5]), logits, tail_bound=bound, inverse=inverse)
        assert torch.isnan(nan_y[0]), "NaN must not become a finite value"
        assert torch.isnan(nan_logdet[0]), "NaN must not become a finite log-derivative"
        assert torch.isfinite(nan_y[1])
        assert torch.isfinite(nan_logdet[1])
    # NaN parameters: the bin index stays in range (no error), inside points NaN, tails still the identity
    nan_logits = tuple(torch.full_like(t, float("nan")) for t in logits)
    y, logdet = _spline_at(torch.tensor([0.0, bound, 3 * bound]), nan_logits, tail_bound=bound)
    assert torch.isnan(y[:2]).all()
    assert torch.isnan(logdet[:2]).all()
    assert y[2] == 3 * bound
    assert logdet[2] == 0
    # in a flow: a NaN feature makes its event's log-density NaN, the other events keep theirs
    maf = _perturbed(3, 2, 8, 2, 4, members=2)
    events = torch.randn(4, 3, generator=torch.Generator().manual_seed(8))
    reference = maf.log_prob(events).detach()
    events[1, 2] = float("nan")
    log_prob = maf.log_prob(events).detach()
    assert torch.isnan(log_prob[:, 1]).all()
    torch.testing.assert_close(log_prob[:, [0, 2, 3]], reference[:, [0, 2, 3]], atol=0, rtol=0)


def test_logits_that_do_not_fit_are_named() -> None:
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="derivative_logits"):
        rational_quadratic_spline(x, torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(3, 4), tail_bound=1.0)
    with pytest.raises(ValueError, match="height_logits"):
        rational_quadratic_spline(x, torch.zeros(3, 4), torch.zeros(3, 5), torch.zeros(3, 3), tail_bound=1.0)


def test_slope_at_the_bound_and_just_inside_is_exp_logdet_under_autograd() -> None:
    """The last knot is exactly the bound: autograd's dy/dx there is the boundary slope 1, not 0."""
    bound = 3.0
    x = torch.tensor([-bound, torch.nextafter(torch.tensor(-bound), torch.tensor(0.0)).item(),
                      torch.nextafter(torch.tensor(bound), torch.tensor(0.0)).item(), bound])
    for seed in range(100):
        logits = _random_spline(5, seed)
        for inverse in (False, True):
            point = x.clone().requires_grad_(True)
            y, logdet = _spline_at(point, logits, tail_bound=bound, inverse=inverse)
            (slope,) = torch.autograd.grad(y.sum(), point)
            torch.testing.assert_close(slope, logdet.detach().exp(), atol=1e-3, rtol=0)


def test_gradients_are_finite_for_points_in_the_tails_and_at_the_bound() -> None:
    maf = _perturbed(3, 3, 8, 2, 4, members=2)
    bound = maf.tail_bound
    eps = 1e-6
    values = torch.tensor([-1e4, -bound - eps, -bound, -bound + eps, 0.0, bound - eps, bound, bound + eps, 1e4])
    x = torch.stack(torch.meshgrid(values, values, values, indexing="ij"), dim=-1).reshape(-1, 3)
    loss = -maf.log_prob(x).mean()
    loss.backward()
    assert torch.isfinite(loss)
    for name, tensor in maf.tensors.items():
        assert tensor.grad is not None, name
        assert torch.isfinite(tensor.grad).all(), name
        assert tensor.grad.abs().sum() > 0, name
    # the spline alone, both directions, with ±inf inputs and huge logits too
    logits = [t.requires_grad_(True) for t in _random_spline(4, 3, scale=3.0)]
    huge = [t.detach().clone().mul(1e4).requires_grad_(True) for t in logits]
    points = torch.cat([values, torch.tensor([-float("inf"), float("inf")])])
    for parameters in (logits, huge):
        for inverse in (False, True):
            point = points.clone().requires_grad_(True)
            y, logdet = _spline_at(point, tuple(parameters), tail_bound=bound, inverse=inverse)
            finite_y = torch.where(torch.isfinite(y), y, 0.0)
            grads = torch.autograd.grad((finite_y + logdet).sum(), [point, *parameters])
            assert all(torch.isfinite(g).all() for g in grads), (inverse, grads)


def test_inverse_gradient_is_finite_where_b_squared_minus_4ac_cancels_to_zero() -> None:
    """y just below the top of a steep bin (slope ~970) whose upper knot derivative is small (0.017).

    The discriminant is ``h^2 d_{k+1}^2 ~ 0.01`` there, but ``b^2 - 4ac`` is a difference of two
    numbers ~1.3e8 that rounds to 0: the old code clamped it at 0 and ``sqrt`` gave a NaN gradient.
    """
    logits = [
        torch.tensor([4.50283003, 6.92941284, -2.82223415, 2.78583717, 9.0966301, -2.67105865, -11.7793808, 5.83715439]),
        torch.tensor([-1.04938853, -5.0943141, 8.34340763, 3.92228484, 8.25461197, -4.79113626, 12.8122425, -8.58773613]),
        torch.tensor([-18.2597332, 9.70819187, -0.617507577, -2.66239619, -7.50058937, 13.0091238, -4.09788322]),
    ]
    logits = [t.requires_grad_(True) for t in logits]
    y = torch.tensor([2.99399996, 2.99399, 2.9939, 2.9, 1.0]).requires_grad_(True)
    x, logdet = _spline_at(y, tuple(logits), tail_bound=3.0, inverse=True)
    grads = torch.autograd.grad((x + logdet).sum(), [y, *logits])
    assert all(torch.isfinite(g).all() for g in grads), grads
    y_again, forward_logdet = _spline_at(x.detach(), tuple(t.detach() for t in logits), tail_bound=3.0)
    ulp = torch.finfo(torch.float32).eps * 3.0
    assert torch.all((y_again - y.detach()).abs() <= 16 * ulp * (forward_logdet.exp() + 1))  # slope up to ~1800 here


def test_gradcheck_inside_and_in_the_tails_float64() -> None:
    logits = [t.requires_grad_(True) for t in _random_spline(5, 11, scale=1.5, dtype=torch.float64)]
    x = torch.tensor([-7.0, -2.9, -1.3, -0.2, 0.4, 1.7, 2.95, 7.0], dtype=torch.float64, requires_grad=True)
    for inverse in (False, True):
        def spline(point: torch.Tensor, *parameters: torch.Tensor, inverse: bool = inverse) -> tuple[torch.Tensor, torch.Tensor]:
            return _spline_at(point, parameters, tail_bound=3.0, inverse=inverse)

        assert torch.autograd.gradcheck(spline, (x, *logits), atol=1e-6)


def test_large_logits_do_not_overflow_and_bins_at_the_minimum_width_invert() -> None:
    """Logits of ±1e4 (exp overflows float32 beyond 88): bins at the minimum width, finite values."""
    bound = 4.0
    widths = torch.tensor([1e4, -1e4, 0.0, 90.0, -1e4, 1e4])
    heights = torch.tensor([-1e4, 1e4, 1e4, 0.0, 95.0, -1e4])
    derivatives = torch.tensor([60.0, -60.0, 1e4, -1e4, 0.0])
    knots = spline_knots(widths, heights, tail_bound=bound)
    minimum = 2 * bound * 1e-3
    sizes = knots.diff(dim=-1)
    assert torch.isfinite(knots).all()
    assert torch.all(sizes >= minimum * (1 - 1e-4))
    torch.testing.assert_close(sizes[0, [1, 2, 4]], torch.full((3,), minimum), atol=1e-6, rtol=0)
    x = torch.cat([knots[0], torch.linspace(-bound, bound, 4001)])
    logits = (widths, heights, derivatives)
    y, logdet = _spline_at(x, logits, tail_bound=bound)
    assert torch.isfinite(y).all()
    assert torch.isfinite(logdet).all()
    order = x.argsort()
    assert torch.all(y[order].diff() >= 0)
    back, _ = _spline_at(y, logits, tail_bound=bound, inverse=True)
    forward_again, _ = _spline_at(back, logits, tail_bound=bound)
    torch.testing.assert_close(forward_again, y, atol=1e-5, rtol=0)  # backward stable (x itself may be ill-posed)


def test_inverse_is_backward_stable_for_flat_and_steep_bins_in_float32() -> None:
    """f(f^-1(y)) = y within ~10 ulps of the interval (times the slope) for extreme splines.

    Narrow/wide bins with knot derivatives from 1e-3 to ~30: with the discriminant as
    ``b^2 - 4ac`` and one root formula for both signs of ``b`` the error reached 1.5e4 such
    units (a wrong x by up to 0.7 where the spline is flat); here it stays below 16.
    """
    bound, n_bins, n = 3.0, 8, 20001
    ulp = torch.finfo(torch.float32).eps * bound
    worst = 0.0
    for seed in range(50):
        width, height, derivative = _random_spline(n_bins, 1000 + seed)
        logits = tuple(t.requires_grad_(True) for t in (8 * width, 8 * height, 15 * derivative))
        y = torch.linspace(-bound, bound, n).requires_grad_(True)
        x, inverse_logdet = _spline_at(y, logits, tail_bound=bound, inverse=True)
        grads = torch.autograd.grad((x + inverse_logdet).sum(), [y, *logits])
        assert all(torch.isfinite(g).all() for g in grads), seed  # a zero discriminant gave NaN here
        x, y = x.detach(), y.detach()
        y_again, logdet = _spline_at(x, tuple(t.detach() for t in logits), tail_bound=bound)
        assert torch.isfinite(x).all()
        assert torch.all((x >= -bound) & (x <= bound))
        assert torch.all(x.diff() >= 0)  # the inverse is monotone too
        error = (y_again - y).abs() / (ulp * (logdet.exp() + 1))
        worst = max(worst, error.max().item())
    assert worst < 16, worst


# ---------------------------------------------------------------------------- dtype, device, flat weights, SWA
def test_float64_and_dtype_moves() -> None:
    maf = _perturbed(3, 2, 8, 2, 4, members=2)
    x = torch.randn(2, 50, 3, generator=torch.Generator().manual_seed(4)) * 1.8
    single = maf.log_prob(x).detach()
    double = maf.to(torch.float64)
    assert double is maf
    assert all(t.dtype == torch.float64 for t in maf.tensors.values())
    assert all(getattr(maf, f"mask_{name}").dtype == torch.float64 for name in ("input", "hidden", "output"))
    assert maf.flat_weights().dtype == torch.float64
    lp = maf.log_prob(x.double())
    assert lp.dtype == torch.float64
    torch.testing.assert_close(lp.float(), single, atol=1e-4, rtol=0)
    z = torch.randn(2, 30, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(maf.transform(maf.inverse(z))[0], z, atol=1e-9, rtol=0)
    maf.float()
    torch.testing.assert_close(maf.log_prob(x).detach(), single, atol=0, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu() -> None:
    maf = _perturbed(3, 2, 8, 2, 4, members=2)
    x = torch.randn(2, 200, 3, generator=torch.Generator().manual_seed(4)) * 1.8
    reference = maf.log_prob(x).detach()
    z = torch.randn(2, 100, 3, generator=torch.Generator().manual_seed(5))
    samples = maf.inverse(z)
    maf.to("cuda")
    assert maf.mask_output.device.type == "cuda"
    torch.testing.assert_close(maf.log_prob(x.cuda()).detach().cpu(), reference, atol=1e-4, rtol=0)
    torch.testing.assert_close(maf.inverse(z.cuda()).cpu(), samples, atol=1e-4, rtol=0)
    maf.log_prob(x.cuda()).sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in maf.tensors.values())


def test_flat_weights_round_trip_and_masked_entries_do_not_matter() -> None:
    maf = _perturbed(3, 2, 8, 2, 4, members=2)
    flat = maf.flat_weights()
    assert flat.shape == (maf.n_parameters,)
    assert maf.n_parameters == sum(t.numel() for t in maf.parameters())
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(6)) * 2
    reference = maf.log_prob(x).detach()
    other = BatchedSplineMAF(2, 3, 2, 8, 2, n_bins=4, tail_bound=3.0, generator=torch.Generator().manual_seed(9))
    assert not torch.equal(other.log_prob(x), reference)
    torch.testing.assert_close(other.log_prob(x, flat).detach(), reference, atol=0, rtol=0)  # flat= uses the vector
    other.load_flat(flat)
    assert torch.equal(other.flat_weights(), flat)
    torch.testing.assert_close(other.log_prob(x).detach(), reference, atol=0, rtol=0)
    # garbage in the masked entries: masked in the forward pass and in flat_weights
    named = maf.unflatten(flat.clone())
    masks = {"input.weight": maf.mask_input, "hidden.weight": maf.mask_hidden, "output.weight": maf.mask_output}
    garbage = torch.cat([t.reshape(-1) for t in ((named[k] + 5.0 * (1 - masks[k])) if k in masks else named[k] for k in named)])
    assert not torch.equal(garbage, flat)
    torch.testing.assert_close(maf.log_prob(x, garbage).detach(), reference, atol=0, rtol=0)
    other.load_flat(garbage)
    assert torch.equal(other.flat_weights(), flat)
    with pytest.raises(ValueError, match="flat weights must have shape"):
        maf.unflatten(flat[:-1])


def test_swa_of_the_spline_flow_is_the_mean_of_the_buffer_weights_and_is_what_evaluation_uses() -> None:
    model = OnlineFlowEnsemble(
        columns=["x"], log_columns=[], noise_dims=1, n_members=2, n_blocks=2, hidden_features=8, learning_rate=1e-2,
        swa_start=0, bootstrap="none", transform="rq_spline", n_bins=4, tail_bound=3.0, seed=3,
    )
    generator = torch.Generator().manual_seed(0)
    snapshots = []
    for _ in range(3):
        model.train_on_buffer({"x": torch.randn(200, generator=generator)}, n_iter=2, batch_size=50)
        model.end_buffer()
        snapshots.append(model.flow.flat_weights())
    mean = torch.stack(snapshots).mean(dim=0)
    torch.testing.assert_close(model.weights("swa"), mean, atol=1e-6, rtol=0)
    assert not torch.allclose(model.weights("swa"), model.weights("live"))
    inputs = torch.randn(2, 64, 2, generator=generator)
    averaged = BatchedSplineMAF(2, 2, 2, 8, 2, n_bins=4, tail_bound=3.0)
    averaged.load_flat(model.weights("swa"))
    torch.testing.assert_close(model.flow_log_prob(inputs, weights="swa"), averaged.log_prob(inputs).detach(), atol=0, rtol=0)
    assert not torch.allclose(model.flow_log_prob(inputs, weights="live"), averaged.log_prob(inputs).detach())
    samples = model.sample(500, seed=1, weights="swa")["x"]
    assert samples.shape == (2, 500)
    assert torch.isfinite(samples).all()
    # sampling = the inverse of the averaged flow on the same base draws (mass column is standardised back)
    z = torch.randn(2, 500, 2, generator=torch.Generator(device=model.device).manual_seed(1))
    expected = model.scaler.inverse(averaged.inverse(z)[..., :1]).squeeze(-1)
    torch.testing.assert_close(samples, expected, atol=1e-5, rtol=0)
