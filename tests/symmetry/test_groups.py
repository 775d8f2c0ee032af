"""Transformation groups: sampling, membership, action, inclusions.

Expected values come from the definitions of the groups (closed-form identities such as
Q'Q = I and E[Q_11^2] = 1/n for Haar Q) and from measuring the inclusions by sampling.
"""

import itertools

import numpy as np
import pytest
import torch

import simmetrics
from simmetrics.base import GROUP_NAMES
from simmetrics.symmetry.groups import (
    InvertibleLinear,
    get_group,
    inverse_matrix,
    is_subgroup,
    monomial_parts,
    random_orthogonal,
)

LINEAR = [name for name in GROUP_NAMES if name != "translation"]


def test_available_groups_are_the_base_vocabulary():
    # the vocabulary metrics declare invariances in (simmetrics.base.GROUP_NAMES)
    assert simmetrics.available_groups() == list(GROUP_NAMES)
    for name in GROUP_NAMES:
        assert get_group(name).name == name


@pytest.mark.parametrize("name", GROUP_NAMES)
@pytest.mark.parametrize("n", [1, 2, 7])
def test_samples_are_members_and_reproducible(name, n):
    # definition: a sampled element belongs to its group; the random state fixes it
    G = get_group(name)
    g = G.sample(n, random_state=3)
    assert G.contains(g)
    np.testing.assert_array_equal(g, G.sample(n, random_state=3))
    np.testing.assert_array_equal(g, G.sample(n, random_state=np.random.default_rng(3)))
    assert g.dtype == np.float64
    assert g.shape == ((n,) if name == "translation" else (n, n))
    if n > 2:
        assert not np.array_equal(g, G.sample(n, random_state=4))


def test_sampling_never_touches_the_global_numpy_state():
    # rule of the package: random elements come from check_random_state, never np.random.*
    state = np.random.get_state()[1].copy()
    for name in GROUP_NAMES:
        get_group(name).sample(5)
    np.testing.assert_array_equal(state, np.random.get_state()[1])


@pytest.mark.parametrize("a, b", list(itertools.product(LINEAR, LINEAR)))
def test_is_subgroup_matches_membership_of_samples(a, b):
    # measured: is_subgroup(a, b) holds exactly when random elements of a lie in b
    # (for a not inside b a random element of a is outside b with probability 1)
    Ga, Gb = get_group(a), get_group(b)
    inside = all(Gb.contains(Ga.sample(5, random_state=s)) for s in range(5))
    assert inside == is_subgroup(a, b)


def test_translation_is_unrelated_to_the_linear_groups():
    # translations act additively; they contain and are contained in no matrix group
    for name in LINEAR:
        assert not is_subgroup("translation", name)
        assert not is_subgroup(name, "translation")
    assert is_subgroup("translation", "translation")


def test_subgroups_and_supergroups_properties():
    # from the inclusion lattice in the brief: P < G_ReLU < scaled P < GL, cI < GL
    G = get_group("positive_scaled_permutation")
    assert G.subgroups == {"permutation", "isotropic_scaling", "positive_scaled_permutation"}
    assert G.supergroups == {
        "positive_scaled_permutation", "scaled_permutation", "invertible_linear",
    }
    assert get_group("orthogonal").subgroups == {
        "permutation", "signed_permutation", "orthogonal",
    }


def test_act_is_right_multiplication_by_the_transpose(rng):
    # definition: every sample x becomes g x, so X -> X g'
    X = rng.normal(size=(10, 4))
    for name in LINEAR:
        g = get_group(name).sample(4, random_state=0)
        # act is this very product (same code, same operands): exact
        np.testing.assert_allclose(get_group(name).act(X, g), X @ g.T, rtol=0, atol=0)
    t = get_group("translation").sample(4, random_state=0)
    np.testing.assert_array_equal(get_group("translation").act(X, t), X + t)
    # torch input is accepted and the result is float64 numpy
    P = get_group("permutation").sample(4, random_state=1)
    out = get_group("permutation").act(torch.from_numpy(X).float(), P)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, X.astype(np.float32) @ P.T)


def test_permutation_act_reorders_columns(rng):
    # P[i, perm[i]] = 1, so column i of X P' is column perm[i] of X
    X = rng.normal(size=(3, 5))
    P = get_group("permutation").sample(5, random_state=2)
    perm = np.argmax(P, axis=1)
    # exact arithmetic: each entry is one x * 1 plus zeros
    np.testing.assert_array_equal(get_group("permutation").act(X, P), X[:, perm])


def test_act_checks_shapes(rng):
    X = rng.normal(size=(3, 4))
    with pytest.raises(ValueError, match="g must be a 4 x 4 matrix"):
        get_group("orthogonal").act(X, np.eye(3))
    with pytest.raises(ValueError, match="vector of length 4"):
        get_group("translation").act(X, np.zeros(3))
    with pytest.raises(ValueError, match="X must be 2-D"):
        get_group("orthogonal").act(np.zeros(4), np.eye(4))


def test_haar_orthogonal_moments():
    # Haar measure: E[Q_ij] = 0 and E[Q_ij^2] = 1/n; without the sign fix of the QR
    # factorisation the diagonal of Q would be biased (Mezzadri 2007)
    rng = np.random.default_rng(0)
    Qs = np.stack([random_orthogonal(3, rng) for _ in range(3000)])
    diag = Qs[:, [0, 1, 2], [0, 1, 2]]
    se = np.sqrt(1 / 3 / diag.size)
    assert abs(diag.mean()) < 4 * se
    assert abs((Qs**2).mean() - 1 / 3) < 0.01


def test_permutations_are_uniform():
    # each of the 3! permutations has probability 1/6 (chi-square with 5 dof, p ~ 1e-4 cutoff)
    rng = np.random.default_rng(1)
    G = get_group("permutation")
    keys = [tuple(np.argmax(G.sample(3, rng), axis=1)) for _ in range(3000)]
    counts = np.array([keys.count(k) for k in itertools.permutations(range(3))])
    chi2 = ((counts - 500) ** 2 / 500).sum()
    assert chi2 < 25


def test_scales_are_log_normal_and_isotropic_log_uniform():
    # log d ~ N(0, sigma^2) for the scaled permutations; log c ~ U(log 1e-2, log 1e2)
    G = get_group("positive_scaled_permutation", sigma=0.5)
    logd = np.log(G.sample(1500, random_state=0).sum(axis=0))
    assert abs(logd.mean()) < 0.06 and abs(logd.std() - 0.5) < 0.04
    S = get_group("scaled_permutation").sample(1500, random_state=0).sum(axis=0)
    assert abs(np.mean(S > 0) - 0.5) < 0.06
    cs = np.array([get_group("isotropic_scaling").sample(1, random_state=s)[0, 0]
                   for s in range(2000)])
    assert cs.min() >= 1e-2 and cs.max() <= 1e2
    assert abs(np.log10(cs).mean()) < 0.1 and abs(np.log10(cs).std() - 4 / np.sqrt(12)) < 0.05


def test_invertible_linear_samples_are_well_conditioned():
    # U diag(s) V' with log s uniform on [-log(50)/2, log(50)/2]: condition number below 50
    G = InvertibleLinear()
    conds = [np.linalg.cond(G.sample(20, random_state=s)) for s in range(20)]
    assert max(conds) < 50 and min(conds) > 5


@pytest.mark.parametrize(
    "name, member, outsider",
    [
        ("permutation", [[0, 1], [1, 0]], [[0, -1], [1, 0]]),
        ("signed_permutation", [[0, -1], [1, 0]], [[0, 2], [1, 0]]),
        ("positive_scaled_permutation", [[0, 2], [0.5, 0]], [[0, -2], [0.5, 0]]),
        ("scaled_permutation", [[0, -2], [0.5, 0]], [[1, 1], [0, 1]]),
        ("orthogonal", [[0.6, -0.8], [0.8, 0.6]], [[0.6, -0.8], [0.8, 0.61]]),
        ("invertible_linear", [[1, 1], [0, 1]], [[1, 2], [2, 4]]),
        ("isotropic_scaling", [[3, 0], [0, 3]], [[3, 0], [0, 3.1]]),
    ],
)
def test_contains_on_hand_made_matrices(name, member, outsider):
    # hand-made elements and near misses of each group's definition
    G = get_group(name)
    assert G.contains(np.array(member, dtype=float))
    assert not G.contains(np.array(outsider, dtype=float))


@pytest.mark.parametrize("name", LINEAR)
def test_contains_rejects_non_matrices(name):
    G = get_group(name)
    assert not G.contains(np.eye(3)[:2])  # not square
    assert not G.contains(np.full((2, 2), np.nan))
    assert not G.contains(np.zeros((2, 2)))
    assert not G.contains("abc")
    assert not G.contains(np.zeros((0, 0)))


def test_translation_contains_vectors_only():
    G = get_group("translation")
    assert G.contains(np.array([1.0, -2.0]))
    assert not G.contains(np.eye(2))
    assert not G.contains(np.array([np.inf]))


def test_contains_tolerance_is_row_relative():
    # an entry counts as zero below atol times its row's largest entry
    A = np.array([[1e-3, 1e-14], [0.0, 5.0]])
    assert get_group("positive_scaled_permutation").contains(A)
    assert not get_group("positive_scaled_permutation").contains(A, atol=1e-12)
    assert get_group("orthogonal").contains(np.eye(2) + 1e-12)
    assert not get_group("orthogonal").contains(np.eye(2) + 1e-6)


def test_monomial_parts_and_exact_inverse(rng):
    # A = P diag(d) with P[i, perm[i]] = 1; the inverse of a monomial matrix is exact
    A = get_group("scaled_permutation").sample(6, random_state=5)
    perm, d = monomial_parts(A)
    P = np.zeros((6, 6))
    P[np.arange(6), perm] = 1.0
    np.testing.assert_array_equal(P @ np.diag(d), A)
    np.testing.assert_allclose(A @ inverse_matrix(A), np.eye(6), rtol=0, atol=1e-15)
    M = InvertibleLinear().sample(5, random_state=0)
    np.testing.assert_allclose(inverse_matrix(M) @ M, np.eye(5), atol=1e-12)
    t = get_group("translation").sample(3, random_state=0)
    np.testing.assert_array_equal(get_group("translation").inverse(t), -t)
    with pytest.raises(ValueError, match="finite square matrix"):
        inverse_matrix(np.ones(3))


def test_identity_elements():
    for name in LINEAR:
        assert get_group(name).contains(get_group(name).identity(3))
    np.testing.assert_array_equal(get_group("translation").identity(2), [0.0, 0.0])


def test_unknown_names_and_bad_parameters():
    with pytest.raises(ValueError, match="did you mean 'orthogonal'"):
        get_group("orthogonl")
    with pytest.raises(ValueError, match="unknown group 'xyz'.*Available: permutation"):
        get_group("xyz")
    with pytest.raises(TypeError, match="group name must be a str"):
        get_group(3)
    with pytest.raises(TypeError, match="group name must be a str"):
        is_subgroup(None, "orthogonal")
    with pytest.raises(ValueError, match="sigma must be a positive finite number"):
        get_group("positive_scaled_permutation", sigma=-1)
    with pytest.raises(ValueError, match="max_cond must be larger than 1"):
        get_group("invertible_linear", max_cond=0.5)
    with pytest.raises(ValueError, match="low must not exceed high"):
        get_group("isotropic_scaling", low=2, high=1)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        get_group("orthogonal").sample(0)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        get_group("translation").sample(2.5)
    with pytest.raises(TypeError, match="random_state must be"):
        get_group("permutation").sample(3, random_state="seed")
    # names are case-insensitive; a Group passes through; equality compares parameters
    assert get_group("Signed-Permutation") == get_group("signed_permutation")
    G = get_group("scaled_permutation", sigma=2.0)
    assert get_group(G) is G
    assert G != get_group("scaled_permutation") and len({G, get_group(G)}) == 1
    with pytest.raises(TypeError, match="params cannot be given"):
        get_group(G, sigma=1.0)
