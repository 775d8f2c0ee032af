"""Alignment solvers shared by the shape metrics and the intertwiner metrics.

The rotation of orthogonal Procrustes (Schoenemann 1966) and the assignment of permutation
matching (Kuhn's Hungarian method, through scipy's ``linear_sum_assignment``), both from the
cross-product of the two representations, computed where its entries neither over- nor
underflow.
"""

import numpy as np
from scipy.optimize import linear_sum_assignment

from .linalg import pow2_rescale

__all__ = ["SAFE_LOW", "SAFE_HIGH", "cross_in_range", "rotation_from_cross",
           "assignment_from_cross", "pad2"]

#: Magnitudes of a cross-product that are trusted as computed: inside them no entry has over-
#: or underflowed in a way that changes the rotation or the assignment.
SAFE_LOW, SAFE_HIGH = 2.0**-400, 2.0**400


def cross_in_range(A, B):
    """A'B, computed as is when it lands inside the trusted window (no over- or underflow that
    matters), else from power-of-two rescaled A and B (exact: for the scale-free uses here, the
    rotation and the assignment, the result is the same). Skips two copies of the data."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # redone below
        M = A.T @ B
    top = float(np.max(np.abs(M))) if M.size else 0.0
    if not SAFE_LOW <= top <= SAFE_HIGH:
        M = pow2_rescale(A).T @ pow2_rescale(B)
    return M

def rotation_from_cross(M):
    """U V' from the SVD U S V' of M = B'A: the rotation of
    :func:`simmetrics.metrics.procrustes.procrustes_rotation`."""
    U, _, Vt = np.linalg.svd(M)
    return U @ Vt

def assignment_from_cross(C):
    """The permutation of :func:`simmetrics.metrics.matching.optimal_permutation` from the
    cross-product C = A'B."""
    rows, cols = linear_sum_assignment(C, maximize=True)
    perm = np.empty(C.shape[0], dtype=np.intp)
    perm[rows] = cols
    return perm

def pad2(M, rows, cols):
    """M with zero rows and columns appended up to (rows, cols)."""
    out = np.zeros((rows, cols))
    out[: M.shape[0], : M.shape[1]] = M
    return out
