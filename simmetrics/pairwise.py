"""One metric between every pair of representations: the layer x layer (or model x model)
matrix."""

import numpy as np
from sklearn.base import clone

from ._parallel import parallel_map
from ._validation import as_float_array
from .invariance import _as_metric

__all__ = ["pairwise", "is_symmetric"]


def is_symmetric(metric):
    """Whether ``metric(X, Y) == metric(Y, X)`` is declared, so half the pairs suffice.

    A metric class may say so with a ``symmetric`` attribute; without one, a metric that
    declares ``is_metric`` is symmetric (symmetry is one of the metric axioms, and the
    declaration is measured by the test suite). Anything else is treated as possibly
    asymmetric (PWCCA weights by one side, for example).

    Examples
    --------
    >>> import simmetrics
    >>> is_symmetric(simmetrics.OrthogonalProcrustes()), is_symmetric(simmetrics.PWCCA())
    (True, False)
    """
    declared = getattr(metric, "symmetric", None)
    return bool(metric.is_metric) if declared is None else bool(declared)


def _as_reps(reps, name):
    if isinstance(reps, np.ndarray) or not hasattr(reps, "__len__") or isinstance(reps, str):
        raise TypeError(
            f"{name} must be a list of representations (one array per layer or model), got "
            f"{type(reps).__name__}"
        )
    arrays = [as_float_array(r, f"{name}[{i}]") for i, r in enumerate(reps)]
    if not arrays:
        raise ValueError(f"{name} is empty; pass at least one representation")
    return arrays


def _check_stimuli(arrays, names):
    n0 = arrays[0].shape[0] if arrays[0].ndim else None
    for A, name in zip(arrays, names):
        n = A.shape[0] if A.ndim else None
        if n != n0:
            raise ValueError(
                f"every representation must hold the same stimuli (first axis): {names[0]} has "
                f"{n0}, {name} has {n}"
            )


def _score_pair(metric, X, Y, i, j, second):
    try:
        return clone(metric).fit_score(X, Y)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"reps[{i}] vs {second}[{j}]: {exc}") from exc


def pairwise(metric, reps, reps2=None, n_jobs=None, progress=False):
    """The matrix of ``metric`` values between every pair of representations.

    ``M[i, j] = clone(metric).fit_score(reps[i], reps2[j])``; with ``reps2=None``,
    ``M[i, j]`` compares ``reps[i]`` with ``reps[j]``. Alignment metrics are fitted and scored
    on the same stimuli here.

    Each unordered pair is computed once and mirrored when ``reps2`` is None and the metric is
    symmetric (:func:`is_symmetric`); otherwise every ordered pair is computed. The diagonal
    is always computed, never assumed (a similarity need not be 1 there, and a debiased
    estimator is not exactly 1).

    Parameters
    ----------
    metric : str or Metric
        A registered name or a metric instance; cloned for every pair, never modified.
    reps : list of array-like or torch.Tensor
        L representations of the same stimuli (same first axis), e.g. one per layer; widths may
        differ where the metric allows it.
    reps2 : list of array-like, optional
        L2 more representations: the result is then L x L2 (e.g. the layers of a second
        network).
    n_jobs : int, optional
        Passed to ``joblib.Parallel``: None is one job unless a ``joblib.parallel_backend``
        context sets it (a dask backend works the same way), -1 all cores.
    progress : bool, default False
        Draw a progress bar on stderr.

    Returns
    -------
    numpy.ndarray of float64, shape (L, L) or (L, L2)

    Raises
    ------
    ValueError
        The representations do not share their first axis; a pair the metric cannot compare
        (the message says which pair).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 8))
    >>> layers = [X, np.tanh(X @ rng.normal(size=(8, 6))), rng.normal(size=(100, 5))]
    >>> pairwise("linear_cka", layers).round(2)
    array([[1.  , 0.56, 0.05],
           [0.56, 1.  , 0.02],
           [0.05, 0.02, 1.  ]])
    """
    metric = _as_metric(metric)
    first = _as_reps(reps, "reps")
    second = first if reps2 is None else _as_reps(reps2, "reps2")
    names = [f"reps[{i}]" for i in range(len(first))]
    if reps2 is not None:
        names += [f"reps2[{j}]" for j in range(len(second))]
    _check_stimuli(first if reps2 is None else first + second, names)
    mirror = reps2 is None and is_symmetric(metric)
    pairs = [
        (i, j)
        for i in range(len(first))
        for j in range(i if mirror else 0, len(second))
    ]
    label = "reps" if reps2 is None else "reps2"
    values = parallel_map(
        _score_pair,
        [(metric, first[i], second[j], i, j, label) for i, j in pairs],
        n_jobs=n_jobs,
        progress=progress,
        desc=f"{type(metric).__name__} pairwise",
    )
    M = np.empty((len(first), len(second)))
    for (i, j), value in zip(pairs, values):
        M[i, j] = value
        if mirror:
            M[j, i] = value
    return M
