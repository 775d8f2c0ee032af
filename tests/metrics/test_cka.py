"""CKA against independent implementations and closed-form identities."""

import numpy as np
import pytest
import torch

import simmetrics
from simmetrics import KernelCKA, LinearCKA
from simmetrics.metrics.cka import linear_cka
from simmetrics.metrics.hsic import (
    hsic_biased,
    hsic_unbiased,
    linear_hsic_biased_features,
    linear_hsic_unbiased_features,
)

PAIRS = ["X_Y", "X_Z", "X_W"]


def _pair(data, key):
    a, b = key.split("_")
    return data[a], data[b]


# -- reference values (tests/data/reference, computed by other projects' code) -------------
@pytest.mark.parametrize("key", PAIRS)
def test_linear_cka_matches_kornblith_and_ckatorch_values(seed0, key):
    X, Y = _pair(seed0, key)
    ref = seed0["values"][key]["linear_cka"]
    value = LinearCKA().fit_score(X, Y)
    assert value == pytest.approx(ref["kornblith_cka_gram_linear"], abs=1e-12)
    assert value == pytest.approx(ref["ckatorch_cka_base_linear"], abs=1e-12)


@pytest.mark.parametrize("key", PAIRS)
def test_debiased_linear_cka_matches_kornblith_debiased(seed0, key):
    X, Y = _pair(seed0, key)
    ref = seed0["values"][key]["debiased_linear_cka"]
    value = LinearCKA(debiased=True).fit_score(X, Y)
    assert value == pytest.approx(ref["kornblith_cka_debiased_gram"], abs=1e-12)
    assert value == pytest.approx(ref["ckatorch_unbiased"], abs=1e-12)


@pytest.mark.parametrize("key", PAIRS)
def test_rbf_cka_matches_kornblith_threshold_0p8(seed0, key):
    X, Y = _pair(seed0, key)
    ref = seed0["values"][key]["rbf_cka"]
    assert KernelCKA().fit_score(X, Y) == pytest.approx(
        ref["kornblith_gram_rbf_threshold_0p8"], abs=1e-12
    )
    assert KernelCKA(threshold=1.0).fit_score(X, Y) == pytest.approx(
        ref["kornblith_gram_rbf_threshold_1p0"], abs=1e-12
    )


@pytest.mark.parametrize("key", ["X_Y", "X_Z", "X_Xpd", "X_Xq"])
def test_seed7_cka_values(seed7, key):
    X, Y = _pair(seed7, key)
    ref = seed7["values"][key]
    assert LinearCKA().fit_score(X, Y) == pytest.approx(ref["linear_cka"], abs=1e-12)
    assert LinearCKA(debiased=True).fit_score(X, Y) == pytest.approx(
        ref["debiased_linear_cka"], abs=1e-12
    )
    assert KernelCKA().fit_score(X, Y) == pytest.approx(
        ref["rbf_cka_kornblith_threshold_0p8"], abs=1e-12
    )


# -- ckatorch installed from PyPI, run here -------------------------------------------------
@pytest.mark.parametrize("unbiased", [False, True])
def test_linear_cka_equals_ckatorch(rng, unbiased):
    from ckatorch.core import cka_base

    X = rng.normal(size=(300, 40))
    Y = np.tanh(X @ rng.normal(size=(40, 25))) + 0.3 * rng.normal(size=(300, 25))
    expected = float(
        cka_base(torch.from_numpy(X), torch.from_numpy(Y), kernel="linear", unbiased=unbiased)
    )
    assert LinearCKA(debiased=unbiased).fit_score(X, Y) == pytest.approx(expected, abs=1e-10)


# -- closed-form identities ---------------------------------------------------------------
def test_linear_cka_equals_rv_coefficient(rng):
    # RV coefficient (Escoufier 1973): tr(Sxy Syx) / sqrt(tr(Sxx^2) tr(Syy^2)).
    X = rng.normal(size=(80, 7)) + 5
    Y = X @ rng.normal(size=(7, 4)) + rng.normal(size=(80, 4))
    Sxy = np.cov(X.T, Y.T)[:7, 7:]
    Sxx, Syy = np.cov(X.T), np.cov(Y.T)
    rv = np.trace(Sxy @ Sxy.T) / np.sqrt(np.trace(Sxx @ Sxx) * np.trace(Syy @ Syy))
    assert LinearCKA().fit_score(X, Y) == pytest.approx(rv, abs=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_invariant_to_orthogonal_scaling_translation(rng, debiased):
    X = rng.normal(size=(120, 12))
    Y = X[:, :8] ** 2 + rng.normal(size=(120, 8))
    Q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    base = LinearCKA(debiased=debiased).fit_score(X, Y)
    assert LinearCKA(debiased=debiased).fit_score(7.5 * X @ Q - 3.0, Y) == pytest.approx(
        base, abs=1e-12
    )
    assert KernelCKA(debiased=debiased).fit_score(0.1 * X @ Q + 2.0, Y) == pytest.approx(
        KernelCKA(debiased=debiased).fit_score(X, Y), abs=1e-12
    )


@pytest.mark.parametrize("debiased", [False, True])
def test_gram_and_feature_space_routes_agree(rng, debiased):
    # n < d takes the Gram route, n > d the feature route; the same data transposed in width
    # by zero-padding checks both against hsic_* on explicit Gram matrices.
    for n, d in [(30, 200), (200, 30)]:
        X = rng.normal(size=(n, d))
        Y = X[:, : d // 2] + 0.5 * rng.normal(size=(n, d // 2))
        Xc, Yc = X - X.mean(0), Y - Y.mean(0)
        K, L = Xc @ Xc.T, Yc @ Yc.T
        h = hsic_unbiased if debiased else hsic_biased
        expected = h(K, L) / np.sqrt(h(K, K) * h(L, L))
        assert linear_cka(X, Y, debiased=debiased) == pytest.approx(expected, abs=1e-12)


def test_feature_space_hsic_equals_gram_hsic(rng):
    X = rng.normal(size=(40, 6)) + 1.0
    Y = rng.normal(size=(40, 3)) - 2.0
    K, L = X @ X.T, Y @ Y.T
    assert linear_hsic_unbiased_features(X, Y) == pytest.approx(hsic_unbiased(K, L), rel=1e-12)
    assert linear_hsic_biased_features(X, Y) == pytest.approx(hsic_biased(K, L), rel=1e-12)


def test_debiased_cka_is_near_zero_on_independent_data_where_biased_is_inflated(rng):
    # The MONAI PR #9129 observation: biased CKA is about 0.2 on independent data at n = 32.
    biased, debiased = [], []
    for _ in range(50):
        X, Y = rng.normal(size=(32, 16)), rng.normal(size=(32, 16))
        biased.append(LinearCKA().fit_score(X, Y))
        debiased.append(LinearCKA(debiased=True).fit_score(X, Y))
    assert np.mean(biased) > 0.15
    assert abs(np.mean(debiased)) < 0.03


def test_kernel_options(rng):
    X = rng.normal(size=(50, 4))
    Y = X + 0.2 * rng.normal(size=(50, 4))
    linear = KernelCKA(kernel="linear").fit_score(X, Y)
    assert linear == pytest.approx(LinearCKA().fit_score(X, Y), abs=1e-12)
    custom = KernelCKA(kernel=lambda A: A @ A.T).fit_score(X, Y)
    assert custom == pytest.approx(linear, abs=1e-12)
    fixed = KernelCKA(sigma=1.5).fit_score(X, Y)
    assert 0 < fixed < 1
    assert fixed != pytest.approx(KernelCKA(sigma=0.2).fit_score(X, Y), abs=1e-3)


def test_kernel_cka_declares_scaling_invariance_only_with_median_bandwidth():
    assert "isotropic_scaling" in KernelCKA().invariances
    assert "isotropic_scaling" not in KernelCKA(sigma=1.0).invariances
    assert KernelCKA(kernel=np.dot).invariances == frozenset()


# -- errors ------------------------------------------------------------------------------
def test_debiased_needs_four_samples(rng):
    with pytest.raises(ValueError, match="X has 3 samples, but this estimator needs at least 4"):
        LinearCKA(debiased=True).fit_score(rng.normal(size=(3, 2)), rng.normal(size=(3, 2)))


def test_constant_representation_is_an_error(rng):
    with pytest.raises(ValueError, match="Y has zero variance"):
        LinearCKA().fit_score(rng.normal(size=(10, 3)), np.ones((10, 3)))


def test_kernel_cka_bad_parameters(rng):
    X = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match=r"parameter 'sigma' must be None or a finite real number in \(0, inf\)"):
        KernelCKA(sigma=-1).fit_score(X, X)
    with pytest.raises(ValueError, match="parameter 'kernel' must be one of 'linear', 'rbf' or a callable"):
        KernelCKA(kernel="poly").fit_score(X, X)
    with pytest.raises(ValueError, match=r"kernel\(X\) must return"):
        KernelCKA(kernel=lambda A: A).fit_score(X, X)
    dup = np.vstack([np.repeat(X[:1], 8, axis=0), X[1:3]])  # 66 of 100 distances are 0
    with pytest.raises(ValueError, match="median bandwidth is 0"):
        KernelCKA().fit_score(dup, X)


def test_registry_builds_cka():
    assert isinstance(simmetrics.get_metric("cka"), LinearCKA)
    assert simmetrics.get_metric("rbf_cka", threshold=1.0).threshold == 1.0
    with pytest.raises(ValueError, match="did you mean 'linear_cka'"):
        simmetrics.get_metric("linear_ckaa")


@pytest.mark.parametrize("debiased", [False, True])
def test_offsets_across_the_no_copy_limit_cost_no_digits(rng, debiased):
    # Expected: CKA from explicitly two-pass-centred data (Kornblith's formula; debiased: the
    # unbiased HSIC of the Gram matrices). Data near centred are used without a centred copy
    # (statistics about 0, moved to the means); the limit on raw / centred sums of squares
    # (16, debiased 4) is straddled here, up to offsets of 1e6 spreads.
    from simmetrics._core.linalg import center

    base = rng.normal(size=(400, 12))
    Y = np.tanh(base @ rng.normal(size=(12, 9))) + 0.5 * rng.normal(size=(400, 9))
    for offset in (0.0, 0.5, 1.7, 2.0, 3.8, 4.0, 30.0, 1e6):
        X = base + offset  # raw / centred is about 1 + offset^2
        Xc, Yc = center(X), center(Y)
        if debiased:
            K, L = Xc @ Xc.T, Yc @ Yc.T
            expected = hsic_unbiased(K, L) / np.sqrt(hsic_unbiased(K, K) * hsic_unbiased(L, L))
        else:
            expected = np.sum((Xc.T @ Yc) ** 2) / (
                np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))
        for A, B in ((X, Y), (Y, X)):
            assert LinearCKA(debiased=debiased).fit_score(A, B) == pytest.approx(
                expected, rel=1e-12, abs=1e-13), offset
