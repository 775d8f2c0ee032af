"""Exact sufficient statistics (second moments) of representations, accumulated over batches.

Every linear metric (linear CKA biased and debiased, CCA, SVCCA, PWCCA, the shape metrics,
Procrustes, the permutation metric, IntertwinerProcrustes) depends on the data only through a few
sums over the rows. For a representation X (rows x_i) and a *shift* c (any fixed vector; the
statistics are exact for every c, and accurate when c is near the mean), write z_i = x_i - c and
k_i = ||z_i||^2. :class:`RepresentationMoments` holds::

    n                  the number of rows
    sum       = sum_i z_i                  (d,)
    gram      = sum_i z_i z_i'             (d, d)      Z'Z
    row_sq_sum   = sum_i k_i               ()          for the debiased HSIC only
    row_sq_sq    = sum_i k_i^2             ()          "
    row_sq_first = sum_i k_i z_i           (d,)        "     (Z'k)
    minimum, maximum                       (d,)        column extremes of x (zero-variance test)

and :class:`PairMoments` adds, for a second representation Y (w_i = y_i - e, l_i = ||w_i||^2)::

    cross     = sum_i z_i w_i'             (d_x, d_y)  Z'W
    row_cross = sum_i k_i l_i              ()          k'l
    x_row_y   = sum_i l_i z_i              (d_x,)      Z'l
    y_row_x   = sum_i k_i w_i              (d_y,)      W'k

These are all the unbiased HSIC of Song et al. 2012 needs in feature space (see
:func:`simmetrics.metrics.hsic.linear_hsic_unbiased_sums`), and X'X, Y'Y, X'Y, the column sums are all
the others need. Memory is O(d_x^2 + d_y^2 + d_x d_y) whatever the number of rows.

**Accuracy.** A batch's statistics are taken about the batch's own mean (so they are sums of
centred terms, never a raw sum of squares minus a large square). Two sets of statistics merge
(``a + b``) by moving both to their pooled mean and adding: the pairwise update of Chan, Golub
and LeVeque (1979), extended exactly to the row-norm terms by the polynomial identities of
:meth:`RepresentationMoments.shifted`. So the result does not depend on how large the means are,
and statistics computed by separate workers in any order add up to those of the whole data.

**Scale.** Squares and fourth powers of activations beyond about 1e+-77 over- or underflow
float64. A batch whose values are outside [2^-100, 2^100] (judged on its statistics, at no
extra pass for other batches) is therefore summarised after an exact power-of-two rescaling,
X * 2^-e with its largest entry in [0.5, 1), and ``exponent`` records e: every statistic
(sum, gram, shift and the row-norm terms) is that of X * 2^-exponent, while :attr:`mean`,
:meth:`shifted` and the column extremes speak in the data's units. Merging brings both sets
to the larger exponent (exact, up to contributions below 2^-1074 of the other set's).
Ordinary data keep exponent 0 and the same bits as without this.

**Conditioning.** X'X squares the condition number of the data: where one stimulus is 1e8
times the others, or a tight cluster sits beside a far outlier, the centred covariance has
directions below eps times its largest, which its rounding erases (the data's SVD still
resolves them). ``factor=True`` therefore also keeps :attr:`PairMoments.factor`, a matrix R
with R'R = [Xc Yc]'[Xc Yc] (the centred rows, or their Householder QR factor, merged by
stacking): it has the data's conditioning, and :meth:`PairMoments.factor_rows` turns it into
rows that stand in for the data. The metrics that whiten use it; without it they decompose the
Gram matrix only where :func:`gram_factor`'s bound says its digits suffice.

**torch.** Statistics of torch tensors are torch tensors on the input's device, in float64
whatever the input's dtype (float32/float16 batches are promoted on the device before the
products), so a GPU computes the O(n d^2) products; :meth:`to_numpy` brings the d x d results to
the CPU for the final decompositions.

**Where it is.** This module holds :class:`PairMoments`, the per-representation halves
(:class:`Side`, :func:`side`, :func:`pair_from_sides`), :func:`moments` and the exact
zero-variance tests. :class:`RepresentationMoments` and the summary of one batch are in
:mod:`simmetrics._core.representation_moments`, the factor, :func:`rows_svd` and
:func:`gram_factor` in :mod:`simmetrics._core.factor`, the validation of batches
(:func:`check_batch_pair`) in :mod:`simmetrics._core.validation`; every public name is
importable from here.
"""

import copy

import numpy as np

from ._core.backend import get_backend, like, to_numpy
from ._core.factor import (
    batch_factor,
    compact_factor,
    factor_columns,
    gram_factor,
    merged_factor,
    rows_svd,
    spectrum_from_gram,
)
from ._core.linalg import times_pow2
from ._core.validation import check_batch_pair
from ._core.representation_moments import (
    RepresentationMoments,
    both_numpy_or_same,
    pooled_shift,
    scaled,
    sum_aligned,
    summarise,
)

__all__ = [
    "RepresentationMoments",
    "PairMoments",
    "Side",
    "side",
    "pair_from_sides",
    "moments",
    "check_batch_pair",
    "check_nonconstant_array",
    "check_nonconstant_moments",
    "spectrum_from_gram",
    "gram_factor",
    "rows_svd",
    "compact_factor",
]


# -- zero variance, exactly ------------------------------------------------------------------------
def check_nonconstant_array(A, name):
    """:func:`simmetrics._core.validation.check_nonconstant` for a numpy array or a torch tensor
    (on its device): the same exact test (every column's range is zero) and message.

    Examples
    --------
    >>> check_nonconstant_array(np.ones((3, 2)), "X")
    Traceback (most recent call last):
    ...
    ValueError: X has zero variance: every neuron is constant across samples
    """
    nx = get_backend(A)
    if float((nx.colmax(A) - nx.colmin(A)).max()) == 0.0:
        raise ValueError(f"{name} has zero variance: every neuron is constant across samples")
    return A


def check_nonconstant_moments(rep, name):
    """Raise the package's zero-variance error if every column was constant over all batches
    (exact: from the recorded column extremes, as :func:`simmetrics._core.validation.
    check_nonconstant` does on the data).

    Examples
    --------
    >>> m = RepresentationMoments.from_array(np.ones((3, 2)))
    >>> check_nonconstant_moments(m, "Y")
    Traceback (most recent call last):
    ...
    ValueError: Y has zero variance: every neuron is constant across samples
    """
    if rep.minimum is None:
        return rep
    if float(np.max(to_numpy(rep.maximum) - to_numpy(rep.minimum))) == 0.0:
        raise ValueError(f"{name} has zero variance: every neuron is constant across samples")
    return rep


# -- a pair of representations ---------------------------------------------------------------
class PairMoments:
    """Exact sufficient statistics of two representations of the same stimuli.

    ``x`` and ``y`` are the :class:`RepresentationMoments` of X and Y; ``cross`` is Z'W and,
    with ``row_terms``, ``row_cross`` = k'l, ``x_row_y`` = Z'l, ``y_row_x`` = W'k (see the
    module text). Statistics of disjoint sets of rows add: ``a + b`` (or ``sum(parts)``) gives
    those of all the rows, whatever the order and however the rows were split, so batches and
    workers can be combined freely.

    With ``factor=True`` they also hold ``factor``, a square root of the joint centred Gram
    matrix (see :attr:`factor` and :meth:`factor_rows`), which the metrics that whiten need
    where the covariance itself cannot resolve the data.

    Attributes
    ----------
    factor : array (numpy or torch) or None
        A matrix R of at most d_x + d_y rows with R'R = [Xc Yc]'[Xc Yc], Xc, Yc the exactly
        centred X 2^-ex and Y 2^-ey (``exponents``): the centred rows of a batch of at most
        d_x + d_y rows, else the triangular factor of their Householder QR decomposition.
        Merging stacks the two factors and the row sqrt(n_a n_b / n) (mean_a - mean_b)' (the
        pooled centred Gram is Ra'Ra + Rb'Rb + n_a n_b / n (m_a - m_b)(m_a - m_b)', Chan et
        al.'s update), re-triangularised once more rows than columns are stacked (LAPACK's
        dtpqrt, O(rows d^2)). R = Q'[Xc Yc] for some Q with orthonormal columns, so R carries
        the data's singular values with the data's condition number, where Xc'Xc has its
        square: one stimulus 1e8 times the others, or a tight cluster beside a far outlier,
        leave directions whose variance is below eps times the largest, which X'X rounds away
        and R keeps (Golub and Van Loan, Matrix Computations, 4th ed., sections 5.3 and 6.5).
        None unless accumulated with ``factor=True``; the merge of statistics with and
        without it has none.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 4)) + 50.0
    >>> Y = X[:, :2] ** 2 + rng.normal(size=(300, 2))
    >>> parts = [PairMoments.from_arrays(X[i:i + 70], Y[i:i + 70]) for i in range(0, 300, 70)]
    >>> total = sum(parts).centred()
    >>> Xc, Yc = X - X.mean(axis=0), Y - Y.mean(axis=0)
    >>> bool(np.allclose(total.cross, Xc.T @ Yc, rtol=1e-12, atol=0)), total.n
    (True, 300)
    """

    def __init__(self, x, y, cross, row_cross=None, x_row_y=None, y_row_x=None, factor=None):
        self.x = x
        self.y = y
        self.cross = cross
        self.row_cross = row_cross
        self.x_row_y = x_row_y
        self.y_row_x = y_row_x
        self.factor = factor

    @classmethod
    def from_arrays(cls, X, Y, shift="mean", row_terms=False, extrema=True, rescale=True,
                    factor=False):
        """Statistics of two validated float64 matrices with the same rows (numpy or torch).

        Parameters
        ----------
        X, Y : numpy.ndarray or torch.Tensor, float64, shapes (n, d_x) and (n, d_y)
        shift : "mean", 0 or (array, array), default "mean"
            See :meth:`RepresentationMoments.from_array`; a pair gives the two shifts.
        row_terms : bool, default False
            Also accumulate the row-norm terms of the debiased HSIC.
        extrema : bool, default True
        rescale : bool, default True
            Rescale values outside [2^-100, 2^100] by exact powers of two (one ``exponent`` per
            representation; see the module text).
        factor : bool, default False
            Also keep :attr:`factor`, a square root of the joint centred Gram matrix (a QR
            decomposition of the centred batch: 2 to 4 times the time of the other products).

        See Also
        --------
        side, pair_from_sides : the same statistics in two steps, the first per representation
            (so that many pairs of the same layers compute only their cross terms).
        """
        sx, sy = shift if isinstance(shift, tuple) else (shift, shift)
        return pair_from_sides(side(X, sx, row_terms, extrema, rescale),
                               side(Y, sy, row_terms, extrema, rescale), factor=factor)

    @property
    def n(self):
        return self.x.n

    @property
    def has_row_terms(self):
        return self.row_cross is not None and self.x.has_row_terms and self.y.has_row_terms

    def to_numpy(self):
        """The same statistics as numpy float64 arrays."""
        return type(self)(self.x.to_numpy(), self.y.to_numpy(), to_numpy(self.cross),
                          to_numpy(self.row_cross), to_numpy(self.x_row_y), to_numpy(self.y_row_x),
                          to_numpy(self.factor))

    def factor_rows(self, centred=False):
        """Rows standing in for the data: numpy matrices (A, B) with the same rows (at most
        d_x + d_y + 1) and [A B] = Q'[X_s - 1 c_x', Y_s - 1 c_y'] for some Q with orthonormal
        columns, where X_s = X 2^-ex, Y_s = Y 2^-ey (``exponents``) and c the statistics'
        shifts (:meth:`shifted` moves them; ``centred=True``: about the means).

        Everything that depends on the data only through inner products of its columns (X'X,
        X'Y, the singular values and right singular vectors, orthonormal bases up to a
        rotation of the rows, Frobenius distances of maps of the columns) is the same for
        (A, B) as for the data, so the whole-data estimators run on them unchanged, with the
        data's conditioning. With M the :attr:`factor` (the centred rows), A and B are its
        column blocks followed, unless ``centred``, by the row sum' / sqrt(n) =
        sqrt(n) (mean - shift)' (Xs - 1 c' = Xc + 1 (mean - c)', and 1 is orthogonal to the
        centred columns).

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> X, Y = rng.normal(size=(30, 3)) + 5.0, rng.normal(size=(30, 2))
        >>> S = PairMoments.from_arrays(X, Y, factor=True).shifted(np.zeros(3), np.zeros(2))
        >>> A, B = S.factor_rows()
        >>> A.shape[0] <= 6, bool(np.allclose(A.T @ B, X.T @ Y, rtol=1e-12, atol=1e-12))
        (True, True)
        """
        if self.factor is None:
            raise ValueError(
                "these statistics hold no factor: accumulate them with factor=True "
                "(stream_score does for the metrics that need it)"
            )
        R = to_numpy(self.factor)
        A, B = R[:, : self.x.width], R[:, self.x.width:]
        if not centred:
            root = np.sqrt(self.n)
            row_x, row_y = to_numpy(self.x.sum) / root, to_numpy(self.y.sum) / root
            if row_x.any() or row_y.any():
                A, B = np.vstack([A, row_x[None, :]]), np.vstack([B, row_y[None, :]])
        return A, B

    def shifted(self, shift_x, shift_y):
        """The statistics about other shifts (exact identities; see
        :meth:`RepresentationMoments.shifted`). With delta, epsilon the changes of z and w::

            cross' = cross + sum_z eps' + delta sum_w' + n delta eps'
            k'l'   = k'l + 2 eps'W'k + |eps|^2 sum k + 2 delta'Z'l + 4 delta'cross eps
                     + 2 |eps|^2 delta'sum_z + |delta|^2 sum l + 2 |delta|^2 eps'sum_w
                     + n |delta|^2 |eps|^2
            Z''l'  = Z'l + 2 cross eps + |eps|^2 sum_z + (sum l + 2 eps'sum_w + n |eps|^2) delta
        """
        shift_x = scaled(like(shift_x, self.cross), self.x.exponent)
        shift_y = scaled(like(shift_y, self.cross), self.y.exponent)
        return self._moved(self.x.shift - shift_x, shift_x, self.y.shift - shift_y, shift_y)

    @property
    def exponents(self):
        """(x.exponent, y.exponent): the statistics are those of (X 2^-ex, Y 2^-ey)."""
        return self.x.exponent, self.y.exponent

    def at_exponents(self, ex, ey):
        """The same statistics kept at other exponents (see
        :meth:`RepresentationMoments.at_exponent`; the cross terms have degree (1, 1), k'l
        (2, 2), Z'l (1, 2) and W'k (2, 1) in (X, Y))."""
        kx, ky = self.x.exponent - int(ex), self.y.exponent - int(ey)
        if kx == 0 and ky == 0:
            return self
        out = type(self)(self.x.at_exponent(ex), self.y.at_exponent(ey),
                         times_pow2(self.cross, kx + ky),
                         factor=factor_columns(self.factor, self.x.width,
                                                lambda F: times_pow2(F, kx),
                                                lambda F: times_pow2(F, ky)))
        if self.has_row_terms:
            out.row_cross = times_pow2(self.row_cross, 2 * kx + 2 * ky)
            out.x_row_y = times_pow2(self.x_row_y, kx + 2 * ky)
            out.y_row_x = times_pow2(self.y_row_x, 2 * kx + ky)
        return out

    def _moved(self, delta, shift_x, eps, shift_y):
        n, C = self.n, self.cross
        s, t = self.x.sum, self.y.sum
        out = type(self)(
            self.x._moved(delta, shift_x),
            self.y._moved(eps, shift_y),
            C + (s + n * delta)[:, None] * eps[None, :] + delta[:, None] * t[None, :],
            factor=self.factor,  # of the centred data: no shift changes it
        )
        if self.has_row_terms:
            dd, ee = delta @ delta, eps @ eps
            ds, et = delta @ s, eps @ t
            q1x, q1y = self.x.row_sq_sum, self.y.row_sq_sum
            Ce = C @ eps
            Ctd = C.T @ delta
            out.row_cross = (self.row_cross + 2.0 * (eps @ self.y_row_x) + ee * q1x
                             + 2.0 * (delta @ self.x_row_y) + 4.0 * (delta @ Ce)
                             + 2.0 * ee * ds + dd * q1y + 2.0 * dd * et + n * dd * ee)
            out.x_row_y = self.x_row_y + 2.0 * Ce + ee * s + (q1y + 2.0 * et + n * ee) * delta
            out.y_row_x = self.y_row_x + 2.0 * Ctd + dd * t + (q1x + 2.0 * ds + n * dd) * eps
        return out

    def centred(self):
        """The statistics about the exact column means of X and Y (see
        :meth:`RepresentationMoments.centred`)."""
        dx, dy = -self.x.sum / self.n, -self.y.sum / self.n
        return self._moved(dx, self.x.shift + dx, dy, self.y.shift + dy)

    def scaled(self, a, b):
        """The statistics of ``(a X, b Y)`` (a, b > 0)."""
        a, b = float(a), float(b)
        out = type(self)(self.x.scaled(a), self.y.scaled(b), self.cross * (a * b),
                         factor=factor_columns(self.factor, self.x.width, lambda F: F * a,
                                                lambda F: F * b))
        if self.has_row_terms:
            out.row_cross = self.row_cross * (a * a * b * b)
            out.x_row_y = self.x_row_y * (a * b * b)
            out.y_row_x = self.y_row_x * (b * a * a)
        return out

    def swapped(self):
        """The statistics of (Y, X)."""
        C, R, dx = self.cross, self.factor, self.x.width
        if R is not None:  # the columns of [Y X]: R'R permuted alike (R need not be triangular)
            R = get_backend(R).concat((R[:, dx:], R[:, :dx]), axis=1)
        return type(self)(self.y, self.x, C.T, self.row_cross, self.y_row_x, self.x_row_y, R)

    def merge(self, other):
        """Statistics of the rows of both (see :class:`RepresentationMoments`)."""
        if not isinstance(other, PairMoments):
            return NotImplemented
        a, b = self, other
        if (a.x.width, a.y.width) != (b.x.width, b.y.width):
            raise ValueError(
                f"cannot merge statistics of widths {(a.x.width, a.y.width)} and "
                f"{(b.x.width, b.y.width)}"
            )
        a, b = both_numpy_or_same(a, b, "cross")
        ex, ey = max(a.x.exponent, b.x.exponent), max(a.y.exponent, b.y.exponent)
        a, b = a.at_exponents(ex, ey), b.at_exponents(ex, ey)
        sx, sy = pooled_shift(a.x, b.x), pooled_shift(a.y, b.y)
        a = a._moved(a.x.shift - sx, sx, a.y.shift - sy, sy)
        b = b._moved(b.x.shift - sx, sx, b.y.shift - sy, sy)
        out = type(self)(sum_aligned(a.x, b.x), sum_aligned(a.y, b.y), a.cross + b.cross)
        if a.has_row_terms and b.has_row_terms:
            out.row_cross = a.row_cross + b.row_cross
            out.x_row_y = a.x_row_y + b.x_row_y
            out.y_row_x = a.y_row_x + b.y_row_x
        if a.factor is not None and b.factor is not None:
            # both about the pooled shift now: the difference of the means is that of the sums
            weight = float(np.sqrt(a.n * b.n / (a.n + b.n)))
            gap = get_backend(a.factor).concat(((a.x.sum / a.n - b.x.sum / b.n)[None, :],
                                                (a.y.sum / a.n - b.y.sum / b.n)[None, :]), axis=1)
            out.factor = merged_factor(a.factor, b.factor, weight * gap)
        return out

    def __add__(self, other):
        if isinstance(other, (int, float)) and other == 0:  # sum([]) is 0
            return self
        return self.merge(other)

    def __radd__(self, other):
        if isinstance(other, (int, float)) and other == 0:
            return self
        return NotImplemented

    def __repr__(self):
        scale = f", exponents={self.exponents}" if any(self.exponents) else ""
        return (f"PairMoments(n={self.n}, widths=({self.x.width}, {self.y.width}), "
                f"row_terms={self.has_row_terms}{scale})")


class Side:
    """One representation's half of :class:`PairMoments`: the shifted data, its
    :class:`RepresentationMoments` and its row norms, computed once and reused for every pair
    it is part of (:func:`pair_from_sides` adds only the cross terms).

    Attributes
    ----------
    data : array (numpy or torch), shape (n, d)
        Z = X - shift (X itself for shift 0: no copy).
    moments : RepresentationMoments
        Without ``row_sq_first`` (Z'k), which :func:`pair_from_sides` computes together with
        the cross term Z'l in one pass over Z.
    row_sq : array or None
        k_i = ||z_i||^2 (with ``row_terms`` only).
    """

    __slots__ = ("data", "moments", "row_sq")

    def __init__(self, data, moments, row_sq):
        self.data = data
        self.moments = moments
        self.row_sq = row_sq

    @property
    def has_row_terms(self):
        return self.row_sq is not None

    def to_numpy(self):
        """The same side with numpy float64 arrays (torch tensors copied to the CPU)."""
        return Side(to_numpy(self.data), self.moments.to_numpy(), to_numpy(self.row_sq))


def side(X, shift="mean", row_terms=False, extrema=True, rescale=False):
    """The per-representation part of the statistics of X (see :class:`Side`).

    Parameters are those of :meth:`RepresentationMoments.from_array` (here ``rescale`` is off
    by default: whole-data callers such as :func:`simmetrics.metrics.cka.linear_cka` check the range
    themselves; ``data`` is then X * 2^-exponent, less the shift).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> layers = [rng.normal(size=(50, w)) for w in (3, 4, 2)]
    >>> sides = [side(A, row_terms=True) for A in layers]   # once per layer
    >>> S = pair_from_sides(sides[0], sides[2])               # then only the cross terms
    >>> bool(np.allclose(S.centred().cross, PairMoments.from_arrays(*layers[::2]).centred().cross))
    True
    """
    m, Z, k = summarise(X, shift, row_terms, extrema, rescale, first=False)
    return Side(Z, m, k)


def pair_from_sides(a, b, factor=False):
    """:class:`PairMoments` of two representations of the same rows from the :class:`Side` of
    each: the cross product Z'W and, where both sides have row norms, the row-norm terms k'l,
    Z'l, W'k (with Z'k and W'l, computed in the same pass). The sides are not
    modified, so one side can serve any number of pairs. ``factor=True`` adds
    :attr:`PairMoments.factor` (from the centred [Z W]: the rows themselves when there are at
    most d_x + d_y of them, else the R of their QR decomposition); ``factor="rows"`` keeps
    the centred rows however many, for a merge that follows at once (the merge into a
    triangle then takes one pass over them, not two)."""
    Z, W = a.data, b.data
    if Z.shape[0] != W.shape[0]:
        raise ValueError(f"the sides hold {Z.shape[0]} and {W.shape[0]} rows")
    if get_backend(Z) != get_backend(W):
        a, b = a.to_numpy(), b.to_numpy()  # different devices: meet on the CPU
        Z, W = a.data, b.data
    nx = get_backend(Z)
    out = PairMoments(copy.copy(a.moments), copy.copy(b.moments), Z.T @ W)
    if factor:
        out.factor = batch_factor(nx.concat((Z, W), axis=1), compact=factor != "rows")
    if a.has_row_terms and b.has_row_terms:
        k, l = a.row_sq, b.row_sq
        out.row_cross = k @ l
        kl = nx.stack((k, l), axis=1)
        # one pass over each matrix gives both of its row-norm products: Z'[k l], W'[k l]
        for rep, A, own, name in ((out.x, Z, 0, "x_row_y"), (out.y, W, 1, "y_row_x")):
            both = A.T @ kl
            rep.row_sq_first = both[:, own]
            setattr(out, name, both[:, 1 - own])
    return out


def moments(X, Y, layout=None, row_terms=True, factor=False):
    """The :class:`PairMoments` of one batch of representations, validated first.

    Parameters
    ----------
    X, Y : array-like or torch.Tensor
        Activations of the same stimuli, (n, d) or with ``layout``; torch tensors stay on
        their device (statistics in float64 there).
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}
    row_terms : bool, default True
        Include the row-norm terms the debiased HSIC needs.
    factor : bool, default False
        Include :attr:`PairMoments.factor`, which the metrics that whiten (the CCA family, the
        whitening shape metrics, the identity group of IntertwinerProcrustes) need on data
        whose covariance float64 cannot resolve (a dominant stimulus, a cluster beside an
        outlier); 2 to 4 times the time of the other products. Without it those metrics
        refuse such data, saying so (:func:`gram_factor`); they never return a wrong value.

    Returns
    -------
    PairMoments
        Add those of separate batches or workers with ``+``; score them with
        :func:`simmetrics.score_from_moments`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 3))
    >>> m = moments(X[:20], X[:20]) + moments(X[20:], X[20:])
    >>> m.n, bool(np.allclose(m.centred().cross, np.cov(X.T) * 49))
    (50, True)
    """
    A, B = check_batch_pair(X, Y, layout=layout, min_samples=1)
    return PairMoments.from_arrays(A, B, row_terms=row_terms, factor=factor)
