"""Hard and soft correlation matching and aligned cosine (simmetrics/metrics/unit_matching.py)
against ReSi's values on seed11, closed forms, and the edge cases of their domain."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import simmetrics
from simmetrics import AlignedCosine, HardCorrelationMatch, SoftCorrelationMatch
from simmetrics.metrics.unit_matching import neuron_correlations

PAIRS = ["Y", "Z", "Xpd", "Xq"]

# Reference values: ReSi (mklabunde/resi, commit 24ab9e5055c71527445b0b196f5872f3cbe9a020,
# repsim/measures), shape "nd", default arguments; tests/data/reference/seed11/README.md.
CASES = [
    (HardCorrelationMatch, "resi_hard_correlation_match"),
    (SoftCorrelationMatch, "resi_soft_correlation_match"),
    (AlignedCosine, "resi_aligned_cosine_similarity"),
]


@pytest.mark.parametrize("other", PAIRS)
@pytest.mark.parametrize("cls, key", CASES)
def test_equals_resi_on_seed11(seed11, cls, key, other):
    value = cls().fit_score(seed11["X"], seed11[other])
    assert value == pytest.approx(seed11["values"][f"X_{other}"][key], abs=1e-8, rel=0)


@pytest.mark.parametrize("cls", [HardCorrelationMatch, SoftCorrelationMatch])
def test_correlation_match_closed_forms(cls, rng):
    X = rng.normal(size=(80, 6))
    Y = X[:, rng.permutation(6)] * 2.0 ** rng.integers(-3, 4, size=6) + rng.normal(size=6)
    assert cls().fit_score(X, Y) == pytest.approx(1.0, abs=1e-12)
    # a sign flip of one neuron: its best partner is gone, the others stay matched
    C = np.corrcoef(X, X * [-1, 1, 1, 1, 1, 1], rowvar=False)[:6, 6:]
    if cls is HardCorrelationMatch:
        r, c = linear_sum_assignment(C, maximize=True)
        expected = C[r, c].mean()
    else:
        expected = 0.5 * (C.max(1).mean() + C.max(0).mean())
    assert cls().fit_score(X, X * [-1, 1, 1, 1, 1, 1]) == pytest.approx(expected, abs=1e-12)


def test_hard_match_over_the_narrower_side(rng):
    X = rng.normal(size=(50, 5))
    Y = np.hstack([X[:, :3], rng.normal(size=(50, 4))])
    C = np.corrcoef(X, Y, rowvar=False)[:5, 5:]
    r, c = linear_sum_assignment(C, maximize=True)
    assert HardCorrelationMatch().fit_score(X, Y) == pytest.approx(C[r, c].mean(), abs=1e-12)
    assert HardCorrelationMatch().fit_score(Y, X) == pytest.approx(C[r, c].mean(), abs=1e-12)


def test_dead_units_and_ties(rng):
    X = (rng.normal(size=(40, 6)) > 0.5) * 1.0  # binary: duplicated columns tie exactly
    X[:, 2] = X[:, 0]
    X[:, 5] = 0.0  # a dead unit
    for cls in (HardCorrelationMatch, SoftCorrelationMatch):
        assert cls().fit_score(X, X) == pytest.approx(1.0, abs=1e-12)
        assert cls().fit_score(X, X[:, ::-1]) == pytest.approx(1.0, abs=1e-12)
    C = neuron_correlations(X, X)
    assert C[5, 5] == 1.0 and not C[5, :5].any() and np.isfinite(C).all()
    with pytest.raises(ValueError, match="Y has zero variance"):
        HardCorrelationMatch().fit_score(X, np.ones((40, 3)))


def test_aligned_cosine_closed_forms(rng):
    X = rng.normal(size=(60, 5))
    Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    assert AlignedCosine().fit_score(X, 3 * X @ Q) == pytest.approx(1.0, abs=1e-12)
    # n < d, and unequal widths: X embedded in more neurons
    W = rng.normal(size=(8, 20))
    assert AlignedCosine().fit_score(W, np.hstack([W, np.zeros((8, 3))]) @ np.eye(23)[::-1]) \
        == pytest.approx(1.0, abs=1e-12)
    Y = rng.normal(size=(60, 3))
    assert AlignedCosine().fit_score(X, Y) == pytest.approx(AlignedCosine().fit_score(Y, X),
                                                            abs=1e-12)
    with pytest.raises(ValueError, match="row 3 of Y is all zeros"):
        AlignedCosine().fit_score(X, np.where(np.arange(60)[:, None] == 3, 0.0, X))


def test_aligned_cosine_refuses_a_rotation_lost_to_rounding(rng):
    X, Y = rng.normal(size=(60, 6)), rng.normal(size=(60, 6))
    X[0] *= 1e8
    Y[0] *= 1e8
    with pytest.raises(ValueError, match="not determined in float64"):
        AlignedCosine().fit_score(X, Y)


def test_registered_and_pairwise(seed11):
    for name in ("hard_correlation_match", "soft_correlation_match", "aligned_cosine"):
        assert name in simmetrics.available_metrics()
    reps = [seed11["X"], seed11["Y"], seed11["Z"]]
    M = np.asarray(simmetrics.pairwise(HardCorrelationMatch(), reps), dtype=float)
    assert M[0, 1] == pytest.approx(seed11["values"]["X_Y"]["resi_hard_correlation_match"],
                                    abs=1e-12)
