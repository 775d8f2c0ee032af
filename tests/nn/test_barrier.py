"""Tests of simmetrics.loss_barrier (simmetrics/nn/barrier.py): linear mode connectivity.

Expected values come from routes that do not go through the module's interpolation and
evaluation loop: closed forms (a scalar two-layer linear network, whose loss along the line is
a polynomial in lambda written out by hand), the end models' losses computed directly with
torch, weights interpolated by hand from the state dicts and run through ``torch.nn.functional``
calls, and per-channel statistics computed with ``Tensor.mean`` / ``Tensor.var`` on
the layers' outputs obtained by calling the modules one by one.
"""

import copy
import json
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import simmetrics
from simmetrics.nn.barrier import BarrierResult, interpolated_model, loss_barrier
from simmetrics.symmetry.weights import apply_intertwiner_


def _mlp(widths, act=nn.Tanh, seed=0, bn=False):
    torch.manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            if bn:
                layers.append(nn.BatchNorm1d(widths[i + 1], affine=bn != "no-affine"))
            layers.append(act())
    return nn.Sequential(*layers).double().eval()


def _cnn(seed=0, bn=True):
    torch.manual_seed(seed)
    layers = [nn.Conv2d(2, 4, 3, padding=1)]
    if bn:
        layers.append(nn.BatchNorm2d(4))
    layers += [nn.ReLU(), nn.Conv2d(4, 3, 3)]
    if bn:
        layers.append(nn.BatchNorm2d(3))
    layers += [nn.GELU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5)]
    return nn.Sequential(*layers).double().eval()


@pytest.fixture
def xy():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(120, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (120,), generator=g)
    return x, y


def _permutation_matrix(n, seed):
    perm = np.random.default_rng(seed).permutation(n)
    P = np.zeros((n, n))
    P[np.arange(n), perm] = 1.0
    return P


class _UndoPermutations:
    """A test double of an alignment: ``apply`` undoes planted permutations P_k of hidden layer
    ``index_k`` (apply_intertwiner_ with P_k' = P_k^-1), on a copy."""

    def __init__(self, planted):
        self.planted = planted  # {index: P}

    def apply(self, model_b):
        out = copy.deepcopy(model_b)
        for index, P in self.planted.items():
            apply_intertwiner_(out, index, P.T)
        return out


def _direct_loss(model, x, y):
    """The mean cross-entropy and accuracy of ``model`` on (x, y), straight from torch."""
    with torch.no_grad():
        out = model.eval()(x)
        return float(F.cross_entropy(out, y)), float((out.argmax(1) == y).double().mean())


# -- identities ---------------------------------------------------------------------------------
def test_identical_models_have_zero_barrier_and_constant_losses(xy):
    a = _mlp([6, 8, 8, 4])
    result = loss_barrier(a, copy.deepcopy(a), xy, steps=7)
    assert isinstance(result, BarrierResult)
    np.testing.assert_allclose(result.lambdas, np.linspace(0.0, 1.0, 7), rtol=0, atol=0)
    loss0, acc0 = _direct_loss(a, *xy)
    np.testing.assert_allclose(result.losses, loss0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.accuracies, acc0, rtol=0, atol=1e-12)
    assert abs(result.barrier) <= 1e-12
    assert abs(result.accuracy_barrier) <= 1e-12


def test_endpoints_are_the_end_models_own_losses(xy):
    a, b = _mlp([6, 8, 4], seed=0), _mlp([6, 8, 4], seed=1)
    result = loss_barrier(a, b, xy, steps=5)
    la, aa = _direct_loss(a, *xy)
    lb, ab = _direct_loss(b, *xy)
    assert abs(result.losses[0] - la) <= 1e-12 and abs(result.losses[-1] - lb) <= 1e-12
    assert abs(result.accuracies[0] - aa) <= 1e-12 and abs(result.accuracies[-1] - ab) <= 1e-12


def test_intermediate_losses_match_hand_interpolated_weights(xy):
    # the weights (1 - lam) theta_a + lam theta_b built by hand from the state dicts, run by
    # calling F.linear / tanh directly
    a, b = _mlp([6, 8, 4], seed=0), _mlp([6, 8, 4], seed=1)
    result = loss_barrier(a, b, xy, steps=4)
    sa, sb = a.state_dict(), b.state_dict()
    x, y = xy
    for lam, loss, acc in zip(result.lambdas, result.losses, result.accuracies):
        w = {k: (1 - lam) * sa[k] + lam * sb[k] for k in sa}
        out = F.linear(torch.tanh(F.linear(x, w["0.weight"], w["0.bias"])), w["2.weight"],
                       w["2.bias"])
        assert abs(float(F.cross_entropy(out, y)) - loss) <= 1e-12
        assert abs(float((out.argmax(1) == y).double().mean()) - acc) <= 1e-12


def test_planted_permutation_end_losses_equal_and_undone_alignment_gives_zero(xy):
    a = _mlp([6, 10, 9, 4], act=nn.ReLU)
    planted = {0: _permutation_matrix(10, 1), 2: _permutation_matrix(9, 2)}
    b = copy.deepcopy(a)
    for index, P in planted.items():
        apply_intertwiner_(b, index, P)
    assert not torch.equal(a[0].weight, b[0].weight)  # the plant moved the units
    plain = loss_barrier(a, b, xy, steps=9)
    assert abs(plain.losses[0] - plain.losses[-1]) <= 1e-12
    assert plain.barrier > 1e-3  # measured 0.0026 (untrained nets): permuted units do not line up
    aligned = loss_barrier(a, b, xy, steps=9, alignment=_UndoPermutations(planted))
    assert aligned.aligned is True
    assert abs(aligned.barrier) <= 1e-10
    np.testing.assert_allclose(aligned.losses, plain.losses[0], rtol=0, atol=1e-10)


# -- a closed form ------------------------------------------------------------------------------
def _scalar_deep_linear(w1, w2):
    net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)).double()
    with torch.no_grad():
        net[0].weight.fill_(w1)
        net[1].weight.fill_(w2)
    return net


@pytest.mark.parametrize("per_sample", [False, True])
def test_barrier_of_a_scalar_deep_linear_net_matches_the_closed_form(per_sample):
    # f(x) = w2 w1 x; along the line w_i(lam) = (1 - lam) a_i + lam b_i the product is
    # p(lam) = ((1 - lam) a1 + lam b1) ((1 - lam) a2 + lam b2), and the MSE is
    # L(lam) = p^2 m_xx - 2 p m_xt + m_tt with the data moments m; written out by hand here.
    a1, a2, b1, b2 = 2.0, 0.8, -1.0, -1.0  # end products 1.6 and 1: unequal end losses
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 1, generator=g, dtype=torch.float64)
    t = 1.0 * x + 0.3 * torch.randn(200, 1, generator=g, dtype=torch.float64)
    m_xx, m_xt, m_tt = (float((u * v).mean()) for u, v in ((x, x), (x, t), (t, t)))
    lam = np.linspace(0, 1, 11)
    p = ((1 - lam) * a1 + lam * b1) * ((1 - lam) * a2 + lam * b2)
    expected = p ** 2 * m_xx - 2 * p * m_xt + m_tt
    expected_barrier = np.max(expected - ((1 - lam) * expected[0] + lam * expected[-1]))
    assert expected_barrier > 0.5  # p dips below 0 between the end points
    assert abs(expected[0] - expected[-1]) > 0.1  # a sloped line: max L - max(L0, L1) differs

    if per_sample:
        def loss_fn(out, target):
            return ((out - target) ** 2).sum(1)
    else:
        loss_fn = nn.MSELoss()
    result = loss_barrier(_scalar_deep_linear(a1, a2), _scalar_deep_linear(b1, b2), (x, t),
                          loss_fn=loss_fn, steps=11, batch_size=64)
    np.testing.assert_allclose(result.losses, expected, rtol=1e-12, atol=1e-13)
    assert abs(result.barrier - expected_barrier) <= 1e-12
    assert np.isnan(result.accuracies).all() and np.isnan(result.accuracy_barrier)
    line = (1 - lam) * expected[0] + lam * expected[-1]
    assert result.barrier_lambda == lam[np.argmax(expected - line)]


def test_batching_does_not_change_the_losses(xy):
    a, b = _mlp([6, 8, 4], seed=0), _mlp([6, 8, 4], seed=1)
    x, y = xy
    whole = loss_barrier(a, b, (x, y), steps=6, batch_size=len(x))
    sizes = [7, 50, 1, 62]  # uneven batches, a list of pairs
    chunks = list(zip(torch.split(x, sizes), torch.split(y, sizes)))
    split = loss_barrier(a, b, chunks, steps=6)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32,
                                         shuffle=True)
    shuffled = loss_barrier(a, b, loader, steps=6)
    generator = loss_barrier(a, b, (c for c in chunks), steps=6)  # a one-shot iterator
    for other in (split, shuffled, generator):
        np.testing.assert_allclose(other.losses, whole.losses, rtol=0, atol=1e-12)
        np.testing.assert_allclose(other.accuracies, whole.accuracies, rtol=0, atol=1e-12)
        assert other.n_samples == len(x)


# -- REPAIR and RESET ---------------------------------------------------------------------------
def _pre_activations(net, x):
    """The inputs of every activation module of a flat Sequential, by calling the modules one by
    one (no hooks), each as (rows, channels) with the channels of a conv output as columns."""
    out, h = [], x
    with torch.no_grad():
        for module in net:
            if type(module).__module__ == "torch.nn.modules.activation":
                out.append(h.movedim(1, -1).reshape(-1, h.shape[1]) if h.ndim > 2 else h)
            h = module(h)
    return out


@pytest.mark.parametrize("make", [
    lambda s: _mlp([6, 9, 7, 4], act=nn.Tanh, seed=s),
    lambda s: _mlp([6, 9, 7, 4], act=nn.ReLU, seed=s, bn=True),
    lambda s: _mlp([6, 9, 7, 4], act=nn.SiLU, seed=s, bn="no-affine"),
    lambda s: _cnn(seed=s, bn=False),
    lambda s: _cnn(seed=s, bn=True),
], ids=["mlp-tanh", "mlp-bn-relu", "mlp-bn-no-affine", "cnn", "cnn-bn"])
def test_repair_matches_the_interpolated_channel_statistics(make):
    a, b = make(0), make(1)
    g = torch.Generator().manual_seed(5)
    shape = (90, 6) if isinstance(a[0], nn.Linear) else (90, 2, 6, 6)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (90,), generator=g)
    batches = list(zip(torch.split(x, 40), torch.split(y, 40)))
    lam = 0.35
    za, zb = _pre_activations(a, x), _pre_activations(b, x)
    repaired = interpolated_model(a, b, lam, data=batches, repair="repair")
    plain = interpolated_model(a, b, lam)
    zr, zp = _pre_activations(repaired, x), _pre_activations(plain, x)
    assert len(zr) == 2
    for k in range(2):
        mean_t = (1 - lam) * za[k].mean(0) + lam * zb[k].mean(0)
        std_t = (1 - lam) * za[k].std(0, unbiased=False) + lam * zb[k].std(0, unbiased=False)
        np.testing.assert_allclose(zr[k].mean(0), mean_t, rtol=0, atol=1e-6)
        np.testing.assert_allclose(zr[k].std(0, unbiased=False), std_t, rtol=0, atol=1e-6)
        # the plain interpolation does not have these statistics (variance collapse)
        assert float((zp[k].std(0, unbiased=False) - std_t).abs().max()) > 1e-3
    # loss_barrier evaluates exactly that network at lam
    result = loss_barrier(a, b, batches, steps=3, repair="repair")
    result_mid = loss_barrier(a, b, batches, steps=21, repair="repair")
    with torch.no_grad():
        direct = float(F.cross_entropy(repaired(x), y))
    assert abs(result_mid.losses[7] - direct) <= 1e-10  # lambdas[7] = 0.35
    # at the end points the correction is the identity
    la, _ = _direct_loss(a, x, y)
    assert abs(result.losses[0] - la) <= 1e-10
    assert result.repair == "repair"


def test_reset_bn_recomputes_running_statistics_from_the_data():
    a, b = _mlp([6, 9, 4], act=nn.ReLU, seed=0, bn=True), _mlp([6, 9, 4], act=nn.ReLU, seed=1,
                                                                    bn=True)
    for net in (a, b):  # non-trivial running statistics at the end points
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(96, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (96,), generator=g)
    lam = 0.6
    sa, sb = a.state_dict(), b.state_dict()
    W = (1 - lam) * sa["0.weight"] + lam * sb["0.weight"]
    c = (1 - lam) * sa["0.bias"] + lam * sb["0.bias"]
    z = F.linear(x, W, c)  # the BatchNorm's input in the interpolated network
    # one batch: the batch mean and the unbiased batch variance (torch's running_var convention)
    net = interpolated_model(a, b, lam, data=(x, y), repair="reset_bn", batch_size=96)
    np.testing.assert_allclose(net[1].running_mean, z.mean(0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(net[1].running_var, z.var(0, unbiased=True), rtol=0, atol=1e-12)
    assert net[1].momentum == a[1].momentum and not net.training
    # several batches (momentum=None): the average of the per-batch statistics
    net = interpolated_model(a, b, lam, data=(x, y), repair="reset_bn", batch_size=32)
    parts = torch.split(z, 32)
    np.testing.assert_allclose(net[1].running_mean, sum(p.mean(0) for p in parts) / 3,
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(net[1].running_var, sum(p.var(0) for p in parts) / 3,
                               rtol=0, atol=1e-12)
    result = loss_barrier(a, b, (x, y), steps=6, repair="reset_bn", batch_size=32)
    with torch.no_grad():
        direct = float(F.cross_entropy(net(x), y))
    assert abs(result.losses[3] - direct) <= 1e-12  # lambdas[3] = 0.6


def test_reset_bn_keeps_dropout_off_while_measuring():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(4, 6), nn.Dropout(0.9), nn.BatchNorm1d(6), nn.ReLU(),
                      nn.Linear(6, 3)).double()
    x = torch.randn(50, 4, dtype=torch.float64)
    net = interpolated_model(a, copy.deepcopy(a), 0.5, data=(x, torch.zeros(50).long()),
                             repair="reset_bn", batch_size=50)
    z = a[0](x)  # dropout in evaluation mode is the identity
    np.testing.assert_allclose(net[2].running_mean, z.detach().mean(0), rtol=0, atol=1e-12)


# -- trained models -----------------------------------------------------------------------------
def test_independently_trained_digits_mlps_have_a_positive_barrier_and_states_are_kept():
    from simmetrics.nn.digits import load_digits_split, make_mlp, train_classifier

    X_train, X_test, y_train, y_test = load_digits_split()
    a = train_classifier(make_mlp(hidden=(24,), seed=0), X_train, y_train, epochs=4, seed=0)
    b = train_classifier(make_mlp(hidden=(24,), seed=1), X_train, y_train, epochs=4, seed=1)
    a.train()
    a[1].eval()
    b[0].weight.requires_grad_(False)
    before = [p.detach().clone() for p in list(a.parameters()) + list(b.parameters())]
    modes = [m.training for m in list(a.modules()) + list(b.modules())]
    result = loss_barrier(a, b, (X_test, y_test), steps=9)
    # measured 0.41 (loss) and 0.079 (accuracy) for these seeds, widths and epochs; a
    # measure that is trivially 0 would fail
    assert result.barrier > 0.05 and result.accuracy_barrier > 0.0
    assert result.accuracies[0] > 0.8 and result.accuracies[-1] > 0.8
    assert torch.is_grad_enabled()
    assert [m.training for m in list(a.modules()) + list(b.modules())] == modes
    assert b[0].weight.requires_grad is False and a[0].weight.requires_grad is True
    after = list(a.parameters()) + list(b.parameters())
    assert all(torch.equal(p, q) for p, q in zip(before, after))
    aligned = loss_barrier(a, b, (X_test, y_test), steps=9, repair="repair")
    assert np.isfinite(aligned.barrier)


# -- the result ---------------------------------------------------------------------------------
def test_result_frame_json_plot(xy):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = _mlp([6, 8, 4], seed=0), _mlp([6, 8, 4], seed=1)
    result = loss_barrier(a, b, xy, steps=5)
    frame = result.to_frame()
    assert list(frame.columns) == ["lambda", "loss", "accuracy", "loss_excess"]
    np.testing.assert_array_equal(frame["loss"].to_numpy(), result.losses)
    assert frame["loss_excess"].max() == result.barrier
    payload = json.loads(result.to_json())
    assert payload["barrier"] == result.barrier and payload["losses"] == list(result.losses)
    assert payload["n_samples"] == 120 and payload["repair"] is None
    ax = result.plot()
    assert len(ax.lines) >= 2 and ax.get_xlabel() == "lambda"
    fig, ax2 = plt.subplots()
    assert result.plot(ax=ax2, accuracy=True) is ax2
    plt.close("all")
    assert "barrier" in repr(result)
    nan_json = json.loads(loss_barrier(_scalar_deep_linear(1, 1), _scalar_deep_linear(2, 1),
                                       (torch.ones(3, 1).double(), torch.ones(3, 1).double()),
                                       loss_fn=nn.MSELoss(), steps=2).to_json())
    assert nan_json["accuracy_barrier"] is None and nan_json["accuracies"] == [None, None]


def test_loss_barrier_is_exported_lazily():
    assert simmetrics.loss_barrier is loss_barrier
    assert "loss_barrier" in simmetrics.__all__


# -- bad input ----------------------------------------------------------------------------------
def test_bad_input_errors_name_the_argument(xy):
    a = _mlp([6, 8, 4])
    with pytest.raises(ValueError, match=r"model_b.*'0.weight'.*\(9, 6\).*\(8, 6\)"):
        loss_barrier(a, _mlp([6, 9, 4]), xy)
    with pytest.raises(ValueError, match="model_b.*'4.weight'.*model_a"):
        loss_barrier(a, _mlp([6, 8, 4, 4]), xy)
    with pytest.raises(TypeError, match="model_a"):
        loss_barrier("net", a, xy)
    for bad in (1, 2.5, True, "3"):
        with pytest.raises((TypeError, ValueError), match="steps"):
            loss_barrier(a, a, xy, steps=bad)
    with pytest.raises(ValueError, match="data is empty"):
        loss_barrier(a, a, [])
    with pytest.raises(ValueError, match="data is empty"):
        loss_barrier(a, a, (xy[0][:0], xy[1][:0]))
    with pytest.raises(TypeError, match="data"):
        loss_barrier(a, a, xy[0])
    with pytest.raises(TypeError, match="data: batch 0"):
        loss_barrier(a, a, [xy[0]])
    with pytest.raises(ValueError, match="data: batch 0.*120 inputs.*119 targets"):
        loss_barrier(a, a, (xy[0], xy[1][:-1]))
    with pytest.raises(ValueError, match="data.*integer class labels.*loss_fn"):
        loss_barrier(a, a, (xy[0], xy[1].double()))
    with pytest.raises(TypeError, match="loss_fn"):
        loss_barrier(a, a, xy, loss_fn="mse")
    with pytest.raises(ValueError, match="loss_fn.*shape"):
        loss_barrier(a, a, xy, loss_fn=lambda o, t: o)
    with pytest.raises(TypeError, match="alignment"):
        loss_barrier(a, a, xy, alignment=object())
    with pytest.raises(TypeError, match="alignment.apply"):
        loss_barrier(a, a, xy, alignment=type("A", (), {"apply": lambda self, m: 3})())
    with pytest.raises(ValueError, match="repair"):
        loss_barrier(a, a, xy, repair="REPAIR")
    with pytest.raises(ValueError, match="repair='reset_bn'.*BatchNorm"):
        loss_barrier(a, a, xy, repair="reset_bn")
    with pytest.raises(ValueError, match="batch_size"):
        loss_barrier(a, a, xy, batch_size=0)
    with pytest.raises(ValueError, match="lam"):
        interpolated_model(a, a, 1.5)
    with pytest.raises(ValueError, match="data"):
        interpolated_model(a, a, 0.5, repair="repair")


def test_repair_refuses_models_it_cannot_follow(xy):
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 6)

        def forward(self, x):
            return x + torch.relu(self.fc(x))

    torch.manual_seed(0)
    residual = nn.Sequential(Block(), nn.Linear(6, 4)).double()
    with pytest.raises(ValueError, match=r"repair='repair'.*'0'.*Block"):
        loss_barrier(residual, residual, xy, repair="repair")

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _mlp([6, 8, 4])

        def forward(self, x):
            return self.net(x)

    with pytest.raises(ValueError, match=r"repair='repair'.*nn.Sequential.*Wrapper"):
        loss_barrier(Wrapper(), Wrapper(), xy, repair="repair")
    linear = nn.Sequential(nn.Linear(6, 4)).double()
    with pytest.raises(ValueError, match=r"repair='repair'.*no hidden layer"):
        loss_barrier(linear, linear, xy, repair="repair")
    assert math.isfinite(loss_barrier(Wrapper(), Wrapper(), xy, steps=2).barrier)
