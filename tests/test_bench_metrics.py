"""benchmarks/bench_metrics.py: its smoke test (--quick) runs every section and prints every
ratio and target line; the layer matrix it times agrees with the looped formula."""

import re

import numpy as np
import pytest

import simmetrics
from tests.benchmark_scripts import load

pytestmark = pytest.mark.slow  # seconds: deselect with -m "not slow" while developing


@pytest.fixture(scope="module")
def bench():
    return load("bench_metrics")


def test_quick_run_prints_every_section_and_target(bench, capsys):
    assert bench.main(["--quick", "--skip-intertwiner-cka"]) == 0
    out = capsys.readouterr().out
    for section in ("linear CKA, n = 2,000, d = 128, float64", "orthogonal Procrustes",
                    "permutation matching", "CCA (mean canonical correlation)",
                    "RSA (correlation RDM, Spearman)", "6 x 6 layer matrix of linear CKA",
                    "orthogonal Procrustes, d > n: n = 10, d = 1,000",
                    "ShapeMetric(alpha=0.5), n = 2,000, d = 64, float32",
                    "Procrustes / ShapeMetric on tall data", "pairwise OrthogonalProcrustes over",
                    "CCA family, n = 2,000", "IntertwinerProcrustes('relu'), n = 2,000",
                    "tall data: CCA", "KernelCKA (RBF, median bandwidth)"):
        assert f"\n{section}" in out
    targets = out.split("targets of issues 5 and 19 and of the trust issue")[1]
    # 4 of issue 5 and the trust issue, 4 of issue 19's shape routes, 11 of its CCA-family,
    # IntertwinerProcrustes and KernelCKA routes
    assert len(re.findall(r"^  \[(met|MISSED)\] ", targets, flags=re.M)) == 19
    # the pairwise matrix equals the loop of the per-pair function (printed difference)
    (difference,) = re.findall(r"largest difference ([0-9.e+-]+)", out)
    assert float(difference) < 1e-12


def test_the_layer_matrix_baseline_is_the_numpy_formula(bench, rng):
    # expected: LinearCKA on each pair; the benchmark's peer formula and data generator
    layers = bench.deep_layers(rng, 200, 16, 3)
    for a in layers:
        for b in layers:
            assert bench.numpy_cka(a, b) == pytest.approx(
                simmetrics.LinearCKA().fit_score(a, b), abs=1e-12)
    M = simmetrics.pairwise("linear_cka", layers)
    assert 0.2 < M[0, 2] < 0.99 and np.allclose(M, M.T)  # related but distinct layers
