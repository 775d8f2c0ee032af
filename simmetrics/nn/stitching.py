"""Model stitching: join model A up to a layer, a trainable stitching layer, and model B after it.

Bansal, Nakkiran, Barak, "Revisiting model stitching to compare neural representations" (NeurIPS
2021); Csiszarik et al., "Similarity and matching of neural network representations" (NeurIPS
2021); Godfrey, Brown, Emerson, Kvinge (NeurIPS 2022), who restrict the stitch to the intertwiner
group G_sigma of the activation. If model B's layer can read model A's representation through a
map from a small class (a permutation with positive scales, for ReLU), the two representations
agree up to that class. The **stitching penalty** is

    penalty = (accuracy(A) + accuracy(B)) / 2 - accuracy(B_after o stitch o A_before),

the paper's definition (mean clean accuracy of the two models minus the stitched accuracy).
Both models are frozen (evaluation mode, no gradient to their weights); only the stitch trains.

A stitch is a linear map M of the channel axis (axis 1): features x of A (n, c_a) or
(n, c_a, h, w) become x M, i.e. a linear layer without bias, or a 1 x 1 convolution. The kinds
(:func:`make_stitch`):

- ``"full"``: any c_a x c_b matrix;
- ``"lowrank"``: M = U V with U (c_a x r), V (r x c_b), the paper's rank-r stitch;
- ``"orthogonal"``: M with orthonormal rows or columns, through
  ``torch.nn.utils.parametrizations.orthogonal``;
- ``"intertwiner"``: M in G_sigma (:class:`IntertwinerStitch`): a doubly stochastic relaxation of
  the permutation, S = Sinkhorn(exp(L / tau)) with tau annealed from 1 to 0.01 during training,
  times the diagonal part of the group (positive scales for ReLU, signs for tanh, nothing for
  GELU and sigmoid); in the last tenth of training the forward pass uses the rounded map
  (straight-through), and for evaluation the map is rounded to an exact permutation by linear
  assignment;
- ``"direct"``: no training; the closed-form alignment of
  :class:`simmetrics.IntertwinerProcrustes` fitted on the two models' features (Csiszarik et
  al.'s direct matching), with least-squares per-neuron scales where the group has them
  (:func:`direct_stitch`).

Why the annealed Sinkhorn parametrisation instead of the paper's projected one (S <- Sinkhorn(
ReLU(S)) after each step, plus -0.1 ||S||_F): at laptop scale the projected version stayed near
the uniform doubly stochastic matrix, because the renormalisation undoes the push of the norm
term, and rounding it to a permutation cost 41-69 accuracy points; the annealed version reaches
near-permutations at width 128 (the project's paper notes, section 5). At width 32 the annealed
relaxation still mixes a few neurons at the end and rounding cost up to ~15 points on digits;
training the rounded map through a straight-through phase removes most of that gap (see
``docs/experiments.md``, rows "intertwiner" and "intertwiner (relaxation only)").

The layers and their constructors are in :mod:`simmetrics.nn.stitch_layers` (and importable
from here); this module trains them (:func:`train_stitch`), evaluates them
(:func:`stitch_accuracy`) and measures the penalty of a cut (:func:`stitch_models`).
"""

import copy
import numbers
from dataclasses import dataclass, field

import numpy as np
import torch

from .._core.backend import is_tensor
from . import stitch_layers
from .stitch_layers import (STITCH_KINDS, FixedStitch, FullStitch, IntertwinerStitch,
                            LowRankStitch, OrthogonalStitch, Stitch, apply_channel_map,
                            check_width, direct_stitch, make_stitch, sinkhorn)

# the layers (simmetrics.nn.stitch_layers) are importable from here as well
__all__ = stitch_layers.__all__ + [
    "train_stitch",
    "stitch_accuracy",
    "split_sequential",
    "StitchResult",
    "stitch_models",
]


# -- training and evaluation ----------------------------------------------------------------
def _as_tensor(X, dtype):
    """``X`` (a tensor, or anything numpy reads) as a torch tensor of ``dtype``."""
    # backend site: the stitching tools take numpy arrays as well as tensors
    return torch.as_tensor(X if is_tensor(X) else np.asarray(X), dtype=dtype)


def _frozen(module):
    """A frozen copy in evaluation mode (no gradient reaches the user's model)."""
    back = copy.deepcopy(module).eval()
    for p in back.parameters():
        p.requires_grad_(False)
    return back


def train_stitch(stitch, back, features, targets, epochs=20, lr=2e-2, batch_size=128, seed=0,
                 tau=(1.0, 0.01), straight_through=0.9):
    """Train ``stitch`` so that ``back(stitch(features))`` classifies ``targets``.

    Adam on the cross-entropy, mini-batches drawn by a generator seeded with ``seed`` (so a
    rerun repeats exactly). ``back`` (model B after the stitching layer) is used through a
    frozen copy in evaluation mode; only the stitch's parameters change.

    For an :class:`IntertwinerStitch` the temperature falls geometrically from ``tau[0]`` to
    ``tau[1]`` over the training steps; from the fraction ``straight_through`` of the steps on,
    the forward pass uses the rounded map (the permutation nearest S by linear assignment, and
    the rounded signs) while the gradient is that of the relaxation (a straight-through
    estimator), so the map that is evaluated is the map that was trained; at the end the
    stitch is rounded (:meth:`~IntertwinerStitch.round_`). ``straight_through=None`` trains
    the relaxation only (rounding only at the end).

    Parameters
    ----------
    stitch : Stitch
    back : torch.nn.Module
    features : torch.Tensor or numpy.ndarray, (n, c) or (n, c, h, w)
        Model A's features at the stitching layer (computed once, since A is frozen).
    targets : torch.Tensor or numpy.ndarray of int, (n,)
    epochs, lr, batch_size, seed
        Adam's learning rate, epochs over ``features``, mini-batch size, seed of the order.
    tau : (float, float)
        Start and end temperature of the intertwiner stitch.
    straight_through : float in [0, 1] or None, default 0.9
        Intertwiner stitch: fraction of the steps after which the forward pass uses the
        rounded map. Late is better: switching at half-way (tau ~ 0.1) locks in the
        permutation nearest a still blurred S, and on a planted-permutation problem that
        pure annealing solves from every seed tried, switching at 0.5 recovered only 3-5 of 8
        neurons; switching at 0.9 keeps the annealing's search and still trains the exact
        map (scales, signs) for the last tenth of the steps.

    Returns
    -------
    list of float
        Mean training loss per epoch.
    """
    F = _as_tensor(features, torch.float32)
    y = _as_tensor(targets, torch.long)
    if len(F) != len(y):
        raise ValueError(f"features has {len(F)} samples but targets has {len(y)}")
    epochs = check_width(epochs, "epochs")
    batch_size = check_width(batch_size, "batch_size")
    if straight_through is not None and not 0.0 <= straight_through <= 1.0:
        raise ValueError(f"straight_through must be None or in [0, 1], got {straight_through!r}")
    back = _frozen(back)
    params = [p for p in stitch.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    n = len(F)
    steps_per_epoch = -(-n // batch_size)
    total = epochs * steps_per_epoch
    anneal = isinstance(stitch, IntertwinerStitch)
    if anneal:
        stitch.unround_()
    history, step = [], 0
    stitch.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        running = 0.0
        for start in range(0, n, batch_size):
            if anneal:
                frac = step / max(total - 1, 1)
                stitch.tau = float(tau[0] * (tau[1] / tau[0]) ** frac)
                stitch.straight_through = straight_through is not None and \
                    step >= straight_through * total
            idx = order[start : start + batch_size]
            opt.zero_grad()
            loss = loss_fn(back(stitch(F[idx])), y[idx])
            loss.backward()
            opt.step()
            running += float(loss.detach()) * len(idx)
            step += 1
        history.append(running / n)
    stitch.eval()
    if anneal:
        stitch.straight_through = False
        stitch.round_()
    return history


def stitch_accuracy(stitch, back, features, targets, batch_size=1024):
    """Accuracy of ``back(stitch(features))`` on ``targets`` (evaluation mode, no gradient)."""
    F = _as_tensor(features, torch.float32)
    y = _as_tensor(targets, torch.long)
    was = back.training
    back.eval()
    stitch.eval()
    correct = 0
    try:
        with torch.no_grad():
            for start in range(0, len(F), batch_size):
                out = back(stitch(F[start : start + batch_size]))
                correct += int((out.argmax(1) == y[start : start + batch_size]).sum())
    finally:
        back.train(was)
    return correct / len(F)


def split_sequential(model, cut):
    """Split an ``nn.Sequential`` into (front, back) = (model[:cut], model[cut:]).

    ``cut`` is an index (front keeps the modules before it) or the name of a child module
    (front ends with that module, inclusive). The halves share the model's modules.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> [len(part) for part in split_sequential(net, "1")]
    [2, 1]
    """
    from torch import nn

    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential, got {type(model).__name__}")
    names = [name for name, _ in model.named_children()]
    if isinstance(cut, str):
        if cut not in names:
            raise ValueError(f"cut: the model has no child named {cut!r}; children: {names}")
        cut = names.index(cut) + 1
    elif isinstance(cut, bool) or not isinstance(cut, numbers.Integral):
        raise TypeError(f"cut must be an int or a child name, got {type(cut).__name__}")
    if not 1 <= cut < len(model):
        raise ValueError(f"cut must leave both parts non-empty: 1 <= cut < {len(model)}, "
                         f"got {cut}")
    return model[:cut], model[cut:]


@dataclass
class StitchResult:
    """The outcome of one stitching run (accuracies are fractions in [0, 1]).

    ``penalty`` = (accuracy_a + accuracy_b) / 2 - accuracy; ``soft_accuracy`` is the
    accuracy of an intertwiner stitch before rounding (None for the other kinds).
    """

    kind: str
    accuracy: float
    accuracy_a: float
    accuracy_b: float
    penalty: float
    n_parameters: int
    soft_accuracy: float = None
    stitch: object = field(default=None, repr=False)


def _features(front, X, batch_size=1024):
    X = _as_tensor(X, torch.float32)
    was = front.training
    front.eval()
    try:
        with torch.no_grad():
            return torch.cat([front(X[s : s + batch_size]) for s in range(0, len(X), batch_size)])
    finally:
        front.train(was)


def stitch_models(model_a, model_b, cut, kind, train, test, rank=None, activation=None,
                  epochs=20, lr=2e-2, batch_size=128, seed=0):
    """Stitch model A's first part into model B's second part and measure the penalty.

    Parameters
    ----------
    model_a, model_b : nn.Sequential
        Trained models of the same architecture (or at least compatible at ``cut``).
    cut : int or str
        Where to cut (:func:`split_sequential`): A's front and B's back.
    kind : {"full", "lowrank", "orthogonal", "intertwiner", "direct"}
    train, test : (X, y)
        Data to fit the stitch on and to evaluate on.
    rank : int
        For "lowrank".
    activation : str or nn.Module
        For "intertwiner" and "direct": the activation of the layer before the cut.
    epochs, lr, batch_size, seed
        Training of the stitch (:func:`train_stitch`).

    Returns
    -------
    StitchResult

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> X = torch.randn(200, 5); y = (X[:, 0] > 0).long()
    >>> net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> r = stitch_models(net, net, 2, "direct", (X, y), (X, y), activation="relu")
    >>> round(r.penalty, 6)  # a model stitched to itself by the identity
    0.0
    """
    if kind not in STITCH_KINDS:
        raise ValueError(f"kind must be one of {STITCH_KINDS}, got {kind!r}")
    front_a, back_a = split_sequential(model_a, cut)
    front_b, back_b = split_sequential(model_b, cut)
    (X_tr, y_tr), (X_te, y_te) = train, test
    Fa_tr, Fa_te = _features(front_a, X_tr), _features(front_a, X_te)
    acc_a = stitch_accuracy(FixedStitch(np.eye(Fa_te.shape[1])), back_a, Fa_te, y_te)
    Fb_te = _features(front_b, X_te)
    acc_b = stitch_accuracy(FixedStitch(np.eye(Fb_te.shape[1])), back_b, Fb_te, y_te)
    soft = None
    if kind == "direct":
        if activation is None:
            raise ValueError("kind='direct' needs activation")
        stitch = direct_stitch(Fa_tr.numpy(), _features(front_b, X_tr).numpy(), activation)
    else:
        stitch = make_stitch(kind, Fa_tr.shape[1], _features(front_b, X_te[:1]).shape[1],
                             rank=rank, activation=activation, seed=seed)
        train_stitch(stitch, back_b, Fa_tr, y_tr, epochs=epochs, lr=lr,
                     batch_size=batch_size, seed=seed)
        if isinstance(stitch, IntertwinerStitch):
            soft = stitch_accuracy(stitch.unround_(), back_b, Fa_te, y_te)
            stitch.round_()
    acc = stitch_accuracy(stitch, back_b, Fa_te, y_te)
    return StitchResult(kind, acc, acc_a, acc_b, 0.5 * (acc_a + acc_b) - acc,
                        stitch.n_parameters(), soft, stitch)
