"""G_sigma-Procrustes: :class:`IntertwinerProcrustes`, the Procrustes distance over the
intertwiner group of an activation (Godfrey et al. 2022, "G_ReLU-Procrustes", generalised).

Canonicalise the continuous (diagonal) part of the group, then solve the remaining (signed)
permutation exactly by linear assignment; fit on training stimuli and score on held-out ones,
or from second moments (:func:`simmetrics.stream_score`). Its pure functions are in
:mod:`simmetrics.metrics.intertwiner_alignment`.
"""

import numpy as np

from .._core.factor import gram_factor, rows_svd
from .._core.linalg import frobenius_norm, orthonormal_basis, pow2_rescale, times_pow2
from .._core.params import Boolean, Options
from .._core.registry import register
from .._core.solvers import (SAFE_HIGH, SAFE_LOW, assignment_from_cross, cross_in_range, pad2,
                             rotation_from_cross)
from .._core.validation import check_nonconstant, check_pair
from ..base import AlignmentMetric, param_dependent
from ..moments import check_nonconstant_moments
from .alignment import angular_distance, zero_pad
from .intertwiner_alignment import (
    at_level,
    column_squares,
    fitted_centring,
    folded,
    level_map,
    optimal_signed_permutation,
    pad1,
    plain_column_squares,
    reciprocal,
    rematch_undetermined,
    signed_assignment_from_cross,
    silent_pairs_in_order,
    unit_rms_columns,
    whitening_map,
)
from .intertwiner_gradient import intertwiner_procrustes_formula, intertwiner_rows
from .intertwiner_groups import (
    REFERENCE,
    SCALED,
    SIGNED,
    group_subgroups,
    intertwiner_group_name,
    prepare_conv,
)
from .matching import optimal_permutation
from .procrustes import procrustes_rotation

__all__ = ["IntertwinerProcrustes"]

_PROCRUSTES_METHODS = ("angular", "euclidean", "paper")


def _procrustes_invariances(self):
    group = intertwiner_group_name(self.activation)
    groups = set(group_subgroups(group))
    if self.score_method == "angular":
        groups.add("isotropic_scaling")  # an angle ignores the overall (positive) scale
    if self.center:
        groups.add("translation")
    return frozenset(groups)


def _procrustes_bounds(self):
    """Bounds that hold for fit-on-train/score-on-test: an angle lies in [0, pi] always; the
    canonical forms of held-out stimuli are scaled with the training rms (or whitening), so
    their rms distance has no upper bound (held-out data 1000 times larger than the training
    data give about 1000 times the distance), for every group. On the fitting data the
    normalised groups stay in [0, 2] (paper: [0, 1]), as the class docstring says."""
    if self.score_method == "angular":
        return (0.0, np.pi)
    if self.score_method == "paper":
        return (-np.inf, 1.0)
    return (0.0, np.inf)


@register("intertwiner_procrustes", aliases=("g_procrustes",))
class IntertwinerProcrustes(AlignmentMetric):
    """G_sigma-Procrustes: the Procrustes distance over the intertwiner group of an activation
    (Godfrey et al. 2022, "G_ReLU-Procrustes", generalised to every activation).

    Let G = G_sigma (a group of matrices g acting by X -> X g) and write n = max(n_x, n_y); the
    narrower representation is zero-padded with silent neurons (the paper's convention).

    1. **Canonicalise the continuous part.** For the non-linear activations every g in G is
       P D, P a permutation and D in a diagonal subgroup that the permutations normalise
       (P D P' is diagonal), so a map c with c(X D) = c(X) and c(X P) = c(X) P reduces the
       problem to the discrete part. Per group (rms = root mean square of a neuron over the
       rows):

       - positive scaled permutations (ReLU) and scaled permutations (abs, x^d): divide each
         neuron by its rms (silent neurons stay 0; on held-out stimuli, see below); this
         removes every D > 0;
       - signed permutations (tanh, sin, Gaussian), scaled permutations: the signs are folded
         into the assignment below;
       - permutations (GELU, sigmoid, SiLU, ...): no canonicalisation, scale is information;
       - invertible_linear (identity): whiten, c(X) = sqrt(m) U with X = U S V' the thin SVD
         (rank-revealing), so every orbit point has the same c(X) up to an orthogonal map; the
         remaining orthogonal part is solved by orthogonal Procrustes (an SVD). This is the
         (uncentred) CCA-style shape distance; it needs n_samples > n_neurons to be
         informative (otherwise every full-rank X spans the same space and the distance is 0).

    2. **Solve the discrete part exactly.** With A = c(X), B = c(Y) (m x n), permutations are
       isometries, so ||A - B P||_F^2 = ||A||^2 + ||B||^2 - 2 tr(A'B P) is linear in P and its
       global minimum over all n! permutations is the linear assignment maximising
       sum_i C_{i, pi(i)}, C = A'B (``scipy.optimize.linear_sum_assignment``, exact). For
       signed groups the best sign of each pair is sign(C_ij), so the assignment runs on |C_ij|
       (:func:`optimal_signed_permutation`).

    What is optimised, precisely: d(X, Y) = min over the discrete part h of ||c(X) - c(Y) h||_F,
    which is the distance between the G-orbits of X and Y measured between their canonical
    representatives. It is not min_g ||X - Y g||_F on the raw data: that quantity is neither
    symmetric nor invariant to G acting on X (the paper's normalisation makes the same choice).
    Because c is G-equivariant and h ranges over a group of isometries, d is invariant to G on
    either side, symmetric and, for equal widths, satisfies the triangle inequality (a metric
    on the orbit space; zero exactly when X and Y lie in the same G-orbit).

    Different widths: zero-padding pairs the surplus neurons of the wider layer with silent
    neurons (as :class:`simmetrics.PermutationMetric` does), and the triangle inequality can
    then fail (x -> [x/2, -x/2] -> -x is shorter than x -> -x: pi/2 + 0 against pi for
    ReLU). ``is_metric`` is therefore declared for equal widths only.

    Reported, on the aligned matrices A, B' = c(Y) h (m rows)::

        angular:   arccos( <A, B'>_F / (||A||_F ||B'||_F) )          in [0, pi]
        euclidean: ||A - B'||_F / sqrt(m n)                          (an rms over entries)
        paper:     1 - ||A - B'||_F / (2 sqrt(m n))                  (a similarity)

    For ReLU, "paper" is exactly the paper's reported 1 - d with
    d^2 = (||H1||^2 + ||H2||^2 - 2 sum_i C_{i, pi(i)}) / (4 n) for unit-norm channels (the rms
    scaling multiplies both sides by m), in [0, 1] on the fitting data (in [1 - 1/sqrt 2, 1]
    for non-negative features). Unlike :class:`simmetrics.ShapeMetric` (netrep's convention),
    the Euclidean form is divided by sqrt(m n), so it does not grow with the number of
    stimuli; for the groups with a per-neuron scale it lies in [0, 2] on the fitting data.

    No centring by default: translations are not in G_sigma, and a ReLU network's
    representation is not translation invariant (``center=True`` subtracts the fitted neuron
    means first and adds translation to the invariances).

    Fit on training stimuli, score on held-out ones: ``fit`` learns the means, the per-neuron
    scales (or whiteners) of X and Y and the discrete alignment; ``score`` and ``transform``
    apply them to the given stimuli. What the training stimuli cannot determine is determined
    on the scored stimuli, by rules that keep the held-out value a G-invariant distance
    (acting with any g in G on X, training and held-out stimuli alike, changes nothing; held-out
    Y = X g scores 0 where the fit found g):

    - a neuron **silent on the training stimuli** (all zero; with ``center=True``, constant,
      whose fitted mean is then that constant exactly) has no training rms: for the groups
      with a per-neuron scale it is divided by its rms on the scored stimuli (0 if silent
      there too). So held-out data that differ only in such a neuron get a nonzero distance
      (it was multiplied by 0 before, giving 1.5e-16);
    - a pair of the matching with a silent member adds 0 to the fitted objective, so which
      partner (and sign) such a neuron gets is undetermined: in ``fit`` (``permutation_``),
      pairs of neurons silent on both sides are matched in index order with sign +1; in
      ``score`` and ``transform``, the pairs with a silent member are re-matched among
      themselves (every pair keeping a silent member, the other pairs as fitted) by linear
      assignment on the canonical scored data, signs included;
    - identity activation (GL_n): directions of the neurons that the training rows do not
      span (a silent neuron, fewer stimuli than neurons) are invisible to the fitted
      whitening. The part of the scored data outside the training row space is whitened on
      the scored stimuli and appended as extra columns (aligned between X and Y by orthogonal
      Procrustes on the scored stimuli), and the whitened block is projected off it, so the
      value stays invariant to GL_n; ``transform`` then returns more columns than neurons.

    Declared ``bounds`` hold on held-out data: an angle is in [0, pi]; held-out canonical
    forms are scaled by the training rms or whitening, so the Euclidean form has no upper
    bound (held-out stimuli 1000 times larger than the training ones give about 1000 times
    the distance) and the paper's form no lower bound, for every group.

    Extreme scales: the per-neuron scales and the whitening are computed on the data
    rescaled by exact powers of two (per neuron for the scales) and kept with their exponent
    where float64 cannot hold them in true units (subnormal activations, |x| < 2e-308), so
    ``X * 1e-310`` and ``X * 1e300`` give the value of X for every scale-free combination
    (angular; euclidean and paper for ReLU, abs, x^d and the identity). Held-out stimuli so
    much larger than the training ones that the canonical form overflows get a ValueError.

    Conv features: pass ``layout`` ("nchw", ...); every sample and position is a row, as in the
    paper. With ``score_method="paper"`` a 4-D input without ``layout`` is read as
    (N, C, H, W), the paper's convention. Maps of different spatial sizes (4-D, "nchw" or
    "nhwc") are matched first by nearest-neighbour upsampling of the smaller by an integer
    factor (:func:`upsample_to_match`).

    Parameters
    ----------
    activation : str, (str, number), torch.nn.Module, callable, default "relu"
        The activation whose intertwiner group is used
        (:func:`simmetrics.symmetry.activations.intertwiner_group`), or a group name from
        :data:`INTERTWINER_GROUPS`.
    score_method : {"angular", "euclidean", "paper"}, default "angular"
        "angular" and "euclidean" are **distances**; "paper" is the paper's **similarity** 1 - d.
    center : bool, default False
        Subtract each neuron's mean (learned in ``fit``).
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None

    Attributes
    ----------
    group_ : str
        The group used.
    permutation_ : ndarray of int, shape (n_x,) or None
        Neuron ``permutation_[i]`` of Y is matched with neuron i of X (-1: matched with a
        padding neuron, when X is wider). None for invertible_linear.
    signs_ : ndarray, shape (n_x,) or None
        The sign of each match (all +1 for groups without sign flips).
    scales_ : ndarray, shape (n_x,) or None
        The positive factor of each match: ``X[:, i] ~ signs_[i] * scales_[i] *
        Y[:, permutation_[i]]`` (ratio of the fitted rms; 1 for groups without scalings, 0
        where a neuron is silent or unmatched).
    alignment_ : ndarray, shape (n_y, n_x)
        The fitted group element mapping Y onto X's neurons: ``Y @ alignment_`` approximates
        X (equals it when X = Y g for g in G, with X of full column rank for the identity).
    mean_x_, mean_y_ : ndarray
        Fitted neuron means (zeros unless ``center``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.maximum(rng.normal(size=(200, 6)), 0.0)
    >>> PD = np.eye(6)[[3, 0, 5, 1, 2, 4]] * rng.uniform(0.5, 2.0, size=6)
    >>> metric = IntertwinerProcrustes("relu").fit(X, X @ PD)
    >>> round(metric.score(X, X @ PD), 10), bool(np.allclose(metric.alignment_ @ PD, np.eye(6)))
    (0.0, True)
    >>> Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    >>> round(IntertwinerProcrustes("relu", score_method="paper").fit_score(X, X @ Q), 4)
    0.3605
    """

    kind = param_dependent(
        lambda self: "similarity" if self.score_method == "paper" else "distance"
    )
    bounds = param_dependent(_procrustes_bounds)
    is_metric = param_dependent(lambda self: self.score_method != "paper")
    symmetric = True  # the paper's similarity too: a function of the symmetric distance
    invariances = param_dependent(_procrustes_invariances)
    min_samples = 2
    same_width = False
    reference = REFERENCE

    _parameter_constraints = {
        "activation": [str, callable],
        "score_method": [Options(_PROCRUSTES_METHODS)],
        "center": [Boolean()],
    }

    def __init__(self, activation="relu", score_method="angular", center=False, layout=None):
        self.activation = activation
        self.score_method = score_method
        self.center = center
        self.layout = layout

    # -- validation ------------------------------------------------------------------------
    def _check_params(self):
        if self.score_method not in _PROCRUSTES_METHODS:
            raise ValueError(
                f"score_method must be one of {_PROCRUSTES_METHODS}, got {self.score_method!r}"
            )
        return intertwiner_group_name(self.activation)

    def _validate(self, X, Y):
        self._check_params()
        default_4d = "nchw" if self.score_method == "paper" else None
        A, B, layout = prepare_conv(X, Y, self.layout, default_4d)
        return check_pair(A, B, layout=layout, min_samples=self.min_samples,
                          same_width=self.same_width)

    # -- canonical forms -------------------------------------------------------------------
    def _canonicalize(self, Ac, W, e=0):
        """c(Ac) = (Ac 2**-e) W: a per-neuron factor (vector W, scalar or per-neuron e) or a
        whitening matrix. e is 0 except for subnormal-scale data (see :func:`folded`)."""
        S = np.ldexp(Ac, -e) if np.any(e) else Ac
        with np.errstate(over="ignore", invalid="ignore"):  # refused below
            C = S * W if W.ndim == 1 else S @ W
        if not np.all(np.isfinite(C)):
            raise ValueError(
                "the scored stimuli are too large for the scale fitted on the training "
                "stimuli: their canonical form (each neuron divided by its training rms, or "
                "whitened) overflows float64; fit and score on data of comparable scale"
            )
        return C

    def _whitener(self, Ac):
        """The canonicalising map of the (centred) training data and its power-of-two
        exponent: a vector (per-neuron factor) or a matrix (whitening), computed on the data
        rescaled by exact powers of two (per neuron for the factors), so subnormal and 1e300
        activations give the map of the unscaled data."""
        if self.group_ == "invertible_linear":
            top = float(np.max(np.abs(Ac)))
            e = int(np.frexp(top)[1]) if top > 0.0 else 0
            _, s, Vt = orthonormal_basis(np.ldexp(Ac, -e))
            return folded(whitening_map(s, Vt, Ac.shape[0]), e)
        if self.group_ in SCALED:
            squares, e = column_squares(Ac)
            return folded(reciprocal(np.sqrt(squares / Ac.shape[0])), e)
        return np.ones(Ac.shape[1]), 0

    def _fit(self, X, Y):
        self.group_ = self._check_params()
        for name, A in (("X", X), ("Y", Y)):  # no pass where two rows differ in a neuron
            if not (A.shape[0] > 1 and np.any(A[0] != A[1])):
                check_nonconstant(A, name)
        if self.center:
            # the alignment is learned on accurately centred data (two passes,
            # simmetrics._core.linalg.center): with large means, X - mean_x_ keeps a constant
            # rounding residual that the whitening would take for a direction of the data
            (Xc, self.mean_x_), (Yc, self.mean_y_) = fitted_centring(X), fitted_centring(Y)
        else:
            self.mean_x_, self.mean_y_ = np.zeros(X.shape[1]), np.zeros(Y.shape[1])
            Xc, Yc = X, Y
        width = max(X.shape[1], Y.shape[1])
        if self.group_ != "invertible_linear":
            products = self._fit_from_products(Xc, Yc, width)
            if products is not None:
                return products
        self._wx, ex = self._whitener(Xc)
        self._wy, ey = self._whitener(Yc)
        A = zero_pad(self._canonicalize(Xc, self._wx, ex), width)
        B = zero_pad(self._canonicalize(Yc, self._wy, ey), width)
        silent = None
        if self.group_ == "invertible_linear":
            self._rotation = procrustes_rotation(A, B)
        else:
            if self.group_ in SIGNED:
                perm, signs = optimal_signed_permutation(A, B)
            else:
                perm, signs = optimal_permutation(A, B), np.ones(width)
            silent = (~A.any(axis=0), ~B.any(axis=0))  # padding included
            self._perm, self._signs = silent_pairs_in_order(perm, signs, *silent)
        self._describe_alignment(X.shape[1], Y.shape[1], ex, ey, silent)

    def _fit_from_products(self, Xc, Yc, width):
        """The per-neuron groups' fit from the column sums of squares and Xc'Yc of the data
        as they are (no canonical copies: c(X)'c(Y) = diag(w_x) Xc'Yc diag(w_y)), and
        (||c(X)||^2, ||c(Y)||^2, <c(X), c(Y) h>) on them; None where the products leave the
        range that needs no rescaling (the fit then takes :meth:`_fit`'s rescaled route)."""
        sx, sy = plain_column_squares(Xc), plain_column_squares(Yc)
        if sx is None or sy is None:
            return None
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            C = Xc.T @ Yc
        top = float(np.max(np.abs(C)))
        if not (SAFE_LOW <= top <= SAFE_HIGH or (top == 0.0 and np.all(np.isfinite(C)))):
            return None
        if self.group_ in SCALED:  # 1 / rms of every neuron, 0 for silent ones
            self._wx, self._wy = (reciprocal(np.sqrt(s / Xc.shape[0])) for s in (sx, sy))
        else:
            self._wx, self._wy = np.ones(Xc.shape[1]), np.ones(Yc.shape[1])
        M = pad2(self._wx[:, None] * C * self._wy[None, :], width, width)
        if self.group_ in SIGNED:
            perm, signs = signed_assignment_from_cross(M)
        else:
            perm, signs = assignment_from_cross(M), np.ones(width)
        silent = tuple(pad1(s, width) == 0.0 for s in (sx, sy))  # padding included
        self._perm, self._signs = silent_pairs_in_order(perm, signs, *silent)
        self._describe_alignment(Xc.shape[1], Yc.shape[1], 0, 0, silent)
        ab = float(np.sum(M[np.arange(width), self._perm] * self._signs))
        return float(np.sum(self._wx**2 * sx)), float(np.sum(self._wy**2 * sy)), ab

    def _fit_score(self, X, Y):
        """fit, then the value on the same data from the fit's products
        ||A||^2, ||B||^2 and <A, B h> (A = c(X), B = c(Y), h the fitted discrete part): the
        angle's arccos(<A, B h> / (||A|| ||B||)) and the rms sqrt(||A||^2 + ||B||^2 - 2 <A, B h>)
        / sqrt(m n), as PermutationMetric's closed form; where the cosine is within 0.01 of 1
        (the closed form would lose digits) or the fit took another route, the aligned data
        are formed (:meth:`_score`)."""
        products = self._fit(X, Y)
        if products is not None and min(products[:2]) > 0.0:
            aa, bb, ab = products
            cos = ab / np.sqrt(aa) / np.sqrt(bb)
            if abs(cos) < 0.99:
                if self.score_method == "angular":
                    return float(np.arccos(cos))
                width = max(self._wx.shape[0], self._wy.shape[0])
                rms = np.sqrt(max(aa + bb - 2.0 * ab, 0.0) / (X.shape[0] * width))
                return float(rms) if self.score_method == "euclidean" else float(1.0 - 0.5 * rms)
        return self._score(X, Y)

    def _describe_alignment(self, nx, ny, ex=0, ey=0, silent=None):
        """The user-facing attributes: the fitted group element and its parts.

        Also records what held-out scoring needs besides the maps: the power-of-two exponents
        ``ex``, ``ey`` of the maps (0: the maps are in true units) and, for the permutation
        groups, which neurons were silent on the training stimuli (two masks over the padded
        width; None: those whose factor is 0)."""
        self._ex, self._ey = ex, ey
        if self.group_ == "invertible_linear":
            rx, ry = self._wx.shape[1], self._wy.shape[1]
            # X ~ c(X) W_x^+ and c(X) ~ Y W_y R: the inverse of the whitening is pinv(W_x);
            # with exponents, c(X) = X 2**-ex W_x, so the element gains 2**(ex - ey)
            with np.errstate(over="ignore", under="ignore"):
                self.alignment_ = np.ldexp(
                    self._wy @ self._rotation[:ry, :rx] @ np.linalg.pinv(self._wx), ex - ey)
            self.permutation_ = self.signs_ = self.scales_ = None
            self._silent = None
            return
        width = len(self._perm)
        if silent is None:
            silent = tuple(np.concatenate([w == 0.0, np.ones(width - len(w), dtype=bool)])
                           for w in (self._wx, self._wy))
        self._silent = silent
        perm = self._perm[:nx].copy()
        matched = perm < ny
        perm[~matched] = -1
        scales = np.zeros(nx)
        idx = np.flatnonzero(matched)
        # c(X)[:, i] = X[:, i] 2**-ex_i wx_i  ~  s_i Y[:, j] 2**-ey_j wy_j
        #   =>  X[:, i] ~ s_i (wy_j / wx_i) 2**(ex_i - ey_j) Y[:, j]
        shift = (np.broadcast_to(ex, (nx,))[idx] - np.broadcast_to(ey, (ny,))[perm[idx]])
        with np.errstate(over="ignore", under="ignore"):
            scales[idx] = np.ldexp(self._wy[perm[idx]] * reciprocal(self._wx[idx]), shift)
        self.permutation_ = perm
        self.signs_ = self._signs[:nx].copy()
        self.scales_ = scales
        self.alignment_ = np.zeros((ny, nx))
        self.alignment_[perm[idx], idx] = self.signs_[idx] * scales[idx]

    # -- alignment and score ---------------------------------------------------------------
    def _heldout_factors(self, Xc, W, e):
        """c(Xc) for the per-neuron groups on scored stimuli: the fitted factors, and a neuron
        silent on the training stimuli (factor 0) divided by its rms on ``Xc``."""
        A = self._canonicalize(Xc, W, e)
        silent = W == 0.0
        if self.group_ in SCALED and silent.any():
            A[:, silent] = unit_rms_columns(Xc[:, silent])
        return A

    def _heldout_whitened(self, X, Xc, W, e):
        """(main, extra) for the identity group on scored stimuli X (m rows), Xc = X - mean.

        main = c(Xc) = Xc 2**-e W, the training whitening. Directions of the neurons that the
        training rows never spanned (a silent neuron, fewer stimuli than neurons) are invisible
        to it: the part of Xc outside the training row space, Z = Xc (I - V V') (V: the
        orthonormal columns of W, which are orthogonal), is whitened on the scored stimuli,
        extra = sqrt(m) U_z (U_z: orthonormal basis of Z's column space, singular values
        below max(m, d) eps ||X||_F dropped as rounding: the uncentred X, whose size sets the
        rounding of X - mean, a constant row of about eps |mean|), and main is projected off
        span(U_z). Both blocks are then G-equivariant up to an orthogonal map (GL_n maps the
        unseen part of one representation to the unseen part of the other), so held-out
        values stay invariant."""
        main = self._canonicalize(Xc, W, e)
        m, d = Xc.shape
        if W.shape[1] >= d:
            return main, np.zeros((m, 0))
        V = unit_rms_columns(W)  # orthogonal columns: unit rms, i.e. norm sqrt(d)
        top = float(np.max(np.abs(Xc)))
        shift = -int(np.frexp(top)[1]) if top > 0.0 else 0
        T = np.ldexp(Xc, shift)  # exact; the basis below does not depend on the scale
        Z = T - (T @ V) @ V.T / d
        U, s, _ = np.linalg.svd(Z, full_matrices=False)
        with np.errstate(over="ignore", under="ignore"):
            floor = np.ldexp(frobenius_norm(X), shift)
        keep = s > max(m, d) * np.finfo(np.float64).eps * max(floor, frobenius_norm(T))
        Uz = U[:, keep]
        if Uz.shape[1]:
            main = main - Uz @ (Uz.T @ main)
        return main, np.sqrt(m) * Uz

    def _transform(self, X, Y):
        # the fitted widths, from the fitted maps (set inside fit, before n_features_x_)
        width = max(self._wx.shape[0], self._wy.shape[0])
        Xc, Yc = X - self.mean_x_, Y - self.mean_y_
        if self.group_ == "invertible_linear":
            (Ma, Ea), (Mb, Eb) = (self._heldout_whitened(X, Xc, self._wx, self._ex),
                                  self._heldout_whitened(Y, Yc, self._wy, self._ey))
            A, B = zero_pad(Ma, width), zero_pad(Mb, width) @ self._rotation
            k = max(Ea.shape[1], Eb.shape[1])
            if k:  # the unseen directions, aligned on the scored stimuli
                Ea, Eb = zero_pad(Ea, k), zero_pad(Eb, k)
                A, B = np.hstack([A, Ea]), np.hstack([B, Eb @ procrustes_rotation(Ea, Eb)])
            return A, B
        A = zero_pad(self._heldout_factors(Xc, self._wx, self._ex), width)
        B = zero_pad(self._heldout_factors(Yc, self._wy, self._ey), width)
        perm, signs = rematch_undetermined(
            lambda rows, cols: cross_in_range(A[:, rows], B[:, cols]), self._perm,
            self._signs, *self._silent, signed=self.group_ in SIGNED)
        return A, B[:, perm] * signs

    def _score(self, X, Y):
        self._check_params()
        check_nonconstant(X, "X")
        check_nonconstant(Y, "Y")
        A, B = self._transform(X, Y)
        if self.score_method == "angular":
            return angular_distance(A, B)
        # an rms over m x n entries, n = the fitted width (the identity group's held-out
        # unseen directions add columns, not neurons); no overflow or underflow at 1e+-300
        width = max(self._wx.shape[0], self._wy.shape[0])
        rms = frobenius_norm(A - B) / np.sqrt(A.shape[0] * width)
        return rms if self.score_method == "euclidean" else 1.0 - 0.5 * rms

    # -- gradients (simmetrics.functional) ---------------------------------------------------
    def _gradient_formula(self, X, Y, nx):
        """The canonical forms differentiated, the fitted alignment held fixed (Danskin's
        theorem; :func:`simmetrics.metrics.intertwiner_gradient.intertwiner_procrustes_formula`)."""
        return intertwiner_procrustes_formula(self, X, Y, nx)

    def _gradient_rows(self, X, Y, nx):
        """The rows :meth:`_validate` reads, without leaving the tensors' autograd graph
        (:meth:`_batch_layout` converts to numpy)."""
        return intertwiner_rows(self, X, Y, nx)

    # -- streaming (simmetrics.stream_score): fit and score from second moments --------------
    # For the per-neuron groups the canonical forms, the assignment and the distance need only
    # the (uncentred, or centred with the fitted means) X'X, Y'Y and X'Y. The identity group
    # whitens, which X'X cannot do where it has rounded away small directions (one stimulus
    # 1e8 times the others): it runs the whole-data fit and distance on rows standing in for
    # the data (PairMoments.factor_rows, the data's conditioning), and without a factor uses
    # X'X only where simmetrics.moments.gram_factor finds its digits sufficient.
    def _batch_layout(self, X, Y):
        """What ``_validate`` does before ``check_pair``, for one batch of a stream."""
        self._check_params()
        default_4d = "nchw" if self.score_method == "paper" else None
        return prepare_conv(X, Y, self.layout, default_4d)

    #: the hooks below take statistics at any power-of-two level (``stats.exponents``) and
    #: give the value in the data's units (see simmetrics.streaming._for_metric)
    _moments_any_scale = True

    @property
    def _moments_factor(self):
        """The identity group whitens: stream_score accumulates PairMoments.factor, and the
        fit and the distance come from rows standing in for the data (PairMoments.factor_rows)
        with the data's conditioning; the other groups need only diagonals and cross-products
        of the second moments."""
        try:
            return intertwiner_group_name(self.activation) == "invertible_linear"
        except (TypeError, ValueError):  # reported by the parameter checks
            return False

    def _moments_parts(self, stats):
        """The statistics as exactly centred parts and offsets, at their power-of-two level
        (X_s = X 2^-ex, Y_s = Y 2^-ey): n, Gx = Xc'Xc, Gy, C = Xc'Yc and dx = mean(X_s) -
        mean_x_ 2^-ex, dy. About the fitted means, X'X = Gx + n dx dx' (likewise C); the two
        parts are never added: with a large mean (1e8 +- 1e-3) the sum would round away Gx."""
        self._check_params()
        S = stats.to_numpy()
        check_nonconstant_moments(S.x, "X")
        check_nonconstant_moments(S.y, "Y")
        Sc = S.centred()
        n, sx, sy = S.n, Sc.x.sum, Sc.y.sum  # the residual sums of the centring (rounding)
        ex, ey = S.exponents
        dx = (Sc.x.shift - at_level(self.mean_x_, -ex)) + sx / n
        dy = (Sc.y.shift - at_level(self.mean_y_, -ey)) + sy / n
        return (n, Sc.x.gram - np.outer(sx, sx / n), Sc.y.gram - np.outer(sy, sy / n),
                Sc.cross - np.outer(sx, sy / n), dx, dy)

    def _whitener_from_parts(self, G, d, n, rep=None, name="X"):
        """The canonicalising map of data with centred Gram G and offset d (X'X = G + n dd'),
        at the statistics' level (statistics without a factor). The identity group whitens by
        the SVD of the square root [M ; sqrt(n) d'] of G + n dd', M'M = G the square root that
        :func:`simmetrics.moments.gram_factor` accepts (refused, naming fit_score, where G's
        digits do not suffice; ``rep`` gives the neurons' extremes), which resolves singular
        values down to max(n, d) eps of the largest as the data's SVD does; the scaled groups
        divide by the rms of every neuron, sqrt(diag(G)/n + d^2)."""
        if self.group_ == "invertible_linear":
            M = gram_factor(rep, name, centred=True, gram=G)
            _, sv, Vt, e = rows_svd(np.vstack([M, np.sqrt(n) * d[None, :]]), n)
            return whitening_map(times_pow2(sv, e), Vt, n)
        if self.group_ in SCALED:
            return reciprocal(np.sqrt(np.diag(G) / n + d * d))
        return np.ones(G.shape[0])

    def _canonical_parts(self, parts, exponents):
        """The canonical forms' parts, per side at its own power-of-two level: A = c(X) =
        (Ac + 1 a') 2^kx with ||Ac||^2 = aa, likewise B, and M = Ac'Bc (zero-padded to the
        common width); the fitted maps, at the statistics' level, by :func:`level_map`."""
        n, Gx, Gy, C, dx, dy = parts
        (wx, kx), (wy, ky) = (level_map(self._wx, self._ex, exponents[0]),
                              level_map(self._wy, self._ey, exponents[1]))
        if wx.ndim == 1:
            aa = float(np.sum(wx**2 * np.diag(Gx)))
            bb = float(np.sum(wy**2 * np.diag(Gy)))
            M = wx[:, None] * C * wy[None, :]
            a, b = wx * dx, wy * dy
        else:
            aa = float(np.sum((Gx @ wx) * wx))
            bb = float(np.sum((Gy @ wy) * wy))
            M = wx.T @ C @ wy
            a, b = wx.T @ dx, wy.T @ dy
        width = max(Gx.shape[0], Gy.shape[0])
        return aa, bb, pad2(M, width, width), pad1(a, width), pad1(b, width), kx, ky

    def _fit_from_moments(self, stats):
        self.group_ = self._check_params()
        S = stats.to_numpy()
        ex, ey = S.exponents
        if self.center:
            self.mean_x_, self.mean_y_ = S.x.mean, S.y.mean
        else:
            self.mean_x_, self.mean_y_ = np.zeros(S.x.width), np.zeros(S.y.width)
        if self.group_ == "invertible_linear" and S.factor is not None:
            return self._fit_identity_from_rows(S)
        parts = self._moments_parts(S)
        n, Gx, Gy, _, dx, dy = parts
        # the maps at the statistics' level: c(X) = X_s W = (X 2^-ex) W, as the whole-data
        # maps with an exponent; the permutation groups' identity map stays in true units
        whitens = self.group_ == "invertible_linear" or self.group_ in SCALED
        self._wx = self._whitener_from_parts(Gx, dx, n, S.x, "X")
        self._wy = self._whitener_from_parts(Gy, dy, n, S.y, "Y")
        self._ex, self._ey = (ex, ey) if whitens else (0, 0)
        aa, bb, M, a, b, _, _ = self._canonical_parts(parts, (ex, ey))
        M = M + n * np.outer(a, b)  # A'B, the two parts at one level (for the alignment only)
        if self.group_ == "invertible_linear":
            self._rotation = rotation_from_cross(pow2_rescale(M.T))
        elif self.group_ in SIGNED:
            self._perm, self._signs = signed_assignment_from_cross(M)
        else:
            self._perm, self._signs = assignment_from_cross(pow2_rescale(M)), np.ones(len(M))
        self._describe_alignment(S.x.width, S.y.width, self._ex, self._ey)

    def _fit_identity_from_rows(self, S):
        """The whole-data fit of the identity group (:meth:`_fit`) on rows standing in for
        the data about the fitted means (:meth:`simmetrics.PairMoments.factor_rows`, at the
        statistics' levels X_s = X 2^-ex): c(X) = sqrt(n) U, U the orthonormal basis of the
        rows' column space (the whole-data rank rule for n rows), and the rotation of
        orthogonal Procrustes between the padded canonical forms."""
        n, (ex, ey) = S.n, S.exponents
        maps, forms = [], []
        for rows, e in zip(S.shifted(self.mean_x_, self.mean_y_).factor_rows(), (ex, ey)):
            U, s, Vt, k = rows_svd(rows, n)  # of rows 2^-k: c(X) = (X 2^-(e + k)) W
            maps.append(folded(whitening_map(s, Vt, n), e + k))
            forms.append(np.sqrt(n) * U)
        (self._wx, ex), (self._wy, ey) = maps
        width = max(S.x.width, S.y.width)
        self._rotation = procrustes_rotation(zero_pad(forms[0], width), zero_pad(forms[1], width))
        self._describe_alignment(S.x.width, S.y.width, ex, ey)

    def _identity_score_from_rows(self, S):
        """The whole-data distance of the identity group (:meth:`_score`) on rows standing
        in for the data about the fitted means, each side at its own level (the fitted maps
        brought there by :func:`level_map`)."""
        rows = S.shifted(self.mean_x_, self.mean_y_).factor_rows()
        (wx, kx), (wy, ky) = (level_map(self._wx, self._ex, S.exponents[0]),
                              level_map(self._wy, self._ey, S.exponents[1]))
        width = max(self._wx.shape[0], self._wy.shape[0])
        A = zero_pad(rows[0] @ wx, width)  # c(X) 2^-kx
        B = zero_pad(rows[1] @ wy, width) @ self._rotation  # c(Y) R 2^-ky
        if self.score_method == "angular":
            return angular_distance(A, B)
        k = max(kx, ky)  # both at the larger level, then the rms back in the data's units
        with np.errstate(under="ignore"):
            diff = times_pow2(A, kx - k) - times_pow2(B, ky - k)
        rms = float(times_pow2(frobenius_norm(diff) / np.sqrt(S.n * width), k))
        return rms if self.score_method == "euclidean" else 1.0 - 0.5 * rms

    def _score_from_moments(self, stats):
        S = stats.to_numpy()
        if self.group_ == "invertible_linear" and S.factor is not None:
            return self._identity_score_from_rows(S)
        parts = self._moments_parts(S)
        if self.group_ == "invertible_linear":  # the Gram route, where its digits suffice
            gram_factor(S.x, "X", gram=parts[1])
            gram_factor(S.y, "Y", gram=parts[2])
        aa, bb, M, a, b, kx, ky = self._canonical_parts(parts, S.exponents)
        n = S.n
        if self.group_ == "invertible_linear":
            ab = float(np.sum(M * self._rotation.T))  # <Ac, Bc R> = tr(Ac'Bc R)
            b = self._rotation.T @ b  # the offset row of B R
        else:
            ab = float(np.sum(M[np.arange(len(M)), self._perm] * self._signs))
            b = b[self._perm] * self._signs
        if self.score_method == "angular":
            # the angle between A and B R, each side at its own level (the angle ignores
            # scale): Kahan's 2 atan2(||a - b||, ||a + b||) on unit-norm versions, the offset
            # rows subtracted as vectors (no cancellation of two large products)
            na, nb = aa + n * float(a @ a), bb + n * float(b @ b)
            for name, sq in (("X", na), ("Y", nb)):
                if not sq > 0.0:
                    raise ValueError(
                        f"the aligned {name} is zero (no variance left after centring with "
                        "the fitted means and whitening), so the angular distance is undefined"
                    )
            ua, ub = 1.0 / np.sqrt(na), 1.0 / np.sqrt(nb)
            cross = 2.0 * ab * ua * ub
            diff = aa * ua * ua + bb * ub * ub - cross + n * float(np.sum((a * ua - b * ub)**2))
            both = aa * ua * ua + bb * ub * ub + cross + n * float(np.sum((a * ua + b * ub)**2))
            return float(2.0 * np.arctan2(np.sqrt(max(diff, 0.0)), np.sqrt(max(both, 0.0))))
        # euclidean: both sides at the larger level k, then the rms scaled back by 2^k
        k = max(kx, ky)
        fx, fy = 2.0 ** max(kx - k, -1074), 2.0 ** max(ky - k, -1074)
        diff = (fx * fx * aa + fy * fy * bb - 2.0 * fx * fy * ab
                + n * float(np.sum((fx * a - fy * b) ** 2)))
        rms = float(times_pow2(np.sqrt(max(diff, 0.0)) / np.sqrt(n * len(M)), k))
        return rms if self.score_method == "euclidean" else 1.0 - 0.5 * rms
