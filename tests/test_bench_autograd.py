"""benchmarks/bench_autograd.py: its smoke run (--quick) prints every section, ratio, check and
target line; simmetrics' gradients agree with ckatorch's (an independent implementation: n x n
Gram matrices and autograd through them) to 1e-10; without CUDA the GPU part is one line, and
with ``--gpu-device cpu`` the GPU part's code runs on the CPU."""

import re
from importlib.metadata import version

import pytest
import torch

from simmetrics import LinearCKA, functional
from tests.benchmark_scripts import load

pytestmark = pytest.mark.slow  # seconds: deselect with -m "not slow" while developing

RATIO = re.compile(r"^    ratio (.+): ([0-9.]+) s / ([0-9.]+) s = ([0-9.]+)$", flags=re.M)
CHECK = re.compile(r"^  \[(agree|DIFFER)\] (.+): max \|difference\| ([0-9.e+-]+) "
                   r"\(largest \|entry\| ([0-9.e+-]+)\)$", flags=re.M)
TARGET = re.compile(r"^  \[(met|MISSED)\] (.+): ([0-9.]+) s / ([0-9.]+) s = ([0-9.]+) "
                    r"\(<= 1.3\)$", flags=re.M)


@pytest.fixture(scope="module")
def bench():
    return load("bench_autograd")


def _value(section, label):
    """The value printed on the line of ``section`` that starts with ``label``."""
    (found,) = re.findall(rf"^  {re.escape(label)}.*value (-?[0-9.]+)$", section, flags=re.M)
    return float(found)


def _section(out, header):
    """The text of the section that starts with ``== header ==`` (up to the next one)."""
    return out.split(f"== {header} ==")[1].split("\n== ")[0].split("\nGPU part on")[0]


def _check_cpu_sections(bench, out, header):
    sizes = bench.QUICK
    n, d = sizes["n"], sizes["d"]
    X, Y = bench.related_data(n, d)
    # expected: the class's fit_score on the script's data, computed here
    expected = LinearCKA().fit_score(X, Y)
    for kind in ("float64", "float32"):
        section = _section(out, f"{header}: n = {n:,}, d = {d}, {kind} inputs")
        assert "BLAS bound: float64 X'X, Y'Y, X'Y (torch)" in section
        if header == "CPU":  # IntertwinerCKA in a section of its own, after the others
            title = bench.METRICS[2][0]
            section += _section(out, f"CPU: {title}, n = {n:,}, d = {d}, {kind} inputs")
        for title, name in bench.METRICS:
            assert f"  {title}: forward-only (torch.no_grad())" in section
            if functional.is_differentiable(name):
                forward = _value(section, f"{title}: forward-only")
                both = _value(section, f"{title}: forward+backward")
                assert both == pytest.approx(forward, abs=1e-12)
                assert f"ratio {title} forward+backward / forward-only: " in section
                assert f"ratio {title} forward+backward / BLAS bound: " in section
            else:
                assert (f"  {title}: forward+backward: not differentiable yet "
                        f"(simmetrics.functional.is_differentiable({name!r}) is False)"
                        in section)
        tolerance = 1e-11 if kind == "float64" else 1e-6  # float32 inputs: rounded data
        assert _value(section, "linear CKA: forward-only") == pytest.approx(expected,
                                                                            abs=tolerance)
        assert f"-- ckatorch on the first {sizes['ckatorch_n']:,} rows" in section
        assert "method='fro_norm', its default) gives no gradient" in section
        for label in ("ckatorch cka_base(kernel='linear', method='hsic')",
                      "ckatorch cka_batch (batch of 1", "ratio ckatorch / simmetrics (biased",
                      "ratio ckatorch / simmetrics (debiased"):
            assert label in section
        for _, numerator, denominator, shown in RATIO.findall(section):
            assert float(denominator) >= 0 and float(shown) >= 0 and float(numerator) >= 0


def _checks(out):
    checks = out.split("checks: simmetrics' gradients and values against ckatorch's")[1]
    return CHECK.findall(checks.split("\ntargets of issue 13")[0])


def test_quick_run_without_cuda_prints_every_section_and_the_gradients_agree(
        bench, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main(["--quick", "--blas-threads", "1"]) == 0
    out = capsys.readouterr().out
    assert f"ckatorch {version('ckatorch')}" in out
    _check_cpu_sections(bench, out, "CPU")
    # the GPU part: one line
    assert ("\nno CUDA device (torch.cuda.is_available() is False): the GPU part is skipped\n"
            in out)
    assert "GPU part on" not in out and "== linear CKA on" not in out
    # gradients and values of the biased and the debiased linear CKA against ckatorch's
    checks = _checks(out)
    assert len(checks) == 4
    assert sum("gradients w.r.t. X and Y" in description for _, description, _, _ in checks) == 2
    for state, description, difference, largest in checks:
        assert state == "agree" and float(difference) <= 1e-10, description
        assert float(difference) <= 1e-10 * float(largest), description  # relative, too
    assert "\n  none measured here (the 1.3x target is for the GPU part)\n" in out
    assert re.search(r"\ntotal wall time [0-9]+ s\n$", out)


def test_quick_run_of_the_gpu_part_on_the_cpu(bench, capsys):
    assert bench.main(["--quick", "--blas-threads", "1", "--gpu-device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "\nGPU part on cpu: " in out and "(the GPU part's code run on the CPU)" in out
    _check_cpu_sections(bench, out, "cpu")
    big_n, big_d = bench.QUICK["big_n"], bench.QUICK["big_d"]
    large = _section(out, f"linear CKA on cpu: n = {big_n:,}, d = {big_d:,}, float32 tensors")
    assert "this part is estimated to need" in large
    X, Y = bench.device_data(torch.device("cpu"), big_n, big_d)
    expected = LinearCKA().fit_score(X, Y)  # the class on the script's data, computed here
    assert _value(large, "linear CKA forward-only") == pytest.approx(expected, abs=1e-11)
    assert _value(large, "linear CKA forward+backward") == pytest.approx(expected, abs=1e-11)
    assert len(RATIO.findall(large)) == 4
    # the CPU's and the GPU part's checks: biased and debiased, gradients and values, each
    checks = _checks(out)
    assert len(checks) == 8
    assert sum("GPU part on cpu" in description for _, description, _, _ in checks) == 4
    for state, description, difference, largest in checks:
        assert state == "agree" and float(difference) <= 1e-10, description
    targets = TARGET.findall(out.split("targets of issue 13")[1])
    assert len(targets) == 2
    for _, _, numerator, denominator, shown in targets:
        assert float(shown) == pytest.approx(float(numerator) / float(denominator), rel=0.05,
                                             abs=0.01)
