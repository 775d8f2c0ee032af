"""Held-out (cross-validated) canonical correlations: what :class:`simmetrics.CCA`,
:class:`simmetrics.SVCCA` and :class:`simmetrics.PWCCA` learn in ``fit`` and how ``score`` uses it.

``fit(X_train, Y_train)`` learns, for each side, the neuron means and the canonical
directions: with Xc = U S V' the SVD of the centred training data (kept to its numerical rank,
or to SVCCA's cut) and P the left singular vectors of Ux'Uy (Q R' for Y), the directions are::

    a_i = V S^-1 p_i      (d x 1; the training variates Xc a_i = Ux p_i have unit norm)

``score(X_test, Y_test)`` projects the held-out stimuli on them and correlates (Pearson) each
pair of held-out canonical variates::

    u_i = (X_test - mean_x) a_i,   v_i = (Y_test - mean_y) b_i,   r_i = corr(u_i, v_i)

(signed: a held-out pair can anti-correlate), the convention of cca-zoo's ``score`` (the mean
over components of the Pearson r of ``transform``'s latent scores on the scored views). The
Pearson r centres u_i and v_i on the scored stimuli, so the learned means enter ``transform``
only. On the training stimuli r_i is the canonical correlation rho_i.

Two refusals, where the training stimuli do not determine the held-out value (a ValueError
naming the remedy, never a number that depends on rounding):

- **Directions not determined** (:func:`check_determined`): the centred training data live in
  n - 1 dimensions; when the two sides span k_x + k_y > n - 1 of them (always when n - 1 <= a
  width, for data in general position), their spans intersect in k_x + k_y - (n - 1)
  dimensions, that many canonical correlations are exactly 1 and their directions are any
  basis of the intersection, which changes every held-out r_i.
- **Variation the fit did not see** (:func:`check_seen`): a held-out side that varies in a
  direction its training stimuli did not span (a neuron constant during fit) would be
  projected on directions that give that variation no weight, chosen by the minimum-norm
  convention, not by the data. SVCCA with variance < 1 discards by definition up to
  1 - variance of each side's variance (its cut): held-out variation outside the training
  span is refused only where it exceeds that share of the held-out side's squared norm.

Both routes (data; second moments of a held-out stream, :func:`heldout_from_moments`) rescale
every side by a power of two before forming products (the correlations are scale-free), so
data of 1e-300 or 1e300 give the value at scale 1.
"""

import numpy as np

from .._core.linalg import abs_max, center, frobenius_norm, times_pow2
from .._core.validation import check_nonconstant
from ..base import AlignmentMetric
from ..moments import check_nonconstant_moments, gram_factor

__all__ = ["CanonicalHeldOut", "CanonicalSide", "canonical_side", "check_determined", "check_seen",
           "heldout_correlations", "heldout_from_moments", "safe_mean"]

_EPS = np.finfo(np.float64).eps


class CanonicalSide:
    """The fitted directions of one side: the held-out variates are
    ``((A - mean) / scale / 2**exponent) @ weights``; ``basis`` (r x d, orthonormal rows) spans the training
    rows and ``cond`` = s_1 / s_r is the conditioning of that span (its accuracy is about
    eps * cond); ``allowance``: the share of the scored rows' squared norm that may lie
    outside that span (0: rounding only; SVCCA's 1 - variance, the share its cut discards)."""

    __slots__ = ("mean", "scale", "exponent", "weights", "basis", "cond", "allowance")

    def __init__(self, mean, scale, weights, basis, cond, exponent=0):
        self.mean, self.scale, self.exponent, self.weights = mean, scale, exponent, weights
        self.basis, self.cond, self.allowance = basis, cond, 0.0

    def directions(self):
        """The canonical directions in the data's units (d x m)."""
        with np.errstate(over="ignore", under="ignore"):
            return times_pow2(self.weights / self.scale, -self.exponent)

    def variates(self, A):
        """The canonical variates (A - mean) a_i of rows ``A`` (m x k), formed at the fitted
        scale (no overflow for data of 1e300)."""
        return (times_pow2(A - self.mean, -self.exponent) / self.scale) @ self.weights


def canonical_side(mean, scale, s, Vt, coords, s_full, exponent=0):
    """:class:`CanonicalSide` from the SVD (``s``, ``Vt``, r x d) of the centred training data
    divided by ``scale`` and the canonical coordinates ``coords`` (k x m, k <= r: the first k
    directions are the ones kept), a = V_k S_k^-1 coords; ``s_full`` the singular values of the
    whole training span (its conditioning)."""
    k = coords.shape[0]
    weights = Vt[:k].T @ (coords / s[:k, None])
    return CanonicalSide(mean, scale, weights, Vt, float(s_full[0] / s_full[-1]), exponent)


def safe_mean(A):
    """Column means of ``A``, computed at a power-of-two rescaling (no overflow at 1e300)."""
    top = abs_max(A)
    e = int(np.frexp(top)[1]) if top > 0.0 else 0
    return times_pow2(times_pow2(A, -e).mean(axis=0), e)


def check_determined(n, kx, ky, owner):
    """Refuse held-out scoring where k_x + k_y directions exceed the n - 1 that n centred
    training stimuli have (module text)."""
    if kx + ky > n - 1:
        raise ValueError(
            f"{owner} cannot score held-out stimuli with canonical directions fitted on {n} "
            f"training stimuli: X spans {kx} and Y {ky} directions, more than the n - 1 = "
            f"{n - 1} that centred stimuli have, so {kx + ky - (n - 1)} canonical "
            "correlations are exactly 1 and their directions are arbitrary (any basis of the "
            f"two spans' intersection). Fit on more than {kx + ky} stimuli, or reduce the "
            "widths (SVCCA with variance < 1, or PCA fitted on the training stimuli); "
            "fit_score gives the in-sample value"
        )


def _unit(A):
    """``A`` times the power of two that brings its largest magnitude into [0.5, 1)."""
    top = abs_max(A)
    return A if top == 0.0 else times_pow2(A, -int(np.frexp(top)[1]))


def check_seen(T, floor, side, name):
    """Refuse held-out rows ``T`` (centred, at some power-of-two scale; ``floor`` the norm
    that sets their rounding, the uncentred rows' at the same scale) that vary outside the
    training span ``side.basis`` beyond its accuracy (module text)."""
    m, d = T.shape
    Vt = side.basis
    if Vt.shape[0] >= d:
        return
    residual = frobenius_norm(T - (T @ Vt.T) @ Vt)
    norm = frobenius_norm(T)
    tol = max(max(m, d) * _EPS * side.cond * max(floor, norm), np.sqrt(side.allowance) * norm)
    if residual > tol:
        raise ValueError(
            f"{name} varies on the scored stimuli in directions its training stimuli did not "
            f"span (they spanned {Vt.shape[0]} of its {d} neurons' directions: a neuron "
            "constant during fit, or fewer training stimuli than neurons), which the fitted "
            "canonical directions cannot weigh: fit on stimuli that vary in every neuron, or "
            "drop the neurons that are constant on the training stimuli"
        )


def _correlations(Zx, Zy, tol_x, tol_y):
    """Pearson r of matched columns of two column-centred score matrices; 0 for a column whose
    norm is at its rounding level ``tol`` (no variance on the scored stimuli: cca-zoo's
    convention)."""
    nx, ny = np.linalg.norm(Zx, axis=0), np.linalg.norm(Zy, axis=0)
    live = (nx > tol_x) & (ny > tol_y)
    r = np.zeros(Zx.shape[1])
    r[live] = np.sum(Zx[:, live] * Zy[:, live], axis=0) / nx[live] / ny[live]
    return np.clip(r, -1.0, 1.0)


def _rounding(T, W):
    """Rounding level of the columns of T @ W."""
    return max(T.shape) * _EPS * frobenius_norm(T) * np.linalg.norm(W, axis=0)


def heldout_correlations(X, Y, side_x, side_y):
    """The held-out r_i (module text) of validated float64 scored rows ``X``, ``Y``."""
    rows = []
    for A, side, name in ((X, side_x, "X"), (Y, side_y, "Y")):
        As = _unit(A)
        T = center(As)
        check_seen(T, frobenius_norm(As), side, name)
        W = _unit(side.weights)
        rows.append((T @ W, _rounding(T, W)))
    (Zx, tx), (Zy, ty) = rows
    return _correlations(Zx, Zy, tx, ty)


def heldout_from_moments(stats, side_x, side_y):
    """The held-out r_i from the second moments of the scored stimuli
    (:class:`simmetrics.PairMoments`): from the rows of their ``factor`` (rows standing in for
    the centred data, with the data's conditioning), else from the centred Gram and cross
    matrices (the seen-span check then on a square root that
    :func:`simmetrics.moments.gram_factor` accepts)."""
    S = stats.to_numpy().centred()
    check_nonconstant_moments(S.x, "X")
    check_nonconstant_moments(S.y, "Y")
    Wx, Wy = _unit(side_x.weights), _unit(side_y.weights)
    if S.factor is not None:
        A, B = S.factor_rows(centred=True)
        rows = []
        for R, side, W, name in ((A, side_x, Wx, "X"), (B, side_y, Wy, "Y")):
            R = _unit(R)
            check_seen(R, frobenius_norm(R), side, name)
            rows.append((R @ W, _rounding(R, W)))
        (Zx, tx), (Zy, ty) = rows
        return _correlations(Zx, Zy, tx, ty)
    for rep, side, name in ((S.x, side_x, "X"), (S.y, side_y, "Y")):
        if side.basis.shape[0] < rep.width:
            R = _unit(gram_factor(rep, name))
            check_seen(R, frobenius_norm(R), side, name)
    Gx, Gy, C = (np.asarray(M, dtype=float) for M in (S.x.gram, S.y.gram, S.cross))
    vx = np.einsum("ij,ij->j", Wx, Gx @ Wx)
    vy = np.einsum("ij,ij->j", Wy, Gy @ Wy)
    cov = np.einsum("ij,ij->j", Wx, C @ Wy)
    # the rounding of w'Gw: about (width + n) eps tr(G) ||w||^2
    tol_x = max(Gx.shape[0], S.n) * _EPS * np.trace(Gx) * np.sum(Wx**2, axis=0)
    tol_y = max(Gy.shape[0], S.n) * _EPS * np.trace(Gy) * np.sum(Wy**2, axis=0)
    live = (vx > tol_x) & (vy > tol_y)
    r = np.zeros(Wx.shape[1])
    r[live] = cov[live] / np.sqrt(vx[live]) / np.sqrt(vy[live])
    return np.clip(r, -1.0, 1.0)


class CanonicalHeldOut(AlignmentMetric):
    """Cross-validated canonical correlations (:mod:`simmetrics.metrics.cca_heldout`): ``fit``
    learns the neuron means and the canonical directions (and what each class adds), ``score``
    correlates the held-out canonical variates, ``transform`` returns them. An
    :class:`~simmetrics.AlignmentMetric`: ``score`` before ``fit`` raises ``NotFittedError``;
    ``fit_score`` (and so pairwise, the bootstrap, the CLI, the invariance table, gradients
    and ``stream_score``) is the in-sample value, unchanged. Subclasses define
    ``_check_family()`` (their parameters), ``_heldout_value(r)`` (the summary of held-out
    r_i) and ``_fit_moments(stats)`` (the fit from moments, returning the in-sample value)."""

    def _fit(self, X, Y):
        self._fit_score(X, Y)

    #: the share of held-out variation allowed outside the training span (check_seen)
    _unseen_allowance = 0.0

    def _learn(self, a, b, P, Rt, n, exponents=(0, 0)):
        """Record the fitted sides from the states (U, s, V', mean, scale) of X and Y (U with
        the kept columns; the SVD was of the centred data / scale / 2**exponent) and the SVD's
        P, R' of Ux'Uy; ``n`` training stimuli."""
        self._sides = tuple(canonical_side(st[3], st[4], st[1], st[2], c, st[1], e)
                            for st, c, e in ((a, P, exponents[0]), (b, Rt.T, exponents[1])))
        for side in self._sides:
            side.allowance = float(self._unseen_allowance)
        self._fit_shape = (n, a[0].shape[1], b[0].shape[1])
        self.mean_x_, self.mean_y_ = a[3], b[3]

    def _learn_from_moments(self, stats, bases, kx, ky, P, Rt):
        """:meth:`_learn` from the bases that :mod:`simmetrics.metrics.cca` finds in the
        statistics (P, s, V' per side, at their power-of-two levels), kx and ky kept."""
        S = stats.to_numpy()
        with np.errstate(over="ignore", under="ignore"):
            states = [(np.empty((0, k)), s, Vt, times_pow2(rep.mean, e), 1.0)
                      for (_, s, Vt), k, rep, e in zip(bases, (kx, ky), (S.x, S.y), S.exponents)]
        self._learn(*states, P, Rt, S.n, tuple(S.exponents))

    @property
    def directions_x_(self):
        """X's canonical directions (n_x x m): ``(X - mean_x_) @ directions_x_`` are the
        canonical variates, of unit norm on the training stimuli."""
        return self._sides[0].directions()

    @property
    def directions_y_(self):
        """Y's canonical directions (n_y x m), as :attr:`directions_x_`."""
        return self._sides[1].directions()

    def _heldout(self, X, Y):
        self._check_family()
        check_nonconstant(X, "X")
        check_nonconstant(Y, "Y")
        check_determined(*self._fit_shape, type(self).__name__)
        return heldout_correlations(X, Y, *self._sides)

    def _score(self, X, Y):
        return self._heldout_value(self._heldout(X, Y))

    def _transform(self, X, Y):
        """The canonical variates of the scored stimuli, (X - mean_x_) @ directions_x_ and
        likewise for Y (n x m each), after the checks of ``score``."""
        self._heldout(X, Y)
        return tuple(side.variates(A) for A, side in zip((X, Y), self._sides))

    # -- streaming: fit=True gives the in-sample value; a held-out stream, its r_i ----------
    #: stream_score accumulates PairMoments.factor for these hooks
    _moments_factor = True

    def _fit_from_moments(self, stats):
        # the in-sample value, returned by _score_from_moments for these same statistics
        self._in_sample = (stats, self._fit_moments(stats))

    def _score_from_moments(self, stats):
        fitted = self.__dict__.pop("_in_sample", None)
        if fitted is not None and fitted[0] is stats:
            return fitted[1]
        self._check_family()
        check_determined(*self._fit_shape, type(self).__name__)
        return self._heldout_value(heldout_from_moments(stats, *self._sides))
