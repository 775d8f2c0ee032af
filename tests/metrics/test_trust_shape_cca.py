"""Trust issue, shape metrics and the CCA family: SVCCA ties at the variance cut, extreme scales,
the n-space route of Procrustes for d > n, and declared bounds on held-out stimuli.

Expected values come from closed-form identities (named in each test), from exact power-of-two
rescalings (``simmetrics._core.linalg.times_pow2``), or from scipy run live (``subspace_angles``,
``orthogonal_procrustes``, ``svd``).
"""

import numpy as np
import pytest
from scipy.linalg import hadamard, subspace_angles
from sklearn.base import clone

from simmetrics import (
    CCA,
    PWCCA,
    SVCCA,
    OrthogonalProcrustes,
    PermutationMetric,
    ShapeMetric,
    SoftMatching,
    stream_score,
)
from simmetrics.metrics import shape as shape_module
from simmetrics._core.linalg import times_pow2


def _orthogonal(rng, d):
    return np.linalg.qr(rng.normal(size=(d, d)))[0]


def _mean_cca(X, Y):
    """Mean canonical correlation by scipy: cosines of the principal angles between the
    column spaces of the centred data (Bjorck & Golub 1973)."""
    return float(np.mean(np.cos(subspace_angles(X - X.mean(0), Y - Y.mean(0)))))


def _top_y(Y, variance):
    """Y's top singular directions by SVCCA's rule (the fewest whose squared singular values
    reach ``variance`` of the total; Y's spectrum here has no ties), from scipy's SVD."""
    from scipy.linalg import svd

    U, s, _ = svd(Y - Y.mean(0), full_matrices=False)
    share = np.cumsum(s**2) / np.sum(s**2)
    k = int(np.argmax(share >= variance)) + 1
    return U[:, :k] * s[:k]


def _pow2_exponent(scale):
    return int(np.frexp(scale)[1])


# -- item 7: SVCCA with tied singular values at the variance cut ----------------------------
def _tied(rng, norms, n=32):
    """X whose centred columns are exactly orthogonal with norms ``norms`` * sqrt(n) (columns
    of a Hadamard matrix, the constant column left out: every entry +-norm, exact), so the
    singular values are exactly ``norms`` * sqrt(n); Y shares two of its directions."""
    H = hadamard(n).astype(float)[:, 1: 1 + len(norms)]
    X = H * np.asarray(norms, dtype=float)
    Y = rng.normal(size=(n, 5))
    Y[:, :2] += X[:, :2] + X[:, 2:3]
    return X, Y


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("variance", [0.3, 0.5, 0.9])
def test_svcca_keeps_the_whole_tied_block_at_the_cut(seed, variance):
    # All four singular values of X are equal, so any cut inside the block would keep an
    # arbitrary subspace (rotating X changed the value: 0.24, 0.20, 0.22, 0.34 before the fix).
    # Keeping the whole block makes SVCCA = CCA (all directions kept), which is invariant.
    rng = np.random.default_rng(seed)
    X, Y = _tied(rng, [1.0, 1.0, 1.0, 1.0])
    expected = _mean_cca(X, _top_y(Y, variance))  # scipy: all four directions of X kept
    for r in range(4):
        R = _orthogonal(np.random.default_rng(100 + r), 4)
        metric = SVCCA(variance=variance)
        assert metric.fit_score(X @ R, Y) == pytest.approx(expected, abs=1e-10)
        assert metric.n_components_x_ == 4


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("variance", [0.45, 0.6, 0.75])
def test_svcca_tie_inside_the_spectrum(seed, variance):
    # singular values proportional to 3, 2, 2, 2, 1: explained shares 9/22, 13/22, 17/22, 21/22,
    # 1. Each variance here cuts inside the block of 2s, so the block is kept whole: the top
    # four directions, whose span is that of X's first four columns (exact by construction).
    rng = np.random.default_rng(seed)
    X, Y = _tied(rng, [3.0, 2.0, 2.0, 2.0, 1.0])
    expected = _mean_cca(X[:, :4], _top_y(Y, variance))  # scipy, the four kept directions
    for r in range(3):
        R = _orthogonal(np.random.default_rng(200 + r), 5)  # keeps the singular values
        metric = SVCCA(variance=variance)
        assert metric.fit_score(X @ R, Y) == pytest.approx(expected, abs=1e-10)
        assert metric.n_components_x_ == 4


def test_svcca_without_a_tie_keeps_the_fewest_directions():
    # No tie at the cut: the rule is unchanged. Singular values proportional to 3, 2, 1.5: the
    # top one explains 9 / 15.25 = 0.59 >= 0.5, so one direction
    rng = np.random.default_rng(0)
    X, Y = _tied(rng, [3.0, 2.0, 1.5])
    metric = SVCCA(variance=0.5)
    metric.fit_score(X, Y)
    assert metric.n_components_x_ == 1
    assert metric.score(X, Y) == pytest.approx(_mean_cca(X[:, :1], _top_y(Y, 0.5)), abs=1e-12)


def test_svcca_tied_block_streamed_matches_whole_data():
    # the covariance route (eigenvalues of Xc'Xc) sees the same tie and keeps the same block
    rng = np.random.default_rng(4)
    X, Y = _tied(rng, [3.0, 2.0, 2.0, 2.0, 1.0])
    X = X @ _orthogonal(rng, 5)
    metric = SVCCA(variance=0.6)
    whole = clone(metric).fit_score(X, Y)
    streamed = stream_score(metric, [(X[:10], Y[:10]), (X[10:], Y[10:])])
    assert streamed == pytest.approx(whole, abs=1e-10)
    assert metric.n_components_x_ == 4


# -- extreme scales: subnormal and huge activations -----------------------------------------
#: Metrics whose value does not change when either input is multiplied by a positive number.
SCALE_FREE = [
    CCA(), CCA(statistic="mean_rho_sq"), SVCCA(), SVCCA(variance=0.9), PWCCA(),
    PWCCA(side="y"), PWCCA(side="symmetric"),
    OrthogonalProcrustes(), ShapeMetric(), ShapeMetric(alpha=0.0),
    ShapeMetric(center_columns=False), PermutationMetric(),
]
#: Metrics whose value is multiplied by c when both inputs are.
HOMOGENEOUS = [
    OrthogonalProcrustes(score_method="euclidean"),
    ShapeMetric(alpha=0.0, score_method="euclidean"),
    PermutationMetric(score_method="euclidean"), SoftMatching(),
]
SCALES = [1e-310, 1e-300, 1e300]


def _scale_data(rng, n=60, dx=5, dy=4):
    X = rng.normal(size=(n, dx)) @ rng.normal(size=(dx, dx)) + 0.5
    Y = np.tanh(X[:, :dy]) + 0.3 * rng.normal(size=(n, dy))
    return X, Y


@pytest.mark.parametrize("metric", SCALE_FREE, ids=repr)
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("seed", [0, 1])
def test_scale_free_metrics_at_extreme_scales(metric, scale, seed):
    # Expected: the value on X, Y. Multiplying by 1e-310 rounds X to ~13 digits (subnormal),
    # so against X itself 1e-9; against the exactly power-of-two rescaled copy of the very
    # bits given (times_pow2 is exact, and the metric is scale-free) 1e-11.
    X, Y = _scale_data(np.random.default_rng(seed))
    Xs, Ys = X * scale, Y * scale
    k = -_pow2_exponent(scale)
    base = clone(metric).fit_score(X, Y)
    value = clone(metric).fit_score(Xs, Ys)
    exact = clone(metric).fit_score(times_pow2(Xs, k), times_pow2(Ys, k))
    assert value == pytest.approx(base, rel=1e-9, abs=1e-9)
    assert value == pytest.approx(exact, rel=1e-11, abs=1e-11)
    # each side alone at an extreme scale, the other at 1
    assert clone(metric).fit_score(Xs, Y) == pytest.approx(base, rel=1e-9, abs=1e-9)
    assert clone(metric).fit_score(X, Ys) == pytest.approx(base, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("metric", [m for m in SCALE_FREE if hasattr(m, "transform")],
                         ids=repr)
@pytest.mark.parametrize("scale", SCALES)
def test_scale_free_held_out_scores_at_extreme_scales(metric, scale):
    # fit on 40 stimuli, score on 20 others: the same value as at scale 1 (see above)
    X, Y = _scale_data(np.random.default_rng(5))
    base = clone(metric).fit(X[:40], Y[:40]).score(X[40:], Y[40:])
    fitted = clone(metric).fit(X[:40] * scale, Y[:40] * scale)
    assert fitted.score(X[40:] * scale, Y[40:] * scale) == pytest.approx(base, rel=1e-9)
    A, B = fitted.transform(X[40:] * scale, Y[40:] * scale)
    assert np.all(np.isfinite(A)) and np.all(np.isfinite(B))


@pytest.mark.parametrize("metric", HOMOGENEOUS, ids=repr)
@pytest.mark.parametrize("scale", SCALES)
def test_homogeneous_metrics_at_extreme_scales(metric, scale):
    # d(c X, c Y) = c d(X, Y) for c > 0 (Euclidean distances after an isometric alignment and
    # scale-free whitening): expected times_pow2(value on the rescaled copy, -k), exact scaling
    X, Y = _scale_data(np.random.default_rng(2))
    Xs, Ys = X * scale, Y * scale
    k = -_pow2_exponent(scale)
    value = clone(metric).fit_score(Xs, Ys)
    exact = clone(metric).fit_score(times_pow2(Xs, k), times_pow2(Ys, k))
    assert value == pytest.approx(float(times_pow2(np.array([exact]), -k)[0]), rel=1e-11)


@pytest.mark.parametrize("score_method", ["angular", "euclidean"])
def test_partial_whitening_at_extreme_scales_tends_to_its_limits(score_method):
    # netrep's map of the eigenvalues of C = Xc'Xc, alpha + (1 - alpha) / sqrt(lam), rescaled to
    # keep tr C: at 1e-310 the 1/sqrt(lam) term outweighs alpha by 1e300, so the whitening is
    # full (alpha = 0); at 1e300 it is none (alpha = 1). Angular: the limits' values;
    # Euclidean: the limits' values times the scale.
    X, Y = _scale_data(np.random.default_rng(3))
    for scale, limit in ((1e-310, 0.0), (1e300, 1.0)):
        k = -_pow2_exponent(scale)
        Xs, Ys = times_pow2(X, -k), times_pow2(Y, -k)  # exact powers of two: X * 2**-k
        value = ShapeMetric(alpha=0.5, score_method=score_method).fit_score(Xs, Ys)
        expected = ShapeMetric(alpha=limit, score_method=score_method).fit_score(X, Y)
        if score_method == "euclidean":
            expected = float(times_pow2(np.array([expected]), -k)[0])
        assert value == pytest.approx(expected, rel=1e-10)
        # held out: the fitted whiteners are those of the limits too
        fitted = ShapeMetric(alpha=0.5, score_method=score_method).fit(Xs[:40], Ys[:40])
        value = fitted.score(Xs[40:], Ys[40:])
        limit_fit = ShapeMetric(alpha=limit, score_method=score_method).fit(X[:40], Y[:40])
        expected = limit_fit.score(X[40:], Y[40:])
        if score_method == "euclidean":
            expected = float(times_pow2(np.array([expected]), -k)[0])
        assert value == pytest.approx(expected, rel=1e-10)


def test_subnormal_input_no_longer_fails_the_whitening():
    # the reproducer: ShapeMetric(alpha=0) on X * 1e-310 raised "SVD did not converge"
    X, Y = _scale_data(np.random.default_rng(0))
    value = ShapeMetric(alpha=0.0).fit_score(X * 1e-310, Y * 1e-310)
    assert value == pytest.approx(ShapeMetric(alpha=0.0).fit_score(X, Y), rel=1e-9)


# -- Procrustes and the shape metrics for d > n: the n-space route --------------------------
def _wide(rng, n, d):
    X = rng.normal(size=(n, d)) + 1.0
    Y = X @ rng.normal(size=(d, d)) / np.sqrt(d) + 0.5 * rng.normal(size=(n, d)) - 2.0
    return X, Y


def _closest_rotation_by_hand(M, tol):
    """The rotation Q maximising <M, Q> (M = Yc'Xc) that is closest to the identity among the
    maximisers, from scipy's d x d SVD: Q = U_r V_r' on the singular directions with s > tol,
    and on the others U_0 G V_0' with G the orthogonal polar factor of U_0'V_0 (it maximises
    tr(U_0 G V_0'), i.e. tr Q)."""
    from scipy.linalg import svd

    U, s, Vt = svd(M)
    r = int(np.sum(s > tol * s[0]))
    a, _, bt = svd(U[:, r:].T @ Vt[r:].T)
    return U[:, :r] @ Vt[:r] + U[:, r:] @ (a @ bt) @ Vt[r:]


@pytest.mark.parametrize("n, d", [(10, 60), (25, 40), (8, 8 * 3 + 1)])
@pytest.mark.parametrize("seed", [0, 1])
def test_procrustes_wide_fit_score_equals_the_nuclear_norm(n, d, seed):
    # closed form on the fitting data: arccos(||Xc'Yc||_* / (||Xc|| ||Yc||)), the nuclear norm
    # from scipy's SVD of the d x d cross-product; Euclidean sqrt(|X|^2 + |Y|^2 - 2 ||.||_*)
    X, Y = _wide(np.random.default_rng(seed), n, d)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    nuclear = np.linalg.svd(Yc.T @ Xc, compute_uv=False).sum()
    nx, ny = np.linalg.norm(Xc), np.linalg.norm(Yc)
    assert OrthogonalProcrustes().fit_score(X, Y) == pytest.approx(
        np.arccos(nuclear / (nx * ny)), abs=1e-10)
    assert OrthogonalProcrustes(score_method="euclidean").fit_score(X, Y) == pytest.approx(
        np.sqrt(nx**2 + ny**2 - 2 * nuclear), rel=1e-10)


@pytest.mark.parametrize("n, d", [(10, 60), (12, 30)])
@pytest.mark.parametrize("seed", [0, 1])
def test_procrustes_wide_takes_the_n_space_route(n, d, seed):
    # the rotation is kept as I + W (Q_w - I) W' with W (d x 2n) orthonormal columns whose
    # span holds both row spaces (the Q factor of [Xc' Yc'])
    X, Y = _wide(np.random.default_rng(seed), n, d)
    metric = OrthogonalProcrustes().fit(X, Y)
    basis = metric._rotation.basis
    assert basis is not None and basis.shape == (d, 2 * n)
    np.testing.assert_allclose(basis.T @ basis, np.eye(2 * n), atol=1e-13)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    for A in (Xc, Yc):
        np.testing.assert_allclose(A @ basis @ basis.T, A, atol=1e-12 * np.abs(A).max())
    Q = metric.rotation_  # formed on access
    np.testing.assert_allclose(Q.T @ Q, np.eye(d), atol=1e-12)  # orthogonal
    # the identity on directions orthogonal to both row spaces
    v = np.random.default_rng(9).normal(size=d)
    v -= basis @ (basis.T @ v)
    np.testing.assert_allclose(Q @ v, v, atol=1e-12)
    # and the held-out value by hand: scipy's d x d route with the same rule for the null part
    Qh = _closest_rotation_by_hand(Yc.T @ Xc, d * np.finfo(float).eps)
    np.testing.assert_allclose(Q, Qh, atol=1e-9)


@pytest.mark.parametrize("metric", [
    OrthogonalProcrustes(), OrthogonalProcrustes(score_method="euclidean"),
    ShapeMetric(alpha=0.0), ShapeMetric(alpha=0.5),
    ShapeMetric(alpha=0.5, score_method="euclidean"), ShapeMetric(center_columns=False),
], ids=repr)
@pytest.mark.parametrize("n, d, dy", [(10, 40, 40), (15, 30, 22), (12, 9, 20)])
def test_n_space_route_equals_the_d_space_route(metric, n, d, dy, monkeypatch):
    # two routes to the same rotation (the maximiser closest to the identity): the d x d SVD
    # of the cross-product and the n-space one; fitted, held-out and transformed values agree
    # to 1e-10 (rounding of two different SVDs)
    rng = np.random.default_rng(n + d)
    X, _ = _wide(rng, 2 * n, d)
    Y = np.tanh(X[:, :1] + rng.normal(size=(2 * n, dy)))
    tr, te = slice(0, n), slice(n, 2 * n)
    thin = clone(metric).fit(X[tr], Y[tr])
    thin_fit_score = clone(metric).fit_score(X[tr], Y[tr])
    monkeypatch.setattr(shape_module, "use_n_space_route", lambda n_rows, width: False)
    dense = clone(metric).fit(X[tr], Y[tr])
    assert dense._rotation.basis is None and thin._rotation.basis is not None
    assert thin_fit_score == pytest.approx(clone(metric).fit_score(X[tr], Y[tr]), abs=1e-10)
    assert thin.score(X[te], Y[te]) == pytest.approx(dense.score(X[te], Y[te]), abs=1e-10)
    for a, b in zip(thin.transform(X[te], Y[te]), dense.transform(X[te], Y[te])):
        np.testing.assert_allclose(a, b, atol=1e-10 * np.abs(b).max())
    np.testing.assert_allclose(thin.rotation_, dense.rotation_, atol=1e-10)


@pytest.mark.parametrize("metric", [PermutationMetric(), SoftMatching()], ids=repr)
def test_held_out_matching_for_d_greater_than_n(metric):
    # the matching metrics share the fit/score plumbing: held-out score = the distance of the
    # transformed held-out data (definition), for d > n
    rng = np.random.default_rng(0)
    X, Y = _wide(rng, 20, 30)
    fitted = clone(metric).fit(X[:10], Y[:10])
    A, B = fitted.transform(X[10:], Y[10:])
    if fitted.score_method == "angular":
        expected = np.arccos(np.sum(A * B) / (np.linalg.norm(A) * np.linalg.norm(B)))
    else:
        expected = np.linalg.norm(A - B)
    assert fitted.score(X[10:], Y[10:]) == pytest.approx(expected, abs=1e-10)


def test_procrustes_n10_d5000_is_fast_enough_to_run():
    # the size (4 minutes before): a value, checked by the closed form on the fitting
    # data via the n x n route of the nuclear norm (||Xc'Yc||_* = ||Sx Ux'Uy Sy||_*, scipy
    # SVDs of the thin factors). No timing here (see the report's benchmark line).
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(10, 5000)), rng.normal(size=(10, 5000))
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Ux, sx, _ = np.linalg.svd(Xc, full_matrices=False)
    Uy, sy, _ = np.linalg.svd(Yc, full_matrices=False)
    nuclear = np.linalg.svd((Ux * sx).T @ (Uy * sy), compute_uv=False).sum()
    expected = np.arccos(nuclear / (np.linalg.norm(Xc) * np.linalg.norm(Yc)))
    metric = OrthogonalProcrustes().fit(X, Y)
    assert metric.score(X, Y) == pytest.approx(expected, abs=1e-10)
    assert ShapeMetric(alpha=0.0).fit_score(X, Y) == pytest.approx(0.0, abs=1e-6)  # n - 1 < d:
    # fully whitened, both are orthonormal bases of the same (n-1)-dim centred sample space


# -- declared bounds hold on held-out stimuli -------------------------------------------------
ALL = [
    ShapeMetric(), ShapeMetric(score_method="euclidean"), ShapeMetric(alpha=0.0),
    ShapeMetric(alpha=0.5), ShapeMetric(alpha=0.5, score_method="euclidean"),
    ShapeMetric(center_columns=False),
    OrthogonalProcrustes(), OrthogonalProcrustes(score_method="euclidean"),
    PermutationMetric(), PermutationMetric(score_method="euclidean"), SoftMatching(),
    CCA(), CCA(statistic="mean_rho_sq"), SVCCA(), SVCCA(variance=1.0), PWCCA(),
    PWCCA(side="y"), PWCCA(side="symmetric"),
]


def _held_out_kinds(rng, n_train, n_test, d):
    X = rng.normal(size=(n_train + n_test, d)) @ rng.normal(size=(d, d))
    Y = X @ _orthogonal(rng, d) + 0.1 * rng.normal(size=X.shape)
    Xte = X[n_train:]
    return X[:n_train], Y[:n_train], {
        "negated": (Xte, -Xte),
        "unrelated": (Xte, rng.normal(size=Xte.shape)),
        "rotated": (Xte, Xte @ _orthogonal(rng, d)),
        "same": (Xte, Y[n_train:]),
        "flipped_train_map": (Xte, -(Y[n_train:])),
    }


@pytest.mark.parametrize("metric", ALL, ids=repr)
@pytest.mark.parametrize("n_train, d", [(100, 5), (8, 12)])
@pytest.mark.parametrize("seed", [0, 1])
def test_held_out_values_lie_in_the_declared_bounds(metric, n_train, d, seed):
    # Y = -X after fitting on Y ~ X: the held-out angle is near pi (2.85 rad measured before,
    # with bounds declaring pi/2); bounds must hold for every score on any data
    rng = np.random.default_rng(seed)
    Xtr, Ytr, kinds = _held_out_kinds(rng, n_train, 30, d)
    fitted = clone(metric).fit(Xtr, Ytr)
    low, high = fitted.bounds
    # the CCA family's held-out route refuses fits on fewer training stimuli than the two
    # sides' directions (n - 1 < 2 d here: canonical directions then arbitrary), by name
    refuses = isinstance(metric, (CCA, SVCCA, PWCCA)) and n_train - 1 < 2 * d
    for kind, (Xte, Yte) in kinds.items():
        if refuses:
            with pytest.raises(ValueError, match="cannot score held-out stimuli"):
                fitted.score(Xte, Yte)
        else:
            value = fitted.score(Xte, Yte)
            assert low <= value <= high, (kind, value, fitted.bounds)
        value = clone(metric).fit_score(Xte, Yte)
        assert low <= value <= high, (kind, value, fitted.bounds)


def test_angular_shape_bounds_are_zero_to_pi():
    # the held-out angle can reach pi: fitted on Y = X with training means 0 (rows in +- pairs),
    # the rotation is the identity and the held-out Y = -X is at angle pi (closed form)
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(15, 4))
    Xtr, Xte = np.vstack([Z, -Z]), rng.normal(size=(20, 4))
    for metric in (OrthogonalProcrustes(), ShapeMetric(alpha=0.0), ShapeMetric(alpha=0.5)):
        fitted = metric.fit(Xtr, Xtr)
        assert fitted.score(Xte, -Xte) == pytest.approx(np.pi, abs=1e-7)
        assert fitted.bounds == (0.0, np.pi)
