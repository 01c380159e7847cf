"""BIB-AE settings: one frozen dataclass and the named presets ``full``, ``small``, ``pion``.

The defaults of :class:`BIBAEConfig` are the photon study's (arXiv 2005.05334): a
30 × 30 × 30 ILD ECAL grid, 24 encoded latents plus 488 N(0, 1) variables (512 decoder
inputs), KLD weight 0.05, latent MMD 100, latent critic 100, WGAN-GP λ = 10, Adam 5e-4
with β = (0.5, 0.9) (latent critic 2e-3), learning rates × 0.95 per epoch-equivalent of
events, 5 critic steps per generator step.

Presets (:data:`PRESETS`):

* ``full``: the paper's grid and loss weights; channel counts chosen so a shower costs
  tens of ms on a CPU.
* ``small``: the central 10 × 10 × 30 region (:func:`models.shower_data.central_window`)
  and fewer channels, sized to reach a useful state in about an hour on 2 CPU cores. Its
  loss weights differ from the paper's, as measured on the reference showers: a
  log-space reconstruction term (weight 10) carries the early training, the
  reconstruction critic enters with weight 0.1, and the latent critic with weight 1
  (with the paper's 100 the latent means ran off within two buffers, KLD ≈ 1500-2800,
  reconstruction not improving); 2 critic steps per generator step.
* ``pion``: the AHCAL geometry (48 × 25 × 25) with the pion study's additions
  (arXiv 2112.09709): minibatch discrimination in the critic and a second critic whose
  weights are reset every ``second_critic_reset_buffers`` buffers, so that the grid edges
  stay policed; the decoder is conditioned on the visible energy too (test-beam variant).

Stages run one after the other, counted in buffers: ``main_buffers`` of the main model
(encoder, decoder, critics), then ``pp_identity_buffers`` of the Post Processor trained
towards the identity (MSE to its input), then ``pp_buffers`` of MSE + sorted-kernel MMD
against the real showers with the main model frozen. The latent KDE is fitted from
encoded training showers once the main stage ends (the encoder is frozen from then on)
and grows with every later buffer up to ``kde_max_points``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

__all__ = ["PRESETS", "BIBAEConfig", "preset"]


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class BIBAEConfig:
    """Every setting of a BIB-AE (architecture, losses, optimisers, stages, sampling).

    Attributes:
        grid_shape: ``(L, X, Y)`` of the showers in the buffer.
        crop: ``(x, y)`` size of the central window modelled (None: the whole grid).
        latent_dims: encoded Gaussian latents (paper: 24).
        noise_dims: extra N(0, 1) decoder inputs (paper: 488; 24 + 488 = 512).
        energy_scale_gev: the incident energy enters the networks as ``E / energy_scale_gev``.
        cell_scale_mev: cell energies enter the networks in units of this many MeV.
        visible_scale_mev: the visible energy sum enters as ``sum / visible_scale_mev``.
        condition_visible_energy: condition the decoder on the visible energy sum too and
            rescale its output to that sum (test-beam variant, thesis ch. 8).
        encoder_channels: channels of the stride-2 3-D convolutions of the encoder.
        encoder_hidden: width of the encoder's dense layers.
        decoder_hidden: width of the decoder's dense layers.
        decoder_coarse_channels: channels of the half-resolution grid the decoder's dense
            part produces.
        decoder_channels: channels of the transposed convolution and the full-resolution
            convolutions that follow it.
        critic_channels: channels of the critic's convolution branches.
        critic_hidden: width of the critic's dense layers.
        minibatch_kernels: minibatch-discrimination kernels in the critic (0: none).
        minibatch_kernel_dims: dimension of each minibatch-discrimination kernel.
        second_critic: train a second critic (pion study).
        second_critic_reset_buffers: reset the second critic every this many buffers.
        latent_critic_hidden: width of each per-dimension latent critic.
        post_processor_channels: channels of the Post Processor's 1 × 1 × 1 convolutions.
        post_processor_layers: 1 × 1 × 1 convolution layers of the Post Processor.
        kld_weight: weight of the KLD term (paper: 0.05).
        latent_mmd_weight: weight of the latent MMD to N(0, 1) (paper: 100).
        latent_critic_weight: weight of the latent critic (paper: 100).
        critic_weight: weight of the reconstruction critic in the generator loss.
        reconstruction_weight: weight of an MSE on ``log(1 + cells)`` (0 in the paper).
        gradient_penalty: WGAN-GP λ (paper: 10).
        critic_steps: critic updates per generator update (paper: 5).
        learning_rate: Adam learning rate of encoder, decoder and critics (paper: 5e-4).
        latent_critic_learning_rate: Adam learning rate of the latent critic (paper: 2e-3).
        post_processor_learning_rate: Adam learning rate of the Post Processor.
        betas: Adam β of all optimisers (paper: (0.5, 0.9)).
        lr_decay: learning-rate factor per epoch-equivalent (paper: 0.95).
        epoch_events: showers that make one epoch-equivalent for ``lr_decay``.
        main_buffers: buffers of the main stage.
        pp_identity_buffers: buffers training the Post Processor towards the identity.
        pp_buffers: buffers training it with MSE + sorted-kernel MMD.
        pp_mse_weight: weight of the Post Processor's MSE term.
        pp_mmd_weight: weight of its sorted-kernel MMD term.
        mmd_top: sorted cell energies kept per shower (paper: 2000).
        mmd_window: ranks per sliding window of the sorted-kernel MMD.
        mmd_stride: stride of the sliding windows.
        mmd_bandwidth: Gaussian kernel width on ``log(1 + cell / cell_scale)``.
        kde_max_points: encoded showers the latent KDE keeps at most.
        kde_bandwidth_factor: multiplies Scott's factor of the KDE bandwidth.
        kde_tolerance: relative tolerance of the incident energy in KDE rejection sampling.
    """

    grid_shape: tuple[int, int, int] = (30, 30, 30)
    crop: tuple[int, int] | None = None
    latent_dims: int = 24
    noise_dims: int = 488
    energy_scale_gev: float = 100.0
    cell_scale_mev: float = 1.0
    visible_scale_mev: float = 2000.0
    condition_visible_energy: bool = False
    encoder_channels: tuple[int, ...] = (16, 32, 64)
    encoder_hidden: int = 512
    decoder_hidden: int = 512
    decoder_coarse_channels: int = 8
    decoder_channels: tuple[int, ...] = (16, 16, 8)
    critic_channels: int = 32
    critic_hidden: int = 256
    minibatch_kernels: int = 0
    minibatch_kernel_dims: int = 8
    second_critic: bool = False
    second_critic_reset_buffers: int = 10
    latent_critic_hidden: int = 32
    post_processor_channels: int = 32
    post_processor_layers: int = 4
    kld_weight: float = 0.05
    latent_mmd_weight: float = 100.0
    latent_critic_weight: float = 100.0
    critic_weight: float = 1.0
    reconstruction_weight: float = 0.0
    gradient_penalty: float = 10.0
    critic_steps: int = 5
    learning_rate: float = 5e-4
    latent_critic_learning_rate: float = 2e-3
    post_processor_learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    lr_decay: float = 0.95
    epoch_events: int = 500_000
    main_buffers: int = 100
    pp_identity_buffers: int = 2
    pp_buffers: int = 10
    pp_mse_weight: float = 1.0
    pp_mmd_weight: float = 1.0
    mmd_top: int = 2000
    mmd_window: int = 10
    mmd_stride: int = 20
    mmd_bandwidth: float = 0.5
    kde_max_points: int = 50_000
    kde_bandwidth_factor: float = 1.0
    kde_tolerance: float = 0.01

    def __post_init__(self) -> None:
        for name in ("grid_shape", "crop", "encoder_channels", "decoder_channels", "betas"):
            object.__setattr__(self, name, _tuple(getattr(self, name)))
        positive_ints = (
            "latent_dims", "encoder_hidden", "decoder_hidden", "decoder_coarse_channels", "critic_channels",
            "critic_hidden", "minibatch_kernel_dims", "second_critic_reset_buffers", "latent_critic_hidden",
            "post_processor_channels", "post_processor_layers", "critic_steps", "epoch_events", "mmd_top",
            "mmd_window", "mmd_stride", "kde_max_points",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f"BIBAE: setting {name!r} must be an integer >= 1, got {value!r}"
                raise ValueError(msg)
        for name in ("noise_dims", "minibatch_kernels", "main_buffers", "pp_identity_buffers", "pp_buffers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                msg = f"BIBAE: setting {name!r} must be an integer >= 0, got {value!r}"
                raise ValueError(msg)
        positive_floats = (
            "energy_scale_gev", "cell_scale_mev", "visible_scale_mev", "learning_rate", "latent_critic_learning_rate",
            "post_processor_learning_rate", "lr_decay", "mmd_bandwidth", "kde_bandwidth_factor", "kde_tolerance",
        )
        for name in positive_floats:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
                msg = f"BIBAE: setting {name!r} must be a finite number > 0, got {value!r}"
                raise ValueError(msg)
        weights = ("kld_weight", "latent_mmd_weight", "latent_critic_weight", "critic_weight", "reconstruction_weight",
                   "gradient_penalty", "pp_mse_weight", "pp_mmd_weight")
        for name in weights:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value >= 0):
                msg = f"BIBAE: setting {name!r} must be a finite number >= 0, got {value!r}"
                raise ValueError(msg)
        if len(self.grid_shape) != 3 or min(self.grid_shape) < 1:
            msg = f"BIBAE: setting 'grid_shape' must be three positive integers (L, X, Y), got {self.grid_shape!r}"
            raise ValueError(msg)
        if self.crop is not None and (
            len(self.crop) != 2 or not (0 < self.crop[0] <= self.grid_shape[1] and 0 < self.crop[1] <= self.grid_shape[2])
        ):
            msg = f"BIBAE: setting 'crop' {self.crop!r} must be two sizes within the grid {self.grid_shape}"
            raise ValueError(msg)
        if not self.encoder_channels or not self.decoder_channels:
            msg = (
                f"BIBAE: 'encoder_channels' and 'decoder_channels' need at least one entry, got "
                f"{self.encoder_channels!r} and {self.decoder_channels!r}"
            )
            raise ValueError(msg)
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            msg = f"BIBAE: setting 'betas' must be two numbers in [0, 1), got {self.betas!r}"
            raise ValueError(msg)

    @property
    def model_shape(self) -> tuple[int, int, int]:
        """``(L, X, Y)`` of what the networks see (the crop of the grid, if any)."""
        if self.crop is None:
            return self.grid_shape
        return (self.grid_shape[0], self.crop[0], self.crop[1])

    @property
    def condition_dims(self) -> int:
        """Conditioning inputs of encoder and decoder (energy, and the visible sum)."""
        return 2 if self.condition_visible_energy else 1

    def to_json(self) -> dict[str, Any]:
        """All settings as JSON-ready values (tuples as lists)."""
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def names(cls) -> list[str]:
        """Names of all settings."""
        return [f.name for f in fields(cls)]


PRESETS: dict[str, BIBAEConfig] = {
    "full": BIBAEConfig(),
    "small": BIBAEConfig(
        crop=(10, 10),
        encoder_channels=(8, 16, 32),
        encoder_hidden=256,
        decoder_hidden=256,
        decoder_coarse_channels=8,
        decoder_channels=(16, 8),
        critic_channels=8,
        critic_hidden=64,
        latent_critic_hidden=16,
        post_processor_channels=16,
        post_processor_layers=3,
        critic_weight=0.1,
        latent_critic_weight=1.0,
        reconstruction_weight=10.0,
        critic_steps=2,
        learning_rate=1e-3,
        epoch_events=100_000,
        main_buffers=40,
        pp_identity_buffers=1,
        pp_buffers=4,
        mmd_top=1000,
        mmd_window=5,
        mmd_stride=10,
    ),
    "pion": BIBAEConfig(
        grid_shape=(48, 25, 25),
        cell_scale_mev=1.0,
        visible_scale_mev=2000.0,
        condition_visible_energy=True,
        encoder_channels=(16, 32, 64),
        decoder_channels=(16, 16, 8),
        minibatch_kernels=16,
        minibatch_kernel_dims=8,
        second_critic=True,
        second_critic_reset_buffers=10,
    ),
}
"""Named settings; :func:`preset` applies overrides on top of one."""


def preset(name: str = "full", **overrides: Any) -> BIBAEConfig:
    """The settings of preset ``name`` with ``overrides`` applied.

    Raises:
        ValueError: an unknown preset or setting (both name the known ones), or a bad value.

    Example:
        >>> preset("small").model_shape
        (30, 10, 10)
    """
    if name not in PRESETS:
        msg = f"BIBAE: unknown preset {name!r}; known presets: {sorted(PRESETS)}"
        raise ValueError(msg)
    unknown = sorted(set(overrides) - set(BIBAEConfig.names()))
    if unknown:
        msg = f"BIBAE: unknown settings {unknown}; known settings: {BIBAEConfig.names()}"
        raise ValueError(msg)
    return replace(PRESETS[name], **{k: _tuple(v) for k, v in overrides.items()})
