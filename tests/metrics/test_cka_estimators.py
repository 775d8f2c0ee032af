"""LinearCKA's four estimators (Gretton, Song, Lange, Chun et al. 2025) against the peers'
values on seed11, their closed forms, and the debiased/estimator compatibility."""

from fractions import Fraction

import numpy as np
import pytest
from sklearn.base import clone

import simmetrics
from simmetrics import LinearCKA
from simmetrics.metrics.hsic import hsic_unbiased, linear_hsic_unbiased_columns

PAIRS = ["X_Y", "X_Z", "X_Xpd", "X_Xq"]

# tests/data/reference/seed11/README.md: nnsi_cka is nacloos/similarity-repository
# nn_similarity_index (commit 035b3bee); lange_* is wrongu/repsim (commit ecd0a545, 0.8.3);
# chun2025_* is badooki/CKA CCN_code/moment_utils.py getest_all (commit 79af27c4): numerator
# with indep_cols=True, self-terms with indep_cols=False
KEYS = {
    "gretton": lambda r: r["nnsi_cka"],
    "song": lambda r: r["lange_kernels_cka_linear_unbiased"],
    "lange": lambda r: np.cos(r["lange_angular_cka_default_unbiased"]),
    "chun": lambda r: r["chun2025_cka_corrected_input_and_feature"],
}


@pytest.mark.parametrize("estimator", sorted(KEYS))
@pytest.mark.parametrize("pair", PAIRS)
def test_seed11_values_of_every_estimator(seed11, estimator, pair):
    other = seed11[pair.split("_")[1]]
    expected = KEYS[estimator](seed11["values"][pair])
    metric = LinearCKA(estimator=estimator)
    value = metric.fit_score(seed11["X"], other)
    assert value == pytest.approx(expected, abs=1e-8)
    # the n x n route (n below the widths) and pairwise give the same values
    X, Y = seed11["X"][:30], other[:30]
    gram = LinearCKA(estimator=estimator).fit_score(X, Y)
    matrix = simmetrics.pairwise(metric, [X, X[:, :7]], [Y])
    assert float(matrix[0][0]) == pytest.approx(gram, abs=1e-12)


def _chun_direct(X, Y):
    """Chun et al.'s estimator from its definition, n x n kernels, column by column."""
    def corrected(A):
        K = A @ A.T
        same = sum(hsic_unbiased(np.outer(a, a), np.outer(a, a)) for a in A.T)
        return A.shape[1] / (A.shape[1] - 1) * (hsic_unbiased(K, K) - same)
    return hsic_unbiased(X @ X.T, Y @ Y.T) / np.sqrt(corrected(X) * corrected(Y))


def _lange_direct(X, Y):
    n = X.shape[0]
    H = np.eye(n) - 1.0 / n
    K, L = H @ X @ X.T @ H, H @ Y @ Y.T @ H
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(L, 0.0)
    return np.sum(K * L) / np.sqrt(np.sum(K * K) * np.sum(L * L))


@pytest.mark.parametrize("n, dx, dy", [(40, 6, 4), (12, 30, 20)])
def test_closed_forms(rng, n, dx, dy):
    # expected: the definitions with n x n matrices (both routes: feature and Gram space)
    X = rng.normal(size=(n, dx)) @ rng.normal(size=(dx, dx)) + 2.0
    Y = np.maximum(X[:, :dy] + rng.normal(size=(n, dy)), 0.0)
    assert LinearCKA(estimator="lange").fit_score(X, Y) == pytest.approx(_lange_direct(X, Y),
                                                                         abs=1e-12)
    assert LinearCKA(estimator="chun").fit_score(X, Y) == pytest.approx(_chun_direct(X, Y),
                                                                        rel=1e-10)


def test_column_share(rng):
    A = rng.normal(size=(25, 4)) + 3.0
    direct = sum(hsic_unbiased(np.outer(a, a), np.outer(a, a)) for a in A.T)
    assert linear_hsic_unbiased_columns(A) == pytest.approx(direct, rel=1e-12)


def test_identical_inputs_and_transformations(rng):
    X = rng.normal(size=(60, 8)) @ rng.normal(size=(8, 8))
    Q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    for estimator in ("gretton", "song", "lange"):
        assert LinearCKA(estimator=estimator).fit_score(X, 3 * X @ Q + 1) == pytest.approx(1.0)
    chun = LinearCKA(estimator="chun")
    P = np.diag([1.0, -1.0] * 4)[rng.permutation(8)]
    base = chun.fit_score(X, X)
    assert base > 1.0  # correlated neurons: not bounded by 1
    assert chun.fit_score(X, 2 * X @ P - 5) == pytest.approx(base, rel=1e-10)
    assert chun.fit_score(X, X @ Q) != pytest.approx(base, rel=1e-3)  # not rotation invariant


def test_debiased_and_estimator_agree(rng):
    X, Y = rng.normal(size=(50, 5)), rng.normal(size=(50, 4))
    assert (LinearCKA(debiased=True).fit_score(X, Y)
            == LinearCKA(estimator="song").fit_score(X, Y)
            == LinearCKA(debiased=True, estimator="song").fit_score(X, Y))
    assert LinearCKA().fit_score(X, Y) == LinearCKA(estimator="gretton").fit_score(X, Y)
    for estimator in ("gretton", "lange", "chun"):
        with pytest.raises(ValueError, match="debiased=True and estimator"):
            LinearCKA(debiased=True, estimator=estimator).fit_score(X, Y)
    with pytest.raises(ValueError, match="estimator"):
        LinearCKA(estimator="biased").fit_score(X, Y)


def test_declarations():
    assert LinearCKA(estimator="chun").bounds == (-np.inf, np.inf)
    assert LinearCKA(estimator="lange").bounds == (-1.0, 1.0)
    assert "orthogonal" not in LinearCKA(estimator="chun").invariances
    assert LinearCKA(estimator="lange").invariances == LinearCKA().invariances
    assert LinearCKA(estimator="chun").min_samples == 4


def test_streaming(rng):
    X = np.maximum(rng.normal(size=(300, 6)) + 0.5, 0.0)
    Y = X[:, :4] @ rng.normal(size=(4, 5)) + rng.normal(size=(300, 5))
    batches = [(X[a:b], Y[a:b]) for a, b in ((0, 1), (1, 90), (90, 300))]
    lange = LinearCKA(estimator="lange")
    assert simmetrics.stream_score(lange, batches) == pytest.approx(
        lange.fit_score(X, Y), rel=1e-10)
    with pytest.raises(TypeError, match="cannot be computed from batches"):
        simmetrics.stream_score(LinearCKA(estimator="chun"), batches)


def test_dominant_stimulus_keeps_the_digits(rng):
    # expected: the n x n definitions; the feature-space sums lose the digits here
    X = rng.normal(size=(80, 5))
    Y = X @ rng.normal(size=(5, 4)) + rng.normal(size=(80, 4))
    X[3] *= 1e8
    Y[3] *= 1e8
    assert LinearCKA(estimator="lange").fit_score(X, Y) == pytest.approx(_lange_direct(X, Y),
                                                                         abs=1e-7)
    value = LinearCKA(estimator="lange").fit_score(X[::-1], Y[::-1])
    assert value == pytest.approx(LinearCKA(estimator="lange").fit_score(X, Y), abs=1e-9)


def test_edge_cases(rng):
    X = rng.normal(size=(30, 4)) @ rng.normal(size=(4, 4)) + 1.0  # correlated neurons
    with pytest.raises(ValueError, match="1 neuron"):
        LinearCKA(estimator="chun").fit_score(X, X[:, :1])
    dead = X.copy()
    dead[:, 2] = 0.0  # a dead unit: still defined
    assert np.isfinite(LinearCKA(estimator="chun").fit_score(X, dead))
    binary = (X > 0).astype(float)  # ties
    for estimator in ("lange", "chun"):
        metric = LinearCKA(estimator=estimator)
        assert metric.fit_score(binary, X) == pytest.approx(clone(metric).fit_score(X, binary))
    with pytest.raises(ValueError, match="X"):
        LinearCKA(estimator="lange").fit_score(np.ones((30, 3)), X)
    # independent neurons: the corrected self-term is noise about 0; where it is not positive
    # it is refused by name, never a NaN
    for seed in range(20):
        Y = np.random.default_rng(seed).normal(size=(30, 4))
        try:
            assert np.isfinite(LinearCKA(estimator="chun").fit_score(X, Y))
        except ValueError as error:
            assert "self-term of Y" in str(error)


# Chun et al.'s CKA on one dominant stimulus (a row 1e8 times the others): the expected value from
# exact rational arithmetic on the same floats (Song's unbiased HSIC of the n x n kernels, the
# same-neuron kernels one at a time). The power sums s_2^2 - s_4, ... of the same-neuron share
# lost 1.7e-3 of it here before they were replaced by exclusive sums.
def _exact_hsic1(K):
    n = len(K)
    trace = sum(K[i][j] * K[i][j] for i in range(n) for j in range(n) if i != j)
    rows = [sum(K[i][j] for j in range(n) if j != i) for i in range(n)]
    total = sum(rows)
    return (trace + total * total / ((n - 1) * (n - 2))
            - Fraction(2, n - 2) * sum(r * r for r in rows)) / (n * (n - 3))


def test_chun_cka_of_itself_keeps_its_digits_beside_a_dominant_stimulus():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4)) @ rng.normal(size=(4, 6)) + 0.5 * rng.normal(size=(30, 6))
    X[0] *= 1e8
    A = [[Fraction(float(v)) for v in row] for row in X]
    n, d = X.shape
    K = [[sum(A[i][a] * A[j][a] for a in range(d)) for j in range(n)] for i in range(n)]
    total = _exact_hsic1(K)
    same = sum(_exact_hsic1([[A[i][a] * A[j][a] for j in range(n)] for i in range(n)])
               for a in range(d))
    exact = float(total / (Fraction(d, d - 1) * (total - same)))
    value = simmetrics.LinearCKA(estimator="chun").fit_score(X, X)
    assert abs(value - exact) <= 1e-8 * abs(exact), (value, exact)
