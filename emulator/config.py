"""Run configuration: frozen dataclasses loaded from TOML, every field with a working default.

Layout of a config file (all sections optional)::

    seed = 0
    device = "auto"            # "auto" (CUDA when present), "cpu", "cuda", "cuda:1"
    threads = 0                # torch CPU threads (0: torch's choice, all cores; 1 on a busy machine)

    [source]
    spec = "toy"               # KIND[:ARGUMENT], see DESIGN.md
    events = 1_000_000         # stop after this many events (omit: whole source / endless)

    [toy]                      # options of the source kind named like the section
    signal_fraction = 0.005

    [trigger]                  # see emulator.trigger
    mode = "l1"
    [[trigger.hlt]]
    name = "HLT_all"
    cuts = []
    prescale = 1

    [buffer]
    size = 10000               # N_buffer events per buffer
    batch_size = 250           # N_batch
    n_iter = 100               # N_iter (iterations over a buffer)
    n_iter_min = 100           # adaptive bounds: the trainer iterates until the other
    n_iter_max = 100           #   buffer is full, within [n_iter_min, n_iter_max]
    policy = "block"           # "block" (replay as fast as training allows) or "drop"

    [model]
    kind = "onlineflow"
    [model.hyperparameters]    # constructor arguments of the model kind
    n_members = 20

    [snapshot]
    every_buffers = 1          # write a snapshot after every k-th trained buffer
    store_events = true        # write the prescaled (stored) events beside the snapshot
    record_trained_ids = false # write the ids of trained events (exactly-once checks)

    [kafka]                    # used when a bootstrap server is given
    bootstrap = ""
    topic = "events"
    group_id = ""
    dead_letter_topic = ""
    [kafka.security]           # passed to the client (SASL/TLS); never written to manifests
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from emulator.errors import ConfigError

__all__ = [
    "BufferConfig",
    "KafkaConfig",
    "ModelConfig",
    "RunConfig",
    "SnapshotConfig",
    "SourceConfig",
    "load_config",
]


def _source_kinds() -> list[str]:
    from stream.sources import source_kinds

    return source_kinds()


def _check_keys(data: Mapping[str, Any], cls: type, where: str) -> None:
    allowed = {f.name for f in fields(cls)}
    unknown = set(data) - allowed
    if unknown:
        msg = f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})"
        raise ConfigError(msg)


def _int(value: Any, key: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        msg = f"{key} must be an integer >= {minimum}, got {value!r}"
        raise ConfigError(msg)
    return value


@dataclass(frozen=True)
class SourceConfig:
    """Where events come from.

    Attributes:
        spec: source spec ``KIND[:ARGUMENT]``.
        events: stop after this many events (None: until the source ends).
    """

    spec: str = "toy"
    events: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.spec, str) or not self.spec:
            msg = f"source.spec must be a non-empty string, got {self.spec!r}"
            raise ConfigError(msg)
        if self.events is not None:
            _int(self.events, "source.events", 1)


@dataclass(frozen=True)
class BufferConfig:
    """Double buffer and training-loop settings (paper defaults, arXiv 2202.09375)."""

    size: int = 10_000
    batch_size: int = 250
    n_iter: int = 100
    n_iter_min: int | None = None
    n_iter_max: int | None = None
    policy: str = "block"

    def __post_init__(self) -> None:
        _int(self.size, "buffer.size", 1)
        _int(self.batch_size, "buffer.batch_size", 1)
        _int(self.n_iter, "buffer.n_iter", 1)
        low = _int(self.n_iter_min, "buffer.n_iter_min", 1) if self.n_iter_min is not None else self.n_iter
        high = _int(self.n_iter_max, "buffer.n_iter_max", 1) if self.n_iter_max is not None else self.n_iter
        if low > high:
            msg = f"buffer.n_iter_min ({low}) must not exceed buffer.n_iter_max ({high})"
            raise ConfigError(msg)
        if self.policy not in ("block", "drop"):
            msg = f"buffer.policy must be 'block' or 'drop', got {self.policy!r}"
            raise ConfigError(msg)

    @property
    def iter_bounds(self) -> tuple[int, int]:
        """``(n_iter_min, n_iter_max)``; equal bounds mean a fixed N_iter."""
        low = self.n_iter_min if self.n_iter_min is not None else self.n_iter
        high = self.n_iter_max if self.n_iter_max is not None else self.n_iter
        return low, high


@dataclass(frozen=True)
class ModelConfig:
    """Which model to train and its constructor arguments."""

    kind: str = "onlineflow"
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SnapshotConfig:
    """When and what to write."""

    every_buffers: int = 1
    store_events: bool = True
    record_trained_ids: bool = False

    def __post_init__(self) -> None:
        _int(self.every_buffers, "snapshot.every_buffers", 1)


@dataclass(frozen=True)
class KafkaConfig:
    """Kafka consumer settings (only used when ``bootstrap`` is set)."""

    bootstrap: str = ""
    topic: str = "events"
    group_id: str = ""
    dead_letter_topic: str = ""
    idle_timeout_s: float | None = None
    security: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        shown = {k: ("***" if "password" in k or "secret" in k else v) for k, v in self.security.items()}
        return (
            f"KafkaConfig(bootstrap={self.bootstrap!r}, topic={self.topic!r}, group_id={self.group_id!r}, "
            f"dead_letter_topic={self.dead_letter_topic!r}, security={shown})"
        )


@dataclass(frozen=True)
class RunConfig:
    """A complete run configuration.

    Attributes:
        seed: master seed; the source and model take it unless their sections set one.
        device: ``"auto"`` picks CUDA when present.
        threads: torch CPU threads for training (0: torch's default, one per core). On a
            machine whose cores are busy with other work use 1: OpenMP workers that must
            share a core with other processes make every small kernel wait (measured on 2
            busy cores: 153 ms per flow step with 2 threads, 4.9 ms with 1).
        source_options: option tables per source kind (``{"toy": {...}}``).
        trigger: the ``[trigger]`` table (see :class:`emulator.trigger.TriggerMenu`).
    """

    seed: int = 0
    device: str = "auto"
    threads: int = 0
    source: SourceConfig = field(default_factory=SourceConfig)
    source_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    trigger: Mapping[str, Any] = field(default_factory=dict)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    snapshot: SnapshotConfig = field(default_factory=SnapshotConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RunConfig:
        """Build from a parsed TOML document; unknown keys raise :class:`ConfigError`."""
        data = dict(data)
        sections = {"source": SourceConfig, "buffer": BufferConfig, "model": ModelConfig,
                    "snapshot": SnapshotConfig, "kafka": KafkaConfig}
        built: dict[str, Any] = {}
        for name, section_cls in sections.items():
            table = data.pop(name, {})
            if not isinstance(table, Mapping):
                msg = f"[{name}] must be a table, got {table!r}"
                raise ConfigError(msg)
            _check_keys(table, section_cls, name)
            try:
                built[name] = section_cls(**table)
            except TypeError as err:
                msg = f"[{name}]: {err}"
                raise ConfigError(msg) from err
        built["trigger"] = dict(data.pop("trigger", {}))
        for key in ("seed", "device", "threads"):
            if key in data:
                built[key] = data.pop(key)
        if "seed" in built:
            _int(built["seed"], "seed", 0)
        if "threads" in built:
            _int(built["threads"], "threads", 0)
        options = {}
        kinds = _source_kinds()
        for name, table in data.items():
            if not isinstance(table, Mapping):
                msg = f"unknown top-level key {name!r} = {table!r} (allowed: seed, device, threads, and tables)"
                raise ConfigError(msg)
            if name not in kinds:
                allowed = sorted({*sections, "trigger"}) + [f"[{k}] (source options)" for k in kinds]
                near = difflib.get_close_matches(name, [*sections, "trigger", *kinds], n=1)
                hint = f"; did you mean [{near[0]}]?" if near else ""
                msg = f"unknown table [{name}]{hint} (allowed: {', '.join(allowed)})"
                raise ConfigError(msg)
            options[name] = dict(table)
        built["source_options"] = options
        config = cls(**built)
        config.validate()
        return config

    def validate(self) -> None:
        """Cross-field checks (trigger table shape, model hyperparameter names)."""
        from emulator.trigger import TriggerMenu

        TriggerMenu.from_mapping(self.trigger)
        from models.registry import check_hyperparameters

        try:
            check_hyperparameters(self.model.kind, dict(self.model.hyperparameters))
        except ValueError as err:
            msg = f"[model]: {err}"
            raise ConfigError(msg) from err

    def with_overrides(
        self, *, seed: int | None = None, events: int | None = None, device: str | None = None,
        threads: int | None = None,
    ) -> RunConfig:
        """Copy with CLI overrides applied."""
        config = self
        if threads is not None:
            config = replace(config, threads=_int(threads, "--threads", 0))
        if seed is not None:
            config = replace(config, seed=_int(seed, "--seed", 0))
        if events is not None:
            config = replace(config, source=replace(config.source, events=_int(events, "--events", 1)))
        if device is not None:
            config = replace(config, device=device)
        return config

    def to_json(self) -> dict[str, Any]:
        """JSON form for manifests, with Kafka security settings removed."""
        data = asdict(self)
        data["kafka"]["security"] = sorted(self.kafka.security)  # keys only, never values
        return data


def load_config(path: str | Path | None) -> RunConfig:
    """Load a TOML run configuration (None: all defaults).

    Raises:
        ConfigError: missing file, TOML syntax error, or a bad key/value (named).
    """
    if path is None:
        return RunConfig()
    path = Path(path)
    if not path.is_file():
        msg = f"config file {str(path)!r} does not exist"
        raise ConfigError(msg)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        msg = f"config file {str(path)!r} is not valid TOML: {err}"
        raise ConfigError(msg) from err
    try:
        return RunConfig.from_mapping(data)
    except ConfigError as err:
        msg = f"{path}: {err}"
        raise ConfigError(msg) from err
