"""Gradients of CCA, SVCCA (the fitted cut held) and PWCCA (simmetrics.functional,
simmetrics/metrics/cca_gradient.py) beyond the generic suite (tests/core/test_functional.py):
SVCCA with real cuts on both sides, ties inside the kept block and at equal correlations, the
data users have (quantised activations, a dead unit), the closed forms (a maximum has gradient
0) and the directions each value is invariant to.

The expected gradients are central differences of the class's own fit_score (gradcheck) or
closed forms from the definitions."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

import simmetrics
from simmetrics import functional
from simmetrics._core.backend import NUMPY
from simmetrics.metrics.cca import canonical_correlations


def _data(n=30, dx=5, dy=4, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, dx))
    X = Z @ rng.normal(size=(dx, dx)) + 0.3 * rng.normal(size=(n, dx))
    Y = np.tanh(Z[:, :dy] @ rng.normal(size=(dy, dy))) + 0.5 * rng.normal(size=(n, dy))
    return X, Y


def _gradcheck(metric, X, Y):
    inputs = (torch.tensor(X, requires_grad=True), torch.tensor(Y, requires_grad=True))
    return torch.autograd.gradcheck(lambda A, B: functional.evaluate(clone(metric), A, B),
                                    inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def _grads(metric, X, Y):
    A, B = torch.tensor(X, requires_grad=True), torch.tensor(Y, requires_grad=True)
    value = functional.evaluate(clone(metric), A, B)
    value.backward()
    return float(value.detach()), A.grad.numpy(), B.grad.numpy()


def _formula_value(metric, X, Y):
    fitted = clone(metric)
    expected = fitted.fit_score(X, Y)
    value = float(fitted._gradient_formula(*fitted._gradient_rows(X, Y, NUMPY), NUMPY))
    return value, expected, fitted


METRICS = [simmetrics.CCA(), simmetrics.CCA(statistic="mean_rho_sq"),
           simmetrics.SVCCA(), simmetrics.SVCCA(variance=0.8, statistic="mean_rho_sq"),
           simmetrics.PWCCA(), simmetrics.PWCCA(side="y"), simmetrics.PWCCA(side="symmetric")]


@pytest.mark.parametrize("metric", METRICS, ids=repr)
def test_value_and_gradcheck_both_orders_of_widths(metric):
    for seed in (0, 1):
        for X, Y in (_data(seed=seed), _data(seed=seed)[::-1]):
            value, expected, _ = _formula_value(metric, X, Y)
            assert abs(value - expected) <= 1e-12, (value, expected)
    X, Y = _data(n=14, seed=2)
    assert _gradcheck(metric, X, Y) and _gradcheck(metric, Y, X)


def _decaying(n=40, d=6, seed=3):
    """Neurons whose variances fall off: SVCCA's cut keeps a few of them."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * [5.0, 3.0, 2.0, 0.6, 0.3, 0.1]


@pytest.mark.parametrize("statistic", ["mean_rho", "mean_rho_sq"])
def test_svcca_cut_on_both_sides_is_held(statistic):
    X = _decaying(seed=3)
    Y = X[:, ::-1] @ np.random.default_rng(4).normal(size=(6, 6)) * 0.2 + _decaying(seed=5)
    metric = simmetrics.SVCCA(variance=0.9, statistic=statistic)
    value, expected, fitted = _formula_value(metric, X, Y)
    assert abs(value - expected) <= 1e-12
    assert fitted.n_components_x_ < 6 and fitted.n_components_y_ < 6  # both sides cut
    assert _gradcheck(metric, X, Y)


def test_svcca_ties_inside_the_kept_block_cost_nothing():
    # X: 3 orthogonal neurons of equal variance (kept as one block) and 2 weak ones (cut);
    # the expansion divides only across the cut
    rng = np.random.default_rng(6)
    Q, _ = np.linalg.qr(np.column_stack([np.ones(30), rng.normal(size=(30, 5))]))
    X = Q[:, 1:] * [4.0, 4.0, 4.0, 0.2, 0.1]
    Y = np.tanh(X[:, :3] @ rng.normal(size=(3, 4))) + 0.5 * rng.normal(size=(30, 4))
    metric = simmetrics.SVCCA(variance=0.95)
    fitted = clone(metric)
    fitted.fit(X, Y)
    assert fitted.n_components_x_ == 3
    assert _gradcheck(metric, X, Y)


def _equal_correlations(n=24, seed=7):
    """X, Y whose two canonical correlations are both cos(0.6) (a repeated singular value)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(np.column_stack([np.ones(n), rng.normal(size=(n, 4))]))
    U = Q[:, 1:]
    X = U[:, :2] @ rng.normal(size=(2, 2))
    Y = (np.cos(0.6) * U[:, :2] + np.sin(0.6) * U[:, 2:]) @ rng.normal(size=(2, 2)) + 1.0
    return X, Y


@pytest.mark.parametrize("statistic", ["mean_rho", "mean_rho_sq"])
def test_cca_at_repeated_correlations(statistic):
    X, Y = _equal_correlations()
    rho = canonical_correlations(X, Y)
    assert np.ptp(rho) < 1e-12 and abs(rho[0] - np.cos(0.6)) < 1e-12
    assert _gradcheck(simmetrics.CCA(statistic=statistic), X, Y)


@pytest.mark.parametrize("metric", [simmetrics.CCA(), simmetrics.SVCCA(), simmetrics.PWCCA()],
                         ids=repr)
def test_quantised_activations(metric):
    rng = np.random.default_rng(8)
    X = np.round(2.0 * rng.normal(size=(25, 4)))
    Y = np.round(X[:, :3] + 1.5 * rng.normal(size=(25, 3)))
    assert _gradcheck(metric, X, Y)


def test_dead_unit_gets_no_gradient_and_the_live_neurons_their_own():
    # a constant neuron of X: the fitted rank (3 of 4) is held, so the dead column's gradient
    # is 0 (a perturbation inside span(Xc) leaves CCA unchanged; one outside adds a direction,
    # where the value jumps); the live neurons' gradient is checked against finite differences
    X, Y = _data(n=20, dx=4, dy=3, seed=9)
    X[:, 1] = 3.0
    for metric in (simmetrics.CCA(), simmetrics.PWCCA(side="symmetric")):
        _, G, _ = _grads(metric, X, Y)
        assert np.all(np.isfinite(G)) and np.abs(G[:, 1]).max() <= 1e-12 * np.abs(G).max()
        live = torch.tensor(X[:, [0, 2, 3]], requires_grad=True)

        def value(L, metric=metric):
            full = torch.stack([L[:, 0], torch.full((20,), 3.0, dtype=L.dtype), L[:, 1],
                                L[:, 2]], 1)
            return functional.evaluate(clone(metric), full, torch.tensor(Y))

        assert torch.autograd.gradcheck(value, (live,), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_cca_gradient_vanishes_at_its_maximum():
    # Y = X A + c spans the same column space: every correlation is 1, the maximum, so the
    # gradient is 0 (mean_rho: the nuclear norm of an orthogonal M is smooth there)
    rng = np.random.default_rng(10)
    X = rng.normal(size=(30, 4))
    Y = X @ rng.normal(size=(4, 4)) + 2.0
    for statistic in ("mean_rho", "mean_rho_sq"):
        value, GX, GY = _grads(simmetrics.CCA(statistic=statistic), X, Y)
        assert abs(value - 1.0) <= 1e-12
        assert np.abs(GX).max() <= 1e-10 and np.abs(GY).max() <= 1e-10


def test_cca_gradient_is_blind_to_every_linear_map_and_translation():
    # CCA(X M + t) = CCA(X) for invertible M: <G, X K> = 0 for every K, so Xc'G = 0, and the
    # column sums of G vanish
    X, Y = _data(seed=11)
    for statistic in ("mean_rho", "mean_rho_sq"):
        _, GX, GY = _grads(simmetrics.CCA(statistic=statistic), X, Y)
        for A, G in ((X, GX), (Y, GY)):
            tol = 1e-12 * np.abs(G).max() * np.abs(A).max() * len(A)
            assert np.abs((A - A.mean(0)).T @ G).max() <= tol
            assert np.abs(G.sum(axis=0)).max() <= 1e-12 * np.abs(G).max() * len(A)


def test_svcca_gradient_is_blind_to_rotations_scale_and_translation():
    # SVCCA(c X R + t) = SVCCA(X), R orthogonal: X'G symmetric, <G, Xc> = 0, column sums 0
    X, Y = _data(seed=12)
    _, GX, GY = _grads(simmetrics.SVCCA(variance=0.9), X, Y)
    for A, G in ((X, GX), (Y, GY)):
        Ac = A - A.mean(0)
        tol = 1e-11 * np.abs(G).max() * np.abs(A).max() * len(A)
        S = Ac.T @ G
        assert np.abs(S - S.T).max() <= tol and abs(np.trace(S)) <= tol
        assert np.abs(G.sum(axis=0)).max() <= 1e-12 * np.abs(G).max() * len(A)


def test_pwcca_gradient_is_blind_to_scale_and_translation():
    X, Y = _data(seed=13)
    for side in ("x", "y", "symmetric"):
        _, GX, GY = _grads(simmetrics.PWCCA(side=side), X, Y)
        for A, G in ((X, GX), (Y, GY)):
            tol = 1e-12 * np.abs(G).max() * np.abs(A).max() * A.size
            assert abs(np.sum(G * (A - A.mean(0)))) <= tol
            assert np.abs(G.sum(axis=0)).max() <= 1e-12 * np.abs(G).max() * len(A)


def test_pwcca_only_the_weighting_sides_rotation_matters():
    # side="x": the value is invariant to any invertible map of Y (only the correlations and
    # X's weights enter), so Yc'G_Y = 0; X's weights are not rotation invariant, X'G_X is not
    # symmetric
    X, Y = _data(seed=14)
    _, GX, GY = _grads(simmetrics.PWCCA(side="x"), X, Y)
    assert np.abs((Y - Y.mean(0)).T @ GY).max() <= 1e-12 * np.abs(GY).max() * np.abs(Y).max() * 30
    S = (X - X.mean(0)).T @ GX
    assert np.abs(S - S.T).max() > 1e-6 * np.abs(S).max()
