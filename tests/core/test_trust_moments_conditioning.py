"""Streaming whitening metrics on data whose covariance float64 cannot hold (trust issue: "the
sums must be scaled, or the batch refused with a clear error, never silently lose the answer").

One stimulus 1e8 times the others, or 59 points of spread 1e-3 beside one at 1e5, give a centred
covariance X'X whose small eigenvalues lie below eps times its largest: the covariance route
lost them and whitening turned rounding into canonical correlations of 1. The streams now carry
a triangular factor R of the centred batches (R'R = [Xc Yc]'[Xc Yc], its condition number not
squared), and statistics without it are refused where their Gram matrices cannot resolve the
data. Expected values: ``fit_score`` on the concatenated batches (the claim of
:func:`simmetrics.stream_score`), exact identities of the statistics, and mpmath at 50 digits.
"""

import numpy as np
import pytest
import torch
from sklearn.base import clone

import simmetrics
from simmetrics import (
    CCA,
    PWCCA,
    SVCCA,
    IntertwinerProcrustes,
    OrthogonalProcrustes,
    PermutationMetric,
    ShapeMetric,
    SoftMatching,
    score_from_moments,
    stream_moments,
    stream_score,
)
from simmetrics.moments import PairMoments, moments

from user_data import cluster_and_outlier, dominant_stimulus, latent

EPS = np.finfo(np.float64).eps

#: the metrics that whiten (their value needs the small directions of the covariance)
WHITENING = [
    CCA(), CCA(statistic="mean_rho_sq"), SVCCA(), SVCCA(variance=1.0), PWCCA(),
    PWCCA(side="symmetric"), ShapeMetric(alpha=0.0), ShapeMetric(alpha=0.5),
    ShapeMetric(alpha=0.0, score_method="euclidean"), ShapeMetric(alpha=0.3, center_columns=False),
    IntertwinerProcrustes(activation="identity"),
    IntertwinerProcrustes(activation="identity", score_method="euclidean", center=True),
]


def graded_variances(g, n, dx, dy, low=1e-6):
    """Ordinary ill-conditioned but resolvable data: mixed neurons whose variances span
    low..1 (a well-recorded population with a few quiet cells), plus an offset."""
    L = latent(g, n, dx + dy)
    X = L[:, :dx] * np.sqrt(np.logspace(0, np.log10(low), dx)) + 3.0
    Y = np.tanh(L[:, dx:]) * np.sqrt(np.logspace(0, np.log10(low), dy)) - 1.0
    return X, Y


def _cuts(n):
    return [n // 5, n // 5 + 1, n // 2]  # uneven, with a batch of one row


def _stream(metric, X, Y, cuts, fit=True):
    return stream_score(metric, list(zip(np.split(X, cuts), np.split(Y, cuts))), fit=fit)


def _tol(metric, value, X, Y, rtol):
    # bounded values: relative to max(1, |value|); distances that grow with the data: also
    # relative to the data's scale (as tests/test_real_data.py)
    if np.isfinite(metric.bounds[1]):
        return rtol * max(1.0, abs(value))
    return rtol * (abs(value) + max(np.abs(X).max(), np.abs(Y).max()))


@pytest.mark.parametrize("metric", WHITENING, ids=repr)
@pytest.mark.parametrize("kind", [dominant_stimulus, cluster_and_outlier])
@pytest.mark.parametrize("seed, n, dx, dy", [(0, 60, 10, 8), (1, 40, 6, 5), (2, 200, 12, 3)])
def test_whitening_metrics_stream_the_value_of_fit_score(metric, kind, seed, n, dx, dy):
    # Before: CCA 1.0 (fit_score 0.634) on the dominant stimulus and 0.785 (0.97) beside an
    # outlier, the same for SVCCA, the whitening shape metrics and the identity group.
    # Expected: fit_score on the concatenated batches, to 1e-8 relative (the whole-data SVD
    # and the streamed factor both resolve the data to about eps * 1e8).
    X, Y = kind(np.random.default_rng(seed), n, dx, dy)
    expected = clone(metric).fit_score(X, Y)
    value = _stream(clone(metric), X, Y, _cuts(n))
    assert abs(value - expected) <= _tol(metric, expected, X, Y, 1e-8), (value, expected)


def _mp_canonical_correlations(X, Y, digits=50):
    """Canonical correlations by their definition at ``digits`` digits (mpmath): the singular
    values of Qx'Qy, Q orthonormal bases (QR) of the exactly centred data."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = digits

    def basis(A):
        M = mp.matrix([[mp.mpf(float(v)) for v in row] for row in A])
        for j in range(M.cols):
            mean = mp.fsum(M[i, j] for i in range(M.rows)) / M.rows
            for i in range(M.rows):
                M[i, j] -= mean
        Q, _ = mp.qr(M)
        return Q[:, : A.shape[1]]

    return [float(v) for v in mp.svd_r(basis(X).T * basis(Y), compute_uv=False)]


@pytest.mark.parametrize("kind", [dominant_stimulus, cluster_and_outlier])
def test_streamed_canonical_correlations_match_exact_arithmetic(kind):
    # Expected: the definition at 50 digits (mpmath), independent of both float64 routes.
    # Tolerance 1e-8: both routes resolve these data to about eps * 1e8 = 2e-8 relative to the
    # dominant direction, far better in practice.
    X, Y = kind(np.random.default_rng(5), 30, 4, 3)
    exact = np.array(sorted(_mp_canonical_correlations(X, Y), reverse=True))
    streamed = _stream(CCA(), X, Y, _cuts(30))
    assert abs(streamed - exact.mean()) < 1e-8
    metric = CCA()
    _stream(metric, X, Y, _cuts(30))
    np.testing.assert_allclose(metric.canonical_correlations_, exact, rtol=0, atol=1e-8)


@pytest.mark.parametrize("metric", [CCA(), ShapeMetric(alpha=0.0),
                                    IntertwinerProcrustes(activation="identity")], ids=repr)
def test_torch_batches_carry_the_factor_on_their_device(metric):
    # Expected: the numpy stream's value (1e-10: the same factor, QR by torch instead of
    # LAPACK's dtpqrt) and fit_score's (1e-8), on the dominant stimulus.
    X, Y = dominant_stimulus(np.random.default_rng(9), 80, 6, 4)
    cuts = [3, 10, 50]
    batches = [(torch.from_numpy(a), torch.from_numpy(b))
               for a, b in zip(np.split(X, cuts), np.split(Y, cuts))]
    on_torch = stream_score(clone(metric), batches)
    assert abs(on_torch - _stream(clone(metric), X, Y, cuts)) < 1e-10
    assert abs(on_torch - clone(metric).fit_score(X, Y)) < 1e-8


def _gram_only(X, Y, cuts):
    """Statistics without the triangular factor (what PairMoments.from_arrays, moments and
    stream_moments give by default)."""
    return sum(PairMoments.from_arrays(a, b) for a, b in zip(np.split(X, cuts), np.split(Y, cuts)))


REFUSAL = r"second moments cannot resolve.*condition number.*digits.*fit_score"


@pytest.mark.parametrize("metric", WHITENING, ids=repr)
@pytest.mark.parametrize("kind", [dominant_stimulus, cluster_and_outlier])
def test_gram_route_refuses_what_it_cannot_resolve(metric, kind):
    # Before: the wrong value (1.0 for 0.634). Expected: a ValueError that gives the
    # condition number and the digits lost and names the ways out (fit_score, factor=True);
    # the same statistics with the factor give fit_score's value (1e-8 relative).
    X, Y = kind(np.random.default_rng(0), 60, 10, 8)
    with pytest.raises(ValueError, match=REFUSAL):
        score_from_moments(clone(metric), _gram_only(X, Y, _cuts(60)))
    stats = stream_moments(zip(np.split(X, _cuts(60)), np.split(Y, _cuts(60))), factor=True)
    expected = clone(metric).fit_score(X, Y)
    value = score_from_moments(clone(metric), stats)
    assert abs(value - expected) <= _tol(metric, expected, X, Y, 1e-8)


STREAMING = [simmetrics.get_metric(name) for name in simmetrics.streaming_metrics()] + WHITENING


@pytest.mark.parametrize("metric", STREAMING, ids=repr)
@pytest.mark.parametrize("low", [1e-6, 1e-10])
@pytest.mark.parametrize("seed", [0, 1])
def test_ill_conditioned_but_resolvable_data_stream_to_fit_score(metric, low, seed):
    # Neurons with variances spanning low..1 (condition number of the covariance about 1/low
    # and more after mixing) are resolved by the second moments: the stream never refuses
    # them, nor (centred) does the Gram-only route, whose check is on the correlation matrix
    # (scaling the neurons costs the Gram no digits); both give fit_score's value.
    # Expected: fit_score, to 1e-8 relative.
    X, Y = graded_variances(np.random.default_rng(seed), 300, 8, 6, low)
    expected = clone(metric).fit_score(X, Y)
    tol = _tol(metric, expected, X, Y, 1e-8)
    assert abs(_stream(clone(metric), X, Y, [7, 150]) - expected) <= tol
    # not for the shape metrics' uncentred X'X, which the offsets (3 and -1 against spreads
    # down to 1e-5) make ill-conditioned by themselves (gram_factor's bound refuses it; the
    # stream above has the factor)
    # EigenspaceOverlap compares uncentred column spaces, as center_columns=False does
    if getattr(metric, "center_columns", not isinstance(metric, simmetrics.EigenspaceOverlap)):
        assert abs(score_from_moments(clone(metric), _gram_only(X, Y, [7, 150])) - expected) \
            <= tol
    elif float(getattr(metric, "alpha", 1.0)) != 1.0:  # whitening the uncentred X'X
        with pytest.raises(ValueError, match=REFUSAL):
            score_from_moments(clone(metric), _gram_only(X, Y, [7, 150]))


def test_duplicate_neurons_in_gram_only_statistics_are_refused_with_the_way_out():
    # A duplicated neuron is an exact linear dependence that the Gram matrix cannot tell from a
    # direction lost to rounding: refused there (naming fit_score and factor=True), while the
    # stream (with its factor) drops it as fit_score does. Expected: fit_score, 1e-9 relative.
    X, Y = graded_variances(np.random.default_rng(3), 200, 5, 4, 1e-2)
    X = np.hstack([X, X[:, :2]])
    with pytest.raises(ValueError, match="factor=True"):
        score_from_moments(CCA(), _gram_only(X, Y, [50]))
    assert abs(_stream(CCA(), X, Y, [50]) - CCA().fit_score(X, Y)) < 1e-9


# -- the factor itself ---------------------------------------------------------------------
def _joint_centred(X, Y):
    F = np.hstack([X, Y])
    return F - F.mean(axis=0)


@pytest.mark.parametrize("cuts", [[], [1, 2, 3], [17, 40], list(range(1, 50))])
def test_factor_is_a_square_root_of_the_centred_gram(cuts):
    # Expected: R'R = [Xc Yc]'[Xc Yc] (the definition), computed directly in float64 on
    # well-conditioned data (1e-12 relative to the largest entry), whatever the splitting;
    # R is upper triangular.
    g = np.random.default_rng(4)
    X, Y = g.normal(size=(50, 4)) + 1e3, g.normal(size=(50, 3))
    stats = sum(moments(a, b, factor=True) for a, b in zip(np.split(X, cuts), np.split(Y, cuts)))
    R = stats.factor
    assert R.shape[0] <= 7 and R.shape[1] == 7
    F = _joint_centred(X, Y)
    np.testing.assert_allclose(R.T @ R, F.T @ F, rtol=0, atol=1e-12 * np.abs(F.T @ F).max())
    A, B = stats.factor_rows(centred=True)
    np.testing.assert_allclose(A.T @ B, F[:, :4].T @ F[:, 4:], rtol=0, atol=1e-9)
    # about other shifts: one more row, sqrt(n) (mean - shift)
    A, B = stats.shifted(np.zeros(4), np.ones(3)).factor_rows()
    np.testing.assert_allclose(A.T @ A, X.T @ X, rtol=1e-12)
    np.testing.assert_allclose(A.T @ B, X.T @ (Y - 1.0), rtol=1e-10, atol=1e-9)


def test_factor_follows_swaps_scalings_exponents_and_torch():
    # Expected: the factor of the transformed data computed directly (exact identities:
    # swapping the representations, scaling them, power-of-two exponents, the torch route).
    g = np.random.default_rng(6)
    X, Y = g.normal(size=(40, 3)), g.normal(size=(40, 2))
    stats = moments(X[:15], Y[:15], factor=True) + moments(X[15:], Y[15:], factor=True)
    F = _joint_centred(Y, X)
    S = stats.swapped().factor
    np.testing.assert_allclose(S.T @ S, F.T @ F, rtol=0, atol=1e-12)
    S = stats.scaled(2.0, 3.0).factor
    F = _joint_centred(2 * X, 3 * Y)
    np.testing.assert_allclose(S.T @ S, F.T @ F, rtol=0, atol=1e-11)
    big = moments(X * 1e300, Y * 1e-300, factor=True)
    assert big.exponents != (0, 0)
    A, B = big.factor_rows(centred=True)
    F = _joint_centred(X * 1e300, Y * 1e-300)  # X's block near 1e300, Y's near 1e-300
    np.testing.assert_allclose(np.ldexp(A.T @ B, big.x.exponent + big.y.exponent),
                               F[:, :3].T @ F[:, 3:], rtol=1e-12, atol=1e-13)
    on_torch = moments(torch.from_numpy(X[:15]), torch.from_numpy(Y[:15]), factor=True) + \
        moments(torch.from_numpy(X[15:]), torch.from_numpy(Y[15:]), factor=True)
    R = on_torch.to_numpy().factor
    F = _joint_centred(X, Y)
    np.testing.assert_allclose(R.T @ R, F.T @ F, rtol=0, atol=1e-12)


def test_statistics_without_factor_merge_to_none_and_keep_their_repr():
    g = np.random.default_rng(7)
    X, Y = g.normal(size=(20, 2)), g.normal(size=(20, 2))
    with_factor = moments(X[:10], Y[:10], factor=True)
    without = PairMoments.from_arrays(X[10:], Y[10:])
    assert (with_factor + without).factor is None
    assert stream_moments([(X, Y)]).factor is None  # the default
    assert stream_moments([(X, Y)], factor=True).factor is not None
    assert repr(with_factor) == "PairMoments(n=10, widths=(2, 2), row_terms=True)"


# -- homogeneous distances at any scale -----------------------------------------------------
HOMOGENEOUS = [
    ShapeMetric(score_method="euclidean"), ShapeMetric(alpha=0.0, score_method="euclidean"),
    ShapeMetric(score_method="euclidean", center_columns=False),
    OrthogonalProcrustes(score_method="euclidean"), PermutationMetric(score_method="euclidean"),
    PermutationMetric(score_method="euclidean", center_columns=False), SoftMatching(),
    SoftMatching(center_columns=False),
]


def _pair(seed=0, n=60):
    g = np.random.default_rng(seed)
    Z = g.normal(size=(n, 4))
    return Z, np.tanh(Z @ g.normal(size=(4, 4))) + 0.3 * g.normal(size=(n, 4))


@pytest.mark.parametrize("metric", HOMOGENEOUS, ids=repr)
@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1e-130, 1.0, 1e130, 1e200, 1e300])
def test_homogeneous_distances_stream_at_any_scale(metric, scale):
    # Before: "depends on the scale of the data ... power of two" beyond about 1e+-120.
    # These distances are homogeneous of degree 1 in (X, Y), so the power-of-two level of the
    # statistics is applied to the result exactly. Expected: fit_score on the whole data,
    # 1e-8 relative (tests/core/test_trust_moments.py's tolerance between the two routes).
    Z, W = _pair()
    X, Y = scale * Z, scale * W
    expected = clone(metric).fit_score(X, Y)
    for cuts in ([], [7, 33], list(range(1, 60))):
        value = _stream(clone(metric), X, Y, cuts)
        assert abs(value - expected) <= 1e-8 * abs(expected), (scale, cuts, value, expected)


@pytest.mark.parametrize("metric", HOMOGENEOUS, ids=repr)
@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_homogeneous_distances_fitted_at_extreme_scales_score_held_out_data(metric, scale):
    # Expected: the fitted means and alignment are in the data's units, so the whole-data
    # score() of held-out stimuli with the streamed fit equals a streamed held-out score and
    # the whole-data fit-then-score (1e-8 relative).
    Z, W = _pair(1, 90)
    X, Y = scale * Z, scale * W
    fitted = clone(metric)
    _stream(fitted, X[:60], Y[:60], [25])
    held_out = fitted.score(X[60:], Y[60:])
    streamed = _stream(fitted, X[60:], Y[60:], [10], fit=False)
    reference = clone(metric).fit(X[:60], Y[:60]).score(X[60:], Y[60:])
    assert abs(streamed - held_out) <= 1e-8 * held_out
    assert abs(held_out - reference) <= 1e-8 * reference


def test_partial_whitening_still_refuses_extreme_scales_clearly():
    # alpha strictly between 0 and 1 with the unnormalised covariance is not homogeneous (the
    # whitening mixes alpha I with C^(-1/2)): beyond 1e+-120 the clear error stays.
    Z, W = _pair()
    with pytest.raises(ValueError, match="depends on the scale of the data.*power of two"):
        _stream(ShapeMetric(alpha=0.5, score_method="euclidean"), 1e300 * Z, 1e300 * W, [30])


def test_the_factor_is_checked_against_the_memory_budget():
    # Expected: the shared preflight (simmetrics._core.memory) refuses the d x d statistics of the
    # factor up front, naming their size; a metric that needs no factor is not affected.
    from simmetrics._core.memory import MemoryBudgetError, memory_budget

    X = np.random.default_rng(8).normal(size=(100, 300))
    with memory_budget("1MiB"):
        with pytest.raises(MemoryBudgetError, match="factor of 600 neurons"):
            stream_score(CCA(), [(X, X)])
        assert abs(stream_score(simmetrics.LinearCKA(), [(X, X)]) - 1.0) < 1e-12
