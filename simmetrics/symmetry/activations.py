"""Intertwiner groups of activation functions (the homogeneity defect, the paper's measure of
how far an activation is from positively homogeneous, is in :mod:`simmetrics.symmetry.homogeneity`).

For an activation sigma applied coordinatewise on R^n, Godfrey, Brown, Emerson, Kvinge ("On the
Symmetries of Deep Learning Models and their Internal Representations", NeurIPS 2022, Section 3)
define the intertwiner group

    G_sigma = { A in GL_n : there is B in GL_n with sigma(A x) = B sigma(x) for every x },
    phi_sigma(A) = B,

B being unique for non-constant sigma. For a layer h -> W2 sigma(W1 h + b1) + b2 and A in G_sigma,
(W1, b1, W2) -> (A W1, A b1, W2 phi(A)^-1) leaves the network unchanged while the hidden
representation moves by A before and by phi(A) after the activation.

The table (the paper's Table 1, extended; every row is checked by a test with a least-squares
fit of B on random inputs):

=========================================  =================================  =============
sigma                                      G_sigma                            phi(A)
=========================================  =================================  =============
identity                                   invertible_linear (GL_n)           A
relu, leaky_relu (slope != 1), prelu       positive_scaled_permutation        A
tanh, sin (odd, not homogeneous)           signed_permutation                 A
gelu, sigmoid, softplus, elu, silu         permutation                        A
x^d (integer d >= 2)                       scaled_permutation                 A^(.d)
abs                                        scaled_permutation                 abs(A)
gaussian exp(-x^2)                         signed_permutation                 abs(A)
=========================================  =================================  =============

A^(.d) is the entrywise power; for a monomial matrix it is P D^d, so for even d negative
scales become positive (x^d is even). Unknown callables are classified by probing (see
:func:`intertwiner_group`).
"""

import copy
import math
import numbers

import numpy as np
from scipy.special import expit, ndtr

from .groups import get_group

__all__ = ["Intertwiner", "intertwiner_group", "resolve_activation"]


# -- numpy versions of the activations (float64) --------------------------------------------
def _identity(x):
    return x


def _relu(x):
    return np.maximum(x, 0.0)


def _leaky(slope):
    def leaky_relu(x):
        return np.where(x >= 0.0, x, slope * x)

    return leaky_relu


def _gelu(x):
    return x * ndtr(x)  # x Phi(x); ndtr is accurate in the tails


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _softplus(beta, threshold):
    def softplus(x):
        bx = beta * x
        return np.where(bx > threshold, x, np.logaddexp(0.0, bx) / beta)

    return softplus


def _elu(alpha):
    def elu(x):
        return np.where(x > 0.0, x, alpha * np.expm1(np.minimum(x, 0.0)))

    return elu


def _silu(x):
    return x * expit(x)


def _power(d):
    def power(x):
        return x**d

    return power


def _gaussian(x):
    return np.exp(-np.square(x))


# canonical name -> (group name, degree k, keep_sign) with phi(A) = sign(A)^keep |A|^(.k)
_ROWS = {
    "identity": ("invertible_linear", 1, True),
    "relu": ("positive_scaled_permutation", 1, True),
    "leaky_relu": ("positive_scaled_permutation", 1, True),
    "prelu": ("positive_scaled_permutation", 1, True),
    "tanh": ("signed_permutation", 1, True),
    "sin": ("signed_permutation", 1, True),
    "gelu": ("permutation", 1, True),
    "gelu_tanh": ("permutation", 1, True),
    "sigmoid": ("permutation", 1, True),
    "softplus": ("permutation", 1, True),
    "elu": ("permutation", 1, True),
    "silu": ("permutation", 1, True),
    "abs": ("scaled_permutation", 1, False),
    "gaussian": ("signed_permutation", 1, False),
    # "power" is filled in per degree
}

_ALIASES = {
    "linear": "identity",
    "none": "identity",
    "leakyrelu": "leaky_relu",
    "lrelu": "leaky_relu",
    "logistic": "sigmoid",
    "swish": "silu",
    "sine": "sin",
    "absolute": "abs",
    "pow": "power",
    "square": "power",
    "gelu_approx": "gelu_tanh",
}

_DEFAULT_PARAM = {"leaky_relu": 0.01, "prelu": 0.25, "elu": 1.0, "softplus": 1.0, "power": 2}


class _Spec:
    """A resolved activation: canonical name, its parameters and a float64 numpy function."""

    def __init__(self, name, function, params=None, row=None, source=""):
        self.name = name
        self.function = function
        self.params = dict(params or {})
        self.row = row  # (group, degree, keep_sign) for table activations, None otherwise
        self.source = source


def _table_spec(name, param=None, source=""):
    """The spec of a known activation with its parameter (slope, alpha, beta or degree)."""
    if name in ("leaky_relu", "prelu"):
        slope = _DEFAULT_PARAM[name] if param is None else _real(param, "negative_slope")
        if slope == 1.0:
            return _table_spec("identity", source=source + f"; slope {slope} is the identity")
        if slope == 0.0:
            return _table_spec("relu", source=source + "; slope 0 is ReLU")
        if slope == -1.0:
            return _table_spec("abs", source=source + "; slope -1 is abs")
        return _Spec(name, _leaky(slope), {"negative_slope": slope}, _ROWS[name], source)
    if name == "elu":
        alpha = 1.0 if param is None else _real(param, "alpha")
        if alpha == 0.0:
            return _table_spec("relu", source=source + "; ELU with alpha 0 is ReLU")
        return _Spec(name, _elu(alpha), {"alpha": alpha}, _ROWS[name], source)
    if name == "softplus":
        if isinstance(param, tuple):
            beta, threshold = param
        else:
            beta, threshold = (1.0 if param is None else param), 20.0
        beta = _real(beta, "beta")
        if beta <= 0.0:
            raise ValueError(f"softplus beta must be positive, got {beta}")
        threshold = _real(threshold, "threshold")
        return _Spec(
            name, _softplus(beta, threshold), {"beta": beta, "threshold": threshold},
            _ROWS[name], source,
        )
    if name == "power":
        d = 2 if param is None else param
        if isinstance(d, bool) or not isinstance(d, numbers.Integral):
            if isinstance(d, numbers.Real) and float(d).is_integer():
                d = int(d)
            else:
                raise ValueError(
                    f"the power activation x^d needs an integer degree d >= 1, got {d!r} "
                    "(x^d with non-integer d is not defined for negative x)"
                )
        d = int(d)
        if d < 1:
            raise ValueError(f"the power activation x^d needs an integer degree d >= 1, got {d}")
        if d == 1:
            return _table_spec("identity", source=source + "; x^1 is the identity")
        return _Spec(name, _power(d), {"degree": d}, ("scaled_permutation", d, d % 2 == 1),
                     source)
    if param is not None:
        raise ValueError(f"activation {name!r} takes no parameter, got {param!r}")
    functions = {
        "identity": _identity,
        "relu": _relu,
        "tanh": np.tanh,
        "sin": np.sin,
        "gelu": _gelu,
        "gelu_tanh": _gelu_tanh,
        "sigmoid": expit,
        "silu": _silu,
        "abs": np.abs,
        "gaussian": _gaussian,
    }
    return _Spec(name, functions[name], {}, _ROWS[name], source)


def _real(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _known_names():
    return sorted(set(_ROWS) | set(_ALIASES) | {"power"})


def _spec_from_name(name, param=None):
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key == "square" and param is None:
        param = 2
    key = _ALIASES.get(key, key)
    if key not in _ROWS and key != "power":
        import difflib

        close = difflib.get_close_matches(key, _known_names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown activation {name!r}{hint} Known names: {', '.join(_known_names())}; "
            "or pass a torch.nn module or a callable"
        )
    return _table_spec(key, param, source=f"name {name!r}")


def _spec_from_module(module):
    """Table specs for the torch.nn activation modules; None for other modules."""
    from torch import nn

    source = f"torch module {module!r}"
    if type(module) is nn.Identity:
        return _table_spec("identity", source=source)
    if type(module) is nn.ReLU:
        return _table_spec("relu", source=source)
    if type(module) is nn.LeakyReLU:
        return _table_spec("leaky_relu", module.negative_slope, source=source)
    if type(module) is nn.PReLU:
        weight = module.weight.detach().double().cpu().numpy().ravel()
        if weight.size > 1 and np.ptp(weight) != 0.0:
            raise ValueError(
                f"nn.PReLU with {weight.size} different per-channel slopes is not a coordinatewise "
                "copy of one activation: its intertwiner group (positive scaled permutations that "
                "only exchange channels with equal slopes) is not one of the named groups"
            )
        return _table_spec("prelu", float(weight[0]), source=source)
    if type(module) is nn.GELU:
        name = "gelu_tanh" if getattr(module, "approximate", "none") == "tanh" else "gelu"
        return _table_spec(name, source=source)
    if type(module) is nn.Sigmoid:
        return _table_spec("sigmoid", source=source)
    if type(module) is nn.Tanh:
        return _table_spec("tanh", source=source)
    if type(module) is nn.Softplus:
        return _table_spec("softplus", (module.beta, module.threshold), source=source)
    if type(module) is nn.ELU:
        return _table_spec("elu", module.alpha, source=source)
    if type(module) is nn.SiLU:
        return _table_spec("silu", source=source)
    return None


def _known_callables():
    """Plain functions of numpy, scipy and torch whose row of the table is known."""
    import torch
    import torch.nn.functional as F

    table = {
        np.tanh: "tanh",
        np.sin: "sin",
        np.abs: "abs",
        np.absolute: "abs",
        np.square: ("power", 2),
        expit: "sigmoid",
        torch.relu: "relu",
        F.relu: "relu",
        torch.tanh: "tanh",
        torch.sigmoid: "sigmoid",
        torch.sin: "sin",
        torch.abs: "abs",
        torch.square: ("power", 2),
        F.gelu: "gelu",
        F.silu: "silu",
        F.elu: "elu",
        F.softplus: "softplus",
        F.leaky_relu: "leaky_relu",
    }
    return table


def resolve_activation(activation):
    """A :class:`_Spec` for a name, (name, param) tuple, torch module or callable."""
    if isinstance(activation, Intertwiner):
        return activation._spec
    if isinstance(activation, str):
        return _spec_from_name(activation)
    if isinstance(activation, tuple):
        if len(activation) != 2 or not isinstance(activation[0], str):
            raise TypeError(
                "a parametrised activation is a (name, parameter) pair such as ('power', 3) or "
                f"('leaky_relu', 0.2), got {activation!r}"
            )
        return _spec_from_name(activation[0], activation[1])
    module_type = type(activation).__module__
    if module_type.startswith("torch"):
        from torch import nn

        if isinstance(activation, nn.Module):
            spec = _spec_from_module(activation)
            if spec is not None:
                return spec
            return _Spec(type(activation).__name__.lower(), _wrap_callable(activation), {}, None,
                         f"torch module {activation!r}")
    if callable(activation):
        try:
            known = _known_callables().get(activation)
        except TypeError:  # unhashable callable
            known = None
        name = getattr(activation, "__name__", type(activation).__name__)
        if known is not None:
            param = None
            if isinstance(known, tuple):
                known, param = known
            return _table_spec(known, param, source=f"function {name}")
        return _Spec(name, _wrap_callable(activation), {}, None, f"callable {name}")
    raise TypeError(
        "activation must be a name, a (name, parameter) pair, a torch.nn module or a callable, "
        f"got {type(activation).__name__}"
    )


def _wrap_callable(fn):
    """A float64 numpy function from a numpy or torch callable (torch modules run in float64
    on a copy, so their parameters are not touched)."""
    import torch

    if isinstance(fn, torch.nn.Module):
        fn = copy.deepcopy(fn).double().eval()

    def call(x):
        x = np.asarray(x, dtype=np.float64)
        try:
            out = fn(x)
        except Exception:  # noqa: BLE001 - not a numpy function; try torch
            out = None
        if out is None or isinstance(out, torch.Tensor) or not hasattr(out, "shape"):
            with torch.no_grad():
                out = fn(torch.from_numpy(x))
        if isinstance(out, torch.Tensor):
            out = out.detach().cpu().double().numpy()
        out = np.asarray(out, dtype=np.float64)
        if out.shape != x.shape:
            raise ValueError(
                f"the activation must act coordinatewise: input shape {x.shape} gave output "
                f"shape {out.shape}"
            )
        return out

    return call


# -- phi and the Intertwiner ----------------------------------------------------------------
def _monomial_phi(A, degree, keep_sign):
    """sign(A)^keep |A|^(.degree) on the support of A (zeros stay zero, even for degree 0)."""
    support = A != 0.0
    out = np.zeros_like(A)
    mag = np.abs(A[support])
    out[support] = mag**degree if degree != 1 else mag
    if keep_sign:
        out[support] *= np.sign(A[support])
    return out


class Intertwiner:
    """The intertwiner group G_sigma of an activation and its homomorphism phi_sigma.

    Built by :func:`intertwiner_group`. For A in ``group``,
    ``sigma(X @ A.T) == sigma(X) @ phi(A).T`` for every representation X (rows are samples).

    Attributes
    ----------
    activation : str
        Canonical name of the activation ("relu", "gelu", ...; the function's name for
        callables classified numerically).
    params : dict
        Its parameters (``negative_slope``, ``alpha``, ``beta``, ``degree``).
    group : Group
        G_sigma.
    degree : float
        phi(A) = sign(A)^s |A|^(.degree) on the support of a monomial A (1 for most rows).
    keep_sign : bool
        Whether phi keeps the signs of A's entries (False for even activations: abs,
        gaussian, x^d with even d).
    method : {"table", "numerical"}
        "table" for a known activation, "numerical" when determined by probing.
    details : str
        How the answer was obtained (for "numerical": which properties held, with the
        residuals and the tolerance).
    function : callable
        The activation as a float64 numpy function.

    Examples
    --------
    >>> it = intertwiner_group("abs")
    >>> it.group.name, it.phi(np.array([[0.0, -2.0], [3.0, 0.0]])).tolist()
    ('scaled_permutation', [[0.0, 2.0], [3.0, 0.0]])
    """

    def __init__(self, spec, group, degree, keep_sign, method, details):
        self._spec = spec
        self.activation = spec.name
        self.params = dict(spec.params)
        self.function = spec.function
        self.group = group
        self.degree = degree
        self.keep_sign = keep_sign
        self.method = method
        self.details = details

    def phi(self, A, atol=1e-10):
        """phi_sigma(A): the matrix B with sigma(A x) = B sigma(x).

        Raises ``ValueError`` when A is not in G_sigma (tested with ``group.contains(A,
        atol)``).
        """
        A = np.asarray(A, dtype=np.float64)
        self.check(A, atol)
        if self.group.name == "invertible_linear" or (self.degree == 1 and self.keep_sign):
            return A.copy()
        return _monomial_phi(A, self.degree, self.keep_sign)

    def check(self, A, atol=1e-10):
        """Raise a ``ValueError`` unless A is in G_sigma."""
        if not self.group.contains(A, atol):
            shape = getattr(np.asarray(A), "shape", None)
            raise ValueError(
                f"A (shape {shape}) is not in the intertwiner group of {self.activation} "
                f"({self.group.name}: {self.group.description}), so no B satisfies "
                f"sigma(A x) = B sigma(x)"
            )
        return A

    def __repr__(self):
        params = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return (
            f"Intertwiner(activation={self.activation!r}{params}, group={self.group.name!r}, "
            f"method={self.method!r})"
        )


def _phi_text(degree, keep_sign):
    if degree == 1:
        return "A" if keep_sign else "abs(A)"
    d = int(degree) if float(degree).is_integer() else degree
    return f"sign(A) * abs(A)^(.{d})" if keep_sign else f"abs(A)^(.{d})"


# -- numerical probing -----------------------------------------------------------------------
_PROBE_SCALES = (0.3, 0.7, 1.9, 3.1)


def _probe_grid():
    pos = np.logspace(-2, 1, 40)
    return np.concatenate([-pos[::-1], [0.0], pos])


def _rel_residual(a, b, scale):
    return float(np.max(np.abs(a - b)) / scale)


def _probe(spec, rtol):
    """Classify an activation by its symmetries on a grid; returns (group name, degree,
    keep_sign, details)."""
    f = spec.function
    x = _probe_grid()
    cs = np.asarray(_PROBE_SCALES)
    values = f(np.concatenate([x, -x, np.outer(cs, x).ravel()]))
    if not np.all(np.isfinite(values)):
        raise ValueError(
            f"activation {spec.name!r} is not finite on the probe grid [-10, 10]; its group "
            "cannot be determined numerically"
        )
    m = x.size
    fx, fneg, fc = values[:m], values[m : 2 * m], values[2 * m :].reshape(cs.size, m)
    scale = max(float(np.max(np.abs(values))), np.finfo(float).tiny)
    where = f"{m} points in [-10, 10], relative tolerance {rtol:g}"
    if float(np.ptp(fx)) <= rtol * scale:
        raise ValueError(
            f"activation {spec.name!r} is constant on [-10, 10]: every matrix intertwines it "
            "and phi is not defined"
        )
    # linear / affine
    design = np.stack([x, np.ones_like(x)], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, fx, rcond=None)
    affine_res = _rel_residual(fx, a * x + b, scale)
    if affine_res <= rtol and abs(a) * 10 > rtol * scale:
        if abs(b) <= rtol * scale:
            return "invertible_linear", 1, True, (
                f"numerical probe on {where}: linear, sigma(x) = {a:.6g} x (residual "
                f"{affine_res:.1e}) -> invertible_linear, phi(A) = A"
            )
        return "permutation", 1, True, (
            f"numerical probe on {where}: affine with offset, sigma(x) = {a:.6g} x + {b:.6g} "
            f"(residual {affine_res:.1e}); its group {{A in GL_n : A 1 = 1}} is larger than "
            "the permutations but not a named group -> permutation (the largest named "
            "subgroup), phi(A) = A"
        )
    # homogeneity: sigma(c x) = g(c) sigma(x) for the probe scales c > 0
    norm2 = float(fx @ fx)
    gains = fc @ fx / norm2
    hom_res = max(_rel_residual(fc[i], gains[i] * fx, scale) for i in range(cs.size))
    homogeneous = hom_res <= rtol and bool(np.all(gains > 0))
    degree = None
    if homogeneous:
        ks = np.log(gains) / np.log(cs)
        if float(np.ptp(ks)) <= 1e-6:
            degree = float(np.mean(ks))
            if abs(degree - round(degree)) <= 1e-6:
                degree = int(round(degree))
        else:
            homogeneous = False
    odd_res = _rel_residual(fneg, -fx, scale)
    even_res = _rel_residual(fneg, fx, scale)
    odd, even = odd_res <= rtol, even_res <= rtol
    facts = (
        f"positively homogeneous over c in {_PROBE_SCALES}: "
        + (f"yes, degree {degree}" if homogeneous else "no")
        + f" (residual {hom_res:.1e}); odd: {'yes' if odd else 'no'} (residual {odd_res:.1e}); "
        f"even: {'yes' if even else 'no'} (residual {even_res:.1e})"
    )
    if homogeneous:
        if odd or even:
            group, keep_sign = "scaled_permutation", odd
        else:
            group, keep_sign = "positive_scaled_permutation", True
    else:
        degree = 1
        if odd or even:
            group, keep_sign = "signed_permutation", odd
        else:
            group, keep_sign = "permutation", True
    details = (
        f"numerical probe on {where}: {facts} -> {group}, phi(A) = "
        f"{_phi_text(degree, keep_sign)}. Only monomial matrices can intertwine a non-linear "
        "activation; scalings that hold only for special c (not among the probe scales) are "
        "not detected, so the group found is a subgroup of the true one in such cases"
    )
    return group, degree, keep_sign, details


def intertwiner_group(activation, rtol=1e-8):
    """The intertwiner group G_sigma and phi_sigma of an activation (Godfrey et al. 2022).

    Parameters
    ----------
    activation : str, (str, number), torch.nn.Module or callable
        A name (case-insensitive): ``identity``, ``relu``, ``leaky_relu``, ``prelu``, ``gelu``,
        ``gelu_tanh``, ``sigmoid``, ``tanh``, ``softplus``, ``elu``, ``silu``, ``sin``,
        ``abs``, ``power`` (x^2), ``gaussian`` (exp(-x^2)); a pair for a parameter:
        ``("power", 3)``, ``("leaky_relu", 0.2)``, ``("prelu", 0.25)``, ``("elu", alpha)``,
        ``("softplus", beta)``; one of torch's activation modules (``nn.ReLU()``,
        ``nn.LeakyReLU(0.1)``, ``nn.PReLU()`` with its current slope, ``nn.GELU()``, ...); or a
        callable (numpy or torch function). Special parameters reduce to other rows: slope 1 is
        the identity, slope 0 (and ELU with alpha 0) is ReLU, slope -1 is abs, x^1 is the
        identity.
    rtol : float, default 1e-8
        Relative tolerance of the numerical probe for unknown callables.

    Returns
    -------
    Intertwiner
        With ``method="table"`` for known activations (the table of the module docstring) and
        ``method="numerical"`` otherwise. The probe evaluates sigma on 81 points of [-10, 10]
        (and their images under x -> -x and x -> c x, c in (0.3, 0.7, 1.9, 3.1)) and tests
        linearity, positive homogeneity of some degree k (sigma(c x) = c^k sigma(x)), oddness and
        evenness: homogeneous and odd or even -> scaled permutations, phi = sign(A)^s |A|^(.k);
        homogeneous only -> positive scaled permutations, phi = A^(.k); odd -> signed
        permutations, phi = A; even -> signed permutations, phi = abs(A); otherwise
        permutations. ``details`` reports each test's residual.

    Raises
    ------
    ValueError
        Unknown name (with a did-you-mean suggestion), invalid parameter, constant or
        non-finite activation, per-channel PReLU with different slopes.
    TypeError
        An argument of the wrong type.

    Examples
    --------
    >>> it = intertwiner_group("relu")
    >>> it.group.name, it.method
    ('positive_scaled_permutation', 'table')
    >>> intertwiner_group(("power", 2)).phi(np.array([[0.0, -3.0], [2.0, 0.0]])).tolist()
    [[0.0, 9.0], [4.0, 0.0]]
    >>> num = intertwiner_group(lambda x: np.maximum(x, 0.0) ** 2)
    >>> num.method, num.group.name, num.degree
    ('numerical', 'positive_scaled_permutation', 2)
    """
    rtol = float(rtol)
    if not np.isfinite(rtol) or rtol <= 0.0:
        raise ValueError(f"rtol must be a positive number, got {rtol!r}")
    if isinstance(activation, Intertwiner):
        return activation
    spec = resolve_activation(activation)
    if spec.row is not None:
        group_name, degree, keep_sign = spec.row
        details = (
            f"table row for {spec.name} ({spec.source}): G = {group_name}, phi(A) = "
            f"{_phi_text(degree, keep_sign)} (Godfrey et al. 2022, Table 1, extended)"
        )
        method = "table"
    else:
        group_name, degree, keep_sign, details = _probe(spec, rtol)
        details = f"{spec.source}; {details}"
        method = "numerical"
    return Intertwiner(spec, get_group(group_name), degree, keep_sign, method, details)
