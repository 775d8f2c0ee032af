"""Differentiable expressions of the relational metrics (RDMs and distances between stimuli):
the gradient formulas of :class:`simmetrics.RSA` (its RDMs but crossnobis; its comparisons
pearson, cosine, the whitened cosine_cov and corr_cov, soft_spearman), :class:`simmetrics.Stress`,
:class:`simmetrics.RSMNormDifference` and :class:`simmetrics.UniformityDifference` (see
``Metric._gradient_formula``), and the soft ranks of RSA's ``compare="soft_spearman"``.

Written once with backend operations, so numpy evaluates them as well as torch; the tests
compare them with the classes' guarded routes, which give the values. These metrics are defined
on the n x n matrices of relations between stimuli, and so are the formulas (O(n^2) memory,
as the values; their memory preflight refuses big n): squared distances come from the Gram
matrix of the column-centred rows, never from an n x n x d array of differences.

Soft ranks (Blondel, Teboul, Berthet, Djolonga 2020, "Fast differentiable sorting and
ranking", ICML): the soft rank of z in R^m is its Euclidean projection onto the permutahedron
P(1..m), the convex hull of the permutations of (1, ..., m)::

    r(z) = argmin_{mu in P(1..m)} ||mu - z||^2 = z - v(z_s - w)[sigma^-1]

with sigma the permutation sorting z ascending (z_s = z[sigma]), w = (1, ..., m) and v(c) the
non-decreasing isotonic regression of c (pool adjacent violators; Blondel et al.'s
Proposition 3, written for ascending order). v is the mean of c over blocks of consecutive
sorted positions; the blocks and sigma are locally constant in z, so r is piecewise linear in
z and its gradient, with blocks and sigma held fixed, is exact wherever they do not change
(almost everywhere). When z is spread much wider than the ranks, every block is one entry and
r(z) is the ordinary rank (gradient 0); when z is narrow, one block holds every entry and
r(z) = z - mean(z) + (m + 1) / 2.
"""

import numpy as np

__all__ = [
    "centred_square_distances",
    "distance_matrix",
    "rdm_matrix",
    "upper_pearson",
    "upper_cosine",
    "kernel_cosine",
    "soft_rank_plan",
    "soft_ranks",
    "soft_rank_scale",
    "rsa_formula",
    "lower_median_position",
]


def centred_square_distances(X):
    """The n x n matrix ||x_i - x_j||^2 from the Gram matrix of the column-centred rows
    (centring changes no distance and keeps the Gram matrix's rounding at the spread's
    scale): k_i + k_j - 2 x_i'x_j, not clipped (the caller clips where it must)."""
    C = X - X.mean(axis=0)
    k = (C * C).sum(axis=1)
    return k.reshape(-1, 1) + k.reshape(1, -1) - 2.0 * (C @ C.T)


def distance_matrix(X, nx):
    """The n x n Euclidean distances ||x_i - x_j|| (zero diagonal), differentiable except
    where two stimuli coincide: the norm has no gradient at 0, and there (pairs whose squared
    distance is within rounding of 0, below 64 eps (k_i + k_j), with the diagonal) the
    distance is set to 0 with gradient 0, a subgradient of the norm."""
    sq = centred_square_distances(X)
    C = nx.to_numpy(X)
    C = C - C.mean(axis=0)
    k = np.einsum("ij,ij->i", C, C)
    coincide = nx.to_numpy(sq) <= 64.0 * np.finfo(np.float64).eps * (k[:, None] + k[None, :])
    np.fill_diagonal(coincide, True)
    mask = nx.asarray(coincide.astype(np.float64))
    return nx.sqrt(nx.clip(sq, 0.0) + mask) * (1.0 - mask)


def rdm_matrix(X, method, nx, noise=None):
    """The full n x n RDM of :func:`simmetrics.rdm` (the diagonal is not used):
    ``"correlation"``, 1 - z_i'z_j for the stimulus patterns centred across their neurons and
    scaled to unit norm; ``"euclidean"``, ||x_i - x_j||^2 / d; ``"mahalanobis"``, the same of
    the rows times the Cholesky factor of the precision ``noise`` (held fixed; None: the
    identity); ``"poisson"``, (m_i - m_j).(log m_i - log m_j) / d for m = (x + 0.1) / 1.1,
    rsatoolbox's prior."""
    if method == "correlation":
        Z = X - X.mean(axis=1).reshape(-1, 1)
        Z = Z / nx.sqrt((Z * Z).sum(axis=1)).reshape(-1, 1)
        return 1.0 - Z @ Z.T
    d = X.shape[1]
    if method == "poisson":
        M = (X + 0.1) / 1.1
        L = nx.log(M)
        K = M @ L.T
        k = (M * L).sum(axis=1)
        return (k.reshape(-1, 1) + k.reshape(1, -1) - K - K.T) / d
    if method == "mahalanobis" and noise is not None:
        X = X @ nx.asarray(np.linalg.cholesky(np.asarray(noise, dtype=np.float64)))
    return centred_square_distances(X) / d


def _upper(n, nx):
    return nx.asarray(np.triu(np.ones((n, n)), 1))


def upper_pearson(A, B, nx):
    """The Pearson correlation of the upper triangles (i < j) of two n x n matrices."""
    n = A.shape[0]
    U = _upper(n, nx)
    m = n * (n - 1) / 2.0
    a = (A - (A * U).sum() / m) * U
    b = (B - (B * U).sum() / m) * U
    return (a * b).sum() / nx.sqrt((a * a).sum() * (b * b).sum())


def soft_rank_scale(m, temperature):
    """The factor the unit-RMS dissimilarities are multiplied by before their soft ranks:
    sqrt((m^2 - 1) / 12) / temperature, the RMS spread of the ranks 1..m over the temperature
    (so at temperature 1 the values are spread as widely as their ranks)."""
    return np.sqrt((m * m - 1.0) / 12.0) / temperature


def soft_rank_plan(z):
    """The locally constant part of the soft ranks of the numpy vector ``z``: (order, inverse,
    block of every sorted position, block sizes, sum of the ranks w in every block), from the
    pool-adjacent-violators solution of :func:`scipy.optimize.isotonic_regression`."""
    try:
        from scipy.optimize import isotonic_regression
    except ImportError as error:  # pragma: no cover - scipy < 1.12
        raise ImportError("compare='soft_spearman' needs scipy >= 1.12 "
                          "(scipy.optimize.isotonic_regression)") from error
    m = z.size
    order = np.argsort(z, kind="stable")
    inverse = np.empty(m, dtype=np.int64)
    inverse[order] = np.arange(m)
    w = np.arange(1.0, m + 1.0)
    blocks = isotonic_regression(z[order] - w, increasing=True).blocks
    sizes = np.diff(blocks)
    block = np.repeat(np.arange(sizes.size), sizes)
    w_sums = np.add.reduceat(w, blocks[:-1])
    return order, inverse, block, sizes.astype(np.float64), w_sums


def soft_ranks(z, plan, nx):
    """The soft ranks r(z) of the module docstring, with the ``plan`` of
    :func:`soft_rank_plan` (computed at the same z) held fixed: r(z) = z - v[sigma^-1], v the
    block means of z_s - w. ``z`` is a vector of ``nx`` (its autograd history kept)."""
    order, inverse, block, sizes, w_sums = plan
    s = nx.take(z, order)
    means = (nx.segment_sum(s, block, sizes.size) - nx.asarray(w_sums)) / nx.asarray(sizes)
    return z - nx.take(nx.take(means, block), inverse)


def _soft_rank_vector(A, temperature, nx):
    """The upper triangle of the n x n matrix ``A`` as a vector (row-major i < j, the order
    of ``pdist``), standardised to unit RMS and soft-ranked."""
    n = A.shape[0]
    rows, cols = np.triu_indices(n, 1)
    flat = nx.take(A.reshape(-1), rows * n + cols)
    u = flat - flat.mean()
    u = u / nx.sqrt((u * u).mean())
    z = u * soft_rank_scale(rows.size, temperature)
    return soft_ranks(z, soft_rank_plan(nx.to_numpy(z)), nx)


def upper_cosine(A, B, nx):
    """The (uncentred) cosine of the upper triangles (i < j) of two n x n matrices."""
    U = _upper(A.shape[0], nx)
    a, b = A * U, B * U
    return (a * b).sum() / nx.sqrt((a * a).sum() * (b * b).sum())


def kernel_cosine(A, B, centre, nx):
    """The Frobenius cosine of the double-centred kernels -1/2 H R H of two full RDMs (their
    diagonals set to 0; ``centre``: the mean of the upper triangle first subtracted from
    every off-diagonal entry), rsatoolbox's ``cosine_cov`` and ``corr_cov`` for i.i.d. noise
    (:mod:`simmetrics.metrics.rdm_compare`)."""
    n = A.shape[0]
    off = nx.asarray(1.0 - np.eye(n))

    def kernel(R):
        R = R * off
        if centre:
            R = (R - R.sum() / (n * (n - 1.0))) * off
        rows = R.mean(axis=1).reshape(-1, 1)
        return R - rows - rows.reshape(1, -1) + R.mean()

    G, H = kernel(A), kernel(B)
    return (G * H).sum() / nx.sqrt((G * G).sum() * (H * H).sum())


def rsa_formula(X, Y, rdm, compare, temperature, nx, noise=None):
    """RSA of the rows ``X``, ``Y``: the Pearson correlation of the upper triangles of the
    RDMs (``compare="pearson"``), their cosine (``"cosine"``), the cosine of their
    double-centred kernels (``"cosine_cov"``, ``"corr_cov"``: :func:`kernel_cosine`), or the
    Pearson correlation of their soft ranks (``"soft_spearman"``: each RDM standardised,
    scaled by :func:`soft_rank_scale` and soft-ranked, the sorting permutation and pooled
    blocks held fixed as in the module docstring)."""
    A, B = rdm_matrix(X, rdm, nx, noise), rdm_matrix(Y, rdm, nx, noise)
    if compare == "pearson":
        return upper_pearson(A, B, nx)
    if compare == "cosine":
        return upper_cosine(A, B, nx)
    if compare in ("cosine_cov", "corr_cov"):
        return kernel_cosine(A, B, compare == "corr_cov", nx)
    a, b = (_soft_rank_vector(M, temperature, nx) for M in (A, B))
    a, b = a - a.mean(), b - b.mean()
    return (a * b).sum() / nx.sqrt((a * a).sum() * (b * b).sum())


def lower_median_position(D):
    """The condensed index of the lower median of the numpy vector ``D`` (the entry
    :func:`simmetrics.metrics.stress.lower_median` returns): held fixed, the median is that
    entry, a differentiable function of the data where no other entry ties with it."""
    k = (D.size - 1) // 2
    return int(np.argpartition(D, k)[k])
