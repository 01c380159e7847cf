"""Emulated L1 / HLT trigger menu: cuts on columns, counter-based prescales, counters.

A menu has L1 paths and HLT paths. Each path is a conjunction of cuts ``COLUMN OP VALUE``
(``OP`` one of ``> >= < <= == !=``) and a prescale factor ``p``: of the events that pass
its cuts, every ``p``-th is accepted (a deterministic counter, as in real triggers). An
event passes L1 if any L1 path accepts it (an empty L1 list accepts everything); HLT paths
run on L1-accepted events, and the event is *stored* if any HLT path accepts it after its
prescale (an empty HLT list stores every L1-accepted event, subject to no prescale).

Two training selections (arXiv 2202.09375): ``mode = "l1"`` trains on everything that
passes L1; ``mode = "hlt"`` trains on what passes the HLT cuts *before* their prescale.

The menu runs as one numba kernel per batch: cut-major (one vectorised pass per cut over
the columns, no copies), then path-major prescale counting; counters persist across
batches. Paths are evaluated in order, so counts match an event-by-event trigger exactly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from emulator.errors import ConfigError

__all__ = ["Cut", "TriggerDecision", "TriggerMenu", "TriggerPath", "TriggerState", "parse_cut"]

TriggerState = tuple[np.ndarray, np.ndarray, np.ndarray, int, int, int, int]
"""Prescale counters, per-path counts before/after prescale, and the four event totals."""

_OPS = {">": 0, ">=": 1, "<": 2, "<=": 3, "==": 4, "!=": 5}
_CUT_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*([-+0-9.eE]+|inf|-inf)\s*$")


@dataclass(frozen=True)
class Cut:
    """One requirement ``column op value`` (value in the column's units)."""

    column: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.column} {self.op} {self.value:g}"


def parse_cut(text: str) -> Cut:
    """Parse ``"mass > 0.5"`` into a :class:`Cut`.

    Example:
        >>> parse_cut("mass >= 0.25")
        Cut(column='mass', op='>=', value=0.25)

    Raises:
        ConfigError: if the text is not ``COLUMN OP NUMBER``.
    """
    match = _CUT_RE.match(text)
    if not match:
        msg = f"trigger cut {text!r} is not of the form 'COLUMN OP NUMBER' with OP in {list(_OPS)}"
        raise ConfigError(msg)
    return Cut(match.group(1), match.group(2), float(match.group(3)))


@dataclass(frozen=True)
class TriggerPath:
    """A trigger path: name, cuts (all must pass) and prescale factor (>= 1)."""

    name: str
    cuts: tuple[Cut, ...] = ()
    prescale: int = 1

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> TriggerPath:
        """Build from a TOML table ``{name, cuts = [...], prescale}``; ``where`` names the key."""
        unknown = set(data) - {"name", "cuts", "prescale"}
        if unknown:
            msg = f"{where}: unknown keys {sorted(unknown)} (allowed: name, cuts, prescale)"
            raise ConfigError(msg)
        name = str(data.get("name", where))
        prescale = data.get("prescale", 1)
        if not isinstance(prescale, int) or isinstance(prescale, bool) or prescale < 1:
            msg = f"{where}.prescale must be an integer >= 1, got {prescale!r}"
            raise ConfigError(msg)
        cuts = data.get("cuts", [])
        if isinstance(cuts, str) or not isinstance(cuts, Sequence):
            msg = f"{where}.cuts must be a list of strings like 'mass > 0.5', got {cuts!r}"
            raise ConfigError(msg)
        return cls(name, tuple(parse_cut(str(c)) for c in cuts), prescale)


@dataclass
class TriggerDecision:
    """Result of running the menu on one batch (boolean masks of the batch length)."""

    l1: np.ndarray
    hlt_raw: np.ndarray
    stored: np.ndarray
    train: np.ndarray


@numba.njit(cache=True, nogil=True)
def _apply_cut(ok: np.ndarray, x: np.ndarray, op: int, value: float) -> None:
    """``ok &= (x OP value)``, one tight loop per operator (vectorises)."""
    n = x.shape[0]
    if op == 0:
        for i in range(n):
            ok[i] &= x[i] > value
    elif op == 1:
        for i in range(n):
            ok[i] &= x[i] >= value
    elif op == 2:
        for i in range(n):
            ok[i] &= x[i] < value
    elif op == 3:
        for i in range(n):
            ok[i] &= x[i] <= value
    elif op == 4:
        for i in range(n):
            ok[i] &= x[i] == value
    else:
        for i in range(n):
            ok[i] &= x[i] != value


@numba.njit(cache=True, nogil=True)
def _run_menu(
    columns: tuple,  # tuple of (n_events,) float64 arrays, one per cut column
    n_events: int,
    cut_path: np.ndarray,  # (n_cuts,) int64: path index of each cut
    cut_column: np.ndarray,
    cut_op: np.ndarray,
    cut_value: np.ndarray,
    n_l1: int,
    n_paths: int,
    prescale: np.ndarray,  # (n_paths,)
    counter: np.ndarray,  # (n_paths,) in/out
    pass_raw: np.ndarray,  # (n_paths,) in/out counts before prescale
    pass_ps: np.ndarray,  # (n_paths,) in/out counts after prescale
    l1_out: np.ndarray,
    hlt_raw_out: np.ndarray,
    stored_out: np.ndarray,
) -> None:
    # Phase 1, cut-major: every path's cut mask in one pass per cut.
    ok = np.ones((n_paths, n_events), dtype=np.bool_)
    for c in range(cut_path.shape[0]):
        _apply_cut(ok[cut_path[c]], columns[cut_column[c]], cut_op[c], cut_value[c])
    # Phase 2, path-major: prescale counters (sequential within a path). The L1 and HLT
    # loops are kept apart on purpose: folding them into one gated helper measured ~8 %
    # slower (an extra gate load per event on the L1 side).
    no_l1 = n_l1 == 0
    for i in range(n_events):
        l1_out[i] = no_l1
        hlt_raw_out[i] = False
        stored_out[i] = False
    for p in range(n_l1):
        row = ok[p]
        c = counter[p]
        ps = prescale[p]
        raw = 0
        acc = 0
        for i in range(n_events):
            if row[i]:
                raw += 1
                c += 1
                if c >= ps:
                    c = 0
                    acc += 1
                    l1_out[i] = True
        counter[p] = c
        pass_raw[p] += raw
        pass_ps[p] += acc
    if n_paths == n_l1:
        for i in range(n_events):
            hlt_raw_out[i] = l1_out[i]
            stored_out[i] = l1_out[i]
        return
    for p in range(n_l1, n_paths):
        row = ok[p]
        c = counter[p]
        ps = prescale[p]
        raw = 0
        acc = 0
        for i in range(n_events):
            if row[i] and l1_out[i]:
                hlt_raw_out[i] = True
                raw += 1
                c += 1
                if c >= ps:
                    c = 0
                    acc += 1
                    stored_out[i] = True
        counter[p] = c
        pass_raw[p] += raw
        pass_ps[p] += acc


class TriggerMenu:
    """L1 and HLT paths with counters; vectorised over record batches.

    Args:
        l1: L1 paths (empty: L1 accepts everything).
        hlt: HLT paths (empty: every L1-accepted event is stored).
        mode: ``"l1"`` (train on L1-accepted) or ``"hlt"`` (train on HLT cuts before prescale).

    Example:
        >>> menu = TriggerMenu(hlt=[TriggerPath("HLT_m", (parse_cut("mass > 1"),), prescale=2)])
        >>> d = menu.run({"mass": np.array([0.5, 1.5, 2.0, 3.0])})
        >>> d.stored.tolist(), d.train.tolist()
        ([False, False, True, False], [True, True, True, True])
    """

    def __init__(self, l1: Sequence[TriggerPath] = (), hlt: Sequence[TriggerPath] = (), mode: str = "l1") -> None:
        if mode not in ("l1", "hlt"):
            msg = f"trigger.mode must be 'l1' or 'hlt', got {mode!r}"
            raise ConfigError(msg)
        self.l1 = tuple(l1)
        self.hlt = tuple(hlt)
        self.mode = mode
        paths = self.l1 + self.hlt
        names = [p.name for p in paths]
        if len(set(names)) != len(names):
            msg = f"trigger path names must be unique, got {names}"
            raise ConfigError(msg)
        self.columns = sorted({c.column for p in paths for c in p.cuts})
        col_index = {c: i for i, c in enumerate(self.columns)}
        cuts = [(pi, c) for pi, p in enumerate(paths) for c in p.cuts]
        self._cut_path = np.array([pi for pi, _ in cuts], dtype=np.int64)
        self._cut_column = np.array([col_index[c.column] for _, c in cuts], dtype=np.int64)
        self._cut_op = np.array([_OPS[c.op] for _, c in cuts], dtype=np.int64)
        self._cut_value = np.array([c.value for _, c in cuts], dtype=np.float64)
        self._prescale = np.array([p.prescale for p in paths], dtype=np.int64)
        self.counter = np.zeros(len(paths), dtype=np.int64)
        self.pass_raw = np.zeros(len(paths), dtype=np.int64)
        self.pass_prescaled = np.zeros(len(paths), dtype=np.int64)
        self.events_in = 0
        self.events_l1 = 0
        self.events_stored = 0
        self.events_train = 0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> TriggerMenu:
        """Build from the ``[trigger]`` TOML table (keys ``mode``, ``l1``, ``hlt``)."""
        unknown = set(data) - {"mode", "l1", "hlt"}
        if unknown:
            msg = f"trigger: unknown keys {sorted(unknown)} (allowed: mode, l1, hlt)"
            raise ConfigError(msg)
        l1 = [TriggerPath.from_mapping(p, f"trigger.l1[{i}]") for i, p in enumerate(data.get("l1", []))]
        hlt = [TriggerPath.from_mapping(p, f"trigger.hlt[{i}]") for i, p in enumerate(data.get("hlt", []))]
        return cls(l1, hlt, str(data.get("mode", "l1")))

    def __repr__(self) -> str:
        def fmt(p: TriggerPath) -> str:
            return f"{p.name}[{' && '.join(map(str, p.cuts)) or 'all'}; ps={p.prescale}]"

        return f"TriggerMenu(mode={self.mode!r}, l1={[fmt(p) for p in self.l1]}, hlt={[fmt(p) for p in self.hlt]})"

    def run(self, columns: Mapping[str, np.ndarray]) -> TriggerDecision:
        """Run the menu on one batch of columns (all of equal length); updates counters.

        Raises:
            ValueError: a column the menu cuts on is missing (names it and the ones present).
        """
        n = len(next(iter(columns.values()))) if columns else 0
        missing = [c for c in self.columns if c not in columns]
        if missing:
            msg = f"trigger cuts on columns {missing} that the stream lacks (stream columns: {sorted(columns)})"
            raise ValueError(msg)
        data = tuple(np.ascontiguousarray(columns[c], dtype=np.float64) for c in self.columns) or (np.empty(0),)
        l1 = np.empty(n, dtype=np.bool_)
        raw = np.empty(n, dtype=np.bool_)
        stored = np.empty(n, dtype=np.bool_)
        _run_menu(
            data, n, self._cut_path, self._cut_column, self._cut_op, self._cut_value, len(self.l1),
            len(self.l1) + len(self.hlt), self._prescale, self.counter, self.pass_raw,
            self.pass_prescaled, l1, raw, stored,
        )
        train = l1 if self.mode == "l1" else raw
        self.events_in += n
        self.events_l1 += int(l1.sum())
        self.events_stored += int(stored.sum())
        self.events_train += int(train.sum())
        return TriggerDecision(l1, raw, stored, train)

    def counters(self) -> dict[str, Any]:
        """Per-path counts (before and after prescale) and totals, JSON-ready."""
        paths = self.l1 + self.hlt
        return {
            "events_in": self.events_in,
            "events_l1": self.events_l1,
            "events_stored": self.events_stored,
            "events_train": self.events_train,
            "paths": {
                p.name: {
                    "level": "L1" if i < len(self.l1) else "HLT",
                    "prescale": p.prescale,
                    "passed_cuts": int(self.pass_raw[i]),
                    "accepted": int(self.pass_prescaled[i]),
                    "counter": int(self.counter[i]),
                }
                for i, p in enumerate(paths)
            },
        }

    def restore_counters(self, data: Mapping[str, Any]) -> None:
        """Restore counters written by :meth:`counters` (resume from a snapshot)."""
        for key in ("events_in", "events_l1", "events_stored", "events_train"):
            setattr(self, key, int(data.get(key, 0)))
        stored_paths = data.get("paths", {})
        for i, p in enumerate(self.l1 + self.hlt):
            if p.name in stored_paths:
                entry = stored_paths[p.name]
                self.pass_raw[i] = entry["passed_cuts"]
                self.pass_prescaled[i] = entry["accepted"]
                self.counter[i] = entry["counter"]

    def state(self) -> TriggerState:
        """A cheap copy of every counter (prescale counters and totals), for :meth:`counters_after`."""
        return (self.counter.copy(), self.pass_raw.copy(), self.pass_prescaled.copy(), self.events_in,
                self.events_l1, self.events_stored, self.events_train)

    def _set_state(self, state: TriggerState) -> None:
        counter, raw, accepted, self.events_in, self.events_l1, self.events_stored, self.events_train = state
        self.counter[:] = counter
        self.pass_raw[:] = raw
        self.pass_prescaled[:] = accepted

    def counters_after(
        self, state: TriggerState, columns: Mapping[str, np.ndarray], rows: int,
    ) -> dict[str, Any]:
        """:meth:`counters` as they stood after the first ``rows`` events of ``columns``, had
        the menu run on them from ``state``; the menu's own counters are left unchanged."""
        current = self.state()
        self._set_state(state)
        self.run({c: v[:rows] for c, v in columns.items()})
        result = self.counters()
        self._set_state(current)
        return result

    def rates(self, seconds: float) -> dict[str, float]:
        """Accepted events per second per path over ``seconds`` of stream time."""
        paths = self.l1 + self.hlt
        return {p.name: float(self.pass_prescaled[i]) / max(seconds, 1e-12) for i, p in enumerate(paths)}
