"""Cycle, LCS and edit-distance kNN (platonic-rep's ordered-list measures) against the seed11
reference values, direct implementations from the definitions, closed forms, and tied data."""

import itertools

import numpy as np
import pytest

import simmetrics
from simmetrics import LCSKNN, CycleKNN, EditDistanceKNN
from simmetrics.metrics.knn_lists import edit_distances, lcs_lengths, neighbour_lists, ordered_lists

PAIRS = ["X_Y", "X_Z", "X_Xpd", "X_Xq"]
SIMS = {"inner_product": "_raw", "cosine": "_l2rows"}
CLASSES = {"cycle_knn": CycleKNN, "lcs_knn": LCSKNN, "edit_distance_knn": EditDistanceKNN}


def _pair(data, key):
    a, b = key.split("_")
    return data[a], data[b]


# -- seed11: minyoungg/platonic-rep commit dcd76ba3c950c1b197a2ae8b1c6713535c94ecf9, metrics.py
# AlignmentMetrics.{cycle_knn,lcs_knn,edit_distance_knn}(topk=10) on float64 torch tensors
# (tests/data/reference/seed11/README.md: _raw the arrays as given, _l2rows unit rows).
# platonic-rep returns cycle_knn and lcs_knn as float32 means of exact counts (n = 300): our
# float64 value is the exact count / 300 and the stored value its float32 rounding, so they
# agree to half a float32 ulp (at most 1.2e-7 here), not 1e-8; edit_distance_knn is float64.
@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("similarity", list(SIMS))
@pytest.mark.parametrize("name", list(CLASSES))
def test_seed11_reference_values(seed11, pair, similarity, name):
    X, Y = _pair(seed11, pair)
    value = CLASSES[name](k=10, similarity=similarity).fit_score(X, Y)
    ref = seed11["values"][pair][f"platonic_{name}_topk10{SIMS[similarity]}"]
    if name == "edit_distance_knn":
        assert value == pytest.approx(ref, abs=1e-12)
    else:
        count = value * 300
        assert abs(count - round(count)) < 1e-9  # a mean of integer counts over 300 rows
        assert np.float32(value) == np.float32(ref)
        assert abs(value - ref) <= 0.5 * np.spacing(np.float32(ref))


def test_cycle_of_x_with_itself_as_the_readme_states(seed11):
    # seed11 README: "self is excluded, so it stays below 1 even for identical
    # neighbourhoods (0.376667 on X_Xq)"
    assert CycleKNN(similarity="inner_product").fit_score(seed11["X"], seed11["X"]) == \
        pytest.approx(0.376667, abs=1e-6)


# -- direct implementations from the definitions (full sort, Python dynamic programmes) ------
def _lists(X, k, similarity):
    P = X / np.linalg.norm(X, axis=1, keepdims=True) if similarity == "cosine" else X
    S = P @ P.T
    np.fill_diagonal(S, -np.inf)
    return np.argsort(-S, axis=1, kind="stable")[:, :k]


def _lcs(a, b):
    dp = np.zeros((len(a) + 1, len(b) + 1), dtype=int)
    for i in range(len(a)):
        for j in range(len(b)):
            dp[i + 1, j + 1] = dp[i, j] + 1 if a[i] == b[j] else max(dp[i, j + 1], dp[i + 1, j])
    return dp[-1, -1]


def _lev(a, b):
    dp = np.zeros((len(a) + 1, len(b) + 1), dtype=int)
    dp[:, 0], dp[0, :] = np.arange(len(a) + 1), np.arange(len(b) + 1)
    for i in range(len(a)):
        for j in range(len(b)):
            dp[i + 1, j + 1] = min(dp[i, j + 1] + 1, dp[i + 1, j] + 1, dp[i, j] + (a[i] != b[j]))
    return dp[-1, -1]


@pytest.mark.parametrize("similarity", list(SIMS))
def test_equal_to_the_definitions_on_random_data(rng, similarity):
    X = rng.normal(size=(70, 8)) + 0.5
    Y = np.tanh(X @ rng.normal(size=(8, 5))) + 0.4 * rng.normal(size=(70, 5))
    k = 6
    LX, LY = _lists(X, k, similarity), _lists(Y, k, similarity)
    cycle = np.mean([any(i in LX[j] for j in LY[i]) for i in range(70)])
    lcs = np.mean([_lcs(LX[i], LY[i]) for i in range(70)])
    lev = 1 - np.mean([_lev(LX[i], LY[i]) for i in range(70)]) / k
    assert CycleKNN(k=k, similarity=similarity).fit_score(X, Y) == pytest.approx(cycle, abs=1e-15)
    assert LCSKNN(k=k, similarity=similarity).fit_score(X, Y) == pytest.approx(lcs, abs=1e-14)
    assert EditDistanceKNN(k=k, similarity=similarity).fit_score(X, Y) == \
        pytest.approx(lev, abs=1e-15)


def test_dynamic_programmes_on_all_short_lists(rng):
    A = rng.integers(0, 4, size=(300, 5))
    B = rng.integers(0, 4, size=(300, 5))
    assert lcs_lengths(A, B).tolist() == [_lcs(a, b) for a, b in zip(A, B)]
    assert edit_distances(A, B).tolist() == [_lev(a, b) for a, b in zip(A, B)]


# -- closed forms ----------------------------------------------------------------------------
def test_identical_and_transformed_inputs(rng):
    X = rng.normal(size=(80, 10))
    Q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    for similarity in SIMS:
        assert LCSKNN(k=7, similarity=similarity).fit_score(X, -3 * X @ Q) == 7.0
        assert EditDistanceKNN(k=7, similarity=similarity).fit_score(X, 2 * X @ Q) == 1.0
    # cycle on X against itself: the fraction of samples with a mutual neighbour (self excluded)
    L = _lists(X, 7, "cosine")
    mutual = np.mean([any(i in L[j] for j in L[i]) for i in range(80)])
    assert CycleKNN(k=7).fit_score(X, X) == pytest.approx(mutual, abs=1e-15)


def test_cycle_is_not_symmetric_and_lists_are(seed11):
    X, Z = seed11["X"], seed11["Z"]
    assert abs(CycleKNN().fit_score(X, Z) - CycleKNN().fit_score(Z, X)) > 1e-3
    for cls in (LCSKNN, EditDistanceKNN):
        assert cls().fit_score(X, Z) == pytest.approx(cls().fit_score(Z, X), abs=1e-15)


# -- ties ------------------------------------------------------------------------------------
def _binary(rng, n, d):
    L = rng.normal(size=(n, 4)) @ rng.normal(size=(4, d)) + 0.5 * rng.normal(size=(n, d))
    A = (L > 1.0) * 1.0
    A[A.sum(axis=1) == 0, 0] = 1.0  # no all-zero rows (cosine)
    return A


def _index_rule(X, Y, k):
    """The three values with ties left to the sample index (a stable sort), for comparison."""
    LX, LY = _lists(X, k, "cosine"), _lists(Y, k, "cosine")
    n = X.shape[0]
    return (np.mean([any(i in LX[j] for j in LY[i]) for i in range(n)]),
            np.mean([_lcs(LX[i], LY[i]) for i in range(n)]),
            1 - np.mean([_lev(LX[i], LY[i]) for i in range(n)]) / k)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tied_data_keep_their_value_under_a_stimulus_permutation(seed):
    # binary data: cosine similarities tie exactly. Leaving ties to the sample index makes all
    # three values change when the stimuli are reordered (checked here on the same data); the
    # module's rules do not
    rng = np.random.default_rng(seed)
    X, Y = _binary(rng, 40, 6), _binary(rng, 40, 5)
    order = rng.permutation(40)
    before, after = _index_rule(X, Y, 5), _index_rule(X[order], Y[order], 5)
    assert before[1] != after[1] and before[2] != after[2]  # LCS and edit distance move
    if seed:
        assert before[0] != after[0]  # so does cycle (seeds 1 and 2)
    for cls in CLASSES.values():
        m = cls(k=5)
        assert m.fit_score(X[order], Y[order]) == pytest.approx(m.fit_score(X, Y), abs=1e-12)


def test_ties_inside_lists_follow_the_other_representation():
    # sample 0's four others all tie in X; Y ranks them 3, 1, 2, 4: X's list of 0 follows Y
    X = np.vstack([np.ones(5), np.eye(5)[1:] + 1.0])
    Y = np.array([[1.0, 0.0], [0.6, 0.8], [0.5, 0.87], [0.9, 0.44], [0.1, 1.0]])
    sx, sy = neighbour_lists(X, 4), neighbour_lists(Y, 4)
    assert ordered_lists(sx, sy)[0].tolist() == [3, 1, 2, 4]
    assert ordered_lists(sy, sx)[0].tolist() == [3, 1, 2, 4]


def test_cycle_with_every_similarity_tied_is_its_expectation():
    # np.eye(n): every other sample ties for every place, each is a neighbour with probability
    # k / (n - 1), independently per row: P(no return to i) = (1 - k / (n - 1))^k
    n, k = 9, 3
    E = np.eye(n)
    assert CycleKNN(k=k).fit_score(E, E) == pytest.approx(1 - (1 - k / (n - 1)) ** k, abs=1e-15)
    assert LCSKNN(k=k).fit_score(E, E) == k
    assert EditDistanceKNN(k=k).fit_score(E, 3 * E) == 1.0


def _tie_choices(A, k):
    """Every neighbour set each row can have under some tie-break (cosine, ties within 1e-12)."""
    P = A / np.linalg.norm(A, axis=1, keepdims=True)
    S = P @ P.T
    out = []
    for i in range(A.shape[0]):
        others = [j for j in range(A.shape[0]) if j != i]
        v = sorted((S[i, j] for j in others), reverse=True)[k - 1]
        above = [j for j in others if S[i, j] > v + 1e-12]
        tied = [j for j in others if abs(S[i, j] - v) <= 1e-12]
        out.append([set(above) | set(c) for c in itertools.combinations(tied, k - len(above))])
    return out


def test_cycle_on_tied_data_is_the_mean_over_every_tie_break():
    # the expectation enumerated: every combination of the rows' tie-breaks, equally likely
    rng = np.random.default_rng(5)
    X, Y = _binary(rng, 7, 3), _binary(rng, 7, 3)
    k = 2
    cx, cy = _tie_choices(X, k), _tie_choices(Y, k)
    assert sum(len(c) > 1 for c in cx + cy) >= 4  # ties to break
    n = 7
    total = 0.0
    for i in range(n):  # E[hit_i]: Y's row i and X's rows, independent
        hits = [any(i in nx[j] for j in ny)
                for ny in cy[i] for nx in itertools.product(*cx)]
        total += np.mean(hits)
    assert CycleKNN(k=k).fit_score(X, Y) == pytest.approx(total / n, abs=1e-14)


def test_binary_data_are_invariant_to_neuron_maps(rng):
    X, Y = _binary(rng, 60, 12), _binary(rng, 60, 7)
    Q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    perm = rng.permutation(12)
    for cls in CLASSES.values():
        for similarity in SIMS:
            m = cls(k=5, similarity=similarity)
            base = m.fit_score(X, Y)
            assert m.fit_score(X @ Q, Y) == pytest.approx(base, abs=1e-12)
            assert m.fit_score(0.125 * X[:, perm], Y) == pytest.approx(base, abs=1e-15)


# -- the data users have, bad input, chunks and pairwise ------------------------------------
def test_dead_unit_and_more_neurons_than_samples(rng):
    X = rng.normal(size=(30, 50))
    Y = X @ rng.normal(size=(50, 40)) + rng.normal(size=(30, 40))
    dead = np.hstack([X, np.zeros((30, 1))])
    for cls in CLASSES.values():
        assert cls(k=4).fit_score(dead, Y) == pytest.approx(cls(k=4).fit_score(X, Y), abs=1e-15)


def test_zero_row_is_an_error_for_cosine_only(rng):
    X = rng.normal(size=(20, 4))
    X[3] = 0.0
    with pytest.raises(ValueError, match="row 3 of X is all zeros"):
        LCSKNN(k=3).fit_score(X, rng.normal(size=(20, 4)))
    assert np.isfinite(LCSKNN(k=3, similarity="inner_product").fit_score(X, X))


def test_k_needs_more_samples_and_a_known_similarity(rng):
    X = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match="k=10 must be smaller than the number of samples"):
        CycleKNN(k=10).fit_score(X, X)
    with pytest.raises(ValueError, match="similarity"):
        CycleKNN(similarity="raw").fit_score(X, X)
    with pytest.raises(ValueError, match="k"):
        EditDistanceKNN(k=0).fit_score(X, X)


def test_chunks_and_pairwise_give_the_same_values(rng):
    X = rng.normal(size=(90, 6))
    Y = X + 0.5 * rng.normal(size=(90, 6))
    Z = _binary(rng, 90, 5)
    for similarity in SIMS:
        a = neighbour_lists(Z, 5, similarity, chunk_size=7)
        b = neighbour_lists(Z, 5, similarity)
        for field in ("keys", "block", "sure", "weight"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    for cls in CLASSES.values():
        m = cls(k=5)
        values = np.asarray(simmetrics.pairwise(m, [X, Y, Z]))
        assert values[0, 1] == pytest.approx(m.fit_score(X, Y), abs=1e-15)
        assert values[2, 0] == pytest.approx(m.fit_score(Z, X), abs=1e-15)


def test_similarity_repository_names():
    for name, cls in (("cycle_knn-topk=7", CycleKNN), ("lcs_knn-topk=7", LCSKNN),
                      ("edit_distance_knn-topk=7", EditDistanceKNN)):
        m = simmetrics.get_metric(name)
        assert type(m) is cls and m.k == 7 and m.similarity == "inner_product"
