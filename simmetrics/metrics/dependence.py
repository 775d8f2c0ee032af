"""Statistical dependence between two representations: distance correlation.

:class:`DistanceCorrelation` (Szekely, Rizzo, Bakirov 2007) compares the double-centred
matrices of Euclidean distances between the stimuli in each representation; it is zero in the
population exactly when the two are independent. Like :class:`simmetrics.RSA` it looks only at
the relations between the samples inside each representation, so X and Y may have different
widths. The n x n matrices are built a block of rows at a time and refused up front when they
exceed the memory budget (:func:`simmetrics.set_memory_budget`).
"""

import numpy as np
from scipy.spatial.distance import cdist

from .._core.linalg import pow2_rescale
from .._core.registry import register
from .._core.validation import check_nonconstant
from ..base import Metric

__all__ = ["DistanceCorrelation", "double_centred_distances", "distances_formula"]

#: Euclidean distances between stimuli are unchanged by orthogonal maps of the neurons and by
#: translation; an isotropic scaling multiplies every distance by one factor, which the
#: normalisation divides out
_DISTANCE_INVARIANCES = frozenset(
    {"orthogonal", "signed_permutation", "permutation", "isotropic_scaling", "translation"}
)

#: distance entries per block of rows (about 32 MB of float64)
_BLOCK_ENTRIES = 2**22


def double_centred_distances(X):
    """The double-centred Euclidean distance matrix of the rows of ``X``::

        a_ij = d_ij - mean_k d_ik - mean_k d_kj + mean_kl d_kl,    d_ij = ||x_i - x_j||

    (n x n, float64). The distances come from the differences of the rows (scipy's ``cdist``,
    a block of rows at a time), not from the Gram matrix, so close stimuli keep their digits.

    Examples
    --------
    >>> A = double_centred_distances(np.array([[0.0], [1.0], [3.0]]))
    >>> A.sum(axis=0).round(12).tolist()
    [0.0, 0.0, 0.0]
    """
    n = X.shape[0]
    D = np.empty((n, n))
    rows = max(1, _BLOCK_ENTRIES // n)
    for start in range(0, n, rows):
        D[start:start + rows] = cdist(X[start:start + rows], X)
    # D is exactly symmetric: d_ij and d_ji sum the same squares in the same order
    row = D.mean(axis=1)
    D -= row[:, None]
    D -= row[None, :]
    D += row.mean()
    return D


#: A squared distance of the Gram identity at most this many times d eps (k_i + k_j) is its
#: rounding error (coincident stimuli), taken as 0
_COINCIDENT = 64.0


def distances_formula(X, nx):
    """The n x n Euclidean distances of the rows of ``X`` as a differentiable expression of the
    backend ``nx``: sqrt(k_i + k_j - 2 x_i'x_j) on the centred rows (k_i = ||x_i||^2). Entries at
    most ``64 d eps (k_i + k_j)`` (coincident stimuli, whose Gram form is rounding noise) and
    the diagonal are 0 with zero gradient (the square root's slope is infinite at 0)."""
    n, d = X.shape
    X = X - X.mean(axis=0)
    k = (X * X).sum(axis=1)
    scale = k.reshape(-1, 1) + k.reshape(1, -1)
    D = scale - 2.0 * (X @ X.T)
    apart = (D > _COINCIDENT * max(d, 1) * np.finfo(np.float64).eps * scale) * (1.0 - nx.eye(n))
    return nx.sqrt(D * apart + (1.0 - apart)) * apart


@register("distance_correlation", aliases=("dcor",))
class DistanceCorrelation(Metric):
    """Distance correlation (Szekely, Rizzo, Bakirov 2007, "Measuring and testing dependence
    by correlation of distances", Annals of Statistics 35(6)).

    With A and B the double-centred Euclidean distance matrices of the stimuli in X and in Y
    (:func:`double_centred_distances`) and the V-statistics
    ``dCov^2(X, Y) = (1/n^2) sum_ij a_ij b_ij``::

        dCor(X, Y) = sqrt( dCov^2(X, Y) / sqrt(dCov^2(X, X) dCov^2(Y, Y)) )

    Convention of ReSi (mklabunde/resi, ``repsim/measures/distance_correlation.py``, Klabunde
    et al. 2024) and of the ``dcor`` package's ``distance_correlation`` (the biased
    V-statistic estimator, not its unbiased or bias-corrected variants); the tests run
    ``dcor`` live.

    A **similarity** in [0, 1]; 1 when Y's distances are a multiple of X's (X and Y related
    by a similarity transform). Not a metric. Invariant to orthogonal maps of the neurons
    (rotations, signed and plain permutations), translation and isotropic scaling; not to
    per-neuron scaling. A constant input (every distance zero) is an error naming it.

    Memory O(n^2): each representation's n x n matrix, 800 MB at n = 10,000, built a block
    of rows at a time; the peak for both inputs (for :func:`simmetrics.pairwise`, for all of
    them) is checked against the memory budget before starting. Time O(n^2 (d_x + d_y)).

    Parameters
    ----------
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 5))
    >>> Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    >>> round(DistanceCorrelation().fit_score(X, 3.0 * X @ Q + 1.0), 12)
    1.0
    >>> bool(DistanceCorrelation().fit_score(X, rng.normal(size=(100, 3))) < 0.5)
    True
    """

    kind = "similarity"
    bounds = (0.0, 1.0)
    is_metric = False
    invariances = _DISTANCE_INVARIANCES
    min_samples = 2
    same_width = False
    symmetric = True
    reference = ("Szekely, Rizzo, Bakirov 2007, Measuring and testing dependence by correlation "
                 "of distances, Annals of Statistics; convention of ReSi (Klabunde et al. 2024)")

    _parameter_constraints = {}

    def __init__(self, layout=None):
        self.layout = layout

    # -- memory: preparing one representation holds its matrix (the state it becomes), a block
    # of distances and a rescaled copy of the input; the pair step holds no n x n temporary
    def _memory_bytes(self, n, d, count, jobs=1):
        """Peak bytes with ``count`` prepared representations of n stimuli held and ``jobs``
        preparations (d neurons) running at once, and what that counts."""
        block = min(n, max(1, _BLOCK_ENTRIES // n)) * n
        nbytes = 8 * (count * n * n + jobs * (2 * block + 2 * n * d + 4 * n))
        return nbytes, (f"{count} float64 {n:,} x {n:,} matrices of distances between stimuli "
                        "at once")

    # per representation (simmetrics.pairwise): its double-centred distances and dCov^2(A, A)
    def _partial_fit(self, A, name):
        check_nonconstant(A, name)
        # distances scale with the data and the value ignores a common factor: rescale by a
        # power of two (exact) so that no square over- or underflows
        D = double_centred_distances(pow2_rescale(A))
        own = float(np.vdot(D, D))
        if not own > 0.0:  # pragma: no cover - a non-constant input has distances
            raise ValueError(f"{name} has zero distance variance")
        return D, own

    def _gradient_formula(self, X, Y, nx):
        """dCor of the rows ``X``, ``Y`` as a differentiable expression (backend ``nx``)::

            dCor^2 = <A, B> / sqrt(<A, A> <B, B>),   A = H d(X) H,   d_ij = ||x_i - x_j||

        the same V-statistic as the value. The n x n distances come from the Gram identity on
        the centred rows (:func:`distances_formula`). The distance is not differentiable where
        two stimuli coincide (a cone, as |t| at 0): there, and on the diagonal, the formula
        holds d_ij at 0 with zero gradient (the subgradient of least norm), so duplicated
        stimuli (quantised activations) get a finite gradient; the value is continuous there.
        """
        values = []
        for A in (X, Y):
            A = distances_formula(A, nx)
            A = A - A.mean(axis=0).reshape(1, -1)
            values.append(A - A.mean(axis=1).reshape(-1, 1))
        A, B = values
        return nx.sqrt((A * B).sum() / (nx.frobenius(A) * nx.frobenius(B)))

    def _finalize_fit_score(self, a, b):
        (A, own_a), (B, own_b) = a, b
        cross = max(float(np.vdot(A, B)), 0.0)
        return min(float(np.sqrt(cross / np.sqrt(own_a * own_b))), 1.0)
