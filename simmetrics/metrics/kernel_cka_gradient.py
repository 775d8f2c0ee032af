"""CKA of n x n Gram matrices as differentiable expressions: the gradient formulas of
:class:`simmetrics.KernelCKA` and :class:`simmetrics.IntertwinerCKA` (``Metric._gradient_formula``).

Written once with backend operations (:mod:`simmetrics._core.backend`), so numpy evaluates the
same expressions as torch's autograd differentiates (the tests compare their values with the
classes' guarded routes, which give the values). These metrics are defined on n x n kernels,
so the formulas form them (O(n^2) memory; the classes refuse big n by their memory preflight).

- :func:`gram_cka`: CKA(K, L) with the biased HSIC (Gretton et al. 2005; the doubly centred
  kernels HKH) or the unbiased one (Song et al. 2012, through the U-centred kernels of Szekely
  and Rizzo 2014, whose inner product is n (n - 3) HSIC1);
- :func:`squared_distances`: ||x_i - x_j||^2 by the Gram identity on the centred rows;
- :func:`rbf_kernel_cka`: KernelCKA's RBF kernel, with the median bandwidth differentiated
  through the median (a selected entry of the distances, or the mean of two).
"""

__all__ = ["gram_cka", "u_centred_kernel", "squared_distances", "rbf_kernel_cka"]


def _off_diagonal(n, nx):
    """The n x n matrix with ones off the diagonal and zeros on it (a constant)."""
    return 1.0 - nx.eye(n)


def _doubly_centred(K):
    """HKH = K - row means - column means + grand mean (H = I - 11'/n)."""
    K = K - K.mean(axis=0).reshape(1, -1)
    return K - K.mean(axis=1).reshape(-1, 1)


def u_centred_kernel(K, nx):
    """The U-centred kernel (Szekely and Rizzo 2014)::

        K_U[a, b] = K~_ab - r_a / (n - 2) - r_b / (n - 2) + S / ((n - 1)(n - 2)),   a != b,

    0 on the diagonal, with K~ the kernel with a zero diagonal, r = K~1 and S = 1'K~1; then
    HSIC1(K, L) = <K_U, L_U>_F / (n (n - 3)) (Song et al. 2012's unbiased estimator), the
    form :func:`simmetrics.metrics.hsic.u_centred` evaluates in place."""
    n = K.shape[0]
    mask = _off_diagonal(n, nx)
    K = K * mask
    rows = K.sum(axis=1)
    total = rows.sum()
    K = K - rows.reshape(-1, 1) / (n - 2) - rows.reshape(1, -1) / (n - 2) \
        + total / ((n - 1) * (n - 2))
    return K * mask


def gram_cka(K, L, debiased, nx):
    """CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) of two n x n Gram matrices::

        biased:   <HKH, HLH> / (||HKH||_F ||HLH||_F)       (the 1 / (n - 1)^2 cancels)
        unbiased: <K_U, L_U> / (||K_U||_F ||L_U||_F)       (the 1 / (n (n - 3)) cancels)

    (Kornblith et al. 2019; Nguyen, Raghu, Kornblith 2021 for the unbiased form.) Adding a
    constant to a kernel changes neither (so K - 11' may stand for K)."""
    if debiased:
        A, B = u_centred_kernel(K, nx), u_centred_kernel(L, nx)
    else:
        A, B = _doubly_centred(K), _doubly_centred(L)
    return (A * B).sum() / (nx.frobenius(A) * nx.frobenius(B))


def squared_distances(X):
    """D_ij = ||x_i - x_j||^2 = k_i + k_j - 2 x_i'x_j on the centred rows (k_i = ||x_i||^2;
    moving the origin to the mean changes no distance and keeps the Gram identity's rounding,
    about d eps (k_i + k_j), small for ordinary data). Exactly symmetric is not needed: each
    entry is the same function of X whichever triangle it comes from."""
    X = X - X.mean(axis=0)
    k = (X * X).sum(axis=1)
    return k.reshape(-1, 1) + k.reshape(1, -1) - 2.0 * (X @ X.T)


def rbf_kernel_cka(X, Y, sigma, threshold, debiased, nx):
    """KernelCKA with the RBF kernel exp(-D / (2 sigma^2)) of both inputs (Kornblith et al.
    2019), differentiable in X and Y.

    ``sigma`` fixed, or None for the median bandwidth ``threshold * sqrt(median(D))`` of each
    input (numpy's median over all n^2 entries, the zero diagonal included, as
    :func:`simmetrics.metrics.kernel_cka.median_sigma`). The bandwidth moves with the data, and
    its gradient is part of the value's: the median is one entry of D (n odd) or the mean of
    two (n even), an order statistic that is locally the same entry wherever the middle values
    are distinct, so its derivative is that entry's (``nx.median``; autograd passes the
    gradient to the selected entries). The kernel is formed as expm1(-D / 2 sigma^2) = K - 11',
    which both HSIC estimators treat as K and which keeps the digits of a wide kernel.
    """
    kernels = []
    for A in (X, Y):
        D = squared_distances(A)
        D = D * _off_diagonal(D.shape[0], nx)  # the diagonal exactly 0, as the value has it
        width = threshold * nx.sqrt(nx.median(D)) if sigma is None else sigma
        kernels.append(nx.expm1(D * (-0.5 / (width * width))))
    return gram_cka(kernels[0], kernels[1], debiased, nx)
