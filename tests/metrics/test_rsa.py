"""RSA and mutual kNN against rsatoolbox, scikit-learn, the reference values and identities."""

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

import simmetrics
from simmetrics import RSA, MutualKNN
from simmetrics.metrics.knn import _NeighbourSearch, mutual_knn
from simmetrics.metrics.rsa import compare_rdms, rdm

RDMS = ["correlation", "euclidean"]
COMPARES = ["spearman", "pearson", "kendall"]
RSATOOLBOX_COMPARE = {"spearman": "spearman", "pearson": "corr", "kendall": "kendall"}


def _pair(data, key):
    a, b = key.split("_")
    return data[a], data[b]


def _orthogonal(rng, d):
    Q, R = np.linalg.qr(rng.normal(size=(d, d)))
    return Q * np.sign(np.diag(R))


def _signed_permutation(rng, d):
    return np.eye(d)[rng.permutation(d)] * rng.choice([-1.0, 1.0], size=d)


def _related(rng, n=60, dx=12, dy=9):
    X = rng.normal(size=(n, dx))
    Y = np.tanh(X @ rng.normal(size=(dx, dy)) / 2) + 0.3 * rng.normal(size=(n, dy))
    return X, Y


# -- RSA: reference values (tests/data/reference, computed with rsatoolbox 0.3.2) ------------
@pytest.mark.parametrize("key", ["X_Y", "X_Z"])
@pytest.mark.parametrize("rdm_method", RDMS)
@pytest.mark.parametrize("compare", COMPARES)
def test_rsa_matches_seed7_rsatoolbox_values(seed7, key, rdm_method, compare):
    # seed7 values.json: rsa_{correlation,euclidean}_{spearman,corr,kendall}, from rsatoolbox
    # calc_rdm + compare.
    X, Y = _pair(seed7, key)
    ref = seed7["values"][key][f"rsa_{rdm_method}_{RSATOOLBOX_COMPARE[compare]}"]
    assert RSA(rdm=rdm_method, compare=compare).fit_score(X, Y) == pytest.approx(ref, abs=1e-10)


SEED0_KEYS = {
    ("correlation", "spearman"): "rsatoolbox_corr_rdm_spearman",
    ("correlation", "pearson"): "rsatoolbox_corr_rdm_corr",
    ("euclidean", "spearman"): "rsatoolbox_euclid_rdm_spearman",
    # rsatoolbox's 'euclidean' RDM is the squared distance (divided by the width)
    ("euclidean", "pearson"): "rsatoolbox_euclid_rdm_corr_SQUARED_DIST",
}


@pytest.mark.parametrize("key", ["X_Y", "X_Z", "X_W"])
@pytest.mark.parametrize("params", list(SEED0_KEYS))
def test_rsa_matches_seed0_rsatoolbox_values(seed0, key, params):
    # seed0 reference_values.json, results[key]["rsa"]: rsatoolbox 0.3.2 values.
    X, Y = _pair(seed0, key)
    ref = seed0["values"][key]["rsa"][SEED0_KEYS[params]]
    rdm_method, compare = params
    assert RSA(rdm=rdm_method, compare=compare).fit_score(X, Y) == pytest.approx(ref, abs=1e-10)


# -- RSA: rsatoolbox installed from PyPI, run here ------------------------------------------
def _rsatoolbox_rsa(X, Y, rdm_method, compare):
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm
    from rsatoolbox.rdm import compare as rsa_compare

    rx = calc_rdm(Dataset(X), method=rdm_method)
    ry = calc_rdm(Dataset(Y), method=rdm_method)
    return float(rsa_compare(rx, ry, method=compare)[0, 0]), rx.get_vectors()[0]


@pytest.mark.parametrize("rdm_method", RDMS)
@pytest.mark.parametrize("compare", COMPARES)
def test_rsa_equals_rsatoolbox(rng, rdm_method, compare):
    X, Y = _related(rng)
    expected, rx = _rsatoolbox_rsa(X, Y, rdm_method, RSATOOLBOX_COMPARE[compare])
    assert rdm(X, rdm_method) == pytest.approx(rx, abs=1e-12)
    value = RSA(rdm=rdm_method, compare=compare).fit_score(X, Y)
    assert value == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("compare", COMPARES)
def test_rsa_with_tied_dissimilarities_equals_rsatoolbox(rng, compare):
    # Small integer activations give many equal squared distances, where the tie conventions
    # (average ranks; tau-b, not tau-a) matter.
    X = rng.integers(0, 3, size=(30, 3)).astype(float)
    Y = rng.integers(0, 3, size=(30, 4)).astype(float)
    rx = rdm(X, "euclidean")
    assert np.unique(rx).size < rx.size / 10
    expected, _ = _rsatoolbox_rsa(X, Y, "euclidean", RSATOOLBOX_COMPARE[compare])
    value = RSA(rdm="euclidean", compare=compare).fit_score(X, Y)
    assert value == pytest.approx(expected, abs=1e-12)
    if compare == "kendall":
        tau_a, _ = _rsatoolbox_rsa(X, Y, "euclidean", "tau-a")
        assert abs(value - tau_a) > 1e-3  # so the test tells tau-b from tau-a


def test_compare_rdms_equals_scipy(rng):
    # scipy.stats correlation functions on the same vectors.
    from scipy import stats

    a, b = rng.normal(size=200), rng.normal(size=200) + np.arange(200) / 50
    assert compare_rdms(a, b, "spearman") == pytest.approx(stats.spearmanr(a, b)[0], abs=1e-14)
    assert compare_rdms(a, b, "pearson") == pytest.approx(stats.pearsonr(a, b)[0], abs=1e-14)
    assert compare_rdms(a, b, "kendall") == pytest.approx(stats.kendalltau(a, b)[0], abs=1e-14)


def test_rdm_closed_forms():
    # correlation distance between [0,1,2] and [2,1,0] is 1 - (-1); squared distance / width.
    X = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0], [0.0, 2.0, 4.0]])
    np.testing.assert_allclose(rdm(X, "correlation"), [2.0, 0.0, 2.0], atol=1e-15)
    np.testing.assert_allclose(rdm(X, "euclidean"), [8 / 3, 5 / 3, 21 / 3], atol=1e-15)


# -- RSA: identities and invariances ------------------------------------------------------
@pytest.mark.parametrize("rdm_method", RDMS)
@pytest.mark.parametrize("compare", COMPARES)
def test_rsa_of_a_representation_with_itself_is_one(rng, rdm_method, compare):
    X = rng.normal(size=(40, 5))
    assert RSA(rdm=rdm_method, compare=compare).fit_score(X, X) == pytest.approx(1.0, abs=1e-14)


@pytest.mark.parametrize("compare", COMPARES)
def test_euclidean_rsa_invariances(rng, compare):
    X, Y = _related(rng)
    d = X.shape[1]
    metric = RSA(rdm="euclidean", compare=compare)
    base = metric.fit_score(X, Y)
    transformed = {
        "orthogonal": X @ _orthogonal(rng, d),
        "signed_permutation": X @ _signed_permutation(rng, d),
        "permutation": X[:, rng.permutation(d)],
        "isotropic_scaling": 0.37 * X,
        "translation": X + rng.normal(size=d) * 5,
    }
    assert set(transformed) == set(metric.invariances)
    for group, Xg in transformed.items():
        assert metric.fit_score(Xg, Y) == pytest.approx(base, abs=1e-10), group
        assert metric.fit_score(Y, Xg) == pytest.approx(base, abs=1e-10), group
    # not declared: rescaling neurons separately (a positive scaled permutation) changes it
    scaled = X * np.exp(rng.normal(size=d))
    assert abs(metric.fit_score(scaled, Y) - base) > 1e-3


@pytest.mark.parametrize("compare", COMPARES)
def test_correlation_rsa_invariances(rng, compare):
    X, Y = _related(rng)
    d = X.shape[1]
    metric = RSA(rdm="correlation", compare=compare)
    assert metric.invariances == {"permutation", "isotropic_scaling"}
    base = metric.fit_score(X, Y)
    for Xg in (X[:, rng.permutation(d)], 4.2 * X, -0.5 * X, X + 3.0):
        # the last one: adding the same constant to every activation leaves each centred
        # stimulus pattern unchanged; it is not a general translation
        assert metric.fit_score(Xg, Y) == pytest.approx(base, abs=1e-10)
    # not declared, and measured to change: each stimulus pattern is centred across neurons,
    # which a rotation, a sign flip of some neurons or a translation by a vector changes
    for Xg in (X @ _orthogonal(rng, d), X @ _signed_permutation(rng, d), X + rng.normal(size=d)):
        assert abs(metric.fit_score(Xg, Y) - base) > 1e-3


def test_rsa_survives_extreme_magnitudes(rng):
    X, Y = _related(rng)
    for rdm_method in RDMS:
        metric = RSA(rdm=rdm_method, compare="pearson")
        base = metric.fit_score(X, Y)
        assert metric.fit_score(1e200 * X, 1e-200 * Y) == pytest.approx(base, abs=1e-10)


def test_rsa_torch_input_equals_numpy(rng):
    X, Y = _related(rng)
    value = RSA().fit_score(torch.from_numpy(X).float(), torch.from_numpy(Y).float())
    assert value == pytest.approx(RSA().fit_score(X.astype(np.float32), Y.astype(np.float32)))


# -- RSA: errors --------------------------------------------------------------------------
def test_rsa_zero_variance_stimulus_pattern(rng):
    X, Y = _related(rng)
    Y[7] = 2.5
    with pytest.raises(ValueError, match=r"row 7 of Y \(a stimulus pattern\) has zero variance"):
        RSA().fit_score(X, Y)
    # the Euclidean RDM is defined for it
    assert -1 <= RSA(rdm="euclidean").fit_score(X, Y) <= 1


def test_rsa_constant_rdm(rng):
    X = rng.normal(size=(10, 4))
    with pytest.raises(ValueError, match="the RDM of X is constant"):
        RSA(rdm="euclidean").fit_score(np.ones((10, 4)), X)
    # a rotated regular simplex: all distances equal, up to rounding
    simplex = np.eye(6) @ _orthogonal(rng, 6)
    with pytest.raises(ValueError, match="the RDM of Y is constant .* up to rounding"):
        RSA(rdm="euclidean", compare="kendall").fit_score(X[:6], simplex)
    # stimulus patterns that are all perfectly correlated: a correlation RDM of rounding noise
    line = rng.uniform(0.5, 2.0, size=(10, 1)) * rng.normal(size=4) + rng.normal(size=(10, 1))
    assert np.ptp(rdm(line, "correlation")) > 0
    for compare in COMPARES:
        with pytest.raises(ValueError, match="the RDM of X is constant .* up to rounding"):
            RSA(compare=compare).fit_score(line, X)


def test_rsa_bad_parameters_and_too_few_stimuli(rng):
    X = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match="parameter 'rdm' must be one of"):
        RSA(rdm="cosine").fit_score(X, X)
    with pytest.raises(ValueError, match="'compare' must be one of .*rsatoolbox's 'corr' is 'pearson'"):
        RSA(compare="corr").fit_score(X, X)
    with pytest.raises(ValueError, match="parameter 'rdm' must be one of"):
        RSA(rdm="crossnobis_cv").fit(X, X)
    with pytest.raises(ValueError, match="'compare' must be one of .*'rho-a' is 'rho_a'"):
        RSA(compare="rho-a").fit_score(X, X)
    with pytest.raises(ValueError, match="X has 2 samples, but this estimator needs at least 3"):
        RSA().fit_score(X[:2], X[:2])
    assert RSA(rdm="cosine").invariances == frozenset()


def test_registry_builds_rsa():
    metric = simmetrics.get_metric("rsa", rdm="euclidean", compare="kendall")
    assert isinstance(metric, RSA) and metric.get_params()["compare"] == "kendall"
    assert RSA.invariances == {"permutation", "isotropic_scaling"}  # the default rdm


# -- mutual kNN: scikit-learn's neighbour search, run here ----------------------------------
def _sklearn_knn_sets(X, k):
    # Huh et al.'s convention: cosine similarity (L2-normalised features, inner product);
    # the query point itself is dropped from its own neighbours.
    nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(X)
    _, idx = nn.kneighbors(X)
    return [set([j for j in row if j != i][:k]) for i, row in enumerate(idx)]


@pytest.mark.parametrize("k", [1, 5, 12])
def test_mutual_knn_equals_sklearn_cosine_neighbours(rng, k):
    X, Y = _related(rng, n=150)
    nx, ny = _sklearn_knn_sets(X, k), _sklearn_knn_sets(Y, k)
    expected = np.mean([len(a & b) / k for a, b in zip(nx, ny)])
    assert MutualKNN(k=k).fit_score(X, Y) == pytest.approx(expected, abs=1e-12)
    # the raw-feature Euclidean neighbours (no normalisation) give another number here
    scales = np.exp(rng.normal(size=(150, 1)))
    eucl = NearestNeighbors(n_neighbors=k + 1).fit(X * scales).kneighbors(X * scales)[1]
    raw = [set([j for j in row if j != i][:k]) for i, row in enumerate(eucl)]
    raw_score = np.mean([len(a & b) / k for a, b in zip(raw, ny)])
    assert abs(MutualKNN(k=k).fit_score(X * scales, Y) - raw_score) > 1e-3


def test_mutual_knn_chunks_agree(rng):
    X, Y = _related(rng, n=97)
    whole = mutual_knn(X, Y, k=6, chunk_size=97)
    # exact: the value is a count of shared neighbours over n k, and the neighbour sets are
    # integers (generic data: no two similarities within rounding of each other)
    for chunk in (1, 7, 50, None):
        assert mutual_knn(X, Y, k=6, chunk_size=chunk) == whole


def _fractional_knn_weights(S, k):
    # independent tie rule, on similarities whose ties are exact: the values above the k-th
    # largest v weigh 1, each of the t values equal to v weighs (places left) / t
    S = S.copy()
    np.fill_diagonal(S, -np.inf)
    W = np.zeros_like(S)
    for i, row in enumerate(S):
        v = np.sort(row)[-k]
        W[i, row > v] = 1.0
        W[i, row == v] = (k - np.count_nonzero(row > v)) / np.count_nonzero(row == v)
    return W


def _fractional_mutual_knn(Sx, Sy, k):
    # the overlap of two weighted neighbourhoods: sum_j min(w_x, w_y), over n k
    return np.minimum(_fractional_knn_weights(Sx, k), _fractional_knn_weights(Sy, k)).sum() / (
        len(Sx) * k)


def test_mutual_knn_counts_exact_ties_fractionally(rng):
    # The 24 vertices of the 24-cell (permutations of (+-1, +-1, 0, 0)) over sqrt 2, scaled by
    # 1/2: unit vectors whose inner products are exact dyadic numbers, so every tie is exact.
    # Each vertex has 8 neighbours at cosine 1/2: k = 3 keeps only some of them.
    verts = []
    for i in range(4):
        for j in range(i + 1, 4):
            for si in (-1, 1):
                for sj in (-1, 1):
                    v = np.zeros(4)
                    v[i], v[j] = si, sj
                    verts.append(v)
    X = np.array(verts) * 2.0  # norms 2 sqrt 2; similarities exactly 0, +-1/2, +-1
    Y = X[rng.permutation(len(X))]
    k = 3
    unit_x, unit_y = X / np.sqrt(8), Y / np.sqrt(8)
    expected = _fractional_mutual_knn(unit_x @ unit_x.T, unit_y @ unit_y.T, k)
    assert MutualKNN(k=k).fit_score(X, Y) == pytest.approx(expected, abs=1e-15)
    # the same answer whichever way the rows are chunked, and whatever order the samples have
    assert mutual_knn(X, Y, k, chunk_size=5) == pytest.approx(expected, abs=1e-15)
    order = rng.permutation(len(X))
    assert MutualKNN(k=k).fit_score(X[order], Y[order]) == pytest.approx(expected, abs=1e-15)


def test_mutual_knn_duplicated_samples_tie_exactly(rng):
    # duplicates (and power-of-two multiples, which normalise to the same row) must tie;
    # the expected value counts ties fractionally on similarities rounded to 12 digits, where
    # the only ties in random data are the duplicates.
    X = rng.normal(size=(120, 7))
    X[[5, 40, 77, 101]] = X[3] * np.array([[1.0], [2.0], [0.5], [1.0]])
    X[[60, 61]] = X[10]
    Y = X + 0.2 * rng.normal(size=X.shape)
    Y[[5, 40, 77, 110]] = Y[3] * 4.0  # tied groups that differ from X's, so the rule matters
    Y[[8, 9, 90]] = Y[100]
    k = 4

    def rounded(A):
        U = A / np.linalg.norm(A, axis=1, keepdims=True)
        return np.round(U @ U.T, 12)

    expected = _fractional_mutual_knn(rounded(X), rounded(Y), k)
    assert MutualKNN(k=k).fit_score(X, Y) == pytest.approx(expected, abs=1e-15)


def test_duplicated_samples_get_bitwise_equal_similarities():
    # A BLAS product may round the same dot product differently in different columns (edge
    # kernels; seen here for a 7-row chunk against 513 columns), which would break exact ties
    # by rounding instead of by index. The search computes each distinct row once.
    X = np.random.default_rng(0).normal(size=(513, 129))
    dup = [0, 256, 512]
    X[dup] = X[0]
    search = _NeighbourSearch(X, "X")
    for start in range(0, 513, 7):
        rows = np.arange(start, min(start + 7, 513))
        keep = ~np.isin(rows, dup)
        S = search.similarities(rows)[keep]
        assert np.array_equal(S[:, 0], S[:, 256]) and np.array_equal(S[:, 0], S[:, 512])


# -- mutual kNN: identities and invariances --------------------------------------------------
def test_mutual_knn_identities(rng):
    X, Y = _related(rng, n=80)
    # exact: the value is a count of shared neighbours over n k (X, X: the same neighbour sets,
    # k = n - 1: all of them), and the count is symmetric
    assert MutualKNN(k=7).fit_score(X, X) == 1.0
    # symmetric in X and Y
    assert MutualKNN(k=7).fit_score(X, Y) == MutualKNN(k=7).fit_score(Y, X)
    # k = n - 1: every other sample is a neighbour in both representations
    assert MutualKNN(k=79).fit_score(X, rng.normal(size=(80, 3))) == 1.0
    # independent representations: the overlap is hypergeometric with mean k / (n - 1)
    scores = [
        MutualKNN(k=10).fit_score(rng.normal(size=(100, 5)), rng.normal(size=(100, 5)))
        for _ in range(20)
    ]
    assert np.mean(scores) == pytest.approx(10 / 99, abs=0.01)


def test_mutual_knn_invariances(rng):
    X, Y = _related(rng, n=150)
    d = X.shape[1]
    metric = MutualKNN(k=8)
    base = metric.fit_score(X, Y)
    transformed = {
        "orthogonal": X @ _orthogonal(rng, d),
        "signed_permutation": X @ _signed_permutation(rng, d),
        "permutation": X[:, rng.permutation(d)],
        "isotropic_scaling": 0.37 * X,
    }
    assert set(transformed) == set(metric.invariances)
    for group, Xg in transformed.items():
        assert metric.fit_score(Xg, Y) == pytest.approx(base, abs=1e-10), group
        assert metric.fit_score(Y, Xg) == pytest.approx(base, abs=1e-10), group
    assert metric.fit_score(-3.0 * X, Y) == pytest.approx(base, abs=1e-10)
    # not declared: no centring, so a translation changes the neighbours; so does rescaling
    # the neurons separately
    assert abs(metric.fit_score(X + 2.0 * rng.normal(size=d), Y) - base) > 1e-3
    assert abs(metric.fit_score(X * np.exp(rng.normal(size=d)), Y) - base) > 1e-3


def test_mutual_knn_torch_and_layout(rng):
    H1 = rng.normal(size=(20, 3, 2, 2))
    H2 = H1 + 0.1 * rng.normal(size=H1.shape)
    flat = MutualKNN(k=5).fit_score(H1.reshape(20, -1), H2.reshape(20, -1))
    # same code, same input: the layout gives these very matrices
    assert MutualKNN(k=5, layout="flatten").fit_score(torch.from_numpy(H1), H2) == flat


# -- mutual kNN: errors --------------------------------------------------------------------
def test_mutual_knn_k_must_be_smaller_than_n(rng):
    X = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match="k=10 must be smaller than the number of samples"):
        MutualKNN().fit_score(X, X)
    with pytest.raises(ValueError, match="k=10 must be smaller than the number of samples"):
        MutualKNN().fit(X, X)
    assert MutualKNN(k=9).min_samples == 10 and MutualKNN.min_samples == 11
    assert MutualKNN(k=9).fit_score(X, X) == 1.0


@pytest.mark.parametrize("k", [0, -3, 2.5, True, "5", None])
def test_mutual_knn_bad_k(rng, k):
    X = rng.normal(size=(10, 3))
    # 0 and -3 are out of range (ValueError); 2.5, True, "5" and None are not ints (TypeError)
    with pytest.raises((ValueError, TypeError), match=r"parameter 'k' must be an int in \[1, inf\)"):
        MutualKNN(k=k).fit_score(X, X)
    assert MutualKNN(k=k).min_samples == 2


def test_mutual_knn_zero_sample_is_an_error(rng):
    X = rng.normal(size=(20, 3))
    Y = X.copy()
    Y[[3, 11]] = 0.0
    with pytest.raises(ValueError, match=r"row 3 of Y is all zeros \(2 such rows\)"):
        MutualKNN(k=3).fit_score(X, Y)


def test_registry_builds_mutual_knn():
    assert isinstance(simmetrics.get_metric("mutual_knn", k=3), MutualKNN)
    assert simmetrics.get_metric("mknn").k == 10
    assert MutualKNN().kind == "similarity" and MutualKNN().bounds == (0.0, 1.0)
