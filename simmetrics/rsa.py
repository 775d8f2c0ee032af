"""Relational metrics: compare which stimuli each representation puts close together.

Both metrics here look only at the relations between the samples (stimuli) inside each
representation, never at the neurons directly, so X and Y may have different widths.

- :class:`RSA`, representational similarity analysis (Kriegeskorte, Mur, Bandettini 2008): the
  representational dissimilarity matrix (RDM) of each representation, then a correlation between
  the two RDMs' upper triangles. Conventions follow rsatoolbox (``calc_rdm`` and ``compare``).
- :class:`MutualKNN`, mutual k-nearest-neighbour alignment (Huh, Cheung, Wang, Isola 2024, "The
  Platonic Representation Hypothesis"): the mean overlap of each sample's k nearest neighbours
  in the two representations.
"""

import numbers

import numpy as np
from scipy import stats
from scipy.spatial.distance import pdist

from ._linalg import pow2_rescale as _pow2_rescale
from ._registry import register
from ._validation import check_pair, check_representation
from .base import Metric, param_dependent

__all__ = ["RSA", "MutualKNN", "rdm", "compare_rdms", "mutual_knn", "nearest_neighbours"]

RDM_METHODS = ("correlation", "euclidean")
COMPARE_METHODS = ("spearman", "pearson", "kendall")

# Rotating, permuting or sign-flipping the neurons (all orthogonal maps) and translating the
# activations leave every Euclidean distance between stimuli unchanged; an isotropic scaling
# multiplies the whole RDM by a positive constant, which no RDM correlation sees.
_EUCLIDEAN_RSA_INVARIANCES = frozenset(
    {"orthogonal", "signed_permutation", "permutation", "isotropic_scaling", "translation"}
)
# The correlation distance centres each stimulus pattern across its neurons: a permutation or
# a non-zero rescaling of all neurons keeps every row mean and correlation, but a rotation or
# a sign flip of some neurons changes the row means, and a translation by a non-constant vector
# changes the patterns' correlations.
_CORRELATION_RSA_INVARIANCES = frozenset({"permutation", "isotropic_scaling"})

# Mutual kNN compares cosine similarities between samples: unchanged by any orthogonal map of
# the neurons and by multiplying X by any non-zero number, but not by a translation.
_KNN_INVARIANCES = frozenset(
    {"orthogonal", "signed_permutation", "permutation", "isotropic_scaling"}
)

#: How many similarity entries one chunk of the mutual kNN search holds (rows x n); about
#: 32 MB per float64 array.
_KNN_CHUNK_ENTRIES = 2**22


# -- RSA ----------------------------------------------------------------------------------
def rdm(X, method="correlation", name="X"):
    """The representational dissimilarity matrix of ``X``, as its condensed upper triangle.

    Rows of ``X`` are stimuli, columns neurons. Entry (i, j), i < j, in the row-major order of
    ``numpy.triu_indices(n, 1)`` (the order of :func:`scipy.spatial.distance.pdist` and of
    rsatoolbox's ``RDMs.get_vectors``):

    - ``"correlation"``: ``1 - r(x_i, x_j)``, with r the Pearson correlation between the two
      stimulus patterns across neurons (rsatoolbox ``calc_rdm(method='correlation')``);
    - ``"euclidean"``: ``||x_i - x_j||^2 / d``, the squared Euclidean distance divided by the
      number of neurons d (rsatoolbox ``calc_rdm(method='euclidean')``, which despite its name
      is squared).

    Memory O(n^2): n (n - 1) / 2 float64 values, 400 MB at n = 10,000.

    Parameters
    ----------
    X : numpy.ndarray of float64, shape (n_stimuli, n_neurons)
    method : {"correlation", "euclidean"}
    name : str
        The argument's name in error messages.

    Returns
    -------
    numpy.ndarray of float64, shape (n (n - 1) / 2,)

    Raises
    ------
    ValueError
        Unknown ``method``; with ``"correlation"``, a stimulus pattern with zero variance across
        neurons (its correlation with anything is undefined).

    Examples
    --------
    >>> X = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0], [0.0, 2.0, 4.0]])
    >>> rdm(X).round(12).tolist()
    [2.0, 0.0, 2.0]
    >>> rdm(X, "euclidean").round(12).tolist()
    [2.666666666667, 1.666666666667, 7.0]
    """
    if method == "correlation":
        flat = np.flatnonzero(np.ptp(X, axis=1) == 0.0)
        if flat.size:
            raise ValueError(
                f"row {flat[0]} of {name} (a stimulus pattern) has zero variance across its "
                f"neurons ({flat.size} such rows), so its correlation distance to the other "
                "stimuli is undefined; use rdm='euclidean' or drop those stimuli"
            )
        return pdist(X, "correlation")
    if method == "euclidean":
        return pdist(X, "sqeuclidean") / X.shape[1]
    raise ValueError(f"rdm must be one of {RDM_METHODS}, got {method!r}")


def _check_rdm_varies(r, name, scale):
    spread = np.ptp(r)
    if spread <= 64 * np.finfo(np.float64).eps * max(np.max(np.abs(r)), scale):
        raise ValueError(
            f"the RDM of {name} is constant (all {r.size} dissimilarities between its stimuli "
            f"are equal{'' if spread == 0 else ' up to rounding'}), so its correlation with "
            "another RDM is undefined"
        )


def _rdm_vector(r, method, name, scale):
    """A condensed RDM made ready for :func:`compare_rdms`: checked not to be constant, then
    centred and scaled to unit norm (``"pearson"``), its ranks centred and scaled (``"spearman"``:
    ranks with ties averaged), or kept as it is (``"kendall"``). Correlating two RDMs is then a
    dot product, so an RDM prepared once serves every comparison it is part of."""
    _check_rdm_varies(r, name, scale)
    if method == "kendall":
        return r
    if method == "spearman":
        r = stats.rankdata(r)
    u = r - r.mean()
    return u / np.sqrt(np.dot(u, u))


def _compare_vectors(u, v, method):
    """The correlation of two RDMs prepared by :func:`_rdm_vector`."""
    if method == "kendall":
        return float(stats.kendalltau(u, v).statistic)
    # a correlation, in [-1, 1] but for rounding (1.0000000000000002 for equal RDMs)
    return float(np.clip(np.dot(u, v), -1.0, 1.0))


def compare_rdms(a, b, method="spearman", names=("X", "Y"), scale=0.0):
    """Correlation between two condensed RDMs, with rsatoolbox's ``compare`` conventions.

    - ``"spearman"``: Pearson correlation of the ranks, ties given their average rank
      (rsatoolbox ``'spearman'``, scipy ``spearmanr``);
    - ``"pearson"``: Pearson correlation of the dissimilarities (rsatoolbox ``'corr'``);
    - ``"kendall"``: Kendall's tau-b, which corrects for ties in either RDM (rsatoolbox
      ``'kendall'``, an alias of its ``'tau-b'``; scipy ``kendalltau``), O(m log m) in the
      number m of pairs.

    Parameters
    ----------
    a, b : numpy.ndarray of float64, shape (m,)
        Condensed RDMs of the same stimuli, as returned by :func:`rdm`.
    method : {"spearman", "pearson", "kendall"}
    names : tuple of str
        Names of the representations the RDMs come from, for error messages.
    scale : float, default 0.0
        The smallest magnitude that rounding errors of the dissimilarities are relative to:
        an RDM whose entries all lie within ``64 eps max(max |r|, scale)`` of each other counts
        as constant. :class:`RSA` passes 1 for correlation distances, which lie in [0, 2] and
        are rounded to about eps however small they are (all patterns perfectly correlated
        give an RDM of rounding noise around 0).

    Returns
    -------
    float
        A similarity in [-1, 1].

    Raises
    ------
    ValueError
        Unknown ``method``; an RDM whose entries are all equal (up to rounding).

    Examples
    --------
    >>> a = np.array([1.0, 2.0, 3.0, 4.0])
    >>> round(compare_rdms(a, a**3, "spearman"), 12), round(compare_rdms(a, -a, "kendall"), 12)
    (1.0, -1.0)
    """
    _check_compare(method)
    return _compare_vectors(_rdm_vector(a, method, names[0], scale),
                            _rdm_vector(b, method, names[1], scale), method)


def _check_compare(method):
    if method not in COMPARE_METHODS:
        raise ValueError(
            f"compare must be one of {COMPARE_METHODS} (rsatoolbox's 'corr' is 'pearson'), "
            f"got {method!r}"
        )


@register("rsa")
class RSA(Metric):
    """Representational similarity analysis (Kriegeskorte, Mur, Bandettini 2008).

    ::

        RSA(X, Y) = corr( RDM(X)[i < j], RDM(Y)[i < j] )

    First the representational dissimilarity matrix of each representation over its stimuli
    (rows), then a correlation between the two upper triangles. Both steps use rsatoolbox's
    conventions (``calc_rdm`` then ``compare``), and reproduce its values:

    - ``rdm="correlation"``: ``1 - pearson(x_i, x_j)`` between stimulus patterns;
    - ``rdm="euclidean"``: ``||x_i - x_j||^2 / n_neurons`` (rsatoolbox's squared form);
    - ``compare="spearman"`` (ranks with average ties), ``"pearson"`` (rsatoolbox ``'corr'``)
      or ``"kendall"`` (tau-b, rsatoolbox ``'kendall'``).

    A **similarity** in [-1, 1]; not a metric. X and Y may have different widths.

    Invariances, measured: with the Euclidean RDM, to orthogonal maps (and so signed and plain
    permutations) of the neurons, to translation and to isotropic scaling, for every
    ``compare`` (scaling multiplies the RDM by a constant, which no correlation sees). With the
    correlation RDM only to permutations and isotropic scaling: each stimulus pattern is centred
    across its neurons, and a rotation, a sign flip of some neurons or a translation by a
    non-constant vector changes those row means, so the RDM changes.

    Memory and time are O(n^2) in the number n of stimuli: the condensed RDMs (and for
    ``"spearman"`` their ranks) hold n (n - 1) / 2 float64 values each, 400 MB per vector at
    n = 10,000 (50 million pairs). ``"kendall"`` is O(m log m) in the m pairs.

    Parameters
    ----------
    rdm : {"correlation", "euclidean"}, default "correlation"
        The dissimilarity between two stimulus patterns.
    compare : {"spearman", "pearson", "kendall"}, default "spearman"
        The correlation between the two RDMs.
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Raises
    ------
    ValueError
        Unknown ``rdm`` or ``compare``; fewer than 3 stimuli; with ``rdm="correlation"`` a
        stimulus pattern that is constant across neurons (the message names X or Y and the
        row); an RDM whose dissimilarities are all equal (up to rounding).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 8))
    >>> Q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    >>> round(RSA(rdm="euclidean").fit_score(X, 3 * X @ Q + 1), 12)
    1.0
    >>> bool(RSA().fit_score(X, X @ Q) < 1)  # the correlation RDM is not rotation-invariant
    True
    """

    kind = "similarity"
    bounds = (-1.0, 1.0)
    is_metric = False
    invariances = param_dependent(
        lambda self: _EUCLIDEAN_RSA_INVARIANCES
        if self.rdm == "euclidean"
        else _CORRELATION_RSA_INVARIANCES
        if self.rdm == "correlation"
        else frozenset()
    )
    min_samples = 3
    same_width = False
    symmetric = True
    reference = "Kriegeskorte, Mur, Bandettini 2008, Front. Syst. Neurosci.; rsatoolbox"

    def __init__(self, rdm="correlation", compare="spearman", layout=None):
        self.rdm = rdm
        self.compare = compare
        self.layout = layout

    def _check_params(self):
        if self.rdm not in RDM_METHODS:
            raise ValueError(f"rdm must be one of {RDM_METHODS}, got {self.rdm!r}")
        _check_compare(self.compare)

    def _fit(self, X, Y):
        self._check_params()

    # per representation (simmetrics.pairwise): its RDM, ready to be correlated
    def _prepare(self, A, name):
        self._check_params()
        # The RDM is exactly proportional to the one of the rescaled data, and every
        # comparison ignores a positive factor, so rescale first to keep squares in range.
        r = rdm(_pow2_rescale(A), self.rdm, name)
        return _rdm_vector(r, self.compare, name, float(self.rdm == "correlation"))

    def _fit_score_prepared(self, a, b):
        return _compare_vectors(a, b, self.compare)


# -- mutual k nearest neighbours ----------------------------------------------------------
def _unit_rows(X, name):
    """Rows of ``X`` scaled to unit Euclidean norm; a zero row is an error."""
    X = _pow2_rescale(X)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    zero = np.flatnonzero(norms == 0.0)
    if zero.size:
        raise ValueError(
            f"row {zero[0]} of {name} is all zeros ({zero.size} such rows), so its cosine "
            "similarity to the other samples, and hence its nearest neighbours, are undefined"
        )
    return X / norms[:, None]


def _topk_mask(S, k):
    """Boolean mask of the ``k`` largest entries of each row of ``S``; among equal values the
    lower column index wins. O(rows x cols) time and memory."""
    cols = S.shape[1]
    kth = np.partition(S, cols - k, axis=1)[:, cols - k, None]  # each row's k-th largest
    mask = S >= kth
    crowded = np.flatnonzero(np.count_nonzero(mask, axis=1) > k)  # ties at the k-th value
    if crowded.size:
        sub, cut = S[crowded], kth[crowded]
        above, tied = sub > cut, sub == cut
        room = k - np.count_nonzero(above, axis=1, keepdims=True)  # tied values that fit
        mask[crowded] = above | (tied & (np.cumsum(tied, axis=1) <= room))
    return mask


class _NeighbourSearch:
    """The cosine similarities of some samples to all samples of one representation.

    Duplicated rows (after L2 normalisation) are stored once, and the similarities are
    gathered from the distinct rows, so duplicated samples always get bitwise-equal
    similarities and therefore exact ties.
    """

    def __init__(self, X, name):
        U = _unit_rows(X, name)
        distinct, which = np.unique(U, axis=0, return_inverse=True)
        if distinct.shape[0] == U.shape[0]:  # no duplicates: keep the sample order
            self.distinct, self.which = U, None
        else:
            self.distinct, self.which = distinct, which.ravel()

    def similarities(self, rows):
        if self.which is None:
            S = self.distinct[rows] @ self.distinct.T
        else:
            S = (self.distinct[self.which[rows]] @ self.distinct.T)[:, self.which]
        S[np.arange(len(rows)), rows] = -np.inf  # a sample is not its own neighbour
        return S


def mutual_knn(X, Y, k=10, chunk_size=None):
    """Mutual k-nearest-neighbour alignment of ``X`` and ``Y`` (Huh et al. 2024).

    ::

        m(X, Y) = 1/n  sum_i  |N_X(i) & N_Y(i)| / k

    where N_X(i) holds the k samples j != i with the largest cosine similarity
    ``<x_i, x_j> / (||x_i|| ||x_j||)`` to sample i in X (the paper L2-normalises each sample's
    feature vector and ranks neighbours by inner product; equivalently by the Euclidean
    distance between the normalised rows). Exact ties are broken in favour of the lower sample
    index; duplicated samples always tie exactly.

    No input checking (:class:`MutualKNN` validates). The n x n similarity matrix is never
    formed: ``chunk_size`` rows at a time, so memory is O(n * chunk_size), besides the
    normalised copies of X and Y; by default ``chunk_size`` is chosen so that a chunk holds about 4
    million entries (32 MB per float64 array).

    Parameters
    ----------
    X, Y : numpy.ndarray of float64, shapes (n, d_x) and (n, d_y)
    k : int
        Number of neighbours, 1 <= k < n.
    chunk_size : int or None
        Rows per chunk; None chooses it from n.

    Returns
    -------
    float
        A similarity in [0, 1], a multiple of 1 / (n k).

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> mutual_knn(X, X[:, ::-1], k=1), mutual_knn(X, X[[0, 2, 1, 3]], k=1)
    (1.0, 0.0)
    """
    n = X.shape[0]
    return _shared_neighbours(nearest_neighbours(X, k, "X", chunk_size),
                              nearest_neighbours(Y, k, "Y", chunk_size)) / (n * k)


def nearest_neighbours(X, k, name="X", chunk_size=None):
    """The k nearest neighbours of every sample of ``X`` by cosine similarity (a sample is not
    its own neighbour; exact ties go to the lower index), as an (n, k) array of sample indices
    in increasing order. Computed ``chunk_size`` rows at a time (see :func:`mutual_knn`).

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> nearest_neighbours(X, 1).ravel().tolist()
    [1, 0, 3, 2]
    """
    n = X.shape[0]
    if chunk_size is None:
        chunk_size = max(1, _KNN_CHUNK_ENTRIES // n)
    search = _NeighbourSearch(X, name)
    out = np.empty((n, k), dtype=np.intp)
    for start in range(0, n, chunk_size):
        rows = np.arange(start, min(start + chunk_size, n))
        # exactly k per row, found row by row in column order
        out[rows] = np.nonzero(_topk_mask(search.similarities(rows), k))[1].reshape(-1, k)
    return out


def _shared_neighbours(a, b):
    """sum_i |N_a(i) & N_b(i)| for two (n, k) arrays of neighbour indices: each row holds k
    distinct indices, so in the sorted concatenation of two rows an index shared by both is
    exactly a pair of equal neighbours."""
    both = np.sort(np.concatenate([a, b], axis=1), axis=1)
    return int(np.count_nonzero(both[:, 1:] == both[:, :-1]))


def _valid_k(k):
    return isinstance(k, numbers.Integral) and not isinstance(k, bool) and k >= 1


@register("mutual_knn", aliases=("mknn",))
class MutualKNN(Metric):
    """Mutual k-nearest-neighbour alignment (Huh, Cheung, Wang, Isola 2024, ICML).

    ::

        MutualKNN(X, Y) = 1/n  sum_i  |N_X(i) & N_Y(i)| / k

    with N_X(i) the k nearest other samples of sample i in X. Convention of the paper's code
    (minyoungg/platonic-rep, ``metrics.py`` and ``measure_alignment.py``): each sample's feature
    vector is L2-normalised and neighbours are the samples with the largest inner product, that
    is the largest cosine similarity; a sample is never its own neighbour. The paper's feature
    preparation also clips outliers at the 95th percentile of absolute activations before
    normalising; that is preprocessing, not part of the metric, and is not done here. Exact ties
    in similarity are broken deterministically, in favour of the lower sample index
    (duplicated samples always tie exactly); the paper's code leaves them to an unstable sort.

    A **similarity** in [0, 1]: 1 when every sample has the same k neighbours in X and Y.
    Not a metric. Invariant to orthogonal maps of the neurons (rotations, signed and plain
    permutations) and to isotropic scaling; not to translation (no centring happens). Uses
    cosine similarities, so an all-zero sample is an error.

    Memory O(n * chunk) rather than O(n^2): similarities are computed a chunk of rows at a
    time, about 4 million entries per chunk, besides normalised copies of X and Y.
    Time O(n^2 (d_x + d_y)); about 3.5 s for n = 10,000 and 256 neurons on 2 CPU cores.

    Parameters
    ----------
    k : int, default 10
        Number of neighbours; needs n > k samples.
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Raises
    ------
    ValueError
        ``k`` not a positive integer; k >= n (the message names k); a sample whose features are
        all zero (the message names X or Y and the row).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 6))
    >>> Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    >>> MutualKNN(k=5).fit_score(X, 2 * X @ Q)
    1.0
    >>> bool(MutualKNN(k=5).fit_score(X, rng.normal(size=(100, 6))) < 0.2)
    True
    """

    kind = "similarity"
    bounds = (0.0, 1.0)
    is_metric = False
    invariances = _KNN_INVARIANCES
    min_samples = param_dependent(lambda self: int(self.k) + 1 if _valid_k(self.k) else 2)
    same_width = False
    symmetric = True
    reference = "Huh, Cheung, Wang, Isola 2024, The Platonic Representation Hypothesis, ICML"

    def __init__(self, k=10, layout=None):
        self.k = k
        self.layout = layout

    def _validate(self, X, Y):
        if not _valid_k(self.k):
            raise ValueError(f"k must be a positive integer, got {self.k!r}")
        # Every other check first; then the sample count, in words that name k (min_samples is
        # k + 1 because each sample's neighbours are the other n - 1 samples).
        X, Y = check_pair(X, Y, layout=self.layout, min_samples=1)
        return self._enough_samples(X, "X"), Y

    def _validate_one(self, A, name):
        if not _valid_k(self.k):
            raise ValueError(f"k must be a positive integer, got {self.k!r}")
        A = check_representation(A, name, layout=self.layout, min_samples=1)
        return self._enough_samples(A, name)

    def _enough_samples(self, A, name):
        n = A.shape[0]
        if n < self.min_samples:
            raise ValueError(
                f"k={self.k} must be smaller than the number of samples, since each sample's "
                f"neighbours are the other n - 1 samples: {name} has {n} samples, but this "
                f"estimator needs at least {self.min_samples}"
            )
        return A

    # per representation (simmetrics.pairwise): its neighbour lists
    def _prepare(self, A, name):
        return nearest_neighbours(A, int(self.k), name)

    def _fit_score_prepared(self, a, b):
        return _shared_neighbours(a, b) / a.size
