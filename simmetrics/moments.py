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
"""

import copy

import numpy as np

from ._core.backend import is_tensor, like, tensor_from_numpy, to_numpy
from ._core.linalg import abs_max, times_pow2
from ._core.validation import (
    LAYOUTS,
    as_float_array,
    check_matching_shapes,
    check_pair,
    check_representation,
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
]

_EXPECTED_NDIM = {"nchw": 4, "nhwc": 4, "ntd": 3}


# -- array backend: numpy arrays or torch tensors, one code path ---------------------------
def _row_sq(Z):
    """k_i = ||z_i||^2 for every row."""
    if is_tensor(Z):
        import torch

        return torch.einsum("ij,ij->i", Z, Z)
    return np.einsum("ij,ij->i", Z, Z)


def _columns(u, v):
    """The (n, 2) matrix [u v]."""
    if is_tensor(u):
        import torch

        return torch.stack((u, v), dim=1)
    return np.stack((u, v), axis=1)


def _colmin(A):
    return A.amin(0) if is_tensor(A) else A.min(axis=0)


def _colmax(A):
    return A.amax(0) if is_tensor(A) else A.max(axis=0)


# -- batch validation: numpy through the package's check_pair, torch kept on its device ------
def _torch_matrix(A, name, layout, min_samples):
    """A validated float64 (n, d) torch tensor on ``A``'s device. Only the accepting path is
    device-specific: whenever something is wrong, the tensor goes through the package's
    :func:`simmetrics._core.validation.check_representation`, which raises the standard message."""
    import torch

    given = A
    good = (
        isinstance(A, torch.Tensor)
        and A.layout == torch.strided
        and not A.is_complex()
        and A.dtype != torch.bool
        and A.device.type != "meta"  # a shape without values
        and (layout is None or layout in LAYOUTS)
    )
    if good:
        A = A.detach()
        want = 2 if layout is None else _EXPECTED_NDIM.get(layout)
        good = (A.ndim == want) if want is not None else A.ndim >= 2
    if good:
        if layout == "flatten":
            A = A.reshape(A.shape[0], -1)
        elif layout is not None:
            if layout == "nchw":
                A = torch.movedim(A, 1, -1)
            A = A.reshape(-1, A.shape[-1])
        n, d = A.shape
        good = n >= max(min_samples, 1) and d >= 1
        if good:
            A = A.to(torch.float64)
            good = bool(torch.isfinite(A).all())
    if not good:
        # raises the package's message for this input (as given, before any reshaping)
        check_representation(given, name, layout=layout, min_samples=min_samples)
        raise AssertionError(f"{name} was rejected on its device but accepted on the CPU")
    return A


def check_batch_pair(X, Y, layout=None, min_samples=1, same_width=False):
    """Validate one batch (X, Y): numpy input through :func:`simmetrics._core.validation.check_pair`
    (float64 numpy matrices), torch input kept as float64 tensors on the tensor's device (a
    numpy partner is moved there). Errors carry the package's standard messages.

    Examples
    --------
    >>> X, Y = check_batch_pair(np.ones((2, 3, 2, 2)), np.zeros((2, 3, 2, 2)), layout="nchw")
    >>> X.shape, X.dtype
    ((8, 3), dtype('float64'))
    """
    if not (is_tensor(X) or is_tensor(Y)):
        return check_pair(X, Y, layout=layout, min_samples=min_samples, same_width=same_width)
    import torch

    device = (X if is_tensor(X) else Y).device
    out = []
    for name, A in (("X", X), ("Y", Y)):
        if not is_tensor(A):  # read as it is (layout and checks below, on the device)
            A = tensor_from_numpy(as_float_array(A, name)).to(device)
        out.append(_torch_matrix(A, name, layout, min_samples))
    A, B = out
    check_matching_shapes(tuple(A.shape), tuple(B.shape), same_width)
    return A, B


# -- one representation ----------------------------------------------------------------------
class RepresentationMoments:
    """Exact sufficient statistics of one representation about a shift (see the module text).

    Build with :meth:`from_array`; combine with ``+`` (or :meth:`merge`); read the centred
    quantities with :attr:`mean` and :meth:`centred`. The per-representation part of
    :class:`PairMoments`, so that one layer's statistics can be reused across many pairs.

    Attributes
    ----------
    n : int
    shift, sum, gram : array (numpy or torch)
        Those of X * 2^-exponent (see the module text).
    minimum, maximum : array or None
        Column extremes of X itself (not rescaled).
    row_sq_sum, row_sq_sq, row_sq_first : array or None
        The row-norm terms (only with ``row_terms=True``), of X * 2^-exponent.
    exponent : int
        0 unless the values needed an exact power-of-two rescaling (module text).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 3)) + 1e6          # a large mean costs no digits
    >>> m = RepresentationMoments.from_array(X[:40]) + RepresentationMoments.from_array(X[40:])
    >>> Xc = X - X.mean(axis=0)
    >>> bool(np.allclose(m.centred().gram, Xc.T @ Xc, rtol=1e-12, atol=0))
    True
    """

    def __init__(self, n, shift, sum, gram, minimum=None, maximum=None, row_sq_sum=None,
                 row_sq_sq=None, row_sq_first=None, exponent=0):
        self.exponent = int(exponent)
        self.n = int(n)
        self.shift = shift
        self.sum = sum
        self.gram = gram
        self.minimum = minimum
        self.maximum = maximum
        self.row_sq_sum = row_sq_sum
        self.row_sq_sq = row_sq_sq
        self.row_sq_first = row_sq_first

    @classmethod
    def _from_shifted(cls, X, Z, shift, row_terms, extrema, first=True):
        """Statistics of Z = X - shift, and k; ``first=False`` leaves Z'k to the caller (who
        computes it together with Z'l in one pass)."""
        k = _row_sq(Z) if row_terms else None
        return cls(
            X.shape[0],
            shift,
            Z.sum(0),
            Z.T @ Z,  # numpy detects Z'Z and uses a symmetric rank-k update (half the flops)
            _colmin(X) if extrema else None,
            _colmax(X) if extrema else None,
            k.sum() if row_terms else None,
            (k @ k) if row_terms else None,
            (Z.T @ k) if row_terms and first else None,
        ), k

    @classmethod
    def from_array(cls, X, shift="mean", row_terms=False, extrema=True, rescale=True):
        """Statistics of a validated float64 matrix (numpy array or torch tensor), shape (n, d).

        Parameters
        ----------
        X : numpy.ndarray or torch.Tensor, float64, shape (n, d)
        shift : "mean", 0 or array of shape (d,), default "mean"
            About what to take the sums: the column mean of ``X`` (the accurate choice), zero
            (no copy of ``X``; for data already centred), or a given vector.
        row_terms : bool, default False
            Also accumulate the row-norm terms the debiased HSIC needs.
        extrema : bool, default True
            Also record the column minima and maxima (used for the exact zero-variance test).
        rescale : bool, default True
            Rescale values outside [2^-100, 2^100] by an exact power of two (``exponent``;
            see the module text) so that no square or fourth power over- or underflows.
        """
        return _summarise(X, shift, row_terms, extrema, rescale, first=True)[0]

    # -- derived quantities --------------------------------------------------------------
    @property
    def width(self):
        return int(self.gram.shape[0])

    @property
    def has_row_terms(self):
        return self.row_sq_sum is not None

    @property
    def mean(self):
        """The column means of the data (in the data's units, whatever ``exponent``)."""
        return _unscaled(self._mean, self.exponent)

    @property
    def _mean(self):
        """The column means of X * 2^-exponent (the level the statistics are kept at)."""
        return self.shift + self.sum / self.n

    def to_numpy(self):
        """The same statistics as numpy float64 arrays (torch tensors are copied to the CPU)."""
        return type(self)(self.n, *(to_numpy(getattr(self, f)) for f in _REP_FIELDS),
                          exponent=self.exponent)

    def at_exponent(self, exponent):
        """The same statistics kept at another ``exponent`` (of X * 2^-exponent): each is
        multiplied by the power of two of its degree (1 for sum and shift, 2 for gram and the
        sum of squared norms, 3 for Z'k, 4 for sum k^2), exact unless it over- or underflows
        (then inf, or contributions below 2^-1074 are lost)."""
        k = self.exponent - int(exponent)
        if k == 0:
            return self
        new = type(self)(self.n, times_pow2(self.shift, k), times_pow2(self.sum, k),
                         times_pow2(self.gram, 2 * k), self.minimum, self.maximum,
                         exponent=exponent)
        if self.has_row_terms:
            new.row_sq_sum = times_pow2(self.row_sq_sum, 2 * k)
            new.row_sq_sq = times_pow2(self.row_sq_sq, 4 * k)
            new.row_sq_first = None if self.row_sq_first is None else times_pow2(
                self.row_sq_first, 3 * k)
        return new

    def shifted(self, shift):
        """The same data's statistics about another shift (exact identities, O(d^2)); the
        shift is in the data's units (it is rescaled by 2^-exponent, exactly).

        With z' = z + delta, delta = old shift - new shift, and k' = k + 2 delta'z + |delta|^2::

            sum'  = sum + n delta
            gram' = gram + sum delta' + delta sum' + n delta delta'
            sum k'   = sum k + 2 delta'sum + n |delta|^2
            sum k'^2 = sum k^2 + 4 delta'Z'k + 2 |delta|^2 sum k + 4 delta'gram delta
                       + 4 |delta|^2 delta'sum + n |delta|^4
            Z''k' = Z'k + 2 gram delta + |delta|^2 sum + delta sum k + 2 delta (delta'sum)
                    + n |delta|^2 delta
        """
        shift = _scaled(like(shift, self.gram), self.exponent)
        delta = self.shift - shift
        return self._moved(delta, shift)

    def _moved(self, delta, shift):
        n, s, G = self.n, self.sum, self.gram
        dd = delta @ delta
        ds = delta @ s
        # s delta' + delta s' + n delta delta' = u delta' + delta u' with u = s + n delta / 2:
        # two rank-one terms, the fewest passes over the d x d matrix
        u = s + (0.5 * n) * delta
        new = type(self)(
            n,
            shift,
            s + n * delta,
            G + u[:, None] * delta[None, :] + delta[:, None] * u[None, :],
            self.minimum,
            self.maximum,
            exponent=self.exponent,
        )
        if self.has_row_terms:
            q1, q2, zk = self.row_sq_sum, self.row_sq_sq, self.row_sq_first
            Gd = G @ delta
            new.row_sq_sum = q1 + 2.0 * ds + n * dd
            new.row_sq_sq = (q2 + 4.0 * (delta @ zk) + 2.0 * dd * q1 + 4.0 * (delta @ Gd)
                             + 4.0 * dd * ds + n * dd * dd)
            new.row_sq_first = zk + 2.0 * Gd + dd * s + (q1 + 2.0 * ds + n * dd) * delta
        return new

    def centred(self):
        """The statistics about the exact column means (``sum`` is then zero up to rounding).

        The move is delta = -sum / n, applied exactly by the identities of :meth:`shifted`;
        the mean itself need not be representable (a mean of 1e8 is only known to 1.5e-8 as a
        float, which against a spread of 1e-4 would leave an offset): ``shift`` becomes the
        nearest float to it, a label that the statistics no longer depend on.
        """
        delta = -self.sum / self.n
        return self._moved(delta, self.shift + delta)

    def scaled(self, a):
        """The statistics of ``a * X`` (a > 0)."""
        a = float(a)
        new = type(self)(self.n, self.shift * a, self.sum * a, self.gram * (a * a),
                         None if self.minimum is None else self.minimum * a,
                         None if self.maximum is None else self.maximum * a,
                         exponent=self.exponent)
        if self.has_row_terms:
            new.row_sq_sum = self.row_sq_sum * a**2
            new.row_sq_sq = self.row_sq_sq * a**4
            new.row_sq_first = self.row_sq_first * a**3
        return new

    # -- merging ----------------------------------------------------------------------------
    def merge(self, other):
        """Statistics of the rows of both (Chan et al.'s pairwise update, generalised)."""
        return _merge(self, other)

    def __add__(self, other):
        if isinstance(other, (int, float)) and other == 0:  # sum([]) is 0
            return self
        return self.merge(other)

    def __radd__(self, other):
        if isinstance(other, (int, float)) and other == 0:  # so that sum(list) works
            return self
        return NotImplemented

    def __repr__(self):
        scale = f", exponent={self.exponent}" if self.exponent else ""
        return (f"{type(self).__name__}(n={self.n}, width={self.width}, "
                f"row_terms={self.has_row_terms}{scale})")


_REP_FIELDS = ("shift", "sum", "gram", "minimum", "maximum", "row_sq_sum", "row_sq_sq",
               "row_sq_first")


def _summarise(X, shift, row_terms, extrema, rescale, first):
    """(statistics, Z, k) of X about ``shift`` (see :meth:`RepresentationMoments.from_array`):
    computed directly, and again on X * 2^-e (exact; the largest entry in [0.5, 1)) where
    ``rescale`` and they are not finite or not at a safe level (``_LEVELS``). The column
    extremes are always those of X."""
    with np.errstate(over="ignore", invalid="ignore"):  # judged below, on the results
        c, Z = _shift_of(X, shift)
        m, k = RepresentationMoments._from_shifted(X, Z, c, row_terms, extrema, first)
    if not rescale or _in_range(m):
        return m, Z, k
    top = abs_max(X)
    e = int(np.frexp(top)[1]) if 0.0 < top < np.inf else 0
    if e == 0:
        return m, Z, k
    given = shift if isinstance(shift, str) or (np.ndim(shift) == 0 and float(shift) == 0.0) \
        else _scaled(like(shift, X), e)
    Xs = times_pow2(X, -e)
    c, Z = _shift_of(Xs, given)
    m, k = RepresentationMoments._from_shifted(Xs, Z, c, row_terms, False, first)
    m.exponent = e
    if extrema:
        m.minimum, m.maximum = _colmin(X), _colmax(X)
    return m, Z, k


def _shift_of(X, shift):
    """(shift vector, X - shift) in X's backend; shift 0 returns X itself (no copy)."""
    if isinstance(shift, str):
        if shift != "mean":
            raise ValueError(f"shift must be 'mean', 0 or an array, got {shift!r}")
        c = X.mean(0)
        return c, X - c
    if np.ndim(shift) == 0 and float(shift) == 0.0:
        zero = X[0] * 0.0
        return zero, X
    c = like(shift, X)
    return c, X - c


def _scaled(value, exponent):
    """A value in the data's units at the level of statistics kept at ``exponent``."""
    return value if exponent == 0 else times_pow2(value, -exponent)


def _unscaled(value, exponent):
    """A value at the level of statistics kept at ``exponent``, in the data's units."""
    return value if exponent == 0 else times_pow2(value, exponent)


#: Values whose level (the largest of |shift| and ||Z||_F) lies in this range are summarised as
#: they are; others after an exact power-of-two rescaling (see the module text). Inside it the
#: fourth powers, times any realistic n d^2, and the shift identities' n |delta|^4 stay normal.
_LEVELS = (2.0**-100, 2.0**100)


def _in_range(m):
    """Whether statistics computed directly are finite and at a safe level (``_LEVELS``)."""
    parts = (m.sum, m.gram, m.row_sq_sum, m.row_sq_sq)
    if is_tensor(m.gram):
        import torch

        finite = all(bool(torch.isfinite(p).all()) for p in parts if p is not None)
    else:
        finite = all(np.all(np.isfinite(p)) for p in parts if p is not None)
    if not finite:
        return False
    level = max(abs_max(m.shift), float(np.sqrt(max(float(m.gram.trace()), 0.0))))
    return level == 0.0 or _LEVELS[0] <= level <= _LEVELS[1]


def _pooled_shift(a, b):
    """The pooled mean of two sets of statistics kept at the same exponent, in a's backend."""
    ma, mb = a._mean, b._mean
    return ma + (mb - ma) * (b.n / (a.n + b.n))


def _both_numpy_or_same(a, b, field="gram"):
    """Statistics on different devices (or numpy and torch) are both brought to numpy."""
    u, v = getattr(a, field), getattr(b, field)
    if is_tensor(u) != is_tensor(v) or (is_tensor(u) and u.device != v.device):
        return a.to_numpy(), b.to_numpy()
    return a, b


def _merge(a, b):
    if not isinstance(b, type(a)):
        return NotImplemented
    if a.width != b.width:
        raise ValueError(f"cannot merge statistics of widths {a.width} and {b.width}")
    a, b = _both_numpy_or_same(a, b)
    e = max(a.exponent, b.exponent)
    a, b = a.at_exponent(e), b.at_exponent(e)
    shift = _pooled_shift(a, b)
    return _sum_aligned(a._moved(a.shift - shift, shift), b._moved(b.shift - shift, shift))


def _sum_aligned(a, b):
    """Statistics of the rows of both, for two sets taken about the same shift."""
    shift = a.shift
    lo = None if a.minimum is None or b.minimum is None else _elementwise(min, a.minimum, b.minimum)
    hi = None if a.maximum is None or b.maximum is None else _elementwise(max, a.maximum, b.maximum)
    out = type(a)(a.n + b.n, shift, a.sum + b.sum, a.gram + b.gram, lo, hi,
                  exponent=a.exponent)
    if a.has_row_terms and b.has_row_terms:
        out.row_sq_sum = a.row_sq_sum + b.row_sq_sum
        out.row_sq_sq = a.row_sq_sq + b.row_sq_sq
        out.row_sq_first = a.row_sq_first + b.row_sq_first
    return out


def _elementwise(fn, u, v):
    if is_tensor(u):
        import torch

        return torch.minimum(u, v) if fn is min else torch.maximum(u, v)
    return np.minimum(u, v) if fn is min else np.maximum(u, v)


def spectrum_from_gram(G, n):
    """Singular values s (descending) and right singular vectors V' of a matrix Xc with
    Xc'Xc = G, from the eigen-decomposition of G, unchecked. The metrics no longer use it: they
    decompose :attr:`PairMoments.factor` (the data's conditioning) or the square root that
    :func:`gram_factor` accepts, which refuses what G cannot resolve instead of dropping it.

    The eigenvalues are the squares of the singular values, so rounding hides the directions
    whose eigenvalue is below about d * eps of the largest: those below max(n, d) * eps * lam_max
    are dropped (the SVD of the data itself resolves singular values, i.e. square roots, down to
    that relative level, which is why the whole-data estimators keep their SVD route).

    Parameters
    ----------
    G : numpy.ndarray, shape (d, d)
        Symmetric positive semi-definite, not all zero.
    n : int
        Number of rows behind G (enters the tolerance).

    Returns
    -------
    s : numpy.ndarray, shape (r,)
    Vt : numpy.ndarray, shape (r, d)

    Examples
    --------
    >>> Xc = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    >>> s, Vt = spectrum_from_gram(Xc.T @ Xc, 4)
    >>> s.round(12).tolist(), bool(np.allclose(np.abs(Vt), [[0, 1], [1, 0]]))
    ([2.828427124746, 1.414213562373], True)
    """
    lam, V = np.linalg.eigh(G)
    lam, V = lam[::-1], V[:, ::-1]
    keep = lam > max(n, G.shape[0]) * np.finfo(np.float64).eps * lam[0]
    return np.sqrt(lam[keep]), V[:, keep].T


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
    if float((_colmax(A) - _colmin(A)).max()) == 0.0:
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
        shift_x = _scaled(like(shift_x, self.cross), self.x.exponent)
        shift_y = _scaled(like(shift_y, self.cross), self.y.exponent)
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
                         factor=_factor_columns(self.factor, self.x.width,
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
                         factor=_factor_columns(self.factor, self.x.width, lambda F: F * a,
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
            R = _hcat(R[:, dx:], R[:, :dx])
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
        a, b = _both_numpy_or_same(a, b, "cross")
        ex, ey = max(a.x.exponent, b.x.exponent), max(a.y.exponent, b.y.exponent)
        a, b = a.at_exponents(ex, ey), b.at_exponents(ex, ey)
        sx, sy = _pooled_shift(a.x, b.x), _pooled_shift(a.y, b.y)
        a = a._moved(a.x.shift - sx, sx, a.y.shift - sy, sy)
        b = b._moved(b.x.shift - sx, sx, b.y.shift - sy, sy)
        out = type(self)(_sum_aligned(a.x, b.x), _sum_aligned(a.y, b.y), a.cross + b.cross)
        if a.has_row_terms and b.has_row_terms:
            out.row_cross = a.row_cross + b.row_cross
            out.x_row_y = a.x_row_y + b.x_row_y
            out.y_row_x = a.y_row_x + b.y_row_x
        if a.factor is not None and b.factor is not None:
            # both about the pooled shift now: the difference of the means is that of the sums
            weight = float(np.sqrt(a.n * b.n / (a.n + b.n)))
            gap = _hcat((a.x.sum / a.n - b.x.sum / b.n)[None, :],
                        (a.y.sum / a.n - b.y.sum / b.n)[None, :])
            out.factor = _merged_factor(a.factor, b.factor, weight * gap)
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
    m, Z, k = _summarise(X, shift, row_terms, extrema, rescale, first=False)
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
    if is_tensor(Z) != is_tensor(W) or (is_tensor(Z) and Z.device != W.device):
        a, b = a.to_numpy(), b.to_numpy()  # different devices: meet on the CPU
        Z, W = a.data, b.data
    out = PairMoments(copy.copy(a.moments), copy.copy(b.moments), Z.T @ W)
    if factor:
        out.factor = _batch_factor(_hcat(Z, W), compact=factor != "rows")
    if a.has_row_terms and b.has_row_terms:
        k, l = a.row_sq, b.row_sq
        out.row_cross = k @ l
        kl = _columns(k, l)
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


# -- the factor: a square root of the joint centred Gram matrix ------------------------------
def _hcat(A, B):
    """[A B] in the backend of A."""
    if is_tensor(A):
        import torch

        return torch.cat((A, B), dim=1)
    return np.hstack((A, B))


def _factor_columns(R, dx, on_x, on_y):
    """R with ``on_x`` applied to its first ``dx`` columns and ``on_y`` to the rest (None
    stays None): a factor of the data with its two column blocks transformed alike."""
    return None if R is None else _hcat(on_x(R[:, :dx]), on_y(R[:, dx:]))


def _triangularised(F):
    """The R of the Householder QR decomposition of F (min(rows, d) x d, R'R = F'F)."""
    if is_tensor(F):
        import torch

        return torch.linalg.qr(F, mode="r").R
    return np.linalg.qr(F, mode="r")


def _batch_factor(F, compact=True):
    """The factor of one batch [Z W]: its exactly centred rows (two passes, see
    :func:`simmetrics._core.linalg.center`), triangularised (``compact``) when there are more rows
    than columns, so that it never holds more than d = d_x + d_y rows."""
    from ._core.linalg import center

    F = center(F)
    return F if F.shape[0] <= F.shape[1] or not compact else _triangularised(F)


def compact_factor(stats):
    """``stats`` with a factor of at most d rows (triangularised if it holds more)."""
    R = stats.factor
    if R is not None and R.shape[0] > R.shape[1]:
        stats.factor = _triangularised(R)
    return stats


def _is_triangular(R):
    return R.shape[0] == R.shape[1] and not np.tril(R, -1).any()


def _merged_factor(Ra, Rb, gap):
    """A factor with R'R = Ra'Ra + Rb'Rb + gap'gap (``gap`` one row): the stacked rows while
    they are at most d, else their triangular factor. When one of the two is already a d x d
    triangle, LAPACK's dtpqrt (the QR of a triangle stacked on rows) costs O(rows d^2), the
    flops of the Gram update, instead of a full QR."""
    d = Ra.shape[1]
    if is_tensor(Ra):
        import torch

        F = torch.cat((Ra, Rb, gap))
        return F if F.shape[0] <= d else _triangularised(F)
    if Ra.shape[0] + Rb.shape[0] + 1 <= d:
        return np.vstack((Ra, Rb, gap))
    from scipy.linalg import lapack

    for T, rows in ((Ra, (Rb, gap)), (Rb, (Ra, gap))):
        if _is_triangular(T):
            out, _, _, info = lapack.dtpqrt(0, min(d, 32), np.array(T), np.vstack(rows))
            if info == 0:
                return np.triu(out)
    return _triangularised(np.vstack((Ra, Rb, gap)))


def rows_svd(A, n):
    """The thin SVD of rows ``A`` that stand in for ``n`` data rows (from
    :meth:`PairMoments.factor_rows` or :func:`gram_factor`), with the whole-data rank rule of
    :func:`simmetrics._core.linalg.orthonormal_basis` for n rows (singular values below
    max(n, d) eps s_max dropped), computed on A 2^-e (exact; the largest entry in [0.5, 1))
    so that no square over- or underflows.

    Returns
    -------
    U : numpy.ndarray, shape (rows, r)
    s : numpy.ndarray, shape (r,)
        The singular values of A 2^-e.
    Vt : numpy.ndarray, shape (r, d)
    e : int
    """
    from ._core.linalg import orthonormal_basis

    top = abs_max(A)
    e = int(np.frexp(top)[1]) if top > 0.0 else 0
    U, s, Vt = orthonormal_basis(times_pow2(A, -e), rtol=max(n, A.shape[1]) * np.finfo(float).eps)
    return U, s, Vt, e


# -- when the Gram matrix alone must do: a checked square root -------------------------------
#: The Gram matrix's estimated relative error on the smallest direction the data can have
#: that :func:`gram_factor` accepts: half of float64's digits (sqrt(eps) = 1.5e-8).
_GRAM_ERROR = 2.0**-26


def gram_factor(rep, name, centred=True, gram=None):
    """A square root M (r x d, M'M = G) of the Gram matrix G of ``rep`` (numpy statistics;
    ``gram`` overrides ``rep.gram``), refused with a ``ValueError`` where the sums cannot
    resolve the data: the route of the metrics that whiten when statistics hold no
    :attr:`PairMoments.factor`.

    **The bound.** A Gram entry is a sum of n products; its rounding error is
    |dG_kl| <= gamma sqrt(G_kk G_ll) with gamma = sqrt(n) eps (the probabilistic bound of
    Higham and Mary 2019; n eps in the worst case), whatever the means (the batches are
    summed about their means and merged exactly). Write G = D^(1/2) C D^(1/2), D = diag(G),
    C the correlation matrix of the live neurons (non-constant ones; with ``centred=False``
    not all zero). Then dG = D^(1/2) dC D^(1/2) with ||dC||_2 <= d gamma, and the
    eigenvalues of G move relatively by at most d gamma / lambda_min(C) (Demmel and
    Veselic 1992, Theorem 2.3: scaling by D costs nothing). Rank-deficiency the data must
    have is known (r = min(n - 1, d_live) centred, min(n, d_live) not), so with lambda_r the
    r-th largest eigenvalue of C the estimated relative error of the smallest direction is::

        error = d_live sqrt(n) eps / lambda_r(C)

    accepted while error <= 2^-26 (half of the 16 digits; the condition number of X'X
    itself may be far larger: neurons of variances 1e-10..1 pass). One stimulus 1e8 times
    the others, or a cluster of spread 1e-3 beside a point at 1e5, make every centred column
    nearly parallel (lambda_r(C) about 1e-15): refused, as are exact linear dependences
    (duplicate neurons), which a Gram matrix cannot tell from a direction below its
    rounding. The accepted M = Lambda_r^(1/2) V_r' D^(1/2) (V_r Lambda_r V_r' the top r
    eigenpairs of C) is a square root with the data's conditioning: its SVD gives the
    singular values and right vectors of the data as the data's SVD does, to about
    max(n, d) eps s_max / s for a singular value s (the limit of every route, the whole-data
    SVD included: variances spanning 1e-20..1 agree with ``fit_score`` to about 1e-8).

    Parameters
    ----------
    rep : RepresentationMoments
        numpy statistics about the shift the caller decomposes (centred, or the fitted means).
    name : str
        "X" or "Y", for the message.
    centred : bool, default True
        Whether ``rep`` is centred (the data then have rank at most n - 1).
    gram : numpy.ndarray, optional
        The Gram matrix to use instead of ``rep.gram`` (same shift).

    Returns
    -------
    numpy.ndarray, shape (r, d)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 3)) * [1.0, 1e-3, 1e-5]   # variances 1 .. 1e-10: resolved
    >>> S = RepresentationMoments.from_array(X).centred()
    >>> M = gram_factor(S, "X")
    >>> bool(np.allclose(M.T @ M, S.gram, rtol=1e-12, atol=0))
    True
    >>> X[0] *= 1e8                                           # one dominant stimulus
    >>> gram_factor(RepresentationMoments.from_array(X).centred(), "X")
    Traceback (most recent call last):
    ...
    ValueError: the second moments cannot resolve X: ...
    """
    G = to_numpy(rep.gram if gram is None else gram)
    n, d = rep.n, G.shape[0]
    diag = np.diag(G).copy()
    live = diag > 0.0
    if rep.minimum is not None:
        lo, hi = to_numpy(rep.minimum), to_numpy(rep.maximum)
        live &= (hi > lo) if centred else ((hi != 0.0) | (lo != 0.0))
    idx = np.flatnonzero(live)
    M = np.zeros((0, d))
    r = min(n - 1 if centred else n, idx.size)
    if r <= 0:
        return M
    root = np.sqrt(diag[idx])
    C = G[np.ix_(idx, idx)] / root[:, None] / root[None, :]
    lam, V = np.linalg.eigh(C)
    lam, V = lam[::-1][:r], V[:, ::-1][:, :r]
    smallest = float(lam[-1])
    error = idx.size * np.sqrt(n) * np.finfo(np.float64).eps / smallest if smallest > 0.0 \
        else np.inf
    if not error <= _GRAM_ERROR:
        digits = max(0.0, -np.log10(error))
        condition = float(lam[0]) / smallest if smallest > 0.0 else np.inf
        raise ValueError(
            f"the second moments cannot resolve {name}: the correlation matrix of its "
            f"{idx.size} {'centred ' if centred else ''}neurons has condition number "
            f"{condition:.1e} (its eigenvalue {r} is {smallest:.1e}), so sums of {n} "
            f"products rounded to eps = 2.2e-16 keep about "
            f"{digits:.0f} of the 16 digits of its smallest direction, fewer than the 8 "
            "needed (one stimulus far larger than the others, a cluster beside a far "
            "outlier, or duplicate neurons). Accumulate the statistics with factor=True "
            "(stream_score, stream_moments and simmetrics.moments.moments do), or use "
            "fit_score on the whole data"
        )
    M = np.zeros((r, d))
    M[:, idx] = (np.sqrt(np.clip(lam, 0.0, None))[:, None] * V.T) * root[None, :]
    return M
