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
import numbers
from collections.abc import Mapping

import numpy as np
from sklearn.base import clone

from .._core.memory import check_memory, format_bytes
from .._core.parallel import Progress
from .._core.registry import as_metric
from .._core.validation import check_representation
from ..moments import compact_factor, pair_from_sides, side
from ..pairwise import pairwise
from ..streaming import score_from_moments
from .comparison import ModelComparison
from .extract import hooks_attached, leaf_modules, select_modules, to_device
from .tokens import (HIDDEN_STATES, TOKENS, WORD_IDS, attention_mask_of, hidden_states_of,
                     hidden_tensor, token_rows)

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
    """Forward hooks on the selected modules of one model; each records its layer's rows
    for the current batch (and counts its calls). With ``hidden`` the model is called with
    ``output_hidden_states=True`` and every entry of its output's ``hidden_states`` is a layer
    too (``"hidden_states.0"``, ...)."""

    def __init__(self, model, selected, label, features, pool_size, tokens=None, hidden=False):
        self.model, self.selected, self.label = model, selected, label
        self.features, self.pool_size, self.tokens, self.hidden = features, pool_size, tokens, \
            hidden
        self.mask = self.word_ids = None

    def _rows(self, name, value):
        """What one layer gave for one batch as float64 (rows, d); the first axis counted."""
        self.stimuli[name] = int(value.shape[0]) if value.ndim else 0
        where = f"{self.label}module {name!r}: "
        if self.tokens is not None:
            self.current[name] = token_rows(value, self.tokens, self.mask, self.word_ids, where)
            return
        if self.mask is not None and value.ndim >= 3:
            raise ValueError(
                f"{where}the batch has an attention_mask and the output has shape "
                f"{tuple(value.shape)} (batch, tokens, ...); pass tokens='tokens' (every "
                "non-padding token a row), 'mean', 'cls' or 'last' (one row per sequence), "
                "so that padding never becomes a row")
        self.current[name] = features_of(value, self.features, self.pool_size)

    def _hook(self, name):
        def record(module, args, output):
            value = hidden_tensor(output, f"{self.label}module {name!r}")
            self.calls[name] = self.calls.get(name, 0) + 1
            self._rows(name, value)

        return record

    @contextlib.contextmanager
    def attached(self):
        """Hooks on and every module in evaluation mode (:func:`hooks_attached`)."""
        with hooks_attached(self.model, [(m, self._hook(n)) for n, m in self.selected]):
            yield self

    def forward(self, batch, device):
        """Run the model on one batch: (rows per layer, first axes, the names of the hidden
        states, the non-padding input_ids or None)."""
        self.current, self.calls, self.stimuli = {}, {}, {}
        inputs = to_device(batch, device)
        self.mask, self.word_ids = attention_mask_of(inputs), None
        if self.tokens == "words" and isinstance(inputs, dict):
            self.word_ids = inputs.pop(WORD_IDS, None)
        options = {"output_hidden_states": True} if self.hidden else {}
        try:
            out = self.model(**inputs, **options) if isinstance(inputs, dict) \
                else self.model(inputs, **options)
        except TypeError as exc:
            if not (self.hidden and "output_hidden_states" in str(exc)):
                raise
            raise TypeError(f"{self.label}layers {HIDDEN_STATES!r}: the model does not take "
                            f"output_hidden_states=True ({exc}); this source needs a "
                            "HuggingFace model; select modules by name instead") from exc
        for name, _ in self.selected:
            count = self.calls.get(name, 0)
            if count != 1:
                raise ValueError(
                    f"{self.label}module {name!r} ran {count} times in one forward pass; "
                    + ("it is not used by the model's forward" if count == 0 else
                       "a module used several times cannot be recorded unambiguously"))
        hidden = []
        if self.hidden:
            for j, state in enumerate(hidden_states_of(out, self.label)):
                hidden.append(f"{HIDDEN_STATES}.{j}")
                self._rows(hidden[-1], state)
        ids = inputs.get("input_ids") if isinstance(inputs, dict) and \
            self.tokens == "tokens" else None
        if ids is not None:
            ids = ids.detach().cpu()
            ids = ids[self.mask.detach().cpu() != 0] if self.mask is not None and \
                self.mask.shape == ids.shape else ids.reshape(-1)
        return self.current, self.stimuli, hidden, ids


def _one_input(batch, i, where="data"):
    import torch

    if isinstance(batch, (list, tuple)):
        if not batch:
            raise ValueError(f"{where}: batch {i} is empty")
        batch = batch[0]
    if isinstance(batch, np.ndarray):
        batch = torch.from_numpy(batch)
    if not isinstance(batch, (torch.Tensor, Mapping)):
        raise TypeError(f"{where}: batch {i} is a {type(batch).__name__}; expected a tensor, "
                        "a dict of model inputs, or a tuple whose first item is one")
    return batch


def _inputs(data, inputs=None):
    """(index, input of model_a, input of model_b) for every batch: a tensor, an array, a
    dict of model inputs, or the first item of a tuple/list; with ``inputs``, the two that
    ``inputs(batch)`` returns."""
    import torch

    if isinstance(data, (str, bytes, dict)) or not hasattr(data, "__iter__") \
            or isinstance(data, (torch.Tensor, np.ndarray)):
        raise TypeError("data must be an iterable of batches (a DataLoader, a list of tensors "
                        f"or of dicts of model inputs), got {type(data).__name__}; cut a "
                        "tensor into batches first (e.g. torch.split(x, 256))")
    for i, batch in enumerate(data):
        if inputs is None:
            batch = _one_input(batch, i)
            yield i, batch, batch
            continue
        pair = inputs(batch)
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise TypeError(f"inputs(batch {i}) must return (inputs of model_a, inputs of "
                            f"model_b), got a {type(pair).__name__}")
        yield i, _one_input(pair[0], i, "inputs[0]"), _one_input(pair[1], i, "inputs[1]")


def _device(model):
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return None


def _expected_stimuli(data):
    """The number of stimuli ``data`` will yield where it can be known before the pass."""
    dataset = getattr(data, "dataset", None)
    return len(dataset) if hasattr(dataset, "__len__") else None


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
            # one d x d matrix per layer (shared by its pairs: _share_layer_moments), the cross
            # product of each pair, and the whitening metrics' factor of each pair; twice the
            # layers' for the merge of a batch
            pair = sum(8 * (self.widths[a] * self.widths[b]
                            + (self.widths[a] + self.widths[b]) ** 2 * self.factor)
                       for a in self.keys_a for b in self.keys_b)
            pair += 2 * sum(8 * self.widths[k] ** 2 for k in set(self.keys_a + self.keys_b))
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
                "'flatten' (one row per stimulus); with tokens='tokens' or 'words' a "
                "(batch, d) output (a pooler) needs tokens='mean', 'cls' or 'last'")
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
        # One copy of each layer's own moments for all its pairs. Every pair of layer a merges
        # a's batch moments with the same operations on the same numbers (the shifts and
        # scales of a merge depend on each side alone), so the copies are equal and the first
        # stands for all, replacing each pair's as soon as it is made: the pairs then hold
        # their cross products, plus one d x d matrix per layer, not two per pair. The merges
        # make new objects and never modify these.
        own_x, own_y = {}, {}
        for a in self.keys_a:
            for b in self.keys_b:
                part = pair_from_sides(sides[a], sides[b], factor="rows" if self.factor else False)
                prev = self.stats.get((a, b))
                merged = part if prev is None else prev + part
                merged.x = own_x.setdefault(a, merged.x)
                merged.y = own_y.setdefault(b, merged.y)
                self.stats[(a, b)] = merged


def _split_hidden(layers, model, arg, wrapped):
    """The modules that ``layers`` selects, and where ``"hidden_states"`` stands among them
    (None when it is not there)."""
    selectors = list(layers) if isinstance(layers, (list, tuple)) else [layers]
    spot = next((k for k, s in enumerate(selectors) if s == HIDDEN_STATES), None)
    if spot is None:
        return select_layers(model, layers, arg, wrapped), None
    rest = selectors[:spot] + [s for s in selectors[spot:] if s != HIDDEN_STATES]
    before = select_layers(model, selectors[:spot], arg, wrapped) if spot else []
    picked = dict(select_layers(model, rest, arg, wrapped)) if rest else {}
    return list(picked.items()), len([n for n, _ in before])


def _order(selected, spot, hidden):
    names = [n for n, _ in selected]
    return names if spot is None else names[:spot] + hidden + names[spot:]


def compare_models(model_a, model_b, data, layers_a, layers_b=None, metrics=("linear_cka",),
                   features="flatten", pool_size=None, streaming=True, names=None,
                   device=None, progress=False, tokens=None, inputs=None):
    """Every metric between every selected layer of two torch models, in one pass over data.

    Each batch goes through ``model_a`` then ``model_b`` (evaluation mode, ``torch.no_grad()``)
    before the next is drawn, so both see the same stimuli whatever the loader's order. Hooks
    turn each layer's output into a float64 (rows, d) matrix (``features``, or ``tokens`` for
    a transformer). A streaming metric
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
        tensor (the input), a dict of model inputs (``model(**batch)``; a tokenizer's
        ``BatchEncoding`` too), or a tuple/list whose first item is one of these (``(x, y)``
        batches). Inputs go to each model's device, a dict's tensors one by one.
    layers_a : str, type, torch.nn.Module, leaf_modules, or a list of these
        Model_a's layers (:func:`select_layers`): names from ``named_modules()`` (a typo
        gets the closest names), module types (every module of the type), module objects, or
        :class:`leaf_modules` (every leaf of some types). What a module returns is read by
        :func:`simmetrics.nn.tokens.hidden_tensor`: a tensor; else a ModelOutput-like
        mapping or object's ``last_hidden_state`` (else its ``hidden_states``); else a tuple's
        first item. The name ``"hidden_states"`` calls the model with
        ``output_hidden_states=True`` and makes every entry of its output's ``hidden_states``
        a layer, labelled ``"hidden_states.0"`` (the embeddings), ``"hidden_states.1"``, ...
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
    tokens : {"tokens", "mean", "cls", "last", "words"}, optional
        For transformers: outputs are (batch, tokens, d), and the batch's ``attention_mask``
        (a dict batch; without one every token counts) removes the padding, which never
        becomes a row (:func:`simmetrics.nn.tokens.token_rows`): ``"tokens"`` every token a
        row (both models must see the same tokens), ``"mean"`` the mean of each sequence's
        tokens, ``"cls"`` its first token, ``"last"`` its last token, ``"words"`` one row per
        word, the mean of its sub-word tokens (batches from
        :func:`simmetrics.nn.tokens.word_batch`), which compares two models with different
        tokenizers word by word. Default None: ``features`` applies, and a dict batch with an
        ``attention_mask`` whose layer gives three or more axes is refused.
    inputs : callable, optional
        ``inputs(batch)`` returns ``(inputs of model_a, inputs of model_b)`` for each batch
        that ``data`` yields (e.g. a list of texts tokenized by each model's tokenizer);
        default both models get the batch itself.

    Returns
    -------
    ModelComparison
        ``.values[metric]``: the (L_a, L_b) matrix; ``.to_frame(metric)``, ``.plot(metric)``.

    Raises
    ------
    ValueError
        A layer name the model lacks (with the closest names), no batch, layers whose rows do
        not match (``"nchw"`` across spatial sizes, ``tokens="tokens"`` across tokenizers), a
        module that runs twice or never per forward pass, a bad option;
        :class:`simmetrics.MemoryBudgetError` (a ValueError too) where the statistics or the
        activations exceed the budget.
    TypeError
        Models that are not modules, a layer whose output holds no tensor, bad batches.

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
    if tokens is not None and tokens not in TOKENS:
        raise ValueError(f"tokens must be one of {TOKENS} or None, got {tokens!r}")
    if tokens is not None and (features != "flatten" or pool_size is not None):
        raise ValueError("features and pool_size apply to conv outputs; with tokens= the "
                         "(batch, tokens, d) outputs become rows by the tokens option alone")
    if inputs is not None and not callable(inputs):
        raise TypeError(f"inputs must be a callable batch -> (inputs_a, inputs_b), got "
                        f"{type(inputs).__name__}")
    if not isinstance(streaming, bool):
        raise TypeError(f"streaming must be True or False, got {streaming!r}")
    table = _metric_table(metrics)
    if names is None:
        names = (type(model_a).__name__, type(model_b).__name__)
        if names[0] == names[1] and model_a is not model_b:
            names = (f"{names[0]} (a)", f"{names[1]} (b)")
    if not (isinstance(names, (tuple, list)) and len(names) == 2):
        raise ValueError(f"names must be a pair of str, got {names!r}")
    sel_a, spot_a = _split_hidden(layers_a, model_a, "layers_a", wrapped_a)
    sel_b, spot_b = _split_hidden(layers_a if layers_b is None else layers_b, model_b,
                                  "layers_a" if layers_b is None else "layers_b", wrapped_b)
    same = model_a is model_b
    shared = same and inputs is None  # one forward per batch, the record keys shared
    stream = {k: streaming and _streams(m) for k, m in table.items()}
    collect = [m for k, m in table.items() if not stream[k]]
    streamed = [m for k, m in table.items() if stream[k]]
    options = (features, pool_size, tokens)
    if same:
        union = dict(sel_a)
        union.update(sel_b)
        hooks = [_Hooks(model_a, list(union.items()), "model_a: ", *options,
                        hidden=spot_a is not None or spot_b is not None)]
    else:
        hooks = [_Hooks(model_a, sel_a, "model_a: ", *options, hidden=spot_a is not None),
                 _Hooks(model_b, sel_b, "model_b: ", *options, hidden=spot_b is not None)]
    devices = [_device(h.model) if device is None else device for h in hooks]
    expected = _expected_stimuli(data)
    total = len(data) if hasattr(data, "__len__") else 0
    run = None
    with contextlib.ExitStack() as stack:
        for h in hooks:
            stack.enter_context(h.attached())
        stack.enter_context(torch.no_grad())
        bar = stack.enter_context(Progress(total, "compare_models batches",
                                           enabled=bool(progress and total)))
        for i, in_a, in_b in _inputs(data, inputs):
            out_a = hooks[0].forward(in_a, devices[0])
            out_b = out_a if shared else hooks[-1].forward(in_b, devices[-1])
            if run is None:  # the layers are known once the hidden states have been seen
                layers = (_order(sel_a, spot_a, out_a[2]), _order(sel_b, spot_b, out_b[2]))
                key_a = {n: f"layers_a[{n!r}]" for n in layers[0]}
                key_b = {n: (key_a[n] if shared and n in key_a else f"layers_b[{n!r}]")
                         for n in layers[1]}
                run = _Pass(list(key_a.values()), list(key_b.values()), any(stream.values()),
                            collect, any(bool(m._moments_row_terms) for m in streamed),
                            any(bool(m._moments_factor) for m in streamed))
            feats_a = {key_a[n]: out_a[0][n] for n in layers[0]}
            feats_b = {key_b[n]: out_b[0][n] for n in layers[1]}
            if not shared and tokens in ("tokens", "words"):
                _check_tokens(i, tokens, out_a, out_b, feats_a, feats_b)
            stimuli = {*(out_a[1][n] for n in layers[0]), *(out_b[1][n] for n in layers[1])}
            if len(stimuli) != 1:
                raise ValueError(f"data: batch {i}: the selected layers' outputs have "
                                 f"different first axes {sorted(stimuli)}; every layer's "
                                 "first axis must be the batch of stimuli")
            stimuli = stimuli.pop()
            run.n_stimuli += stimuli
            run.add(i, feats_a, feats_b, stimuli, expected)
            bar.update()
        if run is None:
            raise ValueError("data is empty: no batch was produced")
    return _finish(run, table, stream, layers, key_a, key_b, shared, names, features, tokens)


def _check_tokens(i, tokens, out_a, out_b, feats_a, feats_b):
    """With a row per token (or word), both models must have seen the same tokens (words)."""
    ids_a, ids_b = out_a[3], out_b[3]
    rows_a, rows_b = ({int(f.shape[0]) for f in feats.values()} for feats in (feats_a, feats_b))
    if len(rows_a) > 1 or len(rows_b) > 1:
        return  # rows differ within a model: _Pass.add says why
    rows = rows_a | rows_b
    differ = len(rows) > 1 or (ids_a is not None and ids_b is not None and (
        ids_a.shape != ids_b.shape or not bool((ids_a == ids_b).all())))
    if differ:
        what = "tokens" if tokens == "tokens" else "words"
        raise ValueError(
            f"data: batch {i}: the two models see different {what} (rows {sorted(rows)}"
            + (", other input_ids" if tokens == "tokens" else "")
            + "), e.g. from different tokenizers; pool per sequence (tokens='mean', 'cls' or "
            "'last') or align the sub-word tokens by words (tokens='words' with batches from "
            "simmetrics.nn.tokens.word_batch)")


def _finish(run, table, stream, layers, key_a, key_b, shared, names, features, tokens):
    layers_a, layers_b = layers
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
            mirror = shared and layers_a == layers_b
            M = pairwise(metric, reps_a, None if mirror else reps_b)
        values[key] = M
    return ModelComparison(values, layers_a, layers_b, table, stream, names, run.n_stimuli,
                           run.n_rows, features, tokens)
