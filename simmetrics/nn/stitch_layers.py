"""The stitching layers: channel maps M of shape (c_in, c_out) applied along axis 1 (x -> x M,
a linear layer without bias or a 1 x 1 convolution), and how to build them.

- :func:`apply_channel_map` and :func:`sinkhorn` (the log-domain doubly stochastic relaxation);
- the layers :class:`Stitch` (base), :class:`FullStitch`, :class:`LowRankStitch`,
  :class:`OrthogonalStitch`, :class:`IntertwinerStitch` (a map in the intertwiner group
  G_sigma, trained through an annealed Sinkhorn relaxation and rounded by linear assignment)
  and :class:`FixedStitch`;
- :func:`make_stitch` (a trainable layer of a kind) and :func:`direct_stitch` (Csiszarik et
  al.'s direct matching with the intertwiner group, no training).

Training, evaluation and the stitching penalty are in :mod:`simmetrics.nn.stitching`, whose
docstring describes the kinds and why the intertwiner stitch is parametrised as it is.
"""

import numbers

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
    "check_width",
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
        Anything :func:`simmetrics.metrics.intertwiner_groups.intertwiner_group_name` accepts.
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
        from ..metrics.intertwiner_groups import intertwiner_group_name

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


def check_width(value, name):
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
    c_in = check_width(c_in, "c_in")
    c_out = c_in if c_out is None else check_width(c_out, "c_out")
    if kind == "full":
        return FullStitch(c_in, c_out, seed)
    if kind == "lowrank":
        if rank is None:
            raise ValueError("kind='lowrank' needs rank")
        rank = check_width(rank, "rank")
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
        return IntertwinerStitch(c_in, activation, n_iter=check_width(n_iter, "n_iter"),
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
    from ..metrics.intertwiner_procrustes import IntertwinerProcrustes

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
