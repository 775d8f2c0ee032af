"""Shape metrics against netrep's reference values, scipy, POT and closed-form identities."""

import numpy as np
import ot
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.optimize import linear_sum_assignment
from sklearn.base import clone

import simmetrics
from simmetrics import OrthogonalProcrustes, PermutationMetric, ShapeMetric, SoftMatching
from simmetrics._core.linalg import center
from simmetrics.metrics.alignment import angular_distance
from simmetrics.metrics.whitening import partial_whitener

PAIRS0 = ["X_Y", "X_Z", "X_W"]
PAIRS7 = ["X_Y", "X_Xq", "X_Xpd"]


def _pair(data, key):
    a, b = key.split("_")
    return data[a], data[b]


def _centred(A):
    return A - A.mean(axis=0)


def _nuclear(M):
    return np.linalg.svd(M, compute_uv=False).sum()


# -- reference values (tests/data/reference: netrep 0.0.2 run on fixed data) -----------------
@pytest.mark.parametrize("key", PAIRS0)
def test_procrustes_matches_netrep_linear_metric_alpha1(seed0, key):
    X, Y = _pair(seed0, key)
    ref = seed0["values"][key]["procrustes"]
    for metric in (ShapeMetric(), OrthogonalProcrustes()):
        assert metric.fit_score(X, Y) == pytest.approx(
            ref["netrep_LinearMetric_alpha1_angular"], abs=1e-12
        )
        euclid = clone(metric).set_params(score_method="euclidean").fit_score(X, Y)
        # netrep's euclidean is ||X' - Y'Q||_F, not divided by sqrt(n)
        assert euclid == pytest.approx(ref["netrep_LinearMetric_alpha1_euclidean"], abs=1e-10)
        assert euclid == pytest.approx(ref["numpy_euclidean_centered_unnormalised"], abs=1e-10)


@pytest.mark.parametrize("key", PAIRS0)
def test_full_whitening_matches_netrep_alpha0(seed0, key):
    X, Y = _pair(seed0, key)
    ref = seed0["values"][key]["cca_full"]
    value = ShapeMetric(alpha=0.0).fit_score(X, Y)
    assert value == pytest.approx(ref["netrep_LinearMetric_alpha0_angular"], abs=1e-12)
    # Closed form: cos = sum of canonical correlations / sqrt(d_x d_y) after zero-padding, i.e.
    # the mean canonical correlation (over min(d_x, d_y)) times sqrt(min / max).
    dx, dy = X.shape[1], Y.shape[1]
    shrink = np.sqrt(min(dx, dy) / max(dx, dy))
    assert value == pytest.approx(np.arccos(ref["numpy_mean_rho"] * shrink), abs=1e-12)


@pytest.mark.parametrize("key", PAIRS7)
@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("score_method", ["angular", "euclidean"])
def test_seed7_matches_netrep_linear_metric(seed7, key, alpha, score_method):
    X, Y = _pair(seed7, key)
    ref = seed7["values"][key][f"netrep_shape_alpha{alpha}_{score_method}"]
    value = ShapeMetric(alpha=alpha, score_method=score_method).fit_score(X, Y)
    if key == "X_Xpd" and alpha == 0.0 and score_method == "angular":
        # The true value is 0 (full whitening is invariant to invertible maps); netrep's
        # arccos of a cosine rounded to 1 - 2e-16 returns 2.1e-8, our atan2 form ~1e-15.
        assert ref == pytest.approx(0.0, abs=1e-7)
        assert value == pytest.approx(0.0, abs=1e-12)
    else:
        assert value == pytest.approx(ref, abs=1e-10)


@pytest.mark.parametrize("key", ["X_Y", "X_Z"])
def test_permutation_matches_netrep(seed0, key):
    X, Y = _pair(seed0, key)
    ref = seed0["values"][key]["permutation"]
    assert PermutationMetric().fit_score(X, Y) == pytest.approx(
        ref["netrep_PermutationMetric_angular"], abs=1e-12
    )
    assert PermutationMetric(score_method="euclidean").fit_score(X, Y) == pytest.approx(
        ref["netrep_PermutationMetric_euclidean"], abs=1e-10
    )


def test_permutation_zero_pads_unequal_widths_like_netrep(seed0):
    X, W = seed0["X"], seed0["W"]
    ref = seed0["values"]["X_W"]["permutation"]
    assert PermutationMetric().fit_score(X, W) == pytest.approx(
        ref["netrep_PermutationMetric_angular_zero_padded"], abs=1e-12
    )
    assert PermutationMetric(score_method="euclidean").fit_score(X, W) == pytest.approx(
        ref["netrep_PermutationMetric_euclidean_zero_padded"], abs=1e-10
    )


@pytest.mark.parametrize("key", PAIRS7)
def test_seed7_permutation_matches_netrep(seed7, key):
    X, Y = _pair(seed7, key)
    ref = seed7["values"][key]
    assert PermutationMetric().fit_score(X, Y) == pytest.approx(
        ref["netrep_perm_angular"], abs=1e-12
    )
    assert PermutationMetric(score_method="euclidean").fit_score(X, Y) == pytest.approx(
        ref["netrep_perm_euclidean"], abs=1e-10
    )


@pytest.mark.parametrize("key", ["X_Y", "X_Z"])
def test_assignment_objective_equals_reference_and_pot_emd(seed0, key):
    X, Y = _pair(seed0, key)
    ref = seed0["values"][key]["permutation"]
    metric = PermutationMetric().fit(X, Y)
    S = _centred(X).T @ _centred(Y)
    d = S.shape[0]
    objective = S[np.arange(d), metric.permutation_].sum()
    assert objective == pytest.approx(ref["lsa_objective_trace"], rel=1e-12)
    assert objective == pytest.approx(ref["pot_emd_objective_trace"], rel=1e-12)
    # POT run here: on the uniform marginals the optimal plan is a permutation / d, with the
    # same optimum (the assignment polytope's vertices are the permutations).
    plan = ot.emd(np.full(d, 1 / d), np.full(d, 1 / d), -S)
    assert d * np.sum(plan * S) == pytest.approx(objective, rel=1e-12)
    np.testing.assert_array_equal(np.argmax(plan, axis=1), metric.permutation_)


# -- scipy's orthogonal Procrustes and closed forms -----------------------------------------
def test_rotation_equals_scipy_orthogonal_procrustes(rng):
    X = rng.normal(size=(120, 7)) + 3.0
    Y = np.tanh(X @ rng.normal(size=(7, 7))) + 0.1 * rng.normal(size=(120, 7))
    metric = OrthogonalProcrustes().fit(X, Y)
    expected, scale = orthogonal_procrustes(_centred(Y), _centred(X))
    np.testing.assert_allclose(metric.rotation_, expected, atol=1e-10)
    # scipy's scale is the nuclear norm of Yc'Xc: the angular distance's numerator
    cos = scale / (np.linalg.norm(_centred(X)) * np.linalg.norm(_centred(Y)))
    assert metric.score(X, Y) == pytest.approx(np.arccos(cos), abs=1e-12)


def test_procrustes_distance_is_zero_for_rotated_copies(rng, seed0):
    X = seed0["X"]
    Q = seed0["Q_rotation"]
    assert OrthogonalProcrustes().fit_score(X, X @ Q) == pytest.approx(0.0, abs=1e-12)
    assert OrthogonalProcrustes(score_method="euclidean").fit_score(X, X @ Q + 5.0) == (
        pytest.approx(0.0, abs=1e-10)
    )
    # identical inputs: rounding-level (an arccos of the rounded cosine would give ~1e-8)
    assert OrthogonalProcrustes().fit_score(X, X) < 1e-13


def test_unequal_widths_closed_form(rng):
    # zero-padding: Procrustes over the padded width has the same optimum, the nuclear norm of
    # the d_x x d_y cross-product, so both forms have closed expressions.
    X = rng.normal(size=(90, 6))
    Y = X[:, :3] @ rng.normal(size=(3, 4)) + rng.normal(size=(90, 4))
    Xc, Yc = _centred(X), _centred(Y)
    nuc, nx, ny = _nuclear(Xc.T @ Yc), np.linalg.norm(Xc), np.linalg.norm(Yc)
    assert ShapeMetric().fit_score(X, Y) == pytest.approx(np.arccos(nuc / (nx * ny)), abs=1e-12)
    assert ShapeMetric(score_method="euclidean").fit_score(X, Y) == pytest.approx(
        np.sqrt(nx**2 + ny**2 - 2 * nuc), abs=1e-10
    )
    assert ShapeMetric().fit_score(Y, X) == pytest.approx(ShapeMetric().fit_score(X, Y), abs=1e-14)


def test_partial_whitener_matches_netrep_formula(rng):
    # netrep: eigenvalues lam of Xc'Xc mapped to alpha + (1 - alpha) lam^(-1/2), then scaled by
    # sqrt(sum lam / sum (alpha^2 lam + 2 alpha (1 - alpha) sqrt(lam) + (1 - alpha)^2)).
    Xc = _centred(rng.normal(size=(40, 5)) @ rng.normal(size=(5, 5)))
    lam, V = np.linalg.eigh(Xc.T @ Xc)
    for alpha in (0.0, 0.3, 0.9):
        d = alpha + (1 - alpha) * lam**-0.5
        new_var = np.sum(alpha**2 * lam + 2 * alpha * (1 - alpha) * lam**0.5 + (1 - alpha) ** 2)
        expected = (V * (d * np.sqrt(lam.sum() / new_var))) @ V.T
        np.testing.assert_allclose(partial_whitener(Xc, alpha), expected, rtol=1e-10, atol=1e-12)
    assert partial_whitener(Xc, 1.0) is None


def test_angular_distance_near_zero_and_pi():
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    B = A + np.array([[0.0, 1e-9], [0.0, 0.0]])
    # exact small angle: the component of B orthogonal to A over the norms
    perp = B - (np.sum(A * B) / np.sum(A * A)) * A
    expected = np.arctan(np.linalg.norm(perp) / np.linalg.norm(B - perp))
    assert angular_distance(A, B) == pytest.approx(expected, rel=1e-6)
    assert angular_distance(A, -A) == pytest.approx(np.pi, abs=1e-15)
    assert 0.0 <= angular_distance(A, A) < 1e-15


# -- invariances: apply a random group element to one input --------------------------------
def _random_element(group, d, rng):
    P = np.eye(d)[rng.permutation(d)]
    if group == "permutation":
        return P
    if group == "signed_permutation":
        return P * rng.choice([-1.0, 1.0], size=d)
    if group == "positive_scaled_permutation":
        return P * np.exp(rng.normal(size=d))
    if group == "scaled_permutation":
        return P * rng.choice([-1.0, 1.0], size=d) * np.exp(rng.normal(size=d))
    if group == "orthogonal":
        return np.linalg.qr(rng.normal(size=(d, d)))[0]
    if group == "invertible_linear":
        return rng.normal(size=(d, d))
    if group == "isotropic_scaling":
        return np.exp(rng.normal()) * np.eye(d)
    raise ValueError(group)


def _act(group, A, rng):
    if group == "translation":
        return A + 3.0 * rng.normal(size=(1, A.shape[1]))
    return A @ _random_element(group, A.shape[1], rng)


VARIANTS = [
    ShapeMetric(),
    ShapeMetric(score_method="euclidean"),
    ShapeMetric(alpha=0.5),
    ShapeMetric(alpha=0.5, score_method="euclidean"),
    ShapeMetric(alpha=0.0),
    ShapeMetric(alpha=0.0, score_method="euclidean"),
    ShapeMetric(center_columns=False),
    OrthogonalProcrustes(),
    PermutationMetric(),
    PermutationMetric(score_method="euclidean"),
    PermutationMetric(center_columns=False),
    SoftMatching(),
    SoftMatching(center_columns=False),
]


@pytest.mark.parametrize("metric", VARIANTS, ids=repr)
def test_declared_invariances_hold_and_the_others_fail(metric, rng):
    X = np.maximum(rng.normal(size=(70, 6)) @ rng.normal(size=(6, 6)) + 0.5, 0.0)
    Y = np.tanh(X[:, :5] @ rng.normal(size=(5, 5))) + 0.2 * rng.normal(size=(70, 5)) + 1.0
    base = clone(metric).fit_score(X, Y)
    for group in simmetrics.GROUP_NAMES:
        changes = [
            abs(clone(metric).fit_score(_act(group, X, rng), Y) - base),
            abs(clone(metric).fit_score(X, _act(group, Y, rng)) - base),
        ]
        if group in metric.invariances:
            assert max(changes) < 1e-10 * max(1.0, base), (group, changes)
        else:
            assert max(changes) > 1e-4, (group, changes)


def test_invariance_declarations_by_parameter():
    assert "isotropic_scaling" in ShapeMetric.invariances
    assert "isotropic_scaling" not in ShapeMetric(alpha=0.5).invariances
    assert "invertible_linear" in ShapeMetric(alpha=0.0).invariances
    assert "invertible_linear" not in ShapeMetric(alpha=0.0, score_method="euclidean").invariances
    assert "translation" not in ShapeMetric(center_columns=False).invariances
    assert PermutationMetric(score_method="euclidean").invariances == {"permutation",
                                                                        "translation"}
    assert ShapeMetric(score_method="euclidean").bounds == (0.0, np.inf)
    assert ShapeMetric().bounds == (0.0, np.pi)  # held-out angles reach pi (trust issue)


# -- metric axioms ---------------------------------------------------------------------------
@pytest.mark.parametrize("metric", [
    ShapeMetric(), ShapeMetric(score_method="euclidean"), ShapeMetric(alpha=0.5),
    ShapeMetric(alpha=0.5, score_method="euclidean"), ShapeMetric(alpha=0.0),
    SoftMatching(),
], ids=repr)
def test_triangle_inequality_on_random_triples_of_mixed_widths(metric, rng):
    for _ in range(25):
        widths = rng.integers(2, 7, size=3)
        A = [rng.normal(size=(30, w)) @ rng.normal(size=(w, w)) for w in widths]
        d = {(i, j): clone(metric).fit_score(A[i], A[j]) for i in range(3) for j in range(3)}
        for i, j, k in [(0, 1, 2), (1, 0, 2), (0, 2, 1)]:
            assert d[i, k] <= d[i, j] + d[j, k] + 1e-10
        assert d[0, 1] == pytest.approx(d[1, 0], abs=1e-10)
        assert d[0, 0] < 1e-7


@pytest.mark.parametrize("score_method", ["angular", "euclidean"])
def test_permutation_triangle_inequality_for_equal_widths(rng, score_method):
    metric = PermutationMetric(score_method=score_method)
    for _ in range(25):
        A = [rng.normal(size=(30, 5)) @ rng.normal(size=(5, 5)) for _ in range(3)]
        d = lambda i, j: clone(metric).fit_score(A[i], A[j])  # noqa: E731
        assert d(0, 2) <= d(0, 1) + d(1, 2) + 1e-10


def test_permutation_zero_padding_breaks_the_triangle_inequality_across_widths():
    # The documented caveat: with netrep's zero-padding, x -> [x/2, -x/2] -> -x is shorter than
    # x -> -x (each neuron of the 2-wide layer can be matched with a padded silent neuron).
    x = np.array([[1.0], [-1.0], [0.0]])
    Y = np.hstack([x / 2, -x / 2])
    metric = PermutationMetric(score_method="euclidean")
    direct = metric.fit_score(x, -x)
    assert direct == pytest.approx(2 * np.sqrt(2), abs=1e-12)
    assert metric.fit_score(x, Y) + metric.fit_score(Y, -x) == pytest.approx(2.0, abs=1e-12)
    # soft matching has no such problem
    soft = SoftMatching()
    assert soft.fit_score(x, -x) <= soft.fit_score(x, Y) + soft.fit_score(Y, -x)


# -- soft matching ---------------------------------------------------------------------------
def test_soft_matching_equals_pot_wasserstein(rng):
    X = rng.normal(size=(40, 7)) + 2.0
    Y = np.tanh(X[:, :4] @ rng.normal(size=(4, 4))) + 0.1 * rng.normal(size=(40, 4))
    Xc, Yc = _centred(X), _centred(Y)
    # POT run here: squared 2-Wasserstein between the uniform empirical distributions of tuning
    # curves (columns), ot.dist's squared Euclidean ground cost.
    w2 = ot.emd2(np.full(7, 1 / 7), np.full(4, 1 / 4), ot.dist(Xc.T, Yc.T))
    metric = SoftMatching().fit(X, Y)
    assert metric.score(X, Y) == pytest.approx(np.sqrt(w2), abs=1e-12)
    np.testing.assert_allclose(metric.plan_.sum(axis=1), 1 / 7, atol=1e-15)
    np.testing.assert_allclose(metric.plan_.sum(axis=0), 1 / 4, atol=1e-15)


def test_soft_matching_one_neuron_closed_form(rng):
    # A single neuron must send its mass to every neuron of Y equally: d^2 = mean_j ||x - y_j||^2
    x = rng.normal(size=(25, 1))
    Y = rng.normal(size=(25, 5))
    expected = np.mean(np.sum((_centred(x) - _centred(Y)) ** 2, axis=0))
    assert SoftMatching().fit_score(x, Y) == pytest.approx(np.sqrt(expected), abs=1e-12)


@pytest.mark.parametrize("key", ["X_Y", "X_Z"])
def test_soft_matching_equals_permutation_distance_for_equal_widths(seed0, key):
    # For equal widths the optimal plan is a permutation / N (Birkhoff), so the soft matching
    # distance is netrep's euclidean permutation distance divided by sqrt(N).
    X, Y = _pair(seed0, key)
    ref = seed0["values"][key]["permutation"]["netrep_PermutationMetric_euclidean"]
    metric = SoftMatching().fit(X, Y)
    assert metric.score(X, Y) == pytest.approx(ref / np.sqrt(X.shape[1]), abs=1e-10)
    perm = PermutationMetric().fit(X, Y).permutation_
    np.testing.assert_array_equal(np.argmax(metric.plan_, axis=1), perm)


def test_soft_matching_is_zero_for_duplicated_neurons(rng):
    X = rng.normal(size=(30, 3))
    assert SoftMatching().fit_score(X, np.repeat(X, 3, axis=1)[:, ::-1] + 1.0) < 1e-12
    assert SoftMatching().fit_score(X, 2 * X) > 0.1  # not scale invariant


# -- fit on train, score held-out; transform ------------------------------------------------
def _train_test(rng, dy=5):
    X = rng.normal(size=(150, 6)) @ rng.normal(size=(6, 6)) + 2.0
    Y = np.tanh(X[:, :dy] @ rng.normal(size=(dy, dy))) + 0.3 * rng.normal(size=(150, dy))
    return X[:100], Y[:100], X[100:], Y[100:]


def test_procrustes_held_out_value_by_hand(rng):
    Xtr, Ytr, Xte, Yte = _train_test(rng, dy=6)
    mx, my = Xtr.mean(0), Ytr.mean(0)
    Q, _ = orthogonal_procrustes(Ytr - my, Xtr - mx)  # scipy, on the training stimuli
    A, B = Xte - mx, (Yte - my) @ Q
    angle = np.arccos(np.sum(A * B) / (np.linalg.norm(A) * np.linalg.norm(B)))
    metric = OrthogonalProcrustes().fit(Xtr, Ytr)
    assert metric.score(Xte, Yte) == pytest.approx(angle, abs=1e-12)
    assert metric.set_params(score_method="euclidean").score(Xte, Yte) == pytest.approx(
        np.linalg.norm(A - B), abs=1e-10
    )


def test_shape_metric_held_out_uses_fitted_whitening(rng):
    Xtr, Ytr, Xte, Yte = _train_test(rng)
    metric = ShapeMetric(alpha=0.5).fit(Xtr, Ytr)
    # by hand: netrep's whitening of the training data (eigh of Xc'Xc), zero-padded Procrustes
    def whitener(A):
        lam, V = np.linalg.eigh(A.T @ A)
        d = 0.5 + 0.5 * lam**-0.5
        return (V * (d * np.sqrt(lam.sum() / np.sum((0.5 * lam**0.5 + 0.5) ** 2)))) @ V.T

    mx, my = Xtr.mean(0), Ytr.mean(0)
    Zx, Zy = whitener(Xtr - mx), whitener(Ytr - my)
    pad = np.zeros((6, 6))
    pad[:5, :5] = Zy
    Ytr_w = np.hstack([Ytr - my, np.zeros((100, 1))]) @ pad
    Q, _ = orthogonal_procrustes(Ytr_w, (Xtr - mx) @ Zx)
    A = (Xte - mx) @ Zx
    B = np.hstack([Yte - my, np.zeros((50, 1))]) @ pad @ Q
    expected = np.arccos(np.sum(A * B) / (np.linalg.norm(A) * np.linalg.norm(B)))
    assert metric.score(Xte, Yte) == pytest.approx(expected, abs=1e-10)
    assert metric.score(Xte, Yte) != pytest.approx(metric.fit_score(Xte, Yte), abs=1e-3)


def test_permutation_held_out_value_by_hand(rng):
    Xtr, Ytr, Xte, Yte = _train_test(rng, dy=6)
    mx, my = Xtr.mean(0), Ytr.mean(0)
    rows, cols = linear_sum_assignment((Xtr - mx).T @ (Ytr - my), maximize=True)
    A, B = (Xte - mx)[:, rows], (Yte - my)[:, cols]
    metric = PermutationMetric(score_method="euclidean").fit(Xtr, Ytr)
    assert metric.score(Xte, Yte) == pytest.approx(np.linalg.norm(A - B), abs=1e-10)


def test_soft_matching_held_out_value_by_hand(rng):
    Xtr, Ytr, Xte, Yte = _train_test(rng)
    mx, my = Xtr.mean(0), Ytr.mean(0)
    plan = ot.emd(np.full(6, 1 / 6), np.full(5, 1 / 5), ot.dist((Xtr - mx).T, (Ytr - my).T))
    cost = ot.dist((Xte - mx).T, (Yte - my).T)
    metric = SoftMatching().fit(Xtr, Ytr)
    np.testing.assert_allclose(metric.plan_, plan, atol=1e-15)
    assert metric.score(Xte, Yte) == pytest.approx(np.sqrt(np.sum(plan * cost)), abs=1e-10)


@pytest.mark.parametrize("metric", VARIANTS, ids=repr)
def test_transform_reproduces_score(metric, rng):
    Xtr, Ytr, Xte, Yte = _train_test(rng)
    metric = clone(metric).fit(Xtr, Ytr)
    for X, Y in ((Xtr, Ytr), (Xte, Yte)):
        A, B = metric.transform(X, Y)
        assert A.shape == B.shape and A.dtype == np.float64
        if metric.score_method == "angular":
            expected = np.arccos(np.sum(A * B) / (np.linalg.norm(A) * np.linalg.norm(B)))
        else:
            expected = np.linalg.norm(A - B)
        assert metric.score(X, Y) == pytest.approx(expected, abs=1e-10)


def test_permutation_transform_reorders_y(rng):
    X = rng.normal(size=(40, 4))
    Y = X[:, [2, 0, 3, 1]] + 0.01 * rng.normal(size=(40, 4))
    metric = PermutationMetric().fit(X, Y)
    A, B = metric.transform(X, Y)
    np.testing.assert_allclose(A, _centred(X))
    np.testing.assert_allclose(B, _centred(Y)[:, [1, 3, 0, 2]])


# -- degenerate data and bad input ------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_rank_deficient_data_gives_finite_values(rng, alpha):
    X = rng.normal(size=(40, 4))
    X_dup = np.hstack([X, X[:, :1], np.full((40, 1), 3.0)])  # duplicate and constant neurons
    Y = X @ rng.normal(size=(4, 4)) + 0.5 * rng.normal(size=(40, 4))
    value = ShapeMetric(alpha=alpha).fit_score(X_dup, Y)
    assert np.isfinite(value)
    if alpha == 0.0:
        # full whitening only sees the column space (pseudo-inverse): the duplicate and the
        # constant neuron add nothing, cos = sum of canonical correlations / sqrt(r_x r_y)
        assert value == pytest.approx(ShapeMetric(alpha=0.0).fit_score(X, Y), abs=1e-10)
    wide = rng.normal(size=(10, 30))  # n < d
    assert np.isfinite(ShapeMetric(alpha=alpha).fit_score(wide, wide[:, :20] ** 2))


def test_bad_parameters_are_errors(rng):
    X, Y = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    for alpha in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"'alpha' must be a finite real number in \[0, 1\]"):
            ShapeMetric(alpha=alpha).fit(X, Y)
    for alpha in ("1", True):  # not numbers: a TypeError since the declarative constraints
        with pytest.raises(TypeError, match=r"'alpha' must be a finite real number in \[0, 1\]"):
            ShapeMetric(alpha=alpha).fit(X, Y)
    for cls in (ShapeMetric, OrthogonalProcrustes, PermutationMetric):
        with pytest.raises(ValueError, match="'score_method' must be one of"):
            cls(score_method="cosine").fit(X, Y)
    with pytest.raises(ValueError, match="'score_method' must be one of 'euclidean' .*SoftMatching"):
        SoftMatching(score_method="angular").fit(X, Y)
    fitted = ShapeMetric().fit(X, Y)
    with pytest.raises(ValueError, match="'score_method' must be one of"):
        fitted.set_params(score_method="manhattan").score(X, Y)


@pytest.mark.parametrize("cls", [ShapeMetric, OrthogonalProcrustes, PermutationMetric,
                                 SoftMatching])
def test_data_errors(cls, rng):
    X, Y = rng.normal(size=(20, 3)), rng.normal(size=(20, 4))
    with pytest.raises(ValueError, match="Y has zero variance"):
        cls().fit(X, np.ones((20, 4)))
    metric = cls().fit(X, Y)
    with pytest.raises(ValueError, match="X has zero variance"):
        metric.score(np.full((5, 3), 2.0), Y[:5])
    with pytest.raises(ValueError, match="Y has 3 neurons, but this metric was fitted with 4"):
        metric.score(X, Y[:, :3])
    with pytest.raises(ValueError, match="X is all zeros"):
        cls(center_columns=False).fit(np.zeros((20, 3)), Y)


def test_a_held_out_input_only_in_a_null_direction_is_orthogonal_to_y(rng):
    # Held-out X varies only in neuron 2, which is silent in training: full whitening gives it
    # no weight, and this used to be the error "the aligned X is zero". The held-out rule
    # (ShapeMetric's Notes) whitens that direction on the scored stimuli and appends it as an
    # extra column, where Y (full rank in training: no unseen part) has nothing. Closed form:
    # the whitened block of X is exactly 0 (X - mean is 0 on neurons 0, 1), so
    # <A, B> = 0: angle pi/2; ||A||^2 = m/n k^2 with k^2 = ||Xtr_c||^2 / 2 (each of the 2
    # whitened training directions), ||B||^2 = ||Yw||^2 = ||Yc||^2 (whitening keeps the total).
    Xtr = np.hstack([rng.normal(size=(30, 2)), np.zeros((30, 1))])
    Y = rng.normal(size=(30, 3))
    metric = ShapeMetric(alpha=0.0).fit(Xtr, Y)
    Xte = np.hstack([np.tile(Xtr[:, :2].mean(0), (30, 1)), rng.normal(size=(30, 1))])
    assert metric.score(Xte, Y) == pytest.approx(np.pi / 2, abs=1e-12)
    euclidean = ShapeMetric(alpha=0.0, score_method="euclidean").fit(Xtr, Y)
    expected = np.sqrt(np.sum(_centred(Xtr) ** 2) / 2 + np.sum(_centred(Y) ** 2))
    assert euclidean.score(Xte, Y) == pytest.approx(expected, rel=1e-12)


# -- estimator plumbing -------------------------------------------------------------------------
def test_clone_and_params(rng):
    X, Y = rng.normal(size=(30, 4)), rng.normal(size=(30, 3))
    metric = ShapeMetric(alpha=0.25, score_method="euclidean").fit(X, Y)
    twin = clone(metric)
    assert twin.get_params() == metric.get_params()
    assert not hasattr(twin, "rotation_")
    # two routes: fit_score takes the distance from the ||A||^2, ||B||^2 and <A, aligned B>
    # its fit computed (closed form), score from the aligned data; the sums run in another
    # order (measured 11.609875082455089 vs ...085, 3e-16 relative): 1e-12 relative
    assert twin.fit_score(X, Y) == pytest.approx(metric.score(X, Y), rel=1e-12)
    assert set(OrthogonalProcrustes().get_params()) == {"score_method", "center_columns",
                                                        "layout"}
    assert OrthogonalProcrustes().alpha == 1.0
    with pytest.raises(ValueError, match="Invalid parameter 'alpha'"):
        OrthogonalProcrustes().set_params(alpha=0.5)
    for cls in (PermutationMetric, SoftMatching):
        # same code, same input (a clone of an unfitted default): bit-identical by construction
        assert clone(cls()).fit_score(X, Y) == cls().fit_score(X, Y)


def test_registry_names():
    assert isinstance(simmetrics.get_metric("procrustes"), OrthogonalProcrustes)
    assert isinstance(simmetrics.get_metric("orthogonal_procrustes"), OrthogonalProcrustes)
    assert simmetrics.get_metric("shape_metric", alpha=0.0).alpha == 0.0
    assert isinstance(simmetrics.get_metric("permutation_metric"), PermutationMetric)
    assert isinstance(simmetrics.get_metric("soft_matching"), SoftMatching)
    for cls in (ShapeMetric, OrthogonalProcrustes, PermutationMetric, SoftMatching):
        assert cls.kind == "distance" and cls.is_metric


@pytest.mark.parametrize("metric", [OrthogonalProcrustes(), PermutationMetric(),
                                    SoftMatching(), OrthogonalProcrustes("euclidean")],
                         ids=repr)
def test_offsets_across_the_no_copy_limit_cost_no_digits(rng, metric):
    # Expected: fit on explicitly centred data, scored on the same aligned data by the formula
    # (arccos of the normalised inner product, or the Frobenius distance). Neurons near
    # centred are used without a centred copy (products about 0, corrected by the means);
    # offsets here straddle that route's limit (raw / centred sum of squares 16) and go far
    # beyond it, on some neurons only.
    base = rng.normal(size=(300, 8))
    Y = np.tanh(base @ rng.normal(size=(8, 8))) + 0.4 * rng.normal(size=(300, 8))
    for offset in (0.0, 1.0, 3.8, 3.9, 4.0, 50.0, 1e6):
        X = base + offset * np.r_[np.ones(4), np.zeros(4)]
        reference = clone(metric).fit(center(X), center(Y))
        A, B = reference.transform(center(X), center(Y))
        if metric.score_method == "angular":
            expected = np.arccos(np.vdot(A, B) / np.linalg.norm(A) / np.linalg.norm(B))
        else:
            expected = np.linalg.norm(A - B)
        assert clone(metric).fit_score(X, Y) == pytest.approx(expected, rel=1e-11), offset
