"""Files, the command line and pairwise: no silent wrong rows, one-line errors, labelled results.

Where the expected values come from:

- CSV files are written here by pandas itself (``DataFrame.to_csv``) or by hand in the forms R's
  ``write.csv`` / ``write.table`` produce; the numbers read must equal the frame that was
  written. pandas writes floats with Python's shortest round-trip ``repr``, so parsing them back
  is exact (a decimal round trip, not a computation): the comparison is exact.
- Metric values are the Python API's on the same arrays (the same code runs twice).
- Memory errors are raised on purpose (monkeypatched) with numpy's own message text.
"""

import io
import json
import os
import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

import simmetrics
from simmetrics._core.memory import MemoryBudgetError
from simmetrics.cli import main
from simmetrics.nn.extract import extract_activations
from simmetrics.io import FileInfo, load_arrays, load_representation
from simmetrics.pairwise import LabelledMatrix
from tests.metric_configs import MATRIX_METRICS  # 3-D input metrics: their own suite

matplotlib.use("Agg")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, out, err, pattern):
    assert code == 2 and out == "", (code, out, err)
    assert err.startswith("simmetrics: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert re.search(pattern, err), err


# == item 9: the CSV loader ===================================================================
SHAPES = [(5, 3), (12, 1), (40, 7)]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{n}x{d}" for n, d in SHAPES])
@pytest.mark.parametrize("how", ["default", "index=False", "bom", "bom+index", "named"])
def test_csv_written_by_pandas_reads_the_frame(tmp_path, seed, shape, how):
    # Before: to_csv() added the index as a neuron (n x (d + 1)), index=False added the
    # header 0..d-1 as a stimulus ((n + 1) x d); the BOM made line 1 text (right by luck).
    frame = pd.DataFrame(np.random.default_rng(seed).normal(size=shape))
    path = tmp_path / "acts.csv"
    if how == "default":
        frame.to_csv(path)
    elif how == "index=False":
        frame.to_csv(path, index=False)
    elif how == "bom":
        frame.to_csv(path, index=False, encoding="utf-8-sig")
    elif how == "bom+index":
        frame.to_csv(path, encoding="utf-8-sig")
    else:
        named = frame.rename(columns=lambda j: f"unit{j}")
        named.index = [f"img{i}" for i in range(shape[0])]
        named.to_csv(path)
    array, info = load_representation(path, return_info=True)
    np.testing.assert_array_equal(array, frame.to_numpy())  # exact: repr round trip
    assert info.shape == shape and info.header is True
    assert info.index is (how != "index=False" and how != "bom")
    if how == "named":
        assert info.columns == tuple(f"unit{j}" for j in range(shape[1]))
        assert info.row_labels == tuple(f"img{i}" for i in range(shape[0]))
    # pandas itself, an independent parser, reads the same numbers
    theirs = pd.read_csv(path, index_col=0 if info.index else None)
    np.testing.assert_array_equal(array, theirs.to_numpy())


def _user_frames(rng):
    relu = np.maximum(rng.normal(size=(30, 6)), 0.0)
    relu[:, 2] = 0.0  # a dead unit
    dominant = rng.normal(size=(30, 4))
    dominant[7] *= 1e6  # one dominant stimulus
    scales = rng.normal(size=(30, 3)) * np.array([1e-300, 1.0, 1e300])  # extreme scales
    ties = np.round(rng.normal(size=(30, 5)) * 2) / 2  # quantised, exact ties, as floats
    return {"sparse relu, dead unit": relu, "dominant stimulus": dominant,
            "extreme scales": scales, "quantised": ties}


@pytest.mark.parametrize("name", list(_user_frames(np.random.default_rng(0))))
@pytest.mark.parametrize("index", [True, False])
def test_csv_of_the_data_users_have(tmp_path, rng, name, index):
    # the frame pandas wrote (exact: repr round trip); float32 frames: float32's shortest repr
    # read into float64 agrees to float32's precision (rtol 2**-23)
    X = _user_frames(rng)[name]
    pd.DataFrame(X).to_csv(tmp_path / "u.csv", index=index)
    array, info = load_representation(tmp_path / "u.csv", return_info=True)
    np.testing.assert_array_equal(array, X)
    assert (info.header, info.index) == (True, index)
    with np.errstate(over="ignore", under="ignore"):
        X32 = X.astype(np.float32)
    pd.DataFrame(X32).to_csv(tmp_path / "f32.csv", index=index)
    if np.isfinite(X32).all():
        np.testing.assert_allclose(load_representation(tmp_path / "f32.csv"), X32,
                                   rtol=2**-23, atol=0)
    else:  # 1e300 overflows float32: pandas writes inf, which is refused, cell named
        with pytest.raises(ValueError, match=r"f32.csv, line 2, column \d: '-?inf' is not a "
                                             r"finite number"):
            load_representation(tmp_path / "f32.csv")


def test_pandas_header_false_keeps_its_index_out(tmp_path, rng):
    # to_csv(header=False) writes the default index 0..n-1 as column 1, beside decimals
    frame = pd.DataFrame(rng.normal(size=(6, 2)))
    frame.to_csv(tmp_path / "h.csv", header=False)
    array, info = load_representation(tmp_path / "h.csv", return_info=True)
    np.testing.assert_array_equal(array, frame.to_numpy())
    assert info.header is False and info.index is True and info.row_labels == tuple("012345")


def test_pandas_integer_frame(tmp_path, rng):
    # Binary / quantised activations written as integers: with the index, the empty first
    # header cell says "header"; without it, 0,1,2 over integers is ambiguous and must be said.
    frame = pd.DataFrame(rng.integers(0, 2, size=(8, 3)))
    frame.to_csv(tmp_path / "i.csv")
    np.testing.assert_array_equal(load_representation(tmp_path / "i.csv"), frame.to_numpy())
    frame.to_csv(tmp_path / "n.csv", index=False)
    with pytest.raises(ValueError, match=r"n.csv: line 1 \(0,1,2\) may be a header .* "
                                         r"header=True or header=False"):
        load_representation(tmp_path / "n.csv")
    np.testing.assert_array_equal(load_representation(tmp_path / "n.csv", header=True),
                                  frame.to_numpy())
    as_data = load_representation(tmp_path / "n.csv", header=False)
    np.testing.assert_array_equal(as_data, np.vstack([[0, 1, 2], frame.to_numpy()]))


R_FILES = {
    # write.csv(m) of a matrix with colnames V1, V2: quoted "" corner and quoted row names
    "write.csv": ('"","V1","V2"\n"1",0.5,-1.25\n"2",2,3.5\n"3",-0.125,4\n', True, True),
    # write.csv(df, row.names = FALSE)
    "row.names=FALSE": ('"V1","V2"\n0.5,-1.25\n2,3.5\n-0.125,4\n', True, False),
    # write.table(m): space separated, the header one field short (no corner cell)
    "write.table": ('"V1" "V2"\n"1" 0.5 -1.25\n"2" 2 3.5\n"3" -0.125 4\n', True, True),
    # write.table(m, sep = "\t", col.names = NA): a tab file with the "" corner
    "tab": ('""\t"V1"\t"V2"\n"a"\t0.5\t-1.25\n"b"\t2\t3.5\n"c"\t-0.125\t4\n', True, True),
}


@pytest.mark.parametrize("name", list(R_FILES))
def test_csv_written_the_way_r_writes_it(tmp_path, name):
    text, header, index = R_FILES[name]
    (tmp_path / "r.csv").write_text(text)
    array, info = load_representation(tmp_path / "r.csv", return_info=True)
    # the numbers typed into the file above
    np.testing.assert_array_equal(array, [[0.5, -1.25], [2, 3.5], [-0.125, 4]])
    assert (info.header, info.index) == (header, index)
    assert info.columns == ("V1", "V2")


@pytest.mark.parametrize("cell", ["NA", "", "nan", "NaN", "N/A", "null", '""'])
@pytest.mark.parametrize("where", [(1, 2), (3, 1), (2, 3)])
def test_missing_cells_are_errors_naming_file_line_and_column(tmp_path, cell, where):
    # Before: "NA" (or an empty cell) in line 1 made it a "header": the stimulus vanished.
    rows = [["1", "2", "3"], ["4", "5", "6"], ["7", "8", "9"]]
    line, column = where
    rows[line - 1][column - 1] = cell
    (tmp_path / "m.csv").write_text("".join(",".join(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=rf"m.csv, line {line}, column {column}: missing value"):
        load_representation(tmp_path / "m.csv")


def test_na_in_line_one_was_dropped_before(tmp_path):
    (tmp_path / "na.csv").write_text("1,NA,3\n4,5,6\n7,8,9\n")
    with pytest.raises(ValueError, match="line 1, column 2: missing value 'NA'"):
        load_representation(tmp_path / "na.csv")
    # header=True says line 1 is names, then the rest is read
    assert load_representation(tmp_path / "na.csv", header=True).tolist() == [[4, 5, 6],
                                                                             [7, 8, 9]]


@pytest.mark.parametrize("text, expected", [
    ('1, "2"\n3,4\n', [[1, 2], [3, 4]]),  # a quoted number after a space: a number
    ('"1","2"\n"3","4"\n', [[1, 2], [3, 4]]),  # QUOTE_ALL writers
    ("\ufeff1,2\n3,4\n", [[1, 2], [3, 4]]),  # BOM, no header
    ("1,2\n3,4\n\n\n", [[1, 2], [3, 4]]),  # trailing blank lines
    ("1.5e-3;2\n-3;.5\n", [[1.5e-3, 2], [-3, 0.5]]),  # semicolons
])
def test_first_line_numbers_are_a_stimulus(tmp_path, text, expected):
    (tmp_path / "q.csv").write_bytes(text.encode())
    array, info = load_representation(tmp_path / "q.csv", return_info=True)
    assert array.tolist() == expected and info.header is False and info.index is False


def test_other_bad_cells(tmp_path):
    (tmp_path / "inf.csv").write_text("a,b\n1,inf\n")
    with pytest.raises(ValueError, match=r"inf.csv, line 2, column 2: 'inf' is not a finite"):
        load_representation(tmp_path / "inf.csv")
    (tmp_path / "gap.csv").write_text("1,2\n\n3,4\n")
    with pytest.raises(ValueError, match=r"gap.csv, line 2 is blank"):
        load_representation(tmp_path / "gap.csv")
    (tmp_path / "wide.csv").write_text("a,b\n1,2,3,4\n")
    with pytest.raises(ValueError, match=r"wide.csv: the header \(line 1\) has 2 fields, but "
                                         r"line 2 has 4"):
        load_representation(tmp_path / "wide.csv")
    (tmp_path / "one.csv").write_text("1\n2\n")
    with pytest.raises(ValueError, match="index=True needs at least 2 columns"):
        load_representation(tmp_path / "one.csv", index=True)
    with pytest.raises(ValueError, match="header must be None, True or False"):
        load_representation(tmp_path / "one.csv", header="yes")


def test_info_reports_what_was_read(tmp_path, rng):
    frame = pd.DataFrame(rng.normal(size=(4, 2)), columns=["a", "b"])
    frame.to_csv(tmp_path / "f.csv")
    arrays, infos = load_arrays(tmp_path / "f.csv", return_info=True)
    info = infos[""]
    assert isinstance(info, FileInfo) and list(arrays) == [""]
    assert (info.shape, info.header, info.index, info.delimiter) == ((4, 2), True, True, ",")
    assert info.columns == ("a", "b") and info.row_labels == ("0", "1", "2", "3")
    text = info.summary()
    assert "4 rows (stimuli) x 2 columns (neurons)" in text and "header" in text
    assert "column 1" in text and "\n" not in text
    np.save(tmp_path / "a.npy", np.ones((3, 2)))
    _, info = load_representation(tmp_path / "a.npy", return_info=True)
    assert info.shape == (3, 2) and info.header is None and info.index is None


def test_cli_notes_what_a_csv_held(capsys, tmp_path, rng):
    X, Y = rng.normal(size=(2, 10, 3))
    pd.DataFrame(X).to_csv(tmp_path / "x.csv")
    pd.DataFrame(Y).to_csv(tmp_path / "y.csv", index=False)
    code, out, err = run(capsys, "score", tmp_path / "x.csv", tmp_path / "y.csv", "-m", "cka",
                         "--json")
    assert code == 0
    assert json.loads(out)[0]["value"] == simmetrics.LinearCKA().fit_score(X, Y)
    notes = err.splitlines()
    assert len(notes) == 2 and all(n.startswith("simmetrics: read ") for n in notes)
    assert "10 rows (stimuli) x 3 columns (neurons)" in notes[0] and "column 1" in notes[0]
    code, _, err = run(capsys, "score", tmp_path / "x.csv", tmp_path / "y.csv", "-m", "cka",
                       "-q")
    assert code == 0 and err == ""
    # the ambiguity error through the command line, and its way out
    pd.DataFrame(rng.integers(0, 3, size=(10, 3))).to_csv(tmp_path / "i.csv", index=False)
    assert_one_line_error(*run(capsys, "score", tmp_path / "i.csv", tmp_path / "y.csv"),
                          r"i.csv: line 1 .*--csv-header yes/no")
    code, out, _ = run(capsys, "score", tmp_path / "i.csv", tmp_path / "y.csv", "-m", "cka",
                       "--csv-header", "yes", "--json")
    assert code == 0


# == pairwise: mappings and labelled results ==================================================
def _layers(rng, n=30):
    X = rng.normal(size=(n, 5))
    return {"conv1": X, "conv2": np.tanh(X @ rng.normal(size=(5, 4))),
            "fc": rng.normal(size=(n, 3))}


def test_pairwise_of_a_dict_is_labelled(rng):
    # Before: TypeError "reps[0] has non-numeric dtype <U1" (the dict's keys were iterated).
    layers = _layers(rng)
    M = simmetrics.pairwise("linear_cka", layers)
    plain = simmetrics.pairwise("linear_cka", list(layers.values()))
    assert isinstance(M, LabelledMatrix) and isinstance(M, np.ndarray)
    assert type(plain) is np.ndarray  # lists: today's plain array
    np.testing.assert_array_equal(M, plain)  # the same code on the same arrays
    assert M.row_labels == M.col_labels == ("conv1", "conv2", "fc")
    frame = M.to_frame()
    assert list(frame.index) == list(frame.columns) == ["conv1", "conv2", "fc"]
    assert frame.loc["conv1", "fc"] == plain[0, 2]
    R = simmetrics.pairwise("procrustes", layers, {"a": layers["fc"], "b": layers["conv1"]})
    assert R.row_labels == ("conv1", "conv2", "fc") and R.col_labels == ("a", "b")
    assert R[0, 1] == simmetrics.OrthogonalProcrustes().fit_score(layers["conv1"],
                                                                   layers["conv1"])
    mixed = simmetrics.pairwise("linear_cka", layers, [layers["fc"]])
    assert mixed.col_labels == ("0",) and mixed.shape == (3, 1)


def test_labels_follow_indexing_transposition_and_arithmetic(rng):
    M = simmetrics.pairwise("pwcca", _layers(rng))  # asymmetric: M.T differs from M
    assert M[1:].row_labels == ("conv2", "fc") and M[1:].col_labels == M.col_labels
    assert M[:, [2, 0]].col_labels == ("fc", "conv1")
    assert M[::-1, ::-1].row_labels == ("fc", "conv2", "conv1")
    assert M.T.row_labels == M.col_labels and M.T.to_frame().loc["fc", "conv1"] == M[0, 2]
    assert (1 - M).row_labels == M.row_labels
    assert not isinstance(M.mean(axis=0), LabelledMatrix) or M.mean(axis=0).row_labels is None
    assert type(M[0]) is np.ndarray  # a row: its labels would be ambiguous, plain array
    assert type(M[M > 0.5]) is np.ndarray  # a boolean mask: positions lost, labels dropped
    again = pickle.loads(pickle.dumps(M))
    assert again.row_labels == M.row_labels and np.array_equal(again, M)
    assert "conv1" in repr(M)


def test_pairwise_of_extract_activations(rng):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    acts = extract_activations(net, torch.randn(25, 4), ["0", "1", "2"])
    M = simmetrics.pairwise("linear_cka", acts)
    assert M.row_labels == ("0", "1", "2")
    np.testing.assert_array_equal(M, simmetrics.pairwise("linear_cka", list(acts.values())))


def test_mapping_errors_name_the_keys(rng):
    layers = _layers(rng)
    layers["fc"] = layers["fc"][:-1]
    with pytest.raises(ValueError, match=r"reps\['conv1'\] has 30, reps\['fc'\] has 29"):
        simmetrics.pairwise("linear_cka", layers)
    with pytest.raises(ValueError, match="reps is empty"):
        simmetrics.pairwise("linear_cka", {})


def test_plot_takes_the_labels(rng):
    M = simmetrics.pairwise("linear_cka", _layers(rng))
    ax = simmetrics.plot_similarity_matrix(M)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["conv1", "conv2", "fc"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["conv1", "conv2", "fc"]
    ax = simmetrics.plot_similarity_matrix(M.to_frame().iloc[:2])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["conv1", "conv2"]
    ax = simmetrics.plot_similarity_matrix(M, row_labels=list("abc"))  # given labels win
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    import matplotlib.pyplot as plt

    plt.close("all")


def test_cli_pairwise_json_and_csv_carry_the_names(capsys, tmp_path, rng):
    layers = _layers(rng)
    np.savez(tmp_path / "acts.npz", **layers)
    expected = simmetrics.pairwise("linear_cka", layers)
    code, out, _ = run(capsys, "pairwise", tmp_path / "acts.npz", "-m", "cka", "--json")
    record = json.loads(out)
    assert code == 0 and record["labels"] == list(expected.row_labels)
    assert record["row_labels"] == record["col_labels"] == list(expected.row_labels)
    np.testing.assert_array_equal(record["matrix"], expected)
    code, out, _ = run(capsys, "pairwise", tmp_path / "acts.npz", "-m", "cka", "--csv")
    frame = pd.read_csv(io.StringIO(out), index_col=0)
    assert list(frame.index) == list(frame.columns) == ["conv1", "conv2", "fc"]


# == CKA with layout="nchw" on layers of different spatial sizes ==============================
def test_nchw_layers_of_different_spatial_sizes_name_the_cause(rng):
    # The shapes: 540 stimuli, 8 x 8 and 4 x 4 positions (34,560 and 8,640 rows).
    # Before: "reps[0] has 34560, reps[2] has 8640" although every layer holds 540 stimuli.
    layers = [rng.normal(size=(540, 2, 8, 8)), rng.normal(size=(540, 2, 8, 8)),
              rng.normal(size=(540, 3, 4, 4))]
    with pytest.raises(ValueError) as err:
        simmetrics.pairwise(simmetrics.LinearCKA(layout="nchw"), layers)
    text = str(err.value)
    assert "every representation holds 540 stimuli" in text
    assert "reps[0] has 540 x 64 positions (8 x 8) = 34560 rows" in text
    assert "reps[2] has 540 x 16 positions (4 x 4) = 8640 rows" in text
    assert "layout='flatten'" in text and "A.mean(axis=(2, 3))" in text
    assert "IntertwinerCKA(positions='sum'" in text
    # and the fixes it offers run (the values themselves are tested elsewhere)
    small = [A[:40] for A in layers]
    assert simmetrics.pairwise(simmetrics.LinearCKA(layout="flatten"), small).shape == (3, 3)
    pooled = [A.mean(axis=(2, 3)) for A in small]
    assert simmetrics.pairwise("linear_cka", pooled).shape == (3, 3)
    summed = simmetrics.pairwise(simmetrics.IntertwinerCKA(positions="sum", layout="nchw"),
                                 [np.abs(A) for A in small])
    assert summed.shape == (3, 3)


@pytest.mark.parametrize("name", MATRIX_METRICS)
def test_fit_score_names_the_cause_too(name, rng):
    # the same cause through fit_score of every metric (before: "X has 320, Y has 80 samples")
    X, Y = np.abs(rng.normal(size=(20, 3, 4, 4))), np.abs(rng.normal(size=(20, 3, 2, 2)))
    if name == "intertwiner_procrustes":
        # defined for different sizes: the paper upsamples the smaller map by nearest
        # neighbours (an integer factor), tested in test_intertwiner_metrics.py
        return
    metric = simmetrics.get_metric(name, layout="nchw")
    with pytest.raises(ValueError, match=r"every representation holds 20 stimuli, but "
                                         r"layout='nchw' makes one row per stimulus .* X has 20 x "
                                         r"16 positions \(4 x 4\) = 320 rows"):
        metric.fit_score(X, Y)


@pytest.mark.parametrize("layout, shapes, per", [
    ("nhwc", [(10, 4, 4, 2), (10, 2, 2, 2)], "16 positions (4 x 4)"),
    ("ntd", [(10, 5, 3), (10, 7, 3)], "5 tokens"),
])
def test_other_layouts_name_the_cause_too(rng, layout, shapes, per):
    layers = [rng.normal(size=s) for s in shapes]
    with pytest.raises(ValueError, match=re.escape(per)):
        simmetrics.pairwise(simmetrics.LinearCKA(layout=layout), layers)
    # different stimuli stay the plain message
    with pytest.raises(ValueError, match=r"same stimuli \(first axis\): reps\[0\] has 10"):
        simmetrics.pairwise(simmetrics.LinearCKA(layout=layout),
                            [layers[0], layers[0][:9]])
    with pytest.raises(ValueError, match=r"reps\[1\] has 9$"):
        simmetrics.pairwise(simmetrics.LinearCKA(layout=layout), [layers[0], layers[0][:9]])


@pytest.mark.parametrize("command", ["score", "pairwise"])
def test_cli_names_the_cause_of_different_spatial_sizes(capsys, tmp_path, rng, command):
    # Before (score): "X and Y must have the same number of samples (rows): X has 1600, Y has
    # 400"; (pairwise) the same in "reps" words, for files of 100 stimuli each.
    np.save(tmp_path / "conv1.npy", rng.normal(size=(100, 2, 4, 4)))
    np.save(tmp_path / "conv3.npy", rng.normal(size=(100, 2, 2, 2)))
    argv = [command, tmp_path / "conv1.npy", tmp_path / "conv3.npy", "-m", "cka",
            "--layout", "nchw"]
    assert_one_line_error(*run(capsys, *argv),
                          r"holds 100 stimuli.*conv1.npy has 100 x 16 positions \(4 x 4\) = "
                          r"1600 rows, .*conv3.npy has 100 x 4 positions \(2 x 2\) = 400 rows.*"
                          r"--layout flatten")
    code, out, _ = run(capsys, *argv[:-1], "flatten", "--json")
    assert code == 0


# == CLI: every user error is one line naming the input, exit 2 ==============================
def test_empty_npz(capsys, tmp_path, rng):
    # Before: a StopIteration traceback (score) / the file silently dropped (pairwise).
    np.savez(tmp_path / "empty.npz")
    np.save(tmp_path / "x.npy", rng.normal(size=(10, 3)))
    np.save(tmp_path / "y.npy", rng.normal(size=(10, 3)))
    with pytest.raises(ValueError, match="empty.npz holds no arrays"):
        load_arrays(tmp_path / "empty.npz")
    assert_one_line_error(*run(capsys, "score", tmp_path / "empty.npz", tmp_path / "x.npy",
                               "-m", "cka"), "empty.npz holds no arrays")
    assert_one_line_error(*run(capsys, "pairwise", tmp_path / "x.npy", tmp_path / "empty.npz",
                               tmp_path / "y.npy", "-m", "cka"), "empty.npz holds no arrays")
    torch.save([], tmp_path / "empty.pt")
    assert_one_line_error(*run(capsys, "score", tmp_path / "empty.pt", tmp_path / "x.npy"),
                          "empty.pt holds an empty list")


def _raise(exc):
    def fail(*args, **kwargs):
        raise exc
    return fail


NUMPY_OOM = ("Unable to allocate 8.90 GiB for an array with shape (34560, 34560) and data "
             "type float64")


@pytest.mark.parametrize("command", ["score", "pairwise"])
def test_memory_errors_are_one_line(capsys, tmp_path, rng, monkeypatch, command):
    # Before: MemoryError printed a 28-line traceback and exit 1.
    np.save(tmp_path / "x.npy", rng.normal(size=(10, 3)))
    np.save(tmp_path / "y.npy", rng.normal(size=(10, 3)))
    argv = [command, tmp_path / "x.npy", tmp_path / "y.npy", "-m", "kernel_cka"]
    monkeypatch.setattr(simmetrics.KernelCKA, "fit_score", _raise(MemoryError(NUMPY_OOM)))
    monkeypatch.setattr(simmetrics.KernelCKA, "_partial_fit", _raise(MemoryError(NUMPY_OOM)))
    assert_one_line_error(*run(capsys, *argv),
                          r"out of memory .*x.npy.*y.npy.*8.90 GiB.* fewer stimuli")
    budget = MemoryBudgetError("KernelCKA on 34,560 rows needs about 8.9 GiB, more than the "
                               "memory budget of 1.0 GiB; instead: pool positions")
    monkeypatch.setattr(simmetrics.KernelCKA, "fit_score", _raise(budget))
    monkeypatch.setattr(simmetrics.KernelCKA, "_partial_fit", _raise(budget))
    assert_one_line_error(*run(capsys, *argv), r"x.npy.*8.9 GiB, more than the memory budget")


def test_quantized_tensors_are_read_with_their_values(capsys, tmp_path, rng):
    # Before: "TypeError: Got unsupported ScalarType QInt8", naming no file.
    with warnings.catch_warnings():  # torch deprecates creating quantized tensors
        warnings.simplefilter("ignore")
        X = torch.from_numpy(rng.normal(size=(20, 4))).float()
        q = torch.quantize_per_tensor(X, 0.05, 3, torch.qint8)
        qc = torch.quantize_per_channel(X, torch.tensor([0.1, 0.2, 0.05, 0.1]),
                                        torch.zeros(4, dtype=torch.long), 1, torch.quint8)
    with warnings.catch_warnings():  # torch warns about the storage of quantized tensors
        warnings.simplefilter("ignore")
        torch.save({"q": q, "qc": qc}, tmp_path / "q.pt")
    arrays, infos = load_arrays(tmp_path / "q.pt", return_info=True)
    # expected: torch's own dequantisation, (q - zero_point) * scale
    np.testing.assert_array_equal(arrays["q"], q.dequantize().numpy())
    np.testing.assert_array_equal(arrays["qc"], qc.dequantize().numpy())
    assert "quantized" in infos["q"].summary() and "dequantized" in infos["q"].summary()
    np.save(tmp_path / "x.npy", X.numpy())
    code, out, err = run(capsys, "score", tmp_path / "q.pt", tmp_path / "x.npy", "--key", "q",
                         "-m", "cka", "--json")
    assert code == 0 and "dequantized" in err
    expected = simmetrics.LinearCKA().fit_score(q.dequantize().numpy(), X.numpy())
    assert json.loads(out)[0]["value"] == expected


def test_a_tensor_numpy_cannot_take_names_the_file(tmp_path, monkeypatch):
    torch.save({"h": torch.ones(3, 2)}, tmp_path / "t.pt")
    monkeypatch.setattr(torch.Tensor, "numpy", _raise(TypeError("Got unsupported ScalarType X")))
    with pytest.raises(ValueError, match=r"entry 'h' of .*t.pt: cannot convert .*ScalarType X"):
        load_arrays(tmp_path / "t.pt")


# == item 8 (CLI part): string booleans ======================================================
@pytest.fixture
def xy(tmp_path, rng):
    X = rng.normal(size=(30, 4))
    Y = X @ rng.normal(size=(4, 3)) + 0.5 * rng.normal(size=(30, 3))
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    return X, Y, tmp_path / "x.npy", tmp_path / "y.npy"


BOOLEAN_WORDS = [("false", False), ("False", False), ("NO", False), ("0", False),
                 ("true", True), ("TRUE", True), ("yes", True), ("1", True)]


@pytest.mark.parametrize("word, value", BOOLEAN_WORDS)
def test_string_booleans_on_the_command_line(capsys, xy, word, value):
    # Before: --param debiased=false gave the string "false", which switched debiasing ON.
    X, Y, x, y = xy
    code, out, err = run(capsys, "score", x, y, "-m", "cka", "--param", f"debiased={word}",
                         "--json")
    assert code == 0, err
    [record] = json.loads(out)
    assert record["params"] == {"debiased": value}
    assert record["metric"] == f"linear_cka(debiased={value})"
    assert record["value"] == simmetrics.LinearCKA(debiased=value).fit_score(X, Y)
    # a class whose constraints may not be declared yet: its default says "boolean"
    code, out, _ = run(capsys, "score", x, y, "-m", "procrustes", "--param",
                       f"procrustes.center_columns={word}", "--json")
    assert code == 0
    expected = simmetrics.OrthogonalProcrustes(center_columns=value).fit_score(X, Y)
    assert json.loads(out)[0]["value"] == expected


@pytest.mark.parametrize("word", ["maybe", "2", "flase", "'False'"])
def test_an_invalid_boolean_is_one_line_naming_the_parameter(capsys, xy, word):
    _, _, x, y = xy
    assert_one_line_error(*run(capsys, "score", x, y, "-m", "cka", "--param", f"debiased={word}"),
                          r"--param .debiased=.*.: debiased of linear_cka is a boolean: use "
                          r"true/false, yes/no or 1/0")


def test_booleans_are_read_from_the_declared_constraints(capsys, xy, monkeypatch):
    from numbers import Integral

    from simmetrics._core.params import Boolean, Interval
    from simmetrics.cli import _param_value

    X, Y, x, y = xy
    # declared boolean-or-int: the words are booleans, digits stay numbers
    monkeypatch.setattr(simmetrics.MutualKNN, "_parameter_constraints",
                        {"k": [Interval(Integral, 1, None, closed="left"), Boolean()]})
    assert _param_value(simmetrics.MutualKNN, "k", "Yes", "k=Yes") is True
    assert _param_value(simmetrics.MutualKNN, "k", "1", "k=1") == 1
    # declared boolean only (whatever the default): 1 and 0 are booleans too
    monkeypatch.setattr(simmetrics.RSA, "_parameter_constraints", {"rdm": [Boolean()]})
    assert _param_value(simmetrics.RSA, "rdm", "0", "rdm=0") is False
    monkeypatch.undo()
    # other parameters keep the literal parsing
    code, out, _ = run(capsys, "score", x, y, "-m", "rsa", "-m", "mutual_knn", "--param",
                       "rdm=euclidean", "--param", "k=5", "--json")
    assert code == 0
    values = {r["metric"]: r["value"] for r in json.loads(out)}
    assert values["rsa(rdm='euclidean')"] == simmetrics.RSA(rdm="euclidean").fit_score(X, Y)
    assert values["mutual_knn(k=5)"] == simmetrics.MutualKNN(k=5).fit_score(X, Y)


@pytest.mark.slow
def test_console_script_reads_false_as_false(xy):
    X, Y, x, y = xy
    script = Path(sys.executable).with_name("simmetrics")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    ok = subprocess.run([str(script), "score", str(x), str(y), "-m", "cka", "--param",
                         "debiased=False", "--param", "linear_cka.debiased=no", "--json"],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)[0]["value"] == simmetrics.LinearCKA().fit_score(X, Y)
    bad = subprocess.run([str(script), "score", str(x), str(y), "-m", "cka", "--param",
                          "debiased=maybe"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "debiased" in bad.stderr
