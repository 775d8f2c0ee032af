"""RSM norm difference (simmetrics/metrics/rsm.py) against ReSi on seed11 and closed forms."""

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

import simmetrics.metrics.rsm as rsm
from simmetrics import RSMNormDifference, Stress

PAIRS = ["Y", "Z", "Xpd", "Xq"]


@pytest.mark.parametrize("other", PAIRS)
def test_equals_resi_on_seed11(seed11, other):
    # ReSi (mklabunde/resi, commit 24ab9e5055c71527445b0b196f5872f3cbe9a020), rsm_norm_diff:
    # numpy.linalg.norm(D_X - D_other, ord=2), the spectral norm (seed11 README)
    value = RSMNormDifference().fit_score(seed11["X"], seed11[other])
    key = "resi_rsm_norm_difference_euclidean"
    assert value == pytest.approx(seed11["values"][f"X_{other}"][key], abs=1e-8, rel=0)


def test_frobenius_is_stress_times_sqrt_pairs(seed11):
    # the seed11 README: sqrt(n (n - 1)) x Lange's stress = the Frobenius norm, 809.31187 on X_Y
    X, Y = seed11["X"], seed11["Y"]
    n = X.shape[0]
    frob = RSMNormDifference(norm="frobenius").fit_score(X, Y)
    assert frob == pytest.approx(np.sqrt(n * (n - 1)) * Stress().fit_score(X, Y), rel=1e-12)
    assert frob == pytest.approx(809.31187, abs=1e-5)


def test_closed_forms(rng):
    X = rng.normal(size=(30, 4))
    D = squareform(pdist(X))
    assert RSMNormDifference().fit_score(X, 3 * X) == pytest.approx(
        2 * np.abs(np.linalg.eigvalsh(D)).max(), rel=1e-12)
    Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    assert RSMNormDifference().fit_score(X, X @ Q - 7.0) < 1e-12
    with pytest.raises(ValueError, match="Y has zero variance"):  # the package's rule
        RSMNormDifference().fit_score(X, np.ones((30, 2)))


def test_lanczos_route_equals_the_dense_route(rng, monkeypatch):
    X, Y = rng.normal(size=(200, 6)), np.maximum(rng.normal(size=(200, 5)), 0)
    dense = RSMNormDifference().fit_score(X, Y)
    monkeypatch.setattr(rsm, "_DENSE_EIGEN_LIMIT", 10)
    assert RSMNormDifference().fit_score(X, Y) == pytest.approx(dense, rel=1e-12)


def test_memory_preflight(monkeypatch):
    import simmetrics
    with simmetrics.memory_budget("1MB"):
        with pytest.raises(simmetrics.MemoryBudgetError):
            RSMNormDifference().fit_score(np.ones((2000, 3)), np.ones((2000, 3)))
