"""Closing the loop of arXiv 2202.09375, Fig. 9.1, on the toy: found window → trigger path.

Run 1 stores every 8th event; the bump hunt proposes its window as an HLT path; run 2,
with that path appended to the same configuration, stores every event of the window
(and still every 8th outside), so the data significance in the window rises by about
√8.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from emulator.config import load_config
from emulator.run import run_training
from emulator.snapshot import read_manifest
from emulator.trigger import TriggerPath
from offline.bumphunt.cli import main
from offline.bumphunt.data import read_stored_events
from offline.bumphunt.propose import propose_trigger_path, trigger_toml, window_significance
from stream.generators.toy import CHUNK, ToySpectrumConfig, toy_spectrum_chunk

EVENTS = 200_000
PRESCALE = 8
CONFIG = f"""
seed = 4
device = "cpu"

[source]
spec = "toy"
events = {EVENTS}

[toy]
signal_fraction = 0.02

[trigger]
mode = "l1"
[[trigger.hlt]]
name = "HLT_prescaled"
cuts = []
prescale = {PRESCALE}

[buffer]
size = 10000
batch_size = 500
n_iter = 1

[model]
kind = "onlineflow"
[model.hyperparameters]
columns = ["mass"]
log_columns = ["mass"]
noise_dims = 1
n_members = 4
n_blocks = 1
hidden_features = 8

[snapshot]
every_buffers = 10
store_events = true
"""


def _stream_masses(manifest: dict) -> np.ndarray:
    """The toy stream of the run (float32 masses, as the trigger saw them)."""
    identity = manifest.get("data_identity") or {}
    seed = identity.get("seed")
    seed = manifest["config"]["seed"] if seed is None else seed
    toy = ToySpectrumConfig(seed=int(seed), signal_fraction=0.02)
    chunks = [toy_spectrum_chunk(toy, k)[0] for k in range(-(-EVENTS // CHUNK))]
    return np.concatenate(chunks)[:EVENTS].astype(np.float64)


def test_proposed_path_is_read_by_the_run_configuration() -> None:
    path = propose_trigger_path((0.8, 1.2), origin="runs/t5")
    data = tomllib.loads(trigger_toml([path]))
    (table,) = data["trigger"]["hlt"]
    parsed = TriggerPath.from_mapping(table, "trigger.hlt[0]")
    assert parsed.prescale == 1
    assert parsed.name == "HLT_bumphunt_t5_mass_0p8_1p2"
    assert [str(c) for c in parsed.cuts] == ["mass >= 0.8", "mass < 1.2"]


def test_second_run_stores_the_window_at_full_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "run1.toml"
    config.write_text(CONFIG)
    run_training(load_config(config), tmp_path / "run1", fresh=True, progress=False)
    proposal = tmp_path / "window.toml"
    args = ["--samples", "20000", "--chunk-size", "20000", "--pseudo", "50", "--fit-order", "3"]
    code = main(
        [str(tmp_path / "run1"), "--propose-trigger", str(proposal), "--propose-from", "data",
         "--no-plots", "--no-progress", "--json", *args]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    window = report["proposed_trigger"]["cuts"]
    low, high = report["data"]["1"]["window"]
    assert window == [f"mass >= {low!r}", f"mass < {high!r}"]
    assert low <= 1.0 <= high  # the 2 % bump at m = 1

    second = tmp_path / "run2.toml"
    second.write_text(CONFIG + "\n" + proposal.read_text())
    assert len(load_config(second).trigger["hlt"]) == 2
    run_training(load_config(second), tmp_path / "run2", fresh=True, progress=False)

    stream = _stream_masses(read_manifest(tmp_path / "run1"))
    in_window = (stream >= low) & (stream < high)
    first = read_stored_events(tmp_path / "run1" / "stored_events")["mass"]
    stored = read_stored_events(tmp_path / "run2" / "stored_events")["mass"]
    stored_in = (stored >= low) & (stored < high)
    # every event of the window is stored in run 2, without prescale ...
    assert int(stored_in.sum()) == int(in_window.sum())
    # ... while outside it the other path's prescale still applies (its counter runs over
    # every event, so outside the window about 1 in 8, within 5 binomial errors)
    outside = int((~in_window).sum()) / PRESCALE
    assert abs(int((~stored_in).sum()) - outside) < 5 * math.sqrt(outside)
    assert abs(int(((first >= low) & (first < high)).sum()) - in_window.sum() / PRESCALE) < 5 * math.sqrt(
        in_window.sum() / PRESCALE
    )

    before = window_significance(first, (low, high), fit_order=3)
    after = window_significance(stored, (low, high), sideband_scale=PRESCALE, fit_order=3)
    assert before.fit_valid
    assert after.fit_valid
    assert before.significance > 3
    # S/√B grows with √(rate) in the window: √8 ≈ 2.83, within the statistical error of
    # the prescaled measurement (about 1/S_before relative, S_before ≈ 10)
    ratio = after.significance / before.significance
    assert ratio == pytest.approx(math.sqrt(PRESCALE), rel=0.25), (before, after)
