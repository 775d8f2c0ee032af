"""Trust issue, ShapeMetric(alpha=0) fitted on training stimuli and scored on held-out ones
that vary where the training stimuli did not (a neuron silent during fit, n < d).

Full whitening keeps only the training rows' span, so such held-out differences were
multiplied by 0 (the reproducer scored 1.6e-15). The rule (ShapeMetric's Notes, the same as
IntertwinerProcrustes' for the identity activation): the part of the scored data outside the
training row space is whitened on the scored stimuli (an orthonormal basis U_u of its column
space, times sqrt(m) and the rms of a whitened training direction), appended as extra columns
aligned between X and Y by orthogonal Procrustes on the scored stimuli, and the whitened block
is projected off span(U_u).

Expected values come from the rule computed by hand with scipy (``scipy.linalg.svd``,
``orth``, ``orthogonal_procrustes``) on explicitly whitened data, from a closed form for the
reproducer, or from the definition (declared invariances; zero on an orbit).
"""

import numpy as np
import pytest
import scipy.linalg
from sklearn.base import clone

from simmetrics import ShapeMetric

EPS = np.finfo(np.float64).eps
SEEDS = [0, 1, 2]


# -- the rule by hand ---------------------------------------------------------------------------
def _fit_whitening(A, center=True):
    """Full whitening of the training rows by scipy's SVD: mean, Z = V diag(k / s) V' (the
    pseudo-inverse square root of Ac'Ac times k = ||s|| / sqrt(r), which keeps the total
    variance: ||Ac Z||^2 = tr(Ac'Ac)), V, and the rms k / sqrt(n) of one whitened direction."""
    mean = A.mean(0) if center else np.zeros(A.shape[1])
    Ac = A - mean
    _, s, Vt = scipy.linalg.svd(Ac, full_matrices=False)
    keep = s > max(Ac.shape) * EPS * s[0]
    s, V = s[keep], Vt[keep].T
    k = np.linalg.norm(s) / np.sqrt(s.size)
    return mean, (V * (k / s)) @ V.T, V, k / np.sqrt(A.shape[0])


def _scored_blocks(A, fitted):
    """(main, extra) of the scored rows A: main = the training whitening of A - mean projected
    off span(U_u), extra = sqrt(m) rms U_u with U_u an orthonormal basis of the column space of
    the part of A - mean outside the training row space (scipy's orth)."""
    mean, Z, V, rms = fitted
    As = A - mean
    outside = As - (As @ V) @ V.T
    if np.abs(outside).max() > 1e-8 * np.abs(As).max():
        Uu = scipy.linalg.orth(outside, rcond=1e-8)
    else:
        Uu = np.zeros((A.shape[0], 0))
    main = As @ Z
    return main - Uu @ (Uu.T @ main), np.sqrt(A.shape[0]) * rms * Uu


def _angle(A, B):
    """arccos(<A, B> / (||A|| ||B||)) as 2 atan2(||a - b||, ||a + b||), a = A / ||A||,
    b = B / ||B|| (the same angle; accurate near 0, where arccos of a rounded cosine is not)."""
    a, b = A / np.linalg.norm(A), B / np.linalg.norm(B)
    return float(2.0 * np.arctan2(np.linalg.norm(a - b), np.linalg.norm(a + b)))


def _pad(A, width):
    return np.pad(A, ((0, 0), (0, width - A.shape[1])))


def _rule(X_tr, Y_tr, X_te, Y_te, method="angular", center=True):
    """The held-out value of ShapeMetric(alpha=0) by the documented rule, from scipy."""
    fx, fy = _fit_whitening(X_tr, center), _fit_whitening(Y_tr, center)
    width = max(X_tr.shape[1], Y_tr.shape[1])
    Xw = _pad((X_tr - fx[0]) @ fx[1], width)
    Yw = _pad((Y_tr - fy[0]) @ fy[1], width)
    R = scipy.linalg.orthogonal_procrustes(Yw, Xw)[0]  # min ||Yw R - Xw||
    Mx, Ex = _scored_blocks(X_te, fx)
    My, Ey = _scored_blocks(Y_te, fy)
    k = max(Ex.shape[1], Ey.shape[1])
    Ex, Ey = _pad(Ex, k), _pad(Ey, k)
    O = scipy.linalg.orthogonal_procrustes(Ey, Ex)[0] if k else np.zeros((0, 0))
    A = np.hstack([_pad(Mx, width), Ex])
    B = np.hstack([_pad(My, width) @ R, Ey @ O])
    if method == "angular":
        return _angle(A, B)
    return float(np.linalg.norm(A - B))


def _latent(rng, n, d):
    return rng.normal(size=(n, 4)) @ rng.normal(size=(4, d)) + 0.5 * rng.normal(size=(n, d))


def _reproducer(seed):
    """tests/test_real_data.py's case: neuron 0 silent on the 80 training stimuli, held-out
    data that differ only in that neuron."""
    rng = np.random.default_rng(seed)
    X = np.maximum(_latent(rng, 120, 8), 0) + 0.1
    X[:80, 0] = 0.0
    test = X[80:]
    changed = test.copy()
    changed[:, 0] = rng.permutation(changed[:, 0]) + 1.0
    return X[:80], test, changed


# -- the reproducer ---------------------------------------------------------------------
@pytest.mark.parametrize("method", ["angular", "euclidean"])
@pytest.mark.parametrize("seed", SEEDS)
def test_held_out_difference_in_a_neuron_silent_during_fit_is_seen(seed, method):
    """Fit on X = Y with neuron 0 silent; held-out X and Y differ only in neuron 0. Before the
    rule the value was 1.6e-15 (seed 0). Closed form (X = Y in training, so the fitted rotation
    is the identity on the whitened span and the whitening Z kills neuron 0): with M = (X_te -
    mean) Z the common whitened block and u, v the unit vectors of held-out neuron 0 in X and
    Y (mean 0: silent in training), c = sqrt(m) rms, the aligned pair is
    A = [(I - u u') M, c u], B = [(I - v v') M, c v] (u'v > 0: positive activations)."""
    train, test, changed = _reproducer(seed)
    metric = ShapeMetric(alpha=0.0, score_method=method).fit(train, train)
    value = metric.score(test, changed)
    mean, Z, _, rms = _fit_whitening(train)
    M = (test - mean) @ Z
    c = np.sqrt(test.shape[0]) * rms
    u = test[:, :1] / np.linalg.norm(test[:, 0])
    v = changed[:, :1] / np.linalg.norm(changed[:, 0])
    A = np.hstack([M - u @ (u.T @ M), c * u])
    B = np.hstack([M - v @ (v.T @ M), c * v])
    if method == "angular":
        expected = _angle(A, B)
    else:
        expected = np.linalg.norm(A - B)
    assert value == pytest.approx(expected, rel=1e-9)
    assert value > 0.05  # clearly nonzero: measured 0.33 .. 0.40 (angular; Euclidean 5.6 .. 9.8)
    lo, hi = metric.bounds
    assert lo <= value <= hi
    # the same held-out data on both sides: 0 (a distance), to rounding
    assert metric.score(test, test) < 1e-7


# -- the rule against scipy on explicitly whitened data ---------------------------------------
def _case(rng, kind):
    """(X_tr, Y_tr, X_te, Y_te): training rows that leave directions unseen."""
    if kind == "silent_x":  # a neuron silent in X's training rows only; Y is X g plus noise
        X = _latent(rng, 100, 6)
        X[:60, 2] = 0.0
        Y = X @ rng.normal(size=(6, 5)) + 0.3 * rng.normal(size=(100, 5))
    elif kind == "silent_both":  # two silent neurons in X, one in Y; different widths
        X, Y = _latent(rng, 100, 7), _latent(rng, 100, 5)
        X[:60, :2] = 0.0
        Y[:60, 4] = 0.0
    elif kind == "n_below_d":  # 15 training stimuli, 20 neurons: rank 14, 6 unseen directions
        X, Y = _latent(rng, 55, 20), _latent(rng, 55, 20)
        return X[:15], Y[:15], X[15:], Y[15:]
    elif kind == "binary_dead_unit":  # quantised activations with exact ties, a dead unit
        L = _latent(rng, 100, 10)
        X, Y = (L[:, :5] > 0.5) * 1.0, (L[:, 5:] > 0.3) * 1.0
        X[:60, 1] = 0.0
    else:
        raise AssertionError(kind)
    return X[:60], Y[:60], X[60:], Y[60:]


KINDS = ["silent_x", "silent_both", "n_below_d", "binary_dead_unit"]


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("method", ["angular", "euclidean"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_held_out_value_is_the_documented_rule(kind, method, center, seed):
    """Expected: :func:`_rule` (scipy's SVD, orth and orthogonal_procrustes on explicitly
    whitened data). Two routes with different rounding (LAPACK drivers, sums in other orders)
    and a well-conditioned problem: 1e-8 relative."""
    rng = np.random.default_rng(seed)
    X_tr, Y_tr, X_te, Y_te = _case(rng, kind)
    metric = ShapeMetric(alpha=0.0, score_method=method, center_columns=center)
    value = metric.fit(X_tr, Y_tr).score(X_te, Y_te)
    assert value == pytest.approx(_rule(X_tr, Y_tr, X_te, Y_te, method, center), rel=1e-8)
    lo, hi = metric.bounds
    assert lo <= value <= hi


# -- invariances on held-out data -------------------------------------------------------------
def _elements(rng, d, kind):
    if kind == "invertible_linear":
        return rng.normal(size=(d, d))
    if kind == "orthogonal":
        return np.linalg.qr(rng.normal(size=(d, d)))[0]
    if kind == "scaled_permutation":
        return np.eye(d)[rng.permutation(d)] * rng.uniform(0.1, 10.0, d) * rng.choice([-1, 1], d)
    raise AssertionError(kind)


@pytest.mark.parametrize("shape", [(60, 8, 1), (60, 7, 3), (10, 8, 0), (12, 30, 2)])
@pytest.mark.parametrize("seed", SEEDS)
def test_held_out_value_is_invariant_to_the_declared_groups(shape, seed):
    """A declared invariance must hold on held-out data: the same g acting on the training and
    the held-out rows of X (or of Y) changes nothing, also where the training rows leave
    directions unseen (silent neurons; n < d). Expected: the definition. Tolerance: the
    whitening of X g is conditioned by g (condition numbers up to ~1e3 here): 1e-7 relative."""
    rng = np.random.default_rng(seed)
    n, d, n_silent = shape
    X_tr, X_te = _latent(rng, n, d), _latent(rng, 40, d)
    X_tr[:, :n_silent] = 0.0
    Y_tr, Y_te = _latent(rng, n, d), _latent(rng, 40, d)
    angular = ShapeMetric(alpha=0.0)
    euclidean = ShapeMetric(alpha=0.0, score_method="euclidean")
    base = clone(angular).fit(X_tr, Y_tr).score(X_te, Y_te)
    base_e = clone(euclidean).fit(X_tr, Y_tr).score(X_te, Y_te)
    assert {"invertible_linear", "translation", "isotropic_scaling"} <= angular.invariances
    for kind in ("invertible_linear", "scaled_permutation", "orthogonal"):
        g = _elements(rng, d, kind)
        moved = clone(angular).fit(X_tr @ g, Y_tr).score(X_te @ g, Y_te)
        assert moved == pytest.approx(base, rel=1e-7), kind
        moved = clone(angular).fit(X_tr, Y_tr @ g).score(X_te, Y_te @ g)
        assert moved == pytest.approx(base, rel=1e-7), kind
    t = rng.normal(size=d) * 10.0
    assert clone(angular).fit(X_tr + t, Y_tr).score(X_te + t, Y_te) == pytest.approx(
        base, rel=1e-7)
    assert clone(angular).fit(X_tr * 1e3, Y_tr).score(X_te * 1e3, Y_te) == pytest.approx(
        base, rel=1e-7)
    # the Euclidean form declares rotations and translations only
    assert "orthogonal" in euclidean.invariances
    Q = _elements(rng, d, "orthogonal")
    moved = clone(euclidean).fit(X_tr @ Q + t, Y_tr).score(X_te @ Q + t, Y_te)
    assert moved == pytest.approx(base_e, rel=1e-7)


@pytest.mark.parametrize("shape", [(60, 8, 1), (60, 7, 3), (10, 8, 0)])
@pytest.mark.parametrize("seed", SEEDS)
def test_held_out_y_in_the_orbit_of_x_scores_zero(shape, seed):
    """Y = X g (training and held-out rows alike, g invertible) is in X's GL orbit, so the
    distance is 0 also on held-out rows that vary where the training rows did not (the unseen
    parts of X and Y span the same column space, and Procrustes aligns them). Expected: 0
    (definition); rounding of a whitening of condition ~1e3: 1e-6."""
    rng = np.random.default_rng(seed)
    n, d, n_silent = shape
    X_tr, X_te = _latent(rng, n, d), _latent(rng, 40, d)
    X_tr[:, :n_silent] = 0.0
    g = rng.normal(size=(d, d))
    metric = ShapeMetric(alpha=0.0).fit(X_tr, X_tr @ g)
    assert metric.score(X_te, X_te @ g) < 1e-6
    # and a held-out difference in the unseen directions is not hidden
    Y_te = X_te @ g
    Y_te[:, : max(n_silent, 1)] += rng.normal(size=(40, max(n_silent, 1)))
    if n_silent:
        assert metric.score(X_te, Y_te) > 0.01


# -- the fitting data are unchanged -----------------------------------------------------------
def _training_cases(rng):
    X = _latent(rng, 50, 6)
    yield "silent neuron", np.hstack([X, np.zeros((50, 1))]), _latent(rng, 50, 5)
    yield "constant neuron, large means", np.hstack([X + 1e4, np.full((50, 1), 0.7)]), X + 3.0
    yield "duplicate neuron", np.hstack([X, X[:, :1]]), _latent(rng, 50, 4)
    yield "n < d", _latent(rng, 12, 30), _latent(rng, 12, 25)
    B = (_latent(rng, 50, 6) > 0.8) * 1.0
    B[:, 2] = 0.0
    yield "binary, dead unit", B, (_latent(rng, 50, 6) > 0.0) * 1.0


@pytest.mark.parametrize("method", ["angular", "euclidean"])
def test_scoring_the_fitting_rows_adds_no_directions(rng, method):
    """On the fitting rows nothing lies outside the training row space but rounding, so
    ``score`` gives ``fit_score`` (which the rule does not touch) and ``transform`` returns the
    fitted width. Two routes (closed form from the fit's products vs the aligned data): 1e-9
    absolute (angles of order 0.1 - 1.5; Euclidean values of order 1 - 100: 1e-9 relative)."""
    for name, X, Y in _training_cases(rng):
        metric = ShapeMetric(alpha=0.0, score_method=method)
        fitted = clone(metric).fit_score(X, Y)
        metric.fit(X, Y)
        assert metric.score(X, Y) == pytest.approx(fitted, rel=1e-9, abs=1e-9), name
        A, B = metric.transform(X, Y)
        assert A.shape[1] == B.shape[1] == max(X.shape[1], Y.shape[1]), name


# -- n < d ------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_fewer_stimuli_than_neurons_leave_nothing_to_compare(seed):
    """With n <= d the fitting value is 0 for every pair in general position (all canonical
    correlations are 1), and held-out rows add nothing either when the m scored rows and the
    r = n - 1 training directions fit into the d neurons (m + r <= d): then the scored rows of X
    and of X g coincide for some g in GL_d, so GL invariance forces 0. Expected: 0 (the
    definition); the documented answer for n < d (use alpha > 0 or fewer neurons)."""
    rng = np.random.default_rng(seed)
    X, Y = rng.normal(size=(30, 50)), rng.normal(size=(30, 50))
    metric = ShapeMetric(alpha=0.0).fit(X[:10], Y[:10])
    assert metric.fit_score(X[:10], Y[:10]) < 1e-6
    assert ShapeMetric(alpha=0.0).fit(X[:10], Y[:10]).score(X[10:], Y[10:]) < 1e-6


# -- continuity in alpha ----------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_alpha_near_zero_is_continuous_where_training_spans_everything(seed):
    """Where the training rows span every neuron there is no unseen part, and alpha -> 0
    approaches the alpha = 0 value: the whitening's eigenvalue map alpha + (1 - alpha) / sqrt(lam)
    is continuous in alpha at lam > 0. Expected: the alpha = 0 value; the deviation is of order
    alpha sqrt(lam_max) (lam unnormalised, ~ 1e3 here) times the value's sensitivity:
    1e-4 absolute at alpha = 1e-6 (measured 1.4e-8 .. 6.5e-7)."""
    rng = np.random.default_rng(seed)
    X, Y = _latent(rng, 120, 6), _latent(rng, 120, 5)
    zero = ShapeMetric(alpha=0.0).fit(X[:80], Y[:80]).score(X[80:], Y[80:])
    near = ShapeMetric(alpha=1e-6).fit(X[:80], Y[:80]).score(X[80:], Y[80:])
    assert near == pytest.approx(zero, abs=1e-4)


@pytest.mark.parametrize("seed", SEEDS)
def test_alpha_above_zero_keeps_weight_alpha_on_unseen_directions(seed):
    """For 0 < alpha < 1 the unseen directions keep the weight k alpha of the fitted partial
    whitening (unchanged; the rule is alpha = 0's): the reproducer's difference scores of order
    alpha at alpha = 1e-6, far below the alpha = 0 value, a documented jump. Expected: the
    partial whitening by hand, Z = k (alpha I + (1 - alpha) V diag(1/s) V'),
    k = ||s|| / ||alpha s + (1 - alpha)|| (scipy's SVD); X = Y in training: Q = I."""
    train, test, changed = _reproducer(seed)
    alpha = 1e-6
    value = ShapeMetric(alpha=alpha).fit(train, train).score(test, changed)
    mean = train.mean(0)
    _, s, Vt = scipy.linalg.svd(train - mean, full_matrices=False)
    keep = s > max(train.shape) * EPS * s[0]
    s, V = s[keep], Vt[keep].T
    k = np.linalg.norm(s) / np.linalg.norm(alpha * s + (1 - alpha))
    Z = k * (alpha * np.eye(train.shape[1]) + (1 - alpha) * (V / s) @ V.T)
    A, B = (test - mean) @ Z, (changed - mean) @ Z
    expected = _angle(A, B)
    assert value == pytest.approx(expected, rel=1e-6)
    assert value < 1e-3 < ShapeMetric(alpha=0.0).fit(train, train).score(test, changed)


# -- extreme scales ---------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [2.0**-1030, 1e-310, 1e300])
def test_held_out_rule_at_extreme_scales(scale):
    """The angular value is scale free: the reproducer at 1e-310 and 1e300 gives the value at
    scale 1. Subnormal data keep about 13 of 16 digits in true units: 1e-9 relative."""
    train, test, changed = _reproducer(0)
    base = ShapeMetric(alpha=0.0).fit(train, train).score(test, changed)
    value = ShapeMetric(alpha=0.0).fit(train * scale, train * scale).score(
        test * scale, changed * scale)
    assert value == pytest.approx(base, rel=1e-9)


def test_fitted_from_moments_then_scored_on_arrays_is_the_rule_or_says_why_not():
    """``stream_score`` fits from second moments; scoring held-out arrays with an unseen part
    needs the number of training stimuli (the rms k / sqrt(n)). Either the moments route
    records it and the value is the whole-data fit's (expected: that value; eigen-
    decomposition of the Gram instead of the SVD: 1e-8 relative), or a ValueError names the
    way out, never the old 1e-15."""
    from simmetrics import stream_score

    train, test, changed = _reproducer(0)
    expected = ShapeMetric(alpha=0.0).fit(train, train).score(test, changed)
    metric = ShapeMetric(alpha=0.0)
    stream_score(metric, [(train[:40], train[:40]), (train[40:], train[40:])])
    try:
        value = metric.score(test, changed)
    except ValueError as exc:
        assert "fit(X, Y)" in str(exc)
    else:
        assert value == pytest.approx(expected, rel=1e-8)
