"""Registry of model kinds, so a snapshot manifest can rebuild its model."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from models.protocol import OnlineModel

__all__ = ["build_model", "check_hyperparameters", "register", "registered_kinds"]

_BUILDERS: dict[str, Callable[..., OnlineModel]] = {}


def register(kind: str) -> Callable[[type], type]:
    """Class decorator registering a model class under ``kind``."""

    def wrap(cls: type) -> type:
        _BUILDERS[kind] = cls
        return cls

    return wrap


def _load_builtin() -> None:
    import importlib

    for module in ("models.flows.ensemble", "models.bibae.model", "models.showerflow.model"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name is None or not module.startswith(err.name):
                raise


def registered_kinds() -> list[str]:
    """Kinds that can be built."""
    _load_builtin()
    return sorted(_BUILDERS)


def check_hyperparameters(kind: str, hyperparameters: dict[str, Any]) -> None:
    """Check that ``kind`` exists and takes every key of ``hyperparameters``.

    Raises:
        ValueError: an unknown kind (lists the known ones) or an unknown hyperparameter
            (names it, the closest allowed name, and all allowed names).
    """
    _load_builtin()
    if kind not in _BUILDERS:
        msg = f"unknown model kind {kind!r}; known kinds: {sorted(_BUILDERS)}"
        raise ValueError(msg)
    parameters = inspect.signature(_BUILDERS[kind]).parameters
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
    return _BUILDERS[kind](**hyperparameters)
