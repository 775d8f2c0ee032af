"""Small linear-algebra helpers shared by the metric families."""

import numpy as np

from .backend import get_backend

__all__ = [
    "center", "orthonormal_basis", "pow2_rescale", "frobenius_norm", "times_pow2", "abs_max",
    "near_centred",
    "looks_near_centred",
    "clearly_varying",
]


def center(X):
    """Subtract each column's mean: X - 1 mean(X)'. Returns a new array.

    Two passes: Xc = X - mean(X), then Xc - mean(Xc). When the means are large against the
    spread (activations of 1e4 +- 0.1, or any large offset), the rounding error of the first
    mean, about eps * |mean|, is left in every row as a constant; the centred data then have a
    spurious direction along the constant vector, which rank decisions (CCA, whitening) would
    keep and amplify. The second pass removes it down to eps times the spread (a corrected mean
    cannot do this: it rounds to the same float).

    Examples
    --------
    >>> center(np.array([[1.0, 2.0], [3.0, 6.0]]))
    array([[-1., -2.],
           [ 1.,  2.]])
    >>> Xc = center(1e8 + np.array([[0.1], [0.2], [0.4]]))
    >>> bool(abs(Xc.sum()) < 1e-15)
    True
    """
    Xc = X - X.mean(0)  # numpy arrays and torch tensors alike
    Xc -= Xc.mean(0)
    return Xc


def abs_max(A):
    """max |A_ij| as a Python float (0 for an empty array); numpy arrays and torch tensors."""
    return float(abs(A).max()) if 0 not in tuple(A.shape) else 0.0


def times_pow2(X, k):
    """X * 2**k, exact as ``numpy.ldexp`` is (the same bits): one multiplication by the power
    of two (a correctly rounded product), or two where 2**k alone is not a normal float
    (k > 1023 or k < -1022; the first factor then keeps the intermediate normal whenever the
    result is). For numpy arrays, torch tensors and Python floats alike (torch has no ldexp on
    every device).

    Examples
    --------
    >>> times_pow2(np.array([3.0]), -2).tolist(), times_pow2(np.array([2.0**-1074]), 1074).tolist()
    ([0.75], [1.0])
    >>> times_pow2(np.array([2.0**1000]), -2000).tolist()
    [9.332636185032189e-302]
    """
    first = max(min(k, 1023), -1022)
    X = X * 2.0**first
    return X if first == k else X * 2.0 ** (k - first)


def pow2_rescale(X):
    """``X`` times the power of two that brings its largest magnitude into [0.5, 1).

    Multiplying by a power of two is exact in floating point, so every quantity that is
    invariant to a positive rescaling is computed bit for bit as on ``X``, while squares and
    products of very large (1e300) or very small (1e-300) activations no longer overflow or
    underflow. An all-zero ``X`` is returned unchanged. numpy arrays and torch tensors.

    Examples
    --------
    >>> pow2_rescale(np.array([3.0, -1.0])).tolist()
    [0.75, -0.25]
    >>> float(pow2_rescale(np.array([3e300, -1e300]))[0] / 3e300 * 2.0**999)
    1.0
    """
    top = abs_max(X)
    if top == 0.0:
        return X
    return times_pow2(X, -int(np.frexp(top)[1]))


def frobenius_norm(X):
    """The Frobenius norm of ``X`` without overflow or underflow of the squares.

    Computed on :func:`pow2_rescale`'d data and scaled back exactly; ``numpy.linalg.norm``
    returns inf for entries of 1e200 and 0 for entries of 1e-200. numpy arrays and torch
    tensors (a tensor's norm is taken on its device).

    Examples
    --------
    >>> float(frobenius_norm(np.array([[3e200, 4e200]])))
    5e+200
    """
    top = abs_max(X)
    if top == 0.0:
        return 0.0
    e = int(np.frexp(top)[1])
    norm = get_backend(X).vector_norm(times_pow2(X, -e))
    return float(np.ldexp(norm, e))


def orthonormal_basis(Xc, rtol=None):
    """An orthonormal basis U (n x r) of the column space of ``Xc`` and its singular values.

    Directions whose singular value is below ``rtol * s_max`` are dropped, so rank-deficient
    data (duplicate or constant columns, n < d) give the basis of the space actually spanned
    rather than dividing by a zero. The default ``rtol`` is ``max(n, d) * eps``, numpy's
    ``matrix_rank`` convention.

    Returns
    -------
    U : numpy.ndarray, shape (n, r)
    s : numpy.ndarray, shape (r,)
    Vt : numpy.ndarray, shape (r, d)
    """
    U, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    if rtol is None:
        rtol = max(Xc.shape) * np.finfo(Xc.dtype).eps
    keep = s > rtol * (s[0] if s.size else 0.0)
    return U[:, keep], s[keep], Vt[keep]


def near_centred(raw, sums, n, limit):
    """Whether products of data taken about 0 can be moved to the column means without losing
    digits that matter: every column's raw sum of squares is at most ``limit`` times its centred
    one (raw - sum^2 / n). The move X'Y - s t' / n cancels digits in proportion to that ratio
    (its square for fourth-order terms), so a limit of 4 to 16 costs a few units of rounding.
    All-zero columns are centred; constant non-zero columns are not.

    Parameters
    ----------
    raw : float or numpy.ndarray
        Raw sums of squares: per column, or one total (then ``sums`` is the vector of column
        sums and the test is on the totals).
    sums : numpy.ndarray
        Column sums.
    n : int
        Rows.
    limit : float

    Examples
    --------
    >>> def check(X):
    ...     return near_centred((X**2).sum(axis=0), X.sum(axis=0), len(X), 16.0)
    >>> X = np.array([[1.0, 0.0], [-1.0, 0.0], [3.0, 0.0]])  # a silent neuron is centred
    >>> check(X), check(X + [0.0, 1.0]), check(X + [10.0, 0.0])
    (True, False, False)
    """
    with np.errstate(over="ignore", invalid="ignore"):  # inf or NaN: not centred
        sq = sums * sums / n
        if np.ndim(raw) == 0:
            sq = float(np.sum(sq))
        centred = raw - sq
        return bool(np.all((raw == 0.0) | ((centred > 0.0) & (raw <= limit * centred))))


def looks_near_centred(A, limit, rows=1024):
    """:func:`near_centred` on an evenly spaced subsample of about ``rows`` rows of ``A`` (a
    cheap guess, to be confirmed on the exact statistics)."""
    sample = A[:: max(1, A.shape[0] // rows)]
    with np.errstate(over="ignore", invalid="ignore"):
        squares, sums = np.einsum("ij,ij->j", sample, sample), sample.sum(axis=0)
    return near_centred(squares, sums, sample.shape[0], limit)


def clearly_varying(centred_sq, mean, n):
    """Whether a representation's centred sum of squares (over all its neurons) exceeds what
    constant columns could show by rounding: the one-pass mean of a constant column c is off
    by at most about n eps |c|, so constant data give at most n (4 n eps)^2 ||mean||^2. When
    this is False, only an exact test (column ranges) can tell.

    Examples
    --------
    >>> clearly_varying(1e-20, np.array([1e3]), 100), clearly_varying(1.0, np.array([1e3]), 100)
    (False, True)
    """
    with np.errstate(over="ignore", invalid="ignore"):  # huge means: only exactly
        noise = n * (4.0 * n * np.finfo(np.float64).eps) ** 2 * float(mean @ mean)
        return bool(np.isfinite(centred_sq) and centred_sq > noise and centred_sq > 0.0)
