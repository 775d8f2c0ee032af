"""The routes ShapeMetric and OrthogonalProcrustes choose by cost (issue 19).

- Partial whitening from the d x d Gram matrix Xc'Xc (eigh) where n > d and its estimated error
  is negligible, else from the SVD of the data: both agree with a brute-force definition on
  well-conditioned data; the guard sends ill-conditioned, dominant-stimulus, large-mean,
  rank-deficient and extreme-scale data to the SVD route.
- The score on the fitting data needs only the singular values of the (whitened) cross-product:
  the rotation is formed when it is used (``rotation_``, ``score``, ``transform``), never by
  ``fit_score`` or ``pairwise``.
- d > n: the nuclear norm from the triangular factors of the two d x n transposes.
"""

import pickle

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes

import simmetrics
from simmetrics import OrthogonalProcrustes, ShapeMetric
from simmetrics.metrics import procrustes, shape, whitening


# -- an independent definition (netrep's rule written from Williams et al. 2021) --------------
def _brute_whitened(A, alpha, rule):
    """(X - mean) Z with Z from the eigen-decomposition of Xc'Xc (numpy's eigh of the covariance
    written here, not the package's code): "trace" keeps tr C, "covariance" is Lange's
    alpha I + (1 - alpha) (C / n)^(-1/2)."""
    Xc = A - A.mean(axis=0)
    lam, V = np.linalg.eigh(Xc.T @ Xc)
    n = A.shape[0]
    if rule == "covariance":
        Z = alpha * np.eye(A.shape[1]) + (1 - alpha) * (V / np.sqrt(lam / n)) @ V.T
        return Xc @ Z
    Z = alpha * np.eye(A.shape[1]) + (1 - alpha) * (V / np.sqrt(lam)) @ V.T
    W = Xc @ Z
    return W * np.sqrt(np.sum(Xc**2) / np.sum(W**2))


def _brute_angle(X, Y, alpha, rule="trace"):
    A, B = _brute_whitened(X, alpha, rule), _brute_whitened(Y, alpha, rule)
    R, _ = orthogonal_procrustes(B, A)  # scipy: min ||B R - A||
    return float(np.arccos(np.vdot(A, B @ R) / np.linalg.norm(A) / np.linalg.norm(B)))


def _related(rng, n, d):
    X = rng.normal(size=(n, d))
    Y = np.tanh(X @ rng.normal(size=(d, d)) / 4) + 0.5 * rng.normal(size=(n, d))
    return X, Y


def _gram_route(metric, A):
    """Whether ``metric`` prepares ``A`` from its Gram matrix (the state keeps the centred data
    and applies the whitener to products)."""
    return bool(getattr(metric._partial_fit(A, "X"), "raw", False))


# -- the Gram route ---------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.2, 0.5, 0.9])
@pytest.mark.parametrize("n, d", [(3000, 40), (20000, 8)])
def test_gram_route_matches_the_definition(alpha, n, d):
    rng = np.random.default_rng(int(alpha * 10) + d)
    X, Y = _related(rng, n, d)
    metric = ShapeMetric(alpha=alpha)
    assert _gram_route(metric, X) and _gram_route(metric, Y)
    assert metric.fit_score(X, Y) == pytest.approx(_brute_angle(X, Y, alpha), abs=1e-12)


def test_gram_route_covariance_rule_matches_the_definition():
    rng = np.random.default_rng(3)
    X, Y = _related(rng, 4000, 30)
    metric = ShapeMetric(alpha=0.5, whitening="covariance")
    assert _gram_route(metric, X)
    assert metric.fit_score(X, Y) == pytest.approx(
        _brute_angle(X, Y, 0.5, "covariance"), abs=1e-12)


@pytest.mark.parametrize("whitening_rule", ["trace", "netrep", "covariance"])
@pytest.mark.parametrize("score_method", ["angular", "euclidean", "chordal"])
def test_gram_and_svd_routes_agree(whitening_rule, score_method, monkeypatch):
    rng = np.random.default_rng(5)
    X, Y = _related(rng, 2500, 24)
    Y = Y[:, :17]  # unequal widths: zero-padding, netrep's count
    metric = ShapeMetric(alpha=0.4, whitening=whitening_rule, score_method=score_method)
    assert _gram_route(metric, X)
    gram = metric.fit_score(X, Y)
    held = metric.score(X[:300] + 0.1, Y[:300])
    W = metric.whitener_x_
    monkeypatch.setattr(whitening, "GRAM_ROUTE_ERROR", 0.0)  # every data to the SVD route
    assert not _gram_route(metric, X)
    svd = ShapeMetric(alpha=0.4, whitening=whitening_rule, score_method=score_method)
    scale = max(1.0, abs(gram))
    assert gram == pytest.approx(svd.fit_score(X, Y), abs=1e-12 * scale)
    assert held == pytest.approx(svd.score(X[:300] + 0.1, Y[:300]), abs=1e-11 * scale)
    np.testing.assert_allclose(W, svd.whitener_x_, atol=1e-12 * np.abs(W).max())


def _ill_conditioned(rng, n, d, kappa):
    U, _, Vt = np.linalg.svd(rng.normal(size=(d, d)))
    return rng.normal(size=(n, d)) @ (U * np.logspace(0, -np.log10(kappa), d)) @ Vt


@pytest.mark.parametrize("case", ["ill_conditioned", "dominant_stimulus", "large_mean",
                                  "duplicate_neuron", "n_equals_d", "tiny", "huge", "alpha0"])
def test_the_guard_sends_hard_data_to_the_svd_route(case, monkeypatch):
    rng = np.random.default_rng(11)
    alpha = 0.0 if case == "alpha0" else 0.5
    X = rng.normal(size=(3000, 30))
    if case == "ill_conditioned":  # data condition 1e6: the Gram matrix's 1e12 loses digits
        X = _ill_conditioned(rng, 3000, 30, 1e6)
    elif case == "dominant_stimulus":
        X[0] *= 1e8
    elif case == "large_mean":
        X = 1e6 + X
    elif case == "duplicate_neuron":
        X[:, 1] = X[:, 0]
    elif case == "n_equals_d":
        X = X[:30]
    elif case == "tiny":
        X = X * 1e-200
    elif case == "huge":
        X = X * 1e200
    elif case == "alpha0":  # full whitening of 3,000 x 30 at condition 300: not negligible
        X = _ill_conditioned(rng, 3000, 30, 300.0)
    Y = X[:, ::-1] + 0.3 * rng.normal(size=X.shape) * np.abs(X).max()
    metric = ShapeMetric(alpha=alpha)
    assert not _gram_route(metric, X)
    value = metric.fit_score(X, Y)
    monkeypatch.setattr(whitening, "GRAM_ROUTE_ERROR", 0.0)
    assert value == pytest.approx(ShapeMetric(alpha=alpha).fit_score(X, Y), rel=1e-14)


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_guard_error_estimate_bounds_the_measured_difference(alpha, monkeypatch):
    # the Gram route forced on data of condition 1e2 .. 1e5, against the SVD route (accurate
    # to about eps times the data's condition): the difference stays below the estimate
    # (whitening.gram_route_error) that the guard compares with GRAM_ROUTE_ERROR
    rng = np.random.default_rng(2)
    for kappa in (1e2, 1e3, 1e4, 1e5):
        X = _ill_conditioned(rng, 2000, 20, kappa)
        Y = np.tanh(X @ rng.normal(size=(20, 20))) + 0.3 * _ill_conditioned(rng, 2000, 20, kappa)
        Xc, Yc = X - X.mean(axis=0), Y - Y.mean(axis=0)
        estimate = max(
            whitening.gram_route_error(np.linalg.eigvalsh(A.T @ A)[::-1], 2000, alpha)
            for A in (Xc, Yc))
        monkeypatch.setattr(whitening, "GRAM_ROUTE_ERROR", np.inf)
        gram = ShapeMetric(alpha=alpha).fit_score(X, Y)
        monkeypatch.setattr(whitening, "GRAM_ROUTE_ERROR", 0.0)
        svd = ShapeMetric(alpha=alpha).fit_score(X, Y)
        assert abs(gram - svd) <= estimate


# -- the rotation is formed only when used ----------------------------------------------------
def _no_rotation(*args, **kwargs):
    raise AssertionError("the rotation was formed, but only the score was asked for")


@pytest.mark.parametrize("metric", [OrthogonalProcrustes(), ShapeMetric(alpha=0.5),
                                    OrthogonalProcrustes(score_method="euclidean")])
@pytest.mark.parametrize("n, d", [(400, 20), (15, 60)])
def test_fit_score_and_pairwise_form_no_rotation(metric, n, d, monkeypatch):
    rng = np.random.default_rng(d)
    reps = [rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) for _ in range(4)]
    expected = [[metric.fit_score(A, B) for B in reps] for A in reps]
    monkeypatch.setattr(procrustes, "closest_optimal_rotation", _no_rotation)
    monkeypatch.setattr(shape, "closest_optimal_rotation", _no_rotation)
    monkeypatch.setattr(procrustes, "n_space_rotation", _no_rotation)
    fitted = type(metric)(**metric.get_params())
    value = fitted.fit_score(reps[0], reps[1])
    assert value == pytest.approx(expected[0][1], abs=1e-13)
    # two sets, so no diagonal pair: a value within 0.01 of cos = 1 is computed from the aligned
    # data (accurate near 0), which forms the rotation
    M = np.asarray(simmetrics.pairwise(metric, reps[:2], reps[2:]))
    for i in range(2):
        for j in range(2):
            assert M[i, j] == pytest.approx(expected[i][2 + j], abs=1e-12)
    with pytest.raises(AssertionError, match="rotation was formed"):
        fitted.rotation_  # noqa: B018 - formed on reading


@pytest.mark.parametrize("n, d", [(300, 12), (12, 40)])
def test_rotation_formed_later_is_the_fitted_one(n, d):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(n, d))
    Y = X @ np.linalg.qr(rng.normal(size=(d, d)))[0] + 0.1 * rng.normal(size=(n, d))
    lazy = OrthogonalProcrustes()
    lazy.fit_score(X, Y)
    eager = OrthogonalProcrustes().fit(X, Y)
    _ = eager.rotation_
    copy = pickle.loads(pickle.dumps(lazy))  # a pending rotation survives pickling
    X[:] = 0.0  # the caller's array reused: the fitted metric kept what it needs
    Y[:] = 1.0
    rng2 = np.random.default_rng(5)
    Xt, Yt = rng2.normal(size=(7, d)), rng2.normal(size=(7, d))
    for fitted in (lazy, copy):
        np.testing.assert_allclose(fitted.rotation_, eager.rotation_, atol=1e-12)
        assert fitted.score(Xt, Yt) == pytest.approx(eager.score(Xt, Yt), abs=1e-12)
    if n < d:  # Q = I + W K W', orthogonal: Q'Q = I (a closed form, not a second route)
        Q = lazy.rotation_
        np.testing.assert_allclose(Q.T @ Q, np.eye(d), atol=1e-12)


def test_wide_fit_score_is_the_nuclear_norm():
    # d > n: ||Xc'Yc||_* / (||Xc|| ||Yc||) from numpy's SVD of the d x d product (brute force)
    rng = np.random.default_rng(8)
    X = rng.normal(size=(30, 500))
    Y = X + rng.normal(size=(30, 500))
    Xc, Yc = X - X.mean(axis=0), Y - Y.mean(axis=0)
    cos = np.linalg.svd(Xc.T @ Yc, compute_uv=False).sum() / np.linalg.norm(Xc) / np.linalg.norm(Yc)
    assert OrthogonalProcrustes().fit_score(X, Y) == pytest.approx(np.arccos(cos), abs=1e-12)
    assert OrthogonalProcrustes().fit_score(X, Y[:, :300]) == pytest.approx(np.arccos(
        np.linalg.svd(Xc.T @ Yc[:, :300], compute_uv=False).sum() / np.linalg.norm(Xc)
        / np.linalg.norm(Yc[:, :300])), abs=1e-12)
