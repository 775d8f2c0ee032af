"""Shape distances whose alignment matches neurons: permutations and transport plans.

- :class:`PermutationMetric` (netrep's ``PermutationMetric``; Williams et al. 2021): the best
  permutation of the neurons, by :func:`optimal_permutation` (Kuhn's Hungarian method).
- :class:`SoftMatching` (Khosla & Williams, UniReps 2023): the optimal transport plan between the
  two populations' tuning curves, by :func:`soft_matching_plan` (POT's network simplex), which
  allows layers of different widths.

Both are :class:`simmetrics.metrics.alignment.CenteredAlignment` metrics: centring with means
learned in ``fit``, scores on the fitting data from the products the alignment was found with,
and streaming from second moments.
"""

import numpy as np

from .._core.linalg import pow2_rescale
from .._core.params import Boolean, Options
from .._core.registry import register
from .._core.solvers import assignment_from_cross, cross_in_range, pad2
from ..base import param_dependent
from .alignment import CenteredAlignment, angular_or_euclidean_bounds, zero_pad
from .matching_gradient import permutation_formula, soft_matching_formula

__all__ = ["PermutationMetric", "SoftMatching", "optimal_permutation", "soft_matching_plan"]


def optimal_permutation(A, B):
    """The permutation ``perm`` maximising sum_i <A[:, i], B[:, perm[i]]> (equivalently
    minimising ||A - B[:, perm]||_F), by ``scipy.optimize.linear_sum_assignment`` on A'B.
    ``A`` and ``B`` must have the same width.

    Examples
    --------
    >>> A = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    >>> optimal_permutation(A, A[:, [2, 0, 1]]).tolist()
    [1, 2, 0]
    """
    # invariant to positive scalings of A and B: rescaled where A'B would leave the range
    return assignment_from_cross(cross_in_range(A, B))


def soft_matching_plan(A, B):
    """The optimal transport plan between the columns (neurons) of ``A`` (N_x of them, mass
    1/N_x each) and of ``B`` (N_y, mass 1/N_y), with cost ||a_i - b_j||^2.

    Solved exactly by POT's network simplex (``ot.emd``). Returns the (N_x, N_y) plan P, whose
    rows sum to 1/N_x and columns to 1/N_y.

    Examples
    --------
    >>> A = np.array([[0.0, 1.0], [0.0, 1.0]])
    >>> (soft_matching_plan(A, A[:, ::-1]) * 2).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    # one common power of two for both (exact): the cost is multiplied by a constant, which
    # does not change the optimal plan, and its squares stay in range at 1e300 and 1e-300
    top = max(np.max(np.abs(A)), np.max(np.abs(B)))
    if top > 0.0:
        e = int(np.frexp(top)[1])
        A, B = np.ldexp(A, -e), np.ldexp(B, -e)
    sq_a = np.einsum("ij,ij->j", A, A)
    sq_b = np.einsum("ij,ij->j", B, B)
    return _plan_from_cost(sq_a[:, None] + sq_b[None, :] - 2.0 * (A.T @ B))


def _plan_from_cost(cost):
    """The exact optimal plan of :func:`soft_matching_plan` for the cost matrix
    ||a_i||^2 + ||b_j||^2 - 2 a_i'b_j (negative rounding residues clipped to 0)."""
    import ot

    nx, ny = cost.shape
    np.maximum(cost, 0.0, out=cost)
    plan, log = ot.emd(
        np.full(nx, 1.0 / nx), np.full(ny, 1.0 / ny), cost, numItermax=10_000_000, log=True
    )
    if log["result_code"] != 1:  # pragma: no cover - the problem is always feasible
        raise RuntimeError(f"ot.emd did not find the optimal plan: {log['warning']}")
    return np.asarray(plan, dtype=np.float64)


def _permutation_invariances(self):
    groups = {"permutation"}
    if self.center_columns:
        groups.add("translation")
    if self.score_method in ("angular", "chordal"):
        groups.add("isotropic_scaling")
    return frozenset(groups)


@register("permutation_metric")
class PermutationMetric(CenteredAlignment):
    """Shape distance with neuron permutations as the alignment group (netrep's
    ``PermutationMetric``; Williams et al. 2021).

    Centre (means learned in ``fit``), zero-pad the narrower representation to the common width
    d, and find the permutation pi maximising sum_i <Xc[:, i], Yc[:, pi(i)]> by
    ``scipy.optimize.linear_sum_assignment``; then, with Y' = Yc[:, pi]::

        angular:   arccos( <Xc, Y'>_F / (||Xc||_F ||Y'||_F) )   in [0, pi]
        euclidean: ||Xc - Y'||_F                                 (not divided by sqrt(n))
        chordal:   2 sin(angular / 2) = sqrt(2 - 2 cos)          in [0, 2]

    (the angle can exceed pi/2 when even the best matching is anti-correlated). A
    **distance** and, for equal widths, a metric (Williams et al. 2021). Invariant to neuron
    permutations and translations, the angular form also to isotropic scaling; not to
    rotations.

    Zero-padding pairs the surplus neurons of the wider layer with silent neurons, and across
    different widths the triangle inequality can then fail (x -> [x/2, -x/2] -> -x is shorter
    than x -> -x); :class:`SoftMatching` is the principled alternative for different widths.

    ReSi's ``permutation_procrustes`` (mklabunde/resi; Klabunde et al., "Similarity of Neural
    Network Models: A Survey of Functional and Representational Measures", ACM Computing
    Surveys 2025) is ``PermutationMetric(score_method="euclidean", center_columns=False)``: no
    centring or scaling, zero-padding, the best permutation, the Frobenius distance.

    Parameters
    ----------
    score_method : {"angular", "euclidean", "chordal"}, default "angular"
        "chordal" is the Euclidean distance of the two matched representations each scaled to
        unit Frobenius norm (scale-free, like the angle).
    center_columns : bool, default True
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None

    Attributes
    ----------
    mean_x_, mean_y_ : ndarray
    permutation_ : ndarray of int, shape (d,)
        Neuron ``permutation_[i]`` of (padded) Y is matched with neuron i of X; indices past
        Y's width are padding.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 4))
    >>> metric = PermutationMetric().fit(X, X[:, [3, 1, 0, 2]])
    >>> metric.permutation_.tolist(), round(metric.score(X, X[:, [3, 1, 0, 2]]), 10)
    ([2, 1, 3, 0], 0.0)
    """

    bounds = angular_or_euclidean_bounds(np.pi)
    invariances = param_dependent(_permutation_invariances)
    reference = (
        "Williams, Kunz, Kornblith, Linderman, NeurIPS 2021 (netrep's PermutationMetric)"
    )

    def __init__(self, score_method="angular", center_columns=True, layout=None):
        self.score_method = score_method
        self.center_columns = center_columns
        self.layout = layout

    def _fit_alignment(self, Xc, Yc):
        self.permutation_ = optimal_permutation(Xc, Yc)

    def _fit_alignment_from_cross(self, a, b, C):
        self.permutation_ = assignment_from_cross(C)
        return a.sq, b.sq, float(C[np.arange(len(C)), self.permutation_].sum())

    def _align(self, Xc, Yc):
        width = self.permutation_.size
        return zero_pad(Xc, width), zero_pad(Yc, width)[:, self.permutation_]

    def _fit_alignment_from_moments(self, S):
        width = max(S.x.width, S.y.width)
        self.permutation_ = assignment_from_cross(pow2_rescale(pad2(S.cross, width, width)))

    def _gradient_formula(self, X, Y, nx):
        """The value with the fitted permutation held fixed (Danskin's theorem;
        :func:`simmetrics.metrics.matching_gradient.permutation_formula`)."""
        return permutation_formula(self, X, Y, nx)

    def _aligned_products(self, S):
        width = self.permutation_.size
        C = pad2(S.cross, width, width)
        return np.trace(S.x.gram), np.trace(S.y.gram), float(
            C[np.arange(width), self.permutation_].sum()
        )


@register("soft_matching")
class SoftMatching(CenteredAlignment):
    """Soft matching distance (Khosla & Williams, "Soft Matching Distance: A metric on neural
    representations that captures single-neuron tuning", UniReps 2023, arXiv 2311.09466).

    With x_i (i = 1..N_x) and y_j (j = 1..N_y) the tuning curves (columns, over the n stimuli)
    of the centred representations, and T(N_x, N_y) the transport polytope of non-negative
    N_x x N_y matrices with row sums 1/N_x and column sums 1/N_y::

        d(X, Y) = sqrt( min_{P in T(N_x, N_y)}  sum_ij P_ij ||x_i - y_j||^2 )

    the 2-Wasserstein distance between the uniform empirical distributions of the two
    populations' tuning curves. No division by the number of stimuli (as in the paper). For
    equal widths the optimal P is a permutation divided by N, so the value is netrep's
    Euclidean permutation distance divided by sqrt(N). The plan is solved exactly with POT's
    ``ot.emd``. The paper defines only this (Euclidean) form, so ``score_method`` accepts only
    "euclidean".

    ``fit`` learns the means and the plan P; ``score`` evaluates sum_ij P_ij ||x_i - y_j||^2 on
    the given stimuli with the fitted P. ``transform`` carries Y's neurons onto X's along the
    plan: every transported mass P_ij > 0 becomes one column, sqrt(P_ij) x_i in X' and
    sqrt(P_ij) y_j in Y', so that the distance is ||X' - Y'||_F.

    A **distance** in [0, inf) and a metric (Khosla & Williams prove the triangle inequality);
    zero when the populations hold the same tuning curves in the same proportions. Invariant
    to neuron permutations and (centred) translations; not to rotations or scaling.

    Parameters
    ----------
    score_method : {"euclidean"}, default "euclidean"
    center_columns : bool, default True
        Subtract each neuron's mean response (learned in ``fit``) before matching.
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None

    Attributes
    ----------
    mean_x_, mean_y_ : ndarray
    plan_ : ndarray, shape (N_x, N_y)
        The optimal transport plan.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 3))
    >>> round(SoftMatching().fit_score(X, X[:, [0, 0, 1, 1, 2, 2]]), 10)  # each neuron twice
    0.0
    """

    kind = "distance"
    bounds = (0.0, np.inf)
    invariances = param_dependent(
        lambda self: frozenset({"permutation", "translation"} if self.center_columns
                               else {"permutation"})
    )
    reference = (
        "Khosla & Williams, 'Soft Matching Distance: A metric on neural representations that "
        "captures single-neuron tuning', UniReps 2023 (arXiv 2311.09466)"
    )
    _score_methods = ("euclidean",)
    _pads = False  # a transport plan matches populations of any sizes

    _parameter_constraints = {
        "score_method": [Options({"euclidean"}, hint="SoftMatching: Khosla & Williams define no "
                                 "angular form")],
        "center_columns": [Boolean()],
    }

    def __init__(self, score_method="euclidean", center_columns=True, layout=None):
        self.score_method = score_method
        self.center_columns = center_columns
        self.layout = layout

    def _check_params(self):
        if self.score_method not in self._score_methods:
            raise ValueError(
                f"score_method must be 'euclidean' for SoftMatching (Khosla & Williams define no "
                f"angular form), got {self.score_method!r}"
            )

    def _fit_alignment(self, Xc, Yc):
        self.plan_ = soft_matching_plan(Xc, Yc)

    def _fit_alignment_from_cross(self, a, b, C):
        # cost ||x_i - y_j||^2 = ||x_i||^2 + ||y_j||^2 - 2 x_i'y_j between the centred neurons;
        # with the plan P, ||X'||^2 = sum_ij P_ij ||x_i||^2 and <X', Y'> = sum_ij P_ij x_i'y_j
        cost = np.maximum(a.colsq[:, None] + b.colsq[None, :] - 2.0 * C, 0.0)
        self.plan_ = _plan_from_cost(pow2_rescale(cost))
        return (float(self.plan_.sum(axis=1) @ a.colsq), float(self.plan_.sum(axis=0) @ b.colsq),
                float(np.sum(self.plan_ * C)))

    def _align(self, Xc, Yc):
        rows, cols = np.nonzero(self.plan_)
        weights = np.sqrt(self.plan_[rows, cols])
        return Xc[:, rows] * weights, Yc[:, cols] * weights

    @staticmethod
    def _cost_from_moments(S):
        """||x_i - y_j||^2 between the centred neurons, from centred moments."""
        cost = np.diag(S.x.gram)[:, None] + np.diag(S.y.gram)[None, :] - 2.0 * S.cross
        return np.maximum(cost, 0.0)

    def _fit_alignment_from_moments(self, S):
        self.plan_ = _plan_from_cost(pow2_rescale(self._cost_from_moments(S)))

    def _gradient_formula(self, X, Y, nx):
        """The value with the fitted transport plan held fixed (Danskin's theorem;
        :func:`simmetrics.metrics.matching_gradient.soft_matching_formula`)."""
        return soft_matching_formula(self, X, Y, nx)

    def _distance_from_moments(self, S):
        # ||X' - Y'||^2 = sum_ij P_ij ||x_i - y_j||^2
        return float(np.sqrt(np.sum(self.plan_ * self._cost_from_moments(S))))
