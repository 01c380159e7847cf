"""Preprocessing of the layer and shower flows: dequantisation, logs, standardisation.

Units: cell and layer energies in MeV, the incident energy in GeV. For a shower of the
modelled window, ``L`` layers of ``P = X * Y`` cells (30 layers of 10 × 10 cells):

1. **Dequantisation.** ``x~ = x + u`` with ``u ~ U(0, noise_mev]`` drawn afresh for every
   cell each time a shower is used (default ``noise_mev = 0.01`` MeV, a tenth of the
   ECAL analysis threshold of 0.1 MeV = 0.5 MIP). Empty cells (82 % of the window)
   become a continuous density below ``noise_mev`` that the flows can learn; everything
   in that range is below the threshold, so it is invisible to the validation.
2. **Layer energies.** ``t_l = sum_i x~_{l,i}`` (MeV), exactly the sum of the dequantised
   cells, so generated layers carry the same sub-threshold noise mass as the data and
   the rescaling in step 5 introduces no bias. Layer-flow features
   ``w_l = (log t_l - mean_l) / std_l``; its context ``e = (log(E_inc / GeV) - mean) / std``.
3. **Cell features** (what shower flow ``l`` models): ``y_{l,i} = (log x~_{l,i} -
   mean_{l,i}) / std_{l,i}``. Absolute log energies rather than fractions of the layer
   sum: fractions sum to one, a 99-dimensional surface in 100 dimensions on which a flow's
   density would diverge.
4. **Context images** (what later layers see): the normalised image of layer ``k``,
   ``r_{k,i} = (log(x~_{k,i} / t_k) - mean_{k,i}) / std_{k,i}`` (log of the fraction of
   the layer's energy in each cell, standardised).
5. **Rescaling** after generation: ``x~_l <- x~_l * t_l / sum_i x~_{l,i}`` with ``t_l``
   from the layer flow, so every layer sums to the layer flow's energy.

Means and standard deviations are fitted once, on the first buffer, and frozen
(standard deviations floored at 1e-3), so every later buffer maps the same way. Steps 2-4
are inverted exactly by :meth:`ShowerPreprocessor.cells_from_features`,
:meth:`ShowerPreprocessor.layer_energy_from_features` and
:meth:`ShowerPreprocessor.fractions_from_context` (float32 round-off only); the noise of
step 1 is not removed: generated showers are dequantised showers, with cells below
``noise_mev`` where the data had zeros.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ShowerPreprocessor", "previous_layer_context"]

_STD_FLOOR = 1e-3
_LOG_FLOOR = -30.0  # log of a cell energy (MeV) or fraction is clamped here when decoding samples
_LOG_CEILING = 12.0


class ShowerPreprocessor(nn.Module):
    """Frozen standardisations of log energies for the layer and shower flows.

    Args:
        layers: layers ``L`` of the modelled window.
        cells: cells ``P`` per layer.
        noise_mev: width of the uniform dequantisation noise (MeV).

    Raises:
        ValueError: non-positive sizes or noise.

    Example:
        >>> pre = ShowerPreprocessor(2, 3, noise_mev=0.01)
        >>> cells = torch.rand(8, 2, 3) * 10 + 0.01
        >>> energy = torch.linspace(10.0, 90.0, 8)
        >>> pre.fit(cells, energy)
        >>> y = pre.cell_features(cells)
        >>> bool(torch.allclose(pre.cells_from_features(y), cells, rtol=1e-5))
        True
    """

    def __init__(self, layers: int, cells: int, noise_mev: float = 0.01) -> None:
        super().__init__()
        if layers < 1 or cells < 1:
            msg = f"ShowerPreprocessor: layers and cells must be >= 1, got {layers} and {cells}"
            raise ValueError(msg)
        if not noise_mev > 0:
            msg = f"ShowerPreprocessor: noise_mev must be > 0, got {noise_mev!r}"
            raise ValueError(msg)
        self.layers, self.cells, self.noise_mev = int(layers), int(cells), float(noise_mev)
        for name, shape in (("cell", (layers, cells)), ("fraction", (layers, cells)), ("layer", (layers,)), ("energy", (1,))):
            self.register_buffer(f"{name}_mean", torch.zeros(shape))
            self.register_buffer(f"{name}_std", torch.ones(shape))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def extra_repr(self) -> str:
        return f"layers={self.layers}, cells={self.cells}, noise_mev={self.noise_mev}, fitted={bool(self.fitted)}"

    def _check_cells(self, cells: torch.Tensor, what: str) -> None:
        if cells.dim() != 3 or tuple(cells.shape[1:]) != (self.layers, self.cells):
            msg = f"ShowerPreprocessor: {what} must have shape (N, {self.layers}, {self.cells}), got {tuple(cells.shape)}"
            raise ValueError(msg)

    # ------------------------------------------------------------------ step 1
    def dequantise(self, cells_mev: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x + u, u)`` with ``u ~ U(0, noise_mev]`` per cell, drawn from ``generator``."""
        self._check_cells(cells_mev, "cells")
        # 1 - U[0, 1) lies in (0, 1]: no dequantised cell is exactly zero
        noise = torch.rand(cells_mev.shape, generator=generator, device=cells_mev.device).neg_().add_(1.0).mul_(self.noise_mev)
        return cells_mev + noise, noise

    # ------------------------------------------------------------------ fit
    @torch.no_grad()
    def fit(self, dequantised_mev: torch.Tensor, incident_gev: torch.Tensor) -> None:
        """Fit all means and standard deviations on dequantised cells ``(N, L, P)``.

        Raises:
            ValueError: wrong shapes, fewer than two showers, or non-positive energies.
        """
        self._check_cells(dequantised_mev, "cells")
        incident_gev = incident_gev.reshape(-1).to(dequantised_mev)
        if dequantised_mev.shape[0] < 2 or incident_gev.numel() != dequantised_mev.shape[0]:
            msg = (
                f"ShowerPreprocessor.fit: need >= 2 showers with one incident energy each, got "
                f"{dequantised_mev.shape[0]} showers and {incident_gev.numel()} energies"
            )
            raise ValueError(msg)
        if not bool((dequantised_mev > 0).all()) or not bool((incident_gev > 0).all()):
            msg = "ShowerPreprocessor.fit: dequantised cells and incident energies must be > 0"
            raise ValueError(msg)
        log_cells = dequantised_mev.log()
        log_layer = dequantised_mev.sum(-1).log()
        log_fraction = log_cells - log_layer.unsqueeze(-1)
        log_energy = incident_gev.log().unsqueeze(-1)
        for name, values in (("cell", log_cells), ("fraction", log_fraction), ("layer", log_layer), ("energy", log_energy)):
            getattr(self, f"{name}_mean").copy_(values.mean(0))
            getattr(self, f"{name}_std").copy_(values.std(0).clamp_min(_STD_FLOOR))
        self.fitted.fill_(True)

    # ------------------------------------------------------------------ steps 2-4
    def layer_energies(self, dequantised_mev: torch.Tensor) -> torch.Tensor:
        """``t`` ``(N, L)``: layer sums of dequantised cells (MeV)."""
        return dequantised_mev.sum(-1)

    def layer_features(self, layer_mev: torch.Tensor) -> torch.Tensor:
        """``w = (log t - mean) / std``, ``(N, L)``."""
        return (layer_mev.log() - self.layer_mean) / self.layer_std

    def layer_energy_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`layer_features` (MeV); logs clamped to a finite range."""
        return (features * self.layer_std + self.layer_mean).clamp(_LOG_FLOOR, _LOG_CEILING).exp()

    def energy_features(self, incident_gev: torch.Tensor) -> torch.Tensor:
        """``e = (log(E / GeV) - mean) / std``, ``(N, 1)``."""
        return (incident_gev.reshape(-1, 1).log() - self.energy_mean) / self.energy_std

    def cell_features(self, dequantised_mev: torch.Tensor) -> torch.Tensor:
        """``y = (log x~ - mean) / std``, ``(N, L, P)``."""
        return (dequantised_mev.log() - self.cell_mean) / self.cell_std

    def cells_from_features(self, features: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        """Inverse of :meth:`cell_features` (MeV), for all layers or ``(N, P)`` of one ``layer``."""
        mean, std = (self.cell_mean, self.cell_std) if layer is None else (self.cell_mean[layer], self.cell_std[layer])
        return (features * std + mean).clamp(_LOG_FLOOR, _LOG_CEILING).exp()

    def context_images(self, dequantised_mev: torch.Tensor, layer_mev: torch.Tensor) -> torch.Tensor:
        """``r = (log(x~ / t) - mean) / std``: normalised images ``(N, L, P)`` from cells and ``t`` ``(N, L)``."""
        self._check_cells(dequantised_mev, "cells")
        log_fraction = dequantised_mev.log() - layer_mev.log().unsqueeze(-1)
        return (log_fraction - self.fraction_mean) / self.fraction_std

    def context_image(self, cells_mev: torch.Tensor, layer_mev: torch.Tensor, layer: int) -> torch.Tensor:
        """The normalised image ``(N, P)`` of one ``layer`` from its cells ``(N, P)`` and energy ``(N,)``."""
        log_fraction = cells_mev.log() - layer_mev.log().unsqueeze(-1)
        return (log_fraction - self.fraction_mean[layer]) / self.fraction_std[layer]

    def fractions_from_context(self, images: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`context_images`: the fractions ``x~ / t`` ``(N, L, P)``."""
        return (images * self.fraction_std + self.fraction_mean).clamp(_LOG_FLOOR, _LOG_CEILING).exp()

    # ------------------------------------------------------------------ step 5
    @staticmethod
    def rescale(cells_mev: torch.Tensor, layer_mev: torch.Tensor) -> torch.Tensor:
        """Cells ``(N, P)`` (or ``(N, L, P)``) scaled so each layer sums to ``layer_mev``."""
        total = cells_mev.sum(-1, keepdim=True).clamp_min(1e-30)
        return cells_mev * (layer_mev.unsqueeze(-1) / total)


def previous_layer_context(
    layer_features: torch.Tensor, energy_features: torch.Tensor, images: torch.Tensor, history: int
) -> torch.Tensor:
    """Contexts of all shower flows at once (teacher forcing on the given images).

    Shower flow ``l`` sees ``[w_l, e, r_{l-1}, r_{l-2}, ..., r_{l-history}]`` (most recent
    first), zeros where ``l - k < 0``.

    Args:
        layer_features: ``(N, L)`` layer-flow features ``w``.
        energy_features: ``(N, 1)`` incident-energy feature ``e``.
        images: ``(N, L, P)`` normalised images ``r``.
        history: previous layers seen (5 in the study).

    Returns:
        ``(L, N, 2 + history * P)`` (members first).

    Example:
        >>> ctx = previous_layer_context(torch.zeros(4, 3), torch.zeros(4, 1), torch.ones(4, 3, 2), 2)
        >>> ctx.shape, ctx[0, 0].tolist(), ctx[1, 0].tolist()
        (torch.Size([3, 4, 6]), [0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    """
    n, layers, cells = images.shape
    padded = torch.cat((images.new_zeros(n, history, cells), images), 1)  # layer k at index k + history
    # window s covers padded[s : s + history] = layers s - history .. s - 1; most recent first
    windows = padded.unfold(1, history, 1)[:, :layers].flip(-1)  # (N, L, P, history)
    previous = windows.permute(1, 0, 3, 2).reshape(layers, n, history * cells)
    scalars = torch.stack((layer_features.T, energy_features.reshape(1, n).expand(layers, n)), -1)
    return torch.cat((scalars, previous), -1)
