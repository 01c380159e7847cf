"""Statistics of the report: AUC errors, floors, calibrated JSD, FPD/KPD errors on paired samples."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from offline.showers.auc_error import delong_auc, null_auc_error
from offline.showers.classifier import (
    CLASSIFIER_PRESETS,
    ClassifierConfig,
    classifier_preset,
    classifier_test,
)
from offline.showers.floors import energy_local_pairs
from offline.showers.physics_distances import fpd, fpd_sample_sizes, kpd
from offline.showers.summary import summarise
from offline.showers.toy import toy_showers
from offline.showers.validation import ValidationSettings, compare_summaries


def test_delong_matches_sklearn_and_the_spread_over_samples() -> None:
    rng = np.random.default_rng(0)
    aucs, errors = [], []
    for _ in range(300):
        y = np.repeat([0, 1], 200)
        s = rng.normal(size=400) + 0.5 * y
        auc, err = delong_auc(s, y)
        assert auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        aucs.append(auc)
        errors.append(err)
    assert np.std(aucs) == pytest.approx(np.mean(errors), rel=0.15)


def test_null_auc_error_is_the_spread_of_equal_samples() -> None:
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 400)
    aucs = [roc_auc_score(y, rng.normal(size=800)) for _ in range(400)]
    assert np.std(aucs) == pytest.approx(null_auc_error(400, 400), rel=0.12)
    assert null_auc_error(400, 400) == pytest.approx(0.0204, abs=1e-4)


def test_calibrated_jsd_of_small_equal_samples_stays_near_zero() -> None:
    # Isotonic end blocks used to give a test event probability 1e-7: -1.06 +- 1.45 at n = 100.
    rng = np.random.default_rng(2)
    for calibration in ("isotonic", "platt"):
        cfg = ClassifierConfig(n_runs=4, epochs=10, calibration=calibration)
        result = classifier_test(rng.normal(size=(100, 3)), rng.normal(size=(100, 3)), cfg)
        assert result.jsd_mean > -0.5, (calibration, result.jsd)
        assert min(result.jsd) > -1.0
        assert abs(result.jsd_mean) < 3 * result.jsd_error + 0.02, (calibration, result.jsd)
        assert abs(result.auc_mean - 0.5) < 3 * result.auc_error
        assert result.auc_error == pytest.approx(null_auc_error(20, 20), rel=0.3)


def test_presets() -> None:
    challenge = CLASSIFIER_PRESETS["calochallenge"]
    assert challenge.hidden == (2048, 2048)
    assert (challenge.learning_rate, challenge.epochs, challenge.batch_size) == (2e-4, 50, 1000)
    assert challenge.split == (0.6, 0.2, 0.2)
    assert (challenge.selection, challenge.calibration, challenge.patience) == (
        "accuracy",
        "isotonic",
        None,
    )
    assert classifier_preset("fast") == ClassifierConfig()
    with pytest.raises(ValueError, match="known: calochallenge, fast"):
        classifier_preset("huge")
    # Accuracy selection without early stopping trains every epoch.
    rng = np.random.default_rng(3)
    cfg = classifier_preset(
        "calochallenge", hidden=(16,), epochs=4, batch_size=50, learning_rate=1e-2
    )
    result = classifier_test(rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + 1.0, cfg)
    assert result.epochs == [4]
    assert 1 <= result.best_epochs[0] <= 4
    assert result.auc_mean > 0.7


def test_energy_local_pairs_are_distinct_neighbours() -> None:
    rng = np.random.default_rng(4)
    energies = rng.uniform(10, 100, 1000)
    first, second = energy_local_pairs(energies, rng, window=2)
    assert np.all(first != second)
    assert np.max(np.abs(energies[first] - energies)) < 3.0
    assert np.max(np.abs(energies[second] - energies)) < 3.0
    with pytest.raises(ValueError, match="window"):
        energy_local_pairs(energies[:3], rng, window=2)


def _toy_summary(energies: np.ndarray, seed: int, **options: object):  # noqa: ANN202
    return summarise([(energies, toy_showers(energies, seed, **options))], 0.1, keep=4,
                     per_shower_hits=True)  # fmt: skip


def test_jsd_floors_equal_the_jsd_of_independent_samples() -> None:
    energies = np.random.default_rng(5).uniform(10.0, 100.0, 3000)
    reference = _toy_summary(energies, 1)
    settings = ValidationSettings(classifier=ClassifierConfig(n_runs=1, epochs=3),
                                  physics_distances=False, floor_replicas=8)  # fmt: skip
    ratios, s_values = [], []
    for seed in (2, 3, 4, 5):
        result = compare_summaries(reference, _toy_summary(energies, seed), settings)
        assert result.floors is not None
        ratios.append([result.jsd[k] / result.floors.jsd[k] for k in result.jsd])
        s_values.append(result.s_jsd)
    floors = result.floors
    # Averaged over observables and samples, a perfect model sits on its floor.
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.12)
    assert np.mean(s_values) == pytest.approx(floors.s_jsd, abs=2 * floors.s_jsd_spread)
    # An energy-scale error of 5 % is well above the floor of the visible energy.
    shifted = compare_summaries(reference, _toy_summary(energies, 9, energy_scale=1.05), settings)
    vis_floor = floors.jsd["visible_energy"] + 3 * floors.jsd_spread["visible_energy"]
    assert shifted.jsd["visible_energy"] > vis_floor
    metrics = shifted.metrics()
    assert metrics["floors"]["s_jsd"] == pytest.approx(floors.s_jsd)
    assert metrics["floors"]["classifier_auc"]["mean"] == 0.5


def _paired_features(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    log_e = np.log(np.random.default_rng(99).uniform(10, 100, n))  # shared energies
    a = 3.0 * log_e + 0.2 * rng.normal(size=n)
    b = 0.5 * log_e + rng.normal(size=n)
    return np.stack([log_e, a, b, rng.normal(size=n)], axis=1)


def test_fpd_error_covers_the_spread_of_perfect_models_on_paired_samples() -> None:
    reference = _paired_features(4000, 0)
    values, errors = [], []
    for seed in range(1, 7):
        result = fpd(reference, _paired_features(4000, seed), num_batches=5, num_points=5,
                     num_bootstrap=6, paired=True, seed=seed)  # fmt: skip
        values.append(result.value)
        errors.append(result.error)
    spread = np.std(values, ddof=1)
    assert 0.4 < np.mean(errors) / spread < 2.5, (values, errors)
    assert abs(np.mean(values)) < 3 * spread / np.sqrt(len(values)) + 0.5 * spread
    sizes = fpd_sample_sizes(2000, 4, 20_000, 50_000, 5)
    assert sizes[-1] == 2000
    assert sizes[0] == 800
    np.testing.assert_allclose(np.diff(1.0 / sizes), np.diff(1.0 / sizes)[0], rtol=0.02)


def test_kpd_of_paired_samples_is_consistent_with_zero() -> None:
    reference = _paired_features(3000, 10)
    for seed in range(11, 15):
        result = kpd(
            reference, _paired_features(3000, seed), batch_size=1500, paired=True, seed=seed
        )
        # The median of an unbiased MMD^2 of equal distributions is slightly negative.
        assert abs(result.value) < 2.5 * result.error, result
    shifted = _paired_features(3000, 20) + np.array([0.0, 1.0, 0.0, 0.0])
    far = kpd(reference, shifted, batch_size=1500, paired=True)
    assert far.value > 5 * far.error


def test_study_prints_one_row_per_comparison(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from offline.showers.study import main

    assert main(["--n", "300", "--classifier-runs", "1", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert abs(row["auc"] - 0.5) < 4 * row["auc_floor_error"]
    assert row["s_jsd"] == pytest.approx(row["s_jsd_floor"], abs=4 * row["s_jsd_floor_spread"])
