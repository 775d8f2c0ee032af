"""The pure functions of G_sigma-Procrustes (:class:`simmetrics.IntertwinerProcrustes`).

- :func:`optimal_signed_permutation` and :func:`signed_assignment_from_cross`: the best signed
  permutation, by linear assignment on |A'B|;
- :func:`column_squares`, :func:`reciprocal`, :func:`unit_rms_columns`, :func:`folded`: the
  per-neuron scales, computed on columns rescaled by exact powers of two (no over- or
  underflow at 1e300 or 1e-300) and kept with their exponent where float64 cannot hold them;
- :func:`fitted_centring`: two-pass centring that keeps constant neurons exactly silent;
- :func:`silent_pairs_in_order` and :func:`rematch_undetermined`: what the training stimuli
  leave undetermined (pairs with a silent neuron), fixed in ``fit`` and re-solved in ``score``;
- :func:`whitening_map`: the identity group's canonicalising map; :func:`pad1`,
  :func:`at_level`, :func:`level_map`: the fitted maps at the power-of-two level of streamed
  statistics.
"""

import numpy as np
from scipy.optimize import linear_sum_assignment

from .._core.linalg import center, times_pow2
from .._core.solvers import cross_in_range

__all__ = ["optimal_signed_permutation"]


def optimal_signed_permutation(A, B):
    """The signed permutation (perm, signs) maximising sum_i signs[i] <A[:, i], B[:, perm[i]]>,
    i.e. minimising ||A - B[:, perm] * signs||_F over signed permutations.

    For a fixed permutation the best sign of each pair is the sign of its inner product, which
    turns the pair's term into |<A[:, i], B[:, j]>|; so the optimum is the linear assignment
    maximising sum_i |C_{i, perm(i)}| with C = A'B (exact, by
    ``scipy.optimize.linear_sum_assignment``), with signs[i] = sign(C_{i, perm(i)}) (+1 for 0).
    ``A`` and ``B`` must have the same width.

    Returns
    -------
    perm : ndarray of int, shape (n,)
    signs : ndarray of float, shape (n,)

    Examples
    --------
    >>> A = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    >>> perm, signs = optimal_signed_permutation(A, -A[:, [2, 0, 1]])
    >>> perm.tolist(), signs.tolist()
    ([1, 2, 0], [-1.0, -1.0, -1.0])
    """
    return signed_assignment_from_cross(cross_in_range(A, B))


def signed_assignment_from_cross(C):
    """:func:`optimal_signed_permutation` from the cross-product C = A'B."""
    rows, cols = linear_sum_assignment(np.abs(C), maximize=True)
    perm = np.empty(C.shape[0], dtype=np.intp)
    perm[rows] = cols
    signs = np.where(C[np.arange(C.shape[0]), perm] < 0.0, -1.0, 1.0)
    return perm, signs


def column_squares(X):
    """(sum of squares of every column of 2**-e X, e): each column scaled by the power of two
    that brings its largest magnitude into [0.5, 1) (exact), so the squares neither overflow
    nor underflow at 1e300 or 1e-300."""
    top = np.max(np.abs(X), axis=0) if X.shape[0] else np.zeros(X.shape[1])
    e = np.where(top > 0.0, np.frexp(top)[1], 0)
    scaled = np.ldexp(X, -e[None, :])
    return np.einsum("ij,ij->j", scaled, scaled), e


def plain_column_squares(X):
    """The sum of squares of every column of X, taken on X as it is (no rescaled copy), or
    None where that could lose digits: a sum above 2^1000 (an overflow is near) or below
    2^-900 (an underflow is near), or a zero one of a column that is not all zero. Where it is
    not None it is :func:`column_squares`'s (squares, e) as squares * 4^e, bit for bit
    (products and sums commute with exact power-of-two scalings)."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        sq = np.einsum("ij,ij->j", X, X)
    live = sq > 0.0
    if not (np.all(sq[live] >= 2.0**-900) and np.all(sq <= 2.0**1000)):
        return None  # NaN-free inputs: a NaN or inf square also fails the test
    if not live.all() and X[:, ~live].any():
        return None
    return sq


def reciprocal(s):
    """1 / s, with 0 where s == 0 (silent neurons stay silent)."""
    out = np.zeros_like(s)
    np.divide(1.0, s, out=out, where=s > 0.0)
    return out


def unit_rms_columns(X):
    """Every column of X divided by its root mean square (all-zero columns stay 0), on
    power-of-two rescaled columns (exact), so subnormal and 1e300 columns are normalised
    without overflow or underflow."""
    squares, e = column_squares(X)
    return np.ldexp(X, -e[None, :]) * reciprocal(np.sqrt(squares / X.shape[0]))


def folded(W, e):
    """(W 2**-e, 0) where that product is a finite float with no subnormal entry, else (W, e):
    the canonicalising map X -> (X 2**-e) W in true units when float64 can hold it (every
    data set but subnormal-scale ones), per column for a vector ``e``."""
    with np.errstate(over="ignore", under="ignore"):
        folded = np.ldexp(W, -e)
    tiny = np.finfo(np.float64).tiny
    ok = np.isfinite(folded) & ((folded == 0.0) | (np.abs(folded) >= tiny)) \
        & ((W == 0.0) | (folded != 0.0))
    if np.ndim(e) == 0:
        return (folded, 0) if ok.all() else (W, int(e))
    ok = ok if ok.ndim == 1 else ok.all(axis=0)
    return np.where(ok, folded, W), np.where(ok, 0, e)


def fitted_centring(X):
    """(X - mean, mean) by two-pass centring (:func:`simmetrics._core.linalg.center`); a neuron that
    is constant on X gets that constant as its mean and an exactly zero centred column, so it
    is silent and stays exactly 0 on held-out stimuli at the same constant (no rounding
    residue of the mean for a normalisation to blow up)."""
    constant = np.ptp(X, axis=0) == 0.0
    mean = X.mean(axis=0)
    mean[constant] = X[0, constant]
    Xc = center(X)
    Xc[:, constant] = 0.0
    return Xc, mean


def silent_pairs_in_order(perm, signs, silent_x, silent_y):
    """The matching with every pair of neurons silent on both sides re-paired in index order
    (the training stimuli say nothing about their correspondence; the objective is unchanged,
    their terms are 0) and given sign +1."""
    rows = np.flatnonzero(silent_x & silent_y[perm])
    perm, signs = perm.copy(), signs.copy()
    perm[rows] = np.sort(perm[rows])
    signs[rows] = 1.0
    return perm, signs


def rematch_undetermined(cross, perm, signs, silent_x, silent_y, signed):
    """The fitted matching with the pairs the training stimuli leave undetermined re-solved on
    held-out canonical forms A, B, given as ``cross(rows, cols)``, the block A[:, rows]'
    B[:, cols] of their cross-product (from the data, or from second moments).

    A pair with a neuron silent on the training stimuli contributes 0 to the fitted
    objective, so every re-pairing of the rows ``U = {i : silent_x[i] or silent_y[perm[i]]}``
    with their partners ``perm[U]`` that keeps a silent member in every pair (and every sign
    of such a pair) is as good on the training stimuli. Among those, the one maximising
    sum_i s_i <A[:, i], B[:, pi(i)]> on A, B (linear assignment; |.| and s_i = sign for signed
    groups)."""
    rows = np.flatnonzero(silent_x | silent_y[perm])
    if rows.size == 0:
        return perm, signs
    cols = perm[rows]
    C = cross(rows, cols)
    gain = np.abs(C) if signed else C
    allowed = silent_x[rows][:, None] | silent_y[cols][None, :]
    r, c = linear_sum_assignment(np.where(allowed, gain, -np.inf), maximize=True)
    perm, signs = perm.copy(), signs.copy()
    perm[rows[r]] = cols[c]
    if signed:
        signs[rows[r]] = np.where(C[r, c] < 0.0, -1.0, 1.0)
    return perm, signs

def pad1(v, width):
    """v with zeros appended up to ``width``."""
    out = np.zeros(width)
    out[: v.shape[0]] = v
    return out


def at_level(v, k):
    """v 2^k (exact unless it over- or underflows)."""
    return v if k == 0 else times_pow2(np.asarray(v, dtype=np.float64), k)


def level_map(W, e, level):
    """A fitted map (W, e) (c(X) = (X 2^-e) W, e a scalar or one per neuron) at the level of
    statistics of X_s = X 2^-level, as (W', k) with c(X) = X_s W' 2^k and max |W'| in
    [0.5, 1): X_s 2^(level - e) W, the powers of two gathered into one exponent k, so that
    neither W' nor X_s W' overflows whatever the level."""
    with np.errstate(divide="ignore"):
        mant, ew = np.frexp(W)
    shift = np.asarray(level - np.asarray(e), dtype=np.int64)
    if W.ndim == 2:
        shift = np.broadcast_to(shift, (W.shape[0],))[:, None] if shift.ndim else shift
    total = ew + shift
    live = W != 0.0
    if not live.any():
        return W, 0
    k = int(total[live].max())
    return np.where(live, np.ldexp(mant, np.maximum(total - k, -1100)), 0.0), k


def whitening_map(s, Vt, m):
    """The identity group's canonicalising map V S^(-1) sqrt(m): c(X) = X V S^-1 sqrt(m) is
    sqrt(m) times an orthonormal basis of X's column space (m rows)."""
    return Vt.T * (np.sqrt(m) / s)
