"""Unit matching: compare two representations neuron by neuron, or sample by sample after a
rotation.

:class:`HardCorrelationMatch` and :class:`SoftCorrelationMatch` (Li, Yosinski, Clune, Lipson,
Hopcroft, "Convergent learning: do different neural networks learn the same
representations?", ICLR 2016; first at the NIPS 2015 Feature Extraction workshop) correlate every neuron of X with every neuron of Y
(Pearson r over the stimuli) and average the best matches: one-to-one (an assignment) or each
neuron's best partner. :class:`AlignedCosine` (Hamilton, Leskovec, Jurafsky 2016, ACL) rotates
X onto Y by orthogonal Procrustes and averages the cosine similarity of each stimulus's two
vectors. Conventions and values follow ReSi (Klabunde, Wald, Schumacher, Strohmaier, Lemmerich
2025, ICLR; mklabunde/resi, ``repsim/measures/correlation_match.py`` and ``procrustes.py``).
"""

import numpy as np
from scipy.optimize import linear_sum_assignment

from .._core.linalg import center, pow2_rescale
from .._core.registry import register
from .._core.solvers import rotation_from_cross
from .._core.validation import check_nonconstant
from ..base import Metric
from .unit_matching_gradient import (
    aligned_cosine_formula,
    aligned_cosine_state,
    correlation_match_formula,
    correlation_match_state,
)

__all__ = ["HardCorrelationMatch", "SoftCorrelationMatch", "AlignedCosine",
           "neuron_correlations"]

# Pearson correlations between neurons are unchanged by translating the activations and by
# rescaling any neuron by a positive factor; a permutation only reorders the matrix, which the
# matching does not see. A sign flip of one neuron negates its correlations: not invariant.
_CORRELATION_MATCH_INVARIANCES = frozenset(
    {"permutation", "positive_scaled_permutation", "isotropic_scaling", "translation"}
)


def _unit_columns(A, name):
    """The columns of ``A`` centred and scaled to unit norm (each column first rescaled by a
    power of two, exact, so no square over- or underflows), and which columns vary. Constant
    columns (dead units) are left as zeros; all of them constant is an error."""
    live = np.ptp(A, axis=0) > 0.0
    if not live.any():
        raise ValueError(f"{name} has zero variance: every neuron is constant across samples")
    top = np.max(np.abs(A), axis=0)
    exps = np.where(top > 0, np.frexp(np.where(top > 0, top, 1.0))[1], 0)
    U = center(A * np.ldexp(1.0, -exps))
    norms = np.sqrt(np.einsum("ij,ij->j", U, U))
    U[:, live] /= norms[live]
    U[:, ~live] = 0.0
    return U, live


def _correlations(sx, sy):
    """The (d_x, d_y) Pearson correlations between the neurons of two :func:`_unit_columns`
    states, with the dead-unit rule: two constant neurons correlate 1, a constant neuron and
    a varying one 0."""
    (U, live_x), (V, live_y) = sx, sy
    C = np.clip(U.T @ V, -1.0, 1.0)
    C[np.ix_(~live_x, ~live_y)] = 1.0
    return C


def neuron_correlations(X, Y):
    """Pearson correlations between every neuron (column) of ``X`` and every neuron of ``Y``,
    over the samples (rows): a (d_x, d_y) matrix. A constant neuron (a dead unit) has no
    correlation; by the rule used here it correlates 1 with another constant neuron and 0 with
    a varying one (ReSi's value for the latter), so a representation matches itself perfectly.

    Examples
    --------
    >>> X = np.array([[0.0, 1.0, 5.0], [1.0, 0.0, 5.0], [2.0, 1.0, 5.0]])
    >>> neuron_correlations(X, X).round(12).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    return _correlations(_unit_columns(X, "X"), _unit_columns(Y, "Y"))


class _CorrelationMatch(Metric):
    """Shared declarations and the per-representation step of the correlation matchings."""

    kind = "similarity"
    bounds = (-1.0, 1.0)
    is_metric = False
    symmetric = True
    invariances = _CORRELATION_MATCH_INVARIANCES
    min_samples = 2
    same_width = False
    reference = ("Li, Yosinski, Clune, Lipson, Hopcroft 2016, Convergent learning: do different "
                 "neural networks learn the same representations?, ICLR; ReSi "
                 "(Klabunde et al. 2025, ICLR)")

    _parameter_constraints = {}

    def __init__(self, layout=None):
        self.layout = layout

    # per representation (simmetrics.pairwise): the standardised neurons
    def _partial_fit(self, A, name):
        return _unit_columns(A, name)

    def _finalize_fit_score(self, sx, sy):
        C = _correlations(sx, sy)
        # what the gradient formula holds fixed: the matched pairs (Danskin's theorem)
        self._gradient_state = correlation_match_state(sx, sy, *self._pairs(C), C)
        return self._match(C)

    def _gradient_formula(self, X, Y, nx):
        """The matched correlations of the fitted matching, the matching held fixed
        (:func:`simmetrics.metrics.unit_matching_gradient.correlation_match_formula`)."""
        return correlation_match_formula(self._gradient_state, X, Y, nx)


@register("hard_correlation_match")
class HardCorrelationMatch(_CorrelationMatch):
    """Hard (one-to-one) correlation matching of neurons (Li et al. 2016).

    ::

        HardCorrelationMatch(X, Y) = max over one-to-one matchings pi of
                                     1/m  sum_j  r(x_(:, j), y_(:, pi(j))),   m = min(d_x, d_y)

    with r the Pearson correlation of two neurons over the stimuli. The matching maximises
    the sum of matched correlations (Kuhn's Hungarian method, ``scipy.optimize.
    linear_sum_assignment``); when one side is wider, its surplus neurons are left unmatched.
    Convention of ReSi's ``hard_correlation_match`` (columns centred, correlation as the
    cosine of centred columns, mean over the m matched pairs), whose values this reproduces.

    Ties: several matchings may reach the maximum (duplicated neurons, binary data); the value
    is the maximum divided by m, the same whichever of them is found, so no rule is needed.

    Dead units: a constant neuron has no correlation. Here it correlates 1 with a constant
    neuron of the other side and 0 with a varying one (ReSi gives 0 to both), so that a
    representation with dead units matches itself with value 1. Every neuron of X (or of Y)
    constant is an error.

    A **similarity** in [-1, 1], 1 when every neuron of the narrower side is perfectly
    correlated with its own neuron of the other. Symmetric; not a metric. Invariant to
    permutations of the neurons, to positive rescaling of each neuron and to translation; not
    to sign flips or rotations. Memory O(n (d_x + d_y) + d_x d_y), time O(n d_x d_y + d^3).

    Parameters
    ----------
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 6))
    >>> round(HardCorrelationMatch().fit_score(X, 3 * X[:, ::-1] + 1), 12)
    1.0
    """

    def _match(self, C):
        rows, cols = linear_sum_assignment(C, maximize=True)
        return float(np.clip(C[rows, cols].sum() / rows.size, -1.0, 1.0))

    @staticmethod
    def _pairs(C):
        """(rows, cols, weights): the optimal matching's pairs, each weighing 1/m."""
        rows, cols = linear_sum_assignment(C, maximize=True)
        return rows, cols, np.full(rows.size, 1.0 / rows.size)


@register("soft_correlation_match")
class SoftCorrelationMatch(_CorrelationMatch):
    """Soft correlation matching of neurons (Li et al. 2016): each neuron's best partner.

    ::

        SoftCorrelationMatch(X, Y) = 1/2 ( 1/d_x sum_j max_k r(x_j, y_k)
                                         + 1/d_y sum_k max_j r(x_j, y_k) )

    with r the Pearson correlation of two neurons over the stimuli: every neuron of X finds
    its most correlated neuron of Y (several may pick the same one), and the other way round;
    the two directions are averaged so that the value is symmetric. Convention of ReSi's
    ``soft_correlation_match``, whose values this reproduces. Dead units as in
    :class:`HardCorrelationMatch`: a constant neuron correlates 1 with a constant neuron of the
    other side and 0 with a varying one.

    A **similarity** in [-1, 1]; at least the value of :class:`HardCorrelationMatch` for equal
    widths. Symmetric; not a metric. Invariant to permutations of the neurons, to positive
    rescaling of each neuron and to translation. Memory O(n (d_x + d_y) + d_x d_y).

    Parameters
    ----------
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 6))
    >>> round(SoftCorrelationMatch().fit_score(X, np.hstack([X, X])), 12)
    1.0
    """

    def _match(self, C):
        value = 0.5 * (C.max(axis=1).mean() + C.max(axis=0).mean())
        return float(np.clip(value, -1.0, 1.0))

    @staticmethod
    def _pairs(C):
        """(rows, cols, weights): each neuron of X with its best partner (weight 1/(2 d_x)),
        and each neuron of Y with its best partner (1/(2 d_y)); argmax picks the first of
        tied partners, which have the same correlation."""
        dx, dy = C.shape
        rows = np.concatenate([np.arange(dx), C.argmax(axis=0)])
        cols = np.concatenate([C.argmax(axis=1), np.arange(dy)])
        return rows, cols, np.concatenate([np.full(dx, 0.5 / dx), np.full(dy, 0.5 / dy)])


def _check_rows_nonzero(A, name):
    norms = np.sqrt(np.einsum("ij,ij->i", A, A))
    zero = np.flatnonzero(norms == 0.0)
    if zero.size:
        raise ValueError(
            f"row {zero[0]} of {name} is all zeros ({zero.size} such rows), so its cosine "
            "similarity with the aligned sample is undefined"
        )
    return norms


#: The cosines may move by at most this much through directions of X'Y lost to rounding.
_COSINE_DIGITS = 1e-8


def _check_rotation_digits(M, X, Y, norms_x, norms_y):
    """Refuse where float64 cannot fix the rotation's effect on the cosines.

    The computed X'Y carries rounding errors up to about ``tol = 16 n eps sum_i ||x_i||
    ||y_i||``; singular directions of X'Y whose singular values are below ``tol`` are lost
    to them, so the rotation there is arbitrary. That is harmless where X or Y has no
    component along them (zero-padding, dead units, fewer stimuli than neurons: the
    cosines do not depend on it); where both do (one stimulus 1e8 times the others, a far
    outlier beside a tight cluster) the cosines of the other stimuli are not determined, and
    a ValueError says so rather than returning rounding noise."""
    n = X.shape[0]
    if M.size == 0 or n == 0:
        return
    tol = 16.0 * n * np.finfo(np.float64).eps * float(norms_x @ norms_y)
    U, sv, Vt = np.linalg.svd(M)
    lost = sv <= tol
    if not lost.any():
        return
    Px, Py = X @ U[:, lost], Y @ Vt[lost].T  # each stimulus's components along them
    along_x = np.sqrt(np.einsum("ij,ij->i", Px, Px))
    along_y = np.sqrt(np.einsum("ij,ij->i", Py, Py))
    bound = float(np.mean(2.0 * along_x * along_y / (norms_x * norms_y)))
    if bound > _COSINE_DIGITS:
        raise ValueError(
            f"the rotation of X onto Y is not determined in float64 on these data: "
            f"{int(lost.sum())} of the singular values of X'Y are below its rounding error "
            f"({tol:.3g}), and the cosines depend on those directions by up to {bound:.3g} "
            "(one stimulus far larger than the others, or a far outlier beside a tight "
            "cluster); rescale or drop such stimuli"
        )


@register("aligned_cosine")
class AlignedCosine(Metric):
    """Aligned cosine similarity (Hamilton, Leskovec, Jurafsky 2016, ACL, "Diachronic word
    embeddings reveal statistical laws of semantic change").

    ::

        AlignedCosine(X, Y) = 1/n  sum_i  cos(x_i Q*, y_i),
        Q* = argmin over orthogonal Q of ||X Q - Y||_F = U V'   (U S V' = SVD of X'Y)

    X is rotated onto Y by orthogonal Procrustes (Schoenemann 1966), without centring or
    scaling; the narrower side is first zero-padded to the wider's width. Then each stimulus's
    two vectors are compared by their cosine. Convention of ReSi's ``aligned_cossim``, whose
    values this reproduces (ReSi leaves out, with a warning, a stimulus that is all zeros;
    here that is an error naming the row).

    The rotation is unique where the singular values of X'Y are distinct and non-zero; where
    some are zero (padding, dead units, fewer stimuli than neurons) it is not, but in those
    directions the rows of X or of Y have no component for generic data, so the cosines do
    not depend on the choice.

    A **similarity** in [-1, 1], 1 when Y is a rotation of X up to a positive factor per
    stimulus. Symmetric (rotating Y onto X by Q*' gives the same cosines); not a metric.
    Invariant to orthogonal maps of either side (rotations, signed and plain permutations) and
    to isotropic scaling; not to translation. Memory O(n d + d^2) with d = max(d_x, d_y).

    Parameters
    ----------
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Raises
    ------
    ValueError
        A stimulus (row) of X or Y that is all zeros (the message names X or Y and the row).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 4))
    >>> Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    >>> round(AlignedCosine().fit_score(X, 2 * X @ Q), 12)
    1.0
    """

    kind = "similarity"
    bounds = (-1.0, 1.0)
    is_metric = False
    symmetric = True
    invariances = frozenset({"orthogonal", "signed_permutation", "permutation",
                             "isotropic_scaling"})
    min_samples = 2
    same_width = False
    reference = ("Hamilton, Leskovec, Jurafsky 2016, Diachronic word embeddings reveal "
                 "statistical laws of semantic change, ACL; ReSi (Klabunde et al. 2025, ICLR)")

    _parameter_constraints = {}

    def __init__(self, layout=None):
        self.layout = layout

    def _score(self, X, Y):
        return self._evaluate(X, Y)[0]

    def _fit_score(self, X, Y):
        value, self._gradient_state = self._evaluate(X, Y)
        return value

    def _gradient_formula(self, X, Y, nx):
        """The mean cosine with the rotation's derivative carried through the linearised
        polar factor (:func:`simmetrics.metrics.unit_matching_gradient.aligned_cosine_formula`;
        not Danskin: the rotation is not the value's optimum)."""
        return aligned_cosine_formula(*self._gradient_state, X, Y, nx)

    def _evaluate(self, X, Y):
        """(value, what the gradient formula holds fixed)."""
        # a representation without variance says nothing about the stimuli (the package's rule)
        check_nonconstant(X, "X")
        check_nonconstant(Y, "Y")
        # each side rescaled by a power of two: exact, and neither the rotation nor a cosine
        # depends on a positive factor
        Xs, Ys = pow2_rescale(X), pow2_rescale(Y)
        scales = (_power_of_two_ratio(Xs, X), _power_of_two_ratio(Ys, Y))
        X, Y = Xs, Ys
        nx_, ny_ = _check_rows_nonzero(X, "X"), _check_rows_nonzero(Y, "Y")
        width = max(X.shape[1], Y.shape[1])
        Xp = np.zeros((X.shape[0], width))
        Xp[:, : X.shape[1]] = X
        Yp = np.zeros((Y.shape[0], width))
        Yp[:, : Y.shape[1]] = Y
        M = Xp.T @ Yp  # in range: both sides were rescaled to entries below 1
        _check_rotation_digits(M, Xp, Yp, nx_, ny_)
        Q = rotation_from_cross(M)
        cosines = np.einsum("ij,ij->i", Xp @ Q, Yp) / (nx_ * ny_)
        value = float(np.clip(np.clip(cosines, -1.0, 1.0).mean(), -1.0, 1.0))
        return value, (scales, aligned_cosine_state(X, Y, Q))


def _power_of_two_ratio(scaled, A):
    """The power of two ``scaled / A`` (``scaled`` is ``A`` rescaled by
    :func:`simmetrics._core.linalg.pow2_rescale`), from their largest magnitudes."""
    top, top_scaled = float(np.max(np.abs(A))), float(np.max(np.abs(scaled)))
    return top_scaled / top if top > 0.0 else 1.0
