"""Statistical inference for any registered metric: a permutation test of "X and Y are related"
and confidence intervals over stimuli (the percentile bootstrap, or subsampling without
replacement for metrics that duplicated stimuli bias).

All resample along the first axis of the inputs, which always indexes stimuli (also for conv
and token layouts, where a stimulus spans several rows once flattened), and refit the metric on
every resample, so the flexibility of alignment metrics is part of the null distribution and of
the interval. Random numbers come only from the ``random_state`` given: one child seed per
resample is drawn from it up front, so results are bit-identical for a fixed ``random_state``
whatever ``n_jobs`` is, and numpy's global random state is never touched.
"""

from dataclasses import dataclass, field
import numbers
import warnings

import numpy as np
from sklearn.base import clone

from ._core.parallel import parallel_map
from ._core.validation import as_float_array, check_random_state
from ._core.registry import as_metric

__all__ = ["PermutationTestResult", "BootstrapResult", "IntervalExcludesEstimateWarning",
           "permutation_test", "bootstrap_ci"]

INTERVAL_METHODS = ("auto", "percentile", "subsample")

#: Metrics whose default interval is "subsample" (see :func:`bootstrap_ci`): every metric that
#: fits an alignment or a projection to the stimuli, so that repeated stimuli change the fit.


class IntervalExcludesEstimateWarning(UserWarning):
    """A confidence interval of :func:`bootstrap_ci` does not contain the estimate itself.

    With the percentile bootstrap this means that the resamples (which repeat stimuli) are
    shifted from the estimate by more than their spread; with subsampling, that the estimate's
    own bias at this number of stimuli exceeds its sampling error. The message gives the shift.

    Examples
    --------
    Turn it into an error where an interval must hold its estimate:

    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", IntervalExcludesEstimateWarning)
    ...     issubclass(IntervalExcludesEstimateWarning, UserWarning)
    True
    """

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
        The interval: percentile (``method="percentile"``) or subsampling
        (``method="subsample"``), see :func:`bootstrap_ci`.
    confidence : float
    bootstrap_distribution : numpy.ndarray, shape (n_bootstraps,)
        The metric on each resample (n stimuli with replacement) or subsample (m distinct
        stimuli), in the order drawn.
    method : {"percentile", "subsample"}
        How the interval was made ("auto" resolved).
    subsample_size : int or None
        m, the stimuli per subsample; None for the percentile bootstrap.
    n_samples : int or None
        n, the stimuli of the data.
    confidence_interval : tuple of float
        ``(low, high)``.
    standard_error : float
        The estimate's standard error: the standard deviation of the resampled values, times
        sqrt(m / (n - m)) for subsamples (whose deviations from the full-data value have
        variance sigma^2 (1/m - 1/n), against sigma^2 / n for the estimate).
    bias : float
        The estimate's bias: ``mean(distribution) - statistic`` for the bootstrap (Efron &
        Tibshirani 1993, eq. 10.2); ``m / (n - m) * (mean(distribution) - statistic)`` for
        subsamples, the delete-d jackknife's estimate with d = n - m (Shao & Wu 1989), exact
        for a bias proportional to 1/n.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(30, 3))
    >>> res = bootstrap_ci("linear_cka", X, X ** 3, n_bootstraps=50, random_state=0)
    >>> res.confidence, len(res.bootstrap_distribution), bool(res.low < res.high), res.method
    (0.95, 50, True, 'percentile')
    >>> bootstrap_ci("procrustes", X, X ** 3, n_bootstraps=50, random_state=0).subsample_size
    15
    """

    statistic: float
    low: float
    high: float
    confidence: float
    bootstrap_distribution: np.ndarray = field(repr=False)
    method: str = "percentile"
    subsample_size: int = None
    n_samples: int = None

    @property
    def confidence_interval(self):
        """``(low, high)``."""
        return (self.low, self.high)

    @property
    def _rate(self):
        """sqrt(m / (n - m)) for subsamples, 1 for the bootstrap."""
        if self.method != "subsample":
            return 1.0
        m, n = self.subsample_size, self.n_samples
        return float(np.sqrt(m / (n - m)))

    @property
    def standard_error(self):
        """Standard error of the estimate (see the class attributes)."""
        return self._rate * float(np.std(self.bootstrap_distribution, ddof=1))

    @property
    def bias(self):
        """Bias of the estimate (see the class attributes)."""
        return self._rate**2 * float(np.mean(self.bootstrap_distribution) - self.statistic)


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


def _resampled_scores(metric, X, Y, seeds, offset, mode, size=None):
    n = X.shape[0]
    out = np.empty(len(seeds))
    for k, seed in enumerate(seeds):
        rng = np.random.default_rng(int(seed))
        try:
            if mode == "permute":
                out[k] = clone(metric).fit_score(X, Y[rng.permutation(n)])
            else:
                if mode == "subsample":  # m distinct stimuli
                    idx = rng.permutation(n)[:size]
                else:
                    idx = rng.integers(0, n, size=n)
                out[k] = clone(metric).fit_score(X[idx], Y[idx])
        except (ValueError, TypeError) as exc:
            what = {"permute": "permutation", "subsample": "subsample"}.get(
                mode, "bootstrap resample")
            raise type(exc)(f"{what} {offset + k}: {exc}") from exc
    return out


def _run(metric, X, Y, seeds, mode, n_jobs, progress, desc, size=None):
    chunks = _chunks(seeds)
    offsets = np.cumsum([0] + [len(c) for c in chunks[:-1]])
    parts = parallel_map(
        _resampled_scores,
        [(metric, X, Y, c, int(o), mode, size) for c, o in zip(chunks, offsets)],
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
    metric = as_metric(metric)
    n_permutations = _check_count(n_permutations, "n_permutations")
    alternative = _resolve_alternative(alternative, metric)
    statistic, X, Y = _observed(metric, X, Y)
    seeds = _seeds(random_state, n_permutations)
    null = _run(metric, X, Y, seeds, "permute", n_jobs, progress,
                f"{type(metric).__name__} permutation test")
    return PermutationTestResult(statistic, _pvalue(statistic, null, alternative), null,
                                 alternative)


def bootstrap_ci(metric, X, Y, n_bootstraps=1000, confidence=0.95, random_state=None,
                 n_jobs=None, progress=False, method="auto", subsample_size=None):
    """Confidence interval of a metric over stimuli: percentile bootstrap or subsampling.

    Two ways to redraw the stimuli (rows of the first axis, the same ones for X and Y); each
    redraw is refitted and scored:

    - ``"percentile"`` (Efron 1979): n stimuli drawn **with** replacement; the interval runs
      from the (1 - confidence) / 2 to the (1 + confidence) / 2 quantile of the values (numpy's
      linear interpolation).
    - ``"subsample"`` (m-out-of-n subsampling, Politis & Romano 1994): m < n **distinct**
      stimuli drawn without replacement (the first m of a random permutation), so every
      subsample is a genuine sample of m stimuli. With theta the estimate, q_lo and q_hi the
      same quantiles of the subsample values and the rate c = sqrt(m / (n - m))::

          [theta - c (q_hi - theta),  theta - c (q_lo - theta)]

      clipped to the metric's ``bounds``. Politis & Romano's rate sqrt(m / n) (the spread of
      an estimate shrinks as 1/sqrt(n)) is corrected here by the finite-population factor
      (1 - m/n)^(-1/2): the deviations theta_m - theta of subsamples drawn without replacement
      have variance sigma^2 (1/m - 1/n), so c (theta_m - theta) has the estimate's variance
      sigma^2 / n for any m (the delete-d jackknife's factor, Shao & Wu 1989). The interval
      reflects the deviations (minus signs), so a bias that grows as fewer stimuli are used is
      taken off instead of added: with the default m = n // 2 (half-sampling, c = 1) a bias
      proportional to 1/n is removed exactly (theta_{n/2} - theta estimates it).

    Parameters
    ----------
    metric : str or Metric
        A registered name or a metric instance (cloned, never modified).
    X, Y : array-like or torch.Tensor, shape (n_samples, ...)
        Representations of the same stimuli.
    n_bootstraps : int, default 1000
        The number of resamples (or subsamples).
    confidence : float in (0, 1), default 0.95
    random_state : None, int or numpy.random.Generator
        Source of the resamples; a fixed value gives bit-identical results for any ``n_jobs``.
    n_jobs : int, optional
        Passed to ``joblib.Parallel``.
    progress : bool, default False
        Draw a progress bar on stderr.
    method : {"auto", "percentile", "subsample"}, default "auto"
        "auto" reads the metric's class attribute ``bootstrap_method`` ("percentile" or
        "subsample"), or "percentile" where it is None. "subsample" is declared by the metrics
        that fit an alignment or a projection to the stimuli, whose fit changes when stimuli
        repeat (every :class:`~simmetrics.AlignmentMetric`: Procrustes, shape metrics,
        permutation and soft matching, intertwiner Procrustes; and the CCA family: CCA, SVCCA,
        PWCCA).
    subsample_size : int, float or None
        m for ``"subsample"``: a count in [2, n - 1], a fraction of n in (0, 1) (rounded
        down), or None for n // 2. Each subsample must hold at least the metric's
        ``min_samples``.

    Returns
    -------
    BootstrapResult
        ``method`` and ``subsample_size`` say how the interval was made.

    Warns
    -----
    IntervalExcludesEstimateWarning
        When the interval does not contain the estimate (beyond rounding). The message gives
        the shift of the resampled values, or the estimated bias.

    Raises
    ------
    ValueError
        A bad ``n_bootstraps``, ``confidence``, ``method`` or ``subsample_size`` (also one that
        is given for the percentile bootstrap, or smaller than the metric's ``min_samples``), a
        resample the metric rejects (named with its index).

    Notes
    -----
    What the intervals mean. The percentile interval shows how much the *estimate computed
    from n stimuli* varies when the stimulus set is redrawn; it covers the population value
    only if the estimator is (nearly) unbiased at this n. The subsampling interval is centred
    on the estimate minus its bias (as subsamples measure it) and targets the population value.

    Why two methods. Resampling with replacement repeats stimuli: a resample holds only about
    63% distinct stimuli. Estimators whose value depends on the number of distinct stimuli
    shift under this. Alignment metrics (Procrustes, shape metrics) and CCA fit their alignment
    to the stimuli and overfit more with fewer of them, so their bootstrap values carry the
    estimator's bias a second time, on the side away from the population value: the
    percentile interval then misses the population value and can exclude the estimate itself.
    Biased (HSIC-based) CKA, linear or kernel, is likewise inflated by duplicated rows, most
    strongly when the widths are large relative to n; debiased CKA's U-statistic is unbiased
    for *distinct* samples only and treats duplicated rows as independent draws, so it is
    affected too; pass ``method="subsample"`` for them. When the estimate's bias exceeds its
    standard error, a valid interval for the population value excludes the estimate: the
    warning then says that the estimate itself is off, and more stimuli relative to the widths
    are the remedy. ``BootstrapResult.bias`` estimates the size of the bias.

    References: Efron 1979, Ann. Statist. 7:1 (bootstrap); Efron & Tibshirani 1993, An
    Introduction to the Bootstrap (percentile interval, bias estimate); Politis & Romano 1994,
    Ann. Statist. 22:2031 (subsampling); Shao & Wu 1989, Ann. Statist. 17:1176 (delete-d
    jackknife).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 4))
    >>> Y = X @ rng.normal(size=(4, 4)) + rng.normal(size=(200, 4))
    >>> res = bootstrap_ci("linear_cka", X, Y, n_bootstraps=200, random_state=0)
    >>> bool(res.low < res.statistic < res.high), res.confidence, res.method
    (True, 0.95, 'percentile')
    >>> res = bootstrap_ci("procrustes", X, Y, n_bootstraps=200, random_state=0)
    >>> bool(res.low < res.statistic < res.high), res.method, res.subsample_size
    (True, 'subsample', 100)
    """
    metric = as_metric(metric)
    n_bootstraps = _check_count(n_bootstraps, "n_bootstraps")
    if (isinstance(confidence, bool) or not isinstance(confidence, numbers.Real)
            or not 0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be a number strictly between 0 and 1, got "
                         f"{confidence!r}")
    method = _resolve_method(method, metric)
    if method == "percentile" and subsample_size is not None:
        raise ValueError(
            f"subsample_size is used only by method='subsample'; the interval of "
            f"{type(metric).__name__} is the percentile bootstrap here (pass "
            "method='subsample', or leave subsample_size as None)"
        )
    statistic, X, Y = _observed(metric, X, Y)
    n = X.shape[0]
    size = _subsample_size(subsample_size, n, metric) if method == "subsample" else None
    seeds = _seeds(random_state, n_bootstraps)
    name = type(metric).__name__
    dist = _run(metric, X, Y, seeds, "subsample" if size else "bootstrap", n_jobs, progress,
                f"{name} {'subsampling' if size else 'bootstrap'}", size)
    alpha = 1.0 - float(confidence)
    q_lo, q_hi = np.quantile(dist, [alpha / 2, 1 - alpha / 2])
    if size:
        rate = np.sqrt(size / (n - size))
        low, high = statistic - rate * (q_hi - statistic), statistic - rate * (q_lo - statistic)
        bound_lo, bound_hi = metric.bounds
        low = float(np.clip(low, bound_lo, bound_hi))
        high = float(np.clip(high, bound_lo, bound_hi))
    else:
        low, high = float(q_lo), float(q_hi)
    res = BootstrapResult(statistic, low, high, float(confidence), dist, method=method,
                          subsample_size=size, n_samples=n)
    _warn_if_outside(res, name)
    return res


def _resolve_method(method, metric):
    if not isinstance(method, str) or method not in INTERVAL_METHODS:
        raise ValueError(f"method must be one of {INTERVAL_METHODS}, got {method!r}")
    if method != "auto":
        return method
    declared = metric.bootstrap_method
    if declared is None:
        return "percentile"
    if declared not in ("percentile", "subsample"):
        raise ValueError(
            f"{type(metric).__name__}.bootstrap_method must be 'percentile' or "
            f"'subsample', got {declared!r}"
        )
    return declared


def _subsample_size(value, n, metric):
    """m for subsampling: None (n // 2), a count in [2, n - 1] or a fraction in (0, 1)."""
    if value is None:
        size = n // 2
    elif isinstance(value, bool) or not isinstance(value, numbers.Real):
        size = None
    elif isinstance(value, numbers.Integral):
        size = int(value)
    elif 0.0 < value < 1.0:
        size = int(np.floor(value * n))
    else:
        size = None
    if size is None or not 2 <= size <= n - 1:
        given = "None (n // 2)" if value is None else repr(value)
        raise ValueError(
            "subsample_size must be a number of stimuli in [2, n - 1] or a fraction of them "
            f"in (0, 1), with n = {n} here; got {given}"
            + (f", i.e. {size} stimuli" if size is not None and value is not None
               and not isinstance(value, numbers.Integral) else "")
            + ("; with so few stimuli use method='percentile'" if n < 5 else "")
        )
    need = metric.min_samples
    if size < need:
        raise ValueError(
            f"subsample_size={size}: {type(metric).__name__} needs at least {need} stimuli per "
            "subsample; pass a larger subsample_size"
        )
    return size


def _warn_if_outside(res, name):
    statistic, low, high = res.statistic, res.low, res.high
    tol = _TIE_RTOL * max(1.0, abs(statistic))
    if low - tol <= statistic <= high + tol:
        return
    interval = f"{res.confidence:g} {{}} interval [{low:.4g}, {high:.4g}] of {name}"
    if res.method == "subsample":
        message = (
            interval.format("subsampling")
            + f" excludes the estimate {statistic:.4g}: the estimate's bias at n = "
            f"{res.n_samples} stimuli, about {res.bias:+.3g} (from subsamples of "
            f"{res.subsample_size}), exceeds its sampling error (standard error "
            f"{res.standard_error:.3g}). The interval is corrected for that bias and targets the "
            "population value; more stimuli relative to the widths make the estimate itself "
            "trustworthy."
        )
    else:
        message = (
            interval.format("percentile bootstrap")
            + f" excludes the estimate {statistic:.4g}: resampling with replacement repeats "
            f"stimuli, and the resampled values are shifted by {res.bias:+.3g} on average, "
            "more than their spread. For a metric biased by repeated or by few stimuli this "
            "interval misleads; use method='subsample' (distinct stimuli, bias-corrected) and "
            "more stimuli relative to the widths."
        )
    warnings.warn(message, IntervalExcludesEstimateWarning, stacklevel=3)
