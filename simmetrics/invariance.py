"""Measured invariances: what a metric's value actually does when a group acts on its inputs.

Every metric declares ``invariances``; these functions measure them. For a group G and a metric
m, :func:`check_invariance` draws random elements g of G and compares m(g.X, Y) and m(X, g.Y)
with m(X, Y); the largest absolute difference is the *deviation*. The metric counts as invariant
when the deviation stays below ``rtol * max(1, |m(X, Y)|)``: rounding errors of exact
invariances are around 1e-12 here, while a real dependence moves the value by far more (the
table reports the deviation, so the gap can be read off).
"""

from dataclasses import dataclass

import numpy as np
from sklearn.base import clone

from ._core.registry import as_metric, available_metrics
from ._core.validation import check_random_state, check_representation
from .base import GROUP_NAMES

__all__ = ["InvarianceResult", "InvarianceTable", "check_invariance", "invariance_table",
           "invariance_data", "repeated_trials"]

DEFAULT_RTOL = 1e-7


@dataclass(frozen=True)
class InvarianceResult:
    """Outcome of :func:`check_invariance`.

    Attributes
    ----------
    metric : str
        ``repr`` of the metric measured.
    group : str
        Name of the group.
    value : float
        m(X, Y) before any transformation.
    max_deviation : float
        Largest |m(g.X, Y) - m(X, Y)| or |m(X, g.Y) - m(X, Y)| over the trials.
    tolerance : float
        ``rtol * max(1, |value|)``.
    invariant : bool
        ``max_deviation <= tolerance``.
    n_trials : int
    """

    metric: str
    group: str
    value: float
    max_deviation: float
    tolerance: float
    invariant: bool
    n_trials: int


def _as_group(group):
    from .symmetry.groups import get_group

    return get_group(group) if isinstance(group, str) else group


def check_invariance(metric, group, X, Y=None, n_trials=3, sides="both", random_state=None,
                     rtol=DEFAULT_RTOL):
    """Measure whether ``metric`` is invariant to ``group`` on the data (X, Y).

    Parameters
    ----------
    metric : str or Metric
        A registered name or a metric instance (cloned, never modified).
    group : str or Group
        A name from :func:`simmetrics.symmetry.groups.available_groups` or a Group.
    X, Y : array-like, shape (n_samples, n_x) and (n_samples, n_y)
        ``Y=None`` compares X with itself.
    n_trials : int
        Random group elements drawn per side.
    sides : {"both", "x", "y"}
        Act on X, on Y, or on each in turn.
    random_state : None, int or numpy.random.Generator
    rtol : float
        Relative tolerance (see the module docstring).

    Returns
    -------
    InvarianceResult

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.normal(size=(50, 5)), rng.normal(size=(50, 4))
    >>> check_invariance("linear_cka", "orthogonal", X, Y, random_state=0).invariant
    True
    >>> check_invariance("linear_cka", "scaled_permutation", X, Y, random_state=0).invariant
    False
    """
    metric = as_metric(metric)
    group = _as_group(group)
    if metric.input_repeats:  # repeated trials: the metric's own validation reads them
        X = np.asarray(X, dtype=np.float64)
        Y = X if Y is None else np.asarray(Y, dtype=np.float64)
    else:
        X = check_representation(X, "X")
        Y = X if Y is None else check_representation(Y, "Y")
    if sides not in ("both", "x", "y"):
        raise ValueError(f"sides must be 'both', 'x' or 'y', got {sides!r}")
    if not (isinstance(n_trials, (int, np.integer)) and n_trials >= 1):
        raise ValueError(f"n_trials must be a positive integer, got {n_trials!r}")
    rng = check_random_state(random_state)
    base = clone(metric).fit_score(X, Y)
    deviation = 0.0
    for _ in range(n_trials):
        if sides in ("both", "x"):
            gx = _act(group, X, rng)
            deviation = max(deviation, abs(clone(metric).fit_score(gx, Y) - base))
        if sides in ("both", "y"):
            gy = _act(group, Y, rng)
            deviation = max(deviation, abs(clone(metric).fit_score(X, gy) - base))
    tol = rtol * max(1.0, abs(base))
    return InvarianceResult(repr(metric), group.name, base, deviation, tol, deviation <= tol,
                            n_trials)


def _act(group, A, rng):
    """A random element of ``group`` acting on the neurons (the last axis) of ``A``: on every
    row of a matrix, and on every repeat of every stimulus of repeated trials."""
    g = group.sample(A.shape[-1], random_state=rng)
    if A.ndim == 2:
        return group.act(A, g)
    return group.act(A.reshape(-1, A.shape[-1]), g).reshape(A.shape)


def repeated_trials(A, repeats=5, noise=0.3, random_state=0):
    """Repeated trials around the rows of ``A``: an (n, repeats, d) array, each stimulus's
    responses ``A[i]`` plus Gaussian noise of ``noise`` times each neuron's spread, with a
    per-stimulus scaling of that noise (so the stimuli's covariances differ)."""
    rng = check_random_state(random_state)
    n, d = A.shape
    spread = A.std(axis=0) + 1e-3 * np.abs(A).max()
    scale = np.exp(0.5 * rng.normal(size=(n, 1, 1)))
    return A[:, None, :] + noise * spread * scale * rng.normal(size=(n, repeats, d))


def invariance_data(n=80, dx=8, dy=6, random_state=0):
    """Generic test data for invariance measurements: post-ReLU-like X (non-negative, uneven
    column scales, non-zero means) and a noisy non-linear read-out Y of it.

    Generic matters: on special data (centred, isotropic) a metric can look invariant to a
    group it is not invariant to.
    """
    rng = check_random_state(random_state)
    Z = rng.normal(size=(n, dx)) @ rng.normal(size=(dx, dx))
    X = np.maximum(Z + 0.5, 0.0) * np.exp(rng.normal(size=dx))
    Y = np.maximum(X @ rng.normal(size=(dx, dy)) + 0.3 * rng.normal(size=(n, dy)), 0.0)
    Y += 0.05 * np.abs(rng.normal(size=(n, dy)))
    return X, Y


@dataclass(frozen=True)
class InvarianceRow:
    metric: str
    group: str
    declared: bool
    measured: bool
    max_deviation: float

    @property
    def agrees(self):
        return self.declared == self.measured


class InvarianceTable:
    """Rows (metric, group, declared, measured, max_deviation), printable as text.

    ``str(table)`` is a plain-text table; :meth:`to_markdown` a markdown one;
    :meth:`disagreements` lists the rows where a declaration and the measurement differ.
    """

    def __init__(self, rows):
        self.rows = list(rows)

    def disagreements(self):
        return [r for r in self.rows if not r.agrees]

    def _grid(self):
        metrics = list(dict.fromkeys(r.metric for r in self.rows))
        groups = list(dict.fromkeys(r.group for r in self.rows))
        cell = {(r.metric, r.group): r for r in self.rows}

        def mark(r):
            if r is None:
                return ""
            text = "yes" if r.measured else "no"
            return text if r.agrees else f"{text} (declared {'yes' if r.declared else 'no'})"

        return metrics, groups, [[m] + [mark(cell.get((m, g))) for g in groups] for m in metrics]

    def to_markdown(self):
        """The table as markdown: one row per metric, one column per group, "yes" where the
        measured value is invariant; disagreements with the declaration are flagged."""
        _, groups, lines = self._grid()
        head = "| metric | " + " | ".join(groups) + " |"
        sep = "|---" * (len(groups) + 1) + "|"
        return "\n".join([head, sep] + ["| " + " | ".join(line) + " |" for line in lines])

    def __str__(self):
        _, groups, lines = self._grid()
        head = ["metric"] + groups
        widths = [max(len(x) for x in col) for col in zip(head, *lines)]
        fmt = "  ".join("{:<%d}" % w for w in widths)
        out = [fmt.format(*head), fmt.format(*["-" * w for w in widths])]
        return "\n".join(line.rstrip() for line in out + [fmt.format(*x) for x in lines])

    def __repr__(self):
        return f"InvarianceTable({len(self.rows)} rows, {len(self.disagreements())} disagreements)"


def invariance_table(metrics=None, groups=None, n_trials=3, random_state=0, rtol=DEFAULT_RTOL,
                     data=None):
    """Measure every metric against every group.

    Parameters
    ----------
    metrics : list of str or Metric, optional
        Default: every registered metric with default parameters.
    groups : list of str, optional
        Default: every group in :data:`simmetrics.base.GROUP_NAMES`.
    n_trials, random_state, rtol
        As in :func:`check_invariance`.
    data : (X, Y), optional
        Default :func:`invariance_data` (widths 8 and 6; equal widths for metrics that need
        them; for metrics of repeated trials, ``input_repeats``, the same stimuli on 5
        repeats, :func:`repeated_trials`).

    Returns
    -------
    InvarianceTable

    Examples
    --------
    >>> table = invariance_table(["linear_cka"], ["orthogonal", "translation"])
    >>> print(table)
    metric       orthogonal  translation
    -----------  ----------  -----------
    LinearCKA()  yes         yes
    """
    metrics = [as_metric(m) for m in (metrics or available_metrics())]
    groups = list(groups or GROUP_NAMES)
    X, Y = data if data is not None else invariance_data(random_state=random_state)
    rows = []
    for metric in metrics:
        Xm, Ym = X, Y
        if metric.same_width and X.shape[1] != Y.shape[1]:
            Ym = invariance_data(dx=X.shape[1], dy=X.shape[1], random_state=random_state)[1]
        if metric.input_repeats and X.ndim == 2:  # the same stimuli, seen on repeated trials
            Xm, Ym = repeated_trials(X, random_state=0), repeated_trials(Ym, random_state=1)
        for name in groups:
            res = check_invariance(metric, name, Xm, Ym, n_trials=n_trials,
                                   random_state=random_state, rtol=rtol)
            rows.append(InvarianceRow(res.metric, res.group, res.group in metric.invariances,
                                      res.invariant, res.max_deviation))
    return InvarianceTable(rows)
