"""Trust issue, items 10 and 11.

10. Extraction through a shuffled DataLoader pairs different stimuli across two extractions:
    ``extract_activations`` refuses a loader whose order is random, and ``extract_pair`` feeds
    every batch to both models, so the two activation sets are row-aligned whatever the loader.
11. Bootstrap intervals of metrics biased by duplicated stimuli: ``bootstrap_ci`` offers
    subsampling without replacement (Politis & Romano 1994), the default for the alignment and
    CCA families, and warns when the interval excludes the estimate.

Expected values: activations recomputed by applying the modules by hand to the inputs in the
order the hooks saw them (no hooks, no loader); population values of the simulations in closed
form (stated at each design); the subsampling interval recomputed from the documented seeds and
formula.
"""

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    IterableDataset,
    RandomSampler,
    Sampler,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
)
from torch.utils.data.distributed import DistributedSampler

import simmetrics
from simmetrics import (
    CCA,
    PWCCA,
    SVCCA,
    AlignmentMetric,
    IntervalExcludesEstimateWarning,
    LinearCKA,
    OrthogonalProcrustes,
    bootstrap_ci,
)
from simmetrics._core.validation import check_random_state
from simmetrics.base import Metric
from simmetrics.nn.extract import extract_activations, extract_pair

from tests.metric_configs import MATRIX_METRICS  # 3-D input metrics: their own suite
from tests.nn.test_extract import _by_hand  # the layers applied one by one, without hooks

# ---------------------------------------------------------------------------------------------
# item 10: extraction order
# ---------------------------------------------------------------------------------------------


def _mlp(seed, width=7):
    torch.manual_seed(seed)
    # an Identity in front records the inputs in the order the model saw them
    return nn.Sequential(nn.Identity(), nn.Linear(5, width), nn.ReLU(), nn.Linear(width, 3))


@pytest.fixture
def x():
    return torch.randn(37, 5, generator=torch.Generator().manual_seed(3))


def _dataset(x):
    return TensorDataset(x, torch.arange(len(x)))


class _Reversed(Sampler):
    """A custom sampler (deterministic here, but of a type simmetrics cannot inspect)."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n - 1, -1, -1))

    def __len__(self):
        return self.n


def _shuffled_loaders(x):
    ds = _dataset(x)
    g = torch.Generator().manual_seed(0)
    return {
        "shuffle=True": DataLoader(ds, batch_size=8, shuffle=True, generator=g),
        "RandomSampler": DataLoader(ds, batch_size=8, sampler=RandomSampler(ds, generator=g)),
        "BatchSampler(RandomSampler)": DataLoader(
            ds, batch_sampler=BatchSampler(RandomSampler(ds, generator=g), 8, False)),
        "SubsetRandomSampler": DataLoader(
            ds, batch_size=8, sampler=SubsetRandomSampler(range(len(x)), generator=g)),
        "WeightedRandomSampler": DataLoader(
            ds, batch_size=8, sampler=WeightedRandomSampler([1.0] * len(x), len(x),
                                                            generator=g)),
        "DistributedSampler(shuffle=True)": DataLoader(
            ds, batch_size=8, sampler=DistributedSampler(ds, num_replicas=1, rank=0,
                                                         shuffle=True)),
        "custom Sampler": DataLoader(ds, batch_size=8, sampler=_Reversed(len(x))),
    }


@pytest.mark.parametrize("kind", list(_shuffled_loaders(torch.zeros(4, 5))))
def test_a_loader_in_random_order_is_refused(kind, x):
    # The reproducer: the same model extracted twice through a shuffled loader gave
    # linear CKA 0.012 (0.017 with this net); the order must be checked before any forward.
    net = _mlp(0).train()
    loader = _shuffled_loaders(x)[kind]
    with pytest.raises(ValueError, match=r"data:.*shuffle=False.*extract_pair") as err:
        extract_activations(net, loader, "2")
    if kind == "custom Sampler":
        assert "check_order=False" in str(err.value)
    assert all(not m._forward_hooks for m in net.modules()) and net.training


@pytest.mark.parametrize("kind", ["shuffle=False", "list sampler", "DistributedSampler",
                                  "batch_sampler list", "batch_size=None", "iterable"])
def test_a_loader_in_a_fixed_order_is_accepted(kind, x):
    # expected: the modules applied by hand to the inputs in the sampler's (fixed) order
    ds = _dataset(x)
    order = list(range(len(x)))
    if kind == "shuffle=False":
        loader = DataLoader(ds, batch_size=8, shuffle=False)
    elif kind == "list sampler":
        order = list(np.random.default_rng(0).permutation(len(x)))
        loader = DataLoader(ds, batch_size=8, sampler=order)
    elif kind == "DistributedSampler":  # one replica, no shuffle: the identity order
        loader = DataLoader(ds, batch_size=8,
                            sampler=DistributedSampler(ds, num_replicas=1, rank=0,
                                                       shuffle=False))
    elif kind == "batch_sampler list":
        order = list(range(len(x) - 1, -1, -1))
        loader = DataLoader(ds, batch_sampler=[order[:10], order[10:]])
    elif kind == "batch_size=None":  # no batching: each item is one (1, 5) batch
        loader = DataLoader(TensorDataset(x.reshape(len(x), 1, 5)), batch_size=None)
    else:
        class Stream(IterableDataset):  # the dataset defines the order
            def __iter__(self):
                return iter(x)

        loader = DataLoader(Stream(), batch_size=8)
    net = _mlp(0)
    ref = _by_hand(net, x[order])[3]
    got = extract_activations(net, loader, "3")["3"]
    np.testing.assert_allclose(got, ref.numpy(), rtol=0, atol=1e-6)


def test_check_order_false_accepts_a_custom_sampler(x):
    # expected: the net applied by hand to the rows in the sampler's (reversed) order
    net = _mlp(0)
    loader = DataLoader(_dataset(x), batch_size=8, sampler=_Reversed(len(x)))
    got = extract_activations(net, loader, "3", check_order=False)["3"]
    np.testing.assert_allclose(got, _by_hand(net, x.flip(0))[3].numpy(), rtol=0, atol=1e-6)
    with pytest.raises(TypeError, match="check_order must be True or False"):
        extract_activations(net, loader, "3", check_order="no")


def test_extract_pair_aligns_two_models_through_a_shuffled_loader(x):
    # Expected: each model's modules applied by hand to the inputs that model A's Identity
    # recorded; the loader is shuffled, so those rows are a permutation of x.
    a, b = _mlp(0), _mlp(1, width=4)
    loader = DataLoader(_dataset(x), batch_size=6, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    acts_a, acts_b = extract_pair(a, b, loader, ["0", "2"], ["0", nn.ReLU, "3"])
    assert list(acts_a) == ["0", "2"] and list(acts_b) == ["0", "2", "3"]
    seen = torch.from_numpy(acts_a["0"]).float()
    assert not torch.equal(seen, x)  # really shuffled
    np.testing.assert_array_equal(acts_b["0"], acts_a["0"])  # the same batches fed to both
    np.testing.assert_allclose(acts_a["2"], _by_hand(a, seen)[2].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(acts_b["2"], _by_hand(b, seen)[2].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(acts_b["3"], _by_hand(b, seen)[3].numpy(), rtol=0, atol=1e-6)
    # the set of stimuli is the data set's: sort both by the first input coordinate
    np.testing.assert_allclose(np.sort(acts_a["0"][:, 0]), np.sort(x[:, 0].numpy()), atol=1e-7)


@pytest.mark.parametrize("same_object", [True, False])
def test_the_same_model_twice_gives_cka_one(same_object, x):
    # The case, done right: CKA of a representation with itself is 1 (identity of the
    # definition); 0.017 before (two shuffled extractions).
    net = _mlp(0)
    other = net if same_object else _mlp(0)
    loader = DataLoader(_dataset(x), batch_size=5, shuffle=True,
                        generator=torch.Generator().manual_seed(1))
    acts_a, acts_b = extract_pair(net, other, loader, "2")  # modules_b defaults to modules_a
    np.testing.assert_array_equal(acts_a["2"], acts_b["2"])  # same code, same batches
    assert LinearCKA().fit_score(acts_a["2"], acts_b["2"]) == pytest.approx(1.0, abs=1e-12)
    assert all(not m._forward_hooks for m in net.modules())


def test_extract_pair_takes_tensors_arrays_and_batch_size(x):
    # expected: each model's extract_activations on the same tensor (same code, fixed order)
    a, b = _mlp(0), _mlp(2)
    acts_a, acts_b = extract_pair(a, b, x.numpy(), "3", "1", batch_size=4, dtype=np.float32)
    assert acts_a["3"].dtype == acts_b["1"].dtype == np.float32
    np.testing.assert_allclose(acts_a["3"], extract_activations(a, x, "3")["3"], atol=1e-6)
    np.testing.assert_allclose(acts_b["1"], extract_activations(b, x, "1")["1"], atol=1e-6)
    acts_a, acts_b = extract_pair(a, b, x, "2", capture="input")  # the ReLU's input
    np.testing.assert_allclose(acts_a["2"], _by_hand(a, x)[1].numpy(), atol=1e-6)
    np.testing.assert_allclose(acts_b["2"], _by_hand(b, x)[1].numpy(), atol=1e-6)


def test_extract_pair_restores_both_models_also_on_error(x):
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(5, 5), nn.Dropout(0.5)).train()

    class Boom(nn.Module):
        def forward(self, z):
            raise RuntimeError("boom")

    b = nn.Sequential(nn.Linear(5, 5), Boom()).train()
    with pytest.raises(RuntimeError, match="boom"):
        extract_pair(a, b, x, "0")
    for net in (a, b):
        assert net.training and all(not m._forward_hooks for m in net.modules())
    # dropout is off in evaluation mode: two runs agree
    first, _ = extract_pair(a, a, x, "1")
    again, _ = extract_pair(a, a, x, "1")
    np.testing.assert_array_equal(first["1"], again["1"])
    assert a.training


def test_extract_pair_bad_input_names_the_argument(x):
    a, b = _mlp(0), nn.Sequential(nn.Linear(5, 2))
    with pytest.raises(ValueError, match="modules_b: the model has no module named '3'"):
        extract_pair(a, b, x, "3")
    with pytest.raises(ValueError, match="modules_a: the model has no module named 'fc'"):
        extract_pair(a, b, x, "fc", "0")
    with pytest.raises(TypeError, match="model_b must be a torch.nn.Module"):
        extract_pair(a, "b", x, "3", "0")
    with pytest.raises(ValueError, match="modules_b: the module object Linear is not part"):
        extract_pair(a, b, x, a[1])
    with pytest.raises(ValueError, match="data is empty"):
        extract_pair(a, b, [], "3", "0")
    shared = nn.Linear(5, 5)
    twice = nn.Sequential(shared, shared)
    with pytest.raises(ValueError, match="model_b: module '0' ran 2 times"):
        extract_pair(a, twice, x, "3", "0")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        extract_pair(a, b, x, "3", "0", batch_size=0)


# ---------------------------------------------------------------------------------------------
# item 11: intervals valid for metrics biased by duplicated stimuli
# ---------------------------------------------------------------------------------------------


def _child_seeds(random_state, count):
    # the documented scheme: one child seed per resample, drawn up front from random_state
    return check_random_state(random_state).integers(0, 2**63 - 1, size=count, dtype=np.int64)


def _gaussian_pair(rng, n, s, sigma):
    """X ~ N(0, I_d), Y = X diag(s) + sigma E."""
    X = rng.normal(size=(n, len(s)))
    return X, X * s + sigma * rng.normal(size=X.shape)


def _population_cca(s, sigma):
    # Sxx = I, Syy = diag(s^2 + sigma^2), Sxy = diag(s): canonical correlations
    # s_i / sqrt(s_i^2 + sigma^2) (Hotelling 1936); the metric is their mean
    return float(np.mean(s / np.sqrt(s**2 + sigma**2)))


def _population_procrustes(s, sigma):
    # angular Procrustes on population moments: arccos(||Sxy||_* / sqrt(tr Sxx tr Syy))
    # (Williams et al. 2021), with ||diag(s)||_* = sum |s|
    d = len(s)
    return float(np.arccos(np.sum(np.abs(s)) / np.sqrt(d * (np.sum(s**2) + d * sigma**2))))


def test_subsample_distribution_is_the_metric_on_documented_subsamples(rng):
    # expected: the documented scheme recomputed here: subsample k = the first m entries of
    # default_rng(seed_k).permutation(n); interval theta - c (q_hi - theta), theta - c (q_lo -
    # theta) with c = sqrt(m / (n - m)) (Politis & Romano 1994 with the finite-population rate)
    X, Y = _gaussian_pair(rng, 50, np.linspace(0.3, 1.0, 4), 1.0)
    res = bootstrap_ci("procrustes", X, Y, n_bootstraps=40, confidence=0.8, random_state=5,
                       method="subsample", subsample_size=20)
    assert res.method == "subsample" and res.subsample_size == 20 and res.n_samples == 50
    theta = OrthogonalProcrustes().fit_score(X, Y)
    assert res.statistic == theta
    for value, seed in zip(res.bootstrap_distribution, _child_seeds(5, 40)):
        idx = np.random.default_rng(int(seed)).permutation(50)[:20]
        assert len(np.unique(idx)) == 20  # without replacement
        assert value == OrthogonalProcrustes().fit_score(X[idx], Y[idx])  # same code twice
    c = np.sqrt(20 / 30)
    q_lo, q_hi = np.quantile(res.bootstrap_distribution, [0.1, 0.9])
    # same arithmetic in another order: a few ulps
    assert res.low == pytest.approx(theta - c * (q_hi - theta), rel=1e-13)
    assert res.high == pytest.approx(theta - c * (q_lo - theta), rel=1e-13)
    assert res.standard_error == pytest.approx(c * np.std(res.bootstrap_distribution, ddof=1))
    # delete-d jackknife bias with d = n - m (Shao & Wu 1989): m / (n - m) (mean - theta)
    assert res.bias == pytest.approx(20 / 30 * (res.bootstrap_distribution.mean() - theta))
    # the default size is n // 2 (half-sampling, c = 1)
    half = bootstrap_ci("procrustes", X, Y, n_bootstraps=10, random_state=5)
    assert half.method == "subsample" and half.subsample_size == 25
    assert bootstrap_ci("procrustes", X, Y, n_bootstraps=10, random_state=5,
                        subsample_size=0.3).subsample_size == 15


def test_the_percentile_result_says_so(rng):
    X, Y = _gaussian_pair(rng, 60, np.ones(3), 1.0)
    res = bootstrap_ci("linear_cka", X, Y, n_bootstraps=20, random_state=0)
    assert res.method == "percentile" and res.subsample_size is None and res.n_samples == 60
    # Efron & Tibshirani's bootstrap bias estimate: mean of the resamples minus the estimate
    assert res.bias == pytest.approx(res.bootstrap_distribution.mean() - res.statistic)


class _Declares(Metric):
    """A metric that declares its interval method (the class attribute read by getattr)."""

    reference = "test"
    bootstrap_method = "subsample"

    def __init__(self, layout=None):
        self.layout = layout

    def _score(self, X, Y):
        return float(np.corrcoef(X[:, 0], Y[:, 0])[0, 1] ** 2)


@pytest.mark.parametrize("name", MATRIX_METRICS)
def test_default_method_follows_the_documented_rule(name, rng):
    # rule: "subsample" for alignment metrics and the CCA family, "percentile" otherwise,
    # unless the class declares bootstrap_method
    metric = simmetrics.get_metric(name)
    X = rng.normal(size=(30, 4))
    Y = X @ rng.normal(size=(4, 4)) + 0.5 * rng.normal(size=(30, 4))
    expected = ("subsample" if isinstance(metric, (AlignmentMetric, CCA, SVCCA, PWCCA))
                else "percentile")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntervalExcludesEstimateWarning)
        res = bootstrap_ci(metric, X, Y, n_bootstraps=5, random_state=0)
        assert res.method == expected
        assert np.isfinite([res.low, res.high]).all() and res.low <= res.high
        lo, hi = metric.bounds
        assert lo <= res.low and res.high <= hi  # clipped to the metric's range
        other = "percentile" if expected == "subsample" else "subsample"
        assert bootstrap_ci(metric, X, Y, n_bootstraps=5, random_state=0,
                            method=other).method == other
    assert bootstrap_ci(_Declares(), X, Y, n_bootstraps=5, random_state=0).method == "subsample"


@pytest.mark.parametrize("name, population", [
    ("procrustes", _population_procrustes),
    ("cca", _population_cca),
])
@pytest.mark.slow
def test_simulation_with_a_known_population_value(name, population):
    # Design: X ~ N(0, I_20), Y = X diag(s) + E, s = 0.2..1, n = 200: both estimators are biased
    # at this n by about three standard errors (Procrustes -0.046, CCA +0.031 on average over
    # these seeds), population values in closed form (above). The percentile bootstrap moves
    # *further* from the population value (its resamples carry the same bias once more), so
    # it excludes the estimate and the population value; half-sampling reflects the shift
    # (theta - (quantiles - theta)), which removes a 1/n bias, and covers the population value.
    # The bias exceeds the standard error, so the valid interval excludes the estimate too, on
    # the population's side. Nominal 95%; measured on these 20 seeds: percentile covers 0/20
    # and excludes the estimate 20/20 for both; subsampling covers 19/20 (Procrustes) and
    # 18/20 (CCA).
    s, sigma = np.linspace(0.2, 1.0, 20), 1.0
    target = population(s, sigma)
    covered = {"percentile": 0, "subsample": 0}
    excluded_estimate = 0
    for seed in range(20):
        X, Y = _gaussian_pair(np.random.default_rng(seed), 200, s, sigma)
        for method in covered:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                res = bootstrap_ci(name, X, Y, n_bootstraps=100, random_state=seed,
                                   method=method)
            covered[method] += res.low <= target <= res.high
            outside = not res.low <= res.statistic <= res.high
            # the warning fires exactly when the estimate is outside
            assert outside == any(issubclass(w.category, IntervalExcludesEstimateWarning)
                                  for w in caught)
            centre_side = np.sign((res.low + res.high) / 2 - res.statistic)
            if method == "percentile":
                excluded_estimate += outside
                # on the far side of the estimate from the population value
                assert centre_side == np.sign(res.statistic - target)
            elif outside:
                assert centre_side == np.sign(target - res.statistic)
    assert excluded_estimate >= 16
    assert covered["percentile"] <= 2
    assert covered["subsample"] >= 15


@pytest.mark.slow
def test_debiased_cka_interval_from_distinct_stimuli_holds_the_estimate():
    # Debiased CKA is unbiased for distinct stimuli (Song et al. 2012's U-statistic), but a
    # resample with repeated rows counts the copies as independent pairs: for independent
    # X, Y (population value 0) the percentile interval sits above the estimate and misses 0;
    # subsamples hold distinct stimuli only, so their interval holds both. Measured on these
    # 10 seeds: percentile excludes the estimate 10/10, subsampling 0/10 and covers 0 10/10.
    metric = LinearCKA(debiased=True)
    excluded = {"percentile": 0, "subsample": 0}
    covers_zero = 0
    for seed in range(10):
        X, Y = np.random.default_rng(seed).normal(size=(2, 40, 30))
        for method in excluded:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", IntervalExcludesEstimateWarning)
                res = bootstrap_ci(metric, X, Y, n_bootstraps=100, random_state=seed,
                                   method=method)
            excluded[method] += not res.low <= res.statistic <= res.high
            covers_zero += method == "subsample" and res.low <= 0.0 <= res.high
    assert excluded["percentile"] >= 8
    assert excluded["subsample"] <= 2 and covers_zero >= 8


def test_warning_when_the_estimate_is_outside(rng):
    # Biased CKA of wide independent data: duplicated rows inflate it (the documented caveat),
    # so the percentile interval lies above the estimate.
    X, Y = rng.normal(size=(40, 30)), rng.normal(size=(40, 30))
    with pytest.warns(IntervalExcludesEstimateWarning,
                      match=r"percentile bootstrap interval .* excludes the estimate .*"
                            r"method='subsample'") as caught:
        res = bootstrap_ci("linear_cka", X, Y, n_bootstraps=50, random_state=0)
    assert res.low > res.statistic
    assert issubclass(caught[0].category, UserWarning)
    assert not issubclass(IntervalExcludesEstimateWarning, RuntimeWarning)
    # no warning when the estimate is inside; exact values (X vs X: every resample gives 1 up
    # to rounding) count as inside
    with warnings.catch_warnings():
        warnings.simplefilter("error", IntervalExcludesEstimateWarning)
        bootstrap_ci("linear_cka", X, X, n_bootstraps=20, random_state=0)
        bootstrap_ci("procrustes", X, X, n_bootstraps=20, random_state=0)
        big = rng.normal(size=(400, 3))
        res = bootstrap_ci("procrustes", big, big @ np.diag([1.0, 2.0, 3.0])
                           + rng.normal(size=(400, 3)), n_bootstraps=100, random_state=0)
        assert res.low < res.statistic < res.high


def test_subsample_warning_explains_the_bias(rng):
    # The CCA design above at n = 60: the estimate is biased by several standard errors and
    # the bias-corrected interval excludes it; the warning says so and gives the bias.
    s = np.linspace(0.2, 1.0, 10)
    X, Y = _gaussian_pair(np.random.default_rng(0), 60, s, 1.0)
    with pytest.warns(IntervalExcludesEstimateWarning,
                      match=r"subsampling interval .* excludes the estimate .* bias") as caught:
        res = bootstrap_ci("cca", X, Y, n_bootstraps=100, random_state=0)
    assert res.high < res.statistic and res.bias > 0
    assert f"{res.bias:+.3g}" in str(caught[0].message)


def test_bad_arguments_of_the_interval_methods(rng):
    X, Y = _gaussian_pair(rng, 30, np.ones(3), 1.0)
    with pytest.raises(ValueError, match=r"method must be one of \('auto', 'percentile', "
                                         r"'subsample'\), got 'bca'"):
        bootstrap_ci("procrustes", X, Y, method="bca")
    for bad in (1, 30, 31, 0.0, 1.0, -0.5, True, "10", 2.5):
        with pytest.raises(ValueError, match="subsample_size must be"):
            bootstrap_ci("procrustes", X, Y, n_bootstraps=3, subsample_size=bad)
    with pytest.raises(ValueError, match="subsample_size is used only by method='subsample'"):
        bootstrap_ci("linear_cka", X, Y, n_bootstraps=3, subsample_size=10)
    with pytest.raises(ValueError, match="subsample_size is used only by method='subsample'"):
        bootstrap_ci("procrustes", X, Y, n_bootstraps=3, method="percentile",
                     subsample_size=10)
    # fewer stimuli per subsample than the metric needs: named before any work
    with pytest.raises(ValueError, match=r"subsample_size=2.*RSA needs at least 3"):
        bootstrap_ci("rsa", X, Y, n_bootstraps=3, method="subsample", subsample_size=2)

    class Bad(_Declares):
        bootstrap_method = "jackknife"

    with pytest.raises(ValueError, match="Bad.bootstrap_method must be 'percentile' or"):
        bootstrap_ci(Bad(), X, Y, n_bootstraps=3)
