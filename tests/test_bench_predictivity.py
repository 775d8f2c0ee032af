"""benchmarks/bench_predictivity.py: its smoke test (--quick) fits every kernel-form regression
in dual form and reports a peak memory beyond the data within the target."""

import re

import pytest

from tests.benchmark_scripts import load

pytestmark = pytest.mark.slow  # seconds: deselect with -m "not slow" while developing


def test_quick_run_uses_the_dual_form_within_the_memory_target(capsys):
    bench = load("bench_predictivity")
    assert bench.main(["--quick", "--blas-threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "n = 400 (90% train), d = 5,000, t = 500" in out
    lines = re.findall(r"regression='(\w+)'\): dual form (True|False), value ([0-9.-]+), "
                       r"[0-9.]+ s, peak beyond the data ([0-9.]+) GB \[within 2 GB\]", out)
    assert [line[0] for line in lines] == ["ridge", "linear", "ridgecv"]
    for _, dual, value, peak in lines:
        assert dual == "True"
        assert 0.0 < float(value) < 1.0  # the targets are partly predictable
        # beyond the data: a centred block of columns (at this size all 5,000: 14 MB), the
        # 360 x 360 kernel and the 360 x 500 dual coefficients (18 MB measured); a primal
        # route would add the 5,000 x 500 coefficients (20 MB) to the centred copy
        assert float(peak) < 0.03
