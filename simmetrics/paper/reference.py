"""The paper's own functions (Godfrey et al. 2022, pnnl/modelsym), which reproduce its reported
numbers, N x C x H x W conv features included:

- :func:`paper_grelu_procrustes_similarity`: G_ReLU-Procrustes, 1 - d;
- :func:`paper_ortho_procrustes_similarity`: the orthogonal Procrustes baseline, 1 - d;
- :func:`paper_grelu_cka`: G_ReLU-CKA.

They are thin wrappers around :class:`simmetrics.IntertwinerProcrustes` and
:class:`simmetrics.IntertwinerCKA` with the paper's settings (the orthogonal baseline is
computed here). The library does not import this module; tests, benchmarks and the paper's
experiments do.
"""

import numpy as np

from .._core.backend import is_tensor
from .._core.validation import as_float_array, check_pair
from ..metrics.alignment import zero_pad
from ..metrics.intertwiner_cka import IntertwinerCKA
from ..metrics.intertwiner_groups import prepare_conv
from ..metrics.intertwiner_procrustes import IntertwinerProcrustes
from ..metrics.procrustes import procrustes_rotation

__all__ = [
    "paper_grelu_procrustes_similarity",
    "paper_ortho_procrustes_similarity",
    "paper_grelu_cka",
]


def paper_grelu_procrustes_similarity(H1, H2):
    """The paper's G_ReLU-Procrustes similarity 1 - d (pnnl/modelsym ``wreath_procrustes``).

    H1, H2 are (N, C) or (N, C, H, W) features (channels = neurons; samples and positions
    together are the rows). Unequal widths: zero-pad with silent channels; unequal spatial
    sizes: nearest-neighbour upsampling by an integer factor. Each channel is divided by its
    L2 norm, C = H1'H2, pi = linear_sum_assignment(C, maximize=True) and::

        d^2 = (||H1||^2 + ||H2||^2 - 2 sum_i C_{i, pi(i)}) / (4 n),   n = max(C1, C2)

    Equal to ``IntertwinerProcrustes("relu", score_method="paper").fit_score(H1, H2)``, which
    this function calls; the difference A - B' is formed explicitly, so X and X P D give
    exactly 1 up to rounding, never a square root of a rounding error.

    Returns
    -------
    float
        A **similarity** in [0, 1].

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> H = np.maximum(rng.normal(size=(10, 4, 3, 3)), 0.0)
    >>> paper_grelu_procrustes_similarity(H, 5.0 * H[:, ::-1])
    1.0
    """
    return IntertwinerProcrustes("positive_scaled_permutation", score_method="paper") \
        .fit_score(H1, H2)


def paper_ortho_procrustes_similarity(H1, H2):
    """The paper's orthogonal Procrustes baseline 1 - d (pnnl/modelsym ``ortho_procrustes``).

    H1, H2 are (N, C) or (N, C, H, W) features, padded and upsampled as in
    :func:`paper_grelu_procrustes_similarity`; each whole tensor is scaled to unit Frobenius
    norm (no centring) and, with the rows being samples and positions::

        d = sqrt( ||H1||^2 + ||H2||^2 - 2 ||H1' H2||_* ) / 2        (= sqrt(2 - 2 ||H1'H2||_*) / 2)

    Computed as d = ||H1 - H2 R||_F / 2 with R the optimal rotation
    (:func:`simmetrics.metrics.shape.procrustes_rotation`), which equals the formula above (the
    minimum of ||H1 - H2 R||^2 over orthogonal R is the radicand) but is accurate where d is
    near 0. The paper's code evaluates the radicand: where H2 = H1 Q (Q orthogonal) it is
    2 - 2 ||H1'H2||_* = 2 - 2 (1 + rounding error), a tiny number of either sign, and its
    unclipped square root is NaN when the rounding falls below 0 (the NaN of the reference
    value for X and X Q); the correct value there is 1.

    Returns
    -------
    float
        A **similarity** in [0, 1].

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> H = rng.normal(size=(50, 6))
    >>> Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    >>> round(paper_ortho_procrustes_similarity(H, 3.0 * H @ Q), 12)
    1.0
    """
    A, B, layout = prepare_conv(H1, H2, None, "nchw")
    A, B = check_pair(A, B, layout=layout)
    for name, M in (("H1", A), ("H2", B)):
        if not M.any():
            raise ValueError(f"{name} is all zeros, so its Frobenius normalisation is undefined")
    width = max(A.shape[1], B.shape[1])
    A = zero_pad(A, width) / np.linalg.norm(A)
    B = zero_pad(B, width) / np.linalg.norm(B)
    return float(1.0 - 0.5 * np.linalg.norm(A - B @ procrustes_rotation(A, B)))


def paper_grelu_cka(H1, H2, estimator="max"):
    """The paper's G_ReLU-CKA (pnnl/modelsym ``wreath_cka``) of (N, C) or (N, C, H, W)
    features: per channel centred and L2-normalised over samples and positions, kernel
    K_ab = max_c sum_{h,w} H[a, c, h, w] H[b, c, h, w] (or the median over c) with zero
    diagonal, then CKA with the unbiased HSIC.

    Equal to ``IntertwinerCKA("relu", estimator, positions="sum", layout="nchw")`` for 4-D input
    (which this function calls); the spatial sizes of H1 and H2 may differ.

    Returns
    -------
    float
        A **similarity** in [-1, 1].

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> H = np.maximum(rng.normal(size=(20, 3, 2, 2)), 0.0)
    >>> round(paper_grelu_cka(H, 2.0 * H[:, [2, 0, 1]]), 12)
    1.0
    """
    # the number of axes only: a tensor is not copied off its device for it
    ndim = max(H.ndim if is_tensor(H) and hasattr(H, "ndim")  # backend site: a tensor's axes
               else np.ndim(as_float_array(H, name))
               for H, name in ((H1, "H1"), (H2, "H2")))
    layout = "nchw" if ndim == 4 else None
    metric = IntertwinerCKA("positive_scaled_permutation", estimator=estimator,
                            positions="sum", layout=layout)
    return metric.fit_score(H1, H2)
