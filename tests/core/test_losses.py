"""simmetrics.losses: the metrics as training losses (issue 13's worked example: gradient
descent on Y raises its linear CKA with a fixed X), and the loss's sign conventions."""

import math

import numpy as np
import pytest
import torch

import simmetrics
from simmetrics import functional
from simmetrics.losses import SimilarityLoss


def _data(seed=0, n=200, dx=10, dy=6):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, dx, generator=g, dtype=torch.float64)
    Y = torch.randn(n, dy, generator=g, dtype=torch.float64)
    return X, Y


def test_fifty_steps_of_gradient_descent_raise_linear_cka():
    # Y starts independent of X (CKA about dy * dx / n for Gaussian noise); 50 Adam steps on
    # 1 - CKA must bring it close to the largest value a 6-neuron Y can reach against X
    X, Y0 = _data()
    Y = Y0.clone().requires_grad_(True)
    loss = SimilarityLoss("linear_cka")
    optimiser = torch.optim.Adam([Y], lr=0.05)
    values = []
    for _ in range(50):
        optimiser.zero_grad()
        value = loss(X, Y)
        value.backward()
        optimiser.step()
        values.append(1.0 - float(value.detach()))
    final = simmetrics.LinearCKA().fit_score(X.numpy(), Y.detach().numpy())
    start = simmetrics.LinearCKA().fit_score(X.numpy(), Y0.numpy())
    # the ceiling: Y spanning X's top 6 principal directions, weighted by their variances
    # (CKA = sum of the top-6 squared eigenvalues of X'X over sqrt(sum all) sqrt(sum top-6))
    ev = np.linalg.eigvalsh(np.cov(X.numpy().T))[::-1]
    ceiling = np.sum(ev[:6] ** 2) / np.sqrt(np.sum(ev ** 2) * np.sum(ev[:6] ** 2))
    assert start < 0.15 and final > 0.9 * ceiling and final <= ceiling + 1e-9
    assert values[-1] > values[0] + 0.5


def test_loss_conventions_follow_kind_and_bounds():
    X, Y = _data(1, n=40, dx=4, dy=4)
    cka = SimilarityLoss("linear_cka")
    assert math.isclose(float(cka(X, Y)), 1.0 - simmetrics.LinearCKA().fit_score(X, Y),
                        rel_tol=1e-12)
    assert (cka.offset, cka.sign) == (1.0, -1.0)
    debiased = SimilarityLoss(simmetrics.LinearCKA(debiased=True))
    assert (debiased.offset, debiased.sign) == (1.0, -1.0)  # bounds (-1, 1): 1 - CKA
    assert "LinearCKA(debiased=True)" in repr(debiased)
    # a distance is its own loss; ENSD is a similarity with no upper bound: its negative
    assert SimilarityLoss.orientation(simmetrics.OrthogonalProcrustes()) == (0.0, 1.0)
    assert SimilarityLoss.orientation(simmetrics.ENSD()) == (0.0, -1.0)
    assert SimilarityLoss.orientation(simmetrics.RSA()) == (1.0, -1.0)


def test_a_non_differentiable_metric_is_refused_by_name():
    with pytest.raises(functional.NonDifferentiableError, match="MutualKNN"):
        SimilarityLoss("mutual_knn")
    with pytest.raises(TypeError, match="params"):
        SimilarityLoss(simmetrics.LinearCKA(), debiased=True)


def test_float32_activations_train_with_float32_gradients():
    X, Y = _data(2, n=64, dx=5, dy=3)
    Y32 = Y.float().requires_grad_(True)
    value = SimilarityLoss("linear_cka")(X.float(), Y32)
    value.backward()
    assert value.dtype == torch.float64 and Y32.grad.dtype == torch.float32
    assert torch.isfinite(Y32.grad).all() and float(Y32.grad.abs().max()) > 0.0


def test_the_gradient_of_cka_at_a_copy_is_zero():
    # CKA(X, Y) <= 1 with equality at Y = X: a maximum, so the gradient there is 0 (closed form)
    X, _ = _data(3, n=50, dx=4)
    Y = X.clone().requires_grad_(True)
    functional.linear_cka(X, Y).backward()
    assert float(Y.grad.abs().max()) <= 1e-12
