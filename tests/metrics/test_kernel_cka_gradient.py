"""Gradients of KernelCKA and IntertwinerCKA (simmetrics.functional) beyond the generic suite
(tests/core/test_functional.py): every parameter setting against finite differences of the
class's value, closed forms the invariances imply (a translation-invariant value has a
gradient whose rows sum to 0, a scale-invariant one tr(X'G) = 0, one invariant to every
invertible linear map X'G = 0, to per-neuron scalings diag(X'G) = 0), the maximum at Y = X,
the median bandwidth's share of the gradient, quantised data and a silent unit."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

import simmetrics
from simmetrics import functional
from simmetrics._core.backend import NUMPY, TorchBackend

KERNEL_SETTINGS = [
    simmetrics.KernelCKA(),
    simmetrics.KernelCKA(debiased=True),
    simmetrics.KernelCKA(sigma=0.7, debiased=True),
    simmetrics.KernelCKA(threshold=1.7),
    simmetrics.KernelCKA(kernel="linear"),
    simmetrics.KernelCKA(kernel="linear", debiased=True),
]
# one activation per intertwiner group (relu: positive scaled permutations, tanh: signed,
# gelu: permutations, abs: scaled, identity: invertible linear), each estimator, both
# position conventions ("sum" reads (n, tokens, channels) inputs with layout="ntd")
INTERTWINER_SETTINGS = [
    simmetrics.IntertwinerCKA(activation=a, estimator=e, positions=p,
                              layout="ntd" if p == "sum" else None)
    for a in ("relu", "tanh", "gelu", "abs", "identity")
    for e in ("max", "median") for p in ("rows", "sum")
    if not (a == "identity" and e == "median")
]


def _data(n=18, dx=4, dy=3, seed=0, tokens=None):
    rng = np.random.default_rng(seed)
    shape = (n,) if tokens is None else (n, tokens)
    Z = rng.normal(size=shape + (dx,))
    X = Z @ rng.normal(size=(dx, dx)) + 0.3 * rng.normal(size=shape + (dx,))
    Y = np.tanh(Z[..., :dy]) + 0.4 * rng.normal(size=shape + (dy,))
    return X, Y


def _gradients(metric, X, Y):
    A = torch.tensor(X, requires_grad=True)
    B = torch.tensor(Y, requires_grad=True)
    functional.evaluate(clone(metric), A, B).backward()
    return A.grad.numpy(), B.grad.numpy()


def _gradcheck(metric, X, Y):
    inputs = (torch.tensor(X, requires_grad=True), torch.tensor(Y, requires_grad=True))
    return torch.autograd.gradcheck(lambda A, B: functional.evaluate(clone(metric), A, B),
                                    inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("metric", KERNEL_SETTINGS + INTERTWINER_SETTINGS, ids=repr)
def test_gradcheck_for_every_setting(metric):
    summed = getattr(metric, "positions", "rows") == "sum"
    assert _gradcheck(metric, *_data(n=12, tokens=3 if summed else None))


@pytest.mark.parametrize("metric", KERNEL_SETTINGS + [
    simmetrics.IntertwinerCKA(), simmetrics.IntertwinerCKA(activation="tanh")], ids=repr)
def test_cka_is_maximal_at_y_equal_x_so_its_gradient_in_y_vanishes(metric):
    X, _ = _data(dy=4)
    _, gy = _gradients(metric, X, X.copy())
    _, g_other = _gradients(metric, X, _data(dy=4, seed=1)[1])
    assert np.abs(gy).max() <= 1e-8 * np.abs(g_other).max()


@pytest.mark.parametrize("metric", KERNEL_SETTINGS, ids=repr)
def test_kernel_cka_gradient_is_orthogonal_to_translations_and_rotations(metric):
    # invariance to X -> X + 1 t' and X -> X Q: rows of G sum to 0, X'G is symmetric
    X, Y = _data()
    for A, G in zip((X, Y), _gradients(metric, X, Y)):
        scale = np.abs(G).max()
        assert np.abs(G.sum(axis=0)).max() <= 1e-10 * scale * len(A)
        M = A.T @ G
        assert np.abs(M - M.T).max() <= 1e-10 * np.abs(M).max()


def test_the_median_bandwidth_is_differentiated_not_held_fixed():
    """With sigma = threshold sqrt(median D), kernel CKA is invariant to X -> c X, so
    tr(X'G) = 0; with sigma fixed at the same number it is not, and the gradients differ."""
    X, Y = _data()
    gx, _ = _gradients(simmetrics.KernelCKA(), X, Y)
    sigma = simmetrics.metrics.kernel_cka.median_sigma(X)
    fixed = simmetrics.KernelCKA(sigma=float(sigma))
    # the same kernel for X; Y's bandwidth stays the median
    g_fixed, _ = _gradients(simmetrics.KernelCKA(sigma=float(sigma)), X, Y * sigma /
                            simmetrics.metrics.kernel_cka.median_sigma(Y))
    assert abs(np.sum(X * gx)) <= 1e-10 * np.abs(X * gx).sum()
    assert abs(np.sum(X * g_fixed)) >= 1e-3 * np.abs(X * g_fixed).sum()
    assert fixed.fit_score(X, Y * sigma / simmetrics.metrics.kernel_cka.median_sigma(Y)) == \
        pytest.approx(simmetrics.KernelCKA().fit_score(X, Y), rel=1e-12)
    assert np.abs(gx - g_fixed).max() >= 1e-3 * np.abs(gx).max()


@pytest.mark.parametrize("metric", [simmetrics.KernelCKA(sigma=1.5),
                                    simmetrics.KernelCKA(kernel="linear", debiased=True)],
                         ids=repr)
def test_quantised_activations_with_duplicated_stimuli(metric):
    # 8-level activations: many stimuli coincide; the kernels are smooth functions of the
    # squared distances, so the gradient is defined there
    X, Y = _data(n=20)
    X, Y = np.round(X * 2) / 2, np.round(Y * 2) / 2
    X[15:], Y[15:] = X[:5], Y[:5]  # repeated stimuli
    assert len(np.unique(X, axis=0)) == 15
    assert _gradcheck(metric, X, Y)


def test_callable_kernel_is_a_clear_error():
    X, Y = _data()
    metric = simmetrics.KernelCKA(kernel=lambda A: A @ A.T)
    assert not functional.is_differentiable(metric)
    with pytest.raises(functional.NonDifferentiableError, match="callable kernel"):
        functional.evaluate(metric, torch.tensor(X, requires_grad=True), torch.tensor(Y))


def test_identity_activation_gradient_annihilates_every_linear_map():
    # invariant to X -> X A for every invertible A: tr(G'X A) = 0 for all A, so X'G = 0
    X, Y = _data(n=20)
    for A, G in zip((X, Y), _gradients(simmetrics.IntertwinerCKA(activation="identity"), X, Y)):
        assert np.abs(A.T @ G).max() <= 1e-10 * np.abs(A).max() * np.abs(G).max() * len(A)


@pytest.mark.parametrize("activation", ["relu", "abs"])
def test_per_neuron_scaling_invariance_gives_a_zero_diagonal_of_xtg(activation):
    X, Y = _data()
    for A, G in zip((X, Y), _gradients(simmetrics.IntertwinerCKA(activation=activation), X, Y)):
        assert np.abs(np.diag(A.T @ G)).max() <= 1e-10 * np.abs(A.T @ G).max()


def test_a_silent_relu_unit_gets_zero_gradient_and_the_others_their_true_one():
    X, Y = _data(dx=5)
    X = np.maximum(X, 0.0)
    X[:, 2] = 0.0  # a dead unit
    metric = simmetrics.IntertwinerCKA()
    gx, _ = _gradients(metric, X, Y)
    assert np.isfinite(gx).all() and not gx[:, 2].any()
    live = torch.tensor(np.delete(X, 2, axis=1), requires_grad=True)

    def value(L):  # the dead column held at 0: finite differences of the class's value
        full = torch.cat([L[:, :2], torch.zeros(len(X), 1, dtype=L.dtype), L[:, 2:]], dim=1)
        return functional.evaluate(clone(metric), full, torch.tensor(Y))

    assert torch.autograd.gradcheck(value, (live,), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_identity_activation_with_dependent_columns_refuses_the_gradient():
    X, Y = _data(n=20)
    X = np.hstack([X, X[:, :1]])  # a repeated neuron: the column space has rank 4 of 5
    A = torch.tensor(X, requires_grad=True)
    value = functional.evaluate(simmetrics.IntertwinerCKA(activation="identity"), A,
                                torch.tensor(Y))
    with pytest.raises(ValueError, match="linearly dependent"):
        value.backward()


def test_selected_products_backward_against_finite_differences():
    rng = np.random.default_rng(2)
    H = torch.tensor(rng.normal(size=(7, 3, 2)), requires_grad=True)
    index = torch.tensor(rng.integers(0, 3, size=(7, 7)))
    index = torch.triu(index) + torch.triu(index, 1).T
    nx = TorchBackend()
    # the brute-force definition, written differently: a loop over the entries
    K = nx.selected_products(H, index).detach()
    H0 = H.detach()
    for a in range(7):
        for b in range(7):
            c = int(index[a, b])
            assert abs(float(K[a, b]) - float(H0[a, c] @ H0[b, c])) <= 1e-14
    assert torch.autograd.gradcheck(lambda A: nx.selected_products(A, index), (H,))


@pytest.mark.parametrize("side", [None, 1, 3, 4, 10])
def test_selected_products_tiles_against_the_untiled_definition(side):
    # tiles of ``side`` samples (1, 3 and 4 leave partial tiles; None and 10 >= n: one tile)
    # against the definitions written with an n x n x C one-hot array of the choice:
    # K_ab = sum_c [I_ab = c] <H_ac, H_bc>, dH = sum_b (W_ab + W_ba) [I_ab = c] H_bc
    rng = np.random.default_rng(5)
    n, C, P = 10, 4, 3
    H = rng.normal(size=(n, C, P))
    index = rng.integers(0, C, size=(n, n))
    index = np.triu(index) + np.triu(index, 1).T
    onehot = (index[:, :, None] == np.arange(C)).astype(float)
    K_ref = np.einsum("abc,acp,bcp->ab", onehot, H, H)
    W = rng.normal(size=(n, n))
    G_ref = np.einsum("ab,abc,bcp->acp", W + W.T, onehot, H)
    nx = TorchBackend()
    A = torch.tensor(H, requires_grad=True)
    K = nx.selected_products(A, torch.tensor(index), side)
    K.backward(torch.tensor(W))
    assert np.abs(K.detach().numpy() - K_ref).max() <= 1e-13
    assert np.abs(A.grad.numpy() - G_ref).max() <= 1e-13
    K_numpy = NUMPY.selected_products(H, index, side)
    assert np.abs(K_numpy - K_ref).max() <= 1e-13


@pytest.mark.parametrize("estimator", ["max", "median"])
@pytest.mark.parametrize("positions", [1, 3])
@pytest.mark.parametrize("chunk_size", [None, 4, 7])
def test_channel_choice_matrix_in_tiles_against_the_brute_force_choice(estimator, positions,
                                                                       chunk_size):
    # the choice by sorting every entry's C products (the first maximum; the lower median,
    # rank (C - 1) // 2), against channel_choice_matrix's tiles (4 and 7 leave partial tiles
    # of n = 19) on numpy and torch; random data, so no ties
    from simmetrics.metrics.intertwiner_kernel import channel_choice_matrix

    rng = np.random.default_rng(6)
    n, C = 19, 6
    H = rng.normal(size=(n, C, positions))
    products = np.einsum("acp,bcp->abc", H, H)
    rank = C - 1 if estimator == "max" else (C - 1) // 2
    expected = np.argsort(products, axis=-1, kind="stable")[..., rank]
    off = ~np.eye(n, dtype=bool)  # the diagonal is left to the U-centring
    for A in (H, torch.tensor(H)):
        index = np.asarray(channel_choice_matrix(A, estimator, chunk_size))
        assert (index == index.T).all()
        assert (index[off] == expected[off]).all()
