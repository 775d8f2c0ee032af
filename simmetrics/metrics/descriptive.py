"""Descriptive differences: one statistic of each representation, compared.

Each measure here summarises a representation by one number and returns the absolute
difference of the two numbers (the "representation statistics" of Klabunde, Schumacher,
Strohmaier, Lemmerich 2023, "Similarity of neural network models: a survey of functional and
representational measures", ACM Computing Surveys; values and conventions of ReSi, Klabunde et
al. 2025, ICLR, ``repsim/measures/statistics.py``):

- :class:`MagnitudeDifference`: the length of the mean stimulus vector;
- :class:`ConcentricityDifference`: the mean cosine between each stimulus and the mean stimulus;
- :class:`UniformityDifference`: the uniformity of Wang and Isola 2020 (ICML), the log of the
  mean Gaussian potential exp(-t ||x_i - x_j||^2) over all pairs.

Each value is a pseudo-metric (symmetric, zero on the diagonal, triangle inequality) but not a
metric: different representations can share the statistic. The per-representation statistic
is computed once per representation by :func:`simmetrics.pairwise`.
"""

import numpy as np

from .._core.linalg import abs_max, center, pow2_rescale, times_pow2
from .._core.params import Interval, Real
from .._core.registry import register
from .._core.validation import check_nonconstant
from ..moments import check_nonconstant_moments
from ..base import Metric
from .rsa_gradient import centred_square_distances

__all__ = ["MagnitudeDifference", "ConcentricityDifference", "UniformityDifference"]

#: How many squared distances one chunk of the uniformity holds (rows x n); 32 MB.
_CHUNK_ENTRIES = 2**22

_ORTHOGONAL = frozenset({"orthogonal", "signed_permutation", "permutation"})

_REFERENCE = ("Klabunde, Schumacher, Strohmaier, Lemmerich 2023, Similarity of neural network "
              "models: a survey of functional and representational measures, ACM Computing "
              "Surveys; ReSi (Klabunde et al. 2025, ICLR)")


def _norm(v):
    """Euclidean norm of a vector without over- or underflow."""
    top = abs_max(v)
    if top == 0.0:
        return 0.0
    e = int(np.frexp(top)[1])
    w = times_pow2(v, -e)
    return times_pow2(float(np.sqrt(np.dot(w, w))), e)


class _StatisticDifference(Metric):
    """|s(X) - s(Y)| for a statistic s of one representation."""

    kind = "distance"
    bounds = (0.0, float("inf"))
    is_metric = False
    symmetric = True
    min_samples = 2
    same_width = False
    reference = _REFERENCE

    _parameter_constraints = {}

    def __init__(self, layout=None):
        self.layout = layout

    # per representation (simmetrics.pairwise): the statistic
    def _partial_fit(self, A, name):
        check_nonconstant(A, name)  # the package's rule: a representation must vary
        return self._statistic(A, name)

    def _finalize_fit_score(self, a, b):
        return abs(a - b)

    def _gradient_formula(self, X, Y, nx):
        """|s(X) - s(Y)| with each statistic written differentiably
        (:meth:`_statistic_formula`). The absolute value has no gradient where the two
        statistics are equal (it takes sign 0 there: the subgradient 0)."""
        return nx.abs(self._statistic_formula(X, nx) - self._statistic_formula(Y, nx))


@register("magnitude_difference")
class MagnitudeDifference(_StatisticDifference):
    """Magnitude difference: how far the mean stimulus vectors are from the origin.

    ::

        MagnitudeDifference(X, Y) = | ||mean_i x_i|| - ||mean_i y_i|| |

    (ReSi's ``magnitude_difference``, whose values this reproduces). A **distance** in the
    data's units, in [0, inf); a pseudo-metric, not a metric. Symmetric. Invariant to
    orthogonal maps of the neurons (rotations, signed and plain permutations), which keep
    the mean's length; not to translation or scaling. It depends only on the column means, so
    it streams (:func:`simmetrics.stream_score`). Memory O(n d).

    Parameters
    ----------
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Examples
    --------
    >>> X = np.array([[3.0, 0.0], [3.0, 8.0]])  # mean (3, 4), length 5
    >>> MagnitudeDifference().fit_score(X, np.array([[1.0], [-1.0]]))
    5.0
    """

    invariances = _ORTHOGONAL

    def _statistic(self, A, name):
        return _norm(A.mean(axis=0))

    @staticmethod
    def _statistic_formula(A, nx):
        """||mean_i a_i||: differentiable where the mean is not 0."""
        m = A.mean(axis=0)
        return nx.sqrt((m * m).sum())

    def _score_from_moments(self, stats):
        check_nonconstant_moments(stats.x, "X")
        check_nonconstant_moments(stats.y, "Y")
        stats = stats.to_numpy()
        return abs(_norm(np.asarray(stats.x.mean, dtype=np.float64))
                   - _norm(np.asarray(stats.y.mean, dtype=np.float64)))


@register("concentricity_difference")
class ConcentricityDifference(_StatisticDifference):
    """Concentricity difference: how closely the stimuli point along their mean.

    ::

        c(X) = 1/n  sum_i  cos(x_i, mean_j x_j),
        ConcentricityDifference(X, Y) = | c(X) - c(Y) |

    (ReSi's ``concentricity_difference``, whose values this reproduces). A **distance** in
    [0, 2]; a pseudo-metric, not a metric. Symmetric. Invariant to orthogonal maps of the
    neurons and to isotropic scaling (cosines); not to translation. Memory O(n d).

    Parameters
    ----------
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Raises
    ------
    ValueError
        A stimulus (row) that is all zeros, or a mean stimulus that is zero up to rounding
        (below 64 eps times the largest row norm; e.g. centred data): its cosine is undefined
        (the message names X or Y).

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]])  # each at 45 degrees to the mean
    >>> round(ConcentricityDifference().fit_score(X, X + 1.0), 12)
    0.241576516864
    """

    bounds = (0.0, 2.0)
    invariances = _ORTHOGONAL | {"isotropic_scaling"}

    def _statistic(self, A, name):
        A = pow2_rescale(A)  # exact; cosines do not see a positive factor
        rows = np.sqrt(np.einsum("ij,ij->i", A, A))
        zero = np.flatnonzero(rows == 0.0)
        if zero.size:
            raise ValueError(
                f"row {zero[0]} of {name} is all zeros ({zero.size} such rows), so its cosine "
                "with the mean stimulus is undefined"
            )
        m = A.mean(axis=0)
        length = _norm(m)
        # the mean's rounding error is about eps times the rows' size: below that it has no
        # direction (centred data)
        if length <= 64.0 * np.finfo(np.float64).eps * float(rows.max()):
            raise ValueError(
                f"the mean stimulus of {name} is zero{'' if length == 0 else ' up to rounding'}"
                ", so the cosine of a stimulus with it is undefined (concentricity needs "
                "uncentred data)"
            )
        cosines = np.clip((A @ m) / (rows * length), -1.0, 1.0)
        return float(cosines.mean())

    @staticmethod
    def _statistic_formula(A, nx):
        """mean_i a_i'm / (||a_i|| ||m||), m the mean stimulus (the clip to [-1, 1] of the value
        only removes rounding). Differentiable where no row and not the mean is 0; the value's
        cap at 2 is never reached by a difference of two means of cosines but for rounding."""
        m = A.mean(axis=0)
        rows = nx.sqrt((A * A).sum(axis=1))
        return ((A @ m) / (rows * nx.sqrt((m * m).sum()))).mean()

    def _finalize_fit_score(self, a, b):
        return min(abs(a - b), 2.0)


@register("uniformity_difference")
class UniformityDifference(_StatisticDifference):
    """Uniformity difference (Wang and Isola 2020, ICML, "Understanding contrastive
    representation learning through alignment and uniformity on the hypersphere").

    ::

        u_t(X) = log( 1/n^2  sum_(i, j)  exp(-t ||x_i - x_j||^2) ),
        UniformityDifference(X, Y) = | u_t(X) - u_t(Y) |

    over all n^2 ordered pairs, the diagonal included (ReSi's ``uniformity_difference``, whose
    values for t = 2 this reproduces; ReSi does not normalise the rows). The diagonal keeps the
    sum at least n, so u_t lies in [-log n, 0]; the value is computed as
    ``log1p(2/n sum_(i<j) exp(-t d_ij^2))``, the common -log n cancelling exactly.

    Squared distances come from the Gram matrix of the column-centred data (centring does not
    change a distance) a chunk of rows at a time: O(n * chunk) memory, never n x n, and
    O(n^2 d) time; the peak is checked against the memory budget
    (:func:`simmetrics.set_memory_budget`).

    A **distance** in [0, log n]; a pseudo-metric, not a metric. Symmetric. Invariant to
    orthogonal maps of the neurons and to translation; not to scaling.

    Parameters
    ----------
    t : float, default 2.0
        The scale of the Gaussian potential, t > 0.
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Examples
    --------
    >>> X = np.array([[0.0], [1.0]])  # u_2 = log((2 + 2 exp(-2)) / 4)
    >>> bool(abs(UniformityDifference().fit_score(X, 100 * X) - np.log1p(np.exp(-2))) < 1e-15)
    True
    """

    invariances = _ORTHOGONAL | {"translation"}
    reference = ("Wang, Isola 2020, Understanding contrastive representation learning through "
                 "alignment and uniformity on the hypersphere, ICML; ReSi (Klabunde et al. 2025, "
                 "ICLR)")

    _parameter_constraints = {"t": [Interval(Real, 0.0, None, closed="neither")]}

    def __init__(self, t=2.0, layout=None):
        self.t = t
        self.layout = layout

    def _memory_bytes(self, n, d, count, jobs=1):
        """Peak bytes of ``jobs`` chunked computations at once (the states are numbers)."""
        rows = min(n, max(1, _CHUNK_ENTRIES // n))
        nbytes = 8 * jobs * (4 * rows * n + 3 * n * d)
        return nbytes, f"{jobs * 4} float64 {rows:,} x {n:,} chunks of squared distances"

    def _statistic_formula(self, A, nx):
        """log(1/n sum_(i, j) exp(-t ||a_i - a_j||^2)) = u_t(A) + log n, the value's
        statistic (the common log n cancels in the difference), from the n x n squared
        distances (:func:`simmetrics.metrics.rsa_gradient.centred_square_distances`, clipped
        at 0; the diagonal's gradient is 0 exactly, as its entries are identically 0).
        Differentiable everywhere but at equal statistics (the absolute value). O(n^2)
        memory, as the squared distances of one chunk of the value are, for all of them."""
        sq = nx.clip(centred_square_distances(A), 0.0)
        return nx.log(nx.exp(-float(self.t) * sq).sum() / A.shape[0])

    def _statistic(self, A, name):
        n = A.shape[0]
        top = abs_max(A)
        if top == 0.0:
            return float(np.log(n))  # every pair coincides: u_t = 0, i.e. log1p(n - 1)
        e = int(np.frexp(top)[1])
        C = center(times_pow2(A, -e))  # exact rescaling; distances are those of A * 2^-e
        factor = float(self.t) * 4.0 ** min(e, 511) * (4.0 ** (e - 511) if e > 511 else 1.0)
        sq = np.einsum("ij,ij->i", C, C)
        rows = max(1, _CHUNK_ENTRIES // n)
        total = 0.0
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            # the pairs (i, j) with i in this chunk and j > i
            block = C[start:stop] @ C[start:].T
            d2 = sq[start:stop, None] + sq[None, start:] - 2.0 * block
            np.maximum(d2, 0.0, out=d2)
            upper = np.arange(start, n)[None, :] > np.arange(start, stop)[:, None]
            with np.errstate(over="ignore", invalid="ignore", under="ignore"):
                arg = d2 * factor
            arg[d2 == 0.0] = 0.0
            total += float(np.exp(-arg[upper]).sum())
        return float(np.log1p(2.0 * total / n))
