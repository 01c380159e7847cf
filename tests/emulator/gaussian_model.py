"""A tiny OnlineModel for trainer tests: a learnable Gaussian per feature column."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from models.protocol import BufferReport, StopCallback
from models.registry import register

__all__ = ["GaussianTestModel"]


@register("test-gaussian")
class GaussianTestModel:
    """Fits mean and log-std of each column by gradient descent on the NLL."""

    kind: ClassVar[str] = "test-gaussian"

    def __init__(self, columns: list[str] | None = None, learning_rate: float = 0.05, seed: int = 0) -> None:
        self.columns = list(columns or ["mass"])
        self.learning_rate = learning_rate
        self.seed = seed
        self.mean = torch.zeros(len(self.columns), requires_grad=True)
        self.log_std = torch.zeros(len(self.columns), requires_grad=True)
        self.optimizer = torch.optim.SGD([self.mean, self.log_std], lr=learning_rate)
        self.generator = torch.Generator().manual_seed(seed)
        self.buffers = 0

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def train_on_buffer(
        self, data: Mapping[str, torch.Tensor], n_iter: int, batch_size: int, *, stop: StopCallback | None = None
    ) -> BufferReport:
        x = torch.stack([data[c].float() for c in self.columns], dim=1)
        steps = passes = 0
        loss = torch.tensor(0.0)
        for _ in range(n_iter):
            order = torch.randperm(len(x), generator=self.generator)
            for start in range(0, len(x), batch_size):
                batch = x[order[start : start + batch_size]]
                loss = (((batch - self.mean) / self.log_std.exp()) ** 2 / 2 + self.log_std).sum(1).mean()
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                steps += 1
            passes += 1
            if stop is not None and passes < n_iter and stop(passes):
                break
        return BufferReport(steps, float(loss.detach()), passes=passes)

    def end_buffer(self) -> None:
        self.buffers += 1

    def after_buffer(self, data: Mapping[str, torch.Tensor]) -> dict[str, float]:
        return {"mean_0": float(self.mean.detach()[0])}

    def hyperparameters(self) -> dict[str, Any]:
        return {"columns": self.columns, "learning_rate": self.learning_rate, "seed": self.seed}

    def training_state(self) -> dict[str, Any]:
        return {"buffers": self.buffers}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean.detach(), "log_std": self.log_std.detach(),
                "generator": self.generator.get_state()}

    def load_state(self, tensors: Mapping[str, torch.Tensor], training_state: Mapping[str, Any]) -> None:
        with torch.no_grad():
            self.mean.copy_(tensors["mean"])
            self.log_std.copy_(tensors["log_std"])
        self.generator.set_state(tensors["generator"])
        self.buffers = int(training_state["buffers"])

    def sample(self, n: int, *, seed: int, condition: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, len(self.columns), generator=g)
        x = self.mean.detach() + z * self.log_std.detach().exp()
        return {c: x[:, i] for i, c in enumerate(self.columns)}

    def to(self, device: torch.device | str) -> GaussianTestModel:
        return self
