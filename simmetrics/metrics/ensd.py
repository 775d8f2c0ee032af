"""The effective number of shared dimensions (ENSD) and its angular distance.

Giaffar, Rubio Buño, Chung, Canatar, Murthy, "The effective number of shared dimensions: A
simple method for revealing shared structure between datasets", bioRxiv 2023.07.27.550815
(2023). With Kx = Xc Xc', Ky = Yc Yc' the centred linear kernels::

    PR(X)     = (tr Kx)^2 / tr(Kx^2)                        the participation ratio
    ENSD(X, Y) = PR(X) PR(Y) tr(Kx Ky) / (tr Kx tr Ky)     = sqrt(PR(X) PR(Y)) CKA(X, Y)
    d(X, Y)   = (2 / pi) arccos(ENSD / sqrt(PR(X) PR(Y)))   = (2 / pi) arccos(CKA(X, Y))

CKA the biased linear CKA. ENSD(X, X) = PR(X). Conventions
of the authors' code (camillerb/ENSD, as packaged by nacloos/similarity-repository: columns
centred over the stimuli). Every trace comes from the principal scores of
:mod:`simmetrics.metrics.bures` (once per representation in :func:`simmetrics.pairwise`):
tr Kx = sum s_i^2, tr Kx^2 = sum s_i^4 and tr(Kx Ky) = ||Bx'By||_F^2.
"""

import numpy as np

from .._core.registry import register
from .._core.validation import check_representation
from ..base import Metric
from .bures import bures_terms, gram_terms, principal_scores, scores_from_moments

__all__ = ["ENSD", "ENSDDistance", "participation_ratio", "ensd_formula",
           "ensd_distance_formula", "kernel_traces_formula"]

_REFERENCE = (
    "Giaffar, Rubio Buno, Chung, Canatar, Murthy, 'The effective number of shared dimensions: "
    "A simple method for revealing shared structure between datasets', bioRxiv 2023 "
    "(conventions of camillerb/ENSD)"
)

_INVARIANCES = frozenset(
    {"orthogonal", "permutation", "signed_permutation", "isotropic_scaling", "translation"}
)

#: Above this cosine the angle is taken from the difference of the normalised kernels in a
#: joint basis (arccos of a cosine near 1 keeps only half its digits).
_NEAR_ONE = 0.9


def _pr(scores):
    w = scores.s**2
    w = w / w.max() if w.size and w.max() > 0 else w
    return float(np.sum(w) ** 2 / np.sum(w**2))


def participation_ratio(X):
    """The participation ratio (tr C)^2 / tr(C^2) of the covariance C of ``X`` (rows =
    stimuli): the effective dimensionality, between 1 and min(n - 1, d).

    Parameters
    ----------
    X : array-like, shape (n_samples, n_features)

    Returns
    -------
    float

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> round(participation_ratio(rng.normal(size=(100000, 3)) * [1.0, 1.0, 1e-6]), 3)
    2.0
    """
    return _pr(principal_scores(check_representation(X, "X"), "X"))


def _sums(a, b):
    """(tr(Kx Ky) / sqrt(tr Kx^2 tr Ky^2), the cross product M) on the scaled scores."""
    M, _ = bures_terms(a, b)
    sa, sb = a.s / a.s[0], b.s / b.s[0]
    cross = float(np.sum((M / a.s[0] / b.s[0]) ** 2))
    return cross / np.sqrt(np.sum(sa**4)) / np.sqrt(np.sum(sb**4)), M


def _angle(a, b):
    """The angle between Kx / ||Kx||_F and Ky / ||Ky||_F (radians)."""
    cos, _ = _sums(a, b)
    cos = min(max(cos, 0.0), 1.0)
    if cos < _NEAR_ONE:
        return float(np.arccos(cos))
    # both kernels in an orthonormal basis W of span[Bx By]: Kx = W Tx Tx' W'
    A, B = a.B / a.s[0], b.B / b.s[0]
    _, T = np.linalg.qr(np.hstack([A, B]))
    Tx, Ty = T[:, : A.shape[1]], T[:, A.shape[1]:]
    Gx, Gy = Tx @ Tx.T, Ty @ Ty.T
    Gx /= np.linalg.norm(Gx)
    Gy /= np.linalg.norm(Gy)
    return float(2.0 * np.arctan2(np.linalg.norm(Gx - Gy), np.linalg.norm(Gx + Gy)))


def kernel_traces_formula(X, Y):
    """(tr Kx, tr Ky, tr Kx^2, tr Ky^2, tr(Kx Ky)) of the centred linear kernels of the rows
    ``X``, ``Y``, in feature space (||Xc||_F^2, ||Yc||_F^2, ||Xc'Xc||_F^2, ||Yc'Yc||_F^2,
    ||Xc'Yc||_F^2): differentiable expressions of arrays or tensors alike."""
    Xc, Yc = X - X.mean(axis=0), Y - Y.mean(axis=0)
    Gx, Gy, C = Xc.T @ Xc, Yc.T @ Yc, Xc.T @ Yc
    return (Xc * Xc).sum(), (Yc * Yc).sum(), (Gx * Gx).sum(), (Gy * Gy).sum(), (C * C).sum()


def ensd_formula(X, Y, nx):
    """ENSD = tr Kx tr Ky tr(Kx Ky) / (tr Kx^2 tr Ky^2) (= PR(X) PR(Y) tr(Kx Ky) /
    (tr Kx tr Ky)) of the rows ``X``, ``Y``, a smooth function of them wherever neither is
    constant."""
    tx, ty, gx, gy, cross = kernel_traces_formula(X, Y)
    return tx * ty * cross / (gx * gy)


def ensd_distance_formula(X, Y, nx):
    """(2 / pi) arccos(CKA) of the rows ``X``, ``Y`` (CKA the biased linear CKA), written as
    (4 / pi) arctan2(sqrt(1 - CKA), sqrt(1 + CKA)), the same angle. Smooth where CKA < 1; at
    CKA = 1 (Y = c X Q + t) the distance has a cone and arccos an infinite slope: 1 - CKA is
    clipped at the smallest normal number, so that the gradient stays finite there (about 0:
    the slope of CKA vanishes at its maximum) instead of NaN."""
    _, _, gx, gy, cross = kernel_traces_formula(X, Y)
    cka = cross / nx.sqrt(gx * gy)
    gap = nx.clip(1.0 - cka, float(np.finfo(np.float64).tiny), 2.0)
    return (4.0 / np.pi) * nx.arctan2(nx.sqrt(gap), nx.sqrt(2.0 - gap))


class _ENSDBase(Metric):
    symmetric = True
    reference = _REFERENCE
    invariances = _INVARIANCES
    _moments_factor = True

    def __init__(self, layout=None):
        self.layout = layout

    def _partial_fit(self, A, name):
        return principal_scores(A, name)

    def _fit(self, X, Y):
        self._finalize_fit_score(self._partial_fit(X, "X"), self._partial_fit(Y, "Y"))

    def _record(self, a, b):
        self.participation_ratio_x_, self.participation_ratio_y_ = _pr(a), _pr(b)

    def _score_from_moments(self, stats):
        if stats.factor is None:  # Gram-only statistics: the exact second-moment identities
            tx, ty, _, cross2, gx2, gy2 = gram_terms(stats)
            pr_x, pr_y = tx * tx / gx2, ty * ty / gy2
            self.participation_ratio_x_, self.participation_ratio_y_ = pr_x, pr_y
            return self._from_gram_terms(pr_x, pr_y, cross2 / np.sqrt(gx2) / np.sqrt(gy2))
        return self._finalize_fit_score(*scores_from_moments(stats))


@register("ensd")
class ENSD(_ENSDBase):
    """Effective number of shared dimensions (Giaffar et al. 2023; camillerb/ENSD's ``ENSD``).

    ::

        ENSD(X, Y) = PR(X) PR(Y) tr(Kx Ky) / (tr Kx tr Ky) = sqrt(PR(X) PR(Y)) CKA(X, Y)

    with Kx = Xc Xc', Ky = Yc Yc' the centred linear kernels, PR the participation ratio
    (:func:`participation_ratio`) and CKA the biased linear CKA. A **similarity** in units of
    dimensions: ENSD(X, X) = PR(X) (not 1), 0 for orthogonal kernels; unbounded above
    (PR grows with the data), hence the bounds (0, inf). Invariant to
    orthogonal maps, isotropic scaling and translation of either input; widths may differ.
    Streams from second moments.

    Parameters
    ----------
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None

    Attributes
    ----------
    participation_ratio_x_, participation_ratio_y_ : float
        PR(X) and PR(Y), set by ``fit`` and ``fit_score``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100000, 3)) * [1.0, 1.0, 1e-6]
    >>> m = ENSD()
    >>> round(m.fit_score(X, X), 3), round(m.participation_ratio_x_, 3)
    (2.0, 2.0)
    """

    kind = "similarity"
    bounds = (0.0, float("inf"))
    is_metric = False

    def _finalize_fit_score(self, a, b):
        self._record(a, b)
        cka, _ = _sums(a, b)
        return np.sqrt(_pr(a) * _pr(b)) * min(max(cka, 0.0), 1.0)

    def _from_gram_terms(self, pr_x, pr_y, cka):
        return float(np.sqrt(pr_x * pr_y) * min(max(cka, 0.0), 1.0))

    def _gradient_formula(self, X, Y, nx):
        """:func:`ensd_formula`."""
        return ensd_formula(X, Y, nx)


@register("ensd_distance")
class ENSDDistance(_ENSDBase):
    """The angular distance of ENSD (camillerb/ENSD's ``computeDist``).

    ::

        d(X, Y) = (2 / pi) arccos(ENSD(X, Y) / sqrt(PR(X) PR(Y))) = (2 / pi) arccos(CKA(X, Y))

    the angle between the normalised centred linear kernels, as a fraction of a right angle. A
    **distance** in [0, 1] and a metric on representations modulo rotations, isotropic scaling
    and translations (the angle between points of the unit sphere of kernels; Lange et al. 2022,
    Williams et al. 2021). Near 0 the angle is computed as 2 atan2(||u - v||, ||u + v||) of the
    unit kernels u, v in a joint basis of the two principal score spaces, so that X and X Q give
    0 to rounding, not sqrt(eps). Streams from second moments.

    Parameters
    ----------
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None

    Attributes
    ----------
    participation_ratio_x_, participation_ratio_y_ : float
        PR(X) and PR(Y), set by ``fit`` and ``fit_score``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 4))
    >>> Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    >>> round(ENSDDistance().fit_score(X, 2 * X @ Q), 12)
    0.0
    """

    kind = "distance"
    bounds = (0.0, 1.0)
    is_metric = True

    def _finalize_fit_score(self, a, b):
        self._record(a, b)
        return min(_angle(a, b) * 2.0 / np.pi, 1.0)

    def _from_gram_terms(self, pr_x, pr_y, cka):
        return float(min(np.arccos(min(max(cka, -1.0), 1.0)) * 2.0 / np.pi, 1.0))

    def _gradient_formula(self, X, Y, nx):
        """:func:`ensd_distance_formula`."""
        return ensd_distance_formula(X, Y, nx)
