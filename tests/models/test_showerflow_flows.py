"""The parts of the shower flows: the member-batched conditional MAF/IAF and the preprocessing."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from models.showerflow.conditional_maf import ConditionalMAF
from models.showerflow.model import history_mask
from models.showerflow.preprocessing import (
    QuantileMap,
    ShowerPreprocessor,
    layer_moments,
    previous_layer_context,
)

# (features, context, blocks, hidden, hidden layers, embedding)
ARCHITECTURES = [(5, 6, 3, 8, 2, None), (5, 6, 2, 8, 3, 3), (1, 2, 2, 4, 1, None), (12, 4, 2, 16, 2, 5)]


def _perturbed(features: int, context: int, blocks: int, hidden: int, layers: int, embedding: int | None,
               members: int = 3, mask: torch.Tensor | None = None, scale: float = 0.1, **kind: Any) -> ConditionalMAF:
    """A flow whose weights moved away from the near-identity initialisation (``kind``: transform settings)."""
    flow = ConditionalMAF(members, features, context, blocks, hidden, layers, embedding, mask,
                          generator=torch.Generator().manual_seed(7), **kind)
    generator = torch.Generator().manual_seed(8)
    with torch.no_grad():
        for parameter in flow.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
    return flow


def _nflows_member(flow: ConditionalMAF, member: int) -> Any:
    """The nflows flow with the weights of ``member`` (nflows masks its own weights)."""
    from nflows.distributions.normal import StandardNormal
    from nflows.flows.base import Flow
    from nflows.transforms.autoregressive import (
        MaskedAffineAutoregressiveTransform,
        MaskedPiecewiseRationalQuadraticAutoregressiveTransform,
    )
    from nflows.transforms.base import CompositeTransform
    from nflows.transforms.permutations import ReversePermutation

    d, h, b = flow.features, flow.hidden_features, flow.n_blocks
    width = flow.context_weight.shape[-1]
    transforms: list[Any] = []
    for _ in range(b):
        shared = {"features": d, "hidden_features": h, "context_features": width,
                  "num_blocks": flow.n_hidden_layers - 1, "use_residual_blocks": False}
        if flow.transform_kind == "affine":
            block: Any = MaskedAffineAutoregressiveTransform(**shared)
        else:
            block = MaskedPiecewiseRationalQuadraticAutoregressiveTransform(
                **shared, num_bins=flow.n_bins, tails="linear", tail_bound=flow.tail_bound)
        transforms += [ReversePermutation(d), block]
    embedding = torch.nn.Linear(flow.context_features, width) if flow.embedding_weight is not None else torch.nn.Identity()
    reference = Flow(CompositeTransform(transforms), StandardNormal([d]), embedding_net=embedding)
    mask = flow.context_mask[member, 0]
    with torch.no_grad():
        if flow.embedding_weight is not None and flow.embedding_bias is not None:
            embedding.weight.copy_(flow.embedding_weight[member] * mask)
            embedding.bias.copy_(flow.embedding_bias[member])
            context_weight = flow.context_weight[member]
        else:
            context_weight = flow.context_weight[member] * mask
        for block in range(b):
            net = reference._transform._transforms[2 * block + 1].autoregressive_net
            net.initial_layer.weight.copy_(flow.input_weight[block, member])
            net.initial_layer.bias.copy_(flow.input_bias[block, member])
            net.context_layer.weight.copy_(context_weight[block * h : (block + 1) * h])
            net.context_layer.bias.copy_(flow.context_bias[member, block * h : (block + 1) * h])
            for k, hidden in enumerate(net.blocks):
                hidden.linear.weight.copy_(flow.hidden_weight[block, k, member])
                hidden.linear.bias.copy_(flow.hidden_bias[block, k, member])
            net.final_layer.weight.copy_(flow.output_weight[block, member])
            net.final_layer.bias.copy_(flow.output_bias[block, member])
    return reference


def _inputs(flow: ConditionalMAF, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(flow.n_members, n, flow.features, generator=generator),
            torch.randn(flow.n_members, n, flow.context_features, generator=generator))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_log_prob_equals_nflows_member_by_member(architecture: tuple[Any, ...]) -> None:
    mask = torch.ones(3, architecture[1])
    mask[0, architecture[1] // 2 :] = 0.0
    flow = _perturbed(*architecture, mask=mask, scale=0.2)
    x, context = _inputs(flow, 64, 1)
    ours = flow.log_prob(x, context).detach()
    for member in range(flow.n_members):
        reference = _nflows_member(flow, member).log_prob(x[member], context=context[member]).detach()
        torch.testing.assert_close(ours[member], reference, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_spline_log_prob_equals_nflows_member_by_member(architecture: tuple[Any, ...]) -> None:
    """``transform="rq_spline"``: nflows' masked rational-quadratic blocks with linear tails, in float64."""
    mask = torch.ones(3, architecture[1])
    mask[0, architecture[1] // 2 :] = 0.0
    flow = _perturbed(*architecture, mask=mask, scale=0.2, transform="rq_spline", n_bins=5, tail_bound=3.0).double()
    x, context = _inputs(flow, 64, 1)
    x, context = x.double() * 1.5, context.double()
    x[:, :4] *= 4  # some points in the identity tails
    ours = flow.log_prob(x, context).detach()
    for member in range(flow.n_members):
        reference = _nflows_member(flow, member).double().log_prob(x[member], context=context[member]).detach()
        torch.testing.assert_close(ours[member], reference, atol=1e-8, rtol=0)


SPLINE = {"transform": "rq_spline", "n_bins": 6, "tail_bound": 4.0}


@pytest.mark.parametrize("kind", [{}, SPLINE], ids=["affine", "rq_spline"])
@pytest.mark.parametrize("method", ["incremental", "passes"])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_inverse_inverts_transform(architecture: tuple[Any, ...], method: str, kind: dict[str, Any]) -> None:
    flow = _perturbed(*architecture, **kind)
    x, context = _inputs(flow, 200, 2)
    z, _ = flow.transform(x, context)
    torch.testing.assert_close(flow.inverse(z.detach(), context, method=method), x, atol=2e-5, rtol=1e-5)
    # one member alone gives that member's rows
    z_one, _ = flow.transform(x[1:2], context[1:2], member=1)
    torch.testing.assert_close(z_one, z[1:2], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(flow.inverse(z_one.detach(), context[1:2], member=1), x[1:2], atol=2e-5, rtol=1e-5)


def test_spline_blocks_start_at_the_identity_and_log_det_is_the_jacobian() -> None:
    fresh = ConditionalMAF(2, 4, 3, 2, 16, 2, **SPLINE, generator=torch.Generator().manual_seed(1))
    x, context = _inputs(fresh, 100, 5)
    with torch.no_grad():
        z, logabsdet = fresh.transform(x, context)
    assert float((z - x).abs().max()) < 0.05
    assert float(logabsdet.abs().max()) < 0.05
    flow = _perturbed(4, 3, 2, 16, 2, None, members=2, scale=0.2, **SPLINE).double()
    point, c = x[1, 3].double(), context[1:2, 3:4].double()
    jacobian = torch.autograd.functional.jacobian(lambda v: flow.transform(v.view(1, 1, 4), c, member=1)[0][0, 0], point)
    _, logdet = flow.transform(point.view(1, 1, 4), c, member=1)
    assert torch.isclose(torch.linalg.det(jacobian).abs().log(), logdet[0, 0], atol=1e-8)


def test_sampling_is_consistent_with_the_log_density() -> None:
    """MAF: x = inverse(z) has log p(x) = log N(z) + log|dz/dx|; IAF: x = transform(z), inverse(x) = z."""
    flow = _perturbed(6, 3, 3, 16, 2, None, scale=0.05)
    generator = torch.Generator().manual_seed(3)
    z = torch.randn(3, 300, 6, generator=generator)
    context = torch.randn(3, 300, 3, generator=generator)
    x = flow.inverse(z, context)
    log_normal = -0.5 * (z.square().sum(-1) + 6 * math.log(2 * math.pi))
    _, logabsdet = flow.transform(x, context)
    torch.testing.assert_close(flow.log_prob(x, context).detach(), (log_normal + logabsdet).detach(), atol=1e-4, rtol=1e-5)
    # the density integrates to one: importance estimate from a wide Gaussian, 1 dimension
    one = _perturbed(1, 1, 2, 8, 2, None, members=1, scale=0.05)
    grid = torch.linspace(-12, 12, 20001).view(1, -1, 1)
    density = one.log_prob(grid, torch.zeros(1, grid.shape[1], 1)).exp().detach()
    assert abs(float(torch.trapezoid(density[0], grid[0, :, 0])) - 1.0) < 1e-3
    # IAF reading of the same blocks: the parallel pass generates, the sequential one recovers z
    x_iaf, _ = flow.transform(z, context)
    torch.testing.assert_close(flow.inverse(x_iaf.detach(), context), z, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", [{}, SPLINE], ids=["affine", "rq_spline"])
def test_features_are_autoregressive_after_the_reversals(kind: dict[str, Any]) -> None:
    """With one block, z_d depends on x_d and the features after it (the block sees them reversed)."""
    flow = _perturbed(5, 2, 1, 12, 2, None, members=1, scale=0.3, **kind)
    x, context = _inputs(flow, 1, 4)
    jacobian = torch.autograd.functional.jacobian(lambda v: flow.transform(v, context)[0], x)[0, 0, :, 0, 0, :]
    # z (in block order, reversed) index k corresponds to x feature 4 - k; it sees x features >= 4 - k
    for k in range(5):
        assert torch.all(jacobian[k, : 4 - k] == 0), (k, jacobian[k])


def test_context_mask_makes_columns_inert() -> None:
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    for embedding in (None, 3):
        flow = _perturbed(4, 4, 2, 8, 2, embedding, members=2, mask=mask)
        x, context = _inputs(flow, 16, 5)
        changed = context.clone()
        changed[:, :, 2:] += 10.0
        base = flow.log_prob(x, context)
        other = flow.log_prob(x, changed)
        torch.testing.assert_close(base[0], other[0])  # member 0 does not see columns 2, 3
        assert not torch.allclose(base[1], other[1])
        flow.zero_grad()
        base.sum().backward()
        first = flow.embedding_weight if flow.embedding_weight is not None else flow.context_weight
        assert first.grad is not None
        assert torch.all(first.grad[0, :, 2:] == 0)


def test_bad_shapes_and_arguments_are_named() -> None:
    flow = ConditionalMAF(2, 3, 4, 1, 8)
    with pytest.raises(ValueError, match=r"x must have shape \(2, N, 3\)"):
        flow.transform(torch.zeros(2, 5, 4), torch.zeros(2, 5, 4))
    with pytest.raises(ValueError, match=r"context must have shape \(2, 5, 4\)"):
        flow.log_prob(torch.zeros(2, 5, 3), torch.zeros(2, 5, 2))
    with pytest.raises(ValueError, match="member must be"):
        flow.inverse(torch.zeros(1, 5, 3), torch.zeros(1, 5, 4), member=2)
    with pytest.raises(ValueError, match="method"):
        flow.inverse(torch.zeros(2, 5, 3), torch.zeros(2, 5, 4), method="fast")
    with pytest.raises(ValueError, match="hidden_features"):
        ConditionalMAF(2, 3, 4, 1, 0)
    with pytest.raises(ValueError, match="context_mask"):
        ConditionalMAF(2, 3, 4, context_mask=torch.ones(3, 4))


# ---------------------------------------------------------------------- preprocessing
def _dequantised(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, ShowerPreprocessor]:
    generator = torch.Generator().manual_seed(seed)
    cells = torch.rand(n, 4, 6, generator=generator).pow(4) * 40 * (torch.rand(n, 4, 6, generator=generator) < 0.3)
    cells[:, 0] *= torch.rand(n, 1, generator=generator) < 0.2  # layer 0 mostly empty
    energy = 10 + 90 * torch.rand(n, generator=generator)
    pre = ShowerPreprocessor(4, 6, knots=33)
    dequantised, layer, noise = pre.dequantise(cells, generator)
    pre.fit(dequantised, layer, energy)
    return cells, dequantised, layer, energy, pre


def test_dequantisation_fills_only_non_hits_below_the_threshold() -> None:
    cells, dequantised, layer, _, pre = _dequantised(500, 0)
    hits = cells >= 0.1
    assert torch.equal(dequantised[hits], cells[hits])
    noise = dequantised[~hits]
    assert bool(((noise >= 0.005 * (1 - 1e-6)) & (noise <= 0.09 * (1 + 1e-6))).all())
    assert torch.equal(pre.threshold(dequantised), pre.threshold(cells))  # thresholding undoes it exactly
    visible = pre.threshold(cells).sum(-1)
    assert torch.equal(layer[visible > 0], visible[visible > 0])
    assert bool((layer[visible == 0] < 0.1).all())
    assert int((visible[:, 0] == 0).sum()) > 300  # the empty layers are there, with a noise energy


def test_preprocessing_inverts_exactly() -> None:
    _, dequantised, layer, energy, pre = _dequantised(500, 1)
    assert bool(pre.fitted)
    y = pre.cell_features(dequantised)
    torch.testing.assert_close(y.mean(0), torch.zeros(4, 6), atol=0.1, rtol=0)  # Gaussianised on the fit sample
    torch.testing.assert_close(y.std(0), torch.ones(4, 6), atol=0.1, rtol=0)
    torch.testing.assert_close(pre.cells_from_features(y), dequantised, rtol=1e-4, atol=0)
    torch.testing.assert_close(pre.cells_from_features(y[:, 2], layer=2), dequantised[:, 2], rtol=1e-4, atol=0)
    torch.testing.assert_close(pre.layer_energy_from_features(pre.layer_features(layer)), layer, rtol=1e-4, atol=0)
    images = pre.context_images(dequantised, layer)
    torch.testing.assert_close(pre.fractions_from_context(images) * layer.unsqueeze(-1), dequantised, rtol=1e-4, atol=0)
    torch.testing.assert_close(pre.context_image(dequantised[:, 1], layer[:, 1], 1), images[:, 1])
    e = pre.energy_features(energy)
    torch.testing.assert_close((e * pre.energy_std + pre.energy_mean).exp()[:, 0], energy, rtol=1e-5, atol=0)
    # new showers go through and back within the fitted range; beyond it the inverse clamps to that range
    _, other, _, _, _ = _dequantised(200, 2)
    wide = other * 3.0
    logs = wide.log().flatten(1)
    low, high = pre.cell_map.bounds()
    assert bool((logs > high).any())  # the clamp is exercised
    expected = torch.maximum(torch.minimum(logs, high), low).exp().view_as(wide)
    torch.testing.assert_close(pre.cells_from_features(pre.cell_features(wide)), expected, rtol=1e-4, atol=0)
    inside = (logs >= low) & (logs <= high)
    assert float(inside.float().mean()) > 0.9


def test_quantile_map_is_monotone_and_extrapolates_linearly() -> None:
    qmap = QuantileMap(3, knots=17)
    values = torch.randn(2000, 3, generator=torch.Generator().manual_seed(3)).exp() * torch.tensor([1.0, 10.0, 0.1])
    qmap.fit(values)
    grid = torch.linspace(-5, 50, 3001).unsqueeze(1).expand(-1, 3).contiguous()
    mapped = qmap(grid)
    assert bool((mapped.diff(dim=0) > 0).all())  # the forward map extrapolates (strictly increasing)
    # the inverse is exact inside the fitted range and clamps to it outside
    torch.testing.assert_close(qmap.inverse(mapped), grid.clamp(values.min(0).values, values.max(0).values),
                               atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(qmap.bounds()[0], values.min(0).values)
    torch.testing.assert_close(qmap.bounds()[1], values.max(0).values)
    assert abs(float(qmap(values)[:, 1].median())) < 0.05
    with pytest.raises(ValueError, match=r"\(N >= 2, 3\)"):
        qmap.fit(torch.zeros(10, 2))


def test_generated_layers_are_thresholded_and_sum_to_the_layer_energy() -> None:
    pre = ShowerPreprocessor(1, 5)
    cells = torch.tensor([[2.0, 0.5, 0.105, 0.02, 0.01],   # rescaled by 0.9: 0.105 -> 0.0945 drops out
                          [0.05, 0.03, 0.02, 0.01, 0.01],   # no hit, t above threshold: all in the largest cell
                          [3.0, 1.0, 0.01, 0.01, 0.01]])    # t below threshold: empty layer
    energy = torch.tensor([2.34, 0.7, 0.05])
    shower, visible, context = pre.finish_layer(cells, energy)
    torch.testing.assert_close(shower.sum(-1), torch.tensor([2.34, 0.7, 0.0]), rtol=1e-6, atol=0)
    torch.testing.assert_close(visible, torch.tensor([2.34, 0.7, 0.0]))
    assert bool(((shower == 0) | (shower >= 0.1)).all())
    assert shower[0, 2] == 0
    assert shower[0, 0] > 0
    assert shower[1, 0] == pytest.approx(0.7)
    assert torch.equal(context[2], cells[2])  # an empty layer's context is the generated noise
    assert torch.equal(context[0, 3:], cells[0, 3:])


def test_generated_layers_kept_as_generated_without_rescaling() -> None:
    pre = ShowerPreprocessor(1, 5)
    cells = torch.tensor([[2.0, 0.5, 0.105, 0.02, 0.01],
                          [0.05, 0.03, 0.02, 0.01, 0.01],
                          [3.0, 1.0, 0.01, 0.01, 0.01]])
    energy = torch.tensor([2.34, 0.7, 0.05])
    shower, visible, context = pre.finish_layer(cells, energy, rescale="none")
    # hits are the generated cells >= 0.1 MeV, untouched; the layer flow only decides emptiness
    torch.testing.assert_close(shower[0], torch.tensor([2.0, 0.5, 0.105, 0.0, 0.0]))
    torch.testing.assert_close(visible, torch.tensor([2.605, 0.0, 0.0]))
    assert bool((shower[1:] == 0).all())
    assert torch.equal(context, cells)
    with pytest.raises(ValueError, match="rescale must be one of"):
        pre.finish_layer(cells, energy, rescale="cells")


def test_preprocessing_rejects_bad_input() -> None:
    pre = ShowerPreprocessor(4, 6)
    with pytest.raises(ValueError, match=r"\(N, 4, 6\)"):
        pre.fit(torch.ones(3, 5, 6), torch.ones(3, 4), torch.ones(3))
    with pytest.raises(ValueError, match="> 0"):
        pre.fit(torch.zeros(3, 4, 6), torch.ones(3, 4), torch.ones(3))
    with pytest.raises(ValueError, match=">= 2 showers"):
        pre.fit(torch.ones(1, 4, 6), torch.ones(1, 4), torch.ones(1))
    with pytest.raises(ValueError, match="noise_high_mev < threshold_mev"):
        ShowerPreprocessor(4, 6, threshold_mev=0.05)


def test_context_of_layer_l_holds_exactly_layers_l_minus_5_to_l_minus_1() -> None:
    n, layers, cells, history = 3, 8, 2, 5
    images = torch.arange(1.0, layers + 1).view(1, layers, 1).expand(n, layers, cells)  # image of layer k = k + 1
    w = torch.arange(layers, dtype=torch.float32).expand(n, layers) * 10
    e = torch.full((n, 1), -1.0)
    context = previous_layer_context(w, e, images, history)
    assert context.shape == (layers, n, 2 + history * cells)
    mask = history_mask(layers, cells, history)
    for layer in range(layers):
        assert context[layer, 0, 0] == 10 * layer
        assert context[layer, 0, 1] == -1
        slots = context[layer, 0, 2:].view(history, cells)[:, 0].tolist()
        expected = [float(layer - k + 1) if layer - k >= 0 else 0.0 for k in range(1, history + 1)]
        assert slots == expected, (layer, slots)
        seen = mask[layer, 2:].view(history, cells)[:, 0].tolist()
        assert seen == [1.0 if layer - k >= 0 else 0.0 for k in range(1, history + 1)]
    assert int(mask[0].sum()) == 2
    assert int(mask[-1].sum()) == 2 + history * cells


def test_context_moments_follow_the_images_for_the_same_previous_layers() -> None:
    n, layers, cells, history, k = 2, 8, 3, 5, 4
    images = torch.zeros(n, layers, cells)
    moments = torch.arange(1.0, layers + 1).view(1, layers, 1).expand(n, layers, k)  # moments of layer j = j + 1
    context = previous_layer_context(torch.zeros(n, layers), torch.zeros(n, 1), images, history, moments)
    assert context.shape == (layers, n, 2 + history * (cells + k))
    mask = history_mask(layers, cells, history, k)
    assert mask.shape == context.shape[::2]
    tail = 2 + history * cells
    for layer in range(layers):
        slots = context[layer, 0, tail:].view(history, k)[:, 0].tolist()
        expected = [float(layer - j + 1) if layer - j >= 0 else 0.0 for j in range(1, history + 1)]
        assert slots == expected, (layer, slots)
        seen = mask[layer, tail:].view(history, k)[:, 0].tolist()
        assert seen == [1.0 if layer - j >= 0 else 0.0 for j in range(1, history + 1)]
    assert int(mask[-1].sum()) == 2 + history * (cells + k)


def test_layer_moments_of_a_known_layer() -> None:
    # a 10 x 10 layer: a Gaussian blob centred at (5.6, 3.9) in cell indices, width 1.0 cell
    x = torch.arange(10.0)
    gx, gy = torch.exp(-0.5 * (x - 5.6) ** 2), torch.exp(-0.5 * (x - 3.9) ** 2)
    layer = (gx[:, None] * gy[None, :]).reshape(1, 100) * 7.0
    cog_x, cog_y, width_x, width_y = layer_moments(torch.cat((layer, torch.zeros(1, 100))), (10, 10)).unbind(-1)
    # measured from the layer's centre (4.5); the blob is far enough from the edges to be whole
    assert float(cog_x[0]) == pytest.approx(5.6 - 4.5, abs=1e-3)
    assert float(cog_y[0]) == pytest.approx(3.9 - 4.5, abs=1e-3)
    assert float(width_x[0]) == pytest.approx(1.0, abs=2e-3)
    assert float(width_y[0]) == pytest.approx(1.0, abs=2e-3)
    assert float(cog_x[1]) == float(width_y[1]) == 0.0  # an empty layer: zeros, no NaN
