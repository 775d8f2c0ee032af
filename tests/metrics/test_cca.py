"""CCA, SVCCA and PWCCA against independent implementations and closed-form identities."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone

import simmetrics
from simmetrics import CCA, PWCCA, SVCCA
from simmetrics.metrics.cca import canonical_correlations

PAIRS = ["X_Y", "X_Z", "X_W"]


def _pair(data, key):
    a, b = key.split("_")
    return data[a], data[b]


def _group_element(group, d, rng):
    """A random element of ``group`` acting on the neurons of an (n, d) matrix."""
    perm = rng.permutation(d)
    signs = rng.choice([-1.0, 1.0], size=d)
    scales = np.exp(rng.normal(size=d))
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    A = rng.normal(size=(d, d)) + 0.5 * np.eye(d)
    shift = rng.normal(size=d) * 10
    return {
        "permutation": lambda X: X[:, perm],
        "signed_permutation": lambda X: X[:, perm] * signs,
        "positive_scaled_permutation": lambda X: X[:, perm] * scales,
        "scaled_permutation": lambda X: X[:, perm] * scales * signs,
        "orthogonal": lambda X: X @ Q,
        "invertible_linear": lambda X: X @ A,
        "isotropic_scaling": lambda X: 7.3 * X,
        "translation": lambda X: X + shift,
    }[group]


@pytest.fixture
def related(rng):
    """X (150 x 10) with decaying column scales, Y (150 x 7) a noisy nonlinear function of it."""
    X = rng.normal(size=(150, 10)) * np.exp(-np.arange(10) / 3) + 2.0
    Y = np.tanh(X @ rng.normal(size=(10, 7))) + 0.3 * rng.normal(size=(150, 7))
    return X, Y


# -- reference values (tests/data/reference, computed by other projects' code) -------------
@pytest.mark.parametrize("key", PAIRS)
def test_cca_matches_kornblith_repsim_and_numpy(seed0, key):
    X, Y = _pair(seed0, key)
    ref = seed0["values"][key]["cca_full"]
    mean_rho = CCA().fit_score(X, Y)
    r2 = CCA(statistic="mean_rho_sq").fit_score(X, Y)
    assert mean_rho == pytest.approx(ref["numpy_mean_rho"], abs=1e-10)
    assert mean_rho == pytest.approx(ref["repsim_cca_pillai"], abs=1e-10)
    assert r2 == pytest.approx(ref["numpy_mean_rho_sq"], abs=1e-10)
    assert r2 == pytest.approx(ref["kornblith_cca_R2"], abs=1e-10)
    assert r2 == pytest.approx(ref["repsim_cca_yanai"], abs=1e-10)


@pytest.mark.parametrize("key", PAIRS)
def test_svcca_matches_google_svcca_ccazoo_sim_metric(seed0, key):
    X, Y = _pair(seed0, key)
    ref = seed0["values"][key]["svcca_var0.99"]
    metric = SVCCA(variance=0.99)
    value = metric.fit_score(X, Y)
    assert [metric.n_components_x_, metric.n_components_y_] == ref["kept_dims"]
    assert value == pytest.approx(ref["numpy_mean_rho"], abs=1e-10)
    assert value == pytest.approx(ref["google_svcca_mean_cca_coef1"], abs=1e-10)
    assert value == pytest.approx(ref["cca_zoo_CCA_score"], abs=1e-10)
    assert value == pytest.approx(ref["sim_metric_mean_cca_corr"], abs=1e-10)
    assert SVCCA(statistic="mean_rho_sq").fit_score(X, Y) == pytest.approx(
        ref["numpy_mean_rho_sq"], abs=1e-10
    )


@pytest.mark.parametrize("key", ["X_Y", "X_Z"])
def test_seed7_cca_and_svcca_values(seed7, key):
    X, Y = _pair(seed7, key)
    ref = seed7["values"][key]
    assert CCA().fit_score(X, Y) == pytest.approx(ref["cca_mean_rho"], abs=1e-10)
    assert CCA(statistic="mean_rho_sq").fit_score(X, Y) == pytest.approx(
        ref["cca_mean_rho_sq"], abs=1e-10
    )
    assert SVCCA().fit_score(X, Y) == pytest.approx(ref["svcca_0p99_mean_rho"], abs=1e-10)
    if "cca_mean_rho_ccazoo" in ref:
        assert CCA().fit_score(X, Y) == pytest.approx(ref["cca_mean_rho_ccazoo"], abs=1e-10)


@pytest.mark.parametrize("key", ["X_Y", "X_Z"])
def test_pwcca_matches_sim_metric_both_ways_and_repsim(seed0, key):
    # sim_metric's 1 - pwcca_dist(A, B) weights by A (AB: X), BA by Y; repsim symmetrises.
    X, Y = _pair(seed0, key)
    ref = seed0["values"][key]["pwcca"]
    assert PWCCA(side="x").fit_score(X, Y) == pytest.approx(
        ref["sim_metric_1_minus_pwcca_dist_AB"], abs=1e-10
    )
    assert PWCCA(side="y").fit_score(X, Y) == pytest.approx(
        ref["sim_metric_1_minus_pwcca_dist_BA"], abs=1e-10
    )
    assert PWCCA(side="symmetric").fit_score(X, Y) == pytest.approx(
        ref["repsim_pwcca_symmetrised"], abs=1e-10
    )
    # the reference values themselves: repsim's symmetrised value is the mean of AB and BA
    ab, ba = ref["sim_metric_1_minus_pwcca_dist_AB"], ref["sim_metric_1_minus_pwcca_dist_BA"]
    assert ref["repsim_pwcca_symmetrised"] == pytest.approx((ab + ba) / 2, abs=1e-12)


def _sim_metric_full_basis_pwcca(X, Y):
    """sim_metric's convention, re-derived: symmetric whitening, a *full* SVD of the whitened
    cross-covariance, weights normalised over every X-side direction (unmatched ones too)."""

    def whiten(A):
        Ac = A - A.mean(0)
        evals, evecs = np.linalg.eigh(Ac.T @ Ac)
        return Ac, Ac @ (evecs / np.sqrt(evals)) @ evecs.T

    Xc, Wx = whiten(X)
    _, Wy = whiten(Y)
    u, rho, _ = np.linalg.svd(Wx.T @ Wy)
    weights = np.abs((Wx @ u).T @ Xc).sum(axis=1)
    weights /= weights.sum()
    m = rho.size
    return float(weights[:m] @ rho), float(weights[:m].sum()), u, Wx, Xc, rho


def test_pwcca_on_wider_weighting_side_matches_repsim_and_explains_sim_metric(seed0, rng):
    X, W = seed0["X"], seed0["W"]  # 64 and 32 neurons
    ref = seed0["values"]["X_W"]["pwcca"]
    ours_x = PWCCA(side="x").fit_score(X, W)
    ours_y = PWCCA(side="y").fit_score(X, W)
    # weights from the narrower side: sim_metric's BA value
    assert ours_y == pytest.approx(ref["sim_metric_1_minus_pwcca_dist_BA"], abs=1e-10)
    # repsim (matched directions only, Morcos et al.'s definition), symmetrised
    assert PWCCA(side="symmetric").fit_score(X, W) == pytest.approx(
        ref["repsim_pwcca_symmetrised"], abs=1e-10
    )
    # sim_metric's AB value: re-derived here, it is ours scaled by the share of weight its
    # full SVD gives the 32 matched directions ...
    value, share, u, Wx, Xc, rho = _sim_metric_full_basis_pwcca(X, W)
    assert value == pytest.approx(ref["sim_metric_1_minus_pwcca_dist_AB"], abs=1e-10)
    assert value == pytest.approx(ours_x * share, abs=1e-10)
    # ... and that share depends on an arbitrary basis of the 32 unmatched directions
    Q, _ = np.linalg.qr(rng.normal(size=(32, 32)))
    u_rot = np.hstack([u[:, :32], u[:, 32:] @ Q])
    weights = np.abs((Wx @ u_rot).T @ Xc).sum(axis=1)
    weights /= weights.sum()
    assert abs(float(weights[:32] @ rho) - value) > 1e-4


# -- cca-zoo installed from PyPI, run here --------------------------------------------------
def test_canonical_correlations_equal_ccazoo(related):
    from cca_zoo.linear import CCA as ZooCCA

    X, Y = related
    rho = canonical_correlations(X, Y)
    assert rho.shape == (7,)
    model = ZooCCA(n_components=7).fit([X, Y])
    zx, zy = model.transform([X, Y])
    zoo = np.array([abs(np.corrcoef(zx[:, i], zy[:, i])[0, 1]) for i in range(7)])
    np.testing.assert_allclose(np.sort(zoo)[::-1], rho, atol=1e-8)
    assert CCA().fit_score(X, Y) == pytest.approx(model.score([X, Y]), abs=1e-8)


def test_svcca_equals_ccazoo_on_truncated_svd_projections(related):
    from cca_zoo.linear import CCA as ZooCCA

    X, Y = related
    metric = SVCCA(variance=0.9)
    value = metric.fit_score(X, Y)
    projections = []
    for A, k in ((X, metric.n_components_x_), (Y, metric.n_components_y_)):
        Ac = A - A.mean(0)
        U, s, _ = np.linalg.svd(Ac, full_matrices=False)
        share = np.cumsum(s**2) / np.sum(s**2)
        assert share[k - 1] >= 0.9 and (k == 1 or share[k - 2] < 0.9)  # fewest that reach 90%
        projections.append(U[:, :k] * s[:k])
    assert 1 < min(metric.n_components_x_, metric.n_components_y_)
    m = min(metric.n_components_x_, metric.n_components_y_)
    zoo = ZooCCA(n_components=m).fit(projections).score(projections)
    assert value == pytest.approx(zoo, abs=1e-8)


# -- closed-form identities -----------------------------------------------------------------
def test_cca_of_invertible_linear_image_is_one(rng):
    # Same column space after centring: every canonical correlation is 1.
    X = rng.normal(size=(80, 6))
    A = rng.normal(size=(6, 6))
    for metric in (CCA(), CCA(statistic="mean_rho_sq"), SVCCA(variance=1.0), PWCCA()):
        assert metric.fit_score(X, X @ A + 4.0) == pytest.approx(1.0, abs=1e-12)


def test_one_dimensional_cca_is_absolute_pearson(rng):
    x = rng.normal(size=(60, 1))
    y = -np.exp(x) + 0.5 * rng.normal(size=(60, 1))
    r = np.corrcoef(x[:, 0], y[:, 0])[0, 1]
    assert r < 0
    assert CCA().fit_score(x, y) == pytest.approx(abs(r), abs=1e-12)
    assert CCA(statistic="mean_rho_sq").fit_score(x, y) == pytest.approx(r**2, abs=1e-12)
    assert PWCCA().fit_score(x, y) == pytest.approx(abs(r), abs=1e-12)  # one weight, 1


def test_canonical_correlations_equal_covariance_formula(related):
    # Hotelling: rho^2 are the eigenvalues of Sxx^-1 Sxy Syy^-1 Syx.
    X, Y = related
    S = np.cov(X.T, Y.T)
    Sxx, Sxy, Syy = S[:10, :10], S[:10, 10:], S[10:, 10:]
    M = np.linalg.solve(Sxx, Sxy) @ np.linalg.solve(Syy, Sxy.T)
    eig = np.sort(np.linalg.eigvals(M).real)[::-1][:7]
    np.testing.assert_allclose(canonical_correlations(X, Y) ** 2, eig, atol=1e-10)


def test_pwcca_is_sum_of_weighted_correlations_with_explicit_variates(related):
    # alpha_i from explicit canonical variates h_i = Xc Sxx^{-1/2} u_i; Hotelling's directions.
    X, Y = related
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Lx, Ly = np.linalg.cholesky(Xc.T @ Xc), np.linalg.cholesky(Yc.T @ Yc)
    Tx, Ty = np.linalg.inv(Lx).T, np.linalg.inv(Ly).T  # Xc Tx has orthonormal columns
    u, rho, _ = np.linalg.svd((Xc @ Tx).T @ (Yc @ Ty), full_matrices=False)
    H = Xc @ Tx @ u  # n x 7 unit-norm canonical variates of X
    alpha = np.abs(H.T @ Xc).sum(axis=1)
    alpha /= alpha.sum()
    metric = PWCCA(side="x")
    assert metric.fit_score(X, Y) == pytest.approx(float(alpha @ rho), abs=1e-10)
    np.testing.assert_allclose(metric.weights_x_, alpha, atol=1e-10)
    np.testing.assert_allclose(metric.canonical_correlations_, rho, atol=1e-10)


def test_pwcca_sides_swap(related):
    X, Y = related
    assert PWCCA(side="y").fit_score(X, Y) == pytest.approx(
        PWCCA(side="x").fit_score(Y, X), abs=1e-12
    )
    sym = PWCCA(side="symmetric")
    assert sym.fit_score(X, Y) == pytest.approx(sym.fit_score(Y, X), abs=1e-12)


def test_svcca_with_all_variance_is_cca(related):
    X, Y = related
    for statistic in ("mean_rho", "mean_rho_sq"):
        assert SVCCA(variance=1.0, statistic=statistic).fit_score(X, Y) == pytest.approx(
            CCA(statistic=statistic).fit_score(X, Y), abs=1e-12
        )


def test_cca_is_one_when_samples_do_not_exceed_width(rng):
    # n - 1 <= width: the centred column space is all of 1-perp, so every correlation is 1.
    X, Y = rng.normal(size=(20, 19)), rng.normal(size=(20, 3))
    assert CCA().fit_score(X, Y) == pytest.approx(1.0, abs=1e-10)
    assert CCA().fit_score(rng.normal(size=(10, 30)), rng.normal(size=(10, 50))) == pytest.approx(
        1.0, abs=1e-10
    )
    assert CCA().fit_score(rng.normal(size=(20, 5)), Y) < 0.9  # n - 1 > width: informative


def test_duplicate_and_constant_neurons_change_nothing(related):
    X, Y = related
    padded = np.hstack([X, X[:, :3], np.full((150, 2), 5.0), 2 * X[:, 4:5]])
    for metric in (CCA(), CCA(statistic="mean_rho_sq"), PWCCA(side="y")):
        assert metric.fit_score(padded, Y) == pytest.approx(metric.fit_score(X, Y), abs=1e-10)
    # SVCCA's cut sees duplicates (they add variance), but not constant neurons
    with_constants = np.hstack([X, np.full((150, 2), 5.0)])
    assert SVCCA().fit_score(with_constants, Y) == pytest.approx(
        SVCCA().fit_score(X, Y), abs=1e-10
    )
    rho = CCA().fit(padded, Y).canonical_correlations_
    assert rho.shape == (7,) and np.isfinite(rho).all()


def test_extreme_scales_give_the_same_value(related):
    X, Y = related
    for metric in (CCA(), SVCCA(), PWCCA(side="symmetric")):
        base = metric.fit_score(X, Y)
        assert metric.fit_score(X * 1e150, Y * 1e-150) == pytest.approx(base, abs=1e-10)


def test_torch_and_layout_inputs(seed7, related):
    X, Y = related
    assert CCA().fit_score(torch.from_numpy(X).float(), Y) == pytest.approx(
        CCA().fit_score(np.float32(X), Y), abs=1e-12
    )
    H1, H2 = seed7["Hc1"], seed7["Hc2"]  # (80, 12, 4, 4): channels are the neurons
    flat1 = np.moveaxis(H1, 1, -1).reshape(-1, H1.shape[1])
    flat2 = np.moveaxis(H2, 1, -1).reshape(-1, H2.shape[1])
    for cls in (CCA, SVCCA, PWCCA):
        assert cls(layout="nchw").fit_score(H1, H2) == pytest.approx(
            cls().fit_score(flat1, flat2), abs=1e-12
        )


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 40),
    dx=st.integers(1, 12),
    dy=st.integers(1, 12),
    seed=st.integers(0, 2**16),
    dup=st.booleans(),
)
def test_values_are_finite_and_in_bounds(n, dx, dy, seed, dup):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dx))
    Y = np.round(rng.normal(size=(n, dy)), 1) + 1.0
    X[:, 0] += 1.0  # column 0 is never constant
    Y[0, :] = Y.max(axis=0) + 1.0  # row 0 above every other row: no neuron of Y is constant
    if dup:
        X = np.hstack([X, X, np.zeros((n, 1))])
    for metric in (CCA(), CCA(statistic="mean_rho_sq"), SVCCA(), PWCCA(side="symmetric")):
        value = metric.fit_score(X, Y)
        assert 0.0 <= value <= 1.0 + 1e-12


# -- declared invariances, measured -----------------------------------------------------------
@pytest.mark.parametrize("cls", [CCA, SVCCA, PWCCA])
def test_declared_invariances_hold_on_either_side(cls, related, rng):
    X, Y = related
    metric = cls()
    base = metric.fit_score(X, Y)
    assert len(metric.invariances) > 0
    for group in metric.invariances:
        gx = _group_element(group, X.shape[1], rng)
        gy = _group_element(group, Y.shape[1], rng)
        assert metric.fit_score(gx(X), Y) == pytest.approx(base, abs=1e-10), group
        assert metric.fit_score(X, gy(Y)) == pytest.approx(base, abs=1e-10), group


@pytest.mark.parametrize(
    "metric, group",
    [
        (SVCCA(), "positive_scaled_permutation"),  # per-neuron scaling changes the cut
        (SVCCA(), "invertible_linear"),
        (PWCCA(), "orthogonal"),  # rotating X's neurons changes the weights
        (PWCCA(), "positive_scaled_permutation"),
    ],
)
def test_undeclared_groups_change_the_value(metric, group, related, rng):
    X, Y = related
    assert group not in metric.invariances
    g = _group_element(group, X.shape[1], rng)
    assert abs(metric.fit_score(g(X), Y) - metric.fit_score(X, Y)) > 1e-4


def test_svcca_per_neuron_scaling_changes_kept_dims(seed7):
    # Xpd = X P D (positive scaled permutation): CCA cannot tell them apart, SVCCA can.
    X, Xpd = seed7["X"], seed7["Xpd"]
    assert CCA().fit_score(X, Xpd) == pytest.approx(1.0, abs=1e-10)
    metric = SVCCA().fit(X, Xpd)
    assert metric.n_components_x_ != metric.n_components_y_
    assert SVCCA().fit_score(X, Xpd) < 0.999


def test_invariance_declarations():
    assert CCA.invariances == frozenset(simmetrics.GROUP_NAMES)
    assert "invertible_linear" not in SVCCA().invariances
    assert SVCCA(variance=1.0).invariances == frozenset(simmetrics.GROUP_NAMES)
    assert PWCCA(side="symmetric").invariances == PWCCA.invariances


def test_svcca_with_all_variance_is_invariant_to_invertible_maps(related, rng):
    X, Y = related
    g = _group_element("invertible_linear", X.shape[1], rng)
    metric = SVCCA(variance=1.0)
    assert metric.fit_score(g(X), Y) == pytest.approx(metric.fit_score(X, Y), abs=1e-10)


# -- errors ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [CCA, SVCCA, PWCCA])
def test_constant_representation_is_an_error(cls, rng):
    X = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match="Y has zero variance"):
        cls().fit_score(X, np.ones((10, 2)))
    with pytest.raises(ValueError, match="X has zero variance"):
        cls().fit_score(np.full((10, 4), 3.0), X)
    # held out (score needs fit, issue 15): constant scored stimuli are refused the same way
    fitted = cls().fit(rng.normal(size=(30, 4)), rng.normal(size=(30, 3)))
    with pytest.raises(ValueError, match="X has zero variance"):
        fitted.score(np.full((10, 4), 3.0), X)


def test_bad_parameters(rng):
    X = rng.normal(size=(10, 3))
    for variance in (0, 1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"parameter 'variance' must be a finite real number in \(0, 1\]"):
            SVCCA(variance=variance).fit_score(X, X)
    for variance in ("0.99", None, True):
        with pytest.raises(TypeError, match="parameter 'variance' must be a finite real number"):
            SVCCA(variance=variance).fit_score(X, X)
    for cls in (CCA, SVCCA):
        with pytest.raises(ValueError, match="parameter 'statistic' must be one of"):
            cls(statistic="median_rho").fit_score(X, X)
    with pytest.raises(ValueError, match="parameter 'side' must be one of"):
        PWCCA(side="both").fit_score(X, X)


def test_registry_and_clone():
    assert isinstance(simmetrics.get_metric("cca", statistic="mean_rho_sq"), CCA)
    assert simmetrics.get_metric("svcca", variance=0.9).variance == 0.9
    assert simmetrics.get_metric("pwcca", side="y").side == "y"
    metric = clone(SVCCA(variance=0.5, statistic="mean_rho_sq", layout="flatten"))
    assert metric.get_params() == {"variance": 0.5, "statistic": "mean_rho_sq", "layout": "flatten"}
