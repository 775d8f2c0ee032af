"""Subspace overlap: compare the column spaces the two representations span.

:class:`EigenspaceOverlap` (May, Zhang, Dao, Re 2019) is the squared Frobenius norm of
Ux' Uy, with Ux, Uy orthonormal bases of the column spaces of the (uncentred) X and Y: the sum
of the squared cosines of their principal angles. Here too are the two helpers the
prediction measures of :mod:`simmetrics.metrics.prediction` share: :func:`column_basis`
(an orthonormal basis and the singular values of one representation, the per-representation
step of :func:`simmetrics.pairwise`) and :func:`bases_from_moments` (the same from second
moments, for :func:`simmetrics.stream_score`).
"""

import numpy as np

from .._core.linalg import center, orthonormal_basis, pow2_rescale, times_pow2
from .._core.params import Options
from .._core.registry import register
from .._core.validation import check_nonconstant
from ..base import GROUP_NAMES, Metric
from ..moments import check_nonconstant_moments, gram_factor, rows_svd
from .subspace_gradient import overlap_formula

__all__ = ["EigenspaceOverlap", "column_basis", "bases_from_moments"]

#: the column space of X is that of X A for every invertible A (and so for every subgroup of
#: the invertible linear maps); no centring happens, so a translation changes it
_OVERLAP_INVARIANCES = frozenset(GROUP_NAMES) - {"translation"}
_DENOMINATORS = ("rank", "width")


def column_basis(A, name, centred):
    """An orthonormal basis U (n x r) of the column space of ``A`` (column-centred first with
    ``centred=True``) and its r singular values, in units of ``A`` times a power of two
    (exact; every caller uses their ratios only). Directions whose singular value is below
    max(n, d) eps s_max are dropped (numpy's ``matrix_rank`` rule). A ``ValueError`` names
    ``name`` where nothing is left: every neuron constant (centred) or all zero (uncentred).

    Examples
    --------
    >>> X = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])  # rank 1
    >>> U, s = column_basis(X, "X", centred=False)
    >>> U.shape, bool(np.allclose(np.abs(U[:, 0]), [1, 2, 3] / np.sqrt(14)))
    ((3, 1), True)
    """
    if centred:
        B = center(pow2_rescale(check_nonconstant(A, name)))
    elif not A.any():
        raise ValueError(f"{name} spans no subspace: it is all zeros")
    else:
        B = pow2_rescale(A)
    U, s, _ = orthonormal_basis(B)
    return U, s


def bases_from_moments(stats, centred, residual=False):
    """(M, s_x, s_y), and with ``residual`` G = R'R for R = Uy - Ux M, from :class:`simmetrics.PairMoments`: M = Ux' Uy for orthonormal bases of
    the column spaces of X and Y (centred or not) and their singular values (each in its own
    power-of-two units; only their ratios are used), as :func:`column_basis` gives them on the
    data. With the statistics' ``factor``: bases of its column blocks (rows standing in for the
    data, with the data's conditioning); without it, the whitening route through the square
    roots of the Gram matrices that :func:`simmetrics.moments.gram_factor` accepts (a
    ``ValueError`` where their digits do not suffice); that route has no Uy, so G is then
    I - M'M (accurate to about eps, not eps times the value).

    Examples
    --------
    >>> from simmetrics.moments import PairMoments
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.normal(size=(50, 3)), rng.normal(size=(50, 2))
    >>> M, sx, sy = bases_from_moments(PairMoments.from_arrays(X, Y, factor=True), True)
    >>> Ux, _ = column_basis(X, "X", True)
    >>> Uy, _ = column_basis(Y, "Y", True)
    >>> bool(np.allclose(np.abs(M), np.abs(Ux.T @ Uy), atol=1e-12))
    True
    """
    S = stats.to_numpy()
    S = S.centred() if centred else S.shifted(np.zeros(S.x.width), np.zeros(S.y.width))
    n = S.n
    if centred:
        check_nonconstant_moments(S.x, "X")
        check_nonconstant_moments(S.y, "Y")
    if S.factor is not None:
        parts = []
        for A in S.factor_rows(centred=centred):
            U, s, _, e = rows_svd(A, n)
            parts.append((U, times_pow2(s, e)))
        (Ux, sx), (Uy, sy) = parts
        M = Ux.T @ Uy
        R = Uy - Ux @ M if residual else None  # Y's basis outside X's column space
        G = R.T @ R if residual else None
    else:
        whiteners = []
        for name, rep in (("X", S.x), ("Y", S.y)):
            _, s, Vt, e = rows_svd(gram_factor(rep, name, centred=centred), n)
            s = times_pow2(s, e)
            whiteners.append((Vt.T / s, s))
        (Wx, sx), (Wy, sy) = whiteners
        M = Wx.T @ S.cross @ Wy
        G = np.eye(sy.size) - M.T @ M if residual else None
    for name, s in (("X", sx), ("Y", sy)):
        if not s.size:
            raise ValueError(f"{name} has zero variance: every neuron is constant across samples"
                             if centred else f"{name} spans no subspace: it is all zeros")
    return (M, sx, sy, G) if residual else (M, sx, sy)


@register("eigenspace_overlap", aliases=("eigenspace_overlap_score", "eos"))
class EigenspaceOverlap(Metric):
    """Eigenspace overlap score (May, Zhang, Dao, Re 2019, "On the Downstream Performance of
    Compressed Word Embeddings", NeurIPS).

    ::

        EOS(X, Y) = ||Ux' Uy||_F^2 / max(r_x, r_y)      (denominator="rank", default)
        EOS(X, Y) = ||Ux' Uy||_F^2 / max(d_x, d_y)      (denominator="width", ReSi's)

    with Ux (n x r_x), Uy (n x r_y) orthonormal bases of the column spaces of the uncentred X
    and Y: the left singular vectors whose singular values exceed max(n, d) eps s_max (the
    numerical ranks r, numpy's ``matrix_rank`` rule), d the widths. ||Ux' Uy||_F^2 is the sum
    of the squared cosines of the principal angles between the two spaces. The convention of
    ReSi (mklabunde/resi, ``repsim/measures/eigenspace_overlap.py``, Klabunde et al. 2024)
    divides by the widths, as the paper does for full-rank embeddings; on data of full column
    rank (n >= d, no dead or duplicated neuron) the two denominators agree. The default
    divides by the ranks, so that equal inputs give 1 also when a neuron is dead or n < d
    (where ReSi gives r / d).

    A **similarity** in [0, 1]; 1 when one column space contains the other and both have the
    same dimension. Not a metric. No centring: invariant to every invertible linear map of the
    neurons (so to every group in :data:`simmetrics.GROUP_NAMES` but translation). When a
    representation has rank n (n <= d and generic data), its column space is all of R^n and
    contains every other one. An all-zero input is an error.

    Streams from second moments (uncentred; see :func:`bases_from_moments`).

    Parameters
    ----------
    denominator : {"rank", "width"}, default "rank"
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 5))
    >>> round(EigenspaceOverlap().fit_score(X, X @ rng.normal(size=(5, 5))), 12)
    1.0
    >>> round(EigenspaceOverlap().fit_score(X, X[:, :2]), 12)  # a 2-d subspace of X's 5
    0.4
    """

    kind = "similarity"
    bounds = (0.0, 1.0)
    is_metric = False
    invariances = _OVERLAP_INVARIANCES
    min_samples = 2
    same_width = False
    symmetric = True
    reference = ("May, Zhang, Dao, Re 2019, On the Downstream Performance of Compressed Word "
                 "Embeddings, NeurIPS; convention of ReSi (Klabunde et al. 2024)")

    _parameter_constraints = {"denominator": [Options(_DENOMINATORS)]}

    def __init__(self, denominator="rank", layout=None):
        self.denominator = denominator
        self.layout = layout

    def _gradient_formula(self, X, Y, nx):
        """tr(Px Py) / max(r or d) in feature space
        (:func:`simmetrics.metrics.subspace_gradient.overlap_formula`; ranks held fixed; on
        rank-deficient data the gradient along rank-preserving perturbations). The value's
        cap at 1 only removes rounding."""
        return overlap_formula(X, Y, self.denominator, nx)

    def _value(self, M, rx, ry, dx, dy):
        total = float(np.einsum("ij,ij->", M, M))
        scale = max(rx, ry) if self.denominator == "rank" else max(dx, dy)
        return min(total / scale, 1.0)  # at most min(r_x, r_y) but for rounding

    # per representation (simmetrics.pairwise): an orthonormal basis of its column space
    def _partial_fit(self, A, name):
        check_nonconstant(A, name)  # the package's rule: a representation must vary
        return column_basis(A, name, centred=False)[0], A.shape[1]

    def _finalize_fit_score(self, a, b):
        (Ux, dx), (Uy, dy) = a, b
        return self._value(Ux.T @ Uy, Ux.shape[1], Uy.shape[1], dx, dy)

    # -- streaming: the same bases from uncentred second moments ----------------------------
    _moments_factor = True
    _moments_any_scale = True

    def _score_from_moments(self, stats):
        M, sx, sy = bases_from_moments(stats, centred=False)
        return self._value(M, sx.size, sy.size, stats.x.width, stats.y.width)
