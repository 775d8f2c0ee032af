"""The symmetric neighbour search (:func:`simmetrics.metrics.knn._top_candidates` and
:meth:`NeighbourSearch.candidate_chunks`): each block product serves two sets of rows, and a
row takes a block's entries above its running m-th largest only. Checked against the full
n x n similarity matrix sorted row by row (an independent route: one product, numpy's sort),
and every neighbourhood measure's value against the same measure with a single block, on the
data users have (ties at the k-th place in some rows only, duplicates, binary data)."""

import numpy as np
import pytest

from simmetrics import (CKNNA, LCSKNN, CycleKNN, EditDistanceKNN, JaccardKNN, MutualKNN,
                        RankSimilarity, SecondOrderCosine)
from simmetrics.metrics import knn

MEASURES = [MutualKNN, JaccardKNN, RankSimilarity, SecondOrderCosine, CycleKNN, LCSKNN,
            EditDistanceKNN, CKNNA]


def _sorted_rows(U, exclude_self=True):
    """Each row of U U' sorted by decreasing value, the diagonal at -inf (the brute force)."""
    S = U @ U.T
    if exclude_self:
        np.fill_diagonal(S, -np.inf)
    return S, -np.sort(-S, axis=1)


def _data(kind, n, d, seed):
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.standard_normal((n, d))
    if kind == "binary":  # exact ties everywhere
        X = rng.integers(0, 2, size=(n, d)).astype(float)
        X[X.sum(axis=1) == 0, 0] = 1.0
        return X
    if kind == "pairs":  # distinct rows of two ones: similarities 0 or 1/2, ties in every row
        pairs = np.array([(i, j) for i in range(d) for j in range(i + 1, d)])
        X = np.zeros((n, d))
        chosen = pairs[rng.choice(len(pairs), size=n, replace=False)]
        X[np.arange(n)[:, None], chosen] = 1.0
        return X
    if kind == "mixed":  # distinct binary rows (ties at the k-th place) beside Gaussian ones
        X = rng.standard_normal((n, d))
        codes = rng.choice(np.arange(1, 2**d), size=n // 2, replace=False)
        X[: n // 2] = (codes[:, None] >> np.arange(d)) & 1
        return X
    raise ValueError(kind)


@pytest.mark.parametrize("block", [3, 7, 16, 2048])
@pytest.mark.parametrize("n, m", [(5, 5), (37, 4), (120, 11)])
@pytest.mark.parametrize("exclude_self", [True, False])
def test_top_candidates_are_each_rows_largest_values(monkeypatch, block, n, m, exclude_self):
    monkeypatch.setattr(knn, "_BLOCK", block)
    U = _data("gaussian", n, 6, seed=n + m)
    vals, cols = knn._top_candidates(U, m, exclude_self)
    S, ranked = _sorted_rows(U, exclude_self)
    # the values: the m largest of each row, in decreasing order (block products round alike)
    np.testing.assert_allclose(vals, ranked[:, :m], rtol=0, atol=1e-14)
    # the columns: distinct samples whose entries are those values
    finite = np.isfinite(vals)
    rows = np.broadcast_to(np.arange(n)[:, None], cols.shape)
    np.testing.assert_allclose(S[rows[finite], cols[finite]], vals[finite], rtol=0, atol=1e-14)
    assert all(np.unique(c[f]).size == f.sum() for c, f in zip(cols, finite))


def test_running_top_takes_a_partition_when_too_many_entries_beat_the_floor():
    # blocks offered in increasing order of value: every entry beats the floor, so each offer
    # after the first is a crowded block (the partition branch), and the result is still exact
    rng = np.random.default_rng(3)
    n, m, width = 9, 3, 5
    blocks = [rng.random((n, width)) + step for step in range(4)]
    top = knn._RunningTop(n, m)
    for step, B in enumerate(blocks):
        top.offer(B, 0, step * width)
    full = np.hstack(blocks)
    order = np.argsort(-full, axis=1)[:, :m]
    np.testing.assert_array_equal(np.sort(top.cols, axis=1), np.sort(order, axis=1))
    np.testing.assert_array_equal(np.sort(top.vals, axis=1),
                                  np.sort(np.take_along_axis(full, order, axis=1), axis=1))


@pytest.mark.parametrize("kind", ["gaussian", "binary", "mixed", "pairs"])
@pytest.mark.parametrize("similarity", ["cosine", "inner_product"])
def test_candidate_chunks_cover_each_sample_once_and_compact_rows_are_exact(monkeypatch, kind,
                                                                            similarity):
    monkeypatch.setattr(knn, "_BLOCK", 13)
    k = 4
    X = _data(kind, 90, 16 if kind == "pairs" else 9, seed=1)
    search = knn.NeighbourSearch(X, "X", similarity)
    seen, compact = [], 0
    for rows, S, columns in search.candidate_chunks(k, chunk_size=17):
        seen.append(rows)
        full = search.similarities(rows)
        if columns is None:
            np.testing.assert_array_equal(S, full)
            continue
        compact += rows.size
        ranked = -np.sort(-full, axis=1)
        tol = np.broadcast_to(search.tol_of(rows), (rows.size, 1))[:, 0]
        # a compact row: no tie at the k-th place, and its k columns are its k largest
        assert np.all(ranked[:, k] < ranked[:, k - 1] - tol)
        assert np.all(np.diff(columns, axis=1) > 0)
        best = np.sort(np.argsort(-full, axis=1)[:, :k], axis=1)
        np.testing.assert_array_equal(columns, best)
        np.testing.assert_allclose(S, np.take_along_axis(full, columns, axis=1), atol=1e-14,
                                   rtol=0)
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(90))
    if kind == "gaussian":
        assert compact == 90  # nothing ties: every row is compact
    if kind == "mixed":
        assert search.which is None and 0 < compact < 90  # both kinds of chunk
    if kind == "pairs":  # the probe finds nearly every row tied: no symmetric pass, full rows
        assert search.which is None and compact == 0
    if kind == "binary" and similarity == "cosine":
        assert search.which is not None and compact == 0  # duplicated samples: full rows


def _full_rows(self, k, chunk_size, exclude_self=True):
    """The row-by-row search every measure used before the symmetric one: full rows of
    similarities, ``chunk_size`` rows at a time, in order."""
    for lo in range(0, self.n, chunk_size):
        rows = np.arange(lo, min(lo + chunk_size, self.n))
        yield rows, self.similarities(rows, exclude_self), None


@pytest.mark.parametrize("cls", MEASURES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("kind", ["gaussian", "mixed", "pairs"])
def test_every_measure_equals_the_row_by_row_search(monkeypatch, cls, kind):
    d = 20 if kind == "pairs" else 9  # 150 distinct pairs of ones need 20 neurons
    X = _data(kind, 150, d, seed=5)
    Y = X @ np.random.default_rng(6).standard_normal((d, 7)) + 0.3 * _data("gaussian", 150, 7, 7)
    one_block = cls(k=5).fit_score(X, Y)  # 150 samples: a single 2048-row block
    monkeypatch.setattr(knn, "_BLOCK", 11)
    many_blocks = cls(k=5).fit_score(X, Y)
    monkeypatch.setattr(knn.NeighbourSearch, "candidate_chunks", _full_rows)
    row_by_row = cls(k=5).fit_score(X, Y)
    assert one_block == pytest.approx(row_by_row, abs=1e-12)
    assert many_blocks == pytest.approx(row_by_row, abs=1e-12)
