"""ReSi's neighbourhood measures (JaccardKNN, RankSimilarity, SecondOrderCosine) and
MutualKNN's similarity option, against the peers' values on seed11, closed forms, a live
scikit-learn neighbour search, and the data users have (ties, duplicates, dead units, n < d)."""

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

import simmetrics
from simmetrics import JaccardKNN, MutualKNN, RankSimilarity, SecondOrderCosine
from simmetrics.metrics.neighbourhood import ranked_neighbours

PAIRS = ["Y", "Z", "Xpd", "Xq"]
MEASURES = [JaccardKNN, RankSimilarity, SecondOrderCosine]

# Values of mklabunde/resi (commit 24ab9e5055c71527445b0b196f5872f3cbe9a020, repsim/measures/
# nearest_neighbor.py, shape "nd", default k=10 and cosine neighbours) and of
# minyoungg/platonic-rep (commit dcd76ba3c950c1b197a2ae8b1c6713535c94ecf9, metrics.py
# mutual_knn, topk=10, float64): tests/data/reference/seed11/README.md.
RESI_KEYS = [
    (JaccardKNN, "resi_jaccard_k10_cosine"),
    (RankSimilarity, "resi_rank_similarity_k10_cosine"),
    (SecondOrderCosine, "resi_second_order_cosine_similarity_k10"),
]


@pytest.mark.parametrize("other", PAIRS)
@pytest.mark.parametrize("cls, key", RESI_KEYS, ids=[c.__name__ for c, _ in RESI_KEYS])
def test_resi_values_on_seed11(seed11, cls, key, other):
    value = cls(k=10).fit_score(seed11["X"], seed11[other])
    assert value == pytest.approx(seed11["values"][f"X_{other}"][key], abs=1e-8)


@pytest.mark.parametrize("other", PAIRS)
@pytest.mark.parametrize("similarity, suffix", [("cosine", "l2rows"), ("inner_product", "raw")])
def test_mutual_knn_similarity_option_on_seed11(seed11, similarity, suffix, other):
    value = MutualKNN(k=10, similarity=similarity).fit_score(seed11["X"], seed11[other])
    expected = seed11["values"][f"X_{other}"][f"platonic_mutual_knn_topk10_{suffix}"]
    assert value == pytest.approx(expected, abs=1e-8)


def test_mutual_knn_default_is_cosine(seed11):
    X, Y = seed11["X"], seed11["Y"]
    assert MutualKNN().fit_score(X, Y) == MutualKNN(similarity="cosine").fit_score(X, Y)
    with pytest.raises(ValueError, match="similarity"):
        MutualKNN(similarity="euclidean").fit_score(X, Y)


def test_inner_product_ranks_by_norm_and_allows_a_zero_sample():
    X = np.array([[1.0, 0.0], [3.0, 0.1], [0.0, 1.0], [0.0, 0.0]])
    # raw inner products: sample 1 (large norm) is sample 0's and sample 2's neighbour
    assert MutualKNN(k=1, similarity="inner_product").fit_score(X, X) == 1.0
    with pytest.raises(ValueError, match="row 3 of X is all zeros"):
        MutualKNN(k=1).fit_score(X, X)


def _sklearn_lists(A, k):
    """Live peer: scikit-learn's cosine neighbour search, as ReSi calls it (self dropped)."""
    nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(A)
    dist, idx = nn.kneighbors(A)
    lists = []
    for i, row in enumerate(idx):
        lists.append([j for j in row if j != i][:k])
    return lists


def _definitions(A, B, k):
    """The three measures written from their definitions on scikit-learn's neighbour lists."""
    la, lb = _sklearn_lists(A, k), _sklearn_lists(B, k)
    Ua = A / np.linalg.norm(A, axis=1, keepdims=True)
    Ub = B / np.linalg.norm(B, axis=1, keepdims=True)
    jac, rank, soc = [], [], []
    for i in range(A.shape[0]):
        sa, sb = set(la[i]), set(lb[i])
        jac.append(len(sa & sb) / len(sa | sb))
        shared = sa & sb
        if shared:
            s = sum(2 / ((1 + abs(la[i].index(j) - lb[i].index(j)))
                         * (la[i].index(j) + lb[i].index(j) + 2)) for j in shared)
            rank.append(s / sum(1 / q for q in range(1, len(shared) + 1)))
        else:
            rank.append(0.0)
        u = sorted(sa | sb)
        da, db = 1 - Ua[u] @ Ua[i], 1 - Ub[u] @ Ub[i]
        soc.append(da @ db / np.sqrt((da @ da) * (db @ db)))
    return np.mean(jac), np.mean(rank), np.mean(soc)


@pytest.mark.parametrize("seed", [0, 1])
def test_equal_a_live_scikit_learn_neighbour_search(seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(80, 7))
    B = A @ rng.normal(size=(7, 5)) + 0.7 * rng.normal(size=(80, 5))
    expected = _definitions(A, B, 6)
    got = [cls(k=6).fit_score(A, B) for cls in MEASURES]
    np.testing.assert_allclose(got, expected, atol=1e-12)


@pytest.mark.parametrize("cls", MEASURES)
def test_identical_rotated_and_rescaled_inputs_give_one(cls):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 6))
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert cls(k=5).fit_score(X, X) == 1.0
    assert cls(k=5).fit_score(X, -3.0 * X @ Q) == pytest.approx(1.0, abs=1e-12)


def test_closed_form_on_four_points():
    # k = 1: in X the pairs (0, 1), (2, 3) are nearest; in Y the pairs (0, 2), (1, 3)
    X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    Y = X[[0, 2, 1, 3]]
    assert JaccardKNN(k=1).fit_score(X, Y) == 0.0
    assert RankSimilarity(k=1).fit_score(X, Y) == 0.0
    # k = 2 on X against itself with one pair swapped: rank lists (1, 2) against (2, 1)
    h = ranked_neighbours(X, 2)
    assert np.all(np.isin(h.ranks, [1.0, 2.0]))


@pytest.mark.parametrize("cls", MEASURES)
def test_ties_count_fractionally_and_no_sample_order_decides(cls):
    # binary data with duplicated rows: many exact ties at the k-th place
    rng = np.random.default_rng(4)
    X = (rng.random((40, 5)) < 0.4).astype(float)
    X[X.sum(axis=1) == 0, 0] = 1.0
    Y = (rng.random((40, 7)) < 0.3).astype(float)
    Y[Y.sum(axis=1) == 0, 1] = 1.0
    value = cls(k=4).fit_score(X, Y)
    assert 0.0 <= value <= 1.0
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(40)
        assert cls(k=4).fit_score(X[order], Y[order]) == pytest.approx(value, abs=1e-12)
    assert cls(k=4).fit_score(X, X) == pytest.approx(1.0, abs=1e-12)
    E = np.eye(3)  # every other sample ties for the one place
    assert cls(k=1).fit_score(E, E) == pytest.approx(1.0, abs=1e-15)


def test_tied_weights_and_harmonic_mid_ranks():
    h = ranked_neighbours(np.eye(4), 2)  # three samples tie for two places: weights 2/3
    np.testing.assert_allclose(h.weights, 2 / 3)
    np.testing.assert_allclose(h.ranks, 2 / 1.5)  # places 1, 2: 2 / (1 + 1/2)
    # Jaccard with fractional weights: I = sum min(w) = 2 for X against itself, 2 / (4 - 2)
    assert JaccardKNN(k=2).fit_score(np.eye(4), np.eye(4)) == 1.0


def test_second_order_cosine_on_duplicated_samples():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(5, 4))
    X = np.repeat(base, 4, axis=0)  # each sample's 3 nearest are its copies, distance 0
    assert SecondOrderCosine(k=3).fit_score(X, X) == 1.0
    # a perturbed copy: X's distances to the union are all 0, the copy's are not
    Xn = X + 1e-3 * rng.normal(size=X.shape)
    assert SecondOrderCosine(k=3).fit_score(X, Xn) == 0.0


@pytest.mark.parametrize("cls", MEASURES)
def test_chunks_give_the_same_neighbour_lists_and_values(cls):
    rng = np.random.default_rng(6)
    X = np.round(rng.normal(size=(37, 3)) * 2)  # quantised: ties
    X[np.all(X == 0, axis=1)] = 1.0
    a, b = ranked_neighbours(X, 5), ranked_neighbours(X, 5, chunk_size=4)
    np.testing.assert_array_equal(a.keys, b.keys)
    np.testing.assert_array_equal(a.ranks, b.ranks)
    Y = rng.normal(size=(37, 9))
    assert cls(k=5)._finalize_fit_score(b, ranked_neighbours(Y, 5, "Y", chunk_size=5)) == \
        pytest.approx(cls(k=5).fit_score(X, Y), abs=1e-15)


@pytest.mark.parametrize("cls", MEASURES)
def test_dead_unit_fewer_stimuli_than_neurons_and_errors(cls):
    rng = np.random.default_rng(7)
    X = np.maximum(rng.normal(size=(15, 40)), 0)
    X[:, 3] = 0.0  # a dead unit changes no cosine similarity
    Y = rng.normal(size=(15, 30))
    v = cls(k=4).fit_score(X, Y)
    assert v == pytest.approx(cls(k=4).fit_score(np.delete(X, 3, axis=1), Y), abs=1e-12)
    X[2] = 0.0
    with pytest.raises(ValueError, match="row 2 of X is all zeros"):
        cls(k=4).fit_score(X, Y)
    with pytest.raises(ValueError, match="k=15 must be smaller"):
        cls(k=15).fit_score(Y, Y)


@pytest.mark.parametrize("cls", MEASURES)
def test_pairwise_prepares_each_representation_once(cls):
    rng = np.random.default_rng(8)
    reps = [rng.normal(size=(30, d)) for d in (4, 6, 5)]
    M = np.asarray(simmetrics.pairwise(cls(k=4), reps), dtype=float)
    for i in range(3):
        for j in range(3):
            assert M[i, j] == pytest.approx(cls(k=4).fit_score(reps[i], reps[j]), abs=1e-14)


def test_registered_names():
    for name, cls in [("jaccard_knn", JaccardKNN), ("rank_similarity", RankSimilarity),
                      ("second_order_cosine", SecondOrderCosine)]:
        assert name in simmetrics.available_metrics()
        assert isinstance(simmetrics.get_metric(name), cls)
