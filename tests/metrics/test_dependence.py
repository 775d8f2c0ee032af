"""Distance correlation (simmetrics.metrics.dependence) against ReSi's values on seed11, the
PyPI package dcor run live, and its edge cases."""

import numpy as np
import pytest

import simmetrics

PAIRS = ["X_Y", "X_Z", "X_Xpd", "X_Xq"]


# Reference: mklabunde/resi commit 24ab9e5055c71527445b0b196f5872f3cbe9a020,
# repsim/measures distance_correlation, shape "nd" (tests/data/reference/seed11/README.md):
# Euclidean distance matrices, double-centred, V-statistic.
@pytest.mark.parametrize("pair", PAIRS)
def test_distance_correlation_equals_resi(seed11, pair):
    value = simmetrics.DistanceCorrelation().fit_score(seed11["X"], seed11[pair.split("_")[1]])
    assert value == pytest.approx(seed11["values"][pair]["resi_distance_correlation"], abs=1e-8)


@pytest.mark.parametrize("pair", PAIRS)
def test_distance_correlation_equals_dcor_live(seed11, pair):
    import dcor  # the PyPI package dcor (a test extra)
    X, O = seed11["X"], seed11[pair.split("_")[1]]
    assert simmetrics.DistanceCorrelation().fit_score(X, O) == pytest.approx(
        float(dcor.distance_correlation(X, O)), abs=1e-10)


def test_closed_forms_and_the_data_users_have(rng):
    metric = simmetrics.DistanceCorrelation()
    X = rng.normal(size=(50, 6))
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert metric.fit_score(X, -4.0 * X @ Q + 7.0) == pytest.approx(1.0, abs=1e-12)
    # one sample each side, two points: every distance matrix is proportional
    assert metric.fit_score(X[:2], rng.normal(size=(2, 3))) == pytest.approx(1.0, abs=1e-12)
    B = (rng.random(size=(60, 10)) < 0.2).astype(float)  # binary, many equal distances
    dead = np.column_stack([B, np.zeros(60)])
    assert metric.fit_score(B, dead) == pytest.approx(1.0, abs=1e-12)
    wide = rng.normal(size=(8, 40))  # n < d
    assert 0.0 <= metric.fit_score(wide, rng.normal(size=(8, 3))) <= 1.0
    with pytest.raises(ValueError, match="X has zero variance"):
        metric.fit_score(np.ones((20, 3)), X[:20])


def test_pairwise_equals_fit_score_and_memory_is_checked_first(rng):
    reps = [rng.normal(size=(40, w)) for w in (3, 5, 2)]
    metric = simmetrics.DistanceCorrelation()
    values = np.asarray(simmetrics.pairwise(metric, reps))
    assert values[0, 1] == pytest.approx(metric.fit_score(reps[0], reps[1]), abs=1e-14)
    assert values[2, 1] == pytest.approx(metric.fit_score(reps[2], reps[1]), abs=1e-14)
    with simmetrics.memory_budget(10_000):
        with pytest.raises(simmetrics.MemoryBudgetError):
            metric.fit_score(reps[0], reps[1])
