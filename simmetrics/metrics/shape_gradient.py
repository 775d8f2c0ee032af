"""The shape metrics' values as differentiable expressions (the gradient formulas of
:class:`simmetrics.ShapeMetric` and :class:`simmetrics.OrthogonalProcrustes`, see
``Metric._gradient_formula``).

Written once with backend operations, so numpy evaluates them as torch does (the tests compare
them with the classes' guarded routes, which give the values). Three parts:

- **centring**, two passes (the second one about the first pass's mean, taken as a constant:
  the result is X - mean(X) with the rounding of the accurate route, and its gradient is that
  of the exact centring, every column sum of the gradient zero);
- **partial whitening** X~ = Xc Z_X (:func:`whitened`), where Xc Z = k (alpha Xc + (1 - alpha)
  U V') for the trace and netrep rules and alpha Xc + (1 - alpha) sqrt(n) U V' for the
  covariance rule (Xc = U S V' its thin SVD on the r directions the fit kept), so the only
  non-polynomial part is the polar factor U V' (:func:`polar_factor`) and, for k, the nuclear
  norm <Xc, U V'> = sum(S);
- **the aligned distance** with the fitted rotation Q held fixed (:func:`aligned_distance`).
  The value is min over orthogonal Q of the distance (max of <X~, Y~ Q>); at the optimum the
  gradient of the optimal value is the gradient of the objective at the optimiser (Danskin's
  theorem), so Q enters as a constant.

**Where the gradient exists.** With A = X~, B = Y~ (zero-padded), the value is a function of
||A||, ||B|| and the nuclear norm ||A'B||_*, whose gradient is U_M V_M' (M = A'B = U_M S_M V_M')
wherever M has as many nonzero singular values as it can have given the data (rank M = min(dx,
dy), or rank M = rank A = rank B, which covers fewer stimuli than neurons, zero-padding and a dead
unit on the narrower side): then every optimal Q gives the same gradient, and the fitted one
(closest to the identity) is one of them. *Repeated* singular values of M do not matter: the
polar factor and the nuclear norm are smooth there (their derivatives involve s_i + s_j, never
s_i - s_j). Where M has fewer nonzero singular values than that (a direction of one
representation orthogonal to the whole other one, e.g. a dead unit in X beside a Y of full
width), the value has a kink, and the gradient is that of the fitted Q's objective, one element
of the (super)differential. At distance 0 (equal shapes) the distance is not differentiable;
the gradient there is whatever torch gives for the norm at 0.

**The polar factor, ties included.** :func:`polar_factor` is not an SVD in the graph (torch's
SVD backward divides by s_i^2 - s_j^2 and gives inf or NaN at repeated singular values, which
whitened, isotropic or quantised data have): it is the first-order expansion of U V' about the
fitted point, exact in value there and in its first derivative (the only derivative the
gradient needs, since the backward pass evaluates it at the fitted inputs)::

    X = U S V' (fitted, constants),  E = U' X V,  Omega_ij = (E_ij - E_ji) / (s_i + s_j)
    d(U V') = U Omega V' + (I - U U') dX V S^-1 V' + U S^-1 U' dX (I - V V')

(E = S at the point, so Omega and the two projected terms vanish there). Ties in S cost
nothing; a zero singular value is excluded by the rank rule. Rank-deficient data (a dead unit,
duplicate neurons with alpha < 1) keep their rank in the expansion: the whitened value jumps
when a perturbation adds a direction (a new singular value above the rank tolerance is whitened
to the size of the others), and the gradient is that of the value on the data of the fitted
rank (the perturbations that keep the rank: every perturbation when n <= d, where the centred
data's rank is n - 1 whatever they are). The row-space term (the last one) moves U V' but not
the value's gradient: at the optimal Q the part of Y~ Q outside the row space of X~ is
orthogonal to X~'s column space.

All in feature space, O(n d r) for the whitening and O(n d^2) (d > n: O(n^2 d)) for the
rotation, as the value.
"""

import numpy as np

__all__ = ["centred", "polar_factor", "whitened", "apply_map", "aligned_distance",
           "shape_distance_formula"]


def centred(X, nx):
    """X minus its column means, in two passes (the first mean as a constant): the value of
    the accurate route, the gradient of X - mean(X)."""
    Z = X - nx.stop_gradient(X).mean(axis=0)
    return Z - Z.mean(axis=0)


def polar_factor(Xc, V, nx):
    """U V' for Xc = U S V' (thin, the r columns of the fitted ``V``, d x r), as the
    first-order expansion about the fitted point given in the module text: its value at the
    point is the polar factor, its derivative that of the polar factor on data of rank r,
    finite at repeated singular values."""
    V = nx.asarray(V)
    XV = Xc @ V  # U S at the point
    US = nx.stop_gradient(XV)
    s = nx.sqrt((US * US).sum(axis=0))
    U = US / s
    E = U.T @ XV
    skew = (E - E.T) / (s.reshape(-1, 1) + s.reshape(1, -1))
    out = (U + U @ skew + (XV - U @ E) / s) @ V.T
    if V.shape[1] < V.shape[0]:  # rank below the width: the row space turns too
        out = out + (U / s) @ (U.T @ Xc - E @ V.T)
    return out


def whitened(Xc, V, alpha, whitening, width, nx, floor=1e-7):
    """The partially whitened Xc Z (:class:`simmetrics.ShapeMetric`'s ``whitening`` rules):

    - "trace":  k (alpha Xc + (1 - alpha) U V'), k^2 = ||S||^2 / ||alpha S + (1 - alpha)||^2
      over the r kept directions, ||S||^2 = ||Xc||_F^2 and sum(S) = <Xc, U V'>;
    - "netrep": the same with the ``width`` - r directions the data do not span counted at
      netrep's eigenvalue ``floor`` (:data:`simmetrics.metrics.shape.NETREP_EIGENVALUE_FLOOR`;
      singular value sqrt(floor)) in k;
    - "covariance": alpha Xc + (1 - alpha) sqrt(n) U V' (Xc (Xc'Xc / n)^(-1/2) = sqrt(n) U V').

    ``alpha`` = 1 is Xc itself."""
    if alpha == 1.0:
        return Xc
    P = polar_factor(Xc, V, nx)
    if whitening == "covariance":
        return alpha * Xc + (1.0 - alpha) * float(np.sqrt(Xc.shape[0])) * P
    sq, nuclear, count = (Xc * Xc).sum(), (Xc * P).sum(), float(V.shape[1])
    extra = width - V.shape[1]
    if whitening == "netrep" and extra > 0:
        sq, nuclear = sq + extra * floor, nuclear + extra * float(np.sqrt(floor))
        count = float(width)
    k = nx.sqrt(sq / (alpha ** 2 * sq + 2.0 * alpha * (1.0 - alpha) * nuclear
                      + (1.0 - alpha) ** 2 * count))
    return k * (alpha * Xc + (1.0 - alpha) * P)


def _padded(A, width, nx):
    if A.shape[1] == width:
        return A
    return nx.concat([A, nx.asarray(np.zeros((A.shape[0], width - A.shape[1])))], axis=1)


def apply_map(A, M, nx):
    """A M for a fitted :class:`simmetrics._core.linear_map.LinearMap` ``M`` (dense, or
    c I + W K W' kept factored), its parts as constants."""
    if M.basis is None:
        return A @ nx.asarray(M.core)
    W = nx.asarray(M.basis)
    AW = A @ W
    core = nx.asarray(M.core)
    AW = AW * core if M.core.ndim == 1 else AW @ core
    out = AW @ W.T
    return out + M.scalar * A if M.scalar != 0.0 else out


def aligned_distance(A, B, rotation, score_method, nx):
    """The distance between A and B Q (both zero-padded to the rotation's width), Q the fitted
    ``rotation`` held fixed (Danskin's theorem, module text)::

        euclidean: ||A - B Q||_F
        chordal:   ||a - b||_F,                 a = A / ||A||, b = B Q / ||B||
        angular:   2 arctan2(||a - b||, ||a + b||)   (Kahan's angle, = arccos <a, b>)
    """
    width = rotation.width
    A, BQ = _padded(A, width, nx), apply_map(_padded(B, width, nx), rotation, nx)
    if score_method == "euclidean":
        return nx.frobenius(A - BQ)
    a, b = A / nx.frobenius(A), BQ / nx.frobenius(B)
    chord = nx.frobenius(a - b)
    if score_method == "chordal":
        return chord
    return 2.0 * nx.arctan2(chord, nx.frobenius(a + b))


def shape_distance_formula(X, Y, fitted, nx):
    """The value of a fitted :class:`simmetrics.ShapeMetric` (or
    :class:`simmetrics.OrthogonalProcrustes`) on the rows it was fitted on: centred (when
    ``center_columns``), whitened with the fitted directions (:func:`whitened`), aligned by
    the fitted rotation (:func:`aligned_distance`).

    ``fitted`` = (alpha, whitening, center_columns, score_method, whitener_x, whitener_y,
    rotation, floor): the parameters, the fitted maps (the whiteners None at alpha = 1) and
    netrep's eigenvalue floor."""
    alpha, whitening, center_columns, score_method, Zx, Zy, rotation, floor = fitted
    if center_columns:
        X, Y = centred(X, nx), centred(Y, nx)
    sides = [A if Z is None else whitened(A, Z.basis, alpha, whitening, rotation.width, nx, floor)
             for A, Z in ((X, Zx), (Y, Zy))]
    return aligned_distance(sides[0], sides[1], rotation, score_method, nx)
