"""Prediction measures: how well linear read-outs of one representation predict the other.

- :class:`GULP` (Boix-Adsera, Lawrence, Stepaniants, Rigollet 2022): the distance between the
  ridge-regression predictors the two representations give, uniformly over linear tasks.
- :class:`LinearRegressionR2`: the share of one representation's variance that least
  squares on the other explains (ReSi's ``linear_regression``), asymmetric.

Both depend on the data only through the column-centred second moments, so both stream
(:func:`simmetrics.stream_score`). Every value is computed from orthonormal bases U and
singular values s of the centred representations (:func:`simmetrics.metrics.subspace.
column_basis`; from moments, :func:`simmetrics.metrics.subspace.bases_from_moments`) and
the matrix M = Ux' Uy, so no covariance matrix is inverted and rank-deficient data (a dead or
duplicated neuron, n < d) give the value of the space actually spanned, never a NaN.
"""

import numbers

import numpy as np

from .._core.params import Boolean, Interval, Real
from .._core.registry import register
from ..base import GROUP_NAMES, Metric, param_dependent
from .subspace import bases_from_moments, column_basis
from .subspace_gradient import gulp_formula, regression_r2_formula

__all__ = ["GULP", "LinearRegressionR2", "gulp_distance"]

#: orthogonal maps and one common scale leave the singular values' ratios and the column space
#: unchanged; the centring removes a translation
_ORTHOGONAL_INVARIANCES = frozenset(
    {"permutation", "signed_permutation", "orthogonal", "isotropic_scaling", "translation"}
)


def _weighted(M, wx, wy):
    """sum_ij wx_i (M_ij)^2 wy_j."""
    return float(wx @ (M * M) @ wy)


def _ridge_shares(s, lmbda):
    """Eigenvalues of Sigma (Sigma + lambda I)^-1 for the covariance Sigma of the data scaled
    to unit total variance: s^2 / (s^2 + lambda sum s^2)."""
    sq = s * s
    return sq / (sq + lmbda * sq.sum())


def gulp_distance(M, sx, sy, lmbda=0.0, G=None):
    """The squared GULP distance from M = Ux' Uy, the singular values of the centred X and Y,
    and G = R'R for the part R = Uy - Ux M of Y's basis outside X's column space.

    With H = U diag(f) U' the ridge hat matrix of the representation scaled to unit total
    variance (f = s^2 / (s^2 + lambda sum s^2); H is the projection onto the column space for
    lambda = 0), the squared distance ``||Hx - Hy||_F^2`` splits into the blocks of
    Hx - Hy on X's column space and its complement::

        ||Fx - M Fy M'||_F^2 + 2 tr(M Fy G Fy M') + tr(Fy G Fy G)

    (F = diag(f)). Each term is small when the value is, so close representations give a
    small value with small relative error rather than the rounding of a difference of sums
    (whose square root, the distance, would be 1e-8 for equal inputs). G defaults to
    I - M'M (cancellation: for callers without the bases).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> U, _ = np.linalg.qr(rng.normal(size=(20, 3)))
    >>> s = np.array([3.0, 2.0, 1.0])
    >>> gulp_distance(U.T @ U, s, s), round(gulp_distance(U.T @ U[:, :2], s, s[:2]), 12)
    (0.0, 1.0)
    """
    fx, fy = _ridge_shares(sx, lmbda), _ridge_shares(sy, lmbda)
    if G is None:
        G = np.eye(fy.size) - M.T @ M
    MF = M * fy
    T = np.diag(fx) - MF @ M.T
    FG = fy[:, None] * G
    value = (float(np.einsum("ij,ij->", T, T)) + 2.0 * float(np.einsum("ij,ij->", MF @ G, MF))
             + float(np.einsum("ij,ji->", FG, FG)))
    return max(value, 0.0)


def _lmbda_zero(metric):
    value = metric.lmbda
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == 0


@register("gulp", aliases=("gulp_lambda0",))
class GULP(Metric):
    """GULP distance between two representations (Boix-Adsera, Lawrence, Stepaniants,
    Rigollet 2022, "GULP: a prediction-based metric between representations", NeurIPS).

    Each representation is column-centred and scaled to Frobenius norm sqrt(n), so its
    covariance Sigma = X'X / n has unit trace; with Sigma_xy = X'Y / n and
    Sigma^lambda = (Sigma + lambda I)^-1, the paper's squared distance is::

        GULP^2 = tr(Sx^l Sx Sx^l Sx) + tr(Sy^l Sy Sy^l Sy) - 2 tr(Sx^l Sxy Sy^l Syx)
               = ||Hx - Hy||_F^2,      H = X (X'X + n lambda I)^-1 X'   (ridge hat matrices)

    the expected squared gap between the ridge predictions of the best linear predictors
    built on X and on Y, in the worst case over bounded linear tasks. Computed here as
    ``sum fx^2 + sum fy^2 - 2 sum_ij fx_i (Ux'Uy)_ij^2 fy_j`` from the SVDs of the centred data
    (f = s^2 / (s^2 + lambda sum s^2), see :func:`gulp_distance`), with no matrix inverted:
    with lambda = 0 the hat matrices are the projections onto the column spaces, so
    rank-deficient data give the value for the spaces spanned (the limit lambda -> 0+) where
    the paper's inverse does not exist.

    Convention of ReSi (mklabunde/resi, ``repsim/measures/gulp.py``, Klabunde et al. 2024),
    which takes the normalisation from the GULP authors' code: ``squared=True`` (the default)
    returns GULP^2, the squared distance, as ReSi does (its ``gulp`` with lambda 0 is this
    value); ``squared=False`` returns the distance GULP itself, which the paper proves is a
    metric (a Frobenius distance between hat matrices).

    A **distance** in [0, d_x + d_y]: 0 when the hat matrices agree. With lambda = 0 it
    depends on X only through its centred column space, so it is invariant to every
    invertible linear map of the neurons (every group in :data:`simmetrics.GROUP_NAMES`) and
    to translation; with lambda > 0 to orthogonal maps, isotropic scaling and translation. With
    lambda = 0 and a representation spanning the whole centred space (centred rank n - 1,
    typically n <= d), its hat matrix is the centring projection whatever the data: compare
    with lambda > 0 or many more samples than neurons. Constant input is an error.

    Parameters
    ----------
    lmbda : float >= 0, default 0
        Ridge penalty lambda, relative to the unit-trace covariance.
    squared : bool, default True
        Return the squared distance (ReSi's value) rather than the distance.
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 6))
    >>> GULP().fit_score(X, X @ rng.normal(size=(6, 6)) + 1.0) < 1e-12
    True
    >>> round(GULP().fit_score(X, X[:, :2]), 8)  # 6 + 2 - 2 * 2: four directions apart
    4.0
    >>> bool(GULP(lmbda=0.1, squared=False).fit_score(X, X[:, :2]) > 0)
    True
    """

    kind = "distance"
    bounds = (0.0, float("inf"))
    is_metric = param_dependent(lambda self: self.squared is False)
    invariances = param_dependent(
        lambda self: frozenset(GROUP_NAMES) if _lmbda_zero(self) else _ORTHOGONAL_INVARIANCES
    )
    min_samples = 2
    same_width = False
    symmetric = True
    reference = ("Boix-Adsera, Lawrence, Stepaniants, Rigollet 2022, GULP: a prediction-based "
                 "metric between representations, NeurIPS; convention of ReSi (Klabunde et al. "
                 "2024)")

    _parameter_constraints = {
        "lmbda": [Interval(Real, 0, None, closed="left")],
        "squared": [Boolean()],
    }

    def __init__(self, lmbda=0.0, squared=True, layout=None):
        self.lmbda = lmbda
        self.squared = squared
        self.layout = layout

    def _gradient_formula(self, X, Y, nx):
        """||Hx - Hy||_F^2 in feature space
        (:func:`simmetrics.metrics.subspace_gradient.gulp_formula`; with lambda = 0 on
        rank-deficient data, the gradient along rank-preserving perturbations)."""
        return gulp_formula(X, Y, float(self.lmbda), bool(self.squared), nx)

    def _value(self, M, sx, sy, G):
        value = gulp_distance(M, sx, sy, float(self.lmbda), G)
        return value if self.squared else float(np.sqrt(value))

    # per representation (simmetrics.pairwise): basis and singular values of the centred data
    def _partial_fit(self, A, name):
        return column_basis(A, name, centred=True)

    def _finalize_fit_score(self, a, b):
        (Ux, sx), (Uy, sy) = a, b
        M = Ux.T @ Uy
        R = Uy - Ux @ M  # Y's basis outside X's column space
        return self._value(M, sx, sy, R.T @ R)

    # -- streaming: the same bases from the centred second moments --------------------------
    _moments_factor = True
    _moments_any_scale = True

    def _score_from_moments(self, stats):
        return self._value(*bases_from_moments(stats, centred=True, residual=True))


@register("linear_regression", aliases=("resi_linear_regression",))
class LinearRegressionR2(Metric):
    """The share of X's variance that least squares on Y explains (ReSi's
    ``linear_regression``; the R^2 of the multivariate linear regression of X on Y).

    ::

        R2(X, Y) = ||P_Y Xc||_F^2 / ||Xc||_F^2 = sum_ij s_x,i^2 (Ux'Uy)_ij^2 / sum_i s_x,i^2

    with Xc, Yc the column-centred data, P_Y = Uy Uy' the projection onto the column space of
    Yc (least squares with an intercept, every neuron of X regressed on all of Y) and
    Xc = Ux diag(s_x) Vx' (the second form, used here). **Argument order**: the first argument
    is the one explained, the second the predictor, as in ReSi (mklabunde/resi,
    ``repsim/measures/linear_regression.py``, Klabunde et al. 2024: ``linear_reg(R, Rp)``
    explains R from Rp with the basis Rp (Rp'Rp)^(-1/2)); ``score(Y, X)`` is its reversed value.
    Source of the measure: the linear-regression similarity of Kornblith, Norouzi, Lee,
    Hinton 2019 (ICML, "Similarity of Neural Network Representations Revisited", section 4),
    as ReSi defines it. ReSi inverts Yc'Yc, which a dead or duplicated neuron of Y makes
    singular; here the basis drops directions below the rank tolerance, so such data give the
    value for the space Y spans. When Y spans the whole centred space (typically n <= d_y)
    every X is explained: the value is 1.

    A **similarity** in [0, 1]; not symmetric, not a metric. Invariant to any invertible
    linear map of Y, but only to orthogonal maps, isotropic scaling and translation of X: the
    declared invariances (which hold on either side) are those. Constant input is an error.

    Parameters
    ----------
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 4))
    >>> round(LinearRegressionR2().fit_score(X[:, :2], X), 12)  # X[:, :2] lies in X's span
    1.0
    >>> bool(LinearRegressionR2().fit_score(X, X[:, :2]) < 0.6)  # two of four directions
    True
    """

    kind = "similarity"
    bounds = (0.0, 1.0)
    is_metric = False
    invariances = _ORTHOGONAL_INVARIANCES
    min_samples = 2
    same_width = False
    symmetric = False
    reference = ("Kornblith, Norouzi, Lee, Hinton 2019, Similarity of Neural Network "
                 "Representations Revisited, ICML; convention of ReSi (Klabunde et al. 2024)")

    _parameter_constraints = {}

    def __init__(self, layout=None):
        self.layout = layout

    def _gradient_formula(self, X, Y, nx):
        """||Py Xc||^2 / ||Xc||^2 in feature space
        (:func:`simmetrics.metrics.subspace_gradient.regression_r2_formula`). The value's cap
        at 1 only removes rounding; where Y spans the whole centred space the value is 1
        whatever X, and the formula's gradient with respect to X is then 0."""
        return regression_r2_formula(X, Y, nx)

    @staticmethod
    def _value(M, sx, sy):
        weights = sx * sx
        return min(_weighted(M, weights, np.ones(sy.size)) / float(weights.sum()), 1.0)

    # per representation (simmetrics.pairwise): basis and singular values of the centred data
    def _partial_fit(self, A, name):
        return column_basis(A, name, centred=True)

    def _finalize_fit_score(self, a, b):
        return self._value(a[0].T @ b[0], a[1], b[1])

    # -- streaming: the same bases from the centred second moments --------------------------
    _moments_factor = True
    _moments_any_scale = True

    def _score_from_moments(self, stats):
        return self._value(*bases_from_moments(stats, centred=True))
