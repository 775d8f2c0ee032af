"""G_sigma-Procrustes and G_sigma-CKA (Godfrey et al. 2022) against the paper's own numbers,
brute force, closed forms and measured invariances."""

import itertools
import re
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import simmetrics
from simmetrics import IntertwinerCKA, IntertwinerProcrustes
from simmetrics.metrics import intertwiner_cka, intertwiner_kernel
from simmetrics._core.linalg import times_pow2
from simmetrics.base import GROUP_NAMES
from simmetrics.symmetry.groups import get_group
from simmetrics.metrics.hsic import UnbiasedGram, hsic_self, hsic_unbiased
from simmetrics.metrics.intertwiner_alignment import optimal_signed_permutation
from simmetrics.metrics.intertwiner_groups import intertwiner_group_name, upsample_to_match
from simmetrics.metrics.intertwiner_kernel import channel_kernel
from simmetrics.paper.reference import (
    paper_grelu_cka,
    paper_grelu_procrustes_similarity,
    paper_ortho_procrustes_similarity,
)

PAIRS = ["X_Y", "X_Xq", "X_Xpd", "Hc1_Hc2"]
ACTIVATIONS = ["relu", "tanh", "gelu", "abs", "identity"]


def _pair(data, key):
    a, b = key.split("_")
    return data[a], data[b]


def _generic(rng, n=80, dx=8, dy=6, act=lambda z: np.maximum(z, 0.0)):
    """Generic data: uneven neuron scales, non-zero means, Y a noisy non-linear read-out."""
    Z = rng.normal(size=(n, dx)) @ rng.normal(size=(dx, dx))
    X = act(Z + 0.5) * np.exp(rng.normal(size=dx))
    Y = act(X @ rng.normal(size=(dx, dy)) + 0.3 * rng.normal(size=(n, dy)))
    return X, Y + 0.05 * np.abs(rng.normal(size=(n, dy)))


def _monomial(rng, n, signed=False, scaled=False):
    """A random P D: permutation, optional random signs, optional log-normal scales."""
    d = np.ones(n)
    if scaled:
        d *= np.exp(rng.normal(size=n))
    if signed:
        d *= rng.choice([-1.0, 1.0], size=n)
    return np.eye(n)[rng.permutation(n)] * d


def _orthogonal(rng, n):
    Q, R = np.linalg.qr(rng.normal(size=(n, n)))
    return Q * np.sign(np.diag(R))


# -- the paper's reported numbers (pnnl/modelsym run in float64, tests/data/reference/seed7) --
@pytest.mark.parametrize("key", PAIRS)
def test_paper_grelu_procrustes_matches_modelsym(seed7, key):
    X, Y = _pair(seed7, key)  # Hc1/Hc2 are 80 x 12 x 4 x 4, read as N x C x H x W
    ref = seed7["values"][key]["paper_grelu_procrustes_similarity"]
    assert paper_grelu_procrustes_similarity(X, Y) == pytest.approx(ref, abs=1e-12)
    metric = IntertwinerProcrustes("relu", score_method="paper")
    assert metric.fit_score(X, Y) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("key", PAIRS)
def test_paper_grelu_cka_matches_modelsym(seed7, key):
    X, Y = _pair(seed7, key)
    ref = seed7["values"][key]
    assert paper_grelu_cka(X, Y) == pytest.approx(ref["paper_grelu_cka_max"], abs=1e-12)
    # the paper's "median" is torch's lower median (C = 48 and 12 are even)
    assert paper_grelu_cka(X, Y, "median") == pytest.approx(ref["paper_grelu_cka_median"],
                                                            abs=1e-12)


def test_paper_grelu_cka_conv_is_intertwiner_cka_with_summed_positions(seed7):
    # reference: modelsym's wreath_cka on the 80 x 12 x 4 x 4 maps (seed7 values.json)
    metric = IntertwinerCKA("relu", positions="sum", layout="nchw")
    assert metric.fit_score(seed7["Hc1"], seed7["Hc2"]) == pytest.approx(
        seed7["values"]["Hc1_Hc2"]["paper_grelu_cka_max"], abs=1e-12
    )


@pytest.mark.parametrize("key", ["X_Y", "X_Xpd", "Hc1_Hc2"])
def test_paper_ortho_procrustes_matches_modelsym(seed7, key):
    X, Y = _pair(seed7, key)
    ref = seed7["values"][key]["paper_ortho_procrustes_similarity"]
    assert paper_ortho_procrustes_similarity(X, Y) == pytest.approx(ref, abs=1e-12)


def test_paper_ortho_procrustes_is_one_where_the_paper_code_gives_nan(seed7):
    # modelsym takes sqrt(2 - 2 ||H1'H2||_*) unclipped: a rounding error below 0 gives NaN.
    # Xq = X Q with Q orthogonal, so the exact value is 1.
    assert np.isnan(seed7["values"]["X_Xq"]["paper_ortho_procrustes_similarity"])
    assert paper_ortho_procrustes_similarity(seed7["X"], seed7["Xq"]) == pytest.approx(1.0,
                                                                                       abs=1e-12)


def test_paper_numbers_from_the_notes(seed7):
    # paper-notes section 2: G_ReLU-Procrustes of X and X P D is exactly 1, of X and X Q about
    # 0.36-0.41; orthogonal Procrustes gives 1 for X Q and about 0.7 for X P D.
    X, Xpd, Xq = seed7["X"], seed7["Xpd"], seed7["Xq"]
    assert paper_grelu_procrustes_similarity(X, Xpd) == pytest.approx(1.0, abs=1e-12)
    assert paper_grelu_procrustes_similarity(X, Xq) < 0.45
    assert paper_ortho_procrustes_similarity(X, Xq) == pytest.approx(1.0, abs=1e-12)
    assert paper_ortho_procrustes_similarity(X, Xpd) < 0.8


def test_paper_functions_take_torch_and_conv_layouts(seed7):
    H1, H2 = seed7["Hc1"], seed7["Hc2"]
    ref = seed7["values"]["Hc1_Hc2"]["paper_grelu_procrustes_similarity"]
    assert paper_grelu_procrustes_similarity(torch.from_numpy(H1),
                                             torch.from_numpy(H2)) == pytest.approx(ref, abs=1e-12)
    # layout="nchw" rows = samples x positions, the same numbers as the paper's 4-D reading
    nhwc = IntertwinerProcrustes("relu", "paper", layout="nhwc")
    assert nhwc.fit_score(H1.transpose(0, 2, 3, 1), H2.transpose(0, 2, 3, 1)) == pytest.approx(
        ref, abs=1e-12
    )


# -- brute force over the whole group (small widths) -------------------------------------------
def _brute_force(A, B, signed):
    """min over every (signed) permutation h of ||A - B h||_F, by enumeration."""
    n = A.shape[1]
    best = np.inf
    sign_sets = itertools.product([-1.0, 1.0], repeat=n) if signed else [np.ones(n)]
    sign_sets = [np.array(s) for s in sign_sets]
    for perm in itertools.permutations(range(n)):
        Bp = B[:, list(perm)]
        for s in sign_sets:
            best = min(best, np.linalg.norm(A - Bp * s))
    return best


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "abs"])
def test_assignment_is_the_global_minimum_over_the_group(rng, activation):
    # expected: enumeration of all 5! permutations (x 2^5 signs) of the canonical forms
    X = rng.normal(size=(30, 5)) * np.exp(rng.normal(size=5))
    Y = X @ rng.normal(size=(5, 5)) + rng.normal(size=(30, 5))
    group = intertwiner_group_name(activation)
    scaled = group in ("positive_scaled_permutation", "scaled_permutation")
    signed = group in ("signed_permutation", "scaled_permutation")
    rms = lambda A: np.sqrt((A**2).mean(axis=0))  # noqa: E731
    A, B = (X / rms(X), Y / rms(Y)) if scaled else (X, Y)
    expected = _brute_force(A, B, signed) / np.sqrt(A.size)
    value = IntertwinerProcrustes(activation, "euclidean").fit_score(X, Y)
    assert value == pytest.approx(expected, abs=1e-12)


def test_optimal_signed_permutation_recovers_a_signed_permutation(rng):
    A = rng.normal(size=(40, 7))
    perm = rng.permutation(7)
    signs = rng.choice([-1.0, 1.0], size=7)
    B = np.empty_like(A)
    B[:, perm] = A * signs  # so B[:, perm] * signs = A
    found, found_signs = optimal_signed_permutation(A, B)
    assert found.tolist() == perm.tolist()
    assert found_signs.tolist() == signs.tolist()


def test_identity_activation_angular_is_the_mean_principal_angle_cosine(rng):
    # GL_n orbits are column spaces: expected value from scipy.linalg.subspace_angles
    X = rng.normal(size=(60, 5))
    Y = X[:, :3] @ rng.normal(size=(3, 4)) + 0.5 * rng.normal(size=(60, 4))
    cosines = np.cos(scipy.linalg.subspace_angles(X, Y))
    expected = np.arccos(cosines.sum() / np.sqrt(5 * 4))
    assert IntertwinerProcrustes("identity").fit_score(X, Y) == pytest.approx(expected, abs=1e-10)
    A = rng.normal(size=(5, 5))
    assert IntertwinerProcrustes("identity").fit_score(X @ A, Y) == pytest.approx(expected,
                                                                                  abs=1e-10)


def test_paper_score_is_one_minus_half_the_euclidean(rng):
    X, Y = _generic(rng)
    for activation in ACTIVATIONS:
        euclid = IntertwinerProcrustes(activation, "euclidean").fit_score(X, Y)
        paper = IntertwinerProcrustes(activation, "paper").fit_score(X, Y)
        assert paper == pytest.approx(1.0 - euclid / 2.0, abs=1e-14)


def test_unequal_widths_pair_surplus_neurons_with_silent_ones(rng):
    # closed form: Y = [X P D, k extra neurons]; the extra canonical neurons (rms 1) are matched
    # with padding, so euclidean^2 = k m / (m n) = k / n
    X = np.abs(rng.normal(size=(100, 5)))
    PD = _monomial(rng, 5, scaled=True)
    Y = np.hstack([X @ PD, np.abs(rng.normal(size=(100, 3)))])
    metric = IntertwinerProcrustes("relu", "euclidean").fit(X, Y)
    assert metric.score(X, Y) == pytest.approx(np.sqrt(3 / 8), abs=1e-12)
    assert metric.alignment_.shape == (8, 5)
    np.testing.assert_allclose(Y @ metric.alignment_, X, atol=1e-12)
    wide = IntertwinerProcrustes("relu", "euclidean").fit(Y, X)
    assert (wide.permutation_ == -1).sum() == 3
    assert wide.score(Y, X) == pytest.approx(np.sqrt(3 / 8), abs=1e-12)


def test_conv_maps_of_different_sizes_are_upsampled(rng):
    # expected: the same value as comparing with an explicitly upsampled copy
    H1 = np.abs(rng.normal(size=(20, 4, 2, 2)))
    H2 = np.abs(rng.normal(size=(20, 6, 4, 4)))
    up = H1.repeat(2, axis=2).repeat(2, axis=3)
    value = paper_grelu_procrustes_similarity(H1, H2)
    assert value == pytest.approx(paper_grelu_procrustes_similarity(up, H2), abs=1e-14)
    assert value == pytest.approx(paper_grelu_procrustes_similarity(H2, H1), abs=1e-14)
    # CKA with summed positions: upsampling by f multiplies each channel's products and norm^2
    # by f^2, which the per-channel normalisation removes
    assert paper_grelu_cka(H1, H2) == pytest.approx(paper_grelu_cka(up, H2), abs=1e-12)
    with pytest.raises(ValueError, match="integer multiple"):
        upsample_to_match(H1, np.zeros((20, 6, 3, 3)))


# -- alignment: fitted group element, transform, held-out scoring ------------------------------
@pytest.mark.parametrize(
    "activation, signed, scaled",
    [("relu", False, True), ("tanh", True, False), ("gelu", False, False), ("abs", True, True)],
)
def test_fitted_alignment_is_the_inverse_group_element(rng, activation, signed, scaled):
    X = rng.normal(size=(200, 7)) + 0.3
    g = _monomial(rng, 7, signed=signed, scaled=scaled)
    metric = IntertwinerProcrustes(activation).fit(X, X @ g)
    np.testing.assert_allclose(metric.alignment_ @ g, np.eye(7), atol=1e-12)
    perm_matrix = np.abs(g) > 0  # g[j, i] != 0: neuron j of X is neuron i of X g
    assert all(perm_matrix[i, metric.permutation_[i]] for i in range(7))
    np.testing.assert_allclose(metric.signs_ * metric.scales_,
                               [metric.alignment_[metric.permutation_[i], i] for i in range(7)])
    A, B = metric.transform(X, X @ g)
    np.testing.assert_allclose(A, B, atol=1e-12)


def test_identity_activation_recovers_an_invertible_map(rng):
    X = rng.normal(size=(100, 5))
    G = rng.normal(size=(5, 5))
    metric = IntertwinerProcrustes("identity", "euclidean").fit(X, X @ G)
    np.testing.assert_allclose(metric.alignment_ @ G, np.eye(5), atol=1e-10)
    assert metric.permutation_ is None and metric.scales_ is None
    assert metric.score(X, X @ G) == pytest.approx(0.0, abs=1e-12)


def test_fit_on_train_score_on_held_out(rng, seed7):
    X, Xpd, Y = seed7["X"], seed7["Xpd"], seed7["Y"]
    train, test = slice(0, 400), slice(400, None)
    for method, exact in (("angular", 0.0), ("euclidean", 0.0), ("paper", 1.0)):
        metric = IntertwinerProcrustes("relu", method).fit(X[train], Xpd[train])
        # the P D learned on 400 stimuli carries over exactly to the other 200
        assert metric.score(X[test], Xpd[test]) == pytest.approx(exact, abs=1e-12)
    # held out: the training rms and the training permutation applied to the test stimuli
    # (expected value written out from the definition)
    metric = IntertwinerProcrustes("relu", "euclidean").fit(X[train], Y[train])
    rms = lambda A: np.sqrt((A**2).mean(axis=0))  # noqa: E731
    A = X[test] / rms(X[train])
    B = (Y[test] / rms(Y[train]))[:, metric.permutation_]
    expected = np.linalg.norm(A - B) / np.sqrt(A.size)
    assert metric.score(X[test], Y[test]) == pytest.approx(expected, abs=1e-12)
    assert metric.score(X[test], Y[test]) != pytest.approx(metric.score(X[train], Y[train]),
                                                           abs=1e-3)


# -- invariances: every declaration measured, every other group shown to matter ----------------
CONFIGS = (
    [IntertwinerProcrustes(a, s, c) for a in ACTIVATIONS for s in ("angular", "euclidean", "paper")
     for c in (False, True)]
    + [IntertwinerCKA(a, e) for a in ACTIVATIONS for e in ("max", "median")]
)


@pytest.mark.parametrize("metric", CONFIGS, ids=repr)
def test_declared_invariances_hold_and_no_others(metric):
    # measured with the package's group samplers (simmetrics.symmetry.groups) on generic data
    rng = np.random.default_rng(3)
    X, Y = _generic(rng)
    base = clone(metric).fit_score(X, Y)
    for name in GROUP_NAMES:
        group = get_group(name)
        deviation = 0.0
        for _ in range(2):
            gx = group.act(X, group.sample(X.shape[1], random_state=rng))
            gy = group.act(Y, group.sample(Y.shape[1], random_state=rng))
            deviation = max(deviation, abs(clone(metric).fit_score(gx, Y) - base),
                            abs(clone(metric).fit_score(X, gy) - base))
        if name in metric.invariances:
            assert deviation < 1e-10, (name, deviation)
        else:
            assert deviation > 1e-3, (name, deviation)


def test_relu_declarations_name_the_paper_group():
    assert {"positive_scaled_permutation", "permutation", "isotropic_scaling"} <= \
        IntertwinerProcrustes("relu").invariances
    assert "orthogonal" not in IntertwinerProcrustes("relu").invariances
    assert "translation" not in IntertwinerProcrustes("relu").invariances
    assert IntertwinerProcrustes("tanh", "euclidean").invariances == {"signed_permutation",
                                                                      "permutation"}
    assert IntertwinerProcrustes("gelu", "euclidean").invariances == {"permutation"}
    assert "scaled_permutation" not in IntertwinerCKA("tanh").invariances
    assert "scaled_permutation" in IntertwinerCKA("relu").invariances


@pytest.mark.parametrize(
    "activation, fn, signed, scaled",
    [("relu", lambda z: np.maximum(z, 0.0), False, True),
     ("tanh", np.tanh, True, False),
     ("gelu", lambda z: z * scipy.special.ndtr(z), False, False)],
)
def test_invariant_to_the_intertwiner_group_not_to_rotations(activation, fn, signed, scaled):
    # G_sigma elements built here (independently of simmetrics.symmetry.groups), on either input
    rng = np.random.default_rng(11)
    X, Y = _generic(rng, n=150, dx=10, dy=10, act=fn)
    Q = _orthogonal(rng, 10)
    for metric in (IntertwinerProcrustes(activation, "paper"),
                   IntertwinerProcrustes(activation, "angular"),
                   IntertwinerCKA(activation), IntertwinerCKA(activation, "median")):
        base = clone(metric).fit_score(X, Y)
        for _ in range(3):
            g = _monomial(rng, 10, signed=signed, scaled=scaled)
            assert clone(metric).fit_score(X @ g, Y) == pytest.approx(base, abs=1e-10)
            assert clone(metric).fit_score(X, Y @ g) == pytest.approx(base, abs=1e-10)
        # the paper's point: a rotation of the neurons gives a different representation, while
        # X and X g are the same one (value 1 for similarities, 0 for distances)
        same = clone(metric).fit_score(X, X @ _monomial(rng, 10, signed=signed, scaled=scaled))
        assert same == pytest.approx(clone(metric).fit_score(X, X), abs=1e-10)
        assert abs(clone(metric).fit_score(X, X @ Q) - same) > 0.05, repr(metric)
        assert abs(clone(metric).fit_score(Y @ Q, Y) - same) > 0.05, repr(metric)


def test_identical_up_to_the_group_gives_the_extreme_value(seed7):
    X, Xpd = seed7["X"], seed7["Xpd"]
    assert IntertwinerProcrustes().fit_score(X, Xpd) == pytest.approx(0.0, abs=1e-12)
    assert IntertwinerProcrustes(score_method="euclidean").fit_score(X, Xpd) == pytest.approx(
        0.0, abs=1e-12)
    assert IntertwinerCKA().fit_score(X, Xpd) == pytest.approx(1.0, abs=1e-12)


def test_procrustes_distances_satisfy_the_metric_axioms(rng):
    reps = [_generic(rng, n=60, dx=6, dy=6)[k] for k in (0, 1)] + [np.abs(rng.normal(size=(60, 6)))]
    for method in ("angular", "euclidean"):
        for activation in ("relu", "tanh", "identity"):
            d = lambda A, B: IntertwinerProcrustes(activation, method).fit_score(A, B)  # noqa
            for A, B, C in itertools.permutations(reps, 3):
                assert d(A, B) == pytest.approx(d(B, A), abs=1e-12)
                assert d(A, C) <= d(A, B) + d(B, C) + 1e-12


# -- CKA kernel: against a loop over samples, chunking, torch's median ------------------------
def _loop_kernel(H, reduce):
    """The paper's construction: a loop over pairs of samples (H: n x C x P)."""
    n = H.shape[0]
    K = np.zeros((n, n))
    for a in range(n):
        for b in range(a):
            K[a, b] = K[b, a] = reduce((H[a] * H[b]).sum(axis=-1))
    return K


def test_channel_kernel_equals_loop_and_torch_median(rng):
    H = rng.normal(size=(23, 6, 5))
    lower_median = lambda v: float(torch.from_numpy(v).median())  # noqa: E731 (torch: lower)
    for chunk in (None, 1, 7, 100):
        np.testing.assert_allclose(channel_kernel(H, "max", chunk), _loop_kernel(H, np.max),
                                   atol=1e-13)
        np.testing.assert_allclose(channel_kernel(H, "median", chunk),
                                   _loop_kernel(H, lower_median), atol=1e-13)
    H2 = rng.normal(size=(9, 5))  # 2-D: one position, odd number of channels
    for chunk in (None, 1, 4):
        np.testing.assert_allclose(channel_kernel(H2, "median", chunk),
                                   _loop_kernel(H2[:, :, None], np.median), atol=1e-14)
        np.testing.assert_allclose(channel_kernel(H2, "max", chunk),
                                   _loop_kernel(H2[:, :, None], np.max), atol=1e-14)
    K = channel_kernel(rng.normal(size=(10, 3, 4)), "max", 3)
    # the upper triangle is mirrored and the diagonal set to 0: exact by construction
    assert np.array_equal(K, K.T) and not np.diag(K).any()


@pytest.mark.parametrize("strip", [(4, 10), (5, 7), (3, 3), (64, 4096)])
def test_channel_kernel_strips_equal_loop(rng, monkeypatch, strip):
    # numpy's default tiles for one position and "max" are strips of r x c samples; on 23
    # samples, (4, 10) and (5, 7) give several tiles per strip, partial tiles at the edges and
    # diagonal squares inside wider tiles. Expected: the paper's loop, bit for bit (a max of
    # the same products)
    monkeypatch.setattr(intertwiner_kernel, "_NUMPY_STRIP", strip)
    H = rng.normal(size=(23, 6))
    K = channel_kernel(H)
    assert np.array_equal(K, _loop_kernel(H[:, :, None], np.max))
    assert np.array_equal(K, K.T) and not np.diag(K).any()


def test_cka_is_the_unbiased_hsic_ratio_of_the_kernels(rng):
    # expected: the formula written out here on the paper's normalised features
    X, Y = _generic(rng)
    def kernel(A):
        A = A - A.mean(axis=0)
        A = A / np.linalg.norm(A, axis=0)
        return _loop_kernel(A[:, :, None], np.max)
    K, L = kernel(X), kernel(Y)
    expected = hsic_unbiased(K, L) / np.sqrt(hsic_unbiased(K, K) * hsic_unbiased(L, L))
    assert IntertwinerCKA(chunk_size=5).fit_score(X, Y) == pytest.approx(expected, abs=1e-12)


def test_cka_positions_rows_versus_sum(rng, seed7):
    H1, H2 = seed7["Hc1"], seed7["Hc2"]
    rows = np.moveaxis(H1, 1, -1).reshape(-1, 12), np.moveaxis(H2, 1, -1).reshape(-1, 12)
    # "rows": every (sample, position) is a stimulus, the package-wide layout convention
    assert IntertwinerCKA(layout="nchw").fit_score(H1, H2) == pytest.approx(
        IntertwinerCKA().fit_score(*rows), abs=1e-12)
    # "sum" on 2-D input: one position per sample, the same as "rows"
    X, Y = seed7["X"], seed7["Y"]
    assert IntertwinerCKA(positions="sum").fit_score(X, Y) == pytest.approx(
        IntertwinerCKA().fit_score(X, Y), abs=1e-12)


# -- errors -------------------------------------------------------------------------------------
def test_unknown_activation_and_parameters(rng):
    X, Y = _generic(rng)
    with pytest.raises(ValueError, match="unknown activation 'relux'"):
        IntertwinerProcrustes("relux").fit_score(X, Y)
    with pytest.raises(ValueError, match="not the intertwiner group"):
        IntertwinerCKA("orthogonal").fit_score(X, Y)
    with pytest.raises(ValueError, match="parameter 'score_method' must be one of"):
        IntertwinerProcrustes(score_method="cosine").fit_score(X, Y)
    with pytest.raises(ValueError, match="parameter 'estimator' must be one of"):
        IntertwinerCKA(estimator="mean").fit_score(X, Y)
    with pytest.raises(ValueError, match="parameter 'positions' must be one of"):
        IntertwinerCKA(positions="mean").fit_score(X, Y)
    with pytest.raises(ValueError, match=r"parameter 'chunk_size' must be None or an int in \[1, inf\)"):
        IntertwinerCKA(chunk_size=0).fit_score(X, Y)


def test_zero_variance_is_an_error(rng):
    X = rng.normal(size=(20, 3))
    for metric in (IntertwinerProcrustes(), IntertwinerProcrustes("identity", "paper"),
                   IntertwinerCKA(), IntertwinerCKA(positions="sum")):
        with pytest.raises(ValueError, match="Y has zero variance"):
            metric.fit_score(X, np.full((20, 4), 2.0))
    with pytest.raises(ValueError, match="H1 is all zeros"):
        paper_ortho_procrustes_similarity(np.zeros((20, 3)), X)


def test_conv_input_needs_a_layout_except_for_the_paper_score(seed7):
    H1, H2 = seed7["Hc1"], seed7["Hc2"]
    for metric in (IntertwinerProcrustes(), IntertwinerProcrustes(score_method="euclidean"),
                   IntertwinerCKA(), IntertwinerCKA(positions="sum")):
        with pytest.raises(ValueError, match="X must be 2-D .* layout="):
            metric.fit_score(H1, H2)
    IntertwinerProcrustes(score_method="paper").fit_score(H1, H2)  # read as N x C x H x W


def test_sample_checks_with_summed_positions(rng):
    metric = IntertwinerCKA(positions="sum", layout="nchw")
    H = rng.normal(size=(6, 3, 2, 2))
    with pytest.raises(ValueError, match="same number of samples: X has 6, Y has 5"):
        metric.fit_score(H, rng.normal(size=(5, 3, 2, 2)))
    with pytest.raises(ValueError, match="X has 3 samples, but this estimator needs at least 4"):
        metric.fit_score(H[:3], H[:3])


def test_alignment_needs_fit(rng):
    X, Y = _generic(rng)
    with pytest.raises(NotFittedError):
        IntertwinerProcrustes().score(X, Y)
    with pytest.raises(NotFittedError):
        IntertwinerProcrustes().transform(X, Y)


# -- registry and declared attributes ------------------------------------------------------
def test_registry_and_attributes():
    assert isinstance(simmetrics.get_metric("g_procrustes"), IntertwinerProcrustes)
    assert isinstance(simmetrics.get_metric("intertwiner_cka", estimator="median"),
                      IntertwinerCKA)
    assert IntertwinerProcrustes().kind == "distance"
    assert IntertwinerProcrustes(score_method="paper").kind == "similarity"
    # held-out scores are unbounded below (tests/metrics/test_trust_intertwiner.py); [0, 1] on the
    # fitting data
    assert IntertwinerProcrustes(score_method="paper").bounds == (-np.inf, 1.0)
    assert IntertwinerProcrustes(score_method="paper").is_metric is False
    assert IntertwinerProcrustes("tanh", "euclidean").bounds == (0.0, np.inf)
    assert IntertwinerCKA.bounds == (-1.0, 1.0) and IntertwinerCKA.min_samples == 4
    # activations given as torch modules resolve to their groups
    assert IntertwinerCKA(torch.nn.Tanh()).invariances == IntertwinerCKA("tanh").invariances
    assert intertwiner_group_name("positive_scaled_permutation") == "positive_scaled_permutation"


# -- the torch path: tensors on an accelerator stay there ----------------------------------------
# No accelerator here, so these tests send CPU tensors down the accelerator path by declaring
# the policy that keeps every tensor where it is (device_policy = "tensor"); everything after it, from
# the validation on the device to the HSIC, is the code a CUDA tensor runs (only the default
# tile size differs, so the tests also pass small chunk sizes). The expected values are the
# numpy path's: the same metric on numpy arrays, computed with numpy's kernels, which the
# tests above check against the paper's loop and modelsym's numbers.
@pytest.fixture
def device_path(monkeypatch):
    monkeypatch.setattr(IntertwinerCKA, "device_policy", "tensor")


def _numpy_value(metric, X, Y):
    """The numpy path: numpy arrays (or CPU tensors, which the CPU path reads as numpy
    arrays) with numpy's kernels, whatever the CPU default is."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(intertwiner_cka, "_TORCH_ON_CPU", False)
        patch.setattr(IntertwinerCKA, "device_policy", "host")
        return clone(metric).fit_score(X, Y)


def _conv_pair(rng, n=23):
    """Conv features of two layers with different widths and spatial sizes (N x C x H x W)."""
    H1 = np.maximum(rng.normal(size=(n, 5, 3, 3)) + 0.3, 0.0) * np.exp(rng.normal(size=(5, 1, 1)))
    mix = rng.normal(size=(5, 4))
    H2 = np.tanh(np.einsum("nchw,cd->ndhw", H1[:, :, ::2, ::2], mix)) + 0.2 * rng.normal(
        size=(n, 4, 2, 2))
    return H1, H2


@pytest.mark.parametrize("estimator", ["max", "median"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "identity"])
@pytest.mark.parametrize("chunk", [None, 7])
def test_torch_path_equals_numpy_path_dense(rng, device_path, activation, estimator, chunk):
    X, Y = _generic(rng, n=45, dx=7, dy=5)  # 45 samples: tiles of 7 leave a tile of 3
    metric = IntertwinerCKA(activation, estimator, chunk_size=chunk)
    expected = _numpy_value(metric, X, Y)
    assert metric.fit_score(torch.from_numpy(X), torch.from_numpy(Y)) == pytest.approx(
        expected, abs=1e-10)
    # the path really is torch's: a tensor validated on the device (a numpy partner joins it
    # there), its kernel a tensor
    A, _ = metric._validate(X, torch.from_numpy(Y))
    assert isinstance(A, torch.Tensor) and isinstance(metric._partial_fit(A, "X").K, torch.Tensor)


@pytest.mark.parametrize("estimator", ["max", "median"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "identity"])
@pytest.mark.parametrize("chunk", [None, 7])
def test_torch_path_equals_numpy_path_conv_positions_summed(rng, device_path, activation,
                                                            estimator, chunk):
    H1, H2 = _conv_pair(rng)
    metric = IntertwinerCKA(activation, estimator, positions="sum", chunk_size=chunk,
                            layout="nchw")
    expected = _numpy_value(metric, H1, H2)
    assert metric.fit_score(torch.from_numpy(H1), torch.from_numpy(H2)) == pytest.approx(
        expected, abs=1e-10)
    # rows mode on the same maps: n * h * w stimuli (207 and 92 rows would not match: use H1
    # against a map of its own size)
    rows = IntertwinerCKA(activation, estimator, chunk_size=chunk, layout="nchw")
    H3 = np.maximum(H1 + 0.5 * rng.normal(size=H1.shape), 0.0)
    assert rows.fit_score(torch.from_numpy(H1), torch.from_numpy(H3)) == pytest.approx(
        _numpy_value(rows, H1, H3), abs=1e-10)


def test_torch_path_float32_input_is_promoted_on_the_device(rng, device_path):
    # expected: the numpy path on the same float32 values (promoted to float64 on the CPU)
    X, Y = (A.astype(np.float32) for A in _generic(rng, n=40))
    H1, H2 = (A.astype(np.float32) for A in _conv_pair(rng))
    for metric, A, B in ((IntertwinerCKA(), X, Y), (IntertwinerCKA("tanh", "median"), X, Y),
                         (IntertwinerCKA(positions="sum", layout="nchw"), H1, H2)):
        value = metric.fit_score(torch.from_numpy(A), torch.from_numpy(B))
        assert value == pytest.approx(_numpy_value(metric, A, B), abs=1e-10)
    half = torch.from_numpy(X).half()  # float16: promoted too (the numpy path reads float16)
    assert IntertwinerCKA().fit_score(half, torch.from_numpy(Y)) == pytest.approx(
        _numpy_value(IntertwinerCKA(), half.numpy(), Y), abs=1e-10)


def test_torch_path_with_a_numpy_partner(rng, device_path):
    # the numpy input joins the tensor on its device, whichever side it is on
    X, Y = _generic(rng, n=30)
    H1, H2 = _conv_pair(rng, n=12)
    expected = _numpy_value(IntertwinerCKA(), X, Y)
    assert IntertwinerCKA().fit_score(torch.from_numpy(X), Y) == pytest.approx(expected,
                                                                                abs=1e-10)
    assert IntertwinerCKA().fit_score(X, torch.from_numpy(Y)) == pytest.approx(expected,
                                                                                abs=1e-10)
    summed = IntertwinerCKA(positions="sum", layout="nchw")
    assert summed.fit_score(H1, torch.from_numpy(H2)) == pytest.approx(
        _numpy_value(summed, H1, H2), abs=1e-10)
    frozen = Y.copy()
    frozen.setflags(write=False)  # torch warns on sharing a read-only array: it is copied
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert IntertwinerCKA().fit_score(torch.from_numpy(X), frozen) == pytest.approx(
            expected, abs=1e-10)


def test_torch_path_default_tiles_that_do_not_divide_n(rng, device_path, monkeypatch):
    # tiny default tiles (64 values: 4 x 4 samples dense, 3 x 3 with 5 channels) so that the
    # default tile computation runs many tiles on n = 23 and 45 samples
    monkeypatch.setattr(intertwiner_kernel, "_TILE_ELEMENTS", 64)
    X, Y = _generic(rng, n=45, dx=7, dy=5)
    H1, H2 = _conv_pair(rng)
    for metric, A, B in ((IntertwinerCKA(), X, Y), (IntertwinerCKA(estimator="median"), X, Y),
                         (IntertwinerCKA(positions="sum", layout="nchw"), H1, H2),
                         (IntertwinerCKA("tanh", "median", "sum", layout="nchw"), H1, H2)):
        value = metric.fit_score(torch.from_numpy(A), torch.from_numpy(B))
        assert value == pytest.approx(_numpy_value(metric, A, B), abs=1e-10)


def test_torch_path_at_extreme_magnitudes(rng, device_path):
    # the exact power-of-two rescalings: activations of 1e+-300, and one channel of subnormal
    # values (about 1e-310: its rescaling factor 2**1030 is applied in two steps)
    X, Y = _generic(rng, n=30)
    expected = _numpy_value(IntertwinerCKA(), X, Y)
    for scale in (1e300, 1e-300):
        assert IntertwinerCKA().fit_score(torch.from_numpy(X * scale),
                                          torch.from_numpy(Y)) == pytest.approx(expected,
                                                                                abs=1e-10)
    tiny = X.copy()
    tiny[:, 0] *= 1e-310
    normal = tiny.copy()
    normal[:, 0] = np.ldexp(tiny[:, 0], 1030)  # the same values, exactly, at a normal scale
    for metric in (IntertwinerCKA(), IntertwinerCKA("tanh")):
        value = metric.fit_score(torch.from_numpy(tiny), torch.from_numpy(Y))
        assert value == pytest.approx(_numpy_value(metric, tiny, Y), abs=1e-10)
    # ReLU normalises each channel, so a per-channel power of two changes nothing (expected:
    # the value at the normal scale)
    assert IntertwinerCKA().fit_score(torch.from_numpy(tiny), torch.from_numpy(Y)) == \
        pytest.approx(_numpy_value(IntertwinerCKA(), normal, Y), abs=1e-12)


@pytest.mark.parametrize("k", [-1074, -1024, -1023, -1, 0, 1, 1023, 1024, 1074])
def test_power_of_two_scaling_is_ldexp(k):
    # expected: numpy.ldexp, which scales exactly (and rounds once where the result is
    # subnormal); times_pow2 multiplies, in two steps where 2**k would overflow
    x = np.array([1.0, -3.0, 0.75, 5e-324, 2.0**-1022, 1.5e-300, 1e300, 0.0])
    with np.errstate(over="ignore"):
        expected = np.ldexp(x, k)
        for backend in (np.asarray, torch.from_numpy):
            got = np.asarray(times_pow2(backend(x), k))
            assert np.array_equal(got, expected)


def test_torch_path_bad_input_messages_are_the_numpy_ones(rng, device_path):
    X = rng.normal(size=(20, 3))
    H = rng.normal(size=(6, 3, 2, 2))
    cases = [
        (IntertwinerCKA(), X, np.full((20, 4), 2.0)),                     # zero variance
        (IntertwinerCKA(positions="sum"), X, np.full((20, 4), 2.0)),
        (IntertwinerCKA(), np.where(X > 1.5, np.nan, X), X),                 # NaN
        (IntertwinerCKA(), X, np.where(X > 1.5, np.inf, X)),                 # inf
        (IntertwinerCKA(), X, X[:19]),                                       # sample counts
        (IntertwinerCKA(positions="sum", layout="nchw"), H, H[:5]),
        (IntertwinerCKA(), X[:3], X[:3]),                                    # too few samples
        (IntertwinerCKA(positions="sum", layout="nchw"), H[:3], H[:3]),
        (IntertwinerCKA(), H, H),                                            # 4-D, no layout
        (IntertwinerCKA(layout="nchw"), X, X),                               # 2-D for "nchw"
        (IntertwinerCKA(), X > 0, X),                                        # boolean dtype
        (IntertwinerCKA(estimator="mean"), X, X),                            # parameters
        (IntertwinerCKA(chunk_size=0), X, X),
    ]
    for metric, A, B in cases:
        tA, tB = torch.from_numpy(A), torch.from_numpy(B)
        with pytest.raises((ValueError, TypeError)) as on_numpy:
            _numpy_value(metric, tA, tB)  # the same tensors on the CPU path
        with pytest.raises(on_numpy.type) as on_device:
            metric.fit_score(tA, tB)
        assert str(on_device.value) == str(on_numpy.value)
        if A.dtype != bool:  # numpy's own message for a boolean array says "cast it"
            with pytest.raises(on_numpy.type, match=re.escape(str(on_numpy.value))):
                _numpy_value(metric, A, B)
    with pytest.raises(ValueError, match="Y has zero variance"):
        IntertwinerCKA().fit_score(torch.from_numpy(X), torch.full((20, 4), 2.0))


def test_fit_score_with_cpu_tensors_gives_the_numpy_value(rng, seed7):
    # no patching: CPU tensors take the CPU path, whose value is the numpy path's
    X, Y = _generic(rng)
    for metric in (IntertwinerCKA(), IntertwinerCKA("tanh", "median")):
        assert metric.fit_score(torch.from_numpy(X), torch.from_numpy(Y)) == pytest.approx(
            _numpy_value(metric, X, Y), abs=1e-12)
    # and modelsym's value for the conv maps, from CPU tensors
    metric = IntertwinerCKA("relu", positions="sum", layout="nchw")
    assert metric.fit_score(torch.from_numpy(seed7["Hc1"]),
                            torch.from_numpy(seed7["Hc2"])) == pytest.approx(
        seed7["values"]["Hc1_Hc2"]["paper_grelu_cka_max"], abs=1e-12)


def test_torch_cpu_kernels_for_cpu_input_give_the_numpy_value(rng, monkeypatch):
    # the switch that would run CPU input on torch's CPU kernels (off by default): same value
    X, Y = _generic(rng, n=40)
    H1, H2 = _conv_pair(rng)
    monkeypatch.setattr(intertwiner_cka, "_TORCH_ON_CPU", True)
    for metric, A, B in ((IntertwinerCKA(), X, Y), (IntertwinerCKA("identity"), X, Y),
                         (IntertwinerCKA(estimator="median", positions="sum", layout="nchw"),
                          H1, H2)):
        assert metric.fit_score(A, B) == pytest.approx(_numpy_value(metric, A, B), abs=1e-10)


def test_channel_kernel_on_tensors_is_the_numpy_kernel(rng):
    # expected: the numpy kernel (itself checked against the paper's loop above); one position:
    # the same bits (max and median select one of the same products), positions summed: the
    # same up to the order of the sums over positions
    H2 = rng.normal(size=(23, 6))
    H3 = rng.normal(size=(19, 5, 4))
    for estimator in ("max", "median"):
        for chunk in (None, 1, 7, 100):
            K = channel_kernel(torch.from_numpy(H2), estimator, chunk)
            assert isinstance(K, torch.Tensor) and K.dtype == torch.float64
            assert np.array_equal(K.numpy(), channel_kernel(H2, estimator, chunk))
            K3 = channel_kernel(torch.from_numpy(H3), estimator, chunk).numpy()
            np.testing.assert_allclose(K3, channel_kernel(H3, estimator, chunk), rtol=0,
                                       atol=1e-13)
            assert np.array_equal(K3, K3.T) and not np.diag(K3).any()  # mirrored: exact
    K32 = channel_kernel(torch.from_numpy(H2.astype(np.float32)))
    assert K32.dtype == torch.float64  # promoted, then the products in float64
    assert np.array_equal(K32.numpy(), channel_kernel(H2.astype(np.float32).astype(np.float64)))
    np.testing.assert_allclose(channel_kernel(torch.from_numpy(H3), "median").numpy(),
                               _loop_kernel(H3, lambda v: float(torch.from_numpy(v).median())),
                               atol=1e-13)


def test_unbiased_gram_is_hsic_unbiased_and_hsic_self(rng):
    # expected: hsic_unbiased and hsic_self, the existing Gram-matrix functions
    X, Y = rng.normal(size=(40, 5)), rng.normal(size=(40, 3))
    K, L = X @ X.T, np.tanh(Y @ Y.T)
    for wrap in (np.asarray, torch.from_numpy):
        a, b = UnbiasedGram(wrap(K)), UnbiasedGram(wrap(L))
        assert a.hsic(b) == pytest.approx(hsic_unbiased(K, L), rel=1e-12)
        # symmetric by its formula; the swapped call sums the same (commuting) products in the
        # same order here (bit-identical on this machine), but a BLAS dot product need not
        # promise that order for swapped operands: 1e-12 relative, as against hsic_unbiased
        assert b.hsic(a) == pytest.approx(a.hsic(b), rel=1e-12)
        assert a.self_hsic == pytest.approx(hsic_self(K, "unbiased"), rel=1e-12)
        c = np.arange(8.0)[:, None]  # removed by the U-centring: rounding noise, floored
        assert UnbiasedGram(wrap(c + c.T)).self_hsic <= 0.0
        assert hsic_self(c + c.T, "unbiased") <= 0.0
    with pytest.raises(ValueError, match="at least 4 samples"):
        UnbiasedGram(np.eye(3))
    with pytest.raises(ValueError, match="K must be a square Gram matrix"):
        UnbiasedGram(np.ones((4, 5)))


def test_prepared_states_on_different_backends_meet(rng):
    # pairwise may pair a numpy state with a tensor state: the value is the same
    X, Y = _generic(rng, n=30)
    metric = IntertwinerCKA()
    a = metric._partial_fit(metric._validate_one(X, "X"), "X")
    b = UnbiasedGram(torch.from_numpy(metric._partial_fit(metric._validate_one(Y, "Y"), "Y").K))
    expected = _numpy_value(metric, X, Y)
    assert metric._finalize_fit_score(a, b) == pytest.approx(expected, abs=1e-12)
    assert metric._finalize_fit_score(b, a) == pytest.approx(expected, abs=1e-12)


def test_value_is_symmetric(rng, seed7):
    # expected: the same value with X and Y swapped (CKA is symmetric by its formula). Each
    # kernel is computed on its own; the pair's sums are products that commute, in the same
    # order (bit-identical on this machine), but a BLAS dot product need not promise that for
    # swapped operands: 1e-12 absolute, on values in [-1, 1]
    X, Y = _generic(rng)
    assert IntertwinerCKA().fit_score(X, Y) == pytest.approx(IntertwinerCKA().fit_score(Y, X),
                                                             abs=1e-12)
    metric = IntertwinerCKA(estimator="median", positions="sum", layout="nchw")
    assert metric.fit_score(seed7["Hc1"], seed7["Hc2"]) == pytest.approx(
        metric.fit_score(seed7["Hc2"], seed7["Hc1"]), abs=1e-12)
