"""Mutual k-nearest-neighbour alignment: compare each sample's nearest neighbours.

:class:`MutualKNN` (Huh, Cheung, Wang, Isola 2024, "The Platonic Representation Hypothesis"):
the mean overlap of each sample's k nearest neighbours (by cosine similarity) in the two
representations. Like :class:`simmetrics.RSA` (:mod:`simmetrics.metrics.rsa`) it looks only at
the relations between the samples inside each representation, so X and Y may have different
widths. Here too are its parts: :func:`mutual_knn` (the value on arrays),
:func:`neighbour_weights` and :func:`nearest_neighbours` (the neighbourhoods, with the tie rule:
similarities within rounding of each other tie, and a tie at the k-th place counts
fractionally), in O(n k) memory: :class:`NeighbourSearch` reads the n x n similarities a
2048 x 2048 block at a time, each block of the symmetric matrix once for its rows and its
columns, and again, a chunk of rows at a time, only the rows of samples with a tie at the k-th
place.
"""

import numbers

import numpy as np

from .._core.linalg import pow2_rescale as _pow2_rescale
from .._core.params import Integral, Interval, Options
from .._core.registry import register
from .._core.validation import check_pair, check_representation
from ..base import Metric, param_dependent

__all__ = ["MutualKNN", "mutual_knn", "nearest_neighbours", "neighbour_weights", "check_enough_samples",
           "KNeighbourValidation", "valid_k",
           "SMOOTH_ALTERNATIVES"]

# Mutual kNN compares cosine similarities between samples: unchanged by any orthogonal map of
# the neurons and by multiplying X by any non-zero number, but not by a translation.
_KNN_INVARIANCES = frozenset(
    {"orthogonal", "signed_permutation", "permutation", "isotropic_scaling"}
)

#: How many similarity entries one chunk of the mutual kNN search holds (rows x n); about
#: 32 MB per float64 array.
_KNN_CHUNK_ENTRIES = 2**22


def _unit_rows(X, name):
    """Rows of ``X`` scaled to unit Euclidean norm; a zero row is an error."""
    X = _pow2_rescale(X)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    zero = np.flatnonzero(norms == 0.0)
    if zero.size:
        raise ValueError(
            f"row {zero[0]} of {name} is all zeros ({zero.size} such rows), so its cosine "
            "similarity to the other samples, and hence its nearest neighbours, are undefined"
        )
    return X / norms[:, None]


def _topk_mask(S, k, tol=0.0):
    """Boolean mask of the ``k`` largest entries of each row of ``S``, where values within
    ``tol`` of the row's k-th largest value v count as tied with it: the values above
    ``v + tol`` are in, and the places left go to the tied values (``|s - v| <= tol``) of
    lowest column index. With ``tol = 0`` only equal values tie. O(rows x cols) time and
    memory."""
    cols = S.shape[1]
    kth = np.partition(S, cols - k, axis=1)[:, [cols - k]]  # each row's k-th largest (a copy)
    mask = S >= kth - tol  # the k largest and every value tied with the k-th
    crowded = np.flatnonzero(np.count_nonzero(mask, axis=1) > k)  # more ties than places
    if crowded.size:
        sub, cut = S[crowded], kth[crowded]
        above = sub > cut + tol
        tied = mask[crowded] & ~above
        room = k - np.count_nonzero(above, axis=1, keepdims=True)  # tied values that fit
        mask[crowded] = above | (tied & (np.cumsum(tied, axis=1) <= room))
    return mask


#: Cosine similarities whose exact values are equal differ, once rounded, by at most about
#: d eps (d neurons; measured below 0.45 d eps for rotated, permuted and rescaled copies of
#: binary, quantised, sparse and heavy-tailed data): they tie within ``_TIE_FACTOR (d + 2) eps``.
_TIE_FACTOR = 4.0


def _tie_tolerance(d):
    """The tolerance within which two cosine similarities of d-neuron samples tie."""
    return _TIE_FACTOR * (d + 2) * np.finfo(np.float64).eps


def check_enough_samples(A, name, k, min_samples):
    """``A``, after checking that it has the ``min_samples`` (k + 1) rows a k-nearest-neighbour
    search needs: a ``ValueError`` naming ``name`` and k otherwise (each sample's neighbours
    are the other n - 1)."""
    n = A.shape[0]
    if n < min_samples:
        raise ValueError(
            f"k={k} must be smaller than the number of samples, since each sample's "
            f"neighbours are the other n - 1 samples: {name} has {n} samples, but this "
            f"estimator needs at least {min_samples}"
        )
    return A


#: What the notes of the neighbourhood measures (``Metric._gradient_note``) offer instead of a
#: gradient: their values are piecewise constant in the inputs.
SMOOTH_ALTERNATIVES = ("use a smooth comparison of the same relations between stimuli: rsa with "
                       "compare='pearson' or compare='soft_spearman', or linear_cka / kernel_cka")


class _NeighbourSearch:
    """The cosine similarities (or raw inner products) between the samples of one
    representation, and every sample's best candidates for its k nearest neighbours.

    Duplicated rows (after L2 normalisation) are stored once, and the similarities are
    gathered from the distinct rows, so duplicated samples always get bitwise-equal
    similarities and therefore exact ties. ``tol`` is the tie tolerance of
    :func:`_tie_tolerance` for the representation's width.
    """

    def __init__(self, X, name, similarity="cosine"):
        if similarity == "cosine":
            self.tol = _tie_tolerance(X.shape[1])
            U = _unit_rows(X, name)
        else:  # raw inner products: rounding grows with the norms (a tolerance per sample)
            U = _pow2_rescale(X)
            norms = np.sqrt(np.einsum("ij,ij->i", U, U))
            self.tol = (_tie_tolerance(X.shape[1]) * norms * norms.max())[:, None]
        self.n = U.shape[0]
        self.distinct, self.which = _distinct_rows(U)

    def similarities(self, rows, exclude_self=True):
        """The similarities of the samples ``rows`` to every sample, (len(rows), n); a sample's
        similarity to itself is -inf unless ``exclude_self`` is False."""
        if self.which is None:
            S = self.distinct[rows] @ self.distinct.T
        else:
            S = (self.distinct[self.which[rows]] @ self.distinct.T)[:, self.which]
        if exclude_self:
            S[np.arange(len(rows)), rows] = -np.inf  # a sample is not its own neighbour
        return S

    def tol_of(self, rows):
        """The tie tolerance of each of the samples ``rows``: a scalar, or a column."""
        return self.tol if np.isscalar(self.tol) else self.tol[rows]

    def candidate_chunks(self, k, chunk_size, exclude_self=True):
        """Every sample's similarities as far as its k nearest neighbours need them, in chunks
        ``(rows, S, columns)`` that cover each sample once (in no particular order).

        Where the k-th and (k + 1)-th largest similarities of a sample differ by more than the
        tie tolerance, its k neighbours are exactly the k largest, and nothing else is within
        the tolerance of the k-th: ``S`` then holds only those k similarities, and
        ``columns`` (same shape, increasing along each row) the samples they belong to. For
        the other samples (a tie at the k-th place), and when the representation has
        duplicated samples, ``S`` is the full rows of :meth:`similarities` (``chunk_size``
        rows at a time) and ``columns`` is None.

        The k + 1 largest similarities of every sample come from one pass over the blocks of
        the symmetric n x n matrix on and above its diagonal (:func:`_top_candidates`), so
        each block product serves two sets of rows: half the multiply-adds of the row-by-row
        search. Where a probe of the rows finds nearly all of them tied at the k-th place
        (sparse binary data), that pass is skipped and every row is read in full.
        """
        n = self.n
        if self.which is None and not self._mostly_tied(k, exclude_self):
            vals, cols = _top_candidates(self.distinct, k + 1, exclude_self)
            tol = self.tol if np.isscalar(self.tol) else self.tol[:, 0]
            tied = vals[:, k] >= vals[:, k - 1] - tol
            sure = np.flatnonzero(~tied)
            if sure.size:
                order = np.argsort(cols[sure, :k], axis=1)
                yield (sure, np.take_along_axis(vals[sure, :k], order, axis=1),
                       np.take_along_axis(cols[sure, :k], order, axis=1))
            rest = np.flatnonzero(tied)
        else:
            rest = np.arange(n)
        for lo in range(0, rest.size, chunk_size):
            rows = rest[lo:lo + chunk_size]
            yield rows, self.similarities(rows, exclude_self), None


    def _mostly_tied(self, k, exclude_self):
        """Whether more than :data:`_TIED_SHARE` of a probe of :data:`_PROBE_ROWS` evenly spaced
        samples tie at the k-th place, so that nearly every row would be read twice (once in
        the symmetric pass, again in full): then the full rows alone are cheaper. The probe is
        a few percent of one pass; the values do not depend on the answer."""
        rows = np.unique(np.linspace(0, self.n - 1, min(self.n, _PROBE_ROWS)).astype(np.intp))
        S = self.similarities(rows, exclude_self)
        cols = S.shape[1]
        top = -np.sort(-np.partition(S, cols - k - 1, axis=1)[:, cols - k - 1:], axis=1)
        tol = np.broadcast_to(self.tol_of(rows), (rows.size, 1))[:, 0]
        return np.mean(top[:, k] >= top[:, k - 1] - tol) > _TIED_SHARE


#: The probe of :meth:`NeighbourSearch._mostly_tied`: rows, and the share of them with a tie at
#: the k-th place above which the symmetric pass is skipped.
_PROBE_ROWS, _TIED_SHARE = 256, 0.6

#: Rows (and columns) of one block of :func:`_top_candidates`: 2048 x 2048 float64, 32 MB.
_BLOCK = 2048


def _segment_top(B, m, offset):
    """The ``m`` largest entries of each row of the block ``B`` (all of them when it has at
    most m columns) as flat (local rows, values, columns plus ``offset``)."""
    rows = B.shape[0]
    if B.shape[1] <= m:
        idx = np.broadcast_to(np.arange(B.shape[1]), B.shape)
    else:
        idx = np.argpartition(B, B.shape[1] - m, axis=1)[:, -m:]
    return (np.repeat(np.arange(rows), idx.shape[1]), np.take_along_axis(B, idx, axis=1).ravel(),
            (idx + offset).ravel())


class _RunningTop:
    """The m largest values seen so far in each row of an n x n matrix offered a block at a
    time, with their columns; ``floor`` holds each row's m-th largest so far (-inf until m
    values were seen), below which an entry cannot enter."""

    def __init__(self, n, m):
        self.m = m
        self.vals = np.full((n, m), -np.inf)
        self.cols = np.full((n, m), -1, dtype=np.intp)
        self.floor = np.full(n, -np.inf)

    def offer(self, B, lo, offset):
        """Offer the block ``B`` of the rows ``lo, lo + 1, ...`` and the columns ``offset,
        offset + 1, ...``. Rows that have seen m values take only the entries above their
        floor (a comparison pass, no partition) unless too many are; the others, and
        crowded blocks, take each row's m largest by a partition."""
        rows, m = B.shape[0], self.m
        floor = self.floor[lo:lo + rows]
        if np.isfinite(floor).all():
            r, c = np.nonzero(B > floor[:, None])
            if r.size <= 2 * m * rows:
                self._merge(lo, r, B[r, c], c + offset)
                return
        self._merge(lo, *_segment_top(B, m, offset))

    def _merge(self, lo, r, v, c):
        if not r.size:
            return
        m = self.m
        hit = np.unique(r) + lo
        rr = np.concatenate((np.repeat(hit, m), r + lo))
        vv = np.concatenate((self.vals[hit].ravel(), v))
        cc = np.concatenate((self.cols[hit].ravel(), c))
        order = np.lexsort((-vv, rr))  # by row, then decreasing value
        rr, vv, cc = rr[order], vv[order], cc[order]
        start = np.searchsorted(rr, hit)
        keep = (np.arange(rr.size) - np.repeat(start, np.diff(np.append(start, rr.size)))) < m
        self.vals[hit] = vv[keep].reshape(-1, m)
        self.cols[hit] = cc[keep].reshape(-1, m)
        self.floor[hit] = self.vals[hit, m - 1]


def _top_candidates(U, m, exclude_self=True):
    """The ``m`` largest entries of every row of ``U U'`` (the diagonal at -inf when
    ``exclude_self``) and their columns, each row sorted by decreasing value: (values,
    columns), both (n, m), m <= n.

    Each block U_I U_J' with J >= I is computed once and read both ways: its rows give
    candidates to the samples I, its columns to the samples J (:class:`_RunningTop`). An
    entry that is not among the m largest of its row so far cannot be among the m largest of
    the whole row, so the values found are exact. Which of several equal entries at the m-th
    place is kept is arbitrary, so callers judge ties by the values."""
    n = U.shape[0]
    b = min(n, _BLOCK)
    top = _RunningTop(n, m)
    for lo in range(0, n, b):
        for lo2 in range(lo, n, b):
            B = U[lo:lo + b] @ U[lo2:lo2 + b].T
            if lo2 == lo and exclude_self:
                np.fill_diagonal(B, -np.inf)
            top.offer(B, lo, lo2)
            if lo2 != lo:
                top.offer(B.T, lo2, lo)
    return top.vals, top.cols


def _distinct_rows(U):
    """``(distinct, which)``: the distinct rows of ``U`` and, for each row, its index among
    them; ``(U, None)`` when no two rows are equal. -0.0 and 0.0 count as equal.

    Equal rows have equal hashes (an exact integer hash of the bit patterns: a weighted sum
    modulo 2^64), so rows whose hashes all differ are distinct, which an O(n d) pass shows;
    only when two hashes agree are the rows sorted (``numpy.unique``)."""
    U = U + 0.0  # -0.0 + 0.0 is +0.0: one bit pattern per value
    weights = np.random.default_rng(0x5EED).integers(1, 2**63, size=U.shape[1], dtype=np.uint64)
    hashes = (U.view(np.uint64) * (weights | np.uint64(1))).sum(axis=1)
    if np.unique(hashes).size == U.shape[0]:
        return U, None
    distinct, which = np.unique(U, axis=0, return_inverse=True)
    if distinct.shape[0] == U.shape[0]:  # a hash collision, not a duplicate
        return U, None
    return distinct, which.ravel()


#: The public names of the neighbour search, shared with :mod:`simmetrics.metrics.neighbourhood`.
NeighbourSearch = _NeighbourSearch
tie_tolerance = _tie_tolerance


def mutual_knn(X, Y, k=10, chunk_size=None):
    """Mutual k-nearest-neighbour alignment of ``X`` and ``Y`` (Huh et al. 2024).

    ::

        m(X, Y) = 1/n  sum_i  |N_X(i) & N_Y(i)| / k

    where N_X(i) holds the k samples j != i with the largest cosine similarity
    ``<x_i, x_j> / (||x_i|| ||x_j||)`` to sample i in X (the paper L2-normalises each sample's
    feature vector and ranks neighbours by inner product; equivalently by the Euclidean
    distance between the normalised rows). Ties at the k-th place count fractionally
    (:func:`neighbour_weights`): with weights w_X(i, j) (1 for a neighbour, p / t for each of
    t samples tied for p places, 0 otherwise), ``|N_X(i) & N_Y(i)|`` is
    ``sum_j min(w_X(i, j), w_Y(i, j))``, which is the plain count when nothing ties.

    No input checking (:class:`MutualKNN` validates). The n x n similarity matrix is never
    formed: ``chunk_size`` rows at a time, so memory is O(n * chunk_size), besides the
    normalised copies of X and Y; by default ``chunk_size`` is chosen so that a chunk holds
    about 4 million entries (32 MB per float64 array).

    Parameters
    ----------
    X, Y : numpy.ndarray of float64, shapes (n, d_x) and (n, d_y)
    k : int
        Number of neighbours, 1 <= k < n.
    chunk_size : int or None
        Rows per chunk; None chooses it from n.

    Returns
    -------
    float
        A similarity in [0, 1]; a multiple of 1 / (n k) when no similarities tie at the k-th
        place.

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> mutual_knn(X, X[:, ::-1], k=1), mutual_knn(X, X[[0, 2, 1, 3]], k=1)
    (1.0, 0.0)
    >>> E = np.eye(3)  # every other sample ties for the one place: weights 1/2, 1/2
    >>> mutual_knn(E, E, k=1), mutual_knn(E, X[:3], k=1)
    (1.0, 0.5)
    """
    n = X.shape[0]
    return _shared_weight(_neighbourhoods(X, k, "X", chunk_size),
                          _neighbourhoods(Y, k, "Y", chunk_size)) / (n * k)


class _Neighbourhoods:
    """Every sample's k nearest neighbours with ties at the k-th place counted fractionally
    (see :func:`neighbour_weights`), in O(n k) memory where ties are few and at most n^2 / 8
    bytes where they are many.

    Sample j is a neighbour of sample i with weight 1 when the key ``i n + j`` is in
    ``above``, and with weight ``share[i]`` when j is in the tie group of i: listed as keys in
    ``tied`` for a group of at most n / 64 samples, held as a row of bits otherwise (``bits``,
    for the samples ``big``). Keys are sorted.
    """

    def __init__(self, n, k, chunks):
        rows, above, share, tied, big, bits = zip(*chunks)
        self.n, self.k = n, k
        self.above = np.sort(np.concatenate(above))
        self.share = np.ones(n)
        self.share[np.concatenate(rows)] = np.concatenate(share)
        self.tied = np.sort(np.concatenate(tied))
        big = np.concatenate(big)
        order = np.argsort(big)
        self.big = big[order]
        self.bits = np.concatenate(bits)[order]

    def is_tied(self, keys):
        """Whether each pair ``keys`` (i n + j) is in the tie group of its sample i."""
        i, j = np.divmod(keys, self.n)
        out = _isin_sorted(keys, self.tied)
        if self.big.size:
            pos = np.minimum(np.searchsorted(self.big, i), self.big.size - 1)
            held = np.flatnonzero(self.big[pos] == i)
            jj = j[held]
            out[held] = (self.bits[pos[held], jj >> 3] >> (jj & 7)) & 1 == 1
        return out

    def listed_ties_of(self, samples):
        """The keys of the tie groups held as lists, of the given samples only."""
        return self.tied[_isin_sorted(self.tied // self.n, samples)]


def _isin_sorted(values, sorted_keys):
    """``numpy.isin(values, sorted_keys)`` for sorted unique ``sorted_keys``, by bisection."""
    if not sorted_keys.size:
        return np.zeros(np.shape(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, values), sorted_keys.size - 1)
    return sorted_keys[pos] == values


def column_keys(rows, r, c, n, columns=None):
    """Keys ``i n + j`` of the entries ``(r, c)`` of a chunk of similarities of the samples
    ``rows``: i = rows[r], and j = c, or ``columns[r, c]`` for the compact chunks of
    :meth:`NeighbourSearch.candidate_chunks`."""
    j = c if columns is None else columns[r, c]
    return rows[r].astype(np.int64) * n + j


def _neighbourhood_chunk(S, rows, n, k, tol, columns=None):
    """One chunk of :class:`_Neighbourhoods` (the samples ``rows``) from their similarities
    ``S`` (a chunk of :meth:`NeighbourSearch.candidate_chunks`): (rows, above keys, shares,
    tied keys, big samples, their bits). The values above ``v + tol`` (v: the row's k-th
    largest value) have weight 1, and each of the t values tied with v (``|s - v| <= tol``)
    ``p / t`` when p places are left after them; a row whose ties fit the places (p = t)
    lists all k with weight 1."""
    rows_in_chunk, cols = S.shape
    kth = np.partition(S, cols - k, axis=1)[:, [cols - k]]  # each row's k-th largest (a copy)
    tol = np.broadcast_to(tol, (rows_in_chunk, 1))  # one tolerance, or one per row
    mask = S >= kth - tol  # the k largest and every value tied with the k-th
    share = np.ones(rows_in_chunk)
    crowded = np.flatnonzero(np.count_nonzero(mask, axis=1) > k)  # more ties than places
    tied = np.zeros((0, cols), dtype=bool)
    if crowded.size:  # there the mask keeps the values above the tie, the tie goes apart
        sub, cut = S[crowded], kth[crowded]
        above = sub > cut + tol[crowded]
        tied = mask[crowded] & ~above
        mask[crowded] = above
        share[crowded] = (k - np.count_nonzero(above, axis=1)) / np.count_nonzero(tied, axis=1)
    r, c = np.nonzero(mask)
    above_keys = column_keys(rows, r, c, n, columns)
    # only full rows (columns None) can be crowded: a compact row's k values have no tie
    big = 64 * np.count_nonzero(tied, axis=1) > n  # a list of keys would outweigh a bit row
    r, c = np.nonzero(tied[~big])
    tied_keys = rows[crowded[~big][r]].astype(np.int64) * n + c
    bits = np.packbits(tied[big], axis=1, bitorder="little")
    if not bits.size:
        bits = np.zeros((0, (n + 7) // 8), dtype=np.uint8)
    return rows, above_keys, share, tied_keys, rows[crowded[big]].astype(np.int64), bits


def neighbour_weights(X, k, name="X", chunk_size=None):
    """Every sample's k nearest neighbours by cosine similarity, ties counted fractionally.

    The weight of sample j as a neighbour of sample i (never j = i) is 1 when its similarity
    exceeds the k-th largest similarity v of sample i by more than the tie tolerance
    ``4 (d + 2) eps``, ``p / t`` for each of the t samples whose similarity is within the
    tolerance of v when p places are left, and 0 otherwise; the weights of each sample sum to
    k. Duplicated samples always tie exactly. Computed ``chunk_size`` rows at a time (see
    :func:`mutual_knn`).

    Returns
    -------
    numpy.ndarray of float64, shape (n, n)
        The weights as a dense matrix, for inspection on small data (:class:`MutualKNN` keeps
        them in O(n k) memory).

    Examples
    --------
    >>> neighbour_weights(np.eye(3), 1).tolist()  # two samples tie for each place
    [[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]]
    """
    hoods = _neighbourhoods(X, k, name, chunk_size)
    n = hoods.n
    W = np.zeros(n * n)
    W[hoods.above] = 1.0
    W[hoods.tied] = hoods.share[hoods.tied // n]
    W = W.reshape(n, n)
    for i, bits in zip(hoods.big, hoods.bits):
        W[i, np.unpackbits(bits, count=n, bitorder="little") == 1] = hoods.share[i]
    return W


def _neighbourhoods(X, k, name="X", chunk_size=None, similarity="cosine"):
    """:class:`_Neighbourhoods` of the samples of ``X``, ``chunk_size`` rows at a time, by
    cosine similarity or by raw inner product (``similarity``)."""
    n = X.shape[0]
    if chunk_size is None:
        chunk_size = max(1, _KNN_CHUNK_ENTRIES // n)
    search = _NeighbourSearch(X, name, similarity)
    chunks = [_neighbourhood_chunk(S, rows, n, k, search.tol_of(rows), columns)
              for rows, S, columns in search.candidate_chunks(k, chunk_size)]
    return _Neighbourhoods(n, k, chunks)


def nearest_neighbours(X, k, name="X", chunk_size=None):
    """The k nearest neighbours of every sample of ``X`` by cosine similarity (a sample is not
    its own neighbour; similarities within ``4 (d + 2) eps`` of each other tie, and a list of
    exactly k needs a rule: ties go to the lower index), as an (n, k) array of sample indices
    in increasing order. Computed ``chunk_size`` rows at a time (see :func:`mutual_knn`).
    :class:`MutualKNN` counts ties fractionally instead (:func:`neighbour_weights`), which
    depends on no sample order.

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> nearest_neighbours(X, 1).ravel().tolist()
    [1, 0, 3, 2]
    """
    n = X.shape[0]
    if chunk_size is None:
        chunk_size = max(1, _KNN_CHUNK_ENTRIES // n)
    search = _NeighbourSearch(X, name)
    out = np.empty((n, k), dtype=np.intp)
    for rows, S, columns in search.candidate_chunks(k, chunk_size):
        # exactly k per row, found row by row in column order (compact chunks: increasing)
        r, c = np.nonzero(_topk_mask(S, k, search.tol))
        out[rows] = (c if columns is None else columns[r, c]).reshape(-1, k)
    return out


def _shared_weight(a, b):
    """sum_i sum_j min(w_a(i, j), w_b(i, j)) for two :class:`_Neighbourhoods` of the same
    samples: the number of shared neighbours, ties counted fractionally. Each sample's weights
    are 1 on its set A of neighbours above the tie and its share s on its tie group T, so the
    sum is |A_a & A_b| + s_b |A_a & T_b| + s_a |T_a & A_b| + min(s_a, s_b) |T_a & T_b|,
    summed over the samples."""
    n = a.n

    def per_sample(keys):
        return np.bincount(keys // n, minlength=n).astype(np.float64)

    total = float(np.intersect1d(a.above, b.above, assume_unique=True).size)
    total += float(b.share @ per_sample(a.above[b.is_tied(a.above)]))
    total += float(a.share @ per_sample(b.above[a.is_tied(b.above)]))
    # tie group against tie group: a's listed groups against b's (listed or bits), b's listed
    # groups against a's bits, and groups held as bits on both sides
    ties = per_sample(a.tied[b.is_tied(a.tied)])
    listed = b.listed_ties_of(a.big)
    ties += per_sample(listed[a.is_tied(listed)])
    both, ia, ib = np.intersect1d(a.big, b.big, assume_unique=True, return_indices=True)
    if both.size:
        ties[both] += np.bitwise_count(a.bits[ia] & b.bits[ib]).sum(axis=1)
    return total + float(np.minimum(a.share, b.share) @ ties)


def valid_k(k):
    """Whether ``k`` is a usable number of neighbours: an integer (not a bool) of at least 1."""
    return isinstance(k, numbers.Integral) and not isinstance(k, bool) and k >= 1


class KNeighbourValidation:
    """The validation every k-nearest-neighbour measure shares (MutualKNN here, the ReSi
    measures in :mod:`~simmetrics.metrics.neighbourhood`, the ordered-list measures in
    :mod:`~simmetrics.metrics.knn_lists`), mixed in before :class:`~simmetrics.Metric`: k
    first, then every other check of the inputs, then the sample count in words that name k
    (min_samples is k + 1 because each sample's neighbours are the other n - 1 samples), then
    the memory preflight."""

    min_samples = param_dependent(lambda self: int(self.k) + 1 if valid_k(self.k) else 2)

    def _check_k(self):
        if not valid_k(self.k):
            raise ValueError(f"k must be a positive integer, got {self.k!r}")

    def _enough_samples(self, A, name):
        return check_enough_samples(A, name, self.k, self.min_samples)

    def _validate(self, X, Y):
        self._check_k()
        Xv, Yv = check_pair(X, Y, layout=self.layout, min_samples=1)
        self._enough_samples(Xv, "X")
        self._check_rows(Xv.shape[0], max(Xv.shape[1], Yv.shape[1]), raw=X)
        return Xv, Yv

    def _validate_one(self, A, name):
        self._check_k()
        B = self._enough_samples(check_representation(A, name, layout=self.layout,
                                                      min_samples=1), name)
        self._check_rows(*B.shape, raw=A)
        return B


@register("mutual_knn", aliases=("mknn",))
class MutualKNN(KNeighbourValidation, Metric):
    """Mutual k-nearest-neighbour alignment (Huh, Cheung, Wang, Isola 2024, ICML).

    ::

        MutualKNN(X, Y) = 1/n  sum_i  |N_X(i) & N_Y(i)| / k

    with N_X(i) the k nearest other samples of sample i in X. Convention of the paper's code
    (minyoungg/platonic-rep, ``metrics.py`` and ``measure_alignment.py``): each sample's feature
    vector is L2-normalised and neighbours are the samples with the largest inner product, that
    is the largest cosine similarity; a sample is never its own neighbour. The paper's feature
    preparation also clips outliers at the 95th percentile of absolute activations before
    normalising; that is preprocessing, not part of the metric, and is not done here.

    Ties, decided deterministically and invariantly: binary, sparse and quantised activations
    give many similarities that are equal in exact arithmetic, and a rotated or rescaled copy
    of the data rounds them differently. So two cosine similarities of one sample count as
    tied when they differ by at most ``4 (d + 2) eps`` (d neurons, eps the float64 machine
    epsilon; similarities equal in exact arithmetic were measured within 0.45 d eps of each
    other in rotated, permuted and rescaled copies), and a tie at the k-th place counts
    fractionally, so that no order of the samples decides it: the samples whose similarity
    exceeds the k-th largest value v by more than the tolerance are neighbours (weight 1),
    and each of the t samples tied with v shares the p places left (weight p / t). The overlap
    of two neighbourhoods is ``sum_j min(w_X(i, j), w_Y(i, j))`` (the plain count when nothing
    ties; k for X against itself, so m(X, X) = 1). Duplicated samples always tie exactly. The
    paper's code leaves ties to an unstable sort.

    A **similarity** in [0, 1]: 1 when every sample has the same k neighbours in X and Y.
    Not a metric. Invariant to orthogonal maps of the neurons (rotations, signed and plain
    permutations) and to isotropic scaling; not to translation (no centring happens). Uses
    cosine similarities by default, so an all-zero sample is an error; ``similarity=
    "inner_product"`` ranks by raw inner products instead (platonic-rep without its row
    normalisation).

    Memory O(n * chunk) rather than O(n^2): similarities are computed a block at a time
    (2048 x 2048, each block of the symmetric matrix once for its rows and its columns; then
    the rows of samples with a tie at the k-th place, about 4 million entries per chunk),
    besides normalised copies of X and Y; the peak
    (about 170 MB at n = 10,000) is checked against the memory budget before starting
    (:func:`simmetrics.set_memory_budget`).
    Time O(n^2 (d_x + d_y)).

    Parameters
    ----------
    k : int, default 10
        Number of neighbours; needs n > k samples.
    similarity : {"cosine", "inner_product"}, default "cosine"
        How neighbours are ranked. "cosine": by cosine similarity, each sample's feature vector
        L2-normalised first (platonic-rep's default ``normalize=True``; its key
        ``mutual_knn_topk10_l2rows``). "inner_product": by the raw inner product
        ``<x_i, x_j>`` of the arrays as given (platonic-rep's metric on un-normalised
        features, key ``mutual_knn_topk10_raw``): samples of large norm are everyone's
        neighbours, and an all-zero sample is allowed (its inner products all tie at 0).
        The invariances are the same (orthogonal maps and isotropic scaling keep every
        inner product's rank); ties there are within ``4 (d + 2) eps ||x_i|| max_j ||x_j||``.
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Raises
    ------
    ValueError
        ``k`` not a positive integer; k >= n (the message names k); with cosine similarity, a
        sample whose features are all zero (the message names X or Y and the row).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 6))
    >>> Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    >>> MutualKNN(k=5).fit_score(X, 2 * X @ Q)
    1.0
    >>> bool(MutualKNN(k=5).fit_score(X, rng.normal(size=(100, 6))) < 0.2)
    True
    """

    kind = "similarity"
    bounds = (0.0, 1.0)
    is_metric = False
    invariances = _KNN_INVARIANCES
    same_width = False
    symmetric = True
    _gradient_note = ("its value counts the shared members of the k-nearest-neighbour sets, "
                      "which depend only on the order of the similarities: piecewise constant in "
                      "the inputs (gradient 0 almost everywhere, undefined where a set changes); "
                      + SMOOTH_ALTERNATIVES)
    reference = "Huh, Cheung, Wang, Isola 2024, The Platonic Representation Hypothesis, ICML"

    _parameter_constraints = {"k": [Interval(Integral, 1, None)],
                              "similarity": [Options({"cosine", "inner_product"})]}

    def __init__(self, k=10, similarity="cosine", layout=None):
        self.k = k
        self.similarity = similarity
        self.layout = layout

    # -- memory: measured with tracemalloc, the peak of one neighbour search is below 3
    # similarity chunks (the chunk, its partition, the mask) and 3 copies of the input; each
    # state holds about n k keys and weights (more where ties at the k-th place are large),
    # and the pair step's intersection about 6 n k numbers
    def _memory_bytes(self, n, d, count, jobs=1):
        """Peak bytes with ``count`` neighbour lists of n samples held and ``jobs`` searches
        (d neurons) running at once, and what that counts."""
        rows = min(n, max(1, _KNN_CHUNK_ENTRIES // n))
        k = int(self.k)
        nbytes = 8 * (jobs * (5 * rows * n + 3 * n * d) + (2 * count + 8) * n * k)
        return nbytes, (f"{jobs * 5} float64 {rows:,} x {n:,} chunks of similarities at once "
                        "and the neighbour lists")

    # per representation (simmetrics.pairwise): its neighbours and their weights
    def _partial_fit(self, A, name):
        return _neighbourhoods(A, int(self.k), name, similarity=self.similarity)

    def _finalize_fit_score(self, a, b):
        return _shared_weight(a, b) / (a.n * a.k)
