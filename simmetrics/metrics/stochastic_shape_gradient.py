"""The stochastic shape metrics as differentiable expressions (the gradient formulas of
:class:`simmetrics.GaussianStochasticShape` and :class:`simmetrics.EnergyStochasticShape`, see
``Metric._gradient_formula``).

Both values are minima over one orthogonal map T of the neurons (row form: a response y of the
second network is compared as y T). By Danskin's theorem the gradient of the minimum is that
of the objective at the fitted T (``alignment_``), held fixed here. The alignments are found by
iterations that stop at a relative decrease ``tol``, so the gradient is that of the minimum to
within their convergence: measured on (10, 4, 3) data, the part of the gradient along the
rotations (which an invariant value's gradient has none of) was 5e-6 of its scale at the
Gaussian metric's default tol=1e-8 and 1e-9 at tol=1e-15 (tests/metrics/
test_stochastic_shape_gradient.py); lower ``tol`` when training through them. Inputs are the
arrays as given, (n_stimuli, n_repeats, n_neurons), numpy or torch (``nx``).

Gaussian (Duong et al. 2023, ICLR): with per-stimulus means mu_i, centred repeats C_i (r x d)
and covariances S_i = C_i'C_i / (r - 1), the Bures term at its optimal per-stimulus rotation is
tr S_x + tr S_y - 2 ||S_y^1/2 T S_x^1/2||_*, and the nuclear norm equals ||C_y T C_x'||_* /
sqrt((r_y - 1)(r_x - 1)) (the singular values of A^1/2 B^1/2 are those of F'G for any factors
A = F F', B = G G'): no matrix square root is differentiated. Where the repeats span fewer
directions than their count (r > d), C_y T C_x' has zero singular values; every perturbation of
the data keeps its row space inside C_x's and its column space inside C_y's, so the nuclear
norm's first-order change is sum_k u_k' dM v_k over the nonzero ones and the arbitrary singular
vectors of the zero ones meet no perturbation (torch's ``svdvals`` backward, U V', is exact).

Energy: the mean over stimuli and pairs of repeats of ||x - y T||, less half of each network's
within-network mean; a distance between two equal responses has no gradient (the norm's kink):
its squared length is floored at 1e-300, which gives it the gradient 0.
"""

__all__ = ["gaussian_formula", "energy_formula"]

_FLOOR = 1e-300


def _pair_norms(A, B, nx):
    """||a_k - b_l|| for every stimulus and every pair of repeats, (n, r_a, r_b), with a
    floored squared length (see the module docstring)."""
    diff = A[:, :, None, :] - B[:, None, :, :]
    return nx.sqrt(nx.clip((diff * diff).sum(axis=-1), _FLOOR))


def gaussian_formula(X, Y, T, alpha, nx):
    """sqrt(mean_i [alpha ||mu_x,i - mu_y,i T||^2 + (2 - alpha) B^2(S_x,i, T' S_y,i T)]) at the
    fixed alignment ``T`` (a constant of backend ``nx``)."""
    mx, my = X.mean(axis=1), Y.mean(axis=1)
    Cx, Cy = X - mx[:, None, :], Y - my[:, None, :]
    rx, ry = X.shape[1], Y.shape[1]
    traces = (Cx * Cx).sum(axis=(1, 2)) / (rx - 1) + (Cy * Cy).sum(axis=(1, 2)) / (ry - 1)
    M = (Cy @ T) @ nx.permute(Cx, (0, 2, 1))
    nuclear = nx.svdvals(M).sum(axis=-1) / ((rx - 1) * (ry - 1)) ** 0.5
    means = ((mx - my @ T) ** 2).sum(axis=1)
    a, b = float(alpha), 2.0 - float(alpha)
    return nx.sqrt((a * means + b * (traces - 2.0 * nuclear)).mean())


def energy_formula(X, Y, T, unbiased, nx):
    """sqrt(max(mean ||x - y T|| - (w_x + w_y) / 2, 0)) at the fixed alignment ``T``, w the
    within-network mean over the r (r - 1) pairs of distinct repeats (``unbiased``) or all
    r^2 pairs."""
    n = X.shape[0]
    cross = _pair_norms(X, Y @ T, nx).mean()
    within = []
    for A in (X, Y):
        r = A.shape[1]
        pairs = r * (r - 1) if unbiased else r * r
        within.append(_pair_norms(A, A, nx).sum() / (n * pairs))
    return nx.sqrt(nx.clip(cross - 0.5 * (within[0] + within[1]), _FLOOR))
