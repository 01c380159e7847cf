"""BatchedMAF: equal to nflows MAFs member by member, invertible, autoregressive."""

from __future__ import annotations

import pytest
import torch

from models.flows.batched_maf import BatchedMAF
from models.flows.made import made_masks
from models.flows.nflows_bridge import load_member_into_nflows

# (features, n_blocks, hidden_features, n_hidden_layers); the first is the paper's.
ARCHITECTURES = [(4, 5, 32, 2), (2, 2, 8, 3), (1, 2, 8, 1), (3, 1, 5, 2)]


def _perturbed(features: int, n_blocks: int, hidden: int, layers: int, members: int = 3) -> BatchedMAF:
    """A BatchedMAF whose weights moved away from initialisation (a few Adam steps)."""
    generator = torch.Generator().manual_seed(7)
    maf = BatchedMAF(members, features, n_blocks, hidden, layers, generator=generator)
    optimizer = torch.optim.Adam(maf.parameters(), lr=0.05)
    data = torch.randn(64, features, generator=generator) * 2 + 1
    for _ in range(5):
        optimizer.zero_grad()
        (-maf.log_prob(data).mean(dim=1).sum()).backward()
        maf.mask_gradient()
        optimizer.step()
    return maf


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_log_prob_equals_nflows_member_by_member(architecture: tuple[int, int, int, int]) -> None:
    maf = _perturbed(*architecture)
    x = torch.randn(200, architecture[0], generator=torch.Generator().manual_seed(1)) * 1.5
    ours = maf.log_prob(x).detach()
    for member in range(maf.n_members):
        flow = load_member_into_nflows(maf, member)
        reference = flow.log_prob(x).detach()
        torch.testing.assert_close(ours[member], reference, atol=1e-5, rtol=0)


def test_gradients_equal_nflows() -> None:
    maf = _perturbed(4, 2, 16, 2, members=2)
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(2))
    maf.zero_grad()
    (-maf.log_prob(x).mean(dim=1).sum()).backward()
    maf.mask_gradient()
    ours = maf.flatten_layers([p.grad for p in maf.layers])
    for member in range(2):
        flow = load_member_into_nflows(maf, member)
        (-flow.log_prob(x).mean()).backward()
        named = maf.unflatten(ours)
        net = flow._transform._transforms[1].autoregressive_net  # block 0
        torch.testing.assert_close(named["input.weight"][0, member], net.initial_layer.weight.grad, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(named["output.bias"][0, member], net.final_layer.bias.grad, atol=1e-5, rtol=1e-4)


def test_flat_weights_of_a_member_map_onto_nflows_swa_weights() -> None:
    maf = _perturbed(4, 2, 8, 2)
    other = maf.flat_weights() * 0.5
    x = torch.randn(20, 4)
    flow = load_member_into_nflows(maf, 1, flat=other)
    torch.testing.assert_close(maf.log_prob(x, other)[1].detach(), flow.log_prob(x).detach(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_inverse_inverts_forward(architecture: tuple[int, int, int, int]) -> None:
    maf = _perturbed(*architecture)
    z = torch.randn(maf.n_members, 500, architecture[0], generator=torch.Generator().manual_seed(3))
    x = maf.inverse(z)
    z_again, _ = maf.transform(x)
    torch.testing.assert_close(z_again.detach(), z, atol=1e-4, rtol=0)


def test_masked_weights_stay_zero_and_outputs_are_autoregressive() -> None:
    maf = _perturbed(4, 1, 8, 2, members=2)
    masks = made_masks(4, 8)
    named = maf.unflatten(maf.flat_weights())
    assert torch.all(named["input.weight"][0] * (1 - masks.input) == 0)
    assert torch.all(named["output.weight"][0] * (1 - masks.output) == 0)
    # The Jacobian of one block (after its order reversal) is triangular: z_d depends on x_<=d.
    x = torch.randn(2, 1, 4)
    jacobian = torch.autograd.functional.jacobian(lambda v: maf.transform(v)[0], x)  # (2,1,4,2,1,4)
    reversed_inputs = jacobian[0, 0, :, 0, 0, :].flip(-1)  # d z / d flip(x)
    assert torch.all(reversed_inputs.triu(diagonal=1) == 0)


def test_flat_round_trip_and_bad_shapes() -> None:
    maf = BatchedMAF(2, 3, 2, 4, 2)
    flat = maf.flat_weights()
    assert torch.equal(maf.flatten(maf.unflatten(flat)), flat)
    with pytest.raises(ValueError, match="flat weights must have shape"):
        maf.unflatten(flat[:-1])
    with pytest.raises(ValueError, match="inputs must have shape"):
        maf.log_prob(torch.zeros(5, 4))
    with pytest.raises(ValueError, match="n_blocks"):
        BatchedMAF(2, 3, 0)


def test_two_graphs_alive_at_once_get_their_own_activations() -> None:
    maf = _perturbed(4, 3, 8, 2, members=2)
    x1, x2 = torch.randn(30, 4), torch.randn(30, 4) * 2
    reference = []
    for x in (x1, x2):
        maf.zero_grad()
        maf.log_prob(x).sum().backward()
        reference.append(maf.flatten_layers([p.grad for p in maf.layers]))
    maf.zero_grad()
    first, second = maf.log_prob(x1).sum(), maf.log_prob(x2).sum()  # two workspaces in use
    second.backward()
    torch.testing.assert_close(maf.flatten_layers([p.grad for p in maf.layers]), reference[1])
    maf.zero_grad()
    first.backward()
    torch.testing.assert_close(maf.flatten_layers([p.grad for p in maf.layers]), reference[0])


def test_backward_after_the_activations_were_reused_raises() -> None:
    maf = _perturbed(2, 2, 8, 2, members=2)
    loss = maf.log_prob(torch.randn(10, 2)).sum()
    loss.backward(retain_graph=True)
    maf.log_prob(torch.randn(10, 2)).sum().backward()  # takes the same workspace back
    with pytest.raises(RuntimeError, match="overwritten by a later forward pass"):
        loss.backward()
