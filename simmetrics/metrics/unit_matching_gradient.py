"""The gradient formulas (``Metric._gradient_formula``) of the unit matchings:
:class:`simmetrics.HardCorrelationMatch`, :class:`simmetrics.SoftCorrelationMatch` and
:class:`simmetrics.AlignedCosine`.

- The correlation matchings are a maximum over a finite set (one-to-one matchings, or each
  neuron's best partner) of sums of Pearson correlations. The formula holds the fitted
  matching fixed and differentiates the matched correlations (Danskin's theorem: the
  gradient of the maximum where the maximiser is unique; at exact ties, e.g. a duplicated
  neuron, the value has one-sided derivatives only and this is the gradient of the fitted
  matching). A pair with a constant neuron (a dead unit) has the constant value 1 or 0 of the
  dead-unit rule, so it contributes no gradient.
- AlignedCosine's rotation Q* = argmin ||X Q - Y||_F is **not** an optimum of the value (a
  mean of cosines), so Danskin's theorem does not apply and the rotation's derivative is
  carried: Q* is the polar factor U V' of M = X'Y (thin SVD M = U S V'), whose differential
  is (M tall, d_x >= d_y; otherwise the same for M')::

      dQ = U W V' + (I - U U') dM V S^-1 V',   W_ij = (G_ij - G_ji) / (s_i + s_j),  G = U' dM V

  (differentiate M = U S V' with U'dU and V'dV skew). The formula is Q0 + dQ(M - M0) around
  the fitted M0: its value is the fitted rotation's and its first derivative the rotation's,
  which is all a gradient needs (backward differentiates it once). It is defined at repeated
  singular values (s_i + s_j > 0); where M has singular values at rounding level (fewer
  stimuli than neurons, a neuron that is all zeros) the rotation is not determined and those
  directions are dropped (the value does not depend on them; the gradient there is that
  of the rotation restricted to the determined directions).

Written with backend operations (``nx``), so numpy evaluates the same formulas.
"""

import numpy as np

__all__ = ["correlation_match_formula", "aligned_cosine_formula", "polar_differential"]


def _unit_live_columns(A, live):
    """The live (varying) columns of ``A``, centred and scaled to unit norm."""
    index = [int(i) for i in np.flatnonzero(live)]
    Z = A[:, index]
    Z = Z - Z.mean(axis=0)
    return Z / ((Z * Z).sum(axis=0)) ** 0.5


def correlation_match_formula(state, X, Y, nx):
    """sum_p w_p r(x_(rows_p), y_(cols_p)) over the fitted pairs of a correlation matching.

    ``state`` = (live_x, live_y, rows, cols, weights, constant): which neurons vary, the
    matched pairs with their weights (1/m for the hard matching, 1/(2 d_x) and 1/(2 d_y) for
    the two directions of the soft one), and the value the pairs with a dead unit add (their
    correlations are the constants 1 or 0). r is the cosine of the centred neurons."""
    live_x, live_y, rows, cols, weights, constant = state
    both = live_x[rows] & live_y[cols]
    position_x = np.cumsum(live_x) - 1  # column of a live neuron among the live ones
    position_y = np.cumsum(live_y) - 1
    U, V = _unit_live_columns(X, live_x), _unit_live_columns(Y, live_y)
    a = [int(i) for i in position_x[rows[both]]]
    b = [int(i) for i in position_y[cols[both]]]
    r = (U[:, a] * V[:, b]).sum(axis=0)
    return (r * nx.asarray(weights[both])).sum() + constant


def correlation_match_state(sx, sy, rows, cols, weights, C):
    """The ``state`` of :func:`correlation_match_formula` from the two per-representation
    states (unit columns, live masks), the matched pairs, their weights and the correlations."""
    rows, cols = np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp)
    weights = np.asarray(weights, dtype=np.float64)
    live_x, live_y = sx[1], sy[1]
    dead = ~(live_x[rows] & live_y[cols])
    constant = float(np.sum(weights[dead] * C[rows[dead], cols[dead]]))
    return live_x, live_y, rows, cols, weights, constant


def polar_differential(U, s, V, dM, nx):
    """The differential dQ of the polar factor Q = U V' of a tall M = U S V' (thin SVD,
    U (p, k), V (k, k)) in the direction dM, as in the module docstring. Singular values at
    rounding level (below max(p, k) eps s_max) are dropped: 1/s and 1/(s_i + s_j) are taken
    as 0 there. ``U``, ``s``, ``V`` are numpy constants; ``dM`` a value of ``nx``."""
    k = s.size
    tol = max(U.shape[0], k) * np.finfo(np.float64).eps * (float(s.max()) if k else 0.0)
    total = s[:, None] + s[None, :]
    inv_total = np.divide(1.0, total, out=np.zeros_like(total), where=total > tol)
    inv_s = np.divide(1.0, s, out=np.zeros_like(s), where=s > tol)
    Ut, Vt, Vs = nx.asarray(U), nx.asarray(V), nx.asarray((V * inv_s) @ V.T)
    G = Ut.T @ dM @ Vt
    W = (G - G.T) * nx.asarray(inv_total)
    tail = dM @ Vs
    return Ut @ W @ Vt.T + tail - Ut @ (Ut.T @ tail)


def aligned_cosine_state(Xs, Ys, Q):
    """What :func:`aligned_cosine_formula` holds fixed, from the (power-of-two rescaled,
    unpadded) rows the class computed on and its rotation ``Q`` (of the padded width):
    M0 = Xs'Ys, the fitted Q0 = Q[:d_x, :d_y] and the thin SVD of M0 (or of M0' where
    d_x < d_y, so that it is tall)."""
    M0 = Xs.T @ Ys
    tall = M0.shape[0] >= M0.shape[1]
    U, s, Vt = np.linalg.svd(M0 if tall else M0.T, full_matrices=False)
    return M0, Q[: Xs.shape[1], : Ys.shape[1]].copy(), tall, U, s, Vt.T


def aligned_cosine_formula(scales, state, X, Y, nx):
    """AlignedCosine on its fitting rows: 1/n sum_i cos(x_i Q, y_i) with Q the linearised
    polar factor Q0 + dQ(X'Y - M0) (module docstring). ``scales`` are the exact powers of
    two the class rescaled X and Y by (the cosines do not depend on them; M0 was formed from
    the rescaled rows); the narrower side needs no zero-padding (padded neurons are zero)."""
    Xs, Ys = X * scales[0], Y * scales[1]
    M0, Q0, tall, U, s, V = state
    dM = Xs.T @ Ys - nx.asarray(M0)
    if tall:
        Q = nx.asarray(Q0) + polar_differential(U, s, V, dM, nx)
    else:
        Q = nx.asarray(Q0) + polar_differential(U, s, V, dM.T, nx).T
    inner = ((Xs @ Q) * Ys).sum(axis=1)
    norms = ((Xs * Xs).sum(axis=1) * (Ys * Ys).sum(axis=1)) ** 0.5
    return (inner / norms).mean()
