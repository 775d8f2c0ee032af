"""The contract every registered metric keeps: scikit-learn estimator behaviour, numpy/torch
equivalence, float32 accumulation, layouts, no mutation of inputs, declared attributes."""

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError

import simmetrics
from simmetrics.base import GROUP_NAMES, KINDS, AlignmentMetric

NAMES = simmetrics.available_metrics()


def _data(metric, rng, n=60, dx=6, dy=5):
    dy = dx if metric.same_width else dy
    X = np.abs(rng.normal(size=(n, dx))) + 0.1 * rng.normal(size=(n, dx))
    Y = X[:, :dy] @ rng.normal(size=(dy, dy)) + 0.5 * rng.normal(size=(n, dy))
    return X, Y


def test_every_family_of_the_spec_is_registered():
    expected = {
        "linear_cka", "kernel_cka", "cca", "svcca", "pwcca", "shape_metric", "procrustes",
        "permutation_metric", "soft_matching", "rsa", "mutual_knn",
    }
    assert expected <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_declared_attributes(name):
    metric = simmetrics.get_metric(name)
    assert isinstance(metric, BaseEstimator)
    assert metric.kind in KINDS
    lo, hi = metric.bounds
    assert lo < hi
    assert isinstance(metric.is_metric, bool)
    assert isinstance(metric.invariances, frozenset)
    assert metric.invariances <= set(GROUP_NAMES)
    assert metric.reference, f"{name} must cite its source"
    assert type(metric).__doc__ and "Examples" in type(metric).__doc__


@pytest.mark.parametrize("name", NAMES)
def test_sklearn_estimator_behaviour(name, rng):
    metric = simmetrics.get_metric(name)
    X, Y = _data(metric, rng)
    twin = clone(metric)
    assert twin.get_params() == metric.get_params()
    assert metric.fit(X, Y) is metric
    value = metric.score(X, Y)
    assert type(value) is float
    lo, hi = metric.bounds
    assert lo - 1e-12 <= value <= hi + 1e-12
    assert twin.fit_score(X, Y) == pytest.approx(value, abs=1e-12)
    # fitted attributes end in "_" and clone drops them
    assert not any(k.endswith("_") for k in vars(clone(metric)))


@pytest.mark.parametrize("name", NAMES)
def test_numpy_and_torch_inputs_agree(name, rng):
    metric = simmetrics.get_metric(name)
    X, Y = _data(metric, rng)
    from_numpy = clone(metric).fit_score(X, Y)
    from_torch = clone(metric).fit_score(torch.from_numpy(X), torch.from_numpy(Y))
    assert from_torch == pytest.approx(from_numpy, abs=1e-10)
    grad = torch.from_numpy(X).requires_grad_(True)
    assert clone(metric).fit_score(grad, Y) == pytest.approx(from_numpy, abs=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_float32_input_is_accumulated_in_float64(name, rng):
    metric = simmetrics.get_metric(name)
    X, Y = _data(metric, rng)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    # the float64 value of the float32-rounded data: only rounding of the input may differ
    exact = clone(metric).fit_score(X32.astype(np.float64), Y32.astype(np.float64))
    # same code, same input: validation casts to exactly this float64 array, so bit-identical
    assert clone(metric).fit_score(X32, Y32) == exact


@pytest.mark.parametrize("name", NAMES)
def test_inputs_are_not_modified(name, rng):
    metric = simmetrics.get_metric(name)
    X, Y = _data(metric, rng)
    X0, Y0 = X.copy(), Y.copy()
    X.setflags(write=False)
    Y.setflags(write=False)
    metric.fit_score(X, Y)
    if isinstance(metric, AlignmentMetric):
        metric.transform(X, Y)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(Y, Y0)


@pytest.mark.parametrize("name", NAMES)
def test_conv_layout_reads_channels_as_neurons(name, rng):
    metric = simmetrics.get_metric(name)
    n, c, h, w = 8, 4, 3, 3
    A = rng.normal(size=(n, c, h, w))
    B = A + 0.3 * rng.normal(size=(n, c, h, w))
    flat_a = np.moveaxis(A, 1, -1).reshape(-1, c)
    flat_b = np.moveaxis(B, 1, -1).reshape(-1, c)
    as_matrix = clone(metric).fit_score(flat_a, flat_b)
    with_layout = clone(metric).set_params(layout="nchw").fit_score(A, B)
    assert with_layout == pytest.approx(as_matrix, abs=1e-12)
    with pytest.raises(ValueError, match="X must be 2-D .* layout="):
        clone(metric).fit_score(A, B)


@pytest.mark.parametrize("name", NAMES)
def test_mismatched_samples_are_an_error(name, rng):
    metric = simmetrics.get_metric(name)
    X, Y = _data(metric, rng)
    with pytest.raises(ValueError, match="X and Y must have the same number of samples"):
        metric.fit_score(X, Y[:-1])


@pytest.mark.parametrize("name", NAMES)
def test_nan_is_an_error_never_a_result(name, rng):
    metric = simmetrics.get_metric(name)
    X, Y = _data(metric, rng)
    Y[3, 1] = np.nan
    with pytest.raises(ValueError, match="Y contains 1 NaN"):
        metric.fit_score(X, Y)


ALIGNING = [n for n in NAMES if issubclass(simmetrics.metric_class(n), AlignmentMetric)]


@pytest.mark.parametrize("name", ALIGNING)
def test_alignment_metrics_need_fit_and_score_held_out_data(name, rng):
    metric = simmetrics.get_metric(name)
    X, Y = _data(metric, rng, n=120)
    with pytest.raises(NotFittedError):
        metric.score(X, Y)
    metric.fit(X[:80], Y[:80])
    held_out = metric.score(X[80:], Y[80:])
    assert isinstance(held_out, float)
    with pytest.raises(ValueError, match="fitted with"):
        metric.score(X[80:, :-1], Y[80:])


def test_every_public_class_and_function_has_an_example():
    # Issue 6: every public name carries a numpydoc example; the doctests run with the suite.
    import inspect

    missing = [
        name
        for name in simmetrics.__all__
        if (inspect.isclass(getattr(simmetrics, name)) or inspect.isfunction(getattr(simmetrics, name)))
        and ">>>" not in (getattr(simmetrics, name).__doc__ or "")
    ]
    assert not missing
