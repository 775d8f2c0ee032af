"""The statistics of one representation, and how a batch of it is summarised.

- :class:`RepresentationMoments`: n, the sum, the Gram matrix, the column extremes and the
  row-norm terms of X about a shift, with their exact shift identities (re-exported by
  :mod:`simmetrics.moments`, whose module text defines every field and explains the accuracy,
  the merging and the power-of-two levels).
- :func:`summarise`: the statistics of one batch, again on X * 2^-e (exact) where values
  outside [2^-100, 2^100] would over- or underflow (:func:`scaled` gives a value in the data's
  units at the level the statistics are kept at).
- The merge of two sets about their pooled mean (Chan, Golub and LeVeque 1979):
  :func:`pooled_shift`, :func:`both_numpy_or_same`, :func:`sum_aligned`.
"""

import numpy as np

from .backend import get_backend, like, to_numpy
from .linalg import abs_max, times_pow2

__all__ = [
    "RepresentationMoments",
    "summarise",
    "scaled",
    "pooled_shift",
    "both_numpy_or_same",
    "sum_aligned",
]


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
        nx = get_backend(X)
        k = nx.row_sq(Z) if row_terms else None
        return cls(
            X.shape[0],
            shift,
            Z.sum(0),
            Z.T @ Z,  # numpy detects Z'Z and uses a symmetric rank-k update (half the flops)
            nx.colmin(X) if extrema else None,
            nx.colmax(X) if extrema else None,
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
        return summarise(X, shift, row_terms, extrema, rescale, first=True)[0]

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
        shift = scaled(like(shift, self.gram), self.exponent)
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


def summarise(X, shift, row_terms, extrema, rescale, first):
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
        else scaled(like(shift, X), e)
    Xs = times_pow2(X, -e)
    c, Z = _shift_of(Xs, given)
    m, k = RepresentationMoments._from_shifted(Xs, Z, c, row_terms, False, first)
    m.exponent = e
    if extrema:
        nx = get_backend(X)
        m.minimum, m.maximum = nx.colmin(X), nx.colmax(X)
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


def scaled(value, exponent):
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
    nx = get_backend(m.gram)
    if not all(nx.all_finite(p) for p in parts if p is not None):
        return False
    level = max(abs_max(m.shift), float(np.sqrt(max(float(m.gram.trace()), 0.0))))
    return level == 0.0 or _LEVELS[0] <= level <= _LEVELS[1]


def pooled_shift(a, b):
    """The pooled mean of two sets of statistics kept at the same exponent, in a's backend."""
    ma, mb = a._mean, b._mean
    return ma + (mb - ma) * (b.n / (a.n + b.n))


def both_numpy_or_same(a, b, field="gram"):
    """Statistics on different devices (or numpy and torch) are both brought to numpy."""
    if get_backend(getattr(a, field)) != get_backend(getattr(b, field)):
        return a.to_numpy(), b.to_numpy()
    return a, b


def _merge(a, b):
    if not isinstance(b, type(a)):
        return NotImplemented
    if a.width != b.width:
        raise ValueError(f"cannot merge statistics of widths {a.width} and {b.width}")
    a, b = both_numpy_or_same(a, b)
    e = max(a.exponent, b.exponent)
    a, b = a.at_exponent(e), b.at_exponent(e)
    shift = pooled_shift(a, b)
    return sum_aligned(a._moved(a.shift - shift, shift), b._moved(b.shift - shift, shift))


def sum_aligned(a, b):
    """Statistics of the rows of both, for two sets taken about the same shift."""
    shift = a.shift
    nx = get_backend(a.gram)
    lo = None if a.minimum is None or b.minimum is None else nx.minimum(a.minimum, b.minimum)
    hi = None if a.maximum is None or b.maximum is None else nx.maximum(a.maximum, b.maximum)
    out = type(a)(a.n + b.n, shift, a.sum + b.sum, a.gram + b.gram, lo, hi,
                  exponent=a.exponent)
    if a.has_row_terms and b.has_row_terms:
        out.row_sq_sum = a.row_sq_sum + b.row_sq_sum
        out.row_sq_sq = a.row_sq_sq + b.row_sq_sq
        out.row_sq_first = a.row_sq_first + b.row_sq_first
    return out
