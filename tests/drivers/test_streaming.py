"""stream_score gives the full-data value from batches (numpy, torch, dask chunks); the minibatch
CKA of Nguyen et al. 2021 is a different estimator."""

import tracemalloc

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import simmetrics
from simmetrics import (
    CCA,
    PWCCA,
    SVCCA,
    IntertwinerProcrustes,
    LinearCKA,
    MinibatchCKA,
    OrthogonalProcrustes,
    ShapeMetric,
    minibatch_cka,
    score_from_moments,
    stream_moments,
    stream_score,
    streaming_metrics,
)
from simmetrics.metrics.cka import linear_cka

from metric_configs import CONFIGS

# Every metric with an exact streaming path, in every parameter setting of the shared list
# (tests/metric_configs.py): whatever the registry declares streamable is held to it, but for
# the settings listed in CANNOT_STREAM, whose value is not a function of the second moments
# (test_settings_that_cannot_stream_say_which_and_why checks that they refuse, and that no
# other setting does).
CANNOT_STREAM = {
    # Chun et al.'s feature correction needs each neuron's fourth moments (LinearCKA's docstring)
    "LinearCKA(estimator='chun')",
}
METRICS = [m for m in CONFIGS
           if type(m).name in streaming_metrics() and repr(m) not in CANNOT_STREAM]


def _data(rng, n=700, dx=7, dy=5):
    """Well-conditioned, related, non-negative (ReLU-like) data with non-zero means."""
    X = np.maximum(rng.normal(size=(n, dx)) * np.linspace(1.0, 2.0, dx) + 0.5, 0.0) + 0.1 * (
        rng.normal(size=(n, dx)))
    Y = np.maximum(X[:, :dy] @ rng.normal(size=(dy, dy)) + rng.normal(size=(n, dy)), 0.0) + 3.0
    return X, Y


def _batches(X, Y, cuts):
    return list(zip(np.split(X, cuts), np.split(Y, cuts)))


CUTS = [1, 2, 90, 91, 400, 650]  # uneven, with batches of a single row


def test_every_second_moment_metric_streams():
    expected = {"linear_cka", "cca", "svcca", "pwcca", "shape_metric", "procrustes",
                "permutation_metric", "intertwiner_procrustes", "soft_matching",
                # issue 14's measures that are functions of the second moments
                "nbs", "bures_distance", "ensd", "ensd_distance", "affine_invariant_riemannian",
                "gulp", "linear_regression", "eigenspace_overlap", "magnitude_difference",
                # issue 15's: linear (its default), ridge and neuron-to-neuron predictivity
                "linear_predictivity"}
    assert set(streaming_metrics()) == expected
    assert {type(m).name for m in METRICS} == expected


@pytest.mark.parametrize("metric", METRICS, ids=repr)
def test_stream_score_equals_the_full_data_value(metric, rng):
    # expected: fit_score on all rows at once (the whole-data estimator)
    X, Y = _data(rng)
    metric, reference = clone(metric), clone(metric)
    full = reference.fit_score(X, Y)
    streamed = stream_score(metric, iter(_batches(X, Y, CUTS)))
    assert streamed == pytest.approx(full, rel=1e-10)
    # the stream also fits what fit learns
    for name in ("rotation_", "permutation_", "alignment_", "canonical_correlations_",
                 "weights_x_", "n_components_x_", "plan_"):
        if getattr(reference, name, None) is not None:
            np.testing.assert_allclose(getattr(metric, name), getattr(reference, name),
                                       rtol=1e-9, atol=1e-9, err_msg=name)


ALIGNING = [m for m in METRICS if isinstance(m, simmetrics.AlignmentMetric)]


@pytest.mark.parametrize("metric", ALIGNING, ids=repr)
def test_fit_on_one_stream_score_another(metric, rng):
    # expected: fit on the training rows, score on the held-out rows, whole data
    X, Y = _data(rng, n=900)
    metric = clone(metric)
    reference = clone(metric).fit(X[:600], Y[:600]).score(X[600:], Y[600:])
    stream_score(metric, _batches(X[:600], Y[:600], [200, 400]))
    held_out = stream_score(metric, _batches(X[600:], Y[600:], [100]), fit=False)
    assert held_out == pytest.approx(reference, rel=1e-10)


def test_torch_batches_match_numpy(rng):
    # expected: the numpy stream (float64), and the whole-data value
    X, Y = _data(rng)
    for metric in (LinearCKA(), LinearCKA(debiased=True), CCA(), OrthogonalProcrustes()):
        numpy_value = stream_score(metric, _batches(X, Y, CUTS))
        torch_batches = [(torch.from_numpy(a), torch.from_numpy(b))
                         for a, b in _batches(X, Y, CUTS)]
        assert stream_score(metric, torch_batches) == pytest.approx(numpy_value, rel=1e-12)


def test_float32_torch_batches_match_float64_numpy(rng):
    # expected: float64 numpy on the float32-rounded data (to 1e-10: only summation order
    # differs) and on the original float64 data (to 1e-6: the rounding of the input itself)
    X, Y = _data(rng)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    batches32 = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in _batches(X32, Y32, CUTS)]
    for metric in (LinearCKA(), LinearCKA(debiased=True), PWCCA()):
        rounded = clone(metric).fit_score(X32.astype(np.float64),
                                                                Y32.astype(np.float64))
        value = stream_score(metric, batches32)
        assert value == pytest.approx(rounded, rel=1e-10)
        assert value == pytest.approx(clone(metric).fit_score(X, Y),
                                      rel=1e-6)
    half = [(a.half(), b.half()) for a, b in batches32]
    assert np.isfinite(stream_score(LinearCKA(), half))


def test_linear_cka_of_torch_tensors_keeps_them_on_their_device(rng):
    # expected: linear_cka of the numpy arrays (feature-space route on both)
    X, Y = _data(rng)
    for debiased in (False, True):
        on_device = linear_cka(torch.from_numpy(X), torch.from_numpy(Y), debiased=debiased)
        assert on_device == pytest.approx(linear_cka(X, Y, debiased=debiased), rel=1e-12)
        # float32 tensors: the products in float64 on the device
        Y32 = Y.astype(np.float32)
        assert linear_cka(torch.from_numpy(X), torch.from_numpy(Y32), debiased=debiased) == \
            pytest.approx(linear_cka(X, Y32.astype(np.float64), debiased=debiased), rel=1e-12)
    # a tiny scale and a large offset change nothing
    assert linear_cka(torch.from_numpy(1e-200 * X + 1e6 * 1e-200), torch.from_numpy(Y)) == \
        pytest.approx(linear_cka(X, Y), rel=1e-10)


def test_conv_layout_batches(rng, seed7):
    # expected: fit_score of the whole (n, c, h, w) arrays with the same layout
    H1, H2 = seed7["Hc1"], seed7["Hc2"]
    for metric in (LinearCKA(layout="nchw"), CCA(layout="nchw"),
                   IntertwinerProcrustes(score_method="paper")):  # paper: 4-D read as nchw
        full = clone(metric).fit_score(H1, H2)
        batches = [(H1[i:i + 16], H2[i:i + 16]) for i in range(0, len(H1), 16)]
        assert stream_score(metric, batches) == pytest.approx(full, rel=1e-10)


def test_duplicate_and_constant_neurons_stream_like_whole_data(rng):
    # expected: whole-data CCA/PWCCA, which drop rank-deficient directions
    X, Y = _data(rng)
    padded = np.hstack([X, X[:, :2], np.full((len(X), 1), 5.0)])
    for metric in (CCA(), PWCCA(side="y"), SVCCA(variance=1.0)):
        full = clone(metric).fit_score(padded, Y)
        assert stream_score(metric, _batches(padded, Y, CUTS)) == pytest.approx(full, rel=1e-9)


def test_statistics_from_dask_chunks_add_up(rng):
    # A reduction over the chunks of dask arrays: per-chunk statistics, summed in a tree by
    # dask's threads, give the full-data value (expected: fit_score on the numpy arrays).
    import dask
    import dask.array as da

    X, Y = _data(rng, n=1000)
    dX = da.from_array(X, chunks=(137, X.shape[1]))
    dY = da.from_array(Y, chunks=(137, Y.shape[1]))
    parts = [dask.delayed(simmetrics.moments.moments)(a, b)
             for a, b in zip(dX.to_delayed().ravel(), dY.to_delayed().ravel())]
    while len(parts) > 1:  # a binary tree of merges, as separate workers would combine them
        parts = [dask.delayed(sum)(parts[i:i + 2]) for i in range(0, len(parts), 2)]
    (total,) = dask.compute(parts[0], scheduler="threads")
    assert total.n == 1000
    for metric in (LinearCKA(debiased=True), PWCCA(), ShapeMetric(alpha=0.5)):
        full = clone(metric).fit_score(X, Y)
        assert score_from_moments(metric, total) == pytest.approx(full, rel=1e-10)


def test_memory_does_not_grow_with_the_number_of_rows():
    # 400,000 rows of 2 x 16 float64 (100 MB if held) generated batch by batch: the stream
    # keeps O(d^2) statistics, so its peak stays near one batch (256 KB) plus small overhead.
    gen = np.random.default_rng(0)
    W = gen.normal(size=(16, 16))

    def batches():
        for _ in range(200):
            X = gen.normal(size=(2000, 16))
            yield X, X @ W + gen.normal(size=(2000, 16))

    tracemalloc.start()
    value = stream_score(LinearCKA(debiased=True), batches())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert 0.0 < value < 1.0
    assert peak < 3_000_000


def test_minibatch_cka_is_a_different_estimator(rng):
    # Population CKA of X ~ N(0, I), Y = X A + s E (closed form from the covariances):
    # ||A||_F^2 / (||I||_F ||A'A + s^2 I||_F). Minibatch CKA estimates it; it is not equal to
    # the full-data debiased CKA, which stream_score computes exactly.
    d, s = 4, 1.5
    A = rng.normal(size=(d, d))
    population = np.sum(A**2) / (np.sqrt(d) * np.linalg.norm(A.T @ A + s**2 * np.eye(d)))
    X = rng.normal(size=(64_000, d))
    Y = X @ A + s * rng.normal(size=(64_000, d))
    batches = [(X[i:i + 128], Y[i:i + 128]) for i in range(0, 64_000, 128)]
    minibatch = minibatch_cka(batches)
    exact = stream_score(LinearCKA(debiased=True), batches)
    assert minibatch == pytest.approx(population, abs=0.01)
    assert exact == pytest.approx(population, abs=0.01)
    assert abs(minibatch - exact) > 1e-6
    # its value depends on how the rows are grouped; the exact value does not
    order = rng.permutation(64_000)
    regrouped = [(X[order[i:i + 128]], Y[order[i:i + 128]]) for i in range(0, 64_000, 128)]
    assert abs(minibatch_cka(regrouped) - minibatch) > 1e-6
    assert stream_score(LinearCKA(debiased=True), regrouped) == pytest.approx(exact, rel=1e-10)


def test_minibatch_cka_of_one_batch_is_debiased_cka(rng):
    # expected: LinearCKA(debiased=True) on that batch (the definitions coincide for k = 1)
    X, Y = _data(rng, n=200)
    assert minibatch_cka([(X, Y)]) == pytest.approx(LinearCKA(debiased=True).fit_score(X, Y),
                                                    rel=1e-12)
    mb = MinibatchCKA().update(torch.from_numpy(X).float(), torch.from_numpy(Y).float())
    assert mb.value == pytest.approx(
        LinearCKA(debiased=True).fit_score(X.astype(np.float32), Y.astype(np.float32)),
        rel=1e-10)
    assert mb.reset().n_batches_ == 0
    with pytest.raises(ValueError, match="has seen no batch"):
        mb.value
    with pytest.raises(ValueError, match="batch 1: X has 3 samples, but this estimator needs at"):
        minibatch_cka([(X[:10], Y[:10]), (X[:3], Y[:3])])


def test_settings_that_cannot_stream_say_which_and_why(rng):
    # a class that streams in other settings: the message names this setting (not the class,
    # which the list of streaming metrics names too), says that it is the setting, and points
    # to fit_score and to a setting that streams
    X, Y = _data(rng, n=50)
    refusing = [m for m in CONFIGS if type(m).name in streaming_metrics()
                and repr(m) not in {repr(k) for k in METRICS}]
    assert {repr(m) for m in refusing} == CANNOT_STREAM
    for metric in refusing:
        with pytest.raises(TypeError) as error:
            stream_score(clone(metric), [(X, Y)])
        message = str(error.value)
        assert message.startswith(f"{metric!r} cannot be computed from batches: with these "
                                  "parameters its value is not a function of the second "
                                  "moments"), message
        assert "fit_score" in message and f"{type(metric).__name__}() streams" in message
    with pytest.raises(TypeError, match=r"LinearCKA\(estimator='chun'\) cannot be computed "
                                        r"from batches: with these parameters"):
        stream_score(LinearCKA(estimator="chun"), [(X, Y)])


def test_bad_streams_are_errors(rng):
    X, Y = _data(rng, n=50)
    with pytest.raises(TypeError, match="RSA cannot be computed from batches.*LinearCKA"):
        stream_score(simmetrics.RSA(), [(X, Y)])
    with pytest.raises(TypeError, match="IntertwinerCKA cannot be computed from batches"):
        stream_score("intertwiner_cka", [(X, Y)])
    with pytest.raises(TypeError, match="metric must be a simmetrics metric"):
        stream_score(np.mean, [(X, Y)])
    with pytest.raises(TypeError, match="batch 0 must be a pair"):
        stream_score(LinearCKA(), [X])
    with pytest.raises(TypeError, match="batches must be an iterable"):
        stream_score(LinearCKA(), 3)
    with pytest.raises(ValueError, match="batches is empty"):
        stream_score(LinearCKA(), [])
    bad = Y.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="batch 1: Y contains 1 NaN"):
        stream_score(LinearCKA(), [(X, Y), (X, bad)])
    with pytest.raises(ValueError, match="batch 1: X and Y have 7 and 4 neurons, but the earlier"):
        stream_score(LinearCKA(), [(X, Y), (X, Y[:, :4])])
    with pytest.raises(ValueError, match="the batches hold 3 samples, but this estimator needs "
                                         "at least 4"):
        stream_score(LinearCKA(debiased=True), [(X[:1], Y[:1]), (X[1:3], Y[1:3])])
    with pytest.raises(ValueError, match="X has zero variance"):
        stream_score(CCA(), [(np.ones((5, 2)), Y[:5]), (np.ones((5, 2)), Y[5:10])])
    with pytest.raises(ValueError, match="X is all zeros"):
        stream_score(ShapeMetric(center_columns=False), [(np.zeros((5, 2)), Y[:5])])
    with pytest.raises(ValueError, match="needs the row-norm statistics"):
        score_from_moments(LinearCKA(debiased=True), stream_moments([(X, Y)], row_terms=False))
    with pytest.raises(TypeError, match="stats must be PairMoments"):
        score_from_moments(LinearCKA(), (X, Y))
    with pytest.raises(NotFittedError):
        stream_score(OrthogonalProcrustes(), [(X, Y)], fit=False)
    fitted = OrthogonalProcrustes().fit(X, Y)
    with pytest.raises(ValueError, match="fitted with"):
        stream_score(fitted, [(X[:, :-1], Y)], fit=False)
    with pytest.raises(ValueError, match="parameter 'score_method' must be one of"):
        stream_score(ShapeMetric(score_method="cosine"), [(X, Y)])


def test_means_that_floats_cannot_hold_cost_no_digits(rng):
    # Activations of 1e8 +- 1e-4: the mean is only known to 1.5e-8 as a float. Expected: the
    # RV-coefficient formula on data centred in two passes (exact here: x - mean is exact for x
    # within a factor 2 of the mean, Sterbenz), which the old one-pass-mean route missed by 1e-9.
    X = rng.normal(size=(300, 8))
    Y = X[:, :5] @ rng.normal(size=(5, 5)) + rng.normal(size=(300, 5))
    A = X * 1e-4 + 1e8
    Ac = A - A.mean(axis=0)
    Ac -= Ac.mean(axis=0)
    Yc = Y - Y.mean(axis=0)
    expected = np.sum((Ac.T @ Yc) ** 2) / (np.linalg.norm(Ac.T @ Ac) * np.linalg.norm(Yc.T @ Yc))
    assert LinearCKA().fit_score(A, Y) == pytest.approx(expected, rel=1e-12)
    streamed = stream_score(LinearCKA(), _batches(A, Y, [100, 201]))
    assert streamed == pytest.approx(expected, rel=1e-12)
    assert stream_score(CCA(), _batches(A, Y, [100])) == pytest.approx(CCA().fit_score(A, Y),
                                                                       rel=1e-10)
