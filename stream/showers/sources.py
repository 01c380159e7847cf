"""Shower sources: the reference simulator and shower files, as :class:`stream.source.Source`.

Registered kinds (imported by :mod:`stream.sources` as a plugin):

* ``showers:ecal`` / ``showers:ahcal``: :class:`ShowerSimulatorSource`; options
  ``n_events`` (None = endless), ``seed``, ``energy_min`` / ``energy_max`` (GeV,
  default: the geometry's range), ``batch_size``.
* ``zarr:PATH``, ``ild:PATH``, ``calochallenge:PATH``, ``root:PATH[:TREE]``:
  :class:`ShowerFileSource`; options ``batch_size`` plus the reader's (``key``,
  ``grid_shape``, ``tree``). A ``root:`` file whose tree has no jagged
  ``cell_index``/``cell_energy`` branches is a flat event tree: it is read as events by
  :class:`stream.readers.root_events.RootEventSource`.

Both are deterministic and resumable: ``batches(start_event)`` yields exactly the
events from ``start_event`` on (the simulator seeds every event from ``(seed, event)``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from stream.errors import SourceError
from stream.showers.errors import ShowerFileError
from stream.showers.geometry import Geometry, get_geometry
from stream.showers.io.base import ShowerFile
from stream.showers.io.detect import open_showers
from stream.showers.sparse import dense_to_batch, schema_for
from stream.source import Source
from stream.sources import register_source

__all__ = ["ShowerFileSource", "ShowerSimulatorConfig", "ShowerSimulatorSource"]


@dataclass(frozen=True)
class ShowerSimulatorConfig:
    """Options of the reference shower simulator source.

    Attributes:
        n_events: total showers (None: endless).
        seed: random seed (same seed, same showers).
        energy_min: lowest incident energy (GeV; None: the geometry's default).
        energy_max: highest incident energy (GeV; None: the geometry's default).
        batch_size: showers per record batch.
    """

    n_events: int | None = None
    seed: int = 0
    energy_min: float | None = None
    energy_max: float | None = None
    batch_size: int = 1000

    def __post_init__(self) -> None:
        checks = {
            "n_events": self.n_events is None or self.n_events >= 0,
            "seed": self.seed >= 0,
            "batch_size": self.batch_size > 0,
            "energy_min": self.energy_min is None or self.energy_min > 0,
            "energy_max": self.energy_max is None or self.energy_max > 0,
        }
        for key, ok in checks.items():
            if not ok:
                msg = f"showers: invalid {key} = {getattr(self, key)!r}"
                raise SourceError(msg)


class ShowerSimulatorSource:
    """Endless or finite stream of simulated showers (sparse shower batches).

    Example:
        >>> src = ShowerSimulatorSource("ecal", ShowerSimulatorConfig(n_events=3, batch_size=2))
        >>> [b.num_rows for b in src.batches()]
        [2, 1]
    """

    def __init__(self, geometry: str | Geometry, config: ShowerSimulatorConfig | None = None) -> None:
        self.geometry = get_geometry(geometry)
        self.config = config or ShowerSimulatorConfig()
        self.energy_min = self.config.energy_min or self.geometry.energy_min_gev
        self.energy_max = self.config.energy_max or self.geometry.energy_max_gev
        if self.energy_min > self.energy_max:
            msg = f"showers:{self.geometry.name}: energy_min {self.energy_min} > energy_max {self.energy_max} GeV"
            raise SourceError(msg)
        self.spec = f"showers:{self.geometry.name}"
        self.schema: pa.Schema = schema_for(self.geometry)

    def __repr__(self) -> str:
        return f"ShowerSimulatorSource({self.geometry.name!r}, {self.config})"

    def batches(self, start_event: int = 0) -> Iterator[pa.RecordBatch]:
        """Yield batches of ``batch_size`` showers from event number ``start_event``."""
        from stream.showers.simulator import sample_energies, simulate

        cfg = self.config
        event = start_event
        # One dense buffer reused for every batch (dense_to_batch copies what it keeps).
        buffer = np.empty((cfg.batch_size, *self.geometry.shape), dtype=np.float32)
        while cfg.n_events is None or event < cfg.n_events:
            n = cfg.batch_size if cfg.n_events is None else min(cfg.batch_size, cfg.n_events - event)
            energies = sample_energies(cfg.seed, event, n, self.energy_min, self.energy_max).astype(np.float32)
            showers = simulate(self.geometry, energies, cfg.seed, first_event=event, out=buffer[:n])
            ids = np.arange(event, event + n, dtype=np.uint64)
            yield dense_to_batch(ids, energies, showers, self.geometry)
            event += n


class ShowerFileSource:
    """Replays a shower file in sparse batches, reading it chunk by chunk.

    Args:
        reader: an open :class:`~stream.showers.io.base.ShowerFile`.
        spec: the spec string that named it.
        batch_size: showers per record batch.
    """

    def __init__(self, reader: ShowerFile, spec: str, batch_size: int = 1000) -> None:
        if batch_size <= 0:
            msg = f"{spec}: batch_size must be > 0, got {batch_size}"
            raise SourceError(msg)
        self.reader = reader
        self.spec = spec
        self.batch_size = batch_size
        self._grid: Geometry | tuple[int, int, int] = reader.geometry or reader.grid_shape
        self.schema: pa.Schema = schema_for(self._grid)

    def __repr__(self) -> str:
        return f"ShowerFileSource({self.reader!r}, batch_size={self.batch_size})"

    def batches(self, start_event: int = 0) -> Iterator[pa.RecordBatch]:
        """Yield batches from event row ``start_event``."""
        for chunk in self.reader.read_chunks(self.batch_size, start=start_event):
            yield dense_to_batch(chunk.event_ids, chunk.energies, chunk.showers, self._grid)


@register_source("showers")
def _showers(argument: str | None, options: Mapping[str, Any]) -> Source:
    name = argument or "ecal"
    try:
        geometry = get_geometry(name)
        config = ShowerSimulatorConfig(**options)
    except (TypeError, ValueError) as err:
        msg = f"showers:{name}: {err} (options {dict(options)})"
        raise SourceError(msg) from err
    return ShowerSimulatorSource(geometry, config)


def _file_source(kind: str, path: str | None, options: Mapping[str, Any], **reader_options: Any) -> Source:
    if not path:
        msg = f"{kind} source needs a path: '{kind}:PATH'"
        raise SourceError(msg)
    opts = dict(options)
    batch_size = int(opts.pop("batch_size", 1000))
    if "grid_shape" in opts and opts["grid_shape"] is not None:
        opts["grid_shape"] = tuple(int(s) for s in opts["grid_shape"])
    reader = open_showers(path, kind, **reader_options, **opts)
    return ShowerFileSource(reader, f"{kind}:{path}" + (f":{reader_options['tree']}" if reader_options.get("tree") else ""),
                            batch_size)


@register_source("zarr")
def _zarr(argument: str | None, options: Mapping[str, Any]) -> Source:
    return _file_source("zarr", argument, options)


@register_source("ild")
def _ild(argument: str | None, options: Mapping[str, Any]) -> Source:
    return _file_source("ild", argument, options)


@register_source("calochallenge")
def _calochallenge(argument: str | None, options: Mapping[str, Any]) -> Source:
    return _file_source("calochallenge", argument, options)


def _split_root_argument(argument: str) -> tuple[str, str | None]:
    if Path(argument).exists() or ":" not in argument:
        return argument, None
    path, _, tree = argument.rpartition(":")
    return path, tree or None


@register_source("root")
def _root(argument: str | None, options: Mapping[str, Any]) -> Source:
    if not argument:
        msg = "root source needs a path: 'root:PATH[:TREE]'"
        raise SourceError(msg)
    path, tree = _split_root_argument(argument)
    opts = dict(options)
    tree = opts.pop("tree", None) or tree
    if not Path(path).is_file():
        msg = f"root: file {path!r} does not exist"
        raise SourceError(msg)
    import uproot

    from stream.showers.io.root_hits import HIT_BRANCHES, is_hit_tree

    with uproot.open(path) as handle:
        trees = sorted({k.split(";")[0] for k, c in handle.classnames().items() if c == "TTree"})
        name = tree or ("showers" if "showers" in trees or len(trees) != 1 else trees[0])
        if name not in trees:
            others = {k.split(";")[0]: c for k, c in handle.classnames().items() if c != "TTree"}
            msg = f"root: tree {name!r} not found in {path!r} (TTrees: {trees}; other objects: {others})"
            raise ShowerFileError(msg)
        hits = is_hit_tree(handle[name])
    if not hits:
        # A flat tree: one number per entry and branch -> an event source.
        from stream.readers.root_events import RootEventSource

        try:
            return RootEventSource(path, name, **opts)
        except TypeError as err:
            msg = f"root: bad option for the flat tree {name!r} in {path!r} (hit branches would be {list(HIT_BRANCHES)}): {err}"
            raise SourceError(msg) from err
    return _file_source("root", path, opts, tree=name)
