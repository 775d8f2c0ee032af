"""The bad-input catalogue: one case per row, run through every registered metric (and the
variants whose validation differs) wherever the case applies.

Each rejected case names its exact error type and a message pattern that names the argument
(X or Y) and the problem; each accepted case must give exactly the value of the equivalent
float64 numpy array. Validation lives in ``simmetrics._core.validation`` and every metric goes
through it (``Metric._validate``), so a row that fails for one metric points at an override.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse
import torch
from sklearn.base import clone
from threadpoolctl import threadpool_limits

import simmetrics
from tests.metric_configs import MATRIX_METRICS  # 3-D input metrics: their own suite

# Registered defaults, plus variants whose validation differs: a larger min_samples (debiased
# HSIC needs 4, MutualKNN k + 1), their own _validate (IntertwinerCKA with positions="sum",
# IntertwinerProcrustes with score_method="paper", which reads 4-D input as NCHW).
METRICS = [simmetrics.get_metric(name) for name in MATRIX_METRICS] + [
    simmetrics.LinearCKA(debiased=True),
    simmetrics.MutualKNN(k=3),
    simmetrics.RSA(rdm="euclidean"),
    simmetrics.IntertwinerCKA(positions="sum"),
    simmetrics.IntertwinerProcrustes(score_method="paper"),
]

N, DX, DY = 24, 4, 3
_rng = np.random.default_rng(0)
GOOD_X = _rng.normal(size=(N, DX)) @ _rng.normal(size=(DX, DX)) + 1.0
GOOD_Y = np.tanh(GOOD_X[:, :DY]) + 0.3 * _rng.normal(size=(N, DY))
MASK = np.eye(N, DX) > 0  # four entries, one per column


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    with threadpool_limits(limits=1):
        yield


def _below_minimum(metric):
    n = metric.min_samples - 1
    return GOOD_X[:n], GOOD_Y[:n]


def _min_message(metric):
    n = metric.min_samples - 1
    return ValueError, f"X has {n} samples, but this estimator needs at least {metric.min_samples}"


def _constant_message(metric):
    """What a representation without variance raises: the zero-variance check for every metric
    but these two: the RDM checks for RSA, and none for MutualKNN, where a constant
    representation makes every sample tie with every other, a case its tie rule defines."""
    if isinstance(metric, simmetrics.MutualKNN):
        return None
    if isinstance(metric, simmetrics.RSA):
        if metric.rdm == "correlation":
            return ValueError, "row 0 of X .* has zero variance across its neurons"
        return ValueError, "the RDM of X is constant"
    return ValueError, "X has zero variance: every neuron is constant"


# (id, make the inputs, expected (type, pattern) or a function of the metric giving it / None)
REJECTED = [
    ("NaN", lambda m: (np.where(MASK, np.nan, GOOD_X), GOOD_Y),
     (ValueError, "X contains 4 NaN and 0 infinite values")),
    ("inf", lambda m: (GOOD_X, np.where(MASK[:, :DY], np.inf, GOOD_Y)),
     (ValueError, "Y contains 0 NaN and 3 infinite values")),
    ("NaN and -inf", lambda m: (np.where(MASK, [np.nan, -np.inf, 1.0, 1.0], GOOD_X), GOOD_Y),
     (ValueError, "X contains 1 NaN and 1 infinite values")),
    ("NaN in a float32 tensor", lambda m: (GOOD_X, torch.from_numpy(
        np.where(MASK[:, :DY], np.nan, GOOD_Y)).float()),
     (ValueError, "Y contains 3 NaN and 0 infinite values")),
    ("empty: no samples", lambda m: (np.empty((0, DX)), GOOD_Y[:0]),
     (ValueError, r"X is empty: shape \(0, 4\)")),
    ("zero width", lambda m: (GOOD_X, np.empty((N, 0))),
     (ValueError, r"Y is empty: shape \(24, 0\)")),
    ("1-D", lambda m: (GOOD_X[:, 0], GOOD_Y),
     (ValueError, r"X must be 2-D \(n_samples, n_neurons\), got a 1-D array of shape \(24\)")),
    ("scalar", lambda m: (3.0, GOOD_Y), (ValueError, "X must be 2-D .* got a 0-D array")),
    ("3-D without a layout", lambda m: (GOOD_X, GOOD_Y.reshape(N, DY, 1)),
     (ValueError, "Y must be 2-D .* got a 3-D array .* pass layout=")),
    ("mismatched n", lambda m: (GOOD_X, GOOD_Y[:20]),
     (ValueError, "X and Y must have the same number of samples.*X has 24, Y has 20")),
    ("n below the minimum", _below_minimum, _min_message),
    ("object dtype", lambda m: (GOOD_X.astype(object), GOOD_Y),
     (TypeError, "X has non-numeric dtype object")),
    ("str dtype", lambda m: (GOOD_X.astype(str), GOOD_Y),
     (TypeError, "X has non-numeric dtype <U")),
    ("bytes", lambda m: (GOOD_X, b"activations"), (TypeError, "Y has non-numeric dtype |S")),
    ("datetime64", lambda m: (GOOD_X.astype("datetime64[s]"), GOOD_Y),
     (TypeError, r"X has non-numeric dtype datetime64\[s\]")),
    ("complex", lambda m: (GOOD_X + 1j, GOOD_Y), (TypeError, "X has complex dtype complex128")),
    ("bool", lambda m: (GOOD_X, GOOD_Y > 0), (TypeError, "Y has boolean dtype")),
    ("torch complex", lambda m: (torch.zeros(N, DX, dtype=torch.complex64), GOOD_Y),
     (TypeError, "X has complex dtype torch.complex64")),
    ("torch bool", lambda m: (GOOD_X, torch.zeros(N, DY, dtype=torch.bool)),
     (TypeError, "Y has boolean dtype")),
    ("scipy sparse matrix", lambda m: (scipy.sparse.csr_matrix(GOOD_X), GOOD_Y),
     (TypeError, r"X is a scipy sparse matrix.*pass X\.toarray\(\)")),
    ("scipy sparse array", lambda m: (GOOD_X, scipy.sparse.coo_array(GOOD_Y)),
     (TypeError, r"Y is a scipy sparse matrix.*pass Y\.toarray\(\)")),
    ("torch sparse", lambda m: (GOOD_X, torch.from_numpy(GOOD_Y).to_sparse()),
     (TypeError, r"Y is a sparse tensor \(torch.sparse_coo\); pass Y\.to_dense\(\)")),
    ("meta-device tensor", lambda m: (GOOD_X, torch.empty(N, DY, device="meta")),
     (TypeError, "Y is a tensor on the 'meta' device, which has a shape but no values")),
    ("masked array with masked entries", lambda m: (np.ma.masked_array(GOOD_X, mask=MASK), GOOD_Y),
     (ValueError, "X is a masked array with 4 masked entries")),
    ("ragged list", lambda m: ([[1.0, 2.0], [3.0]], GOOD_Y),
     (TypeError, "X cannot be read as a numeric array")),
    ("dict", lambda m: ({"a": GOOD_X}, GOOD_Y), (TypeError, "X has non-numeric dtype object")),
    ("None", lambda m: (GOOD_X, None), (TypeError, "Y is None")),
    ("pandas with a text column", lambda m: (_frame(GOOD_X).assign(label="a"), GOOD_Y),
     (TypeError, "X has non-numeric dtype object")),
    ("constant representation", lambda m: (np.full((N, DX), 3.0), GOOD_Y), _constant_message),
    ("all zeros", lambda m: (np.zeros((N, DX)), GOOD_Y), _constant_message),
]


def _frame(A):
    import pandas as pd  # a test dependency (pyproject's "test" extra)

    return pd.DataFrame(A, columns=[f"n{i}" for i in range(A.shape[1])])


def _rejected_params():
    params = []
    for row_id, make, expected in REJECTED:
        for metric in METRICS:
            exp = expected(metric) if callable(expected) else expected
            if exp is not None:
                params.append(pytest.param(metric, make, *exp, id=f"{row_id}-{metric!r}"))
    return params


@pytest.mark.parametrize("metric, make, error, message", _rejected_params())
def test_rejected_input(metric, make, error, message):
    X, Y = make(metric)
    with pytest.raises(error, match=message):
        clone(metric).fit_score(X, Y)


# -- layouts: a parameter of every metric -------------------------------------------------------
LAYOUT_ROWS = [
    ("unknown layout", "nwhc", GOOD_X.reshape(N, 2, 2, 1), GOOD_Y.reshape(N, DY, 1, 1),
     ValueError, r"parameter 'layout' must be None or one of 'flatten', 'nchw', 'nhwc', 'ntd', got 'nwhc'"),
    ("layout with the wrong number of axes", "nchw", GOOD_X, GOOD_Y,
     ValueError, r"X must be 4-D for layout='nchw', got a 2-D array of shape \(24, 4\)"),
    ("flatten of a 1-D array", "flatten", GOOD_X[:, 0], GOOD_Y,
     ValueError, "X must have at least 2 axes for layout='flatten', got 1"),
]


@pytest.mark.parametrize("metric", METRICS, ids=repr)
@pytest.mark.parametrize("layout, X, Y, error, message", [r[1:] for r in LAYOUT_ROWS],
                         ids=[r[0] for r in LAYOUT_ROWS])
def test_rejected_layout(metric, layout, X, Y, error, message):
    with pytest.raises(error, match=message):
        clone(metric).set_params(layout=layout).fit_score(X, Y)


# -- accepted input: exactly the value of the equivalent float64 array ---------------------------
def _memmap(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, GOOD_X)
    return np.load(path, mmap_mode="r")


def _grad(A):
    return torch.from_numpy(A.copy()).requires_grad_(True)


INTS = np.round(3 * GOOD_X).astype(np.int64)
HALF = GOOD_X.astype(np.float16)

# (id, make the given X from tmp_path, the float64 array it must equal)
ACCEPTED = [
    ("int64, cast", lambda t: INTS, INTS.astype(np.float64)),
    ("uint8, cast", lambda t: (INTS - INTS.min()).astype(np.uint8),
     (INTS - INTS.min()).astype(np.float64)),
    ("float32", lambda t: GOOD_X.astype(np.float32), GOOD_X.astype(np.float32).astype(float)),
    ("float16", lambda t: HALF, HALF.astype(np.float64)),
    ("list of lists", lambda t: GOOD_X.tolist(), GOOD_X),
    ("tuple of tuples", lambda t: tuple(map(tuple, GOOD_X)), GOOD_X),
    ("Fortran order", lambda t: np.asfortranarray(GOOD_X), GOOD_X),
    ("non-contiguous view", lambda t: np.repeat(GOOD_X, 2, axis=1)[:, ::2], GOOD_X),
    ("negative strides", lambda t: GOOD_X[::-1, ::-1], GOOD_X[::-1, ::-1].copy()),
    ("read-only array", lambda t: _read_only(GOOD_X), GOOD_X),
    ("memory-mapped .npy", _memmap, GOOD_X),
    ("numpy matrix", lambda t: _matrix(GOOD_X), GOOD_X),
    ("masked array, nothing masked", lambda t: np.ma.masked_array(GOOD_X), GOOD_X),
    ("pandas DataFrame", lambda t: _frame(GOOD_X), GOOD_X),
    ("torch float64", lambda t: torch.from_numpy(GOOD_X), GOOD_X),
    ("torch requiring grad", lambda t: _grad(GOOD_X), GOOD_X),
    ("torch float16", lambda t: torch.from_numpy(GOOD_X).half(),
     torch.from_numpy(GOOD_X).half().double().numpy()),
    ("torch bfloat16", lambda t: torch.from_numpy(GOOD_X).bfloat16(),
     torch.from_numpy(GOOD_X).bfloat16().double().numpy()),
    ("torch transposed view", lambda t: torch.from_numpy(GOOD_X.T.copy()).T, GOOD_X),
    ("torch int", lambda t: torch.from_numpy(INTS), INTS.astype(np.float64)),
]


def _matrix(A):
    with warnings.catch_warnings():  # numpy discourages the subclass; users still pass it
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.matrix(A)


def _read_only(A):
    A = A.copy()
    A.setflags(write=False)
    return A


@pytest.mark.parametrize("metric", METRICS, ids=repr)
@pytest.mark.parametrize("make, equivalent", [r[1:] for r in ACCEPTED],
                         ids=[r[0] for r in ACCEPTED])
def test_accepted_input_gives_the_value_of_its_float64_array(metric, make, equivalent, tmp_path):
    given = make(tmp_path)
    expected = clone(metric).fit_score(np.array(equivalent, dtype=np.float64), GOOD_Y)
    # same code, same input: validation turns each into the same C-contiguous float64 array
    # (CPU tensors included), so the value is bit-identical by construction
    assert clone(metric).fit_score(given, GOOD_Y) == expected


def test_requires_grad_tensor_keeps_its_graph_untouched():
    X = _grad(GOOD_X)
    simmetrics.LinearCKA().fit_score(X, GOOD_Y)
    assert X.requires_grad and X.grad is None and X.grad_fn is None


# Huge values: squares of 1e300 overflow float64. A metric whose value ignores the scale must
# give exactly what it gives at scale 1 (test_stability.py covers 1e-300, the homogeneous
# distances and the metrics with no such invariance).
def _huge_params():
    return [pytest.param(m, id=repr(m)) for m in METRICS if "isotropic_scaling" in m.invariances]


@pytest.mark.parametrize("metric", _huge_params())
def test_huge_values_do_not_overflow(metric):
    base = clone(metric).fit_score(GOOD_X, GOOD_Y)
    assert clone(metric).fit_score(1e300 * GOOD_X, 1e300 * GOOD_Y) == pytest.approx(
        base, abs=1e-9
    )
