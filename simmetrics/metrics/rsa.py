"""Representational similarity analysis: compare which stimuli each representation puts close
together.

:class:`RSA`, representational similarity analysis (Kriegeskorte, Mur, Bandettini 2008), looks
only at the relations between the samples (stimuli) inside each representation, never at the
neurons directly, so X and Y may have different widths: the representational dissimilarity
matrix (RDM) of each representation (:func:`rdm`), then a correlation between the two RDMs'
upper triangles (:func:`compare_rdms`, with dissimilarities within rounding of each other
counted as ties). Conventions follow rsatoolbox (``calc_rdm`` and ``compare``).
:class:`simmetrics.MutualKNN`, the other relational metric, is in :mod:`simmetrics.metrics.knn`.
"""

import numbers

import numpy as np
from scipy import stats
from scipy.spatial.distance import pdist

from .._core.linalg import pow2_rescale as _pow2_rescale
from .._core.backend import NUMPY
from .._core.params import Interval, Options, Real
from .._core.registry import register
from ..base import Metric, param_dependent
from .rsa_gradient import rsa_formula, soft_rank_plan, soft_rank_scale, soft_ranks

__all__ = ["RSA", "rdm", "compare_rdms"]

RDM_METHODS = ("correlation", "euclidean")
COMPARE_METHODS = ("spearman", "pearson", "kendall")
#: RSA's comparisons: those of :func:`compare_rdms` and the soft-rank relaxation of Spearman's
RSA_COMPARE_METHODS = COMPARE_METHODS + ("soft_spearman",)

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
        r = pdist(X, "sqeuclidean")
        r /= X.shape[1]
        return r
    raise ValueError(f"rdm must be one of {RDM_METHODS}, got {method!r}")


class _RoundingBounds:
    """How far rounding can move each dissimilarity of :func:`rdm` from its exact value.

    Two dissimilarities that are equal in exact arithmetic (binary, sparse or quantised
    activations give many) come out of floating point as values up to the sum of their
    bounds apart, and a rescaled, rotated or translated copy of the data rounds them
    differently; counted as ties, they rank the same however they were rounded. For the pair
    (i, j) of stimuli x_i, x_j (rows of the data as given, d neurons), the computed
    dissimilarity ``r_ij`` and eps the float64 machine epsilon:

    - ``"euclidean"`` (``r_ij = ||x_i - x_j||^2 / d``):
      ``b_ij = 2 (d + 2) eps (2 sqrt(r_ij / d) (||x_i|| + ||x_j||) + r_ij)``. An input whose
      entries carry rounding errors of ``c eps`` times their row's norm (c = 1 for a product
      or a translation, about sqrt(d) for a rotation, at most d + 2) moves ``||x_i - x_j||^2``
      by at most ``2 c eps ||x_i - x_j|| (||x_i|| + ||x_j||)``, and the sum of d squared
      differences rounds by at most ``(d + 2) eps ||x_i - x_j||^2``; doubled for safety.
    - ``"correlation"``: ``b_ij = 4 eps (d + kappa_i + kappa_j)`` with
      ``kappa_i = ||x_i|| / ||x_i - mean(x_i)||`` (at least 1): the same input rounding moves
      the centred, normalised pattern by ``eps kappa_i``, and the centring, normalisation and
      inner product of d terms round by about ``(d + 2 kappa_i + 2 kappa_j) eps``.

    Measured on rotated, permuted, translated and rescaled copies of binary, quantised, sparse
    and heavy-tailed data, the differences stay below a tenth of these bounds.

    Parameters
    ----------
    X : numpy.ndarray, shape (n, d)
        The data the RDM was computed from.
    method : {"correlation", "euclidean"}
    r : numpy.ndarray, shape (n (n - 1) / 2,)
        The condensed RDM (kept by reference).

    Examples
    --------
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # pairs (0, 1), (0, 2), (1, 2)
    >>> b = _RoundingBounds(X, "euclidean", rdm(X, "euclidean"))  # r = 1, 0.5, 0.5
    >>> (b(np.arange(3)) / (8 * np.finfo(float).eps)).round(6).tolist()
    [3.828427, 2.914214, 2.914214]
    """

    def __init__(self, X, method, r):
        n, d = X.shape
        eps = np.finfo(np.float64).eps
        norms = np.sqrt(np.einsum("ij,ij->i", X, X))
        self.r, self.euclidean = r, method == "euclidean"
        if self.euclidean:
            self.row, self.factor, self.d = norms, 2.0 * (d + 2) * eps, d
        else:
            C = X - X.mean(axis=1, keepdims=True)
            spread = np.sqrt(np.einsum("ij,ij->i", C, C))
            with np.errstate(divide="ignore", invalid="ignore"):  # constant rows: rdm() raises
                kappa = np.where(spread > 0, norms / np.where(spread > 0, spread, 1.0), 1.0)
            self.row, self.factor, self.d = kappa, 4.0 * eps, d
        # start of row i of the condensed upper triangle: i n - i (i + 1) / 2
        i = np.arange(n, dtype=np.int64)
        self.starts = i * n - i * (i + 1) // 2
        top = 2.0 * float(self.row.max()) if n else 0.0
        self.max = self._bound(top, float(r.max()) if r.size else 0.0)

    def _bound(self, both, r):
        if self.euclidean:
            return self.factor * (2.0 * np.sqrt(r / self.d) * both + r)
        return self.factor * (self.d + both)

    def __call__(self, k):
        """The bounds of the condensed entries ``k`` (an integer array)."""
        i = np.searchsorted(self.starts, k, side="right") - 1
        j = k - self.starts[i] + i + 1
        return self._bound(self.row[i] + self.row[j], self.r[k])


class _UniformBound:
    """The same rounding bound ``tol`` for every entry (see :func:`compare_rdms`)."""

    def __init__(self, tol):
        self.max = float(tol)

    def __call__(self, k):
        return np.full(np.shape(k), self.max)


#: how many neighbouring sorted values are compared (and ranks assigned) per chunk
_TIE_CHUNK = 2**16


def _tied_ranks(r, bounds):
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
    for start in range(1, m, _TIE_CHUNK):
        stop = min(start + _TIE_CHUNK, m)
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
    for start in range(0, m, _TIE_CHUNK):
        stop = min(start + _TIE_CHUNK, m)
        group = np.searchsorted(starts, np.arange(start, stop), side="right") - 1
        end = np.where(group + 1 < groups, starts[np.minimum(group + 1, groups - 1)], m)
        # the group holds sorted positions starts[group] .. end - 1, whose ranks
        # starts[group] + 1 .. end average to (starts[group] + end + 1) / 2
        ranks[order[start:stop]] = (starts[group] + end + 1) / 2.0
    return ranks


def _check_rdm_varies(r, name, scale):
    spread = np.ptp(r)
    if spread <= 64 * np.finfo(np.float64).eps * max(np.max(np.abs(r)), scale):
        raise ValueError(
            f"the RDM of {name} is constant (all {r.size} dissimilarities between its stimuli "
            f"are equal{'' if spread == 0 else ' up to rounding'}), so its correlation with "
            "another RDM is undefined"
        )


def _rdm_vector(r, method, name, scale, bounds=None):
    """A condensed RDM made ready for :func:`compare_rdms`: checked not to be constant, then
    centred and scaled to unit norm (``"pearson"``), its ranks centred and scaled
    (``"spearman"``: ranks with ties averaged), or replaced by those ranks (``"kendall"``,
    which sees only the order and the ties). Correlating two RDMs is then a dot product, so an
    RDM prepared once serves every comparison it is part of.

    For the rank comparisons, values closer than their rounding ``bounds`` (a
    :class:`_RoundingBounds`; None: exact ties only) count as ties (:func:`_tied_ranks`)."""
    _check_rdm_varies(r, name, scale)
    if method != "pearson":
        r = _tied_ranks(r, bounds)
        if method == "kendall":
            return r
    u = r - r.mean()
    u /= np.sqrt(np.dot(u, u))
    return u


def _compare_vectors(u, v, method):
    """The correlation of two RDMs prepared by :func:`_rdm_vector`."""
    if method == "kendall":
        return float(stats.kendalltau(u, v).statistic)
    # a correlation, in [-1, 1] but for rounding (1.0000000000000002 for equal RDMs)
    return float(np.clip(np.dot(u, v), -1.0, 1.0))


def compare_rdms(a, b, method="spearman", names=("X", "Y"), scale=0.0, tie_tol=0.0):
    """Correlation between two condensed RDMs, with rsatoolbox's ``compare`` conventions.

    - ``"spearman"``: Pearson correlation of the ranks, ties given their average rank
      (rsatoolbox ``'spearman'``, scipy ``spearmanr``);
    - ``"pearson"``: Pearson correlation of the dissimilarities (rsatoolbox ``'corr'``);
    - ``"kendall"``: Kendall's tau-b, which corrects for ties in either RDM (rsatoolbox
      ``'kendall'``, an alias of its ``'tau-b'``; scipy ``kendalltau``), O(m log m) in the
      number m of pairs.

    Ties: by default only exactly equal dissimilarities tie (rsatoolbox's and scipy's rule).
    With ``tie_tol > 0`` the two rank comparisons also count as tied neighbouring sorted
    values at most ``2 tie_tol`` apart (``tie_tol`` bounds each value's rounding error), so
    that dissimilarities equal in exact arithmetic but rounded differently still tie.
    :class:`RSA` computes such a bound for every entry from the data (``_RoundingBounds``).

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
    tie_tol : float, default 0.0
        The rounding error each dissimilarity may carry, for the ties of ``"spearman"`` and
        ``"kendall"`` (ignored by ``"pearson"``, which rounding moves by rounding amounts).

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
    if isinstance(tie_tol, bool) or not (
            isinstance(tie_tol, numbers.Real) and 0.0 <= tie_tol < np.inf):
        raise ValueError(f"tie_tol must be a finite number >= 0, got {tie_tol!r}")
    bounds = _UniformBound(tie_tol) if tie_tol > 0 else None
    a, b = (np.asarray(v, dtype=np.float64) for v in (a, b))
    return _compare_vectors(_rdm_vector(a, method, names[0], scale, bounds),
                            _rdm_vector(b, method, names[1], scale, bounds), method)


def _check_compare(method, methods=COMPARE_METHODS):
    if method not in methods:
        raise ValueError(
            f"compare must be one of {methods} (rsatoolbox's 'corr' is 'pearson'), "
            f"got {method!r}"
        )


def _soft_rank_rdm(r, name, scale, temperature):
    """A condensed RDM prepared for ``compare="soft_spearman"``: checked not to be constant,
    standardised to unit RMS, multiplied by :func:`~simmetrics.metrics.rsa_gradient.
    soft_rank_scale`, soft-ranked (:func:`~simmetrics.metrics.rsa_gradient.soft_ranks`), then
    centred and scaled to unit norm, so that the comparison is a dot product."""
    _check_rdm_varies(r, name, scale)
    u = r - r.mean()
    u /= np.sqrt(np.dot(u, u) / u.size)
    z = u * soft_rank_scale(u.size, temperature)
    v = soft_ranks(z, soft_rank_plan(z), NUMPY)
    v = v - v.mean()
    v /= np.sqrt(np.dot(v, v))
    return v


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
      or ``"kendall"`` (tau-b, rsatoolbox ``'kendall'``);
    - ``compare="soft_spearman"``: a smooth relaxation of Spearman's correlation, **not** the
      exact Spearman value: the Pearson correlation of the *soft ranks* of the two RDMs
      (Blondel et al. 2020; :mod:`simmetrics.metrics.rsa_gradient`), the Euclidean projection
      onto the permutahedron of (1..m) of each RDM standardised to unit RMS and multiplied by
      sqrt((m^2 - 1) / 12) / ``temperature``. As the temperature goes to 0 it becomes the
      Spearman correlation (on RDMs without ties); above a finite temperature (every entry in
      one pooled block) it is exactly the Pearson correlation of the RDMs. Use it as a
      differentiable training objective where Spearman RSA is the target.

    Gradients (:mod:`simmetrics.functional`): ``"pearson"`` and ``"soft_spearman"`` are
    differentiable for both RDMs (the soft ranks' sort order and pooled blocks held fixed,
    which is exact wherever they are locally constant: almost everywhere); the correlation
    RDM not at a stimulus pattern constant across neurons (an error anyway), the Euclidean
    RDM everywhere. ``"spearman"`` and ``"kendall"`` are functions of the RDMs' ranks, which
    are piecewise constant in the data: they have no gradient (a clear error).

    A **similarity** in [-1, 1]; not a metric. X and Y may have different widths.

    Invariances, measured: with the Euclidean RDM, to orthogonal maps (and so signed and plain
    permutations) of the neurons, to translation and to isotropic scaling, for every
    ``compare`` (scaling multiplies the RDM by a constant, which no correlation sees). With the
    correlation RDM only to permutations and isotropic scaling: each stimulus pattern is centred
    across its neurons, and a rotation, a sign flip of some neurons or a translation by a
    non-constant vector changes those row means, so the RDM changes.

    Ties: dissimilarities that are equal in exact arithmetic (binary, sparse, quantised
    activations, duplicated stimuli) are rounded differently by a rescaled, rotated or
    translated copy of the data, so ``"spearman"`` and ``"kendall"`` count as tied two
    dissimilarities that differ by no more than their rounding error: neighbouring sorted
    values at most ``b_a + b_b`` apart, with (d neurons, eps the float64 machine epsilon)
    ``b_ij = 2 (d + 2) eps (2 sqrt(r_ij / d) (||x_i|| + ||x_j||) + r_ij)`` for the Euclidean
    RDM r and ``b_ij = 4 eps (d + kappa_i + kappa_j)``, ``kappa_i = ||x_i|| / ||x_i -
    mean(x_i)||``, for the correlation RDM: bounds on the rounding of the input and of the
    RDM's arithmetic (``_RoundingBounds``). Tied values get their average rank, as in
    rsatoolbox and scipy, whose values are reproduced on data without such near-ties.
    ``"pearson"`` needs no rule (rounding moves it by rounding amounts).

    Memory and time are O(n^2) in the number n of stimuli: the condensed RDMs (and for
    ``"spearman"`` and ``"kendall"`` their ranks) hold m = n (n - 1) / 2 float64 values each,
    400 MB per vector at n = 10,000 (50 million pairs); ``fit_score`` holds about 3 such
    vectors at once for ``"pearson"``, 6 for ``"spearman"`` and 7.5 for ``"kendall"``.
    ``"kendall"`` is O(m log m) in the m pairs. Before starting, that peak for both inputs
    (for :func:`simmetrics.pairwise`, for all of them) is checked against the memory budget
    (:func:`simmetrics.set_memory_budget`): a ``MemoryBudgetError`` names the rows and the
    alternatives.

    Parameters
    ----------
    rdm : {"correlation", "euclidean"}, default "correlation"
        The dissimilarity between two stimulus patterns.
    compare : {"spearman", "pearson", "kendall", "soft_spearman"}, default "spearman"
        The correlation between the two RDMs.
    temperature : float > 0, default 1.0
        The temperature of ``compare="soft_spearman"``'s soft ranks, relative to the spread of
        the ranks (smaller: closer to Spearman, with gradients concentrated on fewer pairs;
        larger: closer to Pearson). Ignored by the other comparisons.
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

    _parameter_constraints = {
        "rdm": [Options(RDM_METHODS)],
        "compare": [Options(RSA_COMPARE_METHODS, hint="rsatoolbox's 'corr' is 'pearson'")],
        "temperature": [Interval(Real, 0.0, None, closed="neither")],
    }

    def __init__(self, rdm="correlation", compare="spearman", temperature=1.0, layout=None):
        self.rdm = rdm
        self.compare = compare
        self.temperature = temperature
        self.layout = layout

    def _check_params(self):
        if self.rdm not in RDM_METHODS:
            raise ValueError(f"rdm must be one of {RDM_METHODS}, got {self.rdm!r}")
        _check_compare(self.compare, RSA_COMPARE_METHODS)

    # -- gradients (simmetrics.functional) ----------------------------------------------------
    @property
    def _gradient_formula(self):
        """The formula of :func:`simmetrics.metrics.rsa_gradient.rsa_formula` for the
        comparisons that have one ("pearson", "soft_spearman"), else None."""
        if self.compare in ("pearson", "soft_spearman"):
            return self._rsa_gradient_formula
        return None

    def _rsa_gradient_formula(self, X, Y, nx):
        return rsa_formula(X, Y, self.rdm, self.compare, float(self.temperature), nx)

    @property
    def _gradient_note(self):
        return (f"compare={self.compare!r} is a function of the ranks of the two RDMs, which "
                "are piecewise constant in the data (its gradient is 0 almost everywhere and "
                "undefined where two dissimilarities swap); use compare='soft_spearman' (a "
                "soft-rank relaxation of Spearman with a temperature) or compare='pearson' "
                "for a differentiable RSA")

    def _fit(self, X, Y):
        self._check_params()

    # -- memory: counted in vectors of the m = n (n - 1) / 2 pairs of stimuli, measured with
    # tracemalloc: the peak of preparing one representation (its RDM and ranking) and what the
    # pair step holds besides the two states (Kendall's tau: sorts and tie counts)
    _PREPARE_VECTORS = {"pearson": 2.1, "spearman": 5.0, "kendall": 5.0, "soft_spearman": 7.0}
    _PAIR_VECTORS = {"pearson": 0.0, "spearman": 0.0, "kendall": 5.5, "soft_spearman": 0.0}

    def _memory_bytes(self, n, d, count, jobs=1):
        """Peak bytes with ``count`` prepared representations of n stimuli and d neurons held
        and ``jobs`` steps running at once, and what that counts."""
        m = n * (n - 1) // 2
        extra = max(self._PREPARE_VECTORS.get(self.compare, 7.0) - 1.0,
                    self._PAIR_VECTORS.get(self.compare, 8.0))
        vectors = count + jobs * extra
        # and, per job, copies of the input and the temporaries of one chunk of the ranking
        nbytes = int(8 * m * vectors) + 8 * jobs * (4 * n * d + 4 * min(m, _TIE_CHUNK))
        return nbytes, (f"about {vectors:g} float64 vectors of its {m:,} pairs of stimuli at "
                        "once (the RDMs and their ranks)")

    # per representation (simmetrics.pairwise): its RDM, ready to be correlated
    def _partial_fit(self, A, name):
        self._check_params()
        # The RDM is exactly proportional to the one of the rescaled data, and every
        # comparison ignores a positive factor, so rescale first to keep squares in range.
        A = _pow2_rescale(A)
        r = rdm(A, self.rdm, name)
        if self.compare == "soft_spearman":
            return _soft_rank_rdm(r, name, float(self.rdm == "correlation"),
                                  float(self.temperature))
        # the rank comparisons count dissimilarities within rounding of each other as ties
        bounds = None if self.compare == "pearson" else _RoundingBounds(A, self.rdm, r)
        return _rdm_vector(r, self.compare, name, float(self.rdm == "correlation"), bounds)

    def _finalize_fit_score(self, a, b):
        return _compare_vectors(a, b, "pearson" if self.compare == "soft_spearman"
                                else self.compare)
