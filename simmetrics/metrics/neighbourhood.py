"""ReSi's nearest-neighbour measures: Jaccard, rank similarity, second-order cosine similarity.

Three local-neighbourhood measures in the form of Klabunde, Schumacher, Strohmaier, Lemmerich
(2023, "Similarity of Neural Network Models: A Survey of Functional and Representational
Measures", and the ReSi benchmark, ICLR 2025, mklabunde/resi): :class:`JaccardKNN`,
:class:`RankSimilarity` and :class:`SecondOrderCosine`. Each compares, sample by sample, the k
nearest other samples by cosine similarity in the two representations, and averages over the
samples. Like :class:`simmetrics.MutualKNN` (:mod:`simmetrics.metrics.knn`) they read only the
relations between the samples inside each representation, so X and Y may have different widths.

The neighbour lists (:func:`ranked_neighbours`) are computed once per representation, a chunk of
rows of the cosine-similarity matrix at a time (never the n x n matrix, never n x n x k), with
the tie rule of :class:`simmetrics.MutualKNN` extended to ranks:

- two cosine similarities of one sample tie when they differ by at most ``4 (d + 2) eps``;
- membership: with v the k-th largest similarity of sample i, the samples above ``v + tol``
  are neighbours with weight 1, and each of the t samples within ``tol`` of v shares the p
  places left, weight p / t (so the weights of a sample sum to k);
- ranks: the neighbours above the k-th-place group are sorted by similarity and cut into tie
  groups (consecutive values at most ``tol`` apart); a group filling places b + 1 .. b + g gets,
  for every member, the *harmonic mid-rank* ``g / (H(b + g) - H(b))`` (H the harmonic numbers),
  the rank r whose 1/r, summed over the group, is the sum of 1/q over its places; the
  k-th-place group fills places a + 1 .. k, rank ``p / (H(k) - H(a))``.

Without ties these are exactly ReSi's neighbour sets and ranks (1 .. k); with ties no order of
the samples decides anything, and a representation compared with itself (or a rotated,
rescaled copy) gives 1.
"""

import numpy as np
from scipy.special import digamma

from .._core.params import Integral, Interval
from .._core.registry import register
from .._core.validation import check_nonconstant
from ..base import Metric
from .knn import SMOOTH_ALTERNATIVES, KNeighbourValidation, NeighbourSearch, column_keys

__all__ = ["JaccardKNN", "RankSimilarity", "SecondOrderCosine", "ranked_neighbours"]

#: Cosine similarities between samples are unchanged by orthogonal maps of the neurons and by
#: multiplying a representation by a non-zero number; a translation changes them.
_INVARIANCES = frozenset({"orthogonal", "signed_permutation", "permutation", "isotropic_scaling"})

#: Similarity entries per chunk of rows (rows x n), about 32 MB per float64 array.
_CHUNK_ENTRIES = 2**22
#: Entries (pairs x d) of the unit rows gathered at once in the second-order pair step.
_PAIR_ENTRIES = 2**22


class RankedNeighbours:
    """Every sample's k nearest neighbours with weights and ranks (see the module docstring).

    ``keys`` (sorted int64, ``i n + j``: sample j is a neighbour of sample i), ``weights``
    (1, or p / t in a tie at the k-th place) and ``ranks`` (harmonic mid-ranks, 1 .. k without
    ties). ``search`` keeps the unit rows for the cosine distances of
    :class:`SecondOrderCosine`.
    """

    def __init__(self, n, k, keys, weights, ranks, search):
        self.n, self.k = n, k
        self.keys, self.weights, self.ranks = keys, weights, ranks
        self.search = search

    def distances(self, keys):
        """Cosine distances ``1 - cos(a_i, a_j)`` of the pairs ``keys`` (i n + j), clipped to
        [0, 2], exactly 0 for duplicated samples and within the tie tolerance of 0."""
        i, j = np.divmod(keys, self.n)
        s = self.search
        if s.which is not None:
            i, j = s.which[i], s.which[j]
        out = np.empty(keys.size)
        block = max(1, _PAIR_ENTRIES // s.distinct.shape[1])
        for lo in range(0, keys.size, block):
            hi = min(lo + block, keys.size)
            out[lo:hi] = 1.0 - np.einsum("ij,ij->i", s.distinct[i[lo:hi]], s.distinct[j[lo:hi]])
        out = np.clip(out, 0.0, 2.0)
        out[(out <= s.tol) | (i == j)] = 0.0
        return out


def _harmonic(x):
    """The harmonic number H(x) = psi(x + 1) + gamma, for real x >= 0 (H(0) = 0)."""
    return digamma(np.asarray(x, dtype=np.float64) + 1.0) + np.euler_gamma


def _chunk(S, rows, n, k, tol, H, columns=None):
    """Keys, weights and ranks of the samples ``rows`` from their similarities ``S`` (self at
    -inf; a chunk of :meth:`NeighbourSearch.candidate_chunks`, ``columns`` mapping a compact
    chunk's entries to samples); ``H`` holds H(0) .. H(k)."""
    rows_in_chunk, cols = S.shape
    kth = np.partition(S, cols - k, axis=1)[:, [cols - k]]
    above = S > kth + tol
    group = (S >= kth - tol) & ~above
    a = np.count_nonzero(above, axis=1)  # places above the k-th-place group (< k)
    t = np.count_nonzero(group, axis=1)
    p = k - a
    # the neighbours above the group: sorted by similarity, cut into chains of ties
    r_above, c_above = np.nonzero(above)
    vals = S[r_above, c_above]
    order = np.lexsort((-vals, r_above))
    r_above, c_above, vals = r_above[order], c_above[order], vals[order]
    first = np.ones(r_above.size, dtype=bool)
    first[1:] = (r_above[1:] != r_above[:-1]) | (vals[:-1] - vals[1:] > tol)
    row_start = np.concatenate(([0], np.cumsum(a)[:-1]))
    pos = np.arange(r_above.size) - row_start[r_above]  # 0-based place within the row
    gid = np.cumsum(first) - 1
    g_begin = pos[first]  # places before each group
    g_size = np.bincount(gid, minlength=g_begin.size)
    g_rank = g_size / (H[g_begin + g_size] - H[g_begin])
    # the k-th-place group: p places among t samples
    r_group, c_group = np.nonzero(group)
    rank_group = p / (H[k] - H[a])
    keys = np.concatenate((column_keys(rows, r_above, c_above, n, columns),
                           column_keys(rows, r_group, c_group, n, columns)))
    weights = np.concatenate((np.ones(r_above.size), (p / t)[r_group]))
    ranks = np.concatenate((g_rank[gid], rank_group[r_group]))
    return keys, weights, ranks


def ranked_neighbours(X, k, name="X", chunk_size=None):
    """The k nearest neighbours of every sample of ``X`` by cosine similarity, with the tie
    rule of the module docstring, ``chunk_size`` rows at a time (None: about 4 million
    similarities per chunk). An all-zero sample is an error (its cosine similarities are
    undefined), and so is a representation whose samples are all equal (every neuron
    constant: every sample ties with every other, there is no neighbourhood).

    Returns
    -------
    RankedNeighbours

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.5, 0.7]])
    >>> h = ranked_neighbours(X, 2)  # neighbours of each sample (by index) and their ranks
    >>> np.divmod(h.keys, 4)[1].reshape(4, 2).tolist(), h.ranks.reshape(4, 2).tolist()
    ([[1, 3], [0, 3], [1, 3], [1, 2]], [[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [2.0, 1.0]])
    >>> h = ranked_neighbours(np.eye(3), 1)  # two samples tie for each place: weight 1/2
    >>> h.weights.tolist(), h.ranks.tolist()
    ([0.5, 0.5, 0.5, 0.5, 0.5, 0.5], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    """
    n = X.shape[0]
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_ENTRIES // n)
    check_nonconstant(X, name)  # identical samples: no neighbourhood to compare
    search = NeighbourSearch(X, name)
    H = _harmonic(np.arange(k + 1))
    parts = [_chunk(S, rows, n, k, search.tol, H, columns)
             for rows, S, columns in search.candidate_chunks(k, chunk_size)]
    keys, weights, ranks = (np.concatenate(x) for x in zip(*parts))
    order = np.argsort(keys)  # the chunks come in no particular order of samples
    keys, weights, ranks = keys[order], weights[order], ranks[order]
    return RankedNeighbours(n, k, keys, weights, ranks, search)




class _NeighbourhoodMeasure(KNeighbourValidation, Metric):
    """What the three measures share: k, validation that names k, the memory preflight, and
    the neighbour lists prepared once per representation."""

    kind = "similarity"
    bounds = (0.0, 1.0)
    is_metric = False
    symmetric = True
    invariances = _INVARIANCES
    same_width = False
    _parameter_constraints = {"k": [Interval(Integral, 1, None)]}

    def __init__(self, k=10, layout=None):
        self.k = k
        self.layout = layout

    # measured like MutualKNN's: a search holds about 5 similarity chunks and 3 copies of the
    # input; a state holds its unit rows and about n k keys, weights and ranks (more where a
    # tie at the k-th place is large); the pair step about 12 n k numbers
    def _memory_bytes(self, n, d, count, jobs=1):
        """Peak bytes with ``count`` neighbour lists held and ``jobs`` searches running."""
        rows = min(n, max(1, _CHUNK_ENTRIES // n))
        k = int(self.k)
        nbytes = 8 * (jobs * (5 * rows * n + 3 * n * d) + count * (n * d + 3 * n * k)
                      + 12 * n * k + 2 * _PAIR_ENTRIES)
        return nbytes, (f"{jobs * 5} float64 {rows:,} x {n:,} chunks of similarities at once "
                        "and the neighbour lists")

    def _partial_fit(self, A, name):
        return ranked_neighbours(A, int(self.k), name)

    def _score(self, X, Y):
        return self._finalize_fit_score(self._partial_fit(X, "X"), self._partial_fit(Y, "Y"))


def _shared(a, b):
    """Per sample: the shared neighbours of two :class:`RankedNeighbours` (their keys' positions
    in a and b) and the shared weight ``sum_j min(w_a(i, j), w_b(i, j))``."""
    _, ia, ib = np.intersect1d(a.keys, b.keys, assume_unique=True, return_indices=True)
    mins = np.minimum(a.weights[ia], b.weights[ib])
    per_sample = np.bincount(a.keys[ia] // a.n, weights=mins, minlength=a.n)
    return ia, ib, mins, per_sample


_REFERENCE = ("as in Klabunde, Schumacher, Strohmaier, Lemmerich 2025, ACM Computing Surveys, "
              "and ReSi (Klabunde et al. 2025, ICLR)")


@register("jaccard_knn")
class JaccardKNN(_NeighbourhoodMeasure):
    """Jaccard similarity of k-nearest-neighbour sets (Schumacher, Wolf, Ritzert, Lemmerich,
    Grohe, Strohmaier 2021, "The Effects of Randomness on the Stability of Node Embeddings";
    Wang et al. 2020; in the survey of Klabunde et al. 2025, ACM Computing Surveys; ReSi's
    ``jaccard_similarity``).

    ::

        J(X, Y) = 1/n  sum_i  |N_X(i) & N_Y(i)| / |N_X(i) | N_Y(i)|

    with N_X(i) the k nearest other samples of sample i by cosine similarity (ReSi's default
    ``inner="cosine"``, self dropped). Ties at the k-th place count fractionally (module
    docstring): the intersection is ``I_i = sum_j min(w_X, w_Y)`` (as in
    :class:`simmetrics.MutualKNN`) and the union ``sum_j max(w_X, w_Y) = 2k - I_i``, so
    ``J = mean_i I_i / (2k - I_i)``, exactly ReSi's value without ties. Where
    :class:`simmetrics.MutualKNN` divides the overlap by k, this divides it by the union.

    A **similarity** in [0, 1], 1 when every sample has the same neighbours in X and Y. Not a
    metric. Invariant to orthogonal maps and isotropic scaling, not to translation. An
    all-zero sample, or a representation whose samples are all equal, is an error. Memory
    O(n k) besides a chunk of similarities (checked against the memory budget); time
    O(n^2 (d_x + d_y)).

    Parameters
    ----------
    k : int, default 10
        Number of neighbours; needs n > k samples.
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 6))
    >>> JaccardKNN(k=5).fit_score(X, 3 * X[:, ::-1])
    1.0
    """

    _gradient_note = ("its value is a function of the k-nearest-neighbour sets only, which "
                      "depend on the order of the cosine similarities: piecewise constant in the "
                      "inputs (gradient 0 almost everywhere, undefined where a set changes); "
                      + SMOOTH_ALTERNATIVES)
    reference = ("Schumacher, Wolf, Ritzert, Lemmerich, Grohe, Strohmaier 2021, The Effects of "
                 "Randomness on the Stability of Node Embeddings; " + _REFERENCE)

    def _finalize_fit_score(self, a, b):
        _, _, _, inter = _shared(a, b)
        inter = np.minimum(inter, a.k)  # at most k; tie shares p / t may round above it
        return float(np.mean(inter / (2 * a.k - inter)))


@register("rank_similarity")
class RankSimilarity(_NeighbourhoodMeasure):
    """Rank similarity of k-nearest-neighbour lists (Wang, Rao, Guo, Wang, Liu, Guan 2020,
    "Towards Understanding the Instability of Network Embedding", IEEE TKDE; in the survey of
    Klabunde et al. 2025; ReSi's ``rank_similarity``).

    ::

        RS(X, Y) = 1/n  sum_i  (1 / H(K_i))  sum_{j in N_X(i) & N_Y(i)}
                               2 / ((1 + |r_X(i, j) - r_Y(i, j)|) (r_X(i, j) + r_Y(i, j)))

    with r_X(i, j) the rank (1 = nearest) of j among the k nearest other samples of i by
    cosine similarity, K_i the number of shared neighbours and H(K) = sum_{q <= K} 1/q, the
    value when the shared neighbours hold places 1 .. K in both lists (a sample sharing none
    scores 0). ReSi's convention (cosine neighbours, self dropped). Ties (module docstring):
    a shared neighbour counts with weight ``min(w_X, w_Y)``, K_i is the shared weight, H is
    extended to real K by H(K) = psi(K + 1) + gamma, and ranks are harmonic mid-ranks; without
    ties this is ReSi's value, and X against itself gives 1 with or without ties.

    A **similarity** in [0, 1]; not a metric. Invariant to orthogonal maps and isotropic
    scaling, not to translation. An all-zero sample, or a representation whose samples are all
    equal, is an error. Memory O(n k) besides a
    chunk of similarities; time O(n^2 (d_x + d_y)).

    Parameters
    ----------
    k : int, default 10
        Number of neighbours; needs n > k samples.
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 6))
    >>> RankSimilarity(k=5).fit_score(X, X)
    1.0
    """

    _gradient_note = ("its value is a function of the k-nearest-neighbour lists and the ranks in "
                      "them only, which depend on the order of the cosine similarities: "
                      "piecewise constant in the inputs (gradient 0 almost everywhere, undefined "
                      "where a list changes); "
                      + SMOOTH_ALTERNATIVES)
    reference = ("Wang, Rao, Guo, Wang, Liu, Guan 2020, Towards Understanding the Instability of "
                 "Network Embedding, IEEE TKDE; " + _REFERENCE)

    def _finalize_fit_score(self, a, b):
        ia, ib, mins, shared = _shared(a, b)
        ra, rb = a.ranks[ia], b.ranks[ib]
        terms = mins * 2.0 / ((1.0 + np.abs(ra - rb)) * (ra + rb))
        total = np.bincount(a.keys[ia] // a.n, weights=terms, minlength=a.n)
        has = shared > 0
        per_sample = np.zeros(a.n)
        per_sample[has] = total[has] / _harmonic(shared[has])
        # a shared weight of k with equal ranks gives 1 up to rounding; never above it
        return float(np.mean(np.minimum(per_sample, 1.0)))


@register("second_order_cosine")
class SecondOrderCosine(_NeighbourhoodMeasure):
    """Second-order cosine similarity (Hamilton, Leskovec, Jurafsky 2016, "Cultural Shift or
    Linguistic Drift?", EMNLP; Klabunde et al. 2025; ReSi's
    ``second_order_cosine_similarity``).

    ::

        SOC(X, Y) = 1/n  sum_i  cos( (d_X(i, j))_{j in U_i},  (d_Y(i, j))_{j in U_i} )

    with U_i = N_X(i) | N_Y(i) the union of the k nearest other samples of i (cosine
    neighbours, self dropped) and d_X(i, j) = 1 - cos(x_i, x_j) the cosine distance (clipped
    to [0, 2], as scikit-learn's), so each sample compares its distances to the union of its
    two neighbourhoods in X and in Y. ReSi's convention. Ties (module docstring): j enters the
    union with weight ``max(w_X(i, j), w_Y(i, j))``, a weighted cosine
    ``sum m a b / sqrt(sum m a^2 sum m b^2)``; without ties this is ReSi's value. Distances
    within the tie tolerance of 0 (duplicated samples) are 0, and where every distance of a
    sample is 0 on one side its term is 1 if so on the other side too and 0 otherwise (ReSi
    returns NaN there).

    A **similarity** in [0, 1] (distances are non-negative); not a metric. Invariant to
    orthogonal maps and isotropic scaling, not to translation. An all-zero sample, or a
    representation whose samples are all equal, is an error. Memory O(n (k + d)) besides a
    chunk of similarities; time O(n^2 (d_x + d_y)).

    Parameters
    ----------
    k : int, default 10
        Number of neighbours; needs n > k samples.
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 6))
    >>> SecondOrderCosine(k=5).fit_score(X, X @ np.linalg.qr(rng.normal(size=(6, 6)))[0])
    1.0
    """

    _gradient_note = ("its value is smooth in the cosine distances only while the unions of the "
                      "k-nearest-neighbour sets stay fixed, and jumps where a set changes (the "
                      "sets are piecewise constant in the inputs); no gradient formula is given "
                      "for it; "
                      + SMOOTH_ALTERNATIVES)
    reference = ("Hamilton, Leskovec, Jurafsky 2016, Cultural Shift or Linguistic Drift? Comparing "
                 "Two Computational Measures of Semantic Change, EMNLP; " + _REFERENCE)

    def _finalize_fit_score(self, a, b):
        keys = np.union1d(a.keys, b.keys)
        m = np.zeros(keys.size)
        for h in (a, b):
            at = np.searchsorted(keys, h.keys)
            m[at] = np.maximum(m[at], h.weights)
        da, db = a.distances(keys), b.distances(keys)
        rows = keys // a.n

        def per_sample(v):
            return np.bincount(rows, weights=v, minlength=a.n)

        num, saa, sbb = per_sample(m * da * db), per_sample(m * da * da), per_sample(m * db * db)
        za, zb = saa == 0.0, sbb == 0.0
        value = np.where(za & zb, 1.0, 0.0)
        both = ~za & ~zb
        value[both] = np.minimum(num[both] / np.sqrt(saa[both] * sbb[both]), 1.0)
        return float(np.mean(value))
