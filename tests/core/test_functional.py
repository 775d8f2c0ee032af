"""simmetrics.functional for every configured metric (tests/metric_configs.py): the same numbers
as the classes on numpy and on torch CPU tensors; gradients checked against finite differences
of those numbers (``torch.autograd.gradcheck``: the expected value is the central difference of
the class's own fit_score, an independent route from the autograd of the gradient formula);
the gradient formula's value equal to the class's value; a clear error where there is no
gradient."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

import simmetrics
from metric_configs import CONFIGS, IDS, STOCHASTIC_INPUT
from simmetrics import functional
from simmetrics._core.backend import NUMPY

DIFFERENTIABLE = [m for m in CONFIGS if functional.is_differentiable(m)]
NOT_DIFFERENTIABLE = [m for m in CONFIGS if not functional.is_differentiable(m)]


def _pair(metric, n=16, seed=0):
    """Small correlated data in the metric's domain: Y a noisy non-linear read-out of X's
    latent; distinct singular values and no ties (the gradient is defined)."""
    rng = np.random.default_rng(seed)
    dx = 4
    dy = dx if metric.same_width else 3
    n = max(n, metric.min_samples, dx + 4)
    Z = rng.normal(size=(n, dx))
    X = Z @ rng.normal(size=(dx, dx)) + 0.3 * rng.normal(size=(n, dx))
    Y = np.tanh(Z[:, :dy] @ rng.normal(size=(dy, dy))) + 0.4 * rng.normal(size=(n, dy))
    return X, Y


@pytest.mark.parametrize("metric", CONFIGS, ids=IDS)
def test_functional_value_is_the_classes_on_numpy_and_torch(metric):
    X, Y = _pair(metric)
    expected = clone(metric).fit_score(X, Y)
    value = functional.evaluate(clone(metric), X, Y)
    assert isinstance(value, float)
    assert abs(value - expected) <= 1e-12 * max(1.0, abs(expected))
    tensor = functional.evaluate(clone(metric), torch.tensor(X), torch.tensor(Y))
    assert isinstance(tensor, torch.Tensor) and tensor.ndim == 0
    assert tensor.dtype == torch.float64 and tensor.device.type == "cpu"
    assert abs(float(tensor) - expected) <= 1e-12 * max(1.0, abs(expected))


@pytest.mark.parametrize("metric", DIFFERENTIABLE, ids=[repr(m) for m in DIFFERENTIABLE])
def test_gradient_formula_gives_the_classes_value(metric):
    """The formula autograd differentiates is the same function as the value (else the gradient
    would be another metric's): numpy evaluates it, to compare with fit_score."""
    for seed in (0, 1):
        X, Y = _pair(metric, seed=seed)
        fitted = clone(metric)
        expected = fitted.fit_score(X, Y)
        rows = fitted._gradient_rows(X, Y, NUMPY)
        value = float(fitted._gradient_formula(*rows, NUMPY))
        assert abs(value - expected) <= 1e-9 * max(1.0, abs(expected)), (metric, value, expected)


@pytest.mark.parametrize("metric", DIFFERENTIABLE, ids=[repr(m) for m in DIFFERENTIABLE])
def test_gradcheck_against_finite_differences_of_the_value(metric):
    X, Y = _pair(metric)
    inputs = (torch.tensor(X, requires_grad=True), torch.tensor(Y, requires_grad=True))

    def value(A, B):
        return functional.evaluate(clone(metric), A, B)

    assert torch.autograd.gradcheck(value, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("metric", DIFFERENTIABLE, ids=[repr(m) for m in DIFFERENTIABLE])
def test_float32_inputs_get_float32_gradients_computed_in_float64(metric):
    X, Y = _pair(metric)
    A = torch.tensor(X, dtype=torch.float32, requires_grad=True)
    value = functional.evaluate(clone(metric), A, torch.tensor(Y, dtype=torch.float32))
    value.backward()
    assert value.dtype == torch.float64 and A.grad.dtype == torch.float32
    B = torch.tensor(A.detach().numpy().astype(np.float64), requires_grad=True)
    functional.evaluate(clone(metric), B, torch.tensor(Y, dtype=torch.float32)).backward()
    # the float32 gradient is the float64 one (of the float32 data) rounded once
    assert torch.allclose(A.grad.double(), B.grad, rtol=1e-6, atol=1e-6 * float(B.grad.abs().max()))


@pytest.mark.parametrize("metric", NOT_DIFFERENTIABLE, ids=[repr(m) for m in NOT_DIFFERENTIABLE])
def test_no_gradient_is_a_clear_error_and_no_grad_still_gives_the_value(metric):
    X, Y = _pair(metric)
    A = torch.tensor(X, requires_grad=True)
    with pytest.raises(functional.NonDifferentiableError, match=type(metric).__name__):
        functional.evaluate(clone(metric), A, torch.tensor(Y))
    with torch.no_grad():
        value = functional.evaluate(clone(metric), A, torch.tensor(Y))
    assert abs(float(value) - clone(metric).fit_score(X, Y)) <= 1e-12 * max(1.0, abs(float(value)))


def test_every_registered_name_is_a_function_with_the_classes_parameters():
    X, Y = _pair(simmetrics.LinearCKA())
    for name in simmetrics.available_metrics():
        assert callable(getattr(functional, name)), name
    assert functional.linear_cka(X, Y, debiased=True) == \
        simmetrics.LinearCKA(debiased=True).fit_score(X, Y)
    with pytest.raises(ValueError, match="estimator"):
        functional.linear_cka(X, Y, estimator="nope")
    with pytest.raises(TypeError, match="params"):
        functional.evaluate(simmetrics.LinearCKA(), X, Y, debiased=True)


def test_a_numpy_input_beside_a_tensor_gets_no_gradient_but_the_tensor_does():
    X, Y = _pair(simmetrics.LinearCKA())
    B = torch.tensor(Y, requires_grad=True)
    value = functional.linear_cka(X, B)
    value.backward()
    assert B.grad.shape == Y.shape and float(B.grad.abs().sum()) > 0.0


def test_layouts_pass_their_gradient_back_to_the_input_shape():
    rng = np.random.default_rng(3)
    X = torch.tensor(rng.normal(size=(6, 3, 2, 2)), requires_grad=True)  # nchw: 24 rows
    Y = torch.tensor(rng.normal(size=(6, 5, 2, 2)))
    value = functional.linear_cka(X, Y, layout="nchw")
    value.backward()
    assert X.grad.shape == X.shape
    flat = X.detach().permute(0, 2, 3, 1).reshape(24, 3).clone().requires_grad_(True)
    functional.linear_cka(flat, Y.permute(0, 2, 3, 1).reshape(24, 5)).backward()
    expected = flat.grad.reshape(6, 2, 2, 3).permute(0, 3, 1, 2)
    assert torch.allclose(X.grad, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", STOCHASTIC_INPUT)
def test_repeated_trial_metrics_are_functions_with_gradients(name):
    # outside CONFIGS (their inputs are 3-D); their gradcheck and formula checks are in
    # tests/metrics/test_stochastic_shape_gradient.py
    rng = np.random.default_rng(4)
    X = rng.normal(size=(10, 4, 3)) + 2.0 * rng.normal(size=(10, 1, 3))
    Y = X + 0.8 * rng.normal(size=(10, 4, 3)) + 1.5
    A = torch.tensor(X, requires_grad=True)
    value = getattr(functional, name)(A, torch.tensor(Y))
    expected = simmetrics.get_metric(name).fit_score(X, Y)
    assert abs(float(value.detach()) - expected) <= 1e-12 * max(1.0, expected)
    value.backward()
    assert A.grad.shape == X.shape and torch.isfinite(A.grad).all()
