"""Layer flow + per-layer shower flows + fast students, as one :class:`~models.protocol.OnlineModel`.

The flow-based generator of L2LFlows (Buss et al., arXiv 2302.11594), kind
``"layerflow"``, on the central 10 × 10 × 30 window of the ILD ECAL grid (as the BIB-AE
``small`` preset), with the distilled fast sampler of CaloFlow II (Krause & Shih, arXiv
2110.11377). Preprocessing (units, noise, logs, standardisation, rescaling):
:mod:`models.showerflow.preprocessing`. Settings: :class:`~models.showerflow.config.ShowerFlowConfig`.

Flows (all :class:`~models.showerflow.conditional_maf.ConditionalMAF`):

* **layer flow**: a conditional MAF of the 30 log layer energies ``w`` given the log
  incident energy ``e``;
* **shower flows**: one conditional MAF per layer ``l`` of the 100 log cell energies ``y_l``
  given ``[w_l, e, r_{l-1}, ..., r_{l-5}]``, the normalised images of the previous five
  layers (2 context features for layer 0, 502 from layer 5 on; a context mask makes the
  columns of absent layers exactly inert). The 30 flows are the members of ONE batched
  module and train with teacher forcing (true previous layers), so a training step is
  one batched forward and backward pass over all of them;
* **students**: the same blocks read as inverse autoregressive flows (IAF, arXiv
  1606.04934), ``x = f(z)`` in one parallel pass: one for the layer energies (as large
  as the layer flow: it costs little, and a 2 × 64 one spoilt the longitudinal profile)
  and one batched module for the 30 layers, smaller than the teacher (2 blocks of 64
  hidden units, a 32-wide context embedding, against 6 × 128 and 64).

Why IAF students rather than coupling layers: an IAF block is the teacher's own MADE
block, so one tested implementation serves both, every output feature sees all earlier
base variables in one pass (a coupling layer transforms half of them per layer and
needs about twice the layers for the same expressiveness), and distillation needs only
the parallel directions of both flows (student ``z -> x``, teacher ``x -> z``). Its
density needs the slow direction, which the sampler never uses.

Stages, counted in buffers (:data:`STAGES`): ``main_buffers`` of maximum likelihood for
the layer flow and the shower flows together (one Adam optimiser); then
``student_buffers`` of distillation through the same ``train_on_buffer`` calls, per
batch (CaloFlow II): the x-space loss ``|S(T(x)) - x|^2`` with ``T(x)`` the teacher's
parallel ``x -> z`` pass of the real batch, and the z-space loss ``|T(S(z)) - z|^2`` for
``z ~ N(0, 1)``, gradients through the frozen teacher into the student (student draws
clamped to ±8 in the Gaussianised units first). A step whose loss or gradient is not
finite is skipped and counted (``skipped_steps``). Learning rates
decay by ``lr_decay`` after every buffer of their stage.

Sampling (:meth:`LayerShowerFlow.sample`): layer energies from the layer flow, then layer
after layer the cells from the shower flow of that layer, conditioned on the images just
generated, rescaled so the layer sums to its energy from the layer flow. ``student=True``
runs the students' parallel passes instead of the teachers' sequential inverses, from the
same base draws.

Randomness: the preprocessing is fitted on the first buffer with noise from ``(seed,
fit)``; every pass draws its order and dequantisation noise (and the students' base
points) from generators seeded by ``(seed, buffers seen, pass)``; initial weights come
from ``(seed, network)``; sampling from ``seed`` alone. A run resumed from a snapshot
repeats an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from models.bootstrap import derive_seed
from models.protocol import BufferReport
from models.registry import register
from models.shower_data import (
    ShuffledPasses,
    central_window,
    check_shower_buffer,
    densify,
    n_showers,
)
from models.showerflow.conditional_maf import ConditionalMAF
from models.showerflow.config import MOMENTS, ShowerFlowConfig
from models.showerflow.preprocessing import (
    RESCALE_MODES,
    ShowerPreprocessor,
    layer_moments,
    previous_layer_context,
)
from models.state import pack_state, require_counters, unpack_state

__all__ = ["STAGES", "LayerShowerFlow", "history_mask"]

STAGES = ("main", "student", "done")
"""Stage names; the metric ``stage`` is the index in this tuple."""

_INIT, _FIT = 1, 4  # 2 and 3: the order and noise tags of ShuffledPasses
_NETWORK_IDS = {"layer_flow": 1, "shower_flows": 2, "layer_student": 3, "shower_student": 4}
_FIT_MAX_SHOWERS = 10_000
_COUNTERS = ("buffers_seen", "steps", "events_trained", "state")
_FEATURE_BOUND = 8.0  # |Gaussianised feature| beyond which a student's draw is clamped in the z-space loss


def _int_at_least(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        msg = f"LayerShowerFlow: {name} must be an integer >= {minimum}, got {value!r}"
        raise ValueError(msg)
    return value


def _build(seed: int, network: str, factory: Callable[[], nn.Module]) -> nn.Module:
    """Build a module on the CPU with initial weights fixed by ``(seed, network)``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, _INIT, _NETWORK_IDS[network]))
        return factory()


def history_mask(layers: int, cells: int, history: int, moments: int = 0) -> torch.Tensor:
    """``(layers, 2 + history * (cells + moments))`` 0/1 context columns each shower flow may see.

    Layer ``l`` sees the two scalars and the images (and ``moments`` per layer after all
    images) of layers ``l-1 .. l-history`` that exist.

    Example:
        >>> history_mask(3, 1, 2).tolist()
        [[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]]
    """
    mask = torch.zeros(layers, 2 + history * (cells + moments))
    mask[:, :2] = 1.0
    after_images = 2 + history * cells
    for layer in range(layers):
        for k in range(1, min(layer, history) + 1):
            mask[layer, 2 + (k - 1) * cells : 2 + k * cells] = 1.0
            mask[layer, after_images + (k - 1) * moments : after_images + k * moments] = 1.0
    return mask


@register("layerflow")
class LayerShowerFlow:
    """Layer flow, 30 shower flows and their IAF students (kind ``"layerflow"``).

    Args:
        seed: base seed of initial weights, batch order, noise and fits.
        device: where to train.
        **settings: any :class:`~models.showerflow.config.ShowerFlowConfig` field.

    Raises:
        ValueError: an unknown setting (named, with the known ones) or a bad value.

    Example:
        >>> model = LayerShowerFlow(layer_hidden=8, shower_hidden=8, shower_blocks=1, layer_blocks=1,
        ...                         shower_context_embedding=4, student_hidden=8, student_layer_hidden=8)
        >>> out = model.sample(2, seed=0, condition={"incident_energy": torch.tensor([20.0, 80.0])})
        >>> out["showers"].shape
        torch.Size([2, 30, 10, 10])
    """

    kind: ClassVar[str] = "layerflow"

    def __init__(self, seed: int = 0, device: torch.device | str = "cpu", **settings: Any) -> None:
        unknown = sorted(set(settings) - set(ShowerFlowConfig.names()))
        if unknown:
            msg = f"LayerShowerFlow: unknown settings {unknown}; known settings: {ShowerFlowConfig.names()}"
            raise ValueError(msg)
        self.config = c = ShowerFlowConfig(**settings)
        self.seed = _int_at_least("seed", seed, 0)
        try:
            self._device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            msg = f"LayerShowerFlow: device is not a device: {device!r}"
            raise ValueError(msg) from err
        layers, cells = c.model_shape[0], c.cells
        self.window = central_window(c.grid_shape, c.crop) if c.crop is not None else None
        mask = history_mask(layers, cells, c.history, MOMENTS if c.context_moments else 0)
        self.preprocessor = ShowerPreprocessor(
            layers, cells, c.threshold_mev, c.noise_low_mev, c.noise_high_mev, c.quantile_knots)
        self.layer_flow: ConditionalMAF = _build(seed, "layer_flow", lambda: ConditionalMAF(
            1, layers, 1, c.layer_blocks, c.layer_hidden, c.layer_hidden_layers))  # type: ignore[assignment]
        self.shower_flows: ConditionalMAF = _build(seed, "shower_flows", lambda: ConditionalMAF(
            layers, cells, c.context_features, c.shower_blocks, c.shower_hidden, c.shower_hidden_layers,
            c.shower_context_embedding, mask, transform=c.shower_transform, n_bins=c.shower_bins,
            tail_bound=c.shower_tail_bound))  # type: ignore[assignment]
        self.layer_student: ConditionalMAF = _build(seed, "layer_student", lambda: ConditionalMAF(
            1, layers, 1, c.student_layer_blocks, c.student_layer_hidden, 2))  # type: ignore[assignment]
        self.shower_student: ConditionalMAF = _build(seed, "shower_student", lambda: ConditionalMAF(
            layers, cells, c.context_features, c.student_blocks, c.student_hidden, 2,
            c.student_context_embedding, mask, transform=c.student_transform, n_bins=c.student_bins,
            tail_bound=c.shower_tail_bound))  # type: ignore[assignment]
        for module in self.modules().values():
            module.to(self._device)
        teacher = list(self.layer_flow.parameters()) + list(self.shower_flows.parameters())
        student = list(self.layer_student.parameters()) + list(self.shower_student.parameters())
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "teacher": torch.optim.Adam(teacher, lr=c.learning_rate),
            "student": torch.optim.Adam(student, lr=c.student_learning_rate),
        }
        self.schedulers = {
            name: torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=c.lr_decay)
            for name, optimizer in self.optimizers.items()
        }
        self.buffers_seen = 0
        self.steps = 0
        self.events_trained = 0
        self.skipped_steps = 0
        self.on_batch: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None
        """Optional hook ``(pass_index, index, noise (b, cells))`` after every batch (tests probe passes with it)."""

    def __repr__(self) -> str:
        c = self.config
        return (
            f"LayerShowerFlow(seed={self.seed}, grid={c.grid_shape}, modelled={c.model_shape}, "
            f"teacher={c.shower_blocks}x{c.shower_hidden}, student={c.student_blocks}x{c.student_hidden}, "
            f"stage={self.stage_name!r}, buffers_seen={self.buffers_seen}, device={str(self._device)!r})"
        )

    # ------------------------------------------------------------------ structure
    @property
    def device(self) -> torch.device:
        """Where the flows live."""
        return self._device

    def modules(self) -> dict[str, nn.Module]:
        """Every network (and the fitted preprocessing) by name."""
        return {
            "preprocessor": self.preprocessor, "layer_flow": self.layer_flow, "shower_flows": self.shower_flows,
            "layer_student": self.layer_student, "shower_student": self.shower_student,
        }

    @property
    def stage(self) -> int:
        """Index into :data:`STAGES` of the stage the next buffer trains."""
        c = self.config
        return int(self.buffers_seen >= c.main_buffers) + int(self.buffers_seen >= c.main_buffers + c.student_buffers)

    @property
    def stage_name(self) -> str:
        """Name of :attr:`stage`."""
        return STAGES[self.stage]

    @property
    def student_trained(self) -> bool:
        """Whether the students have trained at least one buffer."""
        return self.buffers_seen > self.config.main_buffers and self.config.student_buffers > 0

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """``(L, X, Y)`` of the showers :meth:`sample` returns by default (the modelled window)."""
        return self.config.model_shape

    # ------------------------------------------------------------------ data
    def _cells(self, data: Mapping[str, torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        """Dense ``(b, L, P)`` MeV of the modelled window."""
        cells = densify(data, index, device=self._device, window=self.window)
        return cells.flatten(2)

    def _fit_preprocessor(self, data: Mapping[str, torch.Tensor]) -> None:
        n = min(n_showers(data), _FIT_MAX_SHOWERS)
        generator = torch.Generator(device=self._device).manual_seed(derive_seed(self.seed, _FIT))
        index = torch.arange(n)
        cells, layer_mev, _ = self.preprocessor.dequantise(self._cells(data, index), generator)
        energy = data["incident_energy"][index.to(data["incident_energy"].device)].to(self._device, torch.float32)
        self.preprocessor.fit(cells, layer_mev, energy)

    def _features(
        self, cells: torch.Tensor, energy_gev: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(w (1, b, L), e (1, b, 1), y (L, b, P), context (L, b, C), noise (b, L, P))`` of a batch."""
        pre = self.preprocessor
        dequantised, layer_mev, noise = pre.dequantise(cells, generator)
        w = pre.layer_features(layer_mev)
        e = pre.energy_features(energy_gev)
        y = pre.cell_features(dequantised).transpose(0, 1)
        c = self.config
        moments = layer_moments(pre.threshold(dequantised), c.model_shape[1:]) if c.context_moments else None
        context = previous_layer_context(w, e, pre.context_images(dequantised, layer_mev), c.history, moments)
        return w.unsqueeze(0), e.unsqueeze(0), y, context, noise

    # ------------------------------------------------------------------ training
    def train_on_buffer(
        self,
        data: Mapping[str, torch.Tensor],
        n_iter: int,
        batch_size: int,
        *,
        stop: Callable[[int], bool] | None = None,
    ) -> BufferReport:
        """Train the current stage on a sparse shower buffer: up to ``n_iter`` shuffled passes.

        Args:
            data: sparse shower buffer (:mod:`models.shower_data`).
            n_iter: maximum passes.
            batch_size: showers per step.
            stop: ``stop(passes_done) -> bool`` asked after every pass; True ends the buffer.

        Returns:
            Steps, the last pass's mean loss (teacher: NLL per shower in nats; student:
            the weighted MSE) and metrics: ``stage``, the losses of the last pass, the
            learning rates.

        Raises:
            ValueError: a malformed buffer (named key), a grid of another shape, bad ints.
        """
        _int_at_least("n_iter", n_iter, 0)
        _int_at_least("batch_size", batch_size, 1)
        check_shower_buffer(data, self.config.grid_shape)
        n = n_showers(data)
        if n == 0:
            msg = "LayerShowerFlow.train_on_buffer: the buffer holds no showers"
            raise ValueError(msg)
        energies = data["incident_energy"]
        if not bool((energies > 0).all()):
            msg = f"LayerShowerFlow.train_on_buffer: incident_energy must be > 0 GeV, got minimum {float(energies.min())}"
            raise ValueError(msg)
        stage = self.stage
        if stage < 2 and not bool(self.preprocessor.fitted):
            self._fit_preprocessor(data)
        sums: dict[str, float] = {}
        steps = passes = 0
        if stage < 2:
            step = self._teacher_step if stage == 0 else self._student_step
            loop = ShuffledPasses(n, n_iter, batch_size, seed=self.seed, buffers_seen=self.buffers_seen,
                                  device=self._device, stop=stop)
            for pass_index, index, noise in loop:
                cells = self._cells(data, index)
                energy = energies[index.to(energies.device)].to(self._device, torch.float32)
                features = self._features(cells, energy, noise)
                figures = step(*features[:4], noise)
                steps += 1
                if self.on_batch is not None:
                    self.on_batch(pass_index, index, features[4].flatten(1))
                loop.record(figures, index.numel())  # a skipped step's NaN is counted, not averaged
            sums, passes = loop.means, loop.passes
            self.events_trained += n * passes
        self.steps += steps
        metrics = {"stage": float(stage), "events": float(n), **sums, "skipped_steps": float(self.skipped_steps),
                   **self.learning_rates()}
        return BufferReport(steps=steps, loss=float(sums.get("loss", math.nan)), metrics=metrics, passes=passes)

    def _optimise(self, name: str, loss: torch.Tensor) -> float:
        """One clipped Adam step; a non-finite loss or gradient skips the step (counted) and returns NaN."""
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        if not bool(torch.isfinite(loss)):
            self.skipped_steps += 1
            return math.nan
        loss.backward()
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        norm = float(nn.utils.clip_grad_norm_(parameters, self.config.grad_clip if self.config.grad_clip > 0 else math.inf))
        if not math.isfinite(norm):
            optimizer.zero_grad(set_to_none=True)
            self.skipped_steps += 1
            return math.nan
        optimizer.step()
        return norm

    def _teacher_step(
        self, w: torch.Tensor, e: torch.Tensor, y: torch.Tensor, context: torch.Tensor, generator: torch.Generator
    ) -> dict[str, float]:
        nll_layer = -self.layer_flow.log_prob(w, e).mean()
        nll_cells = -self.shower_flows.log_prob(y, context).mean(1)  # (L,) per layer
        loss = nll_layer + nll_cells.sum()
        norm = self._optimise("teacher", loss)
        return {
            "loss": float(loss.detach()), "nll_layer_energies": float(nll_layer.detach()),
            "nll_cells_per_layer": float(nll_cells.detach().mean()), "grad_norm": norm,
        }

    def _student_step(
        self, w: torch.Tensor, e: torch.Tensor, y: torch.Tensor, context: torch.Tensor, generator: torch.Generator
    ) -> dict[str, float]:
        c = self.config
        with torch.no_grad():
            z_layer = self.layer_flow.transform(w, e)[0]
            z_cells = self.shower_flows.transform(y, context)[0]
        x_loss = F.mse_loss(self.layer_student.transform(z_layer, e)[0], w) + F.mse_loss(
            self.shower_student.transform(z_cells, context)[0], y)
        base_layer = torch.randn(w.shape, generator=generator, device=self._device)
        base_cells = torch.randn(y.shape, generator=generator, device=self._device)
        teachers = (self.layer_flow, self.shower_flows)
        for module in teachers:
            module.requires_grad_(False)
        try:
            # student outputs far outside the Gaussianised data range are clamped before the teacher
            # sees them (an early student's wild draws overflowed the teacher's affine blocks)
            layer_draw = self.layer_student.transform(base_layer, e)[0].clamp(-_FEATURE_BOUND, _FEATURE_BOUND)
            cell_draw = self.shower_student.transform(base_cells, context)[0].clamp(-_FEATURE_BOUND, _FEATURE_BOUND)
            z_loss = F.mse_loss(self.layer_flow.transform(layer_draw, e)[0], base_layer) \
                + F.mse_loss(self.shower_flows.transform(cell_draw, context)[0], base_cells)
        finally:
            for module in teachers:
                module.requires_grad_(True)
        loss = c.student_x_weight * x_loss + c.student_z_weight * z_loss
        norm = self._optimise("student", loss)
        return {"loss": float(loss.detach()), "student_x_mse": float(x_loss.detach()),
                "student_z_mse": float(z_loss.detach()), "grad_norm": norm}

    def learning_rates(self) -> dict[str, float]:
        """Current learning rate of every optimiser, keyed ``lr_<name>``."""
        return {f"lr_{name}": float(opt.param_groups[0]["lr"]) for name, opt in self.optimizers.items()}

    def end_buffer(self) -> None:
        """Count the buffer; decay the learning rate of the stage it trained."""
        stage = self.stage
        self.buffers_seen += 1
        if stage < 2:
            self.schedulers["teacher" if stage == 0 else "student"].step()

    def after_buffer(self, data: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Nothing to do between buffers (stages switch by count); returns ``next_stage``.

        (Not ``stage``: the buffer's metrics already name the stage it trained.)
        """
        return {"next_stage": float(self.stage)}

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        seed: int,
        condition: Mapping[str, torch.Tensor] | None = None,
        student: bool = False,
        full_grid: bool = False,
        batch_size: int | None = None,
        teacher_inverse: str = "incremental",
        rescale: str = "layer",
    ) -> dict[str, torch.Tensor]:
        """Generate ``n`` showers at given incident energies.

        Args:
            n: showers.
            seed: seed of all draws (same seed, same showers; the teacher and the student
                start from the same base draws).
            condition: ``incident_energy`` ``(n,)`` GeV (required).
            student: sample with the IAF students (one parallel pass per layer) instead of
                the teacher MAFs (sequential in the features).
            full_grid: return the whole ``grid_shape`` with zeros outside the window.
            batch_size: showers per pass (default 4096).
            teacher_inverse: how the teacher MAFs are inverted: ``"incremental"`` (every
                hidden unit computed once; the fast, default way) or ``"passes"`` (one full
                MADE pass per feature, the textbook way; for benchmarks).
            rescale: ``"layer"`` (each generated layer rescaled to the layer flow's energy,
                the default) or ``"none"`` (the hits kept as the shower flow generated
                them; a diagnostic, :meth:`ShowerPreprocessor.finish_layer`).

        Returns:
            ``{"showers": (n, L, X, Y) float32 MeV, "incident_energy": (n,) GeV,
            "layer_energy": (n, L) MeV}`` on the model's device. Cells below the
            threshold are zero; each layer of ``showers`` sums to its ``layer_energy``,
            the visible energy drawn from the layer flow (or its student), 0 where it
            drew an empty layer (``t < threshold``).

        Raises:
            ValueError: a missing or malformed condition, a student not trained yet.
        """
        _int_at_least("n", n, 0)
        if condition is None or "incident_energy" not in condition:
            msg = "LayerShowerFlow.sample: pass condition={'incident_energy': tensor of n energies in GeV}"
            raise ValueError(msg)
        energy = torch.as_tensor(condition["incident_energy"], dtype=torch.float32).reshape(-1).to(self._device)
        if energy.numel() != n or not bool(torch.isfinite(energy).all()) or (n and float(energy.min()) <= 0):
            msg = f"LayerShowerFlow.sample: incident_energy must be {n} finite energies > 0 GeV, got shape {tuple(energy.shape)}"
            raise ValueError(msg)
        if student and not self.student_trained:
            msg = (
                f"LayerShowerFlow.sample: student=True, but the students are not trained yet (buffers seen "
                f"{self.buffers_seen}; they train after buffer {self.config.main_buffers} for "
                f"{self.config.student_buffers} buffers)"
            )
            raise ValueError(msg)
        chunk = _int_at_least("batch_size", batch_size if batch_size is not None else 4096, 1)
        if teacher_inverse not in ("incremental", "passes"):
            msg = f"LayerShowerFlow.sample: teacher_inverse must be 'incremental' or 'passes', got {teacher_inverse!r}"
            raise ValueError(msg)
        if rescale not in RESCALE_MODES:
            msg = f"LayerShowerFlow.sample: rescale must be one of {RESCALE_MODES}, got {rescale!r}"
            raise ValueError(msg)
        c = self.config
        generator = torch.Generator(device=self._device).manual_seed(int(seed))
        shape = c.grid_shape if full_grid else c.model_shape
        out = torch.zeros(n, *shape, device=self._device)
        layer_energy = torch.zeros(n, c.model_shape[0], device=self._device)
        for start in range(0, n, chunk):
            cells, layer_energy[start : start + chunk] = self._generate(
                energy[start : start + chunk], generator, student, teacher_inverse, rescale)
            cells = cells.view(-1, *c.model_shape)
            if full_grid and self.window is not None:
                out[start : start + chunk, :, self.window[0], self.window[1]] = cells
            else:
                out[start : start + chunk] = cells
        return {"showers": out, "incident_energy": energy.clone(), "layer_energy": layer_energy}

    def _generate(
        self, energy: torch.Tensor, generator: torch.Generator, student: bool, method: str = "incremental",
        rescale: str = "layer",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cells ``(b, L, P)`` MeV (zero below the threshold) and visible layer energies ``(b, L)``."""
        c, pre = self.config, self.preprocessor
        layers, cells, history = c.model_shape[0], c.cells, c.history
        b = energy.shape[0]
        e = pre.energy_features(energy).unsqueeze(0)  # (1, b, 1)
        base_layer = torch.randn(1, b, layers, generator=generator, device=self._device)
        base_cells = torch.randn(layers, b, cells, generator=generator, device=self._device)
        if student:
            w = self.layer_student.transform(base_layer, e)[0]
        else:
            w = self.layer_flow.inverse(base_layer, e, method=method)
        w = torch.nan_to_num(w[0], nan=0.0, posinf=50.0, neginf=-50.0)
        layer_mev = pre.layer_energy_from_features(w)  # (b, L)
        out = torch.empty(b, layers, cells, device=self._device)
        visible = torch.empty(b, layers, device=self._device)
        images = torch.zeros(b, layers, cells, device=self._device)
        context = torch.zeros(1, b, c.context_features, device=self._device)
        context[0, :, 1] = e[0, :, 0]
        after_images = 2 + history * cells
        moments = torch.zeros(b, layers, MOMENTS, device=self._device) if c.context_moments else None
        for layer in range(layers):
            context[0, :, 0] = w[:, layer]
            for k in range(1, min(layer, history) + 1):
                context[0, :, 2 + (k - 1) * cells : 2 + k * cells] = images[:, layer - k]
                if moments is not None:
                    context[0, :, after_images + (k - 1) * MOMENTS : after_images + k * MOMENTS] = moments[:, layer - k]
            z = base_cells[layer : layer + 1]
            if student:
                y = self.shower_student.transform(z, context, member=layer)[0]
            else:
                y = self.shower_flows.inverse(z, context, member=layer, method=method)
            pre.generated_layer(y[0], layer, layer_mev[:, layer], rescale, c.model_shape[1:], moments is not None,
                                (out[:, layer], visible[:, layer], images[:, layer],
                                 None if moments is None else moments[:, layer]))
        return out, visible

    # ------------------------------------------------------------------ state
    def hyperparameters(self) -> dict[str, Any]:
        """Seed and every setting (JSON)."""
        return {"seed": self.seed, **self.config.to_json()}

    def _packed(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return pack_state(modules=self.modules(), optimizers=self.optimizers, schedulers=self.schedulers)

    def training_state(self) -> dict[str, Any]:
        """Counters, stage and the JSON part of the optimiser and schedule state."""
        return {
            "buffers_seen": self.buffers_seen,
            "steps": self.steps,
            "events_trained": self.events_trained,
            "skipped_steps": self.skipped_steps,
            "stage": self.stage_name,
            "state": self._packed()[1],
        }

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Every flow, the preprocessing fit and the optimiser moments (names of :mod:`models.state`)."""
        return self._packed()[0]

    def load_state(self, tensors: Mapping[str, torch.Tensor], training_state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_tensors` and :meth:`training_state` output.

        Raises:
            KeyError: a tensor or counter is missing (named).
            ValueError: a tensor of the wrong shape (named).
        """
        require_counters(training_state, _COUNTERS, "LayerShowerFlow")
        unpack_state(tensors, training_state["state"], modules=self.modules(), optimizers=self.optimizers,
                     schedulers=self.schedulers)
        self.buffers_seen = int(training_state["buffers_seen"])
        self.steps = int(training_state["steps"])
        self.events_trained = int(training_state["events_trained"])
        self.skipped_steps = int(training_state.get("skipped_steps", 0))

    def to(self, device: torch.device | str) -> LayerShowerFlow:
        """Move flows, preprocessing and optimiser moments to ``device``; return self."""
        device = torch.device(device)
        for module in self.modules().values():
            module.to(device)
        for optimizer in self.optimizers.values():
            for state in optimizer.state.values():
                for key, value in state.items():
                    if isinstance(value, torch.Tensor) and key != "step":
                        state[key] = value.to(device)
        self._device = device
        return self
