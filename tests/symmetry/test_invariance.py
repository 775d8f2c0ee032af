"""The declared invariances of every metric, held to the measurement."""

import numpy as np
import pytest

import simmetrics
from simmetrics.base import GROUP_NAMES
from simmetrics.invariance import check_invariance, invariance_data, invariance_table

from metric_configs import CONFIGS

@pytest.fixture(scope="module")
def table():
    # every registered metric and the shared parameter variants (tests/metric_configs.py)
    return invariance_table(CONFIGS, GROUP_NAMES)


@pytest.mark.slow
def test_every_declaration_matches_the_measurement(table):
    wrong = [
        f"{r.metric} / {r.group}: declared {r.declared}, measured {r.measured} "
        f"(max deviation {r.max_deviation:.3g})"
        for r in table.disagreements()
    ]
    assert not wrong, "\n".join(wrong)


def test_measured_gap_is_wide(table):
    # An invariance holds to rounding error; a non-invariance moves the value clearly.
    for r in table.rows:
        if r.measured:
            assert r.max_deviation < 1e-9, r
        else:
            assert r.max_deviation > 1e-4, r


def test_classical_metrics_are_orthogonal_but_not_diagonal_scaling_invariant(table):
    cell = {(r.metric, r.group): r.measured for r in table.rows}
    for name in ("LinearCKA()", "OrthogonalProcrustes()"):
        assert cell[(name, "orthogonal")]
        assert not cell[(name, "positive_scaled_permutation")]
    relu = "IntertwinerProcrustes()"
    assert cell[(relu, "positive_scaled_permutation")]
    assert not cell[(relu, "orthogonal")]


def test_check_invariance_result_fields():
    X, Y = invariance_data(random_state=1)
    res = check_invariance("linear_cka", "positive_scaled_permutation", X, Y, random_state=0)
    assert not res.invariant
    assert res.group == "positive_scaled_permutation"
    assert res.max_deviation > 1e-3
    assert res.value == pytest.approx(simmetrics.LinearCKA().fit_score(X, Y))
    same = check_invariance("linear_cka", "permutation", X, None, sides="y", random_state=0)
    assert same.invariant and same.value == pytest.approx(1.0)


def test_check_invariance_is_deterministic():
    X, Y = invariance_data(random_state=2)
    a = check_invariance("cca", "orthogonal", X, Y, random_state=3)
    b = check_invariance("cca", "orthogonal", X, Y, random_state=3)
    assert a == b


def test_table_text_and_markdown(table):
    text = str(table)
    assert text.splitlines()[0].split()[:3] == ["metric", "permutation", "signed_permutation"]
    md = table.to_markdown()
    assert md.count("\n") == len({r.metric for r in table.rows}) + 1


def test_bad_arguments():
    X, Y = invariance_data()
    with pytest.raises(ValueError, match="sides must be"):
        check_invariance("cca", "orthogonal", X, Y, sides="left")
    with pytest.raises(ValueError, match="n_trials must be a positive integer"):
        check_invariance("cca", "orthogonal", X, Y, n_trials=0)
    with pytest.raises(TypeError, match="metric must be"):
        check_invariance(np.mean, "orthogonal", X, Y)
