"""Square roots of the joint centred Gram matrix, for the metrics that whiten.

- The factor that :class:`simmetrics.PairMoments` keep with ``factor=True``: a matrix R with
  R'R = [Xc Yc]'[Xc Yc] and the data's conditioning (:func:`batch_factor` for one batch,
  :func:`merged_factor` for the merge of two, :func:`compact_factor`, :func:`factor_columns`),
  and :func:`rows_svd`, the whole-data rank rule on the rows that stand in for the data.
- When statistics hold no factor, :func:`gram_factor`: a square root of the Gram matrix,
  refused where its digits cannot resolve the data; :func:`spectrum_from_gram` is the older,
  unchecked eigen-decomposition.
"""

import numpy as np

from .backend import get_backend, to_numpy
from .linalg import abs_max, center, orthonormal_basis, times_pow2

__all__ = [
    "factor_columns",
    "batch_factor",
    "compact_factor",
    "merged_factor",
    "rows_svd",
    "gram_factor",
    "spectrum_from_gram",
]


# -- the factor: a square root of the joint centred Gram matrix ------------------------------
def factor_columns(R, dx, on_x, on_y):
    """R with ``on_x`` applied to its first ``dx`` columns and ``on_y`` to the rest (None
    stays None): a factor of the data with its two column blocks transformed alike."""
    if R is None:
        return None
    return get_backend(R).concat((on_x(R[:, :dx]), on_y(R[:, dx:])), axis=1)


def _triangularised(F):
    """The R of the Householder QR decomposition of F (min(rows, d) x d, R'R = F'F)."""
    return get_backend(F).qr_r(F)


def batch_factor(F, compact=True):
    """The factor of one batch [Z W]: its exactly centred rows (two passes, see
    :func:`simmetrics._core.linalg.center`), triangularised (``compact``) when there are more rows
    than columns, so that it never holds more than d = d_x + d_y rows."""
    F = center(F)
    return F if F.shape[0] <= F.shape[1] or not compact else _triangularised(F)


def compact_factor(stats):
    """``stats`` with a factor of at most d rows (triangularised if it holds more)."""
    R = stats.factor
    if R is not None and R.shape[0] > R.shape[1]:
        stats.factor = _triangularised(R)
    return stats


def _is_triangular(R):
    return R.shape[0] == R.shape[1] and not get_backend(R).tril(R, -1).any()


def merged_factor(Ra, Rb, gap):
    """A factor with R'R = Ra'Ra + Rb'Rb + gap'gap (``gap`` one row): the stacked rows while
    they are at most d, else their triangular factor. When one of the two is already a d x d
    triangle, LAPACK's dtpqrt (the QR of a triangle stacked on rows) costs O(rows d^2), the
    flops of the Gram update, instead of a full QR."""
    nx = get_backend(Ra)
    d = Ra.shape[1]
    if Ra.shape[0] + Rb.shape[0] + 1 <= d:
        return nx.concat((Ra, Rb, gap))
    for T, rows in ((Ra, (Rb, gap)), (Rb, (Ra, gap))):
        if _is_triangular(T):
            R = nx.qr_r_on_triangle(T, nx.concat(rows))
            if R is not None:  # None: no such routine in this backend, or it failed
                return R
    return _triangularised(nx.concat((Ra, Rb, gap)))


def rows_svd(A, n):
    """The thin SVD of rows ``A`` that stand in for ``n`` data rows (from
    :meth:`PairMoments.factor_rows` or :func:`gram_factor`), with the whole-data rank rule of
    :func:`simmetrics._core.linalg.orthonormal_basis` for n rows (singular values below
    max(n, d) eps s_max dropped), computed on A 2^-e (exact; the largest entry in [0.5, 1))
    so that no square over- or underflows.

    Returns
    -------
    U : numpy.ndarray, shape (rows, r)
    s : numpy.ndarray, shape (r,)
        The singular values of A 2^-e.
    Vt : numpy.ndarray, shape (r, d)
    e : int
    """
    top = abs_max(A)
    e = int(np.frexp(top)[1]) if top > 0.0 else 0
    U, s, Vt = orthonormal_basis(times_pow2(A, -e), rtol=max(n, A.shape[1]) * np.finfo(float).eps)
    return U, s, Vt, e


# -- when the Gram matrix alone must do: a checked square root -------------------------------
#: The Gram matrix's estimated relative error on the smallest direction the data can have
#: that :func:`gram_factor` accepts: half of float64's digits (sqrt(eps) = 1.5e-8).
_GRAM_ERROR = 2.0**-26


def gram_factor(rep, name, centred=True, gram=None):
    """A square root M (r x d, M'M = G) of the Gram matrix G of ``rep`` (numpy statistics;
    ``gram`` overrides ``rep.gram``), refused with a ``ValueError`` where the sums cannot
    resolve the data: the route of the metrics that whiten when statistics hold no
    :attr:`PairMoments.factor`.

    **The bound.** A Gram entry is a sum of n products; its rounding error is
    |dG_kl| <= gamma sqrt(G_kk G_ll) with gamma = sqrt(n) eps (the probabilistic bound of
    Higham and Mary 2019; n eps in the worst case), whatever the means (the batches are
    summed about their means and merged exactly). Write G = D^(1/2) C D^(1/2), D = diag(G),
    C the correlation matrix of the live neurons (non-constant ones; with ``centred=False``
    not all zero). Then dG = D^(1/2) dC D^(1/2) with ||dC||_2 <= d gamma, and the
    eigenvalues of G move relatively by at most d gamma / lambda_min(C) (Demmel and
    Veselic 1992, Theorem 2.3: scaling by D costs nothing). Rank-deficiency the data must
    have is known (r = min(n - 1, d_live) centred, min(n, d_live) not), so with lambda_r the
    r-th largest eigenvalue of C the estimated relative error of the smallest direction is::

        error = d_live sqrt(n) eps / lambda_r(C)

    accepted while error <= 2^-26 (half of the 16 digits; the condition number of X'X
    itself may be far larger: neurons of variances 1e-10..1 pass). One stimulus 1e8 times
    the others, or a cluster of spread 1e-3 beside a point at 1e5, make every centred column
    nearly parallel (lambda_r(C) about 1e-15): refused, as are exact linear dependences
    (duplicate neurons), which a Gram matrix cannot tell from a direction below its
    rounding. The accepted M = Lambda_r^(1/2) V_r' D^(1/2) (V_r Lambda_r V_r' the top r
    eigenpairs of C) is a square root with the data's conditioning: its SVD gives the
    singular values and right vectors of the data as the data's SVD does, to about
    max(n, d) eps s_max / s for a singular value s (the limit of every route, the whole-data
    SVD included: variances spanning 1e-20..1 agree with ``fit_score`` to about 1e-8).

    Parameters
    ----------
    rep : RepresentationMoments
        numpy statistics about the shift the caller decomposes (centred, or the fitted means).
    name : str
        "X" or "Y", for the message.
    centred : bool, default True
        Whether ``rep`` is centred (the data then have rank at most n - 1).
    gram : numpy.ndarray, optional
        The Gram matrix to use instead of ``rep.gram`` (same shift).

    Returns
    -------
    numpy.ndarray, shape (r, d)

    Examples
    --------
    >>> from simmetrics.moments import RepresentationMoments
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 3)) * [1.0, 1e-3, 1e-5]   # variances 1 .. 1e-10: resolved
    >>> S = RepresentationMoments.from_array(X).centred()
    >>> M = gram_factor(S, "X")
    >>> bool(np.allclose(M.T @ M, S.gram, rtol=1e-12, atol=0))
    True
    >>> X[0] *= 1e8                                           # one dominant stimulus
    >>> gram_factor(RepresentationMoments.from_array(X).centred(), "X")
    Traceback (most recent call last):
    ...
    ValueError: the second moments cannot resolve X: ...
    """
    G = to_numpy(rep.gram if gram is None else gram)
    n, d = rep.n, G.shape[0]
    diag = np.diag(G).copy()
    live = diag > 0.0
    if rep.minimum is not None:
        lo, hi = to_numpy(rep.minimum), to_numpy(rep.maximum)
        live &= (hi > lo) if centred else ((hi != 0.0) | (lo != 0.0))
    idx = np.flatnonzero(live)
    M = np.zeros((0, d))
    r = min(n - 1 if centred else n, idx.size)
    if r <= 0:
        return M
    root = np.sqrt(diag[idx])
    C = G[np.ix_(idx, idx)] / root[:, None] / root[None, :]
    lam, V = np.linalg.eigh(C)
    lam, V = lam[::-1][:r], V[:, ::-1][:, :r]
    smallest = float(lam[-1])
    error = idx.size * np.sqrt(n) * np.finfo(np.float64).eps / smallest if smallest > 0.0 \
        else np.inf
    if not error <= _GRAM_ERROR:
        digits = max(0.0, -np.log10(error))
        condition = float(lam[0]) / smallest if smallest > 0.0 else np.inf
        raise ValueError(
            f"the second moments cannot resolve {name}: the correlation matrix of its "
            f"{idx.size} {'centred ' if centred else ''}neurons has condition number "
            f"{condition:.1e} (its eigenvalue {r} is {smallest:.1e}), so sums of {n} "
            f"products rounded to eps = 2.2e-16 keep about "
            f"{digits:.0f} of the 16 digits of its smallest direction, fewer than the 8 "
            "needed (one stimulus far larger than the others, a cluster beside a far "
            "outlier, or duplicate neurons). Accumulate the statistics with factor=True "
            "(stream_score, stream_moments and simmetrics.moments.moments do), or use "
            "fit_score on the whole data"
        )
    M = np.zeros((r, d))
    M[:, idx] = (np.sqrt(np.clip(lam, 0.0, None))[:, None] * V.T) * root[None, :]
    return M


def spectrum_from_gram(G, n):
    """Singular values s (descending) and right singular vectors V' of a matrix Xc with
    Xc'Xc = G, from the eigen-decomposition of G, unchecked. The metrics no longer use it: they
    decompose :attr:`PairMoments.factor` (the data's conditioning) or the square root that
    :func:`gram_factor` accepts, which refuses what G cannot resolve instead of dropping it.

    The eigenvalues are the squares of the singular values, so rounding hides the directions
    whose eigenvalue is below about d * eps of the largest: those below max(n, d) * eps * lam_max
    are dropped (the SVD of the data itself resolves singular values, i.e. square roots, down to
    that relative level, which is why the whole-data estimators keep their SVD route).

    Parameters
    ----------
    G : numpy.ndarray, shape (d, d)
        Symmetric positive semi-definite, not all zero.
    n : int
        Number of rows behind G (enters the tolerance).

    Returns
    -------
    s : numpy.ndarray, shape (r,)
    Vt : numpy.ndarray, shape (r, d)

    Examples
    --------
    >>> Xc = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    >>> s, Vt = spectrum_from_gram(Xc.T @ Xc, 4)
    >>> s.round(12).tolist(), bool(np.allclose(np.abs(Vt), [[0, 1], [1, 0]]))
    ([2.828427124746, 1.414213562373], True)
    """
    lam, V = np.linalg.eigh(G)
    lam, V = lam[::-1], V[:, ::-1]
    keep = lam > max(n, G.shape[0]) * np.finfo(np.float64).eps * lam[0]
    return np.sqrt(lam[keep]), V[:, keep].T
