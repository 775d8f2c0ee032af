"""The contract every metric shares.

A metric is a scikit-learn estimator over *pairs* of representations::

    metric = SomeMetric(**params)          # parameters only stored
    metric.fit(X, Y)        -> self        # learns what the metric needs; fitted attributes end in _
    metric.score(X, Y)      -> float       # evaluates on (possibly held-out) stimuli
    metric.fit_score(X, Y)  -> float
    metric.transform(X, Y)  -> (X', Y')    # alignment metrics only

Class attributes say how to read the number: ``kind`` ("similarity" or "distance"), ``bounds``,
``is_metric`` (the metric axioms hold, on the orbit space of the invariance group) and
``invariances`` (names of transformation groups, see :mod:`simmetrics.symmetry.groups`). The declarations
are claims that the test suite measures.
"""

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError

from ._core.backend import DEVICE_POLICIES, get_backend
from ._core.memory import check_rows_memory
from ._core.params import Options, validate_params
from ._core.validation import (
    LAYOUTS,
    POSITION_AXES,
    check_matching_shapes,
    check_representation,
    layout_rows,
    shape_of,
    stimulus_positions,
)

__all__ = ["Metric", "AlignmentMetric", "KINDS", "GROUP_NAMES", "param_dependent", "metric_scorer"]

KINDS = ("similarity", "distance")

#: Transformation groups a metric may declare invariance to. The groups themselves live in
#: :mod:`simmetrics.symmetry.groups`; this tuple is the vocabulary the declarations are checked against.
GROUP_NAMES = (
    "permutation",
    "signed_permutation",
    "positive_scaled_permutation",
    "scaled_permutation",
    "orthogonal",
    "invertible_linear",
    "isotropic_scaling",
    "translation",
)


class param_dependent:
    """A class attribute whose value depends on the estimator's parameters.

    On an instance it is ``fn(instance)``; on the class it is the value for the default
    parameters, ``fn(cls())``. Used where, for example, the bounds of CKA depend on
    ``debiased``.

    Examples
    --------
    >>> class M:
    ...     bounds = param_dependent(lambda self: (-1, 1) if self.flag else (0, 1))
    ...     def __init__(self, flag=False):
    ...         self.flag = flag
    >>> M.bounds, M(flag=True).bounds
    ((0, 1), (-1, 1))
    """

    def __init__(self, fn):
        self.fn = fn

    def __get__(self, obj, owner=None):
        return self.fn(owner() if obj is None else obj)


class Metric(BaseEstimator):
    """Base class of every simmetrics metric.

    Subclasses implement ``_score(X, Y)`` on validated float64 matrices of shape
    (n_samples, n_x) and (n_samples, n_y), and, where something is learned, ``_fit(X, Y)``.
    They declare the class attributes below. Constructors only store their parameters, so
    ``sklearn.base.clone`` and ``get_params`` work.

    Attributes
    ----------
    kind : {"similarity", "distance"}
        Whether a larger value means more alike ("similarity") or less alike ("distance").
    bounds : tuple of float
        The range of the value.
    is_metric : bool
        Whether the value satisfies the metric axioms (symmetry, triangle inequality, zero on
        the diagonal) on the orbit space of its invariance group.
    invariances : frozenset of str
        Groups that leave the value unchanged when they act on either input.
    symmetric : bool or None
        Whether the value is the same for (X, Y) and (Y, X); None (the default) means "as
        ``is_metric``" (symmetry is a metric axiom). Measured by the test suite;
        :func:`simmetrics.pairwise` computes half the pairs of a symmetric metric.
    min_samples : int
        The fewest stimuli the estimator is defined for.
    same_width : bool
        Whether X and Y must have the same number of neurons.
    reference : str
        The paper the definition comes from.
    _parameter_constraints : dict
        For every constructor parameter, the list of accepted values (see
        :mod:`simmetrics._core.params`: ``Boolean()``, ``Interval``, ``Options``, types, None,
        ``callable``). :meth:`_validate_params` checks them in one call at the start of every
        entry point (``fit``, ``score``, ``fit_score``, ``transform``, and the drivers
        :func:`simmetrics.pairwise` and :func:`simmetrics.stream_score`), so a string
        ``"False"`` never switches an option on.

    Examples
    --------
    A new metric needs its declarations and ``_score``; validation, ``fit``, ``score``,
    ``fit_score`` and scikit-learn's ``clone`` come from the base class:

    >>> import numpy as np
    >>> class MeanActivationGap(Metric):
    ...     kind = "distance"
    ...     bounds = (0.0, float("inf"))
    ...     invariances = frozenset({"permutation"})
    ...     reference = "an example"
    ...     def __init__(self, layout=None):
    ...         self.layout = layout
    ...     def _score(self, X, Y):
    ...         return abs(X.mean() - Y.mean())
    >>> MeanActivationGap().fit_score(np.ones((3, 2)), np.zeros((3, 4)))
    1.0
    >>> MeanActivationGap().score([[1.0], [np.nan]], [[0.0], [1.0]])
    Traceback (most recent call last):
    ...
    ValueError: X contains 1 NaN and 0 infinite values

    :func:`simmetrics.pairwise`, :func:`simmetrics.invariance_table` and the test suite's
    generic checks need nothing more. One method more makes it stream
    (:func:`simmetrics.stream_score`): its value from the second moments
    (:class:`simmetrics.PairMoments`) of batches that never sit in memory together:

    >>> class StreamingGap(MeanActivationGap):
    ...     def _score_from_moments(self, stats):
    ...         return abs(stats.x.mean.mean() - stats.y.mean.mean())
    >>> from simmetrics import stream_score
    >>> float(stream_score(StreamingGap(), [(np.ones((3, 2)), np.zeros((3, 4)))] * 2))
    1.0

    Work that depends on one representation only (centring, bases, kernels) can be split off
    as ``_partial_fit(A, name) -> state`` with ``_finalize_fit_score(state_x, state_y)``:
    pairwise then does it once per representation instead of once per pair. The hooks each
    driver calls, and the capability each adds, are declared below with their defaults.
    """

    kind = "similarity"
    bounds = (0.0, 1.0)
    is_metric = False
    invariances = frozenset()
    symmetric = None
    min_samples = 2
    same_width = False
    reference = ""
    #: How inputs with more than two axes are read (see :data:`simmetrics.LAYOUTS`): every
    #: metric takes a ``layout`` parameter, declared here once with its constraint.
    layout = None
    _parameter_constraints = {"layout": [None, Options(LAYOUTS)]}
    #: Whether each input is an (n_stimuli, n_repeats, n_neurons) array of repeated trials (the
    #: stochastic shape metrics) instead of an (n_samples, n_neurons) matrix: the drivers that
    #: make their own data give such a metric repeated trials (the invariance table) or leave
    #: it out of their defaults (the demo).
    input_repeats = False
    #: Where the metric computes on torch tensors: "host" (every input, tensor or not, is read
    #: as a float64 numpy array; a tensor is copied to the host once, at validation) or
    #: "accelerator" (a tensor on an accelerator with float64 arithmetic stays on its device
    #: and the metric computes there through the backend, :mod:`simmetrics._core.backend`;
    #: CPU tensors and numpy input take the host route).
    device_policy = "host"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.kind not in KINDS:
            raise TypeError(f"{cls.__name__}.kind must be one of {KINDS}, got {cls.kind!r}")
        if cls.device_policy not in DEVICE_POLICIES:
            raise TypeError(f"{cls.__name__}.device_policy must be one of {DEVICE_POLICIES}, "
                            f"got {cls.device_policy!r}")
        declared = cls.__dict__.get("invariances")
        if isinstance(declared, param_dependent) or declared is None:
            return  # computed from parameters; checked when read
        unknown = set(declared) - set(GROUP_NAMES)
        if unknown:
            raise TypeError(f"{cls.__name__}.invariances names unknown groups {sorted(unknown)}")

    # -- validation -------------------------------------------------------------------------
    def _validate_params(self):
        """Check every parameter against ``_parameter_constraints`` (one call, all entry
        points); a ``TypeError`` or ``ValueError`` names the parameter and what it accepts."""
        validate_params(self)

    def _validate_one(self, A, name):
        """One representation as the metric reads it: a float64 (n, d) matrix, numpy, or a
        tensor on its device where ``device_policy`` keeps it; :func:`simmetrics.pairwise`
        validates each representation once with it."""
        B = check_representation(A, name, layout=self.layout, min_samples=self.min_samples,
                                 policy=self.device_policy)
        self._check_rows(*B.shape, raw=A)
        return B

    # -- memory: work that grows like n x n is refused up front --------------------------------
    #: ``_memory_bytes(n, d, count, jobs=1) -> (nbytes, what)``: the peak bytes of holding
    #: ``count`` prepared representations of n rows and d neurons while ``jobs`` preparation
    #: steps run at once, and words for what that counts. Defined by the metrics whose work
    #: grows like n x n (kernels, RDMs, neighbour searches); None where memory is O(n d + d^2).
    _memory_bytes = None

    def _check_rows(self, n, d, raw=None, count=2, jobs=1, prefix=""):
        """Refuse, before allocating, work on ``n`` rows that needs more than the memory budget
        (:func:`simmetrics.set_memory_budget`); ``raw`` is an input as given, so the message can
        say how a conv or token layout turned its stimuli into rows. fit/score hold two
        representations; :func:`simmetrics.pairwise` asks for all of them at once."""
        if self._memory_bytes is None:
            return
        nbytes, held = self._memory_bytes(n, d, count, jobs)
        layout = self.layout
        positions = (stimulus_positions(raw, layout) if raw is not None
                     else (True if layout in POSITION_AXES else None))
        check_rows_memory(self, n, nbytes, prefix + held, positions)

    def _validate(self, X, Y):
        layout = self.layout
        raw = (shape_of(X), shape_of(Y)) if layout is not None else None
        X, Y = self._validate_one(X, "X"), self._validate_one(Y, "Y")
        nx = get_backend(X, Y)  # where one input stays on its device, the other joins it
        X, Y = (A if nx.owns(A) else nx.asarray(A) for A in (X, Y))
        check_matching_shapes(tuple(X.shape), tuple(Y.shape), self.same_width, raw, layout)
        return X, Y

    def _finish(self, value):
        value = float(value)
        if not np.isfinite(value):  # a bug, never a result to hand back
            raise FloatingPointError(
                f"{type(self).__name__} produced a non-finite value ({value}); please report it"
            )
        return value

    # -- the public contract ----------------------------------------------------------------
    def _fit(self, X, Y):
        """Learn what the metric needs; stateless metrics learn nothing."""

    def fit(self, X, Y):
        """Fit the metric on representations ``X`` and ``Y`` of the same stimuli.

        Parameters
        ----------
        X : array-like or torch.Tensor, shape (n_samples, n_x)
        Y : array-like or torch.Tensor, shape (n_samples, n_y)

        Returns
        -------
        self
        """
        self._validate_params()
        X, Y = self._validate(X, Y)
        self._fit(X, Y)
        self.n_features_x_ = X.shape[1]
        self.n_features_y_ = Y.shape[1]
        return self

    def score(self, X, Y):
        """The metric's value on ``X`` and ``Y`` (a Python float).

        Stateless metrics need no ``fit``; alignment metrics score with what ``fit`` learned,
        so fitting on training stimuli and scoring on held-out stimuli works.
        """
        self._validate_params()
        X, Y = self._validate(X, Y)
        return self._finish(self._score(X, Y))

    def fit_score(self, X, Y):
        """``fit(X, Y)`` then ``score(X, Y)``, validating the inputs once."""
        self._validate_params()
        X, Y = self._validate(X, Y)
        self.n_features_x_ = X.shape[1]
        self.n_features_y_ = Y.shape[1]
        return self._finish(self._fit_score(X, Y))

    def _fit_score(self, X, Y):
        """Fit, then score on the same data. A metric with a :meth:`_partial_fit` step runs it on
        each input and then :meth:`_finalize_fit_score`, the same two steps
        :func:`simmetrics.pairwise` runs (so its matrix holds exactly these values)."""
        if self._partial_fit is not None:
            return self._finalize_fit_score(self._partial_fit(X, "X"), self._partial_fit(Y, "Y"))
        self._fit(X, Y)
        return self._score(X, Y)

    # -- capability: work per representation (simmetrics.pairwise) ---------------------------
    #: ``_partial_fit(A, name) -> state``: the work that depends on one representation only
    #: (centring, bases, whitening, Gram matrices, neighbour lists), on a validated input;
    #: :meth:`_finalize_fit_score` then fits and scores the pair from two states. Metrics that
    #: split this way define both (fit_score then runs the same two steps as pairwise, so the
    #: matrix holds exactly these values); None means fit_score works on the pair directly and
    #: pairwise calls it per pair. The states must not be modified by the pair step: pairwise
    #: reuses them.
    _partial_fit = None

    def _finalize_fit_score(self, state_x, state_y):  # pragma: no cover - with _partial_fit
        """Fit and score one pair from two :meth:`_partial_fit` states."""
        raise NotImplementedError

    #: ``_pairwise_values(reps, pairs, names, n_jobs=None, progress=False) -> list or None``:
    #: an optional faster route for a whole set of validated representations (e.g. LinearCKA
    #: in Gram space); None (the attribute or its result) means pairwise uses the states.
    _pairwise_values = None

    # -- capability: streaming from second moments (simmetrics.stream_score) -------------------
    #: ``_score_from_moments(stats) -> value`` from :class:`simmetrics.PairMoments`: defined by
    #: the metrics whose value is a function of the second moments; None means the metric
    #: cannot stream (:func:`simmetrics.streaming_metrics` lists those that can).
    _score_from_moments = None
    #: ``_fit_from_moments(stats)``: learn from the statistics what ``_fit`` learns from the
    #: data (alignment metrics); None where nothing is learned.
    _fit_from_moments = None
    #: Whether the statistics must include the row-norm terms (the debiased HSIC).
    _moments_row_terms = False
    #: Whether the statistics must include :attr:`PairMoments.factor` (metrics that whiten).
    _moments_factor = False
    #: Whether the moment hooks take statistics at any power-of-two level and return the value
    #: in the data's units (else they are brought to level 0, or refused where that overflows).
    _moments_any_scale = False
    #: ``_batch_layout(X, Y) -> (X, Y, layout)``: what the metric's own ``_validate`` does to a
    #: pair before the package's checks (e.g. IntertwinerCKA's conv defaults), applied to every
    #: batch of a stream; None means the ``layout`` parameter is used as it is.
    _batch_layout = None

    # -- capability: statistics (simmetrics.bootstrap_ci) --------------------------------------
    #: The interval ``bootstrap_ci(method="auto")`` uses: "percentile", "subsample" (declared by
    #: the metrics whose fit duplicated stimuli bias: alignment metrics, the CCA family), or
    #: None for "percentile".
    bootstrap_method = None

    # -- capability: gradients (simmetrics.functional, simmetrics.losses) ---------------------
    #: ``_gradient_formula(X, Y, nx) -> value``: the metric's value on the rows ``X``, ``Y`` of
    #: the pair it has just fitted (fitted attributes may be read, as constants), written with
    #: the differentiable operations of the backend ``nx`` (:mod:`simmetrics._core.backend`:
    #: ``nx.sqrt``, ``nx.svdvals``, ``@``, ``.sum``, ...), so that torch's autograd of it is the
    #: gradient of the value :meth:`fit_score` returns (the value itself always comes from
    #: fit_score). Where the value is an optimum over an alignment (a rotation, a permutation,
    #: a transport plan) the formula may hold the fitted alignment fixed: at an optimum the
    #: gradient of the optimal value is that of the objective (Danskin's theorem). None means
    #: the value has no useful gradient (ranks, neighbour sets): ``_gradient_note`` then says
    #: why and what to use instead.
    _gradient_formula = None
    _gradient_note = "it has no gradient formula (Metric._gradient_formula)"

    def _gradient_rows(self, X, Y, nx):
        """``X`` and ``Y`` (tensors that keep their autograd history, or arrays) as the float64
        rows the metric computes on, on ``nx``'s device: the ``layout`` applied as validation
        applies it (a metric with a ``_batch_layout`` step first takes that step)."""
        layout = self.layout
        if self._batch_layout is not None:
            X, Y, layout = self._batch_layout(X, Y)
        return tuple(nx.asarray(layout_rows(nx.asarray(A), name, layout, nx))
                     for A, name in ((X, "X"), (Y, "Y")))

    def _score(self, X, Y):
        """The value on (X, Y). By default, for a metric with a :meth:`_partial_fit` step, the
        value of a fresh fit (a clone, so ``score`` records nothing): metrics whose score
        depends on what ``fit`` learned (the alignment metrics) override this."""
        if self._partial_fit is None:  # pragma: no cover - a metric defines one of the two
            raise NotImplementedError
        return clone(self)._fit_score(X, Y)


class AlignmentMetric(Metric):
    """A metric that learns an alignment between X and Y in ``fit``.

    ``score`` and ``transform`` use the fitted alignment and raise ``NotFittedError`` before
    ``fit``; the widths seen in ``score`` must equal those seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from simmetrics import OrthogonalProcrustes
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 3))
    >>> metric = OrthogonalProcrustes().fit(X[:40], X[:40] @ np.diag([1.0, -1.0, 1.0]))
    >>> Xa, Ya = metric.transform(X[40:], X[40:] @ np.diag([1.0, -1.0, 1.0]))
    >>> bool(np.allclose(Xa, Ya)), round(metric.score(X[40:], X[40:] @ np.diag([1, -1, 1])), 8)
    (True, 0.0)
    """

    #: a resampled stimulus set with repeats changes the fitted alignment: bootstrap_ci
    #: subsamples instead (see simmetrics.bootstrap_ci)
    bootstrap_method = "subsample"

    def _check_fitted(self, X, Y):
        if not hasattr(self, "n_features_x_"):
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet; call fit(X, Y) before score or "
                "transform (or use fit_score)"
            )
        for name, A, width in (("X", X, self.n_features_x_), ("Y", Y, self.n_features_y_)):
            if A.shape[1] != width:
                raise ValueError(
                    f"{name} has {A.shape[1]} neurons, but this metric was fitted with {width}"
                )

    def score(self, X, Y):
        self._validate_params()
        X, Y = self._validate(X, Y)
        self._check_fitted(X, Y)
        return self._finish(self._score(X, Y))

    def transform(self, X, Y):
        """Apply the fitted alignment: returns the aligned ``(X', Y')`` as float64 arrays."""
        self._validate_params()
        X, Y = self._validate(X, Y)
        self._check_fitted(X, Y)
        return self._transform(X, Y)

    def _transform(self, X, Y):  # pragma: no cover - abstract
        raise NotImplementedError


def metric_scorer(estimator, X, Y):
    """A scikit-learn scorer for model selection over metric parameters: larger is better.

    scikit-learn's ``GridSearchCV`` and ``cross_val_score`` maximise ``estimator.score``. For
    a metric whose ``kind`` is "distance" that picks the *worst* setting (the one under which
    the held-out representations look least alike). Pass ``scoring=metric_scorer``: it returns
    ``score(X, Y)`` for a similarity and ``-score(X, Y)`` for a distance (``greater_is_better``
    taken from ``kind``), so the search keeps the setting that makes X and Y most alike.

    Parameters
    ----------
    estimator : Metric
        A fitted metric (scikit-learn passes the estimator fitted on the training fold).
    X, Y : array-like
        The held-out representations (scikit-learn's ``X`` and ``y``).

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from simmetrics import ShapeMetric
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5))
    >>> Y = X @ rng.normal(size=(5, 5))            # an invertible linear map of X
    >>> search = GridSearchCV(ShapeMetric(), {"alpha": [0.0, 1.0]}, scoring=metric_scorer, cv=4)
    >>> search.fit(X, Y).best_params_              # alpha 0 (CCA) is invariant to that map
    {'alpha': 0.0}
    """
    value = estimator.score(X, Y)
    return value if estimator.kind == "similarity" else -value
