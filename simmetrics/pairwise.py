"""One metric between every pair of representations: the layer x layer (or model x model)
matrix."""

import math
import os
from collections.abc import Mapping

import numpy as np
from sklearn.base import clone

from ._core.memory import MemoryBudgetError, format_bytes, parse_bytes
from ._core.parallel import Progress, pair_blocks, parallel_map
from ._core.state_cache import Held, StateCache
from ._core.validation import (
    POSITION_AXES,
    as_float_array,
    check_matching_shapes,
    positions_differ_message,
    shape_of,
)
from ._core.registry import as_metric

__all__ = ["pairwise", "is_symmetric", "LabelledMatrix"]


class LabelledMatrix(np.ndarray):
    """A 2-D float array with names on its rows and columns: what :func:`pairwise` returns
    for a mapping of name -> representation (the dict of
    :func:`simmetrics.nn.extract.extract_activations`, for example).

    It is an ``numpy.ndarray`` (every array operation works, the numbers are the matrix's) with
    two attributes, ``row_labels`` and ``col_labels`` (tuples of str). The labels follow
    slicing and integer-list indexing of rows and columns (``M[1:]``, ``M[:, [2, 0]]``),
    transposition (``M.T``) and elementwise arithmetic (``1 - M``); any other result that is
    not the full 2-D matrix (a row ``M[0]``, a boolean mask, a reduction) is a plain ndarray
    or carries no labels (None).

    Examples
    --------
    >>> M = LabelledMatrix([[1.0, 0.4], [0.4, 1.0]], ["conv1", "fc"], ["conv1", "fc"])
    >>> M[0, 1], M.row_labels
    (np.float64(0.4), ('conv1', 'fc'))
    >>> M.to_frame()  # doctest: +SKIP
           conv1   fc
    conv1    1.0  0.4
    fc       0.4  1.0
    """

    def __new__(cls, values, row_labels, col_labels):
        obj = np.asarray(values, dtype=np.float64).view(cls)
        if obj.ndim != 2:
            raise ValueError(f"a LabelledMatrix is 2-D, got shape {obj.shape}")
        rows, cols = tuple(map(str, row_labels)), tuple(map(str, col_labels))
        if (len(rows), len(cols)) != obj.shape:
            raise ValueError(
                f"{len(rows)} row labels and {len(cols)} column labels for a matrix of shape "
                f"{obj.shape}"
            )
        obj.row_labels, obj.col_labels = rows, cols
        return obj

    def __array_finalize__(self, obj):
        # views and elementwise results of the same shape keep the labels; anything else
        # (reductions, reshapes) has none
        rows = getattr(obj, "row_labels", None)
        cols = getattr(obj, "col_labels", None)
        if rows is not None and self.shape == (len(rows), len(cols)):
            self.row_labels, self.col_labels = rows, cols
        else:
            self.row_labels = self.col_labels = None

    def __array_wrap__(self, array, context=None, return_scalar=False):
        # ufunc results: the labels stay on a full matrix; reductions become plain arrays
        result = super().__array_wrap__(array, context, return_scalar)
        if isinstance(result, LabelledMatrix) and result.row_labels is None:
            result = result.view(np.ndarray)
            if return_scalar and result.ndim == 0:
                return result[()]
        return result

    def _plain(self, result):
        return result.view(np.ndarray) if isinstance(result, LabelledMatrix) else result

    def __getitem__(self, key):
        result = super().__getitem__(key)
        if not isinstance(result, LabelledMatrix) or self.row_labels is None:
            return self._plain(result)
        keys = key if isinstance(key, tuple) else (key,)
        if len(keys) == 1:
            keys = keys + (slice(None),)
        if len(keys) != 2 or result.ndim != 2 or any(
                isinstance(k, (int, np.integer)) or k is None or k is Ellipsis
                or np.asarray(k).dtype == bool for k in keys if not isinstance(k, slice)):
            return self._plain(result)
        try:
            rows = np.arange(self.shape[0])[keys[0]]
            cols = np.arange(self.shape[1])[keys[1]]
        except (IndexError, TypeError, ValueError):  # pragma: no cover - numpy raised above
            return self._plain(result)
        if np.ndim(rows) != 1 or np.ndim(cols) != 1 or result.shape != (len(rows), len(cols)):
            return self._plain(result)
        result.row_labels = tuple(self.row_labels[i] for i in rows)
        result.col_labels = tuple(self.col_labels[j] for j in cols)
        return result

    def transpose(self, *axes):
        result = super().transpose(*axes)
        if self.row_labels is not None and result.shape == self.shape[::-1] and (
                not axes or tuple(np.ravel(axes)) == (1, 0)):
            result.row_labels, result.col_labels = self.col_labels, self.row_labels
        else:
            result.row_labels = result.col_labels = None
        return result

    @property
    def T(self):
        return self.transpose()

    def sort(self, *args, **kwargs):
        super().sort(*args, **kwargs)
        self.row_labels = self.col_labels = None  # the positions moved

    def __reduce__(self):
        constructor, args, state = super().__reduce__()
        return constructor, args, (state, self.row_labels, self.col_labels)

    def __setstate__(self, state):
        base, self.row_labels, self.col_labels = state
        super().__setstate__(base)

    def __repr__(self):
        if self.row_labels is None:
            return repr(self.view(np.ndarray))
        prefix = "LabelledMatrix("
        body = np.array2string(self.view(np.ndarray), separator=", ", prefix=prefix)
        pad = " " * len(prefix)
        return (f"{prefix}{body},\n{pad}row_labels={self.row_labels!r},\n{pad}"
                f"col_labels={self.col_labels!r})")

    def to_frame(self):
        """The matrix as a ``pandas.DataFrame`` with the labels as index and columns."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_frame needs pandas, which is not installed") from None
        if self.row_labels is None:
            raise ValueError("this array has no labels (it is not a full labelled matrix)")
        return pd.DataFrame(self.view(np.ndarray).copy(), index=list(self.row_labels),
                            columns=list(self.col_labels))


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
    declared = metric.symmetric
    return bool(metric.is_metric) if declared is None else bool(declared)


def _as_list(reps, name):
    """(representations, their names in messages, their labels, whether a mapping)."""
    if isinstance(reps, Mapping):
        if not reps:
            raise ValueError(f"{name} is empty; pass at least one representation")
        keys = list(reps)
        return ([reps[k] for k in keys], [f"{name}[{k!r}]" for k in keys],
                [str(k) for k in keys], True)
    # one array, tensor or frame (anything with a shape) is one representation, not a list
    if hasattr(reps, "shape") or not hasattr(reps, "__len__") or isinstance(reps, str):
        raise TypeError(
            f"{name} must be a list of representations (one array per layer or model) or a "
            f"dict of name -> representation, got {type(reps).__name__}"
        )
    reps = list(reps)
    if not reps:
        raise ValueError(f"{name} is empty; pass at least one representation")
    return reps, [f"{name}[{i}]" for i in range(len(reps))], [str(i) for i in range(len(reps))], \
        False


def _check_stimuli(arrays, names, inputs=None, layout=None):
    """Every validated representation has the same number of rows. When the inputs share
    their first axis but a layout turned each stimulus into several rows (positions, tokens),
    the message says so and offers the ways out."""
    n0 = arrays[0].shape[0] if arrays[0].ndim else None
    for k, (A, name) in enumerate(zip(arrays, names)):
        n = A.shape[0] if A.ndim else None
        if n == n0:
            continue
        shapes = [shape_of(inputs[0]), shape_of(inputs[k])] if inputs is not None else None
        positional = layout in POSITION_AXES and shapes is not None and None not in shapes
        if positional and shapes[0][:1] == shapes[1][:1]:
            raise ValueError(positions_differ_message(names[0], name, shapes[0], shapes[1], layout))
        if positional and shapes[0][:1] and shapes[1][:1]:
            n0, n = shapes[0][0], shapes[1][0]  # the stimuli, not the rows a layout makes
        raise ValueError(
            f"every representation must hold the same stimuli (first axis): {names[0]} has "
            f"{n0}, {name} has {n}"
        )


def _pairwise_jobs(n_jobs, count):
    """How many per-representation steps :func:`simmetrics.pairwise` runs at once."""
    from joblib import effective_n_jobs

    return max(1, min(int(effective_n_jobs(n_jobs)), count))


def _labelled(exc, label):
    return type(exc)(f"{label}: {exc}")


def _score_pair(metric, X, Y, label):
    try:
        return clone(metric).fit_score(X, Y)
    except (ValueError, TypeError) as exc:
        raise _labelled(exc, label) from exc


def _prepare_one(metric, A, name):
    return metric._partial_fit(A, name)


def _score_prepared(metric, a, b, label):
    try:
        pair = clone(metric)
        return pair._finish(pair._finalize_fit_score(a, b))
    except (ValueError, TypeError) as exc:
        raise _labelled(exc, label) from exc


def _prepare_cached(metric, A, name, store, key):
    """``(state, read)``: the state of ``A`` from the cache where it is there, else prepared
    (and written to the cache)."""
    if store is not None:
        found, state = store.read_state(key)
        if found:
            return state, True
    state = metric._partial_fit(A, name)
    if store is not None:
        store.write_state(key, state)
    return state, False


def _block_task(metric, spec, store, prep, *items):
    """One task: the pairs ``spec`` ((a, b, label, pair key) with a, b positions in ``items``)
    of one block. ``items`` are ready states in :class:`Held` boxes (or, for a metric without a
    per-representation step, validated arrays so boxed); with ``prep`` (a (name, state key) per item) they are validated
    arrays to prepare here first. Each value is written to the cache as soon as it is known, so a
    killed run loses at most the pairs being computed. Returns (values, states prepared, states
    read)."""
    prepared = read = 0
    if prep is not None:
        ready = []
        for A, (name, key) in zip(items, prep):
            state, was_read = _prepare_cached(metric, A, name, store, key)
            ready.append(state)
            read += was_read
            prepared += not was_read
        items = ready
    else:
        items = [item.state for item in items]
    score = _score_pair if metric._partial_fit is None else _score_prepared
    values = []
    for a, b, label, key in spec:
        value = score(metric, items[a], items[b], label)
        if store is not None:
            store.write_pair(key, value)
        values.append(value)
    return values, prepared, read


def _held_bytes(metric, n, d, count, jobs):
    """(bytes, words) of holding ``count`` prepared states of n rows and d neurons while
    ``jobs`` preparations run: the metric's own estimate where its work grows like n x n, else
    one float64 n x d copy per state and per running preparation (the linear metrics)."""
    if metric._memory_bytes is not None:
        return metric._memory_bytes(n, d, count, jobs)
    copies = count + jobs
    return 8 * n * d * copies, f"{copies} float64 {n:,} x {d:,} copies (prepared states)"


def _memory_plan(metric, n, d, count, jobs, budget, text):
    """How to hold the states under ``budget`` bytes: ("all", None, jobs) when every state fits
    at once, else ("blocks", side, jobs'): tasks of at most ``side`` rows and ``side`` columns,
    each preparing its own 2 side states, ``jobs'`` at once. Refuses when one pair does not
    fit."""
    need, what = _held_bytes(metric, n, d, 2, 1)
    if need > budget:
        raise MemoryBudgetError(
            f"memory_budget={text!r} ({budget:,} bytes) is below what one pair needs: "
            f"{type(metric).__name__} on {n:,} rows of up to {d:,} neurons holds {what}, about "
            f"{format_bytes(need)} ({need:,} bytes); raise memory_budget to at least {need:,} "
            "bytes or use fewer stimuli"
        )
    if _held_bytes(metric, n, d, count, jobs)[0] <= budget:
        return "all", None, jobs
    while jobs > 1 and _held_bytes(metric, n, d, 2 * jobs, jobs)[0] > budget:
        jobs -= 1
    side = 1
    while 2 * (side + 1) <= count and \
            _held_bytes(metric, n, d, 2 * (side + 1) * jobs, jobs)[0] <= budget:
        side += 1
    return "blocks", side, jobs


def _task_side(count, jobs):
    """Rows (and columns) of a block of pairs when every state is held: about 16 tasks per job
    at least (the blocks on the diagonal hold half the pairs of the others, so fewer leave
    workers idle at the end), at most 16 x 16 pairs each (so a progress bar still moves)."""
    return max(1, min(16, math.ceil(count / math.sqrt(32 * jobs))))


def _version():
    from . import __version__

    return __version__


def pairwise(metric, reps, reps2=None, n_jobs=None, progress=False, memory_budget=None,
             cache=None, return_stats=False):
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
    once: :func:`simmetrics.metrics.cka.gram_space_cka`) by counting the multiply-adds of each.

    **Memory.** By default the per-representation states of all representations are held at
    once: about one copy of each input for the linear metrics, an n x n matrix per
    representation for kernel CKA and IntertwinerCKA, and n (n - 1) / 2 values for RSA; the
    call is refused up front when that exceeds :func:`simmetrics.get_memory_budget`. With
    ``memory_budget``, states that do not all fit in it are not held at once: the pairs are
    computed in blocks of rows and columns, each block preparing the states of its own
    representations (again: a representation is prepared once per block it is in, or read
    from ``cache``) and releasing them when done; blocks are as large as the budget allows,
    with fewer of them running at once if need be. Only a budget below what one pair needs
    is refused (a ``MemoryBudgetError`` naming ``memory_budget`` and the bytes needed). The
    states are estimated as each metric's memory check does (``_memory_bytes``), or as one
    float64 copy of the input per state for the metrics whose memory is O(n d + d^2).

    **Resuming.** With ``cache`` (a folder), every prepared state and every finished pair
    value is written there, atomically and as soon as it is computed, under a key of what it
    depends on (:mod:`simmetrics._core.state_cache`: a hash of the representation's bytes,
    shape and dtype, of the metric's class and ``get_params()``, and of the package version),
    never of its name or position. A later call with the same folder reads the values it finds
    and computes only the missing pairs: a killed job restarted loses at most the pairs that
    were being computed, and adding one representation to a finished L x L matrix computes
    L + 1 pairs (its row and its diagonal entry; 2 L + 1 for an asymmetric metric). Changed
    data or parameters give new keys, so nothing stale is read. With a cache the pairs are
    always computed from the states, one by one (linear CKA's Gram-space route, which
    computes all pairs together, is not taken). The folder must be reachable from the workers
    (a shared file system on a cluster of several machines); states are pickles, so use
    folders you trust, and they take about the memory above on disk.

    **Tasks.** The pairs are grouped into blocks (:func:`simmetrics._core.parallel.pair_blocks`):
    one task computes a block of pairs from the states of at most 2 x 16 representations,
    passed as separate arguments, so joblib's dask backend sends each state to the cluster
    once and schedules tens of tasks instead of one per pair.

    Parameters
    ----------
    metric : str or Metric
        A registered name or a metric instance; cloned for every pair, never modified.
    reps : list of array-like or torch.Tensor, or dict of name -> representation
        L representations of the same stimuli (same first axis), e.g. one per layer; widths may
        differ where the metric allows it. A mapping (such as the dict that
        :func:`simmetrics.nn.extract.extract_activations` returns) names them: its keys label the
        result's rows and columns and the error messages (``reps['conv1']``).
    reps2 : list or dict of array-like, optional
        L2 more representations: the result is then L x L2 (e.g. the layers of a second
        network).
    n_jobs : int, optional
        Passed to ``joblib.Parallel``: None is one job unless a ``joblib.parallel_backend``
        context sets it (``with joblib.parallel_backend("dask"):`` runs the work on a
        dask.distributed cluster), -1 all cores. The per-representation steps and then the
        pairs (or Gram tiles) are the parallel tasks.
    progress : bool, default False
        Draw a progress bar on stderr (its units: the representations, then the pairs; or,
        for linear CKA in Gram space, the rows of kernel tiles; with a memory budget that
        splits the work into blocks, the pairs only).
    memory_budget : int or str, optional
        Bytes (or a size such as ``"2GB"``, ``"512MiB"``) the prepared states may take at
        once; see Memory above. None: every state is held, within the global budget.
    cache : str or os.PathLike, optional
        A folder for the content-addressed cache of states and pair values (created if
        missing); see Resuming above.
    return_stats : bool, default False
        Also return a dict of what was done: ``pairs`` (entries computed or read),
        ``pairs_computed``, ``pairs_read`` (from the cache), ``states_computed``,
        ``states_read``, ``tasks``, ``mode`` ("all": every state held; "blocks": under the
        memory budget; "route": linear CKA's Gram space; "cached": nothing to compute) and
        ``block_side``.

    Returns
    -------
    numpy.ndarray of float64, shape (L, L) or (L, L2)
        A plain array when ``reps`` (and ``reps2``) are lists, as before. When either is a
        mapping, a :class:`LabelledMatrix`: the same numbers in an ndarray subclass with
        ``row_labels`` and ``col_labels`` (the keys; a list's side is labelled "0", "1", ...),
        which ``to_frame()`` turns into a labelled ``pandas.DataFrame`` and
        :func:`simmetrics.plots.plot_similarity_matrix` uses as tick labels.
    stats : dict
        Only with ``return_stats``: ``(matrix, stats)`` is returned.

    Raises
    ------
    ValueError
        The representations do not share their first axis (or, with a conv / token layout,
        their number of positions per stimulus: the message says so and what to do instead);
        a representation or a pair the metric cannot compare (the message says which).

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
    >>> M = pairwise("linear_cka", {"input": layers[0], "hidden": layers[1]})
    >>> M.row_labels, M.to_frame().loc["input", "hidden"].round(2)
    (('input', 'hidden'), np.float64(0.56))
    """
    metric = as_metric(metric)
    first, names, row_labels, labelled = _as_list(reps, "reps")
    second, col_labels = first, row_labels
    if reps2 is not None:
        second, names2, col_labels, labelled2 = _as_list(reps2, "reps2")
        names = names + names2
        labelled = labelled or labelled2
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
    metric._validate_params()
    budget = text = None
    if memory_budget is not None:
        try:
            budget, text = parse_bytes(memory_budget), memory_budget
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"memory_budget: {exc}") from None
    if cache is not None and not isinstance(cache, (str, os.PathLike)):
        raise TypeError(f"cache must be a folder path (str or os.PathLike), got "
                        f"{type(cache).__name__}")
    prepared = metric._partial_fit is not None
    if not prepared:
        arrays = [as_float_array(A, name) for A, name in zip(union, names)]
        _check_stimuli(arrays, names)
    else:
        arrays = [metric._validate_one(A, name) for A, name in zip(union, names)]
        _check_stimuli(arrays, names, union, metric.layout)
        if metric.same_width:
            for (i, j), label in zip(index_pairs, labels):
                try:
                    check_matching_shapes(arrays[i].shape, arrays[j].shape, True)
                except ValueError as exc:
                    raise _labelled(exc, label) from exc
    store = keys = None
    values = [None] * len(pairs)
    pair_keys = [None] * len(pairs)
    if cache is not None:
        store = StateCache(cache, metric, symmetric=is_symmetric(metric), salt=_version())
        keys = [store.state_key(A) for A in arrays]
        pair_keys = [store.pair_key(keys[i], keys[j]) for i, j in index_pairs]
        values = store.read_pairs(pair_keys)
    todo = [k for k, value in enumerate(values) if value is None]
    stats = {"pairs": len(pairs), "pairs_computed": len(todo),
             "pairs_read": len(pairs) - len(todo), "states_computed": 0, "states_read": 0,
             "tasks": 0, "mode": "cached", "block_side": None}
    if todo:
        _compute(metric, arrays, names, index_pairs, labels, todo, values, stats, store, keys,
                 pair_keys, n_jobs, progress, desc, budget, text)
    M = np.empty((len(first), len(second)))
    for (i, j), value in zip(pairs, values):
        M[i, j] = value
        if mirror:
            M[j, i] = value
    M = LabelledMatrix(M, row_labels, col_labels) if labelled else M
    return (M, stats) if return_stats else M


def _compute(metric, arrays, names, index_pairs, labels, todo, values, stats, store, keys,
             pair_keys, n_jobs, progress, desc, budget, text):
    """Fill ``values[k]`` for every ``k`` of ``todo`` (see :func:`pairwise`), and ``stats``."""
    prepared = metric._partial_fit is not None
    needed = sorted({i for k in todo for i in index_pairs[k]})
    n, d = arrays[0].shape[0], max(arrays[i].shape[1] for i in needed)
    jobs = _pairwise_jobs(n_jobs, len(needed))
    mode, side, task_jobs = "all", None, n_jobs
    if budget is not None:
        mode, side, fitting = _memory_plan(metric, n, d, len(needed), jobs, budget, text)
        task_jobs = fitting if fitting < jobs else n_jobs
    elif prepared:  # every representation's prepared state is held at once
        metric._check_rows(n, d, count=len(needed), jobs=jobs,
                           prefix=f"{len(needed)} representations: ")
    route = metric._pairwise_values if prepared else None
    if mode == "all" and store is None and route is not None:
        routed = route(arrays, [index_pairs[k] for k in todo], names, n_jobs=n_jobs,
                       progress=progress)
        if routed is not None:
            for k, value in zip(todo, routed):
                values[k] = value
            stats.update(mode="route", states_computed=len(needed))
            return
    stats["mode"] = mode
    hold = mode == "all" and prepared
    ready = {}
    with Progress((len(needed) if hold else 0) + len(todo), desc, enabled=progress) as bar:
        if hold:  # one bar: the representations, then the pairs
            states = parallel_map(
                _prepare_cached,
                [(metric, arrays[i], names[i], store, None if keys is None else keys[i])
                 for i in needed], n_jobs=n_jobs, progress=bar)
            for i, (state, was_read) in zip(needed, states):
                ready[i] = Held(state)
                stats["states_read"] += was_read
                stats["states_computed"] += not was_read
        if side is None:
            side = _task_side(len(needed), jobs)
        stats["block_side"] = side
        tasks, sizes, owners = [], [], []
        for block in pair_blocks([index_pairs[k] for k in todo], side):
            ks = [todo[b] for b in block]
            members = sorted({i for k in ks for i in index_pairs[k]})
            at = {i: p for p, i in enumerate(members)}
            spec = [(at[index_pairs[k][0]], at[index_pairs[k][1]], labels[k], pair_keys[k])
                    for k in ks]
            if hold:  # boxed: a dask backend then sends each state to the cluster once
                items, prep = [ready[i] for i in members], None
            elif not prepared:
                items, prep = [Held(arrays[i]) for i in members], None
            else:  # prepared inside the task: the budget holds only this block's states
                items = [arrays[i] for i in members]
                prep = [(names[i], None if keys is None else keys[i]) for i in members]
            tasks.append((metric, spec, store, prep, *items))
            sizes.append(len(spec))
            owners.append(ks)
        results = parallel_map(_block_task, tasks, n_jobs=task_jobs, progress=bar, sizes=sizes)
    stats["tasks"] = len(tasks)
    for ks, (block_values, computed, read) in zip(owners, results):
        stats["states_computed"] += computed
        stats["states_read"] += read
        for k, value in zip(ks, block_values):
            values[k] = value
