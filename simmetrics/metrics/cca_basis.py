"""The orthonormal bases of the CCA family (:mod:`simmetrics.metrics.cca`), and the covariance
route that finds them from the d x d Gram matrix where there are many more samples than
neurons and its digits suffice (:func:`gram_fit`), the SVD route otherwise.

The canonical correlations are the singular values of Ux'Uy, Ux and Uy orthonormal bases of
the centred representations' column spaces. The thin SVD of the centred n x d data costs about
6 n d^2; the Gram matrix Ac'Ac costs n d^2 (a symmetric product) and gives the same s and V,
with U = Ac V S^-1 never formed (:class:`Basis`), but it squares the condition number, hence
the guard in :func:`gram_fit`.
"""

import numpy as np

from .._core.linalg import center, looks_near_centred, near_centred
from .._core.solvers import SAFE_HIGH, SAFE_LOW

__all__ = ["Basis", "basis_cross", "gram_fit", "GRAM_ROWS", "GRAM_FLOOR"]


#: The covariance route (:func:`gram_fit`) needs n >= 2 d (it costs n d^2 for X'X, the thin
#: SVD ~6 n d^2) and every eigenvalue of the centred X'X at least 2^-18 of the largest (data of
#: condition <= 512): X'X squares the condition number, its rounding moves the whitened
#: directions by about eps cond^2 (<= 6e-11; 1e-13 measured at condition 512) where the SVD's
#: move them by eps cond. Duplicate or near-constant neurons, a dominant stimulus, rank
#: deficiency or fewer samples than neurons take the SVD route.
GRAM_ROWS, GRAM_FLOOR = 2, 2.0**-18


class Basis:
    """An orthonormal basis U (n x r) of the column space of a centred representation Ac, held
    as U itself (the SVD route: ``whitener`` None) or as data D and a whitener W (the
    covariance route), U = (D - 1 sums' / n) W, never formed: D is Ac (``sums`` None) or,
    for nearly centred neurons, the representation as given with its column sums."""

    __slots__ = ("data", "whitener", "sums")

    def __init__(self, data, whitener=None, sums=None):
        self.data, self.whitener, self.sums = data, whitener, sums

    @property
    def shape(self):
        return self.data.shape[0], (self.data if self.whitener is None else self.whitener).shape[1]

    def first(self, k):
        """The basis of the first k directions."""
        if self.whitener is None:
            return Basis(self.data[:, :k])
        return Basis(self.data, self.whitener[:, :k], self.sums)


def basis_cross(a, b):
    """Ux' Uy of two :class:`Basis`: D_a'D_b moved to the column means (minus sums_a
    sums_b' / n, the sums of an exactly centred side taken as they are), then the whiteners."""
    M = a.data.T @ b.data
    if a.sums is not None or b.sums is not None:
        sa, sb = (c.data.sum(axis=0) if c.sums is None else c.sums for c in (a, b))
        M -= np.outer(sa, sb / a.data.shape[0])
    if a.whitener is not None:
        M = a.whitener.T @ M
    if b.whitener is not None:
        M = M @ b.whitener
    return M


def gram_fit(A):
    """The covariance route of CCA's bases (:class:`simmetrics.CCA`), or None where it is not
    accurate: the eigendecomposition Ac'Ac = V diag(s^2) V' of the d x d centred Gram matrix gives s
    and V, and U = Ac V S^-1 is kept as data and the whitener V S^-1 (:class:`Basis`), so the pair
    step needs one product of the data. Nearly centred neurons (raw sums of squares at most 16 times
    the centred ones) give A'A - s s' / n with no centred copy; others are centred first (two
    passes). Taken where the products stay in range (scale 1) and every eigenvalue is at least
    :data:`GRAM_FLOOR` of the largest, times the worst raw-to-centred ratio of a neuron (the digits
    that moving the products to the means cancels)."""
    n = A.shape[0]
    data, sums, ratio = A, None, 1.0
    if looks_near_centred(A, 16.0):
        sums = A.sum(axis=0)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            G = A.T @ A
            raw = np.diag(G).copy()
            G -= np.outer(sums, sums / n)
            centred = np.diag(G)
            ratio = float(np.max(raw / centred))
        if not near_centred(raw, sums, n, 16.0):
            data, sums, ratio = None, None, 1.0
    else:
        data = None
    if data is None:
        data = center(A)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            G = data.T @ data
    top = float(np.max(np.diag(G)))
    if not (np.isfinite(top) and SAFE_LOW <= top <= SAFE_HIGH) or not np.isfinite(ratio):
        return None
    lam, V = np.linalg.eigh(G)
    if not lam[0] >= GRAM_FLOOR * ratio * lam[-1] > 0.0:
        return None
    s, V = np.sqrt(lam[::-1]), V[:, ::-1]
    mean = sums / n if sums is not None else A.mean(axis=0)
    return Basis(data, V / s, sums), s, V.T, mean, 1.0
