"""CKNNA (platonic-rep's centred kernel nearest-neighbour alignment) against the seed11
reference values, a dense implementation from the definition, and closed forms."""

import numpy as np
import pytest

import simmetrics
from simmetrics import CKNNA
from simmetrics._core.linalg import pow2_rescale

PAIRS = ["X_Y", "X_Z", "X_Xpd", "X_Xq"]


def _pair(data, key):
    a, b = key.split("_")
    return data[a], data[b]


# -- seed11: minyoungg/platonic-rep commit dcd76ba3c950c1b197a2ae8b1c6713535c94ecf9, metrics.py
# AlignmentMetrics.cknna(topk=10, unbiased=True / False), float64 torch tensors on the raw
# arrays (tests/data/reference/seed11/README.md). platonic-rep adds 1e-6 to the denominator and
# simmetrics does not: the tolerance is 1e-6.
@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("unbiased, suffix", [(True, "_raw"), (False, "_raw_biased")])
def test_seed11_reference_values(seed11, pair, unbiased, suffix):
    X, Y = _pair(seed11, pair)
    value = CKNNA(k=10, unbiased=unbiased, similarity="inner_product").fit_score(X, Y)
    assert value == pytest.approx(seed11["values"][pair][f"platonic_cknna_topk10{suffix}"],
                                  abs=1e-6)


# The same keys, and the unit-row keys (_l2rows, where the +1e-6 moves the value by up to 1e-4
# because the masked HSICs of unit rows are small), to 1e-10 once the peer's 1e-6 is put back.
@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("unbiased, similarity, suffix", [
    (True, "inner_product", "_raw"), (False, "inner_product", "_raw_biased"),
    (True, "cosine", "_l2rows")])
def test_seed11_with_the_peers_epsilon(seed11, pair, unbiased, similarity, suffix):
    X, Y = _pair(seed11, pair)
    m = CKNNA(k=10, unbiased=unbiased, similarity=similarity)
    sx, sy = m._partial_fit(X, "X"), m._partial_fit(Y, "Y")
    # the kernels are of X and Y times powers of two c (exact): the HSICs carry c^4
    cx, cy = (np.abs(pow2_rescale(A)).max() / np.abs(A).max() for A in (X, Y))
    if similarity == "cosine":
        cx = cy = 1.0
    denominator = np.sqrt(sx.self_hsic * sy.self_hsic) / (cx * cy) ** 2
    value = m._finalize_fit_score(sx, sy) * denominator / (denominator + 1e-6)
    assert value == pytest.approx(seed11["values"][pair][f"platonic_cknna_topk10{suffix}"],
                                  abs=1e-10)


# -- a dense implementation from the definition (n x n masks and kernels) ---------------------
def _hsic_unbiased(K, L):
    m = K.shape[0]
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0)
    np.fill_diagonal(L, 0)
    return (np.sum(K * L.T) + K.sum() * L.sum() / ((m - 1) * (m - 2))
            - 2 * np.sum(K @ L) / (m - 2)) / (m * (m - 3))


def _hsic_biased(K, L):
    H = np.eye(K.shape[0]) - 1 / K.shape[0]
    return np.trace(K @ H @ L @ H)


def _dense_cknna(X, Y, k, unbiased):
    n = X.shape[0]
    K, L = X @ X.T, Y @ Y.T

    def mask(G):
        G = G.copy()
        if unbiased:
            np.fill_diagonal(G, -np.inf)
        M = np.zeros((n, n))
        np.put_along_axis(M, np.argsort(-G, axis=1)[:, :k], 1.0, axis=1)
        return M

    hsic = _hsic_unbiased if unbiased else _hsic_biased
    mk, ml = mask(K), mask(L)
    kl, kk, ll = hsic(mk * ml * K, mk * ml * L), hsic(mk * K, mk * K), hsic(ml * L, ml * L)
    return kl / np.sqrt(kk * ll)


@pytest.mark.parametrize("unbiased", [True, False])
def test_equal_to_the_dense_definition(rng, unbiased):
    X = rng.normal(size=(60, 7)) + 0.3
    Y = np.tanh(X @ rng.normal(size=(7, 5))) + 0.3 * rng.normal(size=(60, 5))
    value = CKNNA(k=6, unbiased=unbiased, similarity="inner_product").fit_score(X, Y)
    assert value == pytest.approx(_dense_cknna(X, Y, 6, unbiased), abs=1e-13)
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    V = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    assert CKNNA(k=6, unbiased=unbiased).fit_score(X, Y) == pytest.approx(
        _dense_cknna(U, V, 6, unbiased), abs=1e-13)


# -- closed forms, symmetry ------------------------------------------------------------------
@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("similarity", ["cosine", "inner_product"])
def test_one_for_a_scaled_rotation(rng, unbiased, similarity):
    X = rng.normal(size=(80, 9))
    Q, _ = np.linalg.qr(rng.normal(size=(9, 9)))
    m = CKNNA(k=7, unbiased=unbiased, similarity=similarity)
    assert m.fit_score(X, -2.5 * X @ Q) == pytest.approx(1.0, abs=1e-12)


def test_biased_is_symmetric_unbiased_not_exactly(seed11):
    X, Z = seed11["X"], seed11["Z"]
    b = CKNNA(unbiased=False)
    assert b.fit_score(X, Z) == pytest.approx(b.fit_score(Z, X), abs=1e-14)
    assert CKNNA.symmetric is False and b.symmetric is True


# -- the data users have: ties, dead units, n < d, degenerate input ---------------------------
def test_ties_share_the_places_so_sample_order_does_not_matter(rng):
    X = (rng.random((50, 10)) < 0.3).astype(float)
    X[X.sum(axis=1) == 0, 0] = 1.0
    Y = np.round(2 * X @ rng.random((10, 6))) / 2  # quantised: many ties
    Y[Y.sum(axis=1) == 0, 0] = 1.0
    perm = rng.permutation(50)
    Q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    for unbiased in (True, False):
        for similarity in ("cosine", "inner_product"):
            m = CKNNA(k=5, unbiased=unbiased, similarity=similarity)
            base = m.fit_score(X, Y)
            assert m.fit_score(X[perm], Y[perm]) == pytest.approx(base, abs=1e-12)
            assert m.fit_score(X @ Q, Y) == pytest.approx(base, abs=1e-12)


def test_dead_unit_and_more_neurons_than_samples(rng):
    X = rng.normal(size=(30, 50))
    Y = X @ rng.normal(size=(50, 40)) + rng.normal(size=(30, 40))
    dead = np.hstack([X, np.zeros((30, 1))])
    assert CKNNA(k=4).fit_score(dead, Y) == pytest.approx(CKNNA(k=4).fit_score(X, Y), abs=1e-14)


def test_degenerate_inputs_are_errors_naming_them(rng):
    X = rng.normal(size=(20, 4))
    with pytest.raises(ValueError, match="Y"):
        CKNNA(similarity="inner_product", k=3).fit_score(X, np.zeros((20, 3)))
    Z = X.copy()
    Z[2] = 0
    with pytest.raises(ValueError, match="row 2 of X"):
        CKNNA(k=3).fit_score(Z, X)
    with pytest.raises(ValueError, match="k"):
        CKNNA(k=1).fit_score(X, X)


def test_pairwise_is_fit_score(rng):
    reps = {"a": rng.normal(size=(40, 5)), "b": rng.normal(size=(40, 3)),
            "c": rng.normal(size=(40, 6))}
    m = CKNNA(k=5)
    M = np.asarray(simmetrics.pairwise(m, list(reps.values())))
    assert M[0, 1] == m.fit_score(reps["a"], reps["b"])
    assert M[1, 0] == m.fit_score(reps["b"], reps["a"])
