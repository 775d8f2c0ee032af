"""Sufficient statistics (simmetrics.moments): exact shift identities, merging of batches and
workers, accuracy with large means, torch on its device, validation of batches."""

import numpy as np
import pytest
import torch

from simmetrics import PairMoments, RepresentationMoments
from simmetrics.metrics.hsic import hsic_unbiased, linear_hsic_unbiased_sums
from simmetrics.moments import (
    check_batch_pair,
    check_nonconstant_array,
    check_nonconstant_moments,
    moments,
    pair_from_sides,
    side,
    spectrum_from_gram,
)


def _explicit(X, Y, cx, cy):
    """Every statistic written out as a plain numpy sum over the rows (the definition)."""
    Z, W = X - cx, Y - cy
    k, l = (Z**2).sum(axis=1), (W**2).sum(axis=1)
    return {
        "x.sum": Z.sum(axis=0), "y.sum": W.sum(axis=0), "x.gram": Z.T @ Z, "y.gram": W.T @ W,
        "x.row_sq_sum": k.sum(), "x.row_sq_sq": k @ k, "x.row_sq_first": Z.T @ k,
        "y.row_sq_sum": l.sum(), "y.row_sq_sq": l @ l, "y.row_sq_first": W.T @ l,
        "cross": Z.T @ W, "row_cross": k @ l, "x_row_y": Z.T @ l, "y_row_x": W.T @ k,
    }


def _fields(stats):
    out = {}
    for key in _explicit(np.zeros((1, 1)), np.zeros((1, 1)), 0, 0):
        obj = stats
        for part in key.split("."):
            obj = getattr(obj, part)
        out[key] = np.asarray(obj.detach().cpu() if torch.is_tensor(obj) else obj)
    return out


def _assert_close(stats, expected, rtol):
    """Each statistic to ``rtol`` of its largest entry; sums about the mean (zero up to
    rounding) to 1e-9 absolute."""
    got = _fields(stats)
    for key, value in expected.items():
        scale = np.max(np.abs(value)) if np.ndim(value) else abs(value)
        assert np.max(np.abs(got[key] - value)) <= max(rtol * scale, 1e-9), key


@pytest.fixture
def pair(rng):
    X = rng.normal(size=(300, 5)) * [1.0, 2.0, 0.5, 3.0, 1.0] + [2.0, -1.0, 0.0, 5.0, 1.0]
    Y = np.tanh(X[:, :3] @ rng.normal(size=(3, 3))) + 0.3 * rng.normal(size=(300, 3)) + 4.0
    return X, Y


def test_shift_identities_match_the_definition(pair, rng):
    # expected: the sums written out about the new shift (the definition of every statistic)
    X, Y = pair
    stats = PairMoments.from_arrays(X, Y, row_terms=True)
    cx, cy = rng.normal(size=5) + 1.0, rng.normal(size=3) - 2.0
    _assert_close(stats.shifted(cx, cy), _explicit(X, Y, cx, cy), rtol=1e-12)
    rep = RepresentationMoments.from_array(X, row_terms=True).shifted(cx)
    np.testing.assert_allclose(rep.row_sq_sq, _explicit(X, Y, cx, cy)["x.row_sq_sq"], rtol=1e-12)


@pytest.mark.parametrize("cuts", [[150], [1, 2, 3, 299], [17, 100, 101, 250]])
def test_batches_merge_to_the_statistics_of_all_rows(pair, cuts):
    # expected: the definition on all rows about the exact means
    X, Y = pair
    parts = [PairMoments.from_arrays(a, b, row_terms=True)
             for a, b in zip(np.split(X, cuts), np.split(Y, cuts))]
    expected = _explicit(X, Y, X.mean(axis=0), Y.mean(axis=0))
    total = sum(parts).centred()
    _assert_close(total, expected, rtol=1e-12)
    assert total.n == 300
    assert np.abs(total.x.sum).max() < 1e-10 and np.abs(total.y.sum).max() < 1e-10
    # any order and any bracketing: a tree of merges gives the same statistics
    tree = (parts[-1] + parts[0]) + sum(parts[1:-1])
    _assert_close(tree.centred(), expected, rtol=1e-12)
    np.testing.assert_array_equal(total.x.minimum, X.min(axis=0))
    np.testing.assert_array_equal(total.y.maximum, Y.max(axis=0))


def test_large_means_cost_no_digits(rng):
    # Data 1e8 + Z with Z on a grid of 2^-10: exactly representable, so X - 1e8 = Z exactly and
    # the expected centred Gram is that of Z. The textbook one-pass formula X'X - n m m' loses
    # every digit here (shown below), the batch-centred pairwise merge does not.
    Z = np.round(rng.normal(size=(2000, 3)) * 1024) / 1024
    X = 1e8 + Z
    assert np.array_equal(X - 1e8, Z)
    Zc = Z - Z.mean(axis=0)
    expected = Zc.T @ Zc
    stats = sum(RepresentationMoments.from_array(X[i:i + 300]) for i in range(0, 2000, 300))
    np.testing.assert_allclose(stats.centred().gram, expected, rtol=1e-9)
    naive = X.T @ X - 2000 * np.outer(X.mean(axis=0), X.mean(axis=0))
    assert np.max(np.abs(naive - expected)) > 1e-3 * np.max(np.abs(expected))


def test_per_representation_sides_are_reused_for_pairs(pair, rng):
    # expected: the statistics computed from scratch (pairwise reuses one side per layer)
    X, Y = pair
    Z = rng.normal(size=(X.shape[0], 2)) + 3.0
    sx = side(X, row_terms=True)
    before = sx.moments.row_sq_first, sx.moments.gram.copy()
    for other in (Y, Z):
        reused = pair_from_sides(sx, side(other, row_terms=True))
        _assert_close(reused.shifted(X.mean(0), other.mean(0)),
                      _explicit(X, other, X.mean(0), other.mean(0)), rtol=1e-12)
        assert reused.x is not sx.moments  # the side itself is never modified
    assert before[0] is None and sx.moments.row_sq_first is None
    np.testing.assert_array_equal(sx.moments.gram, before[1])
    with pytest.raises(ValueError, match="hold 300 and 299 rows"):
        pair_from_sides(sx, side(Y[:-1]))


def test_scaled_and_swapped(pair):
    # expected: statistics of (2X, 3Y) and of (Y, X) computed directly
    X, Y = pair
    stats = PairMoments.from_arrays(X, Y, row_terms=True, shift=0)
    _assert_close(stats.scaled(2.0, 3.0), _explicit(2 * X, 3 * Y, 0, 0), rtol=1e-13)
    swapped = stats.swapped()
    np.testing.assert_allclose(swapped.cross, (Y.T @ X), rtol=1e-13)
    np.testing.assert_allclose(swapped.x_row_y, Y.T @ (X**2).sum(1), rtol=1e-13)


def test_unbiased_hsic_from_sums_equals_the_gram_estimator(pair):
    # expected: Song et al.'s estimator on explicit n x n Gram matrices (simmetrics.metrics.hsic)
    X, Y = pair
    S = PairMoments.from_arrays(X, Y, row_terms=True)
    value = linear_hsic_unbiased_sums(S.n, S.cross, S.row_cross, S.x.sum, S.y.sum,
                                      S.x.row_sq_sum, S.y.row_sq_sum, S.x_row_y, S.y_row_x)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    assert value == pytest.approx(hsic_unbiased(Xc @ Xc.T, Yc @ Yc.T), rel=1e-11)


def test_torch_statistics_match_numpy_and_stay_tensors(pair):
    # expected: the numpy statistics of the same data (float64 products on the device)
    X, Y = pair
    S_t = PairMoments.from_arrays(torch.from_numpy(X), torch.from_numpy(Y), row_terms=True)
    assert torch.is_tensor(S_t.cross) and S_t.cross.dtype == torch.float64
    merged = S_t + PairMoments.from_arrays(torch.from_numpy(X[:7]), torch.from_numpy(Y[:7]),
                                           row_terms=True)
    assert torch.is_tensor(merged.cross)
    _assert_close(S_t.to_numpy(), _fields(PairMoments.from_arrays(X, Y, row_terms=True)),
                  rtol=1e-12)
    # numpy + torch statistics merge (on the CPU)
    mixed = PairMoments.from_arrays(X[:100], Y[:100]) + PairMoments.from_arrays(
        torch.from_numpy(X[100:]), torch.from_numpy(Y[100:]))
    np.testing.assert_allclose(mixed.centred().cross,
                               (X - X.mean(0)).T @ (Y - Y.mean(0)), rtol=1e-12)


def test_float32_tensors_are_accumulated_in_float64(pair):
    # expected: float64 numpy statistics of the float32-rounded data
    X, Y = (A.astype(np.float32) for A in pair)
    A, B = check_batch_pair(torch.from_numpy(X), torch.from_numpy(Y))
    assert A.dtype == torch.float64
    S = PairMoments.from_arrays(A, B).to_numpy().centred()
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    np.testing.assert_allclose(S.cross, (X64 - X64.mean(0)).T @ (Y64 - Y64.mean(0)), rtol=1e-12)


def test_torch_batches_keep_the_package_messages():
    good = torch.randn(10, 3)
    bad = good.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="Y contains 1 NaN and 0 infinite"):
        check_batch_pair(good, bad)
    with pytest.raises(ValueError, match="X must be 2-D"):
        check_batch_pair(torch.randn(10), good)
    with pytest.raises(TypeError, match="X has boolean dtype"):
        check_batch_pair(good > 0, good)
    with pytest.raises(ValueError, match="X has 10, Y has 9"):
        check_batch_pair(good, good[:9])
    with pytest.raises(ValueError, match="X has 3, Y has 2"):
        check_batch_pair(good, good[:, :2], same_width=True)
    with pytest.raises(TypeError, match="X is a tensor on the 'meta' device"):
        check_batch_pair(torch.empty(10, 3, device="meta"), good)
    # layouts are read as in numpy: channels of (n, c, h, w) are the neurons
    conv = torch.randn(2, 3, 2, 2)
    A, _ = check_batch_pair(conv, conv, layout="nchw")
    np.testing.assert_array_equal(A.numpy(), np.moveaxis(conv.double().numpy(), 1, -1)
                                  .reshape(-1, 3))


def test_zero_variance_is_detected_exactly(rng):
    constant = np.full((7, 2), 0.1)  # the float mean of 0.1s need not be 0.1 exactly
    m = RepresentationMoments.from_array(constant[:3]) + RepresentationMoments.from_array(
        constant[3:])
    with pytest.raises(ValueError, match="X has zero variance"):
        check_nonconstant_moments(m, "X")
    with pytest.raises(ValueError, match="Y has zero variance"):
        check_nonconstant_array(torch.from_numpy(constant), "Y")
    check_nonconstant_moments(RepresentationMoments.from_array(rng.normal(size=(5, 2))), "X")


def test_spectrum_from_gram_equals_the_svd(rng):
    # expected: numpy's SVD of the data behind the Gram matrix
    Xc = rng.normal(size=(50, 4)) @ np.diag([3.0, 1.0, 0.5, 0.1])
    s, Vt = spectrum_from_gram(Xc.T @ Xc, 50)
    _, s_ref, Vt_ref = np.linalg.svd(Xc, full_matrices=False)
    np.testing.assert_allclose(s, s_ref, rtol=1e-12)
    np.testing.assert_allclose(np.abs(Vt @ Vt_ref.T), np.eye(4), atol=1e-10)
    # a duplicated column gives an eigenvalue at the rounding level: dropped
    dup = np.hstack([Xc, Xc[:, :1]])
    assert spectrum_from_gram(dup.T @ dup, 50)[0].size == 4


def test_merge_errors_and_moments_helper(pair):
    X, Y = pair
    with pytest.raises(ValueError, match="cannot merge statistics of widths"):
        PairMoments.from_arrays(X, Y) + PairMoments.from_arrays(X, Y[:, :2])
    with pytest.raises(ValueError, match="shift must be 'mean'"):
        RepresentationMoments.from_array(X, shift="median")
    stats = moments(X[:, None, :], Y[:, None, :], layout="ntd")
    assert (stats.n, stats.x.width, stats.has_row_terms) == (300, 5, True)
    assert repr(stats) == "PairMoments(n=300, widths=(5, 3), row_terms=True)"


def test_a_numpy_partner_of_a_tensor_takes_the_layout_once(rng):
    # expected: the numpy path's reading of the same arrays (check_pair with the layout)
    A, B = rng.normal(size=(3, 2, 4, 4)), rng.normal(size=(3, 5, 4, 4))
    B.setflags(write=False)  # read-only arrays are copied, never shared with torch
    X, Y = check_batch_pair(torch.from_numpy(A), B, layout="nchw")
    assert torch.is_tensor(Y) and tuple(Y.shape) == (48, 5)
    expected = check_batch_pair(A, B, layout="nchw")
    np.testing.assert_array_equal(X.numpy(), expected[0])
    np.testing.assert_array_equal(Y.numpy(), expected[1])
    with pytest.raises(ValueError, match="Y contains 1 NaN"):
        B2 = B.copy()
        B2[0, 0, 0, 0] = np.nan
        check_batch_pair(torch.from_numpy(A), B2, layout="nchw")
