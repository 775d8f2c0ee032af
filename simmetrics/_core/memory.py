"""A memory budget for work that grows like n x n: refused up front, with the size it needs.

Kernel CKA, RSA, IntertwinerCKA and conv layers read with every position as a row hold n x n
(or n(n-1)/2) float64 matrices: 34,560 rows make 8.9 GiB per kernel. Before allocating such
work a metric calls :func:`check_memory`, which raises :class:`MemoryBudgetError` (a
``MemoryError`` and a ``ValueError``) naming the size, the budget and the alternatives when
the estimate exceeds the budget.

The budget is, in order of precedence: the value set by :func:`set_memory_budget` (or the
:func:`memory_budget` context manager), the environment variable ``SIMMETRICS_MEMORY_BUDGET``
(bytes, or a number with a unit: ``"8GiB"``, ``"500MB"``), or half of the machine's physical
memory.
"""

import contextlib
import os
import re

import numpy as np

from .validation import POSITION_AXES

__all__ = [
    "MemoryBudgetError",
    "check_memory",
    "get_memory_budget",
    "set_memory_budget",
    "memory_budget",
    "format_bytes",
    "parse_bytes",
    "gram_bytes",
    "check_rows_memory",
]

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}

_budget = None  # set_memory_budget's value; None = environment or default


class MemoryBudgetError(MemoryError, ValueError):
    """Work refused before it started because it would need more memory than the budget.

    Examples
    --------
    >>> issubclass(MemoryBudgetError, MemoryError), issubclass(MemoryBudgetError, ValueError)
    (True, True)
    """


def parse_bytes(value):
    """A byte count from an int or a string such as ``"8GiB"``, ``"500 MB"`` or ``"1e9"``.

    Examples
    --------
    >>> parse_bytes("8GiB"), parse_bytes("1.5 kb"), parse_bytes(1024)
    (8589934592, 1500, 1024)
    """
    if isinstance(value, bool):
        raise TypeError(f"a memory budget must be a number of bytes or a string, got {value!r}")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9.]+(?:e[+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*", value)
        if not match or match.group(2).lower() not in _UNITS:
            raise ValueError(
                f"cannot read {value!r} as a memory size; use bytes or a unit such as '8GiB', "
                "'500MB'"
            )
        number, unit = float(match.group(1)), match.group(2).lower()
    else:
        raise TypeError(f"a memory budget must be a number of bytes or a string, got {value!r}")
    size = number * _UNITS[unit]
    if not size > 0 or size == float("inf"):
        raise ValueError(f"a memory budget must be positive and finite, got {value!r}")
    return int(size)


def format_bytes(nbytes):
    """Bytes in the largest binary unit that keeps the number at least 1.

    Examples
    --------
    >>> format_bytes(9_555_148_800)
    '8.9 GiB'
    """
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 16 * 2**30


def get_memory_budget():
    """The budget in bytes now in force (see the module docstring for its sources).

    Examples
    --------
    >>> with memory_budget("2GiB"):
    ...     get_memory_budget() == 2 * 2**30
    True
    """
    if _budget is not None:
        return _budget
    env = os.environ.get("SIMMETRICS_MEMORY_BUDGET")
    if env:
        return parse_bytes(env)
    return _physical_memory() // 2


def set_memory_budget(budget):
    """Set the budget (bytes or a string such as ``"8GiB"``); None restores the default.

    Returns the previous setting (None where it was the default).

    Examples
    --------
    >>> previous = set_memory_budget("512MiB")
    >>> get_memory_budget()
    536870912
    >>> _ = set_memory_budget(previous)
    """
    global _budget
    previous = _budget
    _budget = None if budget is None else parse_bytes(budget)
    return previous


@contextlib.contextmanager
def memory_budget(budget):
    """Context manager: the budget is ``budget`` inside the ``with`` block.

    Examples
    --------
    >>> with memory_budget("1GiB"):
    ...     get_memory_budget()
    1073741824
    """
    previous = set_memory_budget(budget)
    try:
        yield
    finally:
        set_memory_budget(previous)


def check_memory(nbytes, what, alternatives=()):
    """Refuse work that needs more than the memory budget, before it starts.

    Parameters
    ----------
    nbytes : int
        The estimated peak of the work (the large temporaries it will hold at once).
    what : str
        What the work is, e.g. ``"KernelCKA on 34,560 rows: 3 float64 34,560 x 34,560
        matrices"``.
    alternatives : sequence of str
        What the user can do instead (pool positions, fewer stimuli, a streaming metric...).

    Raises
    ------
    MemoryBudgetError
        When ``nbytes`` exceeds :func:`get_memory_budget`.

    Examples
    --------
    >>> with memory_budget("1MiB"):
    ...     check_memory(8 * 1000 * 1000, "a 1,000 x 1,000 float64 matrix", ["use fewer rows"])
    Traceback (most recent call last):
    ...
    simmetrics._core.memory.MemoryBudgetError: a 1,000 x 1,000 float64 matrix needs about 7.6 MiB, ...
    """
    budget = get_memory_budget()
    if nbytes <= budget:
        return
    text = (
        f"{what} needs about {format_bytes(nbytes)}, more than the memory budget of "
        f"{format_bytes(budget)}"
    )
    if alternatives:
        text += "; instead: " + "; ".join(alternatives)
    text += (
        " (raise the budget with simmetrics.set_memory_budget(...) or the environment "
        "variable SIMMETRICS_MEMORY_BUDGET if the machine has the memory)"
    )
    raise MemoryBudgetError(text)


def gram_bytes(n, count=1, itemsize=8):
    """Bytes of ``count`` dense n x n matrices of ``itemsize``-byte numbers."""
    return int(count) * int(n) * int(n) * int(itemsize)


def check_rows_memory(metric, n, nbytes, held, positions=None):
    """:func:`simmetrics._core.memory.check_memory` for work on ``n`` rows (stimuli), naming the
    rows, what the estimate ``nbytes`` counts (``held``), where the rows came from
    (``positions``: :func:`stimulus_positions`' answer, or True when only the layout is known) and the
    alternatives: pooling the positions or ``layout="flatten"``, fewer stimuli, a streaming
    metric."""
    layout = getattr(metric, "layout", None)
    origin, alternatives = "", []
    if positions is not None and layout in POSITION_AXES:
        kind = "token" if layout == "ntd" else "spatial position"
        pooled = "the tokens" if layout == "ntd" else "h and w"
        flat = ""
        if positions is True:
            origin = f" (with layout={layout!r} every {kind} of every stimulus is a row)"
        else:
            stimuli, dims = positions
            per = f"{int(np.prod(dims)):,}"
            if len(dims) > 1:
                per = f"{' x '.join(map(str, dims))} = {per}"
            origin = (f" (with layout={layout!r} each of the {stimuli:,} stimuli contributed "
                      f"{per} rows, one per {kind})")
            flat = f" ({stimuli:,} rows)"
        alternatives.append(
            f"pool the positions of each stimulus (e.g. average over {pooled}) or read the "
            f"layer with layout='flatten', one row per stimulus{flat}"
        )
    what = f"{type(metric).__name__} on {n:,} rows{origin}, holding {held},"
    alternatives += [
        "use fewer stimuli",
        "use a streaming metric such as linear_cka through simmetrics.stream_score, which "
        "never holds an n x n matrix",
    ]
    check_memory(nbytes, what, alternatives)
