"""CCA, SVCCA and PWCCA as differentiable expressions (the gradient formulas of
:class:`simmetrics.CCA`, :class:`simmetrics.SVCCA` and :class:`simmetrics.PWCCA`, see
``Metric._gradient_formula``).

Written once with backend operations, so numpy evaluates them as torch does (the tests compare
them with the classes' guarded routes, which give the values). Each side is reduced to the
directions the fit kept (the fitted right singular vectors V, d x r, constants) and made
orthonormal by a Cholesky factor, so that no SVD of the data is differentiated::

    A = Xc V S^-1             (n x r; the orthonormal U at the fitted point, S constant)
    L L' = A'A,  Ux = A L^-T  (an orthonormal basis of span(Xc V), smooth in X)
    M = Ux' Uy = Lx^-1 (A_x' A_y) Ly^-T,   rho = the singular values of M

- **CCA**: mean(rho) = ||M||_* / m, or mean(rho^2) = ||M||_F^2 / m (no SVD at all).
  ||M||_* is differentiable wherever every rho is nonzero, *also at repeated rho* (its gradient
  is U_M V_M', and torch's backward of the singular values alone is that product, finite at
  ties); at a zero correlation (a canonical direction exactly uncorrelated with the other
  side) it has a kink and the gradient is one subgradient.
- **SVCCA, fixed cut**: k_x, k_y (the counts the fit kept) held fixed; the top-k singular
  subspace of Xc enters through its first-order expansion about the fitted point
  (:func:`top_directions`), which divides by the gap s_k^2 - s_j^2 across the cut only,
  never within the kept block (ties inside it, which the cut's tie rule keeps whole, cost
  nothing). The gradient grows like 1 / (s_k^2 - s_(k+1)^2) as the gap closes; where the cut
  would move the value jumps, and the gradient is that of the value with the cut held.
- **PWCCA**: the canonical variates' singular vectors P of M enter (the weights); they are
  differentiable where the correlations are distinct and nonzero (torch's SVD backward
  divides by rho_i^2 - rho_j^2: at tied correlations, where the value itself depends on an
  arbitrary basis, see :class:`simmetrics.PWCCA`, the gradient is inf or NaN). The absolute
  value in the weights has a kink where a canonical variate is orthogonal to a neuron (there
  torch takes 0).

**Rank.** The fitted r directions are held: a dead (constant) or duplicate neuron gets no
new direction, so its column of the gradient is what keeps the column space (a perturbation
inside it, which leaves CCA unchanged: 0 for a dead unit). The value itself jumps where a
perturbation adds a direction (CCA is not continuous at rank-deficient data). Directions below
the rank tolerance contribute nothing to first order (Xc V_0 = 0), so dropping them is exact
for the gradient on data of the fitted rank.

All in feature space, O(n d r + r^3), as the value.
"""

from .shape_gradient import centred

__all__ = ["top_directions", "orthonormal_side", "cca_matrix", "cca_formula", "svcca_formula",
           "pwcca_formula"]


def top_directions(Xc, Vt, k, nx):
    """Xc W (n x k), W = the top-k right singular vectors of Xc to first order about the
    fitted point (``Vt``: the fitted r x d right singular vectors, constants; ``k`` <= r)::

        P = Xc V,  W = V_k + V_m Delta,  Delta_ij = (P_m' P_k)_ij / (s_kj^2 - s_mi^2)

    (V_m the fitted directions after the cut; the invariant-subspace perturbation of
    Xc'Xc: P_m' P_k = V_m' (Xc'Xc) V_k is 0 at the fitted point, so the value there is
    Xc V_k). Directions below the rank tolerance add nothing to first order."""
    P = Xc @ nx.asarray(Vt).T
    lam = (nx.stop_gradient(P) ** 2).sum(axis=0)
    Pk = P[:, :k]
    if k < P.shape[1]:
        Pm = P[:, k:]
        gap = lam[:k].reshape(1, -1) - lam[k:].reshape(-1, 1)
        Pk = Pk + Pm @ ((Pm.T @ Pk) / gap)
    return Pk, lam[:k]


def orthonormal_side(P, lam, nx):
    """(A, L) for the reduced data P (n x k, columns of squared norm about ``lam``):
    A = P diag(lam)^(-1/2) and L the lower Cholesky factor of A'A, so that A L^-T is an
    orthonormal basis of span(P) (A'A is the identity at the fitted point)."""
    A = P / nx.sqrt(lam)
    return A, nx.cholesky(A.T @ A)


def cca_matrix(x, y, nx):
    """M = Ux' Uy = Lx^-1 (Ax' Ay) Ly^-T for two :func:`orthonormal_side` results."""
    (Ax, Lx), (Ay, Ly) = x, y
    M = nx.solve(Lx, Ax.T @ Ay)
    return nx.solve(Ly, M.T).T


def _summary(M, statistic, nx):
    m = min(M.shape)
    if statistic == "mean_rho_sq":
        return (M * M).sum() / m
    return nx.svdvals(M).sum() / m


def cca_formula(X, Y, Vx, Vy, statistic, nx):
    """:class:`simmetrics.CCA` on the fitted rows, with the fitted right singular vectors
    ``Vx``, ``Vy`` (r x d each): mean(rho) or mean(rho^2) of M (module text)."""
    return svcca_formula(X, Y, (Vx, Vx.shape[0]), (Vy, Vy.shape[0]), statistic, nx)


def svcca_formula(X, Y, side_x, side_y, statistic, nx):
    """:class:`simmetrics.SVCCA` with the cut held: ``side_x`` = (Vt, k), the fitted right
    singular vectors (r x d) and the count k the fit kept; CCA of the two reduced
    representations (:func:`top_directions`)."""
    sides = [orthonormal_side(*top_directions(centred(A, nx), Vt, k, nx), nx)
             for A, (Vt, k) in ((X, side_x), (Y, side_y))]
    return _summary(cca_matrix(*sides, nx), statistic, nx)


def pwcca_formula(X, Y, Vx, Vy, side, nx):
    """:class:`simmetrics.PWCCA` on the fitted rows: with M = P diag(rho) R' (thin SVD),
    the X-side variates' projections on the centred neurons are H_x = P' Lx^-1 Ax' Xc (row i:
    <h_i, x_j> over the neurons j), alpha = |H_x| 1 / (1'|H_x| 1), value sum_i alpha_i rho_i;
    likewise R' Ly^-1 Ay' Yc for ``side="y"``, and the mean of the two for "symmetric"."""
    Xc, Yc = centred(X, nx), centred(Y, nx)
    x = orthonormal_side(*top_directions(Xc, Vx, Vx.shape[0], nx), nx)
    y = orthonormal_side(*top_directions(Yc, Vy, Vy.shape[0], nx), nx)
    P, rho, Rt = nx.svd(cca_matrix(x, y, nx))
    values = []
    for coords, (A, L), D, name in ((P.T, x, Xc, "x"), (Rt, y, Yc, "y")):
        if side in (name, "symmetric"):
            w = nx.abs(coords @ nx.solve(L, A.T @ D)).sum(axis=1)
            values.append((w * rho).sum() / w.sum())
    return values[0] if len(values) == 1 else 0.5 * (values[0] + values[1])
