"""Which parameter dimensions belong to which hidden units: the specification that
:func:`simmetrics.nn.align.align_models` aligns and transforms by.

The idea is Git Re-Basin's ``PermutationSpec`` (Ainsworth, Hayase, Srinivasa, "Git Re-Basin:
Merging Models modulo Permutation Symmetries", ICLR 2023, Section 3 and Appendix): name the
groups of hidden units (**axes**), and declare for every parameter which axis each of its
dimensions belongs to. Here every axis also carries its activation sigma, hence its
intertwiner group G_sigma and phi_sigma (Godfrey et al., NeurIPS 2022;
:func:`simmetrics.symmetry.activations.intertwiner_group`), and every declared dimension a
**role** that says how an element A = P D of the group (unit i of the new model is
``d_i`` times unit ``pi(i)`` of the old one, on the pre-activations) acts on it:

=========  =====================================================================================
``"out"``  the dimension produces the units' pre-activations: slice i becomes ``d_i`` times
           slice ``pi(i)`` (rows of a Linear or Conv weight and its bias; a BatchNorm's weight
           and bias, which absorb the scales when it sits between the layer and sigma)
``"perm"`` only re-indexed, slice i becomes slice ``pi(i)`` (a layer followed by BatchNorm,
           whose output does not depend on the layer's per-unit scale; running mean and
           variance)
``"in"``   the dimension reads the post-activations, which move by phi(A): slice i becomes
           slice ``pi(i)`` divided by ``phi(A)_{i, pi(i)}`` (columns of the next layer's
           weight; with ``block`` b > 1, unit i owns the b consecutive entries ``i b ... i b +
           b - 1``, as an nn.Linear reading flattened channel-major conv features)
=========  =====================================================================================

so that the model's function is unchanged (the weight-space action of
:mod:`simmetrics.symmetry.weights`, written per dimension so that one axis may be written
and read by many layers).

**Residual streams.** In a residual network every block adds its output to the stream, so one
group element must act on the stem, on every block that writes the stream and on every layer
that reads it (the element is *shared*). An identity skip passes the stream's
post-activations phi(A) h into a sum that must move by A, so on a residual axis phi(A) = A is
required: only permutations, or the common subgroup of the stream's activations on which
phi is the identity (positive scaled permutations for ReLU after every addition, signed
permutations for tanh; never the scaled permutations of x^d, whose phi is P D^d). Declare it
with ``residual=True``; :meth:`AlignmentSpec.add_axis` checks it.

:func:`spec_from_sequential` builds the specification of an ``nn.Sequential`` (Linear, Conv,
BatchNorm between a layer and its activation, Flatten, pooling, dropout); other architectures
declare theirs with :meth:`AlignmentSpec.add_axis`, :meth:`AlignmentSpec.add_layer` and
:meth:`AlignmentSpec.add_param`. A small residual network:

>>> import torch
>>> from torch import nn
>>> class ResMLP(nn.Module):  # x -> relu(stem x) -> relu(h + fc2 relu(fc1 h)) -> head
...     def __init__(self):
...         super().__init__()
...         self.stem, self.act0 = nn.Linear(3, 8), nn.ReLU()
...         self.fc1, self.act1, self.fc2 = nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, 8)
...         self.act2, self.head = nn.ReLU(), nn.Linear(8, 2)
...     def forward(self, x):
...         h = self.act0(self.stem(x))
...         return self.head(self.act2(h + self.fc2(self.act1(self.fc1(h)))))
>>> spec = AlignmentSpec()
>>> spec.add_axis("stream", 8, "relu", residual=True, post=["act0", "act2"])
>>> spec.add_axis("inner", 5, "relu", pre="fc1", post="act1")
>>> spec.add_layer("stem", out="stream")
>>> spec.add_layer("fc1", out="inner", inp="stream")
>>> spec.add_layer("fc2", out="stream", inp="inner")
>>> spec.add_layer("head", inp="stream")
>>> spec.check(ResMLP())
>>> spec
AlignmentSpec(2 axes: 'stream' (8, relu, residual, default group positive_scaled_permutation), \
'inner' (5, relu, default group positive_scaled_permutation); 7 parameters)
"""

import numpy as np

from ..symmetry.activations import intertwiner_group, resolve_activation
from ..symmetry.groups import get_group, is_subgroup

__all__ = ["Axis", "AlignmentSpec", "spec_from_sequential", "MONOMIAL_GROUPS"]

#: The groups an alignment element may come from: monomial matrices P D.
MONOMIAL_GROUPS = ("permutation", "signed_permutation", "positive_scaled_permutation",
                   "scaled_permutation")
ROLES = ("out", "perm", "in")
_UNSIGNED = {"signed_permutation": "permutation",
             "scaled_permutation": "positive_scaled_permutation"}


def _name_list(value, arg):
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise TypeError(f"{arg} must be a module name or a list of module names, got {value!r}")


def largest_monomial_group(intertwiner):
    """The largest group of :data:`MONOMIAL_GROUPS` inside G_sigma (GL_n of the identity
    activation gives the scaled permutations)."""
    name = intertwiner.group.name
    return name if name in MONOMIAL_GROUPS else "scaled_permutation"


class Axis:
    """One group of hidden units that a single group element acts on.

    Attributes
    ----------
    name : str
    size : int
        The number of units (channels for convolutions).
    intertwiner : Intertwiner
        G_sigma and phi_sigma of the activation applied to these units.
    residual : bool
        A residual stream (see the module docstring): phi(A) = A is required.
    max_group : str
        The largest admissible group (the default): G_sigma's largest monomial subgroup,
        restricted by what sits on the axis (``notes`` says why).
    pre, post : tuple of str
        Modules whose outputs are the units' pre-activations (the layer, or the BatchNorm
        after it) and post-activations (the activation module, or a residual block's
        output); several names when several modules write the axis (their rows are stacked).
    notes : list of str
    """

    def __init__(self, name, size, activation="identity", residual=False, pre=None,
                 post=None, max_group=None, notes=()):
        if not isinstance(name, str) or not name:
            raise TypeError(f"an axis name must be a non-empty str, got {name!r}")
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"axis {name!r}: size must be a positive integer, got {size!r}")
        self.name, self.size, self.residual = name, int(size), bool(residual)
        self.intertwiner = intertwiner_group(activation)
        self.pre, self.post = _name_list(pre, "pre"), _name_list(post, "post")
        self.notes = list(notes)
        group = largest_monomial_group(self.intertwiner)
        if self.residual and not self.phi_is_identity(group):
            smaller = _UNSIGNED.get(group, "permutation")
            group = smaller if self.phi_is_identity(smaller) else "permutation"
            self.notes.append(f"residual stream: phi(A) = A is needed, which for "
                              f"{self.intertwiner.activation} holds on {group} only")
        if max_group is not None:
            self._check_subgroup(max_group, "max_group")
            group = get_group(max_group).name
        self.max_group = group

    def phi_is_identity(self, group):
        """Whether phi_sigma(A) = A for every A in ``group``."""
        it = self.intertwiner
        if it.degree == 1 and it.keep_sign:
            return True
        return group == "permutation" or (group == "positive_scaled_permutation"
                                          and it.degree == 1)

    def _check_subgroup(self, group, arg):
        name = get_group(group).name
        top = largest_monomial_group(self.intertwiner)
        if name not in MONOMIAL_GROUPS or not is_subgroup(name, top):
            raise ValueError(
                f"{arg}: group {name!r} for axis {self.name!r} is not a monomial subgroup of "
                f"the intertwiner group of {self.intertwiner.activation} ({top}); allowed: "
                + ", ".join(g for g in MONOMIAL_GROUPS if is_subgroup(g, top)))
        if self.residual and not self.phi_is_identity(name):
            raise ValueError(f"{arg}: axis {self.name!r} is a residual stream and phi(A) != A "
                             f"on {name} for {self.intertwiner.activation}")
        return name

    def resolve_group(self, group, arg="groups"):
        """``group`` (None: :attr:`max_group`) checked against :attr:`max_group`."""
        if group is None:
            return self.max_group
        name = self._check_subgroup(group, arg)
        if not is_subgroup(name, self.max_group):
            raise ValueError(
                f"{arg}: group {name!r} is not admissible on axis {self.name!r}, whose "
                f"largest admissible group is {self.max_group!r} ({'; '.join(self.notes)})")
        return name

    def __repr__(self):
        extra = ", residual" if self.residual else ""
        return (f"'{self.name}' ({self.size}, {self.intertwiner.activation}{extra}, default "
                f"group {self.max_group})")


class AlignmentSpec:
    """Axes of hidden units and, per parameter, the axis and role of its dimensions.

    Build it by hand (:meth:`add_axis`, then :meth:`add_layer` / :meth:`add_param`) or with
    :func:`spec_from_sequential`; see the module docstring for the roles and for residual
    streams.

    Attributes
    ----------
    axes : dict of str to Axis
        In declaration order, which must be the order of the forward pass (weight matching
        canonicalises the scales axis after axis in this order).
    params : dict of str to dict
        ``params[name][dim] = (axis, role, block)`` for every declared dimension of the
        parameter or buffer ``name`` (as ``model.state_dict()`` spells it).

    Examples
    --------
    >>> spec = AlignmentSpec()
    >>> spec.add_axis("hidden", 6, "tanh", pre="fc1", post="act")
    >>> spec.add_layer("fc1", out="hidden")
    >>> spec.add_layer("fc2", inp="hidden")
    >>> spec.params
    {'fc1.weight': {0: ('hidden', 'out', 1)}, 'fc1.bias': {0: ('hidden', 'out', 1)}, \
'fc2.weight': {1: ('hidden', 'in', 1)}}
    """

    def __init__(self):
        self.axes = {}
        self.params = {}

    def add_axis(self, name, size, activation="identity", residual=False, pre=None,
                 post=None, max_group=None, notes=()):
        """Declare an axis (see :class:`Axis` for the arguments)."""
        if name in self.axes:
            raise ValueError(f"axis {name!r} is declared twice")
        self.axes[name] = Axis(name, size, activation, residual, pre, post, max_group, notes)

    def add_param(self, name, dims):
        """Declare ``dims = {dim: (axis, role)}`` or ``{dim: (axis, "in", block)}`` for the
        parameter or buffer ``name``; declaring a name again adds dimensions to it."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"a parameter name must be a non-empty str, got {name!r}")
        out = self.params.setdefault(name, {})
        for dim, entry in dict(dims).items():
            if not isinstance(entry, tuple) or len(entry) not in (2, 3):
                raise TypeError(f"{name}: dimension {dim} must be declared as (axis, role) or "
                                f"(axis, 'in', block), got {entry!r}")
            axis, role = entry[0], entry[1]
            block = int(entry[2]) if len(entry) == 3 else 1
            if axis not in self.axes:
                raise ValueError(f"{name}: unknown axis {axis!r}; declared: {list(self.axes)}")
            if role not in ROLES:
                raise ValueError(f"{name}: role must be one of {ROLES}, got {role!r}")
            if block < 1 or (block > 1 and role != "in"):
                raise ValueError(f"{name}: block must be 1, or >= 1 for role 'in'; got {block}")
            if int(dim) in out:
                raise ValueError(f"{name}: dimension {dim} is declared twice")
            if any(a == axis for a, _, _ in out.values()):
                raise ValueError(f"{name}: axis {axis!r} on two dimensions of one parameter "
                                 "makes the matching problem quadratic; not supported")
            out[int(dim)] = (axis, role, block)

    def add_layer(self, prefix, out=None, inp=None, batchnorm=None, block=1, bias=True):
        """Declare an nn.Linear / nn.Conv called ``prefix``: its weight's dimension 0 on axis
        ``out`` (role "perm" when a BatchNorm ``batchnorm`` follows, whose weight and bias
        then take role "out" and running statistics role "perm"), dimension 1 on axis
        ``inp`` (role "in", with ``block``), its bias (``bias=True``) like dimension 0."""
        first = "perm" if batchnorm is not None else "out"
        dims = {}
        if out is not None:
            dims[0] = (out, first)
        if inp is not None:
            dims[1] = (inp, "in", block)
        self.add_param(f"{prefix}.weight", dims)
        if bias and out is not None:
            self.add_param(f"{prefix}.bias", {0: (out, first)})
        if batchnorm is not None:
            if out is None:
                raise ValueError(f"{prefix}: a BatchNorm needs the layer's out axis")
            for suffix, role in (("weight", "out"), ("bias", "out"), ("running_mean", "perm"),
                                 ("running_var", "perm")):
                self.add_param(f"{batchnorm}.{suffix}", {0: (out, role)})

    def check(self, model, arg="model"):
        """Raise a ValueError naming ``arg`` unless every declared parameter exists in
        ``model`` with the declared axis sizes, and every axis is written and read."""
        state = model.state_dict()
        for name, dims in self.params.items():
            if name not in state:
                raise ValueError(f"{arg} has no parameter or buffer {name!r} (declared in the "
                                 "spec); its names come from state_dict()")
            shape = tuple(state[name].shape)
            for dim, (axis, role, block) in dims.items():
                want = self.axes[axis].size * block
                if dim >= len(shape) or shape[dim] != want:
                    raise ValueError(
                        f"{arg}: parameter {name!r} has shape {shape}, but the spec puts axis "
                        f"{axis!r} ({self.axes[axis].size} units"
                        + (f" x block {block}" if block > 1 else "")
                        + f") on its dimension {dim}: width mismatch")
        for axis in self.axes:
            roles = {r for dims in self.params.values() for a, r, _ in dims.values() if a == axis}
            if not roles & {"out", "perm"} or "in" not in roles:
                raise ValueError(f"axis {axis!r} must be both written (role 'out' or 'perm') "
                                 "and read (role 'in') by some parameter")

    def __repr__(self):
        axes = ", ".join(repr(a) for a in self.axes.values())
        return f"AlignmentSpec({len(self.axes)} axes: {axes}; {len(self.params)} parameters)"


# -- the action of group elements on a state (numpy float64 arrays) ---------------------------
def phi_diagonal(axis, permutation, factors):
    """The entries ``phi(A)_{i, pi(i)}`` of phi_sigma(A) for A with ``A[i, pi(i)] =
    factors[i]`` (phi from the axis's :class:`~simmetrics.symmetry.activations.Intertwiner`,
    which also checks that A is in G_sigma)."""
    n = len(permutation)
    A = np.zeros((n, n))
    rows = np.arange(n)
    A[rows, permutation] = factors
    return axis.intertwiner.phi(A)[rows, permutation]


def act_on_state(spec, state, elements, skip=None):
    """New arrays for the declared entries of ``state`` (name -> float64 array) after the
    group elements ``elements`` (axis -> (permutation, factors, phi)) act; axes missing from
    ``elements`` and the axis ``skip`` are left as they are."""
    out = {}
    for name, dims in spec.params.items():
        if name not in state:
            continue
        W = state[name]
        for dim, (axis, role, block) in dims.items():
            if axis == skip or axis not in elements:
                continue
            perm, factors, phi = elements[axis]
            index = (perm[:, None] * block + np.arange(block)).ravel() if block > 1 else perm
            W = np.take(W, index, axis=dim)
            if role == "perm":
                continue
            f = factors if role == "out" else 1.0 / phi
            shape = [1] * W.ndim
            shape[dim] = -1
            W = W * np.repeat(f, block).reshape(shape)
        out[name] = W
    return out


# -- the builder for nn.Sequential -----------------------------------------------------------
def _torch_nn():
    from torch import nn

    return nn


def _kinds():
    nn = _torch_nn()
    layers = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    through = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Flatten,
               nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
               nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
    maxpools = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d,
                nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
    return layers, norms, through, maxpools


def _classify(name, module, activations, arg):
    """'layer', 'norm', 'through', 'maxpool' or ('activation', spec) for one module."""
    layers, norms, through, maxpools = _kinds()
    if isinstance(module, layers):
        if getattr(module, "groups", 1) != 1:
            raise ValueError(f"{arg}[{name}] is a grouped convolution (groups="
                             f"{module.groups}); only groups=1 is supported")
        return "layer"
    if isinstance(module, norms):
        return "norm"
    if isinstance(module, through):
        return "through"
    if isinstance(module, maxpools):
        return "maxpool"
    if isinstance(module, _torch_nn().Unflatten):
        return "input"  # reshapes the input: allowed before the first layer only
    if name in activations:
        return ("activation", activations[name])
    spec = resolve_activation(module)
    if spec.row is None:
        raise ValueError(
            f"{arg}[{name}] ({type(module).__name__}) is an unknown layer: not a Linear, Conv, "
            "BatchNorm, Flatten, pooling, dropout or a known coordinatewise activation. "
            f"Declare it with activations={{'{name}': ...}} if it acts coordinatewise, or "
            "pass spec= built with AlignmentSpec")
    return ("activation", module)


def spec_from_sequential(model, activations=None, arg="model"):
    """The :class:`AlignmentSpec` of an ``nn.Sequential``: one axis per hidden layer.

    Every nn.Linear or nn.Conv1d/2d/3d (``groups=1``) except the last produces an axis, named
    by its position in the Sequential (``"0"``, ``"3"``, ...), of its output units or
    channels. Between it and the next such layer may come: one BatchNorm (before the
    activation), one activation, and any number of Identity, Dropout, Flatten, average or
    max pooling modules; an Unflatten may reshape the input before the first layer. The axis's default group is the largest monomial subgroup of the
    activation's intertwiner group, restricted where something on the axis needs it: max
    pooling commutes only with non-negative maps (signs removed); a BatchNorm without affine
    parameters absorbs no scales or signs (permutations only); no activation gives the scaled
    permutations (the monomial part of GL_n). The pre-activation representation is the
    BatchNorm's output (else the layer's), the post-activation one the activation's output.

    Parameters
    ----------
    model : nn.Sequential
    activations : dict of str to activation, optional
        Modules (by name) to treat as coordinatewise activations, with what
        :func:`~simmetrics.symmetry.activations.intertwiner_group` accepts (``("power", 3)``
        for a custom cube module); torch's activation modules are recognised without it.
    arg : str
        The argument name used in error messages.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Tanh(), nn.MaxPool2d(2),
    ...                     nn.Flatten(), nn.Linear(4 * 3 * 3, 5), nn.GELU(), nn.Linear(5, 2))
    >>> spec = spec_from_sequential(net)
    >>> [(a.name, a.max_group) for a in spec.axes.values()]
    [('0', 'permutation'), ('5', 'permutation')]
    >>> spec.axes["0"].notes
    ['max pooling model[3] commutes only with non-negative maps: signs removed']
    >>> sorted(spec.params["5.weight"].items())  # dimension: (axis, role, block)
    [(0, ('5', 'out', 1)), (1, ('0', 'in', 9))]
    """
    nn = _torch_nn()
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"{arg} must be an nn.Sequential to build its spec, got "
                        f"{type(model).__name__}; for other architectures pass spec= (an "
                        "AlignmentSpec, see simmetrics.nn.align_spec)")
    activations = dict(activations or {})
    mods = list(model.named_children())
    unknown = set(activations) - {n for n, _ in mods}
    if unknown:
        raise ValueError(f"activations names modules that {arg} does not have: {sorted(unknown)}")
    kinds = [_classify(n, m, activations, arg) for n, m in mods]
    layer_pos = [i for i, k in enumerate(kinds) if k == "layer"]
    if len(layer_pos) < 2:
        raise ValueError(f"{arg} has {len(layer_pos)} Linear/Conv layer(s); aligning needs at "
                         "least one hidden layer (two layers)")
    late = [mods[i][0] for i, k in enumerate(kinds) if k == "input" and i > layer_pos[0]]
    if late:
        raise ValueError(f"{arg}[{late[0]}] (Unflatten) comes after the first layer; an "
                         "Unflatten is supported only before it, where it reshapes the input")
    spec = AlignmentSpec()
    for li, lj in zip(layer_pos[:-1], layer_pos[1:]):
        _add_hidden(spec, mods, kinds, li, lj, arg)
    return spec


def _add_hidden(spec, mods, kinds, li, lj, arg):
    """The axis of hidden layer ``mods[li]`` (read by ``mods[lj]``) and its parameters."""
    nn = _torch_nn()
    name, layer = mods[li]
    size = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    bn = act = None
    notes, has_max, flatten = [], False, False
    for k in range(li + 1, lj):
        kind, (mname, module) = kinds[k], mods[k]
        if kind == "norm":
            if bn is not None or act is not None:
                raise ValueError(f"{arg}[{mname}]: a BatchNorm is supported only directly "
                                 "after the layer, before the activation")
            if module.num_features != size:
                raise ValueError(f"{arg}[{mname}] has {module.num_features} features, but "
                                 f"{arg}[{name}] has {size} units: width mismatch")
            bn = (mname, module)
        elif isinstance(kind, tuple):
            if act is not None:
                raise ValueError(f"{arg}[{mname}]: two activations between {arg}[{name}] and "
                                 f"{arg}[{mods[lj][0]}]; one is supported")
            act = (mname, kind[1])
        else:
            if kind == "maxpool":
                has_max = True
                notes.append(f"max pooling {arg}[{mname}] commutes only with non-negative "
                             "maps: signs removed")
            flatten = flatten or isinstance(module, nn.Flatten)
    intertwiner = intertwiner_group(act[1] if act is not None else "identity")
    group = largest_monomial_group(intertwiner)
    if has_max and intertwiner.keep_sign:
        group = _UNSIGNED.get(group, group)
    if bn is not None and not bn[1].affine:
        group = "permutation"
        notes.append(f"{arg}[{bn[0]}] has no affine parameters to absorb scales or signs")
    block = _read_block(layer, mods[lj][1], size, flatten, arg, name, mods[lj][0])
    spec.add_axis(name, size, intertwiner, pre=bn[0] if bn else name,
                  post=act[0] if act else None, max_group=group, notes=notes)
    spec.add_layer(name, out=name, batchnorm=bn[0] if bn else None,
                   bias=layer.bias is not None)
    spec.add_param(f"{mods[lj][0]}.weight", {1: (name, "in", block)})


def _read_block(layer, reader, size, flatten, arg, name, rname):
    """How many inputs of ``reader`` each unit of ``layer`` feeds (H*W... after Flatten)."""
    nn = _torch_nn()
    if not isinstance(reader, nn.Linear):
        if reader.in_channels != size:
            raise ValueError(f"{arg}[{rname}] has {reader.in_channels} input channels, but "
                             f"{arg}[{name}] has {size}: width mismatch")
        return 1
    m = reader.in_features
    if m == size:
        return 1
    if not isinstance(layer, nn.Linear) and flatten and m % size == 0:
        return m // size
    raise ValueError(f"{arg}[{rname}] has {m} input features, but {arg}[{name}] has {size} "
                     "units: width mismatch")
