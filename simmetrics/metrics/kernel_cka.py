"""Kernel CKA: RBF and other Gram matrices of the samples, biased and debiased.

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))

Kornblith, Norouzi, Lee, Hinton, "Similarity of Neural Network Representations Revisited",
ICML 2019. The debiased form uses the unbiased HSIC of Song et al. 2012 in the numerator and in
both self-terms (Nguyen, Raghu, Kornblith, ICLR 2021), never a mix of the two.

In this module: squared Euclidean distances that keep their digits (:func:`_squared_distances`),
the median bandwidth (:func:`median_sigma`), the RBF Gram matrix (:func:`rbf_gram`) and
:class:`KernelCKA`. Linear CKA is in :mod:`simmetrics.metrics.cka`.
"""

import numpy as np

from .._core.linalg import center, pow2_rescale
from .._core.params import Boolean, Interval, Options, Real
from .._core.registry import register
from .._core.validation import check_nonconstant
from ..base import Metric, param_dependent
from .cka import CKA_INVARIANCES
from .hsic import UnbiasedGram, cka_from_hsic, u_centred
from .cka_gradient import linear_cka_formula
from .kernel_cka_gradient import rbf_kernel_cka

__all__ = ["KernelCKA", "rbf_gram", "median_sigma"]


#: An entry of the Gram form sq_i + sq_j - 2 x_i'x_j below this fraction of sq_i + sq_j has
#: cancelled (its rounding error, about d eps (sq_i + sq_j), would be more than 1024 d eps of
#: it) and is recomputed from the differences x_i - x_j.
_CANCELLED = 2.0**-10

#: entries per block of the cancellation scan (kept in cache), numbers per batch of
#: recomputed differences
_SCAN_BLOCK = 2**17
_DIFF_BATCH = 2**18


def _squared_distances(X):
    """The n x n matrix of squared Euclidean distances ``||x_i - x_j||^2``, keeping their digits.

    The fast route is the Gram form ``sq_i + sq_j - 2 x_i'x_j`` (one symmetric product), with
    ``sq_i = ||x_i||^2``; its rounding error is about ``d eps (sq_i + sq_j)``, so it loses the
    digits of an entry that is small against ``sq_i + sq_j`` (close points far from the
    origin: a tight cluster beside a far outlier, data with a large offset, duplicated samples,
    and the negative values rounding then gives). Hence:

    1. the origin moves to the column means when they dominate the spread (a large offset);
    2. the Gram form, scanned for entries that have cancelled, ``D_ij <= (sq_i + sq_j) / 1024``;
    3. when more than n have, the origin moves to the coordinate-wise median of the rows instead
       (the median, unlike the mean, stays inside a cluster however far an outlier lies) and
       the Gram form is formed again;
    4. every entry that has still cancelled is recomputed from the differences ``x_i - x_j`` of
       the rows as given, which keep their relative digits (and give exact zeros for
       duplicates).

    Moving the origin changes no distance. Every entry keeps about 12 significant digits or
    more: 1024 (d + 2) eps relative in the Gram form, a few eps from the differences. On
    ordinary data the cost is the product and one pass over the matrix. The result is exactly
    symmetric with a zero diagonal.

    Examples
    --------
    >>> X = np.array([[1e8, 0.0], [1e8 + 1e-3, 0.0], [1e8, 2e-3]])
    >>> (_squared_distances(X) * 1e6).round(6).tolist()  # the Gram form alone gives 0 or 2e8
    [[0.0, 1.0, 4.0], [1.0, 0.0, 5.0], [4.0, 5.0, 0.0]]
    """
    n = X.shape[0]
    if not n:
        return np.zeros((0, 0))
    mean = X.mean(axis=0)
    spread = np.einsum("ij,ij->", X, X) / n - float(mean @ mean)  # the sum of the variances
    shifted = X - mean if mean @ mean > spread else X
    D, sq, pairs, cancelled = _gram_distances(shifted)
    if cancelled > n:
        shifted = X - np.median(X, axis=0)
        D, sq, pairs, cancelled = _gram_distances(shifted, D)
    if cancelled:
        # from the differences of the rows as given: a shift of the origin rounds them
        for i, j in ([pairs] if pairs is not None else _cancelled_pairs(D, sq)):
            _set_from_differences(X, D, i, j)
    np.fill_diagonal(D, 0.0)
    return D


def _gram_distances(X, out=None):
    """The Gram form of the squared distances of the rows of ``X`` (into ``out`` when given;
    every entry ``(sq_i + sq_j) - 2 x_i'x_j``, so exactly symmetric; the diagonal +inf), the
    squared norms ``sq``, the pairs i < j where it has cancelled, ``D_ij <= (sq_i + sq_j) /
    1024`` (as two index arrays; None when there are more than 4 n), and their number. Formed in
    blocks of rows that stay in cache."""
    n = X.shape[0]
    sq = np.einsum("ij,ij->i", X, X)
    D = np.matmul(X, X.T, out=out)  # A A' by a symmetric rank-k update: exactly symmetric
    np.fill_diagonal(D, -np.inf)  # +inf once multiplied by -2: never below the line
    step = max(1, _SCAN_BLOCK // n)
    found, cancelled = [], 0
    for start in range(0, n, step):
        block = D[start:start + step]
        pair = sq[start:start + step, None] + sq
        block *= -2.0
        block += pair
        pair *= _CANCELLED
        hit = block <= pair
        if hit.any():
            i, j = np.nonzero(hit)
            i += start
            upper = j > i  # each pair once, from its row in the upper triangle
            cancelled += int(np.count_nonzero(upper))
            if cancelled <= 4 * n:
                found.append((i[upper], j[upper]))
    if cancelled > 4 * n:
        return D, sq, None, cancelled
    pairs = tuple(np.concatenate(a) for a in zip(*found)) if found else None
    return D, sq, pairs, cancelled


def _cancelled_pairs(D, sq):
    """The pairs i < j where the Gram form ``D`` has cancelled (see :func:`_gram_distances`),
    found again block by block of rows and yielded as (i, j) index arrays."""
    n = D.shape[0]
    step = max(1, _SCAN_BLOCK // n)
    for start in range(0, n, step):
        i, j = np.nonzero(D[start:start + step] <= _CANCELLED * (sq[start:start + step, None] + sq))
        i += start
        upper = j > i
        yield i[upper], j[upper]


def _set_from_differences(X, D, i, j):
    """D_ij = D_ji = ||x_i - x_j||^2 from the differences, for index arrays ``i`` and ``j``."""
    batch = max(1, _DIFF_BATCH // max(X.shape[1], 1))
    for b in range(0, i.size, batch):
        bi, bj = i[b:b + batch], j[b:b + batch]
        diff = X[bi] - X[bj]
        D[bi, bj] = D[bj, bi] = np.einsum("ij,ij->i", diff, diff)


def _median_of_distances(D):
    """``numpy.median(D)`` of a matrix of squared distances (symmetric, zero diagonal), from its
    upper triangle: the n^2 entries are n zeros and every off-diagonal value twice, so where no
    entry is negative the full matrix's order statistic k is 0 for k < n and the triangle's
    (k - n) // 2 after; one selection on half the entries instead of a sort of a full copy.
    The same number bit for bit (the two middle values averaged as numpy does)."""
    n = D.shape[0]
    if n < 2:
        return float(np.median(D))
    N = n * n
    ranks = [N // 2 - 1, N // 2] if N % 2 == 0 else [N // 2]
    upper = np.concatenate([D[i, i + 1:] for i in range(n - 1)])
    part = np.partition(upper, sorted({0} | {(k - n) // 2 for k in ranks if k >= n}))
    if part[0] < 0.0:  # not nonnegative (cannot happen for distances): numpy's own
        return float(np.median(D))
    values = [0.0 if k < n else float(part[(k - n) // 2]) for k in ranks]
    return values[0] if len(values) == 1 else (values[0] + values[1]) / 2


def _centred_with_self(K, owned):
    """(HKH, HSIC(K, K)) for the biased estimator, K centred once (in place where ``owned``):
    the self-term <HKH, HKH> / (n - 1)^2 = :func:`simmetrics.metrics.hsic.hsic_self`'s value,
    with its rule that a value below 16 n eps sum(K^2) / (n - 1)^2 is rounding noise (a kernel
    the centring removes), returned as 0 so that :func:`cka_from_hsic` raises on it. The pair
    step then needs one inner product of the two centred kernels and no centring."""
    n = K.shape[0]
    total = float(np.einsum("ij,ij->", K, K))
    Kc = K if owned else np.array(K, dtype=np.float64, copy=True)
    Kc -= Kc.mean(axis=0, keepdims=True)  # hsic_biased's centring, the same operations
    Kc -= Kc.mean(axis=1, keepdims=True)
    norm = (n - 1) ** 2
    value = float(np.einsum("ij,ij->", Kc, Kc)) / norm
    floor = 16.0 * n * np.finfo(np.float64).eps * total / norm
    return Kc, float(min(value, 0.0) if value <= floor else value)


def median_sigma(X, threshold=0.8):
    """Kornblith et al.'s RBF bandwidth: threshold * sqrt(median of the n x n matrix of squared
    distances), the zero diagonal included (numpy's median: the two middle values averaged).

    The squared distances are those of :func:`_squared_distances`, which keep their digits for
    a tight cluster beside far outliers.

    Examples
    --------
    >>> X = np.array([[0.0], [1.0], [3.0]])
    >>> float(median_sigma(X, threshold=1.0))  # squared distances 0,1,9,1,0,4,9,4,0: median 1
    1.0
    """
    return threshold * np.sqrt(_median_of_distances(_squared_distances(X)))


def _check_sigma(sigma, what="sigma"):
    if isinstance(sigma, bool) or not (isinstance(sigma, Real) and 0.0 < sigma < np.inf):
        raise ValueError(
            f"{what} must be a positive finite number, got {sigma!r}"
            + ("; an infinitely wide RBF kernel is the limit in which kernel CKA becomes the "
               "linear kernel's: use kernel='linear'"
               if isinstance(sigma, Real) and sigma == np.inf else "")
        )


def rbf_gram(X, sigma):
    """RBF Gram matrix exp(-||x_i - x_j||^2 / (2 sigma^2)), shape (n, n).

    The squared distances are those of :func:`_squared_distances` (they keep their digits for
    a tight cluster beside far outliers). The exponent is formed as (D / (2 sigma)) / sigma,
    so a sigma below 1e-154 (whose square underflows) still gives exp(-inf) = 0 off the
    diagonal rather than NaN.

    Raises
    ------
    ValueError
        ``sigma`` not a positive finite number.
    """
    _check_sigma(sigma)
    D = _rbf_exponent(_squared_distances(X), sigma)
    return np.exp(D, out=D)


def _rbf_exponent(D, sigma):
    """-D / (2 sigma^2) in place of the squared distances ``D``, formed as (D / (2 sigma)) /
    sigma (-inf where sigma is tiny against D: exp gives 0)."""
    with np.errstate(over="ignore", under="ignore"):
        factor = -(0.5 / sigma) / sigma
    if np.isfinite(factor) and factor != 0.0:
        D *= factor  # one pass; the same value up to a rounding
        return D
    with np.errstate(over="ignore"):
        D /= 2.0 * sigma
        D /= sigma
    np.negative(D, out=D)
    return D


@register("kernel_cka", aliases=("rbf_cka",))
class KernelCKA(Metric):
    """Kernel CKA (Kornblith et al. 2019), by default with an RBF kernel.

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), with K and L Gram matrices of the
    samples of X and Y and HSIC biased or (``debiased=True``) unbiased.

    RBF bandwidth, Kornblith's convention: ``sigma = threshold * sqrt(median(D))`` where D is the
    full n x n matrix of squared Euclidean distances, its zero diagonal included (repsim takes
    the median of the off-diagonal distances instead, which gives slightly different values).
    A fixed ``sigma`` overrides it.

    Works on n x n Gram matrices: O(n^2) memory (8 n^2 bytes per matrix; three live at once),
    so about 2.4 GB at n = 10,000. Before starting, that peak for both inputs (for
    :func:`simmetrics.pairwise`, one kernel per representation plus one) is checked against the
    memory budget (:func:`simmetrics.set_memory_budget`): a ``MemoryBudgetError`` names the
    rows (and, for conv or token layouts, how many each stimulus contributed) and the
    alternatives.

    Squared distances are formed by the Gram identity where it keeps its digits and from the
    differences where it cancels (a tight cluster beside a far outlier, duplicated samples);
    see :func:`_squared_distances`. A ``sigma`` so large against every distance that
    ``exp(-D / 2 sigma^2)`` is ``1 - D / 2 sigma^2`` to the last bit gives that limit exactly
    (the linear kernel's CKA), never a kernel rounded to a constant.

    A **similarity** in [0, 1] (biased) or [-1, 1] (debiased). Not a metric. Invariant to
    orthogonal maps, permutations and translations; to isotropic scaling only when the
    bandwidth follows the data (``sigma=None``) or the kernel is linear.

    Parameters
    ----------
    kernel : "rbf", "linear" or callable, default "rbf"
        A callable takes an (n, d) float64 array and returns its (n, n) Gram matrix.
    sigma : float or None, default None
        RBF bandwidth; None uses the median heuristic with ``threshold``.
    threshold : float, default 0.8
        Multiplier of the median distance when ``sigma`` is None.
    debiased : bool, default False
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 5))
    >>> round(KernelCKA().fit_score(X, 2 * X), 12)
    1.0
    """

    kind = "similarity"
    bounds = param_dependent(lambda self: (-1.0, 1.0) if self.debiased else (0.0, 1.0))
    min_samples = param_dependent(lambda self: 4 if self.debiased else 2)
    is_metric = False
    invariances = param_dependent(
        lambda self: frozenset()
        if callable(self.kernel)
        else CKA_INVARIANCES
        if self.kernel == "linear" or self.sigma is None
        else CKA_INVARIANCES - {"isotropic_scaling"}
    )
    symmetric = True
    reference = "Kornblith et al. 2019, ICML"

    _parameter_constraints = {
        "kernel": [Options({"rbf", "linear"}), callable],
        "sigma": [None, Interval(Real, 0, None, closed="neither")],
        "threshold": [Interval(Real, 0, None, closed="neither")],
        "debiased": [Boolean()],
    }

    def __init__(self, kernel="rbf", sigma=None, threshold=0.8, debiased=False, layout=None):
        self.kernel = kernel
        self.sigma = sigma
        self.threshold = threshold
        self.debiased = debiased
        self.layout = layout

    # -- memory: measured with tracemalloc, preparing a representation holds its n x n kernel
    # and at most one more n x n temporary (the median's copy of half of D, a callable's
    # kernel copied before centring); the biased pair step none (it takes the centred kernels
    # of the states): at most count + jobs matrices in all
    def _memory_bytes(self, n, d, count, jobs=1):
        """Peak bytes with ``count`` kernels of n samples held and ``jobs`` per-representation
        steps (d neurons) running at once, and what that counts."""
        matrices = count + jobs
        # and, per job, copies of the input and a batch of differences (_squared_distances)
        nbytes = 8 * (matrices * n * n + jobs * (4 * n * d + 3 * _DIFF_BATCH + 2 * _SCAN_BLOCK))
        return nbytes, f"{matrices} float64 {n:,} x {n:,} matrices at once and its working buffers"

    def _gram(self, A, name):
        if callable(self.kernel):
            K = np.asarray(self.kernel(A), dtype=np.float64)
            n = A.shape[0]
            if K.shape != (n, n):
                raise ValueError(f"kernel({name}) must return an ({n}, {n}) matrix, got {K.shape}")
            if not np.isfinite(K).all():
                raise ValueError(f"kernel({name}) returned NaN or infinite values")
            return K
        if self.kernel not in ("linear", "rbf"):
            raise ValueError(f"kernel must be 'rbf', 'linear' or a callable, got {self.kernel!r}")
        # The centred linear kernel and the distances do not change under a translation, and
        # CKA does not change when a kernel is rescaled, or when the data are rescaled together
        # with sigma. So the linear kernel centres first (large means would otherwise cancel
        # catastrophically in the centring of K; _squared_distances moves its origin itself,
        # to where no digits are lost), and both rescale by an exact power of two 2^-e (sigma
        # too), so that activations of any magnitude stay in range.
        if self.kernel == "linear":
            A = pow2_rescale(center(A))
            return A @ A.T
        e = int(np.frexp(np.max(np.abs(A)))[1])
        A = pow2_rescale(A)
        if self.sigma is None:
            _check_sigma(self.threshold, "threshold")
        else:
            _check_sigma(self.sigma)
        D = _squared_distances(A)  # formed once: for the median bandwidth and the kernel
        if self.sigma is None:
            sigma = self.threshold * np.sqrt(_median_of_distances(D))  # median_sigma's
            if sigma == 0.0:
                raise ValueError(
                    f"the median squared distance between the samples of {name} is 0 (most "
                    "samples are identical), so the median bandwidth is 0; pass sigma="
                )
        else:
            # in the units of the rescaled data; at least the smallest normal number, so that
            # a sigma tiny against the data gives the identity kernel, not 0 / 0
            sigma = max(float(np.ldexp(float(self.sigma), -e)), np.finfo(np.float64).tiny)
        top = float(D.max())  # > 0: check_nonconstant found two different samples
        with np.errstate(under="ignore", over="ignore"):
            widest = (top / (2.0 * sigma)) / sigma
        if widest < 2.0**-60:
            # sigma so large against every distance that K - 11' = expm1(-D / 2 sigma^2) is
            # -D / 2 sigma^2 to the last bit (and may underflow): the same kernel up to the
            # positive factor 2 sigma^2 / max D, which CKA does not see. This is the limit
            # sigma -> inf, the linear kernel's CKA (centring removes sq_i + sq_j from -D).
            D *= -1.0 / top
            return D
        # K - 11' = expm1(-D / 2 sigma^2), which both HSIC estimators treat exactly as K (they
        # are invariant to adding a constant to the kernel): when sigma is large against the
        # distances, K = 1 - tiny and exp would round the information away before the centring
        D = _rbf_exponent(D, sigma)
        return np.expm1(D, out=D)

    # per representation (simmetrics.pairwise): the Gram matrix and its HSIC with itself
    def _partial_fit(self, A, name):
        check_nonconstant(A, name)
        K = self._gram(A, name)
        if self.debiased:
            # U-centred entry by entry (the unbiased HSIC is unchanged in exact arithmetic):
            # one stimulus 1e8 times the others no longer cancels the digits between the
            # global sums of the formula; a callable's kernel is copied first, never modified
            if callable(self.kernel):
                K = np.array(K, dtype=np.float64, copy=True)
            return UnbiasedGram(u_centred(K))
        # centred once (in place unless a callable's kernel), for the self-term and the pair
        return _centred_with_self(K, owned=not callable(self.kernel))

    # -- gradients (simmetrics.functional) ------------------------------------------------
    @property
    def _gradient_formula(self):
        """The value as a differentiable expression of the rows, or None for a callable kernel
        (it computes on numpy arrays, out of autograd's sight)."""
        return None if callable(self.kernel) else self._kernel_cka_formula

    @property
    def _gradient_note(self):
        return ("a callable kernel is evaluated on numpy arrays, so the gradient of its Gram "
                "matrix is unknown; use kernel='rbf' or kernel='linear', whose gradients are "
                "defined") if callable(self.kernel) else Metric._gradient_note

    def _kernel_cka_formula(self, X, Y, nx):
        """KernelCKA of the rows ``X``, ``Y`` written with the backend ``nx``'s differentiable
        operations. The linear kernel's in feature space (the centred linear kernels' biased
        CKA, or Song et al.'s unbiased HSIC: :func:`simmetrics.metrics.cka_gradient.linear_cka_formula`
        with "gretton" or "song"); the RBF kernel's on the n x n kernels
        (:func:`simmetrics.metrics.kernel_cka_gradient.rbf_kernel_cka`), the median bandwidth
        included in the gradient (``sigma=None``: the bandwidth is a function of the data, so
        it is differentiated, not held fixed)."""
        if self.kernel == "linear":
            return linear_cka_formula(X, Y, "song" if self.debiased else "gretton", nx)
        return rbf_kernel_cka(X, Y, self.sigma, self.threshold, self.debiased, nx)

    def _finalize_fit_score(self, a, b):
        if self.debiased:
            return cka_from_hsic(a.hsic(b), a.self_hsic, b.self_hsic, "unbiased")
        (Kc, self_k), (Lc, self_l) = a, b
        # tr(K H L H) = <HKH, HLH>: the biased HSIC from the centred kernels of the states
        hsic = float(np.einsum("ij,ij->", Kc, Lc)) / (Kc.shape[0] - 1) ** 2
        return cka_from_hsic(hsic, self_k, self_l, "biased")
