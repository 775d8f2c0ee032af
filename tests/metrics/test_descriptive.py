"""Magnitude, concentricity and uniformity differences (simmetrics/metrics/descriptive.py)
against ReSi on seed11 and closed forms."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

import simmetrics
from simmetrics import ConcentricityDifference, MagnitudeDifference, UniformityDifference

PAIRS = ["Y", "Z", "Xpd", "Xq"]

# ReSi (mklabunde/resi, commit 24ab9e5055c71527445b0b196f5872f3cbe9a020,
# repsim/measures/statistics.py), shape "nd", default arguments (seed11 README)
CASES = [
    (MagnitudeDifference, "resi_magnitude_difference"),
    (ConcentricityDifference, "resi_concentricity_difference"),
    (UniformityDifference, "resi_uniformity_difference_t2"),
]


@pytest.mark.parametrize("other", PAIRS)
@pytest.mark.parametrize("cls, key", CASES)
def test_equals_resi_on_seed11(seed11, cls, key, other):
    value = cls().fit_score(seed11["X"], seed11[other])
    assert value == pytest.approx(seed11["values"][f"X_{other}"][key], abs=1e-8, rel=0)


def _uniformity(A, t=2.0):
    return np.log(np.exp(-t * cdist(A, A, "sqeuclidean")).mean())


def test_closed_forms(rng):
    X = rng.normal(size=(40, 5)) + 1.0
    Y = 0.3 * rng.normal(size=(40, 3))
    assert MagnitudeDifference().fit_score(X, Y) == pytest.approx(
        abs(np.linalg.norm(X.mean(0)) - np.linalg.norm(Y.mean(0))), rel=1e-12)
    m = X.mean(0)
    c = np.mean(X @ m / np.linalg.norm(X, axis=1) / np.linalg.norm(m))
    assert ConcentricityDifference().fit_score(X, 5 * X) == 0.0
    assert ConcentricityDifference().fit_score(X, X + 10) == pytest.approx(
        abs(c - np.mean((X + 10) @ (m + 10) / np.linalg.norm(X + 10, axis=1)
                        / np.linalg.norm(m + 10))), rel=1e-10)
    for t in (2.0, 0.5):
        assert UniformityDifference(t=t).fit_score(X, Y) == pytest.approx(
            abs(_uniformity(X, t) - _uniformity(Y, t)), abs=1e-13)


def test_uniformity_in_chunks(rng, monkeypatch):
    import simmetrics.metrics.descriptive as descriptive
    X, Y = 0.2 * rng.normal(size=(90, 4)), 0.3 * rng.normal(size=(90, 4))
    whole = UniformityDifference().fit_score(X, Y)
    monkeypatch.setattr(descriptive, "_CHUNK_ENTRIES", 200)  # 2 rows per chunk
    assert UniformityDifference().fit_score(X, Y) == pytest.approx(whole, abs=1e-14)
    assert whole == pytest.approx(abs(_uniformity(X) - _uniformity(Y)), abs=1e-13)


def test_edge_cases(rng):
    X = rng.normal(size=(20, 3))
    with pytest.raises(ValueError, match="mean stimulus of Y is zero"):
        ConcentricityDifference().fit_score(X, X - X.mean(0))
    with pytest.raises(ValueError, match="row 2 of X is all zeros"):
        ConcentricityDifference().fit_score(np.where(np.arange(20)[:, None] == 2, 0, X), X)
    # all stimuli equal: refused, as by every metric (the package's zero-variance rule);
    # binary data with duplicated stimuli
    with pytest.raises(ValueError, match="X has zero variance"):
        UniformityDifference().fit_score(np.ones((20, 3)), X)
    B = (rng.normal(size=(30, 6)) > 0) * 1.0
    assert UniformityDifference().fit_score(B, B[:, ::-1]) == 0.0


def test_magnitude_streams(rng):
    X, Y = rng.normal(size=(50, 4)) + 2, rng.normal(size=(50, 3))
    batches = [(X[:17], Y[:17]), (X[17:], Y[17:])]
    assert simmetrics.stream_score(MagnitudeDifference(), batches) == pytest.approx(
        MagnitudeDifference().fit_score(X, Y), rel=1e-12)
