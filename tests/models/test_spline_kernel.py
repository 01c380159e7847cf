"""The fused CPU spline kernels equal the torch reference: values, inverse, gradients, edge cases."""

from __future__ import annotations

import math

import pytest
import torch

from models.flows.spline_kernel import FUSED, spline
from models.flows.spline_maf import rational_quadratic_spline


def _reference(x: torch.Tensor, params: torch.Tensor, k: int, bound: float, inverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    return rational_quadratic_spline(x, params[..., :k], params[..., k : 2 * k], params[..., 2 * k :],
                                     tail_bound=bound, inverse=inverse)


def _case(n: int, k: int, seed: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=generator, dtype=dtype) * 2.0
    x[:10] *= 4.0  # in the identity tails
    params = torch.randn(n, 3 * k - 1, generator=generator, dtype=dtype) * 1.5
    return x, params


@pytest.mark.parametrize("k", [2, 3, 8])
def test_values_and_gradients_equal_the_reference_in_float64(k: int) -> None:
    x, params = _case(2000, k, k)
    ref_x, ref_p = x.clone().requires_grad_(), params.clone().requires_grad_()
    y_ref, ld_ref = _reference(ref_x, ref_p, k, 3.0)
    (y_ref.sin().sum() + ld_ref.cos().sum()).backward()
    fused_x, fused_p = x.clone().requires_grad_(), params.clone().requires_grad_()
    y, ld = spline(fused_x, fused_p, n_bins=k, tail_bound=3.0)
    (y.sin().sum() + ld.cos().sum()).backward()
    assert fused_x.grad is not None
    assert fused_p.grad is not None
    assert ref_x.grad is not None
    assert ref_p.grad is not None
    torch.testing.assert_close(y, y_ref, atol=1e-11, rtol=0)
    torch.testing.assert_close(ld, ld_ref, atol=1e-11, rtol=0)
    torch.testing.assert_close(fused_x.grad, ref_x.grad, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(fused_p.grad, ref_p.grad, atol=1e-9, rtol=1e-9)
    outside = x.abs() > 3.0
    assert int(outside.sum()) > 0
    assert torch.equal(y[outside], x[outside])
    assert bool((fused_p.grad[outside] == 0).all())


def test_gradcheck_float64() -> None:
    x, params = _case(40, 4, 1)
    x = (x / 4).requires_grad_()  # inside the interval: the smooth part
    assert torch.autograd.gradcheck(lambda a, b: spline(a, b, n_bins=4, tail_bound=3.0), (x, params.requires_grad_()))


def test_inverse_equals_the_reference_and_inverts() -> None:
    x, params = _case(2000, 6, 2)
    with torch.no_grad():
        y, ld = spline(x, params, n_bins=6, tail_bound=3.0)
        back, ld_back = spline(y, params, n_bins=6, tail_bound=3.0, inverse=True)
        ref_back, ref_ld = _reference(y, params, 6, 3.0, inverse=True)
    torch.testing.assert_close(back, ref_back, atol=1e-10, rtol=0)
    torch.testing.assert_close(ld_back, ref_ld, atol=1e-10, rtol=0)
    torch.testing.assert_close(back, x, atol=1e-9, rtol=0)
    torch.testing.assert_close(ld_back, -ld, atol=1e-9, rtol=0)


def test_strided_params_are_read_in_place_with_the_same_result() -> None:
    # the shower flows' incremental inverse hands the kernel a transposed view (and, for a
    # feature that sees no hidden unit, a broadcast one); both must equal the contiguous copy
    x, params = _case(600, 5, 4)
    transposed = params.t().contiguous().t()  # same values, column-major strides
    broadcast = params[:1].expand(600, -1)
    assert not transposed.is_contiguous()
    with torch.no_grad():
        for view in (transposed, broadcast):
            for inverse in (False, True):
                got = spline(x, view, n_bins=5, tail_bound=3.0, inverse=inverse)
                want = spline(x, view.contiguous(), n_bins=5, tail_bound=3.0, inverse=inverse)
                ref = _reference(x, view.contiguous(), 5, 3.0, inverse=inverse)
                for a, b, c in zip(got, want, ref, strict=True):
                    assert torch.equal(a, b)
                    torch.testing.assert_close(a, c, atol=1e-10, rtol=0)


def test_float32_agrees_with_the_reference_to_rounding() -> None:
    x, params = _case(5000, 8, 3, torch.float32)
    y, ld = spline(x, params, n_bins=8, tail_bound=3.0)
    y_ref, ld_ref = _reference(x, params, 8, 3.0)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, y_ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ld, ld_ref, atol=5e-4, rtol=1e-4)


def test_knots_bounds_nan_and_inf_behave_like_the_reference() -> None:
    k, bound = 4, 2.0
    params = torch.randn(1, 3 * k - 1, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    from models.flows.spline_maf import spline_knots

    knots = spline_knots(params[:, :k], params[:, k : 2 * k], tail_bound=bound)[0]
    x = torch.cat([knots[0], torch.tensor([math.inf, -math.inf, math.nan, bound, -bound], dtype=torch.float64)])
    p = params.expand(x.shape[0], -1)
    y, ld = spline(x, p, n_bins=k, tail_bound=bound)
    y_ref, ld_ref = _reference(x, p, k, bound)
    torch.testing.assert_close(y, y_ref, atol=1e-12, rtol=0, equal_nan=True)
    torch.testing.assert_close(ld, ld_ref, atol=1e-12, rtol=0, equal_nan=True)
    torch.testing.assert_close(y[: k + 1], knots[1], atol=1e-12, rtol=0)  # knots map to knots
    assert math.isnan(float(y[k + 3]))
    assert float(y[k + 1]) == math.inf
    assert float(ld[k + 1]) == 0.0


def test_switch_runs_the_reference_and_bad_params_are_named() -> None:
    x, params = _case(100, 3, 4)
    fused = spline(x, params, n_bins=3, tail_bound=3.0)
    FUSED["enabled"] = False
    try:
        reference = spline(x, params, n_bins=3, tail_bound=3.0)
    finally:
        FUSED["enabled"] = True
    torch.testing.assert_close(fused, reference, atol=1e-11, rtol=0)
    with pytest.raises(ValueError, match="3K - 1 = 8"):
        spline(x, params[:, :7], n_bins=3, tail_bound=3.0)


def test_one_thread_runs_the_serial_twin_with_the_same_result() -> None:
    from models.flows import spline_kernel

    x, params = _case(3000, 4, 5, torch.float32)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        parallel = spline(x, params, n_bins=4, tail_bound=3.0)
        torch.set_num_threads(1)
        assert spline_kernel.pick("parallel", "serial") == "serial"
        serial = spline(x, params, n_bins=4, tail_bound=3.0)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(parallel, serial, strict=True):
        assert torch.equal(a, b)
    assert spline_kernel._FORWARD_SERIAL.py_func.__qualname__ == "_forward_kernel_serial"
