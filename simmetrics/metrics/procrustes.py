"""The rotation of orthogonal Procrustes, as the shape metrics find it.

- :func:`procrustes_rotation`: the orthogonal Q minimising ||A - B Q||_F (Schoenemann 1966).
- :func:`closest_optimal_rotation`: of the maximisers of <M, Q>_F, the one closest to the
  identity, so that rank-deficient cross-products (zero-padding, fewer stimuli than neurons,
  duplicate neurons) give a unique rotation and held-out scores are defined.
- The n-space route (:func:`use_n_space_route`, :func:`n_space_rotation`): with more neurons
  than stimuli, that rotation found in the span of the two row spaces (a QR decomposition of the
  d x 2n matrix of both representations), kept factored as a
  :class:`simmetrics._core.linear_map.LinearMap`, never from a d x d SVD; the score needs only
  :func:`n_space_nuclear_norm`, from the triangular factors of the two d x n transposes.
- :func:`deferred_rotation`: the rotation from what a fit kept, formed when it is first used
  (the score on the fitting data needs the singular values only).

:class:`simmetrics.ShapeMetric` and :class:`simmetrics.OrthogonalProcrustes`
(:mod:`simmetrics.metrics.shape`) align with these.
"""

import numpy as np

from .._core.linalg import abs_max, times_pow2
from .._core.linear_map import LinearMap
from .._core.solvers import cross_in_range, rotation_from_cross

__all__ = [
    "procrustes_rotation",
    "closest_optimal_rotation",
    "use_n_space_route",
    "n_space_rotation",
    "n_space_nuclear_norm",
    "deferred_rotation",
]


def procrustes_rotation(A, B):
    """The orthogonal Q minimising ||A - B Q||_F (orthogonal Procrustes, Schoenemann 1966):
    Q = U V' where U S V' is the SVD of B' A. ``A`` and ``B`` must have the same width.

    The same matrix as ``scipy.linalg.orthogonal_procrustes(B, A)[0]``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> A = rng.normal(size=(20, 3))
    >>> R, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    >>> np.allclose(procrustes_rotation(A, A @ R.T), R)
    True
    """
    # Q does not change when A or B is scaled by a positive number: rescale both by a power
    # of two so that B'A neither overflows (entries of 1e300) nor underflows (1e-300). Data in
    # range skip the two copies: B'A is computed as is and redone rescaled only if it left the
    # window (there the rescaling is exact and would change nothing)
    return rotation_from_cross(cross_in_range(B, A))


def closest_optimal_rotation(M, width=None):
    """The orthogonal Q maximising <M, Q>_F (M = B'A: Q minimises ||A - B Q||) that is closest
    to the identity among the maximisers, and the singular values of M.

    With M = U S V' and r the singular values above ``width * eps * s_1`` (``width`` defaults
    to M's size), every maximiser is U_r V_r' + U_0 G V_0' with G orthogonal: the data fix Q on
    V_r only (rank-deficient M: zero-padding, n <= d, duplicate neurons). Of these, the one with
    the largest trace (the least rotation of what the data do not determine) takes G = the
    orthogonal polar factor of U_0'V_0. For full-rank M this is U V'; unlike U V' it does not
    depend on how LAPACK picks the null vectors, so held-out scores are defined."""
    U, sv, Vt = np.linalg.svd(M)
    width = max(M.shape) if width is None else width
    r = int(np.sum(sv > width * np.finfo(np.float64).eps * sv[0])) if sv.size else 0
    Q = U[:, :r] @ Vt[:r]
    if r < M.shape[0]:
        a, _, bt = np.linalg.svd(U[:, r:].T @ Vt[r:].T)
        Q += U[:, r:] @ (a @ bt) @ Vt[r:]
    return Q, sv


def use_n_space_route(n_rows, width):
    """Whether the rotation of n_rows stimuli in ``width`` dimensions is found in the span of
    the two row spaces (at most 2 n_rows dimensions) rather than from the width x width
    cross-product's SVD."""
    return width > n_rows


def n_space_rotation(A, B, width):
    """:func:`closest_optimal_rotation` of M = B'A (A, B zero-padded to ``width`` columns)
    without forming M, for rows < width. With [A' B'] = W T the QR decomposition of the two
    transposed representations side by side (each rescaled by a power of two, which changes
    neither the rotation nor, once undone, the nuclear norm), W (width x w, w = min(2 n, width))
    has orthonormal columns spanning both row spaces, A W = T_A' and B W = T_B', so that
    M = W (T_B T_A') W'. The rotation is I + W (Q_w - I) W' with Q_w that of the w x w matrix
    T_B T_A': the identity on directions neither A nor B reaches, which is what the
    closest-to-identity rule gives there (and the rule's result does not depend on W).

    Returns the rotation as a :class:`LinearMap` and the nuclear norm of M (= <A, B Q>)."""
    n = A.shape[0]
    ea = int(np.frexp(abs_max(A))[1])
    eb = int(np.frexp(abs_max(B))[1])
    stacked = np.zeros((width, 2 * n))
    stacked[: A.shape[1], :n] = times_pow2(A, -ea).T
    stacked[: B.shape[1], n:] = times_pow2(B, -eb).T
    W, T = np.linalg.qr(stacked)
    Qw, sv = closest_optimal_rotation(T[:, n:] @ T[:, :n].T, width)
    Qw[np.diag_indices(Qw.shape[0])] -= 1.0
    with np.errstate(over="ignore", under="ignore"):  # out of range: not used (see callers)
        nuclear = float(np.ldexp(np.sum(sv), ea + eb))
    return LinearMap(Qw, W, 1.0), nuclear


def n_space_nuclear_norm(A, B):
    """||B'A||_* (A, B of n rows, each zero-padded to a common width) for rows < columns,
    without a d x d product: with A' = Q_A R_A and B' = Q_B R_B the thin QR decompositions of
    the transposes, B'A = Q_B (R_B R_A') Q_A', whose singular values are those of the
    n x n matrix R_B R_A' (two thin QRs, triangular factors only, and one n x n SVD without
    vectors). Each side is rescaled by a power of two first (exact; undone on the sum)."""
    ea = int(np.frexp(abs_max(A))[1])
    eb = int(np.frexp(abs_max(B))[1])
    Ra = np.linalg.qr(times_pow2(A, -ea).T, mode="r")
    Rb = np.linalg.qr(times_pow2(B, -eb).T, mode="r")
    sv = np.linalg.svd(Rb @ Ra.T, compute_uv=False)
    with np.errstate(over="ignore", under="ignore"):  # out of range: not used (see callers)
        return float(np.ldexp(np.sum(sv), ea + eb))


def deferred_rotation(pending):
    """The fitted rotation (a :class:`LinearMap`) from what a fit kept: ``("cross", C)``, the
    (padded) cross-product C = Xw'Yw, gives :func:`closest_optimal_rotation` of C'; ``("rows",
    A, B, width)``, the rows of a fit with fewer stimuli than neurons, gives
    :func:`n_space_rotation`."""
    if pending[0] == "cross":
        return LinearMap(closest_optimal_rotation(pending[1].T)[0])
    _, A, B, width = pending
    return n_space_rotation(A, B, width)[0]
