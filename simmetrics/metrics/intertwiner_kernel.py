"""The tiled kernel of G_sigma-CKA (:class:`simmetrics.IntertwinerCKA`) and its memory.

- :func:`channel_kernel`: the paper's max-over-channels (or median) kernel between samples,
  computed in tiles on and above the diagonal, for numpy arrays and torch tensors alike (one
  code path through :mod:`simmetrics._core.backend`);
- :func:`tile_elements`, :func:`check_chunk_size` and the tile constants: the tile sizes;
- :func:`cka_peak_bytes`: IntertwinerCKA's estimated peak memory (kernels, inputs, the channel
  normalisation's copies, tiles), checked against the memory budget before any kernel is built.
"""

import numbers

import numpy as np

from .._core.backend import get_backend, on_accelerator
from .._core.memory import gram_bytes
from .intertwiner_groups import SCALED

__all__ = ["channel_kernel", "channel_choice_matrix", "kernel_formula"]

#: The kernel's estimators (the reduction over channels).
CKA_ESTIMATORS = ("max", "median")
# Default size of one tile of IntertwinerCKA's kernel: 2**20 float64 values = 8 MiB on the
# CPU (numpy or torch), small enough to stay in cache; 2**24 values = 128 MiB on an
# accelerator, where fewer and larger tiles keep the device busy (n = 10,000 takes 15 tiles
# with one position).
_TILE_ELEMENTS = 2**20
_DEVICE_TILE_ELEMENTS = 2**24
# numpy's tiles for one position and "max": 64 x 4096 samples (see channel_kernel)
_NUMPY_STRIP = (64, 4096)


def check_chunk_size(chunk_size):
    """``chunk_size`` as an int, or None; a ValueError for anything but None or a positive
    integer."""
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) \
            or chunk_size < 1:
        raise ValueError(f"chunk_size must be None or a positive integer, got {chunk_size!r}")
    return int(chunk_size)


def tile_elements(H):
    """Default tile size: :data:`_TILE_ELEMENTS` on the CPU, :data:`_DEVICE_TILE_ELEMENTS` on
    an accelerator."""
    on_device = on_accelerator(H)  # backend site: the tile size depends on the device
    return _DEVICE_TILE_ELEMENTS if on_device else _TILE_ELEMENTS


def _tile_shape(n, C, P, estimator, chunk_size, torch_like, tile_elements):
    """Samples per side of one tile of :func:`channel_kernel` (rows, columns), at most n."""
    if chunk_size:
        shape = (chunk_size, chunk_size)
    elif P == 1 and estimator == "max":
        shape = _NUMPY_STRIP if not torch_like else (int(np.sqrt(tile_elements / 4)),) * 2
    else:
        shape = (max(1, int(np.sqrt(tile_elements / C))),) * 2
    # a tile never needs more than the n samples (its buffers are allocated at this size)
    return min(shape[0], n), min(shape[1], n)


def _tile_bytes(n, C, P, estimator, chunk_size, torch_like=False,
                tile_elements=_TILE_ELEMENTS):
    """Working memory of :func:`channel_kernel` besides K: its tile buffers and temporaries."""
    r, c = _tile_shape(n, C, P, estimator, chunk_size, torch_like, tile_elements)
    diagonal = 3 * r * r  # a tile on the diagonal: two triangles and their sum
    if P == 1 and estimator == "max":
        return 8 * (2 * r * c + diagonal)  # two r x c buffers
    # the (r, c, C) or (C, r, c) products, the median's partitioned copy, the reduced tile
    return 8 * (r * c * (C * (2 if estimator == "median" else 1) + 1) + diagonal)


def channel_kernel(H, estimator="max", chunk_size=None):
    """The paper's max-over-channels kernel between samples.

    For features H of shape (n, C, P) (n samples, C channels, P positions; a 2-D (n, C) array
    is read as P = 1)::

        K_ab = max_c  sum_p H[a, c, p] H[b, c, p]          (estimator "max")

    or the median over channels (estimator "median": the lower of the two middle values when
    C is even, torch's ``median`` convention, which the paper's code uses). The diagonal is set
    to 0, as in the paper's code (its loop fills only a < b and then adds the transpose).

    Vectorised and tiled: K is computed in tiles of r x c samples, only on and above the
    diagonal (each tile that starts on the diagonal keeps a < b of its leading r x r square and
    mirrors it, and every tile is mirrored below, so K equals K' exactly). Per tile:

    - one position (2-D H), "max": one channel at a time, its outer product folded into a
      running maximum, so a tile is two r x c arrays (16 r c bytes);
    - one position, "median": the broadcast product, an (r, c, C) array, reduced over C;
    - P > 1: per channel, the sum over positions is a batched matrix product
      (C, r, P) @ (C, P, c), reduced over the channels.

    ``chunk_size`` sets square tiles, r = c = ``chunk_size``; working memory is then about
    ``8 * chunk_size**2 * C`` bytes (twice that for "median", whose selection copies the tile)
    plus the n x n result. ``chunk_size=None`` picks tiles of about 2**20 values (8 MiB) on
    the CPU, small enough to stay in cache, which is also what makes this fast (memory
    traffic, not arithmetic, bounds this kernel), and 2**24 values (128 MiB) on an
    accelerator; with one position and "max", square tiles of sqrt(2**20 / 4) = 512 samples
    for torch on the CPU (2048 on an accelerator), and for numpy strips of 64 x 4096 samples
    (two 2 MiB buffers), whose long rows suit numpy's outer product (same bits; the timings
    are in benchmarks/README.md, "IntertwinerCKA's kernel tiles"). The paper fills K with a
    Python loop over samples.

    numpy arrays and torch tensors run the same code: a tensor's tiles are computed on its
    device in float64 (float32 or float16 input is promoted there) and K is a float64 tensor
    on that device. The maximum and the median select one of the per-channel values, so both
    libraries give the same bits for P = 1, whatever the tiles; for P > 1 the sums over
    positions may be added in another order (differences of a few units in the last place).

    Parameters
    ----------
    H : numpy.ndarray or torch.Tensor, shape (n, C) or (n, C, P)
    estimator : {"max", "median"}
    chunk_size : int or None
        Samples per side of a (square) tile; None: the defaults above.

    Returns
    -------
    numpy.ndarray or torch.Tensor, shape (n, n)
        Symmetric, zero diagonal; a tensor for tensor input.

    Examples
    --------
    >>> H = np.array([[1.0, 0.0], [2.0, -1.0], [0.0, 3.0]])  # 3 samples, 2 channels
    >>> channel_kernel(H).tolist()  # K_12 = max(1 * 2, 0 * -1), K_23 = max(2 * 0, -1 * 3)
    [[0.0, 2.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    >>> channel_kernel(H, estimator="median").tolist()  # the lower middle value of 2 channels
    [[0.0, 0.0, 0.0], [0.0, 0.0, -3.0], [0.0, -3.0, 0.0]]
    >>> import torch
    >>> channel_kernel(torch.tensor(H, dtype=torch.float32)).tolist()  # float64 on the device
    [[0.0, 2.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    if estimator not in CKA_ESTIMATORS:
        raise ValueError(f"estimator must be one of {CKA_ESTIMATORS}, got {estimator!r}")
    chunk_size = check_chunk_size(chunk_size)
    nx = get_backend(H)
    H = nx.detach_float64(H)
    if H.ndim == 2:
        H = H[:, :, None]
    n, C, P = H.shape
    shape = _tile_shape(n, C, P, estimator, chunk_size, nx.is_torch, tile_elements(H))
    if P == 1 and estimator == "max":
        # one channel at a time, its outer product folded into a running maximum: no
        # (r, c, C) array, so a tile is only two r x c arrays that stay in cache (faster than
        # the broadcast product below: benchmarks/README.md, "IntertwinerCKA's kernel tiles")
        feats = nx.contiguous(H[:, :, 0].T)  # (C, n)
        # two buffers reused by every tile (fresh multi-MB arrays would cost page faults)
        buffers = nx.empty((2, shape[0] * shape[1]))

        def tile(rows, cols):
            a, b = feats[:, rows], feats[:, cols]
            r, c = a.shape[1], b.shape[1]
            block = buffers[0, : r * c].reshape(r, c)
            scratch = buffers[1, : r * c].reshape(r, c)
            nx.outer_into(a[0], b[0], block)
            for k in range(1, C):
                nx.outer_into(a[k], b[k], scratch)
                nx.maximum_into(block, scratch)
            return block

        axis = None  # the tile is already reduced
    elif P == 1:
        # channels last and contiguous: a tile is a broadcast product, reduced along axis -1
        feats = nx.contiguous(H[:, :, 0])

        def tile(rows, cols):
            return feats[rows, None, :] * feats[None, cols, :]  # (r, c, C)

        axis = -1
    else:
        # per channel, the sum over positions is a matrix product: (C, r, P) @ (C, P, c)
        feats = nx.contiguous(nx.permute(H, (1, 0, 2)))  # (C, n, P)
        buffer = nx.empty(C * shape[0] * shape[1])  # reused by every tile

        def tile(rows, cols):
            a, b = feats[:, rows], nx.permute(feats[:, cols], (0, 2, 1))
            out = buffer[: C * a.shape[1] * b.shape[2]].reshape(C, a.shape[1], b.shape[2])
            nx.matmul_into(a, b, out)
            return out  # (C, r, c)

        axis = 0
    # the maximum, or the lower median (torch's convention): both select one of the values,
    # so numpy and torch give the same bits
    reduce_channels = nx.amax if estimator == "max" else nx.lower_median
    K = nx.empty((n, n))
    for rows, cols in _upper_tiles(n, shape):
        block = tile(rows, cols)
        _store_mirrored(K, rows, cols, block if axis is None else reduce_channels(block, axis),
                        nx)
    nx.zero_diagonal(K)
    return K


def _upper_tiles(n, shape):
    """(rows, cols) slices of the tiles of shape[0] x shape[1] samples on and above the
    diagonal of an n x n matrix: each strip of rows from its diagonal square on."""
    for i in range(0, n, shape[0]):
        rows = slice(i, min(n, i + shape[0]))
        for j in range(i, n, shape[1]):
            yield rows, slice(j, min(n, j + shape[1]))


def _store_mirrored(K, rows, cols, values, nx):
    """``values`` into K[rows, cols] and its transpose into K[cols, rows]; a tile that starts
    on the diagonal keeps a <= b of its leading square and mirrors it (so K equals K')."""
    if cols.start == rows.start:
        h = rows.stop - rows.start
        square = values[:, :h]
        values[:, :h] = nx.triu(square) + nx.triu(square, 1).T
    K[rows, cols] = values
    K[cols, rows] = values.T


def channel_choice_matrix(H, estimator="max", chunk_size=None):
    """The channel each entry of :func:`channel_kernel` selects: I_ab = argmax_c (the first
    of equal maxima) or the index of the lower median over c of sum_p H[a, c, p] H[b, c, p],
    an (n, n) integer matrix of H's backend (a tensor on H's device), symmetric. ``H`` is
    (n, C) or (n, C, P) and is read without its autograd history.

    Tiled as :func:`channel_kernel` (square tiles on and above the diagonal, each mirrored,
    the products of a channel formed as there). For "max", a running maximum over the
    channels, one channel's r x r products at a time (the outer product, or for P > 1 the
    (r, P) x (P, r) product), whose index moves to channel k where k's product is larger, so a
    tile is two r x r arrays and its index, of as many samples as :func:`channel_kernel`'s
    one-position "max" tile; for "median", the (C, r, r) or (r, r, C) products of
    :func:`channel_kernel`'s tiles and their arg-median. ``chunk_size`` sets the tiles' side.
    Work O(n^2 C P) over the n (n + 1) / 2 entries on and above the diagonal; memory: one
    tile's products, the index tiles, then the strips they are mirrored into and their
    concatenation (about two n x n integer arrays at the end)."""
    nx = get_backend(H)
    H = nx.detach_float64(H)
    if H.ndim == 2:
        H = H[:, :, None]
    n, C, P = H.shape
    chunk_size = check_chunk_size(chunk_size)
    if estimator == "max":
        r, c = _tile_shape(n, C, 1, "max", chunk_size, nx.is_torch, tile_elements(H))
        shape = (min(n, int(np.sqrt(r * c))),) * 2  # square, of as many samples as that tile
        feats = nx.contiguous(nx.permute(H, (1, 0, 2)))  # (C, n, P)
        buffers = nx.empty((2, shape[0] * shape[1]))

        def product(a, b, out):  # one channel's products: a (r, P), b (c, P)
            if P == 1:
                nx.outer_into(a[:, 0], b[:, 0], out)
            else:
                nx.matmul_into(a, b.T, out)

        def choose(rows, cols):
            a, b = feats[:, rows], feats[:, cols]
            r, c = a.shape[1], b.shape[1]
            best = buffers[0, : r * c].reshape(r, c)
            scratch = buffers[1, : r * c].reshape(r, c)
            product(a[0], b[0], best)
            index = nx.channel_choice(best[None], "max", 0)  # channel 0 of 1: all zeros
            for k in range(1, C):
                product(a[k], b[k], scratch)
                index[scratch > best] = k  # strictly larger: the first maximum is kept
                nx.maximum_into(best, scratch)
            return index
    else:
        shape = _tile_shape(n, C, P, estimator, chunk_size, nx.is_torch, tile_elements(H))
        if P == 1:
            feats, axis = nx.contiguous(H[:, :, 0]), -1

            def products(rows, cols):
                return feats[rows, None, :] * feats[None, cols, :]  # (r, c, C)
        else:
            feats, axis = nx.contiguous(nx.permute(H, (1, 0, 2))), 0  # (C, n, P)

            def products(rows, cols):
                return feats[:, rows] @ nx.permute(feats[:, cols], (0, 2, 1))  # (C, r, c)

        def choose(rows, cols):
            return nx.channel_choice(products(rows, cols), estimator, axis)
    tiles = {}  # the tiles on and above the diagonal, by (first row, first column)
    for rows, cols in _upper_tiles(n, shape):
        index = choose(rows, cols)
        if cols.start == rows.start:  # keep a <= b of the leading square and mirror it
            h = rows.stop - rows.start
            index[:, :h] = nx.triu(index[:, :h]) + nx.triu(index[:, :h], 1).T
        tiles[rows.start, cols.start] = index
    # each strip of rows: the mirrored tiles left of its diagonal (their last use), then its own
    strips = []
    for i in range(0, n, shape[0]):
        left = [tiles.pop((j, i)).T for j in range(0, i, shape[0])]
        strips.append(nx.concat(left + [tiles[i, j] for j in range(i, n, shape[1])], 1))
        del tiles[i, i]
    return nx.concat(strips, 0)


def kernel_formula(H, group, estimator, chunk_size, nx):
    """IntertwinerCKA's kernel of one input as a differentiable expression of the backend
    ``nx``, for features ``H`` (n, C) or (n, C, P) with their autograd history.

    The channels centred over samples and positions, then divided by their norms (groups with
    a per-neuron scale; a constant, silent channel stays 0 and gets zero gradient: the value
    is discontinuous there, since any perturbation of a silent channel is rescaled to unit
    norm) or by the global norm; then K_ab = sum_p H[a, I_ab, p] H[b, I_ab, p] with I the
    channels the maximum (median) selects (:func:`channel_choice_matrix`), held fixed: the
    maximum of finitely many smooth functions is, wherever it is attained once, locally the
    selected one, so its gradient is the selected product's (Danskin's theorem for a max over
    a finite set; ties between channels, where the kernel has a kink, have measure zero).
    The identity activation's kernel, the projection onto the centred features' column space,
    is F F' with F the rows whitened by the Cholesky factor of Xc'Xc (smooth where the
    columns are linearly independent; a rank-deficient input, where the projection jumps as
    the rank changes, is a ValueError). The diagonal is left to the U-centring to zero."""
    if H.ndim == 2:
        H = H[:, :, None]
    n, C, P = H.shape
    rows = nx.permute(H, (0, 2, 1)).reshape(n * P, C)
    rows = rows - rows.mean(axis=0)
    if group == "invertible_linear":
        G = rows.T @ rows
        spectrum = nx.to_numpy(nx.eigvalsh(nx.detach_float64(G)))
        if not spectrum[0] > max(G.shape[0], n * P) * np.finfo(np.float64).eps * spectrum[-1]:
            raise ValueError(
                "IntertwinerCKA with the identity activation has no gradient for features whose "
                f"centred columns are linearly dependent (rank below {C}): the projection onto "
                "their column space changes discontinuously with the rank")
        F = nx.solve(nx.cholesky(G), rows.T).T.reshape(n, -1)  # rows L^-T, sample by sample
        return F @ F.T
    if group in SCALED:
        live = (nx.colmax(rows) != nx.colmin(rows)) * 1.0  # 0 for a constant channel
        # a silent channel's norm is taken as 1 inside the square root (whose slope is
        # infinite at 0), so it stays 0 with zero gradient
        rows = rows * live / nx.sqrt((rows * rows).sum(axis=0) + (1.0 - live))
    else:
        rows = rows / nx.frobenius(rows)
    H = nx.permute(rows.reshape(n, P, C), (0, 2, 1))
    # the selected products in square tiles of about tile_elements / 8 gathered values (each
    # tile's gathers and indices are about 7 such arrays)
    side = check_chunk_size(chunk_size) or max(1, int(np.sqrt(tile_elements(H) / (8 * P))))
    return nx.selected_products(H, channel_choice_matrix(H, estimator, chunk_size), side)


def cka_peak_bytes(shapes, summed, group, estimator, chunk_size, torch_like=False,
                   tile_elements=_TILE_ELEMENTS):
    """Estimated peak memory of IntertwinerCKA on inputs of the given (stimuli, positions,
    channels) shapes, whose kernels are held at once: the n x n float64 kernels (n = stimuli
    with positions summed, stimuli x positions otherwise), the validated inputs, three copies
    of one input made by its channel normalisation (rescaled, centred, normalised or
    whitened), and the kernel's tile memory (:func:`_tile_bytes`), plus 10 %. Checked against
    the allocations numpy reports to ``tracemalloc`` (tests/metrics/test_trust_intertwiner.py): the
    estimate is 1.1 to 1.4 times the measured peak."""
    total, work = 0, 0
    for stimuli, positions, C in shapes:
        n = stimuli if summed else stimuli * positions
        data = 8 * stimuli * positions * C
        total += gram_bytes(n) + data
        P = positions if summed else 1
        tile = data if group == "invertible_linear" else \
            _tile_bytes(n, C, P, estimator, chunk_size, torch_like, tile_elements)
        work = max(work, 3 * data + tile)
    return int(1.1 * (total + work))  # 10 % for what the count above leaves out
