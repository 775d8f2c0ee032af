"""Ordered neighbour lists: platonic-rep's kNN measures that read each sample's k nearest
neighbours as a ranked list.

Huh, Cheung, Wang, Isola (2024, "The Platonic Representation Hypothesis", ICML) compare two
representations of the same samples through the k nearest neighbours of every sample.
:class:`simmetrics.MutualKNN` (:mod:`simmetrics.metrics.knn`) counts the shared neighbours;
the measures here, from the paper's code (minyoungg/platonic-rep, ``metrics.py``), read more:
:class:`CycleKNN` (does a neighbour in Y lead back through X?), :class:`LCSKNN` (the longest
common subsequence of the two ranked lists) and :class:`EditDistanceKNN` (their Levenshtein
distance). The similarities come from :class:`simmetrics.metrics.knn.NeighbourSearch` (cosine
or raw inner products, duplicated samples tie exactly), a block at a time: memory
O(n k) plus the ties at the k-th place, never an n x n or n x n x k array.

Ties. Two similarities of sample i tie when they differ by at most the tolerance of
:class:`simmetrics.MutualKNN` (:func:`simmetrics.metrics.knn.tie_tolerance`, ``4 (d + 2) eps``,
times ``||x_i|| max_j ||x_j||`` for inner products), so a rotated, permuted or rescaled copy of
binary or quantised data ranks as the original. The candidates of sample i are the samples
whose similarity is at least the k-th largest value v minus the tolerance; sorted by
decreasing similarity they fall into *blocks* (a new block starts where the next value is
more than the tolerance below). platonic-rep leaves ties to an unstable ``argsort``; here no
rule depends on the order of the samples:

- :class:`CycleKNN` is the **expected** value of platonic-rep's definition when each tie at
  the k-th place is broken uniformly at random (independently per sample and representation),
  computed exactly: a sample above the tie is a neighbour (probability 1), each of the t
  samples tied at the k-th place with p places left is one with probability p / t (MutualKNN's
  fractional weights), and the probability that no Y-neighbour of i has i among its
  X-neighbours is an average over the p-subsets of the tie (an elementary symmetric mean).
- :class:`LCSKNN` and :class:`EditDistanceKNN` need one ordered list per sample. The list of i
  in X orders the candidates by their block in X; within a block, by their block in Y (the
  candidates that are not among Y's last), and only then by sample index. Y's list is built the
  same way with the roles swapped. The samples that an index orders are tied for i in both
  representations (the same block in X and in Y), so each such class is contiguous and in index
  order in both lists, and both lists hold a prefix of it: reordering the samples renames the
  members of each class alike in the two lists, and the LCS and the Levenshtein distance of
  two sequences do not change when one injective renaming is applied to both. So the value
  does not depend on the sample order (tested on tied data under stimulus permutations).
  Tied samples are thus listed as the other representation ranks them, so a tie never counts
  as a disagreement of order: on heavily tied data (binary, quantised) the value is at the
  favourable end of what tie-breaks give (higher than a tie-break that ignores the other
  representation would give on average). A representation with no variance (every list one
  tie) is refused.

Without ties every rule gives platonic-rep's value.
"""

import numpy as np

from .._core.params import Integral, Interval, Options
from .._core.registry import register
from .._core.validation import check_nonconstant
from ..base import Metric, param_dependent
from .knn import SMOOTH_ALTERNATIVES, KNeighbourValidation, NeighbourSearch, column_keys, valid_k

__all__ = ["CycleKNN", "LCSKNN", "EditDistanceKNN", "NeighbourLists", "neighbour_lists",
           "ordered_lists", "lcs_lengths", "edit_distances"]

#: Similarity entries per chunk of the search (rows x n): about 32 MB per float64 array.
_CHUNK_ENTRIES = 2**22


class NeighbourLists:
    """The candidates of every sample of one representation (see the module's tie rule).

    Attributes
    ----------
    n, k : int
    keys : ndarray of int64
        Sorted keys ``i n + j``: sample j is a candidate neighbour of sample i.
    block : ndarray of int64
        The block of each candidate in i's list (0: the most similar samples).
    sure : ndarray of bool
        Whether j is a neighbour of i under every tie-break (not in a tie at the k-th place
        with more samples than places).
    weight : ndarray of float64
        1 where ``sure``, else p / t (t samples tied at the k-th place for p places).
    """

    def __init__(self, n, k, keys, block, sure, weight):
        self.n, self.k = n, k
        self.keys, self.block, self.sure, self.weight = keys, block, sure, weight

    def lookup(self, keys, values, missing):
        """``values`` (an attribute array) at ``keys``; ``missing`` where a key is absent."""
        pos = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
        found = self.keys[pos] == keys
        return np.where(found, values[pos], missing)


def _lists_chunk(S, rows, n, k, tol, columns=None):
    """The candidates of the samples ``rows`` from their similarities ``S`` (self at -inf; a
    chunk of :meth:`NeighbourSearch.candidate_chunks`, ``columns`` mapping a compact chunk's
    entries to samples): (keys, block, sure, weight)."""
    r = rows.size
    tol = np.broadcast_to(tol, (r, 1))
    cols = S.shape[1]
    kth = np.partition(S, cols - k, axis=1)[:, [cols - k]]  # each row's k-th largest
    cand = S >= kth - tol
    above = S > kth + tol  # MutualKNN's weight-1 set
    tied = cand & ~above
    n_above = np.count_nonzero(above, axis=1)
    n_tied = np.count_nonzero(tied, axis=1)
    fits = n_above + n_tied <= k  # the tie fits its places: every candidate is sure
    ri, cj = np.nonzero(cand)  # row-major (the caller sorts the keys of all chunks)
    vals = S[ri, cj]
    sure = above[ri, cj] | fits[ri]
    weight = np.where(sure, 1.0, ((k - n_above) / np.maximum(n_tied, 1))[ri])
    # blocks: chains of sorted values within the tolerance, per row
    order = np.lexsort((-vals, ri))
    rs, vs = ri[order], vals[order]
    new = np.ones(rs.size, dtype=bool)
    new[1:] = (rs[1:] != rs[:-1]) | (vs[1:] < vs[:-1] - tol[rs[1:], 0])
    ids = np.cumsum(new) - 1
    first = np.searchsorted(rs, np.arange(r))  # where each row starts in the sorted order
    block = np.empty(rs.size, dtype=np.int64)
    block[order] = ids - ids[first[rs]]
    return column_keys(rows, ri, cj, n, columns), block, sure, weight


def neighbour_lists(X, k, similarity="cosine", name="X", chunk_size=None):
    """:class:`NeighbourLists` of ``X`` (validated float64 (n, d), n > k), by cosine
    similarity or raw inner product, ``chunk_size`` rows at a time (default about 4 million
    entries per chunk).

    Examples
    --------
    >>> L = neighbour_lists(np.eye(3), 1)  # the two other samples tie for the one place
    >>> L.keys.tolist(), L.weight.tolist()
    ([1, 2, 3, 5, 6, 7], [0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    """
    # identical samples: every list would be one tie, which the rule below would order as the
    # other representation ranks it (a perfect score for a constant representation)
    check_nonconstant(X, name)
    n = X.shape[0]
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_ENTRIES // n)
    search = NeighbourSearch(X, name, similarity)
    parts = [_lists_chunk(S, rows, n, k, search.tol_of(rows), columns)
             for rows, S, columns in search.candidate_chunks(k, chunk_size)]
    keys, block, sure, weight = (np.concatenate(p) for p in zip(*parts))
    order = np.argsort(keys)  # the chunks come in no particular order of samples
    return NeighbourLists(n, k, keys[order], block[order], sure[order], weight[order])


def ordered_lists(a, b):
    """The (n, k) ranked lists of ``a`` (:class:`NeighbourLists`), ties inside a block of
    ``a`` ordered by the block in ``b`` (absent from b's candidates: last), then by index."""
    n, k = a.n, a.k
    rows, cols = np.divmod(a.keys, n)
    other = b.lookup(a.keys, b.block, n + 1)
    order = np.lexsort((cols, other, a.block, rows))
    starts = np.searchsorted(rows[order], np.arange(n))
    return cols[order][starts[:, None] + np.arange(k)]


def lcs_lengths(A, B):
    """Length of the longest common subsequence of each row of ``A`` with the same row of
    ``B`` (integer arrays (n, k)), by the classic dynamic programme, all rows at once."""
    n, k = A.shape
    prev = np.zeros((n, k + 1), dtype=np.int64)
    for i in range(k):
        cur = np.zeros_like(prev)
        for j in range(k):
            cur[:, j + 1] = np.where(A[:, i] == B[:, j], prev[:, j] + 1,
                                     np.maximum(prev[:, j + 1], cur[:, j]))
        prev = cur
    return prev[:, k]


def edit_distances(A, B):
    """Levenshtein distance (insertions, deletions, substitutions, each costing 1) of each row
    of ``A`` to the same row of ``B`` (integer arrays (n, k)), all rows at once."""
    n, k = A.shape
    prev = np.broadcast_to(np.arange(k + 1), (n, k + 1)).copy()
    for i in range(k):
        cur = np.empty_like(prev)
        cur[:, 0] = i + 1
        for j in range(k):
            cur[:, j + 1] = np.minimum(np.minimum(prev[:, j + 1], cur[:, j]) + 1,
                                       prev[:, j] + (A[:, i] != B[:, j]))
        prev = cur
    return prev[:, k]


def _subset_means(x, counts, places):
    """For each group g (``counts[g]`` consecutive entries of ``x``), the mean over the
    ``places[g]``-subsets of the group of the product of their entries: e_p / C(t, p), by the
    recurrence g_r <- ((m - r) g_r + r x_m g_{r-1}) / m over the entries m = 1 .. t (a convex
    combination: no overflow). Groups are padded to a block of rows at a time."""
    out = np.ones(counts.size)
    if not counts.size:
        return out
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    width = int(counts.max())
    step = max(1, _CHUNK_ENTRIES // width)
    for lo in range(0, counts.size, step):
        t, p = counts[lo:lo + step], places[lo:lo + step]
        r = t.size
        pos = np.arange(width)
        valid = pos[None, :] < t[:, None]
        M = np.ones((r, width))
        M[valid] = x[(offsets[lo:lo + step, None] + pos[None, :])[valid]]
        top = int(p.max())
        g = np.zeros((r, top + 1))
        g[:, 0] = 1.0
        for c in range(width):
            m = c + 1.0
            live = valid[:, c]
            for s in range(min(c + 1, top), 0, -1):
                new = ((m - s) * g[:, s] + s * M[:, c] * g[:, s - 1]) / m
                g[:, s] = np.where(live, new, g[:, s])
        out[lo:lo + step] = g[np.arange(r), p]
    return out




class _ListMetric(KNeighbourValidation, Metric):
    """What the ranked-list measures share: parameters, validation, memory, the search."""

    _gradient_note = ("its value is a function of the ordered k-nearest-neighbour lists only, "
                      "which depend on the order of the similarities: piecewise constant in the "
                      "inputs (gradient 0 almost everywhere, undefined where a list changes); "
                      + SMOOTH_ALTERNATIVES)

    is_metric = False
    # orthogonal maps of the neurons keep every inner product; c X (c != 0) multiplies them by
    # c^2 > 0 and leaves cosines alone: no ranking changes. A translation changes both.
    invariances = frozenset({"orthogonal", "signed_permutation", "permutation",
                             "isotropic_scaling"})
    same_width = False
    reference = "Huh, Cheung, Wang, Isola 2024, The Platonic Representation Hypothesis, ICML"
    _parameter_constraints = {"k": [Interval(Integral, 1, None)],
                              "similarity": [Options({"cosine", "inner_product"})]}

    def __init__(self, k=10, similarity="cosine", layout=None):
        self.k = k
        self.similarity = similarity
        self.layout = layout

    # like MutualKNN's search: below 6 similarity chunks and 3 copies of the input per search;
    # per state the candidates (keys, blocks, flags, weights: about 4 n k numbers, more where
    # ties at the k-th place are wide), and the pair step's lookups and sorts about 10 n k
    def _memory_bytes(self, n, d, count, jobs=1):
        """Peak bytes with ``count`` neighbour lists of n samples held and ``jobs`` searches
        (d neurons) running at once, and what that counts."""
        rows = min(n, max(1, _CHUNK_ENTRIES // n))
        k = int(self.k)
        nbytes = 8 * (jobs * (6 * rows * n + 3 * n * d) + (4 * count + 10) * n * k)
        return nbytes, (f"{jobs * 6} float64 {rows:,} x {n:,} chunks of similarities at once "
                        "and the neighbour lists")

    def _partial_fit(self, A, name):
        return neighbour_lists(A, int(self.k), self.similarity, name)

    def _score(self, X, Y):
        return self._finalize_fit_score(self._partial_fit(X, "X"), self._partial_fit(Y, "Y"))


_PARAMS_DOC = """
    Parameters
    ----------
    k : int, default 10
        Length of each neighbour list; needs n > k samples.
    similarity : {"cosine", "inner_product"}, default "cosine"
        Rank neighbours by cosine similarity (each row L2-normalised first: platonic-rep's
        ``compute_score`` default ``normalize=True``, keys ``_l2rows``) or by the raw inner
        product x_i . x_j of the arrays as given (keys ``_raw``; similarity-repository's
        ``-topk=`` names).
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    A sample is never its own neighbour. Ties: see :mod:`simmetrics.metrics.knn_lists` (no
    rule depends on the order of the samples). With cosine similarity an all-zero sample is
    an error (a ValueError naming X or Y and the row). Invariant to orthogonal maps of the
    neurons and to isotropic scaling, not to translation. Time O(n^2 (d_x + d_y)), memory
    O(n k) besides one chunk of similarities (about 4 million entries)."""


@register("cycle_knn")
class CycleKNN(_ListMetric):
    __doc__ = """Cycle kNN (Huh, Cheung, Wang, Isola 2024, ICML; platonic-rep's ``cycle_knn``)::

        CycleKNN(X, Y) = 1/n  sum_i  [ i in  union_{j in N_Y(i)} N_X(j) ]

    the fraction of samples i that some Y-neighbour j of i has among its own X-neighbours
    (going to a neighbour in Y and back through X returns to i). Not symmetric: the first
    argument is the way back. A sample is not its own neighbour, so even for X = Y the value
    is the fraction of samples with a mutual neighbour, below 1 (0.377 for seed11's X with
    raw inner products, where samples of large norm are everyone's neighbours). Where
    similarities tie at the k-th place the value is the expectation over uniformly random
    tie-breaks (module docstring). platonic-rep returns the fraction in float32; here it is
    a float64 (exact, a multiple of 1 / n, without ties).
    """ + _PARAMS_DOC + """

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 6))
    >>> CycleKNN(k=5).fit_score(X, 3 * X) == CycleKNN(k=5).fit_score(X, X)
    True
    """

    kind = "similarity"
    bounds = (0.0, 1.0)
    symmetric = False

    def _finalize_fit_score(self, sx, sy):
        n, k = sy.n, sy.k
        i, j = np.divmod(sy.keys, n)
        # probability that i is an X-neighbour of j, for every candidate j of i in Y
        x = 1.0 - sx.lookup(j * n + i, sx.weight, 0.0)
        with np.errstate(divide="ignore"):  # log 0 = -inf: a sure return, product 0
            logs = np.where(sy.sure, np.log(x), 0.0)
        miss = np.exp(np.bincount(i, logs, minlength=n))  # P(no return via the sure ones)
        tied = ~sy.sure
        if tied.any():
            rows_t = i[tied]
            groups, counts = np.unique(rows_t, return_counts=True)
            places = k - np.bincount(i[sy.sure], minlength=n)[groups]
            miss[groups] *= _subset_means(x[tied], counts, places)
        return float(np.mean(1.0 - miss))


@register("lcs_knn")
class LCSKNN(_ListMetric):
    __doc__ = """Longest-common-subsequence kNN (Huh, Cheung, Wang, Isola 2024, ICML;
    platonic-rep's ``lcs_knn``)::

        LCSKNN(X, Y) = 1/n  sum_i  LCS(L_X(i), L_Y(i))

    with L_X(i) the list of the k nearest neighbours of sample i in X by decreasing
    similarity and LCS the length of the longest common subsequence of two lists. A similarity
    in [0, k], not divided by k (platonic-rep's convention): k when every list is the same, in
    the same order. Symmetric. platonic-rep returns the mean in float32; here it is a float64
    (exact, a multiple of 1 / n).
    """ + _PARAMS_DOC + """

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 6))
    >>> LCSKNN(k=5).fit_score(X, 2 * X)
    5.0
    """

    kind = "similarity"
    bounds = param_dependent(lambda self: (0.0, float(self.k) if valid_k(self.k) else 10.0))
    symmetric = True

    def _finalize_fit_score(self, sx, sy):
        return float(lcs_lengths(ordered_lists(sx, sy), ordered_lists(sy, sx)).mean())


@register("edit_distance_knn")
class EditDistanceKNN(_ListMetric):
    __doc__ = """Edit-distance kNN (Huh, Cheung, Wang, Isola 2024, ICML; platonic-rep's
    ``edit_distance_knn``)::

        EditDistanceKNN(X, Y) = 1 - 1/(n k)  sum_i  Lev(L_X(i), L_Y(i))

    with L_X(i) the list of the k nearest neighbours of sample i in X by decreasing
    similarity and Lev the Levenshtein distance (insertions, deletions and substitutions each
    cost 1, as torchaudio's ``edit_distance``, which platonic-rep calls). A similarity in
    [0, 1]: 1 when every list is the same, in the same order. Symmetric.
    """ + _PARAMS_DOC + """

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 6))
    >>> EditDistanceKNN(k=5).fit_score(X, 2 * X)
    1.0
    """

    kind = "similarity"
    bounds = (0.0, 1.0)
    symmetric = True

    def _finalize_fit_score(self, sx, sy):
        lev = edit_distances(ordered_lists(sx, sy), ordered_lists(sy, sx))
        return 1.0 - float(lev.mean()) / sx.k
