"""Statistics and determinism of the parametric reference shower simulator."""

from __future__ import annotations

import numpy as np
import pytest

from stream.showers.geometry import AHCAL, ECAL, Geometry, get_geometry
from stream.showers.simulator import sample_energies, simulate


@pytest.fixture(scope="module")
def ecal_fixed() -> dict[float, np.ndarray]:
    return {e: simulate("ecal", np.full(300, e), seed=11) for e in (10.0, 40.0, 100.0)}


def _weighted_visible(showers: np.ndarray, geometry: Geometry) -> np.ndarray:
    return (showers.sum(axis=(2, 3), dtype=np.float64) * geometry.layer_weights()).sum(axis=1)


def test_shape_dtype_and_geometry_lookup() -> None:
    showers = simulate("ecal", np.array([10.0, 90.0]), seed=0)
    assert showers.shape == (2, 30, 30, 30)
    assert showers.dtype == np.float32
    assert (showers >= 0).all()
    assert simulate(AHCAL, np.array([20.0]), seed=0).shape == (1, 48, 25, 25)
    assert get_geometry("ECAL") is ECAL
    with pytest.raises(ValueError, match="unknown shower geometry"):
        get_geometry("tile")


def test_same_seed_same_output_different_seed_different() -> None:
    energies = np.array([15.0, 60.0, 95.0])
    a = simulate("ecal", energies, seed=5)
    np.testing.assert_array_equal(a, simulate("ecal", energies, seed=5))
    assert not np.array_equal(a, simulate("ecal", energies, seed=6))
    h = simulate("ahcal", energies, seed=5)
    np.testing.assert_array_equal(h, simulate("ahcal", energies, seed=5))
    assert not np.array_equal(h, simulate("ahcal", energies, seed=6))


def test_events_do_not_depend_on_batching() -> None:
    energies = np.array([12.0, 34.0, 56.0, 78.0])
    whole = simulate("ecal", energies, seed=3)
    tail = simulate("ecal", energies[2:], seed=3, first_event=2)
    np.testing.assert_array_equal(whole[2:], tail)
    e1 = sample_energies(3, 0, 10, 10.0, 100.0)
    np.testing.assert_array_equal(e1[4:], sample_energies(3, 4, 6, 10.0, 100.0))


def test_bad_energies_are_refused() -> None:
    with pytest.raises(ValueError, match="energies_gev"):
        simulate("ecal", np.array([[10.0]]), seed=0)
    with pytest.raises(ValueError, match="finite and > 0"):
        simulate("ecal", np.array([10.0, -1.0]), seed=0)


def test_ecal_visible_energy_linear_and_resolution_falls(
    ecal_fixed: dict[float, np.ndarray],
) -> None:
    means, resolutions = [], []
    for energy, showers in ecal_fixed.items():
        visible = _weighted_visible(showers, ECAL)
        means.append(visible.mean() / energy)
        resolutions.append(visible.std() / visible.mean())
    response = np.array(means)
    assert np.all(np.abs(response / response.mean() - 1) < 0.04), response
    assert resolutions[0] > resolutions[1] > resolutions[2], resolutions
    # Stochastic term: sigma/E * sqrt(E) roughly constant at low energy (10-30 %/sqrt(E)).
    assert 0.05 < resolutions[0] * np.sqrt(10.0) < 0.35


def test_ecal_mip_peak_and_hits(ecal_fixed: dict[float, np.ndarray]) -> None:
    cells = ecal_fixed[40.0]
    values = cells[cells > 0]
    hist, edges = np.histogram(values, bins=np.arange(0.05, 1.0, 0.01))
    peak = 0.5 * (edges[np.argmax(hist)] + edges[np.argmax(hist) + 1])
    assert abs(peak - ECAL.mip_mev) < 0.1 * ECAL.mip_mev, peak
    hits = [(s > ECAL.threshold_mev).sum(axis=(1, 2, 3)).mean() for s in ecal_fixed.values()]
    assert hits[0] < hits[1] < hits[2]


def test_ecal_shower_max_deepens_with_energy(ecal_fixed: dict[float, np.ndarray]) -> None:
    depth = np.arange(ECAL.n_layers)
    cog = [
        ((s.sum(axis=(2, 3)) * depth).sum(1) / s.sum(axis=(1, 2, 3))).mean()
        for s in ecal_fixed.values()
    ]
    assert cog[0] < cog[1] < cog[2]


def test_ahcal_response_mip_peak_and_tracks() -> None:
    energies = np.repeat([10.0, 80.0], 200)
    showers = simulate("ahcal", energies, seed=2)
    visible = showers.sum(axis=(1, 2, 3), dtype=np.float64)
    low, high = np.median(visible[:200]) / 10.0, np.median(visible[200:]) / 80.0
    assert abs(low / high - 1) < 0.15, (low, high)
    values = showers[showers > 0]
    hist, edges = np.histogram(values, bins=np.arange(0.1, 2.0, 0.02))
    peak = 0.5 * (edges[np.argmax(hist)] + edges[np.argmax(hist) + 1])
    assert abs(peak - AHCAL.mip_mev) < 0.1 * AHCAL.mip_mev, peak
    # The first layer of most showers holds a single MIP on the axis (shower starts later).
    first = showers[:, 0]
    assert np.mean((first > 0).sum(axis=(1, 2)) == 1) > 0.5
    assert first[:, 12, 12].mean() > 0.5 * AHCAL.mip_mev


def test_output_buffer_and_geometry_metadata() -> None:
    buffer = np.full((2, 30, 30, 30), 7.0, dtype=np.float32)
    result = simulate("ecal", np.array([20.0, 30.0]), seed=1, out=buffer)
    assert result is buffer
    np.testing.assert_array_equal(buffer, simulate("ecal", np.array([20.0, 30.0]), seed=1))
    with pytest.raises(ValueError, match="out must be"):
        simulate("ecal", np.array([20.0]), seed=1, out=np.zeros((1, 30, 30, 29), np.float32))
    assert Geometry.from_metadata(AHCAL.to_metadata()) == AHCAL
    assert Geometry.from_metadata({b"geometry": b"ecal"}) is ECAL
    with pytest.raises(ValueError, match="one per layer"):
        Geometry(**{**ECAL.__dict__, "absorber_thickness_mm": (2.1,)})


def test_plots_cli_writes_pngs(tmp_path) -> None:  # noqa: ANN001
    from stream.showers.plots import main

    assert main(["--out", str(tmp_path), "--showers", "20"]) == 0
    assert (tmp_path / "ecal_cell_spectrum.png").exists()
    assert (tmp_path / "ahcal_linearity_resolution.png").exists()


def test_cells_below_the_mip_peak_exercise_the_threshold() -> None:
    # Charge sharing between cells puts deposits between 0 and 0.8 MIP (was: none below 0.159 MeV).
    showers = simulate("ecal", np.full(100, 40.0), seed=4)
    cells = showers[showers > 0]
    assert 0.005 < np.mean(cells < 0.5 * ECAL.mip_mev) < 0.1
    assert np.mean((cells >= 0.5 * ECAL.mip_mev) & (cells < 0.8 * ECAL.mip_mev)) > 0.01


def _layer_cog_x(showers: np.ndarray) -> np.ndarray:
    x = np.arange(showers.shape[2]) + 0.5
    energy = showers.sum(axis=3)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (energy * x).sum(axis=2) / energy.sum(axis=2)


def test_structure_across_layers_and_impact_smearing() -> None:
    from stream.showers.parameters import EMShowerParameters

    energies = np.full(400, 50.0)
    rich = simulate("ecal", energies, seed=8)
    flat = simulate("ecal", energies, seed=8, em_parameters=EMShowerParameters().without_structure())
    cog_rich, cog_flat = _layer_cog_x(rich), _layer_cog_x(flat)
    # Per-shower deviation of the layer CoG from the shower's mean CoG, layers 5-14:
    # the wandering core and continuing tracks correlate neighbouring layers.
    def neighbour_correlation(cog: np.ndarray) -> float:
        d = cog[:, 5:15] - np.nanmean(cog[:, 5:15], axis=1, keepdims=True)
        a, b = d[:, :-1].ravel(), d[:, 1:].ravel()
        ok = np.isfinite(a) & np.isfinite(b)
        return float(np.corrcoef(a[ok], b[ok])[0, 1])

    assert neighbour_correlation(cog_rich) > neighbour_correlation(cog_flat) + 0.1
    # The impact point is spread over one 5 mm cell: shower CoG x spreads by ~1/sqrt(12) cell.
    total_x = np.nanmean(cog_rich[:, 3:20], axis=1)
    assert 0.25 < np.std(total_x) < 0.8
    assert np.std(np.nanmean(cog_flat[:, 3:20], axis=1)) < 0.2
