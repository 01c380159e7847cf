"""OnlineFlow: an ensemble of MAFs trained online with Poisson bootstrap and SWA.

"Ephemeral Learning" (Butter et al., arXiv 2202.09375): instead of storing the events a
trigger discards, a density model of them is trained on the fly, buffer by buffer. An
ensemble of ``n_members`` masked autoregressive flows (:class:`BatchedMAF`, trained as
ONE batched computation) sees every event with an independent Poisson(1) weight per
member (online bootstrap, :class:`PoissonBootstrap`); after a warm-up the weights at the
end of each buffer are averaged (SWA, :class:`StochasticWeightAverage`). The spread of the
members estimates the statistical uncertainty of the learned spectrum.

Preprocessing: the feature ``columns`` (default the dijet ``mass``) are log-transformed
where listed in ``log_columns``, standardised with a mean and std fitted on the first
buffer and then frozen, and joined by ``noise_dims`` standard-normal noise dimensions
drawn fresh for every batch (and discarded when sampling), as in the paper.

Loss: for member ``m`` and a batch of ``b`` events, ``sum_i w_mi * (-log p_m(x_i)) / b``
with ``w_mi ~ Poisson(1)``. Dividing by the batch size (not by ``sum_i w_mi``) makes the
expected loss the plain mean NLL, never divides by zero, and gives exactly the gradient
of training on a stream resampled with replacement. The member losses are summed (not
averaged) so each member's gradient is that of its own loss; one Adam step then updates
all members, Adam being element-wise this equals one Adam per member.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise
from typing import Any, ClassVar

import torch

from models.bootstrap import PoissonBootstrap, derive_seed
from models.flows.batched_maf import BatchedMAF
from models.flows.checks import positive_float, positive_int
from models.flows.cpu_step import step_kernel
from models.flows.preprocessing import LogStandardizer
from models.flows.spline_maf import BatchedSplineMAF
from models.protocol import BufferReport, StopCallback
from models.registry import register
from models.state import pack_state, require_counters, unpack_state
from models.swa import StochasticWeightAverage

__all__ = ["OnlineFlowEnsemble"]

_STREAM_INIT, _STREAM_SHUFFLE = 1, 2
_LOG_2PI = math.log(2.0 * math.pi)
_WEIGHT_CHOICES = ("auto", "swa", "live")
_BOOTSTRAP_CHOICES = ("per_event", "per_batch", "none")
_BATCH_ORDER_CHOICES = ("shared", "per_member")
_TRANSFORM_CHOICES = ("affine", "rq_spline")


def _positive_int(key: str, value: Any, minimum: int = 1) -> int:
    return positive_int("OnlineFlowEnsemble", f"hyperparameter {key!r}", value, minimum)


def _column_list(key: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(c, str) and c for c in value):
        msg = f"OnlineFlowEnsemble: hyperparameter {key!r} must be a list of column names, got {value!r}"
        raise ValueError(msg)
    if len(set(value)) != len(value):
        msg = f"OnlineFlowEnsemble: hyperparameter {key!r} has duplicate names: {list(value)!r}"
        raise ValueError(msg)
    return list(value)


@register("onlineflow")
class OnlineFlowEnsemble:
    """Ensemble of MAFs trained online (kind ``"onlineflow"``).

    Args:
        columns: feature columns modelled, in flow order.
        log_columns: columns log-transformed before standardisation (subset of columns).
        noise_dims: extra standard-normal input dimensions (paper: 3).
        n_members: ensemble size N_ens (paper: 20).
        n_blocks: MADE blocks per flow (paper: 5).
        hidden_features: units per hidden layer (paper: 32).
        n_hidden_layers: hidden layers per MADE (paper: 2).
        learning_rate: Adam learning rate (paper: 1e-5).
        swa_start: buffers of warm-up; SWA averages the weights at the end of every
            buffer after the first ``swa_start`` (0: from the first buffer on).
        seed: base seed of initial weights, shuffling, noise and bootstrap weights.
        device: where to train (``"cuda"`` when available is the caller's choice).
        bootstrap: ``"per_event"`` (the online bootstrap: one Poisson(1) weight per event
            and member, held for every pass over its buffer) or ``"per_batch"`` (a fresh
            weight for every batch, so an event's total weight over N_iter passes is about
            Poisson(N_iter): the behaviour before this was fixed, kept only so that a
            coverage study can show the difference; never use it for results), or
            ``"none"`` (every weight 1: plain maximum likelihood, for a single flow whose
            spread is not used, such as the dijet study's).
        batch_order: ``"shared"`` (every member sees the buffer's events in the same
            shuffled order each pass, as before) or ``"per_member"`` (each member shuffles
            on its own, so the members' training trajectories are independent given the
            data, as bootstrap replicas should be). With a shared order the members share
            that part of their SGD noise, which their spread (δ_S, the locating scan's
            pseudo-experiments) cannot show (issue 11; README, "Where the width comes from").
        transform: ``"affine"`` (the paper's MADE affine blocks, :class:`BatchedMAF`, with a
            hand-written fused training step) or ``"rq_spline"`` (rational-quadratic spline
            blocks, arXiv 1906.04958, :class:`~models.flows.spline_maf.BatchedSplineMAF`:
            narrow peaks such as a resonance's jet mass at some cost in speed).
        n_bins: spline bins per feature (``"rq_spline"`` only).
        tail_bound: the splines act on ``[-tail_bound, tail_bound]`` of the standardised
            space, identity outside (``"rq_spline"`` only).

    Raises:
        ValueError: for a bad hyperparameter, naming it and its value.

    Example:
        >>> model = OnlineFlowEnsemble(n_members=2, n_blocks=1, hidden_features=8)
        >>> buffer = {"mass": torch.rand(64) * 100 + 500}
        >>> model.train_on_buffer(buffer, n_iter=1, batch_size=32).steps
        2
        >>> model.sample(5, seed=0)["mass"].shape
        torch.Size([2, 5])
    """

    kind: ClassVar[str] = "onlineflow"

    def __init__(
        self,
        columns: Sequence[str] = ("mass",),
        log_columns: Sequence[str] = ("mass",),
        noise_dims: int = 3,
        n_members: int = 20,
        n_blocks: int = 5,
        hidden_features: int = 32,
        n_hidden_layers: int = 2,
        learning_rate: float = 1e-5,
        swa_start: int = 1,
        seed: int = 0,
        device: torch.device | str = "cpu",
        bootstrap: str = "per_event",
        batch_order: str = "shared",
        transform: str = "affine",
        n_bins: int = 8,
        tail_bound: float = 4.0,
    ) -> None:
        self.columns = _column_list("columns", columns)
        if not self.columns:
            msg = "OnlineFlowEnsemble: hyperparameter 'columns' must name at least one column, got []"
            raise ValueError(msg)
        self.log_columns = _column_list("log_columns", log_columns)
        unknown = [c for c in self.log_columns if c not in self.columns]
        if unknown:
            msg = f"OnlineFlowEnsemble: hyperparameter 'log_columns' has {unknown} not in columns {self.columns}"
            raise ValueError(msg)
        self.noise_dims = _positive_int("noise_dims", noise_dims, minimum=0)
        self.n_members = _positive_int("n_members", n_members)
        self.n_blocks = _positive_int("n_blocks", n_blocks)
        self.hidden_features = _positive_int("hidden_features", hidden_features)
        self.n_hidden_layers = _positive_int("n_hidden_layers", n_hidden_layers)
        self.learning_rate = positive_float("OnlineFlowEnsemble", "hyperparameter 'learning_rate'", learning_rate)
        self.swa_start = _positive_int("swa_start", swa_start, minimum=0)
        if bootstrap not in _BOOTSTRAP_CHOICES:
            msg = f"OnlineFlowEnsemble: hyperparameter 'bootstrap' must be one of {_BOOTSTRAP_CHOICES}, got {bootstrap!r}"
            raise ValueError(msg)
        self.bootstrap_mode = bootstrap
        if batch_order not in _BATCH_ORDER_CHOICES:
            msg = f"OnlineFlowEnsemble: hyperparameter 'batch_order' must be one of {_BATCH_ORDER_CHOICES}, got {batch_order!r}"
            raise ValueError(msg)
        self.batch_order = batch_order
        if transform not in _TRANSFORM_CHOICES:
            msg = f"OnlineFlowEnsemble: hyperparameter 'transform' must be one of {_TRANSFORM_CHOICES}, got {transform!r}"
            raise ValueError(msg)
        self.transform = transform
        self.n_bins = _positive_int("n_bins", n_bins, minimum=2)
        self.tail_bound = positive_float("OnlineFlowEnsemble", "hyperparameter 'tail_bound'", tail_bound)
        self.seed = _positive_int("seed", seed, minimum=0)
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            msg = f"OnlineFlowEnsemble: hyperparameter 'device' is not a device: {device!r}"
            raise ValueError(msg) from err

        self.features = len(self.columns) + self.noise_dims
        init = torch.Generator().manual_seed(derive_seed(self.seed, _STREAM_INIT))
        sizes = (self.n_members, self.features, self.n_blocks, self.hidden_features, self.n_hidden_layers)
        self.flow: BatchedMAF | BatchedSplineMAF
        if self.transform == "affine":
            self.flow = BatchedMAF(*sizes, generator=init).to(self.device)
        else:
            self.flow = BatchedSplineMAF(*sizes, n_bins=self.n_bins, tail_bound=self.tail_bound, generator=init)
            self.flow = self.flow.to(self.device)

        self.scaler = LogStandardizer(self.columns, self.log_columns, self.device)
        self.bootstrap = PoissonBootstrap(self.n_members, self.seed, self.device)
        self.swa = StochasticWeightAverage()
        self.optimizer = torch.optim.Adam(self.flow.parameters(), lr=self.learning_rate, fused=True)
        self.buffers_seen = 0
        self.steps = 0
        self.events_trained = 0
        self.on_batch: Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None
        """Optional probe ``(pass_index, event_index, inputs, weights)`` called before each step
        (tests and diagnostics: which events, noise and bootstrap weights a step used).
        ``event_index`` is ``(b,)`` with ``batch_order="shared"`` and ``(M, b)``, a row per
        member, with ``"per_member"``."""

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return (
            f"OnlineFlowEnsemble({settings}, device={str(self.device)!r}, "
            f"buffers_seen={self.buffers_seen}, swa_count={self.swa.count})"
        )

    # ------------------------------------------------------------------ training
    def train_on_buffer(
        self,
        data: Mapping[str, torch.Tensor],
        n_iter: int,
        batch_size: int,
        *,
        stop: StopCallback | None = None,
    ) -> BufferReport:
        """Train all members on one buffer: up to ``n_iter`` shuffled passes in batches.

        The online bootstrap is a statement about events: when the buffer starts, every
        event gets ONE Poisson(1) weight per member (independent across members and
        events, seeded from ``(seed, buffers_seen)``), held for every pass over the
        buffer. The order and the noise dimensions are drawn afresh for every pass.

        Args:
            data: one ``(N,)`` float tensor per column (extra columns are ignored).
            n_iter: the most passes over the buffer.
            batch_size: events per batched step (the last batch of a pass may be smaller).
            stop: ``stop(passes_done) -> bool``, asked after every pass; True ends early.

        Returns:
            Steps and passes taken; ``loss`` is the Poisson-weighted NLL per event in the
            standardised space (with noise dims), averaged over members and the last
            pass; metrics hold the member minimum/maximum of that loss and the learning
            rate.

        Raises:
            ValueError: bad ``n_iter``/``batch_size``, an empty buffer or bad columns.
        """
        _positive_int("n_iter", n_iter, minimum=0)
        _positive_int("batch_size", batch_size)
        x = self.scaler.stack(data)
        n_events = x.shape[0]
        if n_events == 0:
            msg = f"OnlineFlowEnsemble.train_on_buffer: buffer has no events (columns {self.columns})"
            raise ValueError(msg)
        if not self.scaler.fitted:
            self.scaler.fit(x)
        u = self.scaler.forward(x)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(derive_seed(self.seed, _STREAM_SHUFFLE, self.buffers_seen))
        self.bootstrap.reseed(self.buffers_seen)
        if self.bootstrap_mode == "none":
            event_weights = torch.ones(self.n_members, n_events, device=self.device)
        else:
            event_weights = self.bootstrap.weights(n_events)  # (M, N): one draw per event and member
        per_batch = self.bootstrap_mode == "per_batch"
        per_member_order = self.batch_order == "per_member" and self.n_members > 1
        n_columns = len(self.columns)
        starts = list(range(0, n_events, batch_size)) + [n_events]
        # One pass's inputs at once, in its shuffled order: the data columns, then noise drawn
        # for the whole pass (one normal_ call: per batch it costs the same per value, plus
        # a call per batch).
        inputs = torch.empty(self.n_members, n_events, self.features, device=self.device)
        noise = torch.empty(self.n_members, n_events, self.noise_dims, device=self.device)
        member_loss_sum = torch.zeros(self.n_members, device=self.device)
        # The affine flow on the CPU steps in one compiled kernel (models/flows/cpu_step.py):
        # forward, backward and Adam of all members, a whole pass per call; elsewhere
        # torch's autograd and fused Adam, batch by batch. Both see the same batches.
        kernel = step_kernel(self.flow, self.optimizer) if n_iter else None
        batch_sizes = torch.diff(torch.tensor(starts, dtype=torch.float32)).unsqueeze(1)  # (n_batches, 1)
        steps = passes = 0
        for iteration in range(n_iter):
            if per_member_order:
                # (M, N): each member its own permutation (a randperm each: 4x faster than
                # argsort of uniforms on the CPU)
                order = torch.stack([
                    torch.randperm(n_events, generator=generator, device=self.device) for _ in range(self.n_members)
                ])
            else:
                order = torch.randperm(n_events, generator=generator, device=self.device)
            inputs[..., :n_columns] = u[order]
            if self.noise_dims:
                inputs[..., n_columns:] = noise.normal_(generator=generator)
            if per_batch:
                weights = torch.cat([self.bootstrap.weights(b - a) for a, b in pairwise(starts)], dim=1)
            else:
                weights = event_weights.gather(1, order) if per_member_order else event_weights[:, order]
            if self.on_batch is not None:
                for a, b in pairwise(starts):
                    self.on_batch(iteration, order[..., a:b], inputs[:, a:b], weights[:, a:b])
            if kernel is not None:
                member_loss_sum = kernel.train_pass(inputs, weights, starts).mul_(batch_sizes).sum(0)
            else:
                member_loss_sum.zero_()
                for a, b in pairwise(starts):
                    member_loss = (weights[:, a:b] * self.flow.log_prob(inputs[:, a:b])).sum(dim=1).div_(a - b)
                    self.optimizer.zero_grad(set_to_none=True)
                    member_loss.sum().backward()  # masked weights get no gradient (fused backward)
                    self.optimizer.step()
                    member_loss_sum += member_loss.detach() * (b - a)
            steps += len(starts) - 1
            passes += 1
            if stop is not None and passes < n_iter and stop(passes):
                break
        self.steps += steps
        self.events_trained += n_events * passes
        member_loss_mean = member_loss_sum / n_events
        return BufferReport(
            steps=steps,
            loss=float(member_loss_mean.mean()) if passes else float("nan"),
            metrics={
                "loss_member_min": float(member_loss_mean.min()) if passes else float("nan"),
                "loss_member_max": float(member_loss_mean.max()) if passes else float("nan"),
                "learning_rate": self.learning_rate,
                "events": float(n_events),
                "bootstrap_weight_mean": float(event_weights.mean()),
            },
            passes=passes,
        )

    def end_buffer(self) -> None:
        """Count the buffer; once past ``swa_start`` buffers, add the weights to the SWA."""
        self.buffers_seen += 1
        if self.buffers_seen > self.swa_start:
            self.swa.update({"flat": self.flow.flat_weights()})

    def after_buffer(self, data: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Nothing to do between buffers: the ensemble has one stage."""
        return {}

    # ------------------------------------------------------------------ evaluation
    def weights(self, which: str = "auto") -> torch.Tensor:
        """Flat weights of all members: ``"swa"``, ``"live"`` or ``"auto"`` (SWA if any).

        Raises:
            ValueError: unknown choice, or ``"swa"`` before any SWA update.
        """
        if which not in _WEIGHT_CHOICES:
            msg = f"weights must be one of {_WEIGHT_CHOICES}, got {which!r}"
            raise ValueError(msg)
        if which == "swa" and self.swa.count == 0:
            msg = "weights='swa' requested but no SWA update has happened yet (swa_count=0)"
            raise ValueError(msg)
        if which == "live" or self.swa.count == 0:
            return self.flow.flat_weights()
        return self.swa.average["flat"]

    @torch.no_grad()
    def flow_log_prob(self, inputs: torch.Tensor, *, weights: str = "auto") -> torch.Tensor:
        """Flow log-density in the standardised space including noise dims.

        Args:
            inputs: ``(N, features)`` or ``(n_members, N, features)``, where
                ``features = len(columns) + noise_dims``.
            weights: ``"auto"``, ``"swa"`` or ``"live"`` (see :meth:`weights`).

        Returns:
            ``(n_members, N)`` log-densities.
        """
        return self.flow.log_prob(inputs.to(self.device, torch.float32), self.weights(weights))

    @torch.no_grad()
    def log_prob(
        self,
        x: Mapping[str, torch.Tensor] | torch.Tensor,
        *,
        weights: str = "auto",
        noise_samples: int = 16,
        seed: int = 0,
    ) -> torch.Tensor:
        """Log-density of physical events under every member, ``(n_members, N)``.

        The noise dims are integrated out by importance sampling with their own standard
        normal: ``p(x) ≈ mean_k p(x, e_k) / N(e_k)``, exact when ``noise_dims == 0``; the
        Jacobian of the log-transform and standardisation is included, so the result is a
        density in the physical units of ``columns``.

        Args:
            x: column → ``(N,)`` tensor, or an ``(N, len(columns))`` tensor.
            weights: ``"auto"``, ``"swa"`` or ``"live"``.
            noise_samples: noise draws per event for the marginal (>= 1).
            seed: seed of the noise draws.

        Raises:
            ValueError: bad columns or values (see :meth:`LogStandardizer.stack`).
        """
        _positive_int("noise_samples", noise_samples)
        if isinstance(x, torch.Tensor):
            if x.dim() != 2 or x.shape[1] != len(self.columns):
                msg = f"log_prob: tensor input must have shape (N, {len(self.columns)}), got {tuple(x.shape)}"
                raise ValueError(msg)
            x = {c: x[:, i] for i, c in enumerate(self.columns)}
        physical = self.scaler.stack(x)
        u = self.scaler.forward(physical)
        flat = self.weights(weights)
        if self.noise_dims == 0:
            log_density = self.flow.log_prob(u, flat)
        else:
            generator = torch.Generator(device=self.device).manual_seed(seed)
            draws = []
            inputs = torch.empty(self.n_members, u.shape[0], self.features, device=self.device)
            inputs[..., : len(self.columns)] = u
            for _ in range(noise_samples):
                noise = inputs[..., len(self.columns) :].normal_(generator=generator)
                log_noise = -0.5 * (noise.square().sum(-1) + self.noise_dims * _LOG_2PI)
                draws.append(self.flow.log_prob(inputs, flat) - log_noise)
            log_density = torch.logsumexp(torch.stack(draws), dim=0) - math.log(noise_samples)
        return log_density + self.scaler.log_abs_det_jacobian(physical)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        seed: int,
        condition: Mapping[str, torch.Tensor] | None = None,
        weights: str = "auto",
        chunk_size: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Draw ``n`` events per member in physical units.

        Args:
            n: events per member.
            seed: seed of the base-space draws (same seed, same samples).
            condition: must be ``None`` (the model is unconditional).
            weights: ``"auto"`` (SWA if available), ``"swa"`` or ``"live"``.
            chunk_size: events per member per chunk (default: 2**15 events over all
                members on CPU, 2**22 on CUDA); a speed/memory knob. Results depend on it
                only through the order of the base-space draws.

        Returns:
            Column → ``(n_members, n)`` float32 tensor on the model's device.

        Raises:
            ValueError: a condition was given, or a negative ``n``.
        """
        if condition is not None:
            msg = f"onlineflow is unconditional; got condition columns {sorted(condition)}"
            raise ValueError(msg)
        _positive_int("n", n, minimum=0)
        flat = self.weights(weights)
        default_chunk = (1 << 22) if self.device.type == "cuda" else (1 << 15)  # CPU: cache-sized
        chunk = chunk_size or max(1, default_chunk // self.n_members)
        _positive_int("chunk_size", chunk)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        out = torch.empty(len(self.columns), self.n_members, n, device=self.device)
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            z = torch.randn(self.n_members, size, self.features, generator=generator, device=self.device)
            y = self.flow.inverse(z, flat)[..., : len(self.columns)]
            out[:, :, start : start + size] = self.scaler.inverse(y).permute(2, 0, 1)
        return {c: out[i] for i, c in enumerate(self.columns)}

    # ------------------------------------------------------------------ state
    def hyperparameters(self) -> dict[str, Any]:
        """Constructor arguments (without ``device``) that rebuild an equal, untrained model."""
        return {
            "columns": list(self.columns),
            "log_columns": list(self.log_columns),
            "noise_dims": self.noise_dims,
            "n_members": self.n_members,
            "n_blocks": self.n_blocks,
            "hidden_features": self.hidden_features,
            "n_hidden_layers": self.n_hidden_layers,
            "learning_rate": self.learning_rate,
            "swa_start": self.swa_start,
            "seed": self.seed,
            "bootstrap": self.bootstrap_mode,
            "batch_order": self.batch_order,
            "transform": self.transform,
            "n_bins": self.n_bins,
            "tail_bound": self.tail_bound,
        }

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        loose = {"scaler_mean": self.scaler.mean, "scaler_std": self.scaler.std}
        if self.swa.count:
            loose["swa"] = self.swa.average["flat"]
        return pack_state(modules={"flow": self.flow}, optimizers={"adam": self.optimizer}, tensors=loose)

    def training_state(self) -> dict[str, Any]:
        """Counters (buffers seen, steps, events trained, SWA count, scaler fitted) and the
        optimiser's JSON state (:func:`models.state.pack_state`)."""
        return {
            "buffers_seen": self.buffers_seen,
            "steps": self.steps,
            "events_trained": self.events_trained,
            "swa_count": self.swa.count,
            "scaler_fitted": self.scaler.fitted,
            "state": self._state()[1],
        }

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Live weights, Adam moments, SWA weights and the frozen standardisation.

        Names as :func:`models.state.pack_state` gives them: ``module.flow.*``,
        ``optim.adam.*``, ``tensor.swa`` (flat, in the order of the flow's ``shapes``),
        ``tensor.scaler_mean`` and ``tensor.scaler_std``.
        """
        return self._state()[0]

    @torch.no_grad()
    def load_state(self, tensors: Mapping[str, torch.Tensor], training_state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_tensors` and :meth:`training_state` output.

        Raises:
            KeyError: a tensor or counter is missing (named).
            ValueError: a tensor has the wrong shape (named).
        """
        require_counters(
            training_state, ("buffers_seen", "steps", "events_trained", "swa_count", "scaler_fitted", "state"),
            "OnlineFlowEnsemble",
        )
        swa_count = int(training_state["swa_count"])
        names = ("scaler_mean", "scaler_std", "swa") if swa_count else ("scaler_mean", "scaler_std")
        loose = unpack_state(
            tensors, training_state["state"], modules={"flow": self.flow}, optimizers={"adam": self.optimizer},
            tensor_names=names,
        )
        for key in ("scaler_mean", "scaler_std"):
            if loose[key].shape != (len(self.columns),):
                msg = f"state tensor {key!r} has shape {tuple(loose[key].shape)}, expected ({len(self.columns)},)"
                raise ValueError(msg)
        self.swa.load({"flat": loose["swa"].to(self.device, torch.float32)} if swa_count else {}, swa_count)
        self.scaler.mean = loose["scaler_mean"].to(self.device, torch.float32).clone()
        self.scaler.std = loose["scaler_std"].to(self.device, torch.float32).clone()
        self.scaler.fitted = bool(training_state["scaler_fitted"])
        self.buffers_seen = int(training_state["buffers_seen"])
        self.steps = int(training_state["steps"])
        self.events_trained = int(training_state["events_trained"])

    def to(self, device: torch.device | str) -> OnlineFlowEnsemble:
        """Move weights, optimiser state, SWA and standardisation to ``device``; return self."""
        device = torch.device(device)
        self.flow.to(device)
        for state in self.optimizer.state.values():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):  # fused Adam keeps "step" on the device too
                    state[key] = value.to(device)
        self.scaler.to(device)
        self.swa.to(device)
        self.bootstrap.to(device)
        self.device = device
        return self
