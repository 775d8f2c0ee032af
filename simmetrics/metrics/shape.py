"""Shape metrics: distances between representations after an optimal alignment.

Williams, Kunz, Kornblith, Linderman, "Generalized Shape Metrics on Neural Representations",
NeurIPS 2021: centre the neurons, optionally (partially) whiten, align by the best element of a
group of isometries (rotations, permutations), then measure an angle or a Euclidean distance.
Because the alignment group acts by isometries and the preprocessing is applied to each
representation on its own, the result satisfies the triangle inequality. Khosla & Williams,
"Soft Matching Distance", UniReps 2023, replace the permutation by an optimal transport plan
between the neurons, which allows layers of different widths.

Conventions follow netrep's ``LinearMetric`` and ``PermutationMetric`` (ahwillia/netrep): the
centring means and the whitening matrices are learned in ``fit`` (so ``score`` on held-out
stimuli uses them; with full whitening, held-out directions the training stimuli did not span
are whitened on the scored stimuli: :class:`ShapeMetric`'s Notes), the covariance used for
whitening is the unnormalised ``Xc' Xc``, the Euclidean distance is not divided by sqrt(n),
and representations of different widths are compared by zero-padding the narrower one.
"""

import numpy as np

from .._core.linalg import (
    abs_max,
    center,
    clearly_varying,
    frobenius_norm,
    looks_near_centred,
    near_centred,
    orthonormal_basis,
    pow2_rescale,
    times_pow2,
)
from .._core.memory import check_memory
from .._core.solvers import (SAFE_HIGH as _SAFE_HIGH, SAFE_LOW as _SAFE_LOW,
                              assignment_from_cross, cross_in_range, pad2,
                              rotation_from_cross)
from .._core.params import Boolean, Interval, Options, Real
from .._core.registry import register
from .._core.validation import check_nonconstant
from ..base import AlignmentMetric, param_dependent
from .._core.backend import to_numpy
from ..moments import check_nonconstant_moments, gram_factor, rows_svd

__all__ = [
    "ShapeMetric",
    "OrthogonalProcrustes",
    "PermutationMetric",
    "SoftMatching",
    "partial_whitener",
    "procrustes_rotation",
    "optimal_permutation",
    "soft_matching_plan",
    "angular_distance",
    "zero_pad",
]

_SCORE_METHODS = ("angular", "euclidean")
_REFERENCE_SHAPE = (
    "Williams, Kunz, Kornblith, Linderman, 'Generalized Shape Metrics on Neural "
    "Representations', NeurIPS 2021 (conventions of netrep's LinearMetric)"
)


# -- pure functions ------------------------------------------------------------------------
def zero_pad(A, width):
    """``A`` with zero columns appended up to ``width`` columns (``A`` itself if already that
    wide). netrep's convention for comparing representations of different widths.

    Examples
    --------
    >>> zero_pad(np.ones((2, 1)), 3)
    array([[1., 0., 0.],
           [1., 0., 0.]])
    """
    if A.shape[1] == width:
        return A
    out = np.zeros((A.shape[0], width))
    out[:, : A.shape[1]] = A
    return out


def angular_distance(A, B):
    """The angle between two matrices seen as vectors: arccos(<A, B>_F / (||A||_F ||B||_F)).

    Computed as ``2 atan2(||a - b||, ||a + b||)`` with a = A/||A||, b = B/||B|| (Kahan's
    formula), which equals the arccos but keeps full accuracy near 0 and pi, where arccos of a
    rounded cosine loses half the digits (arccos(1 - 1e-16) is already 1.5e-8). The result is
    always in [0, pi]; no argument ever leaves an inverse cosine's domain.

    Raises
    ------
    ValueError
        If either matrix is zero (the angle is undefined).

    Examples
    --------
    >>> A = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> round(float(angular_distance(A, 3 * A)), 12), round(float(angular_distance(A, -A)), 12)
    (0.0, 3.14159265359)
    """
    # The fast path: three passes over the data and no copies, for norms inside the float
    # range (their squares neither overflowed nor underflowed). Where the cosine is not near
    # +-1, arccos of it is accurate (its error is that of the cosine over sin(angle)).
    with np.errstate(over="ignore", under="ignore"):  # out of the window: the slow path
        na, nb = np.linalg.norm(A), np.linalg.norm(B)
    if _SAFE_LOW <= na <= _SAFE_HIGH and _SAFE_LOW <= nb <= _SAFE_HIGH:
        cos = float(np.vdot(A, B)) / na / nb
        if abs(cos) < 0.99:
            return float(np.arccos(cos))
    na, nb = frobenius_norm(A), frobenius_norm(B)  # no overflow at 1e300, no underflow
    for name, norm in (("X", na), ("Y", nb)):
        if norm == 0.0:
            raise ValueError(
                f"the aligned {name} is zero (no variance left after centring with the fitted "
                "means and whitening), so the angular distance is undefined"
            )
    a, b = A / na, B / nb
    return 2.0 * np.arctan2(np.linalg.norm(a - b), np.linalg.norm(a + b))




def _distance(A, B, score_method):
    if score_method == "angular":
        return angular_distance(A, B)
    return frobenius_norm(A - B)


def partial_whitener(Xc, alpha):
    """netrep's partial whitening matrix Z for centred data ``Xc`` (n x d); ``Xc @ Z`` is the
    partially whitened representation.

    With C = Xc' Xc (unnormalised, as in netrep) and its eigen-decomposition V diag(lam) V'::

        Z = s (alpha I + (1 - alpha) C^(-1/2))
        s = sqrt( tr C / ||Xc (alpha I + (1 - alpha) C^(-1/2))||_F^2 )

    i.e. the eigenvalues are mapped to alpha + (1 - alpha) / sqrt(lam) (the partial whitening
    of Williams et al. 2021; note: not (alpha I + (1 - alpha) C)^(-1/2)), and the scale s
    preserves the total variance tr C. alpha = 1 is no whitening
    (returns None, meaning the identity), alpha = 0 full whitening (CCA). Because C is not
    divided by n, alpha strictly between 0 and 1 weighs the two terms by the data's raw scale,
    exactly as netrep does.

    Rank-deficient C (constant or duplicate neurons, n <= d, zero-padding): C^(-1/2) is the
    pseudo-inverse square root, keeping the directions whose singular value of Xc exceeds
    ``max(n, d) * eps * s_max`` (:func:`simmetrics._core.linalg.orthonormal_basis`); on the other
    directions Z is k alpha I (k the scale above). netrep instead clips the eigenvalues at 1e-7;
    both agree on full-rank data, and neither produces a NaN. (At alpha = 0 these directions
    get weight 0; :class:`ShapeMetric` scores held-out data that vary there by the rule in its
    Notes.)

    Extreme scales: the SVD runs on ``Xc`` times a power of two (exact) and Z is formed from
    ratios of singular values, so subnormal data (1e-310, where an SVD of the data fails and
    1/s overflows) and huge data (1e300) give the whitener of the data as given.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> Xc = center(rng.normal(size=(50, 3)) @ rng.normal(size=(3, 3)))
    >>> W = Xc @ partial_whitener(Xc, 0.0)
    >>> np.allclose(W.T @ W, np.eye(3) * np.sum(Xc**2) / 3)  # white, total variance kept
    True
    """
    if alpha == 1.0:
        return None
    return _whitener_map(Xc, alpha).dense()


def _whitener_map(Xc, alpha, e=0):
    """:func:`partial_whitener` of the centred data ``Xc * 2**e`` as a :class:`_LinearMap`
    (Z = c I + V diag(z) V', no d x d matrix), from the SVD of ``Xc`` rescaled by a power of
    two: subnormal (1e-310) and huge (1e300) data give the whitener of the data as given, with
    no failed SVD and no overflow of 1/s."""
    top = abs_max(Xc)
    shift = int(np.frexp(top)[1]) if top > 0.0 else 0
    _, s, Vt = orthonormal_basis(times_pow2(Xc, -shift))
    return _whitener_from_spectrum(s, Vt, alpha, e + shift, n=Xc.shape[0])


def _whitener_from_spectrum(s, Vt, alpha, e=0, n=None):
    """:func:`partial_whitener` (as a :class:`_LinearMap`) from the singular values
    s * 2**e and right vectors V' of Xc (from its SVD, or from the eigen-decomposition of Xc'Xc
    when streaming); ``n`` the number of rows of Xc (None: not known).

    With sigma = s 2**e the singular values of Xc, Z = k (alpha I + (1 - alpha) V diag(1/sigma)
    V') and k = ||sigma|| / ||alpha sigma + (1 - alpha)|| (the total variance kept), so::

        Z = k alpha I + V diag(k (1 - alpha) / sigma) V'

    Both coefficients are formed from ratios of s and powers of two, never from 1/sigma,
    which overflows for data of 1e-310.

    For full whitening (alpha = 0) the map also records ``unit`` = (||s|| / sqrt(r), e, n):
    k = ||s|| 2**e / sqrt(r) is the norm of each of the r whitened directions of Xc
    (Xc Z = k U V'), so k / sqrt(n) is their rms per stimulus, the scale that
    :class:`ShapeMetric` gives held-out directions the training rows did not span."""
    t = max(e, 0)  # m = (alpha sigma + (1 - alpha)) 2**-t stays in range at either extreme
    with np.errstate(under="ignore"):  # a term below the smallest float is negligible here
        m = alpha * times_pow2(s, e - t) + (1.0 - alpha) * 2.0 ** (-t)
        ratio = frobenius_norm(s) / frobenius_norm(m)  # = k 2**(t - e)
        diagonal = (1.0 - alpha) * (times_pow2(ratio, -t) / s)  # k (1 - alpha) / sigma
        scalar = alpha * times_pow2(ratio, e - t)  # k alpha
    Z = _LinearMap(diagonal, Vt.T, scalar)
    if alpha == 0.0:
        Z.unit = (frobenius_norm(s) / np.sqrt(s.size), e, n)
    return Z


class _LinearMap:
    """A fitted d x d linear map A -> A M, kept as the matrix M itself (``basis`` None) or as
    M = c I + W K W' with W (d x w) orthonormal columns and K (w x w, or a vector: diagonal),
    so that maps learned from n < d stimuli cost O(d n) memory and A M costs O(rows d w).

    :meth:`apply` rescales inputs outside the trusted range by a power of two (exact), so
    subnormal or huge held-out data are mapped without under- or overflow of the products.

    ``unit`` is None except for a full whitener (see :func:`_whitener_from_spectrum`)."""

    __slots__ = ("core", "basis", "scalar", "unit")

    def __init__(self, core, basis=None, scalar=0.0):
        self.core, self.basis, self.scalar = core, basis, float(scalar)
        self.unit = None

    @property
    def width(self):
        return (self.core if self.basis is None else self.basis).shape[0]

    def apply(self, A):
        top = abs_max(A)
        if top == 0.0 or _SAFE_LOW <= top <= _SAFE_HIGH:
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


def _closest_optimal_rotation(M, width=None):
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


def _use_n_space_route(n_rows, width):
    """Whether the rotation of n_rows stimuli in ``width`` dimensions is found in the span of
    the two row spaces (at most 2 n_rows dimensions) rather than from the width x width
    cross-product's SVD."""
    return width > n_rows


def _n_space_rotation(A, B, width):
    """:func:`_closest_optimal_rotation` of M = B'A (A, B zero-padded to ``width`` columns)
    without forming M, for rows < width. With [A' B'] = W T the QR decomposition of the two
    transposed representations side by side (each rescaled by a power of two, which changes
    neither the rotation nor, once undone, the nuclear norm), W (width x w, w = min(2 n, width))
    has orthonormal columns spanning both row spaces, A W = T_A' and B W = T_B', so that
    M = W (T_B T_A') W'. The rotation is I + W (Q_w - I) W' with Q_w that of the w x w matrix
    T_B T_A': the identity on directions neither A nor B reaches, which is what the
    closest-to-identity rule gives there (and the rule's result does not depend on W).

    Returns the rotation as a :class:`_LinearMap` and the nuclear norm of M (= <A, B Q>)."""
    n = A.shape[0]
    ea = int(np.frexp(abs_max(A))[1])
    eb = int(np.frexp(abs_max(B))[1])
    stacked = np.zeros((width, 2 * n))
    stacked[: A.shape[1], :n] = times_pow2(A, -ea).T
    stacked[: B.shape[1], n:] = times_pow2(B, -eb).T
    W, T = np.linalg.qr(stacked)
    Qw, sv = _closest_optimal_rotation(T[:, n:] @ T[:, :n].T, width)
    Qw[np.diag_indices(Qw.shape[0])] -= 1.0
    with np.errstate(over="ignore", under="ignore"):  # out of range: not used (see callers)
        nuclear = float(np.ldexp(np.sum(sv), ea + eb))
    return _LinearMap(Qw, W, 1.0), nuclear


def _split_unseen(A, As, Z):
    """(main, extra) of scored rows for full whitening: :class:`ShapeMetric`'s held-out rule.

    ``A`` the scored rows as given (m x d), ``As`` = A - fitted mean, ``Z`` the fitted full
    whitener (``Z.unit`` set), whose basis V (d x r, orthonormal) spans the training rows.
    The part of As outside that span, As (I - V V'), is invisible to Z; U_u is an orthonormal
    basis of its column space (singular values up to max(m, d) eps max(||A||_F, ||As||_F)
    dropped as rounding: ||A||, uncentred, sets the rounding of A - mean, a constant row of
    about eps |mean|), and::

        extra = sqrt(m) (k / sqrt(n)) U_u          (m x r_u)
        main  = (I - U_u U_u') As Z                (m x d)

    k / sqrt(n) the rms per training stimulus of a whitened training direction (``Z.unit``).
    Without an unseen part, main = As Z and extra has no columns. The basis is computed on
    As times a power of two (exact), so subnormal and huge data lose nothing."""
    main = Z.apply(As)
    m, d = As.shape
    V = Z.basis
    top = abs_max(As)
    if V.shape[1] >= d or top == 0.0:  # the training rows spanned every direction
        return main, np.zeros((m, 0))
    shift = -int(np.frexp(top)[1])
    T = times_pow2(As, shift)
    U, s, _ = np.linalg.svd(T - (T @ V) @ V.T, full_matrices=False)
    with np.errstate(over="ignore", under="ignore"):  # only compared with s below
        floor = times_pow2(frobenius_norm(A), shift)
    keep = s > max(m, d) * np.finfo(np.float64).eps * max(floor, frobenius_norm(T))
    Uu = U[:, keep]
    if not Uu.shape[1]:
        return main, Uu
    norm, e, n = Z.unit
    if n is None:
        raise ValueError(
            "these scored stimuli vary in directions the training stimuli did not span, and "
            "this ShapeMetric(alpha=0) was fitted from second moments without their number of "
            "stimuli, which the held-out rule needs (see ShapeMetric's Notes); fit it with "
            "fit(X, Y) on the training data"
        )
    main = main - Uu @ (Uu.T @ main)
    with np.errstate(under="ignore"):  # back to the data's scale: subnormal on purpose
        extra = times_pow2(Uu * (norm * np.sqrt(m / n)), e)
    return main, extra


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


# -- estimators ------------------------------------------------------------------------------
#: The largest ratio of a neuron's raw to its centred sum of squares for which the cross
#: products are taken about 0 and moved to the means analytically, with no centred copy of the
#: data (see :func:`simmetrics._core.linalg.near_centred`).
_RAW_OVER_CENTRED = 16.0
#: Cosines below this (in magnitude) give accurate angles and distances from the closed forms
#: on the fitting data; closer to +-1 the aligned data are formed (accurate near 0 and pi).
_CLOSED_FORM_COSINE = 0.99


class _Prepared:
    """One representation ready for the shape metrics' pair step: ``data`` (the neurons about
    0, or about the one-pass mean, or centred and whitened) whose products with another's,
    corrected by ``sums`` (the column sums of ``data``: ``data - sums / n`` is the exactly
    centred representation), give the centred cross-products; ``sq`` the squared norm of the
    centred representation, ``colsq`` that of each of its neurons; ``mean`` and ``whitener``
    what ``fit`` stores."""

    __slots__ = ("data", "sums", "colsq", "mean", "whitener")

    def __init__(self, data, sums, colsq, mean, whitener=None):
        self.data, self.sums, self.colsq = data, sums, colsq
        self.mean, self.whitener = mean, whitener

    @property
    def sq(self):
        return float(np.sum(self.colsq))

    @property
    def n(self):
        return self.data.shape[0]

    def centred(self):
        """The exactly centred (and whitened) representation (a copy where a shift is left)."""
        return self.data - self.sums / self.n if self.sums.any() else self.data

    def cross(self, other):
        """Centred cross-products self' other (d_self x d_other), None if they left the range
        where no rounding that matters happened (very large or small activations)."""
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            M = self.data.T @ other.data
            if self.sums.any() or other.sums.any():
                M -= np.outer(self.sums, other.sums / self.n)
        top = float(np.max(np.abs(M))) if M.size else 0.0
        return M if _SAFE_LOW <= top <= _SAFE_HIGH else None


def _prepared_plain(A, name, center_columns):
    """:class:`_Prepared` of a representation without whitening, with as few passes over the
    data as accuracy allows: neurons near enough to centred are used as they are (column sums
    and squares, then corrected products), others are shifted by their one-pass mean (one
    copy); the zero-variance test (or, uncentred, the all-zero test) names ``name``."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if not center_columns:
            _check_one(A, name, center_columns)
            zeros = np.zeros(A.shape[1])
            return _Prepared(A, zeros, np.einsum("ij,ij->j", A, A), zeros)
        n = A.shape[0]
        mean = None
        if looks_near_centred(A, _RAW_OVER_CENTRED):
            raw, sums = np.einsum("ij,ij->j", A, A), A.sum(axis=0)
            mean = sums / n  # numpy's mean, bit for bit
            if near_centred(raw, sums, n, _RAW_OVER_CENTRED):
                return _checked(_Prepared(A, sums, raw - sums * sums / n, mean), A, name)
        if mean is None:
            mean = A.mean(axis=0)
        Z = A - mean
        sums = Z.sum(axis=0)
        colsq = np.einsum("ij,ij->j", Z, Z) - sums * sums / n
    return _checked(_Prepared(Z, sums, colsq, mean), A, name)


def _check_one(A, name, center_columns):
    """Raise if ``A`` has no shape to compare: zero variance when the neurons are centred, all
    zeros when they are not."""
    if center_columns:
        check_nonconstant(A, name)
    elif not A.any():
        raise ValueError(f"{name} is all zeros, so its shape is undefined")


def _checked(prepared, A, name):
    """Raise if ``A`` has zero variance: decided by the squared norm when it is clearly more
    than rounding could leave of constant columns, else exactly (column ranges)."""
    if not clearly_varying(prepared.sq, prepared.mean, A.shape[0]):
        check_nonconstant(A, name)
    return prepared


class _CenteredAlignment(AlignmentMetric):
    """Shared machinery: parameter checks, centring with means learned in fit, input checks,
    score = distance between the two aligned matrices returned by ``_transform``.

    ``fit`` and ``fit_score`` run a per-representation step (:meth:`_partial_fit`: centring and,
    for partial whitening, the whitener) and a pair step (the alignment from the centred
    cross-products); :func:`simmetrics.pairwise` runs the first once per representation. On the
    fitting data the value comes from the products the alignment was found with (the nuclear
    norm for rotations, the matched entries for permutations, the plan's cost for transport),
    unless the cosine is within 0.01 of +-1, where the aligned data are formed for accuracy.
    """

    kind = "distance"
    is_metric = True
    same_width = False
    _score_methods = _SCORE_METHODS
    _parameter_constraints = {
        "score_method": [Options(_SCORE_METHODS)],
        "center_columns": [Boolean()],
    }
    _pads = True  # the narrower representation is zero-padded to the common width

    def _check_params(self):
        if self.score_method not in self._score_methods:
            raise ValueError(
                f"score_method must be one of {self._score_methods}, got {self.score_method!r}"
            )

    def _check_data(self, X, Y):
        for name, A in (("X", X), ("Y", Y)):
            _check_one(A, name, self.center_columns)

    def _partial_fit(self, A, name):
        self._check_params()
        return _prepared_plain(A, name, self.center_columns)

    def _fit(self, X, Y):
        self._finalize_fit(self._partial_fit(X, "X"), self._partial_fit(Y, "Y"))

    def _finalize_fit_score(self, a, b):
        """Fit on the pair, then the distance on the same data: from ||A||^2, ||B||^2 and
        <A, aligned B> that the fit computed, where that closed form is accurate; else from the
        aligned data."""
        products = self._finalize_fit(a, b)
        if products is not None:
            aa, bb, ab = products
            if _SAFE_LOW**2 <= min(aa, bb) and max(aa, bb) <= _SAFE_HIGH**2:
                if abs(ab / np.sqrt(aa) / np.sqrt(bb)) < _CLOSED_FORM_COSINE:
                    return _distance_from_products(aa, bb, ab, self.score_method)
        return _distance(*self._aligned(a, b), self.score_method)

    def _aligned(self, a, b):
        """The aligned pair of the fitting data, from their :class:`_Prepared`."""
        return self._align(a.centred(), b.centred())

    def _finalize_fit(self, a, b):
        """Learn the alignment from two :class:`_Prepared`; return (||A||^2, ||B||^2,
        <A, aligned B>) on these data, or None where the products left the safe range (the
        alignment is then learned from the data, rescaled)."""
        self.mean_x_, self.mean_y_ = a.mean, b.mean
        width = max(a.data.shape[1], b.data.shape[1]) if self._pads else None
        C = a.cross(b)
        if C is None:
            A, B = a.centred(), b.centred()
            if width is not None:
                A, B = zero_pad(A, width), zero_pad(B, width)
            self._fit_alignment(A, B)
            return None
        return self._fit_alignment_from_cross(a, b, C if width is None else pad2(C, width, width))

    def _transform(self, X, Y):
        return self._align(X - self.mean_x_, Y - self.mean_y_)

    def _score(self, X, Y):
        self._check_params()
        self._check_data(X, Y)
        return _distance(*self._transform(X, Y), self.score_method)

    # -- streaming (simmetrics.stream_score): the same fit and score from second moments ----
    # Without whitening both need only Xc'Xc, Yc'Yc and Xc'Yc about the fitted means (the
    # angle, arccos of a cosine formed from them, has an error of about sqrt(eps) near 0;
    # whole data use 2 atan2(||a - b||, ||a + b||)). The whitening shape metrics use the
    # statistics' factor instead (ShapeMetric below).
    @property
    def _moments_any_scale(self):
        """The Euclidean distances without partial whitening (alpha 0 or 1) are homogeneous
        of degree 1 in (X, Y): the hooks take statistics at any power-of-two level 2^-k
        (both sides brought to the larger exponent) and scale the distance by 2^k, exactly.
        Partial whitening (0 < alpha < 1) mixes alpha I with C^(-1/2) and is not."""
        return self.score_method == "euclidean" and float(getattr(self, "alpha", 1.0)) in (0.0, 1.0)

    def _one_level(self, S):
        """(S, k): for the homogeneous distances, S with both sides at the larger exponent k
        (exact, up to contributions below 2^-1074 of the smaller side, which lie far below
        eps of the distance), else (S, 0)."""
        if not self._moments_any_scale:
            return S, 0
        k = max(S.exponents)
        if S.exponents != (k, k):
            with np.errstate(under="ignore"):
                S = S.at_exponents(k, k)
        return S, k

    def _check_moments(self, stats):
        for name, rep in (("X", stats.x), ("Y", stats.y)):
            if self.center_columns:
                check_nonconstant_moments(rep, name)
            elif rep.minimum is not None and not (
                np.any(to_numpy(rep.minimum) != 0.0) or np.any(to_numpy(rep.maximum) != 0.0)
            ):
                raise ValueError(f"{name} is all zeros, so its shape is undefined")

    def _fit_from_moments(self, stats):
        self._check_params()
        S, _ = self._one_level(stats.to_numpy())
        self._check_moments(S)
        if self.center_columns:
            self.mean_x_, self.mean_y_ = S.x.mean, S.y.mean
        else:
            self.mean_x_, self.mean_y_ = np.zeros(S.x.width), np.zeros(S.y.width)
        self._fit_alignment_from_moments(S.shifted(self.mean_x_, self.mean_y_))

    def _score_from_moments(self, stats):
        self._check_params()
        S, k = self._one_level(stats.to_numpy())
        self._check_moments(S)
        value = self._distance_from_moments(S.shifted(self.mean_x_, self.mean_y_))
        return float(times_pow2(value, k)) if k else value  # in the data's units

    def _distance_from_moments(self, S):
        return _distance_from_products(*self._aligned_products(S), self.score_method)


def _distance_from_products(aa, bb, ab, score_method):
    """:func:`_distance` of aligned A, B from ||A||^2, ||B||^2 and <A, B>: arccos of the
    cosine, or sqrt(||A||^2 + ||B||^2 - 2 <A, B>)."""
    if score_method == "angular":
        for name, sq in (("X", aa), ("Y", bb)):
            if not sq > 0.0:
                raise ValueError(
                    f"the aligned {name} is zero (no variance left after centring with the "
                    "fitted means and whitening), so the angular distance is undefined"
                )
        return float(np.arccos(np.clip(ab / np.sqrt(aa) / np.sqrt(bb), -1.0, 1.0)))
    return float(np.sqrt(max(aa + bb - 2.0 * ab, 0.0)))


def _shape_invariances(self):
    groups = {"orthogonal", "permutation", "signed_permutation"}
    if self.center_columns:
        groups.add("translation")
    if self.score_method == "angular" and self.alpha == 1.0:
        groups.add("isotropic_scaling")
    if self.score_method == "angular" and self.alpha == 0.0:
        groups |= {"invertible_linear", "scaled_permutation", "positive_scaled_permutation",
                   "isotropic_scaling"}
    return frozenset(groups)


def _angular_or_euclidean_bounds(high):
    return param_dependent(
        lambda self: (0.0, high) if self.score_method == "angular" else (0.0, np.inf)
    )


@register("shape_metric")
class ShapeMetric(_CenteredAlignment):
    """Generalized shape metric with partial whitening (Williams et al. 2021; netrep's
    ``LinearMetric``).

    Each representation is centred (``center_columns``) and partially whitened,
    ``X~ = (X - mean_X) Z_X`` with ``Z_X`` from :func:`partial_whitener` (eigenvalues of
    C = Xc'Xc mapped to alpha + (1 - alpha)/sqrt(lam), rescaled to keep tr C); the narrower one
    is zero-padded to the common width; then the rotation Q minimising ||X~ - Y~ Q||_F is found
    by orthogonal Procrustes. The means, whitening matrices and Q are learned in ``fit``;
    ``score`` applies them to the given (possibly held-out) stimuli::

        angular:   arccos( <X~, Y~ Q>_F / (||X~||_F ||Y~ Q||_F) )
        euclidean: ||X~ - Y~ Q||_F          (not divided by sqrt(n), as in netrep)

    On the fitting data <X~, Y~ Q> is the nuclear norm of X~'Y~, so the angular distance lies in
    [0, pi/2]; held-out stimuli can give up to pi (Y = -X after fitting on Y = X gives pi), so
    ``bounds`` is [0, pi]. alpha = 1 is the Procrustes shape distance;
    alpha = 0 whitens fully and the angular distance is arccos(sum_k rho_k / sqrt(r_x r_y)),
    rho_k the canonical correlations and r the ranks: arccos of the mean canonical correlation
    for full-rank data of equal widths (with unequal widths the padding shrinks it).

    A **distance** and a metric (zero for equal shapes, symmetric, triangle inequality:
    Williams et al. 2021, Proposition 1). Invariant to orthogonal maps (hence permutations and
    sign flips) and translations; the angular distance also to isotropic scaling at alpha = 1
    and to every invertible linear map at alpha = 0. For 0 < alpha < 1 the unnormalised
    covariance makes the value depend on the data's scale (netrep's convention).

    **The fitted rotation.** Where Y~'X~ is rank-deficient (fewer stimuli than neurons,
    zero-padding, duplicate neurons) the training data fix Q only on the directions they span;
    Q is then the optimal rotation closest to the identity (the largest trace among the
    optimal ones): the identity on directions neither representation reaches, and on the rest
    of the null space the polar factor that rotates least. It is unique, so held-out scores do
    not depend on how an SVD picks null vectors. With more neurons than stimuli (d > n) it is
    found in the span of the two row spaces (at most 2n dimensions, from a QR decomposition of
    the d x 2n matrix [X~' Y~']), never from the d x d SVD; Q and the whitening matrices are
    then kept factored (I + W K W') and formed as d x d arrays only when ``rotation_`` or
    ``whitener_x_`` is read. Data of 1e-310 or 1e300 are whitened after an exact power-of-two
    rescaling, so the scale-free variants give the same value as at scale 1.

    Parameters
    ----------
    alpha : float in [0, 1], default 1.0
        Regularisation of the whitening: 1 none (rotations only), 0 full (any invertible map).
    score_method : {"angular", "euclidean"}, default "angular"
    center_columns : bool, default True
        Subtract each neuron's mean (learned in ``fit``).
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None

    Attributes
    ----------
    mean_x_, mean_y_ : ndarray
        Neuron means learned in ``fit`` (zeros when ``center_columns=False``).
    whitener_x_, whitener_y_ : ndarray or None
        Partial whitening matrices (None when alpha = 1: no whitening), formed when read.
    rotation_ : ndarray, shape (d, d)
        Q mapping the (padded, whitened) Y onto X; d = max(n_x, n_y). Formed when read (a
        d x d array, checked against the memory budget); ``transform`` and ``score`` apply
        the factored form.

    Notes
    -----
    **Held-out stimuli that vary where the training stimuli did not (alpha = 0).** Full
    whitening keeps only the span of the training rows: a neuron silent during ``fit``, or any
    direction the n training rows do not reach (always when n <= d), is multiplied by 0, so
    held-out data that differed only there scored 0 (1.6e-15). ``score`` and ``transform``
    instead follow the rule of :class:`simmetrics.IntertwinerProcrustes` for the identity
    activation (the same group, GL_d). For the scored rows of X (m of them, As = X - mean_x_),
    with V (d x r) an orthonormal basis of the training row space, U_u an orthonormal basis of
    the column space of As (I - V V') (its singular values up to max(m, d) eps ||X||_F dropped
    as rounding) and k^2 = tr(Xc'Xc) / r the squared norm of each of the r whitened training
    directions (Xc Z_X = k U V' on the n training rows)::

        X~ = [ (I - U_u U_u') As Z_X ,  sqrt(m / n) k U_u ]

    and Y~ likewise (its own U_v, k_Y). The first blocks are zero-padded to the common width
    and aligned by the fitted Q; the extra blocks, zero-padded to the larger of their widths,
    by the orthogonal Procrustes rotation R of the scored stimuli (minimising
    ||E_x - E_y R||_F); the distance is taken between [X~_1, E_x] and [Y~_1 Q, E_y R]. So an
    unseen direction is whitened on the scored stimuli to the training rms per stimulus,
    k / sqrt(n) (it weighs what a training direction weighs), and the whitened block is
    projected off span(U_u), which removes what the unseen part leaks into it under a
    non-orthogonal map. Consequences: the held-out value is invariant to GL_d acting on X
    (training and held-out rows alike), held-out Y = X g scores 0, the angle stays in
    [0, pi], and held-out X varying only in unseen directions is well defined (against a Y
    without unseen part: pi/2). Rows inside the training span (the fitting data among them)
    add no column, so ``fit_score``, and ``score`` on the fitting data, are unchanged;
    otherwise ``transform`` returns more columns than neurons.

    For 0 < alpha < 1 the unseen directions keep the weight k alpha of the fitted map (the
    rule is alpha = 0's): where the scored data have an unseen part the held-out value jumps at
    alpha = 0 (a held-out difference only in a neuron silent during fit: 4e-6 at alpha = 1e-6,
    0.40 at alpha = 0); without one it is continuous in alpha. Fitted by
    :func:`simmetrics.stream_score` and scored on arrays, the number of training stimuli is
    not known, and scored data with an unseen part get a ValueError.

    **Fewer stimuli than neurons, alpha = 0.** With n <= d every training set leaves at least
    d - n + 1 directions unseen. ``fit_score`` is 0 for any pair in general position (all
    canonical correlations are 1), and held-out rows in general position score 0 as long as
    m + r <= d (r = n - 1 when centring): GL_d then maps the training and scored rows of X onto
    those of Y, and the invariance leaves nothing to compare. With more scored rows the value
    compares the parts in the training spans and the principal angles between the unseen parts.
    To compare such data use alpha > 0, or fewer neurons (e.g. PCA fitted on the training
    stimuli).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 5))
    >>> Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    >>> round(ShapeMetric().fit_score(X, 2 * X @ Q + 1), 10)
    0.0
    >>> round(ShapeMetric(alpha=0.0).fit_score(X, X @ rng.normal(size=(5, 5))), 10)
    0.0
    """

    bounds = _angular_or_euclidean_bounds(np.pi)
    invariances = param_dependent(_shape_invariances)
    reference = _REFERENCE_SHAPE

    _parameter_constraints = {"alpha": [Interval(Real, 0, 1, closed="both")]}

    def __init__(self, alpha=1.0, score_method="angular", center_columns=True, layout=None):
        self.alpha = alpha
        self.score_method = score_method
        self.center_columns = center_columns
        self.layout = layout

    def _check_params(self):
        super()._check_params()
        alpha = self.alpha
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) \
                or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")

    # -- fitted maps: kept as _LinearMap (factored when learned from fewer stimuli than
    # neurons), formed as dense matrices only when the public attributes are read
    def _fitted(self, name, public):
        try:
            return self.__dict__[name]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {public!r} (call fit first)"
            ) from None

    @property
    def rotation_(self):
        return self._fitted("_rotation", "rotation_").dense()

    @property
    def whitener_x_(self):
        Z = self._fitted("_whitener_x", "whitener_x_")
        return None if Z is None else Z.dense()

    @property
    def whitener_y_(self):
        Z = self._fitted("_whitener_y", "whitener_y_")
        return None if Z is None else Z.dense()

    def _whiten(self, Ac, Z):
        return Ac if Z is None else Z.apply(Ac)

    def _partial_fit(self, A, name):
        self._check_params()
        alpha = float(self.alpha)
        if alpha == 1.0:
            return _prepared_plain(A, name, self.center_columns)
        # the whitening is learned on accurately centred data (two passes, see
        # simmetrics._core.linalg.center): with large means, X - mean_x_ keeps a constant rounding
        # residual that the whitening would take for a direction of the data
        _check_one(A, name, self.center_columns)
        # data out of range (1e-310, 1e300) are centred and whitened times a power of two
        # (exact), so that no SVD meets subnormal numbers; only the whitened data go back
        top = abs_max(A)
        e = 0 if _SAFE_LOW <= top <= _SAFE_HIGH else int(np.frexp(top)[1])
        As = times_pow2(A, -e) if e else A
        with np.errstate(under="ignore"):  # means and whitened data of subnormal inputs
            if self.center_columns:
                mean, Ac = times_pow2(As.mean(axis=0), e), center(As)
            else:
                mean, Ac = np.zeros(A.shape[1]), As
            Z = _whitener_map(Ac, alpha, e)
            Aw = times_pow2(Z.apply(Ac), e) if e else Z.apply(Ac)
        with np.errstate(over="ignore", under="ignore"):
            colsq = np.einsum("ij,ij->j", Aw, Aw)
        return _Prepared(Aw, np.zeros(A.shape[1]), colsq, mean, Z)

    def _finalize_fit(self, a, b):
        self._whitener_x, self._whitener_y = a.whitener, b.whitener
        width = max(a.data.shape[1], b.data.shape[1])
        if _use_n_space_route(a.n, width):
            # more neurons than stimuli: the rotation in the span of the two row spaces, no
            # width x width SVD (d = 5,000, n = 10: milliseconds instead of minutes)
            self.mean_x_, self.mean_y_ = a.mean, b.mean
            self._rotation, nuclear = _n_space_rotation(a.centred(), b.centred(), width)
            return a.sq, b.sq, nuclear
        return super()._finalize_fit(a, b)

    def _fit_alignment(self, Xw, Yw):
        """The rotation from the (padded, whitened) data themselves."""
        self._rotation = _LinearMap(_closest_optimal_rotation(cross_in_range(Yw, Xw))[0])

    def _fit_alignment_from_cross(self, a, b, C):
        # Q from the SVD U S V' of Yw'Xw = C'; on these data <Xw, Yw Q> = sum(S)
        Q, sv = _closest_optimal_rotation(C.T)
        self._rotation = _LinearMap(Q)
        return a.sq, b.sq, float(sv.sum())

    def _align(self, Xc, Yc):
        return self._align_whitened(self._whiten(Xc, self._whitener_x),
                                    self._whiten(Yc, self._whitener_y))

    def _aligned(self, a, b):
        return self._align_whitened(a.centred(), b.centred())  # prepared: already whitened

    def _transform(self, X, Y):
        Zx, Zy = self._fitted("_whitener_x", "whitener_x_"), self._whitener_y
        # partial or no whitening (or a map pickled before maps recorded their unit): the
        # fitted maps alone
        if getattr(Zx, "unit", None) is None:
            return super()._transform(X, Y)
        # full whitening: directions the training rows did not span, by the held-out rule
        # (class Notes): whitened on the scored stimuli, appended, aligned on them
        Mx, Ex = _split_unseen(X, X - self.mean_x_, Zx)
        My, Ey = _split_unseen(Y, Y - self.mean_y_, Zy)
        A, B = self._align_whitened(Mx, My)
        k = max(Ex.shape[1], Ey.shape[1])
        if k:
            Ex, Ey = zero_pad(Ex, k), zero_pad(Ey, k)
            A, B = np.hstack([A, Ex]), np.hstack([B, Ey @ procrustes_rotation(Ex, Ey)])
        return A, B

    def _align_whitened(self, Xw, Yw):
        width = self._rotation.width
        return zero_pad(Xw, width), self._rotation.apply(zero_pad(Yw, width))

    # -- streaming with whitening: the statistics' factor, or a checked square root ---------
    @property
    def _moments_factor(self):
        """stream_score accumulates PairMoments.factor for the whitening (alpha < 1) and for
        uncentred data: the whitener, the rotation and the distance then come from rows that
        stand in for the data (PairMoments.factor_rows), with the data's conditioning. (An
        uncentred distance from ||X||^2 + ||Y||^2 - 2 <X, Y Q> cancels its digits when the means
        are far larger than the spread: 1e4 + z lost 7 of them, 3e5 + 1e-2 z all but one.)"""
        return float(self.alpha) != 1.0 or not self.center_columns

    def _moments_whitener(self, A, n, alpha):
        """The whitener (:func:`_whitener_from_spectrum`) of data with rows ``A`` standing in
        for their n rows, by the whole-data rank rule (:func:`simmetrics.moments.rows_svd`)."""
        _, s, Vt, e = rows_svd(A, n)
        return _whitener_from_spectrum(s, Vt, alpha, e)

    def _check_gram_route(self, S):
        """Without a factor the whitening decomposes the Gram matrices: refused where
        :func:`simmetrics.moments.gram_factor` finds their digits insufficient; returns the
        square roots it accepted."""
        return [gram_factor(rep, name, centred=bool(self.center_columns))
                for name, rep in (("X", S.x), ("Y", S.y))]

    def _whitened_moments(self, S):
        """Xw'Xw, Yw'Yw and Xw'Yw (zero-padded to the common width) from centred moments."""
        Zx, Zy = self.whitener_x_, self.whitener_y_
        Gx = S.x.gram if Zx is None else Zx.T @ S.x.gram @ Zx
        Gy = S.y.gram if Zy is None else Zy.T @ S.y.gram @ Zy
        C = S.cross
        if Zx is not None:
            C = Zx.T @ C
        if Zy is not None:
            C = C @ Zy
        return Gx, Gy, C

    def _fit_alignment_from_moments(self, S):
        alpha = float(self.alpha)
        self._whitener_x = self._whitener_y = None
        width = max(S.x.width, S.y.width)
        if alpha != 1.0 and S.factor is not None:
            # the whole-data fit on rows standing in for the data about the fitted means
            A, B = S.factor_rows()
            self._whitener_x = self._moments_whitener(A, S.n, alpha)
            self._whitener_y = self._moments_whitener(B, S.n, alpha)
            self._fit_alignment(zero_pad(self._whiten(A, self._whitener_x), width),
                                zero_pad(self._whiten(B, self._whitener_y), width))
            return
        if alpha != 1.0:
            Mx, My = self._check_gram_route(S)
            self._whitener_x = self._moments_whitener(Mx, S.n, alpha)
            self._whitener_y = self._moments_whitener(My, S.n, alpha)
        C = pad2(self._whitened_moments(S)[2], width, width)
        self._rotation = _LinearMap(_closest_optimal_rotation(pow2_rescale(C.T))[0])

    def _distance_from_moments(self, S):
        if S.factor is not None and self._moments_factor:  # the whole-data distance, on rows
            return _distance(*self._align(*S.factor_rows()), self.score_method)
        if float(self.alpha) != 1.0:
            self._check_gram_route(S)
        return super()._distance_from_moments(S)

    def _aligned_products(self, S):
        Gx, Gy, C = self._whitened_moments(S)
        width = self.rotation_.shape[0]
        # <Xw, Yw Q> = tr(Xw'Yw Q); ||Yw Q|| = ||Yw||
        return np.trace(Gx), np.trace(Gy), float(np.sum(pad2(C, width, width) * self.rotation_.T))


@register("procrustes", aliases=("orthogonal_procrustes",))
class OrthogonalProcrustes(ShapeMetric):
    """Orthogonal Procrustes shape distance: :class:`ShapeMetric` with alpha = 1.

    Centre both representations (means learned in ``fit``), zero-pad the narrower, find the
    rotation Q minimising ||Xc - Yc Q||_F (Q = U V' from the SVD U S V' of Yc'Xc), then::

        angular:   arccos( ||Xc' Yc||_* / (||Xc||_F ||Yc||_F) )   in [0, pi/2]
        euclidean: ||Xc - Yc Q||_F = sqrt(||Xc||^2 + ||Yc||^2 - 2 ||Xc' Yc||_*)

    (||.||_* the nuclear norm; the closed forms hold on the fitting data: held-out stimuli,
    scored with the fitted means and Q, give angles up to pi, and ``bounds`` is [0, pi]). For
    d > n the rotation is found in the n-space (see :class:`ShapeMetric`). Williams et al. 2021;
    the angular form is Procrustes' shape distance of Kendall's shape space. A **distance** and a
    metric; invariant to orthogonal maps, permutations, sign flips and translations, and
    (angular) to isotropic scaling.

    Parameters
    ----------
    score_method : {"angular", "euclidean"}, default "angular"
    center_columns : bool, default True
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None

    Attributes
    ----------
    mean_x_, mean_y_ : ndarray
    rotation_ : ndarray, shape (d, d)
        Q, so that ``(Y - mean_y_) @ rotation_`` is aligned with ``X - mean_x_`` (padded).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 4))
    >>> Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    >>> metric = OrthogonalProcrustes().fit(X, X @ Q)
    >>> round(metric.score(X, X @ Q), 10), bool(np.allclose(metric.rotation_, Q.T))
    (0.0, True)
    """

    alpha = 1.0  # fixed: not a parameter of this class

    def __init__(self, score_method="angular", center_columns=True, layout=None):
        self.score_method = score_method
        self.center_columns = center_columns
        self.layout = layout


def _permutation_invariances(self):
    groups = {"permutation"}
    if self.center_columns:
        groups.add("translation")
    if self.score_method == "angular":
        groups.add("isotropic_scaling")
    return frozenset(groups)


@register("permutation_metric")
class PermutationMetric(_CenteredAlignment):
    """Shape distance with neuron permutations as the alignment group (netrep's
    ``PermutationMetric``; Williams et al. 2021).

    Centre (means learned in ``fit``), zero-pad the narrower representation to the common width
    d, and find the permutation pi maximising sum_i <Xc[:, i], Yc[:, pi(i)]> by
    ``scipy.optimize.linear_sum_assignment``; then, with Y' = Yc[:, pi]::

        angular:   arccos( <Xc, Y'>_F / (||Xc||_F ||Y'||_F) )   in [0, pi]
        euclidean: ||Xc - Y'||_F                                 (not divided by sqrt(n))

    (the angle can exceed pi/2 when even the best matching is anti-correlated). A
    **distance** and, for equal widths, a metric (Williams et al. 2021). Invariant to neuron
    permutations and translations, the angular form also to isotropic scaling; not to
    rotations.

    Zero-padding pairs the surplus neurons of the wider layer with silent neurons, and across
    different widths the triangle inequality can then fail (x -> [x/2, -x/2] -> -x is shorter
    than x -> -x); :class:`SoftMatching` is the principled alternative for different widths.

    Parameters
    ----------
    score_method : {"angular", "euclidean"}, default "angular"
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

    bounds = _angular_or_euclidean_bounds(np.pi)
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

    def _aligned_products(self, S):
        width = self.permutation_.size
        C = pad2(S.cross, width, width)
        return np.trace(S.x.gram), np.trace(S.y.gram), float(
            C[np.arange(width), self.permutation_].sum()
        )


@register("soft_matching")
class SoftMatching(_CenteredAlignment):
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

    def _distance_from_moments(self, S):
        # ||X' - Y'||^2 = sum_ij P_ij ||x_i - y_j||^2
        return float(np.sqrt(np.sum(self.plan_ * self._cost_from_moments(S))))
