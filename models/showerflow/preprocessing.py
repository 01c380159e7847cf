"""Preprocessing of the layer and shower flows: threshold, dequantisation, logs, Gaussianisation.

Units: cell and layer energies in MeV, the incident energy in GeV. For a shower of the
modelled window, ``L`` layers of ``P = X * Y`` cells (30 layers of 10 × 10 cells), with
the readout threshold ``thr`` (default 0.1 MeV, the ECAL analysis threshold of 0.5 MIP):

1. **Threshold.** A cell is a *hit* when ``x >= thr``; cells below are zero (the
   validation, like the analysis, ignores them).
2. **Dequantisation.** Every non-hit cell gets ``u`` with ``log u ~ U(log noise_low,
   log noise_high)`` (default 0.005 .. 0.09 MeV, all below the threshold), drawn afresh
   each time a shower is used: ``x~ = x`` for hits, ``u`` otherwise. The noise lies just
   below the hits, so the density of a cell has no gap for a flow to bridge (with
   ``U(0, 0.01)`` noise on every cell an affine MAF smeared the empty cells up towards
   the threshold and lost a third of the hits).
3. **Layer energies.** ``t_l`` is the visible energy ``sum_i x_{l,i} [x >= thr]`` (MeV);
   for a layer without hits, a draw of the same noise, so ``t_l < thr`` exactly when the
   layer is empty.
4. **Gaussianisation.** Per feature, a piecewise-linear map ``g`` through ``K`` knots,
   the quantiles of the log values at probabilities ``(k + 1/2) / K`` on the first buffer,
   sent to the normal quantiles ``Phi^-1((k + 1/2) / K)``, extended linearly beyond the
   outer knots: ``y_{l,i} = g_{l,i}(log x~_{l,i})`` (what shower flow ``l`` models),
   ``w_l = g_l(log t_l)`` (what the layer flow models). Each feature then enters its flow
   roughly standard normal with its own marginal already in place, and the flow has to
   learn the dependence.
5. **Context images** (what later layers see): the normalised image of layer ``k``,
   ``r_{k,i} = (log(x~_{k,i} / t_k) - mean_{k,i}) / std_{k,i}``; the incident energy
   enters as ``e = (log(E / GeV) - mean) / std``.
6. **Generation.** ``t_l = exp(g^-1(w_l))`` from the layer flow; a layer with
   ``t_l < thr`` is empty. Otherwise ``x~ = exp(g^-1(y))`` from its shower flow, the cells
   below the threshold are set to zero and the hits rescaled so that the layer sums to
   ``t_l`` exactly (:meth:`ShowerPreprocessor.finish_layer`).

Knots, means and standard deviations are fitted once, on the first buffer, and frozen
(standard deviations floored at 1e-3), so every later buffer maps the same way. Steps
3-5 are inverted exactly (float32 round-off only): :meth:`ShowerPreprocessor.cells_from_features`,
:meth:`ShowerPreprocessor.layer_energy_from_features`,
:meth:`ShowerPreprocessor.fractions_from_context`; and thresholding a dequantised shower
gives back the thresholded shower exactly (:meth:`ShowerPreprocessor.threshold`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["RESCALE_MODES", "QuantileMap", "ShowerPreprocessor", "layer_moments", "previous_layer_context"]

_STD_FLOOR = 1e-3
_LOG_FLOOR = -30.0  # log energies (MeV) are clamped here when decoding samples
_LOG_CEILING = 12.0
_RESCALE_ROUNDS = 4  # rescale, drop hits that fell below the threshold, rescale again
RESCALE_MODES = ("layer", "none")
"""How generated layers are finished: rescaled to the layer flow's energy, or kept as generated."""


class QuantileMap(nn.Module):
    """Monotone piecewise-linear maps, one per feature, fitted to send each marginal to N(0, 1).

    The inverse extrapolates the outer segments linearly and clamps to the range of the
    fitted values: a flow's draw far in a tail decodes to the largest (smallest) value the
    fit saw, not beyond it. (Without the clamp, the layer flow's rare draws at |z| > 4 gave
    layers 0-1 energies 10-30x the largest in 10 000 reference showers, which dominated
    the summed longitudinal profile.)

    Args:
        features: number of features (any leading shape; the map works on the last
            ``features.numel()`` values flattened).
        knots: knots ``K`` per feature (>= 2).

    Example:
        >>> qmap = QuantileMap(2, knots=33)
        >>> values = torch.randn(4000, 2) * torch.tensor([1.0, 5.0]) + 3
        >>> qmap.fit(values)
        >>> y = qmap(values)
        >>> bool(torch.allclose(qmap.inverse(y), values, atol=1e-4)), round(float(y[:, 1].std()), 1)
        (True, 1.0)
    """

    OPTIONAL_STATE = ("low", "high")
    """Buffers older snapshots lack (see :func:`models.state.unpack_state`)."""

    def __init__(self, features: int, knots: int = 129) -> None:
        super().__init__()
        if features < 1 or knots < 2:
            msg = f"QuantileMap: need features >= 1 and knots >= 2, got {features} and {knots}"
            raise ValueError(msg)
        self.features, self.knots = int(features), int(knots)
        p = (torch.arange(knots, dtype=torch.float64) + 0.5) / knots
        normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("y_knots", normal.icdf(p).float().expand(features, knots).contiguous(), persistent=False)
        self.register_buffer("x_knots", self.y_knots.clone())  # identity until fitted
        # the fitted values' range: the inverse clamps to it (snapshots written before these
        # buffers existed load with the unbounded default)
        self.register_buffer("low", torch.full((features,), -math.inf))
        self.register_buffer("high", torch.full((features,), math.inf))

    def extra_repr(self) -> str:
        return f"features={self.features}, knots={self.knots}"

    @torch.no_grad()
    def fit(self, values: torch.Tensor) -> None:
        """Fit the knots to ``values`` ``(N, features)`` (order statistics at the knot probabilities)."""
        if values.dim() != 2 or values.shape[1] != self.features or values.shape[0] < 2:
            msg = f"QuantileMap.fit: need values of shape (N >= 2, {self.features}), got {tuple(values.shape)}"
            raise ValueError(msg)
        ordered = values.sort(0).values
        n = ordered.shape[0]
        positions = ((torch.arange(self.knots, dtype=torch.float64) + 0.5) / self.knots * n - 0.5).clamp(0, n - 1)
        low = positions.floor().long()
        high = (low + 1).clamp(max=n - 1)
        frac = (positions - low).float().to(values.device).unsqueeze(1)
        knots = (ordered[low.to(values.device)] * (1 - frac) + ordered[high.to(values.device)] * frac).T
        # strictly increasing: ties (repeated values) would make a vertical step
        knots = torch.cummax(knots, 1).values
        width = (knots[:, -1:] - knots[:, :1]).clamp_min(1e-3)
        knots = knots + 1e-5 * width * torch.arange(self.knots, device=knots.device)
        self.x_knots.copy_(knots)
        self.low.copy_(ordered[0])
        self.high.copy_(ordered[-1])

    @staticmethod
    def _interpolate(values: torch.Tensor, from_knots: torch.Tensor, to_knots: torch.Tensor) -> torch.Tensor:
        shape = values.shape
        columns = values.reshape(-1, from_knots.shape[0]).T.contiguous()  # (F, N)
        index = torch.searchsorted(from_knots, columns).clamp_(1, from_knots.shape[1] - 1)
        x0, x1 = from_knots.gather(1, index - 1), from_knots.gather(1, index)
        y0, y1 = to_knots.gather(1, index - 1), to_knots.gather(1, index)
        out = y0 + (columns - x0) * ((y1 - y0) / (x1 - x0))
        return out.T.reshape(shape)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """``g(values)``; the last dimensions must flatten to ``features`` columns."""
        return self._interpolate(values, self.x_knots, self.y_knots)

    def segments(self, features: slice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(intercept, slope)``, each ``(F, K - 1)``: segment ``k`` of feature ``f`` maps ``y`` to
        ``intercept[f, k] + slope[f, k] * y`` (all features, or the block ``features``)."""
        x_knots = self.x_knots if features is None else self.x_knots[features]
        grid = self.y_knots[0]
        slope = (x_knots[:, 1:] - x_knots[:, :-1]) / (grid[1:] - grid[:-1])
        return x_knots[:, :-1] - slope * grid[:-1], slope

    def inverse(self, values: torch.Tensor, features: slice | None = None) -> torch.Tensor:
        """``g^-1(values)``, for all features or the block ``features`` of them.

        The y knots are the normal quantiles at ``(k + 1/2) / K``, so the segment of a
        value is ``floor(K * Phi(y) - 1/2)`` and no search is needed (sampling speed).
        """
        intercept, slope = self.segments(features)
        count = intercept.shape[0]
        flat = values.reshape(-1, count)
        segment = torch.special.ndtr(flat).mul_(self.knots).sub_(0.5).floor_().clamp_(0, self.knots - 2).long()
        segment += torch.arange(count, device=values.device) * (self.knots - 1)
        low, high = self.bounds(features)
        out = torch.addcmul(intercept.reshape(-1)[segment], slope.reshape(-1)[segment], flat)
        return torch.maximum(torch.minimum(out, high), low).reshape(values.shape)

    def bounds(self, features: slice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(low, high)`` ``(F,)``: the range of the fitted values, to which :meth:`inverse` clamps."""
        if features is None:
            return self.low, self.high
        return self.low[features], self.high[features]


class ShowerPreprocessor(nn.Module):
    """Threshold, dequantisation and frozen Gaussianisation for the layer and shower flows.

    Args:
        layers: layers ``L`` of the modelled window.
        cells: cells ``P`` per layer.
        threshold_mev: readout threshold (MeV); cells below are zero.
        noise_low_mev: lower end of the log-uniform noise of non-hit cells (MeV).
        noise_high_mev: upper end (MeV, below the threshold).
        knots: knots per feature of the quantile maps.

    Raises:
        ValueError: non-positive sizes, or a noise range not within ``(0, threshold)``.

    Example:
        >>> pre = ShowerPreprocessor(2, 3, knots=9)
        >>> cells = (torch.rand(50, 2, 3) * 10) * (torch.rand(50, 2, 3) < 0.5)
        >>> noisy, layer, _ = pre.dequantise(cells, torch.Generator().manual_seed(0))
        >>> pre.fit(noisy, layer, torch.full((50,), 40.0))
        >>> bool(torch.allclose(pre.cells_from_features(pre.cell_features(noisy)), noisy, rtol=1e-4))
        True
        >>> bool(torch.equal(pre.threshold(noisy), cells * (cells >= 0.1)))
        True
    """

    def __init__(
        self, layers: int, cells: int, threshold_mev: float = 0.1, noise_low_mev: float = 0.005,
        noise_high_mev: float = 0.09, knots: int = 129,
    ) -> None:
        super().__init__()
        if layers < 1 or cells < 1:
            msg = f"ShowerPreprocessor: layers and cells must be >= 1, got {layers} and {cells}"
            raise ValueError(msg)
        if not 0 < noise_low_mev < noise_high_mev < threshold_mev:
            msg = (
                f"ShowerPreprocessor: need 0 < noise_low_mev < noise_high_mev < threshold_mev, got "
                f"{noise_low_mev!r}, {noise_high_mev!r}, {threshold_mev!r}"
            )
            raise ValueError(msg)
        self.layers, self.cells = int(layers), int(cells)
        self.threshold_mev, self.noise_low_mev, self.noise_high_mev = float(threshold_mev), float(noise_low_mev), float(noise_high_mev)
        self.cell_map = QuantileMap(layers * cells, knots)
        self.layer_map = QuantileMap(layers, knots)
        for name, shape in (("fraction", (layers, cells)), ("energy", (1,))):
            self.register_buffer(f"{name}_mean", torch.zeros(shape))
            self.register_buffer(f"{name}_std", torch.ones(shape))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def extra_repr(self) -> str:
        return (
            f"layers={self.layers}, cells={self.cells}, threshold_mev={self.threshold_mev}, "
            f"noise_mev=({self.noise_low_mev}, {self.noise_high_mev}), fitted={bool(self.fitted)}"
        )

    def _check_cells(self, cells: torch.Tensor, what: str) -> None:
        if cells.dim() != 3 or tuple(cells.shape[1:]) != (self.layers, self.cells):
            msg = f"ShowerPreprocessor: {what} must have shape (N, {self.layers}, {self.cells}), got {tuple(cells.shape)}"
            raise ValueError(msg)

    # ------------------------------------------------------------------ steps 1-3
    def noise(self, shape: tuple[int, ...], generator: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
        """Log-uniform draws in ``[noise_low_mev, noise_high_mev]`` (MeV)."""
        low, high = math.log(self.noise_low_mev), math.log(self.noise_high_mev)
        return torch.rand(shape, generator=generator, device=device).mul_(high - low).add_(low).exp_()

    def threshold(self, cells_mev: torch.Tensor) -> torch.Tensor:
        """Cells with everything below the threshold set to zero."""
        return torch.where(cells_mev >= self.threshold_mev, cells_mev, torch.zeros_like(cells_mev))

    def dequantise(self, cells_mev: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x~, t, u)``: dequantised cells ``(N, L, P)``, layer energies ``(N, L)``, the cell noise drawn."""
        self._check_cells(cells_mev, "cells")
        hits = cells_mev >= self.threshold_mev
        noise = self.noise(tuple(cells_mev.shape), generator, cells_mev.device)
        visible = torch.where(hits, cells_mev, torch.zeros_like(cells_mev)).sum(-1)
        empty_layer = self.noise(tuple(visible.shape), generator, cells_mev.device)
        layer = torch.where(visible > 0, visible, empty_layer)
        return torch.where(hits, cells_mev, noise), layer, noise

    # ------------------------------------------------------------------ fit
    @torch.no_grad()
    def fit(self, dequantised_mev: torch.Tensor, layer_mev: torch.Tensor, incident_gev: torch.Tensor) -> None:
        """Fit the quantile maps, means and standard deviations on a dequantised sample.

        Raises:
            ValueError: wrong shapes, fewer than two showers, or non-positive energies.
        """
        self._check_cells(dequantised_mev, "cells")
        n = dequantised_mev.shape[0]
        incident_gev = incident_gev.reshape(-1).to(dequantised_mev)
        if n < 2 or incident_gev.numel() != n or layer_mev.shape != (n, self.layers):
            msg = (
                f"ShowerPreprocessor.fit: need >= 2 showers with one incident energy and {self.layers} layer "
                f"energies each, got {n} showers, {incident_gev.numel()} energies, layer energies {tuple(layer_mev.shape)}"
            )
            raise ValueError(msg)
        if not (bool((dequantised_mev > 0).all()) and bool((layer_mev > 0).all()) and bool((incident_gev > 0).all())):
            msg = "ShowerPreprocessor.fit: dequantised cells, layer energies and incident energies must be > 0"
            raise ValueError(msg)
        self.cell_map.fit(dequantised_mev.log().flatten(1))
        self.layer_map.fit(layer_mev.log())
        log_fraction = dequantised_mev.log() - layer_mev.log().unsqueeze(-1)
        for name, values in (("fraction", log_fraction), ("energy", incident_gev.log().unsqueeze(-1))):
            getattr(self, f"{name}_mean").copy_(values.mean(0))
            getattr(self, f"{name}_std").copy_(values.std(0).clamp_min(_STD_FLOOR))
        self.fitted.fill_(True)

    # ------------------------------------------------------------------ steps 4-5
    def layer_features(self, layer_mev: torch.Tensor) -> torch.Tensor:
        """``w = g(log t)``, ``(N, L)``."""
        return self.layer_map(layer_mev.log())

    def layer_energy_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`layer_features` (MeV); logs clamped to a finite range."""
        return self.layer_map.inverse(features).clamp(_LOG_FLOOR, _LOG_CEILING).exp()

    def energy_features(self, incident_gev: torch.Tensor) -> torch.Tensor:
        """``e = (log(E / GeV) - mean) / std``, ``(N, 1)``."""
        return (incident_gev.reshape(-1, 1).log() - self.energy_mean) / self.energy_std

    def cell_features(self, dequantised_mev: torch.Tensor) -> torch.Tensor:
        """``y = g(log x~)``, ``(N, L, P)``."""
        return self.cell_map(dequantised_mev.log())

    def cells_from_features(self, features: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        """Inverse of :meth:`cell_features` (MeV), for all layers or ``(N, P)`` of one ``layer``."""
        part = None if layer is None else slice(layer * self.cells, (layer + 1) * self.cells)
        logs = self.cell_map.inverse(features, part)
        return logs.clamp(_LOG_FLOOR, _LOG_CEILING).exp()

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

    # ------------------------------------------------------------------ step 6
    def finish_layer(
        self, dequantised_mev: torch.Tensor, layer_mev: torch.Tensor, rescale: str = "layer"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Generated cells ``(N, P)`` of one layer → ``(shower cells, visible energy, cells for the context)``.

        ``rescale="layer"`` (the default, the study's way) is described below.
        ``rescale="none"`` keeps the shower flow's hits as generated: a layer the layer
        flow drew empty stays empty, otherwise the hits are the generated cells at or above
        the threshold and the visible energy is their sum (the layer flow's energy is then
        only the shower flow's condition); a diagnostic of what the rescaling changes.

        Layers with ``t < thr`` are empty (zeros, visible energy 0). Otherwise the cells
        below the threshold are zeroed and the hits rescaled to sum to ``t``; hits the
        rescaling pushes below the threshold drop out and the rest is rescaled again (up
        to four rounds; the largest cell always stays, so a layer with ``t >= thr`` but
        no generated hit gets ``t`` in its largest cell). The context cells
        are the dequantised cells with the hits rescaled the same way (what the data's
        context images are made of).
        """
        if rescale not in RESCALE_MODES:
            msg = f"finish_layer: rescale must be one of {RESCALE_MODES}, got {rescale!r}"
            raise ValueError(msg)
        empty = layer_mev < self.threshold_mev
        if rescale == "none":
            hits = (dequantised_mev >= self.threshold_mev) & ~empty.unsqueeze(-1)
            shower = torch.where(hits, dequantised_mev, torch.zeros_like(dequantised_mev))
            return shower, shower.sum(-1), dequantised_mev
        largest = torch.zeros_like(dequantised_mev, dtype=torch.bool).scatter_(-1, dequantised_mev.argmax(-1, keepdim=True), True)
        hits = (dequantised_mev >= self.threshold_mev) | largest
        for _ in range(_RESCALE_ROUNDS):  # hits pushed below the threshold by the rescaling drop out
            visible = torch.where(hits, dequantised_mev, torch.zeros_like(dequantised_mev))
            scale = torch.where(empty, torch.zeros_like(layer_mev), layer_mev / visible.sum(-1).clamp_min(1e-30))
            shower = visible * scale.unsqueeze(-1)
            kept = hits & ((shower >= self.threshold_mev) | largest)
            if bool(torch.equal(kept, hits)):
                break
            hits = kept
        context = torch.where(hits & ~empty.unsqueeze(-1), shower, dequantised_mev)
        return shower, torch.where(empty, torch.zeros_like(layer_mev), layer_mev), context

    def generated_layer(
        self, features: torch.Tensor, layer: int, layer_mev: torch.Tensor, rescale: str, shape: tuple[int, int],
        moments: bool, out: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None],
    ) -> None:
        """Everything sampling does with one generated layer after its shower flow, into ``out``.

        ``features`` ``(N, P)`` (the flow's draw; NaN → 0, ±inf → ±50) are decoded
        (:meth:`cells_from_features`), finished (:meth:`finish_layer`), turned into the
        normalised context image of the next layers' flows (normalised to the layer flow's
        energy with ``rescale="layer"``, else to the visible energy where there is one)
        and, with ``moments``, into the hits' centre of gravity and width
        (:func:`layer_moments`). ``out = (shower (N, P) MeV, visible (N,) MeV, image (N, P),
        moments (N, 4) or None)``, views written in place. With ``rescale="layer"`` on the
        CPU one fused kernel does it all (:mod:`models.showerflow.layer_kernel`); the torch
        operations below are the reference.
        """
        from models.showerflow import layer_kernel

        shower_out, visible_out, image_out, moments_out = out
        if rescale == "layer" and layer_kernel.fusable(features, layer_mev, shower_out):
            part = slice(layer * self.cells, (layer + 1) * self.cells)
            layer_kernel.finish_layers(
                features, self.cell_map.y_knots[0], *self.cell_map.segments(part), *self.cell_map.bounds(part),
                knots=self.cell_map.knots,
                log_floor=_LOG_FLOOR, log_ceiling=_LOG_CEILING, threshold_mev=self.threshold_mev, rounds=_RESCALE_ROUNDS, layer_mev=layer_mev,
                fraction_mean=self.fraction_mean[layer], fraction_std=self.fraction_std[layer], shape=shape,
                shower=shower_out, visible=visible_out, image=image_out, moments=moments_out if moments else None)
            return
        features = torch.nan_to_num(features, nan=0.0, posinf=50.0, neginf=-50.0)
        shower, visible, seen = self.finish_layer(self.cells_from_features(features, layer), layer_mev, rescale)
        shower_out.copy_(shower)
        visible_out.copy_(visible)
        # the image is normalised to the layer's own visible energy, as in training
        norm = layer_mev if rescale == "layer" else torch.where(visible > 0, visible, layer_mev)
        image_out.copy_(self.context_image(seen.clamp_min(1e-30), norm, layer))
        if moments and moments_out is not None:
            moments_out.copy_(layer_moments(shower, shape))  # of the hits, as in training


def layer_moments(cells_mev: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Energy-weighted centre of gravity and width of each layer's cells, in cells.

    Args:
        cells_mev: ``(..., X * Y)`` cell energies (MeV; any non-negative weights, e.g. a
            layer's hits, as the shower flows' context uses them).
        shape: ``(X, Y)`` of a layer.

    Returns:
        ``(..., 4)``: ``[cog_x, cog_y, width_x, width_y]``, the centre of gravity measured
        from the centre of the layer (cells), the widths the energy-weighted standard
        deviations (cells); zeros for a layer without energy.

    Example:
        >>> cells = torch.zeros(1, 4); cells[0, 3] = 2.0   # a 2 x 2 layer, energy in cell (1, 1)
        >>> layer_moments(cells, (2, 2)).tolist()
        [[0.5, 0.5, 0.0, 0.0]]
    """
    n_x, n_y = shape
    grid = cells_mev.unflatten(-1, (n_x, n_y))
    total = grid.sum((-2, -1))
    safe = total.clamp_min(1e-30)
    x = torch.arange(n_x, dtype=grid.dtype, device=grid.device) - (n_x - 1) / 2
    y = torch.arange(n_y, dtype=grid.dtype, device=grid.device) - (n_y - 1) / 2
    profile_x, profile_y = grid.sum(-1), grid.sum(-2)
    cog_x = (profile_x * x).sum(-1) / safe
    cog_y = (profile_y * y).sum(-1) / safe
    width_x = ((profile_x * x.square()).sum(-1) / safe - cog_x.square()).clamp_min(0).sqrt()
    width_y = ((profile_y * y.square()).sum(-1) / safe - cog_y.square()).clamp_min(0).sqrt()
    moments = torch.stack((cog_x, cog_y, width_x, width_y), -1)
    return torch.where((total > 0).unsqueeze(-1), moments, torch.zeros_like(moments))


def previous_layer_context(
    layer_features: torch.Tensor, energy_features: torch.Tensor, images: torch.Tensor, history: int,
    moments: torch.Tensor | None = None,
) -> torch.Tensor:
    """Contexts of all shower flows at once (teacher forcing on the given images).

    Shower flow ``l`` sees ``[w_l, e, r_{l-1}, r_{l-2}, ..., r_{l-history}]`` (most recent
    first), zeros where ``l - k < 0``; with ``moments`` ``(N, L, 4)`` (:func:`layer_moments`)
    their windows follow in the same order, ``[m_{l-1}, ..., m_{l-history}]``.

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
    n, layers = layer_features.shape
    scalars = torch.stack((layer_features.T, energy_features.reshape(1, n).expand(layers, n)), -1)
    parts = [scalars, _previous_windows(images, history)]
    if moments is not None:
        parts.append(_previous_windows(moments, history))
    return torch.cat(parts, -1)


def _previous_windows(values: torch.Tensor, history: int) -> torch.Tensor:
    """``(N, L, F)`` per-layer values → ``(L, N, history * F)``: layers ``l-1 .. l-history`` (zeros before 0)."""
    n, layers, width = values.shape
    padded = torch.cat((values.new_zeros(n, history, width), values), 1)  # layer k at index k + history
    # window s covers padded[s : s + history] = layers s - history .. s - 1; most recent first
    windows = padded.unfold(1, history, 1)[:, :layers].flip(-1)  # (N, L, F, history)
    return windows.permute(1, 0, 3, 2).reshape(layers, n, history * width)
