"""Gradients of HardCorrelationMatch, SoftCorrelationMatch and AlignedCosine
(simmetrics.functional) beyond the generic suite (tests/core/test_functional.py): the
correlation's closed-form gradient summed over the fitted matching (Danskin's theorem), the
directions each value is invariant to, the stationary point at Y = X, the derivative of the
polar factor against finite differences, and the data users have (quantised activations,
dead units)."""

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

import simmetrics
from simmetrics import functional


def _grads(metric, X, Y):
    A = torch.tensor(X, requires_grad=True)
    B = torch.tensor(Y, requires_grad=True)
    value = functional.evaluate(metric, A, B)
    value.backward()
    return float(value.detach()), A.grad.numpy(), B.grad.numpy()


def _unit(A):
    Ac = A - A.mean(0)
    return Ac / np.linalg.norm(Ac, axis=0), np.linalg.norm(Ac, axis=0)


def _correlation_gradient(U, nu, V, pairs, weights):
    """d/dX of sum_p w_p r(x_j, y_k): dr/dx_j = (v_k - r u_j) / ||x_j - mean||."""
    G = np.zeros_like(U)
    for (j, k), w in zip(pairs, weights):
        r = U[:, j] @ V[:, k]
        G[:, j] += w * (V[:, k] - r * U[:, j]) / nu[j]
    return G


def test_hard_correlation_match_gradient_is_the_matched_correlations():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    Y = X[:, [3, 0, 1]] + 0.7 * rng.normal(size=(40, 3))
    value, gx, _ = _grads(simmetrics.HardCorrelationMatch(), X, Y)
    (U, nu), (V, _) = _unit(X), _unit(Y)
    rows, cols = linear_sum_assignment(U.T @ V, maximize=True)
    assert np.isclose(value, np.mean(np.sum(U[:, rows] * V[:, cols], axis=0)), rtol=1e-12)
    expected = _correlation_gradient(U, nu, V, zip(rows, cols), np.full(3, 1 / 3))
    np.testing.assert_allclose(gx, expected, rtol=1e-9, atol=1e-13)


def test_soft_correlation_match_gradient_is_the_best_partners_correlations():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 4))
    Y = np.hstack([X[:, :2], X[:, 1:]]) + 0.8 * rng.normal(size=(40, 5))
    _, gx, _ = _grads(simmetrics.SoftCorrelationMatch(), X, Y)
    (U, nu), (V, _) = _unit(X), _unit(Y)
    C = U.T @ V
    pairs = [(j, int(C[j].argmax())) for j in range(4)] + \
        [(int(C[:, k].argmax()), k) for k in range(5)]
    weights = [0.5 / 4] * 4 + [0.5 / 5] * 5
    np.testing.assert_allclose(gx, _correlation_gradient(U, nu, V, pairs, weights),
                               rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("cls", [simmetrics.HardCorrelationMatch,
                                 simmetrics.SoftCorrelationMatch])
def test_correlation_match_gradient_is_orthogonal_to_translation_and_neuron_scaling(cls):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 4)) + 3.0
    Y = np.tanh(X[:, [1, 2, 0]]) + 0.5 * rng.normal(size=(30, 3))
    _, gx, gy = _grads(cls(), X, Y)
    for g, A in ((gx, X), (gy, Y)):
        np.testing.assert_allclose(g.sum(axis=0), 0.0, atol=1e-12)
        np.testing.assert_allclose(np.sum(g * (A - A.mean(0)), axis=0), 0.0, atol=1e-12)


@pytest.mark.parametrize("cls", [simmetrics.HardCorrelationMatch,
                                 simmetrics.SoftCorrelationMatch])
def test_correlation_match_gradcheck_with_dead_units_and_quantised_data(cls):
    # a dead unit's own entries have no derivative (any perturbation makes its correlations
    # jump from the dead-unit rule's 1 or 0 to those of a varying neuron): the formula gives
    # them 0, and the value is differentiable in every other entry, checked by gradcheck
    # against finite differences of fit_score on the live neurons
    rng = np.random.default_rng(3)
    X = np.round(rng.normal(size=(15, 4)), 1)
    Y = np.round(X[:, [2, 0, 1, 3]] + 0.5 * rng.normal(size=(15, 4)), 1)
    X[:, 3], Y[:, 1] = 0.0, 2.5  # a dead unit on each side
    dead_x, dead_y = torch.tensor(X[:, 3:]), torch.tensor(Y[:, 1:2])

    def value(A, B):  # A: X's live neurons 0..2, B: Y's live neurons 0, 2, 3
        full_y = torch.cat([B[:, :1], dead_y, B[:, 1:]], dim=1)
        return functional.evaluate(cls(), torch.cat([A, dead_x], dim=1), full_y)

    inputs = (torch.tensor(X[:, :3], requires_grad=True),
              torch.tensor(Y[:, [0, 2, 3]], requires_grad=True))
    assert torch.autograd.gradcheck(value, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)
    _, gx, gy = _grads(cls(), X, Y)
    assert np.all(np.isfinite(gx)) and np.all(gx[:, 3] == 0.0) and np.all(gy[:, 1] == 0.0)


def test_aligned_cosine_gradient_is_orthogonal_to_rotations_and_scale():
    # f(X Q) = f(X) for orthogonal Q: d/dt f(X exp(t W)) = <X'G, W> = 0 for skew W, so X'G is
    # symmetric; f(c X) = f(X): <G, X> = 0
    rng = np.random.default_rng(4)
    X = rng.normal(size=(25, 4))
    Y = X @ rng.normal(size=(4, 4)) + 0.3 * rng.normal(size=(25, 4))
    _, gx, gy = _grads(simmetrics.AlignedCosine(), X, Y)
    for g, A in ((gx, X), (gy, Y)):
        S = A.T @ g
        np.testing.assert_allclose(S, S.T, atol=1e-12)
        assert abs(np.trace(S)) <= 1e-12


def test_aligned_cosine_is_stationary_at_its_maximum():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(20, 3))
    Q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    value, gx, gy = _grads(simmetrics.AlignedCosine(), X, 2.0 * X @ Q)  # value 1, the maximum
    assert np.isclose(value, 1.0, atol=1e-12)
    np.testing.assert_allclose(gx, 0.0, atol=1e-12)
    np.testing.assert_allclose(gy, 0.0, atol=1e-12)


@pytest.mark.parametrize("widths", [(4, 4), (5, 3), (3, 5)])
def test_aligned_cosine_gradient_matches_central_differences_through_the_rotation(widths):
    # the rotation Q* = argmin ||X Q - Y|| is not the value's optimum (the value is a mean of
    # cosines): its derivative must be carried; the expected values are central differences
    # of fit_score, computed here in numpy
    rng = np.random.default_rng(6)
    X = rng.normal(size=(12, widths[0]))
    Y = rng.normal(size=(12, widths[1])) + X[:, :1]
    _, gx, gy = _grads(simmetrics.AlignedCosine(), X, Y)
    h = 1e-6
    for g, which in ((gx, 0), (gy, 1)):
        A = (X, Y)[which]
        for idx in [(0, 0), (3, 1), (11, A.shape[1] - 1)]:
            E = np.zeros_like(A)
            E[idx] = h
            args = ((X + E, Y), (X - E, Y)) if which == 0 else ((X, Y + E), (X, Y - E))
            up, down = (simmetrics.AlignedCosine().fit_score(*a) for a in args)
            assert np.isclose(g[idx], (up - down) / (2 * h), rtol=1e-6, atol=1e-9)


def test_aligned_cosine_gradient_at_equal_singular_values():
    # X'Y = c I: the singular values are all equal; the polar factor is still differentiable
    rng = np.random.default_rng(7)
    X, _ = np.linalg.qr(rng.normal(size=(10, 3)))
    Y = X + (np.eye(10) - X @ X.T) @ rng.normal(size=(10, 3))  # X'Y = X'X = I
    assert np.allclose(X.T @ Y, np.eye(3), atol=1e-12)
    inputs = (torch.tensor(X, requires_grad=True), torch.tensor(Y, requires_grad=True))
    assert torch.autograd.gradcheck(
        lambda A, B: functional.evaluate(simmetrics.AlignedCosine(), A, B), inputs,
        eps=1e-6, atol=1e-5, rtol=1e-4)
