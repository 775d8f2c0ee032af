"""Centred alignment: what every shape metric does besides finding its alignment.

Each shape metric (Williams et al. 2021; netrep's conventions, see
:mod:`simmetrics.metrics.shape`) centres the neurons with means learned in ``fit``, zero-pads the
narrower representation where its group needs equal widths, aligns the two by the best element
of a group of isometries, and measures an angle or a Euclidean distance. This module holds the
parts that do not depend on the group:

- :func:`zero_pad` and :func:`angular_distance` (Kahan's accurate angle), and :func:`distance`,
  the score between two aligned matrices;
- :class:`Prepared` and :func:`prepared_plain`: one representation made ready for the pair step
  (centred, or near enough to centred that its products are corrected analytically);
- :class:`CenteredAlignment`: the base class of the shape metrics (parameter and data checks,
  fit from the centred cross-products, scores on the fitting data from closed forms, and the
  streaming hooks from second moments). Subclasses supply the alignment: rotations
  (:mod:`simmetrics.metrics.shape`), permutations and transport plans
  (:mod:`simmetrics.metrics.matching`).
"""

import numpy as np

from .._core.backend import to_numpy
from .._core.linalg import (
    clearly_varying,
    frobenius_norm,
    looks_near_centred,
    near_centred,
    times_pow2,
)
from .._core.params import Boolean, Options
from .._core.solvers import SAFE_HIGH, SAFE_LOW, pad2
from .._core.validation import check_nonconstant
from ..base import AlignmentMetric, param_dependent
from ..moments import check_nonconstant_moments

__all__ = [
    "CenteredAlignment",
    "Prepared",
    "prepared_plain",
    "check_one",
    "zero_pad",
    "angular_distance",
    "chordal_from_angle",
    "distance",
    "angular_or_euclidean_bounds",
    "SCORE_METHODS",
]


#: "chordal" is the Euclidean distance between the aligned representations each scaled to unit
#: Frobenius norm, sqrt(2 - 2 cos) = 2 sin(angle / 2) (ReSi's
#: ``orthogonal_procrustes_centered_and_normalized``).
SCORE_METHODS = ("angular", "euclidean", "chordal")


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
    if SAFE_LOW <= na <= SAFE_HIGH and SAFE_LOW <= nb <= SAFE_HIGH:
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


def distance(A, B, score_method):
    """The score between two aligned matrices: :func:`angular_distance` ("angular"), the
    Frobenius norm of their difference ("euclidean"), or the chord between them scaled to unit
    norm, ||A/||A|| - B/||B||||_F = 2 sin(angle / 2) ("chordal", computed from the accurate
    angle, so that it keeps its digits near 0 where sqrt(2 - 2 cos) loses half of them)."""
    if score_method == "angular":
        return angular_distance(A, B)
    if score_method == "chordal":
        return chordal_from_angle(angular_distance(A, B))
    return frobenius_norm(A - B)


def chordal_from_angle(angle):
    """The chordal distance 2 sin(angle / 2) = sqrt(2 - 2 cos(angle)) between two unit vectors
    at ``angle``."""
    return float(2.0 * np.sin(0.5 * angle))


#: The largest ratio of a neuron's raw to its centred sum of squares for which the cross
#: products are taken about 0 and moved to the means analytically, with no centred copy of the
#: data (see :func:`simmetrics._core.linalg.near_centred`).
_RAW_OVER_CENTRED = 16.0
#: Cosines below this (in magnitude) give accurate angles and distances from the closed forms
#: on the fitting data; closer to +-1 the aligned data are formed (accurate near 0 and pi).
_CLOSED_FORM_COSINE = 0.99


class Prepared:
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
        return M if SAFE_LOW <= top <= SAFE_HIGH else None


def prepared_plain(A, name, center_columns):
    """:class:`Prepared` of a representation without whitening, with as few passes over the
    data as accuracy allows: neurons near enough to centred are used as they are (column sums
    and squares, then corrected products), others are shifted by their one-pass mean (one
    copy); the zero-variance test (or, uncentred, the all-zero test) names ``name``."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if not center_columns:
            check_one(A, name, center_columns)
            zeros = np.zeros(A.shape[1])
            return Prepared(A, zeros, np.einsum("ij,ij->j", A, A), zeros)
        n = A.shape[0]
        mean = None
        if looks_near_centred(A, _RAW_OVER_CENTRED):
            raw, sums = np.einsum("ij,ij->j", A, A), A.sum(axis=0)
            mean = sums / n  # numpy's mean, bit for bit
            if near_centred(raw, sums, n, _RAW_OVER_CENTRED):
                return _checked(Prepared(A, sums, raw - sums * sums / n, mean), A, name)
        if mean is None:
            mean = A.mean(axis=0)
        Z = A - mean
        sums = Z.sum(axis=0)
        colsq = np.einsum("ij,ij->j", Z, Z) - sums * sums / n
    return _checked(Prepared(Z, sums, colsq, mean), A, name)


def check_one(A, name, center_columns):
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


class CenteredAlignment(AlignmentMetric):
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
    _score_methods = SCORE_METHODS
    _parameter_constraints = {
        "score_method": [Options(SCORE_METHODS)],
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
            check_one(A, name, self.center_columns)

    def _partial_fit(self, A, name):
        self._check_params()
        return prepared_plain(A, name, self.center_columns)

    def _fit(self, X, Y):
        self._finalize_fit(self._partial_fit(X, "X"), self._partial_fit(Y, "Y"))

    def _finalize_fit_score(self, a, b):
        """Fit on the pair, then the distance on the same data: from ||A||^2, ||B||^2 and
        <A, aligned B> that the fit computed, where that closed form is accurate; else from the
        aligned data."""
        products = self._finalize_fit(a, b)
        if products is not None:
            aa, bb, ab = products
            if SAFE_LOW**2 <= min(aa, bb) and max(aa, bb) <= SAFE_HIGH**2:
                if abs(ab / np.sqrt(aa) / np.sqrt(bb)) < _CLOSED_FORM_COSINE:
                    return _distance_from_products(aa, bb, ab, self.score_method)
        return distance(*self._aligned(a, b), self.score_method)

    def _aligned(self, a, b):
        """The aligned pair of the fitting data, from their :class:`Prepared`."""
        return self._align(a.centred(), b.centred())

    def _finalize_fit(self, a, b):
        """Learn the alignment from two :class:`Prepared`; return (||A||^2, ||B||^2,
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
        return distance(*self._transform(X, Y), self.score_method)

    # -- streaming (simmetrics.stream_score): the same fit and score from second moments ----
    # Without whitening both need only Xc'Xc, Yc'Yc and Xc'Yc about the fitted means (the
    # angle, arccos of a cosine formed from them, has an error of about sqrt(eps) near 0;
    # whole data use 2 atan2(||a - b||, ||a + b||)). The whitening shape metrics use the
    # statistics' factor instead (ShapeMetric, in shape.py).
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

    #: the power-of-two level k of the statistics being fitted, for the maps that carry the
    #: data's units (ShapeMetric's covariance whitening); 0 outside _fit_from_moments
    _moments_level = 0

    def _fit_from_moments(self, stats):
        self._check_params()
        S, k = self._one_level(stats.to_numpy())
        self._check_moments(S)
        if self.center_columns:
            self.mean_x_, self.mean_y_ = S.x.mean, S.y.mean
        else:
            self.mean_x_, self.mean_y_ = np.zeros(S.x.width), np.zeros(S.y.width)
        self._moments_level = k
        try:
            self._fit_alignment_from_moments(S.shifted(self.mean_x_, self.mean_y_))
        finally:
            self._moments_level = 0

    def _score_from_moments(self, stats):
        self._check_params()
        S, k = self._one_level(stats.to_numpy())
        self._check_moments(S)
        value = self._distance_from_moments(S.shifted(self.mean_x_, self.mean_y_))
        return float(times_pow2(value, k)) if k else value  # in the data's units

    def _distance_from_moments(self, S):
        return _distance_from_products(*self._aligned_products(S), self.score_method)


def _distance_from_products(aa, bb, ab, score_method):
    """:func:`distance` of aligned A, B from ||A||^2, ||B||^2 and <A, B>: arccos of the
    cosine, or sqrt(||A||^2 + ||B||^2 - 2 <A, B>)."""
    if score_method in ("angular", "chordal"):
        for name, sq in (("X", aa), ("Y", bb)):
            if not sq > 0.0:
                raise ValueError(
                    f"the aligned {name} is zero (no variance left after centring with the "
                    "fitted means and whitening), so the angular distance is undefined"
                )
        angle = float(np.arccos(np.clip(ab / np.sqrt(aa) / np.sqrt(bb), -1.0, 1.0)))
        return angle if score_method == "angular" else chordal_from_angle(angle)
    return float(np.sqrt(max(aa + bb - 2.0 * ab, 0.0)))


def angular_or_euclidean_bounds(high):
    """Bounds by score method: [0, high] for the angle, [0, 2 sin(high / 2)] for the chord
    (2 at high = pi), [0, inf) for the Euclidean distance."""
    def bounds(self):
        if self.score_method == "angular":
            return (0.0, high)
        if self.score_method == "chordal":
            return (0.0, float(2.0 * np.sin(0.5 * high)) if high < np.pi else 2.0)
        return (0.0, np.inf)
    return param_dependent(bounds)
