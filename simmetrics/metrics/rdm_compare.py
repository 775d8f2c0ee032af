"""Comparisons of two RDMs, with rsatoolbox's conventions (``rsatoolbox.rdm.compare``, version
0.3.2), prepared once per RDM so that comparing many pairs is a dot product or a small SVD.

Methods (m = n (n - 1) / 2 pairs of n stimuli; r, s two condensed RDMs; R the full symmetric
matrix with a zero diagonal; H = I - 11'/n):

- ``"pearson"`` (rsatoolbox ``'corr'``), ``"cosine"`` (uncentred: r.s / (||r|| ||s||));
- ``"spearman"`` (Pearson r of the ranks, ties averaged), ``"rho_a"`` (rsatoolbox ``'rho-a'``:
  12 sum_k (rank(r)_k - (m + 1)/2)(rank(s)_k - (m + 1)/2) / (m^3 - m), no tie correction in
  the denominator), ``"kendall"`` (tau-b), ``"tau_a"`` (rsatoolbox ``'tau-a'``:
  (concordant - discordant) / (m (m - 1) / 2), tied pairs count 0);
- ``"cosine_cov"`` and ``"corr_cov"``: the whitened RDM cosine and correlation of Diedrichsen
  et al. 2021 (PLoS Comput. Biol. 17, e1008729) for i.i.d. pattern noise (rsatoolbox's
  ``sigma_k=None``): the Frobenius cosine of the double-centred kernels G = -1/2 H R H
  (``"corr_cov"``: after subtracting the mean of r from every off-diagonal entry). From the
  condensed vectors, with rs = R 1 the row sums and S = 1'R1,
  <G_r, G_s>_F = r.s / 2 - rs_r.rs_s / (2 n) + S_r S_s / (4 n^2): O(m), no n x n matrix
  (rsatoolbox builds an m x m covariance; its cosine_cov of squared Euclidean RDMs is linear
  CKA);
- ``"bures"``: sum sqrt(eig(G_r^1/2 G_s G_r^1/2)) / sqrt(tr G_r tr G_s), the normalised Bures
  similarity of the same kernels (negative eigenvalues clipped to 0, as rsatoolbox);
  ``"bures_metric"``: tr G_r + tr G_s - 2 sum sqrt(eig(...)), the squared Bures distance (a
  distance, scaled like the RDMs). n x n eigendecompositions: O(n^3). For RDMs that are not
  squared Euclidean distances (``"poisson"``, ``"crossnobis"``) the kernels are indefinite;
  rsatoolbox then drops only the first kernel's negative eigenvalues and divides by the full
  traces, so its value (reproduced here) is not symmetric, can exceed 1 (and
  ``"bures_metric"`` be negative). Eigenvalues within n eps max |lambda| of 0 count as 0
  (rsatoolbox takes square roots of their rounding, adding about 1e-7 to the similarity).

Ties: :func:`tied_ranks` counts two values as tied when they are within their rounding
bounds of each other (None: exact ties only, rsatoolbox's and scipy's rule).
"""

import numbers

import numpy as np
from scipy import stats
from scipy.spatial.distance import squareform

__all__ = ["COMPARE_METHODS", "RANK_METHODS", "RSATOOLBOX_NAMES", "UniformBound", "tied_ranks",
           "check_rdm_varies", "prepare_rdm", "compare_prepared", "compare_rdms",
           "stimuli_of", "check_compare", "TIE_CHUNK"]

COMPARE_METHODS = ("spearman", "pearson", "kendall", "cosine", "cosine_cov", "corr_cov",
                   "rho_a", "tau_a", "bures", "bures_metric")
#: the comparisons that see only the ranks of the dissimilarities
RANK_METHODS = ("spearman", "kendall", "rho_a", "tau_a")
#: rsatoolbox's name of each comparison
RSATOOLBOX_NAMES = {"spearman": "spearman", "pearson": "corr", "kendall": "kendall",
                    "cosine": "cosine", "cosine_cov": "cosine_cov", "corr_cov": "corr_cov",
                    "rho_a": "rho-a", "tau_a": "tau-a", "bures": "bures",
                    "bures_metric": "bures_metric"}

class UniformBound:
    """The same rounding bound ``tol`` for every entry (see :func:`compare_rdms`); a bounds object of :func:`tied_ranks`."""

    def __init__(self, tol):
        self.max = float(tol)

    def __call__(self, k):
        return np.full(np.shape(k), self.max)


#: how many neighbouring sorted values are compared (and ranks assigned) per chunk
TIE_CHUNK = 2**16


def tied_ranks(r, bounds):
    """Ranks 1..m of the values ``r`` (ties averaged, as ``scipy.stats.rankdata``), where two
    values count as tied when they are at most the sum of their rounding ``bounds`` apart.

    Ties are chains of neighbours in sorted order: sorted values s_t, s_(t+1) of entries a, b
    are in one tie group when ``s_(t+1) - s_t <= bounds(a) + bounds(b)`` (``bounds`` None: when
    they are equal). Exact ties (a gap of 0) always are, so with bounds of 0 the ranks are
    ``rankdata(r)``. Memory besides ``r``: the sort order, the ranks, a boolean per value and,
    when there are ties, the start of every tie group (m values at most); the rest is done a
    chunk at a time.
    """
    m = r.size
    order = np.argsort(r, kind="stable")  # fast on many equal values (quicksort is not)
    merged = np.zeros(m, dtype=bool)  # merged[t]: sorted value t ties with value t - 1
    limit = 0.0 if bounds is None else 2.0 * bounds.max
    for start in range(1, m, TIE_CHUNK):
        stop = min(start + TIE_CHUNK, m)
        gaps = np.diff(r[order[start - 1:stop]])  # sorted value t minus value t - 1
        merged[start:stop] = gaps == 0.0
        near = np.flatnonzero((gaps > 0.0) & (gaps <= limit))
        if near.size:
            t = start + near
            merged[t] = gaps[near] <= bounds(order[t]) + bounds(order[t - 1])
    ranks = np.empty(m)
    if not merged.any():
        ranks[order] = np.arange(1.0, m + 1.0)
        return ranks
    starts = np.flatnonzero(~merged)  # first sorted position of every tie group
    del merged
    groups = starts.size
    for start in range(0, m, TIE_CHUNK):
        stop = min(start + TIE_CHUNK, m)
        group = np.searchsorted(starts, np.arange(start, stop), side="right") - 1
        end = np.where(group + 1 < groups, starts[np.minimum(group + 1, groups - 1)], m)
        # the group holds sorted positions starts[group] .. end - 1, whose ranks
        # starts[group] + 1 .. end average to (starts[group] + end + 1) / 2
        ranks[order[start:stop]] = (starts[group] + end + 1) / 2.0
    return ranks


def check_rdm_varies(r, name, scale):
    spread = np.ptp(r)
    if spread <= 64 * np.finfo(np.float64).eps * max(np.max(np.abs(r)), scale):
        raise ValueError(
            f"the RDM of {name} is constant (all {r.size} dissimilarities between its stimuli "
            f"are equal{'' if spread == 0 else ' up to rounding'}), so its correlation with "
            "another RDM is undefined"
        )



def stimuli_of(m):
    """The number n of stimuli whose condensed RDM has m = n (n - 1) / 2 entries."""
    n = int(round((1.0 + np.sqrt(1.0 + 8.0 * m)) / 2.0))
    if n * (n - 1) // 2 != m:
        raise ValueError(f"a condensed RDM has n (n - 1) / 2 entries; {m} is not such a number")
    return n


def _row_sums(r, n):
    """R 1 for the full symmetric matrix R of the condensed ``r`` (zero diagonal), a row at a
    time (no n x n matrix)."""
    sums = np.zeros(n)
    pos = 0
    for i in range(n - 1):
        seg = r[pos:pos + n - 1 - i]
        sums[i] += seg.sum()
        sums[i + 1:] += seg
        pos += seg.size
    return sums


def _centred_kernel_terms(r, n, name, centre):
    """(r, R 1, 1'R1) of the condensed RDM ``r`` scaled so that its double-centred kernel
    G = -1/2 H R H has unit Frobenius norm (see the module docstring)."""
    if centre:
        check_rdm_varies(r, name, 0.0)
        r = r - r.mean()
    elif not np.any(r):
        raise ValueError(f"the RDM of {name} is zero (all {r.size} dissimilarities), so its "
                         "whitened cosine with another RDM is undefined")
    r = r / np.max(np.abs(r))
    rs = _row_sums(r, n)
    total = float(rs.sum())
    sq = np.dot(r, r) / 2.0 - np.dot(rs, rs) / (2.0 * n) + total * total / (4.0 * n * n)
    if not sq > 64 * np.finfo(np.float64).eps * np.dot(r, r):
        raise ValueError(f"the double-centred kernel -1/2 H R H of the RDM of {name} is zero "
                         "up to rounding, so its whitened comparison is undefined")
    scale = 1.0 / np.sqrt(sq)
    return r * scale, rs * scale, total * scale, n


def _bures_factor(r, n, name):
    """(F_+, F_-, tr G) for G = -1/2 H R H = F_+ F_+' - F_- F_-': the eigenvalues above
    n eps max |lambda| make F_+, those below minus that F_- (the rest is rounding of a zero
    eigenvalue), tr G the trace of G (rsatoolbox's, with the negative part)."""
    G = squareform(r, checks=False)
    G *= -0.5
    mean = G.mean(axis=0)
    G -= mean[None, :]
    G -= mean[:, None]
    G += mean.mean()
    trace = float(np.trace(G))
    lam, U = np.linalg.eigh(G)
    del G
    tol = n * np.finfo(np.float64).eps * np.max(np.abs(lam))
    pos, neg = lam > tol, lam < -tol
    if trace <= 0.0 or not pos.any():
        raise ValueError(f"the kernel -1/2 H R H of the RDM of {name} has no positive part "
                         f"(trace {trace:.3g}), so its Bures similarity is undefined")
    return U[:, pos] * np.sqrt(lam[pos]), U[:, neg] * np.sqrt(-lam[neg]), trace


def _fidelity(a, b):
    """sum sqrt(max(eig(A_+^1/2 B A_+^1/2), 0)) for the factors of :func:`_bures_factor`,
    A_+^1/2 = U_+ sqrt(lambda_+) U_+' (rsatoolbox's order: only A's negative part is dropped;
    for positive semi-definite kernels, the squared Euclidean RDMs, it is the nuclear norm
    ||F_A' F_B||_*, symmetric)."""
    (Fa, _, _), (Fb, Gb, _) = a, b
    if Gb.shape[1] == 0:
        return float(np.sum(np.linalg.svd(Fa.T @ Fb, compute_uv=False)))
    P, N = Fa.T @ Fb, Fa.T @ Gb
    lam = np.linalg.eigvalsh(P @ P.T - N @ N.T)
    return float(np.sum(np.sqrt(np.maximum(lam, 0.0))))


def prepare_rdm(r, method, name="X", scale=0.0, bounds=None):
    """A condensed RDM made ready for :func:`compare_prepared`: the per-RDM half of every
    comparison, so that an RDM prepared once serves every pair it is part of.

    Parameters
    ----------
    r : numpy.ndarray of float64, shape (m,)
    method : one of :data:`COMPARE_METHODS`
    name : str
        The representation's name in error messages.
    scale : float
        The magnitude rounding errors are relative to, for the test that the RDM is not
        constant (:func:`check_rdm_varies`).
    bounds : None or a bounds object
        Rounding bounds of the entries for the rank comparisons (:func:`tied_ranks`).

    Returns
    -------
    tuple
        The prepared state (its content depends on ``method``).

    Raises
    ------
    ValueError
        A constant RDM (correlations), a zero RDM (cosines), a kernel without positive part
        (Bures).
    """
    r = np.asarray(r, dtype=np.float64)
    if method in ("cosine", "cosine_cov", "corr_cov", "bures", "bures_metric"):
        n = stimuli_of(r.size)
        if method == "cosine":
            norm = np.sqrt(np.dot(r, r))
            if norm == 0.0:
                raise ValueError(f"the RDM of {name} is zero (all {r.size} dissimilarities), so "
                                 "its cosine with another RDM is undefined")
            return (r / norm,)
        if method in ("cosine_cov", "corr_cov"):
            return _centred_kernel_terms(r, n, name, method == "corr_cov")
        return _bures_factor(r, n, name)
    check_rdm_varies(r, name, scale)
    if method == "pearson":
        u = r - r.mean()
        return (u / np.sqrt(np.dot(u, u)),)
    ranks = tied_ranks(r, bounds)
    if method == "kendall":
        return (ranks,)
    if method == "tau_a":
        _, counts = np.unique(ranks, return_counts=True)
        return ranks, float(np.sum(counts * (counts - 1.0) / 2.0))
    u = ranks - (r.size + 1.0) / 2.0
    if method == "rho_a":
        return (u,)
    return (u / np.sqrt(np.dot(u, u)),)


def compare_prepared(a, b, method):
    """The comparison ``method`` of two RDMs prepared by :func:`prepare_rdm` (a float)."""
    if method == "kendall":
        return float(stats.kendalltau(a[0], b[0]).statistic)
    if method == "tau_a":
        m = a[0].size
        pairs = m * (m - 1.0) / 2.0
        tau_b = float(stats.kendalltau(a[0], b[0]).statistic)
        # tau-b = (C - D) / sqrt((P - ties_a)(P - ties_b)), tau-a = (C - D) / P
        value = tau_b * np.sqrt((pairs - a[1]) * (pairs - b[1])) / pairs
        return float(np.clip(value, -1.0, 1.0))
    if method == "rho_a":
        m = a[0].size
        return float(np.clip(12.0 * np.dot(a[0], b[0]) / (m * (m * m - 1.0)), -1.0, 1.0))
    if method in ("cosine_cov", "corr_cov"):
        r, rs, total, n = a
        s, ss, total_s, _ = b
        value = np.dot(r, s) / 2.0 - np.dot(rs, ss) / (2.0 * n) + total * total_s / (4.0 * n * n)
        return float(np.clip(value, -1.0, 1.0))
    if method in ("bures", "bures_metric"):
        tf, tg = a[2], b[2]
        nuclear = _fidelity(a, b)
        indefinite = a[1].shape[1] > 0 or b[1].shape[1] > 0
        if method == "bures":
            value = nuclear / np.sqrt(tf) / np.sqrt(tg)
            return float(value if indefinite else min(value, 1.0))
        value = tf + tg - 2.0 * nuclear
        return float(value if indefinite else max(value, 0.0))
    # pearson, spearman, cosine: unit vectors; in [-1, 1] but for rounding
    return float(np.clip(np.dot(a[0], b[0]), -1.0, 1.0))


def compare_rdms(a, b, method="spearman", names=("X", "Y"), scale=0.0, tie_tol=0.0):
    """The comparison ``method`` of two condensed RDMs, with rsatoolbox's ``compare``
    conventions (the module docstring lists them; rsatoolbox's ``'corr'``, ``'rho-a'`` and
    ``'tau-a'`` are ``"pearson"``, ``"rho_a"`` and ``"tau_a"`` here).

    Ties: by default only exactly equal dissimilarities tie (rsatoolbox's and scipy's rule).
    With ``tie_tol > 0`` the rank comparisons also count as tied neighbouring sorted values at
    most ``2 tie_tol`` apart (``tie_tol`` bounds each value's rounding error), so that
    dissimilarities equal in exact arithmetic but rounded differently still tie.
    :class:`simmetrics.RSA` computes such a bound for every entry from the data.

    Parameters
    ----------
    a, b : numpy.ndarray of float64, shape (m,)
        Condensed RDMs of the same stimuli, as returned by :func:`simmetrics.rdm`.
    method : one of :data:`COMPARE_METHODS`
    names : tuple of str
        Names of the representations the RDMs come from, for error messages.
    scale : float, default 0.0
        The smallest magnitude that rounding errors of the dissimilarities are relative to:
        an RDM whose entries all lie within ``64 eps max(max |r|, scale)`` of each other counts
        as constant (for the correlations).
    tie_tol : float, default 0.0
        The rounding error each dissimilarity may carry, for the ties of the rank comparisons.

    Returns
    -------
    float
        A similarity in [-1, 1] (``"bures"``: [0, 1]); ``"bures_metric"``: a squared distance.

    Raises
    ------
    ValueError
        Unknown ``method``; RDMs of different lengths; an RDM for which the comparison is
        undefined (see :func:`prepare_rdm`).

    Examples
    --------
    >>> a = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    >>> round(compare_rdms(a, a**3, "spearman"), 12), round(compare_rdms(a, -a, "kendall"), 12)
    (1.0, -1.0)
    >>> round(compare_rdms(a, 2 * a, "cosine_cov"), 12)
    1.0
    """
    check_compare(method)
    if isinstance(tie_tol, bool) or not (
            isinstance(tie_tol, numbers.Real) and 0.0 <= tie_tol < np.inf):
        raise ValueError(f"tie_tol must be a finite number >= 0, got {tie_tol!r}")
    bounds = UniformBound(tie_tol) if tie_tol > 0 else None
    a, b = (np.asarray(v, dtype=np.float64).ravel() for v in (a, b))
    if a.size != b.size:
        raise ValueError(f"the RDMs of {names[0]} and {names[1]} must have the same length "
                         f"(the same stimuli), got {a.size} and {b.size}")
    return compare_prepared(prepare_rdm(a, method, names[0], scale, bounds),
                            prepare_rdm(b, method, names[1], scale, bounds), method)


def check_compare(method, methods=COMPARE_METHODS):
    """Refuse an unknown comparison, pointing rsatoolbox's spellings to this package's."""
    if method not in methods:
        ours = {v: k for k, v in RSATOOLBOX_NAMES.items() if k != v}
        hint = (f"rsatoolbox's {method!r} is {ours[method]!r}" if method in ours
                else "rsatoolbox's 'corr' is 'pearson'")
        raise ValueError(f"compare must be one of {methods} ({hint}), got {method!r}")
