"""Jet masses, m_jj and N-subjettiness on constructed events, against hand calculations."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("fastjet")

from stream.jets import dijet_features, n_subjettiness, tau_ratio  # noqa: E402
from stream.jets.clustering import cluster_leading_jets, exclusive_kt_axes  # noqa: E402
from stream.jets.kinematics import four_momenta  # noqa: E402


def _event(*particles: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arr = np.array(particles, dtype=np.float64)
    return arr[:, 0], arr[:, 1], arr[:, 2]


def _flatten(events: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    pt = np.concatenate([e[0] for e in events])
    eta = np.concatenate([e[1] for e in events])
    phi = np.concatenate([e[2] for e in events])
    return pt, eta, phi, np.array([e[0].size for e in events])


def _mass_of(particles: list[tuple[float, float, float]]) -> float:
    """Invariant mass written out by hand: E = pT cosh η, pz = pT sinh η."""
    e = sum(p * math.cosh(h) for p, h, _ in particles)
    px = sum(p * math.cos(f) for p, _, f in particles)
    py = sum(p * math.sin(f) for p, _, f in particles)
    pz = sum(p * math.sinh(h) for p, h, _ in particles)
    return math.sqrt(e * e - px * px - py * py - pz * pz)


def test_two_particle_jet_mass_matches_formula() -> None:
    # m^2 = 2 pT1 pT2 (cosh dEta - cos dPhi) for massless particles.
    features = dijet_features(*_flatten([_event((100.0, 0.0, 0.0), (100.0, 0.0, 0.2))]))
    expected = math.sqrt(2 * 100 * 100 * (1 - math.cos(0.2)))
    assert expected == pytest.approx(19.9667, abs=1e-4)
    assert features["mj1"][0] == pytest.approx(expected, rel=1e-9)
    assert features["mjj"][0] == pytest.approx(expected, rel=1e-9)  # one jet: mjj is its mass
    assert features["delta_mj"][0] == pytest.approx(expected, rel=1e-9)
    assert features["pt_lead"][0] == pytest.approx(200 * math.cos(0.1), rel=1e-9)


def test_dijet_masses_order_and_mjj() -> None:
    jet_a = [(600.0, 0.5, 0.0), (500.0, 0.6, 0.3)]
    jet_b = [(700.0, -0.4, 3.0), (400.0, -0.1, -2.9)]
    soft_far = [(5.0, 3.5, 1.5)]  # a third, softer jet: not among the two leading
    pt, eta, phi, counts = _flatten([_event(*jet_a, *jet_b, *soft_far)])
    features = dijet_features(pt, eta, phi, counts)
    m_a, m_b = _mass_of(jet_a), _mass_of(jet_b)
    heavy, light = max(m_a, m_b), min(m_a, m_b)
    assert heavy == pytest.approx(_mass_of(jet_b))
    assert features["mj1"][0] == pytest.approx(heavy, rel=1e-9)
    assert features["delta_mj"][0] == pytest.approx(heavy - light, rel=1e-9)
    assert features["mjj"][0] == pytest.approx(_mass_of(jet_a + jet_b), rel=1e-9)
    assert features["mjj"][0] == pytest.approx(2404.30, abs=0.01)
    assert features["pt_lead"][0] == pytest.approx(
        math.hypot(600 + 500 * math.cos(0.3), 500 * math.sin(0.3)), rel=1e-9
    )


def test_n_subjettiness_three_particles_by_hand() -> None:
    # At y = 0 the axes are easy: kT merges the soft c into b first.
    a, b, c = (100.0, 0.0, 0.0), (100.0, 0.0, 0.5), (1.0, 0.0, 0.52)
    features = dijet_features(*_flatten([_event(a, b, c)]))
    phi_bc = math.atan2(100 * math.sin(0.5) + math.sin(0.52), 100 * math.cos(0.5) + math.cos(0.52))
    tau2 = (100 * abs(0.5 - phi_bc) + 1.0 * abs(0.52 - phi_bc)) / 201.0
    phi_all = math.atan2(100 * math.sin(0.5) + math.sin(0.52), 100 + 100 * math.cos(0.5) + math.cos(0.52))
    tau1 = (100 * phi_all + 100 * abs(0.5 - phi_all) + abs(0.52 - phi_all)) / 201.0
    assert tau1 == pytest.approx(0.25009, abs=1e-5)
    assert features["tau21_j1"][0] == pytest.approx(tau2 / tau1, rel=1e-9)


def _jet(rng: np.random.Generator, prongs: list[tuple[float, float, float]], eta0: float, phi0: float) -> list[tuple[float, float, float]]:
    """Hard prongs (pT, d_eta, d_phi) each a narrow spray of 20 particles, plus 40 soft ones."""
    particles = []
    for pt, deta, dphi in prongs:
        share = rng.dirichlet(np.ones(20)) * pt
        for s, de, dp in zip(share, rng.normal(0, 0.02, 20), rng.normal(0, 0.02, 20), strict=True):
            particles.append((float(s), eta0 + deta + de, phi0 + dphi + dp))
    radius = 0.8 * np.sqrt(rng.random(40))
    angle = rng.uniform(0, 2 * np.pi, 40)
    for s, r, t in zip(rng.exponential(2.5, 40), radius, angle, strict=True):
        particles.append((float(s), eta0 + r * math.cos(t), phi0 + r * math.sin(t)))
    return particles


def test_tau21_separates_one_from_two_prongs() -> None:
    rng = np.random.default_rng(7)
    one, two = [], []
    for _ in range(20):
        # Each event: a one-prong jet and a two-prong jet (prongs 0.5 apart), back to back.
        single = _jet(rng, [(1000.0, 0.0, 0.0)], 0.3, 0.0)
        double = _jet(rng, [(500.0, -0.25, 0.0), (450.0, 0.25, 0.0)], -0.2, math.pi)
        pt, eta, phi, counts = _flatten([_event(*single, *double)])
        f = dijet_features(pt, eta, phi, counts)
        # The two-prong jet is the heavier one (m ~ 2 sqrt(500*450) sinh/sin(0.25) ~ 236 GeV).
        assert f["mj1"][0] > 200.0
        two.append(f["tau21_j1"][0])
        one.append(f["tau21_j2"][0])
    assert np.median(one) > 0.7
    assert np.median(two) < 0.3
    assert min(one) > max(two)


def test_single_constituent_jet_and_empty_event_give_zeros() -> None:
    counts = np.array([1, 0, 1])
    pt, eta, phi = np.array([1500.0, 10.0]), np.array([0.1, 0.0]), np.array([0.2, 0.0])
    f = dijet_features(pt, eta, phi, counts)
    assert f["pt_lead"].tolist() == pytest.approx([1500.0, 0.0, 10.0])
    for name in ("mj1", "delta_mj", "tau21_j1", "tau21_j2"):
        assert f[name].tolist() == [0.0, 0.0, 0.0]
    assert f["mjj"][1] == 0.0


def test_leading_jets_keep_constituents_and_axes_pad_with_nan() -> None:
    pt, eta, phi = np.array([900.0, 100.0, 50.0]), np.array([0.0, 0.1, -2.0]), np.array([0.0, 0.1, 3.0])
    jets = cluster_leading_jets(*four_momenta(pt, eta, phi), np.array([3]), radius=1.0, n_leading=2)
    assert jets.n_jets.tolist() == [2]
    assert jets.jet_of.tolist() == [0, 0, 1]
    assert np.hypot(jets.px[0], jets.py[0]) == pytest.approx([math.hypot(900 + 100 * math.cos(0.1), 100 * math.sin(0.1)), 50.0])
    axes = exclusive_kt_axes(*jets.constituents, jets.jet_of, 2, (1, 2))
    assert np.isnan(axes[2][0][1, 1])  # one constituent: no second axis
    assert axes[2][1][1, 0] == pytest.approx(3.0)


def test_n_subjettiness_rejects_bad_axes_and_tau_ratio_guards_zero() -> None:
    with pytest.raises(ValueError, match="axes must be"):
        n_subjettiness(np.ones(1), np.zeros(1), np.zeros(1), np.zeros(1, int), np.zeros(2), np.zeros(2))
    assert tau_ratio(np.array([0.2]), np.array([0.0])).tolist() == [0.0]


def test_dijet_features_rejects_inconsistent_counts() -> None:
    with pytest.raises(ValueError, match="summing to counts"):
        dijet_features(np.ones(3), np.zeros(3), np.zeros(3), np.array([2]))
