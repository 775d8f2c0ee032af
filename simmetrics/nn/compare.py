"""Two torch models, one pass over the data, every layer pair: :func:`compare_models`.

- **one pass, the same batches**: each batch goes through ``model_a`` and then ``model_b``
  before the next is drawn, so row i of every layer is the same stimulus for both models, also
  when the loader shuffles (two passes over a shuffled loader pair different stimuli: the
  same model against itself then scores near 0);
- **streamed where the metric allows it** (:func:`simmetrics.streaming_metrics`): exact
  second moments per layer pair (:class:`simmetrics.PairMoments`), merged batch by batch in
  O(d_a^2 + d_b^2 + d_a d_b) memory per pair, equal to ``fit_score`` on all the rows up to
  rounding; other metrics collect the activations (checked against
  :func:`simmetrics.get_memory_budget` at the first batch) and run :func:`simmetrics.pairwise`;
- **labelled**: a :class:`ModelComparison` with ``to_frame`` (pandas) and ``plot``.
"""

import contextlib
import json
import numbers

import numpy as np
from sklearn.base import clone

from .._core.memory import check_memory, format_bytes
from .._core.parallel import Progress
from .._core.registry import as_metric
from .._core.validation import check_representation
from ..moments import compact_factor, pair_from_sides, side
from ..pairwise import LabelledMatrix, pairwise
from ..streaming import score_from_moments
from .extract import leaf_modules, select_modules

__all__ = ["compare_models", "ModelComparison", "leaf_modules"]

FEATURES = ("flatten", "pool", "nchw")


def unwrap(model, arg="model"):
    """The module inside ``torch.nn.DataParallel`` / ``DistributedDataParallel`` wrappers
    (the model itself otherwise), and whether one was removed.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Linear(2, 2)
    >>> unwrap(nn.DataParallel(net))[0] is net
    True
    """
    from torch import nn

    if not isinstance(model, nn.Module):
        raise TypeError(f"{arg} must be a torch.nn.Module, got {type(model).__name__}")
    wrapped = False
    while isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model, wrapped = model.module, True
    return model, wrapped


def select_layers(model, layers, arg="layers", wrapped=False):
    """The ``(name, module)`` pairs of ``model`` that ``layers`` selects:
    :func:`simmetrics.nn.extract.select_modules` (names, types, module objects,
    :class:`leaf_modules`), with ``wrapped`` for a model that came out of a DataParallel
    wrapper (a leading ``"module."`` of its names is accepted).

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> [name for name, _ in select_layers(net, [nn.Linear, "1"])]
    ['0', '2', '1']
    """
    return select_modules(model, layers, arg, wrapped=wrapped)


def _pool_to(t, size):
    """Adaptive average pooling of the positions of a channels-first tensor to ``size``."""
    from torch.nn import functional as F

    spatial = t.ndim - 2
    if spatial not in (1, 2, 3):
        raise ValueError(f"pool_size needs 1 to 3 position axes, got an output of shape "
                         f"{tuple(t.shape)}")
    size = (size,) * spatial if isinstance(size, numbers.Integral) else tuple(size)
    if len(size) != spatial:
        raise ValueError(f"pool_size={size!r} for an output with {spatial} position axes")
    pool = (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)[spatial - 1]
    return pool(t, size)


def features_of(t, features="flatten", pool_size=None):
    """One layer's output for one batch as a float64 (rows, d) tensor, a copy.

    ``t`` is (batch, d) or channels-first (batch, c, *positions), as torch's conv layers give.
    ``"flatten"``: one row per stimulus, every channel and position a column (Kornblith et
    al. 2019's convention for conv layers); ``"pool"``: one row per stimulus, the channel
    averages over the positions (global average pooling); ``"nchw"``: one row per position
    of every stimulus, the channels as columns (the layout ``"nchw"`` of the metrics).
    ``pool_size`` first averages the positions down to that size (adaptive average pooling),
    so that layers of different spatial sizes share their positions.

    Examples
    --------
    >>> import torch
    >>> t = torch.arange(16.0).reshape(2, 2, 2, 2)
    >>> [tuple(features_of(t, f).shape) for f in ("flatten", "pool", "nchw")]
    [(2, 8), (2, 2), (8, 2)]
    >>> features_of(t, "pool")[0].tolist()        # mean of 0..3 and of 4..7
    [1.5, 5.5]
    """
    import torch

    t = t.detach().to(torch.float64, copy=True)  # a copy: later in-place ops cannot change it
    if t.ndim == 1:
        return t[:, None]
    if t.ndim == 2:
        return t
    if pool_size is not None:
        t = _pool_to(t, pool_size)
    if features == "flatten":
        return t.reshape(t.shape[0], -1)
    if features == "pool":
        return t.mean(dim=tuple(range(2, t.ndim)))
    return t.movedim(1, -1).reshape(-1, t.shape[1])  # "nchw": positions as rows


class _Hooks:
    """Forward hooks on the selected modules of one model; each records its layer's features
    for the current batch (and counts its calls)."""

    def __init__(self, model, selected, label, features, pool_size):
        self.model, self.selected, self.label = model, selected, label
        self.features, self.pool_size = features, pool_size
        self.current, self.calls, self.stimuli = {}, {}, {}

    def _hook(self, name):
        import torch

        def record(module, args, output):
            value = output
            if isinstance(value, (tuple, list)) and value:  # (output, state) as RNNs give
                value = value[0]
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{self.label}module {name!r} returned a "
                                f"{type(output).__name__}; only tensors (or tuples whose first "
                                "item is one) can be compared")
            self.calls[name] = self.calls.get(name, 0) + 1
            self.stimuli[name] = int(value.shape[0]) if value.ndim else 0
            self.current[name] = features_of(value, self.features, self.pool_size)

        return record

    @contextlib.contextmanager
    def attached(self):
        """Hooks on and every module in evaluation mode; afterwards hooks removed and each
        module's own training flag restored, also when the pass raises."""
        modes = [(m, m.training) for m in self.model.modules()]
        handles = []
        try:
            for name, module in self.selected:
                handles.append(module.register_forward_hook(self._hook(name)))
            self.model.eval()
            yield self
        finally:
            for handle in handles:
                handle.remove()
            for module, training in modes:
                module.training = training

    def forward(self, batch, device):
        self.current, self.calls, self.stimuli = {}, {}, {}
        inputs = _to_device(batch, device)
        self.model(**inputs) if isinstance(inputs, dict) else self.model(inputs)
        for name, _ in self.selected:
            count = self.calls.get(name, 0)
            if count != 1:
                raise ValueError(
                    f"{self.label}module {name!r} ran {count} times in one forward pass; "
                    + ("it is not used by the model's forward" if count == 0 else
                       "a module used several times cannot be recorded unambiguously"))
        return self.current


def _to_device(x, device):
    if isinstance(x, dict):
        return {k: _to_device(v, device) for k, v in x.items()}
    return x.to(device) if device is not None and hasattr(x, "to") else x


def _inputs(data):
    """(index, model input) for every batch: a tensor, an array, a dict of model inputs, or
    the first item of a tuple/list."""
    import torch

    if isinstance(data, (str, bytes, dict)) or not hasattr(data, "__iter__") \
            or isinstance(data, (torch.Tensor, np.ndarray)):
        raise TypeError("data must be an iterable of batches (a DataLoader, a list of tensors "
                        f"or of dicts of model inputs), got {type(data).__name__}; cut a "
                        "tensor into batches first (e.g. torch.split(x, 256))")
    for i, batch in enumerate(data):
        if isinstance(batch, (list, tuple)):
            if not batch:
                raise ValueError(f"data: batch {i} is empty")
            batch = batch[0]
        if isinstance(batch, np.ndarray):
            batch = torch.from_numpy(batch)
        if not isinstance(batch, (torch.Tensor, dict)):
            raise TypeError(f"data: batch {i} is a {type(batch).__name__}; expected a tensor, "
                            "a dict of model inputs, or a tuple whose first item is one")
        yield i, batch


def _device(model):
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return None


def _expected_stimuli(data):
    """The number of stimuli ``data`` will yield where it can be known before the pass."""
    dataset = getattr(data, "dataset", None)
    return len(dataset) if hasattr(dataset, "__len__") else None


# -- the result ---------------------------------------------------------------------------------
class ModelComparison:
    """What :func:`compare_models` returns: one L_a x L_b matrix per metric, labelled.

    Attributes
    ----------
    values : dict of str to LabelledMatrix
        ``values[metric]`` is the (L_a, L_b) float64 array (a
        :class:`simmetrics.pairwise.LabelledMatrix`: a numpy array with ``row_labels`` and
        ``col_labels``) of that metric between layer i of model_a and layer j of model_b; keys
        are the metric names as given (an instance's ``repr`` for a metric object).
    layers_a, layers_b : tuple of str
        The layer names, as ``named_modules()`` spells them (DataParallel's ``module.``
        prefix removed).
    metrics : dict of str to Metric
        The metric of each key (unfitted).
    streamed : dict of str to bool
        Whether the metric was accumulated from second moments (True) or computed on
        collected activations (False).
    names : (str, str)
        The two models' names (axis labels of :meth:`plot`).
    n_stimuli, n_rows : int
        Stimuli seen, and the rows they made (more with ``features="nchw"``).

    Examples
    --------
    >>> M = ModelComparison({"linear_cka": [[1.0, 0.5]]}, ["fc"], ["fc", "out"])
    >>> M.values["linear_cka"].col_labels, M.layers_a
    (('fc', 'out'), ('fc',))
    """

    def __init__(self, values, layers_a, layers_b, metrics=None, streamed=None,
                 names=("model_a", "model_b"), n_stimuli=None, n_rows=None, features="flatten"):
        self.layers_a, self.layers_b = tuple(layers_a), tuple(layers_b)
        self.values = {k: LabelledMatrix(v, self.layers_a, self.layers_b)
                       for k, v in values.items()}
        self.metrics = {k: as_metric(k) for k in values} if metrics is None else dict(metrics)
        self.streamed = dict(streamed or {})
        self.names = tuple(names)
        self.n_stimuli, self.n_rows, self.features = n_stimuli, n_rows, features

    def _key(self, metric):
        if metric is None:
            return next(iter(self.values))
        key = metric if isinstance(metric, str) else repr(metric)
        if key not in self.values:
            raise KeyError(f"metric {key!r} was not computed; the comparison has "
                           f"{list(self.values)}")
        return key

    def __getitem__(self, metric):
        return self.values[self._key(metric)]

    def to_frame(self, metric=None):
        """``values[metric]`` (default: the first metric) as a ``pandas.DataFrame``: the
        layers of model_a as its index, those of model_b as its columns."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("ModelComparison.to_frame needs pandas, which is not installed: "
                              "pip install pandas (the matrices are in .values)") from None
        key = self._key(metric)
        frame = pd.DataFrame(np.asarray(self.values[key]).copy(), index=list(self.layers_a),
                             columns=list(self.layers_b))
        frame.index.name, frame.columns.name = self.names
        return frame

    def to_json(self):
        """The comparison as a JSON string (layers, names, metrics, and the matrices as lists)."""
        return json.dumps({
            "names": list(self.names), "layers_a": list(self.layers_a),
            "layers_b": list(self.layers_b), "features": self.features,
            "n_stimuli": self.n_stimuli, "n_rows": self.n_rows,
            "streamed": self.streamed,
            "values": {k: np.asarray(v).tolist() for k, v in self.values.items()},
        })

    def plot(self, metric=None, ax=None, **kwargs):
        """Heatmap of ``values[metric]`` (:func:`simmetrics.plot_similarity_matrix`).

        Defaults, each overridden by a keyword of that function: the colour range from the
        metric's ``bounds`` (a bound at infinity: the data's extreme on that side), so a flat
        0.85-0.92 matrix of a [0, 1] metric looks flat; ``"viridis"`` for a similarity,
        ``"viridis_r"`` for a distance (alike is bright for both); the colour bar labelled
        with the metric's key and kind; the models' names on the axes.
        """
        from ..plots import plot_similarity_matrix

        key = self._key(metric)
        M, m = np.asarray(self.values[key]), self.metrics[key]
        low, high = (float(b) for b in m.bounds)
        options = dict(
            vmin=low if np.isfinite(low) else float(M.min()),
            vmax=high if np.isfinite(high) else float(M.max()),
            cmap="viridis" if m.kind == "similarity" else "viridis_r",
            colorbar_label=f"{key} ({m.kind})", xlabel=self.names[1], ylabel=self.names[0],
        )
        options.update(kwargs)
        return plot_similarity_matrix(self.values[key], ax=ax, **options)

    def __repr__(self):
        return (f"ModelComparison({self.names[0]} x {self.names[1]}: "
                f"{len(self.layers_a)} x {len(self.layers_b)} layers, metrics "
                f"{list(self.values)}, {self.n_stimuli} stimuli)")


# -- the driver -------------------------------------------------------------------------------
def _metric_table(metrics):
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        metrics = [metrics]
    if not metrics:
        raise ValueError("metrics is empty: name at least one metric")
    table = {}
    for m in metrics:
        metric = as_metric(m)
        metric._validate_params()
        key = m if isinstance(m, str) else repr(m)
        if key in table:
            raise ValueError(f"metrics: {key!r} is given twice")
        if metric.layout is not None:
            raise ValueError(f"metrics: {key!r} has layout={metric.layout!r}; compare_models "
                             "reads the layers itself (its features= option), so give the "
                             "metric without a layout")
        table[key] = metric
    return table


def _streams(metric):
    """Whether the metric is accumulated from moments here: it has an exact moments route
    and no per-batch input step (which pairs of shared per-layer statistics cannot take)."""
    return metric._score_from_moments is not None and metric._batch_layout is None


class _Pass:
    """The state of one pass: per layer pair statistics, collected features, counts."""

    def __init__(self, keys_a, keys_b, stream, collect, row_terms, factor):
        self.keys_a, self.keys_b = keys_a, keys_b
        self.stream, self.collect = stream, bool(collect)
        self.collected = collect  # the metrics that run on the collected activations
        self.row_terms, self.factor = row_terms, factor
        self.stats = {}
        self.stored = {k: [] for k in (keys_a + keys_b if collect else [])}
        self.n_stimuli = self.n_rows = 0
        self.widths = None

    def check_first(self, feats, stimuli, expected):
        """At the first batch: the memory the pass will need, against the budget."""
        self.widths = {k: int(feats[k].shape[1]) for k in self.keys_a + self.keys_b}
        nbytes, parts = 0, []
        if self.stream:
            pair = sum(8 * (self.widths[a] ** 2 + self.widths[b] ** 2
                            + self.widths[a] * self.widths[b]
                            + (self.widths[a] + self.widths[b]) ** 2 * self.factor)
                       for a in self.keys_a for b in self.keys_b)
            nbytes += pair
            parts.append(f"second moments of {len(self.keys_a)} x {len(self.keys_b)} layer "
                         f"pairs ({format_bytes(pair)})")
        if self.collect and expected is not None:
            rows = feats[self.keys_a[0]].shape[0] * expected // max(stimuli, 1)
            held = 16 * rows * sum(self.widths[k] for k in set(self.keys_a + self.keys_b))
            nbytes += held
            parts.append(f"the activations of {expected:,} stimuli ({rows:,} rows) for the "
                         f"metrics that do not stream, twice while they are joined "
                         f"({format_bytes(held)})")
        check_memory(nbytes, "compare_models holding " + " and ".join(parts), [
            "features='pool' (one channel average per stimulus) or pool_size=(h, w) before "
            "'flatten' / 'nchw' for conv layers", "fewer layers per call",
            "streaming metrics only (simmetrics.streaming_metrics()), which never hold the "
            "activations"])
        if self.collect and expected is not None:  # the metrics' own n x n work, up front
            count = len(set(self.keys_a + self.keys_b))
            for metric in self.collected:
                metric._check_rows(rows, max(self.widths.values()), count=count,
                                   prefix=f"{count} layers: ")

    def add(self, i, feats_a, feats_b, stimuli, expected):
        feats = {**feats_a, **feats_b}
        if self.widths is None:
            self.check_first(feats, stimuli, expected)
        rows = {k: int(feats[k].shape[0]) for k in self.keys_a + self.keys_b}
        if len(set(rows.values())) != 1:
            listed = ", ".join(f"{k} {r:,}" for k, r in rows.items())
            raise ValueError(
                f"data: batch {i}: the layers give different numbers of rows ({listed}); "
                "with features='nchw' every position is a row, so layers of different "
                "spatial sizes need pool_size=(h, w) (a common size) or features='pool' / "
                "'flatten' (one row per stimulus)")
        for k in self.keys_a + self.keys_b:
            if feats[k].shape[1] != self.widths[k]:
                raise ValueError(f"data: batch {i}: {k} has {feats[k].shape[1]} features, "
                                 f"the first batch {self.widths[k]}")
        self.n_rows += next(iter(rows.values()))
        if self.collect:
            for k in self.stored:
                self.stored[k].append(feats[k].cpu().numpy())
            if expected is None:  # a stream of unknown length: checked as it grows
                check_memory(16 * self.n_rows * sum(self.widths.values()),
                             f"compare_models after {i + 1} batches, holding the activations "
                             "of the metrics that do not stream",
                             ["features='pool' or pool_size=(h, w)", "fewer stimuli"])
        if not self.stream:
            return
        sides = {}
        for k in self.keys_a + self.keys_b:
            A = check_representation(feats[k], f"{k} (batch {i})", min_samples=1,
                                     policy="tensor")
            sides[k] = side(A, "mean", self.row_terms, True, True)
        for a in self.keys_a:
            for b in self.keys_b:
                part = pair_from_sides(sides[a], sides[b], factor="rows" if self.factor else False)
                prev = self.stats.get((a, b))
                self.stats[(a, b)] = part if prev is None else prev + part


def compare_models(model_a, model_b, data, layers_a, layers_b=None, metrics=("linear_cka",),
                   features="flatten", pool_size=None, streaming=True, names=None,
                   device=None, progress=False):
    """Every metric between every selected layer of two torch models, in one pass over data.

    Each batch goes through ``model_a`` then ``model_b`` (evaluation mode, ``torch.no_grad()``)
    before the next is drawn, so both see the same stimuli whatever the loader's order. Hooks
    turn each layer's output into a float64 (rows, d) matrix (``features``). A streaming metric
    (:func:`simmetrics.streaming_metrics`) is evaluated on the exact second moments of each
    layer pair (:class:`simmetrics.PairMoments`: X'X, Y'Y, X'Y, merged batch by batch by Chan
    et al.'s pairwise update), equal to ``fit_score`` on all the rows up to rounding; the others
    run :func:`simmetrics.pairwise` on collected activations, whose memory (and the metric's
    n x n work) is checked against :func:`simmetrics.get_memory_budget` at the first batch
    where the data set's length is known. Hooks, every module's training flag and the grad
    mode are restored afterwards, also when a forward pass raises.

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
        May be the same object (each batch then runs once). ``DataParallel`` and
        ``DistributedDataParallel`` wrappers are removed (the inner module runs).
    data : iterable of batches
        A ``torch.utils.data.DataLoader`` (it may shuffle) or any iterable; a batch is a
        tensor (the input), a dict of model inputs (``model(**batch)``), or a tuple/list whose
        first item is one of these (``(x, y)`` batches). Inputs go to each model's device.
    layers_a : str, type, torch.nn.Module, leaf_modules, or a list of these
        Model_a's layers (:func:`select_layers`): names from ``named_modules()`` (a typo
        gets the closest names), module types (every module of the type), module objects, or
        :class:`leaf_modules` (every leaf of some types). A module that returns a tuple is
        read through its first item.
    layers_b : same, optional
        Model_b's layers; default the same selectors as ``layers_a``.
    metrics : str, Metric, or a list of these, default ("linear_cka",)
        Registered names or instances (without a ``layout``).
    features : {"flatten", "pool", "nchw"}, default "flatten"
        How a channels-first output of more than two axes, (batch, c, *positions), becomes
        rows: ``"flatten"`` one row per stimulus with c * positions columns (Kornblith et
        al. 2019's convention), ``"pool"`` the channel averages over the positions (global
        average pooling: c columns), ``"nchw"`` one row per position with c columns (all
        layers must then have the same positions). Dense (batch, d) outputs are used as
        they are.
    pool_size : int or tuple of int, optional
        Average each conv output's positions down to this size first (adaptive average
        pooling), e.g. to compare layers of 32 x 32 and 8 x 8 positions with ``"nchw"``, or to
        keep ``"flatten"`` small.
    streaming : bool, default True
        False collects the activations for every metric (the streaming metrics then run on
        them through :func:`simmetrics.pairwise`).
    names : (str, str), optional
        The models' names (axis labels); default their class names.
    device : torch.device or str, optional
        Where the inputs go; default each model's first parameter's device.
    progress : bool, default False
        A progress bar over the batches on stderr (when ``data`` has a length).

    Returns
    -------
    ModelComparison
        ``.values[metric]``: the (L_a, L_b) matrix; ``.to_frame(metric)``, ``.plot(metric)``.

    Raises
    ------
    ValueError
        A layer name the model lacks (with the closest names), no batch, layers whose rows do
        not match (``"nchw"`` across spatial sizes), a module that runs twice or never per
        forward pass, a bad option; :class:`simmetrics.MemoryBudgetError` (a ValueError too)
        where the statistics or the activations exceed the budget.
    TypeError
        Models that are not modules, a layer whose output is not a tensor, bad batches.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> _ = torch.manual_seed(0)
    >>> a = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    >>> b = nn.Sequential(nn.Linear(8, 12), nn.Tanh(), nn.Linear(12, 4))
    >>> loader = DataLoader(TensorDataset(torch.randn(256, 8)), batch_size=64, shuffle=True)
    >>> result = compare_models(a, b, loader, ["0", "2"])
    >>> result.values["linear_cka"].shape, result.layers_b
    ((2, 2), ('0', '2'))
    >>> self_cka = compare_models(a, a, loader, ["0", "2"]).values["linear_cka"]
    >>> [round(float(v), 10) for v in self_cka.diagonal()]
    [1.0, 1.0]
    """
    import torch

    model_a, wrapped_a = unwrap(model_a, "model_a")
    model_b, wrapped_b = unwrap(model_b, "model_b")
    if features not in FEATURES:
        raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
    if pool_size is not None:
        sizes = (pool_size,) if isinstance(pool_size, numbers.Integral) else pool_size
        if not isinstance(sizes, (tuple, list)) or not sizes or any(
                isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1
                for s in sizes):
            raise ValueError(f"pool_size must be a positive int or a tuple of them, got "
                             f"{pool_size!r}")
        if features == "pool":
            raise ValueError("pool_size applies to features='flatten' or 'nchw'; "
                             "features='pool' already averages over every position")
    if not isinstance(streaming, bool):
        raise TypeError(f"streaming must be True or False, got {streaming!r}")
    table = _metric_table(metrics)
    if names is None:
        names = (type(model_a).__name__, type(model_b).__name__)
        if names[0] == names[1] and model_a is not model_b:
            names = (f"{names[0]} (a)", f"{names[1]} (b)")
    if not (isinstance(names, (tuple, list)) and len(names) == 2):
        raise ValueError(f"names must be a pair of str, got {names!r}")
    sel_a = select_layers(model_a, layers_a, "layers_a", wrapped_a)
    sel_b = select_layers(model_b, layers_a if layers_b is None else layers_b,
                          "layers_a" if layers_b is None else "layers_b", wrapped_b)
    same = model_a is model_b
    # record keys: one per (side, layer); the same model runs once with the union of layers
    key_a = {n: f"layers_a[{n!r}]" for n, _ in sel_a}
    key_b = {n: (key_a[n] if same and n in key_a else f"layers_b[{n!r}]") for n, _ in sel_b}
    stream = {k: streaming and _streams(m) for k, m in table.items()}
    collect = [m for k, m in table.items() if not stream[k]]
    streamed = [m for k, m in table.items() if stream[k]]
    run = _Pass(list(key_a.values()), list(key_b.values()), any(stream.values()), collect,
                any(bool(m._moments_row_terms) for m in streamed),
                any(bool(m._moments_factor) for m in streamed))
    if same:
        union = dict(sel_a)
        union.update(sel_b)
        hooks = [_Hooks(model_a, list(union.items()), "model_a: ", features, pool_size)]
    else:
        hooks = [_Hooks(model_a, sel_a, "model_a: ", features, pool_size),
                 _Hooks(model_b, sel_b, "model_b: ", features, pool_size)]
    devices = [_device(h.model) if device is None else device for h in hooks]
    expected = _expected_stimuli(data)
    total = len(data) if hasattr(data, "__len__") else 0
    with contextlib.ExitStack() as stack:
        for h in hooks:
            stack.enter_context(h.attached())
        stack.enter_context(torch.no_grad())
        bar = stack.enter_context(Progress(total, "compare_models batches",
                                           enabled=bool(progress and total)))
        n_batches = 0
        for i, batch in _inputs(data):
            outs = [h.forward(batch, dev) for h, dev in zip(hooks, devices)]
            feats_a = {key_a[n]: outs[0][n] for n, _ in sel_a}
            feats_b = {key_b[n]: outs[-1][n] for n, _ in sel_b}
            stimuli = {*hooks[0].stimuli.values(), *hooks[-1].stimuli.values()}
            if len(stimuli) != 1:
                raise ValueError(f"data: batch {i}: the selected layers' outputs have "
                                 f"different first axes {sorted(stimuli)}; every layer's "
                                 "first axis must be the batch of stimuli")
            stimuli = stimuli.pop()
            run.n_stimuli += stimuli
            run.add(i, feats_a, feats_b, stimuli, expected)
            n_batches += 1
            bar.update()
        if n_batches == 0:
            raise ValueError("data is empty: no batch was produced")
    return _finish(run, table, stream, sel_a, sel_b, key_a, key_b, same, names, features)


def _finish(run, table, stream, sel_a, sel_b, key_a, key_b, same, names, features):
    layers_a, layers_b = [n for n, _ in sel_a], [n for n, _ in sel_b]
    values = {}
    stats = {pair: compact_factor(s) for pair, s in run.stats.items()}
    if run.collect:
        joined = {k: np.concatenate(chunks) for k, chunks in run.stored.items()}
        run.stored = None
        reps_a = {n: joined[key_a[n]] for n in layers_a}
        reps_b = {n: joined[key_b[n]] for n in layers_b}
    for key, metric in table.items():
        if stream[key]:
            M = np.empty((len(layers_a), len(layers_b)))
            for i, a in enumerate(layers_a):
                for j, b in enumerate(layers_b):
                    try:
                        M[i, j] = score_from_moments(clone(metric),
                                                     stats[(key_a[a], key_b[b])])
                    except (TypeError, ValueError) as exc:
                        raise type(exc)(f"{key}: {key_a[a]} vs {key_b[b]}: {exc}") from exc
        else:
            mirror = same and layers_a == layers_b
            M = pairwise(metric, reps_a, None if mirror else reps_b)
        values[key] = M
    return ModelComparison(values, layers_a, layers_b, table, stream, names, run.n_stimuli,
                           run.n_rows, features)
