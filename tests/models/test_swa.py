"""StochasticWeightAverage: equals the arithmetic mean of what it saw."""

from __future__ import annotations

import pytest
import torch

from models.swa import StochasticWeightAverage


def test_average_equals_arithmetic_mean() -> None:
    generator = torch.Generator().manual_seed(0)
    seen = [torch.randn(1000, generator=generator) * 3 + i for i in range(17)]
    swa = StochasticWeightAverage()
    for weights in seen:
        swa.update({"w": weights, "b": 2 * weights})
    assert swa.count == 17
    mean = torch.stack(seen).mean(dim=0)
    torch.testing.assert_close(swa.average["w"], mean, atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(swa.average["b"], 2 * mean, atol=2e-5, rtol=1e-6)


def test_average_does_not_alias_the_live_weights() -> None:
    live = torch.ones(3)
    swa = StochasticWeightAverage()
    swa.update({"w": live})
    live.add_(10)
    assert torch.equal(swa.average["w"], torch.ones(3))


def test_load_and_mismatch() -> None:
    swa = StochasticWeightAverage()
    swa.load({"w": torch.zeros(2)}, 4)
    swa.update({"w": torch.full((2,), 5.0)})
    assert swa.count == 5
    torch.testing.assert_close(swa.average["w"], torch.ones(2))
    with pytest.raises(ValueError, match="shape"):
        swa.update({"w": torch.zeros(3)})
    with pytest.raises(ValueError, match="names"):
        swa.update({"v": torch.zeros(2)})
    with pytest.raises(ValueError, match="count"):
        swa.load({}, 2)
