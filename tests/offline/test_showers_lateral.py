"""The per-layer lateral diagnosis: known core wander, width and layer-to-layer following."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from offline.showers.lateral import lateral_profile, main


def _showers(n: int, layers: int, follow: bool, rng: np.random.Generator) -> np.ndarray:
    """Each layer: 2 MeV in the core cell and 1 MeV in each x-neighbour; the core column wanders."""
    s = np.zeros((n, layers, 10, 10))
    start = rng.integers(2, 8, n)
    for layer in range(layers):
        core = start if follow else rng.integers(2, 8, n)
        s[np.arange(n), layer, core, 5] = 2.0
        s[np.arange(n), layer, core - 1, 5] = 1.0
        s[np.arange(n), layer, core + 1, 5] = 1.0
    s[:, :, 0, 0] = 0.05  # below the 0.1 MeV threshold: ignored
    return s


def test_known_wander_width_and_following() -> None:
    rng = np.random.default_rng(3)
    p = lateral_profile(_showers(4000, 4, True, rng))
    # core uniform over 6 cells: std sqrt(35/12); width sqrt(2/4) = 0.707 cells; 3 hits; core share 1/2
    np.testing.assert_allclose(p["cog_x_std"], np.sqrt(35 / 12), rtol=0.03)
    np.testing.assert_allclose(p["width_x"], np.sqrt(0.5), rtol=1e-9)
    np.testing.assert_allclose(p["hits"], 3.0)
    np.testing.assert_allclose(p["core_fraction"], 0.5)
    np.testing.assert_allclose(p["cog_x_follow"][:-1], 1.0, atol=1e-9)
    assert np.isnan(p["cog_x_follow"][-1])
    independent = lateral_profile(_showers(4000, 4, False, rng))
    assert np.all(np.abs(independent["cog_x_follow"][:-1]) < 0.06)  # 4000 showers: sigma about 0.016


def test_bad_input_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match=r"\(N >= 2, L, X, Y\)"):
        lateral_profile(np.zeros((5, 10, 10)))
    assert main(["--snapshot", str(tmp_path / "missing")]) == 2
    assert "error:" in capsys.readouterr().err
