"""Differentiable expressions of the column-space measures: the gradient formulas of
:class:`simmetrics.EigenspaceOverlap`, :class:`simmetrics.GULP` and
:class:`simmetrics.LinearRegressionR2` (see ``Metric._gradient_formula``).

All in feature space (d x d matrices, O(n d^2) time, no n x n matrix). The values come from
orthonormal bases U of the column spaces (:func:`simmetrics.metrics.subspace.column_basis`);
the formulas use the projection P = Z (Z'Z)^-1 Z' onto the column space of Z = A V, with V
(d x r) the right singular vectors that basis keeps (singular values above max(n, d) eps s_max)
held fixed, so that::

    ||Ux'Uy||_F^2 = tr(Px Py) = tr( (Zx'Zx)^-1 Zx'Zy (Zy'Zy)^-1 Zy'Zx ).

On data of full column rank V is a rotation of the neurons, Z spans the same space as A and
the gradient is the exact one. On rank-deficient data (a dead or duplicated neuron, n <= d)
the projection jumps when a perturbation adds a direction, so the value has no gradient; with
V fixed the formula gives its gradient along the perturbations that keep the rank (it ignores
the components of the perturbation along the dropped directions), a one-sided choice that
leaves a dead neuron dead.
"""

from .._core.linalg import center, orthonormal_basis, pow2_rescale

__all__ = ["kept_directions", "projection_overlap", "gulp_formula", "regression_r2_formula",
           "overlap_formula"]


def kept_directions(A, centred, nx):
    """``A`` (centred first with ``centred``) times the fixed right singular vectors V of the
    directions its column basis keeps: Z = A V, n x r, of full column rank."""
    if centred:
        A = A - A.mean(axis=0)
    B = pow2_rescale(nx.to_numpy(A))
    _, _, Vt = orthonormal_basis(center(B) if centred else B)
    return A @ nx.asarray(Vt.T)


def _gram_solve(Z, B, nx):
    """(Z'Z)^-1 B."""
    return nx.solve(Z.T @ Z, B)


def projection_overlap(Zx, Zy, nx):
    """tr(Px Py) for the projections onto the column spaces of Zx and Zy (full column rank)."""
    cross = Zx.T @ Zy
    return nx.trace(_gram_solve(Zx, cross, nx) @ _gram_solve(Zy, cross.T, nx))


def gulp_formula(X, Y, lmbda, squared, nx):
    """GULP's ||Hx - Hy||_F^2 (its square root unless ``squared``) in feature space. With
    Cx = Xc'Xc, Cxy = Xc'Yc and Kx = Cx + lambda tr(Cx) I (the ridge relative to the unit-trace
    covariance; Hx = Xc Kx^-1 Xc')::

        tr(Hx Hx) + tr(Hy Hy) - 2 tr(Hx Hy),  tr(Hx Hx) = ||Kx^-1 Cx||_F^2 (Kx^-1 Cx is
        symmetric in Cx's eigenbasis), tr(Hx Hy) = tr(Kx^-1 Cxy Ky^-1 Cyx).

    lambda > 0: differentiable wherever the data vary (Kx is invertible even with a dead
    neuron, whose direction enters to second order only). lambda = 0: the projections of the
    module docstring, rx + ry - 2 tr(Px Py). The square root has no gradient at 0."""
    if lmbda == 0:
        Zx, Zy = kept_directions(X, True, nx), kept_directions(Y, True, nx)
        value = Zx.shape[1] + Zy.shape[1] - 2.0 * projection_overlap(Zx, Zy, nx)
    else:
        X, Y = X - X.mean(axis=0), Y - Y.mean(axis=0)
        Cx, Cy, Cxy = X.T @ X, Y.T @ Y, X.T @ Y
        Kx = Cx + lmbda * nx.trace(Cx) * nx.eye(Cx.shape[0])
        Ky = Cy + lmbda * nx.trace(Cy) * nx.eye(Cy.shape[0])
        Bx, By = nx.solve(Kx, Cx), nx.solve(Ky, Cy)
        cross = nx.trace(nx.solve(Kx, Cxy) @ nx.solve(Ky, Cxy.T))
        value = nx.trace(Bx @ Bx) + nx.trace(By @ By) - 2.0 * cross
    return value if squared else nx.sqrt(value)


def regression_r2_formula(X, Y, nx):
    """||Py Xc||_F^2 / ||Xc||_F^2 = tr(Xc'Zy (Zy'Zy)^-1 Zy'Xc) / ||Xc||_F^2, Py the projection
    onto Y's centred column space (the module docstring's Zy). Differentiable in X wherever X
    varies, and in Y as the module docstring says."""
    Xc = X - X.mean(axis=0)
    Zy = kept_directions(Y, True, nx)
    cross = Zy.T @ Xc
    return (cross * _gram_solve(Zy, cross, nx)).sum() / (Xc * Xc).sum()


def overlap_formula(X, Y, denominator, nx):
    """tr(Px Py) of the uncentred column spaces over max(r_x, r_y) (``"rank"``, the ranks held
    fixed) or max(d_x, d_y) (``"width"``)."""
    Zx, Zy = kept_directions(X, False, nx), kept_directions(Y, False, nx)
    if denominator == "rank":
        scale = max(Zx.shape[1], Zy.shape[1])
    else:
        scale = max(X.shape[1], Y.shape[1])
    return projection_overlap(Zx, Zy, nx) / scale
