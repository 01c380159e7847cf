"""The ``OnlineModel`` protocol: the only way the emulator talks to a model.

Designed for every model family of the project:

* OnlineFlow ensembles (one batched computation over members, Poisson bootstrap, SWA);
* BIB-AE (encoder, decoder, several critics with their own optimisers and update ratios,
  stages: main model, then Post Processor, then a KDE fit of the latent space);
* layer/shower flows (many conditional flows trained together).

A buffer reaches the model as a mapping of column name to tensor. Flat events give one
``(N,)`` float32 tensor per feature column. Showers stay sparse (CSR) in the buffer and
are densified per batch by the model (:func:`models.shower_data.densify`):

* ``"incident_energy"``: ``(N,)`` float32, GeV;
* ``"cell_offsets"``: ``(N + 1,)`` int64 row pointers into the two cell columns;
* ``"cell_index"``: ``(nnz,)`` int64 flat index into the ``L * X * Y`` grid (C order,
  layer slowest);
* ``"cell_energy"``: ``(nnz,)`` float32, MeV;
* ``"grid_shape"``: ``(3,)`` int64, ``(L, X, Y)``.

Per buffer the trainer calls :meth:`OnlineModel.train_on_buffer` once (all passes, with
an optional ``stop`` callback for adaptive N_iter), then :meth:`OnlineModel.end_buffer`
(SWA, schedules), then :meth:`OnlineModel.after_buffer` (work that is not a pass over the
buffer: a KDE fit of a latent space, a stage switch). Stages and critic schedules are the
model's business.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

__all__ = ["BufferReport", "OnlineModel", "StopCallback"]


@dataclass
class BufferReport:
    """What one pass of training over a buffer did.

    Attributes:
        steps: optimiser steps taken (for an ensemble: batched steps, one per batch).
        loss: mean training loss over the last pass (model-specific meaning).
        metrics: any further named figures (critic losses, stage, learning rate...); the
            trainer keeps them, one row per buffer, in ``metrics.parquet`` beside the
            snapshot.
        passes: passes over the buffer actually made (``<= n_iter``; fewer when ``stop``
            ended the buffer early).
    """

    steps: int
    loss: float
    metrics: dict[str, float] = field(default_factory=dict)
    passes: int = 0


StopCallback = Callable[[int], bool]
"""``stop(passes_done) -> bool``: asked after every completed pass; True ends the buffer."""


@runtime_checkable
class OnlineModel(Protocol):
    """A model trained from a stream of buffers.

    Attributes:
        kind: registry name (``"onlineflow"``, ``"bibae"``, ``"layerflow"``), stored in
            the manifest.
    """

    kind: ClassVar[str]

    @property
    def device(self) -> torch.device:
        """Where the model's tensors live (the trainer moves buffers there)."""
        ...

    def train_on_buffer(
        self,
        data: Mapping[str, torch.Tensor],
        n_iter: int,
        batch_size: int,
        *,
        stop: StopCallback | None = None,
    ) -> BufferReport:
        """Up to ``n_iter`` shuffled passes over the buffer in batches of ``batch_size``.

        Everything drawn once per buffer (bootstrap weights) is drawn when the buffer
        starts and held for all its passes; everything drawn per pass (order, noise)
        differs from pass to pass. All of it is seeded from the model's seed and
        counters, so a run resumed from a snapshot repeats an uninterrupted one.
        ``stop(passes_done)``, when given, is asked after every pass; True ends the buffer.
        """
        ...

    def end_buffer(self) -> None:
        """Called once the buffer is done: SWA update, stage advance, schedules."""
        ...

    def after_buffer(self, data: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Work that is not a pass over the buffer, after :meth:`end_buffer`.

        Called once per buffer with the same data, e.g. to fit a KDE of the latent space
        when the last stage ends, or to switch stages. Returns metrics (may be empty).
        """
        ...

    def hyperparameters(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable) that rebuild an equal, untrained model."""
        ...

    def training_state(self) -> dict[str, Any]:
        """JSON-serialisable counters (buffers seen, SWA count, stage, RNG seeds...)."""
        ...

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """All tensors needed to resume training and to sample (weights, SWA, optimiser)."""
        ...

    def load_state(self, tensors: Mapping[str, torch.Tensor], training_state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_tensors` and :meth:`training_state` output."""
        ...

    def sample(
        self, n: int, *, seed: int, condition: Mapping[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """Draw ``n`` samples in physical units, keyed by column.

        Ensembles return a leading member dimension: ``(n_members, n)`` per column.
        Conditional models take ``condition`` (e.g. ``incident_energy`` in GeV).
        """
        ...

    def to(self, device: torch.device | str) -> OnlineModel:
        """Move to a device and return self."""
        ...
