"""Linear CKA's estimators as differentiable expressions (the gradient formulas of
:class:`simmetrics.LinearCKA`, see ``Metric._gradient_formula``).

Written once with backend operations, so numpy evaluates them as well as torch (the tests
compare them with the class's guarded route, which gives the values). All in feature space,
O(n d^2) time and O(d^2 + n) memory: the n x n kernels are never formed. The data are
centred first; every estimator is invariant to translations, so its gradient is unchanged.

With K = XX', k_i = ||x_i||^2, s = X'1 and likewise L, l, t for Y (Song et al. 2012, JMLR,
the unbiased HSIC; K~ = K - diag(k))::

    tr(K~ L~) = ||X'Y||_F^2 - k'l,   1'K~1 = s's - 1'k,   K~1 = Xs - k,
    HSIC1(K, L) = [tr(K~ L~) + (1'K~1)(1'L~1) / ((n-1)(n-2)) - 2/(n-2) (K~1)'(L~1)] / (n(n-3))
"""

__all__ = ["linear_cka_formula", "unbiased_linear_hsic", "same_neuron_hsic"]


def _squares(A):
    return (A * A).sum()


def unbiased_linear_hsic(X, Y):
    """HSIC1(XX', YY') from the features (Song et al. 2012), as in the module docstring."""
    n = X.shape[0]
    k, l = (X * X).sum(axis=1), (Y * Y).sum(axis=1)
    s, t = X.sum(axis=0), Y.sum(axis=0)
    trace = _squares(X.T @ Y) - (k * l).sum()
    k_sum, l_sum = (s * s).sum() - k.sum(), (t * t).sum() - l.sum()
    cross = ((X @ s - k) * (Y @ t - l)).sum()
    return (trace + k_sum * l_sum / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * cross) / (n * (n - 3))


def same_neuron_hsic(X):
    """sum_a HSIC1(x_a x_a', x_a x_a') over the columns x_a of X: with s_p = sum_i x_ia^p,
    tr = s_2^2 - s_4, 1'K~1 = s_1^2 - s_2 and ||K~1||^2 = s_1^2 s_2 - 2 s_1 s_3 + s_4 for
    each column (Chun, Canatar, Chung, Lee 2025's same-neuron share)."""
    n = X.shape[0]
    s1, s2, s3, s4 = ((X ** p).sum(axis=0) for p in (1, 2, 3, 4))
    trace = s2 * s2 - s4
    k_sum = s1 * s1 - s2
    cross = s1 * s1 * s2 - 2.0 * s1 * s3 + s4
    per = (trace + k_sum * k_sum / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * cross) / (n * (n - 3))
    return per.sum()


def linear_cka_formula(X, Y, estimator, nx):
    """Linear CKA of float64 rows ``X``, ``Y`` with ``estimator`` ("gretton", "song", "lange",
    "chun"; :data:`simmetrics.metrics.cka.ESTIMATORS`), in backend ``nx``::

        gretton: ||Xc'Yc||^2 / (||Xc'Xc|| ||Yc'Yc||)
        song:    HSIC1(X, Y) / sqrt(HSIC1(X, X) HSIC1(Y, Y))
        lange:   (||Xc'Yc||^2 - kc'lc) / sqrt((||Xc'Xc||^2 - kc'kc)(||Yc'Yc||^2 - lc'lc))
        chun:    song / sqrt(D(X) D(Y) / (HSIC1(X, X) HSIC1(Y, Y))),
                 D(X) = Q/(Q-1) (HSIC1(X, X) - sum_a HSIC1(x_a x_a', x_a x_a'))

    with Xc the centred X and kc its squared row norms (Lange's zero-diagonal kernels of the
    centred data; Chun et al. 2025's feature-corrected self-terms).
    """
    X, Y = X - X.mean(axis=0), Y - Y.mean(axis=0)
    if estimator in ("gretton", "lange"):
        cross, xx, yy = _squares(X.T @ Y), _squares(X.T @ X), _squares(Y.T @ Y)
        if estimator == "lange":
            k, l = (X * X).sum(axis=1), (Y * Y).sum(axis=1)
            cross, xx, yy = cross - (k * l).sum(), xx - (k * k).sum(), yy - (l * l).sum()
        return cross / nx.sqrt(xx * yy)
    xx, yy = unbiased_linear_hsic(X, X), unbiased_linear_hsic(Y, Y)
    value = unbiased_linear_hsic(X, Y) / nx.sqrt(xx * yy)
    if estimator == "song":
        return value
    corrected = [A.shape[1] / (A.shape[1] - 1.0) * (1.0 - same_neuron_hsic(A) / self_term)
                 for A, self_term in ((X, xx), (Y, yy))]
    return value / nx.sqrt(corrected[0] * corrected[1])
