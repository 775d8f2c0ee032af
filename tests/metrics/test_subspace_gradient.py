"""Gradients of the column-space measures (GULP, LinearRegressionR2, EigenspaceOverlap) and of
AffineInvariantRiemannian, beyond the generic suite (tests/core/test_functional.py): the
directions their invariances make the gradient orthogonal to, closed forms, every parameter
setting, and rank-deficient data (a dead neuron)."""

import numpy as np
import pytest
import torch

import simmetrics
from simmetrics import functional
from simmetrics._core.backend import NUMPY


def _data(n=16, dx=4, dy=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dx)) + 0.5
    Z = rng.normal(size=(n, dy))
    Y = np.tanh(Z + X[:, :1]) + 0.4 * rng.normal(size=(n, dy))
    return X, Y


def _gradients(metric, X, Y):
    A, B = (torch.tensor(M, requires_grad=True) for M in (X, Y))
    value = functional.evaluate(metric, A, B)
    value.backward()
    return float(value.detach()), A.grad.numpy(), B.grad.numpy()


def _gradcheck(make, X, Y):
    inputs = (torch.tensor(X, requires_grad=True), torch.tensor(Y, requires_grad=True))
    return torch.autograd.gradcheck(lambda A, B: functional.evaluate(make(), A, B), inputs,
                                    eps=1e-6, atol=1e-5, rtol=1e-4)


def _formula_gap(metric, X, Y):
    value = metric.fit_score(X, Y)
    rows = metric._gradient_rows(X, Y, NUMPY)
    return abs(float(metric._gradient_formula(*rows, NUMPY)) - value)


SETTINGS = [
    simmetrics.GULP(), simmetrics.GULP(squared=False), simmetrics.GULP(lmbda=0.1),
    simmetrics.GULP(lmbda=0.1, squared=False), simmetrics.LinearRegressionR2(),
    simmetrics.EigenspaceOverlap(), simmetrics.EigenspaceOverlap(denominator="width"),
    simmetrics.AffineInvariantRiemannian(), simmetrics.AffineInvariantRiemannian(eps=0.1),
    simmetrics.AffineInvariantRiemannian(n_components=2),
]


@pytest.mark.parametrize("metric", SETTINGS, ids=repr)
def test_every_setting_has_a_formula_equal_to_the_value_and_passes_gradcheck(metric):
    X, Y = _data()
    assert _formula_gap(type(metric)(**metric.get_params()), X, Y) <= 1e-12
    assert _gradcheck(lambda: type(metric)(**metric.get_params()), X, Y)


@pytest.mark.parametrize("metric", [simmetrics.GULP(), simmetrics.EigenspaceOverlap()], ids=repr)
def test_invertible_map_invariance_makes_a_prime_g_zero(metric):
    """Invariance to X -> X A for every invertible A: the derivative along X E is tr(E'X'G) = 0
    for every E, so X'G = 0 (and, centred or not, 1'G = 0 for GULP's translation invariance)."""
    X, Y = _data(seed=1)
    _, gX, gY = _gradients(metric, X, Y)
    for A, G in ((X, gX), (Y, gY)):
        scale = np.abs(G).max() * np.abs(A).max() * len(A)
        assert np.abs(A.T @ G).max() <= 1e-11 * scale
        if isinstance(metric, simmetrics.GULP):
            assert np.abs(G.sum(axis=0)).max() <= 1e-11 * scale


def test_ridge_gulp_gradient_is_orthogonal_to_rotations_scaling_and_translation():
    X, Y = _data(seed=2)
    _, gX, gY = _gradients(simmetrics.GULP(lmbda=0.3), X, Y)
    for A, G in ((X, gX), (Y, gY)):
        scale = np.abs(G).max() * np.abs(A).max() * len(A)
        S = A.T @ G
        assert np.abs(S - S.T).max() <= 1e-11 * scale
        assert abs(np.trace(S)) <= 1e-11 * scale  # isotropic scaling
        assert np.abs(G.sum(axis=0)).max() <= 1e-11 * scale


def test_linear_regression_gradient_in_the_predictor_vanishes_along_its_maps():
    """R2(X, Y) sees only Y's centred column space: Yc'G_Y = 0 and 1'G_Y = 0."""
    X, Y = _data(seed=3)
    _, _, gY = _gradients(simmetrics.LinearRegressionR2(), X, Y)
    scale = np.abs(gY).max() * np.abs(Y).max() * len(Y)
    assert np.abs((Y - Y.mean(axis=0)).T @ gY).max() <= 1e-11 * scale
    assert np.abs(gY.sum(axis=0)).max() <= 1e-11 * scale


def test_linear_regression_gradient_is_the_closed_form_for_one_neuron():
    """x (one neuron) regressed on Y: R2 = ||P xc||^2 / ||xc||^2, whose gradient in x is
    2 (P xc ||xc||^2 - xc ||P xc||^2) / ||xc||^4 (P the projection onto Y's centred columns
    together with the constant: P xc is orthogonal to 1)."""
    X, Y = _data(dx=1, seed=4)
    _, gX, _ = _gradients(simmetrics.LinearRegressionR2(), X, Y)
    x = X[:, 0] - X[:, 0].mean()
    Yc = Y - Y.mean(axis=0)
    Px = Yc @ np.linalg.lstsq(Yc, x, rcond=None)[0]
    expected = 2 * (Px * (x @ x) - x * (Px @ Px)) / (x @ x) ** 2
    assert np.abs(gX[:, 0] - expected).max() <= 1e-12 * np.abs(expected).max()


@pytest.mark.parametrize("metric", [simmetrics.GULP(), simmetrics.LinearRegressionR2(),
                                    simmetrics.EigenspaceOverlap()], ids=repr)
def test_a_dead_neuron_gets_the_gradient_along_rank_preserving_directions(metric):
    """With a dead (constant) neuron of Y the value has no gradient (a perturbation of that
    neuron adds a direction); the formula gives the gradient with respect to the live
    neurons, checked against finite differences of the value with the dead neuron fixed."""
    X, Y = _data(seed=5)
    dead = np.full((len(Y), 1), 0.7)
    live = torch.tensor(Y, requires_grad=True)

    def value(B):
        return functional.evaluate(type(metric)(**metric.get_params()), torch.tensor(X),
                                   torch.cat([B, torch.tensor(dead)], dim=1))

    assert torch.autograd.gradcheck(value, (live,), eps=1e-6, atol=1e-5, rtol=1e-4)
    Yd = np.hstack([Y, dead])
    assert _formula_gap(type(metric)(**metric.get_params()), X, Yd) <= 1e-12


def test_ridge_gulp_is_differentiable_through_a_dead_neuron():
    X, Y = _data(seed=6)
    Y = np.hstack([Y, np.full((len(Y), 1), -1.0)])
    assert _gradcheck(lambda: simmetrics.GULP(lmbda=0.2), X, Y)


def test_riemannian_gradient_along_the_scale_of_a_copy_is_the_closed_form():
    """d(X, cX) = 2 sqrt(p) log c (every generalised eigenvalue is c^2): the derivative along
    Y = cX in the direction Y is c d/dc = 2 sqrt(p); translation invariance: 1'G = 0."""
    X, _ = _data(seed=7)
    c = 1.7
    value, gX, gY = _gradients(simmetrics.AffineInvariantRiemannian(), X, c * X)
    p = X.shape[1]
    assert abs(value - 2 * np.sqrt(p) * np.log(c)) <= 1e-12
    assert abs(np.sum(gY * c * X) - 2 * np.sqrt(p)) <= 1e-12
    assert abs(np.sum(gX * X) + 2 * np.sqrt(p)) <= 1e-12
    assert np.abs(gY.sum(axis=0)).max() <= 1e-12 * np.abs(gY).max() * len(X)


def test_riemannian_same_map_on_both_sides_leaves_the_value_so_the_gradients_balance():
    """d(A'C_X A, A'C_Y A) = d(C_X, C_Y) for every invertible A (equal widths): the derivative
    along (X E, Y E) is 0 for every E, so X'G_X + Y'G_Y = 0."""
    X, Y = _data(dx=3, seed=8)
    _, gX, gY = _gradients(simmetrics.AffineInvariantRiemannian(), X, Y)
    Xc, Yc = X - X.mean(axis=0), Y - Y.mean(axis=0)
    total = Xc.T @ gX + Yc.T @ gY
    assert np.abs(total).max() <= 1e-11 * (np.abs(gX).max() * np.abs(X).max() * len(X))
