"""Permutation tests and bootstrap intervals: exact resampling scheme (recomputed here from the
documented seeds), calibration under the null, power, determinism, and argument checking."""

import random
import warnings

import numpy as np
import pytest
import scipy.stats

import simmetrics
from simmetrics import bootstrap_ci, permutation_test
from simmetrics._core.validation import check_random_state
from simmetrics.base import Metric
from tests.metric_configs import MATRIX_METRICS  # 3-D input metrics: their own suite


def _related(rng, n=40, dx=5, dy=4, noise=0.3):
    X = rng.normal(size=(n, dx))
    return X, X @ rng.normal(size=(dx, dy)) + noise * rng.normal(size=(n, dy))


def _child_seeds(random_state, count):
    # the documented scheme: one child seed per resample, drawn up front from random_state
    return check_random_state(random_state).integers(0, 2**63 - 1, size=count, dtype=np.int64)


@pytest.mark.parametrize("name", MATRIX_METRICS)
def test_every_registered_metric_works(name, rng):
    metric = simmetrics.get_metric(name)
    X = np.abs(rng.normal(size=(30, 5))) + 0.1 * rng.normal(size=(30, 5))
    Y = X[:, :4] @ rng.normal(size=(4, 4)) + 0.5 * rng.normal(size=(30, 4))
    if metric.same_width:
        Y = X @ rng.normal(size=(5, 5))
    test = permutation_test(metric, X, Y, n_permutations=5, random_state=0)
    # same code, same input (the statistic is clone(metric).fit_score(X, Y)): bit-identical
    assert test.statistic == simmetrics.get_metric(name).fit_score(X, Y)
    assert test.null_distribution.shape == (5,) and np.isfinite(test.null_distribution).all()
    assert test.pvalue in [k / 6 for k in range(1, 7)]
    assert test.alternative == ("greater" if metric.kind == "similarity" else "less")
    with warnings.catch_warnings():
        # 30 stimuli and 5 resamples: an interval may exclude the estimate here (the warning
        # itself is tested in test_trust_extract_stats.py); this test is about the mechanics
        warnings.simplefilter("ignore", simmetrics.stats.IntervalExcludesEstimateWarning)
        ci = bootstrap_ci(metric, X, Y, n_bootstraps=5, random_state=0)
    assert ci.statistic == test.statistic
    assert ci.bootstrap_distribution.shape == (5,)
    assert ci.low <= ci.high and np.isfinite([ci.low, ci.high]).all()


def test_null_distribution_is_the_metric_on_documented_shuffles(rng):
    # Expected values recomputed directly: metric(X, Y[perm_k]), perm_k from child seed k.
    X, Y = _related(rng)
    res = permutation_test("procrustes", X, Y, n_permutations=7, random_state=3)
    for value, seed in zip(res.null_distribution, _child_seeds(3, 7)):
        perm = np.random.default_rng(int(seed)).permutation(len(X))
        # same code, same input (stats runs clone(metric).fit_score on each resample):
        # bit-identical by construction
        assert value == simmetrics.OrthogonalProcrustes().fit_score(X, Y[perm])


def test_bootstrap_distribution_is_the_metric_on_documented_resamples(rng):
    X, Y = _related(rng)
    res = bootstrap_ci("linear_cka", X, Y, n_bootstraps=7, confidence=0.8, random_state=5)
    for value, seed in zip(res.bootstrap_distribution, _child_seeds(5, 7)):
        idx = np.random.default_rng(int(seed)).integers(0, len(X), size=len(X))
        assert value == simmetrics.LinearCKA().fit_score(X[idx], Y[idx])  # same code, input
    # percentile interval, numpy's default (linear) quantiles. Not the same levels bit for bit:
    # alpha = 1 - 0.8 is 0.19999999999999996, so the lower level is 0.09999999999999998 and
    # the interpolated quantile may differ in the last bits (it does for most random 7-value
    # samples): 1e-12 absolute, on values in [0, 1]
    assert (res.low, res.high) == pytest.approx(
        tuple(np.quantile(res.bootstrap_distribution, [0.1, 0.9])), abs=1e-12)
    assert res.confidence_interval == (res.low, res.high)
    assert res.standard_error == pytest.approx(np.std(res.bootstrap_distribution, ddof=1))


def test_pvalue_formula_follows_the_kind(rng):
    # (k + 1) / (B + 1), k counted in the direction of the metric's kind. Integer counts, so
    # exact: the package also counts null values within 100 eps of the statistic as ties,
    # and these generic data have none that close
    X, Y = rng.normal(size=(25, 3)), rng.normal(size=(25, 3))
    sim = permutation_test("linear_cka", X, Y, n_permutations=50, random_state=1)
    k = np.count_nonzero(sim.null_distribution >= sim.statistic)
    assert sim.pvalue == (k + 1) / 51
    dist = permutation_test("procrustes", X, Y, n_permutations=50, random_state=1)
    k = np.count_nonzero(dist.null_distribution <= dist.statistic)
    assert dist.alternative == "less" and dist.pvalue == (k + 1) / 51
    greater = permutation_test("procrustes", X, Y, 50, random_state=1, alternative="greater")
    k_greater = np.count_nonzero(greater.null_distribution >= greater.statistic)
    assert greater.pvalue == (k_greater + 1) / 51
    two = permutation_test("procrustes", X, Y, 50, random_state=1, alternative="two-sided")
    assert two.pvalue == min(1.0, 2 * min(dist.pvalue, greater.pvalue))
    assert two.n_permutations == 50


def test_strong_relation_gives_the_smallest_pvalue(rng):
    X, Y = _related(rng, noise=0.1)
    for name in ("linear_cka", "procrustes", "rsa"):  # similarity, distance, rank-based
        res = permutation_test(name, X, Y, n_permutations=99, random_state=0)
        assert res.pvalue == 0.01 < 0.05, name


def test_pvalues_are_uniform_under_independence():
    # 60 independent (X, Y) data sets, 19 shuffles each: under H0 p is uniform on
    # {1/20, ..., 20/20} (mean 0.525); a wrong tie rule or direction would shift it.
    pvalues = [
        permutation_test("linear_cka", *np.random.default_rng(s).normal(size=(2, 20, 3)),
                         n_permutations=19, random_state=s).pvalue
        for s in range(60)
    ]
    assert 0.42 < np.mean(pvalues) < 0.63
    assert scipy.stats.kstest(pvalues, "uniform").pvalue > 0.01
    assert np.mean(np.array(pvalues) <= 0.1) < 0.25


def test_shuffles_break_the_pairing_and_resamples_keep_it(rng):
    X = rng.normal(size=(30, 4))
    perm = permutation_test("linear_cka", X, X, n_permutations=20, random_state=0)
    # CKA(X, X) is 1 in exact arithmetic only: the cross and self products are rounded
    # separately (0.9999999999999993 for some seeds): 1e-12, as for the resamples below
    assert perm.statistic == pytest.approx(1.0, abs=1e-12)
    assert perm.null_distribution.max() < 0.9
    boot = bootstrap_ci("linear_cka", X, X, n_bootstraps=20, random_state=0)
    # the same stimuli are drawn for X and Y, so each resample still compares X with itself
    np.testing.assert_allclose(boot.bootstrap_distribution, 1.0, rtol=0, atol=1e-12)


def test_interval_contains_the_full_data_value_in_a_well_behaved_case(rng):
    X, Y = _related(rng, n=300, dx=3, dy=3, noise=1.0)
    res = bootstrap_ci("linear_cka", X, Y, n_bootstraps=300, random_state=0)
    assert res.low < res.statistic < res.high
    assert res.high - res.low < 0.2


def test_biased_cka_is_inflated_by_duplicated_stimuli(rng):
    # The documented caveat: with many neurons per stimulus, duplicated rows raise biased CKA,
    # so the bootstrap distribution sits above the full-data value.
    X, Y = rng.normal(size=(40, 30)), rng.normal(size=(40, 30))
    with pytest.warns(simmetrics.stats.IntervalExcludesEstimateWarning, match="excludes the "
                      "estimate"):  # and the package says so
        res = bootstrap_ci("linear_cka", X, Y, n_bootstraps=100, random_state=0)
    assert np.mean(res.bootstrap_distribution) > res.statistic + 0.05
    assert res.low > res.statistic  # the interval misses the full-data value altogether


def test_layout_resamples_whole_stimuli(rng):
    # conv features (n, c, h, w): the first axis is shuffled, positions move with their image
    X = rng.normal(size=(12, 3, 2, 2))
    Y = 2.0 * X[:, [2, 0, 1]]  # channels permuted and scaled: CKA 1
    metric = simmetrics.LinearCKA(layout="nchw")
    res = permutation_test(metric, X, Y, n_permutations=5, random_state=2)
    assert res.statistic == pytest.approx(1.0, abs=1e-12)
    for value, seed in zip(res.null_distribution, _child_seeds(2, 5)):
        perm = np.random.default_rng(int(seed)).permutation(12)
        # same code, same input (the resample of the 4-D array): bit-identical by construction
        assert value == simmetrics.LinearCKA(layout="nchw").fit_score(X, Y[perm])


def test_deterministic_for_a_fixed_random_state_also_in_parallel(rng):
    # each resample is computed by the same code from its own child seed, whichever worker
    # runs it, and nothing is summed across resamples: bit-identical by construction
    X, Y = _related(rng)
    a = permutation_test("procrustes", X, Y, n_permutations=30, random_state=11)
    b = permutation_test("procrustes", X, Y, n_permutations=30, random_state=11, n_jobs=2)
    c = permutation_test("procrustes", X, Y, n_permutations=30,
                         random_state=np.random.default_rng(11))
    assert a.pvalue == b.pvalue == c.pvalue
    assert np.array_equal(a.null_distribution, b.null_distribution)
    assert np.array_equal(a.null_distribution, c.null_distribution)
    d = permutation_test("procrustes", X, Y, n_permutations=30, random_state=12)
    assert not np.array_equal(a.null_distribution, d.null_distribution)
    e = bootstrap_ci("procrustes", X, Y, n_bootstraps=30, random_state=11)
    f = bootstrap_ci("procrustes", X, Y, n_bootstraps=30, random_state=11, n_jobs=2)
    assert np.array_equal(e.bootstrap_distribution, f.bootstrap_distribution)
    assert (e.low, e.high) == (f.low, f.high)


def test_global_random_state_is_never_touched(rng):
    X, Y = _related(rng)
    np.random.seed(1234)
    random.seed(1234)
    before, before_py = np.random.get_state(), random.getstate()
    permutation_test("linear_cka", X, Y, n_permutations=10)
    with warnings.catch_warnings():
        # no random_state: fresh entropy, so 10 resamples may or may not shift past their
        # spread; the warning that then says so is tested elsewhere, not the point here
        warnings.simplefilter("ignore", simmetrics.stats.IntervalExcludesEstimateWarning)
        bootstrap_ci("linear_cka", X, Y, n_bootstraps=10)
    after = np.random.get_state()
    assert all(np.array_equal(x, y) for x, y in zip(before, after))
    assert random.getstate() == before_py


def test_progress_bar(rng, capsys):
    X, Y = _related(rng)
    permutation_test("linear_cka", X, Y, n_permutations=100, random_state=0, progress=True)
    err = capsys.readouterr().err
    assert "LinearCKA permutation test" in err and "100/100" in err
    bootstrap_ci("linear_cka", X, Y, n_bootstraps=10, random_state=0)
    assert capsys.readouterr().err == ""


class _NoDuplicates(Metric):
    """Test metric that rejects repeated stimuli, as some estimators could."""

    reference = "test"

    def __init__(self, layout=None):
        self.layout = layout

    def _score(self, X, Y):
        if len(np.unique(X, axis=0)) < len(X):
            raise ValueError("duplicated stimuli")
        return 0.5


def test_bad_arguments(rng):
    X, Y = _related(rng)
    for bad in (0, -3, 2.5, True, "10"):
        with pytest.raises(ValueError, match="n_permutations must be a positive integer"):
            permutation_test("linear_cka", X, Y, n_permutations=bad)
        with pytest.raises(ValueError, match="n_bootstraps must be a positive integer"):
            bootstrap_ci("linear_cka", X, Y, n_bootstraps=bad)
    for bad in (0, 1, 1.5, -0.1, "0.9", True):
        with pytest.raises(ValueError, match="confidence must be a number strictly between"):
            bootstrap_ci("linear_cka", X, Y, confidence=bad)
    with pytest.raises(ValueError, match="alternative must be one of"):
        permutation_test("linear_cka", X, Y, alternative="bigger")
    with pytest.raises(TypeError, match="metric must be"):
        permutation_test(3, X, Y)
    with pytest.raises(ValueError, match="did you mean 'procrustes'"):
        bootstrap_ci("procrustess", X, Y)
    with pytest.raises(ValueError, match="same number of samples"):
        permutation_test("linear_cka", X, Y[:-1])
    with pytest.raises(TypeError, match="random_state must be"):
        permutation_test("linear_cka", X, Y, random_state="seed")
    Xnan = X.copy()
    Xnan[3, 1] = np.nan
    with pytest.raises(ValueError, match="X contains 1 NaN"):
        bootstrap_ci("linear_cka", Xnan, Y)
    # a resample the metric rejects is named
    with pytest.raises(ValueError, match=r"bootstrap resample 0: duplicated stimuli"):
        bootstrap_ci(_NoDuplicates(), X, Y, n_bootstraps=3, random_state=0)
    assert permutation_test(_NoDuplicates(), X, Y, n_permutations=3).pvalue == 1.0
