"""Noise ceilings of RSA: how well the true model could do given how much a set of RDMs (one
per subject, or per repetition) disagree among themselves.

:func:`rsa_noise_ceiling` is rsatoolbox's ``boot_noise_ceiling`` (Nili et al. 2014, PLoS
Comput. Biol. 10, e1003553; rsatoolbox 0.3.2, ``rsatoolbox.inference.noise_ceiling``),
written from its definition.
"""

import numpy as np

from .rdm_compare import RSATOOLBOX_NAMES, compare_rdms, tied_ranks

__all__ = ["rsa_noise_ceiling", "CEILING_METHODS"]

#: the comparisons whose pooled RDM (the best predictor of the set under that comparison)
#: is defined, as rsatoolbox's ``pool_rdm``
CEILING_METHODS = ("cosine", "pearson", "cosine_cov", "corr_cov", "spearman", "rho_a")


def _pool(V, method):
    """The RDM that best predicts the rows of ``V`` under ``method`` (rsatoolbox's
    ``pool_rdm``): the mean of the RDMs scaled to unit RMS (cosines), of the standardised RDMs
    shifted to a minimum of 0 (correlations), or of their ranks (Spearman, rho-a)."""
    if method in ("cosine", "cosine_cov"):
        pooled = (V / np.sqrt(np.mean(V * V, axis=1, keepdims=True))).mean(axis=0)
    elif method in ("pearson", "corr_cov"):
        C = V - V.mean(axis=1, keepdims=True)
        pooled = (C / C.std(axis=1, keepdims=True)).mean(axis=0)
        pooled = pooled - pooled.min()
    else:
        pooled = np.mean([tied_ranks(v, None) for v in V], axis=0)
    return pooled


def rsa_noise_ceiling(rdms, method="cosine"):
    """The lower and upper bound of the noise ceiling of a set of RDMs (rsatoolbox's
    ``boot_noise_ceiling``).

    For K RDMs r_1..r_K of the same stimuli (subjects or repetitions), with ``pool(S)`` the
    RDM that best predicts the set S under the comparison c (see ``_pool``)::

        lower = mean_k c(pool(all but r_k), r_k)     (leave one out: below the true model)
        upper = mean_k c(pool(all), r_k)             (r_k in the pool: above it)

    A model RDM whose comparison with the data, averaged over the K RDMs, reaches the lower
    bound explains as much as the data's own consistency allows.

    Parameters
    ----------
    rdms : array-like, shape (K, m)
        K >= 2 condensed RDMs (:func:`simmetrics.rdm`) of the same n stimuli, m = n (n - 1) / 2.
    method : {"cosine", "pearson", "cosine_cov", "corr_cov", "spearman", "rho_a"}
        The comparison (:func:`simmetrics.metrics.rdm_compare.compare_rdms`; rsatoolbox's
        ``'corr'`` is ``"pearson"``, ``'rho-a'`` is ``"rho_a"``). Exact ties only.

    Returns
    -------
    (float, float)
        The lower and the upper bound.

    Raises
    ------
    ValueError
        Fewer than 2 RDMs, not a 2-D array, an unknown or unsupported ``method``, or an RDM
        the comparison cannot handle (constant, zero).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.uniform(1, 2, size=45)
    >>> subjects = truth + 0.1 * rng.normal(size=(6, 45))
    >>> lower, upper = rsa_noise_ceiling(subjects, "pearson")
    >>> bool(0 < lower < upper < 1)
    True
    """
    V = np.asarray(rdms, dtype=np.float64)
    if V.ndim != 2 or V.shape[0] < 2:
        raise ValueError(f"rdms must be a (K, m) array of K >= 2 condensed RDMs, got shape "
                         f"{V.shape}")
    if not np.all(np.isfinite(V)):
        raise ValueError("rdms must be finite (no NaN or inf)")
    if method not in CEILING_METHODS:
        ours = {v: k for k, v in RSATOOLBOX_NAMES.items()}
        hint = f" (rsatoolbox's {method!r} is {ours[method]!r})" if method in ours and \
            ours[method] != method and ours[method] in CEILING_METHODS else ""
        raise ValueError(f"method must be one of {CEILING_METHODS}{hint}, got {method!r}")
    K = V.shape[0]
    names = [f"rdms[{k}]" for k in range(K)]
    everyone = _pool(V, method)
    lower, upper = [], []
    for k in range(K):
        rest = _pool(np.delete(V, k, axis=0), method)
        lower.append(compare_rdms(rest, V[k], method, ("the pool of the others", names[k])))
        upper.append(compare_rdms(everyone, V[k], method, ("the pool", names[k])))
    return float(np.mean(lower)), float(np.mean(upper))
