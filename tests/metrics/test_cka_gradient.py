"""Linear CKA's gradient formulas (simmetrics/metrics/cka_gradient.py) for every estimator,
including Chun et al.'s, which the generic suite's data (nearly independent neurons) cannot
reach: the formula's value against the class's guarded route, gradcheck against finite
differences of that route, and closed forms of the gradient."""

import numpy as np
import pytest
import torch

import simmetrics
from simmetrics import functional
from simmetrics._core.backend import NUMPY
from simmetrics.metrics.cka_gradient import linear_cka_formula, same_neuron_hsic
from simmetrics.metrics.hsic import hsic_unbiased

ESTIMATORS = ("gretton", "song", "lange", "chun")


def _correlated(seed, n=40, dx=5, dy=4):
    """Neurons that share a latent (Chun's corrected self-terms are then clearly positive)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    X = z @ rng.normal(size=(2, dx)) + 0.3 * rng.normal(size=(n, dx))
    Y = np.tanh(z @ rng.normal(size=(2, dy))) + 0.3 * rng.normal(size=(n, dy))
    return X, Y


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_formula_equals_the_guarded_value(estimator):
    for seed in range(3):
        X, Y = _correlated(seed)
        expected = simmetrics.LinearCKA(estimator=estimator).fit_score(X, Y)
        value = float(linear_cka_formula(X, Y, estimator, NUMPY))
        assert abs(value - expected) <= 1e-12, (estimator, value, expected)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_gradcheck_every_estimator(estimator):
    X, Y = _correlated(5, n=14)
    inputs = (torch.tensor(X, requires_grad=True), torch.tensor(Y, requires_grad=True))
    assert torch.autograd.gradcheck(
        lambda A, B: functional.linear_cka(A, B, estimator=estimator), inputs,
        eps=1e-6, atol=1e-6, rtol=1e-4)


def test_same_neuron_share_against_the_kernels_one_by_one():
    # the definition: sum over columns of Song's unbiased HSIC of the rank-1 kernels x_a x_a'
    X, _ = _correlated(1, n=12)
    expected = sum(hsic_unbiased(np.outer(a, a), np.outer(a, a)) for a in X.T)
    assert abs(float(same_neuron_hsic(X)) - expected) <= 1e-12 * abs(expected)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_gradient_is_blind_to_translation_and_scale(estimator):
    # CKA is invariant to Y -> c Y + t: its gradient G is orthogonal to those directions,
    # sum_i G_i = 0 (translations) and <G, Y> = 0 (scaling)
    X, Y = _correlated(2)
    B = torch.tensor(Y, requires_grad=True)
    functional.linear_cka(X, B, estimator=estimator).backward()
    G = B.grad.numpy()
    scale = np.abs(G).max()
    assert np.abs(G.sum(axis=0)).max() <= 1e-12 * X.shape[0] * scale
    assert abs(np.sum(G * Y)) <= 1e-12 * G.size * scale * np.abs(Y).max()


def test_quantised_activations_with_a_dead_unit_have_a_finite_gradient():
    # 4-level activations (exact ties) and a neuron that never fires: the value is defined
    # (the other neurons vary), and so is the gradient. The kernel XX' moves only at second
    # order when a zero column moves (d(XX') = dX X' + X dX', and X's column is 0), so the
    # gradient of that column is exactly 0 (closed form); the live columns get one
    X, Y = _correlated(3, n=60)
    Xq = np.round(np.maximum(X, 0.0) * 2.0) / 2.0
    Xq[:, 0] = 0.0
    A = torch.tensor(Xq, requires_grad=True)
    functional.linear_cka(A, Y, debiased=True).backward()
    assert torch.isfinite(A.grad).all() and float(A.grad[:, 0].abs().max()) == 0.0
    assert float(A.grad[:, 1:].abs().max()) > 0.0
