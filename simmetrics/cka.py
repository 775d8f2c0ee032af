"""Centered kernel alignment (CKA), linear and kernel, biased and debiased.

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))

Kornblith, Norouzi, Lee, Hinton, "Similarity of Neural Network Representations Revisited",
ICML 2019. The debiased form uses the unbiased HSIC of Song et al. 2012 in the numerator and in
both self-terms (Nguyen, Raghu, Kornblith, ICLR 2021), never a mix of the two.
"""

import numpy as np

from ._linalg import center, clearly_varying, looks_near_centred, near_centred, pow2_rescale
from ._parallel import parallel_map
from ._registry import register
from ._validation import check_nonconstant
from .base import Metric, param_dependent
from .hsic import (
    cka_from_hsic,
    hsic_biased,
    hsic_self,
    hsic_unbiased,
    hsic_unbiased_from_sums,
    linear_hsic_unbiased_sums,
)
from .moments import (
    PairMoments,
    _is_torch,
    _torch_matrix,
    check_batch_pair,
    check_nonconstant_array,
    check_nonconstant_moments,
    pair_from_sides,
    side,
)

__all__ = [
    "LinearCKA", "KernelCKA", "linear_cka", "linear_cka_from_moments", "gram_space_cka",
    "rbf_gram", "median_sigma",
]

_CKA_INVARIANCES = frozenset(
    {"orthogonal", "signed_permutation", "permutation", "isotropic_scaling", "translation"}
)


def linear_cka(X, Y, debiased=False):
    """Linear CKA of two centred-or-not float64 matrices (no input checking but zero variance).

    Feature space when that is cheaper (:func:`_gram_space`): biased CKA is
    ||Xc'Yc||_F^2 / (||Xc'Xc||_F ||Yc'Yc||_F), equal to the RV coefficient of Escoufier (1973);
    the debiased form uses the exact feature-space unbiased HSIC
    (:func:`simmetrics.hsic.linear_hsic_unbiased_sums`). Both are evaluated by
    :func:`linear_cka_from_moments` on the data's second moments, the function streaming uses.
    When n is small against the widths the n x n Gram matrices are cheaper and are used instead;
    both routes give the same value. Torch tensors are kept on their device (feature space,
    products in float64 there).

    Returns
    -------
    float
        In [0, 1] biased; in [-1, 1] debiased (the unbiased HSIC is an inner product of
        U-centred Gram matrices, so Cauchy-Schwarz bounds the ratio).
    """
    debiased = bool(debiased)
    if _is_torch(X) or _is_torch(Y) or not _gram_space(X.shape[0], X.shape[1], Y.shape[1]):
        sides = (_feature_side(X, "X", debiased), _feature_side(Y, "Y", debiased))
        return linear_cka_from_moments(pair_from_sides(*sides), debiased)
    F, G = _gram_factor(X), _gram_factor(Y)
    K, L = F @ F.T, G @ G.T
    if debiased:
        return cka_from_hsic(
            hsic_unbiased(K, L), hsic_unbiased(K, K), hsic_unbiased(L, L), "unbiased"
        )
    return cka_from_hsic(np.sum(K * L), np.sum(K * K), np.sum(L * L), "biased")


def _gram_factor(A):
    """F with K = F F' the centred linear kernel of A, scaled to unit ||F||_F (CKA ignores the
    scale). An exact power-of-two rescaling first (largest entry in [0.5, 1)) keeps the norms
    and the fourth powers in range for activations of any magnitude (1e300 and 1e-300)."""
    F = pow2_rescale(center(A))
    F /= np.linalg.norm(F)
    return F


def _gram_cheaper(n, widths, pairs):
    """Whether n x n Gram matrices cost fewer multiply-adds than d x d cross-products, for the
    representations of ``widths`` and the ``pairs`` (i, j) of them to compare.

    Gram space: n^2 d / 2 per representation (K = F F', symmetric) and n^2 per pair (one inner
    product of two kernels). Feature space: n d^2 / 2 per representation (Z'Z) and n d_i d_j
    per pair of two different representations (Z'W).
    """
    gram = n * n * (sum(widths) / 2.0 + len(pairs))
    feature = n * (sum(d * d for d in widths) / 2.0
                   + sum(widths[i] * widths[j] for i, j in pairs if i != j))
    return gram < feature


def _gram_space(n, dx, dy):
    """:func:`_gram_cheaper` for one pair, as fit_score computes it: the two kernels and the
    three inner products, or Z'Z, W'W and Z'W."""
    return _gram_cheaper(n, (dx, dy), [(0, 1), (0, 0), (1, 1)])


# The spread (root mean square of the centred entries) inside which the statistics computed
# directly from the data are trusted: their squares and fourth powers (the debiased HSIC's row
# terms) then stay far inside the float64 range; outside it, the data are rescaled first.
_SAFE_SPREAD = (2.0**-200, 2.0**200)

# How far from centred data may be for their statistics to be taken about 0 (no centred copy;
# see simmetrics._linalg.near_centred): the ratio of raw to centred sums of squares, which the
# move to the means multiplies rounding errors by (its square for the fourth-order row terms of
# the debiased HSIC). Post-ReLU activations have ratios of about 1.5.
_RAW_OVER_CENTRED = {False: 16.0, True: 4.0}


def _feature_side(A, name, debiased):
    """The per-representation statistics of feature-space linear CKA (a
    :class:`simmetrics.moments.Side`), with as few passes over the data as the accuracy allows.

    Data near enough to centred (judged first on a subsample, then on the exact statistics;
    see ``_RAW_OVER_CENTRED``) are used as they are: the products Z'Z, Z'W are taken about 0 and
    moved to the exact means analytically, with no copy of the data. Others are shifted by their
    one-pass mean first (one copy; the residual is again moved exactly). If a statistic is not
    finite, or the spread is outside [2^-200, 2^200] (squares or fourth powers may have over- or
    underflowed), the data are centred and rescaled by an exact power of two, which CKA ignores,
    and the statistics recomputed. The column extremes (the exact zero-variance test) are read
    only when the variance is small enough to be the rounding noise of constant columns; a
    representation with zero variance raises a ``ValueError`` naming ``name``.
    """
    if _is_torch(A):
        return _torch_side(A, name, debiased)
    limit = _RAW_OVER_CENTRED[debiased]
    shift = 0 if looks_near_centred(A, limit) else "mean"
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        out = side(A, shift, row_terms=debiased, extrema=False)
        rep = out.moments
        if shift == 0 and not near_centred(np.diag(rep.gram), rep.sum, rep.n, limit):
            out = side(A, "mean", row_terms=debiased, extrema=False)
    if not _trusted(out.moments):
        out = side(pow2_rescale(center(A)), 0, row_terms=debiased, extrema=False)
    rep = out.moments
    centred_sq = float(np.trace(rep.gram)) - float(rep.sum @ rep.sum) / rep.n
    if not clearly_varying(centred_sq, rep.mean, rep.n):
        rep.minimum, rep.maximum = A.min(axis=0), A.max(axis=0)
        check_nonconstant_moments(rep, name)
    return out


def _trusted(rep):
    """Whether one representation's statistics are finite and its spread inside
    ``_SAFE_SPREAD`` (then every cross term with another trusted one is in range too)."""
    spread = np.sqrt(max(float(np.trace(rep.gram)), 0.0) / (rep.n * rep.width))
    if not _SAFE_SPREAD[0] <= spread <= _SAFE_SPREAD[1]:
        return False
    parts = (rep.sum, rep.gram, rep.row_sq_sum, rep.row_sq_sq)
    return all(np.all(np.isfinite(p)) for p in parts if p is not None)


def _torch_side(A, name, debiased):
    """:func:`_feature_side` of a validated float64 torch tensor, on its device: two-pass
    centring (as :func:`simmetrics._linalg.center`), an exact power-of-two rescaling and unit
    norm, then the statistics about 0; the zero-variance test is exact (column ranges)."""
    import torch

    check_nonconstant_array(A, name)
    A = torch.as_tensor(A, dtype=torch.float64)
    Z = A - A.mean(0)  # one copy on the device; everything after it works in place
    Z -= Z.mean(0)
    top = max(float(Z.amax()), -float(Z.amin()))
    if top > 0.0:
        Z *= 2.0 ** -int(np.frexp(top)[1])  # exact, as _linalg.pow2_rescale
        Z /= torch.linalg.vector_norm(Z)
    return side(Z, 0, row_terms=debiased, extrema=False)


# -- Gram space for many pairs: the kernels in tiles, never all of them at once ------------
#: Bytes of kernel tiles held at once by :func:`gram_space_cka` (one tile of every
#: representation's kernel), and the largest tile side (products of about this size run near
#: the BLAS peak; smaller tiles waste less on the diagonal, where a whole tile is computed).
_GRAM_BLOCK_BYTES = 2**27
_GRAM_TILE = 512


def _gram_tile_row(factors, rows, starts, size):
    """The inner products between every two kernels K_i = F_i F_i' over one row of tiles
    (rows x cols for every column block at or right of the diagonal), off-diagonal tiles
    counted twice (K is symmetric)."""
    L = len(factors)
    buffer = np.empty((L, size * size))  # reused by every tile of the row
    inner = np.zeros((L, L))
    for j in starts:
        if j < rows.start:
            continue
        cols = slice(j, min(j + size, factors[0].shape[0]))
        shape = (rows.stop - rows.start, cols.stop - cols.start)
        tiles = buffer[:, : shape[0] * shape[1]]
        for i, F in enumerate(factors):
            if j == rows.start:  # diagonal tile: a symmetric product (half the work)
                tiles[i] = (F[rows] @ F[rows].T).ravel()
            else:
                np.matmul(F[rows], F[cols].T, out=tiles[i].reshape(shape))
        inner += (1.0 if j == rows.start else 2.0) * (tiles @ tiles.T)
    return inner


def gram_space_cka(reps, pairs, debiased=False, n_jobs=None, progress=False, desc="",
                   block_bytes=None):
    """Linear CKA of many pairs of representations through their n x n Gram matrices, which are
    never held whole: each kernel K_i = F_i F_i' (F_i the centred representation at unit norm,
    as in :func:`linear_cka`) is computed tile by tile, the tiles on and above the diagonal
    only (K is symmetric), and every tile serves all pairs at once::

        T_ij = sum_ab K_i[a, b] K_j[a, b]        (one product of the stacked tiles)

    Biased CKA is T_ij / sqrt(T_ii T_jj) (the kernels are centred); the debiased form evaluates
    the unbiased HSIC of Song et al. 2012 (:func:`simmetrics.hsic.hsic_unbiased_from_sums`)
    from T, the diagonals diag(K_i) = ||f_ia||^2 and the row sums K_i 1 = F_i (F_i' 1), which
    need no kernel. Work: n^2 d / 2 multiply-adds per representation plus n^2 L^2 / 2 for the
    inner products, against n d_i d_j per pair in feature space; for many representations with
    n below their total width this is the cheaper route (:func:`simmetrics.pairwise` chooses it
    by that count). Memory: the factors (one n x d copy per representation) and
    ``block_bytes`` of tiles (128 MiB by default) per worker, whatever n.

    Parameters
    ----------
    reps : list of numpy.ndarray
        Validated float64 (n, d_i) representations of the same stimuli, none constant.
    pairs : list of (int, int)
        Which values to return.
    debiased : bool
    n_jobs, progress, desc
        As :func:`simmetrics._parallel.parallel_map`: each row of tiles is one task.
    block_bytes : int, optional
        Memory for the tiles of all representations at once.

    Returns
    -------
    list of float
        The CKA of each pair, in the order of ``pairs``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> layers = [rng.normal(size=(40, 60)), rng.normal(size=(40, 50)) + 1.0]
    >>> values = gram_space_cka(layers, [(0, 1)], block_bytes=2**14)
    >>> bool(abs(values[0] - linear_cka(*layers)) < 1e-12)
    True
    """
    n, L = reps[0].shape[0], len(reps)
    factors = [_gram_factor(A) for A in reps]
    budget = _GRAM_BLOCK_BYTES if block_bytes is None else int(block_bytes)
    size = int(min(n, _GRAM_TILE, max(16, np.sqrt(budget / (8.0 * L)))))
    starts = list(range(0, n, size))
    parts = parallel_map(
        _gram_tile_row,
        [(factors, slice(i, min(n, i + size)), starts, size) for i in starts],
        n_jobs=n_jobs, progress=progress, desc=desc,
    )
    T = sum(parts)
    if not debiased:
        return [cka_from_hsic(T[i, j], T[i, i], T[j, j], "biased") for i, j in pairs]
    D = [np.einsum("ij,ij->i", F, F) for F in factors]  # the kernels' diagonals
    rows = [F @ F.sum(axis=0) - d for F, d in zip(factors, D)]  # row sums, diagonals zeroed

    def hsic(i, j):
        return hsic_unbiased_from_sums(n, T[i, j] - D[i] @ D[j], rows[i], rows[j])

    return [cka_from_hsic(hsic(i, j), hsic(i, i), hsic(j, j), "unbiased") for i, j in pairs]


def _unbiased_hsic_terms(S):
    """HSIC1(X, Y), HSIC1(X, X), HSIC1(Y, Y) of linear kernels from :class:`PairMoments`."""
    x, y = S.x, S.y
    return (
        linear_hsic_unbiased_sums(S.n, S.cross, S.row_cross, x.sum, y.sum, x.row_sq_sum,
                                  y.row_sq_sum, S.x_row_y, S.y_row_x),
        linear_hsic_unbiased_sums(S.n, x.gram, x.row_sq_sq, x.sum, x.sum, x.row_sq_sum,
                                  x.row_sq_sum, x.row_sq_first, x.row_sq_first),
        linear_hsic_unbiased_sums(S.n, y.gram, y.row_sq_sq, y.sum, y.sum, y.row_sq_sum,
                                  y.row_sq_sum, y.row_sq_first, y.row_sq_first),
    )


def linear_cka_from_moments(stats, debiased=False):
    """Linear CKA from the exact second-moment statistics of X and Y (:class:`PairMoments`).

    The one implementation of feature-space linear CKA: :func:`linear_cka` (whole data) and
    :func:`simmetrics.stream_score` (batches) both call it. The statistics are first moved to
    the exact column means and scaled to unit total variance (CKA ignores both), then::

        biased:    ||Xc'Yc||_F^2 / (||Xc'Xc||_F ||Yc'Yc||_F)
        debiased:  HSIC1(X, Y) / sqrt(HSIC1(X, X) HSIC1(Y, Y)),  HSIC1 from
                   :func:`simmetrics.hsic.linear_hsic_unbiased_sums`

    Parameters
    ----------
    stats : PairMoments
        With row terms when ``debiased``.
    debiased : bool, default False

    Returns
    -------
    float
        A **similarity** in [0, 1] (biased) or [-1, 1] (debiased).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5))
    >>> Y = X @ rng.normal(size=(5, 3)) + rng.normal(size=(200, 3))
    >>> stats = sum(PairMoments.from_arrays(X[i:i + 50], Y[i:i + 50]) for i in range(0, 200, 50))
    >>> bool(abs(linear_cka_from_moments(stats) - linear_cka(X, Y)) < 1e-12)
    True
    """
    if debiased and not stats.has_row_terms:
        raise ValueError("the debiased CKA needs statistics with row_terms=True")
    S = stats.to_numpy()
    if debiased:
        S = S.centred()
        tx, ty = np.trace(S.x.gram), np.trace(S.y.gram)  # ||Xc||_F^2, ||Yc||_F^2
        if tx > 0.0 and ty > 0.0:
            S = S.scaled(1.0 / np.sqrt(tx), 1.0 / np.sqrt(ty))
        return cka_from_hsic(*_unbiased_hsic_terms(S), "unbiased")
    # centred products Xc'Yc = Z'W - s t'/n (the move to the exact means, in one step), each
    # scaled to unit total variance in place, then three dot products: a few d x d passes
    n, s, t = S.n, S.x.sum, S.y.sum
    Gx = S.x.gram - np.outer(s, s / n)
    Gy = S.y.gram - np.outer(t, t / n)
    C = S.cross - np.outer(s, t / n)
    tx, ty = np.trace(Gx), np.trace(Gy)
    if tx > 0.0 and ty > 0.0:
        Gx /= tx
        Gy /= ty
        C /= np.sqrt(tx) * np.sqrt(ty)
    return cka_from_hsic(np.vdot(C, C), np.vdot(Gx, Gx), np.vdot(Gy, Gy), "biased")


@register("linear_cka", aliases=("cka",))
class LinearCKA(Metric):
    """Linear centered kernel alignment (Kornblith et al. 2019).

    Biased (default)::

        CKA(X, Y) = ||Xc' Yc||_F^2 / (||Xc' Xc||_F ||Yc' Yc||_F)

    with Xc, Yc the column-centred representations; this equals the RV coefficient.
    ``debiased=True`` replaces each HSIC by the unbiased estimator of Song et al. 2012
    (Nguyen et al. 2021), which removes the upward bias of the biased form at small n (on
    independent data it is centred on 0), needs n >= 4 and can be slightly negative.

    Computed in feature space (the d x d cross-products), never through n x n Gram matrices
    unless n is smaller than the widths. Memory O(d_x d_y + d_x^2 + d_y^2). The feature-space
    value is :func:`linear_cka_from_moments` of the data's second moments, the same function
    :func:`simmetrics.stream_score` applies to statistics accumulated over batches. Torch
    tensors on an accelerator (CUDA, MPS) stay there: the products run on the device in float64
    (float32 input is promoted there first), only the d x d results come to the CPU.

    A **similarity**: 1 for representations equal up to rotation, scale and translation.
    Range [0, 1] (biased) or [-1, 1] (debiased). Not a metric.

    Parameters
    ----------
    debiased : bool, default False
        Use the unbiased HSIC estimator everywhere.
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 10))
    >>> Q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    >>> round(LinearCKA().fit_score(X, 3 * X @ Q + 1), 12)
    1.0
    """

    kind = "similarity"
    bounds = param_dependent(lambda self: (-1.0, 1.0) if self.debiased else (0.0, 1.0))
    min_samples = param_dependent(lambda self: 4 if self.debiased else 2)
    is_metric = False
    symmetric = True
    invariances = _CKA_INVARIANCES
    reference = "Kornblith et al. 2019, ICML; debiased: Song et al. 2012, Nguyen et al. 2021"

    def __init__(self, debiased=False, layout=None):
        self.debiased = debiased
        self.layout = layout

    def _validate_one(self, A, name):
        # torch tensors on an accelerator stay there (the products run on the device); CPU
        # tensors and everything else become float64 numpy arrays as for every metric
        if _on_accelerator(A):
            return _torch_matrix(A, name, self.layout, self.min_samples)
        return super()._validate_one(A, name)

    def _validate(self, X, Y):
        if _on_accelerator(X) or _on_accelerator(Y):  # a numpy partner joins the tensor there
            return check_batch_pair(X, Y, layout=self.layout, min_samples=self.min_samples)
        return super()._validate(X, Y)

    def _score(self, X, Y):
        if _is_torch(X) or not _gram_space(X.shape[0], X.shape[1], Y.shape[1]):
            return self._fit_score_prepared(self._prepare(X, "X"), self._prepare(Y, "Y"))
        check_nonconstant(X, "X")
        check_nonconstant(Y, "Y")
        return linear_cka(X, Y, debiased=bool(self.debiased))

    def _fit_score(self, X, Y):
        return self._score(X, Y)  # nothing to fit

    # -- pairwise (simmetrics.pairwise): feature space per pair, or Gram space in blocks ----
    def _prepare(self, A, name):
        return _feature_side(A, name, bool(self.debiased))

    def _fit_score_prepared(self, a, b):
        return linear_cka_from_moments(pair_from_sides(a, b), debiased=bool(self.debiased))

    def _pairwise_values(self, reps, pairs, names, n_jobs=None, progress=False):
        """The values of ``pairs`` of numpy representations in Gram space, when that is
        cheaper than feature space for the whole set (:func:`_gram_cheaper`); else None."""
        if any(_is_torch(A) for A in reps):
            return None
        if not _gram_cheaper(reps[0].shape[0], [A.shape[1] for A in reps], pairs):
            return None
        for A, name in zip(reps, names):
            check_nonconstant(A, name)
        return gram_space_cka(reps, pairs, bool(self.debiased), n_jobs=n_jobs,
                              progress=progress, desc=f"{type(self).__name__} pairwise")

    # -- streaming (simmetrics.stream_score) ----------------------------------------------
    @property
    def _moments_row_terms(self):
        return bool(self.debiased)

    def _score_from_moments(self, stats):
        check_nonconstant_moments(stats.x, "X")
        check_nonconstant_moments(stats.y, "Y")
        return linear_cka_from_moments(stats, debiased=bool(self.debiased))


def _on_accelerator(A):
    # "meta" tensors hold no values: they go the standard way, whose validation says so
    device = getattr(getattr(A, "device", None), "type", "cpu")
    return _is_torch(A) and device not in ("cpu", "meta")


def _squared_distances(X):
    sq = np.einsum("ij,ij->i", X, X)
    D = sq[:, None] + sq[None, :] - 2.0 * (X @ X.T)
    # ||x_i||^2 + ||x_j||^2 - 2 x_i'x_j carries a rounding error of about d eps max ||x||^2:
    # entries below it (duplicated samples, negative values) are zeros, exactly
    tol = 4.0 * (X.shape[1] + 2) * np.finfo(np.float64).eps * (sq.max() if sq.size else 0.0)
    D[D <= tol] = 0.0
    np.fill_diagonal(D, 0.0)
    return D


def median_sigma(X, threshold=0.8):
    """Kornblith et al.'s RBF bandwidth: threshold * sqrt(median of the n x n matrix of squared
    distances), the zero diagonal included (numpy's median: the two middle values averaged).

    Examples
    --------
    >>> X = np.array([[0.0], [1.0], [3.0]])
    >>> float(median_sigma(X, threshold=1.0))  # squared distances 0,1,9,1,0,4,9,4,0: median 1
    1.0
    """
    return threshold * np.sqrt(np.median(_squared_distances(X)))


def rbf_gram(X, sigma):
    """RBF Gram matrix exp(-||x_i - x_j||^2 / (2 sigma^2)), shape (n, n).

    The exponent is formed as (D / (2 sigma)) / sigma, so a sigma below 1e-154 (whose square
    underflows) still gives exp(-inf) = 0 off the diagonal rather than NaN.
    """
    return np.exp(_rbf_exponent(X, sigma))


def _rbf_exponent(X, sigma):
    D = _squared_distances(X)
    with np.errstate(over="ignore"):  # -inf where sigma is tiny against D: exp gives 0
        return -(D / (2.0 * sigma)) / sigma


@register("kernel_cka", aliases=("rbf_cka",))
class KernelCKA(Metric):
    """Kernel CKA (Kornblith et al. 2019), by default with an RBF kernel.

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), with K and L Gram matrices of the
    samples of X and Y and HSIC biased or (``debiased=True``) unbiased.

    RBF bandwidth, Kornblith's convention: ``sigma = threshold * sqrt(median(D))`` where D is the
    full n x n matrix of squared Euclidean distances, its zero diagonal included (repsim takes
    the median of the off-diagonal distances instead, which gives slightly different values).
    A fixed ``sigma`` overrides it.

    Works on n x n Gram matrices: O(n^2) memory (8 n^2 bytes per matrix; three live at once),
    so about 2.4 GB at n = 10,000.

    A **similarity** in [0, 1] (biased) or [-1, 1] (debiased). Not a metric. Invariant to
    orthogonal maps, permutations and translations; to isotropic scaling only when the
    bandwidth follows the data (``sigma=None``) or the kernel is linear.

    Parameters
    ----------
    kernel : "rbf", "linear" or callable, default "rbf"
        A callable takes an (n, d) float64 array and returns its (n, n) Gram matrix.
    sigma : float or None, default None
        RBF bandwidth; None uses the median heuristic with ``threshold``.
    threshold : float, default 0.8
        Multiplier of the median distance when ``sigma`` is None.
    debiased : bool, default False
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 5))
    >>> round(KernelCKA().fit_score(X, 2 * X), 12)
    1.0
    """

    kind = "similarity"
    bounds = param_dependent(lambda self: (-1.0, 1.0) if self.debiased else (0.0, 1.0))
    min_samples = param_dependent(lambda self: 4 if self.debiased else 2)
    is_metric = False
    invariances = param_dependent(
        lambda self: frozenset()
        if callable(self.kernel)
        else _CKA_INVARIANCES
        if self.kernel == "linear" or self.sigma is None
        else _CKA_INVARIANCES - {"isotropic_scaling"}
    )
    symmetric = True
    reference = "Kornblith et al. 2019, ICML"

    def __init__(self, kernel="rbf", sigma=None, threshold=0.8, debiased=False, layout=None):
        self.kernel = kernel
        self.sigma = sigma
        self.threshold = threshold
        self.debiased = debiased
        self.layout = layout

    def _gram(self, A, name):
        if callable(self.kernel):
            K = np.asarray(self.kernel(A), dtype=np.float64)
            n = A.shape[0]
            if K.shape != (n, n):
                raise ValueError(f"kernel({name}) must return an ({n}, {n}) matrix, got {K.shape}")
            if not np.isfinite(K).all():
                raise ValueError(f"kernel({name}) returned NaN or infinite values")
            return K
        if self.kernel not in ("linear", "rbf"):
            raise ValueError(f"kernel must be 'rbf', 'linear' or a callable, got {self.kernel!r}")
        # Distances and the centred linear kernel do not change under a translation, and CKA
        # does not change when a kernel is rescaled, or when the data are rescaled together with
        # sigma. So centre first (large means would otherwise cancel catastrophically in
        # ||x_i||^2 + ||x_j||^2 - 2 x_i'x_j and in the centring of K), and rescale by an exact
        # power of two 2^-e (sigma too), so that activations of any magnitude stay in range.
        Ac = center(A)
        A = pow2_rescale(Ac)
        e = int(np.frexp(np.max(np.abs(Ac)))[1])
        if self.kernel == "linear":
            return A @ A.T
        if self.sigma is None:
            if not self.threshold > 0:
                raise ValueError(f"threshold must be positive, got {self.threshold!r}")
            sigma = median_sigma(A, self.threshold)
            if sigma == 0.0:
                raise ValueError(
                    f"the median squared distance between the samples of {name} is 0 (most "
                    "samples are identical), so the median bandwidth is 0; pass sigma="
                )
        else:
            sigma = float(self.sigma)
            if not sigma > 0:
                raise ValueError(f"sigma must be positive, got {self.sigma!r}")
            # in the units of the rescaled data; at least the smallest normal number, so that
            # a sigma tiny against the data gives the identity kernel, not 0 / 0
            sigma = max(float(np.ldexp(sigma, -e)), np.finfo(np.float64).tiny)
        # K - 11' = expm1(-D / 2 sigma^2), which both HSIC estimators treat exactly as K (they
        # are invariant to adding a constant to the kernel): when sigma is large against the
        # distances, K = 1 - tiny and exp would round the information away before the centring
        return np.expm1(_rbf_exponent(A, sigma))

    # per representation (simmetrics.pairwise): the Gram matrix and its HSIC with itself
    def _prepare(self, A, name):
        check_nonconstant(A, name)
        K = self._gram(A, name)
        # hsic_self: a self-term that is 0 up to rounding (a callable kernel the centring
        # removes) raises in cka_from_hsic instead of giving a ratio of noise
        return K, hsic_self(K, "unbiased" if self.debiased else "biased")

    def _fit_score_prepared(self, a, b):
        (K, self_k), (L, self_l) = a, b
        estimator = "unbiased" if self.debiased else "biased"
        hsic = hsic_unbiased if self.debiased else hsic_biased
        return cka_from_hsic(hsic(K, L), self_k, self_l, estimator)
