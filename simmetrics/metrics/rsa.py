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

import numpy as np

from .._core.linalg import pow2_rescale as _pow2_rescale
from .._core.backend import NUMPY
from .._core.params import Interval, Options, Real
from .._core.registry import register
from .._core.validation import as_float_array, check_representation
from ..base import Metric, param_dependent
from .rdm import NOISE_ESTIMATES, RDM_METHODS, rdm
from .rdm_compare import (COMPARE_METHODS, RANK_METHODS, TIE_CHUNK, check_compare,
                          check_rdm_varies, compare_prepared, compare_rdms, prepare_rdm)
from .rsa_gradient import rsa_formula, soft_rank_plan, soft_rank_scale, soft_ranks

__all__ = ["RSA", "rdm", "compare_rdms"]

def _rsa_invariances(self):
    """The groups RSA is invariant to, for its ``rdm``, ``noise`` and ``compare``."""
    if self.rdm in ("euclidean", "crossnobis") or (self.rdm == "mahalanobis"
                                                   and self.noise is None):
        groups = _EUCLIDEAN_RSA_INVARIANCES
        if self.rdm == "crossnobis" and self.noise is not None:
            # a fixed precision sees rotations; the diagonal-shrinkage estimate is equivariant
            # to signed permutations and scales as 1 / c^2 with the data
            groups = (frozenset({"translation", "isotropic_scaling"})
                      if not isinstance(self.noise, str) else
                      frozenset({"signed_permutation", "permutation", "isotropic_scaling",
                                 "translation"}))
    elif self.rdm == "mahalanobis":
        groups = frozenset({"translation", "isotropic_scaling"})
    elif self.rdm == "correlation":
        groups = _CORRELATION_RSA_INVARIANCES
    elif self.rdm == "poisson":
        groups = frozenset({"permutation"})  # the prior and the logarithm see every scale
    else:
        return frozenset()
    if self.compare == "bures_metric":
        return groups - {"isotropic_scaling"}  # scales with the RDM
    return groups


def _indefinite_bures(self):
    return self.compare in ("bures", "bures_metric") and self.rdm in ("poisson", "crossnobis")


def _rsa_bounds(self):
    inf = float("inf")
    if self.compare == "bures_metric":
        return (-inf, inf) if _indefinite_bures(self) else (0.0, inf)
    if self.compare == "bures":
        return (0.0, inf) if _indefinite_bures(self) else (0.0, 1.0)
    return (-1.0, 1.0)


#: the comparisons with a gradient formula (rsa_gradient.rsa_formula)
_DIFFERENTIABLE = ("pearson", "soft_spearman", "cosine", "cosine_cov", "corr_cov")

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
      differences rounds by at most ``(d + 2) eps ||x_i - x_j||^2``; doubled for safety (the
      RDM is computed from explicit differences, :func:`rdm`; for "mahalanobis" the rows are
      those after the precision's factor).
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
        self.r, self.euclidean = r, method != "correlation"
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



def _soft_rank_rdm(r, name, scale, temperature):
    """A condensed RDM prepared for ``compare="soft_spearman"``: checked not to be constant,
    standardised to unit RMS, multiplied by :func:`~simmetrics.metrics.rsa_gradient.
    soft_rank_scale`, soft-ranked (:func:`~simmetrics.metrics.rsa_gradient.soft_ranks`), then
    centred and scaled to unit norm, so that the comparison is a dot product."""
    check_rdm_varies(r, name, scale)
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

    - ``rdm``: ``"correlation"`` (``1 - pearson(x_i, x_j)``), ``"euclidean"``
      (``||x_i - x_j||^2 / n_neurons``, rsatoolbox's squared form), ``"mahalanobis"`` (with
      the precision ``noise``), ``"crossnobis"`` (cross-validated over runs: each input is
      an (n_stimuli, n_runs, n_neurons) array of repeated measurements, ``noise`` None,
      ``"shrinkage_diag"`` or a precision matrix), ``"poisson"`` (symmetrised KL divergence,
      rsatoolbox's prior); definitions in :func:`simmetrics.rdm`;
    - ``compare``: ``"spearman"`` (ranks with average ties), ``"pearson"`` (rsatoolbox
      ``'corr'``), ``"kendall"`` (tau-b), ``"rho_a"`` and ``"tau_a"`` (rsatoolbox ``'rho-a'``,
      ``'tau-a'``), ``"cosine"``, the whitened ``"cosine_cov"`` and ``"corr_cov"``
      (Diedrichsen et al. 2021), ``"bures"`` and ``"bures_metric"`` (a squared distance);
      definitions in :mod:`simmetrics.metrics.rdm_compare`;
    - ``compare="soft_spearman"``: a smooth relaxation of Spearman's correlation, **not** the
      exact Spearman value: the Pearson correlation of the *soft ranks* of the two RDMs
      (Blondel et al. 2020; :mod:`simmetrics.metrics.rsa_gradient`), the Euclidean projection
      onto the permutahedron of (1..m) of each RDM standardised to unit RMS and multiplied by
      sqrt((m^2 - 1) / 12) / ``temperature``. As the temperature goes to 0 it becomes the
      Spearman correlation (on RDMs without ties); above a finite temperature (every entry in
      one pooled block) it is exactly the Pearson correlation of the RDMs. Use it as a
      differentiable training objective where Spearman RSA is the target.

    Gradients (:mod:`simmetrics.functional`): ``"pearson"``, ``"cosine"``, ``"cosine_cov"``,
    ``"corr_cov"`` and ``"soft_spearman"`` are differentiable for the correlation, Euclidean,
    Mahalanobis and Poisson RDMs (the soft ranks' sort order and pooled blocks held fixed,
    which is exact wherever they are locally constant: almost everywhere); the correlation
    RDM not at a stimulus pattern constant across neurons (an error anyway), the Euclidean
    RDM everywhere. ``"spearman"``, ``"kendall"``, ``"rho_a"`` and ``"tau_a"`` are functions
    of the RDMs' ranks, which are piecewise constant in the data: they have no gradient (a
    clear error); nor, yet, have ``"bures"``, ``"bures_metric"`` and ``rdm="crossnobis"``.

    A **similarity** in [-1, 1] (``"bures"``: [0, 1]); ``compare="bures_metric"`` is a
    **distance** in [0, inf). Not a metric. X and Y may have different widths.

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

    kind = param_dependent(lambda self: "distance" if self.compare == "bures_metric"
                           else "similarity")
    bounds = param_dependent(_rsa_bounds)
    is_metric = False
    invariances = param_dependent(_rsa_invariances)
    input_repeats = param_dependent(lambda self: self.rdm == "crossnobis")
    min_samples = 3
    same_width = False
    # rsatoolbox's Bures comparison of indefinite kernels drops the first one's negative part
    symmetric = param_dependent(lambda self: not _indefinite_bures(self))
    reference = ("Kriegeskorte, Mur, Bandettini 2008, Front. Syst. Neurosci.; Walther et al. "
                 "2016, NeuroImage (crossnobis); Diedrichsen et al. 2021, PLoS Comput. Biol. "
                 "(whitened comparisons); rsatoolbox")

    _parameter_constraints = {
        "rdm": [Options(RDM_METHODS)],
        "compare": [Options(RSA_COMPARE_METHODS, hint="rsatoolbox's 'corr' is 'pearson', "
                            "'rho-a' is 'rho_a', 'tau-a' is 'tau_a'")],
        "temperature": [Interval(Real, 0.0, None, closed="neither")],
        # an array first: Options compares with ``in``, which an array cannot answer
        "noise": [None, np.ndarray, Options(NOISE_ESTIMATES)],
    }

    def __init__(self, rdm="correlation", compare="spearman", temperature=1.0, noise=None,
                 layout=None):
        self.rdm = rdm
        self.compare = compare
        self.temperature = temperature
        self.noise = noise
        self.layout = layout

    def _check_params(self):
        if self.rdm not in RDM_METHODS:
            raise ValueError(f"rdm must be one of {RDM_METHODS}, got {self.rdm!r}")
        check_compare(self.compare, RSA_COMPARE_METHODS)
        if self.noise is not None and self.rdm not in ("mahalanobis", "crossnobis"):
            raise ValueError(f"noise is the noise precision of rdm='mahalanobis' or "
                             f"'crossnobis'; rdm={self.rdm!r} takes none")
        if isinstance(self.noise, str) and self.rdm != "crossnobis":
            raise ValueError(f"noise={self.noise!r} is estimated from repeated measurements: "
                             "only rdm='crossnobis' takes it (rdm='mahalanobis' takes a "
                             "(d, d) precision matrix)")

    def _validate_one(self, A, name):
        if self.rdm != "crossnobis":
            return super()._validate_one(A, name)
        B = as_float_array(A, name)
        if B.ndim != 3:
            raise ValueError(
                f"{name} must be 3-D (n_stimuli, n_runs, n_neurons) for rdm='crossnobis' "
                f"(repeated measurements, cross-validated over runs), got shape {B.shape}")
        n, runs, d = B.shape
        check_representation(B.reshape(n * runs, d), name, min_samples=0)  # empty, NaN, inf
        if runs < 2:
            raise ValueError(f"{name} has {runs} run (axis 1); rdm='crossnobis' needs at "
                             "least 2")
        if n < self.min_samples:
            raise ValueError(f"{name} has {n} samples, but this estimator needs at least "
                             f"{self.min_samples}")
        self._check_rows(n, runs * d)
        return B

    # -- gradients (simmetrics.functional) ----------------------------------------------------
    @property
    def _gradient_formula(self):
        """The formula of :func:`simmetrics.metrics.rsa_gradient.rsa_formula` for the
        comparisons that have one, else None."""
        if self.compare in _DIFFERENTIABLE and self.rdm != "crossnobis":
            return self._rsa_gradient_formula
        return None

    def _rsa_gradient_formula(self, X, Y, nx):
        return rsa_formula(X, Y, self.rdm, self.compare, float(self.temperature), nx,
                           noise=self.noise)

    @property
    def _gradient_note(self):
        if self.rdm == "crossnobis":
            return ("no gradient formula is written yet for rdm='crossnobis' (inputs of "
                    "repeated measurements); train on the run means with rdm='euclidean' or "
                    "'mahalanobis', or compute the value under torch.no_grad()")
        if self.compare in ("bures", "bures_metric"):
            return (f"no gradient formula is written yet for compare={self.compare!r} (square "
                    "roots of eigenvalues of the n x n kernels, singular where the kernels are "
                    "rank-deficient); use compare='cosine_cov' (the whitened cosine of the "
                    "same kernels) for a differentiable RSA")
        return (f"compare={self.compare!r} is a function of the ranks of the two RDMs, which "
                "are piecewise constant in the data (its gradient is 0 almost everywhere and "
                "undefined where two dissimilarities swap); use compare='soft_spearman' (a "
                "soft-rank relaxation of Spearman with a temperature) or compare='pearson', "
                "'cosine', 'cosine_cov' or 'corr_cov' for a differentiable RSA")

    def _fit(self, X, Y):
        self._check_params()

    # -- memory: counted in vectors of the m = n (n - 1) / 2 pairs of stimuli, measured with
    # tracemalloc: the peak of preparing one representation (its RDM and ranking) and what the
    # pair step holds besides the two states (Kendall's tau: sorts and tie counts); the Bures
    # comparisons hold n x n matrices (a kernel, its eigenvectors, the factor: 2 m values each)
    _PREPARE_VECTORS = {"pearson": 3.1, "spearman": 5.0, "kendall": 5.0, "soft_spearman": 7.0,
                        "cosine": 3.1, "cosine_cov": 3.1, "corr_cov": 3.1, "rho_a": 5.0,
                        "tau_a": 6.0, "bures": 9.0, "bures_metric": 9.0}
    _PAIR_VECTORS = {"pearson": 0.0, "spearman": 0.0, "kendall": 5.5, "soft_spearman": 0.0,
                     "tau_a": 5.5, "bures": 6.0, "bures_metric": 6.0}
    #: the size of one prepared state, in vectors of m values
    _STATE_VECTORS = {"bures": 2.0, "bures_metric": 2.0}

    def _memory_bytes(self, n, d, count, jobs=1):
        """Peak bytes with ``count`` prepared representations of n stimuli and d neurons held
        and ``jobs`` steps running at once, and what that counts."""
        m = n * (n - 1) // 2
        extra = max(self._PREPARE_VECTORS.get(self.compare, 7.0) - 1.0,
                    self._PAIR_VECTORS.get(self.compare, 0.0))
        vectors = count * self._STATE_VECTORS.get(self.compare, 1.0) + jobs * extra
        # and, per job, copies of the input, one block of the RDM (the product routes; the
        # Euclidean and Mahalanobis RDMs are scipy's pdist, with none) and one chunk of the
        # ranking
        block = 0 if self.rdm in ("euclidean", "mahalanobis") else 2**22
        nbytes = int(8 * m * vectors) + 8 * jobs * (4 * n * d + block + 4 * min(m, TIE_CHUNK))
        return nbytes, (f"about {vectors:g} float64 vectors of its {m:,} pairs of stimuli at "
                        "once (the RDMs and their ranks or kernels)")

    # per representation (simmetrics.pairwise): its RDM, ready to be compared
    def _partial_fit(self, A, name):
        self._check_params()
        if self.rdm != "poisson" and self.compare != "bures_metric":
            # The RDM is exactly proportional to the one of the rescaled data, and these
            # comparisons ignore a positive factor, so rescale first to keep squares in range.
            A = _pow2_rescale(A)
        noise = self.noise
        if isinstance(noise, np.ndarray) and self.rdm == "mahalanobis" and (
                noise.shape != (A.shape[1], A.shape[1])):
            raise ValueError(f"noise must be a ({A.shape[1]}, {A.shape[1]}) precision matrix "
                             f"for {name} ({A.shape[1]} neurons), got shape {noise.shape}")
        r = rdm(A, self.rdm, noise=noise, name=name)
        scale = float(self.rdm == "correlation")
        if self.compare == "soft_spearman":
            return _soft_rank_rdm(r, name, scale, float(self.temperature))
        # the rank comparisons count dissimilarities within rounding of each other as ties
        bounds = None
        if self.compare in RANK_METHODS and self.rdm in ("correlation", "euclidean",
                                                         "mahalanobis"):
            if noise is not None:
                A = (A - A.mean(axis=0)) @ np.linalg.cholesky(np.asarray(noise, float))
            bounds = _RoundingBounds(A, self.rdm, r)
        return prepare_rdm(r, self.compare, name, scale, bounds)

    def _finalize_fit_score(self, a, b):
        if self.compare == "soft_spearman":
            return compare_prepared((a,), (b,), "pearson")
        return compare_prepared(a, b, self.compare)
