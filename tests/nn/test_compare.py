"""Tests of simmetrics.compare_models (simmetrics/nn/compare.py): two models, one pass.

Expected values come from routes that do not go through compare_models' hooks and moments:
the layers' outputs computed by calling the modules by hand (no hooks), or
``extract_pair`` (stored activations), scored by ``pairwise`` / ``fit_score`` on the whole
data; and the identities CKA(X, X) = 1, Procrustes(X, X) = 0.
"""

import sys

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

import simmetrics
from simmetrics import LinearCKA, memory_budget, pairwise
from simmetrics.nn.compare import compare_models, features_of, leaf_modules
from simmetrics.nn.extract import extract_activations, extract_pair


def _mlp(widths, act=nn.ReLU, seed=0):
    torch.manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        layers += [nn.Linear(widths[i], widths[i + 1]), act()]
    return nn.Sequential(*layers[:-1]).double()


@pytest.fixture
def data():
    return torch.randn(300, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _loader(x, shuffle, seed=0):
    ds = TensorDataset(x, torch.zeros(len(x)))
    if not shuffle:
        return DataLoader(ds, batch_size=64)
    sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(seed))
    return DataLoader(ds, batch_size=64, sampler=sampler)


def test_shuffled_and_unshuffled_loaders_give_the_same_matrix(data):
    a, b = _mlp([6, 10, 8, 3]), _mlp([6, 9, 5], act=nn.Tanh, seed=1)
    layers = ["0", "1", "2"]
    metrics = ["linear_cka", "cca", "rsa"]  # two streamed, one on collected activations
    plain = compare_models(a, b, _loader(data, False), layers, metrics=metrics)
    mixed = compare_models(a, b, _loader(data, True), layers, metrics=metrics)
    assert plain.n_stimuli == mixed.n_stimuli == 300
    for m in metrics:
        # the same stimuli, summed in another order: equal up to rounding
        np.testing.assert_allclose(mixed.values[m], plain.values[m], rtol=0, atol=1e-12)
    # the trap this removes: two passes over the shuffled loader pair different stimuli
    loader = _loader(data, True)
    one = extract_activations(a, loader, "0", check_order=False)["0"]
    two = extract_activations(a, loader, "0", check_order=False)["0"]
    assert LinearCKA().fit_score(one, two) < 0.5
    assert compare_models(a, a, loader, "0").values["linear_cka"][0, 0] == pytest.approx(
        1.0, abs=1e-12)


@pytest.mark.parametrize("metric", ["linear_cka", LinearCKA(debiased=True), "cca", "procrustes",
                                    "pwcca"])
def test_streamed_matrix_equals_pairwise_on_stored_activations(data, metric):
    a, b = _mlp([6, 10, 8, 3]), _mlp([6, 9, 7, 4], act=nn.Tanh, seed=1)
    loader = _loader(data, True)
    result = compare_models(a, b, loader, nn.Linear, metrics=[metric])
    key = metric if isinstance(metric, str) else repr(metric)
    assert result.streamed[key] is True
    acts_a, acts_b = extract_pair(a, b, loader, nn.Linear)
    expected = pairwise(metric, acts_a, acts_b)
    np.testing.assert_allclose(result.values[key], expected, rtol=1e-10, atol=1e-10)
    assert result.layers_a == ("0", "2", "4") and result.values[key].col_labels == ("0", "2", "4")
    # and the same matrix when compare_models collects the activations itself
    collected = compare_models(a, b, loader, nn.Linear, metrics=[metric], streaming=False)
    assert collected.streamed[key] is False
    np.testing.assert_allclose(collected.values[key], expected, rtol=1e-10, atol=1e-10)


def test_a_model_against_itself(data):
    a = _mlp([6, 10, 8, 3])
    calls = []
    a.register_forward_pre_hook(lambda module, args: calls.append(1))
    result = compare_models(a, a, _loader(data, True), ["0", "1", "2"],
                            metrics=["linear_cka", "procrustes", "rsa"])
    assert len(calls) == 5  # one forward per batch, not two
    np.testing.assert_allclose(np.diag(result.values["linear_cka"]), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.diag(result.values["rsa"]), 1.0, rtol=0, atol=1e-12)
    # an angular distance, arccos(<X, X> / |X|^2): arccos(1 - delta) ~ sqrt(2 delta), so a
    # rounding delta of 1e-16 is 1.4e-8
    np.testing.assert_allclose(np.diag(result.values["procrustes"]), 0.0, rtol=0, atol=1e-7)
    M = result.values["linear_cka"]
    np.testing.assert_allclose(M, M.T, rtol=0, atol=1e-12)
    assert result.names == ("Sequential", "Sequential")


def test_layer_name_typos_get_did_you_mean(data):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Linear(6, 4)
            self.decoder = nn.Linear(4, 6)

        def forward(self, x):
            return self.decoder(self.encoder(x))

    net = Net().double()
    with pytest.raises(ValueError, match=r"layers_a: .*'encodr'; did you mean 'encoder'"):
        compare_models(net, net, [data], "encodr")
    with pytest.raises(ValueError, match=r"layers_b: .*'decodr'; did you mean 'decoder'"):
        compare_models(net, net, [data], "encoder", ["decodr"])
    with pytest.raises(ValueError, match=r"layers_a: the model has no module of type Conv2d"):
        compare_models(net, net, [data], nn.Conv2d)
    with pytest.raises(TypeError, match=r"layers_a must be a module name"):
        compare_models(net, net, [data], 3)


def test_selection_by_type_and_leaves():
    block = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    net = nn.Sequential(nn.Linear(2, 3), block, nn.Linear(3, 1))
    from simmetrics.nn.compare import select_layers

    assert [n for n, _ in select_layers(net, nn.Sequential)] == ["", "1"]
    assert [n for n, _ in select_layers(net, leaf_modules())] == ["0", "1.0", "1.1", "2"]
    assert [n for n, _ in select_layers(net, leaf_modules(nn.Linear))] == ["0", "1.0", "2"]
    assert [n for n, _ in select_layers(net, ["2", nn.Linear])] == ["2", "0", "1.0"]
    with pytest.raises(TypeError, match="leaf_modules takes"):
        leaf_modules(3)


class _DictNet(nn.Module):
    """A model called with keyword inputs: forward(features=..., scale=...)."""

    def __init__(self, seed=3):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(6, 5)
        self.out = nn.Linear(5, 2)

    def forward(self, features, scale):
        return self.out(torch.tanh(self.fc(features * scale)))


def test_dict_batches(data):
    net = _DictNet().double()
    scale = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)
    batches = [{"features": x, "scale": scale} for x in torch.split(data, 70)]
    tuples = [({"features": x, "scale": scale}, torch.zeros(len(x))) for x in torch.split(data, 70)]
    other = _DictNet(seed=4).double()
    result = compare_models(net, other, batches, ["fc", "out"], metrics=["linear_cka", "rsa"])
    # by hand, no hooks: the layers' outputs on all rows at once
    with torch.no_grad():
        hand = [(m.fc(data * scale), m.out(torch.tanh(m.fc(data * scale)))) for m in (net, other)]
    for i, A in enumerate(hand[0]):
        for j, B in enumerate(hand[1]):
            expected = LinearCKA().fit_score(A.numpy(), B.numpy())
            assert result.values["linear_cka"][i, j] == pytest.approx(expected, rel=1e-10)
            rsa = simmetrics.RSA().fit_score(A.numpy(), B.numpy())
            assert result.values["rsa"][i, j] == pytest.approx(rsa, rel=1e-10)
    # (dict, target) tuples read the dict as the input
    again = compare_models(net, other, tuples, ["fc", "out"])
    np.testing.assert_allclose(again.values["linear_cka"], result.values["linear_cka"],
                               rtol=0, atol=1e-12)


class _Fails(nn.Module):
    """Raises on its third call; records the mode it ran in."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 4).double()
        self.norm = nn.BatchNorm1d(4).double()
        self.seen, self.fail_at = [], 3

    def forward(self, x):
        self.seen.append((self.training, self.norm.training, torch.is_grad_enabled()))
        if len(self.seen) == self.fail_at:
            raise RuntimeError("boom")
        return self.norm(self.fc(x))


def test_eval_and_grad_mode_restored_after_an_exception(data):
    net = _Fails()
    net.train()
    net.norm.eval()  # a frozen BatchNorm inside a training model: its own flag must come back
    other = _mlp([6, 4])
    assert torch.is_grad_enabled()
    with pytest.raises(RuntimeError, match="boom"):
        compare_models(net, other, torch.split(data, 50), "fc", "0")
    assert net.seen[0] == (False, False, False)  # eval mode, no grad while it ran
    assert net.training and not net.norm.training and net.fc.training
    assert other.training
    assert torch.is_grad_enabled()
    assert not net.fc._forward_hooks and not other[0]._forward_hooks
    # the same after a successful pass
    net.fail_at = None
    compare_models(net, other, torch.split(data, 50), "fc", "0")
    assert net.training and not net.norm.training and torch.is_grad_enabled()


def test_data_parallel_is_unwrapped(data):
    a, b = _mlp([6, 10, 8, 3]), _mlp([6, 9, 5], act=nn.Tanh, seed=1)
    # DataParallel works without a GPU (it then calls the module itself)
    wrapped = nn.DataParallel(a)
    assert torch.equal(wrapped(data[:5]), a(data[:5]))
    loader = _loader(data, True)
    plain = compare_models(a, b, loader, ["0", "2"], ["0", "2"])
    unwrapped = compare_models(wrapped, nn.DataParallel(b), loader, ["module.0", "2"],
                               ["0", "module.2"])
    assert unwrapped.layers_a == ("0", "2") and unwrapped.layers_b == ("0", "2")
    np.testing.assert_allclose(unwrapped.values["linear_cka"], plain.values["linear_cka"],
                               rtol=0, atol=1e-12)
    assert unwrapped.names == ("Sequential (a)", "Sequential (b)")


def _cnn(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, stride=2,
                         padding=1), nn.ReLU()).double()


def test_conv_features_and_different_spatial_sizes():
    x = torch.randn(40, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    a, b = _cnn(0), _cnn(1)
    batches = torch.split(x, 16)
    with torch.no_grad():  # by hand: (40, 4, 8, 8) and (40, 5, 4, 4)
        h0 = a[0](x)
        g2 = b[2](b[1](b[0](x)))
    with pytest.raises(ValueError, match=r"different numbers of rows.*pool_size=\(h, w\)"):
        compare_models(a, b, batches, "0", "2", features="nchw")
    cka = LinearCKA()
    flat = compare_models(a, b, batches, "0", "2").values["linear_cka"][0, 0]
    assert flat == pytest.approx(cka.fit_score(h0.reshape(40, -1).numpy(),
                                               g2.reshape(40, -1).numpy()), rel=1e-10)
    pooled = compare_models(a, b, batches, "0", "2", features="pool").values["linear_cka"][0, 0]
    assert pooled == pytest.approx(cka.fit_score(h0.mean((2, 3)).numpy(),
                                                 g2.mean((2, 3)).numpy()), rel=1e-10)
    # 8 x 8 averaged to 4 x 4 (2 x 2 blocks), then every position a row
    rows = compare_models(a, b, batches, "0", "2", features="nchw",
                          pool_size=4).values["linear_cka"][0, 0]
    h0_small = F.avg_pool2d(h0, 2)
    expected = LinearCKA(layout="nchw").fit_score(h0_small.numpy(), g2.numpy())
    assert rows == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match="pool_size applies"):
        compare_models(a, b, batches, "0", "2", features="pool", pool_size=2)
    with pytest.raises(ValueError, match="features must be one of"):
        compare_models(a, b, batches, "0", "2", features="mean")
    assert tuple(features_of(h0[:2], "nchw").shape) == (128, 4)


def test_collected_metrics_are_refused_up_front(data):
    a, b = _mlp([6, 10, 3]), _mlp([6, 9, 5], seed=1)
    calls = []
    a.register_forward_pre_hook(lambda module, args: calls.append(1))
    with memory_budget("20KiB"), pytest.raises(simmetrics.MemoryBudgetError,
                                               match=r"300 stimuli .* memory budget"):
        compare_models(a, b, _loader(data, False), ["0", "2"], metrics=["rsa"])
    assert len(calls) == 1  # refused at the first batch, before the pass
    # the activations fit in 1 MiB, RSA's 4 sets of 44,850 stimulus pairs do not
    with memory_budget("1MiB"), pytest.raises(simmetrics.MemoryBudgetError,
                                              match=r"RSA on 300 rows, holding 4 layers"):
        compare_models(a, b, _loader(data, False), ["0", "2"], metrics=["rsa"])
    assert len(calls) == 2
    with memory_budget("1KiB"), pytest.raises(simmetrics.MemoryBudgetError,
                                              match=r"second moments of 2 x 2 layer pairs"):
        compare_models(a, b, _loader(data, False), ["0", "2"])


def test_bad_input(data):
    a = _mlp([6, 4])
    with pytest.raises(TypeError, match="model_b must be a torch.nn.Module"):
        compare_models(a, "b", [data], "0")
    with pytest.raises(TypeError, match="data must be an iterable of batches"):
        compare_models(a, a, data, "0")
    with pytest.raises(ValueError, match="data is empty"):
        compare_models(a, a, [], "0")
    with pytest.raises(ValueError, match="metrics: 'linear_cka' is given twice"):
        compare_models(a, a, [data], "0", metrics=["linear_cka", "linear_cka"])
    with pytest.raises(ValueError, match="has layout='nchw'"):
        compare_models(a, a, [data], "0", metrics=[LinearCKA(layout="nchw")])
    with pytest.raises(TypeError, match="batch 0 is a str"):
        compare_models(a, a, ["x"], "0")


def test_frame_plot_and_json(data, monkeypatch):
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = _mlp([6, 10, 8, 3]), _mlp([6, 9, 5], act=nn.Tanh, seed=1)
    result = compare_models(a, b, _loader(data, True), ["0", "2"], ["0", "1", "2"],
                            metrics=["linear_cka", "procrustes"], names=("mlp", "tanh-mlp"))
    frame = result.to_frame("linear_cka")
    assert list(frame.index) == ["0", "2"] and list(frame.columns) == ["0", "1", "2"]
    assert frame.loc["2", "1"] == result.values["linear_cka"][1, 1]
    ax = result.plot("linear_cka")
    image = ax.images[0]
    assert image.get_clim() == (0.0, 1.0)  # LinearCKA's bounds, not the data's range
    assert ax.get_xlabel() == "tanh-mlp" and ax.get_ylabel() == "mlp"
    assert ax.figure.axes[-1].get_ylabel() == "linear_cka (similarity)"
    ax = result.plot("procrustes", annotate=False)
    assert ax.images[0].get_cmap().name == "viridis_r"  # a distance: alike stays bright
    assert ax.images[0].get_clim() == (0.0, np.pi)
    assert ax.figure.axes[-1].get_ylabel() == "procrustes (distance)"
    plt.close("all")
    loaded = json.loads(result.to_json())
    assert loaded["layers_b"] == ["0", "1", "2"]
    assert np.asarray(loaded["values"]["procrustes"]).shape == (2, 3)
    with pytest.raises(KeyError, match="'rsa' was not computed"):
        result.to_frame("rsa")
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="to_frame needs pandas"):
        result.to_frame()


def test_top_level_export_is_lazy():
    assert simmetrics.compare_models is compare_models
    assert "compare_models" in simmetrics.__all__
