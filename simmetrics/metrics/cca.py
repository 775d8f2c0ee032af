"""Canonical correlation analysis (CCA) and two of its variants, SVCCA and PWCCA.

The canonical correlations rho_1 >= ... >= rho_m of two representations are the cosines of the
principal angles between the column spaces of the column-centred matrices Xc and Yc
(Hotelling 1936; Bjorck and Golub 1973). They are computed here as the singular values of
Ux' Uy, where Ux and Uy are orthonormal bases of those column spaces, so no covariance matrix is
ever inverted: duplicate or constant neurons, fewer samples than neurons and rank-deficient data
give the correlations of the spaces actually spanned (m = the smaller of the two numerical
ranks), never a NaN.

- :class:`CCA`: mean canonical correlation, or its mean square (Yanai's generalised R^2).
- :class:`SVCCA`: CCA after keeping the top singular directions of each representation
  (Raghu et al. 2017).
- :class:`PWCCA`: canonical correlations weighted by how much of one representation's neurons
  each canonical variate accounts for (Morcos et al. 2018).

**Streaming.** Whole data take the SVD of the centred data (or X'X where cheaper and its digits
suffice: :func:`_centred_fit`). :func:`simmetrics.stream_score` accumulates, besides the second
moments, a square root R of the joint centred Gram matrix (:attr:`simmetrics.PairMoments.factor`,
R'R = [Xc Yc]'[Xc Yc], from QR decompositions of the batches), whose column blocks A, B are Q'Xc and
Q'Yc for some Q with orthonormal columns (:meth:`simmetrics.PairMoments.factor_rows`): the same SVDs
run on them, with the data's condition number, so one stimulus 1e8 times the others or a cluster
beside a far outlier give the whole-data value (the covariance Xc'Xc squares the condition number
and had lost those directions: CCA 1.0 for 0.63). Statistics without the factor use the covariance
route, Ux = Xc W with W from a square root of Xc'Xc, so Ux'Uy = Wx' (Xc'Yc) Wy, only where
:func:`simmetrics.moments.gram_factor` finds the Gram matrix's digits sufficient (else a
``ValueError`` naming ``fit_score``). Both streaming routes drop the directions whose singular value
is below max(n, d) * eps of the largest, as the whole-data route does.
"""

import numbers

import numpy as np

from .._core.linalg import center, orthonormal_basis, times_pow2
from .._core.params import Interval, Options, Real
from .._core.registry import register
from .._core.validation import check_nonconstant
from ..base import GROUP_NAMES, param_dependent
from ..moments import check_nonconstant_moments, gram_factor, rows_svd
from .cca_basis import GRAM_ROWS, Basis, basis_cross, gram_fit
from .cca_gradient import cca_formula, pwcca_formula, svcca_formula
from .cca_heldout import CanonicalHeldOut, safe_mean

__all__ = [
    "CCA", "SVCCA", "PWCCA", "canonical_correlations", "canonical_correlations_from_moments"
]

_STATISTICS = ("mean_rho", "mean_rho_sq")
_SIDES = ("x", "y", "symmetric")

#: CCA depends on the representations only through their column spaces (after centring), which
#: every invertible linear map of the neurons, and so every subgroup of it, leaves unchanged.
_CCA_INVARIANCES = frozenset(GROUP_NAMES)
#: SVCCA's cut by explained variance depends on the singular values, which only orthogonal maps
#: and isotropic scaling preserve.
_SVCCA_INVARIANCES = frozenset(
    {"permutation", "signed_permutation", "orthogonal", "isotropic_scaling", "translation"}
)
#: PWCCA's weights sum absolute projections over the neurons of one side: a permutation or a
#: sign flip of the neurons, or one common scale, leaves them unchanged; rotations do not.
_PWCCA_INVARIANCES = frozenset(
    {"permutation", "signed_permutation", "isotropic_scaling", "translation"}
)


def _centred_basis(A):
    """Orthonormal basis (a :class:`~simmetrics.metrics.cca_basis.Basis`, n x r), singular
    values and right singular vectors of the centred ``A``, scaled to unit max-abs first so
    that very large or very small inputs stay in range (the basis does not depend on the
    scale; the singular values are those of the scaled data)."""
    return _centred_fit(A)[:3]


def _centred_fit(A):
    """:func:`_centred_basis` (U, s, V'), then the neuron means and the scale ``peak`` the SVD
    was taken at (of the centred data divided by it): the state of one side.

    Two routes to the same (U, s, V'), chosen by cost and guarded for accuracy: with n >= 2 d
    the covariance route (:func:`simmetrics.metrics.cca_basis.gram_fit`, at scale 1) where its
    digits suffice, else the thin SVD of the centred data
    (:func:`simmetrics._core.linalg.orthonormal_basis`, rank-revealing)."""
    n, d = A.shape
    fit = gram_fit(A) if n >= GRAM_ROWS * d else None
    if fit is not None:
        return fit
    Ac = center(A)
    peak = max(Ac.max(), -Ac.min())  # max |Ac_ij| without an n x d temporary
    if peak > 0.0:
        Ac /= peak
    top = 2.0 * peak + float(np.abs(A[0]).max())  # >= max |A_ij|
    # numpy's mean where the column sums cannot overflow (safe_mean's value up to rounding)
    mean = A.mean(axis=0) if n * top < 2.0**1000 else safe_mean(A)
    # Callers check_nonconstant first, so peak > 0 and the rank is at least 1.
    U, s, Vt = orthonormal_basis(Ac)
    return Basis(U), s, Vt, mean, float(peak)


def _check_varies(A, name):
    """:func:`simmetrics._core.validation.check_nonconstant`, skipping its pass over the data
    where the first two rows already differ in some neuron (that neuron varies)."""
    if not (A.shape[0] > 1 and np.any(A[0] != A[1])):
        check_nonconstant(A, name)


def _principal_angles(Ux, Uy):
    """SVD of Ux' Uy (two :class:`~simmetrics.metrics.cca_basis.Basis`): left vectors (rx x m),
    cosines clipped to [0, 1] (m,) and right vectors (m x ry)."""
    return _angles(basis_cross(Ux, Uy))


def _angles(M):
    """SVD of M = Ux' Uy, the cosines clipped to [0, 1]."""
    P, rho, Rt = np.linalg.svd(M, full_matrices=False)
    return P, np.clip(rho, 0.0, 1.0), Rt


def canonical_correlations(X, Y):
    """Canonical correlations of two float64 matrices with the same rows.

    Only zero variance is checked here (a ``ValueError``); shapes, dtypes and NaNs are the
    caller's business (the estimators check them).

    rho_i = sigma_i(Ux' Uy), i = 1..m, where Ux, Uy are orthonormal bases of the column spaces
    of the column-centred Xc, Yc (directions whose singular value is below the rank tolerance
    of :func:`simmetrics._core.linalg.orthonormal_basis` are dropped) and m = min(rank Xc, rank Yc).

    Parameters
    ----------
    X : numpy.ndarray, shape (n_samples, n_x)
    Y : numpy.ndarray, shape (n_samples, n_y)

    Returns
    -------
    numpy.ndarray, shape (m,)
        In decreasing order, each in [0, 1].

    Examples
    --------
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [3.0, 1.0]])
    >>> canonical_correlations(X, X[:, :1] * 5 - 2).round(12)
    array([1.])
    """
    check_nonconstant(X, "X")
    check_nonconstant(Y, "Y")
    Ux, _, _ = _centred_basis(X)
    Uy, _, _ = _centred_basis(Y)
    return _principal_angles(Ux, Uy)[1]


def _summarise(rho, statistic):
    return float(np.mean(rho if statistic == "mean_rho" else rho**2))


def _check_statistic(statistic):
    if not isinstance(statistic, str) or statistic not in _STATISTICS:
        raise ValueError(f"statistic must be one of {_STATISTICS}, got {statistic!r}")


@register("cca")
class CCA(CanonicalHeldOut):
    """Mean canonical correlation (Hotelling 1936), or Yanai's generalised R^2.

    With Xc, Yc the column-centred representations and Ux, Uy orthonormal bases of their
    column spaces, the canonical correlations are the singular values of Ux' Uy::

        rho_1 >= ... >= rho_m,   m = min(rank Xc, rank Yc)
        statistic="mean_rho"    : (1/m) sum_i rho_i          (default)
        statistic="mean_rho_sq" : (1/m) sum_i rho_i^2        (Yanai's R^2; Kornblith's R^2_CCA)

    Robust by construction: the bases come from SVDs that drop directions below a rank
    tolerance, so duplicate or constant neurons and rank-deficient data give the value for the
    spaces actually spanned, with no covariance inverse and no NaN.

    **Few samples.** The centred data live in the (n - 1)-dimensional space orthogonal to the
    constant vector. When a representation's centred rank reaches n - 1 (generic data with
    n - 1 <= width), its column space is that whole space, so it contains the other one and
    *every canonical correlation is 1*, whatever the other representation is: the value then
    says nothing. Use many more samples than neurons, or :class:`SVCCA`.

    A **similarity**: ``fit_score`` is in [0, 1], 1 exactly when one column space contains
    the other. Not a metric. Invariant to any invertible linear map of either representation's
    neurons (so to every group in :data:`simmetrics.GROUP_NAMES`) and to translation.

    **Held-out stimuli** (cross-validated CCA, :mod:`simmetrics.metrics.cca_heldout`).
    ``fit(X_train, Y_train)`` learns the neuron means and the canonical directions a_i, b_i;
    ``score(X_test, Y_test)`` is the mean (or mean square) of the Pearson r_i between the
    held-out canonical variates (X_test - mean_x_) a_i and (Y_test - mean_y_) b_i, cca-zoo's
    ``score`` convention; ``transform`` returns those variates. r_i is signed (a held-out pair
    can anti-correlate), so ``bounds`` is [-1, 1] for "mean_rho". On the training stimuli
    ``score`` is ``fit_score``; on other stimuli it is lower where the fit overfitted (noise).
    An :class:`~simmetrics.AlignmentMetric`: ``score`` before ``fit`` raises
    ``NotFittedError``, so ``sklearn.model_selection.cross_val_score(CCA(), X, Y)`` works. A
    ValueError refuses held-out scoring where the training stimuli do not determine it: more
    directions than n_train - 1 (every generic fit with n_train <= width + 1), or held-out
    data that vary where the training data did not.

    Parameters
    ----------
    statistic : {"mean_rho", "mean_rho_sq"}, default "mean_rho"
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Attributes
    ----------
    canonical_correlations_ : numpy.ndarray, shape (m,)
        The correlations of the data seen in ``fit``, in decreasing order.
    mean_x_, mean_y_ : numpy.ndarray
        Neuron means of the training stimuli.
    directions_x_, directions_y_ : numpy.ndarray, shape (n_x, m) and (n_y, m)
        Canonical directions (unit-norm training variates).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 5))
    >>> A = rng.normal(size=(5, 5))          # invertible with probability 1
    >>> round(CCA().fit_score(X, X @ A + 3.0), 12)
    1.0
    >>> x, y = X[:, :1], X[:, :1] ** 3      # one neuron each: |Pearson r| (squared)
    >>> r = np.corrcoef(x[:, 0], y[:, 0])[0, 1]
    >>> bool(abs(CCA(statistic="mean_rho_sq").fit_score(x, y) - r**2) < 1e-12)
    True
    >>> fitted = CCA().fit(X[:80], X[:80] @ A)   # held out: the same linear map
    >>> round(fitted.score(X[80:], X[80:] @ A), 12)
    1.0
    """

    kind = "similarity"
    bounds = param_dependent(lambda self: (-1.0, 1.0) if self.statistic == "mean_rho"
                             else (0.0, 1.0))
    is_metric = False
    invariances = _CCA_INVARIANCES
    min_samples = 2
    same_width = False
    symmetric = True
    reference = "Hotelling 1936, Biometrika; Yanai's R^2: Yanai 1974, Kornblith et al. 2019"

    _parameter_constraints = {"statistic": [Options(_STATISTICS)]}

    def __init__(self, statistic="mean_rho", layout=None):
        self.statistic = statistic
        self.layout = layout

    # the per-representation step (simmetrics.pairwise): an orthonormal basis of the centred
    # data; the pair step: the singular values of Ux'Uy
    def _partial_fit(self, A, name):
        _check_statistic(self.statistic)
        _check_varies(A, name)
        return _centred_fit(A)

    def _finalize_fit_score(self, a, b):
        P, self.canonical_correlations_, Rt = _principal_angles(a[0], b[0])
        self._kept = (a[2], b[2])  # the fitted right singular vectors, for the gradient
        self._learn(a, b, P, Rt, a[0].shape[0])
        return _summarise(self.canonical_correlations_, self.statistic)

    def _check_family(self):
        _check_statistic(self.statistic)

    def _heldout_value(self, r):
        return _summarise(r, self.statistic)

    def _gradient_formula(self, X, Y, nx):
        """mean(rho) (a nuclear norm: differentiable at repeated correlations, a kink at a
        zero one) or mean(rho^2) (smooth) of the canonical correlations, from bases of the
        fitted directions made orthonormal by Cholesky factors, the fitted rank held:
        :func:`simmetrics.metrics.cca_gradient.cca_formula` (its module text says where the
        gradient exists)."""
        return cca_formula(X, Y, *self._kept, self.statistic, nx)

    # -- streaming (see the module text) ----------------------------------------------------
    def _fit_moments(self, stats):
        _check_statistic(self.statistic)
        bases = _moments_bases(stats)
        (Px, _, _), (Py, _, _) = bases
        P, self.canonical_correlations_, Rt = _angles(Px.T @ Py)
        self._learn_from_moments(stats, bases, Px.shape[1], Py.shape[1], P, Rt)
        return _summarise(self.canonical_correlations_, self.statistic)


def _check_variance(variance):
    if isinstance(variance, bool) or not isinstance(variance, numbers.Real):
        raise TypeError(f"variance must be a number in (0, 1], got {type(variance).__name__}")
    if not 0.0 < variance <= 1.0:
        raise ValueError(f"variance must be in (0, 1], got {variance!r}")


#: Singular values within this fraction of the largest one of the singular value at SVCCA's
#: cut count as tied with it, and the whole tied block is kept (see :func:`_top_directions`).
#: Rounding moves singular values by a few eps times the largest, so exact ties (orthogonal
#: neurons of equal norm, quantised or binary codes) are recognised whichever basis the data
#: come in; a split between values this close would be fixed by rounding, not by the data.
_TIE_RTOL = 1e-10


def _top_directions(U, s, variance):
    """The fewest leading columns of U (an array or a :class:`~simmetrics.metrics.cca_basis.Basis`)
    whose squared singular values reach ``variance`` of the total (all of them for variance = 1),
    extended by every further singular value tied with the last one kept: |s_j - s_k| <= _TIE_RTOL *
    s_1.

    Within a block of equal singular values the singular vectors are any orthonormal basis of
    the block's span, so keeping part of the block would keep an arbitrary subspace (rotating
    the data would change the value). Keeping the whole block keeps a subspace the data define;
    it then explains more than ``variance`` (never less, as dropping the block would)."""
    if variance >= 1.0:
        # every direction, even one whose s^2 is below eps * sum(s^2), where the cumulative
        # share below already rounds to 1 (variance = 1 is plain CCA)
        return U
    explained = np.cumsum(s**2)
    explained /= explained[-1]
    k = min(int(np.searchsorted(explained, variance, side="left")) + 1, s.size)
    # s is in decreasing order: the tied block at the cut continues while s_j stays close
    k += int(np.sum(s[k:] >= s[k - 1] - _TIE_RTOL * s[0]))
    return U.first(k) if isinstance(U, Basis) else U[:, :k]


@register("svcca")
class SVCCA(CanonicalHeldOut):
    """Singular vector CCA (Raghu, Gilmer, Yosinski, Sohl-Dickstein, NeurIPS 2017).

    Each representation is reduced separately: with Xc = U S V' the SVD of the centred data
    (singular values s_1 >= s_2 >= ...), keep the fewest top directions k_x with::

        (s_1^2 + ... + s_kx^2) / (s_1^2 + s_2^2 + ...) >= variance

    and project, Xc V_kx = U_kx S_kx. The same for Y. The value is :class:`CCA` of the two
    projections: the mean (or mean square) of the canonical correlations rho_1..rho_m,
    m = min(k_x, k_y). ``variance=1`` keeps every direction above the rank tolerance, which is
    plain :class:`CCA`. On the seed-0 reference data (X, Y of 64 neurons) variance 0.99 keeps
    36 and 53 directions and gives 0.92849, as google/svcca, cca-zoo and sim_metric do.

    **Ties at the cut.** When singular values equal to s_kx (to 1e-10 of s_1) come after it,
    the whole tied block is kept, so k_x can exceed the fewest directions reaching
    ``variance`` (orthogonal neurons of equal variance, binary or quantised codes). Inside a
    block of equal singular values the singular vectors are any basis of its span, so a cut
    through it keeps an arbitrary subspace and the value changed with a rotation of the data
    (0.24, 0.20, 0.22, 0.34 for four rotations of one representation); keeping the block
    keeps a subspace the data define and never explains less than ``variance``.

    A **similarity** (``fit_score`` in [0, 1]); not a metric. The cut depends on the singular
    values, so it is invariant to orthogonal maps (permutations and sign flips included),
    isotropic scaling and translation, but not to per-neuron scaling or other invertible maps,
    which change which directions are kept (with ``variance=1`` it is as invariant as CCA).

    **Held-out stimuli**: as :class:`CCA`'s, with the kept directions learned in ``fit`` too:
    the held-out data are projected on the training stimuli's top k_x (k_y) singular
    directions and then on the canonical directions found there. The refusal for too few
    training stimuli counts the kept directions (k_x + k_y > n_train - 1), so SVCCA scores
    held-out data where CCA cannot; held-out variation outside the training span (a neuron
    constant during fit, or n_train < width) is refused only where it exceeds 1 - variance of
    the held-out variance, the share the cut discards by definition.

    Parameters
    ----------
    variance : float in (0, 1], default 0.99
        Share of each representation's variance the kept directions must explain.
    statistic : {"mean_rho", "mean_rho_sq"}, default "mean_rho"
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None

    Attributes
    ----------
    n_components_x_, n_components_y_ : int
        Directions kept for X and Y on the data seen in ``fit``.
    canonical_correlations_ : numpy.ndarray, shape (min(n_components_x_, n_components_y_),)
    mean_x_, mean_y_, directions_x_, directions_y_ : numpy.ndarray
        As :class:`CCA`'s (the directions lie in the kept subspaces).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 8)) * [10, 8, 6, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3]
    >>> metric = SVCCA(variance=0.99)
    >>> round(metric.fit_score(X, X[:, :3] + 0.01 * rng.normal(size=(200, 3))), 4)
    1.0
    >>> metric.n_components_x_, metric.n_components_y_
    (3, 3)
    """

    kind = "similarity"
    bounds = CCA.bounds
    is_metric = False
    invariances = param_dependent(
        lambda self: _CCA_INVARIANCES if self.variance == 1 else _SVCCA_INVARIANCES
    )
    min_samples = 2
    same_width = False
    symmetric = True
    reference = "Raghu et al. 2017, NeurIPS"

    _parameter_constraints = {
        "variance": [Interval(Real, 0, 1, closed="right")],
        "statistic": [Options(_STATISTICS)],
    }

    def __init__(self, variance=0.99, statistic="mean_rho", layout=None):
        self.variance = variance
        self.statistic = statistic
        self.layout = layout

    # per representation (simmetrics.pairwise): its top singular directions
    def _partial_fit(self, A, name):
        _check_variance(self.variance)
        _check_statistic(self.statistic)
        _check_varies(A, name)
        U, s, Vt, mean, peak = _centred_fit(A)
        return _top_directions(U, s, float(self.variance)), s, Vt, mean, peak

    def _finalize_fit_score(self, a, b):
        (Ux, _, Vxt), (Uy, _, Vyt) = a[:3], b[:3]
        P, self.canonical_correlations_, Rt = _principal_angles(Ux, Uy)
        # the fitted right singular vectors and the cut, for the gradient
        self._kept = ((Vxt, Ux.shape[1]), (Vyt, Uy.shape[1]))
        self.n_components_x_ = Ux.shape[1]
        self.n_components_y_ = Uy.shape[1]
        self._learn(a, b, P, Rt, Ux.shape[0])
        return _summarise(self.canonical_correlations_, self.statistic)

    def _check_family(self):
        _check_variance(self.variance)
        _check_statistic(self.statistic)

    _heldout_value = CCA._heldout_value
    #: the cut discards up to 1 - variance of the variance: unseen variation up to that share
    _unseen_allowance = param_dependent(lambda self: 1.0 - float(self.variance))

    # -- streaming (see the module text) ----------------------------------------------------
    def _fit_moments(self, stats):
        self._check_family()
        bases = _moments_bases(stats)
        (Px, sx, _), (Py, sy, _) = bases
        Px = _top_directions(Px, sx, float(self.variance))
        Py = _top_directions(Py, sy, float(self.variance))
        P, self.canonical_correlations_, Rt = _angles(Px.T @ Py)
        self.n_components_x_, self.n_components_y_ = kx, ky = Px.shape[1], Py.shape[1]
        self._learn_from_moments(stats, bases, kx, ky, P, Rt)
        return _summarise(self.canonical_correlations_, self.statistic)

    def _gradient_formula(self, X, Y, nx):
        """SVCCA with the fitted cut held (k_x, k_y directions): CCA of the top-k singular
        subspaces, each to first order about the fitted point (finite at ties inside the kept
        block; it grows like 1 / (s_k^2 - s_(k+1)^2) as the gap at the cut closes, and where
        the cut would move the value jumps):
        :func:`simmetrics.metrics.cca_gradient.svcca_formula`."""
        return svcca_formula(X, Y, *self._kept, self.statistic, nx)


def _pwcca_weights(P, rho, Rt, sx, Vxt, sy, Vyt):
    """The correlations and the projection weights of both sides, from the SVD P, rho, Rt of
    Ux'Uy and the (s, V') of each side (any route that gives Ux' Xc = S V').

    The X-side canonical variates are h_i = Ux p_i (unit vectors in sample space, p_i the left
    singular vectors of Ux' Uy); their projections on the centred neurons are
    Ux' Xc = S V' (from the SVD of Xc), so h_i' Xc = p_i' S V'.
    """
    weights = []
    for coords, s, Vt in ((P, sx, Vxt), (Rt.T, sy, Vyt)):
        w = np.abs(coords.T @ (s[:, None] * Vt)).sum(axis=1)
        weights.append(w / w.sum())
    return rho, weights[0], weights[1]


@register("pwcca")
class PWCCA(CanonicalHeldOut):
    """Projection-weighted CCA (Morcos, Raghu, Bengio, NeurIPS 2018).

    With rho_1..rho_m the canonical correlations of the centred Xc and Yc (as in :class:`CCA`)
    and h_i the unit-norm canonical variates of the weighting side (``side="x"``: h_i = Xc a_i,
    the X-side canonical directions applied to Xc)::

        alpha_i = sum_j |<h_i, x_j>| / sum_k sum_j |<h_k, x_j>|,   x_j the centred neurons
        PWCCA   = sum_i alpha_i rho_i,   i = 1..m

    ``side="y"`` takes the variates and neurons of Y instead, and ``side="symmetric"`` is the
    mean of the two. Directions that account for more of the weighting side's neurons count
    more, so the correlations of low-variance noise directions count less than in plain CCA.

    Conventions elsewhere: Ding et al.'s sim_metric gives the same values (its
    ``1 - pwcca_dist(A, ...)`` is ``side="x"`` with A = X) when X is at most as wide as Y. When
    the weighting side has more directions than the other, we weight only the m matched
    canonical variates, as Morcos et al. define it and as repsim does (its symmetrised PWCCA is
    ``side="symmetric"`` on all reference data); sim_metric normalises the weights over all
    directions of a full SVD, including unmatched ones whose basis is arbitrary, which lowers
    the value (0.4069 instead of 0.6465 on the seed-0 X, W pair). google/svcca's
    ``compute_pwcca`` builds its directions without the whitening Sxx^(-1/2), adds the neuron
    means back and re-orthonormalises, which gives 0.913 instead of 0.882 on the seed-0 X, Y
    pair; it also picks the side with fewer neurons and fails when the first input is wider.

    A **similarity** (``fit_score`` in [0, 1]), not symmetric for ``side="x"`` or ``"y"``; not
    a metric. Invariant to permutations and sign flips of the neurons, isotropic scaling and
    translation; not to rotations or per-neuron scaling of the weighting side, which change the
    weights.

    **Held-out stimuli**: as :class:`CCA`'s, with the projection weights alpha *learned in*
    ``fit`` (those of the training variates, as the directions are): ``score`` is
    sum_i alpha_i r_i over the held-out Pearson r_i, in [-1, 1]; the scored stimuli do not
    reweight the directions, so held-out data cannot raise the weight of the directions they
    happen to correlate on.

    **Tied correlations.** Within a group of equal canonical correlations the canonical
    variates are any orthonormal basis of their span, and the L1 projection weights depend on
    that choice, so the value is not uniquely defined (it can move by ~1e-3 under a permutation
    of the neurons). This always happens when max(n_x, n_y) < n - 1 < n_x + n_y + 1: the two
    column spaces of the centred data must then intersect, and several correlations are exactly
    1. (With n - 1 <= max(n_x, n_y) every correlation is 1 and the value is exactly 1.) Use
    n - 1 > n_x + n_y, or :class:`CCA` / :class:`SVCCA`, which do not weight.

    Parameters
    ----------
    side : {"x", "y", "symmetric"}, default "x"
        Whose canonical variates and neurons give the weights.
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None

    Attributes
    ----------
    canonical_correlations_ : numpy.ndarray, shape (m,)
    weights_x_, weights_y_ : numpy.ndarray, shape (m,)
        Projection weights from X's and from Y's side (each sums to 1), on the data seen in
        ``fit``.
    mean_x_, mean_y_, directions_x_, directions_y_ : numpy.ndarray
        As :class:`CCA`'s.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 6))
    >>> Y = X[:, :4] + 0.5 * rng.normal(size=(300, 4))
    >>> metric = PWCCA(side="symmetric")
    >>> value = metric.fit_score(X, Y)
    >>> mean = (PWCCA(side="x").fit_score(X, Y) + PWCCA(side="y").fit_score(X, Y)) / 2
    >>> bool(abs(value - mean) < 1e-12)  # the same average, summed in another order
    True
    >>> round(float(metric.weights_x_.sum()), 12)
    1.0
    """

    kind = "similarity"
    bounds = (-1.0, 1.0)  # held out; fit_score is in [0, 1]
    is_metric = False
    invariances = _PWCCA_INVARIANCES
    min_samples = 2
    same_width = False
    symmetric = param_dependent(lambda self: self.side == "symmetric")
    reference = "Morcos, Raghu, Bengio 2018, NeurIPS"

    _parameter_constraints = {"side": [Options(_SIDES)]}

    def __init__(self, side="x", layout=None):
        self.side = side
        self.layout = layout

    def _check_side(self):
        if not isinstance(self.side, str) or self.side not in _SIDES:
            raise ValueError(f"side must be one of {_SIDES}, got {self.side!r}")

    # per representation (simmetrics.pairwise): the SVD of the centred data
    def _partial_fit(self, A, name):
        self._check_side()
        _check_varies(A, name)
        return _centred_fit(A)

    def _finalize_fit_score(self, a, b):
        (Ux, sx, Vxt), (Uy, sy, Vyt) = a[:3], b[:3]
        P, rho, Rt = _principal_angles(Ux, Uy)
        self.canonical_correlations_, self.weights_x_, self.weights_y_ = _pwcca_weights(
            P, rho, Rt, sx, Vxt, sy, Vyt)
        self._kept = (Vxt, Vyt)  # the fitted right singular vectors, for the gradient
        self._learn(a, b, P, Rt, Ux.shape[0])
        return self._value(self.canonical_correlations_, self.weights_x_, self.weights_y_)

    def _check_family(self):
        self._check_side()

    def _heldout_value(self, r):
        return self._value(r, self.weights_x_, self.weights_y_)

    # -- streaming (see the module text) ----------------------------------------------------
    def _fit_moments(self, stats):
        self._check_side()
        bases = _moments_bases(stats)
        (Px, sx, Vxt), (Py, sy, Vyt) = bases
        P, rho, Rt = _angles(Px.T @ Py)
        self.canonical_correlations_, self.weights_x_, self.weights_y_ = _pwcca_weights(
            P, rho, Rt, sx, Vxt, sy, Vyt)
        self._learn_from_moments(stats, bases, Px.shape[1], Py.shape[1], P, Rt)
        return self._value(self.canonical_correlations_, self.weights_x_, self.weights_y_)

    def _gradient_formula(self, X, Y, nx):
        """The weighted correlations through the SVD of Ux'Uy (the weights need its
        singular vectors: differentiable where the correlations are distinct and nonzero; at
        tied ones, where the value itself is not defined, the gradient is inf or NaN), the
        fitted rank held: :func:`simmetrics.metrics.cca_gradient.pwcca_formula`."""
        return pwcca_formula(X, Y, *self._kept, self.side, nx)

    def _value(self, rho, wx, wy):
        # weights summing to 1 times correlations <= 1: at most 1, but for rounding
        value_x, value_y = min(float(wx @ rho), 1.0), min(float(wy @ rho), 1.0)
        if self.side == "x":
            return value_x
        if self.side == "y":
            return value_y
        return 0.5 * (value_x + value_y)


# -- streaming: bases from the statistics accumulated over batches --------------------------
def _rows_basis(A, n):
    """(U, s, V') of rows ``A`` standing in for n data rows (a factor of the statistics, or a
    square root of a Gram matrix) by :func:`simmetrics.moments.rows_svd` (the whole-data rank
    rule), the singular values in ``A``'s units."""
    U, s, Vt, e = rows_svd(A, n)
    return U, times_pow2(s, e), Vt


def _moments_bases(stats):
    """For X and Y: (P, s, V'), where s, V' are the singular values and right vectors of the
    centred data and Px'Py = Ux'Uy (the matrix whose singular values are the canonical
    correlations), from :class:`simmetrics.PairMoments`.

    With the statistics' ``factor``: P = U, the orthonormal bases of its column blocks (rows
    standing in for the data; see the module text). Without: the covariance route, from the
    square roots M of the centred Gram matrices that :func:`simmetrics.moments.gram_factor`
    accepts (a ``ValueError`` where their digits do not suffice): M = U S V' gives the
    whitener W = V S^-1 (Xc W = Ux) and Px = Wx, Py = (Xc'Yc) Wy. The singular values are those
    of the data at the statistics' power-of-two level (the callers use their ratios only)."""
    S = stats.to_numpy().centred()
    check_nonconstant_moments(S.x, "X")
    check_nonconstant_moments(S.y, "Y")
    n = S.n
    if S.factor is not None:
        A, B = S.factor_rows(centred=True)
        bases = _rows_basis(A, n), _rows_basis(B, n)
    else:
        bases = []
        for name, rep in (("X", S.x), ("Y", S.y)):
            _, s, Vt = _rows_basis(gram_factor(rep, name), n)
            bases.append((Vt.T / s, s, Vt))
        (Wy, sy, Vyt) = bases[1]
        bases[1] = (S.cross @ Wy, sy, Vyt)
    for name, (_, s, _) in zip("XY", bases):
        if not s.size:
            raise ValueError(f"{name} has zero variance: every neuron is constant across samples")
    return tuple(bases)


def canonical_correlations_from_moments(stats):
    """Canonical correlations from second moments (:class:`simmetrics.PairMoments`): the
    singular values of Ux'Uy, with the orthonormal bases from the statistics' ``factor``
    (rows standing in for the data), or, without it, from whitening square roots of the
    centred covariances where their digits suffice (see the module text).

    Examples
    --------
    >>> from simmetrics.moments import PairMoments
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 4))
    >>> Y = X @ rng.normal(size=(4, 3)) + rng.normal(size=(500, 3))
    >>> rho = canonical_correlations_from_moments(PairMoments.from_arrays(X, Y))
    >>> bool(np.allclose(rho, canonical_correlations(X, Y), rtol=1e-10, atol=0))
    True
    """
    (Px, _, _), (Py, _, _) = _moments_bases(stats)
    return _angles(Px.T @ Py)[1]
