"""Gradients of IntertwinerProcrustes (simmetrics.functional) beyond the generic suite
(tests/core/test_functional.py): the directions the value is invariant to for every group
(per-neuron scalings for G_ReLU, every invertible linear map for the identity, translations
with ``center``), a closed form for the permutation group, the conv path, a dead unit, and
gradient descent on Y lowering the G_ReLU distance to a fixed X."""

import numpy as np
import pytest
import torch

import simmetrics
from simmetrics import functional

ACTIVATIONS = ["relu", "tanh", "gelu", "abs", "identity"]


def _data(n=40, dx=5, dy=5, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, max(dx, dy)))
    X = np.maximum(Z[:, :dx] + 0.3 * rng.normal(size=(n, dx)), 0.0) + 0.1 * Z[:, :dx] ** 2
    Y = np.tanh(Z[:, rng.permutation(max(dx, dy))[:dy]]) + 0.4 * rng.normal(size=(n, dy))
    return X, Y


def _grads(metric, X, Y):
    A = torch.tensor(X, requires_grad=True)
    B = torch.tensor(Y, requires_grad=True)
    value = functional.evaluate(metric, A, B)
    value.backward()
    return float(value.detach()), A.grad.numpy(), B.grad.numpy()


@pytest.mark.parametrize("score_method", ["angular", "euclidean", "paper"])
def test_relu_gradient_is_orthogonal_to_every_neurons_scale(score_method):
    # the value is invariant to X -> X D, D > 0 diagonal: d/dt f(X (I + t e_k e_k')) =
    # sum_i X_ik G_ik = 0 for every neuron k (and likewise for Y)
    X, Y = _data(dx=5, dy=4)
    _, gx, gy = _grads(simmetrics.IntertwinerProcrustes(score_method=score_method), X, Y)
    for g, A in ((gx, X), (gy, Y)):
        scale = np.abs(g).max() * np.abs(A).max() * A.shape[0]
        np.testing.assert_allclose(np.sum(g * A, axis=0), 0.0, atol=1e-12 * scale)
        assert np.abs(g).max() > 0.0


@pytest.mark.parametrize("score_method", ["angular", "euclidean"])
def test_identity_gradient_is_orthogonal_to_every_invertible_linear_map(score_method):
    # invariant to X -> X A for every invertible A: d/dt f(X (I + t E)) = <X'G, E> = 0, so
    # X'G = 0 (the whitening's derivative is carried, the rotation held fixed)
    X, Y = _data(dx=4, dy=3, seed=1)
    metric = simmetrics.IntertwinerProcrustes(activation="identity", score_method=score_method)
    _, gx, gy = _grads(metric, X, Y)
    for g, A in ((gx, X), (gy, Y)):
        np.testing.assert_allclose(A.T @ g, 0.0, atol=1e-11 * np.abs(A).max() * np.abs(g).max()
                                   * A.shape[0])
        assert np.abs(g).max() > 1e-6


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_centred_gradient_sums_to_zero_over_the_stimuli(activation):
    X, Y = _data(seed=2)
    metric = simmetrics.IntertwinerProcrustes(activation=activation, center=True)
    _, gx, gy = _grads(metric, X + 3.0, Y - 1.0)
    np.testing.assert_allclose(gx.sum(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(gy.sum(axis=0), 0.0, atol=1e-12)


def test_permutation_group_euclidean_gradient_in_closed_form():
    # GELU: no canonicalisation; d = ||X - Y P||_F / sqrt(m n) with the fitted P, so
    # dd/dX = (X - Y P) / (m n d)
    X, Y = _data(seed=3)
    metric = simmetrics.IntertwinerProcrustes(activation="gelu", score_method="euclidean")
    d, gx, _ = _grads(metric, X, Y)
    R = X - Y[:, metric.permutation_]
    m, n = X.shape
    assert np.isclose(d, np.linalg.norm(R) / np.sqrt(m * n), rtol=1e-12)
    np.testing.assert_allclose(gx, R / (m * n * d), rtol=1e-10, atol=1e-14)


def test_signed_permutation_gradient_uses_the_fitted_signs():
    # tanh: d = ||X - Y P S||_F / sqrt(m n); dd/dY = -(X - Y P S) S P' / (m n d)
    X, Y = _data(seed=4)
    Y = Y * np.array([1.0, -1.0, 1.0, -1.0, -1.0])
    metric = simmetrics.IntertwinerProcrustes(activation="tanh", score_method="euclidean")
    d, _, gy = _grads(metric, X, Y)
    perm, signs = metric.permutation_, metric.signs_
    assert np.any(signs < 0)
    R = X - Y[:, perm] * signs
    expected = np.zeros_like(Y)
    expected[:, perm] = -R * signs / (X.size * d)
    np.testing.assert_allclose(gy, expected, rtol=1e-10, atol=1e-14)


def test_relu_gradcheck_with_a_silent_neuron_and_quantised_data():
    # quantised activations (1 decimal) with a neuron that is silent: its entries have no
    # derivative (the rms normalisation is discontinuous at 0; the formula gives them 0); the
    # value is differentiable in the others (gradcheck against fit_score on them)
    rng = np.random.default_rng(5)
    X = np.round(np.maximum(rng.normal(size=(16, 4)), 0.0), 1) + 0.1
    Y = np.round(np.maximum(X[:, [1, 3, 0, 2]] + 0.3 * rng.normal(size=(16, 4)), 0.0), 1)
    X[:, 2] = 0.0
    silent = torch.zeros(16, 1, dtype=torch.float64)

    def value(A, B):
        return functional.evaluate(simmetrics.IntertwinerProcrustes(),
                                   torch.cat([A[:, :2], silent, A[:, 2:]], dim=1), B)

    inputs = (torch.tensor(X[:, [0, 1, 3]], requires_grad=True),
              torch.tensor(Y, requires_grad=True))
    assert torch.autograd.gradcheck(value, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)
    _, gx, _ = _grads(simmetrics.IntertwinerProcrustes(), X, Y)
    assert np.all(np.isfinite(gx)) and np.all(gx[:, 2] == 0.0)


def test_conv_features_with_upsampling_pass_the_gradient_to_the_input_maps():
    # paper score on 4-D maps of different spatial sizes (read as nchw, upsampled): the
    # gradient reaches the small map; compare with the same value on the upsampled map
    rng = np.random.default_rng(6)
    small = torch.tensor(np.maximum(rng.normal(size=(3, 2, 2, 2)), 0.0) + 0.05,
                         requires_grad=True)
    large = torch.tensor(np.maximum(rng.normal(size=(3, 3, 4, 4)), 0.0) + 0.05)
    value = functional.intertwiner_procrustes(small, large, score_method="paper")
    value.backward()
    up = small.detach().repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    up.requires_grad_(True)
    again = functional.intertwiner_procrustes(up, large, score_method="paper")
    again.backward()
    assert abs(float(value.detach()) - float(again.detach())) <= 1e-12
    pooled = up.grad.reshape(3, 2, 2, 2, 2, 2).sum(dim=(3, 5))  # each pixel read 4 times
    assert torch.allclose(small.grad, pooled, rtol=1e-10, atol=1e-14)


def test_gradient_descent_on_y_lowers_the_relu_procrustes_distance_to_a_fixed_x():
    # the worked example: Adam on Y alone, 50 steps, the G_ReLU angular distance to a
    # fixed ReLU representation X (measured here: 1.015 rad at the start, 0.043 after 50 steps)
    rng = np.random.default_rng(7)
    X = torch.tensor(np.maximum(rng.normal(size=(100, 8)) @ rng.normal(size=(8, 8)), 0.0))
    Y = torch.tensor(np.abs(rng.normal(size=(100, 8))) + 0.1, requires_grad=True)
    optimiser = torch.optim.Adam([Y], lr=0.05)
    values = []
    for _ in range(50):
        optimiser.zero_grad()
        value = functional.intertwiner_procrustes(X, Y)  # G_ReLU, angular
        value.backward()
        optimiser.step()
        values.append(float(value.detach()))
    final = simmetrics.IntertwinerProcrustes().fit_score(X.numpy(), Y.detach().numpy())
    assert values[0] > 0.9 and final < 0.1 * values[0]
    assert np.all(np.diff(values) < 0.0)  # down at every step
