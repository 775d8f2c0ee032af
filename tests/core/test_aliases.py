"""similarity-repository's standardised names resolve to registered metrics with parameters."""

import numpy as np
import pytest

import simmetrics
from simmetrics._core import aliases
from simmetrics._core.registry import resolve_name
from simmetrics.cli import main

_VALUES = {"{alpha}": 0.5, "{sigma}": 1.5, "{topk}": 7}


def _concrete(name):
    for placeholder, value in _VALUES.items():
        name = name.replace(placeholder, str(value))
    return name


@pytest.mark.parametrize("name", sorted(simmetrics.similarity_repository_names()))
def test_every_alias_builds_its_metric_with_its_parameters(name):
    metric, params = simmetrics.similarity_repository_names()[name]
    built = simmetrics.get_metric(_concrete(name))
    assert type(built) is simmetrics.metric_class(metric) is simmetrics.metric_class(_concrete(name))
    got = built.get_params()
    for key, value in params.items():
        assert got[key] == _VALUES.get(value, value), (name, key)
    assert simmetrics.get_metric(f"measure/somerepo/{_concrete(name)}").get_params() == got


def test_names_are_similarity_repository_names_and_counted():
    assert set(aliases.SHORTHANDS.values()) <= set(aliases.SIMILARITY_REPOSITORY_NAMES)
    assert len(aliases.SIMILARITY_REPOSITORY_NAMES) <= aliases.SIMILARITY_REPOSITORY_TOTAL
    assert "linear_cka" in simmetrics.available_metrics()
    # a name that is also registered keeps the registered metric's defaults and parameters
    assert simmetrics.get_metric("rank_similarity", k=5).k == 5


def test_issue_examples_and_shorthands():
    assert repr(simmetrics.get_metric("cka-kernel=linear-hsic=song-score")) == \
        "LinearCKA(estimator='song')"
    assert simmetrics.get_metric("rsa-rdm=correlation-compare=spearman").get_params()["compare"] \
        == "spearman"
    assert simmetrics.get_metric("svcca-var=0.99").get_params()["variance"] == 0.99
    shape = simmetrics.get_metric("shape_metric-alpha=0.5")
    assert shape.get_params()["alpha"] == 0.5 and shape.score_method == "angular"
    assert resolve_name("mutual_knn-topk=5") == ("mutual_knn", {"k": 5, "similarity": "inner_product"})
    assert resolve_name("linear_cka") is None


def test_explicit_parameters_add_or_conflict():
    m = simmetrics.get_metric("shape_metric-alpha=0.5-distance=angular", center_columns=False)
    assert m.get_params()["center_columns"] is False and m.alpha == 0.5
    assert simmetrics.get_metric("cka-kernel=linear-hsic=song-score", estimator="song").estimator \
        == "song"
    with pytest.raises(ValueError, match="estimator='song'.*estimator='gretton'"):
        simmetrics.get_metric("cka-kernel=linear-hsic=song-score", estimator="gretton")
    with pytest.raises(ValueError, match="alpha"):
        simmetrics.get_metric("shape_metric-alpha=0.5-distance=angular", alpha=1.0)
    with pytest.raises(ValueError, match="topk='1.5' is not an integer"):
        simmetrics.get_metric("mutual_knn-topk=1.5")


def test_unknown_names_keep_did_you_mean():
    with pytest.raises(ValueError, match="did you mean 'procrustes'"):
        simmetrics.get_metric("procrustez")
    with pytest.raises(ValueError, match="unknown metric"):
        simmetrics.metric_class("cka-kernel=linear-hsic=nobody-score")


@pytest.mark.parametrize("alias, explicit, params", [
    ("cka-kernel=linear-hsic=gretton-score", "linear_cka", {}),
    ("cka-kernel=linear-hsic=song-score", "linear_cka", {"debiased": True}),
    ("rsa-rdm=squared_euclidean-compare=pearson", "rsa", {"rdm": "euclidean", "compare": "pearson"}),
    ("svcca-var=0.99-score", "svcca", {}),
    ("shape_metric-alpha=0-distance=euclidean", "shape_metric",
     {"alpha": 0.0, "score_method": "euclidean"}),
    ("procrustes-score", "nbs", {}),
])
def test_aliases_score_like_the_explicit_metric(seed11, alias, explicit, params):
    X, Y = seed11["X"], seed11["Y"]
    want = simmetrics.get_metric(explicit, **params).fit_score(X, Y)
    assert simmetrics.get_metric(alias).fit_score(X, Y) == pytest.approx(want, abs=1e-12)


def test_harvey_duality_procrustes_angle_is_arccos_nbs(seed11):
    # Harvey et al. 2023, the identity similarity-repository's transforms use
    X, Z = seed11["X"], seed11["Z"]
    angle = simmetrics.get_metric("nbs-distance=angular").fit_score(X, Z)
    assert np.cos(angle) == pytest.approx(simmetrics.get_metric("nbs-score").fit_score(X, Z),
                                          abs=1e-10)


def test_alias_on_seed11_references(seed11):
    # nn_similarity_index's cka and ReSi's JaccardSimilarity (k=10, cosine): seed11 README
    X, Y = seed11["X"], seed11["Y"]
    ref = seed11["values"]["X_Y"]
    assert simmetrics.get_metric("cka-kernel=linear-hsic=gretton-score").fit_score(X, Y) == \
        pytest.approx(ref["nnsi_cka"], abs=1e-8)
    assert simmetrics.get_metric("jaccard_similarity").fit_score(X, Y) == \
        pytest.approx(ref["resi_jaccard_k10_cosine"], abs=1e-8)


def test_cli_accepts_aliases(capsys, tmp_path, seed11):
    X, Y = seed11["X"], seed11["Y"]
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    code = main(["score", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"),
                 "--metric", "cka-kernel=linear-hsic=song-score"])
    out = capsys.readouterr().out
    want = simmetrics.LinearCKA(estimator="song").fit_score(X, Y)
    assert code == 0 and "estimator='song'" in out and f"{want:.4f}" in out
    code = main(["score", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"),
                 "--metric", "cka-kernel=linear-hsic=song-score", "--param", "estimator=gretton"])
    assert code != 0 and "conflicts" in capsys.readouterr().err
