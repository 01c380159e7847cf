"""BIB-AE: the Bounded Information Bottleneck Autoencoder as an :class:`~models.protocol.OnlineModel`.

Buhmann et al., "Getting High: High Fidelity Simulation of High Granularity Calorimeters
with High Speed" (arXiv 2005.05334); pion version arXiv 2112.09709; latent-space studies
arXiv 2102.12491. Kind ``"bibae"``.

Networks (one file each): :class:`~models.bibae.encoder.Encoder`,
:class:`~models.bibae.decoder.Decoder`, the difference :class:`~models.bibae.critic.Critic`
(and, for the pion preset, a second one reset periodically), the per-dimension
:class:`~models.bibae.latent_critic.LatentCritic` and the
:class:`~models.bibae.post_processor.PostProcessor`; latent sampling by
:class:`~models.bibae.kde.LatentKDE`. Settings: :mod:`models.bibae.presets`.

Training, per batch of the main stage: one update of the critic(s) (WGAN-GP on the pairs
(x, x) vs (x, reconstruction)) and of the latent critic (N(0, 1) vs encoded latents);
every ``critic_steps`` batches one update of encoder and decoder with
``critic_weight · (−critic) + latent_critic_weight · (−latent critic) + kld_weight · KLD
+ latent_mmd_weight · MMD(z, N(0, 1)) [+ reconstruction_weight · MSE(log(1 + ·))]``.
Stages follow from the buffers seen (see :mod:`models.bibae.presets`); the latent KDE is
fitted in :meth:`BIBAE.after_buffer` once the main stage is over.

Randomness: every pass over a buffer draws its order and noise from generators seeded by
``(seed, buffers seen, pass)``, so a run resumed from a snapshot repeats an
uninterrupted one; network initialisations come from ``(seed, network)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from models.bibae.critic import Critic
from models.bibae.decoder import Decoder
from models.bibae.encoder import Encoder
from models.bibae.kde import LatentKDE
from models.bibae.latent_critic import LatentCritic
from models.bibae.losses import SortedKernelMMD, gradient_penalty, kld, kld_per_latent, mmd
from models.bibae.post_processor import PostProcessor
from models.bibae.presets import BIBAEConfig
from models.bibae.presets import preset as preset_config
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
from models.state import pack_state, require_counters, unpack_state

__all__ = ["BIBAE", "STAGES"]

STAGES = ("main", "pp_identity", "pp", "done")
"""Stage names; the metric ``stage`` is the index in this tuple."""

_INIT, _RESET, _ENCODE = 1, 4, 5  # 2 and 3: the order and noise tags of ShuffledPasses
_NETWORK_IDS = {"encoder": 1, "decoder": 2, "critic": 3, "critic2": 4, "latent_critic": 5, "post_processor": 6}
_SAMPLING_MODES = ("normal", "kde")


def _int_at_least(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        msg = f"BIBAE: {name} must be an integer >= {minimum}, got {value!r}"
        raise ValueError(msg)
    return value


def _build(seed: int, network: str, factory: Callable[[], nn.Module]) -> nn.Module:
    """Build a module on the CPU with initial weights fixed by ``(seed, network)``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, _INIT, _NETWORK_IDS[network]))
        return factory()


@register("bibae")
class BIBAE:
    """Bounded Information Bottleneck Autoencoder for calorimeter showers (kind ``"bibae"``).

    Args:
        preset: ``"full"``, ``"small"`` or ``"pion"`` (:data:`models.bibae.presets.PRESETS`).
        seed: base seed of initial weights, batch order and noise.
        device: where to train.
        **settings: any :class:`~models.bibae.presets.BIBAEConfig` field, overriding the preset.

    Raises:
        ValueError: unknown preset or setting, or a bad value (named).

    Example:
        >>> model = BIBAE("small", main_buffers=1, encoder_channels=[2], decoder_channels=[2],
        ...               critic_channels=2, encoder_hidden=8, decoder_hidden=8, critic_hidden=8)
        >>> out = model.sample(3, seed=0, condition={"incident_energy": torch.tensor([10.0, 50.0, 90.0])})
        >>> out["showers"].shape, out["incident_energy"].shape
        (torch.Size([3, 30, 10, 10]), torch.Size([3]))
    """

    kind: ClassVar[str] = "bibae"

    def __init__(self, preset: str = "full", seed: int = 0, device: torch.device | str = "cpu", **settings: Any) -> None:
        self.preset = preset
        self.config: BIBAEConfig = preset_config(preset, **settings)
        self.seed = _int_at_least("seed", seed, 0)
        try:
            self._device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            msg = f"BIBAE: device is not a device: {device!r}"
            raise ValueError(msg) from err
        c = self.config
        shape, conditions = c.model_shape, c.condition_dims
        self.window = central_window(c.grid_shape, c.crop) if c.crop is not None else None
        self.encoder = _build(seed, "encoder", lambda: Encoder(shape, c.encoder_channels, c.encoder_hidden, c.latent_dims, conditions))
        self.decoder = _build(seed, "decoder", lambda: Decoder(
            shape, c.latent_dims + c.noise_dims, conditions, c.decoder_hidden, c.decoder_coarse_channels, c.decoder_channels
        ))
        self._critic_factory = lambda: Critic(
            shape, c.critic_channels, c.critic_hidden, conditions, c.minibatch_kernels, c.minibatch_kernel_dims
        )
        self.critic = _build(seed, "critic", self._critic_factory)
        self.critic2 = _build(seed, "critic2", self._critic_factory) if c.second_critic else None
        self.latent_critic = _build(seed, "latent_critic", lambda: LatentCritic(c.latent_dims, c.latent_critic_hidden))
        self.post_processor = _build(seed, "post_processor", lambda: PostProcessor(
            shape, c.post_processor_channels, c.post_processor_layers, conditions
        ))
        for module in self.modules().values():
            module.to(self._device)
        adam = {"betas": tuple(c.betas)}
        critic_parameters = list(self.critic.parameters()) + (list(self.critic2.parameters()) if self.critic2 else [])
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "generator": torch.optim.Adam(
                list(self.encoder.parameters()) + list(self.decoder.parameters()), lr=c.learning_rate, **adam
            ),
            "critic": torch.optim.Adam(critic_parameters, lr=c.learning_rate, **adam),
            "latent_critic": torch.optim.Adam(self.latent_critic.parameters(), lr=c.latent_critic_learning_rate, **adam),
            "post_processor": torch.optim.Adam(self.post_processor.parameters(), lr=c.post_processor_learning_rate, **adam),
        }
        self.schedulers = {
            name: torch.optim.lr_scheduler.ExponentialLR(self.optimizers[name], gamma=c.lr_decay)
            for name in ("generator", "critic", "latent_critic")
        }
        self.sorted_mmd = SortedKernelMMD(c.mmd_top, c.mmd_window, c.mmd_stride, c.mmd_bandwidth)
        self.kde = LatentKDE(c.latent_dims + conditions, c.kde_max_points, c.kde_bandwidth_factor).to(self._device)
        self.buffers_seen = 0
        self.steps = 0
        self.critic_updates = 0
        self.events_trained = 0
        self.decays = 0
        self.on_batch: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None
        """Optional hook ``(pass_index, index, eps)`` after every batch (tests probe passes with it)."""
        self._batch_noise = self._first_noise = torch.zeros(0)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"BIBAE(preset={self.preset!r}, seed={self.seed}, grid={c.grid_shape}, modelled={c.model_shape}, "
            f"latent={c.latent_dims}+{c.noise_dims}, stage={self.stage_name!r}, buffers_seen={self.buffers_seen}, "
            f"kde_points={self.kde.n_points}, device={str(self._device)!r})"
        )

    # ------------------------------------------------------------------ structure
    @property
    def device(self) -> torch.device:
        """Where the networks live."""
        return self._device

    def modules(self) -> dict[str, nn.Module]:
        """Every network by name."""
        modules: dict[str, nn.Module] = {
            "encoder": self.encoder, "decoder": self.decoder, "critic": self.critic,
            "latent_critic": self.latent_critic, "post_processor": self.post_processor,
        }
        if self.critic2 is not None:
            modules["critic2"] = self.critic2
        return modules

    @property
    def stage(self) -> int:
        """Index into :data:`STAGES` of the stage the next buffer trains."""
        c = self.config
        bounds = (c.main_buffers, c.main_buffers + c.pp_identity_buffers,
                  c.main_buffers + c.pp_identity_buffers + c.pp_buffers)
        return sum(self.buffers_seen >= b for b in bounds)

    @property
    def stage_name(self) -> str:
        """Name of :attr:`stage`."""
        return STAGES[self.stage]

    @property
    def post_processor_trained(self) -> bool:
        """Whether the Post Processor has trained at least one buffer."""
        return self.buffers_seen > self.config.main_buffers

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """``(L, X, Y)`` of the showers :meth:`sample` returns by default (the modelled window)."""
        return self.config.model_shape

    # ------------------------------------------------------------------ data
    def _cells(self, data: Mapping[str, torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        """Dense batch of the modelled window in network units."""
        cells = densify(data, index, device=self._device, window=self.window)
        return cells / self.config.cell_scale_mev

    def _condition(self, energy_gev: torch.Tensor, visible_mev: torch.Tensor | None) -> torch.Tensor:
        c = self.config
        columns = [energy_gev.to(self._device, torch.float32).reshape(-1, 1) / c.energy_scale_gev]
        if c.condition_visible_energy:
            if visible_mev is None:
                msg = "BIBAE: this model is conditioned on the visible energy; pass condition['visible_energy'] (MeV)"
                raise ValueError(msg)
            columns.append(visible_mev.to(self._device, torch.float32).reshape(-1, 1) / c.visible_scale_mev)
        return torch.cat(columns, 1)

    def _batch_condition(self, data: Mapping[str, torch.Tensor], index: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        energy = data["incident_energy"][index.to(data["incident_energy"].device)]
        visible = cells.flatten(1).sum(1) * self.config.cell_scale_mev if self.config.condition_visible_energy else None
        return self._condition(energy, visible)

    def _decode_input(self, latent: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(latent.shape[0], self.config.noise_dims, generator=generator, device=self._device)
        return torch.cat((latent, noise), 1)

    def _reconstruct(
        self, cells: torch.Tensor, condition: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(cells, condition)
        eps = torch.randn(mu.shape, generator=generator, device=self._device)
        z = mu + eps * torch.exp(0.5 * logvar)
        self._batch_noise = eps
        return self.decoder(self._decode_input(z, generator), condition), mu, logvar, z

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
            Steps (generator or Post Processor updates), the last pass's mean loss and the
            metrics: ``stage``, the losses of the last pass, the learning rates.

        Raises:
            ValueError: a malformed buffer (named key), a grid of another shape, bad ints.
        """
        _int_at_least("n_iter", n_iter, 0)
        _int_at_least("batch_size", batch_size, 1)
        check_shower_buffer(data, self.config.grid_shape)
        n = n_showers(data)
        if n == 0:
            msg = "BIBAE.train_on_buffer: the buffer holds no showers"
            raise ValueError(msg)
        stage = self.stage
        sums: dict[str, float] = {}
        steps = passes = 0
        if stage < 3:
            loop = ShuffledPasses(n, n_iter, batch_size, seed=self.seed, buffers_seen=self.buffers_seen,
                                  device=self._device, stop=stop)
            for pass_index, index, noise in loop:
                cells = self._cells(data, index)
                condition = self._batch_condition(data, index, cells)
                if stage == 0:
                    figures = self._main_step(cells, condition, noise)
                else:
                    figures = self._post_processor_step(cells, condition, noise, identity=stage == 1)
                steps += int(figures.pop("_generator_step", 0.0))
                if self.on_batch is not None:
                    self.on_batch(pass_index, index, self._first_noise)
                loop.record(figures, index.numel())
            sums, passes = loop.means, loop.passes
            self.events_trained += n * passes
        self.steps += steps
        metrics = {"stage": float(stage), "events": float(n), **sums, **self.learning_rates()}
        loss_key = "generator_loss" if stage == 0 else "pp_loss"
        return BufferReport(steps=steps, loss=float(sums.get(loss_key, math.nan)), metrics=metrics, passes=passes)

    def _critics(self) -> list[nn.Module]:
        return [self.critic] + ([self.critic2] if self.critic2 is not None else [])

    def _main_step(self, cells: torch.Tensor, condition: torch.Tensor, generator: torch.Generator) -> dict[str, float]:
        c = self.config
        b = cells.shape[0]
        with torch.no_grad():
            recon, _, _, z = self._reconstruct(cells, condition, generator)
        self._first_noise = self._batch_noise
        critic_loss = torch.zeros((), device=self._device)
        wasserstein = penalty = 0.0
        for critic in self._critics():
            real = critic(cells, cells, condition).mean()
            fake = critic(cells, recon, condition).mean()
            alpha = torch.rand(b, generator=generator, device=self._device)
            gp = gradient_penalty(critic, (cells, cells), (cells, recon), alpha, condition)
            critic_loss = critic_loss + fake - real + c.gradient_penalty * gp
            wasserstein += float((real - fake).detach())
            penalty += float(gp.detach())
        self.optimizers["critic"].zero_grad(set_to_none=True)
        critic_loss.backward()
        self.optimizers["critic"].step()

        prior = torch.randn(z.shape, generator=generator, device=self._device)
        alpha = torch.rand(b, generator=generator, device=self._device)
        latent_real = self.latent_critic(prior).mean()
        latent_fake = self.latent_critic(z).mean()
        latent_gp = gradient_penalty(self.latent_critic, (prior,), (z,), alpha, per_element=True)
        latent_loss = latent_fake - latent_real + c.gradient_penalty * latent_gp
        self.optimizers["latent_critic"].zero_grad(set_to_none=True)
        latent_loss.backward()
        self.optimizers["latent_critic"].step()
        self.critic_updates += 1
        figures = {
            "critic_loss": float(critic_loss.detach()), "wasserstein": wasserstein, "gradient_penalty": penalty,
            "latent_critic_loss": float(latent_loss.detach()),
        }
        if self.critic_updates % c.critic_steps == 0:
            figures.update(self._generator_step(cells, condition, generator))
        return figures

    def _generator_step(self, cells: torch.Tensor, condition: torch.Tensor, generator: torch.Generator) -> dict[str, float]:
        c = self.config
        frozen = [*self._critics(), self.latent_critic]
        for module in frozen:
            module.requires_grad_(False)
        try:
            recon, mu, logvar, z = self._reconstruct(cells, condition, generator)
            adversarial = sum(-critic(cells, recon, condition).mean() for critic in self._critics())
            latent_adversarial = -self.latent_critic(z).mean()
            kld_term = kld(mu, logvar)
            prior = torch.randn(z.shape, generator=generator, device=self._device)
            mmd_term = mmd(z, prior)
            loss = (
                c.critic_weight * adversarial + c.latent_critic_weight * latent_adversarial
                + c.kld_weight * kld_term + c.latent_mmd_weight * mmd_term
            )
            reconstruction = F.mse_loss(torch.log1p(recon), torch.log1p(cells))
            if c.reconstruction_weight:
                loss = loss + c.reconstruction_weight * reconstruction
            self.optimizers["generator"].zero_grad(set_to_none=True)
            loss.backward()
            self.optimizers["generator"].step()
        finally:
            for module in frozen:
                module.requires_grad_(True)
        return {
            "_generator_step": 1.0, "generator_loss": float(loss.detach()), "adversarial": float(adversarial.detach()),
            "kld": float(kld_term.detach()), "latent_mmd": float(mmd_term.detach()),
            "reconstruction": float(reconstruction.detach()),
        }

    def _post_processor_step(
        self, cells: torch.Tensor, condition: torch.Tensor, generator: torch.Generator, *, identity: bool
    ) -> dict[str, float]:
        c = self.config
        with torch.no_grad():
            recon = self._reconstruct(cells, condition, generator)[0]
        self._first_noise = self._batch_noise
        out = self.post_processor(recon, condition)
        if identity:
            loss = F.mse_loss(out, recon)
            figures = {"pp_mse": float(loss.detach())}
        else:
            mse_term = F.mse_loss(out, cells)
            mmd_term = self.sorted_mmd(out, cells)
            loss = c.pp_mse_weight * mse_term + c.pp_mmd_weight * mmd_term
            figures = {"pp_mse": float(mse_term.detach()), "pp_sorted_mmd": float(mmd_term.detach())}
        self.optimizers["post_processor"].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers["post_processor"].step()
        return {"_generator_step": 1.0, "pp_loss": float(loss.detach()), **figures}

    def learning_rates(self) -> dict[str, float]:
        """Current learning rate of every optimiser, keyed ``lr_<name>``."""
        return {f"lr_{name}": float(opt.param_groups[0]["lr"]) for name, opt in self.optimizers.items()}

    def end_buffer(self) -> None:
        """Count the buffer; decay learning rates per epoch-equivalent; reset the second critic."""
        self.buffers_seen += 1
        c = self.config
        while self.events_trained >= (self.decays + 1) * c.epoch_events:
            for scheduler in self.schedulers.values():
                scheduler.step()
            self.decays += 1
        if self.critic2 is not None and self.buffers_seen <= c.main_buffers and self.buffers_seen % c.second_critic_reset_buffers == 0:
            self._reset_second_critic()

    def _reset_second_critic(self) -> None:
        if self.critic2 is None:
            return
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.seed, _RESET, self.buffers_seen))
            fresh = self._critic_factory()
        self.critic2.load_state_dict(fresh.state_dict())
        optimizer = self.optimizers["critic"]
        for parameter in self.critic2.parameters():
            optimizer.state.pop(parameter, None)

    @torch.no_grad()
    def encode(
        self, showers: torch.Tensor, incident_energy: torch.Tensor, *, batch_size: int = 512
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent means and log-variances of dense showers (for KDE fits and latent studies).

        Args:
            showers: ``(n, L, X, Y)`` MeV (tensor or array), on the full grid or already the
                modelled window.
            incident_energy: ``(n,)`` GeV.
            batch_size: showers per forward pass.

        Returns:
            ``(mu, logvar)``, each ``(n, latent_dims)``.
        """
        showers = self._window(torch.as_tensor(showers))
        incident_energy = torch.as_tensor(incident_energy, dtype=torch.float32).reshape(-1)
        mus, logvars = [], []
        for start in range(0, showers.shape[0], batch_size):
            cells = showers[start : start + batch_size].to(self._device, torch.float32) / self.config.cell_scale_mev
            visible = cells.flatten(1).sum(1) * self.config.cell_scale_mev if self.config.condition_visible_energy else None
            mu, logvar = self.encoder(cells, self._condition(incident_energy[start : start + batch_size], visible))
            mus.append(mu)
            logvars.append(logvar)
        return torch.cat(mus), torch.cat(logvars)

    def latent_kld(self, showers: torch.Tensor, incident_energy: torch.Tensor) -> torch.Tensor:
        """Per-latent KLD to N(0, 1) over dense showers, ``(latent_dims,)`` (arXiv 2102.12491)."""
        return kld_per_latent(*self.encode(showers, incident_energy))

    def _window(self, showers: torch.Tensor) -> torch.Tensor:
        if tuple(showers.shape[-3:]) == self.config.model_shape:
            return showers
        if tuple(showers.shape[-3:]) != self.config.grid_shape:
            msg = f"BIBAE: showers of shape {tuple(showers.shape)}; expected (n, {self.config.grid_shape}) or (n, {self.config.model_shape})"
            raise ValueError(msg)
        return showers if self.window is None else showers[..., self.window[0], self.window[1]]

    @torch.no_grad()
    def after_buffer(self, data: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Once the main stage is over, encode the buffer into the latent KDE (up to its maximum).

        Returns:
            ``kde_points`` (points held) and ``stage``.
        """
        metrics = {"stage": float(self.stage)}
        if self.buffers_seen >= self.config.main_buffers and self.kde.n_points < self.kde.max_points:
            check_shower_buffer(data, self.config.grid_shape)
            n = min(n_showers(data), self.kde.max_points - self.kde.n_points)
            points = []
            for start in range(0, n, 512):
                index = torch.arange(start, min(n, start + 512))
                cells = self._cells(data, index)
                condition = self._batch_condition(data, index, cells)
                mu, _ = self.encoder(cells, condition)
                points.append(torch.cat((mu, condition), 1))
            self.kde.add(torch.cat(points))
        metrics["kde_points"] = float(self.kde.n_points)
        return metrics

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        seed: int,
        condition: Mapping[str, torch.Tensor] | None = None,
        mode: str = "normal",
        post_process: bool | None = None,
        full_grid: bool = False,
        batch_size: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Generate ``n`` showers at given incident energies.

        Args:
            n: showers.
            seed: seed of all draws (same seed, same showers).
            condition: ``incident_energy`` ``(n,)`` GeV (required); for models conditioned
                on the visible energy optionally ``visible_energy`` ``(n,)`` MeV (else drawn
                from the KDE at the incident energy).
            mode: ``"normal"`` (latents from N(0, 1)) or ``"kde"`` (latents from the KDE
                of encoded training showers, by rejection at each energy).
            post_process: apply the Post Processor (default: once it has trained).
            full_grid: return the whole ``grid_shape`` with zeros outside the modelled
                window (default: the window, :attr:`sample_shape`).
            batch_size: showers per decoder pass (default 256 on CPU, 4096 on CUDA).

        Returns:
            ``{"showers": (n, L, X, Y) float32 MeV, "incident_energy": (n,) GeV}`` on the
            model's device.

        Raises:
            ValueError: missing or malformed condition, unknown mode, KDE not fitted.
        """
        _int_at_least("n", n, 0)
        if mode not in _SAMPLING_MODES:
            msg = f"BIBAE.sample: mode must be one of {_SAMPLING_MODES}, got {mode!r}"
            raise ValueError(msg)
        if condition is None or "incident_energy" not in condition:
            msg = "BIBAE.sample: pass condition={'incident_energy': tensor of n energies in GeV}"
            raise ValueError(msg)
        energy = torch.as_tensor(condition["incident_energy"], dtype=torch.float32).reshape(-1).to(self._device)
        if energy.numel() != n or not bool(torch.isfinite(energy).all()) or (n and float(energy.min()) <= 0):
            msg = f"BIBAE.sample: incident_energy must be {n} finite energies > 0 GeV, got shape {tuple(energy.shape)}"
            raise ValueError(msg)
        visible = condition.get("visible_energy")
        if visible is not None:
            visible = torch.as_tensor(visible, dtype=torch.float32).reshape(-1).to(self._device)
            if visible.numel() != n:
                msg = f"BIBAE.sample: visible_energy must have {n} values, got shape {tuple(visible.shape)}"
                raise ValueError(msg)
        c = self.config
        needs_kde = mode == "kde" or (c.condition_visible_energy and visible is None)
        if needs_kde and not self.kde.fitted:
            msg = (
                f"BIBAE.sample: mode={mode!r} needs the latent KDE, which is not fitted yet "
                f"({self.kde.n_points} points; it is fitted after the main stage, buffer {c.main_buffers})"
            )
            raise ValueError(msg)
        use_pp = self.post_processor_trained if post_process is None else bool(post_process)
        chunk = batch_size or (4096 if self._device.type == "cuda" else 256)
        _int_at_least("batch_size", chunk, 1)
        generator = torch.Generator(device=self._device).manual_seed(seed)
        shape = c.grid_shape if full_grid else c.model_shape
        out = torch.zeros(n, *shape, device=self._device)
        e_column = c.latent_dims
        for start in range(0, n, chunk):
            e = energy[start : start + chunk]
            v = visible[start : start + chunk] if visible is not None else None
            if needs_kde:
                draws = self.kde.sample_at(e_column, e / c.energy_scale_gev, c.kde_tolerance, generator)
                if v is None and c.condition_visible_energy:
                    v = draws[:, e_column + 1].clamp_min(1e-6) * c.visible_scale_mev
            cond = self._condition(e, v)
            if mode == "kde":
                latent = draws[:, : c.latent_dims]
            else:
                latent = torch.randn(e.shape[0], c.latent_dims, generator=generator, device=self._device)
            cells = self.decoder(self._decode_input(latent, generator), cond)
            if use_pp:
                cells = self.post_processor(cells, cond)
            cells = cells * c.cell_scale_mev
            if c.condition_visible_energy:
                total = cells.flatten(1).sum(1).clamp_min(1e-12)
                cells = cells * (v / total).view(-1, 1, 1, 1)
            if full_grid and self.window is not None:
                out[start : start + chunk, :, self.window[0], self.window[1]] = cells
            else:
                out[start : start + chunk] = cells
        return {"showers": out, "incident_energy": energy.clone()}

    # ------------------------------------------------------------------ state
    def hyperparameters(self) -> dict[str, Any]:
        """Preset, seed and every setting (JSON), so a changed preset cannot alter a snapshot."""
        return {"preset": self.preset, "seed": self.seed, **self.config.to_json()}

    def _packed(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return pack_state(
            modules=self.modules(), optimizers=self.optimizers, schedulers=self.schedulers,
            tensors={f"kde.{k}": v for k, v in self.kde.state_tensors().items()},
        )

    def training_state(self) -> dict[str, Any]:
        """Counters, stage, KDE size and the JSON part of the optimiser and schedule state."""
        return {
            "buffers_seen": self.buffers_seen,
            "steps": self.steps,
            "critic_updates": self.critic_updates,
            "events_trained": self.events_trained,
            "decays": self.decays,
            "stage": self.stage_name,
            "kde": self.kde.state_json(),
            "state": self._packed()[1],
        }

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Every network, optimiser moment and the KDE (names of :mod:`models.state`)."""
        return self._packed()[0]

    def load_state(self, tensors: Mapping[str, torch.Tensor], training_state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_tensors` and :meth:`training_state` output.

        Raises:
            KeyError: a tensor or counter is missing (named).
            ValueError: a tensor of the wrong shape (named).
        """
        require_counters(
            training_state, ("buffers_seen", "steps", "critic_updates", "events_trained", "decays", "state"), "BIBAE"
        )
        loose = unpack_state(
            tensors, training_state["state"], modules=self.modules(), optimizers=self.optimizers,
            schedulers=self.schedulers, tensor_names=("kde.points", "kde.cholesky"),
        )
        self.kde.load(loose["kde.points"], loose["kde.cholesky"])
        self.buffers_seen = int(training_state["buffers_seen"])
        self.steps = int(training_state["steps"])
        self.critic_updates = int(training_state["critic_updates"])
        self.events_trained = int(training_state["events_trained"])
        self.decays = int(training_state["decays"])

    def to(self, device: torch.device | str) -> BIBAE:
        """Move networks, optimiser moments and the KDE to ``device``; return self."""
        device = torch.device(device)
        for module in self.modules().values():
            module.to(device)
        for optimizer in self.optimizers.values():
            for state in optimizer.state.values():
                for key, value in state.items():
                    if isinstance(value, torch.Tensor) and key != "step":
                        state[key] = value.to(device)
        self.kde.to(device)
        self._device = device
        return self

