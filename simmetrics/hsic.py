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

__all__ = [
    "cka_from_hsic",
    "hsic_biased",
    "hsic_unbiased",
    "linear_hsic_biased_features",
    "linear_hsic_unbiased_features",
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
    Kt = K.copy()
    Lt = L.copy()
    np.fill_diagonal(Kt, 0.0)
    np.fill_diagonal(Lt, 0.0)
    k1 = Kt.sum(axis=1)
    l1 = Lt.sum(axis=1)
    trace = float(np.einsum("ij,ij->", Kt, Lt))
    return (trace + k1.sum() * l1.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (k1 @ l1)) / (
        n * (n - 3)
    )


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
    s = X.sum(axis=0)
    t = Y.sum(axis=0)
    trace = float(np.sum((X.T @ Y) ** 2)) - k @ l
    k_sum = s @ s - k.sum()
    l_sum = t @ t - l.sum()
    cross = (X @ s - k) @ (Y @ t - l)
    return float(
        (trace + k_sum * l_sum / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * cross) / (n * (n - 3))
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
    return float(cross / np.sqrt(self_x * self_y))
