"""Eigenspace overlap score (simmetrics.metrics.subspace) against ReSi's values on seed11, its
width and rank denominators, and the streaming route."""

import numpy as np
import pytest

import simmetrics
from simmetrics.moments import PairMoments

PAIRS = ["X_Y", "X_Z", "X_Xpd", "X_Xq"]


# Reference: mklabunde/resi commit 24ab9e5055c71527445b0b196f5872f3cbe9a020,
# repsim/measures eigenspace_overlap_score, shape "nd" (tests/data/reference/seed11/README.md):
# left singular vectors of the uncentred data cut to their ranks, divided by the larger width.
# The seed11 matrices have full column rank, so both denominators give ReSi's value.
@pytest.mark.parametrize("denominator", ["rank", "width"])
@pytest.mark.parametrize("pair", PAIRS)
def test_eigenspace_overlap_equals_resi(seed11, pair, denominator):
    metric = simmetrics.EigenspaceOverlap(denominator=denominator)
    value = metric.fit_score(seed11["X"], seed11[pair.split("_")[1]])
    assert value == pytest.approx(seed11["values"][pair]["resi_eigenspace_overlap_score"],
                                  abs=1e-8)


def test_dead_neurons_and_few_samples(rng):
    X = rng.normal(size=(50, 6))
    dead = np.column_stack([X[:, :5], np.zeros(50)])
    assert simmetrics.EigenspaceOverlap().fit_score(dead, dead) == pytest.approx(1.0, abs=1e-12)
    # ReSi's denominator: rank 5 of width 6
    width = simmetrics.EigenspaceOverlap(denominator="width")
    assert width.fit_score(dead, dead) == pytest.approx(5 / 6, abs=1e-12)
    assert simmetrics.EigenspaceOverlap().fit_score(X, X[:, :2]) == pytest.approx(2 / 6, abs=1e-12)
    wide = rng.normal(size=(8, 30))  # n < d: the whole of R^n, which contains any other space
    assert simmetrics.EigenspaceOverlap().fit_score(wide, rng.normal(size=(8, 20))) == \
        pytest.approx(1.0, abs=1e-12)
    assert width.fit_score(wide, wide) == pytest.approx(8 / 30, abs=1e-12)
    with pytest.raises(ValueError, match="Y has zero variance"):  # the package's rule
        simmetrics.EigenspaceOverlap().fit_score(X, np.zeros((50, 2)))


def test_not_translation_invariant_but_invertible_linear(rng):
    X = rng.normal(size=(40, 4))
    metric = simmetrics.EigenspaceOverlap()
    assert metric.fit_score(X, X @ rng.normal(size=(4, 4))) == pytest.approx(1.0, abs=1e-12)
    assert metric.fit_score(X, X + 1.0) < 0.9


@pytest.mark.parametrize("factor", [True, False])
def test_streaming_from_moments(seed11, factor):
    X, Z = seed11["X"] + 0.5, seed11["Z"]
    metric = simmetrics.EigenspaceOverlap()
    stats = sum(PairMoments.from_arrays(X[i:i + 70], Z[i:i + 70], factor=factor)
                for i in range(0, 300, 70))
    assert simmetrics.score_from_moments(metric, stats) == pytest.approx(
        metric.fit_score(X, Z), rel=1e-9)
