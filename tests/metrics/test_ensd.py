"""ENSD, its angular distance and the participation ratio against the authors' code and
closed forms."""

import numpy as np
import pytest

import simmetrics
from simmetrics import ENSD, ENSDDistance, participation_ratio

PAIRS = ["X_Y", "X_Z", "X_Xpd", "X_Xq"]


def _pair(seed11, pair):
    return seed11["X"], seed11[pair.split("_")[1]]


# ensd_*: camillerb/ENSD's functions as packaged by nacloos/similarity-repository (commit
# 035b3bee, ENSD_Tutorial.py; identical to camillerb/ENSD commit 0c2b3d34), columns centred
# (tests/data/reference/seed11/README.md).
@pytest.mark.parametrize("pair", PAIRS)
def test_ensd_and_participation_ratios_match_the_authors_code(seed11, pair):
    ref = seed11["values"][pair]
    X, O = _pair(seed11, pair)
    metric = ENSD()
    assert metric.fit_score(X, O) == pytest.approx(ref["ensd_ENSD"], abs=1e-8)
    assert metric.participation_ratio_x_ == pytest.approx(ref["ensd_PR_X"], abs=1e-8)
    assert metric.participation_ratio_y_ == pytest.approx(ref["ensd_PR_other"], abs=1e-8)
    assert participation_ratio(X) == pytest.approx(ref["ensd_PR_X"], abs=1e-8)
    assert participation_ratio(O) == pytest.approx(ref["ensd_PR_other"], abs=1e-8)


@pytest.mark.parametrize("pair", PAIRS)
def test_ensd_distance_matches_compute_dist(seed11, pair):
    ref = seed11["values"][pair]["ensd_computeDist"]
    value = ENSDDistance().fit_score(*_pair(seed11, pair))
    # on X_Xq (Xq = X Q) the peer's arccos of a rounded 1 gives 9.5e-9; exactly 0
    assert value == pytest.approx(ref, abs=1e-8)
    if pair == "X_Xq":
        assert value <= 1e-12
    # = (2 / pi) arccos(linear CKA), with nnsi_cka from the same repository
    cka = seed11["values"][pair]["nnsi_cka"]
    if pair != "X_Xq":
        assert value == pytest.approx(2 / np.pi * np.arccos(cka), abs=1e-12)


def test_closed_forms(rng):
    X, Y = rng.normal(size=(70, 6)) * np.arange(1, 7), rng.normal(size=(70, 4)) + 2.0
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Kx, Ky = Xc @ Xc.T, Yc @ Yc.T
    pr = lambda K: np.trace(K) ** 2 / np.sum(K * K)  # noqa: E731
    expected = pr(Kx) * pr(Ky) * np.sum(Kx * Ky) / (np.trace(Kx) * np.trace(Ky))
    assert ENSD().fit_score(X, Y) == pytest.approx(expected, rel=1e-12)
    assert ENSD().fit_score(X, X) == pytest.approx(pr(Kx), rel=1e-12)
    cka = simmetrics.LinearCKA().fit_score(X, Y)
    assert ENSDDistance().fit_score(X, Y) == pytest.approx(2 / np.pi * np.arccos(cka), rel=1e-12)
    # isotropic data of d dimensions have PR -> d
    assert participation_ratio(rng.normal(size=(20000, 5))) == pytest.approx(5.0, rel=2e-3)


def test_near_zero_angles_keep_their_digits(rng):
    X = rng.normal(size=(60, 5))
    Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    assert ENSDDistance().fit_score(X, 3 * X @ Q + 1) <= 1e-13
    # a small perturbation: the angle is proportional to it, not sqrt(eps)-noisy
    E = rng.normal(size=X.shape)
    small = [ENSDDistance().fit_score(X, X + t * E) for t in (1e-9, 2e-9)]
    assert small[1] / small[0] == pytest.approx(2.0, rel=1e-3)


def test_fewer_stimuli_than_neurons_binary_dead_units(rng):
    X = (rng.normal(size=(12, 40)) > 0.7) * 1.0
    X[:, :4] = 0.0
    Y = np.round(np.maximum(rng.normal(size=(12, 25)), 0) * 4) / 4
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Kx, Ky = Xc @ Xc.T, Yc @ Yc.T
    cka = np.sum(Kx * Ky) / np.linalg.norm(Kx) / np.linalg.norm(Ky)
    assert ENSDDistance().fit_score(X, Y) == pytest.approx(2 / np.pi * np.arccos(cka), rel=1e-12)


@pytest.mark.parametrize("metric", [ENSD(), ENSDDistance()], ids=repr)
def test_constant_input_is_an_error(metric, rng):
    with pytest.raises(ValueError, match="X has zero variance"):
        metric.fit_score(np.ones((10, 2)), rng.normal(size=(10, 3)))
    with pytest.raises(ValueError, match="X has zero variance"):
        participation_ratio(np.ones((10, 2)))


@pytest.mark.parametrize("metric", [ENSD(), ENSDDistance()], ids=repr)
def test_pairwise_and_streaming_give_fit_score(metric, rng):
    reps = [rng.normal(size=(50, d)) @ rng.normal(size=(d, d)) for d in (4, 6, 3)]
    matrix = simmetrics.pairwise(metric, reps)
    for i in range(3):
        for j in range(3):
            assert matrix[i, j] == pytest.approx(metric.fit_score(reps[i], reps[j]), rel=1e-12,
                                                 abs=1e-12)
    X, Y = reps[0], reps[1]
    batches = [(X[i:i + 13], Y[i:i + 13]) for i in range(0, 50, 13)]
    assert simmetrics.stream_score(metric, batches) == pytest.approx(metric.fit_score(X, Y),
                                                                     rel=1e-10, abs=1e-12)
