"""RSM norm difference: how far apart two representations' distance matrices are.

:class:`RSMNormDifference` (Shahbazi, Shirali, Aghajan, Nili 2021, "Using distance on the
Riemannian manifold to compare representations in brain and in models", NeuroImage; in ReSi,
Klabunde et al. 2025, ICLR, as "RSM norm difference") compares the n x n matrices of Euclidean
distances between the stimuli of X and of Y by a matrix norm of their difference: the spectral
norm (largest singular value) by default, as ReSi's ``rsm_norm_diff`` computes it
(``numpy.linalg.norm(D_X - D_Y, ord=2)``), or the Frobenius norm. Like
:class:`simmetrics.RSA` it looks only at relations between the stimuli, so X and Y may have
different widths; unlike RSA it keeps the distances' units.
"""

import numpy as np
from scipy.linalg import eigh
from scipy.sparse.linalg import eigsh
from scipy.spatial.distance import pdist, squareform

from .._core.linalg import abs_max, times_pow2
from .._core.params import Options
from .._core.registry import register
from .._core.validation import check_nonconstant
from ..base import Metric
from .rsa_gradient import distance_matrix

__all__ = ["RSMNormDifference", "condensed_distances"]

NORMS = ("spectral", "frobenius")

#: Up to this many stimuli the spectral norm comes from every eigenvalue (LAPACK); above it,
#: from the extreme eigenvalue alone (Lanczos, ARPACK, to machine precision), O(n^2) per step.
_DENSE_EIGEN_LIMIT = 3000


def condensed_distances(A):
    """The Euclidean distances ||a_i - a_j|| between the rows of ``A``, i < j, in the order of
    :func:`scipy.spatial.distance.pdist`, in the data's units: computed from the differences
    (no cancellation for close stimuli) of ``A`` rescaled by a power of two (exact), so no
    square over- or underflows.

    Examples
    --------
    >>> condensed_distances(np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])).tolist()
    [5.0, 1.0, 4.242640687119285]
    """
    top = abs_max(A)
    if top == 0.0:
        return np.zeros(A.shape[0] * (A.shape[0] - 1) // 2)
    e = int(np.frexp(top)[1])
    return times_pow2(pdist(times_pow2(A, -e)), e)


def _spectral_norm(S):
    """The largest |eigenvalue| of the symmetric matrix ``S`` (its spectral norm)."""
    n = S.shape[0]
    if n <= _DENSE_EIGEN_LIMIT:
        w = eigh(S, eigvals_only=True, overwrite_a=True, check_finite=False)
        return float(max(abs(w[0]), abs(w[-1])))
    v0 = np.ones(n) / np.sqrt(n)  # a fixed start: the same value on every run
    w = eigsh(S, k=1, which="LM", tol=0.0, v0=v0, return_eigenvectors=False)
    return float(abs(w[0]))


@register("rsm_norm_difference")
class RSMNormDifference(Metric):
    """The norm of the difference of two Euclidean distance matrices (Shahbazi et al. 2021).

    ::

        RSMNormDifference(X, Y) = || D_X - D_Y ||,   (D_X)_ij = ||x_i - x_j||_2

    with D_X, D_Y the full n x n matrices of Euclidean distances between the stimuli (rows) and
    ``||.||`` the spectral norm (the largest singular value, that is the largest
    |eigenvalue| of the symmetric difference; ``norm="spectral"``, ReSi's convention, whose
    values this reproduces) or the Frobenius norm (``norm="frobenius"``: the root of the sum
    over all n^2 entries, i.e. sqrt(n (n - 1)) times :class:`simmetrics.Stress`).

    A **distance** in the data's units, in [0, inf); a metric (a norm of the difference of
    the two points D_X, D_Y), zero exactly when the distances between the stimuli agree.
    Symmetric. Invariant to orthogonal maps of the neurons (rotations, signed and plain
    permutations) and to translation; not to scaling, which scales the distances.

    Memory and time: the distances are computed from the differences of the rows; each
    representation's n (n - 1) / 2 distances are kept (400 MB at n = 10,000), and the
    spectral norm builds the n x n difference (800 MB at n = 10,000) and its eigenvalues: all
    of them (O(n^3)) up to 3,000 stimuli, the extreme one by Lanczos iteration above. The
    peak is checked against the memory budget before starting
    (:func:`simmetrics.set_memory_budget`).

    Parameters
    ----------
    norm : {"spectral", "frobenius"}, default "spectral"
        The matrix norm of D_X - D_Y.
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 5))
    >>> Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    >>> bool(RSMNormDifference().fit_score(X, X @ Q + 3.0) < 1e-12)
    True
    >>> D = squareform(condensed_distances(X))
    >>> round(RSMNormDifference(norm="frobenius").fit_score(X, 2 * X), 9) == round(
    ...     float(np.linalg.norm(D)), 9)
    True
    """

    kind = "distance"
    bounds = (0.0, float("inf"))
    is_metric = True
    symmetric = True
    invariances = frozenset({"orthogonal", "signed_permutation", "permutation", "translation"})
    min_samples = 2
    same_width = False
    reference = ("Shahbazi, Shirali, Aghajan, Nili 2021, Using distance on the Riemannian "
                 "manifold to compare representations in brain and in models, NeuroImage; "
                 "ReSi (Klabunde et al. 2025, ICLR)")

    _parameter_constraints = {"norm": [Options(NORMS)]}

    def __init__(self, norm="spectral", layout=None):
        self.norm = norm
        self.layout = layout

    # -- memory: counted in float64 values. Each state holds m = n (n - 1) / 2 distances; the
    # pair step the difference (m), and for the spectral norm the square n x n matrix and
    # LAPACK's workspace (about 2 n^2 more)
    def _memory_bytes(self, n, d, count, jobs=1):
        """Peak bytes with ``count`` prepared representations of n stimuli held and ``jobs``
        steps running at once, and what that counts."""
        m = n * (n - 1) // 2
        pair = m + (3 * n * n if self.norm == "spectral" else m)
        nbytes = 8 * (count * m + jobs * (pair + 2 * n * d))
        return nbytes, (f"{count} vectors of the {m:,} distances between stimuli and, per "
                        f"step, {'an n x n matrix and its eigenvalue workspace' if self.norm == 'spectral' else 'their difference'}")

    # per representation (simmetrics.pairwise): the distances between its stimuli
    def _partial_fit(self, A, name):
        check_nonconstant(A, name)  # the package's rule: a representation must vary
        return condensed_distances(A)

    def _gradient_formula(self, X, Y, nx):
        """The norm of D_X - D_Y for the n x n distance matrices
        (:func:`simmetrics.metrics.rsa_gradient.distance_matrix`; the subgradient 0 at
        coinciding stimuli): ``"frobenius"``, sqrt(sum_ij (D_X - D_Y)_ij^2); ``"spectral"``,
        max(|w_1|, |w_n|) over the eigenvalues w of the symmetric difference, whose gradient
        is sign(w) v v' for the eigenvector v of the extreme eigenvalue (defined where that
        eigenvalue is simple and |w_1| != |w_n|; at a tie the norm has a kink). Neither is
        differentiable where the value is 0."""
        diff = distance_matrix(X, nx) - distance_matrix(Y, nx)
        if self.norm == "frobenius":
            return nx.sqrt((diff * diff).sum())
        w = nx.eigvalsh(diff)
        return nx.maximum(nx.abs(w[0]), nx.abs(w[-1]))

    def _finalize_fit_score(self, a, b):
        diff = a - b
        top = abs_max(diff)
        if top == 0.0:
            return 0.0
        e = int(np.frexp(top)[1])
        diff = times_pow2(diff, -e)  # exact; no square over- or underflows
        if self.norm == "frobenius":
            return times_pow2(float(np.sqrt(2.0 * np.dot(diff, diff))), e)
        return times_pow2(_spectral_norm(squareform(diff)), e)
