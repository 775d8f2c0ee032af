"""Centered kernel alignment (CKA), linear and kernel, biased and debiased.

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))

Kornblith, Norouzi, Lee, Hinton, "Similarity of Neural Network Representations Revisited",
ICML 2019. The debiased form uses the unbiased HSIC of Song et al. 2012 in the numerator and in
both self-terms (Nguyen, Raghu, Kornblith, ICLR 2021), never a mix of the two.
"""

import numpy as np

from ._linalg import center
from ._registry import register
from ._validation import check_nonconstant
from .base import Metric, param_dependent
from .hsic import (
    cka_from_hsic,
    hsic_biased,
    hsic_unbiased,
    linear_hsic_unbiased_features,
)

__all__ = ["LinearCKA", "KernelCKA", "linear_cka", "rbf_gram", "median_sigma"]

_CKA_INVARIANCES = frozenset(
    {"orthogonal", "signed_permutation", "permutation", "isotropic_scaling", "translation"}
)


def linear_cka(X, Y, debiased=False):
    """Linear CKA of two centred-or-not float64 matrices (no input checking).

    Feature space when that is cheaper (n >= d): biased CKA is
    ||Xc'Yc||_F^2 / (||Xc'Xc||_F ||Yc'Yc||_F), equal to the RV coefficient of Escoufier (1973);
    the debiased form uses the exact feature-space unbiased HSIC of
    :func:`simmetrics.hsic.linear_hsic_unbiased_features`. When n is smaller than the widths
    the n x n Gram matrices are cheaper and are used instead; both routes give the same value.

    Returns
    -------
    float
        In [0, 1] biased; in [-1, 1] debiased (the unbiased HSIC is an inner product of
        U-centred Gram matrices, so Cauchy-Schwarz bounds the ratio).
    """
    Xc = center(X)
    Yc = center(Y)
    # CKA is invariant to isotropic scaling: unit Frobenius norm keeps the fourth powers below
    # in range for inputs as large as 1e150 or as small as 1e-150.
    Xc /= np.linalg.norm(Xc)
    Yc /= np.linalg.norm(Yc)
    n, dx = Xc.shape
    dy = Yc.shape[1]
    gram_space = n * n * (dx + dy) < n * (dx * dy + dx * dx + dy * dy)
    if debiased:
        if gram_space:
            K, L = Xc @ Xc.T, Yc @ Yc.T
            return cka_from_hsic(
                hsic_unbiased(K, L), hsic_unbiased(K, K), hsic_unbiased(L, L), "unbiased"
            )
        return cka_from_hsic(
            linear_hsic_unbiased_features(Xc, Yc),
            linear_hsic_unbiased_features(Xc, Xc),
            linear_hsic_unbiased_features(Yc, Yc),
            "unbiased",
        )
    if gram_space:
        K, L = Xc @ Xc.T, Yc @ Yc.T
        xy, xx, yy = np.sum(K * L), np.sum(K * K), np.sum(L * L)
    else:
        xy = np.sum((Xc.T @ Yc) ** 2)
        xx = np.sum((Xc.T @ Xc) ** 2)
        yy = np.sum((Yc.T @ Yc) ** 2)
    return cka_from_hsic(xy, xx, yy, "biased")


@register("linear_cka", aliases=("cka",))
class LinearCKA(Metric):
    """Linear centered kernel alignment (Kornblith et al. 2019).

    Biased (default)::

        CKA(X, Y) = ||Xc' Yc||_F^2 / (||Xc' Xc||_F ||Yc' Yc||_F)

    with Xc, Yc the column-centred representations; this equals the RV coefficient.
    ``debiased=True`` replaces each HSIC by the unbiased estimator of Song et al. 2012
    (Nguyen et al. 2021), which removes the upward bias of the biased form at small n (on
    independent data it is centred on 0), needs n >= 4 and can be slightly negative.

    Computed in feature space (the d x d cross-products), never through n x n Gram matrices
    unless n is smaller than the widths. Memory O(d_x d_y + d_x^2 + d_y^2).

    A **similarity**: 1 for representations equal up to rotation, scale and translation.
    Range [0, 1] (biased) or [-1, 1] (debiased). Not a metric.

    Parameters
    ----------
    debiased : bool, default False
        Use the unbiased HSIC estimator everywhere.
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 10))
    >>> Q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    >>> round(LinearCKA().fit_score(X, 3 * X @ Q + 1), 12)
    1.0
    """

    kind = "similarity"
    bounds = param_dependent(lambda self: (-1.0, 1.0) if self.debiased else (0.0, 1.0))
    min_samples = param_dependent(lambda self: 4 if self.debiased else 2)
    is_metric = False
    invariances = _CKA_INVARIANCES
    reference = "Kornblith et al. 2019, ICML; debiased: Song et al. 2012, Nguyen et al. 2021"

    def __init__(self, debiased=False, layout=None):
        self.debiased = debiased
        self.layout = layout

    def _score(self, X, Y):
        check_nonconstant(X, "X")
        check_nonconstant(Y, "Y")
        return linear_cka(X, Y, debiased=bool(self.debiased))


def _squared_distances(X):
    sq = np.einsum("ij,ij->i", X, X)
    D = sq[:, None] + sq[None, :] - 2.0 * (X @ X.T)
    np.maximum(D, 0.0, out=D)
    np.fill_diagonal(D, 0.0)
    return D


def median_sigma(X, threshold=0.8):
    """Kornblith et al.'s RBF bandwidth: threshold * sqrt(median of the n x n matrix of squared
    distances), the zero diagonal included (numpy's median: the two middle values averaged).

    Examples
    --------
    >>> X = np.array([[0.0], [1.0], [3.0]])
    >>> float(median_sigma(X, threshold=1.0))  # squared distances 0,1,9,1,0,4,9,4,0: median 1
    1.0
    """
    return threshold * np.sqrt(np.median(_squared_distances(X)))


def rbf_gram(X, sigma):
    """RBF Gram matrix exp(-||x_i - x_j||^2 / (2 sigma^2)), shape (n, n)."""
    return np.exp(-_squared_distances(X) / (2.0 * sigma**2))


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
    so about 2.4 GB at n = 10,000.

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
        else _CKA_INVARIANCES
        if self.kernel == "linear" or self.sigma is None
        else _CKA_INVARIANCES - {"isotropic_scaling"}
    )
    reference = "Kornblith et al. 2019, ICML"

    def __init__(self, kernel="rbf", sigma=None, threshold=0.8, debiased=False, layout=None):
        self.kernel = kernel
        self.sigma = sigma
        self.threshold = threshold
        self.debiased = debiased
        self.layout = layout

    def _gram(self, A, name):
        if callable(self.kernel):
            K = np.asarray(self.kernel(A), dtype=np.float64)
            n = A.shape[0]
            if K.shape != (n, n):
                raise ValueError(f"kernel({name}) must return an ({n}, {n}) matrix, got {K.shape}")
            if not np.isfinite(K).all():
                raise ValueError(f"kernel({name}) returned NaN or infinite values")
            return K
        if self.kernel == "linear":
            return A @ A.T
        if self.kernel != "rbf":
            raise ValueError(f"kernel must be 'rbf', 'linear' or a callable, got {self.kernel!r}")
        if self.sigma is None:
            if not self.threshold > 0:
                raise ValueError(f"threshold must be positive, got {self.threshold!r}")
            sigma = median_sigma(A, self.threshold)
            if sigma == 0.0:
                raise ValueError(
                    f"the median squared distance between the samples of {name} is 0 (most "
                    "samples are identical), so the median bandwidth is 0; pass sigma="
                )
        else:
            sigma = float(self.sigma)
            if not sigma > 0:
                raise ValueError(f"sigma must be positive, got {self.sigma!r}")
        return rbf_gram(A, sigma)

    def _score(self, X, Y):
        check_nonconstant(X, "X")
        check_nonconstant(Y, "Y")
        K, L = self._gram(X, "X"), self._gram(Y, "Y")
        hsic = hsic_unbiased if self.debiased else hsic_biased
        return cka_from_hsic(
            hsic(K, L), hsic(K, K), hsic(L, L), "unbiased" if self.debiased else "biased"
        )
