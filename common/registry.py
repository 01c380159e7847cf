"""One way to register: a table of name → factory, shared by sources, models and shower generators.

Entries are added three ways, all ending in the same table:

* a decorator (``@table.register("toy")``) on a class or function;
* a lazy ``"module:attribute"`` string (``table.add_lazy("reference", "pkg.mod:Factory")``),
  imported on first use, so listing names imports no heavy code;
* plugin modules (``Registry(..., plugins=("pkg.a", "pkg.b"))``) imported before the first
  look-up, each registering its entries on import; a plugin whose own package is missing
  (an optional extra that is not installed) is skipped, any other import error is raised.

Looking up an unknown name raises the table's error type with the known names and the
closest match.

Example:
    >>> table = Registry("colour", error=KeyError)
    >>> @table.register("red")
    ... def red() -> str:
    ...     return "#f00"
    >>> table.get("red")()
    '#f00'
    >>> table.names()
    ['red']
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

__all__ = ["Registry"]

F = TypeVar("F", bound=Callable[..., Any])


class Registry(Generic[F]):
    """A name → factory table.

    Args:
        what: what the names name, for messages (``"source kind"``, ``"model kind"``).
        error: exception type raised for an unknown name.
        plugins: modules imported before the first look-up (they register on import).
    """

    def __init__(self, what: str, *, error: type[Exception] = ValueError, plugins: Sequence[str] = ()) -> None:
        self.what = what
        self.error = error
        self.plugins = tuple(plugins)
        self._factories: dict[str, F] = {}
        self._lazy: dict[str, str] = {}
        self._loaded = False

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, names={self.names()})"

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator adding (or replacing) ``name``."""

        def wrap(factory: F) -> F:
            self.add(name, factory)
            return factory

        return wrap

    def add(self, name: str, factory: F) -> None:
        """Add (or replace) ``name``.

        Raises:
            ValueError: an empty name or one with characters other than letters, digits, ``-``, ``_``.
        """
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            msg = f"{self.what} names are non-empty words (letters, digits, '-', '_'), got {name!r}"
            raise ValueError(msg)
        self._factories[name] = factory
        self._lazy.pop(name, None)

    def add_lazy(self, name: str, target: str) -> None:
        """Add ``name`` as ``"module:attribute"``, imported on first use."""
        if ":" not in target:
            msg = f"lazy {self.what} {name!r}: target must be 'module:attribute', got {target!r}"
            raise ValueError(msg)
        self._lazy[name] = target

    def _load_plugins(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self.plugins:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as err:
                if err.name is None or not module.startswith(err.name):
                    raise

    def names(self) -> list[str]:
        """All names, sorted (plugins loaded, lazy entries not imported)."""
        self._load_plugins()
        return sorted(set(self._factories) | set(self._lazy))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def get(self, name: str) -> F:
        """The factory registered as ``name``.

        Raises:
            the table's error type: an unknown name (lists the known ones and the closest).
        """
        self._load_plugins()
        if name in self._factories:
            return self._factories[name]
        if name in self._lazy:
            module, attribute = self._lazy[name].split(":")
            factory: F = getattr(importlib.import_module(module), attribute)
            self._factories[name] = factory
            return factory
        known = self.names()
        near = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        msg = f"unknown {self.what} {name!r}{hint}; known: {', '.join(known)}"
        raise self.error(msg)
