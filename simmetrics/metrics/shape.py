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

This module holds the rotation family: :class:`ShapeMetric` (partial whitening, then the
optimal rotation) and :class:`OrthogonalProcrustes` (no whitening). Their parts live beside it:
the centred-alignment base class of every shape metric in :mod:`simmetrics.metrics.alignment`,
the whitening in :mod:`simmetrics.metrics.whitening`, the rotation in
:mod:`simmetrics.metrics.procrustes`; the permutation and transport metrics in
:mod:`simmetrics.metrics.matching`.
"""

import numpy as np

from .._core.linalg import (abs_max, center, frobenius_norm, orthonormal_basis, pow2_rescale,
                            times_pow2)
from .._core.linear_map import LinearMap
from .._core.params import Interval, Options, Real
from .._core.registry import register
from .._core.solvers import SAFE_HIGH, SAFE_LOW, cross_in_range, pad2
from ..base import param_dependent
from ..moments import gram_factor, rows_svd
from .alignment import (
    CenteredAlignment,
    Prepared,
    angular_or_euclidean_bounds,
    check_one,
    distance,
    prepared_plain,
    zero_pad,
)
from .procrustes import (
    closest_optimal_rotation,
    deferred_rotation,
    n_space_nuclear_norm,
    procrustes_rotation,
    use_n_space_route,
)
from .shape_gradient import shape_distance_formula
from .whitening import (
    covariance_whitener,
    gram_whitening,
    split_unseen,
    whitener_from_spectrum,
)

__all__ = ["ShapeMetric", "OrthogonalProcrustes"]


_REFERENCE_SHAPE = (
    "Williams, Kunz, Kornblith, Linderman, 'Generalized Shape Metrics on Neural "
    "Representations', NeurIPS 2021 (conventions of netrep's LinearMetric)"
)


#: The whitening conventions of :class:`ShapeMetric` (its ``whitening`` parameter).
WHITENINGS = ("trace", "netrep", "covariance")
#: netrep's floor on the eigenvalues of Xc'Xc (``whiten(eigval_tol=1e-7)``): with
#: ``whitening="netrep"`` each direction of the common width the data do not span counts in the
#: variance-keeping rescale as an eigenvalue of this size, as in netrep's code.
NETREP_EIGENVALUE_FLOOR = 1e-7


def _shape_invariances(self):
    groups = {"orthogonal", "permutation", "signed_permutation"}
    if self.center_columns:
        groups.add("translation")
    scale_free = self.score_method in ("angular", "chordal")
    full = self.alpha == 0.0 and (scale_free or getattr(self, "whitening", "trace") == "covariance")
    if scale_free and self.alpha == 1.0:
        groups.add("isotropic_scaling")
    if full:
        groups |= {"invertible_linear", "scaled_permutation", "positive_scaled_permutation",
                   "isotropic_scaling"}
    return frozenset(groups)


class _Whitened(Prepared):
    """:class:`Prepared` of a whitened representation, with the spectrum of its centred data
    (singular values ``s`` times 2**``e``) that ``whitening="netrep"`` rescales by at the pair
    step.

    Whitened from the SVD of the data (``raw`` False), ``data`` holds the whitened data; from
    the Gram matrix (``raw`` True, :func:`simmetrics.metrics.whitening.gram_whitening`) it holds
    the centred data as :class:`Prepared` does, the whitener is applied to the d x d
    cross-products (Zx' Xc'Yc Zy) and ``total`` is ||Xc Z||_F^2: no whitened n x d copy, which
    :meth:`centred` forms only where the aligned data are needed."""

    __slots__ = ("spectrum", "raw", "total")

    def __init__(self, data, sums, colsq, mean, whitener, spectrum, raw=False, total=None):
        super().__init__(data, sums, colsq, mean, whitener)
        self.spectrum, self.raw, self.total = spectrum, raw, total

    @property
    def sq(self):
        return self.total if self.raw else super().sq

    def centred(self):
        Ac = super().centred()
        return self.whitener.apply(Ac) if self.raw else Ac

    def cross(self, other):
        M = super().cross(other)
        other_raw = isinstance(other, _Whitened) and other.raw
        if M is None or not (self.raw or other_raw):
            return M
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            if self.raw:  # Zx' M = (M' Zx)' (Zx symmetric)
                M = self.whitener.apply(M.T).T
            if other_raw:
                M = other.whitener.apply(M)
        top = float(np.max(np.abs(M))) if M.size else 0.0
        return M if SAFE_LOW <= top <= SAFE_HIGH else None


def _netrep_factor(s, e, alpha, width):
    """netrep's rescale over the trace rule's: netrep keeps tr C counting all ``width``
    directions, those the data do not span at eigenvalue NETREP_EIGENVALUE_FLOOR (as its
    ``whiten`` clips them); the trace rule counts the r spanned ones. 1.0 when r = width."""
    extra = width - s.size
    if extra <= 0:
        return 1.0
    floor = np.sqrt(NETREP_EIGENVALUE_FLOOR)
    g = max(e, int(np.frexp(floor)[1]))  # one exponent for the data's and the floor's scales

    def ratio(v, p):
        """||sigma|| / ||alpha sigma + (1 - alpha)|| for sigma = v 2**p, as (value, exponent)."""
        t = max(p, 0)
        m = alpha * times_pow2(v, p - t) + (1.0 - alpha) * 2.0 ** (-t)
        return frobenius_norm(v) / frobenius_norm(m), p - t

    with np.errstate(over="ignore", under="ignore"):
        full = np.concatenate([times_pow2(s, e - g), np.full(extra, times_pow2(floor, -g))])
        r_full, p_full = ratio(full, g)
        r_rank, p_rank = ratio(s, e)
        return float(times_pow2(r_full / r_rank, p_full - p_rank))


def _scaled_map(Z, f):
    """The :class:`LinearMap` ``Z`` times the scalar ``f``."""
    out = LinearMap(Z.core * f, Z.basis, Z.scalar * f)
    if Z.unit is not None:
        out.unit = (Z.unit[0] * f,) + tuple(Z.unit[1:])
    return out


@register("shape_metric")
class ShapeMetric(CenteredAlignment):
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
    ``score_method="chordal"`` gives 2 sin(angle / 2) = sqrt(2 - 2 cos), the Euclidean distance
    after scaling each aligned representation to unit Frobenius norm (ReSi's
    ``orthogonal_procrustes_centered_and_normalized`` at alpha = 1).

    **Whitening conventions** (``whitening``; they differ only for alpha < 1). "trace"
    (default): the map above, its total variance tr C kept over the r directions the data span.
    "netrep": netrep's code exactly, whose ``whiten`` zero-pads first and counts every one of the
    common width's directions in the rescale, those the data do not span (padding, rank
    deficiency) at its eigenvalue floor 1e-7; it differs from "trace" only in the Euclidean
    distance between data of unequal widths or rank below the width (e.g. seed11 X_Z, alpha 0:
    95.509 against 92.151). "covariance": Williams et al.'s definition on the covariance,
    Z = alpha I + (1 - alpha) (Xc'Xc / n)^(-1/2) with no rescale, as in Lange's repsim
    (``EuclideanShapeMetric``, ``AngularShapeMetric``); at alpha = 0 the whitened data are
    sqrt(n) U V', so the Euclidean distance is invariant to every invertible linear map too,
    and for 0 < alpha < 1 the angle differs from netrep's (seed11 X_Y, alpha 0.5: 0.86701
    against 0.77774; netrep on X/sqrt(n) gives Lange's value).

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
    score_method : {"angular", "euclidean", "chordal"}, default "angular"
    center_columns : bool, default True
        Subtract each neuron's mean (learned in ``fit``).
    whitening : {"trace", "netrep", "covariance"}, default "trace"
        The partial-whitening convention (see above): total variance kept over the spanned
        directions, netrep's count of all directions, or the unscaled covariance form.
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

    bounds = angular_or_euclidean_bounds(np.pi)
    invariances = param_dependent(_shape_invariances)
    reference = _REFERENCE_SHAPE
    # netrep's count makes each side's whitening depend on the partner's width: across unequal
    # widths (or rank below the width) its Euclidean distance at alpha < 1 is not a metric
    #: the distance min_Q ||A - B Q|| is symmetric under every whitening, also where the
    #: triangle inequality fails (netrep's whitening at alpha < 1: see is_metric)
    symmetric = True
    is_metric = param_dependent(lambda self: not (
        getattr(self, "whitening", "trace") == "netrep" and self.alpha != 1.0
        and self.score_method == "euclidean"))

    _parameter_constraints = {
        "alpha": [Interval(Real, 0, 1, closed="both")],
        "whitening": [Options(WHITENINGS)],
    }

    def __init__(self, alpha=1.0, score_method="angular", center_columns=True, layout=None,
                 whitening="trace"):
        self.alpha = alpha
        self.score_method = score_method
        self.center_columns = center_columns
        self.layout = layout
        self.whitening = whitening

    def _check_params(self):
        super()._check_params()
        alpha = self.alpha
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) \
                or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
        if self.whitening not in WHITENINGS:
            raise ValueError(f"whitening must be one of {WHITENINGS}, got {self.whitening!r}")

    # -- fitted maps: kept as LinearMap (factored when learned from fewer stimuli than
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
        try:
            Q = self._rotation
        except AttributeError:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute 'rotation_' (call fit first)"
            ) from None
        return Q.dense()

    # -- the rotation is formed when first used (rotation_, score, transform, gradients):
    # fit and fit_score need only the singular values of the cross-product, pairwise never
    # reads it. What it is formed from is kept (the cross-product, or copies of the rows
    # for the n-space route) and dropped once it is formed.
    @property
    def _rotation(self):
        fitted = self.__dict__
        Q = fitted.get("_rotation_map")
        if Q is None:
            pending = fitted.get("_rotation_pending")
            if pending is None:
                if "_rotation" in fitted:  # pickled before the rotation was deferred
                    return fitted["_rotation"]
                raise AttributeError("_rotation")
            Q = deferred_rotation(pending)
            fitted["_rotation_map"] = Q
            fitted.pop("_rotation_pending", None)
        return Q

    @_rotation.setter
    def _rotation(self, Q):
        self.__dict__["_rotation_map"] = Q
        self.__dict__.pop("_rotation_pending", None)

    def _defer_rotation(self, pending):
        self.__dict__.pop("_rotation_map", None)
        self.__dict__["_rotation_pending"] = pending

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
            return prepared_plain(A, name, self.center_columns)
        if A.shape[0] > A.shape[1]:
            # tall data: the whitener from the d x d Gram matrix where its estimated error is
            # negligible (simmetrics.metrics.whitening.gram_whitening), no SVD of the n x d data
            # and no whitened copy; else (ill-conditioned, large means, extreme scales) the SVD
            p = prepared_plain(A, name, self.center_columns)
            found = gram_whitening(p.data, p.sums, p.mean, p.colsq, alpha, self.whitening)
            if found is not None:
                Z, sv, _, total = found
                return _Whitened(p.data, p.sums, p.colsq, p.mean, Z, (sv, 0), True, total)
        # the whitening is learned on accurately centred data (two passes, see
        # simmetrics._core.linalg.center): with large means, X - mean_x_ keeps a constant rounding
        # residual that the whitening would take for a direction of the data
        check_one(A, name, self.center_columns)
        # data out of range (1e-310, 1e300) are centred and whitened times a power of two
        # (exact), so that no SVD meets subnormal numbers; only the whitened data go back
        top = abs_max(A)
        e = 0 if SAFE_LOW <= top <= SAFE_HIGH else int(np.frexp(top)[1])
        As = times_pow2(A, -e) if e else A
        with np.errstate(under="ignore"):  # means and whitened data of subnormal inputs
            if self.center_columns:
                mean, Ac = times_pow2(As.mean(axis=0), e), center(As)
            else:
                mean, Ac = np.zeros(A.shape[1]), As
            # the SVD of the centred data times a power of two (exact): the whitener of the
            # data as given, with no failed SVD and no overflow of 1/s
            top = abs_max(Ac)
            shift = int(np.frexp(top)[1]) if top > 0.0 else 0
            Ash = times_pow2(Ac, -shift)
            _, sv, Vt = orthonormal_basis(Ash)
            n = Ac.shape[0]
            if self.whitening == "covariance":
                Z = covariance_whitener(sv, Vt, alpha, e + shift, n)
                # alpha Xc + (1 - alpha) sqrt(n) Xc V diag(1/sigma) V', the second term
                # scale-free: formed from the rescaled data, no huge or tiny coefficients
                Aw = (1.0 - alpha) * np.sqrt(n) * (((Ash @ Vt.T) / sv) @ Vt)
                if alpha:
                    Aw = Aw + times_pow2(alpha * Ac, e)
            else:
                Z = whitener_from_spectrum(sv, Vt, alpha, e + shift, n=n)
                Aw = times_pow2(Z.apply(Ac), e) if e else Z.apply(Ac)
        with np.errstate(over="ignore", under="ignore"):
            colsq = np.einsum("ij,ij->j", Aw, Aw)
        return _Whitened(Aw, np.zeros(A.shape[1]), colsq, mean, Z, (sv, e + shift))

    def _netrep_count(self, p, width):
        """``whitening="netrep"``: the :class:`_Whitened` ``p`` rescaled by netrep's count of
        the ``width`` directions (a new object: ``pairwise`` shares ``p`` between pairs)."""
        if self.whitening != "netrep" or not isinstance(p, _Whitened):
            return p
        f = _netrep_factor(*p.spectrum, float(self.alpha), width)
        if f == 1.0:
            return p
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            if p.raw:  # the map carries the factor, the centred data stay
                out = _Whitened(p.data, p.sums, p.colsq, p.mean, _scaled_map(p.whitener, f),
                                p.spectrum, True, p.total * (f * f))
            else:
                out = _Whitened(p.data * f, p.sums * f, p.colsq * (f * f), p.mean,
                                _scaled_map(p.whitener, f), p.spectrum)
        if not (np.isfinite(f) and np.isfinite(out.sq)):
            # netrep's floor 1e-7 is in the data's units: far below them it dominates
            raise ValueError(
                "whitening='netrep': X or Y is too far from unit scale for netrep's eigenvalue "
                "floor 1e-7 (its rescale leaves the float range); use whitening='trace'")
        return out

    def _finalize_fit(self, a, b):
        width = max(a.data.shape[1], b.data.shape[1])
        a, b = self._netrep_count(a, width), self._netrep_count(b, width)
        self._whitener_x, self._whitener_y = a.whitener, b.whitener
        if use_n_space_route(a.n, width):
            # more neurons than stimuli: the nuclear norm from the triangular factors of the
            # two d x n transposes, the rotation (when used) in the span of the two row spaces;
            # no width x width SVD (d = 5,000, n = 10: milliseconds instead of minutes)
            self.mean_x_, self.mean_y_ = a.mean, b.mean
            A, B = a.centred(), b.centred()
            # the rows the rotation is formed from, never the caller's array or a shared state
            A, B = (M.copy() if M is p.data else M for M, p in ((A, a), (B, b)))
            self._defer_rotation(("rows", A, B, width))
            return a.sq, b.sq, n_space_nuclear_norm(A, B)
        return super()._finalize_fit(a, b)

    def _fit_alignment(self, Xw, Yw):
        """The rotation from the (padded, whitened) data themselves."""
        self._rotation = LinearMap(closest_optimal_rotation(cross_in_range(Yw, Xw))[0])

    def _fit_alignment_from_cross(self, a, b, C):
        # Q from the SVD U S V' of Yw'Xw = C' (formed when used); on these data
        # <Xw, Yw Q> = sum(S), which needs the singular values only, unless the cosine is
        # within 0.01 of 1 (sum(S) >= ||C||_F tells early), where the aligned data are formed
        aa, bb = a.sq, b.sq
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            near = np.linalg.norm(C) >= 0.99 * np.sqrt(aa) * np.sqrt(bb)
        if near:
            Q, sv = closest_optimal_rotation(C.T)
            self._rotation = LinearMap(Q)
        else:
            self._defer_rotation(("cross", C))
            sv = np.linalg.svd(C, compute_uv=False)
        return aa, bb, float(sv.sum())

    def _align(self, Xc, Yc):
        return self._align_whitened(self._whiten(Xc, self._whitener_x),
                                    self._whiten(Yc, self._whitener_y))

    def _aligned(self, a, b):
        width = max(a.data.shape[1], b.data.shape[1])
        a, b = self._netrep_count(a, width), self._netrep_count(b, width)
        return self._align_whitened(a.centred(), b.centred())  # prepared: already whitened

    def _transform(self, X, Y):
        Zx, Zy = self._fitted("_whitener_x", "whitener_x_"), self._whitener_y
        # partial or no whitening (or a map pickled before maps recorded their unit): the
        # fitted maps alone
        if getattr(Zx, "unit", None) is None:
            return super()._transform(X, Y)
        # full whitening: directions the training rows did not span, by the held-out rule
        # (class Notes): whitened on the scored stimuli, appended, aligned on them
        Mx, Ex = split_unseen(X, X - self.mean_x_, Zx)
        My, Ey = split_unseen(Y, Y - self.mean_y_, Zy)
        A, B = self._align_whitened(Mx, My)
        k = max(Ex.shape[1], Ey.shape[1])
        if k:
            Ex, Ey = zero_pad(Ex, k), zero_pad(Ey, k)
            A, B = np.hstack([A, Ex]), np.hstack([B, Ey @ procrustes_rotation(Ex, Ey)])
        return A, B

    def _align_whitened(self, Xw, Yw):
        width = self._rotation.width
        return zero_pad(Xw, width), self._rotation.apply(zero_pad(Yw, width))

    # -- gradients (simmetrics.functional) --------------------------------------------------
    def _gradient_formula(self, X, Y, nx):
        """The distance on the fitted rows with the fitted rotation Q held fixed (Danskin's
        theorem: at the optimal Q the gradient of min_Q is that of the objective), through the
        centring and the whitening (its polar factor as a first-order expansion, finite at
        repeated singular values; the rank the fit kept held fixed): every ``alpha``,
        ``whitening``, ``score_method`` and ``center_columns``. Where the gradient exists
        and what it is elsewhere: :mod:`simmetrics.metrics.shape_gradient`."""
        fitted = (float(self.alpha), self.whitening, bool(self.center_columns),
                  self.score_method, self._whitener_x, self._whitener_y, self._rotation,
                  NETREP_EIGENVALUE_FLOOR)
        return shape_distance_formula(X, Y, fitted, nx)

    # -- streaming with whitening: the statistics' factor, or a checked square root ---------
    @property
    def _moments_factor(self):
        """stream_score accumulates PairMoments.factor for the whitening (alpha < 1) and for
        uncentred data: the whitener, the rotation and the distance then come from rows that
        stand in for the data (PairMoments.factor_rows), with the data's conditioning. (An
        uncentred distance from ||X||^2 + ||Y||^2 - 2 <X, Y Q> cancels its digits when the means
        are far larger than the spread: 1e4 + z lost 7 of them, 3e5 + 1e-2 z all but one.)"""
        return float(self.alpha) != 1.0 or not self.center_columns

    def _moments_whitener(self, A, n, alpha, width):
        """The whitener (:func:`whitener_from_spectrum`, or the covariance form) of data with
        rows ``A`` standing in for their n rows, by the whole-data rank rule
        (:func:`simmetrics.moments.rows_svd`); ``width`` the common width (netrep's count)."""
        _, s, Vt, e = rows_svd(A, n)
        if self.whitening == "covariance":
            # (C/n)^(-1/2) has the inverse units of the data (the trace rule's map has none):
            # rows at the statistics' level 2^-k give the map in the data's units with e + k
            return covariance_whitener(s, Vt, alpha, e + self._moments_level, n)
        Z = whitener_from_spectrum(s, Vt, alpha, e)
        if self.whitening == "netrep":
            f = _netrep_factor(s, e, alpha, width)
            if f != 1.0:
                Z = _scaled_map(Z, f)
        return Z

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
            self._whitener_x = self._moments_whitener(A, S.n, alpha, width)
            self._whitener_y = self._moments_whitener(B, S.n, alpha, width)
            self._fit_alignment(zero_pad(self._whiten(A, self._whitener_x), width),
                                zero_pad(self._whiten(B, self._whitener_y), width))
            return
        if alpha != 1.0:
            Mx, My = self._check_gram_route(S)
            self._whitener_x = self._moments_whitener(Mx, S.n, alpha, width)
            self._whitener_y = self._moments_whitener(My, S.n, alpha, width)
        C = pad2(self._whitened_moments(S)[2], width, width)
        self._rotation = LinearMap(closest_optimal_rotation(pow2_rescale(C.T))[0])

    def _distance_from_moments(self, S):
        if S.factor is not None and self._moments_factor:  # the whole-data distance, on rows
            return distance(*self._align(*S.factor_rows()), self.score_method)
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
        chordal:   2 sin(angular / 2) = sqrt(2 - 2 ||Xc' Yc||_* / (||Xc||_F ||Yc||_F))

    (||.||_* the nuclear norm; the closed forms hold on the fitting data: held-out stimuli,
    scored with the fitted means and Q, give angles up to pi, and ``bounds`` is [0, pi]). For
    d > n the rotation is found in the n-space (see :class:`ShapeMetric`). Williams et al. 2021;
    the angular form is Procrustes' shape distance of Kendall's shape space. A **distance** and a
    metric; invariant to orthogonal maps, permutations, sign flips and translations, and
    (angular) to isotropic scaling.

    The peers' names: ReSi's ``orthogonal_angular_shape_metric_centered`` is the angular form,
    ``procrustes_size_and_shape_distance`` the Euclidean one (Dryden & Mardia's size-and-shape
    distance), ``orthogonal_procrustes_centered_and_normalized`` the chordal one (mklabunde/resi;
    Klabunde et al., ACM Computing Surveys 2025); netrep's ``LinearMetric(alpha=1)`` and Lange's
    ``AngularShapeMetric``/``EuclideanShapeMetric(alpha=1)`` give the same values.

    Parameters
    ----------
    score_method : {"angular", "euclidean", "chordal"}, default "angular"
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

    alpha = 1.0  # fixed: not parameters of this class
    whitening = "trace"

    def __init__(self, score_method="angular", center_columns=True, layout=None):
        self.score_method = score_method
        self.center_columns = center_columns
        self.layout = layout
