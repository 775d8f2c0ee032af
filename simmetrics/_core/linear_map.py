"""A fitted d x d linear map kept factored: the whitening and rotation maps of the shape metrics.

:class:`LinearMap` holds the map A -> A M either as the matrix M itself or as
M = c I + W K W' (W orthonormal columns), so that maps learned from n < d stimuli (the whitener
of :func:`simmetrics.metrics.whitening.whitener_map`, the rotation of
:func:`simmetrics.metrics.procrustes.n_space_rotation`) cost O(d n) memory. It is applied
without forming M, and formed as a d x d array only when asked (:meth:`LinearMap.dense`).
"""

import numpy as np

from .linalg import abs_max, times_pow2
from .memory import check_memory
from .solvers import SAFE_HIGH, SAFE_LOW

__all__ = ["LinearMap"]


class LinearMap:
    """A fitted d x d linear map A -> A M, kept as the matrix M itself (``basis`` None) or as
    M = c I + W K W' with W (d x w) orthonormal columns and K (w x w, or a vector: diagonal),
    so that maps learned from n < d stimuli cost O(d n) memory and A M costs O(rows d w).

    :meth:`apply` rescales inputs outside the trusted range by a power of two (exact), so
    subnormal or huge held-out data are mapped without under- or overflow of the products.

    ``unit`` is None except for a full whitener (see
    :func:`simmetrics.metrics.whitening.whitener_from_spectrum`)."""

    __slots__ = ("core", "basis", "scalar", "unit")

    def __init__(self, core, basis=None, scalar=0.0):
        self.core, self.basis, self.scalar = core, basis, float(scalar)
        self.unit = None

    @property
    def width(self):
        return (self.core if self.basis is None else self.basis).shape[0]

    def apply(self, A):
        top = abs_max(A)
        if top == 0.0 or SAFE_LOW <= top <= SAFE_HIGH:
            return self._apply(A)
        e = int(np.frexp(top)[1])
        with np.errstate(under="ignore"):  # back to the data's scale: subnormal on purpose
            return times_pow2(self._apply(times_pow2(A, -e)), e)

    def _apply(self, A):
        if self.basis is None:
            return A @ self.core
        AW = A @ self.basis
        AW = AW * self.core if self.core.ndim == 1 else AW @ self.core
        out = AW @ self.basis.T
        if self.scalar != 0.0:
            with np.errstate(under="ignore"):  # c A below the smallest float is 0, rightly
                out += self.scalar * A
        return out

    def dense(self):
        """M as a d x d array (formed here when kept as c I + W K W')."""
        if self.basis is None:
            return self.core
        d = self.width
        check_memory(8 * d * d, f"the fitted {d:,} x {d:,} map as a dense matrix", [
            "use transform(X, Y) or score(X, Y), which apply the map without forming it"])
        W = self.basis
        M = (W * self.core) @ W.T if self.core.ndim == 1 else W @ self.core @ W.T
        M[np.diag_indices(d)] += self.scalar
        return M
