"""Gradients of PermutationMetric and SoftMatching (simmetrics.functional) beyond the generic
suite (tests/core/test_functional.py): closed forms with the fitted assignment or plan held
fixed (Danskin's theorem, written out here in numpy from the definitions), the directions
the value is invariant to, and the data users have (quantised activations, a dead unit)."""

import numpy as np
import pytest
import torch

import simmetrics
from simmetrics import functional


def _data(n=30, dx=5, dy=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dx))
    Y = X[:, rng.permutation(dx)][:, :dy] + 0.5 * rng.normal(size=(n, dy)) if dy <= dx else \
        rng.normal(size=(n, dy))
    return X, Y


def _grads(metric, X, Y):
    A = torch.tensor(X, requires_grad=True)
    B = torch.tensor(Y, requires_grad=True)
    value = functional.evaluate(metric, A, B)
    value.backward()
    return float(value.detach()), A.grad.numpy(), B.grad.numpy()


def test_euclidean_permutation_gradient_is_the_residual_over_the_distance():
    # d = ||X - Y P||_F with P the fitted permutation: dd/dX = (X - Y P) / d, dd/dY = -(X - Y P) P' / d
    X, Y = _data()
    metric = simmetrics.PermutationMetric(score_method="euclidean", center_columns=False)
    d, gx, gy = _grads(metric, X, Y)
    R = X - Y[:, metric.permutation_]
    assert np.isclose(d, np.linalg.norm(R), rtol=1e-12)
    np.testing.assert_allclose(gx, R / d, rtol=1e-10, atol=1e-13)
    expected_gy = np.zeros_like(Y)
    expected_gy[:, metric.permutation_] = -R / d
    np.testing.assert_allclose(gy, expected_gy, rtol=1e-10, atol=1e-13)


def test_angular_permutation_gradient_of_the_cosine():
    # angle = arccos(c), c = <Xc, Yc P> / (|Xc| |Yc|): d angle/dXc = -(Yc P / (|Xc||Yc|) - c Xc/|Xc|^2) / sin
    X, Y = _data(seed=1)
    metric = simmetrics.PermutationMetric()
    angle, gx, _ = _grads(metric, X, Y)
    Xc, Yc = X - X.mean(0), (Y - Y.mean(0))[:, metric.permutation_]
    nx_, ny_ = np.linalg.norm(Xc), np.linalg.norm(Yc)
    c = np.sum(Xc * Yc) / (nx_ * ny_)
    assert np.isclose(angle, np.arccos(c), rtol=1e-12)
    expected = -(Yc / (nx_ * ny_) - c * Xc / nx_**2) / np.sqrt(1 - c * c)
    expected -= expected.mean(0)  # the centring's projection (a no-op here: Xc, Yc are centred)
    np.testing.assert_allclose(gx, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("score_method", ["angular", "euclidean", "chordal"])
def test_permutation_gradients_are_orthogonal_to_its_invariances(score_method):
    X, Y = _data(dx=5, dy=3, seed=2)  # different widths: zero-padding
    _, gx, gy = _grads(simmetrics.PermutationMetric(score_method=score_method), X, Y)
    for g, A in ((gx, X), (gy, Y)):
        np.testing.assert_allclose(g.sum(axis=0), 0.0, atol=1e-12)  # translation
        if score_method != "euclidean":  # isotropic scaling: <G, A> = 0
            assert abs(np.sum(g * A)) <= 1e-11 * np.abs(g).sum() * np.abs(A).max()


def test_soft_matching_gradient_with_the_plan_held_fixed():
    # d^2 = sum_ij P_ij ||x_i - y_j||^2 (uncentred): dd/dx_i = sum_j P_ij (x_i - y_j) / d
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(20, 4)), rng.normal(size=(20, 6))
    metric = simmetrics.SoftMatching(center_columns=False)
    d, gx, gy = _grads(metric, X, Y)
    P = metric.plan_
    diff = X[:, :, None] - Y[:, None, :]  # (n, i, j), written out from the definition
    assert np.isclose(d, np.sqrt(np.sum(P * np.sum(diff**2, axis=0))), rtol=1e-12)
    np.testing.assert_allclose(gx, np.einsum("ij,nij->ni", P, diff) / d, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(gy, -np.einsum("ij,nij->nj", P, diff) / d, rtol=1e-10, atol=1e-13)


def test_soft_matching_centred_gradient_sums_to_zero_over_the_stimuli():
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(25, 3)) + 5.0, rng.normal(size=(25, 5)) - 2.0
    _, gx, gy = _grads(simmetrics.SoftMatching(), X, Y)
    np.testing.assert_allclose(gx.sum(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(gy.sum(axis=0), 0.0, atol=1e-12)


@pytest.mark.parametrize("metric", [simmetrics.PermutationMetric(),
                                    simmetrics.PermutationMetric(score_method="euclidean"),
                                    simmetrics.SoftMatching()], ids=repr)
def test_gradcheck_on_quantised_data_with_a_dead_unit(metric):
    # activations stored at 1 decimal (ties between entries, not between matchings) and a
    # unit that is constant: the value is smooth there (the assignment stays put)
    rng = np.random.default_rng(5)
    X = np.round(rng.normal(size=(14, 4)), 1)
    Y = np.round(X[:, [2, 0, 3, 1]] + 0.3 * rng.normal(size=(14, 4)), 1)
    X[:, 1] = 0.7  # dead unit
    inputs = (torch.tensor(X, requires_grad=True), torch.tensor(Y, requires_grad=True))
    assert torch.autograd.gradcheck(lambda A, B: functional.evaluate(metric, A, B), inputs,
                                    eps=1e-6, atol=1e-5, rtol=1e-4)
