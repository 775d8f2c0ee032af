"""Weight-space symmetry of torch models.

The expected values are the paper's identities (Godfrey et al. 2022, Section 3): applying
A in G_sigma leaves the network's output unchanged, and the hidden post-activation
representation H becomes H phi(A)'. Both are measured by running the models in torch.
"""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from simmetrics import apply_intertwiner, apply_intertwiner_, get_group, intertwiner_group
from simmetrics.symmetry.groups import random_orthogonal

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "identity": nn.Identity,
    "abs": lambda: _Abs(),
}


class _Abs(nn.Module):
    def forward(self, x):
        return torch.abs(x)


def _randomize_bn(bn, gen):
    """Non-trivial affine parameters and running statistics."""
    with torch.no_grad():
        bn.weight.copy_(torch.randn(bn.num_features, generator=gen))
        bn.bias.copy_(torch.randn(bn.num_features, generator=gen))
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=gen))
        bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)


def _element(act_name, module, n, seed, monomial=False):
    """A random element of the activation's group (a monomial one when asked, for identity)."""
    group = intertwiner_group(module).group
    if monomial and group.name == "invertible_linear":
        group = get_group("scaled_permutation")
    return group.sample(n, random_state=seed)


def _mlp(act, bn, gen_seed):
    torch.manual_seed(gen_seed)
    layers = [nn.Linear(5, 8)]
    if bn:
        layers.append(nn.BatchNorm1d(8))
    layers += [act(), nn.Linear(8, 7), act(), nn.Linear(7, 3)]
    model = nn.Sequential(*layers).eval()
    if bn:
        _randomize_bn(model[1], torch.Generator().manual_seed(gen_seed))
    return model


def _cnn(act, bn, gen_seed):
    torch.manual_seed(gen_seed)
    layers = [nn.Conv2d(3, 6, 3, padding=1)]
    if bn:
        layers.append(nn.BatchNorm2d(6))
    layers += [act(), nn.Conv2d(6, 4, 3), act(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2)]
    model = nn.Sequential(*layers).eval()
    if bn:
        _randomize_bn(model[1], torch.Generator().manual_seed(gen_seed))
    return model


@pytest.mark.parametrize("bn", [False, True])
@pytest.mark.parametrize("act_name", list(ACTIVATIONS))
def test_mlp_output_unchanged_and_hidden_moves_by_phi(act_name, bn):
    # paper identity: output unchanged; post-activation H -> H phi(A)'
    act = ACTIVATIONS[act_name]
    model = _mlp(act, bn, 0)
    x = torch.randn(64, 5, generator=torch.Generator().manual_seed(1))
    h_pos = 2 if bn else 1  # index of the activation module
    with torch.no_grad():
        y0, H0 = model(x), model[: h_pos + 1](x)
    new = copy.deepcopy(model)
    A = _element(act_name, act(), 8, seed=2, monomial=bn)
    apply_intertwiner_(new, 0, A)
    # the second hidden layer too, with its own element
    apply_intertwiner_(new, h_pos + 1, _element(act_name, act(), 7, seed=3))
    with torch.no_grad():
        y1, H1 = new(x), new[: h_pos + 1](x)
    assert torch.max(torch.abs(y1 - y0)) <= 1e-5 * max(1.0, float(y0.abs().max()))
    B = intertwiner_group(act()).phi(A)
    expected = H0.double().numpy() @ B.T
    np.testing.assert_allclose(H1.double().numpy(), expected, rtol=1e-5,
                               atol=1e-5 * np.abs(expected).max())
    # and the hidden representation did change
    assert not torch.allclose(H1, H0)


@pytest.mark.parametrize("bn", [False, True])
@pytest.mark.parametrize("act_name", list(ACTIVATIONS))
def test_cnn_output_unchanged_and_channels_move_by_phi(act_name, bn):
    # conv: A on the output channels of the first conv, phi(A)^-1 on the input channels of the
    # second; the hidden feature maps' channels are permuted and scaled by phi(A)
    act = ACTIVATIONS[act_name]
    model = _cnn(act, bn, 4)
    x = torch.randn(8, 3, 6, 6, generator=torch.Generator().manual_seed(5))
    h_pos = 2 if bn else 1
    with torch.no_grad():
        y0, H0 = model(x), model[: h_pos + 1](x)
    A = _element(act_name, act(), 6, seed=6, monomial=bn)
    new = apply_intertwiner_(copy.deepcopy(model), 0, A)
    # the second conv feeds a Linear through Flatten (channel blocks of 16 features)
    new = apply_intertwiner_(new, h_pos + 1, _element(act_name, act(), 4, seed=7))
    with torch.no_grad():
        y1, H1 = new(x), new[: h_pos + 1](x)
    assert torch.max(torch.abs(y1 - y0)) <= 1e-5 * max(1.0, float(y0.abs().max()))
    B = intertwiner_group(act()).phi(A)
    expected = np.einsum("ij,njhw->nihw", B, H0.double().numpy())
    np.testing.assert_allclose(H1.double().numpy(), expected, rtol=1e-5,
                               atol=1e-5 * np.abs(expected).max())


def test_functional_api_returns_copies_and_leaves_inputs_alone():
    torch.manual_seed(0)
    l1, bn, l2 = nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 2)
    _randomize_bn(bn, torch.Generator().manual_seed(0))
    bn.eval()
    before = [p.clone() for m in (l1, bn, l2) for p in m.state_dict().values()]
    A = get_group("positive_scaled_permutation").sample(5, random_state=0)
    out = apply_intertwiner(l1, l2, A, nn.ReLU(), batchnorm=bn)
    assert len(out) == 3 and all(o is not m for o, m in zip(out, (l1, l2, bn)))
    after = [p for m in (l1, bn, l2) for p in m.state_dict().values()]
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert len(apply_intertwiner(l1, l2, A, "relu")) == 2


def test_batchnorm_pre_normalisation_moves_by_p_and_train_mode_is_exact_too():
    # with BN the layer is only permuted (z -> P z) and BN's output moves by A = P D;
    # because D lives in BN's affine part, batch statistics (training mode) transform the
    # same way, so the function is unchanged in training mode too
    torch.manual_seed(1)
    l1, bn, l2 = nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 3)
    _randomize_bn(bn, torch.Generator().manual_seed(1))
    A = get_group("signed_permutation").sample(6, random_state=1) * np.exp(
        np.random.default_rng(1).normal(size=6))[None, :]
    m1, m2, mbn = apply_intertwiner(l1, l2, A, "abs", batchnorm=bn)
    P = (A != 0).astype(float)
    x = torch.randn(32, 4)
    with torch.no_grad():
        z0, z1 = l1(x), m1(x)
        np.testing.assert_allclose(z1.numpy(), z0.numpy() @ P.T.astype(np.float32), rtol=1e-5)
        for mode in ("eval", "train"):
            bn.train(mode == "train")
            mbn.train(mode == "train")
            y0, y1 = bn(z0), mbn(z1)
            np.testing.assert_allclose(y1.double().numpy(), y0.double().numpy() @ A.T,
                                       rtol=1e-5, atol=1e-5)
            out0, out1 = l2(torch.abs(y0)), m2(torch.abs(y1))
            assert torch.max(torch.abs(out0 - out1)) < 1e-5


def test_batchnorm_without_affine_takes_permutations_only():
    torch.manual_seed(2)
    l1, bn, l2 = nn.Linear(3, 4), nn.BatchNorm1d(4, affine=False).eval(), nn.Linear(4, 2)
    P = get_group("permutation").sample(4, random_state=0)
    m1, m2, mbn = apply_intertwiner(l1, l2, P, "relu", batchnorm=bn)
    x = torch.randn(10, 3)
    with torch.no_grad():
        assert torch.allclose(l2(torch.relu(bn(l1(x)))), m2(torch.relu(mbn(m1(x)))), atol=1e-6)
    with pytest.raises(ValueError, match="cannot absorb the scales D"):
        apply_intertwiner(l1, l2, 2.0 * P, "relu", batchnorm=bn)


def test_pooling_dropout_and_flatten_between_layers():
    # average pooling commutes with any channel map, max pooling with P D, D > 0
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(2, 5, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.3),
        nn.AvgPool2d(1), nn.Conv2d(5, 3, 1), nn.Flatten(), nn.Linear(3 * 2 * 2, 2),
    ).eval()
    x = torch.randn(4, 2, 4, 4)
    with torch.no_grad():
        y0 = model(x)
        A = get_group("positive_scaled_permutation").sample(5, random_state=2)
        y1 = apply_intertwiner_(model, 0, A)(x)
    assert torch.max(torch.abs(y1 - y0)) < 1e-5
    tanh_model = nn.Sequential(nn.Conv2d(2, 5, 3), nn.Tanh(), nn.MaxPool2d(2), nn.Conv2d(5, 1, 1))
    S = -np.eye(5)
    with pytest.raises(ValueError, match="does not commute with phi"):
        apply_intertwiner_(tanh_model, 0, S)
    # a permutation does pass max pooling after tanh
    apply_intertwiner_(tanh_model, 0, get_group("permutation").sample(5, random_state=0))


@pytest.mark.parametrize(
    "act, A",
    [
        (nn.ReLU(), random_orthogonal(4, random_state=0)),
        (nn.ReLU(), np.diag([-1.0, 1.0, 1.0, 1.0])),
        (nn.GELU(), np.diag([2.0, 1.0, 1.0, 1.0])),
        (nn.Tanh(), np.diag([2.0, 1.0, 1.0, 1.0])),
    ],
)
def test_elements_outside_the_group_are_refused(act, A):
    # membership tested with G_sigma.contains: these matrices are not intertwiners
    l1, l2 = nn.Linear(3, 4), nn.Linear(4, 2)
    with pytest.raises(ValueError, match="not in the intertwiner group"):
        apply_intertwiner(l1, l2, A, act)
    with pytest.raises(ValueError, match="not in the intertwiner group"):
        apply_intertwiner_(nn.Sequential(l1, act, l2), 0, A)


def test_bad_modules_and_shapes():
    l1, l2 = nn.Linear(3, 4), nn.Linear(4, 2)
    with pytest.raises(ValueError, match="A must be 4 x 4"):
        apply_intertwiner(l1, l2, np.eye(3), "relu")
    with pytest.raises(ValueError, match="next_layer has 5 input features"):
        apply_intertwiner(l1, nn.Linear(5, 2), np.eye(4), "relu")
    with pytest.raises(TypeError, match="layer must be an nn.Linear or an nn.Conv"):
        apply_intertwiner(nn.ReLU(), l2, np.eye(4), "relu")
    with pytest.raises(TypeError, match="batchnorm must be an nn.BatchNorm"):
        apply_intertwiner(l1, l2, np.eye(4), "relu", batchnorm=nn.LayerNorm(4))
    with pytest.raises(ValueError, match="batchnorm has 3 features"):
        apply_intertwiner(l1, l2, np.eye(4), "relu", batchnorm=nn.BatchNorm1d(3))
    with pytest.raises(ValueError, match="must be monomial"):
        apply_intertwiner(l1, l2, random_orthogonal(4, random_state=0), "identity",
                          batchnorm=nn.BatchNorm1d(4))
    with pytest.raises(ValueError, match="grouped convolution"):
        apply_intertwiner(nn.Conv2d(4, 4, 1, groups=2), nn.Conv2d(4, 1, 1), np.eye(4), "relu")
    with pytest.raises(ValueError, match="next_layer has 2 input channels"):
        apply_intertwiner(nn.Conv2d(1, 4, 1), nn.Conv2d(2, 1, 1), np.eye(4), "relu")
    with pytest.raises(TypeError, match="model must be an nn.Sequential"):
        apply_intertwiner_(l1, 0, np.eye(4))
    with pytest.raises(ValueError, match="no nn.Linear or nn.Conv follows"):
        apply_intertwiner_(nn.Sequential(l1, nn.ReLU()), 0, np.eye(4))
    with pytest.raises(ValueError, match="out of range"):
        apply_intertwiner_(nn.Sequential(l1, nn.ReLU(), l2), 5, np.eye(4))
    with pytest.raises(ValueError, match="does not commute"):
        apply_intertwiner_(nn.Sequential(l1, nn.ReLU(), nn.LayerNorm(4), l2), 0, np.eye(4))


def test_torch_tensor_element_and_negative_index():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(5, 3)
    with torch.no_grad():
        y0 = model(x)
        A = torch.from_numpy(get_group("positive_scaled_permutation").sample(4, random_state=1))
        y1 = apply_intertwiner_(model, -3, A)(x)
    assert torch.max(torch.abs(y1 - y0)) < 1e-5
