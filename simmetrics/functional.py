"""Every metric as a function, differentiable on torch tensors.

``simmetrics.functional.<registry name>(X, Y, **params)`` takes the class's parameters and
conventions and is ``get_metric(name, **params).fit_score(X, Y)`` (one code path, so the
numbers are the class's):

- numpy (or any array-like) input: a Python float, exactly what the class returns;
- torch input (any device): a 0-d float64 tensor on the device of the first tensor. Where
  autograd is recording and an input requires grad, the tensor has a gradient with respect
  to ``X`` and ``Y``, the autograd of the metric's gradient formula (``Metric._gradient_formula``:
  the same value written with differentiable operations, see :class:`simmetrics.Metric`),
  evaluated in float64 when ``backward`` runs and handed back in each input's dtype.

A metric whose value is piecewise constant in the inputs (ranks, neighbour sets) has no
useful gradient: asking for one raises :class:`NonDifferentiableError`, whose message says
what to use instead. :func:`differentiable_metrics` lists the metrics with a gradient for
their default parameters; :func:`is_differentiable` answers for one configured metric.

Examples
--------
>>> import numpy as np
>>> from simmetrics import functional
>>> X = np.random.default_rng(0).normal(size=(50, 4))
>>> functional.linear_cka(X, 2 * X)
1.0
>>> import torch
>>> T = torch.tensor(X, requires_grad=True)
>>> value = functional.linear_cka(T, torch.tensor(X[:, ::-1].copy()) + 0.1 * T ** 2)
>>> value.backward()
>>> tuple(T.grad.shape), value.dtype
((50, 4), torch.float64)
"""

from ._core.backend import get_backend
from ._core.registry import as_metric, available_metrics, get_metric, metric_class
from .base import Metric

__all__ = ["evaluate", "is_differentiable", "differentiable_metrics", "NonDifferentiableError"]


class NonDifferentiableError(TypeError):
    """A gradient was asked of a metric whose value has none (it is piecewise constant in the
    inputs); the message names the metric and what to use instead."""


def is_differentiable(metric):
    """Whether ``metric`` (a :class:`simmetrics.Metric` or a registered name) has a gradient
    formula for its parameters."""
    metric = as_metric(metric)
    return metric._gradient_formula is not None


def differentiable_metrics():
    """The registered names whose metric, with its default parameters, has a gradient."""
    return [name for name in available_metrics() if is_differentiable(get_metric(name))]


def evaluate(metric, X, Y, **params):
    """The value of ``metric`` on ``(X, Y)``: ``fit_score(X, Y)``, as a float for array input
    and as a 0-d tensor, differentiable with respect to the tensors among the inputs, for
    torch input.

    Parameters
    ----------
    metric : str or Metric
        A registered name (with ``params``) or a configured metric (without them; it is fitted
        in place, as ``fit_score`` fits it).
    X, Y : array-like or torch.Tensor
        Representations of the same stimuli, as the metric's class reads them.
    **params
        The class's parameters, where ``metric`` is a name.

    Returns
    -------
    float or torch.Tensor

    Raises
    ------
    NonDifferentiableError
        If autograd is recording, an input requires grad and the metric has no gradient.
    """
    if isinstance(metric, Metric):
        if params:
            raise TypeError("pass params with a metric name, or configure the metric object "
                            f"itself; got a {type(metric).__name__} and {sorted(params)}")
    else:
        metric = get_metric(metric, **params)
    nx = get_backend(X, Y)
    wants_gradient = nx.needs_gradient(X, Y)
    if wants_gradient and metric._gradient_formula is None:
        raise NonDifferentiableError(
            f"{metric!r} is not differentiable: {metric._gradient_note}. Compute it under "
            "torch.no_grad() (or on detached inputs) for its value")
    value = metric.fit_score(X, Y)
    if not wants_gradient:
        return nx.result(value)

    def formula(A, B):
        rows = metric._gradient_rows(A, B, nx)
        return metric._gradient_formula(*rows, nx)

    return nx.with_gradient(value, formula, X, Y)


def _function(name):
    cls = metric_class(name)

    def function(X, Y, **params):
        return evaluate(name, X, Y, **params)

    function.__name__ = function.__qualname__ = name
    function.__module__ = __name__
    function.__doc__ = (
        f"``{cls.__name__}(**params).fit_score(X, Y)`` as a function: a float for array input, "
        f"a 0-d tensor (differentiable where the metric is) for torch input; see "
        f":class:`simmetrics.{cls.__name__}` for the parameters and "
        f":mod:`simmetrics.functional` for the conventions.")
    return function


for _name in available_metrics():
    globals()[_name] = _function(_name)
    __all__.append(_name)
del _name


def __getattr__(name):
    """Metrics registered after this module was imported."""
    if name in available_metrics():
        return _function(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
