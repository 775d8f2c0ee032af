"""Declarative parameter constraints, checked in one call (scikit-learn's
``_parameter_constraints`` idea, written for this package).

A metric class declares, for every constructor parameter, the values it accepts::

    _parameter_constraints = {
        "debiased": [Boolean()],
        "sigma": [None, Interval(Real, 0, None, closed="neither")],
        "kernel": [Options({"rbf", "linear"}), callable],
    }

A value is valid when it satisfies at least one constraint of its list. A constraint is

- ``None``: the value is None;
- ``callable`` (the builtin): the value is callable;
- a type (``str``, ``numbers.Integral``...): ``isinstance`` (``bool`` is never an Integral or
  a Real here, and never the other way round: ``True`` is not a count, ``"False"`` is not False);
- an instance of :class:`Boolean`, :class:`Interval` or :class:`Options`.

:func:`validate_params` raises a ``TypeError`` (wrong type) or ``ValueError`` (right type, out
of range or not an option) that names the parameter, the value and what is accepted. The
generic test suite generates invalid values from the declarations with :func:`invalid_values`.
"""

import math
import numbers
from numbers import Integral, Real  # re-exported: the kinds an Interval takes

import numpy as np

__all__ = [
    "Boolean", "Interval", "Options", "constraints_of", "validate_params", "invalid_values",
    "describe", "Integral", "Real",
]


def _is_bool(value):
    return isinstance(value, (bool, np.bool_))


class Boolean:
    """True or False (Python or numpy booleans). Strings such as ``"False"`` and integers are
    refused: ``bool("False")`` is True, which is how a string switched options on."""

    def is_satisfied_by(self, value):
        return _is_bool(value)

    def __str__(self):
        return "a bool (True or False)"

    def invalid(self):
        return ["False", 1]


class Options:
    """One of a fixed set of values (typically strings)."""

    def __init__(self, options, hint=""):
        self.options = tuple(sorted(options, key=str))
        self.hint = hint

    def is_satisfied_by(self, value):
        if _is_bool(value):
            return False
        try:
            return value in self.options
        except TypeError:  # unhashable or incomparable value
            return False

    def __str__(self):
        text = "one of " + ", ".join(repr(o) for o in self.options)
        return f"{text} ({self.hint})" if self.hint else text

    def invalid(self):
        return ["__not_an_option__"]


class Interval:
    """A number of type ``kind`` (``numbers.Integral`` or ``numbers.Real``) in an interval.

    Parameters
    ----------
    kind : numbers.Integral or numbers.Real
    left, right : float or None
        Bounds; None means unbounded on that side.
    closed : {"both", "left", "right", "neither"}
        Which bounds belong to the interval.
    finite : bool
        Whether infinite values are refused (they are, by default, for Real intervals).
    """

    def __init__(self, kind, left, right, closed="both", finite=True):
        if kind not in (numbers.Integral, numbers.Real):
            raise TypeError("Interval kind must be numbers.Integral or numbers.Real")
        self.kind, self.left, self.right, self.closed, self.finite = (
            kind, left, right, closed, finite)

    def _type_ok(self, value):
        return isinstance(value, self.kind) and not _is_bool(value)

    def is_satisfied_by(self, value):
        if not self._type_ok(value):
            return False
        if math.isnan(value) or (self.finite and math.isinf(value)):
            return False
        lo_closed = self.closed in ("both", "left")
        hi_closed = self.closed in ("both", "right")
        if self.left is not None and (value < self.left or (value == self.left and not lo_closed)):
            return False
        if self.right is not None and (value > self.right
                                       or (value == self.right and not hi_closed)):
            return False
        return True

    def __str__(self):
        what = "an int" if self.kind is numbers.Integral else "a finite real number"
        lo = "-inf" if self.left is None else f"{self.left:g}"
        hi = "inf" if self.right is None else f"{self.right:g}"
        lb = "[" if self.closed in ("both", "left") and self.left is not None else "("
        rb = "]" if self.closed in ("both", "right") and self.right is not None else ")"
        return f"{what} in {lb}{lo}, {hi}{rb}"

    def invalid(self):
        out = ["1", True]
        if self.left is not None:
            out.append(self.left - 1)
        if self.right is not None:
            out.append(self.right + 1)
        if self.kind is numbers.Real:
            out.append(float("nan"))
            if self.finite:
                out.append(float("inf"))
        else:
            out.append(1.5)
        return out


def _satisfies(constraint, value):
    if constraint is None:
        return value is None
    if constraint is callable:
        return callable(value)
    if isinstance(constraint, type):
        if constraint in (numbers.Integral, numbers.Real, int, float) and _is_bool(value):
            return False
        return isinstance(value, constraint)
    return constraint.is_satisfied_by(value)


def describe(constraint):
    """A constraint in words, for error messages."""
    if constraint is None:
        return "None"
    if constraint is callable:
        return "a callable"
    if isinstance(constraint, type):
        return f"a {constraint.__name__}"
    return str(constraint)


def _is_type_problem(constraints, value):
    """True when no constraint accepts the value's type (a TypeError rather than a
    ValueError)."""
    for c in constraints:
        if c is None or c is callable:
            continue
        if isinstance(c, Interval) and c._type_ok(value):
            return False
        if isinstance(c, Options) and isinstance(value, str):
            return False
        if isinstance(c, type) and _satisfies(c, value):
            return False
    return True


def constraints_of(cls):
    """Every parameter constraint of ``cls``: the ``_parameter_constraints`` dicts of its
    base classes, updated by those of its subclasses (so ``layout``, declared once on
    :class:`simmetrics.Metric`, holds for every metric)."""
    merged = {}
    for klass in reversed(cls.__mro__):
        merged.update(klass.__dict__.get("_parameter_constraints", {}))
    return merged


def validate_params(estimator, params=None):
    """Check every declared parameter of ``estimator`` against its constraints.

    Parameters
    ----------
    estimator : object with ``_parameter_constraints`` and ``get_params()``
    params : dict, optional
        The values to check (default: ``estimator.get_params(deep=False)``).

    Raises
    ------
    TypeError, ValueError
        Naming the class, the parameter, the value given and what is accepted.

    Examples
    --------
    >>> class M:
    ...     _parameter_constraints = {"flag": [Boolean()]}
    ...     def get_params(self, deep=False):
    ...         return {"flag": "False"}
    >>> validate_params(M())
    Traceback (most recent call last):
    ...
    TypeError: M: parameter 'flag' must be a bool (True or False), got 'False' (str)
    """
    constraints = constraints_of(type(estimator))
    if params is None:
        params = estimator.get_params(deep=False)
    for name, value in params.items():
        allowed = constraints.get(name)
        if allowed is None or any(_satisfies(c, value) for c in allowed):
            continue
        accepted = " or ".join(describe(c) for c in allowed)
        error = TypeError if _is_type_problem(allowed, value) else ValueError
        raise error(
            f"{type(estimator).__name__}: parameter {name!r} must be {accepted}, "
            f"got {value!r} ({type(value).__name__})"
        )


def invalid_values(constraints):
    """Values that none of ``constraints`` accepts (for the generic bad-parameter tests)."""
    candidates = []
    for c in constraints:
        if c is None or c is callable or isinstance(c, type):
            continue
        candidates.extend(c.invalid())
    candidates.extend([object(), "__not_an_option__"])
    out = []
    for value in candidates:
        if not any(_satisfies(c, value) for c in constraints):
            if not any(value is v or (type(v) is type(value) and _same(v, value)) for v in out):
                out.append(value)
    return out


def _same(a, b):
    try:
        return bool(a == b) or (a != a and b != b)
    except Exception:  # pragma: no cover - exotic comparisons
        return False
