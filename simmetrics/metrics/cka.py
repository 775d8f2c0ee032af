"""Centered kernel alignment (CKA), linear and kernel, biased and debiased.

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))

Kornblith, Norouzi, Lee, Hinton, "Similarity of Neural Network Representations Revisited",
ICML 2019. The debiased form uses the unbiased HSIC of Song et al. 2012 in the numerator and in
both self-terms (Nguyen, Raghu, Kornblith, ICLR 2021), never a mix of the two.
"""

import numpy as np

from .._core.backend import is_tensor, on_accelerator, to_numpy
from .._core.linalg import center, clearly_varying, looks_near_centred, near_centred, pow2_rescale
from .._core.parallel import parallel_map
from .._core.params import Boolean, Interval, Options, Real
from .._core.registry import register
from .._core.validation import check_nonconstant
from ..base import Metric, param_dependent
from .hsic import (
    UnbiasedGram,
    unbiased_hsic_terms,
    cka_from_hsic,
    hsic_biased,
    hsic_self,
    hsic_unbiased_from_sums,
    u_centred,
)
from ..moments import (
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
    (:func:`simmetrics.metrics.hsic.linear_hsic_unbiased_sums`). Both are evaluated by
    :func:`linear_cka_from_moments` on the data's second moments, the function streaming uses.
    When n is small against the widths the n x n Gram matrices are cheaper and are used instead;
    both routes give the same value. The debiased feature-space formula loses its digits when
    one stimulus dominates the sums of squared row norms (its rounding errors grow like
    eps (k_max / typical |x_i'x_j|)^2); that is detected from the same sums (O(d), see
    :func:`linear_cka_from_moments`) and the value then comes from the n x n route
    (:func:`gram_space_cka`), which keeps them. Torch tensors are kept on their device (feature
    space, products in float64 there; the rare n x n fallback runs on the CPU).

    Returns
    -------
    float
        In [0, 1] biased; in [-1, 1] debiased (the unbiased HSIC is an inner product of
        U-centred Gram matrices, so Cauchy-Schwarz bounds the ratio).
    """
    debiased = bool(debiased)
    if is_tensor(X) or is_tensor(Y) or not _gram_space(X.shape[0], X.shape[1], Y.shape[1]):
        sides = (_feature_side(X, "X", debiased), _feature_side(Y, "Y", debiased))
        return _cka_of_sides(*sides, debiased)
    F, G = _gram_factor(X, debiased), _gram_factor(Y, debiased)
    K, L = F @ F.T, G @ G.T
    if debiased:
        return _unbiased_cka_of_kernels(K, L)
    return cka_from_hsic(np.sum(K * L), np.sum(K * K), np.sum(L * L), "biased")


def _unbiased_cka_of_kernels(K, L):
    """Debiased CKA of two n x n linear kernels that may be overwritten: their diagonals are
    set to zero in place, so that tr(K~ L~) and the row sums K~ 1 are sums of the off-diagonal
    entries themselves. Subtracting the diagonal's share from sums that include it
    (sum K L - diag(K)'diag(L)) cancels digits in proportion to (largest squared row norm /
    typical |K_ij|)^2, all of them when one stimulus dominates."""
    n = K.shape[0]
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs at least 4 samples, got {n}")
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(L, 0.0)
    k, l = K.sum(axis=1), L.sum(axis=1)
    return cka_from_hsic(
        hsic_unbiased_from_sums(n, np.vdot(K, L), k, l),
        hsic_unbiased_from_sums(n, np.vdot(K, K), k, k),
        hsic_unbiased_from_sums(n, np.vdot(L, L), l, l),
        "unbiased",
    )


def _cka_of_sides(a, b, debiased):
    """Linear CKA of two :class:`simmetrics.moments.Side`: feature space, unless the debiased
    value has lost its digits there (one dominant stimulus, see :func:`linear_cka_from_moments`):
    then the n x n route of :func:`gram_space_cka` on the sides' data (shifted and scaled
    copies of X and Y, which neither CKA depends on; torch tensors come to the CPU), which
    keeps them at O(n^2 d) work and bounded memory."""
    value, trusted = _cka_from_moments(pair_from_sides(a, b), debiased)
    if trusted:
        return value
    return gram_space_cka([to_numpy(a.data), to_numpy(b.data)], [(0, 1)], debiased=True)[0]


def _gram_factor(A, debiased=False):
    """F with K = F F' the linear kernel of A about a shift, scaled to unit ||F||_F (CKA ignores
    the scale). The biased estimator needs the centred kernel: the shift is the column mean
    (two-pass centring). The unbiased HSIC does not depend on the shift (Song et al. 2012: the
    U-centring removes every kernel of the form a_i + a_j + c), so the debiased one takes the
    column median: rows then lie about the typical stimulus, and a single dominant stimulus
    (which drags the mean a fraction 1/n of its size) does not make every kernel entry large,
    whose rounding the U-centring would have to cancel; |median - mean| <= std, so no data are
    worse off, and differences with the median (itself a data value, or the mean of two) are
    exact for entries near it. An exact power-of-two rescaling first (largest entry in
    [0.5, 1), exact, so the same bits as on A) keeps the differences, the norms and the fourth
    powers in range for activations of any magnitude (1e308 and 1e-300)."""
    F = pow2_rescale(A)  # first: differences of entries of 1e308 would overflow
    F = F - np.median(F, axis=0) if debiased else center(F)
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
# see simmetrics._core.linalg.near_centred): the ratio of raw to centred sums of squares, which the
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
    if is_tensor(A):
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
    centring (as :func:`simmetrics._core.linalg.center`), an exact power-of-two rescaling and unit
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


def _gram_tile_row(factors, rows, starts, size, hollow=False):
    """The inner products between every two kernels K_i = F_i F_i' over one row of tiles
    (rows x cols for every column block at or right of the diagonal), off-diagonal tiles
    counted twice (K is symmetric).

    ``hollow``: the kernels' diagonals are taken as zero (K~ of the unbiased HSIC), and the
    row sums K~_i 1 are accumulated from the same tiles: an (L, n) array, this row of tiles'
    share (its off-diagonal tiles count for the column rows too). Returns (inner, row sums or
    None)."""
    L, n = len(factors), factors[0].shape[0]
    buffer = np.empty((L, size * size))  # reused by every tile of the row
    inner = np.zeros((L, L))
    sums = np.zeros((L, n)) if hollow else None
    for j in starts:
        if j < rows.start:
            continue
        cols = slice(j, min(j + size, n))
        shape = (rows.stop - rows.start, cols.stop - cols.start)
        tiles = buffer[:, : shape[0] * shape[1]]
        for i, F in enumerate(factors):
            tile = tiles[i].reshape(shape)
            if j == rows.start:  # diagonal tile: a symmetric product (half the work)
                tile[...] = F[rows] @ F[rows].T
                if hollow:
                    np.fill_diagonal(tile, 0.0)
            else:
                np.matmul(F[rows], F[cols].T, out=tile)
            if hollow:
                sums[i, rows] += tile.sum(axis=1)
                if j != rows.start:
                    sums[i, cols] += tile.sum(axis=0)
        inner += (1.0 if j == rows.start else 2.0) * (tiles @ tiles.T)
    return inner, sums


def gram_space_cka(reps, pairs, debiased=False, n_jobs=None, progress=False, desc="",
                   block_bytes=None):
    """Linear CKA of many pairs of representations through their n x n Gram matrices, which are
    never held whole: each kernel K_i = F_i F_i' (F_i the centred representation at unit norm,
    as in :func:`linear_cka`) is computed tile by tile, the tiles on and above the diagonal
    only (K is symmetric), and every tile serves all pairs at once::

        T_ij = sum_ab K_i[a, b] K_j[a, b]        (one product of the stacked tiles)

    Biased CKA is T_ij / sqrt(T_ii T_jj) (the kernels are centred); the debiased form evaluates
    the unbiased HSIC of Song et al. 2012 (:func:`simmetrics.metrics.hsic.hsic_unbiased_from_sums`)
    from the same sums over the kernels with zeroed diagonals K~_i (the tiles' diagonals are
    set to 0, F_i shifted by the column median, see :func:`_gram_factor`) and their row sums
    K~_i 1, accumulated from the same tiles: never as sums with the diagonal minus its share,
    which cancel every digit when one stimulus dominates. Work: n^2 d / 2 multiply-adds per
    representation plus n^2 L^2 / 2 for the inner products (and n^2 L for the row sums),
    against n d_i d_j per pair in feature space; for many representations with
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
        As :func:`simmetrics._core.parallel.parallel_map`: each row of tiles is one task.
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
    debiased = bool(debiased)
    if debiased and n < 4:
        raise ValueError(f"the unbiased HSIC needs at least 4 samples, got {n}")
    factors = [_gram_factor(A, debiased) for A in reps]
    budget = _GRAM_BLOCK_BYTES if block_bytes is None else int(block_bytes)
    size = int(min(n, _GRAM_TILE, max(16, np.sqrt(budget / (8.0 * L)))))
    starts = list(range(0, n, size))
    parts = parallel_map(
        _gram_tile_row,
        [(factors, slice(i, min(n, i + size)), starts, size, debiased) for i in starts],
        n_jobs=n_jobs, progress=progress, desc=desc,
    )
    T = sum(inner for inner, _ in parts)
    if not debiased:
        return [cka_from_hsic(T[i, j], T[i, i], T[j, j], "biased") for i, j in pairs]
    rows = sum(sums for _, sums in parts)  # K~_i 1: sums of the off-diagonal entries

    def hsic(i, j):
        return hsic_unbiased_from_sums(n, T[i, j], rows[i], rows[j])

    return [cka_from_hsic(hsic(i, j), hsic(i, i), hsic(j, j), "unbiased") for i, j in pairs]


#: The debiased CKA from second moments is trusted while its rounding-error amplification
#: (:func:`_moments_amplification`) is at most this: eps times it is then below 1.5e-11, the
#: accuracy the streaming and whole-data routes are held to (ordinary data: 2 to 20, d / n).
_MAX_AMPLIFICATION = 2.0**16


def _moments_amplification(parts):
    """By how much the feature-space debiased CKA multiplies rounding errors, from the
    (value, magnitude) of its three unbiased HSICs: the error of HSIC1(X, Y) relative to
    sqrt(HSIC1(X, X) HSIC1(Y, Y)) (the scale CKA divides by, as HSIC1(X, Y) may be near 0),
    plus half the relative errors of the two self-terms. Measured against exact rational
    arithmetic the error stays below eps times this (tests/test_trust_moments.py). inf where a
    self-term is exactly 0 (its sign unknown)."""
    (xy, mxy), (xx, mxx), (yy, myy) = parts
    if xx == 0.0 or yy == 0.0:
        return np.inf
    return float(mxy / np.sqrt(abs(xx) * abs(yy)) + 0.5 * (mxx / abs(xx) + myy / abs(yy)))


def _cka_from_moments(stats, debiased):
    """(CKA, trusted): :func:`linear_cka_from_moments` without the error for statistics whose
    debiased CKA has lost its digits (``trusted`` False, the value NaN; see
    :func:`_moments_amplification`)."""
    if debiased and not stats.has_row_terms:
        raise ValueError("the debiased CKA needs statistics with row_terms=True")
    S = stats.to_numpy()
    if debiased:
        S = S.centred()
        tx, ty = np.trace(S.x.gram), np.trace(S.y.gram)  # ||Xc||_F^2, ||Yc||_F^2
        if tx > 0.0 and ty > 0.0:
            S = S.scaled(1.0 / np.sqrt(tx), 1.0 / np.sqrt(ty))
        parts = unbiased_hsic_terms(S, magnitudes=True)
        if not _moments_amplification(parts) <= _MAX_AMPLIFICATION:
            return np.nan, False
        return cka_from_hsic(*(value for value, _ in parts), "unbiased"), True
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
    return cka_from_hsic(np.vdot(C, C), np.vdot(Gx, Gx), np.vdot(Gy, Gy), "biased"), True


def linear_cka_from_moments(stats, debiased=False):
    """Linear CKA from the exact second-moment statistics of X and Y (:class:`PairMoments`).

    The one implementation of feature-space linear CKA: :func:`linear_cka` (whole data) and
    :func:`simmetrics.stream_score` (batches) both call it. The statistics are first moved to
    the exact column means and scaled to unit total variance (CKA ignores both), then::

        biased:    ||Xc'Yc||_F^2 / (||Xc'Xc||_F ||Yc'Yc||_F)
        debiased:  HSIC1(X, Y) / sqrt(HSIC1(X, X) HSIC1(Y, Y)),  HSIC1 from
                   :func:`simmetrics.metrics.hsic.linear_hsic_unbiased_sums`

    The debiased form subtracts the diagonal's share sum_i ||x_i||^2 ||y_i||^2 from sums that
    include it; when one stimulus dominates them, that cancels the digits (rounding errors are
    amplified by about (k_max / typical |x_i'x_j|)^2). The amplification is estimated from
    the same sums (O(d), :func:`_moments_amplification`), and beyond 2^16 (errors above
    1.5e-11) a ``ValueError`` says so: no value is returned. The whole-data estimators then
    take the n x n route instead, which keeps the digits.

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
    >>> from simmetrics import PairMoments
    >>> stats = sum(PairMoments.from_arrays(X[i:i + 50], Y[i:i + 50]) for i in range(0, 200, 50))
    >>> bool(abs(linear_cka_from_moments(stats) - linear_cka(X, Y)) < 1e-12)
    True
    """
    value, trusted = _cka_from_moments(stats, debiased)
    if not trusted:
        raise ValueError(_LOST_DIGITS)
    return value


_LOST_DIGITS = (
    "the debiased CKA cannot be computed from these second-moment statistics without losing "
    "most of its digits: one stimulus (row) has a squared norm ||x_i||^2 ||y_i||^2 that "
    "dominates the sums, and the unbiased HSIC subtracts that diagonal share from them "
    "(rounding errors grow like eps (k_max / typical |x_i'x_j|)^2). Compute "
    "LinearCKA(debiased=True).fit_score(X, Y) on the whole data (its n x n route keeps the "
    "digits), use the biased LinearCKA(), which has no such term, or check that stimulus"
)


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
    :func:`simmetrics.stream_score` applies to statistics accumulated over batches; where one
    dominant stimulus would cost the debiased value its digits there, the n x n kernels (in
    tiles, bounded memory) are used instead, and ``stream_score`` raises. Torch
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

    _parameter_constraints = {"debiased": [Boolean()]}

    def __init__(self, debiased=False, layout=None):
        self.debiased = debiased
        self.layout = layout

    def _validate_one(self, A, name):
        # torch tensors on an accelerator stay there (the products run on the device); CPU
        # tensors and everything else become float64 numpy arrays as for every metric
        if on_accelerator(A):
            return _torch_matrix(A, name, self.layout, self.min_samples)
        return super()._validate_one(A, name)

    def _validate(self, X, Y):
        if on_accelerator(X) or on_accelerator(Y):  # a numpy partner joins the tensor there
            return check_batch_pair(X, Y, layout=self.layout, min_samples=self.min_samples)
        return super()._validate(X, Y)

    def _score(self, X, Y):
        if is_tensor(X) or not _gram_space(X.shape[0], X.shape[1], Y.shape[1]):
            return self._finalize_fit_score(self._partial_fit(X, "X"), self._partial_fit(Y, "Y"))
        check_nonconstant(X, "X")
        check_nonconstant(Y, "Y")
        return linear_cka(X, Y, debiased=bool(self.debiased))

    def _fit_score(self, X, Y):
        return self._score(X, Y)  # nothing to fit

    # -- pairwise (simmetrics.pairwise): feature space per pair, or Gram space in blocks ----
    def _partial_fit(self, A, name):
        return _feature_side(A, name, bool(self.debiased))

    def _finalize_fit_score(self, a, b):
        return _cka_of_sides(a, b, bool(self.debiased))

    def _pairwise_values(self, reps, pairs, names, n_jobs=None, progress=False):
        """The values of ``pairs`` of numpy representations in Gram space, when that is
        cheaper than feature space for the whole set (:func:`_gram_cheaper`); else None."""
        if any(is_tensor(A) for A in reps):
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


#: An entry of the Gram form sq_i + sq_j - 2 x_i'x_j below this fraction of sq_i + sq_j has
#: cancelled (its rounding error, about d eps (sq_i + sq_j), would be more than 1024 d eps of
#: it) and is recomputed from the differences x_i - x_j.
_CANCELLED = 2.0**-10

#: entries per block of the cancellation scan (kept in cache), numbers per batch of
#: recomputed differences
_SCAN_BLOCK = 2**17
_DIFF_BATCH = 2**18


def _squared_distances(X):
    """The n x n matrix of squared Euclidean distances ``||x_i - x_j||^2``, keeping their digits.

    The fast route is the Gram form ``sq_i + sq_j - 2 x_i'x_j`` (one symmetric product), with
    ``sq_i = ||x_i||^2``; its rounding error is about ``d eps (sq_i + sq_j)``, so it loses the
    digits of an entry that is small against ``sq_i + sq_j`` (close points far from the
    origin: a tight cluster beside a far outlier, data with a large offset, duplicated samples,
    and the negative values rounding then gives). Hence:

    1. the origin moves to the column means when they dominate the spread (a large offset);
    2. the Gram form, scanned for entries that have cancelled, ``D_ij <= (sq_i + sq_j) / 1024``;
    3. when more than n have, the origin moves to the coordinate-wise median of the rows instead
       (the median, unlike the mean, stays inside a cluster however far an outlier lies) and
       the Gram form is formed again;
    4. every entry that has still cancelled is recomputed from the differences ``x_i - x_j`` of
       the rows as given, which keep their relative digits (and give exact zeros for
       duplicates).

    Moving the origin changes no distance. Every entry keeps about 12 significant digits or
    more: 1024 (d + 2) eps relative in the Gram form, a few eps from the differences. On
    ordinary data the cost is the product and one pass over the matrix. The result is exactly
    symmetric with a zero diagonal.

    Examples
    --------
    >>> X = np.array([[1e8, 0.0], [1e8 + 1e-3, 0.0], [1e8, 2e-3]])
    >>> (_squared_distances(X) * 1e6).round(6).tolist()  # the Gram form alone gives 0 or 2e8
    [[0.0, 1.0, 4.0], [1.0, 0.0, 5.0], [4.0, 5.0, 0.0]]
    """
    n = X.shape[0]
    if not n:
        return np.zeros((0, 0))
    mean = X.mean(axis=0)
    spread = np.einsum("ij,ij->", X, X) / n - float(mean @ mean)  # the sum of the variances
    shifted = X - mean if mean @ mean > spread else X
    D, sq, pairs, cancelled = _gram_distances(shifted)
    if cancelled > n:
        shifted = X - np.median(X, axis=0)
        D, sq, pairs, cancelled = _gram_distances(shifted, D)
    if cancelled:
        # from the differences of the rows as given: a shift of the origin rounds them
        for i, j in ([pairs] if pairs is not None else _cancelled_pairs(D, sq)):
            _set_from_differences(X, D, i, j)
    np.fill_diagonal(D, 0.0)
    return D


def _gram_distances(X, out=None):
    """The Gram form of the squared distances of the rows of ``X`` (into ``out`` when given;
    every entry ``(sq_i + sq_j) - 2 x_i'x_j``, so exactly symmetric; the diagonal +inf), the
    squared norms ``sq``, the pairs i < j where it has cancelled, ``D_ij <= (sq_i + sq_j) /
    1024`` (as two index arrays; None when there are more than 4 n), and their number. Formed in
    blocks of rows that stay in cache."""
    n = X.shape[0]
    sq = np.einsum("ij,ij->i", X, X)
    D = np.matmul(X, X.T, out=out)  # A A' by a symmetric rank-k update: exactly symmetric
    np.fill_diagonal(D, -np.inf)  # +inf once multiplied by -2: never below the line
    step = max(1, _SCAN_BLOCK // n)
    found, cancelled = [], 0
    for start in range(0, n, step):
        block = D[start:start + step]
        pair = sq[start:start + step, None] + sq
        block *= -2.0
        block += pair
        pair *= _CANCELLED
        hit = block <= pair
        if hit.any():
            i, j = np.nonzero(hit)
            i += start
            upper = j > i  # each pair once, from its row in the upper triangle
            cancelled += int(np.count_nonzero(upper))
            if cancelled <= 4 * n:
                found.append((i[upper], j[upper]))
    if cancelled > 4 * n:
        return D, sq, None, cancelled
    pairs = tuple(np.concatenate(a) for a in zip(*found)) if found else None
    return D, sq, pairs, cancelled


def _cancelled_pairs(D, sq):
    """The pairs i < j where the Gram form ``D`` has cancelled (see :func:`_gram_distances`),
    found again block by block of rows and yielded as (i, j) index arrays."""
    n = D.shape[0]
    step = max(1, _SCAN_BLOCK // n)
    for start in range(0, n, step):
        i, j = np.nonzero(D[start:start + step] <= _CANCELLED * (sq[start:start + step, None] + sq))
        i += start
        upper = j > i
        yield i[upper], j[upper]


def _set_from_differences(X, D, i, j):
    """D_ij = D_ji = ||x_i - x_j||^2 from the differences, for index arrays ``i`` and ``j``."""
    batch = max(1, _DIFF_BATCH // max(X.shape[1], 1))
    for b in range(0, i.size, batch):
        bi, bj = i[b:b + batch], j[b:b + batch]
        diff = X[bi] - X[bj]
        D[bi, bj] = D[bj, bi] = np.einsum("ij,ij->i", diff, diff)


def median_sigma(X, threshold=0.8):
    """Kornblith et al.'s RBF bandwidth: threshold * sqrt(median of the n x n matrix of squared
    distances), the zero diagonal included (numpy's median: the two middle values averaged).

    The squared distances are those of :func:`_squared_distances`, which keep their digits for
    a tight cluster beside far outliers.

    Examples
    --------
    >>> X = np.array([[0.0], [1.0], [3.0]])
    >>> float(median_sigma(X, threshold=1.0))  # squared distances 0,1,9,1,0,4,9,4,0: median 1
    1.0
    """
    return threshold * np.sqrt(np.median(_squared_distances(X)))


def _check_sigma(sigma, what="sigma"):
    if isinstance(sigma, bool) or not (isinstance(sigma, Real) and 0.0 < sigma < np.inf):
        raise ValueError(
            f"{what} must be a positive finite number, got {sigma!r}"
            + ("; an infinitely wide RBF kernel is the limit in which kernel CKA becomes the "
               "linear kernel's: use kernel='linear'"
               if isinstance(sigma, Real) and sigma == np.inf else "")
        )


def rbf_gram(X, sigma):
    """RBF Gram matrix exp(-||x_i - x_j||^2 / (2 sigma^2)), shape (n, n).

    The squared distances are those of :func:`_squared_distances` (they keep their digits for
    a tight cluster beside far outliers). The exponent is formed as (D / (2 sigma)) / sigma,
    so a sigma below 1e-154 (whose square underflows) still gives exp(-inf) = 0 off the
    diagonal rather than NaN.

    Raises
    ------
    ValueError
        ``sigma`` not a positive finite number.
    """
    _check_sigma(sigma)
    D = _rbf_exponent(_squared_distances(X), sigma)
    return np.exp(D, out=D)


def _rbf_exponent(D, sigma):
    """-D / (2 sigma^2) in place of the squared distances ``D``, formed as (D / (2 sigma)) /
    sigma (-inf where sigma is tiny against D: exp gives 0)."""
    with np.errstate(over="ignore", under="ignore"):
        factor = -(0.5 / sigma) / sigma
    if np.isfinite(factor) and factor != 0.0:
        D *= factor  # one pass; the same value up to a rounding
        return D
    with np.errstate(over="ignore"):
        D /= 2.0 * sigma
        D /= sigma
    np.negative(D, out=D)
    return D


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
    so about 2.4 GB at n = 10,000. Before starting, that peak for both inputs (for
    :func:`simmetrics.pairwise`, one kernel per representation plus one) is checked against the
    memory budget (:func:`simmetrics.set_memory_budget`): a ``MemoryBudgetError`` names the
    rows (and, for conv or token layouts, how many each stimulus contributed) and the
    alternatives.

    Squared distances are formed by the Gram identity where it keeps its digits and from the
    differences where it cancels (a tight cluster beside a far outlier, duplicated samples);
    see :func:`_squared_distances`. A ``sigma`` so large against every distance that
    ``exp(-D / 2 sigma^2)`` is ``1 - D / 2 sigma^2`` to the last bit gives that limit exactly
    (the linear kernel's CKA), never a kernel rounded to a constant.

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

    _parameter_constraints = {
        "kernel": [Options({"rbf", "linear"}), callable],
        "sigma": [None, Interval(Real, 0, None, closed="neither")],
        "threshold": [Interval(Real, 0, None, closed="neither")],
        "debiased": [Boolean()],
    }

    def __init__(self, kernel="rbf", sigma=None, threshold=0.8, debiased=False, layout=None):
        self.kernel = kernel
        self.sigma = sigma
        self.threshold = threshold
        self.debiased = debiased
        self.layout = layout

    # -- memory: measured with tracemalloc, preparing a representation holds its n x n kernel
    # and one more n x n temporary (the median's copy of D, the centred kernel of hsic_self),
    # and the pair step one (hsic_biased's centred kernel): count + jobs matrices in all
    def _memory_bytes(self, n, d, count, jobs=1):
        """Peak bytes with ``count`` kernels of n samples held and ``jobs`` per-representation
        steps (d neurons) running at once, and what that counts."""
        matrices = count + jobs
        # and, per job, copies of the input and a batch of differences (_squared_distances)
        nbytes = 8 * (matrices * n * n + jobs * (4 * n * d + 3 * _DIFF_BATCH + 2 * _SCAN_BLOCK))
        return nbytes, f"{matrices} float64 {n:,} x {n:,} matrices at once and its working buffers"

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
        # The centred linear kernel and the distances do not change under a translation, and
        # CKA does not change when a kernel is rescaled, or when the data are rescaled together
        # with sigma. So the linear kernel centres first (large means would otherwise cancel
        # catastrophically in the centring of K; _squared_distances moves its origin itself,
        # to where no digits are lost), and both rescale by an exact power of two 2^-e (sigma
        # too), so that activations of any magnitude stay in range.
        if self.kernel == "linear":
            A = pow2_rescale(center(A))
            return A @ A.T
        e = int(np.frexp(np.max(np.abs(A)))[1])
        A = pow2_rescale(A)
        if self.sigma is None:
            _check_sigma(self.threshold, "threshold")
        else:
            _check_sigma(self.sigma)
        D = _squared_distances(A)  # formed once: for the median bandwidth and the kernel
        if self.sigma is None:
            sigma = self.threshold * np.sqrt(np.median(D))  # median_sigma's value
            if sigma == 0.0:
                raise ValueError(
                    f"the median squared distance between the samples of {name} is 0 (most "
                    "samples are identical), so the median bandwidth is 0; pass sigma="
                )
        else:
            # in the units of the rescaled data; at least the smallest normal number, so that
            # a sigma tiny against the data gives the identity kernel, not 0 / 0
            sigma = max(float(np.ldexp(float(self.sigma), -e)), np.finfo(np.float64).tiny)
        top = float(D.max())  # > 0: check_nonconstant found two different samples
        with np.errstate(under="ignore", over="ignore"):
            widest = (top / (2.0 * sigma)) / sigma
        if widest < 2.0**-60:
            # sigma so large against every distance that K - 11' = expm1(-D / 2 sigma^2) is
            # -D / 2 sigma^2 to the last bit (and may underflow): the same kernel up to the
            # positive factor 2 sigma^2 / max D, which CKA does not see. This is the limit
            # sigma -> inf, the linear kernel's CKA (centring removes sq_i + sq_j from -D).
            D *= -1.0 / top
            return D
        # K - 11' = expm1(-D / 2 sigma^2), which both HSIC estimators treat exactly as K (they
        # are invariant to adding a constant to the kernel): when sigma is large against the
        # distances, K = 1 - tiny and exp would round the information away before the centring
        D = _rbf_exponent(D, sigma)
        return np.expm1(D, out=D)

    # per representation (simmetrics.pairwise): the Gram matrix and its HSIC with itself
    def _partial_fit(self, A, name):
        check_nonconstant(A, name)
        K = self._gram(A, name)
        if self.debiased:
            # U-centred entry by entry (the unbiased HSIC is unchanged in exact arithmetic):
            # one stimulus 1e8 times the others no longer cancels the digits between the
            # global sums of the formula; a callable's kernel is copied first, never modified
            if callable(self.kernel):
                K = np.array(K, dtype=np.float64, copy=True)
            return UnbiasedGram(u_centred(K))
        # hsic_self: a self-term that is 0 up to rounding (a callable kernel the centring
        # removes) raises in cka_from_hsic instead of giving a ratio of noise
        return K, hsic_self(K, "biased")

    def _finalize_fit_score(self, a, b):
        if self.debiased:
            return cka_from_hsic(a.hsic(b), a.self_hsic, b.self_hsic, "unbiased")
        (K, self_k), (L, self_l) = a, b
        return cka_from_hsic(hsic_biased(K, L), self_k, self_l, "biased")
