"""Representational dissimilarity matrices (RDMs): how far apart a representation puts each
pair of stimuli, with rsatoolbox's conventions (``rsatoolbox.rdm.calc_rdm``, version 0.3.2).

:func:`rdm` returns the condensed upper triangle (pairs i < j in the row-major order of
``numpy.triu_indices(n, 1)``, the order of :func:`scipy.spatial.distance.pdist` and of
rsatoolbox's ``RDMs.get_vectors``). Every method is an inner-product form, computed a block of
rows at a time with matrix products (BLAS): memory besides the output is one block of about
2^22 values and the data, never an n x n x d array of differences, so n = 10,000 stimuli
(50 million pairs, 400 MB of output) is routine. :func:`shrinkage_precision` estimates a
noise precision from repeated measurements, as rsatoolbox's ``prec_from_measurements``.
"""

import numbers

import numpy as np
from scipy.spatial.distance import pdist

__all__ = ["RDM_METHODS", "NOISE_ESTIMATES", "rdm", "shrinkage_precision", "condensed_size"]

RDM_METHODS = ("correlation", "euclidean", "mahalanobis", "crossnobis", "poisson")
#: the noise precisions that :func:`rdm` estimates itself from repeated measurements
NOISE_ESTIMATES = ("identity", "shrinkage_diag")

#: values per block of rows (the block's dissimilarities to every later stimulus)
_BLOCK_VALUES = 2**22


def condensed_size(n):
    """The number of pairs i < j of n stimuli, n (n - 1) / 2."""
    return n * (n - 1) // 2


def _blocks(n):
    step = max(1, _BLOCK_VALUES // max(n, 1))
    for start in range(0, n, step):
        yield start, min(start + step, n)


def _condensed(n, block):
    """The condensed RDM from ``block(start, stop)``, the (stop - start) x (n - start) matrix of
    dissimilarities of rows start..stop-1 to rows start..n-1."""
    out = np.empty(condensed_size(n))
    pos = 0
    for start, stop in _blocks(n):
        B = block(start, stop)
        for i in range(start, stop):
            row = B[i - start, i - start + 1:]
            out[pos:pos + row.size] = row
            pos += row.size
    return out


def _cross_rdm(A, B, k, scale):
    """r_ij = (a_i - a_j).(b_i - b_j) / scale = (k_i + k_j - a_i.b_j - a_j.b_i) / scale, with
    k_i = a_i.b_i (``A is B``: the squared distances of the rows of A, clipped at 0)."""
    n = A.shape[0]
    same = A is B

    def block(start, stop):
        C = A[start:stop] @ B[start:].T
        C *= -1.0 if same else 1.0
        if same:
            C *= 2.0
        else:
            C += B[start:stop] @ A[start:].T
            C *= -1.0
        C += k[start:stop, None]
        C += k[None, start:]
        C /= scale
        if same:
            np.maximum(C, 0.0, out=C)
        return C

    return _condensed(n, block)


def _check_noise_matrix(P, d, name="noise"):
    P = np.asarray(P, dtype=np.float64)
    if P.shape != (d, d):
        raise ValueError(f"{name} must be a ({d}, {d}) precision matrix (one row and column per "
                         f"neuron), got shape {P.shape}")
    if not np.all(np.isfinite(P)) or not np.allclose(P, P.T, rtol=1e-10, atol=0.0):
        raise ValueError(f"{name} must be a finite symmetric precision matrix")
    try:
        return np.linalg.cholesky(P)
    except np.linalg.LinAlgError:
        raise ValueError(f"{name} must be positive definite (a precision matrix, the inverse "
                         "of a noise covariance)") from None


def shrinkage_precision(R, name="R"):
    """The noise precision of repeated measurements, rsatoolbox's
    ``prec_from_measurements(dataset, obs_desc=<condition>, method='shrinkage_diag')``.

    Residuals E: every measurement minus the mean of its stimulus over the runs (n K rows
    for n stimuli and K runs). With rsatoolbox's degrees of freedom nu = (n - 1) K, the
    sample covariance S = E'E / nu is shrunk towards its diagonal (Schaefer and Strimmer
    2005, target D): off-diagonal entries times (1 - lambda), with

        lambda = sum_(a != b) Var^(r_ab) / sum_(a != b) r_ab^2,  clipped to [0, 1],
        r_ab = (E'E)_ab / (s_a s_b (nK - 1)),  s_a = sqrt(S_aa),
        Var^(r_ab) = nK / nu^2 ((E o E)'(E o E))_ab / (S_aa S_bb (nK - 1)) - r_ab^2),

    and the precision is the inverse of the shrunk matrix.

    Parameters
    ----------
    R : numpy.ndarray, shape (n_stimuli, n_runs, n_neurons)
    name : str

    Returns
    -------
    numpy.ndarray, shape (n_neurons, n_neurons)

    Raises
    ------
    ValueError
        A neuron without residual variance (the covariance is singular).
    """
    n, K, d = R.shape
    E = (R - R.mean(axis=1, keepdims=True)).reshape(n * K, d)
    dof = (n - 1) * K
    rows = n * K
    S_sum = E.T @ E
    E2 = E * E
    S2_sum = E2.T @ E2
    var = np.diag(S_sum) / dof
    if np.any(var <= 0.0):
        raise ValueError(f"neuron {int(np.flatnonzero(var <= 0)[0])} of {name} has no variance "
                         "across runs, so the noise covariance is singular; drop it or pass "
                         "noise=None (identity precision)")
    S = S_sum / dof
    std = np.sqrt(var)
    r = S_sum / np.outer(std, std) / (rows - 1)
    r2 = S2_sum / np.outer(var, var) / (rows - 1)
    var_hat = rows / dof**2 * (r2 - r * r)
    off = ~np.eye(d, dtype=bool)
    denom = np.sum(r[off] ** 2)
    lamb = 1.0 if denom == 0.0 else min(max(np.sum(var_hat[off]) / denom, 0.0), 1.0)
    shrunk = np.where(off, S * (1.0 - lamb), S)
    return np.linalg.inv(shrunk)


def _check_prior(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            np.isfinite(value) and value >= 0):
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
    return float(value)


def rdm(X, method="correlation", noise=None, prior_lambda=1.0, prior_weight=0.1, name="X"):
    """The representational dissimilarity matrix of ``X``, as its condensed upper triangle.

    Rows of ``X`` are stimuli (conditions), columns neurons (channels), d of them; entry
    (i, j), i < j, as rsatoolbox 0.3.2's ``calc_rdm(Dataset(X), method)`` (one condition per
    row):

    - ``"correlation"``: ``1 - r(x_i, x_j)``, the Pearson correlation across neurons;
    - ``"euclidean"``: ``||x_i - x_j||^2 / d`` (rsatoolbox's, squared despite the name);
    - ``"mahalanobis"``: ``(x_i - x_j) P (x_i - x_j)' / d`` for the noise precision P
      (``noise``; None: the identity, which is ``"euclidean"``);
    - ``"crossnobis"``: the cross-validated Mahalanobis distance (Walther et al. 2016,
      NeuroImage 137): ``X`` holds repeated measurements, shape (n_stimuli, n_runs, d), and
      for each run k the difference of the other runs' mean (``a``) is multiplied with the
      difference in run k (``b``), averaged over the K runs (leave one run out):
      ``mean_k (a^k_i - a^k_j) P (b^k_i - b^k_j)' / d``. Unbiased: can be negative.
      ``noise``: None or ``"identity"``, ``"shrinkage_diag"`` (:func:`shrinkage_precision`
      of ``X``), or a (d, d) precision matrix;
    - ``"poisson"``: the symmetrised Kullback-Leibler divergence of Poisson rates
      ``(x_i - x_j).(log x_i - log x_j) / d`` after ``x <- (x + prior_lambda prior_weight)
      / (1 + prior_weight)`` (rsatoolbox's prior; the shifted rates must be positive).

    The Euclidean forms are computed from inner products of the column-centred rows (blocks
    of matrix products), ``||c_i||^2 + ||c_j||^2 - 2 c_i.c_j``, clipped at 0: exact up to
    ``d eps (||c_i||^2 + ||c_j||^2)`` rounding.

    Parameters
    ----------
    X : numpy.ndarray, shape (n_stimuli, n_neurons), or (n_stimuli, n_runs, n_neurons) for
        ``"crossnobis"``
    method : {"correlation", "euclidean", "mahalanobis", "crossnobis", "poisson"}
    noise : None, str or numpy.ndarray of shape (d, d)
        The noise precision of ``"mahalanobis"`` and ``"crossnobis"`` (see above).
    prior_lambda, prior_weight : float >= 0
        The prior of ``"poisson"`` (rsatoolbox's defaults 1 and 0.1).
    name : str
        The argument's name in error messages.

    Returns
    -------
    numpy.ndarray of float64, shape (n (n - 1) / 2,)

    Raises
    ------
    ValueError
        Unknown ``method``; wrong number of axes; a noise argument the method does not take
        or a matrix that is not a (d, d) positive definite precision; with ``"correlation"``
        a stimulus pattern constant across neurons; with ``"poisson"`` a non-positive shifted
        rate; with ``"crossnobis"`` fewer than 2 runs.

    Examples
    --------
    >>> X = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0], [0.0, 2.0, 4.0]])
    >>> rdm(X).round(12).tolist()
    [2.0, 0.0, 2.0]
    >>> rdm(X, "euclidean").round(12).tolist()
    [2.666666666667, 1.666666666667, 7.0]
    >>> rdm(np.stack([X, X], axis=1), "crossnobis").round(12).tolist()  # two equal runs
    [2.666666666667, 1.666666666667, 7.0]
    """
    if method not in RDM_METHODS:
        raise ValueError(f"rdm must be one of {RDM_METHODS}, got {method!r}")
    X = np.asarray(X, dtype=np.float64)
    want = 3 if method == "crossnobis" else 2
    if X.ndim != want:
        layout = ("(n_stimuli, n_runs, n_neurons): repeated measurements, cross-validated over "
                  "runs" if want == 3 else "(n_stimuli, n_neurons)")
        raise ValueError(f"{name} must be {want}-D {layout} for rdm={method!r}, got shape "
                         f"{X.shape}")
    if noise is not None and method not in ("mahalanobis", "crossnobis"):
        raise ValueError(f"noise is a precision for rdm='mahalanobis' or 'crossnobis'; "
                         f"rdm={method!r} takes none, got {type(noise).__name__}")
    d = X.shape[-1]
    if method == "correlation":
        C = X - X.mean(axis=1, keepdims=True)
        norms = np.sqrt(np.einsum("ij,ij->i", C, C))
        flat = np.flatnonzero(norms == 0.0)
        if flat.size:
            raise ValueError(
                f"row {flat[0]} of {name} (a stimulus pattern) has zero variance across its "
                f"neurons ({flat.size} such rows), so its correlation distance to the other "
                "stimuli is undefined; use rdm='euclidean' or drop those stimuli")
        Z = C / norms[:, None]

        def block(start, stop):
            B = Z[start:stop] @ Z[start:].T
            np.subtract(1.0, B, out=B)
            return B

        return _condensed(X.shape[0], block)
    if method in ("euclidean", "mahalanobis"):
        if isinstance(noise, str):
            raise ValueError(f"noise={noise!r} needs repeated measurements: rdm='mahalanobis' "
                             "takes None or a (d, d) precision matrix")
        # explicit differences (scipy's pdist), not ||c_i||^2 + ||c_j||^2 - 2 c_i.c_j: beside
        # outliers the products' rounding swamps the small distances of a tight cluster
        C = X if noise is None else (X - X.mean(axis=0)) @ _check_noise_matrix(noise, d)
        r = pdist(C, "sqeuclidean")
        r /= d
        return r
    if method == "poisson":
        lam, w = (_check_prior(prior_lambda, "prior_lambda"),
                  _check_prior(prior_weight, "prior_weight"))
        M = (X + lam * w) / (1.0 + w)
        if np.any(M <= 0.0):
            raise ValueError(f"rdm='poisson' needs (X + prior_lambda prior_weight) / (1 + "
                             f"prior_weight) > 0 (Poisson rates), but {name} has entries down "
                             f"to {X.min():.6g}")
        L = np.log(M)
        return _cross_rdm(M, L, np.einsum("ij,ij->i", M, L), float(d))
    n, K, _ = X.shape
    if K < 2:
        raise ValueError(f"{name} has {K} run (axis 1); rdm='crossnobis' cross-validates over "
                         "runs and needs at least 2")
    if noise is None or (isinstance(noise, str) and noise == "identity"):
        W = None
    elif isinstance(noise, str):
        if noise not in NOISE_ESTIMATES:
            raise ValueError(f"noise must be None, one of {NOISE_ESTIMATES} or a (d, d) "
                             f"precision matrix, got {noise!r}")
        W = np.linalg.cholesky(shrinkage_precision(X, name))
    else:
        W = _check_noise_matrix(noise, d)
    X = X - X.mean(axis=(0, 1))  # a common shift changes no difference; keeps the products small
    total = X.sum(axis=1)
    # run k against the mean of the others, all runs side by side: (A B')_ij sums a^k_i.b^k_j
    A = np.concatenate([(total - X[:, k]) / (K - 1) for k in range(K)], axis=1)
    B = X.transpose(1, 0, 2).reshape(K, n, d)
    if W is not None:
        A = np.concatenate([A[:, k * d:(k + 1) * d] @ W for k in range(K)], axis=1)
        B = B @ W
    B = np.ascontiguousarray(B.transpose(1, 0, 2).reshape(n, K * d))
    return _cross_rdm(A, B, np.einsum("ij,ij->i", A, B), float(K * d))
