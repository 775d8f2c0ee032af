"""LinearPredictivity: Brain-Score's cross-regressed correlation, split by split.

Reference values: tests/data/reference/seed11 (README.md, section Brain-Score): brainscore_vision
2.4.2 (regression_correlation files identical to brain-score/vision commit c642dbe4), with
scikit-learn 1.5.2 and numpy 1.26.4, run on X and the other matrix of each pair over the saved
ShuffleSplit(10, train_size=0.9, random_state=1) indices. Live checks against scikit-learn's
estimators (the ones Brain-Score wraps) are independent of our numpy regressions.
"""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.cross_decomposition import PLSRegression
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.model_selection import ShuffleSplit, cross_val_score

import simmetrics
from simmetrics import LinearPredictivity
from simmetrics.metrics.predictivity import ConstantColumnsWarning
from simmetrics.metrics.regression import BRAINSCORE_ALPHAS
from simmetrics.moments import moments
from simmetrics.streaming import score_from_moments

from conftest import REFERENCE

SEED11 = REFERENCE / "seed11"
PAIRS = ["Y", "Z", "Xpd", "Xq"]
# key stem -> (parameters, tolerance the issue gives)
REGRESSIONS = {
    "pls25": (dict(regression="pls", n_components=25), 1e-6),
    "ridge1": (dict(regression="ridge", alpha=1.0), 1e-8),
    "ridgecv": (dict(regression="ridgecv"), 1e-6),
    "linreg": (dict(regression="linear"), 1e-8),
    "neuron_to_neuron": (dict(regression="neuron_to_neuron"), 1e-8),
}


@pytest.fixture(scope="module")
def splits():
    train = np.load(SEED11 / "brainscore_split_train_idx.npy")
    test = np.load(SEED11 / "brainscore_split_test_idx.npy")
    return list(zip(train, test))


def _cv(metric, X, Y, cv):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantColumnsWarning)  # X -> Y split 7: one column
        return cross_val_score(metric, X, Y, cv=cv, error_score="raise")


def test_saved_splits_are_scikit_learns_shuffle_split(seed11, splits):
    ours = ShuffleSplit(10, train_size=0.9, random_state=1).split(seed11["X"])
    for (a, b), (c, d) in zip(ours, splits):
        assert np.array_equal(a, c) and np.array_equal(b, d)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("stem", list(REGRESSIONS))
@pytest.mark.parametrize("other", PAIRS)
def test_cross_validation_reproduces_brainscore_per_split(seed11, splits, other, stem, reverse):
    params, tol = REGRESSIONS[stem]
    values = seed11["values"][f"X_{other}"]
    key = f"brainscore_{'reverse_' if reverse else ''}{stem}_pearson_median"
    metric = LinearPredictivity(reverse=reverse, **params)
    reference = values[f"{key}_10split_mean"]
    if isinstance(reference, str):  # Brain-Score raised: reverse PLS with 25 components on Z
        assert reference.startswith("error:") and "n_components" in reference
        with pytest.raises(ValueError, match="n_components=25"):
            _cv(metric, seed11["X"], seed11[other], splits)
        return
    scores = _cv(metric, seed11["X"], seed11[other], splits)
    assert np.max(np.abs(scores - np.array(values[f"{key}_per_split"]))) <= tol
    assert abs(scores[0] - values[f"{key}_split0"]) <= tol
    assert abs(scores.mean() - reference) <= tol


@pytest.mark.parametrize("stem, regression", [("pls25", "pls"), ("ridge1", "ridge")])
def test_per_split_per_neuron_r_equal_brainscores(seed11, splits, stem, regression):
    reference = np.load(SEED11 / f"brainscore_{stem}_X_Y_pearson_split_by_neuroid.npy")
    X, Y = seed11["X"], seed11["Y"]
    ours = []
    for train, test in splits:
        metric = LinearPredictivity(regression=regression).fit(X[train], Y[train])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConstantColumnsWarning)
            ours.append(metric.per_column_r(X[test], Y[test]))
    ours = np.array(ours)
    assert np.array_equal(np.isnan(ours), np.isnan(reference))
    assert np.nanmax(np.abs(ours - reference)) <= (1e-6 if regression == "pls" else 1e-8)
    # the saved NaN columns per split (README: [0, 0, 0, 0, 0, 0, 0, 1, 0, 0])
    assert np.isnan(reference).sum(axis=1).tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 0, 0]


def test_skipped_constant_columns_are_counted_and_announced(seed11, splits):
    X, Y = seed11["X"], seed11["Y"]
    train, test = splits[7]  # one column of Y is constant on this test split
    metric = LinearPredictivity(regression="ridge").fit(X[train], Y[train])
    with pytest.warns(ConstantColumnsWarning, match="1 of 40"):
        value = metric.score(X[test], Y[test])
    assert metric.n_skipped_ == 1
    assert np.isfinite(value)
    assert value == pytest.approx(seed11["values"]["X_Y"][
        "brainscore_ridge1_pearson_median_per_split"][7], abs=1e-8)
    with pytest.raises(ValueError, match="every target column"):
        metric.score(X[test], np.ones_like(Y[test]))


def _live_prediction(estimator, X, Y, train, test):
    return estimator.fit(X[train], Y[train]).predict(X[test])


def _median_r(P, T):
    # Brain-Score's pearsonr per column, written with numpy's corrcoef (a second route)
    r = [np.corrcoef(P[:, j], T[:, j])[0, 1] for j in range(T.shape[1]) if np.ptp(T[:, j]) > 0]
    return float(np.median(r))


@pytest.mark.parametrize("params, estimator, tol", [
    (dict(regression="pls", n_components=10), PLSRegression(n_components=10, scale=False), 1e-9),
    (dict(regression="ridge", alpha=3.0), Ridge(alpha=3.0), 1e-10),
    (dict(regression="ridgecv"), RidgeCV(alphas=BRAINSCORE_ALPHAS), 1e-9),
], ids=["pls", "ridge", "ridgecv"])
def test_regressions_equal_scikit_learns_live(seed11, splits, params, estimator, tol):
    X, Y = seed11["X"], seed11["Z"]
    for train, test in splits[:3]:
        expected = _median_r(_live_prediction(clone(estimator), X, Y, train, test), Y[test])
        metric = LinearPredictivity(**params).fit(X[train], Y[train])
        assert metric.score(X[test], Y[test]) == pytest.approx(expected, abs=tol)
        if params["regression"] == "ridgecv":
            assert metric.alpha_ == clone(estimator).fit(X[train], Y[train]).alpha_


def test_identical_and_relabelled_inputs_are_predicted_perfectly(seed11):
    X, perm, scales = seed11["X"], seed11["perm"], seed11["scales"]
    Xpd = X[:, perm] * scales  # a positive scaled permutation of X's neurons
    for regression in ("linear", "neuron_to_neuron"):
        metric = LinearPredictivity(regression=regression).fit(X[:200], Xpd[:200])
        assert metric.score(X[200:], Xpd[200:]) == pytest.approx(1.0, abs=1e-12)
    mapping = LinearPredictivity(regression="neuron_to_neuron").fit(X, Xpd).mapping_
    assert np.array_equal(mapping, perm)


def test_invariances_of_the_regressions_outside_the_generic_suites():
    # ridge, RidgeCV and PLS are not in the generic suites (their m(X, X) < 1): their
    # declarations are measured here on the invariance table's data
    X, Y = simmetrics.invariance.invariance_data()
    for metric in (LinearPredictivity(regression="ridge"),
                   LinearPredictivity(regression="ridgecv", alphas=[10.0, 100.0, 1000.0]),
                   LinearPredictivity(regression="pls", n_components=3, tol=0.0),
                   LinearPredictivity(regression="pls", n_components=3)):
        table = simmetrics.invariance_table([metric], data=(X, Y))
        assert not table.disagreements(), table.disagreements()


@pytest.mark.parametrize("regression", ["linear", "ridge", "neuron_to_neuron"])
@pytest.mark.parametrize("reverse", [False, True])
def test_streaming_equals_the_whole_data(seed11, regression, reverse):
    X, Y = seed11["X"], seed11["Y"]
    metric = LinearPredictivity(regression=regression, reverse=reverse)
    cuts = [0, 37, 150, 200]
    stream = [(X[a:b], Y[a:b]) for a, b in zip(cuts, cuts[1:])]
    assert simmetrics.stream_score(clone(metric), stream) == pytest.approx(
        clone(metric).fit_score(X[:200], Y[:200]), abs=1e-10)
    # fit on a stream, score a held-out stream (fit=False), against fit/score on the data
    streamed = clone(metric)
    simmetrics.stream_score(streamed, stream)
    held_out = moments(X[200:250], Y[200:250]) + moments(X[250:], Y[250:])
    whole = clone(metric).fit(X[:200], Y[:200])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantColumnsWarning)
        expected = whole.score(X[200:], Y[200:])
        assert score_from_moments(streamed, held_out, fit=False) == pytest.approx(
            expected, abs=1e-10)
        assert score_from_moments(whole, held_out, fit=False) == pytest.approx(
            expected, abs=1e-10)


def test_pls_and_ridgecv_do_not_stream(seed11):
    with pytest.raises(TypeError, match="cannot be computed from batches"):
        simmetrics.stream_score(LinearPredictivity(regression="pls"), [(seed11["X"], seed11["Y"])])


@pytest.mark.parametrize("regression", ["linear", "ridge", "ridgecv"])
def test_dual_form_equals_the_primal_when_features_outnumber_stimuli(regression):
    rng = np.random.default_rng(5)
    latent = rng.normal(size=(90, 6))
    X = np.maximum(latent @ rng.normal(size=(6, 150)) + 0.3 * rng.normal(size=(90, 150)), 0)
    Y = latent @ rng.normal(size=(6, 12)) + 0.5 * rng.normal(size=(90, 12)) + 2.0
    dual = LinearPredictivity(regression=regression, solver="auto").fit(X[:60], Y[:60])
    assert dual.coef_ is None and dual.X_fit_.shape == (60, 150)  # d > n: the dual form
    primal = LinearPredictivity(regression=regression, solver="primal").fit(X[:60], Y[:60])
    assert dual.alpha_ == primal.alpha_
    assert dual.score(X[60:], Y[60:]) == pytest.approx(primal.score(X[60:], Y[60:]), abs=1e-9)
    Pd, _ = dual.transform(X[60:], Y[60:])
    Pp, _ = primal.transform(X[60:], Y[60:])
    assert np.max(np.abs(Pd - Pp)) <= 1e-8 * np.max(np.abs(Pp))


def test_bad_parameters_and_input_are_refused_by_name(seed11):
    X, Y = seed11["X"], seed11["Y"]
    with pytest.raises(ValueError, match="alphas"):
        LinearPredictivity(regression="ridgecv", alphas=[1.0, -2.0]).fit(X, Y)
    with pytest.raises(ValueError, match="regression"):
        LinearPredictivity(regression="lasso").fit(X, Y)
    with pytest.raises(ValueError, match="X has zero variance"):
        LinearPredictivity().fit(np.ones_like(X), Y)
    with pytest.raises(ValueError, match="Y has zero variance"):
        LinearPredictivity(reverse=True).fit(X, np.ones_like(Y))
