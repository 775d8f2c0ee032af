"""Activation extraction from torch models with forward hooks.

:func:`extract_activations` runs a model over a tensor, an array or a DataLoader in batches and
collects what chosen modules compute (their outputs, or their inputs), picked by name (as
``model.named_modules()`` spells them, e.g. ``"encoder.1.relu"``), by module type (every
``nn.ReLU``) or by module object. The result is one numpy array per module, all samples
concatenated in order, ready for the metrics: (n, d) for dense layers, (n, c, h, w) for conv
features (pass ``layout="nchw"`` to a metric, or ``"flatten"`` for Kornblith et al.'s
convention).

Two details make the numbers trustworthy:

- every captured tensor is **copied** as soon as the hook sees it, so a later in-place operation
  (``nn.ReLU(inplace=True)`` after an ``nn.Linear``, ``x += ...`` in a residual block) cannot
  change what was recorded; without the copy, hooking the Linear before an in-place ReLU would
  silently return post-activation values;
- the hooks are removed when the extraction ends, also when the forward pass raises, and the
  model's training/evaluation mode is restored.

Two activation sets can be compared only if their rows are the same stimuli in the same order.
A DataLoader that shuffles gives a new order on every pass, so two extractions would pair
different stimuli (the same model extracted twice then gives linear CKA near 0):
:func:`extract_activations` refuses a loader whose order is random, and :func:`extract_pair`
runs two models on the *same* batches in one pass, which keeps them aligned whatever the order.
"""

import contextlib
import numbers
from collections.abc import Mapping

import numpy as np

from .._core.backend import tensor_from_numpy
from .tokens import attention_mask_of, hidden_tensor

__all__ = ["extract_activations", "extract_pair", "resolve_modules", "select_modules", "leaf_modules",
           "to_device", "hooks_attached"]


def _torch():
    import torch

    return torch


def resolve_modules(model, modules):
    """The named modules of ``model`` that ``modules`` selects, in the order given.

    Parameters
    ----------
    model : torch.nn.Module
    modules : str, type, torch.nn.Module, or a list/tuple of these
        A **name** from ``model.named_modules()`` (``""`` is the model itself), a module
        **type** (a subclass of ``nn.Module``: every module of that type, in registration
        order), or a **module object** inside ``model``.

    Returns
    -------
    list of (str, torch.nn.Module)
        Without duplicates (a module selected twice appears once, at its first position).

    Raises
    ------
    ValueError
        A name that is not in the model (the message suggests the closest names), a type that
        matches no module, a module object that is not part of the model, an empty selection.
    TypeError
        Anything else as a selector.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Sequential(nn.Linear(3, 3), nn.ReLU()))
    >>> [name for name, _ in resolve_modules(net, nn.ReLU)]
    ['1', '2.1']
    >>> [name for name, _ in resolve_modules(net, ["2.0", net[0]])]
    ['2.0', '0']
    """
    return select_modules(model, modules)


class leaf_modules:  # noqa: N801 - used like a function: layers_a=leaf_modules(nn.ReLU)
    """A layer selector: every *leaf* module (one without children) of the given types.

    A module type passed as a selector picks every module of that type, containers included
    (a ``BasicBlock`` of a ResNet); ``leaf_modules(nn.Module)`` picks every leaf of the model,
    ``leaf_modules(nn.Conv2d, nn.Linear)`` the leaves of those types.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.ReLU(), nn.Linear(4, 2)))
    >>> [name for name, _ in select_modules(net, leaf_modules())]
    ['0', '1.0', '1.1']
    """

    def __init__(self, *types):
        from torch import nn

        types = types or (nn.Module,)
        for t in types:
            if not (isinstance(t, type) and issubclass(t, nn.Module)):
                raise TypeError(f"leaf_modules takes torch.nn.Module types, got {t!r}")
        self.types = types

    def __repr__(self):
        return f"leaf_modules({', '.join(t.__name__ for t in self.types)})"


def select_modules(model, modules, arg="modules", model_arg="model", wrapped=False):
    """:func:`resolve_modules`, also taking :class:`leaf_modules` selectors, the messages
    naming the arguments ``arg`` and ``model_arg``; with ``wrapped`` (the model came out of a
    DataParallel wrapper) a leading ``"module."`` of a name is accepted."""
    from torch import nn

    if not isinstance(model, nn.Module):
        raise TypeError(f"{model_arg} must be a torch.nn.Module, got {type(model).__name__}")
    named = list(model.named_modules())
    by_name = dict(named)
    by_id = {id(m): name for name, m in named}
    selectors = list(modules) if isinstance(modules, (list, tuple)) else [modules]
    if not selectors:
        raise ValueError(f"{arg} is empty: name at least one module (by name, type or object)")
    out = {}
    for sel in selectors:
        if isinstance(sel, str):
            name = sel[len("module."):] if wrapped and sel.startswith("module.") else sel
            if name not in by_name:
                import difflib

                close = difflib.get_close_matches(name, [n for n, _ in named if n], n=3)
                hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                raise ValueError(
                    f"{arg}: the model has no module named {sel!r}{hint} "
                    f"(names come from model.named_modules())"
                )
            out.setdefault(name, by_name[name])
        elif isinstance(sel, leaf_modules):
            found = [(n, m) for n, m in named
                     if not any(True for _ in m.children()) and isinstance(m, sel.types)]
            if not found:
                raise ValueError(f"{arg}: the model has no {sel!r}")
            for n, m in found:
                out.setdefault(n, m)
        elif isinstance(sel, type) and issubclass(sel, nn.Module):
            found = [(n, m) for n, m in named if isinstance(m, sel)]
            if not found:
                raise ValueError(f"{arg}: the model has no module of type {sel.__name__}")
            for n, m in found:
                out.setdefault(n, m)
        elif isinstance(sel, nn.Module):
            if id(sel) not in by_id:
                raise ValueError(
                    f"{arg}: the module object {type(sel).__name__} is not part of the model"
                )
            out.setdefault(by_id[id(sel)], sel)
        else:
            raise TypeError(
                f"{arg} must be a module name (str), a module type, a module object, "
                f"leaf_modules(...), or a list of these; got {type(sel).__name__}"
            )
    return list(out.items())


def _input_tensor(x):
    """A numpy array as a CPU tensor (sharing its memory where torch can); anything else as it
    is."""
    # backend site: the model tools take numpy arrays as well as tensors
    return tensor_from_numpy(x) if isinstance(x, np.ndarray) else x


def to_device(x, device):
    """``x`` on ``device`` (None: where it is): a tensor moved, a mapping (a dict, a
    tokenizer's ``BatchEncoding``) item by item, anything else as it is.

    Examples
    --------
    >>> import torch
    >>> sorted(to_device({"input_ids": torch.zeros(1, 2), "note": "kept"}, "cpu").items())[1]
    ('note', 'kept')
    """
    if isinstance(x, Mapping):  # dicts, and the tokenizers' BatchEncoding (a UserDict)
        return {k: to_device(v, device) for k, v in x.items()}
    return x.to(device) if device is not None and hasattr(x, "to") else x


@contextlib.contextmanager
def hooks_attached(model, hooks, pre=False):
    """``hooks`` ((module, hook) pairs) registered as forward hooks (forward pre-hooks with
    ``pre``) and every module of ``model`` in evaluation mode; afterwards the hooks removed and
    each module's own training flag restored (a BatchNorm kept in eval inside a training model
    stays so), also when the pass raises.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).train()
    >>> _ = net[1].eval()
    >>> with hooks_attached(net, []):
    ...     net.training
    False
    >>> net.training, net[1].training
    (True, False)
    """
    modes = [(m, m.training) for m in model.modules()]
    handles = []
    try:
        for module, hook in hooks:
            handles.append(module.register_forward_pre_hook(hook) if pre
                           else module.register_forward_hook(hook))
        model.eval()
        yield
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training


def _batches(data, batch_size):
    """Input batches from a tensor, an array or an iterable of batches: tensors, or dicts of
    model inputs (a mapping batch, passed to the model as ``model(**batch)``)."""
    torch = _torch()
    data = _input_tensor(data)
    if isinstance(data, torch.Tensor):
        if data.ndim == 0:
            raise ValueError("data is a scalar; expected a batch of inputs (n_samples, ...)")
        for start in range(0, data.shape[0], batch_size):
            yield data[start : start + batch_size]
        return
    if isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
        raise TypeError(
            "data must be a torch.Tensor, a numpy array, or an iterable of batches (e.g. a "
            f"DataLoader); got {type(data).__name__}"
        )
    for i, batch in enumerate(data):
        if isinstance(batch, (list, tuple)):  # (inputs, targets, ...) as DataLoaders give
            if not batch:
                raise ValueError(f"data: batch {i} is empty")
            batch = batch[0]
        if isinstance(batch, Mapping):  # model inputs by name (input_ids, attention_mask, ...)
            batch = {k: _input_tensor(v) for k, v in batch.items()}
            mask = attention_mask_of(batch)
            if mask is not None and not bool((mask != 0).all()):
                raise ValueError(
                    f"data: batch {i} has padding (its attention_mask has zeros), which "
                    "extract_activations would record as stimuli like any other token; use "
                    "simmetrics.compare_models(..., tokens='tokens' | 'mean' | 'cls' | 'last' "
                    "| 'words'), which applies the mask, or batches without padding")
            yield batch
            continue
        batch = _input_tensor(batch)
        if not isinstance(batch, torch.Tensor):
            raise TypeError(
                f"data: batch {i} is a {type(batch).__name__}; expected a tensor, a "
                "(tensor, ...) tuple or a dict of model inputs"
            )
        yield batch


def _order_problem(sampler):
    """None when ``sampler`` yields the same indices in the same order on every pass, else a
    description of it. Fixed sequences of indices (lists, ranges, arrays) and the samplers of
    torch that do not shuffle are recognised; any other sampler type is not trusted."""
    from torch.utils import data as tud

    if isinstance(sampler, tud.BatchSampler):
        return _order_problem(sampler.sampler)
    if isinstance(sampler, tud.SequentialSampler):
        return None
    if type(sampler).__name__ == "_InfiniteConstantSampler":  # an IterableDataset's order
        return None
    if isinstance(sampler, tud.DistributedSampler):
        if getattr(sampler, "shuffle", True):
            return "a DistributedSampler with shuffle=True"
        return None
    if isinstance(sampler, tud.RandomSampler):
        return "a RandomSampler (what shuffle=True makes)"
    if isinstance(sampler, (tud.SubsetRandomSampler, tud.WeightedRandomSampler)):
        return f"a {type(sampler).__name__}, which draws in random order"
    if isinstance(sampler, (list, tuple, range, np.ndarray)) or (
            isinstance(sampler, _torch().Tensor)):
        return None
    return (f"a sampler of type {type(sampler).__name__}, whose order simmetrics cannot "
            "verify (pass check_order=False if it gives the same order on every pass)")


def _check_order(data):
    """Refuse a DataLoader whose order may change between passes (see extract_activations)."""
    from torch.utils.data import DataLoader

    if not isinstance(data, DataLoader):
        return
    batch_sampler = data.batch_sampler
    problem = _order_problem(data.sampler if batch_sampler is None else batch_sampler)
    if problem is not None:
        raise ValueError(
            f"data: the DataLoader draws its samples through {problem}, so every pass over "
            "it gives a different order, and activations extracted in two passes (two models, "
            "or one model twice) would pair different stimuli (the same model extracted "
            "twice gives a CKA near 0). Build the loader with shuffle=False (and a sequential "
            "sampler), or use extract_pair(model_a, model_b, data, modules_a, modules_b), "
            "which feeds every batch to both models in one pass"
        )


class _Recorder:
    """Forward hooks on the selected modules of one model, recording only while ``active``."""

    def __init__(self, model, modules, capture, arg="modules", model_arg="model", label=""):
        self.model = model
        self.selected = select_modules(model, modules, arg, model_arg)
        self.capture = capture
        self.label = label
        self.records = {name: [] for name, _ in self.selected}
        self.calls = {name: 0 for name, _ in self.selected}
        self.active = False

    def _hook(self, name):
        torch = _torch()

        def keep(value):
            if not self.active:
                return
            if isinstance(value, (tuple, list)) and self.capture == "input":
                value = value[0] if value else None
            elif self.capture == "output" and not isinstance(value, torch.Tensor):
                # a tuple or ModelOutput (transformer blocks): its hidden states
                value = hidden_tensor(value, f"{self.label}module {name!r}")
            if not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"{self.label}module {name!r} gave a {type(value).__name__} as its "
                    f"{self.capture}; only tensors can be recorded"
                )
            self.calls[name] += 1
            # copy now: an in-place operation later in the forward pass must not change it
            self.records[name].append(value.detach().to("cpu", copy=True))

        if self.capture == "input":
            return lambda module, args: keep(args)
        return lambda module, args, output: keep(output)

    @contextlib.contextmanager
    def attached(self):
        """Hooks on, the model in evaluation mode (:func:`hooks_attached`)."""
        hooks = [(module, self._hook(name)) for name, module in self.selected]
        with hooks_attached(self.model, hooks, pre=self.capture == "input"):
            yield self

    def forward(self, batch, device):
        """Run the model on one batch, recording; each selected module must run once."""
        for name in self.calls:
            self.calls[name] = 0
        self.active = True
        try:
            batch = to_device(batch, device)
            self.model(**batch) if isinstance(batch, dict) else self.model(batch)
        finally:
            self.active = False
        for name, count in self.calls.items():
            if count != 1:
                raise ValueError(
                    f"{self.label}module {name!r} ran {count} times in one forward pass; "
                    + ("it is not used by the model's forward" if count == 0 else
                       "a module used several times cannot be recorded unambiguously")
                )

    def arrays(self, dtype):
        torch = _torch()
        return {name: _to_numpy(torch.cat(chunks), dtype) for name, chunks in self.records.items()}


def _check_args(capture, batch_size):
    if capture not in ("output", "input"):
        raise ValueError(f"capture must be 'output' or 'input', got {capture!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def _model_device(model):
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return None


def extract_activations(model, data, modules, batch_size=256, capture="output",
                        dtype=np.float64, device=None, check_order=True):
    """Collect the outputs (or inputs) of chosen modules of a torch model over a data set.

    The model runs in evaluation mode under ``torch.no_grad()``, batch by batch; a forward
    hook on each selected module copies what it sees (so in-place operations cannot alter
    it) to the CPU. Afterwards the hooks are removed and the model's mode is restored, also
    when the forward pass raises.

    Parameters
    ----------
    model : torch.nn.Module
    data : torch.Tensor, numpy.ndarray, or iterable of batches
        A tensor or array is cut into batches of ``batch_size`` along its first axis. An
        iterable (a ``torch.utils.data.DataLoader``, a list of tensors, ...) yields tensors or
        tuples whose first element is the input (``(x, y)`` batches work).
    modules : str, type, torch.nn.Module, or list of these
        Which modules to record (see :func:`resolve_modules`): names from
        ``model.named_modules()``, module types, or module objects.
    batch_size : int, default 256
        Used only when ``data`` is a tensor or an array.
    capture : {"output", "input"}, default "output"
        Record each module's output, or the first positional input of its forward (for an
        activation module: the pre-activation).
    dtype : numpy dtype, default numpy.float64
        dtype of the returned arrays.
    device : torch.device or str, optional
        Where the inputs are sent; default the device of the model's first parameter.
    check_order : bool, default True
        Refuse a ``torch.utils.data.DataLoader`` whose order may differ from pass to pass,
        since arrays from two extractions are compared row by row. Accepted: a
        ``SequentialSampler`` (``shuffle=False``), a ``DistributedSampler`` with
        ``shuffle=False``, a fixed sequence of indices (list, range, array) as sampler or batch
        sampler, an ``IterableDataset`` (its own order), each also inside a ``BatchSampler``.
        Refused: ``RandomSampler`` (``shuffle=True``), ``SubsetRandomSampler``,
        ``WeightedRandomSampler``, a ``DistributedSampler`` with ``shuffle=True``, and any
        other sampler type (its order cannot be verified); ``False`` skips the check. Other
        iterables (lists of batches, generators) are taken in the order they give.
        :func:`extract_pair` is the way to compare two models through a shuffled loader.

    Returns
    -------
    dict of str to numpy.ndarray
        One array per module, keyed by its name, in the order selected; the first axis is
        the sample axis (n_samples, ...), the remaining axes as the module produced them
        ((n, d) for dense layers, (n, c, h, w) for conv layers).

    Raises
    ------
    ValueError
        Unknown module names, empty data, a module that runs more than once per forward pass
        (its records would be ambiguous) or not at all, a bad ``capture`` or ``batch_size``, a
        DataLoader in random order (with ``check_order``).
    TypeError
        A module that outputs something other than a tensor, data of the wrong type, a
        ``check_order`` that is not a bool.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(inplace=True), nn.Linear(3, 2))
    >>> x = torch.randn(10, 4)
    >>> acts = extract_activations(net, x, ["0", nn.ReLU], batch_size=4)
    >>> {name: a.shape for name, a in acts.items()}
    {'0': (10, 3), '1': (10, 3)}
    >>> bool((acts["0"] < 0).any()), bool((acts["1"] >= 0).all())  # pre-ReLU kept despite inplace
    (True, True)
    >>> len(net[0]._forward_hooks)  # hooks removed
    0
    """
    torch = _torch()
    _check_args(capture, batch_size)
    if not isinstance(check_order, bool):
        raise TypeError(f"check_order must be True or False, got {check_order!r}")
    recorder = _Recorder(model, modules, capture)
    if check_order:
        _check_order(data)
    if device is None:
        device = _model_device(model)
    with recorder.attached(), torch.no_grad():
        n_batches = 0
        for batch in _batches(data, int(batch_size)):
            n_batches += 1
            recorder.forward(batch, device)
        if n_batches == 0:
            raise ValueError("data is empty: no batch was produced")
    return recorder.arrays(dtype)


def extract_pair(model_a, model_b, data, modules_a, modules_b=None, batch_size=256,
                 capture="output", dtype=np.float64, device=None):
    """Activations of two models on the same stimuli in the same order, in one pass over data.

    Every batch that ``data`` yields is fed to ``model_a`` and then to ``model_b`` before the
    next one is drawn, so row i of every returned array is the same stimulus for both models,
    also when ``data`` is a shuffled DataLoader (whose order changes from pass to pass) or
    any other iterable whose order cannot be reproduced. Recording works as in
    :func:`extract_activations`: forward hooks that copy what they see, evaluation mode under
    ``torch.no_grad()``, hooks removed and both models' modes restored afterwards, also when
    a forward pass raises. ``model_a`` and ``model_b`` may be the same object.

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
    data : torch.Tensor, numpy.ndarray, or iterable of batches
        As for :func:`extract_activations`; a DataLoader may shuffle.
    modules_a : str, type, torch.nn.Module, or list of these
        The modules of ``model_a`` to record (see :func:`resolve_modules`).
    modules_b : same, optional
        The modules of ``model_b``; default the same selectors as ``modules_a`` (for two
        models of one architecture).
    batch_size : int, default 256
        Used only when ``data`` is a tensor or an array.
    capture : {"output", "input"}, default "output"
    dtype : numpy dtype, default numpy.float64
    device : torch.device or str, optional
        Where the inputs are sent; default the device of each model's first parameter.

    Returns
    -------
    acts_a, acts_b : dict of str to numpy.ndarray
        One array per selected module of each model (keyed by its name, in the order
        selected), all with the same stimuli along the first axis, in the order the batches
        came.

    Raises
    ------
    ValueError, TypeError
        As :func:`extract_activations`; messages name ``model_a``/``model_b`` and
        ``modules_a``/``modules_b``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> from simmetrics import LinearCKA
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> loader = DataLoader(TensorDataset(torch.randn(64, 4)), batch_size=16, shuffle=True)
    >>> acts_a, acts_b = extract_pair(net, net, loader, "1")
    >>> round(LinearCKA().fit_score(acts_a["1"], acts_b["1"]), 6)  # the same stimuli
    1.0
    """
    torch = _torch()
    _check_args(capture, batch_size)
    if modules_b is None:
        modules_b = modules_a
    rec_a = _Recorder(model_a, modules_a, capture, "modules_a", "model_a", "model_a: ")
    rec_b = _Recorder(model_b, modules_b, capture, "modules_b", "model_b", "model_b: ")
    dev_a = _model_device(model_a) if device is None else device
    dev_b = _model_device(model_b) if device is None else device
    with contextlib.ExitStack() as stack:
        stack.enter_context(rec_a.attached())
        stack.enter_context(rec_b.attached())
        stack.enter_context(torch.no_grad())
        n_batches = 0
        for batch in _batches(data, int(batch_size)):
            n_batches += 1
            rec_a.forward(batch, dev_a)
            rec_b.forward(batch, dev_b)
        if n_batches == 0:
            raise ValueError("data is empty: no batch was produced")
    return rec_a.arrays(dtype), rec_b.arrays(dtype)


def _to_numpy(tensor, dtype):
    torch = _torch()
    if tensor.dtype in (torch.float16, torch.bfloat16, torch.bool):
        tensor = tensor.to(torch.float32)  # numpy has no bfloat16
    return tensor.numpy().astype(dtype, copy=False)
