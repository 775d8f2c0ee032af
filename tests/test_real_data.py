"""Every metric on the data users have, not only Gaussian matrices (the trust issue).

For every registered metric and the parameter variants of ``metric_configs`` (so every present
and future metric is held to it), on

- sparse ReLU activations (about 80% zeros), binary activations, quantised activations (exact
  ties: values on a grid of 0.25), heavy-tailed activations (Student t, 2 degrees of freedom),
  dead units (all-zero neurons), one dominant stimulus (a row 1e8 times the others), a tight
  cluster next to a far outlier, and n < d:

1. the value is finite and within ``metric.bounds`` (never an exception, never a NaN), except
   for the documented refusals in ``REFUSALS``, which must raise a ``ValueError``;
2. each declared invariance holds, acting on X or on Y, with the group elements drawn so the
   transformed data are exact in floating point where the group allows it (permutations,
   signs, power-of-two scales) and generic otherwise (rotations, invertible maps): values equal
   in exact arithmetic must come out equal to a rounding tolerance, so exact ties may not be
   broken by rounding noise;
3. m(X, X) and m(X, g X) are the ideal value (1 for a similarity, 0 for a distance);
4. a joint permutation of the stimuli (rows), which every metric is invariant to by definition,
   leaves the value unchanged: on a dominant stimulus or a cluster beside an outlier it changes
   how rounding falls, so a value that lost its digits shows here;
5. ``pairwise`` gives the values of ``fit_score`` (its per-representation route), and for the
   streaming metrics so does ``stream_score`` over uneven batches.

Tests 3 to 5 run on every input backend (the ``nx`` fixture of conftest.py: numpy arrays and
CPU torch tensors) against the same expected values, computed from the numpy arrays.

Held-out alignment: a neuron silent on the training stimuli must not hide held-out differences.
"""

import re

import numpy as np
import pytest
from sklearn.base import clone
from threadpoolctl import threadpool_limits

import simmetrics
from simmetrics.base import AlignmentMetric
from simmetrics.metrics.predictivity import ConstantColumnsWarning
from simmetrics.symmetry.groups import get_group

from metric_configs import CONFIGS, IDS, chun_refuses, ideal_value, is_chun
from user_data import KINDS, cluster_and_outlier, dominant_stimulus, latent
from user_data import score_in_bounds as _score


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    with threadpool_limits(limits=1):  # small matrices: threads only add contention
        yield


def _case(metric, kind, seed=0, n=60, dx=10, dy=8):
    rng = np.random.default_rng(seed)
    if metric.same_width:
        dy = dx
    X, Y = kind(rng, n, dx, dy)
    return X, Y


#: The only refusals on these data, each a documented domain: the identity activation's whitened
#: kernel is informative only with more stimuli than neurons (IntertwinerCKA's docstring).
REFUSALS = {("IntertwinerCKA(activation='identity')", "fewer_stimuli_than_neurons")}
#: The affine-invariant Riemannian distance is infinite on a singular covariance (dead unit, n <= d)
#: and has no digits where variances are 1e16 apart (AffineInvariantRiemannian's docstring).
REFUSALS |= {("AffineInvariantRiemannian()", k) for k in ("dominant_stimulus", "cluster_and_outlier", "fewer_stimuli_than_neurons")}
#: Refusals caused by Y (here Y's dead unit), so m(X, X) still has its value.
REFUSALS_OF_Y = {("AffineInvariantRiemannian()", "dead_units")}
#: AlignedCosine's rotation is lost to rounding in X'Y where one stimulus dwarfs the others, and
#: the other stimuli's cosines depend on it (AlignedCosine's docstring): it refuses.
REFUSALS |= {("AlignedCosine()", k) for k in ("dominant_stimulus", "cluster_and_outlier")}
#: Chun et al.'s CKA is undefined where its feature-corrected self-term (an unbiased estimate of
#: the neurons' squared covariances) is not positive (its docstring): X's heavy-tailed neurons
#: are i.i.d., and beside a far outlier, whose products with itself the unbiased estimate drops,
#: X's estimate is negative (-4765 against a self-HSIC of 14604 in exact rational arithmetic on
#: these floats); test_chun_refuses_where_its_definition_says checks the list.
CHUN = "LinearCKA(estimator='chun')"
REFUSALS |= {(CHUN, k) for k in ("heavy_tailed", "cluster_and_outlier")}


#: Second moments cannot hold these (a stimulus 1e8 times the others, or 1e5 beside a cluster of
#: spread 1e-3, cancels every digit of the debiased HSIC's sums): the stream refuses and names
#: fit_score; a wrong number would fail. Ordinary data never are (tests/core/test_trust_moments.py).
STREAM_REFUSALS = {("LinearCKA(debiased=True)", "dominant_stimulus"),
                   ("LinearCKA(debiased=True)", "cluster_and_outlier")}
#: Settings of a streaming metric whose value is not a function of the second moments at all:
#: the stream refuses up front with a TypeError that names the setting. Chun et al.'s
#: correction needs each neuron's fourth moments (LinearCKA's docstring).
CANNOT_STREAM = {CHUN}


def _score_or_refuse(metric, kind, X, Y, of_y=True):
    """The value; or, for the documented refusals above, None after checking that the metric
    raises a ValueError that says why (every other case must give a value). ``of_y=False``:
    Y is X, so the refusals caused by Y do not apply."""
    if (repr(metric), kind.__name__) in (REFUSALS | REFUSALS_OF_Y if of_y else REFUSALS):
        with pytest.raises(ValueError, match="."):
            clone(metric).fit_score(X, Y)
        return None
    return _score(metric, X, Y)


def _tol(metric, value, X, Y):
    if np.isfinite(metric.bounds[1]):
        return 1e-7 * max(1.0, abs(value))
    scale = max(np.abs(X).max(), np.abs(Y).max())
    return 1e-7 * (abs(value) + scale)


def _exact_element(name, d, rng):
    """A group element whose action is exact in floating point where the group has such
    elements (permutations, signs, powers of two); generic elements otherwise."""
    if name == "permutation":
        return np.eye(d)[rng.permutation(d)]
    if name == "signed_permutation":
        return np.eye(d)[rng.permutation(d)] * rng.choice([-1.0, 1.0], size=d)
    if name in ("positive_scaled_permutation", "scaled_permutation"):
        scales = 2.0 ** rng.integers(-3, 4, size=d)
        if name == "scaled_permutation":
            scales *= rng.choice([-1.0, 1.0], size=d)
        return np.eye(d)[rng.permutation(d)] * scales
    if name == "isotropic_scaling":
        return 8.0
    return None


def _act(name, A, rng):
    g = _exact_element(name, A.shape[1], rng)
    if g is None:
        group = get_group(name, scale=10.0) if name == "translation" else get_group(name)
        return group.act(A, group.sample(A.shape[1], random_state=rng))
    return A * g if np.isscalar(g) else A @ g


CASES = [pytest.param(m, k, id=f"{i}-{k.__name__}") for m, i in zip(CONFIGS, IDS) for k in KINDS]


def _case_and_value(metric, kind):
    X, Y = _case(metric, kind)
    return X, Y, _score_or_refuse(metric, kind, X, Y)


@pytest.mark.parametrize("metric, kind", CASES)
def test_declared_invariances_hold_on_the_data_users_have(metric, kind):
    X, Y, base = _case_and_value(metric, kind)
    if base is None:  # a documented refusal, checked in _score_or_refuse
        return
    rng = np.random.default_rng(1)
    for name in sorted(metric.invariances):
        for side in ("X", "Y"):
            if name == "translation" and kind in (dominant_stimulus, cluster_and_outlier):
                continue  # a translation of size 10 is rounding noise beside 1e8 or 1e5
            gX, gY = (_act(name, X, rng), Y) if side == "X" else (X, _act(name, Y, rng))
            value = _score(metric, gX, gY)
            assert abs(value - base) <= _tol(metric, base, X, Y), (
                f"{metric!r} on {kind.__name__}: not invariant to {name} on {side}: "
                f"{base!r} -> {value!r}"
            )


@pytest.mark.parametrize("metric, kind", CASES)
def test_one_orbit_gives_the_ideal_value(metric, kind, nx):
    X, _ = _case(metric, kind)
    ideal = ideal_value(metric, X)  # 1 or 0; ENSD, LCSKNN, CycleKNN: see metric_configs
    value = _score_or_refuse(metric, kind, nx.from_numpy(X), nx.from_numpy(X), of_y=False)
    if value is None:
        return
    assert abs(value - ideal) <= 10 * _tol(metric, ideal, X, X), f"m(X, X) = {value}"
    rng = np.random.default_rng(2)
    for name in sorted(metric.invariances):
        if name == "translation" and kind in (dominant_stimulus, cluster_and_outlier):
            continue
        value = _score(metric, nx.from_numpy(X), nx.from_numpy(_act(name, X, rng)))
        assert abs(value - ideal) <= 10 * _tol(metric, ideal, X, X), (
            f"{metric!r} on {kind.__name__}: m(X, g X) = {value!r} for g in {name}"
        )


@pytest.mark.parametrize("metric, kind", CASES)
def test_reordering_the_stimuli_keeps_the_value(metric, kind, nx):
    X, Y, base = _case_and_value(metric, kind)
    if base is None:  # a documented refusal, checked in _score_or_refuse
        return
    # the numpy value on every backend: the input's library is not part of the definition
    on_backend = _score(metric, nx.from_numpy(X), nx.from_numpy(Y))
    assert on_backend == pytest.approx(base, rel=1e-9, abs=1e-12), (
        f"{metric!r} on {kind.__name__}: {nx.name} input gave {on_backend!r}, numpy {base!r}")
    for seed in (3, 4):
        order = np.random.default_rng(seed).permutation(X.shape[0])
        value = _score(metric, nx.from_numpy(X[order]), nx.from_numpy(Y[order]))
        assert abs(value - base) <= _tol(metric, base, X, Y), (
            f"{metric!r} on {kind.__name__}: reordering the stimuli moved {base!r} to {value!r}"
        )


@pytest.mark.parametrize("metric, kind", CASES)
def test_pairwise_and_streaming_give_the_value_of_fit_score(metric, kind, nx):
    X, Y, base = _case_and_value(metric, kind)
    if base is None:  # a documented refusal, checked in _score_or_refuse
        return
    matrix = np.asarray(simmetrics.pairwise(metric, [nx.from_numpy(X)], [nx.from_numpy(Y)]),
                        dtype=float)
    assert abs(matrix[0, 0] - base) <= _tol(metric, base, X, Y), (
        f"pairwise {matrix[0, 0]!r} vs fit_score {base!r}")
    if type(metric).name in simmetrics.streaming_metrics():
        n = X.shape[0]
        cuts = [0, n // 5, n // 5 + 1, n // 2, n]
        batches = [(nx.from_numpy(X[a:b]), nx.from_numpy(Y[a:b])) for a, b in zip(cuts, cuts[1:])]
        if repr(metric) in CANNOT_STREAM:
            with pytest.raises(TypeError, match=re.escape(repr(metric)) + " cannot be computed"):
                simmetrics.stream_score(clone(metric), batches)
            return
        if (repr(metric), kind.__name__) in STREAM_REFUSALS:
            with pytest.raises(ValueError, match="fit_score"):  # the refusal names the way out
                simmetrics.stream_score(clone(metric), batches)
            return
        value = simmetrics.stream_score(clone(metric), batches)
        assert abs(value - base) <= _tol(metric, base, X, Y), (
            f"stream_score {value!r} vs fit_score {base!r}")


def test_chun_refuses_where_its_definition_says():
    # expected: metric_configs.chun_refuses, the self-terms from n x n kernels one neuron at a
    # time (not the metric's route); the listed refusals are exactly those of X or Y
    chun = [m for m in CONFIGS if is_chun(m)]
    assert [repr(m) for m in chun] == [CHUN]
    for kind in KINDS:
        X, Y = _case(chun[0], kind)
        assert ((CHUN, kind.__name__) in REFUSALS | REFUSALS_OF_Y) == (
            chun_refuses(X) or chun_refuses(Y)), kind.__name__
        assert ((CHUN, kind.__name__) in REFUSALS) == chun_refuses(X), kind.__name__


ALIGNMENT = [pytest.param(m, id=i) for m, i in zip(CONFIGS, IDS) if isinstance(m, AlignmentMetric)]


@pytest.mark.parametrize("metric", ALIGNMENT)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_neuron_silent_in_training_cannot_hide_held_out_differences(metric, seed):
    rng = np.random.default_rng(seed)
    X = np.maximum(latent(rng, 120, 8), 0) + 0.1
    X[:80, 0] = 0.0  # neuron 0 is silent on the training stimuli
    fitted = clone(metric).fit(X[:80], X[:80])
    test = X[80:]
    changed = test.copy()
    changed[:, 0] = rng.permutation(changed[:, 0]) + 1.0  # the two differ in that neuron only
    if isinstance(metric, simmetrics.LinearPredictivity):
        # a median over the target neurons (Brain-Score's score): the silent neuron's
        # prediction is constant, so its column is left out, and said so, not hidden
        with pytest.warns(ConstantColumnsWarning, match="out of the median"):
            fitted.score(test, changed)
        assert fitted.n_skipped_ >= 1
        return
    if isinstance(metric, (simmetrics.CCA, simmetrics.SVCCA, simmetrics.PWCCA)):
        # held-out CCA (issue 15): directions fitted where neuron 0 never varied cannot weigh
        # it, so the scored X is refused, naming the cause; SVCCA's cut discards up to
        # 1 - variance of the variance by definition, and allows unseen variation up to that
        # share of the held-out norm (its value is then that of data without neuron 0)
        centred = test - test.mean(axis=0)
        share = np.sum(centred[:, 0] ** 2) / np.sum(centred**2)
        if share <= 1.0 - float(getattr(metric, "variance", 1.0)):
            without = test.copy()
            without[:, 0] = 0.0
            assert fitted.score(test, changed) == pytest.approx(
                fitted.score(without, changed), abs=1e-12)
            return
        with pytest.raises(ValueError, match="X varies on the scored stimuli in directions"):
            fitted.score(test, changed)
        return
    value = fitted.score(test, changed)
    ideal = 1.0 if metric.kind == "similarity" else 0.0
    lo, hi = metric.bounds
    assert lo <= value <= hi
    assert abs(value - ideal) > 1e-3, (
        f"{metric!r}: held-out data that differ in a neuron silent during fit scored {value!r}"
    )
