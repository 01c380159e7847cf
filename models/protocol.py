"""The ``OnlineModel`` protocol: the only way the emulator talks to a model.

Designed for every model family of the project:

* OnlineFlow ensembles (one batched computation over members, Poisson bootstrap, SWA);
* BIB-AE (encoder, decoder, several critics with their own optimisers and update ratios,
  stages: main model, then Post Processor, then a KDE fit of the latent space);
* layer/shower flows (many conditional flows trained together).

A buffer reaches the model as a mapping of column name to tensor, all with the same
leading length N: flat events give one ``(N,)`` float tensor per feature column; showers
give ``"showers"`` as a dense ``(N, layers, x, y)`` float32 tensor in MeV and
``"incident_energy"`` as ``(N,)`` in GeV. Buffers of several stages and critic schedules
are the model's business: the trainer only calls :meth:`OnlineModel.train_on_buffer`
and :meth:`OnlineModel.end_buffer`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

__all__ = ["BufferReport", "OnlineModel"]


@dataclass
class BufferReport:
    """What one pass of training over a buffer did.

    Attributes:
        steps: optimiser steps taken (for an ensemble: batched steps, one per batch).
        loss: mean training loss over the last iteration (model-specific meaning).
        metrics: any further named figures (critic losses, stage, learning rate...).
    """

    steps: int
    loss: float
    metrics: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class OnlineModel(Protocol):
    """A model trained from a stream of buffers.

    Attributes:
        kind: registry name (``"onlineflow"``, ``"bibae"``, ``"layerflow"``), stored in
            the manifest.
    """

    kind: ClassVar[str]

    def train_on_buffer(
        self, data: Mapping[str, torch.Tensor], n_iter: int, batch_size: int
    ) -> BufferReport:
        """Iterate ``n_iter`` times over the buffer in shuffled batches of ``batch_size``."""
        ...

    def end_buffer(self) -> None:
        """Called once the buffer is done: SWA update, stage advance, schedules."""
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
