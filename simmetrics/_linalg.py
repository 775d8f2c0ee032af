"""Small linear-algebra helpers shared by the metric families."""

import numpy as np

__all__ = ["center", "orthonormal_basis", "pow2_rescale", "frobenius_norm"]


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
    Xc = X - X.mean(axis=0, keepdims=True)
    Xc -= Xc.mean(axis=0, keepdims=True)
    return Xc


def pow2_rescale(X):
    """``X`` times the power of two that brings its largest magnitude into [0.5, 1).

    Multiplying by a power of two is exact in floating point, so every quantity that is
    invariant to a positive rescaling is computed bit for bit as on ``X``, while squares and
    products of very large (1e300) or very small (1e-300) activations no longer overflow or
    underflow. An all-zero ``X`` is returned unchanged.

    Examples
    --------
    >>> pow2_rescale(np.array([3.0, -1.0])).tolist()
    [0.75, -0.25]
    >>> float(pow2_rescale(np.array([3e300, -1e300]))[0] / 3e300 * 2.0**999)
    1.0
    """
    top = np.max(np.abs(X)) if X.size else 0.0
    if top == 0.0:
        return X
    return np.ldexp(X, -int(np.frexp(top)[1]))


def frobenius_norm(X):
    """The Frobenius norm of ``X`` without overflow or underflow of the squares.

    Computed on :func:`pow2_rescale`'d data and scaled back exactly; ``numpy.linalg.norm``
    returns inf for entries of 1e200 and 0 for entries of 1e-200.

    Examples
    --------
    >>> float(frobenius_norm(np.array([[3e200, 4e200]])))
    5e+200
    """
    top = np.max(np.abs(X)) if X.size else 0.0
    if top == 0.0:
        return 0.0
    e = int(np.frexp(top)[1])
    return float(np.ldexp(np.linalg.norm(np.ldexp(X, -e)), e))


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
