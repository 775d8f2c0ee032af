"""The regressions of :class:`simmetrics.metrics.predictivity.LinearPredictivity`, on numpy.

Every function here maps a *source* S (n x d) to a *target* T (n x t) on training rows, with
an unpenalised intercept (the columns are centred first), as scikit-learn's estimators that
Brain-Score wraps do; all are written from their definitions with numpy:

- :func:`ridge_primal` / :func:`ridge_dual`: ridge regression (``sklearn.linear_model.Ridge``
  with ``fit_intercept=True``): B = (Sc'Sc + alpha I)^-1 Sc'Tc, or in dual (kernel) form
  A = (Kc + alpha I)^-1 Tc with Kc = Sc Sc' and B = Sc'A (never formed);
- :func:`least_squares_primal` / the dual with alpha = 0: the minimum-norm least-squares
  solution (``LinearRegression``, i.e. ``scipy.linalg.lstsq``), B = Sc^+ Tc = Sc'(Kc)^+ Tc;
- :func:`ridge_loo_select`: RidgeCV's efficient leave-one-out choice of alpha (Golub, Heath,
  Wahba 1979; ``sklearn.linear_model.RidgeCV`` with ``alpha_per_target=False`` and the
  default squared-error score): the LOO residual of row i is e_i / (1 - H_ii) with the hat
  matrix H = 11'/n + U diag(l / (l + alpha)) U' (U, l: eigenvectors and eigenvalues of Kc,
  i.e. the left singular vectors and squared singular values of Sc); the alpha with the
  smallest mean squared LOO residual over rows and targets wins (the first on a tie);
- :func:`pls_nipals`: PLS regression by NIPALS as ``sklearn.cross_decomposition.
  PLSRegression(scale=False)`` computes it (Wold 1975; mode A, regression deflation): per
  component the power iteration x_w ~ Sk'y_s, x_s = Sk x_w, y_w = Tk'x_s / x_s'x_s,
  y_s = Tk y_w / y_w'y_w started from the first non-zero column of Tk and stopped when the
  squared change of x_w is below ``tol``, the sign fixed by x_w's largest entry, both blocks
  deflated by x_s; coefficients W (P'W)^+ Q';
- :func:`best_single_source`: the neuron-to-neuron map (each target column predicted by the
  source column most correlated with it on the training rows; the first on a tie).

The kernels are accumulated over blocks of columns of the centred source
(:func:`centred_cross_kernel`), so a source of 50,000 columns is never copied whole.
"""

import numpy as np

from .._core.linalg import pow2_rescale

__all__ = [
    "BRAINSCORE_ALPHAS",
    "centred_cross_kernel",
    "least_squares_primal",
    "ridge_primal",
    "ridge_dual",
    "ridge_loo_select",
    "pls_nipals",
    "best_single_source",
    "column_correlations",
]

#: Brain-Score's ``ALPHA_LIST`` for RidgeCV (brain-score/vision,
#: ``metrics/regression_correlation/metric.py``): 99 values from 0.01 to 1e7.
BRAINSCORE_ALPHAS = tuple(float(a) for a in np.concatenate([
    [0.01, 0.1, 0.5, 1.0],
    np.linspace(1e1, 1e2, 4, endpoint=False),
    np.linspace(1e2, 1e3, 18, endpoint=False),
    np.linspace(1e3, 1e4, 18, endpoint=False),
    np.linspace(1e4, 1e5, 18, endpoint=False),
    np.linspace(1e5, 1e6, 18, endpoint=False),
    np.linspace(1e6, 1e7, 19),
]))

#: columns of the source centred at once when a kernel is accumulated (n x block floats)
_BLOCK_ENTRIES = 2**22


def _blocks(d, n):
    step = max(1, _BLOCK_ENTRIES // max(n, 1))
    return range(0, d, step), step


def centred_cross_kernel(A, B, mean):
    """(A - 1 mean')(B - 1 mean)' accumulated over blocks of columns: the centred linear
    kernel between the rows of A and B (``A is B`` gives the symmetric Gram Kc = Sc Sc')."""
    out = np.zeros((A.shape[0], B.shape[0]))
    starts, step = _blocks(A.shape[1], max(A.shape[0], B.shape[0]))
    for j in starts:
        a = A[:, j:j + step] - mean[j:j + step]
        b = a if B is A else B[:, j:j + step] - mean[j:j + step]
        out += a @ b.T
    if B is A:
        out = 0.5 * (out + out.T)
    return out


def _rank_tolerance(values, size):
    """Eigenvalues of a Gram matrix below this are rounding of zero (numpy's pinv rule on
    singular values, squared)."""
    top = float(values.max()) if values.size else 0.0
    return top * size * np.finfo(float).eps


def least_squares_primal(Sc, Tc):
    """Minimum-norm least squares B = Sc^+ Tc (``scipy.linalg.lstsq`` / LinearRegression)."""
    return np.linalg.lstsq(Sc, Tc, rcond=None)[0]


def ridge_primal(Sc, Tc, alpha):
    """B = (Sc'Sc + alpha I)^-1 Sc'Tc (Ridge's Cholesky route, here a symmetric solve)."""
    G = Sc.T @ Sc
    G[np.diag_indices_from(G)] += alpha
    return np.linalg.solve(G, Sc.T @ Tc)


def ridge_dual(Kc, Tc, alpha):
    """Dual coefficients A with B = Sc'A: A = (Kc + alpha I)^-1 Tc for alpha > 0, and
    A = Kc^+ Tc (the minimum-norm least-squares solution) for alpha = 0. Both satisfy
    1'A = 0 (Kc 1 = 0), so predictions need the centred cross kernel only."""
    if alpha > 0:
        K = Kc.copy()
        K[np.diag_indices_from(K)] += alpha
        return np.linalg.solve(K, Tc)
    values, vectors = np.linalg.eigh(Kc)
    keep = values > _rank_tolerance(values, Kc.shape[0])
    U = vectors[:, keep]
    return U @ ((U.T @ Tc) / values[keep][:, None])


def spectrum_of(Sc=None, Kc=None):
    """(U, l, V): the left singular vectors U and squared singular values l of Sc (from its
    SVD, or from the eigendecomposition of Kc = Sc Sc' when only the kernel is given, V None),
    with the null directions dropped."""
    if Kc is None:
        U, s, Vt = np.linalg.svd(Sc, full_matrices=False)
        values, V = s * s, Vt.T
    else:
        values, U = np.linalg.eigh(Kc)
        V = None
    keep = values > _rank_tolerance(values, U.shape[0])
    return U[:, keep], values[keep], (None if V is None else V[:, keep])


def ridge_loo_select(U, values, Tc, alphas):
    """RidgeCV's choice: the alpha of ``alphas`` with the smallest mean squared leave-one-out
    residual over rows and target columns (the first of equal ones), and that mean.

    With H(alpha) = 11'/n + U diag(l/(l + alpha)) U' (unpenalised intercept), the LOO
    residual of row i is (Tc - H Tc)_i / (1 - H_ii), exact for each alpha."""
    n = U.shape[0]
    UT = U.T @ Tc
    U2 = U * U
    best, best_err = None, np.inf
    for alpha in alphas:
        shrink = values / (values + alpha)
        fitted = U @ (shrink[:, None] * UT)  # Hc Tc (the intercept part of H kills Tc)
        leverage = 1.0 / n + U2 @ shrink
        loo = (Tc - fitted) / (1.0 - leverage)[:, None]
        err = float(np.mean(loo * loo))
        if err < best_err:
            best, best_err = float(alpha), err
    return best, best_err


def ridge_from_spectrum(U, values, V, Tc, alpha):
    """Ridge at ``alpha`` from the spectrum: primal B = V diag(s/(l+alpha)) U'Tc when V is
    known (s = sqrt(l)), else dual A = U diag(1/(l+alpha)) U'Tc."""
    UT = U.T @ Tc
    if V is not None:
        return V @ ((np.sqrt(values) / (values + alpha))[:, None] * UT)
    return U @ (UT / (values + alpha)[:, None])


def _first_singular_vectors(Sk, Tk, tol, max_iter):
    """NIPALS's power iteration for one component (mode A, as scikit-learn's PLS)."""
    eps = np.finfo(float).eps
    start = [j for j in range(Tk.shape[1]) if np.any(np.abs(Tk[:, j]) > eps)]
    if not start:
        return None
    y_score = Tk[:, start[0]].copy()
    previous = None
    for _ in range(max_iter):
        x_weights = (Sk.T @ y_score) / (y_score @ y_score)
        x_weights /= np.sqrt(x_weights @ x_weights) + eps
        x_score = Sk @ x_weights
        y_weights = (Tk.T @ x_score) / (x_score @ x_score)
        y_score = (Tk @ y_weights) / (y_weights @ y_weights + eps)
        if Tk.shape[1] == 1:
            break
        if previous is not None:  # (scikit-learn starts from 100: never a first-step stop)
            change = x_weights - previous
            if change @ change < tol:
                break
        previous = x_weights
    return x_weights, y_weights


def pls_nipals(Sc, Tc, n_components, tol=1e-6, max_iter=500):
    """PLS regression coefficients B (d x t) of centred Sc, Tc by NIPALS, as
    ``PLSRegression(n_components, scale=False, tol, max_iter)`` (module text). Stops early,
    with the components found, where the target residual is zero."""
    Sk, Tk = Sc.copy(), Tc.copy()
    d, t = Sk.shape[1], Tk.shape[1]
    eps_t = np.finfo(float).eps
    W, P, Q = [], [], []
    for _ in range(n_components):
        Tk[:, np.all(np.abs(Tk) < 10 * eps_t, axis=0)] = 0.0
        found = _first_singular_vectors(Sk, Tk, tol, max_iter)
        if found is None:
            break
        x_weights, _ = found
        top = int(np.argmax(np.abs(x_weights)))
        if x_weights[top] < 0:
            x_weights = -x_weights
        x_score = Sk @ x_weights
        ss = float(x_score @ x_score)
        x_loadings = (x_score @ Sk) / ss
        Sk -= np.outer(x_score, x_loadings)
        y_loadings = (x_score @ Tk) / ss
        Tk -= np.outer(x_score, y_loadings)
        W.append(x_weights)
        P.append(x_loadings)
        Q.append(y_loadings)
    if not W:
        return np.zeros((d, t)), 0
    W, P, Q = (np.column_stack(M) for M in (W, P, Q))
    rotations = W @ np.linalg.pinv(P.T @ W)
    return rotations @ Q.T, W.shape[1]


def column_correlations(A, B):
    """Pearson r between every column of A (n x a) and every column of B (n x b): an (a, b)
    matrix, -inf where a column of either is constant (exactly: its range is zero). Each
    input is first scaled by a power of two (exact), so 1e300 or 1e-300 activations do not
    over- or underflow the squares."""
    A, B = pow2_rescale(A), pow2_rescale(B)
    Ac, Bc = A - A.mean(axis=0), B - B.mean(axis=0)
    na, nb = np.sqrt(np.einsum("ij,ij->j", Ac, Ac)), np.sqrt(np.einsum("ij,ij->j", Bc, Bc))
    live_a, live_b = np.ptp(A, axis=0) > 0, np.ptp(B, axis=0) > 0
    out = np.full((A.shape[1], B.shape[1]), -np.inf)
    a, b = np.flatnonzero(live_a), np.flatnonzero(live_b)
    if a.size and b.size:
        out[np.ix_(a, b)] = (Ac[:, a] / na[a]).T @ (Bc[:, b] / nb[b])
    return out


def best_single_source(S, T):
    """For each column of T, the index of the column of S most correlated with it (Pearson r
    on these rows; the lowest index on an exact tie, as numpy's argmax), or -1 where T's
    column is constant (no correlation is defined). Constant columns of S are never chosen.
    Computed a block of target columns at a time."""
    mapping = np.full(T.shape[1], -1, dtype=np.int64)
    step = max(1, _BLOCK_ENTRIES // max(S.shape[1], 1))
    for j in range(0, T.shape[1], step):
        r = column_correlations(T[:, j:j + step], S)  # (block, d)
        finite = np.isfinite(r).any(axis=1)
        mapping[j:j + step] = np.where(finite, np.argmax(r, axis=1), -1)
    return mapping
