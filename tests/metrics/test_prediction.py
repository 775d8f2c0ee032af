"""GULP and ReSi's linear regression (simmetrics.metrics.prediction) against ReSi's values on
seed11, their definitions written out with inverses, and the streaming route."""

import numpy as np
import pytest

import simmetrics
from simmetrics.moments import PairMoments

PAIRS = ["X_Y", "X_Z", "X_Xpd", "X_Xq"]


def _other(seed11, pair):
    return seed11[pair.split("_")[1]]


# Reference: mklabunde/resi commit 24ab9e5055c71527445b0b196f5872f3cbe9a020, repsim/measures,
# shape "nd", defaults (tests/data/reference/seed11/README.md, section ReSi): gulp with
# lambda 0 returned squared, and linear_reg(R, Rp) explaining R = X from Rp = the other
# (``_reversed``: the other explained from X).
@pytest.mark.parametrize("pair", PAIRS)
def test_gulp_equals_resi(seed11, pair):
    value = simmetrics.GULP().fit_score(seed11["X"], _other(seed11, pair))
    assert value == pytest.approx(seed11["values"][pair]["resi_gulp_lambda0"], abs=1e-8)


@pytest.mark.parametrize("pair", PAIRS)
def test_linear_regression_equals_resi_both_ways(seed11, pair):
    X, O = seed11["X"], _other(seed11, pair)
    ref = seed11["values"][pair]
    metric = simmetrics.LinearRegressionR2()
    assert metric.fit_score(X, O) == pytest.approx(ref["resi_linear_regression"], abs=1e-8)
    assert metric.fit_score(O, X) == pytest.approx(ref["resi_linear_regression_reversed"],
                                                   abs=1e-8)


def _gulp_paper(X, Y, lmbda):
    """The paper's formula with explicit inverses, after ReSi's normalisation (centred, scaled
    to Frobenius norm sqrt(n))."""
    n = X.shape[0]
    A, B = (M - M.mean(0) for M in (X, Y))
    A, B = (np.sqrt(n) * M / np.linalg.norm(M) for M in (A, B))
    Sa, Sb, Sab = A.T @ A / n, B.T @ B / n, A.T @ B / n
    Ia = np.linalg.inv(Sa + lmbda * np.eye(Sa.shape[0]))
    Ib = np.linalg.inv(Sb + lmbda * np.eye(Sb.shape[0]))
    return (np.trace(Ia @ Sa @ Ia @ Sa) + np.trace(Ib @ Sb @ Ib @ Sb)
            - 2 * np.trace(Ia @ Sab @ Ib @ Sab.T))


@pytest.mark.parametrize("lmbda", [0.0, 0.01, 1.0])
def test_gulp_equals_the_paper_formula(seed11, lmbda):
    X, Z = seed11["X"], seed11["Z"]
    value = simmetrics.GULP(lmbda=lmbda).fit_score(X, Z)
    assert value == pytest.approx(_gulp_paper(X, Z, lmbda), rel=1e-10)
    root = simmetrics.GULP(lmbda=lmbda, squared=False).fit_score(X, Z)
    assert root == pytest.approx(np.sqrt(value), rel=1e-12)


def test_gulp_distance_of_close_inputs_is_not_rounding_noise(seed11):
    X = seed11["X"]
    metric = simmetrics.GULP(lmbda=0.1, squared=False)
    assert metric.fit_score(X, X) < 1e-13
    assert metric.fit_score(X, seed11["Xq"] * 3.0 + 1.0) < 1e-13


def test_linear_regression_is_least_squares_with_an_intercept(rng):
    X, Y = rng.normal(size=(80, 5)), rng.normal(size=(80, 3))
    D = np.column_stack([np.ones(80), Y])
    residual = X - D @ np.linalg.lstsq(D, X, rcond=None)[0]
    Xc = X - X.mean(0)
    expected = 1 - (residual**2).sum() / (Xc**2).sum()
    assert simmetrics.LinearRegressionR2().fit_score(X, Y) == pytest.approx(expected, rel=1e-12)


def test_rank_deficient_predictors_give_the_spanned_space(rng):
    X = rng.normal(size=(60, 4))
    dead = np.column_stack([X, np.zeros(60), X[:, :1]])  # a dead and a duplicated neuron
    metric = simmetrics.LinearRegressionR2()
    assert metric.fit_score(X, dead) == pytest.approx(1.0, abs=1e-12)
    W = rng.normal(size=(60, 3))  # explained by X's column space, however it is spanned
    assert metric.fit_score(W, dead) == pytest.approx(metric.fit_score(W, X), abs=1e-12)
    assert simmetrics.GULP().fit_score(X, dead) == pytest.approx(0.0, abs=1e-10)
    # n < d: both span the whole centred space (n - 1 directions)
    wide = rng.normal(size=(10, 30))
    assert metric.fit_score(rng.normal(size=(10, 3)), wide) == pytest.approx(1.0, abs=1e-12)
    assert simmetrics.GULP().fit_score(wide, rng.normal(size=(10, 20))) == pytest.approx(
        0.0, abs=1e-10)


def test_binary_data_and_constant_input(rng):
    B = (rng.random(size=(100, 12)) < 0.3).astype(float)
    Q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    for metric in (simmetrics.GULP(lmbda=0.1), simmetrics.LinearRegressionR2()):
        ideal = 0.0 if metric.kind == "distance" else 1.0
        assert metric.fit_score(B, B @ Q + 2.0) == pytest.approx(ideal, abs=1e-10)
        with pytest.raises(ValueError, match="Y has zero variance"):
            metric.fit_score(B, np.ones((100, 3)))


@pytest.mark.parametrize("metric", [simmetrics.GULP(), simmetrics.GULP(lmbda=0.1, squared=False),
                                    simmetrics.LinearRegressionR2()], ids=repr)
@pytest.mark.parametrize("factor", [True, False])
def test_streaming_from_moments(seed11, metric, factor):
    X, Z = seed11["X"], seed11["Z"]
    stats = sum(PairMoments.from_arrays(X[i:i + 70], Z[i:i + 70], factor=factor)
                for i in range(0, 300, 70))
    assert simmetrics.score_from_moments(metric, stats) == pytest.approx(
        metric.fit_score(X, Z), rel=1e-9, abs=1e-12)
    batches = [(X[i:i + 50], Z[i:i + 50]) for i in range(0, 300, 50)]
    assert simmetrics.stream_score(metric, batches) == pytest.approx(
        metric.fit_score(X, Z), rel=1e-9, abs=1e-12)
