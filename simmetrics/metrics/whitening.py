"""Partial whitening of the generalized shape metric (Williams et al. 2021; netrep's rule).

- :func:`partial_whitener`: netrep's partial whitening matrix Z of centred data, and
  :func:`whitener_map`, :func:`whitener_from_spectrum`, the same map kept factored (a
  :class:`simmetrics._core.linear_map.LinearMap`) from the SVD of the data or from a spectrum
  (streaming);
- :func:`covariance_whitener`: Williams et al.'s map on the covariance C/n, unscaled (Lange's
  repsim), the ``whitening="covariance"`` convention;
- :func:`gram_whitening` and :func:`gram_route_error`: the whitener of tall data (n > d) from
  the d x d Gram matrix Xc'Xc instead of the SVD of the n x d data, taken only where its
  estimated error is negligible (:data:`GRAM_ROUTE_ERROR`);
- :func:`split_unseen`: :class:`simmetrics.ShapeMetric`'s held-out rule for full whitening, for
  scored rows that vary in directions the training rows did not span.
"""

import numpy as np

from .._core.linalg import abs_max, frobenius_norm, orthonormal_basis, times_pow2
from .._core.linalg import center  # noqa: F401 - the examples below use it
from .._core.linear_map import LinearMap

__all__ = ["partial_whitener", "whitener_map", "whitener_from_spectrum", "covariance_whitener",
           "gram_whitening", "gram_route_error", "GRAM_ROUTE_ERROR", "split_unseen"]

#: The largest estimated relative error of the whitened data (:func:`gram_route_error`) for
#: which :func:`gram_whitening` whitens from the Gram matrix; above it the SVD of the data.
GRAM_ROUTE_ERROR = 2.0**-36
#: The Gram route takes centred column norms in [2^-200, 2^200] (no square near the float
#: range's ends); data outside go to the SVD route, which rescales by powers of two.
_GRAM_RANGE = (2.0**-200, 2.0**200)


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


def covariance_whitener(s, Vt, alpha, e, n):
    """Williams et al.'s partial whitening on the covariance C/n, unscaled (Lange's repsim):
    Z = alpha I + (1 - alpha) (C/n)^(-1/2) = alpha I + V diag((1 - alpha) sqrt(n) / sigma) V',
    sigma = s 2**e the singular values of Xc (pseudo-inverse on the directions it spans)."""
    with np.errstate(over="ignore", under="ignore"):
        diagonal = (1.0 - alpha) * np.sqrt(n) * times_pow2(1.0 / s, -e)
    Z = LinearMap(diagonal, Vt.T, alpha)
    if alpha == 0.0:
        Z.unit = (np.sqrt(n), 0, n)  # Xc Z = sqrt(n) U V': each whitened direction's norm
    return Z


def gram_route_error(lam, n, alpha, rule="trace", offset=0.0):
    """The estimated relative error of data whitened by a map formed from the eigen-
    decomposition of their computed Gram matrix G = Xc'Xc (eigenvalues ``lam``, descending,
    of n rows), rather than from the SVD of Xc.

    The products have rounding errors |dG_kl| <= gamma sqrt(G_kk G_ll), gamma = sqrt(n) eps
    (Higham and Mary 2019, the probabilistic bound), so ||dG||_2 <= gamma tr G; LAPACK's
    symmetric eigensolver adds a backward error of about d eps lam_max. The inverse square
    root moves the whitened data by ||G^(-1/2) dG G^(-1/2)|| <= ||dG|| / lam_min (its divided
    differences, Higham 2008, "Functions of Matrices", ch. 6), and only the C^(-1/2) term of
    the map carries it: a whitened direction of singular value sigma is
    c (alpha sigma + w) with w = 1 - alpha ((1 - alpha) sqrt(n) for ``rule="covariance"``), of
    which w is perturbed. So::

        error = (gamma tr G + d eps lam_max) / lam_min * w / (alpha sigma_min + w)

    ``offset`` = max_k n mean_k^2 / G_kk (the squared ratio of a neuron's mean to its spread):
    G is formed about the means from data about 0 (or about a rounded one-pass mean), which
    costs gamma (1 + offset) at most, and the rounding of x - mean, eps |mean| per entry,
    2 eps sqrt(offset); gamma counts both. Returns inf for a singular G. Compared with
    :data:`GRAM_ROUTE_ERROR` (2^-36, 1.5e-11) by :func:`gram_whitening`: well-conditioned data
    of 10,000 x 512 at alpha = 0.5 give about 2e-13; covariance condition numbers above about
    1e3 (alpha = 0) are refused, while the route's measured differences from the SVD route
    stay far below the estimate (1e-13 where it says 1e-5: the bound is a worst case)."""
    eps = np.finfo(np.float64).eps
    lam = np.asarray(lam, dtype=np.float64)
    if not lam.size or not lam[-1] > 0.0:
        return np.inf
    offset = float(offset)
    gamma = eps * (np.sqrt(n) * (1.0 + min(offset, 15.0)) + 2.0 * np.sqrt(offset))
    error = (gamma * float(lam.sum()) + lam.size * eps * float(lam[0])) / float(lam[-1])
    w = (1.0 - alpha) * (np.sqrt(n) if rule == "covariance" else 1.0)
    return error * w / (alpha * np.sqrt(lam[-1]) + w)


def gram_whitening(data, sums, mean, colsq, alpha, rule):
    """The partial whitener of tall data (n > d) from the d x d Gram matrix, or None where the
    SVD of the data must be used.

    ``data`` (n x d) are the neurons about 0 or about a one-pass mean, ``sums`` their column
    sums (G = data'data - sums sums' / n is the centred Gram matrix), ``mean`` and ``colsq``
    the column means and centred sums of squares (:class:`simmetrics.metrics.alignment.Prepared`'s
    fields). G's eigen-decomposition V diag(lam) V' gives the singular values sqrt(lam) and
    right vectors of the centred data, hence the map of :func:`whitener_from_spectrum`
    (``rule`` "trace" or "netrep") or :func:`covariance_whitener` ("covariance"). Refused
    (None) for n <= d, data outside [2^-200, 2^200], a singular G, or an estimated error
    (:func:`gram_route_error`) above :data:`GRAM_ROUTE_ERROR`: ill-conditioned data, a dominant
    stimulus, large means, duplicate neurons.

    Returns
    -------
    (Z, s, Vt, sq) or None
        The map (:class:`LinearMap`), the singular values and right vectors of the centred
        data, and ||Xc Z||_F^2 (= sum_i (s_i (c + z_i))^2 for Z = c I + V diag(z) V').
    """
    n, d = data.shape
    if n <= d or d == 0:
        return None
    low, high = _GRAM_RANGE
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        if not (np.all(colsq >= low) and np.all(colsq <= high)
                and abs_max(mean) <= np.sqrt(high)):
            return None
        offset = float(np.max(n * mean * mean / colsq))
        # skip the products where the estimate cannot pass: lam_min <= min G_kk, tr G = sum
        # colsq, and i.i.d. data already have lam_mean / lam_min >= (1 - sqrt(d / n))^-2
        # (the Marchenko-Pastur edge; correlated neurons are worse). A choice of route only
        low_sq = float(np.min(colsq))
        spread = np.array([float(np.sum(colsq)) - low_sq, low_sq])  # sums to tr G
        floor = gram_route_error(spread, n, alpha, rule, offset)
        if floor / (1.0 - np.sqrt(d / n)) ** 2 > GRAM_ROUTE_ERROR:
            return None
    G = data.T @ data  # a symmetric rank-k update (numpy calls syrk for A'A)
    if sums.any():
        G -= np.outer(sums, sums / n)
    lam, V = np.linalg.eigh(G)
    lam, V = lam[::-1], V[:, ::-1]
    if not gram_route_error(lam, n, alpha, rule, offset) <= GRAM_ROUTE_ERROR:
        return None
    s, Vt = np.sqrt(lam), V.T
    if rule == "covariance":
        Z = covariance_whitener(s, Vt, alpha, 0, n)
    else:
        Z = whitener_from_spectrum(s, Vt, alpha, 0, n=n)
    sq = float(np.sum((s * (Z.scalar + Z.core)) ** 2))
    return Z, s, Vt, sq


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
