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
"""

import numbers

import numpy as np

__all__ = ["extract_activations", "resolve_modules"]


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
    from torch import nn

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    named = list(model.named_modules())
    by_name = dict(named)
    by_id = {id(m): name for name, m in named}
    selectors = list(modules) if isinstance(modules, (list, tuple)) else [modules]
    if not selectors:
        raise ValueError("modules is empty: name at least one module (by name, type or object)")
    out = {}
    for sel in selectors:
        if isinstance(sel, str):
            if sel not in by_name:
                import difflib

                close = difflib.get_close_matches(sel, [n for n, _ in named if n], n=3)
                hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                raise ValueError(
                    f"modules: the model has no module named {sel!r}{hint} "
                    f"(names come from model.named_modules())"
                )
            out.setdefault(sel, by_name[sel])
        elif isinstance(sel, type) and issubclass(sel, nn.Module):
            found = [(n, m) for n, m in named if isinstance(m, sel)]
            if not found:
                raise ValueError(f"modules: the model has no module of type {sel.__name__}")
            for n, m in found:
                out.setdefault(n, m)
        elif isinstance(sel, nn.Module):
            if id(sel) not in by_id:
                raise ValueError(
                    f"modules: the module object {type(sel).__name__} is not part of the model"
                )
            out.setdefault(by_id[id(sel)], sel)
        else:
            raise TypeError(
                "modules must be a module name (str), a module type, a module object, or a "
                f"list of these; got {type(sel).__name__}"
            )
    return list(out.items())


def _batches(data, batch_size):
    """Input batches (tensors) from a tensor, an array or an iterable of batches."""
    torch = _torch()
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(np.ascontiguousarray(data))
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
        if isinstance(batch, np.ndarray):
            batch = torch.from_numpy(np.ascontiguousarray(batch))
        if not isinstance(batch, torch.Tensor):
            raise TypeError(
                f"data: batch {i} is a {type(batch).__name__}; expected a tensor or a "
                "(tensor, ...) tuple"
            )
        yield batch


def _model_device(model):
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return None


def extract_activations(model, data, modules, batch_size=256, capture="output",
                        dtype=np.float64, device=None):
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
        (its records would be ambiguous) or not at all, a bad ``capture`` or ``batch_size``.
    TypeError
        A module that outputs something other than a tensor, data of the wrong type.

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
    if capture not in ("output", "input"):
        raise ValueError(f"capture must be 'output' or 'input', got {capture!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    selected = resolve_modules(model, modules)
    if device is None:
        device = _model_device(model)
    records = {name: [] for name, _ in selected}
    calls = {name: 0 for name, _ in selected}

    def make_hook(name):
        def keep(value):
            if isinstance(value, (tuple, list)) and capture == "input":
                value = value[0] if value else None
            if not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"module {name!r} gave a {type(value).__name__} as its {capture}; only "
                    "tensors can be recorded"
                )
            calls[name] += 1
            # copy now: an in-place operation later in the forward pass must not change it
            records[name].append(value.detach().to("cpu", copy=True))

        if capture == "input":
            return lambda module, args: keep(args)
        return lambda module, args, output: keep(output)

    handles = []
    was_training = model.training
    try:
        for name, module in selected:
            hook = make_hook(name)
            if capture == "input":
                handles.append(module.register_forward_pre_hook(hook))
            else:
                handles.append(module.register_forward_hook(hook))
        model.eval()
        n_batches = 0
        with torch.no_grad():
            for batch in _batches(data, int(batch_size)):
                n_batches += 1
                for name in calls:
                    calls[name] = 0
                model(batch.to(device) if device is not None else batch)
                for name, count in calls.items():
                    if count != 1:
                        raise ValueError(
                            f"module {name!r} ran {count} times in one forward pass; "
                            + ("it is not used by the model's forward" if count == 0 else
                               "a module used several times cannot be recorded unambiguously")
                        )
        if n_batches == 0:
            raise ValueError("data is empty: no batch was produced")
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {name: _to_numpy(torch.cat(chunks), dtype) for name, chunks in records.items()}


def _to_numpy(tensor, dtype):
    torch = _torch()
    if tensor.dtype in (torch.float16, torch.bfloat16, torch.bool):
        tensor = tensor.to(torch.float32)  # numpy has no bfloat16
    return tensor.numpy().astype(dtype, copy=False)
