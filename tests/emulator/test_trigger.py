"""Trigger menu: exact counts on a known sample, prescales, config errors."""

from __future__ import annotations

import numpy as np
import pytest

from emulator.errors import ConfigError
from emulator.trigger import TriggerMenu, TriggerPath, parse_cut


def _menu(mode: str = "l1") -> TriggerMenu:
    return TriggerMenu.from_mapping({
        "mode": mode,
        "l1": [{"name": "L1_m", "cuts": ["m > 1"], "prescale": 1}, {"name": "L1_x", "cuts": ["x >= 5"], "prescale": 3}],
        "hlt": [{"name": "HLT_m2", "cuts": ["m > 2", "x < 8"], "prescale": 2}],
    })


def test_counts_exact_on_known_sample() -> None:
    m = np.arange(10, dtype=float)  # 0..9
    x = np.arange(10, dtype=float)[::-1]  # 9..0
    menu = _menu()
    d = menu.run({"m": m, "x": x})
    # L1_m: m > 1 -> events 2..9 (8). L1_x: x >= 5 -> events 0..4 (5), every 3rd: events 2 (3rd).
    # Wait: x >= 5 for events 0..4; prescale 3 accepts the 3rd -> event 2.
    assert menu.counters()["paths"]["L1_m"] == {"level": "L1", "prescale": 1, "passed_cuts": 8, "accepted": 8, "counter": 0}
    assert menu.counters()["paths"]["L1_x"]["passed_cuts"] == 5
    assert menu.counters()["paths"]["L1_x"]["accepted"] == 1
    expected_l1 = (m > 1) | (np.arange(10) == 2)
    np.testing.assert_array_equal(d.l1, expected_l1)
    # HLT: m > 2 and x < 8 among L1 -> events 3..9 (x = 6..0 < 8) -> 7 raw, prescale 2 -> 4th,6th,8th..: events 4,6,8
    raw = expected_l1 & (m > 2) & (x < 8)
    np.testing.assert_array_equal(d.hlt_raw, raw)
    np.testing.assert_array_equal(np.flatnonzero(d.stored), [4, 6, 8])
    np.testing.assert_array_equal(d.train, d.l1)
    assert menu.events_in == 10
    assert menu.events_stored == 3


def test_prescale_counter_persists_across_batches() -> None:
    menu = TriggerMenu(hlt=[TriggerPath("HLT", (), prescale=4)])
    total = 0
    rng = np.random.default_rng(1)
    for size in rng.integers(1, 50, size=40):
        total += int(menu.run({"a": np.zeros(size)}).stored.sum())
    n = menu.events_in
    assert total == n // 4
    one = TriggerMenu(hlt=[TriggerPath("HLT", (), prescale=4)])
    assert int(one.run({"a": np.zeros(n)}).stored.sum()) == total


def test_hlt_mode_trains_before_prescale() -> None:
    menu = _menu("hlt")
    m = np.arange(10, dtype=float)
    d = menu.run({"m": m, "x": m[::-1].copy()})
    np.testing.assert_array_equal(d.train, d.hlt_raw)
    assert d.train.sum() > d.stored.sum()


def test_restore_counters_round_trip() -> None:
    a = _menu()
    data = {"m": np.linspace(0, 10, 101), "x": np.linspace(10, 0, 101)}
    a.run(data)
    b = _menu()
    b.restore_counters(a.counters())
    np.testing.assert_array_equal(a.run(data).stored, b.run(data).stored)
    assert a.counters() == b.counters()


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ({"mode": "both"}, "trigger.mode"),
        ({"hlt": [{"name": "h", "prescale": 0}]}, "trigger.hlt[0].prescale"),
        ({"l1": [{"cuts": ["mass >> 3"]}]}, "mass >> 3"),
        ({"l1": [{"cutz": []}]}, "trigger.l1[0]: unknown keys"),
        ({"hlt": [{"name": "a"}, {"name": "a"}]}, "unique"),
    ],
)
def test_bad_config_names_the_key(table: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        TriggerMenu.from_mapping(table)


def test_missing_column_is_named() -> None:
    menu = TriggerMenu(l1=[TriggerPath("L1", (parse_cut("pt > 3"),))])
    with pytest.raises(ValueError, match="'pt'"):
        menu.run({"mass": np.ones(3)})


def test_counters_after_a_prefix_match_a_menu_that_saw_only_the_prefix() -> None:
    data = {"m": np.linspace(0, 10, 101), "x": np.linspace(10, 0, 101)}
    menu, prefix_only = _menu(), _menu()
    menu.run(data)
    prefix_only.run(data)
    before = menu.state()
    menu.run(data)
    prefix_only.run({c: v[:37] for c, v in data.items()})
    after_whole = menu.counters()
    assert menu.counters_after(before, data, 37) == prefix_only.counters()
    assert menu.counters() == after_whole  # the menu's own counters are untouched
