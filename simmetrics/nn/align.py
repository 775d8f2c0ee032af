"""Align two networks by the intertwiner group of each hidden layer: :func:`align_models`.

Two networks of one architecture trained from different seeds compute similar functions with
their hidden units in different orders (and, for the groups that allow it, with different
signs and scales). Git Re-Basin (Ainsworth, Hayase, Srinivasa, ICLR 2023) aligns model_b to
model_a by permutations before interpolating their weights; here each hidden layer's element
comes from its activation's intertwiner group G_sigma (Godfrey, Brown, Emerson, Kvinge,
NeurIPS 2022): signed permutations for tanh and sin, permutations for GELU, sigmoid and SiLU,
positive scaled permutations for ReLU and leaky ReLU, scaled permutations for x^d; ``groups=``
overrides it (``groups="permutation"`` is Git Re-Basin's alignment).

An element A = P D of an axis (its monomial form: unit i of the aligned model is ``signs[i]
* scales[i]`` times unit ``permutation[i]`` of model_b, on the pre-activations) acts on the
weights as :mod:`simmetrics.symmetry.weights` describes, written per parameter dimension by
the :class:`~simmetrics.nn.align_spec.AlignmentSpec` (so that residual streams share one
element): the aligned model computes model_b's function, its pre-activations move by A and
its post-activations by phi_sigma(A).
"""

import copy
import numbers

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..metrics.intertwiner_groups import SCALED, SIGNED
from ..metrics.intertwiner_procrustes import IntertwinerProcrustes
from .align_spec import AlignmentSpec, act_on_state, phi_diagonal, spec_from_sequential
from .compare import unwrap
from .extract import extract_pair

__all__ = ["align_models", "Alignment", "GroupElement"]

METHODS = ("activations", "weights")


class GroupElement:
    """The element of one axis: A with ``A[i, permutation[i]] = signs[i] * scales[i]``.

    Attributes
    ----------
    axis : str
    group : str
        The group it belongs to (one of
        :data:`~simmetrics.nn.align_spec.MONOMIAL_GROUPS`).
    permutation : ndarray of int
        Unit i of the aligned model comes from unit ``permutation[i]`` of model_b.
    signs, scales : ndarray
        +-1 and the positive factor of each unit (all 1 where the group has none).
    """

    def __init__(self, axis, group, permutation, signs, scales):
        self.axis, self.group = axis, group
        self.permutation = np.asarray(permutation, dtype=np.intp)
        self.signs = np.asarray(signs, dtype=np.float64)
        self.scales = np.asarray(scales, dtype=np.float64)

    @property
    def factors(self):
        """``signs * scales``: the nonzero entry of each row of A."""
        return self.signs * self.scales

    @property
    def matrix(self):
        """A as an n x n float64 matrix (pre-activations of model_b, as columns of a
        representation H, move by ``H @ A.T``)."""
        n = len(self.permutation)
        A = np.zeros((n, n))
        A[np.arange(n), self.permutation] = self.factors
        return A

    def __repr__(self):
        n = len(self.permutation)
        moved = int(np.sum(self.permutation != np.arange(n)))
        text = f"GroupElement(axis={self.axis!r}, group={self.group!r}, n={n}, moved={moved}"
        if self.group in SIGNED:
            text += f", sign_flips={int(np.sum(self.signs < 0))}"
        if self.group in SCALED:
            text += f", scales=[{self.scales.min():.3g}, {self.scales.max():.3g}]"
        return text + ")"


def _state(model):
    """Every entry of the state dict as a float64 numpy array (a copy)."""
    import torch

    return {k: v.detach().to("cpu", torch.float64).numpy().copy()
            for k, v in model.state_dict().items() if v.is_floating_point()}


class Alignment:
    """The result of :func:`align_models`: one group element per axis of the spec.

    Attributes
    ----------
    spec : AlignmentSpec
    elements : dict of str to GroupElement
        Per axis (hidden layer), in the spec's order.
    method : {"activations", "weights"}
    objective : float or None
        Weight matching: the matched objective sum over parameters of <W_a, W_b'> between
        the canonical forms (see :func:`align_models`) at the end; None for activations.
    n_iter : int
        Weight matching: the passes of coordinate descent (0 for activations).
    """

    def __init__(self, spec, elements, method, objective=None, n_iter=0):
        self.spec, self.elements, self.method = spec, elements, method
        self.objective, self.n_iter = objective, n_iter

    def action(self):
        """Per axis (permutation, factors, phi): what
        :func:`~simmetrics.nn.align_spec.act_on_state` applies."""
        return {a: (e.permutation, e.factors,
                    phi_diagonal(self.spec.axes[a], e.permutation, e.factors))
                for a, e in self.elements.items()}

    def apply(self, model_b):
        """A new model (a deep copy of ``model_b``) with every element applied: it computes
        model_b's function, with its hidden units aligned to model_a's.

        The parameters and buffers are transformed in float64 and written back in their own
        dtype; ``model_b`` is not modified.
        """
        import torch

        model, _ = unwrap(model_b, "model_b")
        self.spec.check(model, "model_b")
        new = copy.deepcopy(model)
        moved = act_on_state(self.spec, _state(model), self.action())
        state = new.state_dict()
        with torch.no_grad():
            for name, value in moved.items():
                target = state[name]
                target.copy_(torch.from_numpy(value).to(dtype=target.dtype,
                                                        device=target.device))
        return new

    def __repr__(self):
        head = f"Alignment(method={self.method!r}, {len(self.elements)} axes"
        if self.objective is not None:
            head += f", objective={self.objective:.6g}, n_iter={self.n_iter}"
        lines = [head + ")"] + [f"  {e!r}" for e in self.elements.values()]
        return "\n".join(lines)


# -- arguments -------------------------------------------------------------------------------
def _models_and_spec(model_a, model_b, spec, activations):
    from torch import nn

    model_a, _ = unwrap(model_a, "model_a")
    model_b, _ = unwrap(model_b, "model_b")
    if spec is None:
        if not isinstance(model_a, nn.Sequential):
            raise TypeError(f"model_a is a {type(model_a).__name__}, not an nn.Sequential: pass "
                            "spec= (an AlignmentSpec declaring its axes and parameters)")
        spec = spec_from_sequential(model_a, activations, "model_a")
        if not isinstance(model_b, nn.Sequential) or [type(m) for m in model_a] != \
                [type(m) for m in model_b]:
            raise ValueError("mismatched architectures: model_b's modules "
                             f"{[type(m).__name__ for m in model_b.children()]} differ from "
                             f"model_a's {[type(m).__name__ for m in model_a]}")
    elif not isinstance(spec, AlignmentSpec):
        raise TypeError(f"spec must be an AlignmentSpec, got {type(spec).__name__}")
    spec.check(model_a, "model_a")
    sa, sb = model_a.state_dict(), model_b.state_dict()
    if list(sa) != list(sb):
        raise ValueError(f"mismatched architectures: model_b's parameters "
                         f"{sorted(set(sb) ^ set(sa))[:6]} are not model_a's")
    for name in sa:
        if sa[name].shape != sb[name].shape:
            raise ValueError(f"width mismatch: model_b's {name!r} has shape "
                             f"{tuple(sb[name].shape)}, model_a's {tuple(sa[name].shape)}")
    spec.check(model_b, "model_b")
    return model_a, model_b, spec


def _groups(spec, groups):
    """The group of every axis: None (defaults), one name / Group for all, or a dict."""
    if groups is None or isinstance(groups, str) or hasattr(groups, "sample"):
        return {a: ax.resolve_group(groups) for a, ax in spec.axes.items()}
    if not isinstance(groups, dict):
        raise TypeError("groups must be None, a group name, a Group or a dict axis -> group, "
                        f"got {type(groups).__name__}")
    unknown = set(groups) - set(spec.axes)
    if unknown:
        raise ValueError(f"groups names unknown axes {sorted(unknown)}; the axes are "
                         f"{list(spec.axes)}")
    return {a: ax.resolve_group(groups.get(a), f"groups[{a!r}]") for a, ax in spec.axes.items()}


# -- activation matching ---------------------------------------------------------------------
def _rows(array):
    """Conv features (n, c, *positions) as (n * positions, c): every position a row."""
    if array.ndim <= 2:
        return array.reshape(array.shape[0], -1)
    return np.moveaxis(array, 1, -1).reshape(-1, array.shape[1])


def _capture(axis, group, on):
    """The modules whose outputs represent ``axis`` for ``on`` ("pre" or "post")."""
    names = axis.pre if on == "pre" else axis.post
    if names and on == "pre":
        return names
    if not names and on == "pre":
        names = axis.post
    elif not names:
        names = axis.pre  # no activation module: post-activation = pre-activation
        if axis.intertwiner.activation != "identity":
            raise ValueError(f"on='post': axis {axis.name!r} declares no post-activation "
                             "module")
    if not names:
        raise ValueError(f"axis {axis.name!r} declares neither pre nor post modules to "
                         "capture; activation matching needs one")
    if not axis.phi_is_identity(group):
        raise ValueError(
            f"on={on!r}: axis {axis.name!r} would be matched on post-activations, which move "
            f"by phi(A) != A for {axis.intertwiner.activation} on {group}; A cannot be read "
            "from them (the signs of an even activation are lost): declare pre= modules, or "
            "use on='pre'")
    return names


def _match_activations(model_a, model_b, spec, groups, data, on, batch_size):
    capture = {a: _capture(ax, groups[a], on) for a, ax in spec.axes.items()}
    modules = list(dict.fromkeys(n for names in capture.values() for n in names))
    acts_a, acts_b = extract_pair(model_a, model_b, data, modules, batch_size=batch_size)
    elements = {}
    for a, names in capture.items():
        X = np.vstack([_rows(acts_a[n]) for n in names])
        Y = np.vstack([_rows(acts_b[n]) for n in names])
        size = spec.axes[a].size
        if X.shape[1] != size:
            raise ValueError(f"axis {a!r}: the captured modules {list(names)} give "
                             f"{X.shape[1]} units, the spec declares {size}")
        fit = IntertwinerProcrustes(activation=groups[a]).fit(X, Y)
        scales = np.where(fit.scales_ > 0.0, fit.scales_, 1.0)  # silent units: no scale seen
        if groups[a] not in SCALED:
            scales = np.ones(size)
        signs = fit.signs_ if groups[a] in SIGNED else np.ones(size)
        elements[a] = GroupElement(a, groups[a], fit.permutation_, signs, scales)
    return elements


# -- weight matching -------------------------------------------------------------------------
def _learnable(model, state):
    names = {n for n, _ in model.named_parameters()}
    return {k: v for k, v in state.items() if k in names}


def _unit_norms(spec, state, axis):
    """The norm of each unit's "out" slices (a layer's row and bias, or the BatchNorm's
    weight and bias that follow it); zero norms count as 1."""
    sq = np.zeros(spec.axes[axis].size)
    for name, dims in spec.params.items():
        for dim, (a, role, _) in dims.items():
            if a == axis and role == "out" and name in state:
                W = np.moveaxis(state[name], dim, 0)
                sq += np.sum(W.reshape(W.shape[0], -1) ** 2, axis=1)
    norms = np.sqrt(sq)
    return np.where(norms > 0.0, norms, 1.0)


def _canonical(spec, state, scaled):
    """Both the canonical state and its per-axis norms: axis by axis in the spec's order,
    every unit of a scaled (non-residual) axis divided by the norm of its "out" slices, the
    factor pushed into what reads it (a function-preserving element of G_sigma)."""
    norms = {}
    for a in spec.axes:
        if a not in scaled:
            continue
        n = _unit_norms(spec, state, a)
        perm, f = np.arange(len(n)), 1.0 / n
        moved = act_on_state(spec, state, {a: (perm, f, phi_diagonal(spec.axes[a], perm, f))})
        state = {**state, **moved}
        norms[a] = n
    return state, norms


def _cost(spec, state_a, state_b, axis, current):
    """(v_plus, v_minus): the objective's terms that pair unit i of model_a with unit j of
    model_b on ``axis`` with sign +1 and -1, every other axis's current element applied."""
    size = spec.axes[axis].size
    keep = spec.axes[axis].intertwiner.keep_sign
    parts = {role: np.zeros((size, size)) for role in ("out", "perm", "in")}
    moved = act_on_state(spec, state_b, current, skip=axis)
    for name, dims in spec.params.items():
        if name not in state_a:
            continue
        for dim, (a, role, _) in dims.items():
            if a == axis:
                Wa = np.moveaxis(state_a[name], dim, 0).reshape(size, -1)
                Wb = np.moveaxis(moved[name], dim, 0).reshape(size, -1)
                parts[role] += Wa @ Wb.T
    plus = parts["out"] + parts["in"] + parts["perm"]
    minus = -parts["out"] + (-parts["in"] if keep else parts["in"]) + parts["perm"]
    return plus, minus


def _match_weights(model_a, model_b, spec, groups, max_iter, random_state):
    rng = np.random.default_rng(random_state)
    residual_scaled = [a for a in spec.axes if spec.axes[a].residual and groups[a] in SCALED]
    scaled = {a for a in spec.axes if groups[a] in SCALED and a not in residual_scaled}
    state_a, norms_a = _canonical(spec, _learnable(model_a, _state(model_a)), scaled)
    state_b, norms_b = _canonical(spec, _learnable(model_b, _state(model_b)), scaled)
    current = {}
    for a, ax in spec.axes.items():
        perm, f = np.arange(ax.size), np.ones(ax.size)
        current[a] = (perm, f, f.copy())
    order = list(spec.axes)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        changed = False
        for k in rng.permutation(len(order)):
            a = order[k]
            plus, minus = _cost(spec, state_a, state_b, a, current)
            signed = groups[a] in SIGNED
            value = np.maximum(plus, minus) if signed else plus
            rows, cols = linear_sum_assignment(value, maximize=True)
            perm, signs = current[a][0], current[a][1]
            old = float(np.sum(np.where(signs[:, None] > 0, plus, minus)[rows, perm]))
            new = float(np.sum(value[rows, cols]))
            if new > old + 1e-12 * max(abs(old), abs(new), np.finfo(float).tiny):
                s = np.where(plus[rows, cols] >= minus[rows, cols], 1.0, -1.0) if signed \
                    else np.ones(len(cols))
                current[a] = (cols, s, phi_diagonal(spec.axes[a], cols, s))
                changed = True
        if not changed:
            break
    moved = {**state_b, **act_on_state(spec, state_b, current)}
    objective = float(sum(np.sum(state_a[k] * moved[k]) for k in state_a))
    elements = {}
    for a, (perm, signs, _) in current.items():
        scales = norms_a[a] / norms_b[a][perm] if a in scaled else np.ones(len(perm))
        elements[a] = GroupElement(a, groups[a], perm, signs, scales)
    return elements, objective, n_iter


def align_models(model_a, model_b, data=None, method="activations", groups=None, spec=None,
                 on="pre", activations=None, batch_size=256, max_iter=100, random_state=0):
    """Align ``model_b`` to ``model_a`` by one element of each hidden layer's intertwiner
    group.

    Returns an :class:`Alignment`; ``alignment.apply(model_b)`` is a copy of model_b that
    computes the same function with its hidden units aligned to model_a's.

    **method="activations"** (Git Re-Basin's activation matching, generalised): for each
    axis, the G_sigma assignment between model_a's and model_b's representations on
    ``data``, solved exactly by :class:`~simmetrics.IntertwinerProcrustes` with the axis's
    group (canonicalise the scales by each unit's rms, then a linear assignment, on
    |cross-products| with the sign of each match for the signed groups). The
    representation is the **pre-activation** by default (``on="pre"``: the layer's output,
    or the BatchNorm's after it), because the element acts there as A itself: the
    post-activations move by phi(A), which for x^d, abs and the Gaussian loses A's signs.
    ``on="post"`` matches the activation modules' outputs, as Git Re-Basin does, where
    phi(A) = A (ReLU, tanh, GELU, ...). Each axis's element is found independently from the
    original model_b's representations (as in Git Re-Basin): aligning other layers leaves a
    layer's representation unchanged up to its own element, so nothing is lost. A residual
    stream is represented by every module that writes it (rows stacked). Conv features give
    one row per sample and position.

    **method="weights"** (Git Re-Basin's weight matching, Ainsworth et al. 2023, Algorithm
    1, generalised): coordinate descent over the axes in random order (``random_state``):
    for axis k, holding every other axis's element fixed, the linear assignment maximising
    sum over the parameters touching k of <W_a, W_b'> (W_b' = model_b's parameter with the
    current elements applied), until a whole pass changes nothing or ``max_iter`` passes.
    For signed groups (tanh, sin) the sign of each pair is chosen with it: the pair's value
    with sign s is s C_out + phi(s) C_in + C_perm (C_out: the slices that produce the unit,
    C_in: those that read it, C_perm: a layer before BatchNorm), the assignment runs on the
    better of the two signs. For groups with positive scales (ReLU, leaky ReLU, x^d, the
    identity), both models are first **canonicalised**, axis after axis in forward order:
    each unit is divided by the norm of its incoming weights (its row of W and bias, or the
    BatchNorm's weight and bias after the layer; a norm of 0 counts as 1), the factor pushed
    into the next layer by phi, a function-preserving element of G_sigma, so every unit has
    unit-norm incoming weights; then the signed permutation is matched as above, and the
    element returned is the composition canonicalise(model_b) -> match ->
    un-canonicalise(model_a): its scales are ``norm_a[i] / norm_b[permutation[i]]``, so the
    aligned copy's units also have model_a's incoming norms (for a model_b that is model_a
    transformed by G_sigma, the aligned copy's weights are model_a's). Residual axes are not
    canonicalised (a stream has many writers): there weight matching uses (signed)
    permutations and scales 1. Only parameters enter the objective (not running statistics).

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
        Two models of one architecture (DataParallel wrappers are removed). Without
        ``spec`` both must be nn.Sequential
        (:func:`~simmetrics.nn.align_spec.spec_from_sequential`).
    data : torch.Tensor, numpy.ndarray or iterable of batches, optional
        Inputs for ``method="activations"`` (required there): a tensor (cut into
        ``batch_size`` batches) or an iterable of tensors or of tuples whose first item is
        the input (``(x, y)`` batches). Ignored by ``method="weights"``.
    method : {"activations", "weights"}, default "activations"
    groups : None, str, Group or dict of str to (str or Group), optional
        The group of every axis (one name for all, e.g. ``"permutation"``), or per axis
        name; default each axis's largest admissible group
        (:attr:`~simmetrics.nn.align_spec.Axis.max_group`). Must be a subgroup of it.
    spec : AlignmentSpec, optional
        The axes and parameters (required for models that are not nn.Sequential).
    on : {"pre", "post"}, default "pre"
        Which representation activation matching reads (see above).
    activations : dict, optional
        Passed to :func:`~simmetrics.nn.align_spec.spec_from_sequential` (custom
        coordinatewise activation modules by name).
    batch_size : int, default 256
    max_iter : int, default 100
        Weight matching: the most passes of coordinate descent.
    random_state : int or numpy Generator, default 0
        Weight matching: the order of the axes in each pass.

    Returns
    -------
    Alignment

    Raises
    ------
    ValueError
        Mismatched architectures or widths between the models, an unknown layer in a
        Sequential, a missing ``data`` for ``method="activations"``, a group that is not
        admissible on an axis, an unknown ``method`` or ``on``.
    TypeError
        A model that is not a torch module, a non-Sequential model without ``spec``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from simmetrics import apply_intertwiner_, get_group
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    >>> A = get_group("signed_permutation").sample(6, random_state=1)
    >>> other = apply_intertwiner_(copy.deepcopy(net), 0, A)
    >>> x = torch.randn(100, 4, dtype=torch.float64)
    >>> alignment = align_models(net, other, x)
    >>> bool(np.allclose(alignment.elements["0"].matrix @ A, np.eye(6)))  # A^-1 recovered
    True
    >>> aligned = alignment.apply(other)
    >>> bool(torch.allclose(aligned[0].weight, net[0].weight, atol=1e-12))
    True
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if on not in ("pre", "post"):
        raise ValueError(f"on must be 'pre' or 'post', got {on!r}")
    for value, arg, low in ((batch_size, "batch_size", 1), (max_iter, "max_iter", 1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"{arg} must be a positive integer, got {value!r}")
    if method == "activations" and data is None:
        raise ValueError("data is required for method='activations' (a tensor or an iterable "
                         "of input batches); method='weights' needs none")
    model_a, model_b, spec = _models_and_spec(model_a, model_b, spec, activations)
    group_of = _groups(spec, groups)
    if method == "activations":
        elements = _match_activations(model_a, model_b, spec, group_of, data, on,
                                      int(batch_size))
        return Alignment(spec, elements, method)
    elements, objective, n_iter = _match_weights(model_a, model_b, spec, group_of,
                                                 int(max_iter), random_state)
    return Alignment(spec, elements, method, objective, n_iter)
