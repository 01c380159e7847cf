"""Generator options for source specs, from ``--option KIND.KEY=VALUE`` and TOML files.

Options are a mapping ``{kind: {key: value}}`` passed to :func:`stream.sources.open_source`
(the config section named like the source kind). Values given on the command line are
parsed as TOML values (``3``, ``0.5``, ``true``, ``"text"``, ``[1, 2]``) and fall back to
plain strings.

Example:
    >>> parse_option_strings(["toy.seed=3", "toy.signal_fraction=0.01", "parquet.batch_size=1000"])
    {'toy': {'seed': 3, 'signal_fraction': 0.01}, 'parquet': {'batch_size': 1000}}
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["load_options", "merge_options", "parse_option_strings"]


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_option_strings(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Parse ``KIND.KEY=VALUE`` strings into ``{kind: {key: value}}``.

    Raises:
        ValueError: an item without ``=`` or without a ``KIND.`` prefix (names the item).
    """
    options: dict[str, dict[str, Any]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        kind, dot, key = name.strip().partition(".")
        if not sep or not dot or not kind or not key:
            msg = f"option {item!r} must look like KIND.KEY=VALUE, e.g. toy.seed=3"
            raise ValueError(msg)
        options.setdefault(kind, {})[key] = _parse_value(text.strip())
    return options


def merge_options(*layers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Merge option mappings; later layers win key by key.

    Example:
        >>> merge_options({"toy": {"seed": 1, "slope": 2.0}}, {"toy": {"seed": 5}})
        {'toy': {'seed': 5, 'slope': 2.0}}
    """
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for kind, section in layer.items():
            merged.setdefault(kind, {}).update(section)
    return merged


def load_options(
    config: str | Path | None = None, items: Iterable[str] = ()
) -> dict[str, dict[str, Any]]:
    """Options from a TOML file (its tables are option sections) overridden by ``items``.

    Top-level keys that are not tables are ignored (they are run settings, not options).

    Raises:
        ValueError: the file does not exist or is not valid TOML (names the file).
    """
    layers: list[Mapping[str, Mapping[str, Any]]] = []
    if config is not None:
        path = Path(config)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError as err:
            msg = f"config file {str(path)!r} does not exist"
            raise ValueError(msg) from err
        except tomllib.TOMLDecodeError as err:
            msg = f"config file {str(path)!r} is not valid TOML: {err}"
            raise ValueError(msg) from err
        layers.append({k: v for k, v in data.items() if isinstance(v, dict)})
    layers.append(parse_option_strings(items))
    return merge_options(*layers)
