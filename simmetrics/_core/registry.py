"""Names for metrics: ``available_metrics()`` lists them, ``get_metric(name)`` builds one.

Besides the registered names and their aliases, every name resolves that
:mod:`simmetrics._core.aliases` maps from nacloos/similarity-repository's standardised names
(``cka-kernel=linear-hsic=song-score``, optionally as ``measure/<repo>/<name>``) to a registered
metric with parameters; :func:`similarity_repository_names` lists them.
"""

import difflib
import re

from . import aliases as _aliases

__all__ = ["register", "available_metrics", "get_metric", "metric_class", "as_metric",
           "similarity_repository_names", "resolve_name"]

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


def _template_regex(template):
    parts = re.split(r"\{(\w+)\}", template)
    pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[-+0-9.eE]+)"
                      for i, p in enumerate(parts))
    return re.compile(pattern + r"\Z")


def _fill(template, metric, params, match):
    """``(metric, params)`` with each ``"{placeholder}"`` value replaced by the number matched."""
    out = {}
    for key, value in params.items():
        if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
            placeholder = value[1:-1]
            kind = _aliases.PLACEHOLDERS[placeholder][1]
            text = match.group(placeholder)
            try:
                value = kind(text)
            except ValueError:
                raise ValueError(f"{template!r}: {placeholder}={text!r} is not "
                                 f"{'an integer' if kind is int else 'a number'}") from None
        out[key] = value
    return metric, out


def resolve_name(name):
    """``(registered name, parameters)`` of a similarity-repository name (see
    :func:`similarity_repository_names`), or ``None`` when ``name`` is not one.

    Examples
    --------
    >>> resolve_name("shape_metric-alpha=0.5-distance=angular")
    ('shape_metric', {'alpha': 0.5, 'score_method': 'angular'})
    >>> resolve_name("measure/platonic/mutual_knn-topk=5")
    ('mutual_knn', {'k': 5, 'similarity': 'inner_product'})
    >>> resolve_name("linear_cka") is None
    True
    """
    if not isinstance(name, str):
        return None
    key = name.strip()
    if key.lower().replace("-", "_") in _METRICS or key.lower().replace("-", "_") in _ALIASES:
        return None  # a registered name keeps its own defaults (rank_similarity, k=5 stays valid)
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == "measure":  # measure/<repo>/<name>
        key = parts[2]
    key = _aliases.SHORTHANDS.get(key, key)
    table = _aliases.SIMILARITY_REPOSITORY_NAMES
    if key in table:
        metric, params = table[key]
        return metric, dict(params)
    for template, target in _aliases.SHORTHANDS.items():
        if "{" in template and (match := _template_regex(template).match(key)):
            return _fill(target, *table[target], match)
    for template, (metric, params) in table.items():
        if "{" in template and (match := _template_regex(template).match(key)):
            return _fill(template, metric, params, match)
    return None


def similarity_repository_names():
    """The similarity-repository standardised names simmetrics computes exactly:
    ``{name: (registered metric, parameters)}``, ``{alpha}``, ``{sigma}`` and ``{topk}`` being
    placeholders for a number in the name. Conventions and what is left out:
    :mod:`simmetrics._core.aliases` and ``docs/similarity_repository_names.md``.

    Examples
    --------
    >>> similarity_repository_names()["cka-kernel=linear-hsic=song-score"]
    ('linear_cka', {'estimator': 'song'})
    """
    return {name: (metric, dict(params))
            for name, (metric, params) in _aliases.SIMILARITY_REPOSITORY_NAMES.items()
            if metric in _METRICS}


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
    resolved = resolve_name(name)
    if resolved is not None and resolved[0] in _METRICS:
        return _METRICS[resolved[0]]
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
    >>> get_metric("cka-kernel=linear-hsic=song-score")
    LinearCKA(estimator='song')

    A similarity-repository name fixes its parameters; an explicit one that disagrees is a
    ``ValueError`` naming both.
    """
    resolved = resolve_name(name)
    if resolved is not None and resolved[0] in _METRICS:
        metric, fixed = resolved
        for key, value in params.items():
            if key in fixed and not _same(fixed[key], value):
                raise ValueError(f"metric name {name!r} sets {key}={fixed[key]!r}, which "
                                 f"conflicts with the explicit {key}={value!r}")
        return _METRICS[metric](**{**fixed, **params})
    return metric_class(name)(**params)


def _same(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # arrays and other odd values: not the same
        return False


def as_metric(metric):
    """``metric`` itself if it is a :class:`simmetrics.Metric`, the registered metric of that
    name if it is a str (:func:`get_metric`); a ``TypeError`` naming ``metric`` otherwise."""
    from ..base import Metric

    if isinstance(metric, str):
        return get_metric(metric)
    if not isinstance(metric, Metric):
        raise TypeError(f"metric must be a metric name or a simmetrics Metric, got {metric!r}")
    return metric
