"""The fused per-layer kernel of shower generation against the torch path it replaces."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from models.shower_data import to_sparse
from models.showerflow import LayerShowerFlow, layer_kernel
from models.showerflow.preprocessing import ShowerPreprocessor
from stream.showers.simulator import sample_energies, simulate

SHAPE = (10, 10)


@pytest.fixture(scope="module")
def preprocessor() -> ShowerPreprocessor:
    """A preprocessor fitted on 400 simulated showers of the central 10 x 10 window (3 layers)."""
    energies = sample_energies(0, 0, 400, 10.0, 100.0).astype(np.float32)
    showers = torch.from_numpy(simulate("ecal", energies, 0))[:, 10:13, 10:20, 10:20].flatten(2)
    pre = ShowerPreprocessor(3, 100, knots=33)
    noisy, layer, _ = pre.dequantise(showers, torch.Generator().manual_seed(1))
    pre.fit(noisy, layer, torch.from_numpy(energies))
    return pre


def _outputs(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    # views into larger tensors, as sampling passes them: (n, L, P) and (n, L) with L = 3
    return (torch.full((n, 3, 100), -1.0)[:, 1], torch.full((n, 3), -1.0)[:, 1], torch.full((n, 3, 100), -1.0)[:, 1],
            torch.full((n, 3, 4), -1.0)[:, 1])


def _run(pre: ShowerPreprocessor, features: torch.Tensor, layer_mev: torch.Tensor, fused: bool) -> tuple[torch.Tensor, ...]:
    out = _outputs(features.shape[0])
    layer_kernel.FUSED["enabled"] = fused
    try:
        pre.generated_layer(features, 1, layer_mev, "layer", SHAPE, True, out)
    finally:
        layer_kernel.FUSED["enabled"] = True
    return out


def test_fused_equals_the_torch_path(preprocessor: ShowerPreprocessor) -> None:
    generator = torch.Generator().manual_seed(2)
    n = 4000
    features = torch.randn(n, 100, generator=generator) * 1.3
    features[0, :5] = torch.tensor([float("nan"), float("inf"), -float("inf"), 60.0, -60.0])
    layer_mev = torch.exp(torch.randn(n, generator=generator) * 1.5 + 1.0)
    layer_mev[:50] = 0.05  # below the 0.1 MeV threshold: empty layers
    fused = _run(preprocessor, features, layer_mev, True)
    reference = _run(preprocessor, features, layer_mev, False)
    shower, visible, image, moments = fused
    ref_shower, ref_visible, ref_image, ref_moments = reference
    torch.testing.assert_close(visible, ref_visible, rtol=1e-6, atol=0)
    same_hits = (shower > 0) == (ref_shower > 0)
    assert float(same_hits.float().mean()) > 1 - 1e-4  # only cells within rounding of the threshold may differ
    agree = same_hits.all(-1)
    assert int(agree.sum()) >= n - 5
    torch.testing.assert_close(shower[agree], ref_shower[agree], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(image[agree], ref_image[agree], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(moments[agree][:, :2], ref_moments[agree][:, :2], rtol=1e-4, atol=1e-5)
    # widths: E[x^2] - cog^2 cancels in the torch path's float32 (up to ~1e-3 cells for a single hit, where
    # the kernel's float64 gives 0)
    torch.testing.assert_close(moments[agree][:, 2:], ref_moments[agree][:, 2:], rtol=0, atol=2e-3)
    empty = layer_mev < 0.1
    assert int(empty.sum()) > 50
    assert bool((shower[empty] == 0).all())
    assert bool((visible[empty] == 0).all())
    full = ~empty & agree
    torch.testing.assert_close(shower[full].sum(-1), layer_mev[full], rtol=1e-4, atol=0)  # rescaled to the layer energy
    assert bool(torch.isfinite(image).all())


def _tiny(**extra: Any) -> LayerShowerFlow:
    model = LayerShowerFlow(layer_blocks=1, layer_hidden=8, shower_blocks=1, shower_hidden=8, shower_context_embedding=4,
                            student_layer_blocks=1, student_layer_hidden=8, student_blocks=1, student_hidden=8,
                            student_context_embedding=4, main_buffers=1, student_buffers=1, seed=5, **extra)
    energies = sample_energies(4, 0, 24, 10.0, 100.0).astype(np.float32)
    model.train_on_buffer(to_sparse(torch.from_numpy(energies), torch.from_numpy(simulate("ecal", energies, 4))), 1, 8)
    model.end_buffer()
    return model


@pytest.mark.parametrize("moments", [False, True])
def test_sampling_with_the_kernel_equals_sampling_without(moments: bool) -> None:
    model = _tiny(context_moments=moments)
    condition = {"incident_energy": torch.linspace(15.0, 85.0, 64)}
    fused = model.sample(64, seed=3, condition=condition)
    layer_kernel.FUSED["enabled"] = False
    try:
        reference = model.sample(64, seed=3, condition=condition)
    finally:
        layer_kernel.FUSED["enabled"] = True
    torch.testing.assert_close(fused["layer_energy"], reference["layer_energy"], rtol=1e-6, atol=0)
    # the layers after a rounding-level difference see slightly different contexts, so compare sums and hits
    a, b = fused["showers"].flatten(2), reference["showers"].flatten(2)
    torch.testing.assert_close(a.sum(-1), b.sum(-1), rtol=1e-4, atol=1e-6)
    assert float(((a > 0) == (b > 0)).float().mean()) > 0.999
