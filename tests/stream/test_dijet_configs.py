"""configs/dijet*.toml: the study's trigger path, features and flow, and they build."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.config import load_config
from emulator.trigger import TriggerMenu
from stream.jets.features import DIJET_FEATURES

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("dijet*.toml"))


def test_there_are_four_dijet_configs() -> None:
    names = [p.name for p in CONFIGS]
    assert names == ["dijet-parquet.toml", "dijet-sample.toml", "dijet-spline-parquet.toml", "dijet.toml"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_dijet_config_trains_one_flow_on_the_five_features(path: Path) -> None:
    from models.registry import build_model

    config = load_config(path)
    params = dict(config.model.hyperparameters)
    assert params["columns"] == list(DIJET_FEATURES)
    assert "is_signal" not in params["columns"]
    assert (params["noise_dims"], params["n_members"], params["hidden_features"]) == (5, 1, 128)
    # the paper's 10 affine blocks, or the chosen 5 spline blocks (docs/dijet.md)
    assert (params["n_blocks"], params.get("transform", "affine")) in ((10, "affine"), (5, "rq_spline"))
    assert config.buffer.batch_size == 250
    menu = TriggerMenu.from_mapping(config.trigger)
    assert menu.mode == "hlt"
    assert [str(c) for path_ in menu.hlt for c in path_.cuts] == ["pt_lead > 1200"]
    model = build_model("onlineflow", {**params, "n_blocks": 1})
    assert model.features == 10
    if path.name != "dijet-sample.toml":
        assert config.buffer.size == 10_000
        assert config.source.events == 300_000
