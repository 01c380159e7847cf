"""Registry of shower generators that ``python -m offline.showers --model NAME`` validates.

A generator is anything with the :class:`ShowerGenerator` protocol. Built-in names map to
``"module:factory"`` strings imported on first use (so listing the models imports no
torch model code); more can be added at run time with :func:`register_model`. A factory
is called as ``factory(geometry, **options)``.

Built-in models:

* ``reference``: the parametric reference simulator
  (:func:`stream.showers.simulator.simulate`) run with a seed that differs from the
  held-out reference sample's, i.e. an independent sample of the same distribution. It
  is the best any model can do, and the test of the toolkit itself.

Trained models (``bibae``, ``layerflow``) are sampled from a snapshot
(:class:`offline.showers.snapshot_model.SnapshotGenerator`, ``--snapshot DIR``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from common.registry import Registry
from offline.showers.errors import UnknownModelError

__all__ = [
    "ReferenceSimulatorModel",
    "ShowerGenerator",
    "available_models",
    "get_model",
    "register_model",
]

REFERENCE_SEED_OFFSET = 1_000_003
"""Added to the run seed for the ``reference`` model, so it never repeats the held-out sample."""


@runtime_checkable
class ShowerGenerator(Protocol):
    """A model that generates dense showers for given incident energies."""

    name: str
    devices: tuple[str, ...]

    def generate(
        self, energies_gev: np.ndarray, seed: int, *, first_event: int = 0, device: str = "cpu"
    ) -> np.ndarray:
        """Showers ``(N, layers, x, y)`` float32 MeV for ``energies_gev`` ``(N,)`` GeV.

        Event ``first_event + i`` must not depend on how the events are batched where the
        model can promise it.
        """
        ...


class ReferenceSimulatorModel:
    """The parametric reference simulator as a generator (CPU only).

    Args:
        geometry: ``"ecal"``, ``"ahcal"`` or a :class:`stream.showers.geometry.Geometry`.
        seed_offset: added to the seed passed to :meth:`generate`.
    """

    name = "reference"
    devices: tuple[str, ...] = ("cpu",)

    def __init__(self, geometry: Any, seed_offset: int = REFERENCE_SEED_OFFSET) -> None:
        from stream.showers.geometry import get_geometry

        self.geometry = get_geometry(geometry)
        self.seed_offset = int(seed_offset)

    def __repr__(self) -> str:
        return f"ReferenceSimulatorModel(geometry={self.geometry.name!r}, seed_offset={self.seed_offset})"

    def generate(
        self, energies_gev: np.ndarray, seed: int, *, first_event: int = 0, device: str = "cpu"
    ) -> np.ndarray:
        """Simulate one shower per energy with seed ``seed + seed_offset``."""
        if device != "cpu":
            msg = f"the reference simulator runs on the CPU only, got device {device!r}"
            raise ValueError(msg)
        from stream.showers.simulator import simulate

        return simulate(
            self.geometry,
            np.asarray(energies_gev, dtype=np.float64),
            int(seed) + self.seed_offset,
            first_event=first_event,
        )


GENERATORS: Registry[Callable[..., ShowerGenerator]] = Registry("model", error=UnknownModelError)
"""Shower generator name → factory ``factory(geometry, **options)``."""
GENERATORS.add_lazy("reference", "offline.showers.registry:ReferenceSimulatorModel")


def _snapshot_model(kind: str) -> Callable[..., ShowerGenerator]:
    def factory(geometry: Any, **options: Any) -> ShowerGenerator:
        from offline.showers.snapshot_model import SnapshotGenerator

        return SnapshotGenerator(geometry, kind=kind, **options)

    return factory


# Trained models, sampled from their snapshot (--snapshot DIR).
GENERATORS.add("bibae", _snapshot_model("bibae"))
GENERATORS.add("layerflow", _snapshot_model("layerflow"))


def register_model(name: str, factory: Callable[..., ShowerGenerator]) -> None:
    """Add (or replace) a generator factory under ``name``.

    Example:
        >>> register_model("doc-example", ReferenceSimulatorModel)
        >>> "doc-example" in available_models()
        True
    """
    GENERATORS.add(name, factory)


def available_models() -> list[str]:
    """Names of the built-in and registered models, sorted."""
    return GENERATORS.names()


def get_model(name: str, geometry: Any, **options: Any) -> ShowerGenerator:
    """Build the generator registered as ``name`` for ``geometry``.

    Raises:
        UnknownModelError: naming the unknown model and the known ones.
    """
    return GENERATORS.get(name)(geometry, **options)
