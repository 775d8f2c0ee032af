"""What the benchmark scripts share (imported by name: a script's own folder is on its path, and
tests/benchmark_scripts.py puts it there for the smoke tests)."""

import platform
import statistics

__all__ = ["median_time", "cpu_name"]


def median_time(fn, repeats, clock):
    """Median time of ``fn()`` by ``clock`` over ``repeats`` runs (after one untimed warm-up
    run when ``repeats > 1``), and its last result."""
    times, out = [], None
    if repeats > 1:
        fn()
    for _ in range(repeats):
        start = clock()
        out = fn()
        times.append(clock() - start)
    return statistics.median(times), out


def cpu_name():
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return platform.processor() or "unknown CPU"
