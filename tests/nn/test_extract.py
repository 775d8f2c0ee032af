"""Tests of simmetrics.nn.extract: activation extraction with forward hooks.

Expected values come from running the same modules by hand (calling the layers one after the
other on the same input), which does not use hooks at all.
"""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from simmetrics import LinearCKA
from simmetrics.nn.extract import extract_activations, resolve_modules


def _mlp(inplace=False):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(inplace=inplace), nn.Linear(7, 6),
                         nn.Tanh(), nn.Linear(6, 3))


def _by_hand(net, x):
    """Outputs of every module of a Sequential, computed without hooks."""
    outs, h = [], x
    with torch.no_grad():
        for m in net:
            h = m(h.clone())
            outs.append(h.clone())
    return outs


@pytest.fixture
def x():
    return torch.randn(23, 5, generator=torch.Generator().manual_seed(1))


def test_outputs_match_manual_forward_across_batches(x):
    # expected: the layers applied one by one to the whole input (no hooks, no batching)
    net = _mlp()
    ref = _by_hand(net, x)
    acts = extract_activations(net, x, ["0", "1", "2", "3"], batch_size=5)
    assert list(acts) == ["0", "1", "2", "3"]
    for i in range(4):
        assert acts[str(i)].dtype == np.float64
        assert acts[str(i)].shape == tuple(ref[i].shape)
        np.testing.assert_allclose(acts[str(i)], ref[i].numpy(), rtol=0, atol=1e-6)


def test_inplace_relu_does_not_overwrite_the_linear_output(x):
    # expected: the pre-activation of the Linear (negative values present) computed by hand;
    # without a copy in the hook the in-place ReLU would zero them in the stored tensor
    net = _mlp(inplace=True)
    pre = net[0](x).detach()
    acts = extract_activations(net, x, ["0", "1"], batch_size=8)
    assert (acts["0"] < 0).any()
    np.testing.assert_allclose(acts["0"], pre.numpy(), atol=1e-6)
    np.testing.assert_allclose(acts["1"], torch.relu(pre).numpy(), atol=1e-6)


def test_capture_input_gives_the_pre_activation(x):
    # expected: the input of the Tanh module is the output of the Linear before it
    net = _mlp()
    acts = extract_activations(net, x, nn.Tanh, capture="input")
    out = extract_activations(net, x, "2")
    # two forward passes of the same net on the same x: bit-identical by construction
    np.testing.assert_array_equal(acts["3"], out["2"])


def test_select_by_type_object_and_nested_names(x):
    net = nn.Sequential(nn.Sequential(nn.Linear(5, 4), nn.ReLU()),
                        nn.ModuleDict({"head": nn.Sequential(nn.Linear(4, 4), nn.ReLU())}))

    class Wrapper(nn.Module):
        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, z):
            return self.body[1]["head"](self.body[0](z))

    model = Wrapper(net)
    names = [n for n, _ in resolve_modules(model, nn.ReLU)]
    assert names == ["body.0.1", "body.1.head.1"]
    acts = extract_activations(model, x, [nn.ReLU, model.body[0][0]])
    assert list(acts) == ["body.0.1", "body.1.head.1", "body.0.0"]
    # expected: the nested modules applied by hand
    with torch.no_grad():
        h = net[0][0](x)
        np.testing.assert_allclose(acts["body.0.0"], h.numpy(), atol=1e-6)
        np.testing.assert_allclose(acts["body.1.head.1"], net[1]["head"](torch.relu(h)).numpy(),
                                   atol=1e-6)


def test_conv_features_keep_nchw_and_feed_the_metrics():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.AvgPool2d(2))
    x = torch.randn(10, 3, 6, 6)
    acts = extract_activations(net, x, ["1", "2"], batch_size=3)
    assert acts["1"].shape == (10, 4, 6, 6) and acts["2"].shape == (10, 4, 3, 3)
    with torch.no_grad():  # expected: the modules applied by hand
        np.testing.assert_allclose(acts["2"], net(x).numpy(), atol=1e-6)
    value = LinearCKA(layout="nchw").fit_score(acts["1"], acts["1"])
    assert value == pytest.approx(1.0, abs=1e-12)  # CKA of X with itself is 1


def test_dataloader_and_numpy_inputs_give_the_same_arrays(x):
    net = _mlp()
    ref = extract_activations(net, x, "3")["3"]
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x))), batch_size=4, shuffle=False)
    np.testing.assert_allclose(extract_activations(net, loader, "3")["3"], ref, atol=1e-7)
    np.testing.assert_allclose(extract_activations(net, x.numpy(), "3")["3"], ref, atol=1e-7)
    batches = [x[:10], x[10:]]  # a plain list of tensors
    np.testing.assert_allclose(extract_activations(net, batches, "3")["3"], ref, atol=1e-7)
    assert extract_activations(net, x, "3", dtype=np.float32)["3"].dtype == np.float32


def test_hooks_removed_and_mode_restored_also_on_error(x):
    net = _mlp().train()
    extract_activations(net, x, [nn.Linear, nn.ReLU])
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
    assert net.training  # mode restored
    net[0].eval()  # a submodule kept in evaluation mode inside a training model stays so
    extract_activations(net, x, "2", capture="input")
    assert net.training and not net[0].training
    assert all(m.training for m in list(net.modules())[2:])

    class Boom(nn.Module):
        def forward(self, z):
            raise RuntimeError("boom")

    bad = nn.Sequential(nn.Linear(5, 5), Boom())
    with pytest.raises(RuntimeError, match="boom"):
        extract_activations(bad, x, "0")
    assert not bad[0]._forward_hooks
    with pytest.raises(RuntimeError, match="boom"):
        extract_activations(bad, x, "0", capture="input")
    assert not bad[0]._forward_pre_hooks


def test_extraction_runs_in_eval_mode_without_grad(x):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.5), nn.Linear(8, 2)).train()
    a = extract_activations(net, x, "1")["1"]
    b = extract_activations(net, x, "1")["1"]
    np.testing.assert_array_equal(a, b)  # dropout off: two runs agree
    with torch.no_grad():  # expected: dropout in eval mode is the identity
        np.testing.assert_allclose(a, net[0](x).numpy(), atol=1e-6)


def test_bad_input_errors(x):
    net = _mlp()
    named = nn.Sequential(OrderedDict([("fc1", nn.Linear(5, 7)), ("act1", nn.ReLU())]))
    with pytest.raises(ValueError, match="no module named 'act_1'.*did you mean 'act1'"):
        extract_activations(named, x, "act_1")
    with pytest.raises(ValueError, match="no module of type Conv2d"):
        extract_activations(net, x, nn.Conv2d)
    with pytest.raises(ValueError, match="not part of the model"):
        extract_activations(net, x, nn.ReLU())
    with pytest.raises(TypeError, match="modules must be"):
        extract_activations(net, x, 3)
    with pytest.raises(ValueError, match="modules is empty"):
        extract_activations(net, x, [])
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        extract_activations(net, x, "0", batch_size=0)
    with pytest.raises(ValueError, match="capture must be"):
        extract_activations(net, x, "0", capture="grad")
    with pytest.raises(ValueError, match="data is empty"):
        extract_activations(net, [], "0")
    with pytest.raises(TypeError, match="data must be"):
        extract_activations(net, 5, "0")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        extract_activations("net", x, "0")

    shared = nn.Linear(5, 5)
    twice = nn.Sequential(shared, nn.ReLU(), shared)
    with pytest.raises(ValueError, match="ran 2 times in one forward pass"):
        extract_activations(twice, x, "0")
    assert not shared._forward_hooks

    unused = nn.ModuleDict({"a": nn.Linear(5, 5), "b": nn.Linear(5, 5)})

    class OnlyA(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = unused

        def forward(self, z):
            return self.m["a"](z)

    with pytest.raises(ValueError, match="ran 0 times.*not used"):
        extract_activations(OnlyA(), x, "m.b")

    class Pair(nn.Module):  # (hidden, extra) as attention blocks return: the first item
        def forward(self, z):
            return 2 * z, z

    np.testing.assert_array_equal(extract_activations(nn.Sequential(Pair()), x, "0")["0"],
                                  2 * x.numpy())

    class Nothing(nn.Module):  # no tensor to find in what it returns
        def forward(self, z):
            return {"logits": None}

    with pytest.raises(TypeError, match=r"module '0' returned a dict in which no tensor"):
        extract_activations(nn.Sequential(Nothing()), x, "0")
