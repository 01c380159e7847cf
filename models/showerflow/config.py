"""Settings of the layer and shower flows: one frozen dataclass with working defaults.

The defaults model the central 10 × 10 × 30 window of the ILD ECAL grid (as the BIB-AE
``small`` preset does) and are sized for about half an hour of training on 2 CPU cores
(``configs/showers-layerflow.toml``). Stages are counted in buffers: ``main_buffers``
of the teacher (layer flow and shower flows, maximum likelihood), then
``student_buffers`` of the students (distillation), then nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from models.showerflow.conditional_maf import TRANSFORMS

__all__ = ["MOMENTS", "ShowerFlowConfig"]

MOMENTS = 4
"""Context moments per previous layer with ``context_moments``: centre of gravity x, y and width x, y."""


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class ShowerFlowConfig:
    """Every setting of :class:`models.showerflow.model.LayerShowerFlow`.

    Attributes:
        grid_shape: ``(L, X, Y)`` of the showers in the buffer.
        crop: ``(x, y)`` size of the central window modelled (None: the whole grid).
        threshold_mev: readout threshold (MeV): cells below it are zero, layers without a
            cell above it are empty (0.1 MeV = 0.5 MIP, the ECAL analysis threshold).
        noise_low_mev: lower end of the log-uniform noise given to non-hit cells (MeV).
        noise_high_mev: upper end of that noise (MeV, below the threshold).
        quantile_knots: knots of the per-feature quantile maps (Gaussianisation).
        history: previous layers whose normalised images condition a shower flow (5 in
            the study: context of ``2 + 5 * cells`` features).
        context_moments: also give each shower flow the energy-weighted centre of gravity
            and width (x and y, in cells) of the hits (cells at or above the threshold) of
            each of the previous ``history`` layers, four
            features per layer appended after the images (``4 * history`` more context
            features). The reference showers' core wanders with depth; these let a flow
            follow it without reconstructing the moments from log-fraction images.
        layer_blocks: MADE blocks of the layer flow.
        layer_hidden: hidden units per MADE layer of the layer flow.
        layer_hidden_layers: hidden layers per MADE of the layer flow.
        shower_blocks: MADE blocks of each shower flow.
        shower_hidden: hidden units per MADE layer of each shower flow.
        shower_hidden_layers: hidden layers per MADE of each shower flow.
        shower_context_embedding: width of the linear context embedding each shower flow
            shares between its blocks (None: every block sees the raw context).
        shower_transform: block transform of the shower flows: ``"affine"`` (MAF) or
            ``"rq_spline"`` (rational-quadratic spline blocks, arXiv 1906.04958).
        shower_bins: spline bins per cell (``rq_spline`` only).
        shower_tail_bound: half-width of the spline interval in the Gaussianised cell
            features (``rq_spline`` only; the identity outside).
        student_layer_blocks: IAF blocks of the layer-flow student.
        student_layer_hidden: hidden units of the layer-flow student.
        student_blocks: IAF blocks of each shower-flow student.
        student_hidden: hidden units of each shower-flow student.
        student_context_embedding: context embedding width of the shower-flow students.
        student_transform: block transform of the shower-flow students: ``"affine"`` (IAF) or
            ``"rq_spline"`` (spline IAF blocks, on ``[-shower_tail_bound, shower_tail_bound]``);
            an affine student cannot follow a spline teacher's two-peaked cells.
        student_bins: spline bins per cell of the students (``rq_spline`` only).
        learning_rate: Adam learning rate of the teacher flows.
        student_learning_rate: Adam learning rate of the students.
        lr_decay: learning-rate factor applied after every buffer of a stage.
        grad_clip: maximum gradient norm per step (0: no clipping).
        main_buffers: buffers of teacher training.
        student_buffers: buffers of student training that follow.
        student_x_weight: weight of the x-space MSE (student(teacher(x)) vs x).
        student_z_weight: weight of the z-space MSE (teacher(student(z)) vs z).
    """

    grid_shape: tuple[int, int, int] = (30, 30, 30)
    crop: tuple[int, int] | None = (10, 10)
    threshold_mev: float = 0.1
    noise_low_mev: float = 0.005
    noise_high_mev: float = 0.09
    quantile_knots: int = 129
    history: int = 5
    context_moments: bool = False
    layer_blocks: int = 6
    layer_hidden: int = 128
    layer_hidden_layers: int = 2
    shower_blocks: int = 6
    shower_hidden: int = 128
    shower_hidden_layers: int = 2
    shower_context_embedding: int | None = 64
    shower_transform: str = "affine"
    shower_bins: int = 8
    shower_tail_bound: float = 5.0
    student_layer_blocks: int = 6
    student_layer_hidden: int = 128
    student_blocks: int = 2
    student_hidden: int = 64
    student_context_embedding: int | None = 32
    student_transform: str = "affine"
    student_bins: int = 4
    learning_rate: float = 1e-3
    student_learning_rate: float = 1e-3
    lr_decay: float = 0.93
    grad_clip: float = 100.0
    main_buffers: int = 36
    student_buffers: int = 10
    student_x_weight: float = 1.0
    student_z_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("grid_shape", "crop"):
            object.__setattr__(self, name, _tuple(getattr(self, name)))
        positive = (
            "history", "quantile_knots", "layer_blocks", "layer_hidden", "layer_hidden_layers", "shower_blocks", "shower_hidden",
            "shower_hidden_layers", "shower_bins", "student_layer_blocks", "student_layer_hidden", "student_blocks", "student_hidden",
            "student_bins",
        )
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f"LayerShowerFlow: setting {name!r} must be an integer >= 1, got {value!r}"
                raise ValueError(msg)
        if self.shower_transform not in TRANSFORMS:
            msg = f"LayerShowerFlow: setting 'shower_transform' must be one of {TRANSFORMS}, got {self.shower_transform!r}"
            raise ValueError(msg)
        if self.student_transform not in TRANSFORMS:
            msg = f"LayerShowerFlow: setting 'student_transform' must be one of {TRANSFORMS}, got {self.student_transform!r}"
            raise ValueError(msg)
        for name in ("shower_bins", "student_bins"):
            if getattr(self, name) < 2:
                msg = f"LayerShowerFlow: setting {name!r} must be >= 2, got {getattr(self, name)}"
                raise ValueError(msg)
        if not isinstance(self.context_moments, bool):
            msg = f"LayerShowerFlow: setting 'context_moments' must be true or false, got {self.context_moments!r}"
            raise ValueError(msg)
        for name in ("shower_context_embedding", "student_context_embedding"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                msg = f"LayerShowerFlow: setting {name!r} must be None or an integer >= 1, got {value!r}"
                raise ValueError(msg)
        for name in ("main_buffers", "student_buffers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                msg = f"LayerShowerFlow: setting {name!r} must be an integer >= 0, got {value!r}"
                raise ValueError(msg)
        for name in ("threshold_mev", "noise_low_mev", "noise_high_mev", "learning_rate", "student_learning_rate", "lr_decay",
                     "shower_tail_bound"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
                msg = f"LayerShowerFlow: setting {name!r} must be a finite number > 0, got {value!r}"
                raise ValueError(msg)
        for name in ("grad_clip", "student_x_weight", "student_z_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value >= 0):
                msg = f"LayerShowerFlow: setting {name!r} must be a finite number >= 0, got {value!r}"
                raise ValueError(msg)
        if not self.noise_low_mev < self.noise_high_mev < self.threshold_mev:
            msg = (
                f"LayerShowerFlow: need noise_low_mev < noise_high_mev < threshold_mev, got {self.noise_low_mev}, "
                f"{self.noise_high_mev}, {self.threshold_mev}"
            )
            raise ValueError(msg)
        if self.quantile_knots < 2:
            msg = f"LayerShowerFlow: setting 'quantile_knots' must be >= 2, got {self.quantile_knots}"
            raise ValueError(msg)
        if len(self.grid_shape) != 3 or min(self.grid_shape) < 1:
            msg = f"LayerShowerFlow: setting 'grid_shape' must be three positive integers (L, X, Y), got {self.grid_shape!r}"
            raise ValueError(msg)
        if self.crop is not None and (
            len(self.crop) != 2 or not (0 < self.crop[0] <= self.grid_shape[1] and 0 < self.crop[1] <= self.grid_shape[2])
        ):
            msg = f"LayerShowerFlow: setting 'crop' {self.crop!r} must be two sizes within the grid {self.grid_shape}"
            raise ValueError(msg)

    @property
    def model_shape(self) -> tuple[int, int, int]:
        """``(L, X, Y)`` of what the flows model (the crop of the grid, if any)."""
        if self.crop is None:
            return self.grid_shape
        return (self.grid_shape[0], self.crop[0], self.crop[1])

    @property
    def cells(self) -> int:
        """Cells per modelled layer (``X * Y``)."""
        return self.model_shape[1] * self.model_shape[2]

    @property
    def context_features(self) -> int:
        """Context width of a shower flow: layer energy, incident energy, ``history`` images (and moments)."""
        return 2 + self.history * self.cells + (MOMENTS * self.history if self.context_moments else 0)

    def to_json(self) -> dict[str, Any]:
        """All settings as JSON-ready values (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def names(cls) -> list[str]:
        """Names of all settings."""
        return [f.name for f in fields(cls)]
