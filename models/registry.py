"""Registry of model kinds, so a snapshot manifest can rebuild its model."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from common.registry import Registry
from models.protocol import OnlineModel

__all__ = ["MODELS", "build_model", "check_hyperparameters", "register", "registered_kinds"]

MODELS: Registry[Callable[..., OnlineModel]] = Registry(
    "model kind", plugins=("models.flows.ensemble", "models.bibae.model", "models.showerflow.model")
)
"""Model kind → class (the built-in model modules register themselves on import)."""


def register(kind: str) -> Callable[[type], type]:
    """Class decorator registering a model class under ``kind``."""
    return MODELS.register(kind)  # type: ignore[return-value]


def registered_kinds() -> list[str]:
    """Kinds that can be built."""
    return MODELS.names()


def check_hyperparameters(kind: str, hyperparameters: dict[str, Any]) -> None:
    """Check that ``kind`` exists and takes every key of ``hyperparameters``.

    Raises:
        ValueError: an unknown kind (lists the known ones) or an unknown hyperparameter
            (names it, the closest allowed name, and all allowed names).
    """
    parameters = inspect.signature(MODELS.get(kind)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    allowed = [name for name in parameters if name != "self"]
    unknown = [key for key in hyperparameters if key not in allowed]
    if unknown:
        hints = [f"{key!r} (did you mean {near[0]!r}?)" if (near := difflib.get_close_matches(key, allowed, n=1))
                 else repr(key) for key in unknown]
        msg = f"model {kind!r} has no hyperparameter {', '.join(hints)}; allowed: {', '.join(allowed)}"
        raise ValueError(msg)


def build_model(kind: str, hyperparameters: dict[str, Any]) -> OnlineModel:
    """Build an untrained model of ``kind`` from its hyperparameters.

    Raises:
        ValueError: for an unknown kind (lists the known ones) or hyperparameter.
    """
    check_hyperparameters(kind, hyperparameters)
    return MODELS.get(kind)(**hyperparameters)
