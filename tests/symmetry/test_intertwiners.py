"""Intertwiner groups of activations and the homogeneity defect.

Independent references: torch's own activation functions (evaluated in float64) for every row
of the table, a least-squares fit of the best linear B on random inputs (the numerical check of
the paper-notes, section 1), scipy.integrate.quad for the homogeneity defect, closed forms, and
the paper's numbers (Godfrey et al. 2022, Section 3.2 and its figure of xi(lambda)).
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.integrate import quad
from torch import nn

import simmetrics
from simmetrics.symmetry.groups import random_orthogonal
from simmetrics.symmetry.activations import intertwiner_group
from simmetrics.symmetry.homogeneity import gelu_defect_slope, homogeneity_defect

T64 = torch.float64


def _t(fn):
    """A numpy -> numpy function evaluating a torch activation in float64."""
    return lambda x: fn(torch.as_tensor(x, dtype=T64)).numpy()


_PRELU_W = torch.tensor([0.25], dtype=T64)

# activation spec -> (torch reference function, expected group)
ROWS = {
    "identity": (_t(lambda x: x), "invertible_linear"),
    "relu": (_t(torch.relu), "positive_scaled_permutation"),
    ("leaky_relu", 0.2): (_t(lambda x: F.leaky_relu(x, 0.2)), "positive_scaled_permutation"),
    ("prelu", 0.25): (_t(lambda x: F.prelu(x, _PRELU_W)), "positive_scaled_permutation"),
    "tanh": (_t(torch.tanh), "signed_permutation"),
    "sin": (_t(torch.sin), "signed_permutation"),
    "gelu": (_t(F.gelu), "permutation"),
    "gelu_tanh": (_t(lambda x: F.gelu(x, approximate="tanh")), "permutation"),
    "sigmoid": (_t(torch.sigmoid), "permutation"),
    "softplus": (_t(F.softplus), "permutation"),
    "elu": (_t(F.elu), "permutation"),
    "silu": (_t(F.silu), "permutation"),
    ("power", 2): (_t(lambda x: x**2), "scaled_permutation"),
    ("power", 3): (_t(lambda x: x**3), "scaled_permutation"),
    "abs": (_t(torch.abs), "scaled_permutation"),
    "gaussian": (_t(lambda x: torch.exp(-(x**2))), "signed_permutation"),
}
SPECS = list(ROWS)
IDS = [s if isinstance(s, str) else f"{s[0]}{s[1]}" for s in SPECS]

# elements just outside each group (beside a random orthogonal matrix, outside every
# non-linear row): a negative scale, a scale of 2, a shear
NEG = np.diag([-1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
TWO = np.diag([2.0, 1.0, 1.0, 1.0, 1.0, 1.0])
SHEAR = np.eye(6) + np.eye(6, k=1) * 0.5
OUTSIDE = {
    "positive_scaled_permutation": [NEG, SHEAR],
    "signed_permutation": [TWO, SHEAR],
    "permutation": [NEG, TWO, SHEAR],
    "scaled_permutation": [SHEAR],
}


def _best_B(f, X, A):
    """The least-squares B minimising ||f(X) B' - f(X A')||, and the largest error left."""
    F0, F1 = f(X), f(X @ A.T)
    Bt, *_ = np.linalg.lstsq(F0, F1, rcond=None)
    return Bt.T, float(np.max(np.abs(F0 @ Bt - F1)))


@pytest.fixture
def X6():
    return 2.0 * np.random.default_rng(0).normal(size=(2000, 6))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_table_row_holds_for_sampled_elements(spec, X6):
    # sigma(X A') = sigma(X) phi(A)' with sigma from torch, for A sampled from G_sigma
    f, group = ROWS[spec]
    it = intertwiner_group(spec)
    assert it.group.name == group and it.method == "table"
    for seed in range(3):
        A = it.group.sample(6, random_state=seed)
        lhs, rhs = f(X6 @ A.T), f(X6) @ it.phi(A).T
        assert np.max(np.abs(lhs - rhs)) <= 1e-10 * max(1.0, np.max(np.abs(lhs)))
        # phi(A) is the B found by least squares (the paper-notes' numerical check)
        B, err = _best_B(f, X6, A)
        assert err <= 1e-9 * max(1.0, np.max(np.abs(lhs)))
        np.testing.assert_allclose(B, it.phi(A), atol=1e-7 * max(1.0, np.abs(B).max()))


@pytest.mark.parametrize("spec", [s for s in SPECS if s != "identity"],
                         ids=[i for i in IDS if i != "identity"])
def test_elements_outside_the_group_fit_no_B(spec, X6):
    # for A outside G_sigma no B works: the least-squares best B leaves a clear error
    f, group = ROWS[spec]
    it = intertwiner_group(spec)
    for A in [random_orthogonal(6, random_state=1)] + OUTSIDE[group]:
        assert not it.group.contains(A)
        _, err = _best_B(f, X6, A)
        assert err > 1e-3, (spec, err)
        with pytest.raises(ValueError, match="not in the intertwiner group"):
            it.phi(A)


def test_sigmoid_sign_flip_intertwines_only_up_to_a_bias(X6):
    # sigmoid(-x) = 1 - sigmoid(x): an affine map fits exactly, a linear one does not
    f = ROWS["sigmoid"][0]
    F0, F1 = f(X6), f(X6 @ NEG.T)
    design = np.hstack([F0, np.ones((len(F0), 1))])
    coef, *_ = np.linalg.lstsq(design, F1, rcond=None)
    assert np.max(np.abs(design @ coef - F1)) < 1e-12
    assert _best_B(f, X6, NEG)[1] > 1e-3


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_numerical_probe_agrees_with_the_table(spec):
    # an anonymous torch callable is classified by probing; it must reproduce the table row
    torch_fn, group = ROWS[spec]
    probe = intertwiner_group(lambda x: torch_fn(x))
    table = intertwiner_group(spec)
    assert probe.method == "numerical"
    assert probe.group.name == table.group.name == group
    A = table.group.sample(5, random_state=0)
    np.testing.assert_allclose(probe.phi(A), table.phi(A), rtol=1e-12)
    assert "tolerance 1e-08" in probe.details
    assert "residual" in probe.details


def test_probe_finds_degrees_and_parity():
    # closed forms: relu(x)^2 is homogeneous of degree 2, |x|^1.5 even of degree 1.5,
    # sign(x)|x|^1.5 odd, x*|x| odd of degree 2, 3x linear, x + 1 affine
    cases = [
        (lambda x: np.maximum(x, 0) ** 2, "positive_scaled_permutation", 2, True),
        (lambda x: np.abs(x) ** 1.5, "scaled_permutation", 1.5, False),
        (lambda x: np.sign(x) * np.abs(x) ** 1.5, "scaled_permutation", 1.5, True),
        (lambda x: x * np.abs(x), "scaled_permutation", 2, True),
        (lambda x: 3.0 * x, "invertible_linear", 1, True),
        (lambda x: np.cos(x), "signed_permutation", 1, False),
    ]
    for fn, group, degree, keep in cases:
        it = intertwiner_group(fn)
        assert (it.group.name, it.degree, it.keep_sign) == (group, degree, keep), it.details
    # and the phi they give is the least-squares B
    X = np.random.default_rng(1).normal(size=(500, 4))
    for fn, *_ in cases:
        it = intertwiner_group(fn)
        A = it.group.sample(4, random_state=2)
        B, err = _best_B(fn, X, A)
        np.testing.assert_allclose(B, it.phi(A), atol=1e-7 * max(1, np.abs(B).max()))
    affine = intertwiner_group(lambda x: x + 1.0)
    assert affine.group.name == "permutation" and "A 1 = 1" in affine.details


def test_torch_modules_map_to_table_rows():
    # torch's modules and their parameters
    cases = {
        nn.Identity(): ("identity", "invertible_linear"),
        nn.ReLU(): ("relu", "positive_scaled_permutation"),
        nn.LeakyReLU(0.1): ("leaky_relu", "positive_scaled_permutation"),
        nn.PReLU(): ("prelu", "positive_scaled_permutation"),
        nn.GELU(): ("gelu", "permutation"),
        nn.GELU(approximate="tanh"): ("gelu_tanh", "permutation"),
        nn.Tanh(): ("tanh", "signed_permutation"),
        nn.Sigmoid(): ("sigmoid", "permutation"),
        nn.Softplus(): ("softplus", "permutation"),
        nn.ELU(): ("elu", "permutation"),
        nn.SiLU(): ("silu", "permutation"),
    }
    for module, (name, group) in cases.items():
        it = intertwiner_group(module)
        assert (it.activation, it.group.name, it.method) == (name, group, "table")
    assert intertwiner_group(nn.LeakyReLU(0.1)).params == {"negative_slope": 0.1}
    assert intertwiner_group(nn.PReLU(init=0.3)).params["negative_slope"] == pytest.approx(0.3)
    assert intertwiner_group(nn.ELU(alpha=0.0)).activation == "relu"
    # the numpy function of a module equals the module (float64)
    x = np.linspace(-30, 30, 601)
    for module in [nn.Softplus(beta=2.0, threshold=5.0), nn.ELU(0.5), nn.GELU(), nn.PReLU()]:
        expected = module.double()(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(intertwiner_group(module).function(x), expected,
                                   rtol=1e-14, atol=1e-14)


def test_other_modules_and_callables_are_probed():
    # modules without a table row: Hardtanh and Softsign are odd, ReLU6 and Mish are neither
    assert intertwiner_group(nn.Hardtanh()).group.name == "signed_permutation"
    assert intertwiner_group(nn.Softsign()).group.name == "signed_permutation"
    assert intertwiner_group(nn.ReLU6()).group.name == "permutation"
    assert intertwiner_group(nn.Mish()).group.name == "permutation"
    assert intertwiner_group(nn.Hardtanh()).method == "numerical"
    # known plain functions use the table
    for fn, name in [(torch.relu, "relu"), (F.gelu, "gelu"), (np.tanh, "tanh"),
                     (np.abs, "abs"), (torch.sigmoid, "sigmoid"), (np.square, "power")]:
        it = intertwiner_group(fn)
        assert (it.activation, it.method) == (name, "table")


def test_special_parameters_reduce_to_other_rows():
    # slope 1: identity; slope 0: ReLU; slope -1: |x|; x^1: identity
    assert intertwiner_group(("leaky_relu", 1.0)).activation == "identity"
    assert intertwiner_group(nn.LeakyReLU(0.0)).activation == "relu"
    assert intertwiner_group(("leaky_relu", -1)).activation == "abs"
    assert intertwiner_group(("power", 1)).activation == "identity"
    assert intertwiner_group(("power", 4.0)).params == {"degree": 4}
    assert intertwiner_group("square").params == {"degree": 2}
    assert intertwiner_group("ReLU").activation == "relu"
    assert intertwiner_group("Leaky-ReLU").params == {"negative_slope": 0.01}
    it = intertwiner_group("relu")
    assert intertwiner_group(it) is it
    assert simmetrics.intertwiner_group is intertwiner_group


def test_even_power_maps_negative_scales_to_positive():
    # x^2 is even: phi(P D) = P D^2, whose entries are all positive
    A = np.array([[0.0, -3.0], [0.5, 0.0]])
    np.testing.assert_array_equal(intertwiner_group(("power", 2)).phi(A), [[0, 9.0], [0.25, 0]])
    np.testing.assert_array_equal(intertwiner_group(("power", 3)).phi(A),
                                  [[0, -27.0], [0.125, 0]])
    np.testing.assert_array_equal(intertwiner_group("gaussian").phi(-np.eye(2)), np.eye(2))


def test_bad_activations():
    with pytest.raises(ValueError, match="did you mean 'sigmoid'"):
        intertwiner_group("sigmod")
    with pytest.raises(ValueError, match="integer degree"):
        intertwiner_group(("power", 2.5))
    with pytest.raises(ValueError, match="integer degree d >= 1, got 0"):
        intertwiner_group(("power", 0))
    with pytest.raises(ValueError, match="takes no parameter"):
        intertwiner_group(("relu", 3))
    with pytest.raises(ValueError, match="beta must be positive"):
        intertwiner_group(("softplus", -1.0))
    with pytest.raises(TypeError, match=r"\(name, parameter\) pair"):
        intertwiner_group(("power", 2, 3))
    with pytest.raises(TypeError, match="negative_slope must be a real number"):
        intertwiner_group(("leaky_relu", "a"))
    with pytest.raises(TypeError, match="activation must be a name"):
        intertwiner_group(3.0)
    with pytest.raises(ValueError, match="is constant"):
        intertwiner_group(lambda x: np.ones_like(x))
    with pytest.raises(ValueError, match="not finite on the probe grid"):
        intertwiner_group(lambda x: np.where(x > 5, np.inf, x))
    with pytest.raises(ValueError, match="act coordinatewise"):
        intertwiner_group(lambda x: x.sum(keepdims=True))
    with pytest.raises(ValueError, match="different per-channel slopes"):
        intertwiner_group(nn.PReLU(3, init=0.1).requires_grad_(False).apply(
            lambda m: m.weight.copy_(torch.tensor([0.1, 0.2, 0.3]))))
    with pytest.raises(ValueError, match="rtol must be a positive number"):
        intertwiner_group("relu", rtol=0)


# -- homogeneity defect ----------------------------------------------------------------------
def _gelu_scalar(x):
    return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))


def _xi_quad(lam):
    """xi(lambda) for GELU by scipy's adaptive quadrature, split at 0."""

    def integrand(x):
        diff = _gelu_scalar(lam * x) - lam * _gelu_scalar(x)
        return diff * diff * math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)

    total = 0.0
    for a, b in [(-np.inf, 0.0), (0.0, np.inf)]:
        total += quad(integrand, a, b, epsabs=0.0, epsrel=1e-13, limit=500)[0]
    return math.sqrt(total)


def test_gelu_defect_matches_scipy_quad():
    # independent adaptive quadrature of the same integral
    lams = np.array([0.05, 0.4, 0.9, 2.0, 7.0, 50.0, 1e3])
    ours = homogeneity_defect("gelu", lams)
    ref = np.array([_xi_quad(lam) for lam in lams])
    np.testing.assert_allclose(ours, ref, rtol=1e-10)


def test_gelu_defect_matches_the_paper():
    # Godfrey et al. 2022, Sec. 3.2: xi(0) = xi(1) = 0, a bump of about 0.072 near 0.4,
    # about 0.175 at 2 (read off their figure), asymptotic slope 0.12674722 from 1e7 samples
    # exact at 0 and 1: sigma(0 x) - 0 sigma(x) = gelu(0) - 0 = 0 and sigma(1 x) - 1 sigma(x)
    # evaluates sigma on the same x twice, so every node contributes an exact 0
    assert homogeneity_defect(nn.GELU(), 0.0) == 0.0
    assert homogeneity_defect("gelu", 1.0) == 0.0
    lams = np.linspace(0.0, 1.0, 201)
    xi = homogeneity_defect("gelu", lams)
    assert xi.max() == pytest.approx(0.072, abs=1e-3)
    assert 0.35 <= lams[np.argmax(xi)] <= 0.45
    assert homogeneity_defect("gelu", 2.0) == pytest.approx(0.175, abs=3e-3)
    # sampling error of the paper's slope: 1.24e-5 (standard error of the RMS from 1e7 draws)
    assert gelu_defect_slope() == pytest.approx(0.12674722, abs=5e-5)


def test_gelu_defect_slope_closed_form():
    # closed form sqrt(1/12 - (1 - 1/sqrt 3)/(2 pi)) against scipy.quad of the RMS of
    # |X| Phi(-|X|), and against xi(lambda)/lambda at large lambda (converges like lambda^-1.5)
    def integrand(x):
        y = x * 0.5 * math.erfc(x / math.sqrt(2.0))
        return 2.0 * y * y * math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)

    ref = math.sqrt(quad(integrand, 0.0, np.inf, epsabs=0.0, epsrel=1e-13)[0])
    assert gelu_defect_slope() == pytest.approx(ref, rel=1e-12)
    lams = np.array([1e4, 1e6, 1e8])
    slopes = homogeneity_defect("gelu", lams) / lams
    np.testing.assert_allclose(slopes, gelu_defect_slope(), rtol=1e-7)
    assert abs(slopes[-1] / gelu_defect_slope() - 1) < 1e-10


def test_defect_closed_forms_for_homogeneous_activations():
    # relu and leaky relu are positively homogeneous: xi = 0 for lambda > 0; for lambda = -1,
    # relu(-x) + relu(x) = |x| so xi = sqrt(E X^2) = 1; for x^2, xi = |lam^2 - lam| sqrt(3)
    lams = np.array([0.1, 0.5, 2.0, 1e5])
    # exact: relu(lam x) and lam relu(x) are the same rounded product lam * x (or both 0)
    np.testing.assert_array_equal(homogeneity_defect("relu", lams), 0.0)
    # (rounding only: 0.3 (lam x) and lam (0.3 x) differ in the last bit)
    np.testing.assert_allclose(homogeneity_defect(nn.LeakyReLU(0.3), lams) / lams, 0.0, atol=1e-15)
    assert homogeneity_defect("relu", -1.0) == pytest.approx(1.0, rel=1e-13)
    np.testing.assert_allclose(homogeneity_defect(("power", 2), [-2.0, 0.5, 3.0]),
                               np.sqrt(3) * np.array([6.0, 0.25, 6.0]), rtol=1e-13)
    assert homogeneity_defect("identity", 7.0) == 0.0


def test_defect_shapes_and_errors():
    out = homogeneity_defect("tanh", np.ones((2, 3)))
    assert out.shape == (2, 3)
    assert isinstance(homogeneity_defect("tanh", 2), float)
    # a torch callable works too and gives the same number
    assert homogeneity_defect(lambda t: torch.tanh(t), 3.0) == pytest.approx(
        homogeneity_defect("tanh", 3.0), rel=1e-14)
    with pytest.raises(ValueError, match="lam must be finite"):
        homogeneity_defect("gelu", [1.0, np.nan])
