"""The toolkit must fail: independent samples pass, distorted samples are caught.

Fast versions use the toy generator (:mod:`offline.showers.toy`) and the high-level
classifier; the ``slow`` version uses the reference simulator with more showers.
"""

from __future__ import annotations

import numpy as np
import pytest

from offline.showers.classifier import ClassifierConfig, classifier_test
from offline.showers.summary import ShowerSummary, summarise
from offline.showers.toy import toy_showers
from offline.showers.validation import ValidationSettings, compare_summaries

N_SHOWERS = 20_000
THRESHOLD = 0.1
SETTINGS = ValidationSettings(
    classifier=ClassifierConfig(n_runs=5), kpd_batches=5, kpd_batch_size=1000
)
QUICK = ValidationSettings(
    classifier=ClassifierConfig(n_runs=3, epochs=15), kpd_batches=5, kpd_batch_size=1000
)


def _summary(energies: np.ndarray, **toy_options: object) -> ShowerSummary:
    chunks = []
    for lo in range(0, energies.size, 5000):
        part = energies[lo : lo + 5000]
        chunks.append(
            (part, toy_showers(part, first_event_seed(toy_options, lo), **_clean(toy_options)))
        )
    return summarise(chunks, THRESHOLD, keep=16)


def first_event_seed(options: dict, lo: int) -> int:
    return int(options["seed"]) * 1000 + lo


def _clean(options: dict) -> dict:
    return {k: v for k, v in options.items() if k != "seed"}


@pytest.fixture(scope="module")
def energies() -> np.ndarray:
    return np.random.default_rng(0).uniform(10.0, 100.0, N_SHOWERS)


@pytest.fixture(scope="module")
def reference(energies: np.ndarray) -> ShowerSummary:
    return _summary(energies, seed=1)


@pytest.fixture(scope="module")
def independent(reference: ShowerSummary, energies: np.ndarray):  # noqa: ANN201
    return compare_summaries(reference, _summary(energies, seed=2), SETTINGS)


def test_independent_samples_are_indistinguishable(independent) -> None:  # noqa: ANN001
    metrics = independent.metrics()
    auc = metrics["classifier_auc"]
    assert abs(auc["mean"] - 0.5) < 0.01, auc
    assert auc["std"] < 0.02
    assert abs(metrics["classifier_jsd"]["mean"]) < 0.02
    assert metrics["s_jsd"] < 0.06
    assert abs(metrics["fpd"]["value"]) < 1e-3
    assert metrics["correlation_difference"]["max_abs"] < 0.08
    assert metrics["correlation_difference"]["mean_abs_offdiagonal"] < 0.015


def test_energy_scale_shift_is_caught(
    reference: ShowerSummary, energies: np.ndarray, independent
) -> None:  # noqa: ANN001
    shifted = compare_summaries(reference, _summary(energies, seed=3, energy_scale=1.03), QUICK)
    assert shifted.classifier.auc_mean > 0.6
    assert shifted.classifier.auc_mean - 5 * shifted.classifier.auc_std > 0.55
    assert shifted.jsd["visible_energy"] > 1.5 * independent.jsd["visible_energy"]
    ratio = shifted.generated_points.linearity / shifted.reference_points.linearity
    assert np.nanmean(ratio) == pytest.approx(1.03, abs=0.005)


def test_removed_layer_is_caught(
    reference: ShowerSummary, energies: np.ndarray, independent
) -> None:  # noqa: ANN001
    dropped = compare_summaries(reference, _summary(energies, seed=4, drop_layer=4), QUICK)
    assert dropped.classifier.auc_mean > 0.95
    assert dropped.s_jsd > 3 * independent.s_jsd
    assert dropped.fpd.value > 20 * max(abs(independent.fpd.value), independent.fpd.error)
    assert dropped.kpd.value > 5 * max(abs(independent.kpd.value), independent.kpd.error)
    assert dropped.correlations.max_abs_difference > independent.correlations.max_abs_difference


def test_classifier_never_sees_test_data_in_standardisation() -> None:
    # Identical features, except for a huge offset in a few rows: with a train-only
    # standardisation the classifier still works and reports finite numbers.
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(1000, 3)), rng.normal(size=(1000, 3)) + 1.0
    result = classifier_test(a, b, ClassifierConfig(n_runs=2, epochs=20))
    assert result.auc_mean > 0.8
    assert result.n_train == 600
    assert result.n_validation == 200
    assert result.n_test == 200
    assert 0 < result.jsd_mean < 1
    platt = classifier_test(a, b, ClassifierConfig(n_runs=1, epochs=20, calibration="platt"))
    assert platt.auc_mean > 0.8
    assert 0 < platt.jsd_mean < 1


def test_classifier_rejects_bad_features() -> None:
    with pytest.raises(ValueError, match="equal d"):
        classifier_test(np.zeros((100, 2)), np.zeros((100, 3)))
    bad = np.zeros((100, 2))
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match="first row 7"):
        classifier_test(np.zeros((100, 2)), bad)
    with pytest.raises(ValueError, match="too few"):
        classifier_test(np.zeros((20, 2)), np.zeros((20, 2)))
    with pytest.raises(ValueError, match="calibration"):
        ClassifierConfig(calibration="beta")


@pytest.mark.slow
def test_reference_simulator_against_itself_and_a_miscalibration() -> None:
    simulator = pytest.importorskip("stream.showers.simulator")
    geometry = pytest.importorskip("stream.showers.geometry").get_geometry("ecal")
    n = 40_000
    energies = simulator.sample_energies(10, 0, n, 10.0, 100.0)

    def sample(seed: int, scale: float = 1.0) -> ShowerSummary:
        chunks = []
        for lo in range(0, n, 5000):
            showers = simulator.simulate(geometry, energies[lo : lo + 5000], seed, first_event=lo)
            chunks.append((energies[lo : lo + 5000], showers * np.float32(scale)))
        return summarise(chunks, geometry.threshold_mev, keep=16)

    reference = sample(11)
    same = compare_summaries(reference, sample(12), SETTINGS)
    shifted = compare_summaries(reference, sample(13, 1.03), SETTINGS)
    assert abs(same.classifier.auc_mean - 0.5) < 0.01
    assert shifted.classifier.auc_mean > 0.55
    assert shifted.s_jsd > same.s_jsd
