"""Tests of simmetrics.paper.experiments on the tiny smoke configuration (seconds, not minutes).

The report must show exactly the numbers the run computed: the tables are parsed back and
compared with numbers recomputed here from the raw per-pair values, and raw values are
recomputed independently (fresh models from the same seeds, the stitching and metric
functions called directly). A rerun must give identical results.
"""

import json
import re

import numpy as np
import pytest
import torch

from simmetrics import LinearCKA
from simmetrics.nn.digits import load_digits_split, train_classifier
from simmetrics.paper.cli import main
from simmetrics.paper.config import ExperimentConfig
from simmetrics.paper.experiments import _build, _deterministic_torch, run_experiments
from simmetrics.paper.report import format_report, write_report
from simmetrics.nn.extract import extract_activations
from simmetrics.nn.stitching import direct_stitch, stitch_accuracy

pytestmark = pytest.mark.slow  # seconds: deselect with -m "not slow" while developing

SMOKE = ExperimentConfig.smoke()


@pytest.fixture(scope="module")
def results():
    return run_experiments(SMOKE)


def _strip_wall(text):
    return "\n".join(line for line in text.splitlines() if not line.startswith("Wall time"))


def _section_rows(report, title, first_cell):
    """Cells of the table row starting with ``first_cell`` under heading ``### title``."""
    section = report.split(f"### {title}\n", 1)[1].split("\n### ", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} under {title!r}")


def _title(run):
    widths = "-".join(map(str, run["widths"]))
    if run["architecture"] == "mlp":
        return f"MLP 64-{widths}-10, {run['activation']}"
    return f"CNN {widths} channels, {run['activation']}"


def _mean_std(values, scale=100.0, digits=1):
    # independent formatting: statistics.mean/stdev rather than numpy
    import statistics

    v = [scale * x for x in values]
    return f"{statistics.mean(v):.{digits}f} ± {statistics.stdev(v):.{digits}f}"


def test_structure(results):
    runs = results["runs"]
    assert [(r["architecture"], r["activation"]) for r in runs] == [
        ("mlp", "relu"), ("mlp", "tanh"), ("cnn", "relu"), ("cnn", "tanh")]
    kinds = ["full", "rank 1", "rank 2", "orthogonal", "intertwiner", "direct",
             "intertwiner (soft)"]
    for run in runs:
        expected = kinds + (["intertwiner (relaxation only)"]
                            if (run["architecture"], run["activation"]) == ("mlp", "relu")
                            else [])
        assert list(run["e1"]["penalty"]) == expected
        for per_layer in run["e1"]["penalty"].values():
            assert len(per_layer) == 3 and all(len(v) == SMOKE.n_models for v in per_layer)
        assert (run["e2"] is None) == (run["architecture"] not in SMOKE.e2_architectures)
        assert np.asarray(run["e3"]["linear CKA"]).shape == (SMOKE.n_models, 3, 3)
    json.dumps(results)  # serialisable


def test_report_tables_show_the_computed_numbers(results):
    report = format_report(results)
    for run in results["runs"]:
        title = _title(run)
        for kind, per_layer in run["e1"]["penalty"].items():
            cells = _section_rows(report.split("## E1")[1], title, kind)
            assert cells[2:] == [_mean_std(v) for v in per_layer], (title, kind)
        e3 = report.split("## E3")[1]
        for name in ("G-CKA", "linear CKA", "G-Procrustes (angular)"):
            M = np.asarray(run["e3"][name])
            cells = _section_rows(e3, title, name)
            assert cells[2:] == [_mean_std(M[:, l, l], 1.0, 3) for l in range(3)]
        if run["e2"]:
            clean = run["clean"]
            for label, d in run["e2"]["accuracy"].items():
                cells = _section_rows(report.split("## E2")[1], title, label)
                after = [_mean_std([c - a for c, a in zip(clean, acc)]) for acc in d["after"]]
                assert [c.split("**")[1] for c in cells[1:]] == after


def test_raw_numbers_match_an_independent_recomputation(results):
    # recompute from scratch: the same seeds, models trained again, then the direct stitch of
    # pair (0, 1) at layer 2 and linear CKA of layer 1 vs layer 3, called directly
    run = results["runs"][0]
    assert (run["architecture"], run["activation"]) == ("mlp", "relu")
    X_tr, X_te, y_tr, y_te = load_digits_split()
    with _deterministic_torch():
        models = [train_classifier(_build("mlp", "relu", s, SMOKE), X_tr, y_tr,
                                   epochs=SMOKE.mlp_epochs, lr=SMOKE.train_lr, seed=s)
                  for s in range(2)]
    clean = [float((m(torch.as_tensor(X_te)).argmax(1).numpy() == y_te).mean())
             for m in models]
    assert clean == run["clean"]  # correct counts / n, from the same training rerun: exact
    a, b = models
    Fa = a[:4](torch.as_tensor(X_tr)).detach().numpy()
    Fb = b[:4](torch.as_tensor(X_tr)).detach().numpy()
    stitch = direct_stitch(Fa, Fb, "relu")
    acc = stitch_accuracy(stitch, b[4:], a[:4](torch.as_tensor(X_te)).detach(), y_te)
    assert run["e1"]["penalty"]["direct"][1][0] == pytest.approx(
        0.5 * (clean[0] + clean[1]) - acc, abs=1e-12)
    X = X_te[:SMOKE.e3_samples]
    f1 = extract_activations(a, X, "1")["1"]
    f3 = extract_activations(b, X, "5")["5"]
    assert run["e3"]["linear CKA"][0][0][2] == pytest.approx(LinearCKA().fit_score(f1, f3),
                                                            abs=1e-12)


def test_rerun_gives_identical_results(results):
    # (that n_jobs=2 gives the same results as n_jobs=1 was checked by running the CLI both
    # ways and comparing results.json; spawning workers here would cost ~20 s)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the study forces one thread itself, whatever the caller set
    try:
        again = run_experiments(SMOKE)
    finally:
        torch.set_num_threads(threads)
    for run, other in zip(results["runs"], again["runs"]):
        run, other = dict(run), dict(other)
        run.pop("seconds"), other.pop("seconds")
        assert run == other
    assert _strip_wall(format_report(results, 10.0)) == _strip_wall(format_report(again, 99.0))


def test_write_report_and_cli(results, tmp_path, monkeypatch):
    text = write_report(results, tmp_path / "out", wall_seconds=12.0)
    assert (tmp_path / "out" / "report.md").read_text() == text
    assert "Wall time of this run: 12 s" in text
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved.pop("wall_seconds") == 12.0
    assert saved == json.loads(json.dumps(results))
    pngs = sorted(p.name for p in (tmp_path / "out" / "figures").glob("*.png"))
    assert pngs == ["e1_cnn.png", "e1_mlp.png", "e2.png", "e3_cnn.png", "e3_mlp.png"]
    for name in pngs:
        assert f"(figures/{name})" in text
        assert (tmp_path / "out" / "figures" / name).read_bytes()[:4] == b"\x89PNG"
    # the CLI, with the study replaced by the results above (the smoke run is tested above)
    import simmetrics.paper.cli as ex

    monkeypatch.setattr(ex, "run_experiments", lambda config, n_jobs=None, progress=False:
                        results)
    assert main(["--smoke", "--out", str(tmp_path / "cli"), "--docs", str(tmp_path / "docs"),
                 "--no-figures"]) == 0
    cli = (tmp_path / "cli" / "report.md").read_text()
    docs = (tmp_path / "docs" / "experiments.md").read_text()
    assert _strip_wall(cli) == _strip_wall(docs) == _strip_wall(format_report(results, 1.0))
    # re-rendering from the saved JSON gives the same report, wall time included
    assert main(["--from-json", str(tmp_path / "out" / "results.json"), "--out",
                 str(tmp_path / "again"), "--no-figures"]) == 0
    assert (tmp_path / "again" / "report.md").read_text() == format_report(results, 12.0)


def test_paper_comparison_and_orderings_are_stated(results):
    report = format_report(results)
    beside = report.split("## Beside the paper")[1]
    assert "| rank 1 | 42 | 53.5 | 57 | 62 |" in beside  # the paper's numbers (paper notes §3)
    row = _section_rows(report, "Where the orderings agree with the paper, and where not",
                        "stitching: intertwiner < rank 1")
    assert row[1] == "4/4"
    for cell, run in zip(row[2:], results["runs"]):
        pen = run["e1"]["penalty"]
        g = [np.mean(v) for v in pen["intertwiner"]]
        r1 = [np.mean(v) for v in pen["rank 1"]]
        assert cell == f"{sum(x < y for x, y in zip(g, r1))}/3"
    assert re.search(r"sanity test: inserting .* costs less than orthogonal", beside)


def test_bad_architecture():
    with pytest.raises(ValueError, match="architecture must be 'mlp' or 'cnn'"):
        _build("rnn", "relu", 0, SMOKE)


def test_deterministic_context_sets_and_restores_threads():
    # one torch thread matters: trained weights differ by ~1e-4 between 1 and 2 threads
    # (measured on the digits MLP), so the study pins it and restores the caller's settings
    from threadpoolctl import threadpool_info

    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    with _deterministic_torch():
        assert torch.get_num_threads() == 1
        assert torch.are_deterministic_algorithms_enabled()
        assert all(info["num_threads"] == 1 for info in threadpool_info())
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == det
