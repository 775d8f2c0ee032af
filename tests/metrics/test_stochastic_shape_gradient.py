"""Gradients of the stochastic shape metrics (simmetrics/metrics/stochastic_shape_gradient.py):
the formula's value against the class's route (which takes the covariances' square roots by
eigendecomposition, where the formula uses factors and a nuclear norm), gradcheck against
finite differences of fit_score, and closed forms."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

import simmetrics
from simmetrics import functional
from simmetrics._core.backend import NUMPY

SHAPES = [(10, 4, 3), (12, 6, 3), (8, 3, 5)]  # r > d (zero singular values), r < d


def _pair(shape, seed=0, shift=0.5):
    n, r, d = shape
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, r, d)) + 2.0 * rng.normal(size=(n, 1, d))
    Q = np.linalg.qr(rng.normal(size=(d, d)))[0]
    Y = X @ Q + 0.8 * rng.normal(size=(n, r, d)) * rng.uniform(0.5, 2.0, size=(n, 1, 1)) + shift
    return X, Y


# the energy metric's alignment is iterative (reweighted Procrustes): Danskin's theorem holds
# at its optimum, so the gradient is exact to the convergence; tol=1e-13 converges it
METRICS = [simmetrics.GaussianStochasticShape(), simmetrics.GaussianStochasticShape(alpha=0.3),
           simmetrics.GaussianStochasticShape(alpha=2.0),
           simmetrics.EnergyStochasticShape(tol=1e-13, niter=5000),
           simmetrics.EnergyStochasticShape(estimator="plugin", tol=1e-13, niter=5000)]


@pytest.mark.parametrize("metric", METRICS, ids=repr)
@pytest.mark.parametrize("shape", SHAPES)
def test_formula_value_and_gradcheck(metric, shape):
    X, Y = _pair(shape, shift=1.5)
    fitted = clone(metric)
    expected = fitted.fit_score(X, Y)
    assert expected > 0.1  # the test is about a point where the value has a gradient
    value = float(fitted._gradient_formula(*fitted._gradient_rows(X, Y, NUMPY), NUMPY))
    assert abs(value - expected) <= 1e-10 * max(1.0, expected)
    inputs = (torch.tensor(X, requires_grad=True), torch.tensor(Y, requires_grad=True))
    assert torch.autograd.gradcheck(lambda A, B: functional.evaluate(clone(metric), A, B),
                                    inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("alpha", [1.0, 0.3, 2.0])
def test_gradient_is_blind_to_rotations_of_the_neurons(alpha):
    # invariant to Y -> Y Q for orthogonal Q: the gradient G (n, r, d) is orthogonal to the
    # rotations' tangent directions Y S (S skew), i.e. sum_nr y_nr' g_nr is symmetric. That
    # holds at the alignment's optimum (Danskin): converged tightly here (tol=1e-15), the
    # asymmetry was 1e-9 to 5e-9 of the scale below; at the default tol=1e-8 it was 5e-6
    metric = simmetrics.GaussianStochasticShape(alpha=alpha, tol=1e-15, niter=100000)
    X, Y = _pair((10, 4, 3), seed=3, shift=1.0)
    B = torch.tensor(Y, requires_grad=True)
    functional.evaluate(metric, X, B).backward()
    G = B.grad.numpy()
    M = np.einsum("nrj,nrl->jl", Y, G)
    assert np.abs(M - M.T).max() <= 1e-7 * np.abs(G).max() * np.abs(Y).max() * Y.shape[0]


def test_means_only_gradient_in_closed_form():
    # alpha = 2: d = sqrt(2 mean_i ||mx_i - my_i T||^2); d d / d X_ik = 2 (mx_i - my_i T) / (r n d)
    X, Y = _pair((9, 3, 4), seed=5, shift=1.0)
    metric = simmetrics.GaussianStochasticShape(alpha=2.0)
    A = torch.tensor(X, requires_grad=True)
    value = functional.evaluate(metric, A, torch.tensor(Y))
    value.backward()
    T = metric.alignment_
    residual = X.mean(axis=1) - Y.mean(axis=1) @ T
    expected = 2.0 * residual / (X.shape[1] * X.shape[0] * float(value.detach()))
    assert np.allclose(A.grad.numpy(), np.repeat(expected[:, None, :], X.shape[1], axis=1),
                       rtol=1e-10, atol=1e-14)


def test_gradient_descent_lowers_the_gaussian_distance():
    X, Y0 = _pair((12, 5, 3), seed=7, shift=2.0)
    Y = torch.tensor(Y0, requires_grad=True)
    optimiser = torch.optim.Adam([Y], lr=0.05)
    values = []
    for _ in range(50):
        optimiser.zero_grad()
        value = functional.gaussian_stochastic_shape(X, Y)
        value.backward()
        optimiser.step()
        values.append(float(value.detach()))
    assert values[-1] < 0.5 * values[0]
