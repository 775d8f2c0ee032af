"""simmetrics.pairwise: the matrix of one metric between every pair of representations, against
direct metric calls, and the joblib / progress-bar helpers behind it."""

import io

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone

import simmetrics
from simmetrics.metrics import cka, cka_gram
from simmetrics._core.parallel import Progress, parallel_map
from simmetrics.base import Metric
from simmetrics.pairwise import is_symmetric
from tests.metric_configs import CONFIGS, IDS, is_chun


def _layers(rng, n=40, widths=(5, 4, 6, 3)):
    X = rng.normal(size=(n, widths[0]))
    out = [X]
    for w in widths[1:]:
        out.append(np.tanh(out[-1] @ rng.normal(size=(out[-1].shape[1], w))) + 0.3 * rng.normal(
            size=(n, w)))
    return out


class _Recorder(Metric):
    """Test metric: records every (X, Y) it scores; the value X[0, 0] - 2 Y[0, 0] tells the
    orientation of a pair."""

    kind = "similarity"
    bounds = (-np.inf, np.inf)
    reference = "test"
    calls = []

    def __init__(self, layout=None):
        self.layout = layout

    def _score(self, X, Y):
        _Recorder.calls.append((X[0, 0], Y[0, 0]))
        return X[0, 0] - 2.0 * Y[0, 0]


class _SymmetricRecorder(_Recorder):
    symmetric = True


def _marked(L, n=5):
    # representation i has X[0, 0] = i, so a recorded call says which pair it was
    return [np.column_stack([np.r_[i, np.arange(1.0, n)], np.arange(n) ** 2.0]) for i in range(L)]


def test_matrix_equals_direct_calls_for_every_ordered_pair(rng):
    # Expected: one fit_score per ordered pair, computed here without pairwise.
    layers = _layers(rng)
    for name in ("linear_cka", "pwcca", "procrustes"):
        M = simmetrics.pairwise(name, layers)
        direct = np.array([[simmetrics.get_metric(name).fit_score(a, b) for b in layers]
                           for a in layers])
        assert M.shape == (4, 4)
        np.testing.assert_allclose(M, direct, rtol=0, atol=1e-12)


def _varied_layers(rng, metric, n=60):
    """Four representations of the same stimuli: related, of different widths (one width
    for metrics that need equal widths), post-ReLU-like for the intertwiner metrics."""
    widths = (5, 5, 5, 5) if metric.same_width else (5, 7, 4, 6)
    X = rng.normal(size=(n, widths[0]))
    if is_chun(metric):
        # Chun et al.'s CKA refuses uncorrelated neurons (a documented ValueError): mixing
        # them with their sum gives every pair of neurons a covariance of 7 (variances 8)
        X = X @ (np.eye(widths[0]) + 1.0)
    out = [X]
    for w in widths[1:]:
        out.append(np.tanh(out[-1] @ rng.normal(size=(out[-1].shape[1], w)))
                   + 0.3 * rng.normal(size=(n, w)) + rng.normal(size=w))
    if "Intertwiner" in type(metric).__name__:
        out = [np.maximum(A, 0.0) + 0.01 for A in out]
    return out


@pytest.mark.parametrize("metric", CONFIGS, ids=IDS)
def test_every_metric_matrix_is_its_fit_score(rng, metric):
    # Expected: fit_score on each pair, called directly. Metrics with a per-representation step
    # run the same two steps in pairwise (up to rounding: a state paired with itself takes a
    # symmetric product); mirrored entries of symmetric metrics are the other order.
    layers = _varied_layers(rng, metric)
    M = simmetrics.pairwise(metric, layers)
    direct = np.array([[clone(metric).fit_score(a, b) for b in layers] for a in layers])
    np.testing.assert_allclose(M, direct, rtol=1e-12, atol=1e-12)
    # a second list: every (i, j) computed, none mirrored
    R = simmetrics.pairwise(metric, layers[:2], layers[1:])
    np.testing.assert_allclose(R, M[:2, 1:], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("metric", CONFIGS, ids=IDS)
def test_declared_symmetry_is_measured(rng, metric):
    # Expected: swapping X and Y leaves a symmetric metric's value unchanged to rounding;
    # an asymmetric one (PWCCA weighting by one side) moves clearly on some pair.
    layers = _varied_layers(rng, metric)
    swaps = [abs(clone(metric).fit_score(a, b) - clone(metric).fit_score(b, a))
             for a, b in ((layers[0], layers[1]), (layers[1], layers[2]), (layers[0], layers[3]))]
    if is_symmetric(metric):
        assert max(swaps) < 1e-10, swaps
    else:
        assert max(swaps) > 1e-4, swaps


def test_per_representation_work_is_done_once(rng, monkeypatch):
    # Expected: L preparations and one pair step per computed pair (counted), with values
    # equal to fit_score's.
    calls = {"prepare": 0, "pair": 0}
    prepare, pair = simmetrics.CCA._partial_fit, simmetrics.CCA._finalize_fit_score

    def counted_prepare(self, A, name):
        calls["prepare"] += 1
        return prepare(self, A, name)

    def counted_pair(self, a, b):
        calls["pair"] += 1
        return pair(self, a, b)

    monkeypatch.setattr(simmetrics.CCA, "_partial_fit", counted_prepare)
    monkeypatch.setattr(simmetrics.CCA, "_finalize_fit_score", counted_pair)
    layers = _layers(rng, widths=(5, 4, 6, 3, 2))
    M = simmetrics.pairwise("cca", layers)
    assert calls == {"prepare": 5, "pair": 15}  # 5 + 4 + ... + 1 unordered pairs
    # same code, same input: fit_score runs the same _partial_fit and pair step (Metric._fit_score)
    assert M[1, 3] == simmetrics.CCA().fit_score(layers[1], layers[3])


def test_linear_cka_chooses_gram_space_by_cost(rng, monkeypatch):
    # Expected: the feature-space fit_score of each pair. Many wide layers and few stimuli
    # make the tiled Gram route cheaper; small tiles exercise the tiling, odd sizes included.
    n = 45
    layers = [rng.normal(size=(n, w)) + 5.0 * rng.normal(size=w) for w in (30, 41, 25, 60, 33)]
    layers[2] = np.tanh(layers[0][:, :25]) + 0.2 * layers[2]
    widths = [A.shape[1] for A in layers]
    assert cka_gram.gram_cheaper(n, widths, [(i, j) for i in range(5) for j in range(i, 5)])
    assert not cka_gram.gram_cheaper(10 * sum(widths), widths, [(0, 1)])
    used = []
    original = cka.gram_space_cka
    monkeypatch.setattr(cka, "gram_space_cka", lambda *a, **k: used.append(1) or original(*a, **k))
    monkeypatch.setattr(cka_gram, "_GRAM_TILE", 16)
    for debiased in (False, True):
        metric = simmetrics.LinearCKA(debiased=debiased)
        M = simmetrics.pairwise(metric, layers)
        expected = np.array([[cka.linear_cka_from_moments(cka.pair_from_sides(
            cka._feature_side(a, "X", debiased), cka._feature_side(b, "Y", debiased)), debiased)
            for b in layers] for a in layers])
        np.testing.assert_allclose(M, expected, rtol=0, atol=1e-12)
        R = simmetrics.pairwise(metric, layers[:2], layers[2:])
        np.testing.assert_allclose(R, expected[:2, 2:], rtol=0, atol=1e-12)
    assert len(used) == 4
    # tall data: feature space, the same numbers
    tall = [np.vstack([A] * 3) for A in layers[:2]]
    assert simmetrics.pairwise("linear_cka", tall)[0, 1] == pytest.approx(
        simmetrics.LinearCKA().fit_score(*tall), abs=1e-12)
    assert len(used) == 4


def test_gram_tiles_any_size_give_the_same_values(rng):
    # Expected: linear_cka (one pair, untiled) for every tile size, the kernel's edge included.
    layers = [rng.normal(size=(37, w)) for w in (50, 45)]
    reference = cka.linear_cka(*layers)
    for block_bytes in (2**10, 2**13, 2**20):
        assert cka.gram_space_cka(layers, [(0, 1)], block_bytes=block_bytes)[0] == \
            pytest.approx(reference, abs=1e-12)
    debiased = cka.linear_cka(*layers, debiased=True)
    assert cka.gram_space_cka(layers, [(0, 1)], True, block_bytes=2**10)[0] == \
        pytest.approx(debiased, abs=1e-12)


def test_each_unordered_pair_once_with_the_diagonal_when_declared_symmetric():
    _Recorder.calls.clear()
    M = simmetrics.pairwise(_SymmetricRecorder(), _marked(4))
    pairs = sorted((int(x), int(y)) for x, y in _Recorder.calls)
    assert pairs == [(i, j) for i in range(4) for j in range(i, 4)]  # diagonal included
    # upper triangle from the calls, lower triangle mirrored
    i, j = np.triu_indices(4)
    np.testing.assert_array_equal(M[i, j], i - 2.0 * j)
    np.testing.assert_array_equal(M, np.triu(M) + np.triu(M, 1).T)


def test_every_ordered_pair_otherwise_with_row_as_x():
    _Recorder.calls.clear()
    M = simmetrics.pairwise(_Recorder(), _marked(3))
    assert sorted((int(x), int(y)) for x, y in _Recorder.calls) == [
        (i, j) for i in range(3) for j in range(3)
    ]
    i, j = np.indices((3, 3))
    np.testing.assert_array_equal(M, i - 2.0 * j)  # M[i, j] = metric(reps[i], reps[j])


def test_is_symmetric_reads_the_attribute_then_is_metric():
    assert is_symmetric(simmetrics.OrthogonalProcrustes())
    assert not is_symmetric(simmetrics.PWCCA())
    assert not is_symmetric(_Recorder()) and is_symmetric(_SymmetricRecorder())

    class NotSymmetric(_Recorder):
        is_metric = True
        symmetric = False

    assert not is_symmetric(NotSymmetric())


def test_two_lists_give_a_rectangular_matrix(rng):
    first, second = _layers(rng)[:2], _layers(rng, widths=(3, 7, 2))
    M = simmetrics.pairwise("linear_cka", first, second)
    assert M.shape == (2, 3)
    # same code, same input: at n = 40 and these widths pairwise and fit_score both take the
    # feature-space route (_partial_fit, then the pair step), so the values are bit-identical
    for i, a in enumerate(first):
        for j, b in enumerate(second):
            assert M[i, j] == simmetrics.LinearCKA().fit_score(a, b)


def test_metric_instance_is_cloned_and_parameters_kept(rng):
    layers = _layers(rng)
    metric = simmetrics.LinearCKA(debiased=True)
    M = simmetrics.pairwise(metric, layers)
    assert M[0, 1] == simmetrics.LinearCKA(debiased=True).fit_score(layers[0], layers[1])
    assert not hasattr(metric, "n_features_x_")  # the instance given was never fitted


def test_torch_inputs_and_layouts(rng):
    layers = _layers(rng)
    # same code, same input: CPU tensors are validated to the same float64 arrays
    M = simmetrics.pairwise("linear_cka", [torch.from_numpy(a) for a in layers])
    np.testing.assert_array_equal(M, simmetrics.pairwise("linear_cka", layers))
    conv = [rng.normal(size=(6, 3, 2, 2)), rng.normal(size=(6, 4, 2, 2))]
    C = simmetrics.pairwise(simmetrics.LinearCKA(layout="nchw"), conv)
    assert C[0, 1] == simmetrics.LinearCKA(layout="nchw").fit_score(*conv)


@pytest.mark.slow
def test_parallel_results_are_identical(rng):
    # each entry is computed by the same code on the same pair, whichever worker runs it,
    # and nothing is summed across pairs: bit-identical by construction
    layers = _layers(rng)
    serial = simmetrics.pairwise("procrustes", layers)
    np.testing.assert_array_equal(simmetrics.pairwise("procrustes", layers, n_jobs=2), serial)
    with joblib.parallel_backend("threading", n_jobs=2):  # a backend context is honoured
        np.testing.assert_array_equal(simmetrics.pairwise("procrustes", layers), serial)


def test_progress_bar_on_stderr(rng, capsys):
    # one bar: 4 representations, then the 10 unordered pairs of a symmetric metric
    simmetrics.pairwise("linear_cka", _layers(rng), progress=True)
    err = capsys.readouterr().err
    assert "100%" in err and "14/14" in err and err.endswith("\n") and err.count("\n") == 1
    simmetrics.pairwise("linear_cka", _layers(rng))
    assert capsys.readouterr().err == ""
    simmetrics.pairwise(simmetrics.IntertwinerProcrustes(), _layers(rng), progress=True)
    assert "10/10" in capsys.readouterr().err  # no per-representation step: the pairs only


def test_bad_input(rng):
    layers = _layers(rng)
    with pytest.raises(ValueError, match=r"same stimuli \(first axis\): reps\[0\] has 40, "
                                         r"reps\[2\] has 39"):
        simmetrics.pairwise("linear_cka", [layers[0], layers[1], layers[2][:-1]])
    with pytest.raises(ValueError, match=r"reps2\[0\] has 10"):
        simmetrics.pairwise("linear_cka", layers, [layers[0][:10]])
    with pytest.raises(TypeError, match="reps must be a list of representations"):
        simmetrics.pairwise("linear_cka", layers[0])
    with pytest.raises(ValueError, match="reps is empty"):
        simmetrics.pairwise("linear_cka", [])
    with pytest.raises(ValueError, match="did you mean 'linear_cka'"):
        simmetrics.pairwise("linear_ckaa", layers)
    with pytest.raises(TypeError, match="metric must be"):
        simmetrics.pairwise(42, layers)
    # a representation the metric rejects is named: mutual_knn needs more stimuli than 5
    small = [a[:5] for a in layers]
    with pytest.raises(ValueError, match=r"k=10 must be smaller .* reps\[0\] has 5 samples"):
        simmetrics.pairwise("mutual_knn", small)
    constant = [layers[0], np.ones((40, 2))]
    with pytest.raises(ValueError, match=r"reps\[1\] has zero variance"):
        simmetrics.pairwise("cca", constant)
    with pytest.raises(ValueError, match=r"reps2\[0\] contains 1 NaN"):
        simmetrics.pairwise("procrustes", layers, [np.where(layers[0] > 2.5, np.nan, 0.1)])
    # a pair the metric rejects is named: the aligned data vanish for held-out... here, an
    # asymmetric failure of the generic path
    with pytest.raises(ValueError, match=r"reps\[0\] vs reps\[1\]: X and Y have spatial"):
        simmetrics.pairwise(simmetrics.IntertwinerProcrustes(score_method="paper"),
                            [rng.normal(size=(3, 2, 3, 3)), rng.normal(size=(3, 2, 2, 2))])


def test_progress_helper_draws_only_when_enabled():
    out = io.StringIO()
    with Progress(3, "x", enabled=False, stream=out) as bar:
        bar.update(3)
    assert out.getvalue() == ""
    with Progress(10, "job", enabled=True, stream=out, min_interval=0) as bar:
        bar.update(4)
        bar.update(100)  # clipped to the total
    lines = out.getvalue().split("\r")
    assert lines[-1].startswith("job: 100% |") and "10/10" in lines[-1]
    assert any(x.startswith("job:  40% |") for x in lines)


def test_parallel_map_keeps_task_order_with_progress(capsys):
    # sizes advance the bar by the work each task holds
    assert parallel_map(divmod, [(7, 2), (9, 4), (1, 1)], n_jobs=2, progress=True,
                        desc="d", sizes=[5, 5, 5]) == [(3, 1), (2, 1), (1, 0)]
    assert "15/15" in capsys.readouterr().err
    with joblib.parallel_backend("multiprocessing", n_jobs=2):  # no generator: still works
        assert parallel_map(divmod, [(7, 2), (9, 4)], progress=True) == [(3, 1), (2, 1)]
