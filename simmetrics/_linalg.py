"""Small linear-algebra helpers shared by the metric families."""

import numpy as np

__all__ = ["center", "orthonormal_basis"]


def center(X):
    """Subtract each column's mean: X - 1 mean(X)'. Returns a new array.

    Examples
    --------
    >>> center(np.array([[1.0, 2.0], [3.0, 6.0]]))
    array([[-1., -2.],
           [ 1.,  2.]])
    """
    return X - X.mean(axis=0, keepdims=True)


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
