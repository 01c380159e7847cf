"""Shower observables: numba kernel equals the numpy reference; hand-checked values."""

from __future__ import annotations

import numpy as np
import pytest

from offline.showers.errors import ShowerDataError
from offline.showers.hit_spectrum import hit_energy_histogram
from offline.showers.observables import (
    SCALAR_OBSERVABLES,
    compute_observables,
    default_start_threshold,
    transverse_coordinates,
)
from offline.showers.observables_numpy import compute_observables_numpy, hit_energy_histogram_numpy
from offline.showers.toy import toy_showers

FIELDS = (
    "visible_energy",
    "n_hits",
    "center_of_gravity",
    "width",
    "longitudinal_profile",
    "radial_profile",
    "shower_start",
    "depth_fractions",
)


def assert_same(fast, slow) -> None:  # noqa: ANN001
    for name in FIELDS:
        a, b = getattr(fast, name), getattr(slow, name)
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9, err_msg=name)


@pytest.mark.parametrize(
    ("grid", "threshold"),
    [((12, 10, 10), 0.1), ((30, 30, 30), 0.1), ((7, 9, 5), 0.5), ((12, 10, 10), 0.0)],
)
def test_numba_equals_numpy_on_toy_showers(grid: tuple[int, int, int], threshold: float) -> None:
    energies = np.random.default_rng(1).uniform(5, 100, 300)
    showers = toy_showers(energies, seed=2, grid_shape=grid)
    assert_same(
        compute_observables(showers, threshold),
        compute_observables_numpy(showers, threshold, chunk_size=64),
    )


def test_numba_equals_numpy_on_random_dense_float64() -> None:
    rng = np.random.default_rng(3)
    showers = rng.exponential(0.3, (50, 6, 8, 8)) * (rng.random((50, 6, 8, 8)) < 0.4)
    showers[0] = 0.0  # one empty shower
    kwargs = {
        "start_threshold_mev": 1.0,
        "sustain_layers": 2,
        "n_radial_bins": 5,
        "radial_bin_width": 1.5,
    }
    assert_same(
        compute_observables(showers, 0.2, **kwargs),
        compute_observables_numpy(showers, 0.2, **kwargs),
    )


def test_simulator_showers_agree_when_available() -> None:
    simulator = pytest.importorskip("stream.showers.simulator")
    geometry = pytest.importorskip("stream.showers.geometry").get_geometry("ahcal")
    showers = simulator.simulate(geometry, np.array([10.0, 50.0, 90.0]), seed=4)
    assert_same(
        compute_observables(showers, geometry.threshold_mev),
        compute_observables_numpy(showers, geometry.threshold_mev),
    )


def test_hand_made_shower() -> None:
    showers = np.zeros((1, 6, 4, 4), np.float32)
    showers[0, 1, 0, 0] = 0.05  # below threshold: ignored everywhere
    showers[0, 2, 1, 1] = 3.0
    showers[0, 4, 3, 1] = 1.0
    obs = compute_observables(showers, threshold_mev=0.1, start_threshold_mev=0.5, sustain_layers=1)
    x = transverse_coordinates(4)
    assert obs.visible_energy[0] == pytest.approx(4.0)
    assert obs.n_hits[0] == 2
    cog = (3.0 * np.array([x[1], x[1], 2.0]) + 1.0 * np.array([x[3], x[1], 4.0])) / 4.0
    np.testing.assert_allclose(obs.center_of_gravity[0], cog)
    width_z = np.sqrt((3.0 * (2 - cog[2]) ** 2 + 1.0 * (4 - cog[2]) ** 2) / 4.0)
    np.testing.assert_allclose(obs.width[0], [np.sqrt(0.75), 0.0, width_z])
    np.testing.assert_allclose(obs.longitudinal_profile[0], [0, 0, 3, 0, 1, 0])
    assert obs.shower_start[0] == 2
    np.testing.assert_allclose(obs.depth_fractions[0], [0.0, 0.75, 0.25])
    # Radial: distances from the cog (x = 0, y = -0.5) are 0.5 (energy 3) and 1.5 (energy 1).
    assert obs.radial_profile[0, :2].tolist() == pytest.approx([3.0, 1.0])
    assert obs.radial_profile[0].sum() == pytest.approx(4.0)


def test_shower_start_needs_a_sustained_rise() -> None:
    showers = np.zeros((1, 8, 1, 1), np.float32)
    showers[0, :, 0, 0] = [0.2, 5.0, 0.2, 5.0, 5.0, 5.0, 0.2, 0.2]
    obs = compute_observables(showers, threshold_mev=0.1, start_threshold_mev=1.0, sustain_layers=3)
    assert obs.shower_start[0] == 3
    never = compute_observables(showers, threshold_mev=0.1, start_threshold_mev=10.0)
    assert never.shower_start[0] == 8
    assert default_start_threshold(0.1) == pytest.approx(0.8)


def test_empty_shower_conventions() -> None:
    obs = compute_observables(np.zeros((2, 3, 4, 4), np.float32), threshold_mev=0.1)
    assert np.all(obs.visible_energy == 0)
    assert np.all(obs.n_hits == 0)
    assert np.all(obs.center_of_gravity == 0)
    assert np.all(obs.width == 0)
    assert np.all(obs.shower_start == 3)
    assert np.all(obs.depth_fractions == 0)


def test_scalars_and_subset() -> None:
    obs = compute_observables(toy_showers(np.array([10.0, 20.0, 30.0]), seed=1), 0.1)
    scalars = obs.scalars()
    assert list(scalars) == list(SCALAR_OBSERVABLES)
    assert all(v.shape == (3,) for v in scalars.values())
    sub = obs.subset(np.array([2, 0]))
    assert sub.visible_energy.tolist() == [obs.visible_energy[2], obs.visible_energy[0]]


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ShowerDataError, match=r"shape \(N, layers, x, y\)"):
        compute_observables(np.zeros((3, 4, 4), np.float32), 0.1)
    with pytest.raises(ShowerDataError, match="dtype"):
        compute_observables(np.zeros((1, 3, 4, 4), np.int32), 0.1)
    bad = np.zeros((3, 2, 2, 2), np.float32)
    bad[1, 0, 0, 0] = np.nan
    with pytest.raises(ShowerDataError, match="first at index 1"):
        compute_observables(bad, 0.1)
    with pytest.raises(ShowerDataError, match="first at index 1"):
        compute_observables_numpy(bad, 0.1)
    with pytest.raises(ValueError, match="threshold_mev"):
        compute_observables(np.zeros((1, 2, 2, 2), np.float32), -1.0)


def test_hit_spectrum_numba_equals_numpy() -> None:
    showers = toy_showers(np.random.default_rng(0).uniform(10, 90, 200), seed=5)
    edges = np.geomspace(0.1, 200.0, 41)
    fast = hit_energy_histogram(showers, edges, 0.1)
    np.testing.assert_array_equal(fast, hit_energy_histogram_numpy(showers, edges, 0.1))
    assert fast.sum() > 0
    with pytest.raises(ValueError, match="strictly increasing"):
        hit_energy_histogram(showers, np.array([1.0, 1.0]), 0.1)
