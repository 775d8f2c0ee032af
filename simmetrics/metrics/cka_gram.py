"""Linear CKA through n x n Gram matrices: the route for n small against the widths.

The cost model that chooses between feature space and Gram space (:func:`gram_cheaper`,
:func:`gram_space`), the factor F with K = F F' of one representation (:func:`gram_factor`), and
:func:`gram_space_cka`, the CKA of many pairs from kernels computed tile by tile in bounded
memory (also the fallback of the debiased feature-space formula when one stimulus dominates).
The formulas of linear CKA itself are in :mod:`simmetrics.metrics.cka`.
"""

import numpy as np

from .._core.linalg import center, pow2_rescale
from .._core.parallel import parallel_map
from .hsic import cka_from_hsic, hsic_unbiased_from_sums

__all__ = ["gram_space_cka", "gram_cheaper", "gram_space", "gram_factor", "tiled_kernel_sums"]


def gram_factor(A, debiased=False):
    """F with K = F F' the linear kernel of A about a shift, scaled to unit ||F||_F (CKA ignores
    the scale). The biased estimator needs the centred kernel: the shift is the column mean
    (two-pass centring). The unbiased HSIC does not depend on the shift (Song et al. 2012: the
    U-centring removes every kernel of the form a_i + a_j + c), so the debiased one takes the
    column median: rows then lie about the typical stimulus, and a single dominant stimulus
    (which drags the mean a fraction 1/n of its size) does not make every kernel entry large,
    whose rounding the U-centring would have to cancel; |median - mean| <= std, so no data are
    worse off, and differences with the median (itself a data value, or the mean of two) are
    exact for entries near it. An exact power-of-two rescaling first (largest entry in
    [0.5, 1), exact, so the same bits as on A) keeps the differences, the norms and the fourth
    powers in range for activations of any magnitude (1e308 and 1e-300)."""
    F = pow2_rescale(A)  # first: differences of entries of 1e308 would overflow
    F = F - np.median(F, axis=0) if debiased else center(F)
    F /= np.linalg.norm(F)
    return F


def gram_cheaper(n, widths, pairs):
    """Whether n x n Gram matrices cost fewer multiply-adds than d x d cross-products, for the
    representations of ``widths`` and the ``pairs`` (i, j) of them to compare.

    Gram space: n^2 d / 2 per representation (K = F F', symmetric) and n^2 per pair (one inner
    product of two kernels). Feature space: n d^2 / 2 per representation (Z'Z) and n d_i d_j
    per pair of two different representations (Z'W).
    """
    gram = n * n * (sum(widths) / 2.0 + len(pairs))
    feature = n * (sum(d * d for d in widths) / 2.0
                   + sum(widths[i] * widths[j] for i, j in pairs if i != j))
    return gram < feature


def gram_space(n, dx, dy):
    """:func:`gram_cheaper` for one pair, as fit_score computes it: the two kernels and the
    three inner products, or Z'Z, W'W and Z'W."""
    return gram_cheaper(n, (dx, dy), [(0, 1), (0, 0), (1, 1)])


# -- Gram space for many pairs: the kernels in tiles, never all of them at once ------------
#: Bytes of kernel tiles held at once by :func:`gram_space_cka` (one tile of every
#: representation's kernel), and the largest tile side (products of about this size run near
#: the BLAS peak; smaller tiles waste less on the diagonal, where a whole tile is computed).
_GRAM_BLOCK_BYTES = 2**27
_GRAM_TILE = 512


def _gram_tile_row(factors, rows, starts, size, hollow=False):
    """The inner products between every two kernels K_i = F_i F_i' over one row of tiles
    (rows x cols for every column block at or right of the diagonal), off-diagonal tiles
    counted twice (K is symmetric).

    ``hollow``: the kernels' diagonals are taken as zero (K~ of the unbiased HSIC), and the
    row sums K~_i 1 are accumulated from the same tiles: an (L, n) array, this row of tiles'
    share (its off-diagonal tiles count for the column rows too). Returns (inner, row sums or
    None)."""
    L, n = len(factors), factors[0].shape[0]
    buffer = np.empty((L, size * size))  # reused by every tile of the row
    inner = np.zeros((L, L))
    sums = np.zeros((L, n)) if hollow else None
    for j in starts:
        if j < rows.start:
            continue
        cols = slice(j, min(j + size, n))
        shape = (rows.stop - rows.start, cols.stop - cols.start)
        tiles = buffer[:, : shape[0] * shape[1]]
        for i, F in enumerate(factors):
            tile = tiles[i].reshape(shape)
            if j == rows.start:  # diagonal tile: a symmetric product (half the work)
                tile[...] = F[rows] @ F[rows].T
                if hollow:
                    np.fill_diagonal(tile, 0.0)
            else:
                np.matmul(F[rows], F[cols].T, out=tile)
            if hollow:
                sums[i, rows] += tile.sum(axis=1)
                if j != rows.start:
                    sums[i, cols] += tile.sum(axis=0)
        inner += (1.0 if j == rows.start else 2.0) * (tiles @ tiles.T)
    return inner, sums


def gram_space_cka(reps, pairs, debiased=False, n_jobs=None, progress=False, desc="",
                   block_bytes=None, lange=False):
    """Linear CKA of many pairs of representations through their n x n Gram matrices, which are
    never held whole: each kernel K_i = F_i F_i' (F_i the centred representation at unit norm,
    as in :func:`linear_cka`) is computed tile by tile, the tiles on and above the diagonal
    only (K is symmetric), and every tile serves all pairs at once::

        T_ij = sum_ab K_i[a, b] K_j[a, b]        (one product of the stacked tiles)

    Biased CKA is T_ij / sqrt(T_ii T_jj) (the kernels are centred); the debiased form evaluates
    the unbiased HSIC of Song et al. 2012 (:func:`simmetrics.metrics.hsic.hsic_unbiased_from_sums`)
    from the same sums over the kernels with zeroed diagonals K~_i (the tiles' diagonals are
    set to 0, F_i shifted by the column median, see :func:`gram_factor`) and their row sums
    K~_i 1, accumulated from the same tiles: never as sums with the diagonal minus its share,
    which cancel every digit when one stimulus dominates. Work: n^2 d / 2 multiply-adds per
    representation plus n^2 L^2 / 2 for the inner products (and n^2 L for the row sums),
    against n d_i d_j per pair in feature space; for many representations with
    n below their total width this is the cheaper route (:func:`simmetrics.pairwise` chooses it
    by that count). Memory: the factors (one n x d copy per representation) and
    ``block_bytes`` of tiles (128 MiB by default) per worker, whatever n.

    Parameters
    ----------
    reps : list of numpy.ndarray
        Validated float64 (n, d_i) representations of the same stimuli, none constant.
    pairs : list of (int, int)
        Which values to return.
    debiased : bool
    n_jobs, progress, desc
        As :func:`simmetrics._core.parallel.parallel_map`: each row of tiles is one task.
    block_bytes : int, optional
        Memory for the tiles of all representations at once.
    lange : bool
        Lange's estimator instead (``debiased`` False): the centred kernels with their
        diagonals set to zero, T_ij / sqrt(T_ii T_jj) over those (the tiles' diagonals are
        zeroed, the factors centred).

    Returns
    -------
    list of float
        The CKA of each pair, in the order of ``pairs``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> layers = [rng.normal(size=(40, 60)), rng.normal(size=(40, 50)) + 1.0]
    >>> from simmetrics.metrics.cka import linear_cka
    >>> values = gram_space_cka(layers, [(0, 1)], block_bytes=2**14)
    >>> bool(abs(values[0] - linear_cka(*layers)) < 1e-12)
    True
    """
    n = reps[0].shape[0]
    debiased = bool(debiased)
    if debiased and n < 4:
        raise ValueError(f"the unbiased HSIC needs at least 4 samples, got {n}")
    factors = [gram_factor(A, debiased) for A in reps]
    T, rows = tiled_kernel_sums(factors, debiased or lange, n_jobs, progress, desc, block_bytes)
    if lange:
        return [cka_from_hsic(T[i, j], T[i, i], T[j, j], "zero-diagonal (Lange)")
                for i, j in pairs]
    if not debiased:
        return [cka_from_hsic(T[i, j], T[i, i], T[j, j], "biased") for i, j in pairs]

    def hsic(i, j):
        return hsic_unbiased_from_sums(n, T[i, j], rows[i], rows[j])

    return [cka_from_hsic(hsic(i, j), hsic(i, i), hsic(j, j), "unbiased") for i, j in pairs]


def tiled_kernel_sums(factors, hollow, n_jobs=None, progress=False, desc="", block_bytes=None):
    """The inner products T_ij = <K_i, K_j> of the kernels K_i = F_i F_i' of ``factors``
    (their diagonals taken as zero with ``hollow``, and then also their row sums, an (L, n)
    array; else None), tile by tile in ``block_bytes`` of memory (see :func:`gram_space_cka`).
    """
    n, L = factors[0].shape[0], len(factors)
    budget = _GRAM_BLOCK_BYTES if block_bytes is None else int(block_bytes)
    size = int(min(n, _GRAM_TILE, max(16, np.sqrt(budget / (8.0 * L)))))
    starts = list(range(0, n, size))
    parts = parallel_map(
        _gram_tile_row,
        [(factors, slice(i, min(n, i + size)), starts, size, hollow) for i in starts],
        n_jobs=n_jobs, progress=progress, desc=desc,
    )
    T = sum(inner for inner, _ in parts)
    rows = sum(sums for _, sums in parts) if hollow else None  # K~_i 1: off-diagonal sums
    return T, rows
