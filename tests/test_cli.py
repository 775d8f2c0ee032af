"""The ``simmetrics`` command line and the file loaders behind it, on real files.

Expected values come from the Python API on the arrays that were written to the files."""

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import simmetrics
from simmetrics.cli import main
from simmetrics.io import load_arrays, load_representation


@pytest.fixture
def data(rng):
    X = np.abs(rng.normal(size=(40, 6)))
    Y = np.tanh(X @ rng.normal(size=(6, 5))) + 0.2 * rng.normal(size=(40, 5))
    Z = rng.normal(size=(40, 3))
    return X, Y, Z


@pytest.fixture
def files(tmp_path, data):
    X, Y, Z = data
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    np.savez(tmp_path / "layers.npz", first=X, second=Y, third=Z)
    np.savez(tmp_path / "one.npz", only=Y)
    torch.save(torch.from_numpy(Y), tmp_path / "y.pt")
    torch.save({"h1": torch.from_numpy(X), "h2": torch.from_numpy(Y)}, tmp_path / "acts.pth")
    np.savetxt(tmp_path / "y.csv", Y, delimiter=",", header=",".join("abcde"), comments="")
    np.savetxt(tmp_path / "x_noheader.csv", X, delimiter=",")
    return {p.name: str(p) for p in tmp_path.iterdir()}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- score ------------------------------------------------------------------------------------
def test_score_table(capsys, files, data):
    X, Y, _ = data
    code, out, err = run(capsys, "score", files["x.npy"], files["y.npy"], "--metric", "cka",
                         "-m", "procrustes")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"{files['x.npy']} (40 x 6) vs {files['y.npy']} (40 x 5)"
    assert lines[2].split() == ["metric", "kind", "range", "value"]
    cka = simmetrics.LinearCKA().fit_score(X, Y)
    procrustes = simmetrics.OrthogonalProcrustes().fit_score(X, Y)
    assert lines[4].split() == ["linear_cka", "similarity", "[0,", "1]", f"{cka:.4f}"]
    assert lines[5].split() == ["procrustes", "distance", "[0,", "3.14]", f"{procrustes:.4f}"]


@pytest.mark.parametrize("b, key", [("y.npy", None), ("one.npz", None), ("layers.npz", "second"),
                                    ("y.pt", None), ("acts.pth", "h2"), ("y.csv", None)])
def test_score_json_matches_the_api_for_every_format(capsys, files, data, b, key):
    X, Y, _ = data
    argv = ["score", files["x_noheader.csv"], files[b], "--metric", "linear_cka", "--json"]
    code, out, _ = run(capsys, *argv, *(["--key-b", key] if key else []))
    assert code == 0
    [record] = json.loads(out)
    # np.savetxt writes 18 significant digits, so the CSV round trip is exact
    assert record["value"] == simmetrics.LinearCKA().fit_score(X, Y)
    assert record["metric"] == "linear_cka" and record["kind"] == "similarity"
    assert record["bounds"] == [0.0, 1.0] and record["params"] == {}


def test_score_csv_params_and_one_key_for_both(capsys, files, data):
    X, Y, _ = data
    code, out, _ = run(capsys, "score", files["layers.npz"], files["y.npy"], "--key", "first",
                       "-m", "cka", "-m", "rsa", "--param", "linear_cka.debiased=True",
                       "--param", "rdm=euclidean", "--csv")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["metric", "kind", "value"]
    assert rows[1][:2] == ["linear_cka(debiased=True)", "similarity"]
    # same code, same input (the .npz/.npy arrays as saved), and the CSV holds repr(value)
    assert float(rows[1][2]) == simmetrics.LinearCKA(debiased=True).fit_score(X, Y)
    assert rows[2][0] == "rsa(rdm='euclidean')"
    assert float(rows[2][2]) == simmetrics.RSA(rdm="euclidean").fit_score(X, Y)


def test_score_with_permutation_test_and_bootstrap(capsys, files, data):
    X, Y, _ = data
    code, out, _ = run(capsys, "score", files["x.npy"], files["y.npy"], "-m", "cka",
                       "--permutations", "19", "--bootstrap", "20", "--confidence", "0.9",
                       "--seed", "3", "--json")
    assert code == 0
    [record] = json.loads(out)
    test = simmetrics.permutation_test("linear_cka", X, Y, n_permutations=19, random_state=3)
    ci = simmetrics.bootstrap_ci("linear_cka", X, Y, n_bootstraps=20, confidence=0.9,
                                 random_state=3)
    assert record["pvalue"] == test.pvalue == 0.05 and record["n_permutations"] == 19
    assert (record["ci_low"], record["ci_high"]) == (ci.low, ci.high)
    assert record["ci_method"] == ci.method == "percentile"  # CKA's documented default
    code, out, _ = run(capsys, "score", files["x.npy"], files["y.npy"], "-m", "cka",
                       "--permutations", "19", "--bootstrap", "20")
    head = out.splitlines()[2]
    assert "p (19 perm.)" in head and "95% CI (20 x percentile)" in head
    # Procrustes defaults to subsampling (repeated stimuli bias it): the table says which
    code, out, _ = run(capsys, "score", files["x.npy"], files["y.npy"], "-m", "cka",
                       "-m", "procrustes", "--bootstrap", "20")
    assert "95% CI (20 x percentile/subsample)" in out.splitlines()[2]


def test_score_with_a_layout(capsys, tmp_path, rng):
    conv_a, conv_b = rng.normal(size=(2, 8, 3, 2, 2))
    np.save(tmp_path / "a.npy", conv_a)
    np.save(tmp_path / "b.npy", conv_b)
    code, out, _ = run(capsys, "score", tmp_path / "a.npy", tmp_path / "b.npy", "-m", "cka",
                       "--layout", "nchw", "--json")
    assert code == 0
    expected = simmetrics.LinearCKA(layout="nchw").fit_score(conv_a, conv_b)
    assert json.loads(out)[0]["value"] == expected


def test_score_defaults_to_every_metric_and_skips_those_that_cannot_apply(capsys, tmp_path,
                                                                         data):
    X, Y, _ = data
    np.save(tmp_path / "a.npy", X[:8])
    np.save(tmp_path / "b.npy", Y[:8])
    code, out, err = run(capsys, "score", tmp_path / "a.npy", tmp_path / "b.npy", "--json")
    assert code == 0
    names = [r["metric"] for r in json.loads(out)]
    assert "linear_cka" in names and "mutual_knn" not in names  # k=10 needs 11 stimuli
    assert len(names) == len(simmetrics.available_metrics()) - err.count("skipped")
    assert "simmetrics: skipped mutual_knn:" in err


# -- pairwise ---------------------------------------------------------------------------------
def test_pairwise_table_json_csv_and_plot(capsys, files, data, tmp_path):
    X, Y, Z = data
    expected = simmetrics.pairwise("linear_cka", [X, Y, Z])
    code, out, err = run(capsys, "pairwise", files["layers.npz"], "--metric", "cka")
    assert code == 0 and err == ""  # no progress bar: stderr is not a terminal here
    lines = out.splitlines()
    assert lines[0].startswith("linear_cka (similarity, range [0, 1]) between 3 representations")
    assert lines[2].split() == ["first", "second", "third"]
    assert lines[5].split() == ["second"] + [f"{v:.4f}" for v in expected[1]]

    code, out, _ = run(capsys, "pairwise", files["layers.npz"], "-m", "cka", "--json")
    result = json.loads(out)
    assert result["labels"] == ["first", "second", "third"] and result["kind"] == "similarity"
    assert np.array_equal(result["matrix"], expected)  # same call, same arrays; JSON is exact

    plot = tmp_path / "heat.png"
    code, out, err = run(capsys, "pairwise", files["x.npy"], files["y.pt"], files["acts.pth"],
                         "-m", "procrustes", "--csv", "--plot", plot)
    assert code == 0 and f"wrote {plot}" in err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["", "x", "y", "acts:h1", "acts:h2"]
    M = np.array([[float(v) for v in row[1:]] for row in rows[1:]])
    # same call on the same values (CPU tensors become the same float64 arrays); CSV: repr
    assert np.array_equal(M, simmetrics.pairwise("procrustes", [X, Y, X, Y]))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 2000


def test_progress_bar_only_on_a_terminal_and_not_with_quiet(capsys, files, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = run(capsys, "pairwise", files["layers.npz"], "-m", "cka")
    assert code == 0 and "9/9" in err and "100%" in err  # every ordered pair of 3
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = run(capsys, "pairwise", files["layers.npz"], "-m", "cka", "--quiet")
    assert code == 0 and err == ""


# -- the other commands -----------------------------------------------------------------------
@pytest.mark.slow
def test_invariances_metrics_and_demo(capsys, tmp_path):
    code, out, _ = run(capsys, "invariances", "--metric", "linear_cka", "--group", "orthogonal",
                       "--plot", tmp_path / "inv.png", "-q")
    # measured by simmetrics.invariance: CKA is rotation invariant
    assert code == 0 and out.splitlines()[2].split() == ["LinearCKA()", "yes"]
    assert (tmp_path / "inv.png").read_bytes()[:4] == b"\x89PNG"
    code, out, _ = run(capsys, "invariances", "--metric", "procrustes", "--group",
                       "scaled_permutation", "--markdown")
    assert out.splitlines()[-1] == "| OrthogonalProcrustes() | no |"

    code, out, _ = run(capsys, "metrics")
    assert code == 0
    listed = [line.split()[0] for line in out.splitlines()[2:]]
    assert listed == simmetrics.available_metrics()
    code, out, _ = run(capsys, "metrics", "--json")
    records = json.loads(out)
    assert [r["metric"] for r in records] == simmetrics.available_metrics()
    cka = records[[r["metric"] for r in records].index("linear_cka")]
    assert cka["reference"] == simmetrics.LinearCKA.reference
    assert cka["invariances"] == sorted(simmetrics.LinearCKA.invariances)

    code, out, _ = run(capsys, "demo", "--epochs", "2", "--metric", "cka")
    assert code == 0
    assert "test accuracy" in out and out.splitlines()[-1].startswith("linear_cka")


def test_plot_without_matplotlib_is_one_clear_line(capsys, files, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = run(capsys, "pairwise", files["x.npy"], files["y.npy"], "-m", "cka",
                         "--plot", "m.png")
    assert code == 2 and out == ""
    assert err == ("simmetrics: error: --plot needs matplotlib, which is not installed: "
                   "pip install 'simmetrics[plot]'\n")


def test_help_exits_zero(capsys):
    code, out, _ = run(capsys, "score", "--help")
    assert code == 0 and "--metric" in out and "--permutations" in out


# -- errors: one line on stderr, non-zero exit, no traceback ----------------------------------
ERRORS = [
    (["score", "x.npy", "missing.npy", "-m", "cka"], "missing.npy: no such file"),
    (["score", "x.npy", "junk.npy", "-m", "cka"], "junk.npy: it is not a numpy .npy file"),
    (["score", "x.npy", "junk.pt", "-m", "cka"], "cannot read .*junk.pt with torch.load"),
    (["score", "x.npy", "layers.npz", "-m", "cka"],
     r"layers.npz holds 3 arrays \(first, second, third\); choose one"),
    (["score", "x.npy", "layers.npz", "-m", "cka", "--key", "fourth"],
     "layers.npz has no array named 'fourth'; it holds: first, second, third"),
    (["score", "x.npy", "acts.pth", "-m", "cka"], r"acts.pth holds 2 arrays \(h1, h2\)"),
    (["score", "x.npy", "y.txt", "-m", "cka"], "unsupported file type '.txt'"),
    (["score", "x.npy", "short.npy", "-m", "cka"],
     "x.npy has 40 stimuli .* but .*short.npy has 39"),
    (["score", "x.npy", "flat.npy", "-m", "cka"], r"flat.npy must be 2-D .*got a 1-D array"),
    (["score", "x.npy", "nan.npy", "-m", "cka"], "nan.npy contains 1 NaN"),
    (["score", "x.npy", "bad.csv", "-m", "cka"], r"bad.csv, line 3, column 2: 'x' is not a number"),
    (["score", "x.npy", "y.npy", "-m", "linear_ckaa"], "did you mean 'linear_cka'"),
    (["score", "x.npy", "y.npy", "-m", "cka", "--param", "bogus=1"],
     "'bogus' is not a parameter of linear_cka"),
    (["score", "x.npy", "y.npy", "-m", "cka", "--param", "debiased"], "expected NAME=VALUE"),
    (["score", "x.npy", "y.npy", "-m", "rsa", "--param", "rdm=nope"], "rsa.*rdm"),
    (["score", "x.npy", "y.npy", "-m", "cka", "--bootstrap", "0"],
     "--bootstrap: expected a positive integer"),
    (["score", "x.npy", "y.npy", "-m", "cka", "--layout", "abc"], "--layout: invalid choice"),
    (["pairwise", "x.npy", "y.npy"], "the following arguments are required: --metric"),
    (["pairwise", "x.npy", "-m", "cka"], "pairwise needs at least two representations"),
    (["pairwise", "x.npy", "y.npy", "-m", "cka", "--plot", "nodir/out.png"],
     "folder 'nodir' does not exist"),
    (["invariances", "-m", "cka", "--plot", "out.xyz"], "unknown image format 'xyz'"),
    (["invariances", "--group", "rotation"], "rotation"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize("argv, message", ERRORS, ids=[" ".join(a[:3]) for a, _ in ERRORS])
def test_errors_are_one_line(capsys, files, tmp_path, argv, message, monkeypatch):
    X = np.load(files["x.npy"])
    np.save(tmp_path / "short.npy", X[:-1])
    np.save(tmp_path / "flat.npy", X[:, 0])
    nan = X.copy()
    nan[2, 2] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    (tmp_path / "junk.npy").write_text("not an array")
    (tmp_path / "junk.pt").write_bytes(b"\x00\x01 not a pickle")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,x\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert code != 0 and out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and err.startswith("simmetrics")
    assert re.search(message, err), err


# -- file loading -----------------------------------------------------------------------------
def test_loaders(tmp_path, files, data):
    X, Y, Z = data
    assert list(load_arrays(files["layers.npz"])) == ["first", "second", "third"]
    assert np.array_equal(load_representation(files["one.npz"]), Y)  # the only array
    assert np.array_equal(load_representation(files["acts.pth"], key="h1"), X)
    assert np.array_equal(load_representation(files["y.csv"]), Y)  # header skipped
    assert np.array_equal(load_representation(files["x_noheader.csv"]), X)
    torch.save([torch.ones(3, 2), torch.zeros(3, 2, dtype=torch.bfloat16)], tmp_path / "l.pt")
    listed = load_arrays(tmp_path / "l.pt")
    assert list(listed) == ["0", "1"] and listed["1"].dtype == np.float32
    (tmp_path / "t.csv").write_text("1\t2\n3\t4\n")
    assert load_representation(tmp_path / "t.csv").tolist() == [[1, 2], [3, 4]]
    (tmp_path / "w.csv").write_text("x y\n1 2\n3 4\n")
    assert load_representation(tmp_path / "w.csv").tolist() == [[1, 2], [3, 4]]


def test_loader_errors(tmp_path, files):
    with pytest.raises(ValueError, match="holds a single unnamed array, so key='a'"):
        load_representation(files["x.npy"], key="a")
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    with pytest.raises(ValueError, match="line 2: 1 fields, but the first line has 2"):
        load_arrays(tmp_path / "ragged.csv")
    (tmp_path / "empty.csv").write_text("\n")
    with pytest.raises(ValueError, match="empty.csv is empty"):
        load_arrays(tmp_path / "empty.csv")
    (tmp_path / "head.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="holds a header but no rows"):
        load_arrays(tmp_path / "head.csv")
    (tmp_path / "dir.npy").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        load_arrays(tmp_path / "dir.npy")
    torch.save({"a": "text"}, tmp_path / "s.pt")
    with pytest.raises(ValueError, match="entry 'a' of .*s.pt is a str, not a tensor"):
        load_arrays(tmp_path / "s.pt")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_arrays(tmp_path / "nope.npz")


# -- the installed console script -------------------------------------------------------------
@pytest.mark.slow
def test_console_script_entry_point(files):
    script = Path(sys.executable).with_name("simmetrics")
    assert script.exists(), "pip install -e . installs the simmetrics console script"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    ok = subprocess.run([str(script), "score", files["x.npy"], files["y.npy"], "-m", "cka",
                         "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    X, Y = np.load(files["x.npy"]), np.load(files["y.npy"])
    # same code, same input, same machine (a rerun in another process); JSON keeps repr
    assert json.loads(ok.stdout)[0]["value"] == simmetrics.LinearCKA().fit_score(X, Y)
