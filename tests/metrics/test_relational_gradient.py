"""Gradients of the relational metrics (RSA, Stress, RSMNormDifference) and the descriptive
differences, beyond the generic suite (tests/core/test_functional.py): closed forms of the
gradient, the directions the invariances make it orthogonal to, the data users have (ties,
duplicated stimuli, quantised activations), RSA's soft-rank relaxation of Spearman, and the
errors of the rank comparisons."""

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

import simmetrics
from simmetrics import functional
from simmetrics._core.backend import NUMPY
from simmetrics.metrics.rsa_gradient import soft_rank_plan, soft_ranks


def _data(n=14, dx=4, dy=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dx))
    Y = np.tanh(X[:, :dy] @ rng.normal(size=(dy, dy))) + 0.4 * rng.normal(size=(n, dy))
    return X, Y


def _gradients(metric, X, Y):
    """(value, dX, dY) from simmetrics.functional on float64 tensors."""
    A, B = (torch.tensor(M, requires_grad=True) for M in (X, Y))
    value = functional.evaluate(metric, A, B)
    value.backward()
    return float(value.detach()), A.grad.numpy(), B.grad.numpy()


def _gradcheck(make, X, Y):
    inputs = (torch.tensor(X, requires_grad=True), torch.tensor(Y, requires_grad=True))
    return torch.autograd.gradcheck(lambda A, B: functional.evaluate(make(), A, B), inputs,
                                    eps=1e-6, atol=1e-5, rtol=1e-4)


# -- RSA --------------------------------------------------------------------------------------
@pytest.mark.parametrize("rdm", ["correlation", "euclidean"])
@pytest.mark.parametrize("compare", ["pearson", "soft_spearman"])
def test_rsa_gradcheck_and_formula_for_every_rdm(rdm, compare):
    X, Y = _data()
    make = lambda: simmetrics.RSA(rdm=rdm, compare=compare)  # noqa: E731
    metric = make()
    value = metric.fit_score(X, Y)
    formula = float(metric._gradient_formula(*metric._gradient_rows(X, Y, NUMPY), NUMPY))
    assert abs(formula - value) <= 1e-12
    assert _gradcheck(make, X, Y)
    _, gX, gY = _gradients(make(), X, Y)
    assert np.abs(gX).max() > 1e-6 and np.abs(gY).max() > 1e-6


@pytest.mark.parametrize("compare", ["pearson", "soft_spearman"])
def test_euclidean_rsa_gradient_is_orthogonal_to_its_invariances(compare):
    """Translation invariance: each gradient's rows sum to 0; orthogonal invariance
    (X -> X exp(S), S skew): X'G is symmetric; scale invariance: <G, X> = 0."""
    X, Y = _data(seed=2)
    _, gX, gY = _gradients(simmetrics.RSA(rdm="euclidean", compare=compare), X, Y)
    for A, G in ((X, gX), (Y, gY)):
        scale = np.abs(G).max() * np.abs(A).max()
        assert np.abs(G.sum(axis=0)).max() <= 1e-12 * scale * len(A)
        S = A.T @ G
        assert np.abs(S - S.T).max() <= 1e-12 * scale * len(A)
        assert abs(np.sum(G * A)) <= 1e-12 * scale * A.size


def test_correlation_rsa_gradient_sees_no_row_offset_or_row_scale():
    """The correlation RDM centres and normalises each stimulus pattern: adding a constant to
    a row or rescaling it changes nothing, so each row of G sums to 0 and is orthogonal to its
    row of X."""
    X, Y = _data(seed=3)
    _, gX, _ = _gradients(simmetrics.RSA(compare="pearson"), X, Y)
    assert np.abs(gX.sum(axis=1)).max() <= 1e-12 * np.abs(gX).max() * X.shape[1]
    assert np.abs((gX * X).sum(axis=1)).max() <= 1e-12 * np.abs(gX).max() * np.abs(X).max() * 4


def test_rsa_gradient_on_quantised_data_with_tied_dissimilarities():
    """Integer activations give many tied dissimilarities; the Pearson comparison and its
    soft-rank relaxation are smooth there."""
    rng = np.random.default_rng(4)
    X = rng.integers(0, 3, size=(12, 4)).astype(float)
    Y = rng.integers(0, 3, size=(12, 3)).astype(float) + 0.5 * X[:, :3]
    for compare in ("pearson", "soft_spearman"):
        assert _gradcheck(lambda: simmetrics.RSA(rdm="euclidean", compare=compare), X, Y)


def test_soft_spearman_is_spearman_when_cold_and_pearson_when_hot():
    """Below the smallest gap no block pools (the ordinary ranks: Spearman, exactly); above
    a finite temperature one block holds everything (an affine map of the RDM: Pearson; not
    far above, where the ranks' constant part (m + 1) / 2 would swamp their spread)."""
    X, Y = _data(n=20, seed=5)
    for rdm in ("correlation", "euclidean"):
        spearman = simmetrics.RSA(rdm=rdm).fit_score(X, Y)
        pearson = simmetrics.RSA(rdm=rdm, compare="pearson").fit_score(X, Y)
        cold = simmetrics.RSA(rdm=rdm, compare="soft_spearman", temperature=1e-9)
        hot = simmetrics.RSA(rdm=rdm, compare="soft_spearman", temperature=1e3)
        assert abs(cold.fit_score(X, Y) - spearman) <= 1e-12
        assert abs(hot.fit_score(X, Y) - pearson) <= 1e-12
        middle = simmetrics.RSA(rdm=rdm, compare="soft_spearman").fit_score(X, Y)
        assert abs(middle - spearman) > 1e-6 and abs(middle - pearson) > 1e-6


def test_cold_soft_spearman_has_zero_gradient_and_warm_has_one():
    X, Y = _data(seed=6)
    _, gX, _ = _gradients(simmetrics.RSA(compare="soft_spearman", temperature=1e-9), X, Y)
    assert np.abs(gX).max() == 0.0  # every block a single rank: piecewise constant
    _, gX, _ = _gradients(simmetrics.RSA(compare="soft_spearman", temperature=1.0), X, Y)
    assert np.abs(gX).max() > 1e-4


def _brute_force_projection(z):
    """The projection of z onto the permutahedron of (1..m), from its inequality description
    (sum of any k entries >= sum of the k smallest ranks, equality for k = m), by SLSQP:
    independent of the pool-adjacent-violators route."""
    m = z.size
    w = np.arange(1.0, m + 1.0)
    cons = [{"type": "eq", "fun": lambda mu: mu.sum() - w.sum()}]
    for k in range(1, m):
        for subset in itertools.combinations(range(m), k):
            idx = list(subset)
            cons.append({"type": "ineq", "fun": lambda mu, idx=idx, k=k: mu[idx].sum() - w[:k].sum()})
    res = minimize(lambda mu: 0.5 * np.sum((mu - z) ** 2), np.full(m, w.mean()),
                   jac=lambda mu: mu - z, constraints=cons, method="SLSQP",
                   options={"ftol": 1e-14, "maxiter": 500})
    return res.x


@pytest.mark.parametrize("z", [np.array([0.3, -1.2, 2.5, 0.4, 0.45]),
                               np.array([3.0, 1.0, 2.0, 0.5]),
                               np.array([10.0, -4.0, 0.0, 7.0])])
def test_soft_ranks_are_the_projection_onto_the_permutahedron(z):
    expected = _brute_force_projection(z)
    found = soft_ranks(z, soft_rank_plan(z), NUMPY)
    assert np.abs(found - expected).max() <= 1e-6
    zt = torch.tensor(z, requires_grad=True)
    torch.autograd.gradcheck(lambda t: soft_ranks(t, soft_rank_plan(z), simmetrics._core.backend.TorchBackend()), (zt,))


@pytest.mark.parametrize("compare", ["spearman", "kendall"])
def test_rank_rsa_has_no_gradient_and_says_what_to_use(compare):
    X, Y = _data()
    with pytest.raises(functional.NonDifferentiableError, match="soft_spearman"):
        functional.rsa(torch.tensor(X, requires_grad=True), torch.tensor(Y), compare=compare)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("inf"), "1"])
def test_bad_temperature_is_an_error_naming_it(temperature):
    X, Y = _data()
    with pytest.raises((ValueError, TypeError), match="temperature"):
        simmetrics.RSA(compare="soft_spearman", temperature=temperature).fit_score(X, Y)


# -- Stress and RSMNormDifference -------------------------------------------------------------
def _centred_rows(X):
    return X - X.mean(axis=0)


def test_stress_gradient_at_a_rescaled_copy_is_the_closed_form():
    """At Y = 2X: D_Y - D_X = D_X and dD_Y,ij/dy_i = (y_i - y_j)/D_Y,ij, so
    dStress/dy_i = n (x_i - mean x) / (m S) with m = n (n - 1) / 2 pairs, S = Stress = rms(D_X)."""
    X, _ = _data(seed=7)
    n = len(X)
    value, _, gY = _gradients(simmetrics.Stress(), X, 2 * X)
    expected = n * _centred_rows(X) / (n * (n - 1) / 2 * value)
    assert np.abs(gY - expected).max() <= 1e-12 * np.abs(expected).max()


def test_rsm_frobenius_gradient_at_a_rescaled_copy_is_the_closed_form():
    """||D_X - D_Y||_F over all n^2 entries at Y = 2X: d/dy_i = 2 n (x_i - mean x) / V."""
    X, _ = _data(seed=8)
    n = len(X)
    value, _, gY = _gradients(simmetrics.RSMNormDifference(norm="frobenius"), X, 2 * X)
    expected = 2 * n * _centred_rows(X) / value
    assert np.abs(gY - expected).max() <= 1e-12 * np.abs(expected).max()


@pytest.mark.parametrize("metric", [simmetrics.Stress(), simmetrics.Stress(rescale=True),
                                    simmetrics.RSMNormDifference(),
                                    simmetrics.RSMNormDifference(norm="frobenius")],
                         ids=repr)
def test_distance_gradients_are_orthogonal_to_rigid_motions(metric):
    X, Y = _data(seed=9)
    _, gX, gY = _gradients(metric, X, Y)
    for A, G in ((X, gX), (Y, gY)):
        scale = np.abs(G).max() * np.abs(A).max() * len(A)
        assert np.abs(G.sum(axis=0)).max() <= 1e-12 * scale
        S = A.T @ G
        assert np.abs(S - S.T).max() <= 1e-12 * scale


def test_rescaled_stress_gradient_sees_no_scaling():
    X, Y = _data(seed=10)
    _, gX, gY = _gradients(simmetrics.Stress(rescale=True), X, Y)
    for A, G in ((X, gX), (Y, gY)):
        assert abs(np.sum(A * G)) <= 1e-12 * np.abs(G).max() * np.abs(A).max() * A.size


@pytest.mark.parametrize("metric", [simmetrics.Stress(), simmetrics.RSMNormDifference(),
                                    simmetrics.RSMNormDifference(norm="frobenius")], ids=repr)
def test_duplicated_stimuli_give_a_finite_gradient_and_the_value(metric):
    """Two identical stimuli: the distance between them has no gradient (the norm at 0); the
    formula takes the subgradient 0 there and is smooth in everything else."""
    X, Y = _data(seed=11)
    X[3] = X[5]
    value, gX, gY = _gradients(type(metric)(**metric.get_params()), X, Y)
    assert abs(value - type(metric)(**metric.get_params()).fit_score(X, Y)) <= 1e-12 * value
    assert np.isfinite(gX).all() and np.isfinite(gY).all()
    # Y has no duplicates: its gradient is the exact one
    B = torch.tensor(Y, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda b: functional.evaluate(type(metric)(**metric.get_params()), torch.tensor(X), b),
        (B,), eps=1e-6, atol=1e-5, rtol=1e-4)


# -- descriptive differences -----------------------------------------------------------------
def test_magnitude_difference_gradient_is_the_closed_form():
    """| ||mean x|| - ||mean y|| |: d/dx_i = sign * mean x / (n ||mean x||)."""
    X, Y = _data(seed=12)
    X, Y = X + 1.0, Y - 0.2
    value, gX, gY = _gradients(simmetrics.MagnitudeDifference(), X, Y)
    mx, my = X.mean(axis=0), Y.mean(axis=0)
    sign = np.sign(np.linalg.norm(mx) - np.linalg.norm(my))
    assert np.abs(gX - sign * np.tile(mx / (len(X) * np.linalg.norm(mx)), (len(X), 1))).max() <= 1e-15
    assert np.abs(gY + sign * np.tile(my / (len(Y) * np.linalg.norm(my)), (len(Y), 1))).max() <= 1e-15


def test_concentricity_gradient_sees_no_scaling_or_rotation():
    X, Y = _data(seed=13)
    X, Y = X + 2.0, Y + 1.0
    _, gX, gY = _gradients(simmetrics.ConcentricityDifference(), X, Y)
    for A, G in ((X, gX), (Y, gY)):
        scale = np.abs(G).max() * np.abs(A).max() * A.size
        assert abs(np.sum(A * G)) <= 1e-12 * scale
        S = A.T @ G
        assert np.abs(S - S.T).max() <= 1e-12 * scale


def test_uniformity_gradient_of_two_points_is_the_closed_form():
    """Two stimuli a apart on a line: u_t + log 2 = log(1 + exp(-t a^2)), whose derivative in
    a is -2 t a e / (1 + e), e = exp(-t a^2); moving the second stimulus moves a."""
    t, a = 0.7, 1.3
    X = np.array([[0.0], [a]])
    Y = np.array([[0.0], [5.0]])  # far apart: its statistic is smaller than X's
    value, gX, _ = _gradients(simmetrics.UniformityDifference(t=t), X, Y)
    e = np.exp(-t * a * a)
    expected = -2 * t * a * e / (1 + e)
    assert abs(gX[1, 0] - expected) <= 1e-14 and abs(gX[0, 0] + expected) <= 1e-14


def test_uniformity_gradient_on_quantised_data_with_coinciding_stimuli():
    """Coinciding stimuli are smooth points of the Gaussian potential: gradcheck holds."""
    rng = np.random.default_rng(14)
    X = rng.integers(0, 2, size=(10, 3)).astype(float)
    Y = rng.normal(size=(10, 2))
    assert _gradcheck(lambda: simmetrics.UniformityDifference(t=0.5), X, Y)
