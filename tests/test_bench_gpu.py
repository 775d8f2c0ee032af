"""benchmarks/bench_gpu.py: the smoke test on the CPU (--device cpu --quick) prints every
section, and its values are the metrics' own values on the same data."""

import re

import pytest
import torch

from simmetrics import LinearCKA
from tests.benchmark_scripts import load

pytestmark = pytest.mark.slow  # seconds: deselect with -m "not slow" while developing


@pytest.fixture(scope="module")
def bench():
    return load("bench_gpu")


def _values(text, label):
    """The values printed on the lines that start with ``label`` (after the indent)."""
    return [float(v) for v in re.findall(rf"^  {re.escape(label)}.*value (-?[0-9.]+)$", text,
                                         flags=re.MULTILINE)]


def test_quick_cpu_run_prints_every_section_and_the_metric_values(bench, capsys):
    assert bench.main(["--device", "cpu", "--quick"]) == 0
    out = capsys.readouterr().out
    sizes = bench.QUICK
    assert f"torch {torch.__version__}" in out
    assert f"== linear CKA on cpu: n = {sizes['n']:,}, d = {sizes['d']:,}" in out
    for label in ("bound: float64 X'X, Y'Y, X'Y on the device", "LinearCKA().fit_score",
                  "LinearCKA(debiased=True).fit_score", "stream_score(LinearCKA()",
                  "ratio LinearCKA().fit_score / bound", "ratio stream_score"):
        assert label in out
    assert f"N = {sizes['N']:,}, C = {sizes['C']}, dense ==" in out
    assert f"N = {sizes['N']:,}, C = {sizes['C']}, 4 x 4 positions summed ==" in out
    assert out.count("speed-up cpu / CPU path") == 2

    # expected: LinearCKA().fit_score on the script's own data, computed here
    X, Y = bench.linear_data(torch.device("cpu"), sizes["n"], sizes["d"])
    linear = LinearCKA().fit_score(X, Y)
    (printed,) = _values(out, "LinearCKA().fit_score")
    assert printed == pytest.approx(linear, abs=1e-11)  # printed with 12 decimals
    (streamed,) = _values(out, "stream_score(LinearCKA()")
    assert streamed == pytest.approx(linear, abs=1e-10)

    # expected: IntertwinerCKA on the script's data as numpy arrays, computed here; the run
    # on tensors ("cpu tensors") and the CPU path print the same value
    on_tensors = _values(out, "cpu tensors")
    on_cpu = _values(out, "CPU path")
    assert len(on_tensors) == len(on_cpu) == 2
    for spatial, tensor_value, cpu_value in zip((1, 4), on_tensors, on_cpu):
        A, B, metric = bench.intertwiner_data(sizes["N"], sizes["C"], spatial)
        expected = metric.fit_score(A, B)
        assert -1.0 <= expected <= 1.0 and abs(expected) > 1e-3
        assert cpu_value == pytest.approx(expected, abs=1e-11)
        assert tensor_value == pytest.approx(expected, abs=1e-11)


def test_without_cuda_it_says_so_and_exits_0(bench, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main([]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines() == [
        "no CUDA device (torch.cuda.is_available() is False): the GPU benchmark is skipped"
    ]
