"""Tests of simmetrics.nn.stitching: stitch layers, their training, direct matching, penalties.

Independent expectations: torch's own 1 x 1 convolution (channel maps), the closed form of
Sinkhorn's 2 x 2 limit, the group-membership tests of simmetrics.symmetry.groups, and models whose
hidden units were permuted and rescaled by apply_intertwiner_ (a weight-space symmetry, so
the exact stitch is known and the penalty is exactly 0).
"""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from simmetrics import get_group, intertwiner_group
from simmetrics.nn.digits import train_classifier
from simmetrics.nn.stitching import (FixedStitch, IntertwinerStitch, apply_channel_map,
                                  direct_stitch, make_stitch, sinkhorn, split_sequential,
                                  stitch_accuracy, stitch_models, train_stitch)
from simmetrics.symmetry.weights import apply_intertwiner_


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one torch thread is faster than two on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def task(one_thread):
    """A small 4-class problem and a trained MLP per activation (seeded)."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(400, 6, generator=gen)
    W = torch.randn(6, 4, generator=gen)
    y = (X @ W).argmax(1)
    nets = {}
    for name, act in (("relu", nn.ReLU), ("tanh", nn.Tanh), ("gelu", nn.GELU)):
        torch.manual_seed(1)
        net = nn.Sequential(nn.Linear(6, 8), act(), nn.Linear(8, 8), act(), nn.Linear(8, 4))
        nets[name] = train_classifier(net, X[:300], y[:300], epochs=40, seed=0)
    return X, y, nets


def _accuracy(net, X, y):
    with torch.no_grad():
        return int((net(X).argmax(1) == y).sum()) / len(y)


def test_channel_map_matches_conv1x1():
    # expected: torch's Conv2d with a 1 x 1 kernel W[o, i] = M[i, o] and no bias
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, 5, generator=gen)
    M = torch.randn(4, 6, generator=gen)
    conv = nn.Conv2d(4, 6, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(M.T[:, :, None, None])
        torch.testing.assert_close(apply_channel_map(x, M), conv(x))
    x2 = torch.randn(7, 4, generator=gen)
    torch.testing.assert_close(apply_channel_map(x2, M), x2 @ M)
    with pytest.raises(ValueError, match="features have 3 channels.*expects 4"):
        apply_channel_map(torch.zeros(2, 3), M)


def test_sinkhorn_2x2_closed_form():
    # expected: the doubly stochastic scaling of K = [[a, b], [c, d]] is [[p, 1-p], [1-p, p]]
    # with p / (1 - p) = sqrt(ad / bc) (the cross ratio is invariant under row/column scaling)
    K = torch.tensor([[2.0, 1.0], [0.5, 3.0]], dtype=torch.float64)
    S = sinkhorn(K.log(), n_iter=200)
    r = np.sqrt(2.0 * 3.0 / (1.0 * 0.5))
    p = r / (1.0 + r)
    np.testing.assert_allclose(S.numpy(), [[p, 1 - p], [1 - p, p]], atol=1e-12)
    L = torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    S = sinkhorn(L / 0.01, n_iter=50)  # tiny temperature: still finite (log domain)
    assert torch.isfinite(S).all()
    np.testing.assert_allclose(S.sum(0).numpy(), 1.0, atol=1e-12)
    with pytest.raises(ValueError, match="square"):
        sinkhorn(torch.zeros(2, 3))


@pytest.mark.parametrize("activation, group", [("relu", "positive_scaled_permutation"),
                                               ("tanh", "signed_permutation"),
                                               ("gelu", "permutation"),
                                               ("sigmoid", "permutation")])
def test_intertwiner_stitch_rounds_to_a_group_element(activation, group):
    stitch = IntertwinerStitch(5, activation, seed=3)
    with torch.no_grad():  # some non-trivial state
        stitch.logits.copy_(torch.randn(5, 5, generator=torch.Generator().manual_seed(1)))
        if stitch.diag.requires_grad:
            stitch.diag.copy_(torch.linspace(-1.0, 1.0, 5))
    stitch.tau = 0.3
    soft = stitch.matrix().detach().numpy()
    assert stitch.group == group
    stitch.round_()
    M = stitch.matrix().numpy().astype(np.float64)
    # expected membership: the group objects' own tests
    assert intertwiner_group(activation).group.contains(M, atol=1e-6)
    assert not intertwiner_group(activation).group.contains(soft.astype(np.float64), atol=1e-6)
    P = np.zeros((5, 5))
    P[stitch.permutation_, np.arange(5)] = 1.0
    np.testing.assert_allclose(M, P * (stitch.signs_ * stitch.scales_)[None, :], atol=1e-7)
    stitch.unround_()
    np.testing.assert_allclose(stitch.matrix().detach().numpy(), soft)


def test_straight_through_forward_is_exact_and_gradient_flows():
    stitch = IntertwinerStitch(4, "tanh", seed=0)
    stitch.train()
    stitch.straight_through = True
    M = stitch.matrix()
    # the forward value is a signed permutation (expected: the group's membership test)
    assert get_group("signed_permutation").contains(M.detach().numpy().astype(float), atol=1e-6)
    (M * torch.arange(16.0).reshape(4, 4)).sum().backward()
    assert stitch.logits.grad is not None and stitch.logits.grad.abs().sum() > 0
    assert stitch.diag.grad.abs().sum() > 0


def _permuted_copy(net, activation, seed, index=0):
    """net with hidden layer ``index`` transformed by a random element of G_sigma."""
    A = intertwiner_group(activation).group.sample(8, random_state=seed)
    twin = apply_intertwiner_(copy.deepcopy(net), index, A)
    return twin, A


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu"])
def test_direct_stitch_recovers_the_symmetry_exactly(task, activation):
    X, y, nets = task
    net = nets[activation]
    twin, A = _permuted_copy(net, activation, seed=5)
    # expected: the twin computes the same function (weight-space symmetry). Accuracies are
    # counts over len(y), so exact: the twin's float32 logits differ only by rounding (at most
    # 4e-6 here), far less than the gap between any sample's two largest logits (>= 3e-3)
    assert _accuracy(twin, X, y) == _accuracy(net, X, y)
    Fa = net[:2](X).detach().numpy()
    Fb = twin[:2](X).detach().numpy()
    stitch = direct_stitch(Fa, Fb, activation)
    # post-activation rows move by H -> H phi(A)', phi(A) = A here: the stitch is A'
    np.testing.assert_allclose(stitch.M.numpy(), A.T, rtol=1e-5, atol=1e-6)
    r = stitch_models(net, twin, 2, "direct", (X[:300], y[:300]), (X[300:], y[300:]),
                      activation=activation)
    assert r.penalty == 0.0 and r.accuracy == r.accuracy_b == r.accuracy_a


def test_direct_stitch_scales_options(task):
    X, y, nets = task
    net = nets["relu"]
    twin, A = _permuted_copy(net, "relu", seed=2)
    Fa = net[:2](X).detach().numpy()
    Fb = twin[:2](X).detach().numpy()
    rms = direct_stitch(Fa, Fb, "relu", scales="rms")
    # exact symmetry: the rms ratio and the least-squares scale agree with A's scales
    np.testing.assert_allclose(rms.M.numpy(), A.T, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="scales must be"):
        direct_stitch(Fa, Fb, "relu", scales="mean")
    with pytest.raises(ValueError, match="use kind='full'"):
        direct_stitch(Fa, Fb, "identity")


def test_trained_intertwiner_stitch_finds_the_hidden_permutation(task):
    X, y, nets = task
    net = nets["relu"]
    twin, A = _permuted_copy(net, "relu", seed=7)
    # (a non-convex search: the planted permutation is found from this seed and most others,
    # not from every seed)
    r = stitch_models(net, twin, 2, "intertwiner", (X[:300], y[:300]), (X[300:], y[300:]),
                      activation="relu", epochs=60, lr=0.05, seed=0)
    stitch = r.stitch
    true_perm = np.abs(A.T).argmax(axis=0)  # column j of A' has its entry in row true_perm[j]
    # expected: the permutation planted by apply_intertwiner_
    np.testing.assert_array_equal(stitch.permutation_, true_perm)
    assert r.penalty <= 0.02
    assert r.soft_accuracy is not None and r.n_parameters == 8


def test_train_stitch_leaves_models_frozen_and_repeats(task):
    X, y, nets = task
    net = nets["relu"]
    front, back = split_sequential(net, 2)
    for p in back.parameters():
        p.grad = None  # (left over from training the model)
    before = [p.detach().clone() for p in back.parameters()]
    F = front(X).detach()
    mats = []
    for _ in range(2):
        stitch = make_stitch("full", 8, seed=4)
        history = train_stitch(stitch, back, F, y, epochs=3, seed=1)
        mats.append(stitch.matrix().detach().clone())
        assert len(history) == 3
    torch.testing.assert_close(mats[0], mats[1], rtol=0, atol=0)  # same seed, same stitch
    for p, q in zip(before, back.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
        assert q.grad is None  # no gradient reached model B


def test_stitch_kinds_shapes_ranks_and_orthogonality(task):
    X, y, nets = task
    net = nets["relu"]
    front, back = split_sequential(net, "1")
    F = front(X).detach()
    low = make_stitch("lowrank", 8, rank=2, seed=0)
    train_stitch(low, back, F, y, epochs=2)
    assert np.linalg.matrix_rank(low.matrix().detach().numpy(), tol=1e-5) == 2
    orth = make_stitch("orthogonal", 8, seed=0)
    train_stitch(orth, back, F, y, epochs=2)
    M = orth.matrix().detach().numpy().astype(np.float64)
    np.testing.assert_allclose(M.T @ M, np.eye(8), atol=1e-5)  # expected: orthonormal
    rect = make_stitch("orthogonal", 8, 5)
    M = rect.matrix().detach().numpy().astype(np.float64)
    np.testing.assert_allclose(M.T @ M, np.eye(5), atol=1e-5)
    full = make_stitch("full", 8, 3)
    assert tuple(full(F).shape) == (len(X), 3) and full.n_parameters() == 24


def test_full_stitch_of_a_model_with_itself_costs_nothing(task):
    X, y, nets = task
    net = nets["gelu"]
    r = stitch_models(net, net, 4, "full", (X[:300], y[:300]), (X[300:], y[300:]), epochs=30)
    # expected: the identity is in the class, so the penalty is about 0
    assert abs(r.penalty) <= 0.03
    assert r.accuracy_a == r.accuracy_b == _accuracy(net, X[300:], y[300:])


def test_stitch_accuracy_with_fixed_identity_is_clean_accuracy(task):
    X, y, nets = task
    net = nets["tanh"]
    front, back = split_sequential(net, 2)
    acc = stitch_accuracy(FixedStitch(np.eye(8)), back, front(X).detach(), y)
    assert acc == _accuracy(net, X, y)


def test_bad_input():
    with pytest.raises(ValueError, match="kind must be one of"):
        make_stitch("diagonal", 4)
    with pytest.raises(ValueError, match="needs rank"):
        make_stitch("lowrank", 4)
    with pytest.raises(ValueError, match="rank must be at most"):
        make_stitch("lowrank", 4, rank=5)
    with pytest.raises(ValueError, match="rank must be a positive integer"):
        make_stitch("lowrank", 4, rank=0)
    with pytest.raises(ValueError, match="needs activation"):
        make_stitch("intertwiner", 4)
    with pytest.raises(ValueError, match="equal widths"):
        make_stitch("intertwiner", 4, 5, activation="relu")
    with pytest.raises(ValueError, match="not a\\s+group of \\(scaled\\) permutations"):
        make_stitch("intertwiner", 4, activation="identity")
    with pytest.raises(ValueError, match="direct_stitch"):
        make_stitch("direct", 4)
    with pytest.raises(ValueError, match="c_in must be a positive integer"):
        make_stitch("full", 0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="1 <= cut < 3"):
        split_sequential(net, 3)
    with pytest.raises(ValueError, match="no child named 'relu'"):
        split_sequential(net, "relu")
    with pytest.raises(TypeError, match="nn.Sequential"):
        split_sequential(nn.Linear(2, 2), 1)
    stitch = make_stitch("intertwiner", 4, activation="relu")
    with pytest.raises(ValueError, match="straight_through must be"):
        train_stitch(stitch, net[2:], torch.zeros(5, 4), torch.zeros(5), straight_through=2.0)
    with pytest.raises(ValueError, match="features has 5 samples but targets has 4"):
        train_stitch(stitch, net[2:], torch.zeros(5, 4), torch.zeros(4))
    with pytest.raises(ValueError, match="kind must be one of"):
        stitch_models(net, net, 2, "rank 1", (torch.zeros(5, 3), torch.zeros(5)),
                      (torch.zeros(5, 3), torch.zeros(5)))
