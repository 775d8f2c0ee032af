"""Parameters are validated from their declarations; model selection over a distance picks the
best setting; the memory budget is an option that refuses work up front.

The invalid values are generated from each class's ``_parameter_constraints`` (the trust
issue: ``LinearCKA(debiased="False")`` used to switch the option on, since ``bool("False")``
is True), so every present and future metric is held to it.
"""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold

import simmetrics
from simmetrics._core.memory import check_memory, format_bytes, gram_bytes, parse_bytes
from simmetrics._core.params import Boolean, Interval, Integral, Options, Real, constraints_of, \
    invalid_values

from metric_configs import CONFIGS, IDS

RNG = np.random.default_rng(2026)
X = RNG.normal(size=(40, 6))
Y = X @ RNG.normal(size=(6, 6)) + 0.1 * RNG.normal(size=(40, 6))


def _bad_cases():
    for metric in CONFIGS:
        constraints = constraints_of(type(metric))
        for name in metric.get_params():
            for value in invalid_values(constraints[name]):
                yield pytest.param(metric, name, value, id=f"{metric!r}-{name}={value!r}")


@pytest.mark.parametrize("metric", CONFIGS, ids=IDS)
def test_every_constructor_parameter_is_declared(metric):
    # the declaration is the one place a parameter's accepted values are written down
    assert set(metric.get_params()) <= set(constraints_of(type(metric)))


@pytest.mark.parametrize("metric", CONFIGS, ids=IDS)
def test_the_defaults_and_the_configured_values_are_valid(metric):
    metric._validate_params()  # raises if a declaration refuses a value the package uses


@pytest.mark.parametrize("metric, name, value", list(_bad_cases()))
@pytest.mark.parametrize("entry", ["fit_score", "fit", "pairwise"])
def test_invalid_values_are_refused_naming_the_parameter(metric, name, value, entry):
    bad = clone(metric).set_params(**{name: value})
    with pytest.raises((TypeError, ValueError), match=f"parameter '{name}' must be"):
        if entry == "pairwise":
            simmetrics.pairwise(bad, [X, Y])
        else:
            getattr(bad, entry)(X, Y)


@pytest.mark.parametrize("text", ["False", "false", "0", "no", ""])
def test_string_booleans_never_switch_an_option_on(text):
    # the trust issue's reproducers: each string used to be read as True
    for metric in (simmetrics.LinearCKA(debiased=text), simmetrics.KernelCKA(debiased=text),
                   simmetrics.IntertwinerProcrustes(center=text),
                   simmetrics.ShapeMetric(center_columns=text)):
        with pytest.raises(TypeError, match="must be a bool"):
            metric.fit_score(X, Y)


def test_streaming_checks_the_parameters_too():
    with pytest.raises(TypeError, match="parameter 'debiased' must be a bool"):
        simmetrics.stream_score(simmetrics.LinearCKA(debiased="False"), [(X, Y)])


def test_numpy_scalars_are_accepted_where_python_numbers_are():
    a = simmetrics.ShapeMetric(alpha=np.float64(0.5)).fit_score(X, Y)
    b = simmetrics.ShapeMetric(alpha=0.5).fit_score(X, Y)
    assert a == pytest.approx(b, rel=1e-12)  # the same number, a different Python type
    assert simmetrics.MutualKNN(k=np.int64(3)).fit_score(X, Y) == pytest.approx(
        simmetrics.MutualKNN(k=3).fit_score(X, Y), rel=1e-12)
    simmetrics.LinearCKA(debiased=np.bool_(True)).fit_score(X, Y)


def test_constraint_objects():
    assert Interval(Real, 0, 1, closed="right").is_satisfied_by(1.0)
    assert not Interval(Real, 0, 1, closed="right").is_satisfied_by(0.0)
    assert not Interval(Real, 0, None).is_satisfied_by(float("inf"))
    assert not Interval(Integral, 1, None).is_satisfied_by(True)
    assert not Interval(Integral, 1, None).is_satisfied_by(2.0)
    assert Options({"a", "b"}).is_satisfied_by("a") and not Options({"a"}).is_satisfied_by([])
    assert Boolean().is_satisfied_by(False) and not Boolean().is_satisfied_by("False")
    with pytest.raises(TypeError):
        Interval(float, 0, 1)


# -- model selection over a distance ------------------------------------------------------------
def test_metric_scorer_picks_the_best_setting_where_score_picks_the_worst():
    # Y is an invertible linear map of X plus noise: the alpha = 0 shape metric (CCA-like) is
    # invariant to such maps, so its held-out distance is the smallest; alpha = 1 (Procrustes)
    # is not. GridSearchCV maximises `score`, so for a distance it picks the worst alpha.
    rng = np.random.default_rng(5)
    A = rng.normal(size=(300, 6))
    B = A @ rng.normal(size=(6, 6)) + 0.05 * rng.normal(size=(300, 6))
    grid = {"alpha": [0.0, 0.5, 1.0]}
    cv = KFold(4, shuffle=True, random_state=0)
    distances = {
        alpha: np.mean([simmetrics.ShapeMetric(alpha=alpha).fit(A[tr], B[tr]).score(A[te], B[te])
                        for tr, te in cv.split(A)])
        for alpha in grid["alpha"]
    }
    best = min(distances, key=distances.get)
    assert best == 0.0 and distances[1.0] > distances[0.0]
    naive = GridSearchCV(simmetrics.ShapeMetric(), grid, cv=cv).fit(A, B)
    assert naive.best_params_["alpha"] == max(distances, key=distances.get)  # the trap
    good = GridSearchCV(simmetrics.ShapeMetric(), grid, cv=cv,
                        scoring=simmetrics.metric_scorer).fit(A, B)
    assert good.best_params_["alpha"] == best
    assert good.best_score_ == pytest.approx(-distances[best], rel=1e-10)


def test_metric_scorer_keeps_the_sign_of_a_similarity():
    metric = simmetrics.LinearCKA().fit(X, Y)
    assert simmetrics.metric_scorer(metric, X, Y) == metric.score(X, Y)  # same call, same code


# -- the memory budget --------------------------------------------------------------------------
def test_budget_sources_in_order(monkeypatch):
    monkeypatch.setenv("SIMMETRICS_MEMORY_BUDGET", "3GiB")
    assert simmetrics.get_memory_budget() == 3 * 2**30
    with simmetrics.memory_budget(1000):
        assert simmetrics.get_memory_budget() == 1000
    assert simmetrics.get_memory_budget() == 3 * 2**30
    monkeypatch.delenv("SIMMETRICS_MEMORY_BUDGET")
    assert simmetrics.get_memory_budget() > 2**20  # half the machine's memory


def test_refusal_names_the_size_the_budget_and_the_alternatives():
    with simmetrics.memory_budget("1MiB"):
        check_memory(2**20, "exactly the budget")  # at the budget: allowed
        with pytest.raises(simmetrics.MemoryBudgetError,
                           match=r"a kernel needs about 8\.9 GiB, more than the memory budget of "
                                 r"1\.0 MiB; instead: pool the positions"):
            check_memory(gram_bytes(34_560), "a kernel", ["pool the positions"])


@pytest.mark.parametrize("text, expected", [
    ("8GiB", 8 * 2**30), ("500MB", 500 * 10**6), ("1e9", 10**9), (" 2 kib ", 2048), (4096, 4096)])
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("bad", ["lots", "-1GB", "0", True, None, "1 parsec"])
def test_parse_bytes_refuses_nonsense(bad):
    with pytest.raises((TypeError, ValueError)):
        parse_bytes(bad)


def test_format_bytes():
    assert [format_bytes(b) for b in (10, 2048, 3 * 2**30)] == ["10 B", "2.0 KiB", "3.0 GiB"]
