"""benchmarks/bench_pairwise.py: its smoke test (--quick) runs both metrics through the serial,
dask and resume steps and prints every ratio; the matrices it compares agree."""

import re

import numpy as np
import pytest

import simmetrics
from tests.benchmark_scripts import load

pytestmark = pytest.mark.slow  # starts a LocalCluster and a subprocess per metric


@pytest.fixture(scope="module")
def bench():
    return load("bench_pairwise")


def test_quick_run_prints_every_step_and_ratio(bench, capsys):
    assert bench.main(["--quick"]) == 0
    out = capsys.readouterr().out
    for section in ("linear CKA (linear_cka)", "orthogonal Procrustes (procrustes)"):
        assert f"\n{section}\n" in out
    assert len(re.findall(r"parallel efficiency serial / \(2 x dask\): [0-9.]+", out)) == 2
    assert len(re.findall(r"resume cost: [0-9.]+ x the ideal", out)) == 2
    # the restart computed exactly the pairs that were missing when the job was killed
    for computed, missing in re.findall(r"the restart computed (\d+) \(missing (\d+)\)", out):
        assert computed == missing and int(missing) > 0
    differences = re.findall(r"largest difference \w+ vs serial: ([0-9.e+-]+)", out)
    assert len(differences) == 4 and max(map(float, differences)) < 1e-12


def test_the_representations_are_related_and_reproducible(bench):
    reps = bench.representations(4, 200, 8)
    again = bench.representations(4, 200, 8)
    assert all(np.array_equal(a, b) for a, b in zip(reps, again))
    M = simmetrics.pairwise("linear_cka", reps)
    assert 0.3 < M[0, 1] < 0.99  # related but distinct
