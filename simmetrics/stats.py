"""Statistical inference for any registered metric: a permutation test of "X and Y are related"
and bootstrap confidence intervals over stimuli.

Both resample along the first axis of the inputs, which always indexes stimuli (also for conv
and token layouts, where a stimulus spans several rows once flattened), and refit the metric on
every resample, so the flexibility of alignment metrics is part of the null distribution and of
the interval. Random numbers come only from the ``random_state`` given: one child seed per
resample is drawn from it up front, so results are bit-identical for a fixed ``random_state``
whatever ``n_jobs`` is, and numpy's global random state is never touched.
"""

from dataclasses import dataclass, field
import numbers

import numpy as np
from sklearn.base import clone

from ._parallel import parallel_map
from ._validation import as_float_array, check_random_state
from .invariance import _as_metric

__all__ = ["PermutationTestResult", "BootstrapResult", "permutation_test", "bootstrap_ci"]

ALTERNATIVES = ("auto", "greater", "less", "two-sided")

# Null values within this relative distance of the observed value count as ties (as extreme):
# a permutation that reproduces the observed pairing must not look less extreme by rounding.
_TIE_RTOL = 100 * np.finfo(float).eps


@dataclass(frozen=True)
class PermutationTestResult:
    """Outcome of :func:`permutation_test`.

    Attributes
    ----------
    statistic : float
        The metric on the data as given.
    pvalue : float
        (k + 1) / (n_permutations + 1), k the number of null values at least as extreme.
    null_distribution : numpy.ndarray, shape (n_permutations,)
        The metric on each shuffled pairing, in the order drawn.
    alternative : {"greater", "less", "two-sided"}
        The direction tested ("auto" resolved).
    n_permutations : int
        The length of ``null_distribution``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(30, 3))
    >>> permutation_test("linear_cka", X, X ** 3, n_permutations=9, random_state=0)
    PermutationTestResult(statistic=0.72..., pvalue=0.1, alternative='greater')
    """

    statistic: float
    pvalue: float
    null_distribution: np.ndarray = field(repr=False)
    alternative: str

    @property
    def n_permutations(self):
        return len(self.null_distribution)


@dataclass(frozen=True)
class BootstrapResult:
    """Outcome of :func:`bootstrap_ci`.

    Attributes
    ----------
    statistic : float
        The metric on the data as given.
    low, high : float
        The percentile interval.
    confidence : float
    bootstrap_distribution : numpy.ndarray, shape (n_bootstraps,)
        The metric on each resample, in the order drawn.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(30, 3))
    >>> res = bootstrap_ci("linear_cka", X, X ** 3, n_bootstraps=50, random_state=0)
    >>> res.confidence, len(res.bootstrap_distribution), bool(res.low < res.high)
    (0.95, 50, True)
    """

    statistic: float
    low: float
    high: float
    confidence: float
    bootstrap_distribution: np.ndarray = field(repr=False)

    @property
    def confidence_interval(self):
        """``(low, high)``."""
        return (self.low, self.high)

    @property
    def standard_error(self):
        """Standard deviation of the bootstrap distribution."""
        return float(np.std(self.bootstrap_distribution, ddof=1))


def _check_count(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _observed(metric, X, Y):
    """The metric on (X, Y), which also validates them, and X, Y as float arrays."""
    X = as_float_array(X, "X")
    Y = as_float_array(Y, "Y")
    statistic = clone(metric).fit_score(X, Y)
    if X.shape[0] != Y.shape[0]:  # possible with a layout: rows are stimuli x positions
        raise ValueError(
            f"X and Y must hold the same stimuli (first axis): X has {X.shape[0]}, Y has "
            f"{Y.shape[0]}"
        )
    return statistic, X, Y


def _seeds(random_state, count):
    rng = check_random_state(random_state)
    return rng.integers(0, 2**63 - 1, size=count, dtype=np.int64)


def _chunks(seeds):
    # A few chunks per worker keeps joblib's per-task overhead small and the progress bar
    # moving; the split only groups the seeds, so it never changes a result.
    n_chunks = min(len(seeds), 64)
    return [c for c in np.array_split(seeds, n_chunks) if len(c)]


def _resampled_scores(metric, X, Y, seeds, offset, mode):
    n = X.shape[0]
    out = np.empty(len(seeds))
    for k, seed in enumerate(seeds):
        rng = np.random.default_rng(int(seed))
        try:
            if mode == "permute":
                out[k] = clone(metric).fit_score(X, Y[rng.permutation(n)])
            else:
                idx = rng.integers(0, n, size=n)
                out[k] = clone(metric).fit_score(X[idx], Y[idx])
        except (ValueError, TypeError) as exc:
            what = "permutation" if mode == "permute" else "bootstrap resample"
            raise type(exc)(f"{what} {offset + k}: {exc}") from exc
    return out


def _run(metric, X, Y, seeds, mode, n_jobs, progress, desc):
    chunks = _chunks(seeds)
    offsets = np.cumsum([0] + [len(c) for c in chunks[:-1]])
    parts = parallel_map(
        _resampled_scores,
        [(metric, X, Y, c, int(o), mode) for c, o in zip(chunks, offsets)],
        n_jobs=n_jobs,
        progress=progress,
        desc=desc,
        sizes=[len(c) for c in chunks],
    )
    return np.concatenate(parts)


def _resolve_alternative(alternative, metric):
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    if alternative == "auto":
        return "greater" if metric.kind == "similarity" else "less"
    return alternative


def _pvalue(statistic, null, alternative):
    tol = _TIE_RTOL * max(1.0, abs(statistic))
    n = len(null)
    p_greater = (np.count_nonzero(null >= statistic - tol) + 1) / (n + 1)
    p_less = (np.count_nonzero(null <= statistic + tol) + 1) / (n + 1)
    if alternative == "greater":
        return float(p_greater)
    if alternative == "less":
        return float(p_less)
    return float(min(1.0, 2 * min(p_greater, p_less)))


def permutation_test(metric, X, Y, n_permutations=1000, random_state=None, n_jobs=None,
                     alternative="auto", progress=False):
    """Permutation test of the null hypothesis that X and Y are unrelated.

    The rows (stimuli) of Y are shuffled, which breaks the correspondence between the two
    representations while keeping each one's internal structure; the metric is refitted and
    scored on every shuffle. The p-value is

        p = (k + 1) / (n_permutations + 1)

    with k the number of shuffles whose value is at least as extreme as the observed one (the
    +1 counts the observed pairing itself, so p is never 0 and the test is exact, Phipson &
    Smyth 2010). "As extreme" follows the metric's ``kind``: larger for a similarity, smaller
    for a distance.

    Parameters
    ----------
    metric : str or Metric
        A registered name or a metric instance (cloned, never modified).
    X, Y : array-like or torch.Tensor, shape (n_samples, ...)
        Representations of the same stimuli; more than two axes need the metric's ``layout``.
    n_permutations : int, default 1000
    random_state : None, int or numpy.random.Generator
        Source of the shuffles; a fixed value gives bit-identical results for any ``n_jobs``.
    n_jobs : int, optional
        Passed to ``joblib.Parallel``.
    alternative : {"auto", "greater", "less", "two-sided"}, default "auto"
        "auto" is "greater" for similarities and "less" for distances; "two-sided" doubles the
        smaller one-sided p-value (capped at 1).
    progress : bool, default False
        Draw a progress bar on stderr.

    Returns
    -------
    PermutationTestResult

    Notes
    -----
    The test assumes the stimuli are exchangeable. With a conv or token ``layout`` whole
    stimuli are shuffled (the first axis), never the positions within one. The smallest
    attainable p-value is 1 / (n_permutations + 1).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 5))
    >>> related = permutation_test("linear_cka", X, X @ rng.normal(size=(5, 4)),
    ...                            n_permutations=99, random_state=0)
    >>> related.pvalue
    0.01
    >>> unrelated = permutation_test("procrustes", X, rng.normal(size=(60, 5)),
    ...                              n_permutations=99, random_state=0)
    >>> unrelated.alternative, unrelated.pvalue > 0.05
    ('less', True)
    """
    metric = _as_metric(metric)
    n_permutations = _check_count(n_permutations, "n_permutations")
    alternative = _resolve_alternative(alternative, metric)
    statistic, X, Y = _observed(metric, X, Y)
    seeds = _seeds(random_state, n_permutations)
    null = _run(metric, X, Y, seeds, "permute", n_jobs, progress,
                f"{type(metric).__name__} permutation test")
    return PermutationTestResult(statistic, _pvalue(statistic, null, alternative), null,
                                 alternative)


def bootstrap_ci(metric, X, Y, n_bootstraps=1000, confidence=0.95, random_state=None,
                 n_jobs=None, progress=False):
    """Percentile bootstrap confidence interval of a metric, resampling stimuli.

    Each resample draws n stimuli (rows of the first axis) with replacement, the same ones for
    X and Y, refits the metric and scores it; the interval runs from the (1 - confidence) / 2
    to the (1 + confidence) / 2 quantile of those values (numpy's linear interpolation).

    Parameters
    ----------
    metric : str or Metric
        A registered name or a metric instance (cloned, never modified).
    X, Y : array-like or torch.Tensor, shape (n_samples, ...)
        Representations of the same stimuli.
    n_bootstraps : int, default 1000
    confidence : float in (0, 1), default 0.95
    random_state : None, int or numpy.random.Generator
        Source of the resamples; a fixed value gives bit-identical results for any ``n_jobs``.
    n_jobs : int, optional
        Passed to ``joblib.Parallel``.
    progress : bool, default False
        Draw a progress bar on stderr.

    Returns
    -------
    BootstrapResult

    Notes
    -----
    What the interval means: how much the *estimate computed from n stimuli* varies when the
    stimulus set is redrawn from the population the stimuli came from. It covers the population
    value only if the estimator is (nearly) unbiased at this n.

    Caveat for biased estimators. Resampling with replacement repeats stimuli: a resample holds
    only about 63% distinct stimuli. Estimators whose bias depends on the number of distinct
    stimuli shift under this. Biased (HSIC-based) CKA, linear or kernel, is inflated by
    duplicated rows, most strongly when the widths are large relative to n, so its bootstrap
    distribution sits above the full-data value and the interval can miss it; the debiased
    estimator's U-statistic corrects the bias for *distinct* samples only and treats duplicated
    rows as independent draws, so it is affected too. The same holds for alignment metrics
    (CCA, Procrustes, shape metrics) whose fitted alignment overfits more with fewer distinct
    stimuli. Read such intervals as the sampling variability of the estimator at this n, use
    many stimuli relative to the widths, and compare intervals only between estimates made at
    the same n; ``bootstrap_distribution.mean() - statistic`` shows the size of the shift.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 4))
    >>> Y = X @ rng.normal(size=(4, 4)) + rng.normal(size=(200, 4))
    >>> res = bootstrap_ci("linear_cka", X, Y, n_bootstraps=200, random_state=0)
    >>> bool(res.low < res.statistic < res.high), res.confidence
    (True, 0.95)
    """
    metric = _as_metric(metric)
    n_bootstraps = _check_count(n_bootstraps, "n_bootstraps")
    if (isinstance(confidence, bool) or not isinstance(confidence, numbers.Real)
            or not 0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be a number strictly between 0 and 1, got "
                         f"{confidence!r}")
    statistic, X, Y = _observed(metric, X, Y)
    seeds = _seeds(random_state, n_bootstraps)
    dist = _run(metric, X, Y, seeds, "bootstrap", n_jobs, progress,
                f"{type(metric).__name__} bootstrap")
    alpha = 1.0 - float(confidence)
    low, high = np.quantile(dist, [alpha / 2, 1 - alpha / 2])
    return BootstrapResult(statistic, float(low), float(high), float(confidence), dist)
