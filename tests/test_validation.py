"""Bad input: one case per row, each with its exact error type and a message naming the
argument and the problem. Run through a real metric (LinearCKA) so the whole path is covered."""

import numpy as np
import pytest
import scipy.sparse
import torch

from simmetrics import LinearCKA
from simmetrics._validation import check_pair, check_random_state, check_representation

rng = np.random.default_rng(0)
GOOD = rng.normal(size=(20, 3))


def _with(value):
    return value


CASES = [
    # (id, X, Y, error type, message pattern)
    ("nan", np.where(np.eye(20, 3) > 0, np.nan, GOOD), GOOD, ValueError, "X contains 3 NaN and 0 infinite"),
    ("inf", GOOD, np.where(np.eye(20, 3) > 0, np.inf, GOOD), ValueError, "Y contains 0 NaN and 3 infinite"),
    ("empty rows", np.empty((0, 3)), GOOD, ValueError, r"X is empty: shape \(0, 3\)"),
    ("empty columns", GOOD, np.empty((20, 0)), ValueError, r"Y is empty: shape \(20, 0\)"),
    ("1-D", GOOD[:, 0], GOOD, ValueError, "X must be 2-D .* got a 1-D array"),
    ("scalar", 3.0, GOOD, ValueError, "X must be 2-D .* got a 0-D array"),
    ("3-D without layout", GOOD, GOOD.reshape(20, 3, 1), ValueError, "Y must be 2-D .* pass layout="),
    ("mismatched n", GOOD, GOOD[:15], ValueError, "X has 20, Y has 15"),
    ("one sample", GOOD[:1], GOOD[:1], ValueError, "X has 1 samples, but this estimator needs at least 2"),
    ("object dtype", GOOD.astype(object), GOOD, TypeError, "X has non-numeric dtype object"),
    ("str dtype", GOOD.astype(str), GOOD, TypeError, "X has non-numeric dtype <U"),
    ("complex", GOOD + 1j, GOOD, TypeError, "X has complex dtype"),
    ("bool", GOOD, GOOD > 0, TypeError, "Y has boolean dtype"),
    ("torch complex", torch.zeros(20, 3, dtype=torch.complex64), GOOD, TypeError, "X has complex dtype"),
    ("torch bool", GOOD, torch.zeros(20, 3, dtype=torch.bool), TypeError, "Y has boolean dtype"),
    ("scipy sparse", scipy.sparse.csr_matrix(GOOD), GOOD, TypeError, r"X is a scipy sparse matrix.*toarray"),
    ("ragged list", [[1.0, 2.0], [3.0]], GOOD, TypeError, "X cannot be read as a numeric array"),
    ("None", None, GOOD, TypeError, "X is None"),
    ("constant representation", np.ones((20, 3)), GOOD, ValueError, "X has zero variance"),
]


@pytest.mark.parametrize("X, Y, error, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_catalogue(X, Y, error, message):
    with pytest.raises(error, match=message):
        LinearCKA().fit_score(X, Y)


ACCEPTED = [
    ("int", GOOD.round().astype(np.int64) + np.arange(3), GOOD.round() + np.arange(3)),
    ("float32", GOOD.astype(np.float32), GOOD.astype(np.float32).astype(np.float64)),
    ("list", GOOD.tolist(), GOOD),
    ("non-contiguous view", np.asfortranarray(GOOD)[:, ::1], GOOD),
    ("torch float16", torch.from_numpy(GOOD).half(), torch.from_numpy(GOOD).half().double().numpy()),
    ("torch transposed view", torch.from_numpy(GOOD.T.copy()).T, GOOD),
]


@pytest.mark.parametrize("given, equivalent", [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_accepted_inputs_are_cast_exactly(given, equivalent):
    other = np.random.default_rng(1).normal(size=(20, 4))
    assert LinearCKA().fit_score(given, other) == LinearCKA().fit_score(
        np.asarray(equivalent, dtype=np.float64), other
    )


def test_memory_mapped_input(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, GOOD)
    mm = np.load(path, mmap_mode="r")
    assert LinearCKA().fit_score(mm, GOOD) == pytest.approx(1.0, abs=1e-12)


def test_pandas_dataframe_input():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(GOOD, columns=["a", "b", "c"])
    assert LinearCKA().fit_score(frame, GOOD) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    "layout, shape, expected",
    [("nchw", (5, 3, 2, 2), (20, 3)), ("nhwc", (5, 2, 2, 3), (20, 3)), ("ntd", (5, 4, 3), (20, 3)),
     ("flatten", (5, 3, 2, 2), (5, 12))],
)
def test_layouts(layout, shape, expected):
    A = np.arange(np.prod(shape), dtype=float).reshape(shape)
    assert check_representation(A, layout=layout).shape == expected


def test_nchw_keeps_channels_as_columns():
    A = np.random.default_rng(2).normal(size=(2, 3, 2, 2))
    M = check_representation(A, layout="nchw")
    np.testing.assert_array_equal(M[:, 1], A[:, 1].reshape(-1))


def test_layout_errors():
    with pytest.raises(ValueError, match="layout must be None or one of"):
        check_representation(GOOD, layout="nwhc")
    with pytest.raises(ValueError, match=r"X must be 4-D for layout='nchw', got a 2-D"):
        check_representation(GOOD, layout="nchw")


def test_same_width_requirement():
    with pytest.raises(ValueError, match="X has 3, Y has 2"):
        check_pair(GOOD, GOOD[:, :2], same_width=True)


def test_random_state_never_touches_global_state():
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    check_random_state(None).normal(size=10)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    with pytest.raises(TypeError, match="random_state must be"):
        check_random_state("seed")
