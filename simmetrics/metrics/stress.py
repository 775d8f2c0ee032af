"""Stress: the root-mean-square difference of the distances between stimuli.

:class:`Stress`, the raw stress of multidimensional scaling (Kruskal 1964, Psychometrika) used
as a distance between representations by Lange, Kwok, Matelsky, Wang, Rolnick, Kording 2023
("Deep networks as paths on the manifold of neural representations", PMLR 221; wrongu/repsim,
``repsim/metrics/stress.py``, whose values this reproduces): the Euclidean distances between
the stimuli of X and of Y, compared pair by pair. :class:`simmetrics.RSMNormDifference` takes a
matrix norm of the same difference.
"""

import numpy as np
from scipy.spatial.distance import pdist

from .._core.linalg import abs_max, times_pow2
from .._core.params import Boolean
from .._core.registry import register
from .._core.validation import check_nonconstant
from ..base import Metric, param_dependent
from .rsa_gradient import distance_matrix, lower_median_position

__all__ = ["Stress"]

_RIGID = frozenset({"orthogonal", "signed_permutation", "permutation", "translation"})


def _distances(A):
    """Condensed Euclidean distances between the rows of ``A`` (from the differences, so
    close stimuli lose no digits) and the power of two e with A * 2^-e in [0.5, 1): the
    distances of A * 2^-e, so no square over- or underflows."""
    top = abs_max(A)
    if top == 0.0:
        return np.zeros(A.shape[0] * (A.shape[0] - 1) // 2), 0
    e = int(np.frexp(top)[1])
    return pdist(times_pow2(A, -e)), e


def lower_median(v):
    """The lower of the two middle values of ``v`` when its size is even, the middle value
    when odd (``torch.median``'s convention, which Lange's code uses).

    Examples
    --------
    >>> lower_median(np.array([4.0, 1.0, 3.0, 2.0])), lower_median(np.array([3.0, 1.0, 2.0]))
    (2.0, 2.0)
    """
    k = (v.size - 1) // 2
    return float(np.partition(v, k)[k])


@register("stress")
class Stress(Metric):
    """Stress between two representations (Kruskal 1964; Lange et al. 2023).

    ::

        Stress(X, Y) = sqrt( 2 / (n (n - 1))  sum_(i < j) (d_X(i, j) - d_Y(i, j))^2 )

    with d_X(i, j) = ||x_i - x_j||_2 the Euclidean distance between stimuli i and j (Lange's
    default linear kernel). With ``rescale=True`` each side's distances are first divided by
    their median over the n (n - 1) / 2 pairs (the lower middle value when that count is even,
    as ``torch.median`` in Lange's code), which makes the value scale-free.

    A **distance** in [0, inf) (in the data's units unless ``rescale``); a metric (a scaled
    Euclidean distance between the two vectors of distances), zero exactly when the
    distances between stimuli agree (after rescaling). Symmetric. Invariant to orthogonal
    maps of the neurons (rotations, signed and plain permutations) and to translation, and
    with ``rescale=True`` also to isotropic scaling. X and Y may have different widths.

    Memory and time O(n^2): each representation's n (n - 1) / 2 distances (400 MB at
    n = 10,000) are kept, computed from the differences of the rows in O(n^2 d); the peak is
    checked against the memory budget before starting (:func:`simmetrics.set_memory_budget`).

    Parameters
    ----------
    rescale : bool, default False
        Divide each side's distances by their median first.
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Raises
    ------
    ValueError
        With ``rescale=True``, a representation whose median distance between stimuli is 0
        (more than half of its pairs of stimuli coincide; the message names X or Y).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 4))
    >>> Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    >>> bool(Stress().fit_score(X, X @ Q + 1.0) < 1e-12)
    True
    >>> bool(Stress(rescale=True).fit_score(X, 5 * X) < 1e-12), bool(Stress().fit_score(X, 2 * X) > 1)
    (True, True)
    """

    kind = "distance"
    bounds = (0.0, float("inf"))
    is_metric = True
    symmetric = True
    invariances = param_dependent(
        lambda self: _RIGID | {"isotropic_scaling"}
        if isinstance(self.rescale, (bool, np.bool_)) and self.rescale else _RIGID)
    min_samples = 2
    same_width = False
    reference = ("Kruskal 1964, Psychometrika; Lange, Kwok, Matelsky, Wang, Rolnick, Kording "
                 "2023, Deep networks as paths on the manifold of neural representations, "
                 "PMLR 221")

    _parameter_constraints = {"rescale": [Boolean()]}

    def __init__(self, rescale=False, layout=None):
        self.rescale = rescale
        self.layout = layout

    # -- memory: each state holds m = n (n - 1) / 2 distances; preparing one also holds the
    # partition for the median, and the pair step the difference
    def _memory_bytes(self, n, d, count, jobs=1):
        """Peak bytes with ``count`` prepared representations of n stimuli held and ``jobs``
        steps running at once, and what that counts."""
        m = n * (n - 1) // 2
        nbytes = 8 * (count * m + jobs * (2 * m + 2 * n * d))
        return nbytes, f"{count + 2 * jobs} vectors of the {m:,} distances between stimuli"

    # per representation (simmetrics.pairwise): the distances between its stimuli
    def _partial_fit(self, A, name):
        check_nonconstant(A, name)  # the package's rule: a representation must vary
        D, e = _distances(A)
        if self.rescale:
            median = lower_median(D) if D.size else 0.0
            if median == 0.0:
                raise ValueError(
                    f"the median distance between the stimuli of {name} is 0 (more than half "
                    "of its pairs of stimuli coincide), so rescale=True cannot divide by it"
                )
            return D / median, 0
        return D, e

    def _gradient_formula(self, X, Y, nx):
        """sqrt(sum_(i != j) (D_X - D_Y)_ij^2 / (n (n - 1))) from the n x n distance matrices
        (:func:`simmetrics.metrics.rsa_gradient.distance_matrix`: at coinciding stimuli the
        distance takes the subgradient 0). With ``rescale`` each matrix is divided by its
        lower median entry, whose position (i, j) is held fixed: locally the median *is* that
        entry, so this is the median's gradient wherever no other distance ties with it. Not
        differentiable where the value is 0 (the square root)."""
        Ds = [distance_matrix(A, nx) for A in (X, Y)]
        if self.rescale:
            Ds = [D / self._median_entry(D, nx) for D in Ds]
        diff = Ds[0] - Ds[1]
        n = X.shape[0]
        return nx.sqrt((diff * diff).sum() / (n * (n - 1)))

    @staticmethod
    def _median_entry(D, nx):
        n = D.shape[0]
        rows, cols = np.triu_indices(n, 1)
        k = lower_median_position(nx.to_numpy(D)[rows, cols])
        return D[int(rows[k]), int(cols[k])]

    def _finalize_fit_score(self, a, b):
        (Da, ea), (Db, eb) = a, b
        e = max(ea, eb)  # both sides at the larger scale (exact but for tiny underflows)
        diff = times_pow2(Da, ea - e) - times_pow2(Db, eb - e)
        top = abs_max(diff)
        if top == 0.0:
            return 0.0
        k = int(np.frexp(top)[1])
        diff = times_pow2(diff, -k)
        return times_pow2(float(np.sqrt(np.dot(diff, diff) / diff.size)), k + e)
