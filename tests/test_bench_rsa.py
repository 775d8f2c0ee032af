"""benchmarks/bench_rsa.py: its smoke test (--quick) times RSA against rsatoolbox on the same
data and prints agreeing values for every case."""

import re

import pytest

from tests.benchmark_scripts import load

pytestmark = pytest.mark.slow  # seconds: deselect with -m "not slow" while developing


def test_quick_run_times_rsa_against_rsatoolbox(capsys):
    bench = load("bench_rsa")
    assert bench.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "\nRSA, n = 300, d = 64" in out and "\nRSA, n = 1,000, d = 64" in out
    rows = re.findall(r"^  (\w+) +(\w+) +([0-9.]+) +([0-9.]+) +([0-9.]+) +([0-9.e+-]+)$", out,
                      flags=re.M)
    assert len(rows) == 2 * len(bench.CASES)
    for _, _, ours, theirs, ratio, difference in rows:
        # rsatoolbox's values (the two agree to rounding on these data, no near-ties)
        assert float(difference) <= 1e-9
        assert float(ours) > 0 and float(theirs) > 0
