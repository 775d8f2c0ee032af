"""Linear CKA and the streaming estimators keep their digits on a dominant stimulus and at
extreme scales (trust issue, items 3 and 6), or refuse with one clear error.

Expected values come from exact rational arithmetic (:mod:`fractions`) on the float inputs,
from mpmath at 60 digits, or from ``fit_score`` on the whole data (the streaming routes must
agree with it, which is the claim of :func:`simmetrics.stream_score`).
"""

import math
import re
from fractions import Fraction

import numpy as np
import pytest
import torch
from sklearn.base import clone

import simmetrics
from simmetrics import LinearCKA, stream_score, streaming_metrics
from simmetrics.metrics.cka import (
    _MAX_AMPLIFICATION,
    _cka_from_moments,
    _moments_amplification,
    unbiased_hsic_terms,
)
from simmetrics.metrics.cka_gram import gram_space_cka
from simmetrics.moments import PairMoments, RepresentationMoments, moments
from tests.metric_configs import VARIANTS

EPS = np.finfo(np.float64).eps


# -- exact linear CKA: every float is an integer times a power of two ------------------------
def _as_integers(*arrays):
    """The entries of ``arrays`` as Python integers, all multiplied by one power of two
    (exact: a float64 is m 2^e with an integer m). CKA ignores that common factor."""
    low = min(int(np.frexp(np.asarray(A, dtype=np.float64))[1].min()) for A in arrays) - 53
    scale = Fraction(2) ** -low
    out = []
    for A in arrays:
        rows = [[Fraction(float(v)) * scale for v in row] for row in np.asarray(A, float)]
        assert all(v.denominator == 1 for row in rows for v in row)
        out.append([[int(v) for v in row] for row in rows])
    return out


def _exact_hsic1_numerator(K, L):
    """n (n - 3) HSIC1(K, L) of Song et al. 2012 (Theorem 2), exactly: tr(K~ L~) +
    1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1, with K~, L~ the kernels with zero diagonal."""
    n = len(K)
    trace = sum(K[i][j] * L[i][j] for i in range(n) for j in range(n) if i != j)
    rk = [sum(K[i][j] for j in range(n) if j != i) for i in range(n)]
    rl = [sum(L[i][j] for j in range(n) if j != i) for i in range(n)]
    return (Fraction(trace) + Fraction(sum(rk) * sum(rl), (n - 1) * (n - 2))
            - Fraction(2 * sum(a * b for a, b in zip(rk, rl)), n - 2))


def _ratio(num, sx, sy):
    """num / sqrt(sx sy), from the exact rational num^2 / (sx sy) (one rounding, then sqrt)."""
    return math.copysign(math.sqrt(float(num * num / (sx * sy))), float(num))


def exact_linear_cka(X, Y, debiased):
    """Linear CKA of the float inputs, exactly (then rounded once): the debiased form from the
    n x n linear kernels K = XX' (Song's U-statistic, which needs no centring), the biased one
    from ||A'B||_F^2 / (||A'A||_F ||B'B||_F) with the integer centred data A = n X - 1 1'X."""
    A, B = _as_integers(X, Y)
    if debiased:
        K = [[sum(p * q for p, q in zip(r, s)) for s in A] for r in A]
        L = [[sum(p * q for p, q in zip(r, s)) for s in B] for r in B]
        return _ratio(_exact_hsic1_numerator(K, L), _exact_hsic1_numerator(K, K),
                      _exact_hsic1_numerator(L, L))
    n = len(A)

    def centred(M):
        sums = [sum(col) for col in zip(*M)]
        return [[n * v - s for v, s in zip(row, sums)] for row in M]

    def frob_sq_of_cross(P, Q):
        return sum(sum(p[a] * q[b] for p, q in zip(P, Q)) ** 2
                   for a in range(len(P[0])) for b in range(len(Q[0])))

    A, B = centred(A), centred(B)
    return _ratio(Fraction(frob_sq_of_cross(A, B)), Fraction(frob_sq_of_cross(A, A)),
                  Fraction(frob_sq_of_cross(B, B)))


def _dominant(seed, n, dx=6, dy=5, factor=1e8):
    """The issue's reproducer: related X, Y whose first stimulus is ``factor`` times larger."""
    g = np.random.default_rng(seed)
    X = g.normal(size=(n, dx))
    Y = np.tanh(X @ g.normal(size=(dx, dy)) / 3) + 0.5 * g.normal(size=(n, dy))
    X[0] *= factor
    Y[0] *= factor
    return X, Y


def test_exact_reference_reproduces_the_issue():
    # the issue quotes the exact value 0.3310 for this reproducer (seed 20261201, n = 40)
    X, Y = _dominant(20261201, 40)
    assert abs(exact_linear_cka(X, Y, True) - 0.3310) < 1e-4


# -- item 3: one dominant stimulus ------------------------------------------------------------
@pytest.mark.parametrize("debiased", [True, False])
@pytest.mark.parametrize("factor", [1e3, 1e8])
@pytest.mark.parametrize("n", [12, 40])
@pytest.mark.parametrize("seed", [20261201, 3])
def test_dominant_stimulus_every_route_matches_exact_arithmetic(seed, n, factor, debiased):
    # Before: fit_score 0.0722 against the exact 0.3310 (n = 40), Gram route 0.836; at n = 12
    # the routes disagreed or raised. Expected: exact rational arithmetic, within 1e-10
    # (what float64 keeps: a few eps times the moderate conditioning left).
    X, Y = _dominant(seed, n, factor=factor)
    exact = exact_linear_cka(X, Y, debiased)
    metric = LinearCKA(debiased=debiased)
    values = {
        "fit_score": metric.fit_score(X, Y),
        "gram_space_cka": gram_space_cka([X, Y], [(0, 1)], debiased)[0],
        "pairwise": simmetrics.pairwise(metric, [X, Y])[0, 1],
        "torch": clone(metric).fit_score(torch.from_numpy(X), torch.from_numpy(Y)),
        "gram route (n < d)": clone(metric).fit_score(np.hstack([X] * 4), np.hstack([Y] * 5)),
    }
    for route, value in values.items():
        assert abs(value - exact) < 1e-10, (route, value, exact)


@pytest.mark.parametrize("seed", [0, 1])
def test_dominant_stimulus_in_a_stream_is_refused_not_returned(seed):
    # The feature-space sums cannot hold the debiased value here (the diagonal's share
    # dominates them): stream_score says so instead of returning 0.07 for 0.33. A milder
    # dominance keeps enough digits and agrees with exact arithmetic (within 1e-10).
    X, Y = _dominant(seed, 40)
    batches = [(X[:17], Y[:17]), (X[17:], Y[17:])]
    with pytest.raises(ValueError, match="without losing most of its digits.*fit_score"):
        stream_score(LinearCKA(debiased=True), batches)
    biased = stream_score(LinearCKA(), batches)
    assert abs(biased - exact_linear_cka(X, Y, False)) < 1e-10
    X, Y = _dominant(seed, 40, factor=30.0)
    value = stream_score(LinearCKA(debiased=True), [(X[:17], Y[:17]), (X[17:], Y[17:])])
    assert abs(value - exact_linear_cka(X, Y, True)) < 1e-10


def _kinds(seed, n, d):
    """Activations users have: Gaussian, ReLU with dead units, binary, quantised (ties),
    clusters beside an outlier, and mildly dominant stimuli."""
    g = np.random.default_rng(seed)
    Z = g.normal(size=(n, d))
    relu = np.maximum(Z @ g.normal(size=(d, d)), 0.0)
    relu[:, 0] = 0.0
    clusters = np.repeat(g.normal(size=(4, d)) * 5, -(-n // 4), axis=0)[:n] + 0.1 * Z
    clusters[-1] += 40.0
    out = {"gaussian": Z, "relu_dead": relu, "binary": (Z > 0.8).astype(float),
           "quantised": np.round(Z * 2) / 2, "clusters_outlier": clusters}
    for f in (10.0, 300.0, 3e3):
        D = Z.copy()
        D[1] *= f
        out[f"dominant_{f:g}"] = D
    return out


@pytest.mark.parametrize("shape", [(40, 5), (30, 12), (10, 25)])
def test_amplification_bounds_the_feature_space_error(shape):
    # The detection's claim (simmetrics.metrics.cka._moments_amplification): the feature-space
    # debiased CKA is within a few eps times the estimated amplification of the exact value,
    # and ordinary activations stay far below the threshold 2^16 (so the fast route is kept).
    n, d = shape
    kinds = _kinds(n + d, n, d)
    Y = np.tanh(kinds["gaussian"][:, ::-1] + 0.3)
    for name, X in kinds.items():
        if np.ptp(X, axis=0).max() == 0.0:
            continue
        stats = PairMoments.from_arrays(X, Y, row_terms=True)
        S = stats.centred()
        S = S.scaled(1 / np.sqrt(np.trace(S.x.gram)), 1 / np.sqrt(np.trace(S.y.gram)))
        amplification = _moments_amplification(unbiased_hsic_terms(S, magnitudes=True))
        value, trusted = _cka_from_moments(stats, True)
        exact = exact_linear_cka(X, Y, True)
        if not name.startswith("dominant"):
            assert amplification < 64 * max(1.0, d / n), (name, amplification)
        if trusted:
            assert abs(value - exact) <= 8 * EPS * amplification, (name, value, exact)
        else:
            assert amplification > _MAX_AMPLIFICATION
        assert abs(LinearCKA(debiased=True).fit_score(X, Y) - exact) < 1e-10, name


# -- item 6: every streaming metric, at every scale ----------------------------------------------
def _streaming_configs():
    """Every registered streaming metric (present and future) with its defaults, and the shared
    variants (tests/metric_configs.py) that stream."""
    configs = [simmetrics.get_metric(name) for name in streaming_metrics()]
    return configs + [m for m in VARIANTS if m._score_from_moments is not None]


STREAMING = _streaming_configs()
SCALES = [1e-300, 1e-200, 1e-170, 1e-100, 1e-30, 1.0, 1e30, 1e100, 1e155, 1e200, 1e300]
SPLITS = {"one batch": [], "uneven": [7, 33], "single rows": list(range(1, 60))}
# Tolerances between the two routes (fit_score takes the SVD of the data, streaming the
# eigen-decomposition of second moments; simmetrics.stream_score): 1e-8 relative, and for
# values near 0 the 3e-8 absolute that an angle or distance formed from moments can miss
# by (sqrt(eps) = 1.5e-8: the moments of two nearly equal representations cancel).
RTOL, ATOL = 1e-8, 3e-8
CLEAR = "depends on the scale of the data.*power of two"


def _pair(seed=0, n=60):
    g = np.random.default_rng(seed)
    Z = g.normal(size=(n, 4))
    W = np.tanh(Z @ g.normal(size=(4, 4))) + 0.3 * g.normal(size=(n, 4))
    return Z, W


def _check_stream(metric, X, Y, cuts, scale):
    expected = clone(metric).fit_score(X, Y)
    batches = list(zip(np.split(X, cuts), np.split(Y, cuts)))
    try:
        value = stream_score(clone(metric), batches)
    except ValueError as exc:
        # the one refusal allowed: a metric whose value depends on the scale, at a scale whose
        # squares float64 cannot hold; it says what to do
        assert "isotropic_scaling" not in metric.invariances, (metric, exc)
        assert not 1e-100 <= scale <= 1e100, (metric, scale, exc)
        assert re.search(CLEAR, str(exc)), str(exc)
        return
    tol = RTOL * abs(expected) + (ATOL if abs(expected) < 10 else 0.0)
    assert abs(value - expected) <= tol, (metric, scale, value, expected)


@pytest.mark.slow
@pytest.mark.parametrize("metric", STREAMING, ids=repr)
def test_every_streaming_metric_agrees_with_fit_score_at_every_scale(metric):
    # Before: CCA 0.0 at 1e100 (true 0.745), IntertwinerProcrustes(score_method="paper") 1.0
    # at 1e-170, "please report it" / ZeroDivisionError / "every neuron is constant" beyond
    # 1e155. Expected: fit_score on the concatenated batches (whole-data route), within the
    # tolerances above, for every batch splitting; or the one clear error, for scale-dependent
    # values beyond 1e+-100 only.
    Z, W = _pair()
    for scale in SCALES:
        for cuts in SPLITS.values():
            _check_stream(metric, scale * Z, scale * W, cuts, scale)


@pytest.mark.parametrize("metric", STREAMING, ids=repr)
@pytest.mark.parametrize("offset, spread", [(1e4, 1.0), (-3e5, 1e-2), (1e200, 1e195),
                                            (-1e-200, 1e-204)])
def test_every_streaming_metric_agrees_with_fit_score_with_large_offsets(metric, offset, spread):
    # Means far larger than the spread (the batches are summarised about their own means and
    # merged exactly), also at extreme scales. Expected: fit_score on the whole data, as above.
    # |mean| / spread stays within 1e7: the uncentred identity group resolves its directions
    # to eps |mean| / spread on either route (see the test below for larger ratios).
    Z, W = _pair(1)
    X, Y = offset + spread * Z, -offset + spread * W
    for cuts in SPLITS.values():
        _check_stream(metric, X, Y, cuts, abs(offset))


def _mp_identity_angle(X, Y):
    """The uncentred identity-group IntertwinerProcrustes angle by its definition, at 60
    digits (mpmath): c(X) = sqrt(n) U_x with U_x an orthonormal basis of X's columns (QR), the
    rotation maximising <c(X), c(Y) R>, so the angle is arccos(||U_x'U_y||_* / sqrt(d_x d_y))."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 60

    def basis(A):
        Q, _ = mp.qr(mp.matrix([[mp.mpf(float(v)) for v in row] for row in A]))
        return Q[:, : A.shape[1]]

    s = mp.svd_r(basis(X).T * basis(Y), compute_uv=False)
    return float(mp.acos(sum(s) / mp.sqrt(X.shape[1] * Y.shape[1])))


@pytest.mark.parametrize("offset, spread", [(1e8, 1e-3), (1e4, 1.0), (0.0, 1.0)])
def test_uncentred_identity_group_stream_keeps_the_offset_apart(offset, spread):
    # The issue: 1e8 + 1e-3 z gave 1.5e-8 against 0.943 (the uncentred X'X = Xc'Xc + n m m'
    # rounded Xc'Xc away). Expected: the definition at 60 digits (mpmath). Both routes resolve
    # the data's directions to about eps |mean| / spread (the whole-data SVD as well), so the
    # tolerance is 1e-12 + 10 eps |mean| / spread.
    Z, W = _pair(2)
    X, Y = offset + spread * Z, offset + spread * W
    metric = simmetrics.IntertwinerProcrustes(activation="identity")
    exact = _mp_identity_angle(X, Y)
    tol = 1e-12 + 10 * EPS * max(offset, spread) / spread
    value = stream_score(clone(metric), [(X[:25], Y[:25]), (X[25:], Y[25:])])
    assert abs(value - exact) <= tol, (value, exact)
    assert abs(clone(metric).fit_score(X, Y) - exact) <= tol


# -- the statistics themselves --------------------------------------------------------------
def test_ordinary_batches_keep_exponent_zero_and_their_bits():
    # the rescaling is only for values outside [2^-100, 2^100]: elsewhere the statistics are
    # computed exactly as before (same code, same bits: compared with rescale=False)
    Z, W = _pair(3)
    for scale in (1e-25, 1.0, 1e25):
        a = PairMoments.from_arrays(scale * Z, scale * W, row_terms=True)
        b = PairMoments.from_arrays(scale * Z, scale * W, row_terms=True, rescale=False)
        assert a.exponents == (0, 0)
        assert np.array_equal(a.cross, b.cross) and a.row_cross == b.row_cross


@pytest.mark.parametrize("scale", [1e-300, 1e-170, 1e170, 1e300])
def test_extreme_batches_are_exact_power_of_two_rescalings(scale):
    # Expected: the statistics of X 2^-e are those of the rescaled data computed directly
    # (multiplying by a power of two is exact), and mean / shifted speak in the data's units.
    Z, W = _pair(4)
    X = scale * Z
    m = RepresentationMoments.from_array(X, row_terms=True)
    assert m.exponent != 0
    direct = RepresentationMoments.from_array(np.ldexp(X, -m.exponent), row_terms=True,
                                              rescale=False)
    assert np.array_equal(m.gram, direct.gram) and m.row_sq_sq == direct.row_sq_sq
    assert np.allclose(m.mean, X.mean(axis=0), rtol=1e-13, atol=0)
    assert np.array_equal(m.minimum, X.min(axis=0))
    # merging with a batch at another scale: the larger exponent wins, both add exactly
    half = RepresentationMoments.from_array(X[:30], row_terms=True) + \
        RepresentationMoments.from_array(X[30:] * 2.0**-40, row_terms=True)
    both = np.vstack([X[:30], X[30:] * 2.0**-40])
    Xc = np.ldexp(both, -half.exponent)
    Xc = Xc - Xc.mean(axis=0)
    assert np.allclose(half.centred().gram, Xc.T @ Xc, rtol=1e-12, atol=0)
    # the public per-batch helper rescales too, and scoring its sums works at any scale
    total = moments(X[:20], scale * W[:20]) + moments(X[20:], scale * W[20:])
    value = simmetrics.score_from_moments("linear_cka", total)
    assert abs(value - LinearCKA().fit_score(X, scale * W)) < 1e-12


@pytest.mark.parametrize("metric", [m for m in STREAMING
                                    if isinstance(m, simmetrics.base.AlignmentMetric)], ids=repr)
@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_alignments_fitted_on_rescaled_streams_score_held_out_data_in_true_units(metric, scale):
    # The fitted attributes of a stream fit at an extreme scale (means, maps and their
    # power-of-two exponents) are in the data's units: score() on the whole data (the
    # held-out route) of the same stimuli gives the streamed value. Expected: the streamed
    # fit_score value, within the tolerances of the loop above.
    Z, W = _pair(5)
    X, Y = scale * Z, scale * W
    fitted = clone(metric)
    try:
        value = stream_score(fitted, [(X[:31], Y[:31]), (X[31:], Y[31:])])
    except ValueError as exc:
        assert re.search(CLEAR, str(exc)) and "isotropic_scaling" not in metric.invariances
        return
    held_out = fitted.score(X, Y)
    assert abs(held_out - value) <= RTOL * abs(value) + ATOL, (held_out, value)
