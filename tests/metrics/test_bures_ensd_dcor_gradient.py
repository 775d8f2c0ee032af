"""Gradients of DistanceCorrelation, NormalizedBuresSimilarity, BuresDistance, ENSD and
ENSDDistance (simmetrics.functional) beyond the generic suite: closed forms the invariances
imply (rows of G sum to 0 for translation invariance, X'G symmetric for orthogonal invariance,
tr(X'G) = 0 for scale invariance, Euler's identity tr(X'G_X) + tr(Y'G_Y) = d for the
distance of degree 1), the maxima and zeros (Y = X, Y = c X Q), and quantised data with
repeated stimuli."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

import simmetrics
from simmetrics import functional

METRICS = [simmetrics.DistanceCorrelation(), simmetrics.NormalizedBuresSimilarity(),
           simmetrics.BuresDistance(), simmetrics.ENSD(), simmetrics.ENSDDistance()]
SCALE_INVARIANT = [m for m in METRICS if "isotropic_scaling" in m.invariances]


def _data(n=18, dx=4, dy=3, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, max(dx, dy)))
    X = Z[:, :dx] @ rng.normal(size=(dx, dx)) + 0.3 * rng.normal(size=(n, dx))
    Y = np.tanh(Z[:, :dy]) + 0.4 * rng.normal(size=(n, dy))
    return X, Y


def _gradients(metric, X, Y):
    A, B = torch.tensor(X, requires_grad=True), torch.tensor(Y, requires_grad=True)
    value = functional.evaluate(clone(metric), A, B)
    value.backward()
    return float(value.detach()), A.grad.numpy(), B.grad.numpy()


@pytest.mark.parametrize("metric", METRICS, ids=repr)
def test_gradient_is_orthogonal_to_translations_and_rotations(metric):
    X, Y = _data()
    _, gx, gy = _gradients(metric, X, Y)
    for A, G in ((X, gx), (Y, gy)):
        assert np.abs(G.sum(axis=0)).max() <= 1e-10 * np.abs(G).max() * len(A)
        M = A.T @ G
        assert np.abs(M - M.T).max() <= 1e-10 * np.abs(M).max()


@pytest.mark.parametrize("metric", SCALE_INVARIANT, ids=repr)
def test_scale_invariant_values_have_tr_xtg_zero(metric):
    X, Y = _data()
    _, gx, gy = _gradients(metric, X, Y)
    for A, G in ((X, gx), (Y, gy)):
        assert abs(np.sum(A * G)) <= 1e-10 * np.abs(A * G).sum()


def test_bures_distance_is_homogeneous_of_degree_one():
    # d(cX, cY) = c d(X, Y), so by Euler's identity tr(X'G_X) + tr(Y'G_Y) = d
    X, Y = _data(dy=5)
    d, gx, gy = _gradients(simmetrics.BuresDistance(), X, Y)
    assert np.sum(X * gx) + np.sum(Y * gy) == pytest.approx(d, rel=1e-10)


def test_bures_gradient_is_the_closed_form_of_the_nuclear_norm():
    # d^2 = ||Xc||^2 + ||Yc||^2 - 2 ||Xc'Yc||_*: grad_X d = (Xc - Yc V U') / d with
    # Xc'Yc = U S V' (the nuclear norm's gradient U V'), independent of the Danskin route
    X, Y = _data(dy=5)
    d, gx, _ = _gradients(simmetrics.BuresDistance(), X, Y)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    U, _, Vt = np.linalg.svd(Xc.T @ Yc, full_matrices=False)
    assert np.abs(gx - (Xc - Yc @ Vt.T @ U.T) / d).max() <= 1e-10 * np.abs(gx).max()


@pytest.mark.parametrize("metric", [simmetrics.DistanceCorrelation(),
                                    simmetrics.NormalizedBuresSimilarity()], ids=repr)
def test_similarity_is_maximal_at_a_similarity_transform_so_the_gradient_vanishes(metric):
    X, _ = _data(dy=4)
    Q, _ = np.linalg.qr(np.random.default_rng(5).normal(size=(4, 4)))
    _, _, gy = _gradients(metric, X, 2.0 * X @ Q + 1.0)
    _, _, g_other = _gradients(metric, X, _data(dy=4, seed=1)[1])
    assert np.abs(gy).max() <= 1e-7 * np.abs(g_other).max()


@pytest.mark.parametrize("metric", [simmetrics.BuresDistance(), simmetrics.ENSDDistance()],
                         ids=repr)
def test_distances_at_zero_have_finite_gradients(metric):
    # the cone at d = 0 has no gradient: the formula returns a finite subgradient, not NaN
    X, _ = _data(dy=4)
    Q, _ = np.linalg.qr(np.random.default_rng(5).normal(size=(4, 4)))
    Y = X @ Q + 1.0 if isinstance(metric, simmetrics.BuresDistance) else 3.0 * X @ Q
    d, gx, gy = _gradients(metric, X, Y)
    assert d <= 1e-7
    assert np.isfinite(gx).all() and np.isfinite(gy).all()
    assert np.abs(gx).max() <= 2.0  # a subgradient of a Lipschitz cone (||grad d|| <= 1)


@pytest.mark.parametrize("metric", METRICS, ids=repr)
def test_quantised_activations_with_repeated_stimuli(metric):
    # repeated stimuli: distance correlation has cones at d_ij = 0 whose central differences
    # vanish, as the formula's subgradient does; the others are smooth there
    X, Y = _data(n=20, dy=5)
    X, Y = np.round(X * 2) / 2, np.round(Y * 2) / 2
    X[15:], Y[15:] = X[:5], Y[:5]
    inputs = (torch.tensor(X, requires_grad=True), torch.tensor(Y, requires_grad=True))
    assert torch.autograd.gradcheck(lambda A, B: functional.evaluate(clone(metric), A, B),
                                    inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_ensd_gradient_matches_its_closed_form():
    # ENSD = tx ty c / (gxx gyy) with tx = ||Xc||^2, c = ||Xc'Yc||^2, gxx = ||Xc'Xc||^2:
    # d log ENSD / dXc = 2 Xc / tx + 2 Yc C' / c - 4 Xc Gx / gxx (the logarithmic derivative)
    X, Y = _data()
    _, gx, _ = _gradients(simmetrics.ENSD(), X, Y)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    tx, ty = np.sum(Xc**2), np.sum(Yc**2)
    Gx, Gy, C = Xc.T @ Xc, Yc.T @ Yc, Xc.T @ Yc
    gxx, gyy, c = np.sum(Gx**2), np.sum(Gy**2), np.sum(C**2)
    value = tx * ty * c / (gxx * gyy)
    expected = value * (2 * Xc / tx + 2 * Yc @ C.T / c - 4 * Xc @ Gx / gxx)
    assert np.abs(gx - expected).max() <= 1e-10 * np.abs(expected).max()
