"""PoissonBootstrap: Poisson(1) moments, independence, reproducibility."""

from __future__ import annotations

import pytest
import torch

from models.bootstrap import PoissonBootstrap, derive_seed


def test_weights_have_mean_and_variance_one() -> None:
    weights = PoissonBootstrap(n_members=20, seed=3).weights(50_000)  # 1e6 draws
    assert weights.shape == (20, 50_000)
    assert weights.dtype == torch.float32
    assert torch.all(weights == weights.round())
    assert torch.all(weights >= 0)
    # Standard error of the mean is 1e-3 and of the variance about 1.4e-3: 5 sigma bounds.
    assert abs(weights.mean().item() - 1.0) < 5e-3
    assert abs(weights.var().item() - 1.0) < 1e-2
    # P(0) = P(1) = e^-1 for Poisson(1).
    assert abs((weights == 0).float().mean().item() - 0.3679) < 3e-3
    # Members are independent: correlation between two members is ~0.
    correlation = torch.corrcoef(weights[:2])[0, 1].item()
    assert abs(correlation) < 0.03


def test_same_seed_same_weights_and_reseed() -> None:
    a, b = PoissonBootstrap(4, seed=1), PoissonBootstrap(4, seed=1)
    assert torch.equal(a.weights(100), b.weights(100))
    a.reseed(5)
    first = a.weights(100)
    a.reseed(5)
    assert torch.equal(a.weights(100), first)
    assert not torch.equal(PoissonBootstrap(4, seed=2).weights(100), PoissonBootstrap(4, seed=1).weights(100))


def test_derive_seed_is_stable_and_positive() -> None:
    assert derive_seed(0, 1) == derive_seed(0, 1)
    assert 0 <= derive_seed(2**40, 7) < 2**63
    assert derive_seed(0, 1) != derive_seed(1, 0)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="n_members"):
        PoissonBootstrap(0)
    with pytest.raises(ValueError, match="n_events"):
        PoissonBootstrap(2).weights(-1)
