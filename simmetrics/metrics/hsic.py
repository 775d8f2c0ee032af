"""Hilbert-Schmidt independence criterion (HSIC) estimators, from Gram matrices or features.

Two estimators, each available from n x n Gram matrices and (for linear kernels) from features:

- biased (Gretton et al. 2005): ``HSIC0(K, L) = tr(K H L H) / (n - 1)^2`` with the centring
  matrix ``H = I - 11'/n``;
- unbiased (Song et al. 2012, "Feature selection via dependence maximization", Theorem 2)::

      HSIC1(K, L) = [ tr(K~ L~) + (1'K~1)(1'L~1) / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1 ] / (n (n-3))

  where K~ and L~ are K and L with their diagonals set to zero. Needs n >= 4.

CKA divides HSIC(K, L) by sqrt(HSIC(K, K) HSIC(L, L)) (Kornblith et al. 2019), so the constant
factors 1/(n-1)^2 cancel; they are kept here so that each function returns the estimator itself.
"""

import numpy as np

from .._core.backend import get_backend

__all__ = [
    "cka_from_hsic",
    "hsic_biased",
    "hsic_self",
    "hsic_unbiased",
    "linear_hsic_biased_features",
    "linear_hsic_unbiased_features",
    "linear_hsic_unbiased_sums",
    "linear_hsic_unbiased_columns",
    "UnbiasedGram",
    "u_centred",
]


def _check_square(K, name):
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"{name} must be a square Gram matrix, got shape {K.shape}")


def hsic_biased(K, L):
    """Biased HSIC of two Gram matrices: tr(K H L H) / (n - 1)^2 (Gretton et al. 2005).

    Parameters
    ----------
    K, L : numpy.ndarray, shape (n, n)
        Symmetric Gram matrices of the same stimuli.

    Examples
    --------
    >>> X = np.arange(8.0).reshape(4, 2) ** 2
    >>> bool(hsic_biased(X @ X.T, X @ X.T) > 0)
    True
    """
    _check_square(K, "K")
    _check_square(L, "L")
    Kc = K - K.mean(axis=0, keepdims=True)
    Kc -= Kc.mean(axis=1, keepdims=True)
    n = K.shape[0]
    # tr(HKH L) = sum_ij (HKH)_ij L_ij, with HKH = Kc computed above.
    return float(np.einsum("ij,ij->", Kc, L)) / (n - 1) ** 2


def hsic_unbiased(K, L):
    """Unbiased HSIC of two Gram matrices (Song et al. 2012), n >= 4.

    Parameters
    ----------
    K, L : numpy.ndarray, shape (n, n)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 3))
    >>> K = X @ X.T
    >>> bool(abs(hsic_unbiased(K, K) - linear_hsic_unbiased_features(X, X)) < 1e-10)
    True
    """
    _check_square(K, "K")
    _check_square(L, "L")
    n = K.shape[0]
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs at least 4 samples, got {n}")
    # K~ = K - diag(K) is never formed (no n x n copies: at n = 10,000 each is 800 MB): its row
    # sums and tr(K~ L~) = sum_ij K_ij L_ij - sum_i K_ii L_ii follow from K and its diagonal
    dk, dl = np.diagonal(K), np.diagonal(L)
    trace = float(np.einsum("ij,ij->", K, L)) - float(dk @ dl)
    return hsic_unbiased_from_sums(n, trace, K.sum(axis=1) - dk, L.sum(axis=1) - dl)


def hsic_self(K, estimator="biased"):
    """HSIC(K, K), with rounding noise returned as exactly 0.

    HSIC of a kernel with itself is a squared norm (of HKH, or of the U-centred K for the
    unbiased estimator), so it is never negative; it is 0 for a kernel that the centring
    removes entirely (K_ij = a_i + a_j + c, which a callable kernel or a whitened kernel with
    n - 1 <= d can give). Computed, such a 0 comes out as rounding noise of either sign, about
    n eps sum(K^2) / normaliser; a CKA formed from it would be noise. Values below
    16 n eps sum(K^2) / normaliser are therefore returned as 0 (negative values unchanged), and
    :func:`cka_from_hsic` raises on them.

    Parameters
    ----------
    K : numpy.ndarray, shape (n, n)
    estimator : {"biased", "unbiased"}

    Examples
    --------
    >>> a = np.arange(6.0)[:, None]
    >>> hsic_self(a + a.T, "unbiased") <= 0.0      # removed by the U-centring: 0
    True
    >>> bool(hsic_self(a @ a.T, "unbiased") > 0.0)
    True
    """
    n = K.shape[0]
    if estimator == "unbiased":
        value, norm = hsic_unbiased(K, K), n * (n - 3)
    else:
        value, norm = hsic_biased(K, K), (n - 1) ** 2
    floor = 16.0 * n * np.finfo(np.float64).eps * float(np.sum(K * K)) / norm
    return float(min(value, 0.0) if value <= floor else value)


def linear_hsic_biased_features(X, Y):
    """Biased HSIC of the linear kernels XX' and YY', from features: ||Xc'Yc||_F^2 / (n-1)^2.

    O(n d_x d_y) time and O(d_x d_y) memory, against O(n^2) for the Gram form.
    """
    n = X.shape[0]
    Xc = X - X.mean(axis=0)
    Yc = Y - Y.mean(axis=0)
    return float(np.sum((Xc.T @ Yc) ** 2)) / (n - 1) ** 2


def linear_hsic_unbiased_features(X, Y):
    """Unbiased HSIC of the linear kernels XX' and YY' (Song et al. 2012), from features.

    With K = XX', k_i = ||x_i||^2 (the diagonal), s = X'1, and likewise L, l, t for Y, each term
    of :func:`hsic_unbiased` has an exact feature-space form (K~ = K - diag(k))::

        tr(K~ L~)   = ||X'Y||_F^2 - k'l
        1'K~1       = ||s||^2 - 1'k
        1'K~ L~ 1   = (X s - k)'(Y t - l)

    so the n x n Gram matrices are never formed: O(n d_x d_y) time, O(d_x d_y + n) memory.
    The inputs are used as given (centre them first for Kornblith's convention).
    """
    n = X.shape[0]
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs at least 4 samples, got {n}")
    k = np.einsum("ij,ij->i", X, X)
    l = np.einsum("ij,ij->i", Y, Y)
    return linear_hsic_unbiased_sums(
        n, X.T @ Y, k @ l, X.sum(axis=0), Y.sum(axis=0), k.sum(), l.sum(), X.T @ l, Y.T @ k
    )


def linear_hsic_unbiased_sums(n, cross, row_cross, x_sum, y_sum, x_row_sq, y_row_sq, x_row_y,
                              y_row_x):
    """Unbiased HSIC of linear kernels from sums over the rows (Song et al. 2012).

    With k_i = ||x_i||^2, l_i = ||y_i||^2, s = X'1, t = Y'1, the terms of
    :func:`linear_hsic_unbiased_features` expand into sums that batches can accumulate::

        tr(K~ L~)   = ||X'Y||_F^2 - k'l
        1'K~1       = ||s||^2 - 1'k,          1'L~1 = ||t||^2 - 1'l
        1'K~ L~ 1   = s'(X'Y)t - s'(X'l) - t'(Y'k) + k'l

    This is the one implementation of the feature-space formula: the function above and the
    streaming statistics of :class:`simmetrics.PairMoments` both call it. The HSIC is
    invariant to translations of X or Y, so the sums may be taken about any shift.

    Parameters
    ----------
    n : int
        Number of rows (at least 4).
    cross : array (d_x, d_y)
        X'Y.
    row_cross : float
        k'l.
    x_sum, y_sum : arrays (d_x,), (d_y,)
        s and t.
    x_row_sq, y_row_sq : float
        1'k and 1'l.
    x_row_y, y_row_x : arrays (d_x,), (d_y,)
        X'l and Y'k.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.normal(size=(30, 3)), rng.normal(size=(30, 2))
    >>> k, l = (X**2).sum(1), (Y**2).sum(1)
    >>> value = linear_hsic_unbiased_sums(30, X.T @ Y, k @ l, X.sum(0), Y.sum(0), k.sum(),
    ...                                   l.sum(), X.T @ l, Y.T @ k)
    >>> bool(abs(value - hsic_unbiased(X @ X.T, Y @ Y.T)) < 1e-12)
    True
    """
    return linear_hsic_unbiased_parts(n, cross, row_cross, x_sum, y_sum, x_row_sq, y_row_sq,
                                       x_row_y, y_row_x)[0]


def linear_hsic_unbiased_parts(n, cross, row_cross, x_sum, y_sum, x_row_sq, y_row_sq, x_row_y,
                                y_row_x):
    """:func:`linear_hsic_unbiased_sums` and the size of what it cancels: the same formula
    with every term taken in absolute value (the products of magnitudes for k_sum l_sum),
    divided by n (n - 3) as the value is. Rounding leaves an error of a few eps times this
    magnitude, so magnitude / |value| is the factor by which the feature-space formula
    multiplies rounding errors: about 1 to d / n on ordinary data, but (k_max / typical
    |x_i'x_j|)^2 when one squared row norm k_i = ||x_i||^2 dominates, because
    tr(K~ L~) = ||X'Y||^2 - k'l then subtracts the diagonal's share from a sum it dominates."""
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs at least 4 samples, got {n}")
    squares = float(np.sum(cross**2))
    ss, tt = x_sum @ x_sum, y_sum @ y_sum
    sct, szl, twk = x_sum @ cross @ y_sum, x_sum @ x_row_y, y_sum @ y_row_x
    value = _hsic1(n, squares - row_cross, ss - x_row_sq, tt - y_row_sq,
                   sct - szl - twk + row_cross)
    magnitude = _hsic1(n, squares + abs(row_cross), abs(ss) + abs(x_row_sq),
                       abs(tt) + abs(y_row_sq), 0.0) + float(
        2.0 / (n - 2) * (abs(sct) + abs(szl) + abs(twk) + abs(row_cross)) / (n * (n - 3)))
    return value, magnitude


def linear_hsic_unbiased_columns(A):
    """sum_a HSIC1(a a', a a') over the columns a of A: the share of the same-neuron products
    in the unbiased self-HSIC HSIC1(AA', AA') = sum_ab HSIC1(a a', b b') (the estimator is
    bilinear in the kernels, and AA' = sum_a a a'). With s_p = sum_i a_i^p, each column's
    terms of :func:`hsic_unbiased` are::

        tr(K~ K~) = s_2^2 - s_4,   1'K~1 = s_1^2 - s_2,   ||K~1||^2 = s_1^2 s_2 - 2 s_1 s_3 + s_4

    Those power sums cancel the digits of a dominant stimulus (its a_i^4 swamps s_2^2 and s_4),
    so each term is summed the way the n x n kernel K~ = a a' - diag(a^2) would be, without a
    subtraction: with e_i = sum_{j != i} a_j and f_i = sum_{j != i} a_j^2 (exclusive prefix and
    suffix sums), tr(K~ K~) = sum_i a_i^2 f_i, K~1 = a o e, 1'K~1 = sum_i a_i e_i; the same
    sums as the n x n route, in O(n d) work. Like every unbiased HSIC, the value does not depend
    on a shift of the columns. Chun, Canatar, Chung and Lee 2025 remove this share from the
    self-terms of CKA.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> A = rng.normal(size=(20, 3))
    >>> direct = sum(hsic_unbiased(np.outer(a, a), np.outer(a, a)) for a in A.T)
    >>> bool(abs(linear_hsic_unbiased_columns(A) - direct) < 1e-12)
    True
    """
    n = A.shape[0]
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs at least 4 samples, got {n}")
    sq = A * A
    rows = A * _exclusive_sums(A)  # K~1, column by column
    trace = (sq * _exclusive_sums(sq)).sum(axis=0)
    k_sum = rows.sum(axis=0)
    values = (trace + k_sum * k_sum / ((n - 1) * (n - 2))
              - 2.0 / (n - 2) * (rows * rows).sum(axis=0)) / (n * (n - 3))
    return float(values.sum())


def _exclusive_sums(A):
    """sum_{j != i} A_j for every row i, as the sum of the rows before and after it (no
    subtraction of A_i from a total that includes it)."""
    before = np.zeros_like(A)
    np.cumsum(A[:-1], axis=0, out=before[1:])
    after = np.zeros_like(A)
    np.cumsum(A[:0:-1], axis=0, out=after[-2::-1])
    return before + after


def _hsic1(n, trace, k_sum, l_sum, cross_term):
    """Song et al.'s unbiased HSIC from its four sums: tr(K~ L~), 1'K~1, 1'L~1, 1'K~ L~ 1."""
    return float(
        (trace + k_sum * l_sum / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * cross_term)
        / (n * (n - 3))
    )


def cka_from_hsic(cross, self_x, self_y, estimator="biased"):
    """CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) from the three HSIC values.

    A self-term that is not positive makes CKA undefined (a constant kernel, or an unbiased
    estimate that fell to or below 0 at small n): that raises a ``ValueError`` naming the input,
    never a NaN from the square root of a negative number.

    Parameters
    ----------
    cross, self_x, self_y : float
        HSIC(K, L), HSIC(K, K), HSIC(L, L).
    estimator : {"biased", "unbiased"}
        Named in the error message.

    Examples
    --------
    >>> cka_from_hsic(2.0, 4.0, 1.0)
    1.0
    >>> cka_from_hsic(0.1, -0.01, 1.0, "unbiased")
    Traceback (most recent call last):
    ...
    ValueError: the unbiased HSIC of X with itself is not positive (-0.01), so CKA is undefined: ...
    """
    if self_x <= 0.0 or self_y <= 0.0:
        which = "X" if self_x <= 0.0 else "Y"
        raise ValueError(
            f"the {estimator} HSIC of {which} with itself is not positive "
            f"({min(self_x, self_y):.3g}), so CKA is undefined: {which} has too few samples or "
            "almost no variance for this estimator (its kernel is nearly constant)"
            + ("; the biased estimator is defined for any n >= 2" if estimator == "unbiased" else "")
        )
    # |cross| <= sqrt(self_x self_y) by Cauchy-Schwarz; rounding can exceed it by an ulp or
    # two (1.0000000000000002 for equal inputs), which would leave the declared bounds
    return float(np.clip(cross / np.sqrt(self_x * self_y), -1.0, 1.0))


def hsic_unbiased_from_sums(n, trace, k_rows, l_rows):
    """The unbiased HSIC (Song et al. 2012) from tr(K~ L~) and the row sums K~1, L~1 of the
    kernels with zeroed diagonals::

        HSIC1 = [ tr(K~ L~) + (1'K~1)(1'L~1) / ((n-1)(n-2)) - 2/(n-2) (K~1)'(L~1) ] / (n (n-3))

    For kernels that are never held whole (computed tile by tile, as
    :func:`simmetrics.metrics.cka.gram_space_cka` does), where only these sums are accumulated.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.normal(size=(9, 3)), rng.normal(size=(9, 2))
    >>> K, L = X @ X.T, Y @ Y.T
    >>> Kt, Lt = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
    >>> value = hsic_unbiased_from_sums(9, np.sum(Kt * Lt), Kt.sum(1), Lt.sum(1))
    >>> bool(abs(value - hsic_unbiased(K, L)) < 1e-12)
    True
    """
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs at least 4 samples, got {n}")
    return _hsic1(n, trace, float(k_rows.sum()), float(l_rows.sum()), float(k_rows @ l_rows))


def u_centred(K):
    """K (numpy or torch) with its diagonal zeroed, U-centred in place (Szekely and Rizzo
    2014)::

        K_U[a, b] = K_ab - r_a / (n - 2) - r_b / (n - 2) + S / ((n - 1)(n - 2)),   a != b

    with r = K 1 and S = 1'K 1, and 0 on the diagonal. The rows of K_U sum to 0, so the
    unbiased HSIC of Song et al. 2012 is unchanged, HSIC1(K_U, L_U) = tr(K_U L_U) / (n (n - 3))
    = HSIC1(K, L), but the constant and the row effects are removed entry by entry instead of
    cancelling between the sums of :func:`simmetrics.metrics.hsic.hsic_unbiased_from_sums`: where K is
    a large constant plus small structure (one stimulus 1e8 times the others: after centring,
    every other stimulus sits at minus its share of the mean), those sums kept 2 to 3 digits
    (-0.04441 against -0.04456 computed with 60 digits; reordering the stimuli moved the
    value by 4e-3), the entrywise centring keeps 9.

    A kernel that the U-centring removes, whose centred entries are rounding noise (rms of
    K_U at most 16 n eps max |K|: an entry of K is a sum of up to n rounded products, or comes
    from an SVD, and the centring adds a few eps max |K|; the whitened kernel with
    n - 1 <= d measures 0.7 n eps to 1.2 n eps max |K|), is returned as zeros, so its self-HSIC is
    0 and CKA refuses it (:func:`simmetrics.metrics.hsic.cka_from_hsic`)."""
    n = K.shape[0]
    nx = get_backend(K)
    top = max(float(K.max()), -float(K.min()))  # max |K| without an n x n temporary
    nx.zero_diagonal(K)  # K~: the unbiased HSIC never reads the diagonal
    rows = K.sum(1)
    total = float(rows.sum())
    K -= rows[:, None] / (n - 2)
    K -= rows[None, :] / (n - 2)
    K += total / ((n - 1) * (n - 2))
    nx.zero_diagonal(K)
    floor = 16.0 * n * np.finfo(np.float64).eps * top
    if nx.inner(K, K) <= n * n * floor * floor:
        K[...] = 0.0
    return K


class UnbiasedGram:
    """A Gram matrix with the sums the unbiased HSIC (Song et al. 2012) needs, computed once.

    With K~ = K - diag(K) (never formed), the unbiased HSIC of :func:`hsic_unbiased` is a
    function of three things per kernel and one per pair::

        d = diag(K),   r = K~1 = K1 - d,   HSIC1(K, L) = F(n, <K, L>_F - d_K'd_L, r_K, r_L)

    where ``F`` is :func:`hsic_unbiased_from_sums` (tr(K~ L~) = <K, L>_F - d_K'd_L). So a
    kernel compared with many others is summarised once, and each pair costs one pass over the
    two matrices (:meth:`hsic`). ``self_hsic`` is HSIC1(K, K) with the rounding floor of
    :func:`hsic_self`: a value below ``16 n eps sum(K^2) / (n (n - 3))`` (a kernel that the
    U-centring removes, computed as rounding noise) is returned as 0 (negative values
    unchanged), so :func:`cka_from_hsic` raises on it.

    numpy arrays, or torch tensors (float64; every sum is taken on the tensor's device and only
    the scalars come back). The values equal :func:`hsic_unbiased` and
    ``hsic_self(K, "unbiased")`` up to rounding (the same formula, sums in another order).

    Parameters
    ----------
    K : numpy.ndarray or torch.Tensor, shape (n, n), n >= 4
        A symmetric Gram matrix; it is kept (not copied) and must not be modified afterwards.

    Attributes
    ----------
    K, diag, rows : arrays of the input's kind
        K, d and r above.
    n : int
    self_hsic : float

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.normal(size=(30, 3)), rng.normal(size=(30, 2))
    >>> K, L = UnbiasedGram(X @ X.T), UnbiasedGram(Y @ Y.T)
    >>> bool(abs(K.hsic(L) - hsic_unbiased(X @ X.T, Y @ Y.T)) < 1e-12)
    True
    >>> bool(abs(K.self_hsic - hsic_self(X @ X.T, "unbiased")) < 1e-12)
    True
    >>> a = np.arange(6.0)[:, None]
    >>> UnbiasedGram(a + a.T).self_hsic <= 0.0     # removed by the U-centring: 0, as hsic_self
    True
    """

    __slots__ = ("K", "n", "diag", "rows", "self_hsic")

    def __init__(self, K):
        _check_square(K, "K")
        n = K.shape[0]
        if n < 4:
            raise ValueError(f"the unbiased HSIC needs at least 4 samples, got {n}")
        self.K, self.n = K, n
        self.diag = K.diagonal()
        self.rows = K.sum(1) - self.diag
        squares = get_backend(K).inner(K, K)
        value = hsic_unbiased_from_sums(n, squares - float(self.diag @ self.diag), self.rows,
                                        self.rows)
        floor = 16.0 * n * np.finfo(np.float64).eps * squares / (n * (n - 3))
        self.self_hsic = float(min(value, 0.0) if value <= floor else value)

    def hsic(self, other):
        """HSIC1(K, L) with ``other`` the :class:`UnbiasedGram` of L (same n, and the same
        array kind and device as this one)."""
        if other.n != self.n:
            raise ValueError(f"K and L must have the same size, got {self.n} and {other.n}")
        trace = get_backend(self.K).inner(self.K, other.K) - float(self.diag @ other.diag)
        return hsic_unbiased_from_sums(self.n, trace, self.rows, other.rows)


def unbiased_hsic_terms(S, magnitudes=False):
    """HSIC1(X, Y), HSIC1(X, X), HSIC1(Y, Y) of linear kernels from :class:`PairMoments`;
    with ``magnitudes``, pairs (value, magnitude) of
    :func:`simmetrics.metrics.hsic.linear_hsic_unbiased_parts`."""
    x, y = S.x, S.y
    parts = (
        linear_hsic_unbiased_parts(S.n, S.cross, S.row_cross, x.sum, y.sum, x.row_sq_sum,
                                    y.row_sq_sum, S.x_row_y, S.y_row_x),
        linear_hsic_unbiased_parts(S.n, x.gram, x.row_sq_sq, x.sum, x.sum, x.row_sq_sum,
                                    x.row_sq_sum, x.row_sq_first, x.row_sq_first),
        linear_hsic_unbiased_parts(S.n, y.gram, y.row_sq_sq, y.sum, y.sum, y.row_sq_sum,
                                    y.row_sq_sum, y.row_sq_first, y.row_sq_first),
    )
    return parts if magnitudes else tuple(value for value, _ in parts)
