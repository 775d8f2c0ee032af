"""Running many independent metric evaluations: joblib for the work, a small text progress bar
on stderr for the waiting.

:func:`parallel_map` goes through ``joblib.Parallel(n_jobs=n_jobs)``, so a surrounding
``joblib.parallel_backend(...)`` context (threads, processes, dask) decides where the work runs.
Results always come back in task order, whatever order the workers finish in.
"""

import sys
import time

from joblib import Parallel, delayed

__all__ = ["Progress", "parallel_map", "pair_blocks"]


class Progress:
    """A one-line text progress bar: ``desc: 42% |########            | 42/100 [3.1s]``.

    Drawn on ``stream`` (default ``sys.stderr``) only when ``enabled``; redrawn at most every
    ``min_interval`` seconds, and once more, with a newline, when the work is done. Use it as a
    context manager so the line is finished even when the work fails.

    Parameters
    ----------
    total : int
        Units of work.
    desc : str
        Label written before the bar.
    enabled : bool
        Draw nothing when False (the object still counts).
    stream : file-like, optional
    min_interval : float

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> with Progress(4, "work", enabled=True, stream=out, min_interval=0) as bar:
    ...     for _ in range(4):
    ...         bar.update()
    >>> out.getvalue().splitlines()[-1].split("[")[0]
    'work: 100% |########################| 4/4 '
    """

    width = 24

    def __init__(self, total, desc="", enabled=True, stream=None, min_interval=0.1):
        self.total = max(int(total), 0)
        self.desc = desc
        self.enabled = bool(enabled)
        self.stream = sys.stderr if stream is None else stream
        self.min_interval = min_interval
        self.done = 0
        self._start = time.monotonic()
        self._last = -float("inf")
        self._closed = False

    def _draw(self, end=""):
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + " " * (self.width - filled)
        elapsed = time.monotonic() - self._start
        label = f"{self.desc}: " if self.desc else ""
        self.stream.write(
            f"\r{label}{frac:4.0%} |{bar}| {self.done}/{self.total} [{elapsed:.1f}s]{end}"
        )
        self.stream.flush()

    def update(self, n=1):
        """Count ``n`` more units of work as done and redraw if it is time to."""
        self.done = min(self.done + n, self.total)
        now = time.monotonic()
        if self.enabled and (now - self._last >= self.min_interval or self.done == self.total):
            self._last = now
            self._draw()

    def close(self):
        """Finish the line (once)."""
        if self.enabled and not self._closed:
            self._draw(end="\n")
        self._closed = True

    def __enter__(self):
        if self.enabled:
            self._draw()
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def parallel_map(fn, tasks, n_jobs=None, progress=False, desc="", sizes=None):
    """``[fn(*task) for task in tasks]``, computed through ``joblib.Parallel(n_jobs=n_jobs)``.

    Parameters
    ----------
    fn : callable
        Must be picklable (a module-level function) for process-based backends.
    tasks : list of tuple
        Positional arguments of each call.
    n_jobs : int or None
        As in joblib: None means one job unless a ``joblib.parallel_backend`` context says
        otherwise, -1 all cores.
    progress : bool or Progress
        Draw a :class:`Progress` bar on stderr while the results come in, or advance the
        given one (so that several calls share one bar).
    desc : str
        The bar's label.
    sizes : list of int, optional
        Units of work of each task (default 1 each), so that a task computing a chunk of 50
        permutations advances the bar by 50.

    Returns
    -------
    list
        The results, in the order of ``tasks``.

    Examples
    --------
    >>> parallel_map(pow, [(2, 3), (3, 2)])
    [8, 9]
    """
    tasks = list(tasks)
    sizes = [1] * len(tasks) if sizes is None else list(sizes)
    calls = (delayed(fn)(*task) for task in tasks)
    if not progress:
        return list(Parallel(n_jobs=n_jobs)(calls))
    if isinstance(progress, Progress):
        return _collect(calls, sizes, n_jobs, progress)
    with Progress(sum(sizes), desc, enabled=True) as bar:
        return _collect(calls, sizes, n_jobs, bar)


def _collect(calls, sizes, n_jobs, bar):
    results = []
    try:  # results as they arrive, where the backend can hand them over one by one
        parallel = Parallel(n_jobs=n_jobs, return_as="generator")
    except ValueError:  # e.g. the multiprocessing backend: everything at the end
        parallel = Parallel(n_jobs=n_jobs)
    for size, result in zip(sizes, parallel(calls)):
        results.append(result)
        bar.update(size)
    return results


def pair_blocks(pairs, side):
    """Group ``pairs`` (i, j) into blocks of at most ``side`` distinct rows i and ``side``
    distinct columns j, so that one task computes a block of pairs from at most 2 ``side``
    representations instead of one pair from two: fewer, larger tasks (a scheduler such as
    dask's spends milliseconds per task) and, per task, at most 2 ``side`` prepared states held.

    Rows and columns are cut, in sorted order, into runs of ``side``; a block is the pairs whose
    row falls in one run and column in another (empty blocks are left out).

    Returns
    -------
    list of list of int
        Each block's positions in ``pairs``, in the order of ``pairs``.

    Examples
    --------
    >>> pairs = [(i, j) for i in range(4) for j in range(i, 4)]
    >>> [[pairs[k] for k in block] for block in pair_blocks(pairs, 2)]
    [[(0, 0), (0, 1), (1, 1)], [(0, 2), (0, 3), (1, 2), (1, 3)], [(2, 2), (2, 3), (3, 3)]]
    """
    side = max(1, int(side))
    rows = {i: r // side for r, i in enumerate(sorted({i for i, _ in pairs}))}
    cols = {j: c // side for c, j in enumerate(sorted({j for _, j in pairs}))}
    blocks = {}
    for k, (i, j) in enumerate(pairs):
        blocks.setdefault((rows[i], cols[j]), []).append(k)
    return [blocks[key] for key in sorted(blocks)]
