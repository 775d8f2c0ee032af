"""Linear centered kernel alignment (CKA), biased and debiased: the formulas and LinearCKA.

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))

Kornblith, Norouzi, Lee, Hinton, "Similarity of Neural Network Representations Revisited",
ICML 2019. The debiased form uses the unbiased HSIC of Song et al. 2012 in the numerator and in
both self-terms (Nguyen, Raghu, Kornblith, ICLR 2021), never a mix of the two.

In this module: :func:`linear_cka` (whole data), the feature-space statistics of one
representation, :func:`linear_cka_from_moments` (the one feature-space formula, shared with
streaming) and :class:`LinearCKA`. The choice of the n x n Gram route, its factors and the
tiled route for many pairs are in :mod:`simmetrics.metrics.cka_gram`; kernel CKA (RBF kernels,
the median bandwidth) in :mod:`simmetrics.metrics.kernel_cka`.
"""

import numpy as np

from .._core.backend import get_backend, is_tensor, to_numpy
from .._core.linalg import center, clearly_varying, looks_near_centred, near_centred, pow2_rescale
from .._core.params import Boolean, Options
from .._core.registry import register
from .._core.validation import check_nonconstant
from .cka_gradient import linear_cka_formula
from ..base import Metric, param_dependent
from .cka_gram import gram_cheaper, gram_factor, gram_space, gram_space_cka, tiled_kernel_sums
from .hsic import (
    unbiased_hsic_terms,
    cka_from_hsic,
    hsic_unbiased_from_sums,
    linear_hsic_unbiased_columns,
    linear_hsic_unbiased_parts,
)
from ..moments import (
    check_nonconstant_array,
    check_nonconstant_moments,
    pair_from_sides,
    side,
)

__all__ = ["LinearCKA", "linear_cka", "linear_cka_from_moments", "ESTIMATORS", "check_estimator",
           "gretton_song_cka", "lange_cka", "lange_cka_from_moments", "chun_cka", "chun_factor"]

CKA_INVARIANCES = frozenset(
    {"orthogonal", "signed_permutation", "permutation", "isotropic_scaling", "translation"}
)
#: Chun et al.'s self-terms remove the same-neuron products: a rotation of the neurons changes
#: them, a permutation or a sign flip of neurons does not
CHUN_INVARIANCES = CKA_INVARIANCES - {"orthogonal"}

#: The estimators of linear CKA (see :class:`LinearCKA`).
ESTIMATORS = ("gretton", "song", "lange", "chun")
_BOUNDS = {"gretton": (0.0, 1.0), "song": (-1.0, 1.0), "lange": (-1.0, 1.0),
           "chun": (-np.inf, np.inf)}


def _estimator(estimator, debiased):
    """The estimator a (estimator, debiased) pair names, without checking that they agree."""
    if estimator is None:
        return "song" if debiased else "gretton"
    return estimator


def check_estimator(estimator, debiased):
    """The estimator named by ``estimator`` and ``debiased`` (``estimator=None``: "song" when
    ``debiased`` else "gretton"); ``debiased=True`` with another estimator is a
    ``ValueError`` naming both."""
    if debiased and estimator not in (None, "song"):
        raise ValueError(
            f"debiased=True and estimator={estimator!r} disagree: debiased=True is Song's "
            "unbiased estimator (estimator='song'); pass estimator alone, or debiased alone")
    return _estimator(estimator, debiased)


def linear_cka(X, Y, debiased=False, estimator=None):
    """Linear CKA with one of the :data:`ESTIMATORS` (None: from ``debiased``, as below).

    "gretton" and "song" are :func:`gretton_song_cka`; "lange" is :func:`lange_cka`, "chun"
    :func:`chun_cka`.
    """
    estimator = check_estimator(estimator, bool(debiased))
    if estimator == "lange":
        return lange_cka(X, Y)
    if estimator == "chun":
        return chun_cka(X, Y)
    return gretton_song_cka(X, Y, estimator == "song")


def gretton_song_cka(X, Y, debiased=False):
    """Linear CKA of two centred-or-not float64 matrices (no input checking but zero variance).

    Feature space when that is cheaper (:func:`gram_space`): biased CKA is
    ||Xc'Yc||_F^2 / (||Xc'Xc||_F ||Yc'Yc||_F), equal to the RV coefficient of Escoufier (1973);
    the debiased form uses the exact feature-space unbiased HSIC
    (:func:`simmetrics.metrics.hsic.linear_hsic_unbiased_sums`). Both are evaluated by
    :func:`linear_cka_from_moments` on the data's second moments, the function streaming uses.
    When n is small against the widths the n x n Gram matrices are cheaper and are used instead;
    both routes give the same value. The debiased feature-space formula loses its digits when
    one stimulus dominates the sums of squared row norms (its rounding errors grow like
    eps (k_max / typical |x_i'x_j|)^2); that is detected from the same sums (O(d), see
    :func:`linear_cka_from_moments`) and the value then comes from the n x n route
    (:func:`gram_space_cka`), which keeps them. Torch tensors are kept on their device (feature
    space, products in float64 there; the rare n x n fallback runs on the CPU).

    Returns
    -------
    float
        In [0, 1] biased; in [-1, 1] debiased (the unbiased HSIC is an inner product of
        U-centred Gram matrices, so Cauchy-Schwarz bounds the ratio).
    """
    debiased = bool(debiased)
    if not _gram_route(X, Y):
        sides = (_feature_side(X, "X", debiased), _feature_side(Y, "Y", debiased))
        return _cka_of_sides(*sides, debiased)
    F, G = gram_factor(X, debiased), gram_factor(Y, debiased)
    K, L = F @ F.T, G @ G.T
    if debiased:
        return _unbiased_cka_of_kernels(K, L)
    return cka_from_hsic(np.sum(K * L), np.sum(K * K), np.sum(L * L), "biased")


def _gram_route(X, Y):
    """Whether the linear CKA of X and Y goes through the n x n kernels: numpy input with n
    small against the widths (:func:`gram_space`); tensors stay on their device, in feature
    space."""
    numpy = not (is_tensor(X) or is_tensor(Y))  # backend site: the n x n route is numpy's
    return numpy and gram_space(X.shape[0], X.shape[1], Y.shape[1])


def _unbiased_cka_of_kernels(K, L):
    """Debiased CKA of two n x n linear kernels that may be overwritten: their diagonals are
    set to zero in place, so that tr(K~ L~) and the row sums K~ 1 are sums of the off-diagonal
    entries themselves. Subtracting the diagonal's share from sums that include it
    (sum K L - diag(K)'diag(L)) cancels digits in proportion to (largest squared row norm /
    typical |K_ij|)^2, all of them when one stimulus dominates."""
    n = K.shape[0]
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs at least 4 samples, got {n}")
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(L, 0.0)
    k, l = K.sum(axis=1), L.sum(axis=1)
    return cka_from_hsic(
        hsic_unbiased_from_sums(n, np.vdot(K, L), k, l),
        hsic_unbiased_from_sums(n, np.vdot(K, K), k, k),
        hsic_unbiased_from_sums(n, np.vdot(L, L), l, l),
        "unbiased",
    )


def _cka_of_sides(a, b, debiased):
    """Linear CKA of two :class:`simmetrics.moments.Side`: feature space, unless the debiased
    value has lost its digits there (one dominant stimulus, see :func:`linear_cka_from_moments`):
    then the n x n route of :func:`gram_space_cka` on the sides' data (shifted and scaled
    copies of X and Y, which neither CKA depends on; torch tensors come to the CPU), which
    keeps them at O(n^2 d) work and bounded memory."""
    value, trusted = _cka_from_moments(pair_from_sides(a, b), debiased)
    if trusted:
        return value
    return gram_space_cka([to_numpy(a.data), to_numpy(b.data)], [(0, 1)], debiased=True)[0]


# The spread (root mean square of the centred entries) inside which the statistics computed
# directly from the data are trusted: their squares and fourth powers (the debiased HSIC's row
# terms) then stay far inside the float64 range; outside it, the data are rescaled first.
_SAFE_SPREAD = (2.0**-200, 2.0**200)

# How far from centred data may be for their statistics to be taken about 0 (no centred copy;
# see simmetrics._core.linalg.near_centred): the ratio of raw to centred sums of squares, which the
# move to the means multiplies rounding errors by (its square for the fourth-order row terms of
# the debiased HSIC). Post-ReLU activations have ratios of about 1.5.
_RAW_OVER_CENTRED = {False: 16.0, True: 4.0}


def _feature_side(A, name, debiased):
    """The per-representation statistics of feature-space linear CKA (a
    :class:`simmetrics.moments.Side`), with as few passes over the data as the accuracy allows.

    Data near enough to centred (judged first on a subsample, then on the exact statistics;
    see ``_RAW_OVER_CENTRED``) are used as they are: the products Z'Z, Z'W are taken about 0 and
    moved to the exact means analytically, with no copy of the data. Others are shifted by their
    one-pass mean first (one copy; the residual is again moved exactly). If a statistic is not
    finite, or the spread is outside [2^-200, 2^200] (squares or fourth powers may have over- or
    underflowed), the data are centred and rescaled by an exact power of two, which CKA ignores,
    and the statistics recomputed. The column extremes (the exact zero-variance test) are read
    only when the variance is small enough to be the rounding noise of constant columns; a
    representation with zero variance raises a ``ValueError`` naming ``name``.
    """
    # a tensor is centred on its device (one copy there); numpy data take the near-centred
    # shortcut below, which needs no copy
    if is_tensor(A):  # backend site: the device route of a tensor (see above)
        return _torch_side(A, name, debiased)
    limit = _RAW_OVER_CENTRED[debiased]
    shift = 0 if looks_near_centred(A, limit) else "mean"
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        out = side(A, shift, row_terms=debiased, extrema=False)
        rep = out.moments
        if shift == 0 and not near_centred(np.diag(rep.gram), rep.sum, rep.n, limit):
            out = side(A, "mean", row_terms=debiased, extrema=False)
    if not _trusted(out.moments):
        out = side(pow2_rescale(center(A)), 0, row_terms=debiased, extrema=False)
    rep = out.moments
    centred_sq = float(np.trace(rep.gram)) - float(rep.sum @ rep.sum) / rep.n
    if not clearly_varying(centred_sq, rep.mean, rep.n):
        rep.minimum, rep.maximum = A.min(axis=0), A.max(axis=0)
        check_nonconstant_moments(rep, name)
    return out


def _trusted(rep):
    """Whether one representation's statistics are finite and its spread inside
    ``_SAFE_SPREAD`` (then every cross term with another trusted one is in range too)."""
    spread = np.sqrt(max(float(np.trace(rep.gram)), 0.0) / (rep.n * rep.width))
    if not _SAFE_SPREAD[0] <= spread <= _SAFE_SPREAD[1]:
        return False
    parts = (rep.sum, rep.gram, rep.row_sq_sum, rep.row_sq_sq)
    return all(np.all(np.isfinite(p)) for p in parts if p is not None)


def _torch_side(A, name, debiased):
    """:func:`_feature_side` of a validated float64 torch tensor, on its device: two-pass
    centring (as :func:`simmetrics._core.linalg.center`), an exact power-of-two rescaling and unit
    norm, then the statistics about 0; the zero-variance test is exact (column ranges)."""
    nx = get_backend(A)
    check_nonconstant_array(A, name)
    A = nx.asarray(A)
    Z = A - A.mean(0)  # one copy on the device; everything after it works in place
    Z -= Z.mean(0)
    top = max(float(nx.amax(Z, None)), -float(nx.amin(Z, None)))
    if top > 0.0:
        Z *= 2.0 ** -int(np.frexp(top)[1])  # exact, as _linalg.pow2_rescale
        nx.unit_norm(Z)
    return side(Z, 0, row_terms=debiased, extrema=False)


#: The debiased CKA from second moments is trusted while its rounding-error amplification
#: (:func:`_moments_amplification`) is at most this: eps times it is then below 1.5e-11, the
#: accuracy the streaming and whole-data routes are held to (ordinary data: 2 to 20, d / n).
_MAX_AMPLIFICATION = 2.0**16


def _moments_amplification(parts):
    """By how much the feature-space debiased CKA multiplies rounding errors, from the
    (value, magnitude) of its three unbiased HSICs: the error of HSIC1(X, Y) relative to
    sqrt(HSIC1(X, X) HSIC1(Y, Y)) (the scale CKA divides by, as HSIC1(X, Y) may be near 0),
    plus half the relative errors of the two self-terms. Measured against exact rational
    arithmetic the error stays below eps times this (tests/core/test_trust_moments.py). inf where a
    self-term is exactly 0 (its sign unknown)."""
    (xy, mxy), (xx, mxx), (yy, myy) = parts
    if xx == 0.0 or yy == 0.0:
        return np.inf
    return float(mxy / np.sqrt(abs(xx) * abs(yy)) + 0.5 * (mxx / abs(xx) + myy / abs(yy)))


def _cka_from_moments(stats, debiased):
    """(CKA, trusted): :func:`linear_cka_from_moments` without the error for statistics whose
    debiased CKA has lost its digits (``trusted`` False, the value NaN; see
    :func:`_moments_amplification`)."""
    if debiased and not stats.has_row_terms:
        raise ValueError("the debiased CKA needs statistics with row_terms=True")
    S = stats.to_numpy()
    if debiased:
        S = S.centred()
        tx, ty = np.trace(S.x.gram), np.trace(S.y.gram)  # ||Xc||_F^2, ||Yc||_F^2
        if tx > 0.0 and ty > 0.0:
            S = S.scaled(1.0 / np.sqrt(tx), 1.0 / np.sqrt(ty))
        parts = unbiased_hsic_terms(S, magnitudes=True)
        if not _moments_amplification(parts) <= _MAX_AMPLIFICATION:
            return np.nan, False
        return cka_from_hsic(*(value for value, _ in parts), "unbiased"), True
    # centred products Xc'Yc = Z'W - s t'/n (the move to the exact means, in one step), each
    # scaled to unit total variance in place, then three dot products: a few d x d passes
    n, s, t = S.n, S.x.sum, S.y.sum
    Gx = S.x.gram - np.outer(s, s / n)
    Gy = S.y.gram - np.outer(t, t / n)
    C = S.cross - np.outer(s, t / n)
    tx, ty = np.trace(Gx), np.trace(Gy)
    if tx > 0.0 and ty > 0.0:
        Gx /= tx
        Gy /= ty
        C /= np.sqrt(tx) * np.sqrt(ty)
    return cka_from_hsic(np.vdot(C, C), np.vdot(Gx, Gx), np.vdot(Gy, Gy), "biased"), True


def linear_cka_from_moments(stats, debiased=False):
    """Linear CKA from the exact second-moment statistics of X and Y (:class:`PairMoments`).

    The one implementation of feature-space linear CKA: :func:`linear_cka` (whole data) and
    :func:`simmetrics.stream_score` (batches) both call it. The statistics are first moved to
    the exact column means and scaled to unit total variance (CKA ignores both), then::

        biased:    ||Xc'Yc||_F^2 / (||Xc'Xc||_F ||Yc'Yc||_F)
        debiased:  HSIC1(X, Y) / sqrt(HSIC1(X, X) HSIC1(Y, Y)),  HSIC1 from
                   :func:`simmetrics.metrics.hsic.linear_hsic_unbiased_sums`

    The debiased form subtracts the diagonal's share sum_i ||x_i||^2 ||y_i||^2 from sums that
    include it; when one stimulus dominates them, that cancels the digits (rounding errors are
    amplified by about (k_max / typical |x_i'x_j|)^2). The amplification is estimated from
    the same sums (O(d), :func:`_moments_amplification`), and beyond 2^16 (errors above
    1.5e-11) a ``ValueError`` says so: no value is returned. The whole-data estimators then
    take the n x n route instead, which keeps the digits.

    Parameters
    ----------
    stats : PairMoments
        With row terms when ``debiased``.
    debiased : bool, default False

    Returns
    -------
    float
        A **similarity** in [0, 1] (biased) or [-1, 1] (debiased).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5))
    >>> Y = X @ rng.normal(size=(5, 3)) + rng.normal(size=(200, 3))
    >>> from simmetrics import PairMoments
    >>> stats = sum(PairMoments.from_arrays(X[i:i + 50], Y[i:i + 50]) for i in range(0, 200, 50))
    >>> bool(abs(linear_cka_from_moments(stats) - linear_cka(X, Y)) < 1e-12)
    True
    """
    value, trusted = _cka_from_moments(stats, debiased)
    if not trusted:
        raise ValueError(_LOST_DIGITS)
    return value


_LOST_DIGITS = (
    "the debiased CKA cannot be computed from these second-moment statistics without losing "
    "most of its digits: one stimulus (row) has a squared norm ||x_i||^2 ||y_i||^2 that "
    "dominates the sums, and the unbiased HSIC subtracts that diagonal share from them "
    "(rounding errors grow like eps (k_max / typical |x_i'x_j|)^2). Compute "
    "LinearCKA(debiased=True).fit_score(X, Y) on the whole data (its n x n route keeps the "
    "digits), use the biased LinearCKA(), which has no such term, or check that stimulus"
)


# -- Lange's estimator: the centred kernels with zero diagonals ------------------------------
def lange_cka(X, Y):
    """Linear CKA with Lange's estimator (repsim's ``AngularCKA`` default, whose arccos is its
    angle): the cosine of the centred linear kernels after their diagonals are set to zero::

        K0 = HKH - diag(HKH),   CKA_Lange = <K0, L0>_F / (||K0||_F ||L0||_F)

    In feature space <K0, L0> = ||Xc'Yc||_F^2 - sum_i ||xc_i||^2 ||yc_i||^2 (and likewise the
    norms), from the second moments and the row-norm terms (:func:`lange_cka_from_moments`);
    the n x n kernels where n is small against the widths, or where the subtraction of the
    diagonal's share has lost the digits (one dominant stimulus; the tiles of
    :func:`simmetrics.metrics.cka_gram.gram_space_cka`). In [-1, 1].
    """
    if _gram_route(X, Y):
        F, G = gram_factor(X), gram_factor(Y)
        return _lange_of_kernels(F @ F.T, G @ G.T)
    return _lange_of_sides(_feature_side(X, "X", True), _feature_side(Y, "Y", True))


def _lange_of_kernels(K, L):
    """Lange's CKA of two centred n x n kernels that may be overwritten (diagonals zeroed)."""
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(L, 0.0)
    return cka_from_hsic(np.vdot(K, L), np.vdot(K, K), np.vdot(L, L), _LANGE)


def _lange_of_sides(a, b):
    """Lange's CKA from two sides with row terms, or the n x n route when the moments' value
    is not trusted (see :func:`_lange_from_moments`)."""
    value, trusted = _lange_from_moments(pair_from_sides(a, b))
    if trusted:
        return value
    return gram_space_cka([to_numpy(a.data), to_numpy(b.data)], [(0, 1)], lange=True)[0]


_LANGE = "zero-diagonal (Lange)"


def _lange_from_moments(stats):
    """(Lange's CKA, trusted) from :class:`PairMoments` with row terms: the statistics moved
    to the exact means and scaled to unit total variance, then the three inner products less
    the diagonals' shares. Not trusted (NaN) when those subtractions amplify rounding errors
    more than ``_MAX_AMPLIFICATION`` (magnitudes over values, as :func:`_moments_amplification`)."""
    if not stats.has_row_terms:
        raise ValueError("Lange's CKA needs statistics with row_terms=True")
    S = stats.to_numpy().centred()
    tx, ty = np.trace(S.x.gram), np.trace(S.y.gram)
    if tx > 0.0 and ty > 0.0:
        S = S.scaled(1.0 / np.sqrt(tx), 1.0 / np.sqrt(ty))
    squares = (np.vdot(S.cross, S.cross), np.vdot(S.x.gram, S.x.gram),
               np.vdot(S.y.gram, S.y.gram))
    diagonals = (S.row_cross, S.x.row_sq_sq, S.y.row_sq_sq)
    parts = [(float(q - r), float(q + abs(r))) for q, r in zip(squares, diagonals)]
    if not _moments_amplification(parts) <= _MAX_AMPLIFICATION:
        return np.nan, False
    return cka_from_hsic(*(value for value, _ in parts), _LANGE), True


def lange_cka_from_moments(stats):
    """Lange's CKA (:func:`lange_cka`) from second-moment statistics with row terms; a
    ``ValueError`` where one dominant stimulus would cost it its digits (as
    :func:`linear_cka_from_moments`)."""
    value, trusted = _lange_from_moments(stats)
    if not trusted:
        raise ValueError(_LOST_DIGITS.replace("debiased CKA", "zero-diagonal (Lange) CKA")
                         .replace("debiased=True", "estimator='lange'"))
    return value


# -- Chun et al. 2025: input- and feature-corrected self-terms ---------------------------------
def chun_cka(X, Y):
    """Linear CKA with the estimator of Chun, Canatar, Chung and Lee 2025, corrected for the
    sampling of inputs and of features::

        CKA_Chun = HSIC1(X, Y) / sqrt(D(X) D(Y)),
        D(X) = Q/(Q - 1) [HSIC1(XX', XX') - sum_a HSIC1(x_a x_a', x_a x_a')]

    with HSIC1 Song's unbiased HSIC, Q the width of X and x_a its columns: the self-terms keep
    only the products of two different neurons. It estimates the CKA of infinitely many
    i.i.d. neurons, and is **not bounded by 1** (neurons that are correlated, not i.i.d., give
    values above 1). Computed as Song's CKA (:func:`gretton_song_cka`) times the per-representation
    factors of :func:`chun_factor`.
    """
    value = gretton_song_cka(X, Y, True)
    return value / np.sqrt(chun_factor(X, "X") * chun_factor(Y, "Y"))


def chun_factor(A, name):
    """D(A) / HSIC1(AA', AA') of :func:`chun_cka`: Q/(Q - 1) (1 - same-neuron share), from
    the column-shifted copy of A at unit norm (:func:`gram_factor`; every term is shift
    invariant). The self-HSIC in feature space, or from kernel tiles where the feature-space
    sums would lose its digits (one dominant stimulus). A ``ValueError`` naming ``name`` where
    A has one neuron, or where the corrected self-term is not positive to within rounding
    (neurons (nearly) uncorrelated)."""
    n, width = A.shape
    if width < 2:
        raise ValueError(f"{name} has 1 neuron: Chun et al.'s feature-corrected CKA removes the "
                         "same-neuron products and needs at least 2 neurons")
    F = gram_factor(to_numpy(A), True)
    k = np.einsum("ij,ij->i", F, F)
    s, first = F.sum(axis=0), F.T @ k
    total, magnitude = linear_hsic_unbiased_parts(n, F.T @ F, k @ k, s, s, k.sum(), k.sum(),
                                                  first, first)
    if gram_space(n, width, width) or not magnitude <= _MAX_AMPLIFICATION * abs(total):
        T, rows = tiled_kernel_sums([F], True)
        total = hsic_unbiased_from_sums(n, T[0, 0], rows[0], rows[0])
    same = linear_hsic_unbiased_columns(F)
    corrected = total - same
    eps = np.finfo(np.float64).eps
    if not corrected > _MAX_AMPLIFICATION * eps * (abs(total) + abs(same)):
        raise ValueError(
            f"the feature-corrected self-term of {name} (Chun et al. 2025) is not positive "
            f"({corrected:.3g} against {total:.3g} with the same-neuron products): its neurons "
            "are (nearly) uncorrelated, so this estimator of CKA is undefined; use "
            "estimator='song'")
    return width / (width - 1.0) * corrected / total


@register("linear_cka", aliases=("cka",))
class LinearCKA(Metric):
    """Linear centered kernel alignment (Kornblith et al. 2019).

    Biased (default)::

        CKA(X, Y) = ||Xc' Yc||_F^2 / (||Xc' Xc||_F ||Yc' Yc||_F)

    with Xc, Yc the column-centred representations; this equals the RV coefficient.
    ``debiased=True`` replaces each HSIC by the unbiased estimator of Song et al. 2012
    (Nguyen et al. 2021), which removes the upward bias of the biased form at small n (on
    independent data it is centred on 0), needs n >= 4 and can be slightly negative.

    Computed in feature space (the d x d cross-products), never through n x n Gram matrices
    unless n is smaller than the widths. Memory O(d_x d_y + d_x^2 + d_y^2). The feature-space
    value is :func:`linear_cka_from_moments` of the data's second moments, the same function
    :func:`simmetrics.stream_score` applies to statistics accumulated over batches; where one
    dominant stimulus would cost the debiased value its digits there, the n x n kernels (in
    tiles, bounded memory) are used instead, and ``stream_score`` raises. Torch
    tensors on an accelerator (CUDA, MPS) stay there: the products run on the device in float64
    (float32 input is promoted there first), only the d x d results come to the CPU.

    ``estimator`` chooses among four estimators of the same population quantity:

    - ``"gretton"`` (the default): the biased HSIC of Gretton et al. 2005, the formula above
      (nn_similarity_index's ``cka``, ReSi's ``cka``);
    - ``"song"``: Song et al.'s unbiased HSIC in the numerator and both self-terms, the same as
      ``debiased=True`` (repsim's ``kernels.cka`` unbiased);
    - ``"lange"``: the centred kernels HKH with their diagonals set to zero, then their cosine
      <K0, L0>_F / (||K0||_F ||L0||_F) (Lange, Kwok and Kording's repsim, ``AngularCKA``, whose
      angle is the arccos of this value); close to, but not, Song's estimator;
    - ``"chun"``: Chun, Canatar, Chung and Lee 2025 (arXiv 2502.15104, "Estimating neural
      representation alignment from sparsely sampled inputs and features"): Song's numerator
      over self-terms also corrected for the sampling of neurons (the products of a neuron
      with itself removed, times Q/(Q-1), Q the width; :func:`chun_cka`). It estimates the
      CKA of infinitely many i.i.d. neurons and is **not bounded by 1**: correlated neurons
      give values above 1 (1.31 on data where Song's gives 0.65). Invariant to permutations
      and sign flips of neurons, not to rotations; needs 2 neurons or more; it cannot stream
      (its correction needs each neuron's fourth moments, which
      :class:`simmetrics.PairMoments` does not hold).

    A **similarity**: 1 for representations equal up to rotation, scale and translation
    (except "chun"). Range [0, 1] ("gretton"), [-1, 1] ("song", "lange"), unbounded
    ("chun"). Not a metric.

    Parameters
    ----------
    debiased : bool, default False
        Use the unbiased HSIC estimator everywhere (``estimator="song"``); kept for backward
        compatibility. ``debiased=True`` with an ``estimator`` other than "song" is a
        ``ValueError``.
    estimator : {None, "gretton", "song", "lange", "chun"}, default None
        None: "song" when ``debiased`` else "gretton".
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 10))
    >>> Q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    >>> round(LinearCKA().fit_score(X, 3 * X @ Q + 1), 12)
    1.0
    """

    kind = "similarity"
    bounds = param_dependent(lambda self: _BOUNDS[self._estimator])
    min_samples = param_dependent(lambda self: 2 if self._estimator in ("gretton", "lange")
                                  else 4)
    is_metric = False
    symmetric = True
    invariances = param_dependent(
        lambda self: CHUN_INVARIANCES if self._estimator == "chun" else CKA_INVARIANCES)
    reference = ("Kornblith et al. 2019, ICML; debiased: Song et al. 2012, Nguyen et al. 2021; "
                 "lange: Lange, Kwok, Kording 2023 (repsim); chun: Chun, Canatar, Chung, Lee "
                 "2025, arXiv 2502.15104")

    _parameter_constraints = {"debiased": [Boolean()], "estimator": [None, Options(ESTIMATORS)]}
    #: torch tensors on an accelerator stay there (the products run on the device); CPU
    #: tensors and everything else are read as float64 numpy arrays
    device_policy = "accelerator"

    def __init__(self, debiased=False, estimator=None, layout=None):
        self.debiased = debiased
        self.estimator = estimator
        self.layout = layout

    @property
    def _estimator(self):
        return _estimator(self.estimator, bool(self.debiased))

    def _validate_params(self):
        super()._validate_params()
        check_estimator(self.estimator, bool(self.debiased))

    def _score(self, X, Y):
        if _gram_route(X, Y):  # in feature space each side is checked by _feature_side
            check_nonconstant(X, "X")
            check_nonconstant(Y, "Y")
        estimator = self._estimator
        if estimator in ("gretton", "song"):
            return linear_cka(X, Y, debiased=estimator == "song")
        return linear_cka(X, Y, estimator=estimator)

    def _fit_score(self, X, Y):
        return self._score(X, Y)  # nothing to fit

    def _gradient_formula(self, X, Y, nx):
        """The estimator in feature space (:func:`simmetrics.metrics.cka_gradient.linear_cka_formula`)."""
        return linear_cka_formula(X, Y, self._estimator, nx)

    # -- pairwise (simmetrics.pairwise): feature space per pair, or Gram space in blocks ----
    def _partial_fit(self, A, name):
        estimator = self._estimator
        side = _feature_side(A, name, estimator != "gretton")
        return (side, chun_factor(A, name)) if estimator == "chun" else side

    def _finalize_fit_score(self, a, b):
        estimator = self._estimator
        if estimator == "lange":
            return _lange_of_sides(a, b)
        if estimator == "chun":
            return _cka_of_sides(a[0], b[0], True) / np.sqrt(a[1] * b[1])
        return _cka_of_sides(a, b, estimator == "song")

    def _pairwise_values(self, reps, pairs, names, n_jobs=None, progress=False):
        """The values of ``pairs`` of numpy representations in Gram space, when that is
        cheaper than feature space for the whole set (:func:`gram_cheaper`); else None."""
        if any(is_tensor(A) for A in reps):  # backend site: the tiled n x n route is numpy's
            return None
        if not gram_cheaper(reps[0].shape[0], [A.shape[1] for A in reps], pairs):
            return None
        for A, name in zip(reps, names):
            check_nonconstant(A, name)
        estimator = self._estimator
        values = gram_space_cka(reps, pairs, estimator in ("song", "chun"), n_jobs=n_jobs,
                                progress=progress, desc=f"{type(self).__name__} pairwise",
                                lange=estimator == "lange")
        if estimator != "chun":
            return values
        factors = [chun_factor(A, name) for A, name in zip(reps, names)]
        return [v / np.sqrt(factors[i] * factors[j]) for v, (i, j) in zip(values, pairs)]

    # -- streaming (simmetrics.stream_score) ----------------------------------------------
    @property
    def _moments_row_terms(self):
        return self._estimator in ("song", "lange")

    @property
    def _score_from_moments(self):
        """The streaming hook; None for "chun" (its correction needs each neuron's fourth
        moments, which the statistics do not hold), so stream_score refuses it up front."""
        return None if self._estimator == "chun" else self._moments_value

    def _moments_value(self, stats):
        check_nonconstant_moments(stats.x, "X")
        check_nonconstant_moments(stats.y, "Y")
        if self._estimator == "lange":
            return lange_cka_from_moments(stats)
        return linear_cka_from_moments(stats, debiased=self._estimator == "song")
