"""The Procrustes / shape variants the peers name differently, reproduced on seed11.

Every ``resi_*``, ``netrep_linear_*`` and ``lange_*_shape_*`` shape key of
tests/data/reference/seed11/values.json (peers: mklabunde/resi 24ab9e5, ahwillia/netrep
0186b8a, wrongu/repsim ecd0a54; conventions in that folder's README.md) from a simmetrics class
and its parameters:

- ReSi ``orthogonal_angular_shape_metric_centered``: ``OrthogonalProcrustes()``;
  ``procrustes_size_and_shape_distance``: ``OrthogonalProcrustes(score_method="euclidean")``;
  ``orthogonal_procrustes_centered_and_normalized`` (sqrt(2 - 2 ||X^T Y||_*) after centring and
  unit norm): ``OrthogonalProcrustes(score_method="chordal")``; ``permutation_procrustes``:
  ``PermutationMetric(score_method="euclidean", center_columns=False)``.
- netrep ``linear_alpha{a}_{method}``: ``ShapeMetric(alpha=a, score_method=method,
  whitening="netrep")`` (netrep counts padded directions in its variance rescale; the default
  "trace" whitening differs on X_Z for the Euclidean distance at alpha < 1 only).
- Lange ``{method}_shape_alpha{a}_p40``: ``ShapeMetric(alpha=a, score_method=method,
  whitening="covariance")``.

Tolerance 1e-8, except where the exact value is 0 (X_Xpd at alpha 0, X_Xq) and the peer returns
arccos of a cosine rounded below 1 (2.1e-8 = arccos(1 - 2.2e-16), 1.5e-8 = arccos(1 - 1.1e-16)):
there simmetrics' accurate angle (below 1e-12) is checked and the peer's value is only checked
to be such a rounding residue (below 3e-8). No ``netrep_perm_*`` keys exist in seed11; every key
listed is reproduced (none is unreachable by definition).
"""

import numpy as np
import pytest

import simmetrics
from simmetrics import OrthogonalProcrustes, PermutationMetric, ShapeMetric

PAIRS = ("X_Y", "X_Z", "X_Xpd", "X_Xq")

CASES = {
    "resi_orthogonal_angular_shape_metric_centered": lambda: OrthogonalProcrustes(),
    "resi_procrustes_size_and_shape_distance": lambda: OrthogonalProcrustes(
        score_method="euclidean"),
    "resi_orthogonal_procrustes_centered_and_normalized": lambda: OrthogonalProcrustes(
        score_method="chordal"),
    "resi_permutation_procrustes": lambda: PermutationMetric(
        score_method="euclidean", center_columns=False),
}
for _a in (0.0, 0.5, 1.0):
    for _m in ("angular", "euclidean"):
        CASES[f"netrep_linear_alpha{_a}_{_m}"] = (
            lambda a=_a, m=_m: ShapeMetric(alpha=a, score_method=m, whitening="netrep"))
        CASES[f"lange_{_m}_shape_alpha{_a}_p40"] = (
            lambda a=_a, m=_m: ShapeMetric(alpha=a, score_method=m, whitening="covariance"))


def _other(seed11, pair):
    return seed11[pair.split("_", 1)[1]]


@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("key", sorted(CASES))
def test_peer_key(seed11, key, pair):
    ref = seed11["values"][pair][key]
    got = CASES[key]().fit_score(seed11["X"], _other(seed11, pair))
    if abs(ref) < 3e-8 and "angular" in key or key.endswith("normalized") and abs(ref) < 3e-8:
        assert abs(got) < 1e-12  # exact 0: the peer's residue is its arccos rounding
    else:
        assert got == pytest.approx(ref, abs=1e-8, rel=0)


def test_default_trace_whitening_is_netrep_on_equal_full_rank_widths(seed11):
    # the "netrep" count changes nothing where the data span the common width
    X, Y = seed11["X"], seed11["Y"]
    for a in (0.0, 0.5):
        a_ = ShapeMetric(alpha=a, score_method="euclidean").fit_score(X, Y)
        b_ = ShapeMetric(alpha=a, score_method="euclidean", whitening="netrep").fit_score(X, Y)
        assert a_ == b_


def test_netrep_whitening_same_through_pairwise_and_streaming(seed11):
    X, Z = seed11["X"], seed11["Z"]
    m = ShapeMetric(alpha=0.5, score_method="euclidean", whitening="netrep")
    direct = m.fit_score(X, Z)
    P = np.asarray(simmetrics.pairwise(m, [X, Z]))
    assert P[0, 1] == pytest.approx(direct, rel=1e-12)
    s = simmetrics.stream_score(m, [(X, Z)])
    assert s == pytest.approx(direct, rel=1e-9)


def test_chordal_closed_form():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(80, 6)), rng.normal(size=(80, 6))
    theta = OrthogonalProcrustes().fit_score(X, Y)
    chord = OrthogonalProcrustes(score_method="chordal").fit_score(X, Y)
    assert chord == pytest.approx(np.sqrt(2 - 2 * np.cos(theta)), rel=1e-12)
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert OrthogonalProcrustes(score_method="chordal").fit_score(X, 3 * X @ Q + 2) < 1e-12
    assert PermutationMetric(score_method="chordal").fit_score(X, 5 * X[:, ::-1]) < 1e-12


def test_covariance_whitening_alpha0_euclidean_is_linear_invariant():
    # whitened data sqrt(n) U V': the distance ignores any invertible map of either side
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(60, 5)), rng.normal(size=(60, 5))
    m = ShapeMetric(alpha=0.0, score_method="euclidean", whitening="covariance")
    G = rng.normal(size=(5, 5))
    assert m.fit_score(X @ G * 7, Y) == pytest.approx(m.fit_score(X, Y), rel=1e-10)
    # with identical column spaces it is 0; the value is sqrt(2 n (r - sum rho))
    rho = np.linalg.svd(np.linalg.qr(X - X.mean(0))[0].T @ np.linalg.qr(Y - Y.mean(0))[0],
                        compute_uv=False)
    assert m.fit_score(X, Y) == pytest.approx(np.sqrt(2 * 60 * (5 - rho.sum())), rel=1e-10)


def test_binary_ties_and_dead_unit_and_n_below_d():
    rng = np.random.default_rng(2)
    X = (rng.random((30, 8)) < 0.3).astype(float)
    Y = (rng.random((30, 8)) < 0.3).astype(float)
    X[:, 0] = Y[:, 0] = 0.0  # a dead unit: rank below width
    for w in ("trace", "netrep", "covariance"):
        for a in (0.0, 0.5):
            v = ShapeMetric(alpha=a, score_method="euclidean", whitening=w).fit_score(X, Y)
            assert np.isfinite(v) and v >= 0
    # netrep counts the dead unit's direction in its rescale: it differs from "trace"
    t = ShapeMetric(alpha=0.0, score_method="euclidean").fit_score(X, Y)
    n = ShapeMetric(alpha=0.0, score_method="euclidean", whitening="netrep").fit_score(X, Y)
    # (k'^2 = (tr C + 1e-7) / 8 against k^2 = tr C / 7: sqrt(7/8) up to the floor's 1e-7)
    assert n == pytest.approx(t * np.sqrt(7 / 8), rel=1e-6)
    W = rng.normal(size=(10, 40))  # n < d
    V = rng.normal(size=(10, 40))
    for w in ("trace", "netrep", "covariance"):
        assert np.isfinite(ShapeMetric(alpha=0.5, whitening=w).fit_score(W, V))


def test_invalid_whitening():
    with pytest.raises(ValueError, match="whitening"):
        ShapeMetric(alpha=0.5, whitening="lange").fit_score(np.eye(4), np.eye(4))
