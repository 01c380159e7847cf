"""The one registry helper behind sources, model kinds and shower generators."""

from __future__ import annotations

import pytest

from common.registry import Registry


def test_decorator_lazy_entries_and_plugins_share_one_table() -> None:
    table: Registry = Registry("colour", error=LookupError, plugins=("json",))
    table.add_lazy("dumps", "json:dumps")

    @table.register("red")
    def red() -> str:
        return "#f00"

    assert table.names() == ["dumps", "red"]
    assert table.get("red")() == "#f00"
    assert table.get("dumps")([1]) == "[1]"
    assert "red" in table
    assert "blue" not in table


def test_unknown_name_lists_the_known_ones_and_the_closest() -> None:
    table: Registry = Registry("source kind", error=LookupError)
    table.add("parquet", lambda: None)
    table.add("toy", lambda: None)
    with pytest.raises(LookupError, match=r"unknown source kind 'parquat' \(did you mean 'parquet'\?\); known: parquet, toy"):
        table.get("parquat")
    with pytest.raises(ValueError, match="non-empty words"):
        table.add("a b", lambda: None)


def test_missing_optional_plugin_is_skipped_but_a_broken_one_raises() -> None:
    assert Registry("x", plugins=("no_such_package.plugin",)).names() == []


def test_the_three_project_registries_use_it() -> None:
    from models.registry import MODELS
    from offline.showers.registry import GENERATORS
    from stream.sources import SOURCES

    assert {"toy", "parquet", "showers"} <= set(SOURCES.names())
    assert "onlineflow" in MODELS.names()
    assert "reference" in GENERATORS.names()
