"""A whole ensemble of masked autoregressive flows (MAF) as one batched computation.

Papamakarios et al., "Masked Autoregressive Flow for Density Estimation" (arXiv
1705.07057), with MADE conditioners (arXiv 1502.03509). Every member has the same
architecture; all their weights live in ONE flat parameter vector whose views carry a
leading member dimension, so a forward/backward pass over all members is a handful of
batched matrix products (:func:`torch.baddbmm`) and one optimiser step updates them all.

Architecture (identical to ``nflows.flows.MaskedAutoregressiveFlow`` with
``use_residual_blocks=False``, ``num_layers=n_blocks``,
``num_blocks_per_layer=n_hidden_layers - 1``): each of the ``n_blocks`` blocks first
reverses the feature order, then applies a MADE affine autoregressive transform
``z_d = scale_d * x_d + shift_d`` with ``scale_d = softplus(s_d) + 1e-3``, where
``(s_d, shift_d)`` is the MADE output of features ``< d`` (this is the affine convention
of nflows 0.14; older nflows used ``sigmoid(s_d + 2) + 1e-3``). The base is a standard
normal. Weights are initialised like ``torch.nn.Linear`` and masked; masked entries are
kept at exactly zero (their gradients are masked), so no mask multiply is needed in the
forward pass.

:meth:`BatchedMAF.transform` and :meth:`BatchedMAF.log_prob` run all blocks as one
autograd function with a hand-written backward pass that also masks the weight
gradients (:mod:`models.flows.fused_transform`); the activations of a training step live
in buffers reused from step to step.

Each layer of each block is one parameter with a leading member dimension (``(M, out,
in)`` weights, ``(M, out)`` biases), so autograd never has to scatter gradients into a
larger tensor, and the fused Adam updates them all in one kernel. For averaging and
saving, the weights are also exchanged as ONE flat vector, the concatenation of the
stacked tensors of :attr:`BatchedMAF.shapes` in this order, with M members, B blocks, D
features, H hidden units and L hidden layers::

    input.weight  (B, M, H, D)        input.bias  (B, M, H)
    hidden.weight (B, L-1, M, H, H)   hidden.bias (B, L-1, M, H)
    output.weight (B, M, 2D, H)       output.bias (B, M, 2D)   # rows [s_0, t_0, s_1, ...]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.flows.checks import positive_int
from models.flows.fused_transform import SCALE_EPSILON, WorkspacePool, fused_transform
from models.flows.made import made_masks

__all__ = ["SCALE_EPSILON", "BatchedMAF"]


def _check_positive(name: str, value: object, minimum: int = 1) -> int:
    return positive_int("BatchedMAF", name, value, minimum)


class BatchedMAF(nn.Module):
    """``n_members`` independent MAFs evaluated together.

    Args:
        n_members: ensemble size M.
        features: dimension D of the flow.
        n_blocks: number of MADE blocks B (each preceded by an order reversal).
        hidden_features: units H per hidden layer.
        n_hidden_layers: hidden layers L per MADE (>= 1).
        generator: optional seeded generator for the initial weights.

    Raises:
        ValueError: for a non-positive size, naming the argument.

    Example:
        >>> maf = BatchedMAF(n_members=3, features=2, n_blocks=2, hidden_features=8)
        >>> maf.log_prob(torch.zeros(3, 5, 2)).shape
        torch.Size([3, 5])
        >>> maf.flat_weights().shape
        torch.Size([792])
    """

    def __init__(
        self,
        n_members: int,
        features: int,
        n_blocks: int = 5,
        hidden_features: int = 32,
        n_hidden_layers: int = 2,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.n_members = _check_positive("n_members", n_members)
        self.features = _check_positive("features", features)
        self.n_blocks = _check_positive("n_blocks", n_blocks)
        self.hidden_features = _check_positive("hidden_features", hidden_features)
        self.n_hidden_layers = _check_positive("n_hidden_layers", n_hidden_layers)
        m, d, b, h, k = n_members, features, n_blocks, hidden_features, n_hidden_layers - 1
        self.shapes: dict[str, tuple[int, ...]] = {
            "input.weight": (b, m, h, d),
            "input.bias": (b, m, h),
            "hidden.weight": (b, k, m, h, h),
            "hidden.bias": (b, k, m, h),
            "output.weight": (b, m, 2 * d, h),
            "output.bias": (b, m, 2 * d),
        }
        self._offsets: dict[str, tuple[int, int]] = {}
        start = 0
        for name, shape in self.shapes.items():
            size = math.prod(shape)
            self._offsets[name] = (start, start + size)
            start += size
        self._size = start
        # One parameter per (block, layer); ``_slots`` says where it sits in the stacked tensors.
        self._slots: list[tuple[str, tuple[int, ...]]] = []
        for block in range(b):
            self._slots += [("input.weight", (block,)), ("input.bias", (block,))]
            for layer in range(k):
                self._slots += [("hidden.weight", (block, layer)), ("hidden.bias", (block, layer))]
            self._slots += [("output.weight", (block,)), ("output.bias", (block,))]
        self.layers = nn.ParameterList(
            [nn.Parameter(torch.empty(self.shapes[name][len(index) :])) for name, index in self._slots]
        )
        masks = made_masks(d, h)
        layer_mask = {"input.weight": masks.input, "hidden.weight": masks.hidden, "output.weight": masks.output}
        for i, (name, _) in enumerate(self._slots):
            if name in layer_mask:
                self.register_buffer(f"mask_{i}", layer_mask[name].expand(m, -1, -1).contiguous(), persistent=False)
        self._workspaces = WorkspacePool()  # activation buffers reused between training steps
        self.reset_parameters(generator)

    def extra_repr(self) -> str:
        return (
            f"n_members={self.n_members}, features={self.features}, n_blocks={self.n_blocks}, "
            f"hidden_features={self.hidden_features}, n_hidden_layers={self.n_hidden_layers}, "
            f"parameters_per_member={self._size // self.n_members}"
        )

    @property
    def n_parameters(self) -> int:
        """Number of weights of all members together (length of the flat vector)."""
        return self._size

    def _live_layers(self) -> list[nn.Parameter]:
        # Same as list(self.layers), without ParameterList's per-item __getitem__ (~40 µs a call).
        return list(self.layers._parameters.values())  # type: ignore[arg-type]

    def _masks(self) -> list[torch.Tensor | None]:
        """The gradient mask of every entry of :attr:`layers` (None for biases)."""
        return [self._buffers.get(f"mask_{i}") for i in range(len(self.layers))]

    def _masked(self) -> list[tuple[nn.Parameter, torch.Tensor]]:
        return [(p, mask) for p, mask in zip(self._live_layers(), self._masks(), strict=True) if mask is not None]

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of a flat vector shaped as in :attr:`shapes`."""
        if flat.shape != (self._size,):
            msg = f"BatchedMAF: flat weights must have shape ({self._size},), got {tuple(flat.shape)}"
            raise ValueError(msg)
        return {name: flat[start:stop].view(self.shapes[name]) for name, (start, stop) in self._offsets.items()}

    def flatten(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Inverse of :meth:`unflatten`: one flat vector from named stacked tensors.

        Raises:
            ValueError: for a missing name or a wrong shape, naming both.
        """
        parts = []
        for name, shape in self.shapes.items():
            if name not in tensors:
                msg = f"BatchedMAF.flatten: missing tensor {name!r} (have {sorted(tensors)})"
                raise ValueError(msg)
            if tuple(tensors[name].shape) != shape:
                msg = f"BatchedMAF.flatten: tensor {name!r} has shape {tuple(tensors[name].shape)}, expected {shape}"
                raise ValueError(msg)
            parts.append(tensors[name].reshape(-1).to(self.layers[0].device, self.layers[0].dtype))
        return torch.cat(parts)

    def flatten_layers(self, per_layer: Sequence[torch.Tensor]) -> torch.Tensor:
        """One flat vector from tensors shaped like :attr:`layers` (weights, Adam moments...)."""
        flat = torch.empty(self._size, device=per_layer[0].device, dtype=per_layer[0].dtype)
        for view, value in zip(self.split_flat(flat), per_layer, strict=True):
            view.copy_(value.detach())
        return flat

    def split_flat(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Views of ``flat``, one per entry of :attr:`layers` (same shapes)."""
        named = self.unflatten(flat)
        return [named[name][index] for name, index in self._slots]

    def flat_weights(self) -> torch.Tensor:
        """A detached copy of the live weights as one flat vector."""
        return self.flatten_layers(list(self.layers))

    @torch.no_grad()
    def load_flat(self, flat: torch.Tensor) -> None:
        """Set the live weights from a flat vector (masked entries are forced to zero)."""
        for parameter, value in zip(self.layers, self.split_flat(flat.to(self.layers[0].device)), strict=True):
            parameter.copy_(value)
        for parameter, mask in self._masked():
            parameter.mul_(mask)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Initialise like ``nn.Linear`` (uniform in ±1/sqrt(fan_in)) and apply the masks."""
        fan_in = {"input": self.features, "hidden": self.hidden_features, "output": self.hidden_features}
        device = "cpu" if generator is None else generator.device
        flat = torch.empty(self._size)
        for name, view in self.unflatten(flat).items():
            bound = 1.0 / math.sqrt(fan_in[name.split(".")[0]])
            values = torch.rand(view.shape, generator=generator, device=device)
            view.copy_(values.mul_(2 * bound).sub_(bound))
        self.load_flat(flat)

    def mask_gradient(self) -> None:
        """Zero the gradient of masked weights.

        Gradients that reach the weights through :meth:`transform` or :meth:`log_prob`
        are masked by their backward pass already; call this (after ``backward``, before
        the step) when a loss also touches the weights some other way, e.g. a penalty.
        """
        pairs = [(p.grad, mask) for p, mask in self._masked() if p.grad is not None]
        if pairs:
            torch._foreach_mul_([g for g, _ in pairs], [mask for _, mask in pairs])

    def _blocks(self, flat: torch.Tensor | None) -> list[list[torch.Tensor]]:
        layers = self._live_layers() if flat is None else self.split_flat(flat)
        per_block = len(layers) // self.n_blocks
        return [layers[b * per_block : (b + 1) * per_block] for b in range(self.n_blocks)]

    def _expand(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n_members, -1, -1)
        if x.dim() != 3 or x.shape[0] != self.n_members or x.shape[2] != self.features:
            msg = (
                f"BatchedMAF: inputs must have shape (N, {self.features}) or "
                f"({self.n_members}, N, {self.features}), got {tuple(x.shape)}"
            )
            raise ValueError(msg)
        return x

    def transform(self, x: torch.Tensor, flat: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Map data to the base space.

        Args:
            x: ``(M, N, D)`` inputs (or ``(N, D)``, shared by all members).
            flat: weights to use as a flat vector (default: the live parameters).

        Returns:
            ``z`` of shape ``(M, N, D)`` and ``log|det dz/dx|`` of shape ``(M, N)``.
        """
        z, logabsdet, _ = self._fused(x, flat)
        return z, logabsdet

    def log_prob(self, x: torch.Tensor, flat: torch.Tensor | None = None) -> torch.Tensor:
        """Log-density ``(M, N)`` of ``x`` (``(M, N, D)`` or shared ``(N, D)``) per member."""
        return self._fused(x, flat)[2]

    def _fused(self, x: torch.Tensor, flat: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        layers = self._live_layers() if flat is None else self.split_flat(flat)
        return fused_transform(self._expand(x), layers, self.n_blocks, self._workspaces, self._masks())

    @torch.no_grad()
    def inverse(self, z: torch.Tensor, flat: torch.Tensor | None = None) -> torch.Tensor:
        """Map base-space points ``z`` (``(M, N, D)``) back to data space.

        Each MADE block is inverted feature by feature (D passes per block). Pass ``i``
        only evaluates what feature ``i`` depends on: hidden units are sorted by degree
        and only those of degree <= i (and inputs ``< i``) enter, so the passes cost
        about as much as 1.5 forward passes instead of D. Computed in a ``(M, D, N)``
        layout so that per-feature rows are contiguous.
        """
        z = self._expand(z)
        d = self.features
        degrees = torch.arange(self.hidden_features) % max(1, d - 1) + min(1, d - 1)
        order = torch.argsort(degrees, stable=True).to(z.device)
        needed = [int((degrees <= i).sum()) for i in range(d)]
        y = z.transpose(1, 2).contiguous()
        for block in reversed(self._blocks(flat)):
            w_in, b_in = block[0][:, order], block[1][:, order].unsqueeze(-1)
            hidden = [
                (block[k][:, order][:, :, order], block[k + 1][:, order].unsqueeze(-1))
                for k in range(2, len(block) - 2, 2)
            ]
            w_out, b_out = block[-2][:, :, order], block[-1].unsqueeze(-1)
            x = torch.empty_like(y)
            for i in range(d):
                units = needed[i]
                # bmm + add_ beats baddbmm here: baddbmm first copies the stride-0 bias.
                h = torch.bmm(w_in[:, :units, :i].contiguous(), x[:, :i]).add_(b_in[:, :units]).relu_()
                for weight, bias in hidden:
                    h = torch.bmm(weight[:, :units, :units].contiguous(), h).add_(bias[:, :units]).relu_()
                params = torch.bmm(w_out[:, 2 * i : 2 * i + 2, :units].contiguous(), h).add_(b_out[:, 2 * i : 2 * i + 2])
                scale = F.softplus(params[:, 0]).add_(SCALE_EPSILON)
                torch.div(y[:, i] - params[:, 1], scale, out=x[:, i])
            y = x.flip(1)
        return y.transpose(1, 2)
