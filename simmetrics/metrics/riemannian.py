"""The affine-invariant Riemannian distance between covariance matrices of representations.

Shahbazi, Shirali, Aghajan, Nili, "Using distance on the Riemannian manifold to compare
representations in brain and in models", NeuroImage 239 (2021) 118271; the metric of
Pennec, Fillard, Ayache, "A Riemannian framework for tensor computing", IJCV 66 (2006). For
symmetric positive definite p x p matrices A, B::

    d(A, B) = || log(A^-1/2 B A^-1/2) ||_F = sqrt( sum_i log^2 lambda_i(A^-1 B) )

Conventions of Lange's repsim (wrongu/repsim, ``AffineInvariantRiemannian(mode="cov")``): each
representation is centred and summarised by its covariance Xc'Xc / (n - 1); a representation
wider than p is first cut to its top p principal axes (projected, not rescaled), p = the
smaller width by default; an optional ridge ``eps`` I is added after the cut.
"""

import numpy as np
import scipy.linalg

from .._core.linalg import abs_max, center, times_pow2
from .._core.params import Integral, Interval, Real
from .._core.registry import register
from .._core.validation import check_nonconstant
from ..base import Metric
from ..moments import check_nonconstant_moments

__all__ = ["AffineInvariantRiemannian", "affine_invariant_distance"]

_REFERENCE = (
    "Shahbazi, Shirali, Aghajan, Nili, 'Using distance on the Riemannian manifold to compare "
    "representations in brain and in models', NeuroImage 2021; Pennec, Fillard, Ayache, IJCV "
    "2006 (conventions of Lange's repsim, mode 'cov')"
)


class _Side:
    """One representation's covariance, scaled: Xc'Xc = G 2^(2 e) (n rows), with the
    eigenvalues ``w`` of G in descending order."""

    __slots__ = ("G", "w", "e", "n")

    def __init__(self, G, w, e, n):
        self.G, self.w, self.e, self.n = G, w, e, n

    @property
    def width(self):
        return self.G.shape[0]


def _side_of_data(A, name):
    check_nonconstant(A, name)
    Xc = center(A)
    e = int(np.frexp(abs_max(Xc))[1])
    Xs = times_pow2(Xc, -e)
    s = np.linalg.svd(Xs, compute_uv=False)  # the eigenvalues of G with the data's digits
    w = np.zeros(Xs.shape[1])
    w[: s.size] = s**2
    return _Side(Xs.T @ Xs, w, e, A.shape[0])


def _side_of_moments(rep, name):
    check_nonconstant_moments(rep, name)
    G = np.asarray(rep.gram, dtype=np.float64)
    top = abs_max(G)
    k = int(np.frexp(top)[1]) // 2
    G = times_pow2(G, -2 * k)
    w = np.clip(np.linalg.eigvalsh(G)[::-1], 0.0, None)
    return _Side(G, w, rep.exponent + k, rep.n)


def _covariance(side, p, eps, name):
    """The scaled p x p covariance of one side (cut to its top p principal axes when wider)
    with the ridge, and its eigenvalues; singular is an error."""
    if side.width > p:
        w = side.w[:p].copy()
        C = np.diag(w)
    else:
        C, w = side.G.copy(), side.w.copy()
    ridge = float(np.ldexp(eps * (side.n - 1), -2 * side.e)) if eps else 0.0
    if ridge:
        C[np.diag_indices(p)] += ridge
        w = w + ridge
    if not w[-1] > p * np.finfo(np.float64).eps * w[0]:
        rank = int(np.sum(w > p * np.finfo(np.float64).eps * w[0]))
        raise ValueError(
            f"the covariance of {name} on the {p} axes compared is singular at float64 precision "
            f"(rank {rank} < {p}: fewer stimuli than axes, a dead unit, collinear neurons, or "
            "variances more than 1e15 apart), so the affine-invariant Riemannian distance is "
            "infinite or has no digits; pass eps > 0 to add a ridge"
        )
    return C


def _distance(a, b, p, eps):
    Ca, Cb = _covariance(a, p, eps, "X"), _covariance(b, p, eps, "Y")
    lam = scipy.linalg.eigh(Cb, Ca, eigvals_only=True)
    # covariances are G 2^(2 e) / (n - 1): the ratio of the scales shifts every log
    logs = np.log(lam) + 2.0 * (b.e - a.e) * np.log(2.0)
    return float(np.sqrt(np.sum(logs**2)))


def _components(metric, dx, dy):
    p = min(dx, dy) if metric.n_components is None else int(metric.n_components)
    if p > min(dx, dy):
        raise ValueError(
            f"n_components={p} is more than the width of X ({dx}) or Y ({dy}): a zero-padded "
            "covariance is singular and the distance infinite"
        )
    return p


def affine_invariant_distance(A, B):
    """sqrt(sum log^2 eig(A^-1 B)) for symmetric positive definite A, B of the same size.

    Examples
    --------
    >>> round(affine_invariant_distance(np.eye(2), np.diag([np.e, 1 / np.e])), 12)
    1.414213562373
    """
    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    lam = scipy.linalg.eigh(B, A, eigvals_only=True)
    return float(np.sqrt(np.sum(np.log(lam) ** 2)))


@register("affine_invariant_riemannian")
class AffineInvariantRiemannian(Metric):
    """Affine-invariant Riemannian distance of the covariances (Shahbazi et al. 2021; Lange's
    repsim ``AffineInvariantRiemannian(mode="cov")``).

    ::

        C_X = Xc'Xc / (n - 1) (+ eps I),    d(X, Y) = sqrt( sum_i log^2 lambda_i(C_X^-1 C_Y) )

    Each input is centred; one wider than p = ``n_components`` (default: the smaller width) is
    first projected onto its top p principal axes (no rescaling). The distance is unchanged
    when the *same* invertible map acts on both covariances (hence its name), but not when a
    map acts on one input only: rotating, permuting or scaling the neurons of X changes it
    (the neurons of equal-width inputs are compared one to one). Its only declared invariance
    is therefore translation. A **distance** in [0, inf); symmetric; a metric on positive
    definite matrices of one size (Pennec et al. 2006), but not on representations
    (different data can share a covariance) nor across widths (each pair cuts to its own p),
    so ``is_metric`` is False.

    A singular covariance (fewer stimuli than p + 1, a dead unit, collinear neurons) makes
    the distance infinite: that is a ValueError naming the input; ``eps > 0`` (Lange's ridge,
    in the data's squared units) makes it finite. Computed from the generalized symmetric
    eigenproblem C_Y v = lambda C_X v (Cholesky of C_X), on data rescaled by powers of two.
    Streams from second moments.

    Parameters
    ----------
    n_components : int >= 1 or None, default None
        p, the number of axes compared (Lange's ``p``); None: the smaller width. At most
        either width.
    eps : float >= 0, default 0.0
        Ridge added to both covariances after the cut.
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> round(AffineInvariantRiemannian().fit_score(X, np.exp(1) * X + 4.0), 12)  # sqrt(3) 2
    3.464101615138
    """

    kind = "distance"
    bounds = (0.0, float("inf"))
    is_metric = False
    symmetric = True
    invariances = frozenset({"translation"})
    reference = _REFERENCE
    _parameter_constraints = {
        "n_components": [None, Interval(Integral, 1, None, closed="left")],
        "eps": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, n_components=None, eps=0.0, layout=None):
        self.n_components = n_components
        self.eps = eps
        self.layout = layout

    def _partial_fit(self, A, name):
        return _side_of_data(A, name)

    def _finalize_fit_score(self, a, b):
        return _distance(a, b, _components(self, a.width, b.width), float(self.eps))

    def _gradient_formula(self, X, Y, nx):
        """sqrt(sum_i log^2 lambda_i(C_X^-1 C_Y)) with every step differentiable: C = Xc'Xc /
        (n - 1) (+ eps I); a side wider than p replaced by diag(its top p covariance
        eigenvalues, descending) + eps I (the value's cut to the top p principal axes,
        whose covariance is that diagonal: a function of the eigenvalues only, differentiable
        where the p-th and (p+1)-th differ); lambda the eigenvalues of L^-1 C_Y L^-T for the
        Cholesky factor L of C_X. The gradient of a symmetric function of eigenvalues needs
        no gap between them, so equal eigenvalues (C_Y = c C_X) are fine; the square root has
        no gradient at 0 (C_X = C_Y)."""
        p = _components(self, X.shape[1], Y.shape[1])
        eps = float(self.eps)
        Cs = []
        for A in (X, Y):
            A = A - A.mean(axis=0)
            C = A.T @ A / (A.shape[0] - 1)
            d = C.shape[0]
            if d > p:
                # the eigenvalues ascending, the top p of them picked in descending order
                top = nx.asarray(np.eye(d)[:, ::-1][:, :p])
                C = nx.diag(nx.eigvalsh(C) @ top)
            Cs.append(C + eps * nx.eye(p) if eps else C)
        L = nx.cholesky(Cs[0])
        M = nx.solve(L, nx.solve(L, Cs[1]).T)
        logs = nx.log(nx.eigvalsh((M + M.T) / 2.0))
        return nx.sqrt((logs * logs).sum())

    def _score_from_moments(self, stats):
        S = stats.to_numpy().centred()
        return self._finalize_fit_score(_side_of_moments(S.x, "X"), _side_of_moments(S.y, "Y"))
