"""The README tells the truth: its code runs, its numbers and tables are what the code gives,
and its test command is the one CI runs."""

import re
from pathlib import Path

import pytest

import simmetrics
from simmetrics.invariance import invariance_table

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_quick_start_runs_and_its_comments_are_true():
    code = _blocks("python")[0]
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    X, Y = namespace["X"], namespace["Y"]
    # the comments in the quick start state these values
    assert round(simmetrics.LinearCKA().fit_score(X, Y), 2) == 0.31
    assert namespace["g_procrustes"].fit_score(X, Y) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("index", range(1, len(_blocks("python"))))
def test_every_other_python_example_runs(index):
    # each later example states its results with assert, so running it checks them
    exec(compile(_blocks("python")[index], "README.md", "exec"), {})


def test_first_lines_are_the_two_commands_and_ci_runs_the_second():
    bash = _blocks("bash")[0]
    commands = [line for line in bash.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2
    assert commands[0].endswith("simmetrics demo")
    assert commands[1].endswith("python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci


def test_invariance_table_is_current():
    table = invariance_table().to_markdown()
    assert table in README, "regenerate with: simmetrics invariances --markdown"


def test_metric_table_lists_every_metric_with_its_kind():
    for name in simmetrics.available_metrics():
        cls = simmetrics.metric_class(name)
        row = re.search(rf"^\| `{name}` \| `{cls.__name__}` \| (\w+) \|", README, flags=re.M)
        assert row, f"{name} missing from the README's metric table"
        assert row.group(1) == cls.kind
        bounds = re.search(rf"^\| `{name}` \| `{cls.__name__}` \| \w+ \| ([^|]+) \|", README,
                           flags=re.M).group(1).strip()
        assert bounds == "[{}, {}]".format(*map(_number, cls.bounds)), name


def _number(x):
    """A bound as the README writes it."""
    import math

    words = {math.pi: "π", math.pi / 2: "π/2", math.inf: "inf", -math.inf: "-inf"}
    return words.get(x, f"{x:g}")


def test_the_count_of_differentiable_metrics_is_the_codes():
    from simmetrics import functional

    have, of = len(functional.differentiable_metrics()), len(simmetrics.available_metrics())
    assert re.search(rf"\b{have} of the {of}\s+registered metrics", README)
