"""Linear mode connectivity: the loss along the straight line between two networks' weights,
and its barrier (:func:`loss_barrier`).

For weights theta_a and theta_b of one architecture, the network at lambda in [0, 1] has the
weights theta(lambda) = (1 - lambda) theta_a + lambda theta_b. The loss barrier (Entezari,
Sedghi, Saukh, Neyshabur, ICLR 2022) is

    B = max_lambda  L(theta(lambda)) - ((1 - lambda) L(theta_a) + lambda L(theta_b)),

the largest excess of the loss along the line over the straight line between its end values.
Two networks are linearly mode connected when B is (near) 0. Networks trained from different
seeds usually are not, until one is aligned to the other by a symmetry of its hidden units
(Ainsworth, Hayase, Srinivasa, ICLR 2023: permutations; ``alignment=`` takes any object with
``.apply(model_b)``, e.g. from :func:`simmetrics.align_models`), and the interpolated network's
hidden statistics are renormalised (Jordan, Sedghi, Saukh, Entezari, Neyshabur, ICLR 2023:
RESET for BatchNorm networks, REPAIR for others; ``repair=``).

- **exact ends**: theta(lambda) is computed as ``(1 - lambda) * theta_a + lambda * theta_b`` in
  float64 (cast back to each tensor's dtype), which is theta_a at lambda = 0 and theta_b at
  lambda = 1 exactly, so the end values are the end models' own losses;
- **batching does not matter**: the loss is a sum over batches divided by the number of
  samples (and the accuracy a count of correct samples), so the same data cut into other batches
  gives the same numbers up to rounding (RESET's BatchNorm statistics excepted, see there);
- **the models are not touched**: every network evaluated is a copy (evaluation mode, under
  ``torch.no_grad()``); the models' parameters, training flags and the grad mode are as before.
"""

import copy
import json
import numbers

import numpy as np

from .._core.backend import tensor_from_numpy
from .compare import unwrap
from .repair import (batchnorms, measure_pre_activations, move_input, repair_network,
                     repair_sites, reset_batchnorm)

__all__ = ["loss_barrier", "interpolated_model", "BarrierResult", "REPAIRS"]

#: The values of ``repair=``.
REPAIRS = (None, "reset_bn", "repair")


def _torch():
    import torch

    return torch


# -- data -----------------------------------------------------------------------------------
def _as_tensor(v):
    return tensor_from_numpy(v) if isinstance(v, np.ndarray) else v


def _is_array(v):
    return isinstance(v, (np.ndarray, _torch().Tensor))


def _pair(batch, i):
    """The (inputs, targets) tensors of batch ``i``."""
    torch = _torch()
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError(f"data: batch {i} is a {type(batch).__name__}"
                        + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
                        + "; every batch must be an (inputs, targets) pair of tensors")
    x, y = _as_tensor(batch[0]), _as_tensor(batch[1])
    for what, v in (("inputs", x), ("targets", y)):
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"data: batch {i}: the {what} are a {type(v).__name__}; expected a "
                            "torch.Tensor or a numpy array")
        if v.ndim == 0:
            raise ValueError(f"data: batch {i}: the {what} are a scalar; expected a first "
                             "axis of samples")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"data: batch {i} has {x.shape[0]} inputs but {y.shape[0]} targets")
    return x, y


class _Data:
    """The (inputs, targets) batches of ``data``, walkable once per network evaluated.

    A pair of tensors is cut into batches of ``batch_size``; a one-shot iterator (a generator)
    is kept as a list; anything else iterable (a DataLoader, a list of pairs) is iterated
    anew on every pass. Every complete pass must give the same number of samples."""

    def __init__(self, data, batch_size):
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(data, (tuple, list)) and len(data) == 2 and all(map(_is_array, data)):
            x, y = _pair(data, 0)
            self.source = [(x[s:s + batch_size], y[s:s + batch_size])
                           for s in range(0, x.shape[0], int(batch_size))]
        elif isinstance(data, (str, bytes, dict)) or _is_array(data) \
                or not hasattr(data, "__iter__"):
            raise TypeError("data must be an (inputs, targets) pair of tensors or an iterable "
                            f"of such batches (a DataLoader, a list of pairs), got "
                            f"{type(data).__name__}")
        else:
            self.source = list(data) if iter(data) is data else data
        self.n_samples = None

    def __iter__(self):
        n = 0
        for i, batch in enumerate(self.source):
            x, y = _pair(batch, i)
            n += int(x.shape[0])
            yield x, y
        if n == 0:
            raise ValueError("data is empty: no sample was produced")
        if self.n_samples is None:
            self.n_samples = n
        elif n != self.n_samples:
            raise ValueError(f"data gave {n} samples on a later pass, {self.n_samples} on the "
                             "first; every pass over it must give the same samples")

    def check_first(self, default_loss):
        """Fail early: no batch, a malformed first batch, non-integer labels for the default
        loss."""
        for i, (x, y) in enumerate(self):
            if default_loss and (y.is_floating_point() or y.is_complex()
                                 or y.dtype == _torch().bool):
                raise ValueError(
                    f"data: batch {i}: the targets are {y.dtype}; the default loss "
                    "(cross-entropy) needs integer class labels; pass loss_fn= for other "
                    "targets (e.g. torch.nn.MSELoss())")
            if x.shape[0]:
                return
        raise ValueError("data is empty: no sample was produced")


# -- the line between the two weight vectors -------------------------------------------------
def _check_same_architecture(state_a, state_b, label_b):
    for key, a in state_a.items():
        if key not in state_b:
            raise ValueError(f"{label_b} has no parameter or buffer {key!r} (model_a has one of "
                             f"shape {tuple(a.shape)}); the models must share one architecture")
        if tuple(state_b[key].shape) != tuple(a.shape):
            raise ValueError(f"{label_b}: parameter or buffer {key!r} has shape "
                             f"{tuple(state_b[key].shape)}, model_a {tuple(a.shape)}; the "
                             "models must share one architecture")
    for key, b in state_b.items():
        if key not in state_a:
            raise ValueError(f"{label_b} has a parameter or buffer {key!r} (shape "
                             f"{tuple(b.shape)}) that model_a lacks; the models must share "
                             "one architecture")


class _Line:
    """theta(lambda) = (1 - lambda) theta_a + lambda theta_b on copies of model_a's module."""

    def __init__(self, model_a, model_b, alignment, device):
        torch = _torch()
        model_a, _ = unwrap(model_a, "model_a")
        model_b, _ = unwrap(model_b, "model_b")
        state_a = model_a.state_dict()
        _check_same_architecture(state_a, model_b.state_dict(), "model_b")
        if alignment is not None:
            if not callable(getattr(alignment, "apply", None)):
                raise TypeError("alignment must be an object with an .apply(model_b) method "
                                "(e.g. from simmetrics.align_models), got "
                                f"{type(alignment).__name__}")
            aligned = alignment.apply(model_b)
            if not isinstance(aligned, torch.nn.Module):
                raise TypeError("alignment.apply(model_b) must return a torch.nn.Module, got "
                                f"{type(aligned).__name__}")
            model_b, _ = unwrap(aligned, "alignment.apply(model_b)")
            _check_same_architecture(state_a, model_b.state_dict(), "alignment.apply(model_b)")
        self.template = copy.deepcopy(model_a).eval()
        first = next(iter(list(self.template.parameters()) + list(self.template.buffers())),
                     None)
        self.device = device if device is not None else (None if first is None else first.device)
        if self.device is not None:
            self.template.to(self.device)
        floats = [p for p in self.template.parameters() if p.is_floating_point()]
        self.dtype = floats[0].dtype if floats else None
        self.state_a = {k: v.detach() for k, v in state_a.items()}
        self.state_b = {k: v.detach() for k, v in model_b.state_dict().items()}

    def network(self, lam):
        """A copy of model_a's module with the weights theta(lam), in evaluation mode."""
        torch = _torch()
        net = copy.deepcopy(self.template)
        lam = float(lam)
        with torch.no_grad():
            for key, value in net.state_dict().items():
                a = self.state_a[key]
                if a.is_floating_point() or a.is_complex():
                    wide = torch.complex128 if a.is_complex() else torch.float64
                    mix = ((1.0 - lam) * a.to(value.device, wide)
                           + lam * self.state_b[key].to(value.device, wide))
                    value.copy_(mix.to(value.dtype))
                else:  # integer buffers (BatchNorm's num_batches_tracked) from model_a
                    value.copy_(a)
        return net.eval()


# -- the driver ---------------------------------------------------------------------------------
class _Setup:
    """Validated arguments shared by :func:`loss_barrier` and :func:`interpolated_model`."""

    def __init__(self, model_a, model_b, data, alignment, repair, batch_size, device,
                 default_loss, need_data):
        if repair not in REPAIRS:
            raise ValueError(f"repair must be one of {REPAIRS}, got {repair!r}")
        self.line = _Line(model_a, model_b, alignment, device)
        self.repair = repair
        self.data = None
        if data is None:
            if need_data:
                raise ValueError("data is None; it is needed for the losses and for repair")
        else:
            self.data = _Data(data, batch_size)
        if repair is not None and self.data is None:
            raise ValueError(f"repair={repair!r} needs data (the statistics are measured on it)")
        if repair == "reset_bn" and not batchnorms(self.line.template):
            raise ValueError("repair='reset_bn' recomputes BatchNorm running statistics, but "
                             "model_a has no BatchNorm module with running statistics")
        if repair == "repair":
            repair_sites(self.line.template)
        if self.data is not None:
            self.data.check_first(default_loss)
        self.targets = None

    def network(self, lam):
        net = self.line.network(lam)
        args = (self.data, self.line.device, self.line.dtype)
        if self.repair == "reset_bn":
            reset_batchnorm(net, *args)
        elif self.repair == "repair":
            if self.targets is None:  # the end models' statistics, measured once
                ends = []
                for end in (0.0, 1.0):
                    end_net = self.line.network(end)
                    ends.append(measure_pre_activations(end_net, repair_sites(end_net), *args))
                self.targets = list(zip(ends[0], ends[1]))
            targets = [((1 - lam) * ma.mean + lam * mb.mean, (1 - lam) * ma.std() + lam * mb.std())
                       for ma, mb in self.targets]
            repair_network(net, targets, *args)
        return net


def _evaluate(net, data, loss_fn, device, dtype):
    """Mean loss (a sum over batches / the number of samples) and accuracy (NaN where the
    outputs and targets are not class scores and labels) of ``net`` on data."""
    torch = _torch()
    from torch.nn import functional as F

    total = count = correct = labelled = 0
    classifies = True
    with torch.no_grad():
        for x, y in data:
            out = net(move_input(x, device, dtype))
            y = y.to(out.device)
            if loss_fn is None:  # torch's cross-entropy takes int64 class indices
                total += float(F.cross_entropy(out.to(torch.float64), y.long(), reduction="sum"))
                count += y.numel()
            else:
                value = torch.as_tensor(loss_fn(out, y))
                if value.ndim == 0:  # the batch mean
                    total += float(value) * len(y)
                elif tuple(value.shape) == (len(y),):  # one loss per sample
                    total += float(value.to(torch.float64).sum())
                else:
                    raise ValueError(f"loss_fn returned a tensor of shape {tuple(value.shape)} "
                                     f"for a batch of {len(y)}; expected a scalar (the batch "
                                     f"mean) or one loss per sample, shape ({len(y)},)")
                count += len(y)
            classifies = classifies and not (y.is_floating_point() or y.is_complex()) \
                and out.ndim == y.ndim + 1 and tuple(out.shape[2:]) == tuple(y.shape[1:])
            if classifies:
                correct += int((out.argmax(1) == y).sum())
                labelled += y.numel()
    return total / count, (correct / labelled if classifies and labelled else float("nan"))


def _check_lambda(lam):
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real) or not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be a real number in [0, 1], got {lam!r}")


def interpolated_model(model_a, model_b, lam, data=None, repair=None, alignment=None,
                       batch_size=512, device=None):
    """The network :func:`loss_barrier` evaluates at ``lam``: a copy of model_a's module with
    every floating-point parameter and buffer equal to (1 - lam) theta_a + lam theta_b
    (computed in float64; integer buffers from model_a), after ``alignment`` and ``repair``, in
    evaluation mode.

    Parameters
    ----------
    model_a, model_b, alignment, repair, batch_size, device
        As for :func:`loss_barrier`.
    lam : float in [0, 1]
        0 gives model_a's weights, 1 model_b's (after the alignment), both exactly.
    data : as for :func:`loss_barrier`, optional
        Needed only for a repair (its statistics are measured on it).

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> a, b = nn.Linear(2, 1), nn.Linear(2, 1)
    >>> mid = interpolated_model(a, b, 0.25)
    >>> bool(torch.allclose(mid.weight, 0.75 * a.weight + 0.25 * b.weight))
    True
    """
    _check_lambda(lam)
    setup = _Setup(model_a, model_b, data, alignment, repair, batch_size, device, False,
                   need_data=False)
    return setup.network(float(lam))


def loss_barrier(model_a, model_b, data, loss_fn=None, steps=25, alignment=None, repair=None,
                 batch_size=512, device=None):
    """Loss and accuracy along the straight line between two networks' weights, and the barrier.

    For lambda in ``linspace(0, 1, steps)``, the network with every floating-point parameter
    and buffer equal to (1 - lambda) theta_a + lambda theta_b (computed in float64; integer
    buffers such as BatchNorm's ``num_batches_tracked`` from model_a), in evaluation mode
    under ``torch.no_grad()``, is evaluated on ``data``. The loss barrier (Entezari et al.,
    ICLR 2022) is

        B = max_lambda  L(lambda) - ((1 - lambda) L(0) + lambda L(1)),

    and the accuracy barrier the analogous largest drop,
    max_lambda ((1 - lambda) acc(0) + lambda acc(1)) - acc(lambda). Both are >= 0 (lambda = 0
    gives 0) and 0 for a loss that is convex along the line.

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
        One architecture: equal parameter and buffer names and shapes (their ``state_dict``).
        Every network evaluated is a copy of model_a's module carrying the interpolated
        ``state_dict`` (so model_b contributes its weights, not its forward); the models
        themselves are not modified and not run. DataParallel wrappers are removed.
    data : (inputs, targets) pair of tensors, or an iterable of such pairs
        A pair (tensors or numpy arrays) is cut into batches of ``batch_size``; an iterable
        (a DataLoader, which may shuffle, a list, a generator) yields (inputs, targets, ...)
        batches. Floating-point inputs are cast to model_a's parameter dtype and moved to its
        device.
    loss_fn : callable, optional
        ``loss_fn(outputs, targets)`` returning a scalar (the batch mean; weighted by the batch
        size) or one loss per sample (summed). Default: cross-entropy on integer class labels
        (``F.cross_entropy(..., reduction="sum")`` in float64 over all batches divided by the
        number of targets). Either way L is the mean over all samples, whatever the batches.
    steps : int, default 25
        Number of points of the line, >= 2 (the end points included).
    alignment : object with ``.apply(model_b)``, optional
        Applied to model_b first; ``.apply`` returns a copy of model_b aligned to model_a that
        computes the same function (e.g. :func:`simmetrics.align_models`'s result).
    repair : {None, "reset_bn", "repair"}, default None
        Applied to every interpolated network (the end points included) before it is evaluated:

        - ``"reset_bn"``: RESET (Jordan et al., ICLR 2023): every BatchNorm's running
          statistics recomputed on ``data`` (:func:`simmetrics.nn.repair.reset_batchnorm`;
          with several batches, the average of the per-batch statistics, as torch's
          cumulative average gives); the end values are then those of the end models with
          recomputed statistics, not their own;
        - ``"repair"``: REPAIR (Jordan et al., ICLR 2023): for each hidden layer followed by an
          activation (:func:`simmetrics.nn.repair.repair_sites`: ``nn.Sequential`` MLPs and
          CNNs), every channel of the pre-activation is rescaled and shifted so that its mean
          and standard deviation on ``data`` equal (1 - lambda) stat_a + lambda stat_b of the
          end models' (after the alignment) channel statistics on ``data``, layer after
          layer; the affine correction is folded into the BatchNorm's or the layer's weight
          and bias (:func:`simmetrics.nn.repair.repair_network`). At the end points it is the
          identity up to rounding.
    batch_size : int, default 512
        Used only when ``data`` is a pair of tensors.
    device : torch.device or str, optional
        Where the networks run; default model_a's.

    Returns
    -------
    BarrierResult
        ``.lambdas``, ``.losses``, ``.accuracies`` (NaN where the targets are not class
        labels of the outputs), ``.barrier``, ``.accuracy_barrier``, ``.barrier_lambda``;
        ``.to_frame()``, ``.to_json()``, ``.plot()``.

    Raises
    ------
    ValueError
        Models of different architectures (the first differing name or shape), ``steps`` < 2,
        empty data, batches whose inputs and targets differ in length, non-integer targets for
        the default loss, a ``loss_fn`` output of the wrong shape, an unknown ``repair``, or a
        repair the model cannot take (no BatchNorm for ``"reset_bn"``; not an ``nn.Sequential``
        of Linear/Conv layers and activations for ``"repair"``).
    TypeError
        Models that are not modules, ``steps`` not an int, malformed data, a ``loss_fn`` that
        is not callable, an ``alignment`` without ``.apply`` or whose ``.apply`` returns no
        module.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> a = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    >>> b = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    >>> x, y = torch.randn(200, 4), torch.randint(0, 3, (200,))
    >>> result = loss_barrier(a, b, (x, y), steps=5)
    >>> result.lambdas.tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    >>> loss_barrier(a, a, (x, y), steps=3).barrier
    0.0
    """
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
        raise TypeError(f"steps must be an int >= 2, got {steps!r}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2 (the two end points at least), got {steps}")
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable as loss_fn(outputs, targets), got "
                        f"{type(loss_fn).__name__}")
    setup = _Setup(model_a, model_b, data, alignment, repair, batch_size, device,
                   loss_fn is None, need_data=True)
    lambdas = np.linspace(0.0, 1.0, int(steps))
    losses, accuracies = [], []
    for lam in lambdas:
        net = setup.network(float(lam))
        loss, acc = _evaluate(net, setup.data, loss_fn, setup.line.device, setup.line.dtype)
        losses.append(loss)
        accuracies.append(acc)
        del net
    return BarrierResult(lambdas, losses, accuracies, repair=repair,
                         aligned=alignment is not None, n_samples=setup.data.n_samples,
                         loss="cross_entropy" if loss_fn is None else _name(loss_fn))


def _name(fn):
    return getattr(fn, "__name__", None) or type(fn).__name__


# -- the result ---------------------------------------------------------------------------------
class BarrierResult:
    """What :func:`loss_barrier` returns.

    Attributes
    ----------
    lambdas, losses, accuracies : numpy.ndarray of float64, shape (steps,)
        The interpolation coefficients and the mean loss and accuracy there (accuracies NaN
        where the targets are not class labels).
    barrier : float
        max over lambda of L(lambda) - ((1 - lambda) L(0) + lambda L(1)) (Entezari et al.
        2022).
    barrier_lambda : float
        The lambda where that maximum is reached (the first, on ties).
    accuracy_barrier : float
        max over lambda of ((1 - lambda) acc(0) + lambda acc(1)) - acc(lambda); NaN without
        accuracies.
    repair : None, "reset_bn" or "repair"
    aligned : bool
        Whether an alignment was applied to model_b.
    n_samples : int
    loss : str
        The loss's name ("cross_entropy" for the default).
    """

    def __init__(self, lambdas, losses, accuracies, repair=None, aligned=False, n_samples=0,
                 loss="cross_entropy"):
        self.lambdas = np.asarray(lambdas, dtype=np.float64)
        self.losses = np.asarray(losses, dtype=np.float64)
        self.accuracies = np.asarray(accuracies, dtype=np.float64)
        self.repair, self.aligned = repair, bool(aligned)
        self.n_samples, self.loss = int(n_samples), str(loss)
        excess = self.loss_excess
        self.barrier = float(np.max(excess))
        self.barrier_lambda = float(self.lambdas[int(np.argmax(excess))])
        drop = self._line(self.accuracies) - self.accuracies
        self.accuracy_barrier = float(np.max(drop))

    def _line(self, values):
        lam = self.lambdas
        return (1.0 - lam) * values[0] + lam * values[-1]

    @property
    def loss_excess(self):
        """L(lambda) minus the straight line between the end losses, per lambda."""
        return self.losses - self._line(self.losses)

    def to_frame(self):
        """A pandas DataFrame with the columns lambda, loss, accuracy, loss_excess."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("BarrierResult.to_frame needs pandas, which is not installed: "
                              "pip install pandas (the arrays are in .losses etc.)") from None
        return pd.DataFrame({"lambda": self.lambdas, "loss": self.losses,
                             "accuracy": self.accuracies, "loss_excess": self.loss_excess})

    def to_json(self):
        """The result as a JSON string (NaN written as null)."""
        def clean(values):
            return [None if not np.isfinite(v) else float(v) for v in np.atleast_1d(values)]

        return json.dumps({
            "lambdas": clean(self.lambdas), "losses": clean(self.losses),
            "accuracies": clean(self.accuracies), "barrier": clean(self.barrier)[0],
            "barrier_lambda": self.barrier_lambda,
            "accuracy_barrier": clean(self.accuracy_barrier)[0], "repair": self.repair,
            "aligned": self.aligned, "n_samples": self.n_samples, "loss": self.loss,
        })

    def plot(self, ax=None, accuracy=False, title=None):
        """The loss along the line (markers), the straight line between its end values (dashed)
        and the barrier (a vertical segment at ``barrier_lambda``); with ``accuracy`` the
        accuracy on a second y axis. Draws on ``ax`` (a new figure when None) and returns it,
        as :mod:`simmetrics.plots` does (matplotlib is imported on call)."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("plotting needs matplotlib, which is not installed: "
                              "pip install 'simmetrics[plot]'") from None
        if ax is None:
            ax = plt.subplots(figsize=(4.5, 3.2), layout="constrained")[1]
        ax.plot(self.lambdas, self.losses, "o-", color="#4c72b0", markersize=3, label="loss")
        ax.plot(self.lambdas, self._line(self.losses), "--", color="0.4", linewidth=1,
                label="end points, linear")
        k = int(np.argmax(self.loss_excess))
        ax.plot([self.lambdas[k]] * 2, [self._line(self.losses)[k], self.losses[k]], "-",
                color="#c44e52", linewidth=2, label=f"barrier {self.barrier:.3g}")
        ax.set_xlabel("lambda")
        ax.set_ylabel(self.loss)
        if accuracy and np.isfinite(self.accuracies).any():
            twin = ax.twinx()
            twin.plot(self.lambdas, self.accuracies, "s:", color="#55a868", markersize=3,
                      label="accuracy")
            twin.set_ylabel("accuracy")
        ax.legend(loc="best", fontsize=8)
        if title:
            ax.set_title(title)
        return ax

    def __repr__(self):
        extra = (", aligned" if self.aligned else "") + (f", repair={self.repair!r}"
                                                         if self.repair else "")
        return (f"BarrierResult(barrier={self.barrier:.4g} at lambda={self.barrier_lambda:.3g}, "
                f"accuracy_barrier={self.accuracy_barrier:.4g}, {len(self.lambdas)} steps, "
                f"{self.n_samples} samples{extra})")
