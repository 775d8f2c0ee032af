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
"""

import copy
import numbers
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

__all__ = [
    "STITCH_KINDS",
    "apply_channel_map",
    "sinkhorn",
    "Stitch",
    "FullStitch",
    "LowRankStitch",
    "OrthogonalStitch",
    "IntertwinerStitch",
    "FixedStitch",
    "make_stitch",
    "direct_stitch",
    "train_stitch",
    "stitch_accuracy",
    "split_sequential",
    "StitchResult",
    "stitch_models",
]

#: The stitch kinds :func:`make_stitch` and :func:`stitch_models` accept.
STITCH_KINDS = ("full", "lowrank", "orthogonal", "intertwiner", "direct")


def apply_channel_map(x, M):
    """Apply the channel map M (c_in x c_out) to features x along axis 1: x M.

    For x of shape (n, c_in) this is ``x @ M``; for (n, c_in, *spatial) it is the same map at
    every position (a 1 x 1 convolution without bias).

    Examples
    --------
    >>> import torch
    >>> x = torch.arange(8.0).reshape(1, 2, 2, 2)
    >>> apply_channel_map(x, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))[0, 0].tolist()  # swap
    [[4.0, 5.0], [6.0, 7.0]]
    """
    if x.shape[1] != M.shape[0]:
        raise ValueError(
            f"the features have {x.shape[1]} channels (axis 1), but the stitch expects "
            f"{M.shape[0]}"
        )
    if x.ndim == 2:
        return x @ M
    if x.ndim == 4:  # a 1 x 1 convolution: faster than moving the channel axis twice
        return torch.nn.functional.conv2d(x, M.T[:, :, None, None])
    return (x.movedim(1, -1) @ M).movedim(-1, 1)


def sinkhorn(logits, n_iter=20):
    """Sinkhorn normalisation in the log domain: the doubly stochastic matrix
    S = diag(u) exp(logits) diag(v) (square input; rows and columns sum to 1), by
    ``n_iter`` alternating row and column normalisations of log S (Sinkhorn 1964; the
    log-domain form stays finite for logits of any size, e.g. L / tau with tau = 0.01).

    Differentiable (torch autograd). After the last (column) step the columns sum to exactly
    1 and the rows approximately.

    Examples
    --------
    >>> import torch
    >>> S = sinkhorn(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), n_iter=50)
    >>> [round(v, 4) for v in S.sum(0).tolist() + S.sum(1).tolist()]
    [1.0, 1.0, 1.0, 1.0]
    """
    if logits.ndim != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f"sinkhorn needs a square matrix of logits, got {tuple(logits.shape)}")
    log_s = logits
    for _ in range(n_iter):
        log_s = log_s - torch.logsumexp(log_s, dim=1, keepdim=True)
        log_s = log_s - torch.logsumexp(log_s, dim=0, keepdim=True)
    return log_s.exp()


# -- the stitching layers -------------------------------------------------------------------
class Stitch(nn.Module):
    """Base class: a stitching layer is a channel map ``matrix()`` of shape (c_in, c_out),
    applied by :func:`apply_channel_map`."""

    kind = ""

    def matrix(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x):
        return apply_channel_map(x, self.matrix())

    def n_parameters(self):
        """Free parameters of the map as it is evaluated (degrees of freedom)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def _uniform(shape, bound, generator):
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound


class FullStitch(Stitch):
    """Any linear map c_in -> c_out (initialised like ``nn.Linear``: uniform in
    +-1/sqrt(c_in))."""

    kind = "full"

    def __init__(self, c_in, c_out, seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.weight = torch.nn.Parameter(_uniform((c_in, c_out), c_in ** -0.5, gen))

    def matrix(self):
        return self.weight


class LowRankStitch(Stitch):
    """M = U V, U (c_in x r), V (r x c_out): the paper's rank-r stitch (c_in -> r -> c_out)."""

    kind = "lowrank"

    def __init__(self, c_in, c_out, rank, seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.rank = rank
        self.U = torch.nn.Parameter(_uniform((c_in, rank), c_in ** -0.5, gen))
        self.V = torch.nn.Parameter(_uniform((rank, c_out), rank ** -0.5, gen))

    def matrix(self):
        return self.U @ self.V

    def n_parameters(self):
        return self.U.numel() + self.V.numel()


class OrthogonalStitch(Stitch):
    """M with orthonormal columns (c_in >= c_out) or rows (c_in < c_out), kept on the
    manifold by ``torch.nn.utils.parametrizations.orthogonal`` (matrix exponential)."""

    kind = "orthogonal"

    def __init__(self, c_in, c_out, seed=0):
        super().__init__()
        from torch.nn.utils.parametrizations import orthogonal

        gen = torch.Generator().manual_seed(seed)
        linear = torch.nn.Linear(c_in, c_out, bias=False)
        with torch.no_grad():
            linear.weight.copy_(_uniform((c_out, c_in), c_in ** -0.5, gen))
        self.linear = orthogonal(linear)

    def matrix(self):
        return self.linear.weight.T


def _assignment(S):
    """The permutation matrix P maximising sum_ij P_ij S_ij (exact linear assignment)."""
    rows, cols = linear_sum_assignment(S.detach().cpu().numpy().astype(np.float64),
                                       maximize=True)
    P = torch.zeros_like(S)
    P[torch.as_tensor(rows), torch.as_tensor(cols)] = 1.0
    return P


# The diagonal part of each intertwiner group: how the per-neuron factor d is parametrised.
_DIAGONAL = {
    "positive_scaled_permutation": "positive",  # d = exp(v) > 0
    "signed_permutation": "sign",  # d = tanh(u / tau) -> +-1, rounded to sign(u)
    "permutation": "none",  # d = 1
    "scaled_permutation": "real",  # d real (sign and scale)
}


class IntertwinerStitch(Stitch):
    """A stitch constrained to the intertwiner group G_sigma: M = S diag(d), S a permutation.

    Training uses the relaxation S = Sinkhorn(exp(L / tau)) (doubly stochastic, tending to a
    permutation as tau -> 0; :func:`train_stitch` anneals tau geometrically from 1 to 0.01) and
    the diagonal part of the group:

    ==============================  ===============  ====================================
    group (activation)              d                parametrisation
    ==============================  ===============  ====================================
    positive_scaled_permutation     d > 0            d = exp(v)
    (ReLU, leaky ReLU)
    signed_permutation (tanh, sin)  d = +-1          d = tanh(u / tau), rounded to sign(u)
    permutation (GELU, sigmoid)     d = 1            nothing
    scaled_permutation (abs, x^d)   d real, != 0     d = t
    ==============================  ===============  ====================================

    :meth:`round_` replaces S by the permutation P maximising sum_i S_{i, pi(i)}
    (``scipy.optimize.linear_sum_assignment``) and the signs by their rounded values, so that
    the evaluated map is an exact element of G_sigma; :meth:`unround_` goes back to the soft
    map.

    Parameters
    ----------
    n : int
        Width (G_sigma acts on n x n matrices; both models' layers must have n channels).
    activation : str, torch.nn.Module or group name
        Anything :func:`simmetrics.metrics.intertwiner.intertwiner_group_name` accepts.
    n_iter : int, default 20
        Sinkhorn iterations.
    seed : int
        Seeds the small random initial logits (L ~ 0.01 N(0, 1), so S starts near uniform).

    Attributes
    ----------
    tau : float
        Current temperature.
    group : str
    permutation_, signs_, scales_ : numpy.ndarray or None
        After :meth:`round_`: channel ``permutation_[j]`` of A feeds channel j of B, with
        factor ``signs_[j] * scales_[j]``.
    """

    kind = "intertwiner"

    def __init__(self, n, activation="relu", n_iter=20, seed=0):
        super().__init__()
        from ..metrics.intertwiner import intertwiner_group_name

        group = intertwiner_group_name(activation)
        if group not in _DIAGONAL:
            raise ValueError(
                f"activation {activation!r} has intertwiner group {group!r}, which is not a "
                "group of (scaled) permutations; use kind='full' for the identity activation"
            )
        self.group = group
        self.n_iter = int(n_iter)
        self.tau = 1.0
        self.straight_through = False
        gen = torch.Generator().manual_seed(seed)
        self.logits = torch.nn.Parameter(0.01 * torch.randn((n, n), generator=gen))
        mode = _DIAGONAL[group]
        self.diag = torch.nn.Parameter(torch.zeros(n) if mode in ("positive", "sign")
                                       else torch.ones(n), requires_grad=mode != "none")
        if mode == "sign":
            with torch.no_grad():  # start the signs at +-0.01 (tanh(u) ~ u), not at 0
                self.diag.copy_(0.01 * torch.sign(torch.randn(n, generator=gen)))
        self.register_buffer("_hard", torch.zeros((0, 0)))
        self.permutation_ = self.signs_ = self.scales_ = None

    def soft_permutation(self):
        """S = Sinkhorn(exp(L / tau)), doubly stochastic."""
        return sinkhorn(self.logits / self.tau, self.n_iter)

    def diagonal(self, rounded=False):
        mode = _DIAGONAL[self.group]
        if mode == "positive":
            return self.diag.exp()
        if mode == "sign":
            if rounded:
                return torch.where(self.diag < 0, -1.0, 1.0).to(self.diag.dtype)
            return torch.tanh(self.diag / self.tau)
        return self.diag

    def matrix(self):
        if self._hard.numel():
            return self._hard
        S = self.soft_permutation()
        d = self.diagonal()
        if self.training and self.straight_through:
            # forward: the exact group element; backward: the gradient of the relaxation
            P = _assignment(S.detach())
            S = P + S - S.detach()
            if _DIAGONAL[self.group] == "sign":
                d_hard = self.diagonal(rounded=True)
                d = d_hard + d - d.detach()
        return S * d[None, :]

    def round_(self):
        """Fix the map to the exact group element P diag(d) nearest the current S (linear
        assignment), signs rounded. Returns self."""
        with torch.no_grad():
            P = _assignment(self.soft_permutation())
            d = self.diagonal(rounded=True).detach()
            self._hard = P * d[None, :]
        perm = P.argmax(dim=0).cpu().numpy().astype(np.intp)  # column j has its 1 in row perm[j]
        d = d.cpu().numpy().astype(np.float64)
        self.permutation_ = perm
        self.signs_ = np.where(d < 0, -1.0, 1.0)
        self.scales_ = np.abs(d)
        return self

    def unround_(self):
        """Back to the soft (Sinkhorn) map. Returns self."""
        self._hard = torch.zeros((0, 0), dtype=self.logits.dtype)
        return self

    def vertex_gap(self):
        """1 - mean over rows of the largest entry of S: 0 at a permutation, 1 - 1/n at the
        uniform matrix."""
        with torch.no_grad():
            return float(1.0 - self.soft_permutation().max(dim=1).values.mean())

    def n_parameters(self):
        """Degrees of freedom of the evaluated map: n scales for (positive) scaled
        permutations, 0 otherwise (the permutation and signs are discrete)."""
        return self.diag.numel() if _DIAGONAL[self.group] in ("positive", "real") else 0


class FixedStitch(Stitch):
    """A fixed channel map (no training), e.g. the direct matching of :func:`direct_stitch`."""

    kind = "direct"

    def __init__(self, M):
        super().__init__()
        self.register_buffer("M", torch.as_tensor(np.asarray(M), dtype=torch.float32))

    def matrix(self):
        return self.M

    def n_parameters(self):
        return 0


def _check_width(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def make_stitch(kind, c_in, c_out=None, rank=None, activation=None, seed=0, n_iter=20):
    """A trainable stitching layer.

    Parameters
    ----------
    kind : {"full", "lowrank", "orthogonal", "intertwiner"}
        ("direct" is built from features by :func:`direct_stitch`.)
    c_in, c_out : int
        Channels of model A's and model B's layer (c_out defaults to c_in).
    rank : int
        For "lowrank" (1 <= rank <= min(c_in, c_out)).
    activation : str or torch.nn.Module
        For "intertwiner": the activation whose group constrains the map.
    seed : int
        Seeds the initialisation.
    n_iter : int, default 20
        For "intertwiner": Sinkhorn iterations per forward pass.

    Returns
    -------
    Stitch

    Examples
    --------
    >>> s = make_stitch("lowrank", 8, rank=2)
    >>> tuple(s.matrix().shape), s.n_parameters()
    ((8, 8), 32)
    >>> make_stitch("intertwiner", 8, activation="relu").n_parameters()  # 8 positive scales
    8
    """
    c_in = _check_width(c_in, "c_in")
    c_out = c_in if c_out is None else _check_width(c_out, "c_out")
    if kind == "full":
        return FullStitch(c_in, c_out, seed)
    if kind == "lowrank":
        if rank is None:
            raise ValueError("kind='lowrank' needs rank")
        rank = _check_width(rank, "rank")
        if rank > min(c_in, c_out):
            raise ValueError(f"rank must be at most min(c_in, c_out) = {min(c_in, c_out)}, "
                             f"got {rank}")
        return LowRankStitch(c_in, c_out, rank, seed)
    if kind == "orthogonal":
        return OrthogonalStitch(c_in, c_out, seed)
    if kind == "intertwiner":
        if activation is None:
            raise ValueError("kind='intertwiner' needs activation (e.g. 'relu', nn.Tanh())")
        if c_in != c_out:
            raise ValueError(
                f"kind='intertwiner' needs equal widths (G_sigma acts on n x n matrices), got "
                f"c_in={c_in}, c_out={c_out}"
            )
        return IntertwinerStitch(c_in, activation, n_iter=_check_width(n_iter, "n_iter"),
                                 seed=seed)
    if kind == "direct":
        raise ValueError("kind='direct' is not trained: build it with direct_stitch(...)")
    raise ValueError(f"kind must be one of {STITCH_KINDS}, got {kind!r}")


def _as_rows(F):
    """Features (n, c) or (n, c, *spatial) as a (rows, c) float64 matrix."""
    F = np.asarray(F, dtype=np.float64)
    if F.ndim == 2:
        return F
    return np.moveaxis(F, 1, -1).reshape(-1, F.shape[1])


def direct_stitch(features_a, features_b, activation, scales="lstsq"):
    """Csiszarik et al.'s direct matching with the intertwiner group: the closed-form alignment
    of :class:`simmetrics.IntertwinerProcrustes` from A's features to B's, as a fixed stitch.

    ``IntertwinerProcrustes(activation).fit(features_b, features_a)`` finds the (signed)
    permutation matching A's neurons to B's (per-neuron rms normalisation first where the group
    has per-neuron scales). The map's diagonal is then

    - ``scales="lstsq"`` (default), for groups with per-neuron scales (ReLU: positive): the
      least-squares scale of each matched pair, d_j = <b_j, a_pi(j)> / ||a_pi(j)||^2 (clipped
      at 0 for the positive groups); for signed permutations the signs; otherwise 1;
    - ``scales="rms"``: the metric's own ``scales_`` (ratio of the neurons' rms).

    Parameters
    ----------
    features_a, features_b : array-like, (n, c_a) / (n, c_b) or (n, c, h, w)
        The two models' features at the stitching layer, on the same (training) inputs; conv
        features use every sample and position as a row.
    activation : str or torch.nn.Module
    scales : {"lstsq", "rms"}

    Returns
    -------
    FixedStitch
        With ``permutation_``, ``signs_``, ``scales_`` attributes (channel ``permutation_[j]``
        of A feeds channel j of B; -1 where B's channel has no partner).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> A = np.maximum(rng.normal(size=(100, 4)), 0.0)
    >>> B = A[:, [2, 0, 3, 1]] * np.array([1.0, 2.0, 0.5, 3.0])
    >>> s = direct_stitch(A, B, "relu")
    >>> s.permutation_.tolist(), np.round(s.scales_, 6).tolist()
    ([2, 0, 3, 1], [1.0, 2.0, 0.5, 3.0])
    """
    from ..metrics.intertwiner import IntertwinerProcrustes

    if scales not in ("lstsq", "rms"):
        raise ValueError(f"scales must be 'lstsq' or 'rms', got {scales!r}")
    A, B = _as_rows(features_a), _as_rows(features_b)
    metric = IntertwinerProcrustes(activation).fit(B, A)  # alignment_ maps A onto B's neurons
    perm, signs = metric.permutation_, metric.signs_
    if perm is None:
        raise ValueError(
            f"activation {activation!r} has a group without a permutation part (the identity's "
            "GL_n); the direct stitch is its least-squares linear map: use kind='full'"
        )
    c_a, c_b = A.shape[1], B.shape[1]
    d = np.zeros(c_b)
    matched = perm >= 0
    if scales == "rms":
        d[matched] = signs[matched] * metric.scales_[matched]
    elif metric.group_ in ("positive_scaled_permutation", "scaled_permutation"):
        idx = np.flatnonzero(matched)
        a = A[:, perm[idx]]
        num = np.einsum("ij,ij->j", B[:, idx], a)
        den = np.einsum("ij,ij->j", a, a)
        ls = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        if metric.group_ == "positive_scaled_permutation":
            ls = np.maximum(ls, 0.0)
        d[idx] = ls
    else:
        d[matched] = signs[matched]
    M = np.zeros((c_a, c_b))
    idx = np.flatnonzero(matched)
    M[perm[idx], idx] = d[idx]
    stitch = FixedStitch(M)
    stitch.permutation_ = perm
    stitch.signs_ = np.where(d < 0, -1.0, 1.0)
    stitch.scales_ = np.abs(d)
    return stitch


# -- training and evaluation ----------------------------------------------------------------
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
    F = torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor)
                        else features, dtype=torch.float32)
    y = torch.as_tensor(np.asarray(targets) if not isinstance(targets, torch.Tensor)
                        else targets, dtype=torch.long)
    if len(F) != len(y):
        raise ValueError(f"features has {len(F)} samples but targets has {len(y)}")
    epochs = _check_width(epochs, "epochs")
    batch_size = _check_width(batch_size, "batch_size")
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
    F = torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor)
                        else features, dtype=torch.float32)
    y = torch.as_tensor(np.asarray(targets) if not isinstance(targets, torch.Tensor)
                        else targets, dtype=torch.long)
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
    X = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X,
                        dtype=torch.float32)
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
