"""Tests of simmetrics.paper.barrier_study (issue 17's study) on its smoke configuration.

The report must show the numbers of the run: its tables are parsed back and compared with
means and Student-t intervals recomputed here (t quantiles from printed tables, not scipy);
one barrier is recomputed by a hand-written interpolation; the planted control checks that a
G_sigma alignment undoes a planted element of G_sigma (barrier 0) where permutations cannot.
"""

import json
import statistics

import numpy as np
import pytest
import torch

from simmetrics.paper.barrier_study import (CONDITIONS, BarrierStudyConfig, _run_setting,
                                            comparison, format_report, mean_ci, run_study)
from simmetrics.paper.cli import main

pytestmark = pytest.mark.slow  # about 30 s

SMOKE = BarrierStudyConfig.smoke()
# Student-t 0.975 quantiles (any printed t table): 1 and 3 degrees of freedom.
T975 = {1: 12.706204736, 3: 3.182446305}


@pytest.fixture(scope="module")
def results():
    return run_study(SMOKE)


def _table(report, heading):
    """The body rows (lists of cells) of the first table under ``## heading``."""
    section = report.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return head, [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]


def _parse_ci(cell):
    mean, rest = cell.split(" [")
    low, high = rest.rstrip("]").split(", ")
    return float(mean), float(low), float(high)


def test_structure(results):
    runs = results["runs"]
    assert [(r["architecture"], r["widths"], r["activation"]) for r in runs] == [
        ("mlp", [8, 8], "relu"), ("mlp", [8, 8], "tanh"),
        ("cnn", [4, 4, 4], "relu"), ("cnn", [4, 4, 4], "tanh")]
    # Godfrey et al. 2022, Table 1: G_ReLU positive scaled permutations, G_tanh signed ones
    assert [r["group"] for r in runs] == ["positive_scaled_permutation", "signed_permutation"] * 2
    for r in runs:
        assert len(r["clean_accuracy"]) == 2 * SMOKE.n_pairs
        assert list(r["barriers"]) == list(CONDITIONS)
        for cond in CONDITIONS:
            for key in ("test", "repair", "train"):
                values = r["barriers"][cond][key]
                assert len(values) == SMOKE.n_pairs
                for d in values:
                    assert len(d["excess_curve"]) == SMOKE.steps
                    assert d["excess_curve"][0] == 0.0 and abs(d["excess_curve"][-1]) < 1e-12
                    assert d["barrier"] == max(d["excess_curve"]) >= 0.0
            assert np.shape(r["matched_correlation"][cond]) == (SMOKE.n_pairs, 3 if
                                                                r["architecture"] == "cnn" else 2)
        assert set(r["metrics"]) == {"G-Procrustes angle", "permutation-Procrustes angle",
                                     "linear CKA"}
    assert results["adam_steps"] == {"mlp": 30, "cnn": 10}  # epochs x ceil(1257 / 128)
    json.dumps(results)


def test_planted_copy(results):
    for r in results["runs"]:
        p = r["planted"]
        for cond in ("g_w", "g_a"):  # the element is undone: the same network all along
            assert p[cond]["barrier"] < 1e-6 and p[cond]["max_abs_excess"] < 1e-5, (r, cond)
        assert p["none"]["barrier"] > 1e-2
        for cond in ("perm_w", "perm_a"):  # signs / scales are not permutations
            assert p[cond]["max_abs_excess"] > 1e-3, (r["activation"], cond)
        if r["activation"] == "tanh":  # a sign flip halfway zeroes a unit: a real barrier
            assert p["perm_w"]["barrier"] > 1e-2 and p["perm_a"]["barrier"] > 1e-2


def test_gelu_groups_coincide():
    # G_GELU is the permutation group (Godfrey et al. 2022): the G_sigma alignment is the
    # permutation-only one, barrier for barrier
    config = BarrierStudyConfig(activations=("gelu",), mlp_widths=(8,), cnn_channels=(),
                                n_pairs=1, epochs=2, steps=3)
    run = _run_setting("mlp", (8, 8), "gelu", config)
    assert run["group"] == "permutation"
    for m in ("w", "a"):
        assert run["barriers"][f"g_{m}"]["test"][0]["excess_curve"] == \
            run["barriers"][f"perm_{m}"]["test"][0]["excess_curve"]
        assert comparison(run, m)[3] == "identical"


def test_barrier_recomputed():
    # the unaligned barrier of pair 0 (MLP, relu), by a float64 interpolation written here
    from torch.nn import functional as F

    from simmetrics.nn.digits import load_digits_split, make_mlp, train_classifier

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        X_tr, X_te, y_tr, y_te = load_digits_split()
        models = [train_classifier(make_mlp(hidden=(8, 8), activation=torch.nn.ReLU, seed=s),
                                   X_tr, y_tr, epochs=SMOKE.epochs, seed=s) for s in (0, 1)]
        run = _run_setting("mlp", (8, 8), "relu", BarrierStudyConfig(
            activations=("relu",), mlp_widths=(8,), cnn_channels=(), n_pairs=1,
            epochs=SMOKE.epochs, steps=SMOKE.steps))
    finally:
        torch.set_num_threads(threads)
    sa, sb = (m.state_dict() for m in models)
    losses = []
    for lam in np.linspace(0, 1, SMOKE.steps):
        net = make_mlp(hidden=(8, 8), activation=torch.nn.ReLU).double()
        net.load_state_dict({k: (1 - lam) * sa[k].double() + lam * sb[k].double() for k in sa})
        with torch.no_grad():
            logp = F.log_softmax(net(torch.as_tensor(X_te).double()), dim=1).numpy()
        losses.append(-logp[np.arange(len(y_te)), y_te].mean())
    losses = np.array(losses)
    lam = np.linspace(0, 1, SMOKE.steps)
    barrier = np.max(losses - ((1 - lam) * losses[0] + lam * losses[-1]))
    assert run["barriers"]["none"]["test"][0]["barrier"] == pytest.approx(barrier, abs=1e-5)


def test_mean_ci():
    m, lo, hi = mean_ci([1.0, 2.0, 3.0, 4.0])
    half = T975[3] * statistics.stdev([1, 2, 3, 4]) / 2
    assert m == 2.5 and lo == pytest.approx(2.5 - half, rel=1e-9) and \
        hi == pytest.approx(2.5 + half, rel=1e-9)
    assert np.isnan(mean_ci([3.0])[1])


def test_comparison_verdicts():
    def run(perm, g):
        return {"barriers": {"perm_w": {"test": [{"barrier": v} for v in perm]},
                             "g_w": {"test": [{"barrier": v} for v in g]}}}

    assert comparison(run([0.5, 0.6, 0.7], [0.1, 0.15, 0.2]), "w")[3] == "lower"
    assert comparison(run([0.1, 0.15, 0.2], [0.5, 0.6, 0.7]), "w")[3] == "higher"
    assert comparison(run([0.1, 0.5, 0.2], [0.3, 0.1, 0.4]), "w")[3] == "no difference"
    assert comparison(run([0.1, 0.5], [0.1, 0.5]), "w")[3] == "identical"


def test_report_numbers(results):
    report = format_report(results, 12.0)
    head, rows = _table(report, "Test loss barrier")
    assert head[2:] == [label for label, _ in CONDITIONS.values()]
    assert len(rows) == len(results["runs"])
    for run, row in zip(results["runs"], rows):
        assert row[1].startswith(run["activation"])
        for cond, cell in zip(CONDITIONS, row[2:]):
            m, lo, hi = _parse_ci(cell)
            v = [d["barrier"] for d in run["barriers"][cond]["test"]]
            half = T975[len(v) - 1] * statistics.stdev(v) / len(v) ** 0.5
            assert lo <= m <= hi
            assert m == pytest.approx(statistics.mean(v), abs=6e-4)  # printed to 3 decimals
            assert hi - lo == pytest.approx(2 * half, abs=1.1e-3)
    _, rows = _table(report, "Planted control (one model per setting)")
    assert len(rows) == len(results["runs"]) and all(len(r) == 2 + len(CONDITIONS)
                                                      for r in rows)
    for run in results["runs"]:  # one finding per setting and method
        title = f"MLP 64-8-8-10, {run['activation']}" if run["architecture"] == "mlp" else \
            f"CNN 4-4-4, {run['activation']}"
        assert report.count(f"- {title}, ") == 2
    assert "Wall time of the run: 12 s." in report


def test_cli_from_json(results, tmp_path):
    saved = tmp_path / "alignment_results.json"
    saved.write_text(json.dumps(dict(results, wall_seconds=3.0)))
    assert main(["barrier", "--from-json", str(saved), "--out", str(tmp_path / "out"),
                 "--docs", str(tmp_path / "docs"), "--no-figures"]) == 0
    text = (tmp_path / "docs" / "alignment.md").read_text()
    assert text == format_report(json.loads(json.dumps(results)), 3.0)
    assert (tmp_path / "out" / "alignment.md").read_text() == text
    again = json.loads((tmp_path / "out" / "alignment_results.json").read_text())
    assert again["runs"] == json.loads(json.dumps(results))["runs"]
