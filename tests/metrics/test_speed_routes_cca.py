"""The routes chosen by cost (issue 19): CCA's covariance route and its accuracy guard
(simmetrics.metrics.cca_basis.gram_fit), IntertwinerProcrustes' fit_score from the fit's
products. Each fast route is checked against a reference computed another way (scipy's
subspace angles from QR factorisations; a brute force over all permutations; the aligned data
formed by fit().score()), and each guard is shown to trigger on the data that need it."""

import itertools

import numpy as np
import pytest
from scipy.linalg import subspace_angles

import simmetrics.metrics.cca as cca_module
from simmetrics import CCA, PWCCA, SVCCA, IntertwinerProcrustes, pairwise
from simmetrics.metrics.cca_basis import gram_fit


def reference_rho(X, Y):
    """Canonical correlations as the cosines of the principal angles between the centred
    column spaces, by scipy.linalg.subspace_angles (orthonormal bases from QR / SVD of the
    data themselves, with the data's conditioning): independent of simmetrics' routes."""
    return np.sort(np.cos(subspace_angles(X - X.mean(0), Y - Y.mean(0))))[::-1]


def tall_pair(rng, n=3000, dx=40, dy=30, offset=0.0):
    X = rng.normal(size=(n, dx)) + offset
    Y = np.tanh(X[:, :dy] @ rng.normal(size=(dy, dy)) / 3) + 0.5 * rng.normal(size=(n, dy))
    return X, Y


def svd_route(monkeypatch):
    """Force the SVD route (no representation has 10^9 times more samples than neurons)."""
    monkeypatch.setattr(cca_module, "GRAM_ROWS", 10**9)


def test_covariance_route_is_taken_on_tall_well_conditioned_data_and_matches_reference():
    X, Y = tall_pair(np.random.default_rng(0))
    for A in (X, Y):
        assert gram_fit(A) is not None
    metric = CCA()
    value = metric.fit_score(X, Y)
    rho = reference_rho(X, Y)
    np.testing.assert_allclose(metric.canonical_correlations_, rho, rtol=0, atol=1e-13)
    assert abs(value - rho.mean()) < 1e-13


@pytest.mark.parametrize("make", [
    lambda: CCA(), lambda: CCA(statistic="mean_rho_sq"), lambda: SVCCA(variance=0.9),
    lambda: SVCCA(variance=1.0), lambda: PWCCA(side="x"), lambda: PWCCA(side="y"),
    lambda: PWCCA(side="symmetric")])
def test_both_routes_agree_on_well_conditioned_data(make, monkeypatch):
    rng = np.random.default_rng(1)
    X, Y = tall_pair(rng, n=2000, dx=30, dy=20)
    Xt, Yt = tall_pair(rng, n=500, dx=30, dy=20)
    fast, fast_fit = make(), make()
    v_fast = fast.fit_score(X, Y)
    h_fast = fast_fit.fit(X, Y).score(Xt, Yt)
    t_fast = fast_fit.transform(Xt, Yt)
    svd_route(monkeypatch)
    slow, slow_fit = make(), make()
    v_slow = slow.fit_score(X, Y)
    h_slow = slow_fit.fit(X, Y).score(Xt, Yt)
    t_slow = slow_fit.transform(Xt, Yt)
    assert abs(v_fast - v_slow) < 1e-12
    assert abs(h_fast - h_slow) < 1e-12
    np.testing.assert_allclose(fast.canonical_correlations_, slow.canonical_correlations_,
                               rtol=0, atol=1e-12)
    for a, b in zip(t_fast, t_slow):  # variates agree up to the sign of each direction
        np.testing.assert_allclose(np.abs(a), np.abs(b), rtol=0, atol=1e-9)
    if hasattr(slow, "n_components_x_"):
        assert (fast.n_components_x_, fast.n_components_y_) == (
            slow.n_components_x_, slow.n_components_y_)


def test_large_offset_is_centred_first_and_stays_accurate():
    # means 1e6 against a spread of 1: the raw products would cancel 12 digits, so the
    # covariance route centres first (two passes) and keeps the reference's digits
    X, Y = tall_pair(np.random.default_rng(2), offset=1e6)
    fit = gram_fit(X)
    assert fit is not None and fit[0].sums is None
    np.testing.assert_allclose(CCA().fit_score(X, Y), reference_rho(X, Y).mean(), rtol=0,
                               atol=1e-12)


def test_near_centred_data_use_the_raw_products():
    X, Y = tall_pair(np.random.default_rng(3), offset=0.3)
    fit = gram_fit(X)
    assert fit is not None and fit[0].sums is not None
    np.testing.assert_allclose(CCA().fit_score(X, Y), reference_rho(X, Y).mean(), rtol=0,
                               atol=1e-13)


def ill_conditioned(rng, n, d, cond):
    U = np.linalg.qr(rng.normal(size=(n, d)))[0]
    V = np.linalg.qr(rng.normal(size=(d, d)))[0]
    return (U * np.logspace(0, -np.log10(cond), d)) @ V.T


def test_guard_falls_back_on_ill_conditioned_data():
    # condition 1e6: X'X squares it, so its rounding would move the correlations by ~1e-7
    # (the Gram route's error measured on such data); the guard takes the SVD route
    rng = np.random.default_rng(4)
    X = ill_conditioned(rng, 3000, 24, 1e6)
    Y = X @ rng.normal(size=(24, 24)) * 0.2 + ill_conditioned(rng, 3000, 24, 10.0)
    assert gram_fit(X) is None and gram_fit(Y) is not None  # a mixed pair
    metric = CCA()
    metric.fit_score(X, Y)
    np.testing.assert_allclose(metric.canonical_correlations_, reference_rho(X, Y), rtol=0,
                               atol=1e-10)


def test_guard_falls_back_on_a_dominant_stimulus_and_on_duplicate_neurons():
    rng = np.random.default_rng(5)
    X, Y = tall_pair(rng)
    dominant = X.copy()
    dominant[0] *= 1e8  # one stimulus 1e8 times the others: condition ~1e8
    assert gram_fit(dominant) is None
    rho = reference_rho(dominant, Y)
    np.testing.assert_allclose(CCA().fit_score(dominant, Y), rho.mean(), rtol=0, atol=1e-10)
    duplicate = np.hstack([X, X[:, :3]])  # rank deficient: the rank is decided by the SVD
    assert gram_fit(duplicate) is None
    metric = CCA()
    metric.fit_score(duplicate, Y)
    assert metric.canonical_correlations_.size == Y.shape[1]


def test_pairwise_mixes_routes_and_matches_fit_score():
    rng = np.random.default_rng(6)
    X, Y = tall_pair(rng, dx=30, dy=30)
    W = ill_conditioned(rng, X.shape[0], 30, 1e6)  # SVD route
    M = pairwise("cca", [X, Y, W])
    refs = {(0, 1): (X, Y), (0, 2): (X, W), (1, 2): (Y, W)}
    for (i, j), (A, B) in refs.items():
        assert abs(M[i, j] - reference_rho(A, B).mean()) < 1e-10


# -- IntertwinerProcrustes: fit_score from the fit's products ------------------------------
def brute_force_relu(X, Y):
    """min over all permutations of the angle between X and Y's columns permuted, every
    neuron divided by its rms first (Godfrey et al.'s G_ReLU canonical form), by enumeration."""
    A = X / np.sqrt((X**2).mean(0))
    B = Y / np.sqrt((Y**2).mean(0))
    best = np.inf
    for perm in itertools.permutations(range(X.shape[1])):
        Bp = B[:, list(perm)]
        cos = np.sum(A * Bp) / np.linalg.norm(A) / np.linalg.norm(Bp)
        best = min(best, np.arccos(np.clip(cos, -1, 1)))
    return best


def test_relu_fit_score_matches_a_brute_force_over_permutations():
    rng = np.random.default_rng(7)
    X = np.maximum(rng.normal(size=(300, 6)), 0.0)
    Y = np.maximum(X @ rng.normal(size=(6, 6)) + rng.normal(size=(300, 6)), 0.0)
    assert abs(IntertwinerProcrustes("relu").fit_score(X, Y) - brute_force_relu(X, Y)) < 1e-12


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "abs"])
@pytest.mark.parametrize("score_method", ["angular", "euclidean", "paper"])
@pytest.mark.parametrize("center", [False, True])
def test_closed_form_agrees_with_the_aligned_data(activation, score_method, center):
    # fit().score() on the same data forms the canonical forms and the aligned copy
    rng = np.random.default_rng(8)
    X = np.maximum(rng.normal(size=(400, 7)), 0.0)
    Y = np.maximum(X[:, :5] @ rng.normal(size=(5, 5)) + rng.normal(size=(400, 5)), 0.0)
    X[:, 2] = 0.0  # a silent neuron, and different widths
    metric = IntertwinerProcrustes(activation, score_method=score_method, center=center)
    fast = metric.fit_score(X, Y)
    slow = IntertwinerProcrustes(activation, score_method=score_method, center=center).fit(
        X, Y).score(X, Y)
    assert abs(fast - slow) < 1e-12
    assert np.isfinite(fast)


def test_closed_form_falls_back_near_zero_and_at_extreme_scales():
    rng = np.random.default_rng(9)
    X = np.maximum(rng.normal(size=(200, 6)), 0.0)
    PD = np.eye(6)[[3, 0, 5, 1, 2, 4]] * rng.uniform(0.5, 2.0, size=6)
    # the same orbit: cosine 1, where arccos of the closed form's cosine would give ~1e-8
    assert IntertwinerProcrustes("relu").fit_score(X, X @ PD) < 1e-12
    Y = np.maximum(X @ rng.normal(size=(6, 6)), 0.0)
    value = IntertwinerProcrustes("relu").fit_score(X, Y)
    for scale in (1e300, 1e-300):  # the products leave the range: the rescaled route
        assert abs(IntertwinerProcrustes("relu").fit_score(X * scale, Y) - value) < 1e-12
