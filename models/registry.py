"""Registry of model kinds, so a snapshot manifest can rebuild its model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from models.protocol import OnlineModel

__all__ = ["build_model", "register", "registered_kinds"]

_BUILDERS: dict[str, Callable[..., OnlineModel]] = {}


def register(kind: str) -> Callable[[type], type]:
    """Class decorator registering a model class under ``kind``."""

    def wrap(cls: type) -> type:
        _BUILDERS[kind] = cls
        return cls

    return wrap


def _load_builtin() -> None:
    import importlib

    for module in ("models.flows.ensemble",):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


def registered_kinds() -> list[str]:
    """Kinds that can be built."""
    _load_builtin()
    return sorted(_BUILDERS)


def build_model(kind: str, hyperparameters: dict[str, Any]) -> OnlineModel:
    """Build an untrained model of ``kind`` from its hyperparameters.

    Raises:
        ValueError: for an unknown kind (lists the known ones).
    """
    _load_builtin()
    if kind not in _BUILDERS:
        msg = f"unknown model kind {kind!r}; known kinds: {sorted(_BUILDERS)}"
        raise ValueError(msg)
    return _BUILDERS[kind](**hyperparameters)
