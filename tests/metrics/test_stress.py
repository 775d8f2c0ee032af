"""Stress (simmetrics/metrics/stress.py) against Lange's repsim on seed11 and closed forms."""

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from simmetrics import Stress
from simmetrics.metrics.stress import lower_median

PAIRS = ["Y", "Z", "Xpd", "Xq"]


@pytest.mark.parametrize("other", PAIRS)
@pytest.mark.parametrize("rescale, key", [(False, "lange_stress_default"),
                                          (True, "lange_stress_rescale")])
def test_equals_lange_on_seed11(seed11, other, rescale, key):
    # Lange's repsim (wrongu/repsim, commit ecd0a545fbb409e971c63f52d27a4899c0070f6e),
    # Stress(m, rescale) on float64 tensors (seed11 README)
    value = Stress(rescale=rescale).fit_score(seed11["X"], seed11[other])
    assert value == pytest.approx(seed11["values"][f"X_{other}"][key], abs=1e-8, rel=0)


def test_closed_forms(rng):
    X = rng.normal(size=(25, 3))
    n = 25
    assert Stress().fit_score(X, 3 * X) == pytest.approx(
        2 * np.sqrt(np.mean(pdist(X) ** 2)), rel=1e-12)
    assert Stress(rescale=True).fit_score(X, 3 * X) < 1e-12
    Q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    assert Stress().fit_score(X, X @ Q + 5) < 1e-12
    d = pdist(X)
    assert lower_median(d) == np.sort(d)[(d.size - 1) // 2]  # 300 pairs: the lower middle
    assert n * (n - 1) // 2 == d.size


def test_rescale_refuses_a_zero_median():
    X = np.zeros((10, 2))
    X[0] = 1.0  # 36 of 45 pairs coincide
    assert Stress().fit_score(X, X + 1) == 0.0
    with pytest.raises(ValueError, match="median distance between the stimuli of X is 0"):
        Stress(rescale=True).fit_score(X, np.eye(10))


def test_extreme_scales_do_not_overflow(rng):
    X = rng.normal(size=(20, 3))
    assert Stress().fit_score(1e200 * X, 2e200 * X) == pytest.approx(
        1e200 * Stress().fit_score(X, 2 * X), rel=1e-12)
