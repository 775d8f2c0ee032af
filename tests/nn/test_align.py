"""Tests of simmetrics.align_models (simmetrics/nn/align.py, align_spec.py).

Expected values come from planted truth and from independent routes:

- planted: model_b is model_a with every hidden layer transformed by a random element A of
  its group (``group.sample``), through :func:`simmetrics.apply_intertwiner_` (the weight-space
  action of simmetrics/symmetry/weights.py, a separate code path from the spec's action);
  the alignment must return A^-1 (checked as ``element.matrix @ A == I``) and the aligned
  copy must have model_a's weights;
- the function: the aligned copy against model_b's own outputs;
- Git Re-Basin's weight matching run by snimu/rebasin (PyPI ``rebasin`` 0.0.47, its own
  implementation of Ainsworth et al. 2023, Algorithm 1), and brute force over all
  permutations (and signs) of small layers, written from the objective's definition.
"""

import copy
import itertools

import numpy as np
import pytest
import torch
from torch import nn

import simmetrics
from simmetrics import apply_intertwiner_, intertwiner_group
from simmetrics.nn.align import Alignment, GroupElement, align_models
from simmetrics.nn.align_spec import AlignmentSpec, spec_from_sequential


class Cube(nn.Module):
    def forward(self, x):
        return x ** 3


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid,
               "leaky_relu": lambda: nn.LeakyReLU(0.1)}


def _mlp(act, widths=(5, 8, 6, 3), seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        layers += [nn.Linear(widths[i], widths[i + 1]), act()]
    return nn.Sequential(*layers[:-1]).to(dtype).eval()


def _cnn(act, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), act(), nn.AvgPool2d(2),
        nn.Conv2d(4, 5, 3, padding=1), nn.BatchNorm2d(5), act(), nn.Flatten(),
        nn.Linear(5 * 4 * 4, 6), act(), nn.Linear(6, 3))
    for m in net:  # BatchNorm with non-trivial statistics and affine parameters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_()
    return net.to(dtype).eval()


def _plant(model, seed, activations=None):
    """model with each hidden layer transformed by a random element of its activation's
    group (through apply_intertwiner_); returns (copy, {layer name: A})."""
    out = copy.deepcopy(model)
    rng = np.random.default_rng(seed)
    layers = [i for i, m in enumerate(model) if isinstance(m, (nn.Linear, nn.Conv2d))][:-1]
    planted = {}
    for i in layers:
        j = i + 1 + isinstance(model[i + 1], nn.BatchNorm2d)
        act = (activations or {}).get(str(j), model[j])
        group = intertwiner_group(act).group
        n = model[i].out_features if isinstance(model[i], nn.Linear) else model[i].out_channels
        A = group.sample(n, random_state=rng)
        apply_intertwiner_(out, i, A)
        planted[str(i)] = A
    return out, planted


def _max_abs(a, b):
    return max(float((pa - pb).abs().max()) for pa, pb in zip(a.state_dict().values(),
                                                                b.state_dict().values())
               if pa.is_floating_point())


X_MLP = torch.randn(400, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
X_CNN = torch.randn(60, 1, 8, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)


# -- planted truth ---------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["activations", "weights"])
@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_planted_element_is_recovered(arch, name, method):
    make = _mlp if arch == "mlp" else _cnn
    a = make(ACTIVATIONS[name], seed=1)
    b, planted = _plant(a, seed=2)
    x = X_MLP if arch == "mlp" else X_CNN
    alignment = align_models(a, b, x if method == "activations" else None, method=method)
    assert list(alignment.elements) == list(planted)
    group = intertwiner_group(ACTIVATIONS[name]()).group.name
    for layer, A in planted.items():
        element = alignment.elements[layer]
        assert element.group == group
        # A^-1 exactly: the element composed with the planted one is the identity
        np.testing.assert_allclose(element.matrix @ A, np.eye(len(A)), rtol=0, atol=1e-10)
    aligned = alignment.apply(b)
    assert _max_abs(aligned, a) < 1e-10  # model_a's weights (and BatchNorm statistics)
    with torch.no_grad():
        np.testing.assert_allclose(aligned(x).numpy(), b(x).numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("method", ["activations", "weights"])
def test_planted_scaled_permutation_of_a_power_activation(method):
    # x^3: G = scaled permutations, phi(A) = sign(A) |A|^(.3) (Godfrey et al. 2022, Table 1)
    torch.manual_seed(5)
    a = nn.Sequential(nn.Linear(5, 7), Cube(), nn.Linear(7, 6), Cube(), nn.Linear(6, 2)).double()
    b, planted = _plant(a, seed=6, activations={"1": ("power", 3), "3": ("power", 3)})
    declared = {"1": ("power", 3), "3": ("power", 3)}
    alignment = align_models(a, b, X_MLP if method == "activations" else None, method=method,
                             activations=declared)
    for layer, A in planted.items():
        assert alignment.elements[layer].group == "scaled_permutation"
        np.testing.assert_allclose(alignment.elements[layer].matrix @ A, np.eye(len(A)),
                                   rtol=0, atol=1e-10)
    aligned = alignment.apply(b)
    assert _max_abs(aligned, a) < 1e-10
    with torch.no_grad():
        np.testing.assert_allclose(aligned(X_MLP).numpy(), b(X_MLP).numpy(), rtol=1e-12,
                                   atol=1e-10)


@pytest.mark.parametrize("method", ["activations", "weights"])
def test_planted_permutations_with_permutation_only_groups(method):
    # Git Re-Basin's setting: ReLU layers, permutation-only alignment of planted permutations
    a = _mlp(nn.ReLU, widths=(5, 12, 9, 7, 3), seed=7)
    rng = np.random.default_rng(8)
    b, planted = copy.deepcopy(a), {}
    for i in (0, 2, 4):
        P = simmetrics.get_group("permutation").sample(a[i].out_features, random_state=rng)
        apply_intertwiner_(b, i, P)
        planted[str(i)] = P
    alignment = align_models(a, b, X_MLP, method=method, groups="permutation")
    for layer, P in planted.items():
        assert alignment.elements[layer].group == "permutation"
        np.testing.assert_array_equal(alignment.elements[layer].matrix @ P, np.eye(len(P)))
    assert _max_abs(alignment.apply(b), a) == 0.0  # a permutation moves values exactly


@pytest.mark.parametrize("name", ["relu", "tanh", "gelu"])
def test_post_activation_matching_recovers_the_planted_element(name):
    # Git Re-Basin matches post-activations; for these phi(A) = A, so they give A as well
    a = _mlp(ACTIVATIONS[name], seed=12)
    b, planted = _plant(a, seed=13)
    alignment = align_models(a, b, X_MLP, on="post")
    for layer, A in planted.items():
        np.testing.assert_allclose(alignment.elements[layer].matrix @ A, np.eye(len(A)),
                                   rtol=0, atol=1e-10)


# -- the function is model_b's ---------------------------------------------------------------
@pytest.mark.parametrize("method", ["activations", "weights"])
@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("arch,name", [("mlp", "relu"), ("mlp", "tanh"), ("cnn", "relu"),
                                       ("cnn", "tanh"), ("cnn", "gelu")])
def test_aligned_copy_computes_model_b(arch, name, dtype, atol, method):
    make = _mlp if arch == "mlp" else _cnn
    a, b = make(ACTIVATIONS[name], seed=10, dtype=dtype), make(ACTIVATIONS[name], seed=11,
                                                                 dtype=dtype)
    x = (X_MLP if arch == "mlp" else X_CNN).to(dtype)
    before = copy.deepcopy(b)
    alignment = align_models(a, b, x, method=method)
    aligned = alignment.apply(b)
    assert _max_abs(b, before) == 0.0  # model_b untouched
    assert _max_abs(aligned, b) > 1e-2  # something moved (independent seeds)
    with torch.no_grad():
        out_b, out = b(x), aligned(x)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.numpy(), out_b.numpy(), rtol=0, atol=atol)


# -- residual networks -------------------------------------------------------------------------
class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1, self.act1 = nn.BatchNorm2d(cout), nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2, self.act2 = nn.BatchNorm2d(cout), nn.ReLU()
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x):
        h = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(h + (x if self.proj is None else self.proj(x)))


class TinyResNet(nn.Module):
    """stem -> block1 (identity skip) -> block2 (stride 2, projection skip) -> pool -> fc."""

    def __init__(self, widths=(4, 6), seed=0):
        super().__init__()
        torch.manual_seed(seed)
        w0, w1 = widths
        self.stem, self.stem_bn, self.stem_act = nn.Conv2d(1, w0, 3, 1, 1, bias=False), \
            nn.BatchNorm2d(w0), nn.ReLU()
        self.block1, self.block2 = Block(w0, w0, 1), Block(w0, w1, 2)
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(w1, 3)
        for m in self.modules():  # statistics near the data's, so that no unit is dead
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.05, 0.2)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.normal_(0.0, 0.1)
        self.double().eval()

    def forward(self, x):
        h = self.block2(self.block1(self.stem_act(self.stem_bn(self.stem(x)))))
        return self.fc(self.pool(h).flatten(1))


def tiny_resnet_spec(widths=(4, 6)):
    """The residual stream of each stage is one axis, shared by the stem / projection and
    every block that writes it, and read by every layer after it (ReLU after each addition:
    phi(A) = A on positive scaled permutations)."""
    w0, w1 = widths
    spec = AlignmentSpec()
    spec.add_axis("stream0", w0, "relu", residual=True, post=["stem_act", "block1.act2"])
    spec.add_axis("block1", w0, "relu", pre="block1.bn1", post="block1.act1")
    spec.add_axis("stream1", w1, "relu", residual=True, post="block2.act2")
    spec.add_axis("block2", w1, "relu", pre="block2.bn1", post="block2.act1")
    spec.add_layer("stem", out="stream0", batchnorm="stem_bn", bias=False)
    spec.add_layer("block1.conv1", out="block1", inp="stream0", batchnorm="block1.bn1",
                   bias=False)
    spec.add_layer("block1.conv2", out="stream0", inp="block1", batchnorm="block1.bn2",
                   bias=False)
    spec.add_layer("block2.conv1", out="block2", inp="stream0", batchnorm="block2.bn1",
                   bias=False)
    spec.add_layer("block2.conv2", out="stream1", inp="block2", batchnorm="block2.bn2",
                   bias=False)
    spec.add_layer("block2.proj.0", out="stream1", inp="stream0", batchnorm="block2.proj.1",
                   bias=False)
    spec.add_layer("fc", inp="stream1")
    return spec


def _random_elements(spec, seed, groups=None):
    rng = np.random.default_rng(seed)
    elements, planted = {}, {}
    for name, axis in spec.axes.items():
        group = simmetrics.get_group((groups or {}).get(name, axis.max_group))
        A = group.sample(axis.size, random_state=rng)
        perm = np.argmax(A != 0, axis=1)
        f = A[np.arange(axis.size), perm]
        elements[name] = GroupElement(name, group.name, perm, np.sign(f), np.abs(f))
        planted[name] = A
    return elements, planted


def test_residual_spec_keeps_the_function():
    net, spec = TinyResNet(seed=1), tiny_resnet_spec()
    spec.check(net)
    assert spec.axes["stream0"].max_group == "positive_scaled_permutation"
    elements, _ = _random_elements(spec, seed=2)
    moved = Alignment(spec, elements, "activations").apply(net)
    assert _max_abs(moved, net) > 1e-2
    with torch.no_grad():
        np.testing.assert_allclose(moved(X_CNN).numpy(), net(X_CNN).numpy(), rtol=0,
                                   atol=1e-10)
    # a stream's element must act on every layer that writes it: leaving out block1.conv2
    # (it writes stream0) changes the function
    broken = copy.deepcopy(spec)
    for name in ("block1.conv2.weight", "block1.bn2.weight", "block1.bn2.bias",
                 "block1.bn2.running_mean", "block1.bn2.running_var"):
        del broken.params[name][0]
    moved = Alignment(broken, elements, "activations").apply(net)
    with torch.no_grad():
        assert float((moved(X_CNN) - net(X_CNN)).abs().max()) > 1e-3


@pytest.mark.parametrize("method", ["activations", "weights"])
def test_residual_planted_element_is_recovered(method):
    net, spec = TinyResNet(seed=3), tiny_resnet_spec()
    # weight matching does not canonicalise residual streams: plant permutations there
    groups = {"stream0": "permutation", "stream1": "permutation"} if method == "weights" \
        else None
    elements, planted = _random_elements(spec, seed=4, groups=groups)
    other = Alignment(spec, elements, method).apply(net)
    alignment = align_models(net, other, X_CNN, method=method, spec=spec)
    for name, A in planted.items():
        np.testing.assert_allclose(alignment.elements[name].matrix @ A, np.eye(len(A)),
                                   rtol=0, atol=1e-10)
    assert _max_abs(alignment.apply(other), net) < 1e-10


def test_residual_axis_refuses_groups_whose_phi_is_not_the_identity():
    spec = AlignmentSpec()
    spec.add_axis("s", 4, ("power", 2), residual=True, post="x")
    assert spec.axes["s"].max_group == "permutation"  # phi(P D) = P D^2 != P D for D != I
    assert spec.axes["s"].notes == ["residual stream: phi(A) = A is needed, which for power "
                                    "holds on permutation only"]
    with pytest.raises(ValueError, match="residual stream"):
        spec.axes["s"].resolve_group("positive_scaled_permutation")
    relu = AlignmentSpec()
    relu.add_axis("s", 4, "relu", residual=True, post="x")
    assert relu.axes["s"].max_group == "positive_scaled_permutation"  # phi(A) = A


# -- an independent implementation: snimu/rebasin ----------------------------------------------
def _rebasin(a, b, x):
    from rebasin import PermutationCoordinateDescent

    b = copy.deepcopy(b)
    torch.manual_seed(0)  # rebasin draws its order of the permutations from torch's generator
    PermutationCoordinateDescent(a, b, x).rebasin()
    return b


def test_weight_matching_reaches_at_least_rebasins_objective_on_one_hidden_layer():
    # One hidden layer: Algorithm 1 is a single linear assignment over every weight that
    # touches the units (W1's rows, b1, W2's columns), so its objective is the optimum over
    # all permutations. rebasin 0.0.47 builds that permutation's cost from W1 alone (its
    # permutation is the assignment on W1_a W1_b'; seen on these models), so it finds
    # another permutation, never a better one, and keeps the function.
    for seed in range(4):
        a = _mlp(nn.ReLU, widths=(5, 16, 3), seed=2 * seed)
        b = _mlp(nn.ReLU, widths=(5, 16, 3), seed=2 * seed + 1)
        alignment = align_models(a, b, method="weights", groups="permutation")
        ours, theirs = alignment.apply(b), _rebasin(a, b, X_MLP[:8])
        with torch.no_grad():
            np.testing.assert_allclose(theirs(X_MLP).numpy(), b(X_MLP).numpy(), atol=1e-12)
        assert _objective(a, ours) == pytest.approx(alignment.objective, rel=1e-12)
        assert _objective(a, ours) >= _objective(a, theirs) - 1e-12
        assert _objective(a, ours) > _objective(a, b) + 1.0  # the alignment did something


def test_weight_matching_agrees_with_rebasin_on_planted_permutations():
    a = _mlp(nn.ReLU, widths=(5, 10, 8, 6, 3), seed=20)
    rng = np.random.default_rng(21)
    b = copy.deepcopy(a)
    for i in (0, 2, 4):
        apply_intertwiner_(b, i, simmetrics.get_group("permutation").sample(
            a[i].out_features, random_state=rng))
    ours = align_models(a, b, method="weights", groups="permutation").apply(b)
    theirs = _rebasin(a, b, X_MLP[:8])
    assert _max_abs(theirs, a) == 0.0 and _max_abs(ours, a) == 0.0


# -- brute force -------------------------------------------------------------------------------
def _objective(a, b):
    """sum over parameters of <W_a, W_b> (the weight matching objective, by definition)."""
    return sum(float((pa * pb).sum()) for pa, pb in zip(a.state_dict().values(),
                                                        b.state_dict().values()))


def _transformed_objective(a, b, perm, signs):
    """The objective against a of b (Linear, act, Linear) transformed so that hidden unit i
    is signs[i] times unit perm[i]: its parameters rebuilt by indexing, then summed."""
    p, s = list(perm), np.asarray(signs)
    (w1, b1, w2, b2), (v1, c1, v2, c2) = ([t.detach().numpy() for t in m.state_dict().values()]
                                          for m in (a, b))
    moved = (v1[p] * s[:, None], c1[p] * s, v2[:, p] * s[None, :], c2)
    return sum(float(np.sum(x * y)) for x, y in zip((w1, b1, w2, b2), moved))


@pytest.mark.parametrize("name,signed", [("gelu", False), ("tanh", True)])
def test_weight_matching_is_the_brute_force_optimum_of_one_hidden_layer(name, signed):
    a = _mlp(ACTIVATIONS[name], widths=(4, 5, 3), seed=30)
    b = _mlp(ACTIVATIONS[name], widths=(4, 5, 3), seed=31)
    sign_sets = list(itertools.product((1.0, -1.0), repeat=5)) if signed else [(1.0,) * 5]
    best = max((_transformed_objective(a, b, p, s), p, s)
               for p in itertools.permutations(range(5)) for s in sign_sets)
    alignment = align_models(a, b, method="weights")
    element = alignment.elements["0"]
    assert tuple(element.permutation) == best[1]
    if signed:
        assert tuple(element.signs) == best[2]
    assert alignment.objective == pytest.approx(best[0], rel=1e-12)


def test_weight_matching_stops_at_a_coordinatewise_optimum():
    # Algorithm 1 ends when no single layer's assignment can improve: check it for every
    # layer by brute force over all its permutations, the other layer held fixed
    a = _mlp(nn.GELU, widths=(4, 5, 4, 3), seed=40)
    b = _mlp(nn.GELU, widths=(4, 5, 4, 3), seed=41)
    alignment = align_models(a, b, method="weights")
    found = {k: e.permutation for k, e in alignment.elements.items()}

    def objective(p0, p2):
        out = copy.deepcopy(b)
        i0, i2 = torch.as_tensor(p0), torch.as_tensor(p2)
        with torch.no_grad():
            out[0].weight.copy_(b[0].weight[i0])
            out[0].bias.copy_(b[0].bias[i0])
            out[2].weight.copy_(b[2].weight[i2][:, i0])
            out[2].bias.copy_(b[2].bias[i2])
            out[4].weight.copy_(b[4].weight[:, i2])
        return _objective(a, out)

    reached = objective(found["0"], found["2"])
    assert reached == pytest.approx(alignment.objective, rel=1e-12)
    assert all(objective(p, found["2"]) <= reached + 1e-12
               for p in itertools.permutations(range(5)))
    assert all(objective(found["0"], p) <= reached + 1e-12
               for p in itertools.permutations(range(4)))


def test_activation_matching_is_the_brute_force_least_squares_permutation():
    # Git Re-Basin's activation matching: min over P of ||Z_a - Z_b P||_F (pre-activations)
    a = _mlp(nn.Sigmoid, widths=(5, 6, 3), seed=50)
    b = _mlp(nn.Sigmoid, widths=(5, 6, 3), seed=51)
    with torch.no_grad():
        za, zb = a[0](X_MLP).numpy(), b[0](X_MLP).numpy()
    best = min(itertools.permutations(range(6)),
               key=lambda p: float(np.sum((za - zb[:, list(p)]) ** 2)))
    element = align_models(a, b, X_MLP).elements["0"]
    assert tuple(element.permutation) == best


# -- the object and its arguments ----------------------------------------------------------------
def test_alignment_repr_names_each_layer_and_group():
    a, b = _mlp(nn.Tanh, seed=60), _mlp(nn.Tanh, seed=61)
    text = repr(align_models(a, b, method="weights"))
    assert text.startswith("Alignment(method='weights', 2 axes, objective=")
    assert "GroupElement(axis='0', group='signed_permutation', n=8" in text
    assert "GroupElement(axis='2', group='signed_permutation', n=6" in text
    assert "sign_flips=" in text


def test_data_may_be_batches_of_tuples():
    a, b = _mlp(nn.ReLU, seed=70), _mlp(nn.ReLU, seed=71)
    whole = align_models(a, b, X_MLP)
    batches = [(X_MLP[i:i + 100], torch.zeros(100)) for i in range(0, 400, 100)]
    batched = align_models(a, b, batches)
    for k in whole.elements:
        np.testing.assert_array_equal(whole.elements[k].permutation,
                                      batched.elements[k].permutation)
        np.testing.assert_allclose(whole.elements[k].scales, batched.elements[k].scales,
                                   rtol=1e-12)


def test_bad_input_names_the_argument():
    a = _mlp(nn.ReLU)
    with pytest.raises(ValueError, match="mismatched architectures: model_b"):
        align_models(a, _mlp(nn.Tanh), X_MLP)
    with pytest.raises(ValueError, match="width mismatch: model_b's '0.weight'"):
        align_models(a, _mlp(nn.ReLU, widths=(5, 9, 6, 3)), X_MLP)
    odd = nn.Sequential(nn.Linear(5, 8), nn.LayerNorm(8), nn.Linear(8, 3))
    with pytest.raises(ValueError, match=r"model_a\[1\] \(LayerNorm\) is an unknown layer"):
        align_models(odd, copy.deepcopy(odd), X_MLP)
    with pytest.raises(ValueError, match="data is required for method='activations'"):
        align_models(a, copy.deepcopy(a))
    with pytest.raises(TypeError, match="pass spec="):
        align_models(TinyResNet(), TinyResNet(seed=1), X_CNN)
    with pytest.raises(ValueError, match="groups: group 'signed_permutation' for axis '0'"):
        align_models(a, copy.deepcopy(a), method="weights", groups="signed_permutation")
    with pytest.raises(ValueError, match="groups names unknown axes"):
        align_models(a, copy.deepcopy(a), method="weights", groups={"7": "permutation"})
    with pytest.raises(ValueError, match="method must be one of"):
        align_models(a, copy.deepcopy(a), X_MLP, method="sinkhorn")
    with pytest.raises(TypeError, match="model_b must be a torch.nn.Module"):
        align_models(a, "b", X_MLP)
    with pytest.raises(ValueError, match="width mismatch"):
        tiny_resnet_spec(widths=(4, 7)).check(TinyResNet())
    square = nn.Sequential(nn.Linear(5, 4), Cube(), nn.Linear(4, 2)).double()
    with pytest.raises(ValueError, match="on='post'.*phi\\(A\\) != A"):
        align_models(square, copy.deepcopy(square), X_MLP, on="post",
                     activations={"1": ("power", 2)})


def test_sequential_spec_restrictions():
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6, affine=False), nn.ReLU(),
                        nn.Linear(6, 5), nn.Tanh(), nn.Dropout(), nn.Linear(5, 5),
                        nn.Linear(5, 2))
    spec = spec_from_sequential(net)
    assert {k: ax.max_group for k, ax in spec.axes.items()} == {
        "0": "permutation", "3": "signed_permutation", "6": "scaled_permutation"}
    assert spec.params["0.weight"] == {0: ("0", "perm", 1)}
    assert spec.params["1.running_var"] == {0: ("0", "perm", 1)}


def test_the_paper_cnn_with_its_input_unflatten_aligns_and_keeps_its_function():
    # simmetrics.paper.experiments.make_cnn starts with nn.Unflatten(1, (1, 8, 8)); the
    # expected output is model_b's own (the aligned copy computes the same function)
    from simmetrics.paper.experiments import make_cnn

    a, b = make_cnn((4, 6, 5), activation=nn.Tanh, seed=0), make_cnn((4, 6, 5), nn.Tanh, seed=1)
    a, b = a.double().eval(), b.double().eval()
    x = torch.randn(40, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    alignment = align_models(a, b, x)
    assert [e.group for e in alignment.elements.values()] == ["signed_permutation"] * 3
    assert torch.allclose(alignment.apply(b)(x), b(x), rtol=0, atol=1e-10)
    late = nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Unflatten(1, (1, 16)), nn.Flatten(),
                         nn.Linear(16, 3))
    with pytest.raises(ValueError, match=r"model_a\[2\] \(Unflatten\) comes after the first"):
        align_models(late, late, x)
