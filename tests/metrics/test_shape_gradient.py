"""Gradients of ShapeMetric and OrthogonalProcrustes (simmetrics.functional,
simmetrics/metrics/shape_gradient.py) beyond the generic suite (tests/core/test_functional.py):
every parameter combination, fewer stimuli than neurons (the n-space rotation, rank n - 1),
repeated singular values (where a differentiated SVD would give inf or NaN), the data users
have (quantised activations, a dead unit), closed forms and the directions the value is
invariant to, and gradient descent on Y towards a fixed X.

The expected gradients are central differences of the class's own fit_score (gradcheck) or
closed forms written here from the definitions with scipy's orthogonal_procrustes."""

import itertools

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from sklearn.base import clone

import simmetrics
from simmetrics import functional
from simmetrics._core.backend import NUMPY, TorchBackend
from simmetrics.metrics.shape_gradient import polar_factor

TORCH = TorchBackend()


def _data(n=14, dx=4, dy=3, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, dx))
    X = Z @ rng.normal(size=(dx, dx)) + 0.3 * rng.normal(size=(n, dx))
    Y = np.tanh(Z[:, :dy] @ rng.normal(size=(dy, dy))) + 0.4 * rng.normal(size=(n, dy))
    return X, Y


def _gradcheck(metric, X, Y, **tol):
    inputs = (torch.tensor(X, requires_grad=True), torch.tensor(Y, requires_grad=True))
    tol = {"eps": 1e-6, "atol": 1e-5, "rtol": 1e-4, **tol}
    return torch.autograd.gradcheck(
        lambda A, B: functional.evaluate(clone(metric), A, B), inputs, **tol)


def _grads(metric, X, Y):
    A, B = torch.tensor(X, requires_grad=True), torch.tensor(Y, requires_grad=True)
    value = functional.evaluate(metric, A, B)
    value.backward()
    return float(value.detach()), A.grad.numpy(), B.grad.numpy()


def _formula_value(metric, X, Y):
    fitted = clone(metric)
    expected = fitted.fit_score(X, Y)
    return float(fitted._gradient_formula(*fitted._gradient_rows(X, Y, NUMPY), NUMPY)), expected


GRID = [simmetrics.ShapeMetric(alpha=a, score_method=s, whitening=w, center_columns=c)
        for a, s, w, c in itertools.product((0.0, 0.4, 1.0), ("angular", "euclidean", "chordal"),
                                            ("trace", "netrep", "covariance"), (True, False))
        if not (a == 1.0 and w != "trace")]


@pytest.mark.parametrize("metric", GRID, ids=repr)
def test_every_parameter_combination_value_and_gradcheck(metric):
    for seed in (0, 1):
        value, expected = _formula_value(metric, *_data(seed=seed))
        assert abs(value - expected) <= 1e-12 * max(1.0, expected), (value, expected)
    assert _gradcheck(metric, *_data(seed=2))


@pytest.mark.parametrize("metric", [
    simmetrics.OrthogonalProcrustes(),
    simmetrics.OrthogonalProcrustes(score_method="euclidean"),
    simmetrics.ShapeMetric(alpha=0.5),
    simmetrics.ShapeMetric(alpha=0.5, score_method="euclidean", whitening="netrep"),
    simmetrics.ShapeMetric(alpha=0.3, score_method="chordal", whitening="covariance"),
], ids=repr)
def test_fewer_stimuli_than_neurons(metric):
    # n = 7 < d = 9: the rotation is found in the n-space (factored I + W K W'), the centred
    # data have rank n - 1 whatever they are, so the value is smooth and the whitening's
    # row-space term of the expansion is needed
    X, Y = _data(n=7, dx=9, dy=8, seed=3)
    fitted = clone(metric)
    fitted.fit(X, Y)
    assert fitted._rotation.basis is not None  # the factored route ran
    value, expected = _formula_value(metric, X, Y)
    assert abs(value - expected) <= 1e-12 * max(1.0, expected)
    assert _gradcheck(metric, X, Y)


def _tied(n=16, d=4, seed=4):
    """Centred X with d equal singular values (orthogonal neurons of equal variance)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(np.column_stack([np.ones(n), rng.normal(size=(n, d))]))
    return 3.0 * Q[:, 1:] + 5.0


@pytest.mark.parametrize("alpha", [0.0, 0.5])
@pytest.mark.parametrize("whitening", ["trace", "covariance"])
def test_repeated_singular_values_have_a_finite_gradient(alpha, whitening):
    X = _tied()
    assert np.ptp(np.linalg.svd(X - X.mean(0), compute_uv=False)) < 1e-12  # all tied
    _, Y = _data(n=16, seed=5)
    metric = simmetrics.ShapeMetric(alpha=alpha, whitening=whitening, score_method="euclidean")
    assert _gradcheck(metric, X, Y)
    # a polar factor through torch's SVD backward is not finite there
    A = torch.tensor(X - X.mean(0), requires_grad=True)
    U, _, Vt = torch.linalg.svd(A, full_matrices=False)
    (U @ Vt * torch.tensor(np.arange(16 * 4.0).reshape(16, 4))).sum().backward()
    assert not torch.isfinite(A.grad).all()


@pytest.mark.parametrize("metric", [simmetrics.OrthogonalProcrustes(),
                                    simmetrics.ShapeMetric(alpha=0.5, score_method="euclidean")],
                         ids=repr)
def test_quantised_activations(metric):
    rng = np.random.default_rng(6)
    X = np.round(2.0 * rng.normal(size=(20, 4)))  # small integers: many ties in the data
    Y = np.round(X[:, :3] + rng.normal(size=(20, 3)))
    assert _gradcheck(metric, X, Y)


def test_dead_unit_on_the_wider_side_procrustes_is_differentiable():
    # X has 4 neurons, one constant; Y has 3: rank(Xc'Yc) = 3 = the narrower width, so the
    # nuclear norm is differentiable, the dead unit's column included
    X, Y = _data(n=15, seed=7)
    X[:, 2] = 1.5
    for method in ("angular", "euclidean"):
        metric = simmetrics.OrthogonalProcrustes(score_method=method)
        assert _gradcheck(metric, X, Y)
        _, G, _ = _grads(metric, X, Y)
        # the unused direction of the wider side: the left singular vectors of Xc'Yc have no
        # component on the dead neuron, so waking it changes the value at second order only
        assert np.abs(G[:, 2]).max() <= 1e-12 * np.abs(G).max()
        assert np.abs(G[:, [0, 1, 3]]).min(axis=0).max() > 0.0


def test_dead_unit_with_whitening_holds_the_rank():
    # alpha < 1 whitens a new direction to the size of the others: the value jumps when the
    # dead unit leaves the column space; the gradient is that of the value at the fitted rank,
    # checked along a perturbation that keeps it (the dead unit moved inside span(Xc)) and
    # by gradcheck over the live neurons. Y is as wide as X, so Y Q reaches the dead direction
    # and the row-space term of the whitening's expansion counts
    X, Y = _data(n=15, dx=4, dy=4, seed=8)
    X[:, 1] = -2.0
    metric = simmetrics.ShapeMetric(alpha=0.5, score_method="euclidean")
    _, G, _ = _grads(clone(metric), X, Y)
    Xc = X - X.mean(0)
    D = np.zeros_like(X)
    D[:, 1] = Xc[:, 0] - 0.5 * Xc[:, 3]
    h = 1e-6
    central = (clone(metric).fit_score(X + h * D, Y)
               - clone(metric).fit_score(X - h * D, Y)) / (2 * h)
    assert abs(np.sum(G * D) - central) <= 1e-6 * max(1.0, abs(central))
    live = torch.tensor(X[:, [0, 2, 3]], requires_grad=True)

    def value(L):
        full = torch.stack([L[:, 0], torch.full((15,), -2.0, dtype=L.dtype), L[:, 1], L[:, 2]], 1)
        return functional.evaluate(clone(metric), full, torch.tensor(Y))

    assert torch.autograd.gradcheck(value, (live,), eps=1e-6, atol=1e-5, rtol=1e-4)


def _polar(A, r):
    """U V' from numpy's SVD, the r leading directions (the definition)."""
    U, _, Vt = np.linalg.svd(A, full_matrices=False)
    return U[:, :r] @ Vt[:r]


@pytest.mark.parametrize("case", ["fewer_stimuli", "tied", "dead_unit"])
def test_polar_factor_expansion_has_the_polar_factors_derivative(case):
    # shape_gradient.polar_factor: value U V' and the derivative of U V' on data of the fitted
    # rank, against central differences of numpy's SVD along a direction that keeps the rank
    rng = np.random.default_rng(14)
    if case == "fewer_stimuli":  # n = 6, d = 9: centred rank 5 whatever the direction
        X = rng.normal(size=(6, 9))
        D = rng.normal(size=(6, 9))
    elif case == "tied":
        X = _tied(n=12, d=4)
        D = rng.normal(size=(12, 4))
    else:  # neuron 2 dead, moved inside the column space of the others
        X = rng.normal(size=(12, 4))
        X[:, 2] = 0.7
        D = rng.normal(size=(12, 4))
        D[:, 2] = (X - X.mean(0)) @ [1.0, -0.5, 0.0, 2.0]
    Xc, Dc = X - X.mean(0), D - D.mean(0)
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    r = int(np.sum(s > 1e-10 * s[0]))
    V = Vt[:r].T
    np.testing.assert_allclose(polar_factor(Xc, V, NUMPY), _polar(Xc, r), rtol=0, atol=1e-13)
    h = 1e-6
    central = (_polar(Xc + h * Dc, r) - _polar(Xc - h * Dc, r)) / (2 * h)
    _, jvp = torch.autograd.functional.jvp(lambda A: polar_factor(A, V, TORCH),
                                           (torch.tensor(Xc),), (torch.tensor(Dc),))
    np.testing.assert_allclose(jvp.numpy(), central, rtol=0, atol=1e-7)


def test_euclidean_procrustes_gradient_is_the_residual_over_the_distance():
    # d/dX ||Xc - Yc Q|| = (Xc - Yc Q) / distance (Danskin; the residual has zero column sums),
    # and d/dY = -(Xc - Yc Q) Q' / distance; Q from scipy (Schoenemann's solution)
    X, Y = _data(n=20, dx=4, dy=4, seed=9)
    value, GX, GY = _grads(simmetrics.OrthogonalProcrustes(score_method="euclidean"), X, Y)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Q, _ = orthogonal_procrustes(Yc, Xc)
    R = Xc - Yc @ Q
    assert abs(value - np.linalg.norm(R)) <= 1e-12 * value
    np.testing.assert_allclose(GX, R / value, rtol=0, atol=1e-12)
    np.testing.assert_allclose(GY, -R @ Q.T / value, rtol=0, atol=1e-12)


def test_angular_procrustes_gradient_closed_form():
    # theta = arccos(nu / (a b)), nu = ||Xc'Yc||_*, a = ||Xc||, b = ||Yc||: d nu / dX = Yc Q'
    # (centred), so dtheta/dX = -(Yc Q' / (a b) - cos Xc / a^2) / sin(theta)
    X, Y = _data(n=20, dx=4, dy=4, seed=10)
    value, GX, _ = _grads(simmetrics.OrthogonalProcrustes(), X, Y)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Q, _ = orthogonal_procrustes(Yc, Xc)
    a, b = np.linalg.norm(Xc), np.linalg.norm(Yc)
    cos = np.sum(Xc * (Yc @ Q)) / (a * b)
    expected = -((Yc @ Q) / (a * b) - cos * Xc / a**2) / np.sqrt(1 - cos**2)
    assert abs(value - np.arccos(cos)) <= 1e-12
    np.testing.assert_allclose(GX, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("metric", [
    simmetrics.OrthogonalProcrustes(),
    simmetrics.ShapeMetric(alpha=0.4, score_method="euclidean"),
    simmetrics.ShapeMetric(alpha=0.0, whitening="covariance"),
    simmetrics.ShapeMetric(alpha=0.7, score_method="chordal", whitening="netrep"),
], ids=repr)
def test_gradient_is_blind_to_translations_and_rotations(metric):
    # value(X R + t) = value(X) for orthogonal R and any t: sum_i G_i = 0 and X'G symmetric
    # (d/ds value(X exp(sK)) = <G, X K> = 0 for every skew K)
    X, Y = _data(n=18, dx=4, dy=4, seed=11)
    _, GX, GY = _grads(metric, X, Y)
    for A, G in ((X, GX), (Y, GY)):
        scale = np.abs(G).max() * np.abs(A).max()
        assert np.abs(G.sum(axis=0)).max() <= 1e-12 * np.abs(G).max() * len(A)
        S = A.T @ G
        assert np.abs(S - S.T).max() <= 1e-11 * scale * len(A)


def test_angular_gradient_is_blind_to_scale_and_full_whitening_to_every_linear_map():
    # alpha = 1, angular: value(c X) = value(X), so <G, X> = 0; alpha = 0, angular: value(X M)
    # = value(X) for every invertible M, so Xc'G = 0
    X, Y = _data(n=18, dx=4, dy=4, seed=12)
    _, G, _ = _grads(simmetrics.OrthogonalProcrustes(), X, Y)
    assert abs(np.sum(G * (X - X.mean(0)))) <= 1e-12 * np.abs(G).max() * np.abs(X).max() * X.size
    _, G, _ = _grads(simmetrics.ShapeMetric(alpha=0.0), X, Y)
    assert np.abs((X - X.mean(0)).T @ G).max() <= 1e-11 * np.abs(G).max() * np.abs(X).max() * 18


def test_gradient_descent_on_y_lowers_the_procrustes_distance_to_a_fixed_x():
    rng = np.random.default_rng(13)
    X = torch.tensor(rng.normal(size=(60, 5)) @ rng.normal(size=(5, 5)))
    Y = torch.tensor(rng.normal(size=(60, 5)), requires_grad=True)
    # the angle's gradient is about 1 / ||Y||: a step of 8 moves Y by a few percent
    optimiser = torch.optim.SGD([Y], lr=8.0)
    values = []
    for _ in range(50):
        optimiser.zero_grad()
        value = functional.procrustes(X, Y)  # the angular distance, in [0, pi/2]
        value.backward()
        optimiser.step()
        values.append(float(value.detach()))
    final = simmetrics.OrthogonalProcrustes().fit_score(X.numpy(), Y.detach().numpy())
    assert values[0] > 1.0 and final < 0.25 * values[0]
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:]))  # every step went down
