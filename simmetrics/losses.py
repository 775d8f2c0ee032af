"""Training losses from the metrics: small ``torch.nn.Module`` wrappers of
:mod:`simmetrics.functional`.

:class:`SimilarityLoss` turns any differentiable metric into a loss to minimise: for a
similarity with a finite upper bound ``hi`` (1 for CKA, CCA, RSA, ...) the loss is
``hi - value`` (``1 - CKA``); for an unbounded similarity (ENSD) it is ``-value``; for a
distance it is the distance. The value and its gradient are those of
:mod:`simmetrics.functional`: float32 (or half) activations are accumulated in float64 inside,
as the classes do, and the gradient comes back in the activations' dtype. The loss is a 0-d
float64 tensor on the activations' device.

Examples
--------
>>> import torch
>>> from simmetrics.losses import SimilarityLoss
>>> torch.manual_seed(0) is not None
True
>>> X = torch.randn(64, 8, dtype=torch.float64)
>>> Y = torch.randn(64, 5, dtype=torch.float64, requires_grad=True)
>>> loss = SimilarityLoss("linear_cka")
>>> optimiser = torch.optim.SGD([Y], lr=5.0)
>>> before = float(loss(X, Y).detach())
>>> for _ in range(20):
...     optimiser.zero_grad()
...     loss(X, Y).backward()
...     optimiser.step()
>>> float(loss(X, Y).detach()) < before
True
"""

import math

import torch

from . import functional
from ._core.registry import as_metric, get_metric

__all__ = ["SimilarityLoss"]


class SimilarityLoss(torch.nn.Module):
    """A metric as a loss: ``hi - value`` for a similarity bounded above by ``hi``, ``-value``
    for an unbounded similarity, the value for a distance.

    Parameters
    ----------
    metric : str or simmetrics.Metric
        A registered name (with ``params``) or a configured metric. It must be differentiable
        (:func:`simmetrics.functional.is_differentiable`); else a
        :class:`simmetrics.functional.NonDifferentiableError` names it.
    **params
        The metric's parameters, where ``metric`` is a name.

    Attributes
    ----------
    metric : simmetrics.Metric
        The configured metric (cloned for every call, so calls share no fitted state).
    offset, sign : float
        loss = offset + sign * value.
    """

    def __init__(self, metric, **params):
        super().__init__()
        if isinstance(metric, str):
            metric = get_metric(metric, **params)
        elif params:
            raise TypeError("pass params with a metric name, or configure the metric object "
                            f"itself; got a {type(metric).__name__} and {sorted(params)}")
        metric = as_metric(metric)
        if not functional.is_differentiable(metric):
            raise functional.NonDifferentiableError(
                f"{metric!r} cannot be a training loss: {metric._gradient_note}")
        self.metric = metric
        self.offset, self.sign = self.orientation(metric)

    @staticmethod
    def orientation(metric):
        """(offset, sign) with loss = offset + sign * value: (0, 1) for a distance, (hi, -1)
        for a similarity bounded above by a finite ``hi``, (0, -1) for an unbounded one."""
        hi = float(metric.bounds[1])
        if metric.kind == "distance":
            return 0.0, 1.0
        return (hi, -1.0) if math.isfinite(hi) else (0.0, -1.0)

    def forward(self, X, Y):
        """The loss of representations ``X`` and ``Y`` of the same stimuli (tensors; either
        may require grad)."""
        from sklearn.base import clone

        value = functional.evaluate(clone(self.metric), X, Y)
        return self.offset + self.sign * value

    def extra_repr(self):
        return repr(self.metric)
