"""One metric between every pair of representations: the layer x layer (or model x model)
matrix."""

import numpy as np
from sklearn.base import clone

from ._parallel import Progress, parallel_map
from ._validation import as_float_array, check_matching_shapes
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


def _as_list(reps, name):
    if isinstance(reps, np.ndarray) or not hasattr(reps, "__len__") or isinstance(reps, str) \
            or type(reps).__module__.startswith("torch"):
        raise TypeError(
            f"{name} must be a list of representations (one array per layer or model), got "
            f"{type(reps).__name__}"
        )
    reps = list(reps)
    if not reps:
        raise ValueError(f"{name} is empty; pass at least one representation")
    return reps


def _check_stimuli(arrays, names):
    n0 = arrays[0].shape[0] if arrays[0].ndim else None
    for A, name in zip(arrays, names):
        n = A.shape[0] if A.ndim else None
        if n != n0:
            raise ValueError(
                f"every representation must hold the same stimuli (first axis): {names[0]} has "
                f"{n0}, {name} has {n}"
            )


def _labelled(exc, label):
    return type(exc)(f"{label}: {exc}")


def _score_pair(metric, X, Y, label):
    try:
        return clone(metric).fit_score(X, Y)
    except (ValueError, TypeError) as exc:
        raise _labelled(exc, label) from exc


def _prepare_one(metric, A, name):
    return metric._prepare(A, name)


def _score_prepared(metric, a, b, label):
    try:
        pair = clone(metric)
        return pair._finish(pair._fit_score_prepared(a, b))
    except (ValueError, TypeError) as exc:
        raise _labelled(exc, label) from exc


def pairwise(metric, reps, reps2=None, n_jobs=None, progress=False):
    """The matrix of ``metric`` values between every pair of representations.

    ``M[i, j] = clone(metric).fit_score(reps[i], reps2[j])``; with ``reps2=None``,
    ``M[i, j]`` compares ``reps[i]`` with ``reps[j]``. Alignment metrics are fitted and scored
    on the same stimuli here.

    Each unordered pair is computed once and mirrored when ``reps2`` is None and the metric is
    symmetric (:func:`is_symmetric`); otherwise every ordered pair is computed. The diagonal
    is always computed, never assumed (a similarity need not be 1 there, and a debiased
    estimator is not exactly 1).

    **Work done once per representation.** Every representation is validated once; metrics
    that split into a per-representation step and a pair step (centring, orthonormal bases,
    whitening, per-neuron norms, kernels, RDMs, neighbour lists: every registered metric except
    ``intertwiner_procrustes``, whose conv inputs are matched pairwise) run the first step once
    per representation and only the pair step per pair; ``fit_score`` runs the same two steps,
    so the values are its values (up to rounding). Linear CKA also chooses between feature space
    (a d_i x d_j product per pair) and Gram space (the n x n kernels, in tiles, all pairs at
    once: :func:`simmetrics.cka.gram_space_cka`) by counting the multiply-adds of each.

    Memory: the per-representation states of all representations are held at once: about one
    copy of each input for the linear metrics, an n x n matrix per representation for kernel
    CKA and IntertwinerCKA, and n (n - 1) / 2 values for RSA.

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
        context sets it (``with joblib.parallel_backend("dask"):`` runs the work on a
        dask.distributed cluster), -1 all cores. The per-representation steps and then the
        pairs (or Gram tiles) are the parallel tasks.
    progress : bool, default False
        Draw a progress bar on stderr (its units: the representations, then the pairs; or,
        for linear CKA in Gram space, the rows of kernel tiles).

    Returns
    -------
    numpy.ndarray of float64, shape (L, L) or (L, L2)

    Raises
    ------
    ValueError
        The representations do not share their first axis; a representation or a pair the
        metric cannot compare (the message says which).

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
    first = _as_list(reps, "reps")
    second = first if reps2 is None else _as_list(reps2, "reps2")
    names = [f"reps[{i}]" for i in range(len(first))]
    if reps2 is not None:
        names += [f"reps2[{j}]" for j in range(len(second))]
    union = first if reps2 is None else first + second
    offset = 0 if reps2 is None else len(first)
    mirror = reps2 is None and is_symmetric(metric)
    pairs = [
        (i, j)
        for i in range(len(first))
        for j in range(i if mirror else 0, len(second))
    ]
    index_pairs = [(i, offset + j) for i, j in pairs]
    labels = [f"{names[i]} vs {names[j]}" for i, j in index_pairs]
    desc = f"{type(metric).__name__} pairwise"
    if metric._prepare is None:
        arrays = [as_float_array(A, name) for A, name in zip(union, names)]
        _check_stimuli(arrays, names)
        values = parallel_map(
            _score_pair,
            [(metric, arrays[i], arrays[j], label) for (i, j), label in zip(index_pairs, labels)],
            n_jobs=n_jobs, progress=progress, desc=desc,
        )
    else:
        arrays = [metric._validate_one(A, name) for A, name in zip(union, names)]
        _check_stimuli(arrays, names)
        if metric.same_width:
            for (i, j), label in zip(index_pairs, labels):
                try:
                    check_matching_shapes(arrays[i].shape, arrays[j].shape, True)
                except ValueError as exc:
                    raise _labelled(exc, label) from exc
        route = getattr(metric, "_pairwise_values", None)
        values = None if route is None else route(arrays, index_pairs, names, n_jobs=n_jobs,
                                                  progress=progress)
        if values is None:  # one bar: the representations, then the pairs
            with Progress(len(arrays) + len(pairs), desc, enabled=progress) as bar:
                states = parallel_map(
                    _prepare_one, [(metric, A, name) for A, name in zip(arrays, names)],
                    n_jobs=n_jobs, progress=bar,
                )
                values = parallel_map(
                    _score_prepared,
                    [(metric, states[i], states[j], label)
                     for (i, j), label in zip(index_pairs, labels)],
                    n_jobs=n_jobs, progress=bar,
                )
    M = np.empty((len(first), len(second)))
    for (i, j), value in zip(pairs, values):
        M[i, j] = value
        if mirror:
            M[j, i] = value
    return M
