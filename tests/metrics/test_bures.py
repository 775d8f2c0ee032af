"""Normalised Bures similarity and the Bures distance against nn_similarity_index, netrep,
rsatoolbox (run live) and closed forms."""

import numpy as np
import pytest

import simmetrics
from simmetrics import BuresDistance, NormalizedBuresSimilarity

PAIRS = ["X_Y", "X_Z", "X_Xpd", "X_Xq"]


def _pair(seed11, pair):
    return seed11["X"], seed11[pair.split("_")[1]]


# -- seed11 reference values ---------------------------------------------------------------
# nnsi_*: nacloos/similarity-repository commit 035b3bee, nn_similarity_index (amzn/xfer's
# sim_indices.py, Tang et al. 2020); square roots of eigenvalues of the n x n product Kx Ky,
# about 1e-7 off the exact value (tests/data/reference/seed11/README.md, "Where peers differ"),
# hence 1e-6 (relative for the distance, which has the data's units).
@pytest.mark.parametrize("pair", PAIRS)
def test_nbs_matches_nn_similarity_index(seed11, pair):
    value = NormalizedBuresSimilarity().fit_score(*_pair(seed11, pair))
    assert value == pytest.approx(seed11["values"][pair]["nnsi_nbs"], abs=1e-6)


@pytest.mark.parametrize("pair", PAIRS)
def test_bures_distance_matches_nn_similarity_index(seed11, pair):
    value = BuresDistance().fit_score(*_pair(seed11, pair))
    ref = seed11["values"][pair]["nnsi_bures_distance"]
    if ref == "nan":  # X_Xq: the peer's radicand rounds negative; exactly 0 (Xq = X Q)
        assert value <= 1e-10
        return
    assert value == pytest.approx(ref, rel=1e-6, abs=1e-6)


# The exact forms: netrep's LinearMetric(alpha=1) (ahwillia/netrep commit 0186b8a7), the
# Procrustes size-and-shape distance and its angle, agree with the d x d nuclear norm to 1e-12.
@pytest.mark.parametrize("pair", PAIRS)
def test_exact_forms_match_netrep_procrustes(seed11, pair):
    X, O = _pair(seed11, pair)
    ref = seed11["values"][pair]
    assert BuresDistance().fit_score(X, O) == pytest.approx(
        ref["netrep_linear_alpha1.0_euclidean"], abs=1e-8)
    nbs = NormalizedBuresSimilarity().fit_score(X, O)
    assert nbs == pytest.approx(np.cos(ref["netrep_linear_alpha1.0_angular"]), abs=1e-8)


def test_nbs_matches_rsatoolbox_live(seed11):
    import rsatoolbox  # a test extra (pyproject.toml)
    X, Y = seed11["X"][:100], seed11["Y"][:100]
    rdms = [rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(A), method="euclidean") for A in (X, Y)]
    ref = float(rsatoolbox.rdm.compare(rdms[0], rdms[1], method="bures")[0, 0])
    assert NormalizedBuresSimilarity().fit_score(X, Y) == pytest.approx(ref, abs=1e-6)


# -- closed forms ------------------------------------------------------------------------
def test_definitions_from_the_nuclear_norm(rng):
    X, Y = rng.normal(size=(60, 7)), rng.normal(size=(60, 4)) + 3.0
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    nuclear = np.linalg.svd(Xc.T @ Yc, compute_uv=False).sum()
    fx, fy = np.linalg.norm(Xc), np.linalg.norm(Yc)
    assert NormalizedBuresSimilarity().fit_score(X, Y) == pytest.approx(nuclear / fx / fy, rel=1e-12)
    assert BuresDistance().fit_score(X, Y) == pytest.approx(
        np.sqrt(fx**2 + fy**2 - 2 * nuclear), rel=1e-10)
    # the Bures distance is the Procrustes size-and-shape distance
    procrustes = simmetrics.OrthogonalProcrustes(score_method="euclidean").fit_score(X, Y)
    assert BuresDistance().fit_score(X, Y) == pytest.approx(procrustes, rel=1e-10)


def test_rotated_and_scaled_copies(rng):
    X = rng.normal(size=(80, 6))
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert NormalizedBuresSimilarity().fit_score(X, 5 * X @ Q - 2) == pytest.approx(1.0, abs=1e-14)
    assert BuresDistance().fit_score(X, X @ Q + 7) <= 1e-12
    # scaling by c: d = |1 - c| ||Xc||_F
    assert BuresDistance().fit_score(X, 3 * X) == pytest.approx(2 * np.linalg.norm(X - X.mean(0)))


@pytest.mark.parametrize("scale", [1e-150, 1e150])
def test_extreme_scales(rng, scale):
    X, Y = rng.normal(size=(40, 5)), rng.normal(size=(40, 3))
    base_s = NormalizedBuresSimilarity().fit_score(X, Y)
    base_d = BuresDistance().fit_score(X, Y)
    assert NormalizedBuresSimilarity().fit_score(scale * X, scale * Y) == pytest.approx(base_s, rel=1e-12)
    assert BuresDistance().fit_score(scale * X, scale * Y) == pytest.approx(base_d * scale, rel=1e-12)


def test_fewer_stimuli_than_neurons_binary_and_dead_units(rng):
    X = (rng.normal(size=(10, 50)) > 0.5) * 1.0
    Y = np.round(np.maximum(rng.normal(size=(10, 30)), 0) * 4) / 4
    X[:, :3] = 0.0  # dead units
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    nuclear = np.linalg.svd(Xc.T @ Yc, compute_uv=False).sum()
    assert NormalizedBuresSimilarity().fit_score(X, Y) == pytest.approx(
        nuclear / np.linalg.norm(Xc) / np.linalg.norm(Yc), rel=1e-12)
    assert BuresDistance().fit_score(X, X[:, ::-1]) <= 1e-12


@pytest.mark.parametrize("metric", [NormalizedBuresSimilarity(), BuresDistance()], ids=repr)
def test_constant_input_is_an_error(metric, rng):
    with pytest.raises(ValueError, match="Y has zero variance"):
        metric.fit_score(rng.normal(size=(10, 3)), np.ones((10, 2)))


@pytest.mark.parametrize("metric", [NormalizedBuresSimilarity(), BuresDistance()], ids=repr)
def test_pairwise_and_streaming_give_fit_score(metric, rng):
    reps = [rng.normal(size=(50, d)) for d in (4, 6, 3)]
    matrix = simmetrics.pairwise(metric, reps)
    for i in range(3):
        for j in range(3):
            assert matrix[i, j] == pytest.approx(metric.fit_score(reps[i], reps[j]), rel=1e-12,
                                                 abs=1e-12)
    X, Y = reps[0], reps[1]
    batches = [(X[i:i + 13], Y[i:i + 13]) for i in range(0, 50, 13)]
    assert simmetrics.stream_score(metric, batches) == pytest.approx(metric.fit_score(X, Y),
                                                                     rel=1e-10, abs=1e-12)
