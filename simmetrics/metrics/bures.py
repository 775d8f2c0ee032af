"""Bures similarity and distance: the optimal-transport geometry of centred linear kernels.

For centred representations Xc, Yc (n stimuli) with linear kernels Kx = Xc Xc', Ky = Yc Yc',
the Bures (2-Wasserstein) geometry of positive semi-definite matrices gives::

    F(Kx, Ky) = tr (Kx^1/2 Ky Kx^1/2)^1/2 = ||Xc'Yc||_*          (the fidelity)
    NBS       = ||Xc'Yc||_* / (||Xc||_F ||Yc||_F)                 in [0, 1]
    d_B       = sqrt(||Xc||_F^2 + ||Yc||_F^2 - 2 ||Xc'Yc||_*)     = min_Q ||Xc - Yc Q||_F

with ||.||_* the nuclear norm (sum of singular values) and Q orthogonal (the narrower side
zero-padded). Tang, Maddox, Dickens, Diethe, Damianou, "Similarity of Neural Networks with
Gradients", arXiv 2003.11498, 2020 (the normalised Bures similarity, NBS); Bures, Trans. AMS
1969 (the distance); the identity with Procrustes is Williams et al., NeurIPS 2021. Conventions
follow nn_similarity_index (amzn/xfer, as packaged by nacloos/similarity-repository): kernels
of the data as given, double-centred; no division by n.

The peers take square roots of the eigenvalues of the non-symmetric n x n product Kx Ky,
which rounds (about 1e-7 on NBS; a negative radicand, NaN, for Y = X Q). Here every value comes
from :func:`principal_scores` of each representation (its centred data in its principal axes,
at most min(n, d) columns, computed once per representation by :func:`simmetrics.pairwise`)
and the r_x x r_y cross product of two of them; the distance is the norm of the Procrustes
residual formed explicitly, so Y = X Q gives 0 to rounding, never a cancelled difference.
:mod:`simmetrics.metrics.ensd` reuses the scores.
"""

import numpy as np

from .._core.linalg import abs_max, center, times_pow2
from .._core.registry import register
from .._core.validation import check_nonconstant
from ..base import Metric
from ..moments import check_nonconstant_moments

__all__ = ["NormalizedBuresSimilarity", "BuresDistance", "principal_scores", "scores_from_moments",
           "bures_terms", "nbs_formula", "bures_formula"]

_REFERENCE = (
    "Tang, Maddox, Dickens, Diethe, Damianou, 'Similarity of Neural Networks with Gradients', "
    "arXiv 2003.11498 (2020); Bures, Trans. Amer. Math. Soc. 135 (1969) (conventions of "
    "nn_similarity_index, amzn/xfer)"
)

#: Groups acting on one input that leave ||Xc||_F, ||Yc||_F and ||Xc'Yc||_* unchanged.
_BURES_INVARIANCES = frozenset({"orthogonal", "permutation", "signed_permutation", "translation"})


class Scores:
    """One representation in its principal axes: ``B`` (n x r, r = min(n, d)) with
    B B' = Xc Xc' 2^(-2 e), its singular values ``s`` (descending) and the exponent ``e``:
    the centred data are B V' 2^e for some V with orthonormal columns."""

    __slots__ = ("B", "s", "e", "n")

    def __init__(self, B, s, e, n):
        self.B, self.s, self.e, self.n = B, s, e, n

    def sq_norm(self):
        """||B||_F^2 = tr(Kx) 2^(-2 e)."""
        return float(np.sum(self.s**2))


def _scores(rows, e, n):
    top = abs_max(rows)
    k = int(np.frexp(top)[1])
    rows = times_pow2(rows, -k)
    U, s, _ = np.linalg.svd(rows, full_matrices=False)
    return Scores(U * s, s, e + k, n)


def principal_scores(A, name):
    """:class:`Scores` of a validated float64 (n, d) representation: centred (two passes),
    rescaled by a power of two so that its largest entry lies in [0.5, 1), and rotated into
    its principal axes by a thin SVD. A constant representation is a ValueError naming it.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(5, 3))
    >>> S = principal_scores(X, "X")
    >>> Xc = X - X.mean(0)
    >>> bool(np.allclose(np.ldexp(S.B @ S.B.T, 2 * S.e), Xc @ Xc.T))
    True
    """
    check_nonconstant(A, name)
    return _scores(center(A), 0, A.shape[0])


def scores_from_moments(stats):
    """:class:`Scores` of both sides from :class:`simmetrics.PairMoments` holding a factor:
    rows standing in for the centred data (:meth:`simmetrics.PairMoments.factor_rows`) have
    the same Xc'Xc, Yc'Yc and Xc'Yc, hence the same values of every measure here."""
    check_nonconstant_moments(stats.x, "X")
    check_nonconstant_moments(stats.y, "Y")
    A, B = stats.factor_rows(centred=True)
    ex, ey = stats.exponents
    return _scores(A, ex, stats.n), _scores(B, ey, stats.n)


def gram_terms(stats):
    """The second-moment terms of the Bures and ENSD measures from statistics without a factor:
    (tr Gx, tr Gy, ||C||_*, ||C||_F^2, ||Gx||_F^2, ||Gy||_F^2) with Gx = Xc'Xc, Gy = Yc'Yc and
    C = Xc'Yc the centred Gram and cross-product blocks (tr Kx = tr Gx, tr(Kx Ky) = ||C||_F^2,
    tr Kx^2 = ||Gx||_F^2 and the fidelity ||C||_* are all functions of them)."""
    check_nonconstant_moments(stats.x, "X")
    check_nonconstant_moments(stats.y, "Y")
    S = stats.to_numpy().centred()
    Gx, Gy, C = S.x.gram, S.y.gram, S.cross
    nuclear = float(np.sum(np.linalg.svd(C, compute_uv=False)))
    return (float(np.trace(Gx)), float(np.trace(Gy)), nuclear, float(np.sum(C * C)),
            float(np.sum(Gx * Gx)), float(np.sum(Gy * Gy)))


def bures_terms(a, b):
    """(M, ||M||_*) for two :class:`Scores`: M = Ba'Bb (r_a x r_b), the scaled cross product
    whose nuclear norm is the fidelity ||Xc'Yc||_* 2^-(e_a + e_b)."""
    M = a.B.T @ b.B
    return M, float(np.sum(np.linalg.svd(M, compute_uv=False)))


def _nbs(a, b):
    _, nuclear = bures_terms(a, b)
    value = nuclear / np.sqrt(a.sq_norm()) / np.sqrt(b.sq_norm())
    return float(min(max(value, 0.0), 1.0))


def _bures(a, b):
    """min_Q ||Xc - Yc Q||_F: the norm of the residual of the orthogonal Procrustes problem in
    the principal axes, both sides at the larger exponent."""
    e = max(a.e, b.e)
    with np.errstate(under="ignore"):
        A, B = times_pow2(a.B, a.e - e), times_pow2(b.B, b.e - e)
    width = max(A.shape[1], B.shape[1])
    A = np.pad(A, ((0, 0), (0, width - A.shape[1])))
    B = np.pad(B, ((0, 0), (0, width - B.shape[1])))
    U, _, Vt = np.linalg.svd(B.T @ A)
    residual = A - B @ (U @ Vt)
    with np.errstate(over="ignore"):
        value = float(np.ldexp(np.linalg.norm(residual), e))
    if not np.isfinite(value):
        raise ValueError("the Bures distance of X and Y overflows float64")
    return value


def _centred_rows(X, Y):
    return X - X.mean(axis=0), Y - Y.mean(axis=0)


def nbs_formula(X, Y, nx):
    """NBS of the rows ``X``, ``Y`` as a differentiable expression of the backend ``nx``:
    ||Xc'Yc||_* / (||Xc||_F ||Yc||_F), the nuclear norm by ``nx.svdvals`` of the dx x dy cross
    product. The gradient of ||C||_* is U V' (the thin SVD's singular vectors) where C has
    min(dx, dy) nonzero singular values, which ordinary data give (repeated singular values
    are no obstacle: U V' is unique where they are nonzero); where some are 0 (n - 1 < width,
    collinear neurons) the norm has a kink and autograd returns one subgradient."""
    Xc, Yc = _centred_rows(X, Y)
    return nx.svdvals(Xc.T @ Yc).sum() / (nx.frobenius(Xc) * nx.frobenius(Yc))


def bures_formula(X, Y, nx):
    """The Bures distance of the rows ``X``, ``Y`` as a differentiable expression of the backend
    ``nx``: ||A - B Q||_F with A, B the centred rows zero-padded to one width w and Q the
    optimal rotation, U V' for B'A = U S V', computed from the data and then held fixed.

    d_B = min_Q ||A - B Q||_F, and at the minimiser the gradient of the minimum is that of the
    objective with Q fixed (Danskin's theorem; the minimiser is unique where B'A has
    min(dx, dy) nonzero singular values, and its gradient there is that of
    sqrt(||Xc||^2 + ||Yc||^2 - 2 ||Xc'Yc||_*)). The residual, not that difference, so that the
    value keeps its digits near 0. At d_B = 0 (Y = X Q + t) the distance has a cone: the
    gradient is then the residual's rounding noise divided by its norm (a subgradient of norm
    about 1 or 0 when the residual is exactly 0)."""
    Xc, Yc = _centred_rows(X, Y)
    width = max(Xc.shape[1], Yc.shape[1])
    A = Xc @ nx.asarray(np.eye(Xc.shape[1], width))
    B = Yc @ nx.asarray(np.eye(Yc.shape[1], width))
    U, _, Vt = nx.svd(nx.detach_float64(B.T @ A))
    return nx.frobenius(A - B @ nx.asarray(U @ Vt))


class _BuresBase(Metric):
    """The shared steps: scores per representation, the pair from two scores, streaming from
    the statistics' factor."""

    symmetric = True
    reference = _REFERENCE
    _moments_factor = True

    def __init__(self, layout=None):
        self.layout = layout

    def _partial_fit(self, A, name):
        return principal_scores(A, name)

    def _score_from_moments(self, stats):
        if stats.factor is None:  # Gram-only statistics: the exact second-moment identities
            return self._from_gram_terms(*gram_terms(stats))
        return self._finalize_fit_score(*scores_from_moments(stats))


@register("nbs")
class NormalizedBuresSimilarity(_BuresBase):
    """Normalised Bures similarity (NBS; Tang et al. 2020; nn_similarity_index's ``nbs``).

    ::

        NBS(X, Y) = tr (Kx^1/2 Ky Kx^1/2)^1/2 / sqrt(tr Kx tr Ky)
                  = ||Xc'Yc||_* / (||Xc||_F ||Yc||_F)

    Kx = Xc Xc', Ky = Yc Yc' the centred linear kernels, ||.||_* the nuclear norm. A
    **similarity** in [0, 1], 1 exactly when Yc = c Xc Q for an orthogonal Q and c > 0;
    arccos(NBS) is the angular Procrustes distance (:class:`simmetrics.OrthogonalProcrustes`).
    Invariant to orthogonal maps, isotropic scaling and translation of either input; widths may
    differ. Computed from the d x d (at most min(n, d)^2) cross product of the two
    representations' principal scores, not from eigenvalues of the n x n product Kx Ky (whose
    square roots nn_similarity_index takes, 1e-7 off). Streams from second moments
    (:func:`simmetrics.stream_score`).

    Parameters
    ----------
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 5))
    >>> Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    >>> round(NormalizedBuresSimilarity().fit_score(X, 3 * X @ Q + 1), 12)
    1.0
    """

    kind = "similarity"
    bounds = (0.0, 1.0)
    is_metric = False
    invariances = _BURES_INVARIANCES | {"isotropic_scaling"}

    def _finalize_fit_score(self, a, b):
        return _nbs(a, b)

    def _gradient_formula(self, X, Y, nx):
        """:func:`nbs_formula`."""
        return nbs_formula(X, Y, nx)

    def _from_gram_terms(self, tx, ty, nuclear, *_):
        return float(min(max(nuclear / np.sqrt(tx) / np.sqrt(ty), 0.0), 1.0))


@register("bures_distance")
class BuresDistance(_BuresBase):
    """Bures distance of the centred linear kernels (nn_similarity_index's ``bures_distance``).

    ::

        d_B(X, Y) = sqrt(tr Kx + tr Ky - 2 tr (Kx^1/2 Ky Kx^1/2)^1/2)
                  = sqrt(||Xc||_F^2 + ||Yc||_F^2 - 2 ||Xc'Yc||_*) = min_Q ||Xc - Yc Q||_F

    (Bures 1969; the 2-Wasserstein distance of centred Gaussians with covariances Kx, Ky.) Not
    divided by n, as in the peer; it equals the Procrustes size-and-shape distance
    (``OrthogonalProcrustes(score_method="euclidean")``, netrep's ``LinearMetric(alpha=1)``
    Euclidean). A **distance** and a metric on representations modulo rotations and
    translations; invariant to orthogonal maps (hence permutations, sign flips) and translation
    of either input, not to scaling (it has the data's units). Computed as the norm of the
    Procrustes residual in the principal axes, so Y = X Q gives 0 to rounding (the peer's
    radicand rounds negative there: NaN). Streams from second moments.

    Parameters
    ----------
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None

    Examples
    --------
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> round(BuresDistance().fit_score(X, X[:, ::-1] + 5.0), 12)
    0.0
    >>> round(BuresDistance().fit_score(X, 2 * X) ** 2, 12)  # ||Xc||_F^2
    1.333333333333
    """

    kind = "distance"
    bounds = (0.0, float("inf"))
    is_metric = True
    invariances = _BURES_INVARIANCES

    def _finalize_fit_score(self, a, b):
        return _bures(a, b)

    def _gradient_formula(self, X, Y, nx):
        """:func:`bures_formula` (the optimal rotation held fixed: Danskin's theorem)."""
        return bures_formula(X, Y, nx)

    def _from_gram_terms(self, tx, ty, nuclear, *_):
        return float(np.sqrt(max(tx + ty - 2.0 * nuclear, 0.0)))
