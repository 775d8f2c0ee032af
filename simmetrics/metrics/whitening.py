"""Partial whitening of the generalized shape metric (Williams et al. 2021; netrep's rule).

- :func:`partial_whitener`: netrep's partial whitening matrix Z of centred data, and
  :func:`whitener_map`, :func:`whitener_from_spectrum`, the same map kept factored (a
  :class:`simmetrics._core.linear_map.LinearMap`) from the SVD of the data or from a spectrum
  (streaming);
- :func:`split_unseen`: :class:`simmetrics.ShapeMetric`'s held-out rule for full whitening, for
  scored rows that vary in directions the training rows did not span.
"""

import numpy as np

from .._core.linalg import abs_max, frobenius_norm, orthonormal_basis, times_pow2
from .._core.linalg import center  # noqa: F401 - the examples below use it
from .._core.linear_map import LinearMap

__all__ = ["partial_whitener", "whitener_map", "whitener_from_spectrum", "split_unseen"]


def partial_whitener(Xc, alpha):
    """netrep's partial whitening matrix Z for centred data ``Xc`` (n x d); ``Xc @ Z`` is the
    partially whitened representation.

    With C = Xc' Xc (unnormalised, as in netrep) and its eigen-decomposition V diag(lam) V'::

        Z = s (alpha I + (1 - alpha) C^(-1/2))
        s = sqrt( tr C / ||Xc (alpha I + (1 - alpha) C^(-1/2))||_F^2 )

    i.e. the eigenvalues are mapped to alpha + (1 - alpha) / sqrt(lam) (the partial whitening
    of Williams et al. 2021; note: not (alpha I + (1 - alpha) C)^(-1/2)), and the scale s
    preserves the total variance tr C. alpha = 1 is no whitening
    (returns None, meaning the identity), alpha = 0 full whitening (CCA). Because C is not
    divided by n, alpha strictly between 0 and 1 weighs the two terms by the data's raw scale,
    exactly as netrep does.

    Rank-deficient C (constant or duplicate neurons, n <= d, zero-padding): C^(-1/2) is the
    pseudo-inverse square root, keeping the directions whose singular value of Xc exceeds
    ``max(n, d) * eps * s_max`` (:func:`simmetrics._core.linalg.orthonormal_basis`); on the other
    directions Z is k alpha I (k the scale above). netrep instead clips the eigenvalues at 1e-7;
    both agree on full-rank data, and neither produces a NaN. (At alpha = 0 these directions
    get weight 0; :class:`~simmetrics.ShapeMetric` scores held-out data that vary there by the
    rule in its Notes.)

    Extreme scales: the SVD runs on ``Xc`` times a power of two (exact) and Z is formed from
    ratios of singular values, so subnormal data (1e-310, where an SVD of the data fails and
    1/s overflows) and huge data (1e300) give the whitener of the data as given.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> Xc = center(rng.normal(size=(50, 3)) @ rng.normal(size=(3, 3)))
    >>> W = Xc @ partial_whitener(Xc, 0.0)
    >>> np.allclose(W.T @ W, np.eye(3) * np.sum(Xc**2) / 3)  # white, total variance kept
    True
    """
    if alpha == 1.0:
        return None
    return whitener_map(Xc, alpha).dense()


def whitener_map(Xc, alpha, e=0):
    """:func:`partial_whitener` of the centred data ``Xc * 2**e`` as a :class:`LinearMap`
    (Z = c I + V diag(z) V', no d x d matrix), from the SVD of ``Xc`` rescaled by a power of
    two: subnormal (1e-310) and huge (1e300) data give the whitener of the data as given, with
    no failed SVD and no overflow of 1/s."""
    top = abs_max(Xc)
    shift = int(np.frexp(top)[1]) if top > 0.0 else 0
    _, s, Vt = orthonormal_basis(times_pow2(Xc, -shift))
    return whitener_from_spectrum(s, Vt, alpha, e + shift, n=Xc.shape[0])


def whitener_from_spectrum(s, Vt, alpha, e=0, n=None):
    """:func:`partial_whitener` (as a :class:`LinearMap`) from the singular values
    s * 2**e and right vectors V' of Xc (from its SVD, or from the eigen-decomposition of Xc'Xc
    when streaming); ``n`` the number of rows of Xc (None: not known).

    With sigma = s 2**e the singular values of Xc, Z = k (alpha I + (1 - alpha) V diag(1/sigma)
    V') and k = ||sigma|| / ||alpha sigma + (1 - alpha)|| (the total variance kept), so::

        Z = k alpha I + V diag(k (1 - alpha) / sigma) V'

    Both coefficients are formed from ratios of s and powers of two, never from 1/sigma,
    which overflows for data of 1e-310.

    For full whitening (alpha = 0) the map also records ``unit`` = (||s|| / sqrt(r), e, n):
    k = ||s|| 2**e / sqrt(r) is the norm of each of the r whitened directions of Xc
    (Xc Z = k U V'), so k / sqrt(n) is their rms per stimulus, the scale that
    :class:`~simmetrics.ShapeMetric` gives held-out directions the training rows did not span."""
    t = max(e, 0)  # m = (alpha sigma + (1 - alpha)) 2**-t stays in range at either extreme
    with np.errstate(under="ignore"):  # a term below the smallest float is negligible here
        m = alpha * times_pow2(s, e - t) + (1.0 - alpha) * 2.0 ** (-t)
        ratio = frobenius_norm(s) / frobenius_norm(m)  # = k 2**(t - e)
        diagonal = (1.0 - alpha) * (times_pow2(ratio, -t) / s)  # k (1 - alpha) / sigma
        scalar = alpha * times_pow2(ratio, e - t)  # k alpha
    Z = LinearMap(diagonal, Vt.T, scalar)
    if alpha == 0.0:
        Z.unit = (frobenius_norm(s) / np.sqrt(s.size), e, n)
    return Z


def split_unseen(A, As, Z):
    """(main, extra) of scored rows for full whitening: the held-out rule of
    :class:`~simmetrics.ShapeMetric`.

    ``A`` the scored rows as given (m x d), ``As`` = A - fitted mean, ``Z`` the fitted full
    whitener (``Z.unit`` set), whose basis V (d x r, orthonormal) spans the training rows.
    The part of As outside that span, As (I - V V'), is invisible to Z; U_u is an orthonormal
    basis of its column space (singular values up to max(m, d) eps max(||A||_F, ||As||_F)
    dropped as rounding: ||A||, uncentred, sets the rounding of A - mean, a constant row of
    about eps |mean|), and::

        extra = sqrt(m) (k / sqrt(n)) U_u          (m x r_u)
        main  = (I - U_u U_u') As Z                (m x d)

    k / sqrt(n) the rms per training stimulus of a whitened training direction (``Z.unit``).
    Without an unseen part, main = As Z and extra has no columns. The basis is computed on
    As times a power of two (exact), so subnormal and huge data lose nothing."""
    main = Z.apply(As)
    m, d = As.shape
    V = Z.basis
    top = abs_max(As)
    if V.shape[1] >= d or top == 0.0:  # the training rows spanned every direction
        return main, np.zeros((m, 0))
    shift = -int(np.frexp(top)[1])
    T = times_pow2(As, shift)
    U, s, _ = np.linalg.svd(T - (T @ V) @ V.T, full_matrices=False)
    with np.errstate(over="ignore", under="ignore"):  # only compared with s below
        floor = times_pow2(frobenius_norm(A), shift)
    keep = s > max(m, d) * np.finfo(np.float64).eps * max(floor, frobenius_norm(T))
    Uu = U[:, keep]
    if not Uu.shape[1]:
        return main, Uu
    norm, e, n = Z.unit
    if n is None:
        raise ValueError(
            "these scored stimuli vary in directions the training stimuli did not span, and "
            "this ShapeMetric(alpha=0) was fitted from second moments without their number of "
            "stimuli, which the held-out rule needs (see ShapeMetric's Notes); fit it with "
            "fit(X, Y) on the training data"
        )
    main = main - Uu @ (Uu.T @ main)
    with np.errstate(under="ignore"):  # back to the data's scale: subnormal on purpose
        extra = times_pow2(Uu * (norm * np.sqrt(m / n)), e)
    return main, extra
