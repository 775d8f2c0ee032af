"""The contract every registered metric keeps: scikit-learn estimator behaviour, numpy/torch
equivalence, float32 accumulation, layouts, no mutation of inputs, declared attributes; and
what a new metric gets from its declarations and one method (``_score``): fit, score,
fit_score, pairwise, the invariance table, the generic invalid-parameter checks, and with
``_score_from_moments`` streaming (the RV coefficient, defined at the end of this file)."""

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError

import simmetrics
from simmetrics._core.params import Boolean, constraints_of, invalid_values
from simmetrics.base import GROUP_NAMES, KINDS, AlignmentMetric, Metric

import test_params as params_suite  # the generic invalid-parameter checks, called below

from metric_configs import MATRIX_METRICS  # noqa: E402  (3-D input metrics: their own suite)

NAMES = MATRIX_METRICS


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


# -- a new metric gets the contract from its declarations and one method ---------------------------
# The RV coefficient (Robert and Escoufier 1976) of the centred representations,
#     RV(X, Y) = tr(Kx Ky) / sqrt(tr(Kx^2) tr(Ky^2)),   Kx = Xc Xc', Ky = Yc Yc'
# (n x n Gram matrices), written here from its definition and nowhere in the package. It is
# biased linear CKA (Kornblith et al., ICML 2019, note that linear CKA is the RV
# coefficient), so simmetrics.LinearCKA is an independent implementation of the same number
# (its formula is the feature-space form ||Xc'Yc||_F^2 / (||Xc'Xc||_F ||Yc'Yc||_F), computed
# from second moments); so is that form, written out below (trace cyclicity: tr(Kx Ky) =
# ||Xc'Yc||_F^2).


class RVCoefficient(Metric):
    """The RV coefficient of the centred representations (or its square root, ``root=True``).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(20, 3))
    >>> round(RVCoefficient().fit_score(X, 2 * X + 1), 12)
    1.0
    """

    kind = "similarity"
    bounds = (0.0, 1.0)
    is_metric = False
    symmetric = True
    invariances = frozenset({"permutation", "signed_permutation", "orthogonal",
                             "isotropic_scaling", "translation"})
    reference = ("Robert and Escoufier, A unifying tool for linear multivariate statistical "
                 "methods: the RV-coefficient, Applied Statistics 25(3), 1976")
    _parameter_constraints = {"root": [Boolean()]}

    def __init__(self, root=False, layout=None):
        self.root = root
        self.layout = layout

    def _score(self, X, Y):
        Xc, Yc = X - X.mean(axis=0), Y - Y.mean(axis=0)
        K, L = Xc @ Xc.T, Yc @ Yc.T
        rv = np.vdot(K, L) / np.sqrt(np.vdot(K, K) * np.vdot(L, L))
        return np.sqrt(rv) if self.root else rv


class StreamingRVCoefficient(RVCoefficient):
    """The same metric with the one method streaming needs: its value from second moments,
    ``||Sxy||_F^2 / (||Sxx||_F ||Syy||_F)`` with Sxy = Xc'Yc (trace cyclicity: tr(Kx Ky) =
    ||Xc'Yc||_F^2). Scale-invariant, so the statistics' power-of-two level does not matter."""

    def _score_from_moments(self, stats):
        c = stats.to_numpy().centred()
        rv = np.vdot(c.cross, c.cross) / np.sqrt(np.vdot(c.x.gram, c.x.gram)
                                                 * np.vdot(c.y.gram, c.y.gram))
        return np.sqrt(rv) if self.root else rv


def _rv_data(seed=0, n=50):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)) @ rng.normal(size=(6, 6)) + 2.0
    Y = np.tanh(X[:, :4] @ rng.normal(size=(4, 4))) + 0.3 * rng.normal(size=(n, 4))
    Z = rng.normal(size=(n, 5))
    return X, Y, Z


def _feature_space_rv(X, Y):
    """The closed form in feature space (the expected value, from the definition)."""
    Xc, Yc = X - X.mean(axis=0), Y - Y.mean(axis=0)
    return np.linalg.norm(Xc.T @ Yc) ** 2 / (np.linalg.norm(Xc.T @ Xc)
                                             * np.linalg.norm(Yc.T @ Yc))


NEW_METRICS = [RVCoefficient(), RVCoefficient(root=True)]


@pytest.mark.parametrize("metric", NEW_METRICS, ids=repr)
def test_a_new_metric_gets_fit_score_and_fit_score(metric, nx):
    X, Y, _ = _rv_data()
    expected = _feature_space_rv(X, Y)
    expected = np.sqrt(expected) if metric.root else expected
    as_cka = simmetrics.LinearCKA().fit_score(X, Y)  # biased linear CKA = RV
    assert as_cka == pytest.approx(_feature_space_rv(X, Y), rel=1e-12)
    tX, tY = nx.from_numpy(X), nx.from_numpy(Y)
    assert metric.fit(tX, tY) is metric and metric.n_features_x_ == 6
    value = metric.score(tX, tY)
    assert type(value) is float and value == pytest.approx(expected, rel=1e-12)
    assert clone(metric).fit_score(tX, tY) == pytest.approx(value, rel=1e-14)
    assert clone(metric).fit_score(tY, tX) == pytest.approx(value, rel=1e-12)  # symmetric
    assert clone(metric).fit_score(tX, tX) == pytest.approx(1.0, abs=1e-12)
    # and the base class's validation: a NaN is an error, widths may differ, layouts work
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="X contains 1 NaN"):
        clone(metric).fit_score(nx.from_numpy(bad), tY)
    A = np.random.default_rng(1).normal(size=(8, 4, 3, 3))
    flat = np.moveaxis(A, 1, -1).reshape(-1, 4)
    assert clone(metric).set_params(layout="nchw").fit_score(A, A[:, :3] ** 2) == pytest.approx(
        clone(metric).fit_score(flat, np.moveaxis(A[:, :3] ** 2, 1, -1).reshape(-1, 3)),
        rel=1e-12)


def test_a_new_metric_gets_pairwise(nx):
    X, Y, Z = _rv_data()
    reps = [nx.from_numpy(A) for A in (X, Y, Z)]
    matrix = np.asarray(simmetrics.pairwise(RVCoefficient(), reps), dtype=float)
    expected = np.array([[_feature_space_rv(A, B) for B in (X, Y, Z)] for A in (X, Y, Z)])
    np.testing.assert_allclose(matrix, expected, rtol=1e-12, atol=0)
    named = simmetrics.pairwise(RVCoefficient(root=True), {"x": X, "y": Y}, {"z": Z})
    assert named.shape == (2, 1) and list(named.row_labels) == ["x", "y"]
    assert float(named[1, 0]) == pytest.approx(np.sqrt(_feature_space_rv(Y, Z)), rel=1e-12)


def test_a_new_metric_gets_the_invariance_table():
    # measured against every group: the declared groups hold, the others do not
    table = simmetrics.invariance_table([RVCoefficient()])
    assert len(table.rows) == len(GROUP_NAMES)
    assert not table.disagreements(), table
    assert {r.group for r in table.rows if r.measured} == RVCoefficient.invariances
    X, Y, _ = _rv_data()
    for group in sorted(RVCoefficient.invariances):
        assert simmetrics.check_invariance(RVCoefficient(root=True), group, X, Y,
                                           random_state=0).invariant, group


def test_a_new_metric_gets_the_generic_invalid_parameter_checks():
    metric = RVCoefficient()
    params_suite.test_every_constructor_parameter_is_declared(metric)
    params_suite.test_the_defaults_and_the_configured_values_are_valid(metric)
    constraints = constraints_of(type(metric))
    cases = [(name, value) for name in metric.get_params()
             for value in invalid_values(constraints[name])]
    assert {name for name, _ in cases} == {"root", "layout"}  # layout: declared on Metric
    for name, value in cases:
        for entry in ("fit_score", "fit", "pairwise"):
            params_suite.test_invalid_values_are_refused_naming_the_parameter(
                metric, name, value, entry)
    with pytest.raises(TypeError, match="parameter 'root' must be a bool"):
        RVCoefficient(root="False").fit_score(*_rv_data()[:2])


def test_streaming_needs_one_method_more(nx):
    X, Y, _ = _rv_data(seed=3, n=203)
    cuts = [0, 7, 8, 90, 150, 203]

    def batches():
        return ((nx.from_numpy(X[a:b]), nx.from_numpy(Y[a:b])) for a, b in zip(cuts, cuts[1:]))

    with pytest.raises(TypeError, match="cannot be computed from batches"):
        simmetrics.stream_score(RVCoefficient(), batches())
    for metric in (StreamingRVCoefficient(), StreamingRVCoefficient(root=True)):
        whole = clone(metric).fit_score(X, Y)
        assert simmetrics.stream_score(clone(metric), batches()) == pytest.approx(whole,
                                                                                 rel=1e-12)
        stats = simmetrics.stream_moments(batches())
        assert simmetrics.score_from_moments(clone(metric), stats) == pytest.approx(whole,
                                                                                   rel=1e-12)
    # and the value is biased linear CKA's, streamed by the package's own implementation
    assert simmetrics.stream_score(StreamingRVCoefficient(), batches()) == pytest.approx(
        simmetrics.stream_score(simmetrics.LinearCKA(), batches()), rel=1e-12)
