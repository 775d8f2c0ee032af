"""Scores from batches: exact streaming estimators, and the minibatch CKA of Nguyen et al. 2021.

:func:`stream_score` gives a metric's **full-data value** from an iterable of batches
``(X_batch, Y_batch)`` (rows of the same stimuli), in O(d^2) memory whatever the number of rows:
every metric whose value depends on the data only through second moments accumulates exact
sufficient statistics (:class:`simmetrics.PairMoments`) and evaluates the metric on them. The
result equals ``metric.fit_score(X, Y)`` on the concatenated batches up to rounding (1e-10
relative in float64, tested), not an approximation. Torch batches stay on their device.

:func:`minibatch_cka` (and :class:`MinibatchCKA`) is something else: the estimator of Nguyen,
Raghu and Kornblith, ICLR 2021, which averages the unbiased HSIC over minibatches and then takes
the ratio. It estimates the same population quantity as debiased CKA but is **not** the CKA of
the full data: its value depends on how the rows are split into batches.
"""

import numpy as np

from ._core.linalg import abs_max
from ._core.memory import check_memory
from ._core.registry import available_metrics, get_metric, metric_class
from .base import AlignmentMetric, Metric
from .metrics.hsic import unbiased_hsic_terms
from .metrics.hsic import cka_from_hsic
from .moments import PairMoments, compact_factor, check_batch_pair, pair_from_sides, side

__all__ = [
    "stream_score",
    "stream_moments",
    "score_from_moments",
    "streaming_metrics",
    "MinibatchCKA",
    "minibatch_cka",
]


def streaming_metrics():
    """Names of the registered metrics that :func:`stream_score` computes exactly.

    Examples
    --------
    >>> "linear_cka" in streaming_metrics(), "rsa" in streaming_metrics()
    (True, False)
    """
    return [name for name in available_metrics()
            if metric_class(name)._score_from_moments is not None]


def _as_streaming_metric(metric):
    if isinstance(metric, str):
        metric = get_metric(metric)
    if not isinstance(metric, Metric):
        raise TypeError(
            f"metric must be a simmetrics metric or a registered name, got {type(metric).__name__}"
        )
    metric._validate_params()
    if metric._score_from_moments is None:
        raise TypeError(_cannot_stream_message(metric))
    return metric


def _cannot_stream_message(metric):
    """Why ``metric`` cannot stream. A class that streams in other settings (its
    ``_score_from_moments`` depends on the parameters, as LinearCKA's estimator="chun" does)
    is named with its parameters, and so is a default setting that streams: "LinearCKA cannot
    be computed" beside a list of streaming metrics that names LinearCKA would contradict
    itself."""
    names = ", ".join(metric_class(n).__name__ for n in streaming_metrics())
    cls = type(metric)
    if cls._score_from_moments is None:  # no setting of this class streams
        return (f"{cls.__name__} cannot be computed from batches: its value is not a function "
                "of the second moments of X and Y (it needs the rows themselves, e.g. n x n "
                f"Gram matrices). Use fit_score on the whole data. Metrics that stream: {names}")
    try:
        default = cls()
    except TypeError:  # a class whose constructor has required parameters
        default = None
    streams = "" if default is None or default._score_from_moments is None else \
        f"; {default!r} streams"
    return (f"{metric!r} cannot be computed from batches: with these parameters its value is "
            "not a function of the second moments of X and Y, all that stream_score holds (it "
            f"needs the rows, or moments of each neuron beyond the second){streams}. Use "
            f"fit_score on the whole data, or a setting of {cls.__name__} that streams (its "
            f"docstring says which). Metrics that stream in some setting: {names}")


def _pairs(batches):
    try:
        iterator = iter(batches)
    except TypeError:
        raise TypeError(
            f"batches must be an iterable of (X_batch, Y_batch) pairs, got "
            f"{type(batches).__name__}"
        ) from None
    for i, item in enumerate(iterator):
        if isinstance(item, (str, bytes)) or not hasattr(item, "__len__") or len(item) != 2:
            raise TypeError(
                f"batch {i} must be a pair (X_batch, Y_batch), got {type(item).__name__}"
            )
        yield i, item[0], item[1]


def _accumulate(batches, layout, row_terms, metric=None, factor=False):
    total = None
    same_width = metric is not None and bool(metric.same_width)
    prepare = None if metric is None else metric._batch_layout
    for i, X, Y in _pairs(batches):
        try:
            batch_layout = layout
            if prepare is not None:
                X, Y, batch_layout = prepare(X, Y)
            A, B = check_batch_pair(X, Y, layout=batch_layout, min_samples=1,
                                    same_width=same_width)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"batch {i}: {exc}") from exc
        if factor and total is None:
            d = A.shape[1] + B.shape[1]
            check_memory(32 * d * d, (
                f"second moments with the factor of {d:,} neurons: about 4 float64 "
                f"{d:,} x {d:,} matrices (the Gram blocks, the factor and a merge's QR)"), [
                "stream_moments(..., factor=False) (the default) where no metric that whitens "
                "is scored",
                "fewer neurons (e.g. each layer projected on its top principal directions)"])
        # the batch's centred rows themselves: the merge folds them into the running
        # triangle in one pass (simmetrics._core.factor.merged_factor)
        part = pair_from_sides(side(A, "mean", row_terms, True, True),
                               side(B, "mean", row_terms, True, True),
                               factor="rows" if factor else False)
        if total is not None and (part.x.width, part.y.width) != (total.x.width, total.y.width):
            raise ValueError(
                f"batch {i}: X and Y have {part.x.width} and {part.y.width} neurons, but the "
                f"earlier batches have {total.x.width} and {total.y.width}"
            )
        total = part if total is None else total + part
    if total is None:
        raise ValueError("batches is empty: pass at least one (X_batch, Y_batch) pair")
    return compact_factor(total)


#: Statistics of rescaled batches (``exponents`` not 0) are brought back to the data's units for
#: a metric that depends on the scale only while their level (largest |mean| or ||Xc||_F, in
#: the data's units) lies in this range: squares of up to 2^400 and down to 2^-400 leave the
#: metrics' own products and square roots in range.
_UNSCALED_LEVELS = (2.0**-400, 2.0**400)


def _level(rep):
    return max(abs_max(rep.shift), float(np.sqrt(max(float(rep.gram.trace()), 0.0))))


def _for_metric(metric, stats):
    """The statistics a metric's moments hooks can use. Batches whose values were outside
    [2^-100, 2^100] are summarised at exact power-of-two rescalings (``stats.exponents``; see
    :mod:`simmetrics.moments`): a metric invariant to rescaling X or Y
    (``"isotropic_scaling"`` in its invariances), or one whose hooks take any level
    (``_moments_any_scale``), is computed at that level, where no square overflows (means and
    shifts are still given in the data's units). For one that depends on
    the scale, the statistics are brought back to the data's units where they fit in float64
    (``_UNSCALED_LEVELS``); elsewhere a ``ValueError`` says how to rescale the data."""
    if not any(stats.exponents):
        return stats
    if "isotropic_scaling" in metric.invariances or metric._moments_any_scale:
        return stats
    with np.errstate(over="ignore", under="ignore"):  # judged below
        unscaled = stats.to_numpy().at_exponents(0, 0)
    parts = (unscaled.cross, unscaled.x.gram, unscaled.y.gram, unscaled.x.sum, unscaled.y.sum)
    if unscaled.factor is not None:
        parts += (unscaled.factor,)
    if all(np.all(np.isfinite(p)) for p in parts) and all(
            _level(rep) == 0.0 or _UNSCALED_LEVELS[0] <= _level(rep) <= _UNSCALED_LEVELS[1]
            for rep in (unscaled.x, unscaled.y)):
        return unscaled
    e = max(stats.exponents, key=abs)
    raise ValueError(
        f"{type(metric).__name__} with these parameters depends on the scale of the data, and "
        f"the batches hold values of up to about 2^{e} ({float(np.ldexp(1.0, e - 1)):.1e}), "
        "whose squares overflow or underflow the second-moment statistics in float64. "
        f"Multiply every batch of X and Y by the same power of two, 2.0**{-e} (exact), and "
        f"scale the result back (a distance that grows with the data, e.g. "
        f"score_method='euclidean', by 2.0**{e}), or use fit_score on the whole data"
    )


def stream_moments(batches, layout=None, row_terms=True, factor=False):
    """Accumulate the exact second-moment statistics of a stream of batches.

    Parameters
    ----------
    batches : iterable of (X_batch, Y_batch)
        Numpy arrays, torch tensors (kept on their device) or anything array-like, each pair
        holding the same stimuli (rows); read once, so a generator works.
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}
        How to read batches with more than two axes (see :data:`simmetrics.LAYOUTS`).
    row_terms : bool, default True
        Include the row-norm terms that the debiased CKA needs.
    factor : bool, default False
        Include :attr:`simmetrics.PairMoments.factor` (a square root of the joint centred Gram
        matrix, with the data's conditioning rather than its square), which the CCA family,
        the whitening shape metrics and the identity group of IntertwinerProcrustes need
        where one stimulus dominates or a cluster sits beside an outlier. It costs 2 to 4
        times the time of the other products (benchmarks/README.md), so it is off by default:
        without it those metrics refuse the data they cannot resolve, naming ``factor=True``
        (never a wrong value). :func:`stream_score` accumulates it exactly when its metric
        needs it.

    Returns
    -------
    PairMoments
        Statistics of every row; those of separate streams (workers) add with ``+``. Batches
        with values outside [2^-100, 2^100] are summarised at an exact power-of-two rescaling
        (``exponents`` not (0, 0); see :mod:`simmetrics.moments`), so no square overflows.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 4))
    >>> stats = stream_moments((X[i:i + 30], X[i:i + 30, :2]) for i in range(0, 100, 30))
    >>> stats.n, stats.cross.shape
    (100, (4, 2))
    """
    return _accumulate(batches, layout, bool(row_terms), factor=bool(factor))


def score_from_moments(metric, stats, fit=True):
    """A metric's value from second-moment statistics (:class:`simmetrics.PairMoments`).

    Parameters
    ----------
    metric : Metric or str
        One of :func:`streaming_metrics` (an instance or a registered name).
    stats : PairMoments
        From :func:`stream_moments`, :func:`simmetrics.moments.moments`, or sums of them
        (e.g. one per worker or per dask chunk).
    fit : bool, default True
        Fit the metric on these statistics first (as ``fit_score``). ``fit=False`` scores
        with the alignment fitted earlier (held-out stimuli), as ``score``.

    Returns
    -------
    float

    Raises
    ------
    TypeError
        The metric has no exact streaming path.
    ValueError
        Too few samples for the estimator; zero variance; widths that do not match a fitted
        alignment; a metric that whitens, on statistics without ``factor`` whose Gram
        matrices cannot resolve the data (:func:`simmetrics.moments.gram_factor`: the
        message gives the condition number and the digits kept, and names ``factor=True``
        and ``fit_score``).

    Examples
    --------
    >>> import numpy as np
    >>> from simmetrics import LinearCKA
    >>> from simmetrics.moments import moments
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.normal(size=(80, 3)), rng.normal(size=(80, 2))
    >>> stats = moments(X[:50], Y[:50]) + moments(X[50:], Y[50:])   # two workers
    >>> bool(abs(score_from_moments("linear_cka", stats) - LinearCKA().fit_score(X, Y)) < 1e-12)
    True
    """
    metric = _as_streaming_metric(metric)
    if not isinstance(stats, PairMoments):
        raise TypeError(f"stats must be PairMoments, got {type(stats).__name__}")
    if stats.n < metric.min_samples:
        raise ValueError(
            f"the batches hold {stats.n} samples, but this estimator needs at least "
            f"{metric.min_samples}"
        )
    if metric.same_width and stats.x.width != stats.y.width:
        raise ValueError(
            f"X and Y must have the same number of neurons for this metric: X has "
            f"{stats.x.width}, Y has {stats.y.width}"
        )
    if metric._moments_row_terms and not stats.has_row_terms:
        raise ValueError(
            f"{type(metric).__name__} with these parameters needs the row-norm statistics: "
            "accumulate them with row_terms=True"
        )
    stats = _for_metric(metric, stats)
    if fit:
        if metric._fit_from_moments is not None:
            metric._fit_from_moments(stats)
        metric.n_features_x_ = stats.x.width
        metric.n_features_y_ = stats.y.width
    elif isinstance(metric, AlignmentMetric):
        # the grams are (d, d): their second axis is the width, as a data matrix's is
        metric._check_fitted(stats.x.gram, stats.y.gram)
    return metric._finish(metric._score_from_moments(stats))


def stream_score(metric, batches, fit=True):
    """The full-data value of ``metric`` from a stream of batches, in O(d^2) memory.

    Accumulates exact sufficient statistics over the batches (X'X, Y'Y, X'Y, column sums and
    extremes, and the row-norm terms of the debiased HSIC where needed; see
    :class:`simmetrics.PairMoments`), then evaluates the metric on them. The value equals
    ``metric.fit_score(X, Y)`` on the concatenated batches (to about 1e-12 relative in
    float64), whatever the batch sizes and order. The metrics that whiten (the CCA family, the
    shape metrics with alpha < 1, IntertwinerProcrustes of the identity) also accumulate a
    square root of the joint centred Gram matrix (:attr:`simmetrics.PairMoments.factor`, from
    QR decompositions of the batches), which keeps the data's condition number where X'X has
    its square, so a stimulus 1e8 times the others or a cluster beside a far outlier stream
    to the whole-data value too.

    Torch batches stay on their device: the O(n d^2) products run there in float64 (float32,
    float16 and bfloat16 batches are promoted on the device first, so the result matches
    float64 numpy to about 1e-12, far inside 1e-6); only the d x d statistics come to the CPU.

    Parameters
    ----------
    metric : Metric or str
        One of :func:`streaming_metrics`: linear CKA (biased and debiased), CCA, SVCCA,
        PWCCA, the shape metrics, orthogonal Procrustes, the permutation metric, soft matching
        and IntertwinerProcrustes. Alignment metrics are fitted on the stream (``fit=True``),
        like ``fit_score``; their fitted attributes (rotation_, permutation_, ...) are set.
    batches : iterable of (X_batch, Y_batch)
        Read once (a generator works). Any layout the metric takes (its ``layout`` parameter
        applies to every batch); numpy, torch or array-like.
    fit : bool, default True
        ``False`` scores with an alignment fitted before (on other stimuli), like ``score``.

    Returns
    -------
    float

    Raises
    ------
    TypeError
        The metric has no exact streaming path (the message lists those that have), or a batch
        is not a pair.
    ValueError
        Bad batches (named by their index), no batches, too few samples in total; the
        debiased linear CKA where one stimulus dominates the sums (the message says to use
        ``fit_score``); a metric whose value depends on the scale other than as a factor
        (partial whitening, 0 < alpha < 1), at values beyond about 1e+-120 (the message says
        which power of two to rescale the batches by).

    Examples
    --------
    >>> import numpy as np
    >>> from simmetrics import LinearCKA
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(1000, 8))
    >>> Y = np.tanh(X @ rng.normal(size=(8, 5)))
    >>> batches = ((X[i:i + 128], Y[i:i + 128]) for i in range(0, 1000, 128))
    >>> value = stream_score(LinearCKA(debiased=True), batches)
    >>> bool(abs(value - LinearCKA(debiased=True).fit_score(X, Y)) < 1e-12)
    True
    """
    metric = _as_streaming_metric(metric)
    row_terms = bool(metric._moments_row_terms)
    factor = bool(metric._moments_factor)
    stats = _accumulate(batches, metric.layout, row_terms, metric, factor)
    return score_from_moments(metric, stats, fit=fit)


class MinibatchCKA:
    """Minibatch CKA of Nguyen, Raghu, Kornblith, "Do Wide and Deep Networks Learn the Same
    Things?", ICLR 2021 (their eq. 3): average the unbiased HSIC over k minibatches, then take
    the ratio::

        CKA_mb = mean_b HSIC1(X_b X_b', Y_b Y_b')
                 / sqrt( mean_b HSIC1(X_b X_b', X_b X_b') mean_b HSIC1(Y_b Y_b', Y_b Y_b') )

    with HSIC1 the unbiased estimator of Song et al. 2012 on linear kernels, computed in
    feature space from each batch's statistics (:func:`simmetrics.metrics.hsic.linear_hsic_unbiased_sums`,
    the function the exact debiased CKA uses).

    **Not the full-data CKA.** Each HSIC1 is unbiased for the population HSIC, so CKA_mb is a
    consistent estimator of population CKA as the number of batches grows; but for a finite
    data set its value depends on the batch size and on how rows are grouped, and differs from
    ``LinearCKA(debiased=True)`` of all the rows (which :func:`stream_score` computes exactly).
    With a single batch the two coincide. Use it where the rows of X and Y cannot be kept
    together (e.g. new augmentations per batch); otherwise prefer :func:`stream_score`.

    A **similarity** in [-1, 1] (each HSIC1 is an inner product of U-centred kernels; the
    averages keep Cauchy-Schwarz). Every batch needs at least 4 rows.

    Parameters
    ----------
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None

    Attributes
    ----------
    n_batches_ : int
    hsic_xy_, hsic_xx_, hsic_yy_ : float
        Running sums of the three HSIC1 values.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(512, 6))
    >>> Y = X @ rng.normal(size=(6, 4)) + rng.normal(size=(512, 4))
    >>> mb = MinibatchCKA()
    >>> for i in range(0, 512, 64):
    ...     _ = mb.update(X[i:i + 64], Y[i:i + 64])
    >>> from simmetrics import LinearCKA                  # the CKA of all 512 rows differs
    >>> mb.n_batches_, round(mb.value, 3), round(LinearCKA(debiased=True).fit_score(X, Y), 3)
    (8, 0.621, 0.604)
    """

    def __init__(self, layout=None):
        self.layout = layout
        self.reset()

    def reset(self):
        """Forget every batch seen."""
        self.n_batches_ = 0
        self.hsic_xy_ = self.hsic_xx_ = self.hsic_yy_ = 0.0
        return self

    def update(self, X, Y):
        """Add one minibatch (X, Y) of at least 4 rows; returns self."""
        A, B = check_batch_pair(X, Y, layout=self.layout, min_samples=4)
        # no power-of-two rescaling: the HSIC values of all batches must share one scale
        stats = PairMoments.from_arrays(A, B, row_terms=True, extrema=False, rescale=False)
        xy, xx, yy = unbiased_hsic_terms(stats.to_numpy().centred())
        self.hsic_xy_ += xy
        self.hsic_xx_ += xx
        self.hsic_yy_ += yy
        self.n_batches_ += 1
        return self

    @property
    def value(self):
        """The minibatch CKA of the batches seen so far."""
        if self.n_batches_ == 0:
            raise ValueError("MinibatchCKA has seen no batch yet; call update(X, Y) first")
        k = self.n_batches_
        return cka_from_hsic(self.hsic_xy_ / k, self.hsic_xx_ / k, self.hsic_yy_ / k, "unbiased")


def minibatch_cka(batches, layout=None):
    """The minibatch CKA of Nguyen et al. 2021 over ``batches`` (see :class:`MinibatchCKA`):
    an estimator of population CKA, **not** the CKA of the full data (for that, use
    ``stream_score(LinearCKA(debiased=True), batches)``).

    Parameters
    ----------
    batches : iterable of (X_batch, Y_batch)
        Each with at least 4 rows.
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}

    Returns
    -------
    float
        A **similarity** in [-1, 1].

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 5))
    >>> round(minibatch_cka((X[i:i + 100], 2 * X[i:i + 100] + 1) for i in range(0, 400, 100)), 12)
    1.0
    """
    estimator = MinibatchCKA(layout=layout)
    for i, X, Y in _pairs(batches):
        try:
            estimator.update(X, Y)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"batch {i}: {exc}") from exc
    return estimator.value
