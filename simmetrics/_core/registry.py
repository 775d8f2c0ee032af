"""Names for metrics: ``available_metrics()`` lists them, ``get_metric(name)`` builds one."""

import difflib

__all__ = ["register", "available_metrics", "get_metric", "metric_class", "as_metric"]

_METRICS = {}
_ALIASES = {}


def register(name, aliases=()):
    """Class decorator: make a metric class available under ``name`` (and ``aliases``)."""

    def decorate(cls):
        for key in (name, *aliases):
            if key in _METRICS or key in _ALIASES:
                raise ValueError(f"metric name {key!r} is registered twice")
        _METRICS[name] = cls
        for alias in aliases:
            _ALIASES[alias] = name
        cls.name = name
        return cls

    return decorate


def available_metrics():
    """Sorted names of every registered metric.

    Examples
    --------
    >>> "linear_cka" in available_metrics()
    True
    """
    return sorted(_METRICS)


def metric_class(name):
    """The class registered under ``name`` or one of its aliases; a ``ValueError`` with a
    did-you-mean suggestion otherwise.

    Examples
    --------
    >>> metric_class("cka").__name__
    'LinearCKA'
    >>> metric_class("procrustez")
    Traceback (most recent call last):
    ...
    ValueError: unknown metric 'procrustez'; did you mean 'procrustes'? ...
    """
    if not isinstance(name, str):
        raise TypeError(f"metric name must be a str, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key in _METRICS:
        return _METRICS[key]
    close = difflib.get_close_matches(key, list(_METRICS) + list(_ALIASES), n=1)
    hint = f"; did you mean {_ALIASES.get(close[0], close[0])!r}?" if close else ""
    raise ValueError(f"unknown metric {name!r}{hint} Available: {', '.join(available_metrics())}")


def get_metric(name, **params):
    """Build the metric registered under ``name`` with ``params``.

    Examples
    --------
    >>> get_metric("linear_cka", debiased=True)
    LinearCKA(debiased=True)
    """
    return metric_class(name)(**params)


def as_metric(metric):
    """``metric`` itself if it is a :class:`simmetrics.Metric`, the registered metric of that
    name if it is a str (:func:`get_metric`); a ``TypeError`` naming ``metric`` otherwise."""
    from ..base import Metric

    if isinstance(metric, str):
        return get_metric(metric)
    if not isinstance(metric, Metric):
        raise TypeError(f"metric must be a metric name or a simmetrics Metric, got {metric!r}")
    return metric
