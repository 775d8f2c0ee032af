"""CKNNA: centred kernel nearest-neighbour alignment, CKA restricted to shared neighbours.

:class:`CKNNA` (Huh, Cheung, Wang, Isola 2024, "The Platonic Representation Hypothesis", ICML):
the alignment of the two linear kernels measured only on the pairs of samples that are k
nearest neighbours in both representations, a local variant of :class:`simmetrics.LinearCKA`
(:mod:`simmetrics.metrics.cka`). The neighbour search is :class:`NeighbourSearch` of
:mod:`simmetrics.metrics.knn` with its tie rule (similarities within rounding tie, a tie at the
k-th place counts fractionally); the masks are kept as O(n k) sparse entries. The HSICs centre
(biased) or shift (unbiased) the masked kernels entry by entry, a block of rows at a time
(O(n^2) time per pair, never an n x n matrix), so that a large common value of the kernel
cancels entry by entry rather than in a final sum of large terms.
"""

import numbers

import numpy as np

from .._core.params import Boolean, Integral, Interval, Options
from .._core.registry import register
from .._core.validation import check_nonconstant
from ..base import Metric, param_dependent
from .knn import NeighbourSearch, column_keys

__all__ = ["CKNNA"]

#: Entries (rows x n) of one block of similarities or of centred masked kernels.
_CHUNK_ENTRIES = 2**22


def _valid_k(k):
    return isinstance(k, numbers.Integral) and not isinstance(k, bool) and k >= 2


class _Masked:
    """A masked kernel M o K as sparse entries: sorted keys i n + j and their values."""

    def __init__(self, n, keys, values):
        self.n, self.keys, self.values = n, keys, values

    def row_sums(self):
        return np.bincount(self.keys // self.n, self.values, minlength=self.n)

    def col_sums(self):
        return np.bincount(self.keys % self.n, self.values, minlength=self.n)

    def transposed(self):
        i, j = np.divmod(self.keys, self.n)
        keys = j * self.n + i
        order = np.argsort(keys)
        return _Masked(self.n, keys[order], self.values[order])

    def centred_rows(self, lo, hi):
        """Rows lo .. hi - 1 of H A H (H = I - 11^T / n) as a dense block."""
        n = self.n
        a, b = np.searchsorted(self.keys, [lo * n, hi * n])
        block = np.zeros((hi - lo) * n)
        block[self.keys[a:b] - lo * n] = self.values[a:b]
        block = block.reshape(hi - lo, n)
        r, c = self.row_sums() / n, self.col_sums() / n
        block -= r[lo:hi, None]
        block -= c[None, :]
        block += r.sum() / n
        return block


def _shifted_rows(A, lo, hi, shift):
    """Rows lo .. hi - 1 of A - shift (11^T - I) as a dense block (zero diagonal)."""
    n = A.n
    a, b = np.searchsorted(A.keys, [lo * n, hi * n])
    block = np.full((hi - lo) * n, -shift)
    block[A.keys[a:b] - lo * n] += A.values[a:b]
    block = block.reshape(hi - lo, n)
    block[np.arange(hi - lo), np.arange(lo, hi)] = 0.0
    return block


def _hsic_unbiased(A, B):
    """Song et al.'s (2012, JMLR) unbiased HSIC of two masked kernels with zero diagonals (a
    sample is never its own neighbour), as platonic-rep applies it to non-symmetric kernels:
    (tr(A B) + 1'A1 1'B1 / ((n-1)(n-2)) - 2 1'A B1 / (n-2)) / (n (n-3)).

    The estimator is unchanged when a constant is added to every off-diagonal entry of A (or
    of B), so each is first shifted by the mean of its off-diagonal entries and the sums are
    taken over the shifted dense entries, a block of rows at a time: a large common value of
    the kernel (near-parallel rows) then cancels entry by entry, not in the final sum."""
    n, Bt = A.n, B.transposed()
    ca, cb = A.values.sum() / (n * (n - 1)), B.values.sum() / (n * (n - 1))
    rows = max(1, _CHUNK_ENTRIES // n)
    trace = 0.0
    col_a, row_b = np.zeros(n), np.zeros(n)
    for lo in range(0, n, rows):
        hi = min(lo + rows, n)
        a, bt = _shifted_rows(A, lo, hi, ca), _shifted_rows(Bt, lo, hi, cb)
        trace += float(np.einsum("ij,ij->", a, bt))
        col_a += a.sum(axis=0)
        row_b += bt.sum(axis=0)  # the columns of B^T are the rows of B
    sum_a, sum_b = col_a.sum(), row_b.sum()
    value = trace + sum_a * sum_b / ((n - 1) * (n - 2)) - 2.0 * float(col_a @ row_b) / (n - 2)
    return value / (n * (n - 3))


def _hsic_biased(A, B):
    """tr(A H B H) = sum_ij (H A H)_ij (H B' H)_ij with B' = B^T, from the centred entries."""
    n, Bt = A.n, B.transposed()
    rows = max(1, _CHUNK_ENTRIES // n)
    total = 0.0
    for lo in range(0, n, rows):
        hi = min(lo + rows, n)
        total += float(np.einsum("ij,ij->", A.centred_rows(lo, hi), Bt.centred_rows(lo, hi)))
    return total


class _State:
    """One representation's neighbour mask (keys, weights) and its kernel on those keys."""

    def __init__(self, n, keys, weights, gram, self_hsic):
        self.n, self.keys, self.weights, self.gram = n, keys, weights, gram
        self.self_hsic = self_hsic


def _kernel_entries(search, keys, n):
    """K_ij on the given keys i n + j, a block at a time."""
    i, j = np.divmod(keys, n)
    if search.which is not None:
        i, j = search.which[i], search.which[j]
    P = search.distinct
    out = np.empty(keys.size)
    step = max(1, _CHUNK_ENTRIES // P.shape[1])
    for lo in range(0, keys.size, step):
        out[lo:lo + step] = np.einsum("ij,ij->i", P[i[lo:lo + step]], P[j[lo:lo + step]])
    return out


def _neighbour_mask(search, n, k, exclude_self):
    """Keys (sorted, i n + j) and weights of every sample's k nearest neighbours: 1 above the
    k-th largest similarity v plus the tie tolerance, p / t for each of the t samples within
    the tolerance of v when p places are left (no sample order decides anything)."""
    step = max(1, _CHUNK_ENTRIES // n)
    keys, weights = [], []
    for rows, S, columns in search.candidate_chunks(k, step, exclude_self):
        tol = np.broadcast_to(search.tol_of(rows), (rows.size, 1))
        kth = np.partition(S, S.shape[1] - k, axis=1)[:, [S.shape[1] - k]]
        above = S > kth + tol
        tied = (S >= kth - tol) & ~above
        share = (k - np.count_nonzero(above, axis=1)) / np.count_nonzero(tied, axis=1)
        r, c = np.nonzero(above | tied)
        keys.append(column_keys(rows, r, c, n, columns))
        weights.append(np.where(above[r, c], 1.0, share[r]))
    keys, weights = np.concatenate(keys), np.concatenate(weights)
    order = np.argsort(keys)  # the chunks come in no particular order of samples
    return keys[order], weights[order]


@register("cknna")
class CKNNA(Metric):
    """Centred kernel nearest-neighbour alignment (Huh, Cheung, Wang, Isola 2024, ICML)::

        CKNNA(X, Y) = S(K, L) / sqrt(S(K, K) S(L, L)),
        S(K, L)     = HSIC(M o K, M o L),   M_ij = m_K(i, j) m_L(i, j)

    with K = X X^T and L = Y Y^T the linear kernels (features not centred; unit rows first
    with ``similarity="cosine"``), m_K(i, j) = 1 when j is among the k nearest neighbours of i
    by K (the largest K_ij), o the elementwise product (in S(K, K) the mask is m_K alone), and
    HSIC Song et al.'s (2012, JMLR) unbiased estimator (``unbiased=True``; a sample is not its
    own neighbour; the masked kernels are not symmetric and the estimator is applied to them as
    they are) or the biased tr(A H B H), H = I - 11^T / n (``unbiased=False``; a sample may
    then be its own neighbour). Convention of the paper's code (minyoungg/platonic-rep,
    ``metrics.py`` ``cknna`` with its ``hsic_unbiased`` / ``hsic_biased``), except that
    platonic-rep adds 1e-6 to the denominator and simmetrics does not.

    Ties at the k-th place count fractionally, as in :class:`simmetrics.MutualKNN`: the t
    samples tied there (within rounding, :func:`simmetrics.metrics.knn.tie_tolerance`) each
    get mask weight p / t when p places are left, so no sample order decides the value.

    A **similarity**: 1 for identical neighbourhoods and kernels, near 0 for unrelated
    representations. Not bounded in general (the masks of the numerator and the denominator
    differ, so no Cauchy-Schwarz bound holds), though values lie in [-1, 1] in practice. The
    unbiased estimator is not exactly symmetric in X and Y (the term 1'A B1 of non-symmetric
    masks); the biased one is. Invariant to orthogonal maps of the neurons and to isotropic
    scaling, not to translation.

    Raises ``ValueError`` for a representation whose neurons are all constant (no
    neighbourhood: every sample ties with every other), for an all-zero sample with
    ``similarity="cosine"``, and for a representation whose masked kernel has no variance left
    after centring (self-HSIC not positive: for example one neuron with cosine similarity,
    where every kernel entry is +-1), where CKNNA's denominator is undefined.

    Parameters
    ----------
    k : int, default 10
        Number of neighbours (at least 2, as in platonic-rep); needs n > k samples.
    unbiased : bool, default True
        Song et al.'s unbiased HSIC (platonic-rep's default) or the biased HSIC.
    similarity : {"cosine", "inner_product"}, default "cosine"
        Kernels and neighbours from unit rows (platonic-rep's ``normalize=True``, keys
        ``_l2rows``) or from the raw rows (keys ``_raw``).
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 6))
    >>> Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    >>> round(CKNNA(k=5).fit_score(X, 2 * X @ Q), 12)
    1.0
    """

    kind = "similarity"
    bounds = (-float("inf"), float("inf"))
    is_metric = False
    invariances = frozenset({"orthogonal", "signed_permutation", "permutation",
                             "isotropic_scaling"})
    symmetric = param_dependent(lambda self: self.unbiased is False)
    min_samples = param_dependent(
        lambda self: max(4, int(self.k) + 1) if _valid_k(self.k) else 4)
    same_width = False
    _gradient_note = ("its kernels are masked by the mutual k-nearest-neighbour sets, which are "
                      "piecewise constant in the inputs: the value is smooth in the kernel "
                      "entries while the masks stay fixed but jumps where a set changes, and no "
                      "gradient formula is given for it; use linear_cka or kernel_cka (CKNNA "
                      "without the masks) or rsa with compare='pearson'")
    reference = "Huh, Cheung, Wang, Isola 2024, The Platonic Representation Hypothesis, ICML"
    _parameter_constraints = {"k": [Interval(Integral, 2, None)], "unbiased": [Boolean()],
                              "similarity": [Options({"cosine", "inner_product"})]}

    def __init__(self, k=10, unbiased=True, similarity="cosine", layout=None):
        self.k = k
        self.unbiased = unbiased
        self.similarity = similarity
        self.layout = layout

    def _memory_bytes(self, n, d, count, jobs=1):
        """Peak bytes with ``count`` prepared neighbourhoods of n samples held and ``jobs``
        searches (d neurons) running at once, and what that counts."""
        rows = min(n, max(1, _CHUNK_ENTRIES // n))
        k = int(self.k)
        nbytes = 8 * (jobs * (8 * rows * n + 3 * n * d) + (6 * count + 16) * n * k
                      + count * n * d + 4 * _CHUNK_ENTRIES)
        return nbytes, (f"{jobs * 8} float64 {rows:,} x {n:,} chunks of similarities at once "
                        "and the neighbour lists")

    def _hsic(self, A, B):
        return _hsic_unbiased(A, B) if self.unbiased else _hsic_biased(A, B)

    def _partial_fit(self, A, name):
        check_nonconstant(A, name)  # identical samples: no neighbourhood
        n = A.shape[0]
        search = NeighbourSearch(A, name, self.similarity)
        keys, weights = _neighbour_mask(search, n, int(self.k), bool(self.unbiased))
        gram = _kernel_entries(search, keys, n)
        own = _Masked(n, keys, weights**2 * gram)
        value = self._hsic(own, own)
        if not value > 0.0:
            raise ValueError(
                f"the HSIC of {name}'s kernel on its own {self.k}-nearest-neighbour mask is "
                f"{value:.3g}, not positive, so CKNNA's denominator is undefined ({name}'s "
                "masked kernel has no variance left after centring)")
        return _State(n, keys, weights, gram, value)

    def _finalize_fit_score(self, sx, sy):
        keys, ix, iy = np.intersect1d(sx.keys, sy.keys, assume_unique=True,
                                      return_indices=True)
        mask = sx.weights[ix] * sy.weights[iy]
        value = self._hsic(_Masked(sx.n, keys, mask * sx.gram[ix]),
                           _Masked(sx.n, keys, mask * sy.gram[iy]))
        return value / np.sqrt(sx.self_hsic * sy.self_hsic)

    def _score(self, X, Y):
        return self._finalize_fit_score(self._partial_fit(X, "X"), self._partial_fit(Y, "Y"))
