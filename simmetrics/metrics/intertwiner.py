"""Intertwiner-invariant metrics: G_sigma-Procrustes and G_sigma-CKA.

Godfrey, Brown, Emerson, Kvinge, "On the Symmetries of Deep Learning Models and their Internal
Representations", NeurIPS 2022 (arXiv 2205.14258). The symmetries of a network with activation
sigma act on a hidden representation X (n_samples x n_neurons) as X -> X g' with g in the
*intertwiner group* G_sigma (:func:`simmetrics.symmetry.activations.intertwiner_group`): positive scaled
permutations for ReLU, signed permutations for tanh, permutations for GELU, scaled permutations
for abs and x^d, every invertible matrix for the identity. A similarity metric that respects the
architecture should be invariant to exactly this group, not to the much larger orthogonal group
that CKA and Procrustes are invariant to.

The paper defines its metrics for G_ReLU (code names ``wreath_procrustes`` and ``wreath_cka`` in
pnnl/modelsym); here they are generalised to every intertwiner group:

- :class:`IntertwinerProcrustes`: canonicalise the continuous (diagonal) part of the group, then
  solve the remaining (signed) permutation exactly by linear assignment;
- :class:`IntertwinerCKA`: CKA (unbiased HSIC) with the paper's max-over-channels kernel.

:func:`paper_grelu_procrustes_similarity`, :func:`paper_grelu_cka` and
:func:`paper_ortho_procrustes_similarity` reproduce the paper's reported numbers (1 - d for the
Procrustes distances), N x C x H x W conv features included.
"""

import numbers

import numpy as np
from scipy.optimize import linear_sum_assignment

from .._core.backend import (get_backend, is_tensor, like, on_accelerator, tensor_from_numpy,
                             to_numpy)
from .._core.linalg import center, frobenius_norm, orthonormal_basis, pow2_rescale, times_pow2
from .._core.memory import check_memory, format_bytes, get_memory_budget, gram_bytes
from .._core.params import Boolean, Integral, Interval, Options
from .._core.registry import register
from .._core.validation import (
    as_float_array,
    check_matching_shapes,
    check_nonconstant,
    check_pair,
    check_representation,
    shape_of,
)
from ..base import GROUP_NAMES, AlignmentMetric, Metric, param_dependent
from .hsic import UnbiasedGram, cka_from_hsic, u_centred
from ..moments import (
    _torch_matrix,
    check_nonconstant_array,
    check_nonconstant_moments,
    gram_factor,
    rows_svd,
)
from .._core.solvers import assignment_from_cross, cross_in_range, pad2, rotation_from_cross
from .shape import (
    angular_distance,
    optimal_permutation,
    procrustes_rotation,
    zero_pad,
)

__all__ = [
    "IntertwinerProcrustes",
    "IntertwinerCKA",
    "INTERTWINER_GROUPS",
    "intertwiner_group_name",
    "optimal_signed_permutation",
    "channel_kernel",
    "paper_grelu_procrustes_similarity",
    "paper_ortho_procrustes_similarity",
    "paper_grelu_cka",
    "upsample_to_match",
]

#: The groups that occur as intertwiner groups of coordinatewise activations.
INTERTWINER_GROUPS = (
    "positive_scaled_permutation",
    "signed_permutation",
    "permutation",
    "scaled_permutation",
    "invertible_linear",
)
# groups whose diagonal part contains positive scalings (the per-neuron scale is a symmetry)
_SCALED = frozenset({"positive_scaled_permutation", "scaled_permutation"})
# groups whose diagonal part contains sign flips
_SIGNED = frozenset({"signed_permutation", "scaled_permutation"})

_PROCRUSTES_METHODS = ("angular", "euclidean", "paper")
_CKA_ESTIMATORS = ("max", "median")
_CKA_POSITIONS = ("rows", "sum")
_REFERENCE = (
    "Godfrey, Brown, Emerson, Kvinge, 'On the Symmetries of Deep Learning Models and their "
    "Internal Representations', NeurIPS 2022 (arXiv 2205.14258)"
)
# Default size of one tile of IntertwinerCKA's kernel: 2**20 float64 values = 8 MiB on the
# CPU (numpy or torch), small enough to stay in cache; 2**24 values = 128 MiB on an
# accelerator, where fewer and larger tiles keep the device busy (n = 10,000 takes 15 tiles
# with one position).
_TILE_ELEMENTS = 2**20
_DEVICE_TILE_ELEMENTS = 2**24
# numpy's tiles for one position and "max": 64 x 4096 samples (see channel_kernel)
_NUMPY_STRIP = (64, 4096)


# -- groups ----------------------------------------------------------------------------------
def intertwiner_group_name(activation):
    """The name of the intertwiner group G_sigma of ``activation``.

    Parameters
    ----------
    activation : str, (str, number), torch.nn.Module or callable
        Anything :func:`simmetrics.symmetry.activations.intertwiner_group` accepts (``"relu"``,
        ``nn.Tanh()``, ``("power", 3)``, ...), or directly one of the group names in
        :data:`INTERTWINER_GROUPS`.

    Returns
    -------
    str
        One of :data:`INTERTWINER_GROUPS`.

    Raises
    ------
    ValueError
        Unknown activation (the message suggests the closest name), or a group name that is
        not an intertwiner group (``"orthogonal"``, ``"translation"``, ...).

    Examples
    --------
    >>> intertwiner_group_name("relu"), intertwiner_group_name("tanh")
    ('positive_scaled_permutation', 'signed_permutation')
    >>> intertwiner_group_name("gelu"), intertwiner_group_name("identity")
    ('permutation', 'invertible_linear')
    >>> intertwiner_group_name("signed_permutation")
    'signed_permutation'
    """
    if isinstance(activation, str):
        key = activation.strip().lower().replace("-", "_").replace(" ", "_")
        if key in INTERTWINER_GROUPS:
            return key
        if key in GROUP_NAMES:
            raise ValueError(
                f"activation={activation!r} names a group that is not the intertwiner group of "
                f"any coordinatewise activation; pass an activation or one of "
                f"{INTERTWINER_GROUPS}"
            )
    from ..symmetry.activations import intertwiner_group

    return intertwiner_group(activation).group.name


def _group_subgroups(name):
    from ..symmetry.groups import get_group

    return get_group(name).subgroups


# -- pure functions ------------------------------------------------------------------------
def optimal_signed_permutation(A, B):
    """The signed permutation (perm, signs) maximising sum_i signs[i] <A[:, i], B[:, perm[i]]>,
    i.e. minimising ||A - B[:, perm] * signs||_F over signed permutations.

    For a fixed permutation the best sign of each pair is the sign of its inner product, which
    turns the pair's term into |<A[:, i], B[:, j]>|; so the optimum is the linear assignment
    maximising sum_i |C_{i, perm(i)}| with C = A'B (exact, by
    ``scipy.optimize.linear_sum_assignment``), with signs[i] = sign(C_{i, perm(i)}) (+1 for 0).
    ``A`` and ``B`` must have the same width.

    Returns
    -------
    perm : ndarray of int, shape (n,)
    signs : ndarray of float, shape (n,)

    Examples
    --------
    >>> A = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    >>> perm, signs = optimal_signed_permutation(A, -A[:, [2, 0, 1]])
    >>> perm.tolist(), signs.tolist()
    ([1, 2, 0], [-1.0, -1.0, -1.0])
    """
    return _signed_assignment_from_cross(cross_in_range(A, B))


def _signed_assignment_from_cross(C):
    """:func:`optimal_signed_permutation` from the cross-product C = A'B."""
    rows, cols = linear_sum_assignment(np.abs(C), maximize=True)
    perm = np.empty(C.shape[0], dtype=np.intp)
    perm[rows] = cols
    signs = np.where(C[np.arange(C.shape[0]), perm] < 0.0, -1.0, 1.0)
    return perm, signs


def _column_squares(X):
    """(sum of squares of every column of 2**-e X, e): each column scaled by the power of two
    that brings its largest magnitude into [0.5, 1) (exact), so the squares neither overflow
    nor underflow at 1e300 or 1e-300."""
    top = np.max(np.abs(X), axis=0) if X.shape[0] else np.zeros(X.shape[1])
    e = np.where(top > 0.0, np.frexp(top)[1], 0)
    scaled = np.ldexp(X, -e[None, :])
    return np.einsum("ij,ij->j", scaled, scaled), e


def _reciprocal(s):
    """1 / s, with 0 where s == 0 (silent neurons stay silent)."""
    out = np.zeros_like(s)
    np.divide(1.0, s, out=out, where=s > 0.0)
    return out


def _unit_rms_columns(X):
    """Every column of X divided by its root mean square (all-zero columns stay 0), on
    power-of-two rescaled columns (exact), so subnormal and 1e300 columns are normalised
    without overflow or underflow."""
    squares, e = _column_squares(X)
    return np.ldexp(X, -e[None, :]) * _reciprocal(np.sqrt(squares / X.shape[0]))


def _folded(W, e):
    """(W 2**-e, 0) where that product is a finite float with no subnormal entry, else (W, e):
    the canonicalising map X -> (X 2**-e) W in true units when float64 can hold it (every
    data set but subnormal-scale ones), per column for a vector ``e``."""
    with np.errstate(over="ignore", under="ignore"):
        folded = np.ldexp(W, -e)
    tiny = np.finfo(np.float64).tiny
    ok = np.isfinite(folded) & ((folded == 0.0) | (np.abs(folded) >= tiny)) \
        & ((W == 0.0) | (folded != 0.0))
    if np.ndim(e) == 0:
        return (folded, 0) if ok.all() else (W, int(e))
    ok = ok if ok.ndim == 1 else ok.all(axis=0)
    return np.where(ok, folded, W), np.where(ok, 0, e)


def _fitted_centring(X):
    """(X - mean, mean) by two-pass centring (:func:`simmetrics._core.linalg.center`); a neuron that
    is constant on X gets that constant as its mean and an exactly zero centred column, so it
    is silent and stays exactly 0 on held-out stimuli at the same constant (no rounding
    residue of the mean for a normalisation to blow up)."""
    constant = np.ptp(X, axis=0) == 0.0
    mean = X.mean(axis=0)
    mean[constant] = X[0, constant]
    Xc = center(X)
    Xc[:, constant] = 0.0
    return Xc, mean


def _silent_pairs_in_order(perm, signs, silent_x, silent_y):
    """The matching with every pair of neurons silent on both sides re-paired in index order
    (the training stimuli say nothing about their correspondence; the objective is unchanged,
    their terms are 0) and given sign +1."""
    rows = np.flatnonzero(silent_x & silent_y[perm])
    perm, signs = perm.copy(), signs.copy()
    perm[rows] = np.sort(perm[rows])
    signs[rows] = 1.0
    return perm, signs


def _rematch_undetermined(cross, perm, signs, silent_x, silent_y, signed):
    """The fitted matching with the pairs the training stimuli leave undetermined re-solved on
    held-out canonical forms A, B, given as ``cross(rows, cols)``, the block A[:, rows]'
    B[:, cols] of their cross-product (from the data, or from second moments).

    A pair with a neuron silent on the training stimuli contributes 0 to the fitted
    objective, so every re-pairing of the rows ``U = {i : silent_x[i] or silent_y[perm[i]]}``
    with their partners ``perm[U]`` that keeps a silent member in every pair (and every sign
    of such a pair) is as good on the training stimuli. Among those, the one maximising
    sum_i s_i <A[:, i], B[:, pi(i)]> on A, B (linear assignment; |.| and s_i = sign for signed
    groups)."""
    rows = np.flatnonzero(silent_x | silent_y[perm])
    if rows.size == 0:
        return perm, signs
    cols = perm[rows]
    C = cross(rows, cols)
    gain = np.abs(C) if signed else C
    allowed = silent_x[rows][:, None] | silent_y[cols][None, :]
    r, c = linear_sum_assignment(np.where(allowed, gain, -np.inf), maximize=True)
    perm, signs = perm.copy(), signs.copy()
    perm[rows[r]] = cols[c]
    if signed:
        signs[rows[r]] = np.where(C[r, c] < 0.0, -1.0, 1.0)
    return perm, signs


def upsample_to_match(A, B, layout="nchw"):
    """Bring two conv feature maps to the same spatial size by nearest-neighbour upsampling of
    the smaller one by an integer factor per axis (the paper's convention; it upsamples by
    ``larger // smaller`` of the last axis, i.e. output pixel (h, w) reads input pixel
    (h // f, w // f)).

    Parameters
    ----------
    A, B : numpy.ndarray, 4-D
        Feature maps (n, c, h, w) for ``layout="nchw"`` or (n, h, w, c) for ``"nhwc"``.
    layout : {"nchw", "nhwc"}

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Unchanged when the spatial sizes agree.

    Raises
    ------
    ValueError
        When neither map's size divides the other's in both axes.

    Examples
    --------
    >>> A, B = np.zeros((1, 2, 2, 2)), np.zeros((1, 3, 4, 4))
    >>> [x.shape for x in upsample_to_match(A, B)]
    [(1, 2, 4, 4), (1, 3, 4, 4)]
    >>> upsample_to_match(np.arange(2.0).reshape(1, 1, 1, 2), np.zeros((1, 1, 2, 4)))[0][0, 0]
    array([[0., 0., 1., 1.],
           [0., 0., 1., 1.]])
    """
    axes = (2, 3) if layout == "nchw" else (1, 2)
    sa = tuple(A.shape[i] for i in axes)
    sb = tuple(B.shape[i] for i in axes)
    if sa == sb:
        return A, B
    swap = not all(a <= b for a, b in zip(sa, sb))
    small, large = (B, A) if swap else (A, B)
    s_small, s_large = (sb, sa) if swap else (sa, sb)
    if not all(s <= l and l % s == 0 for s, l in zip(s_small, s_large)):
        raise ValueError(
            f"X and Y have spatial sizes {sa} and {sb}: to compare them, the larger must be an "
            "integer multiple of the smaller in both spatial axes (nearest-neighbour upsampling)"
        )
    for axis, s, l in zip(axes, s_small, s_large):
        small = np.repeat(small, l // s, axis=axis)
    return (large, small) if swap else (small, large)


def _prepare_conv(X, Y, layout, default_4d):
    """Validation entry for the Procrustes metrics: numpy/torch to float64, 4-D input read as
    ``default_4d`` when no layout is given (None keeps the 2-D-only rule), spatial sizes
    matched, then the package's :func:`check_pair`."""
    A = as_float_array(X, "X")
    B = as_float_array(Y, "Y")
    if layout is None and default_4d is not None and (A.ndim == 4 or B.ndim == 4):
        layout = default_4d
    if layout in ("nchw", "nhwc") and A.ndim == 4 and B.ndim == 4:
        A, B = upsample_to_match(A, B, layout)
    return A, B, layout


def _check_chunk_size(chunk_size):
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) \
            or chunk_size < 1:
        raise ValueError(f"chunk_size must be None or a positive integer, got {chunk_size!r}")
    return int(chunk_size)


# -- array backends of G_sigma-CKA: numpy arrays or torch tensors, one code path -------------
# The kernel, the channel normalisation and the HSIC of IntertwinerCKA are written once for
# numpy arrays and torch tensors alike (a tensor stays on its device, in float64). These
# helpers are the only places where the two libraries spell an operation differently.
def _torch():
    import torch

    return torch


def _permuted(A, axes):
    return A.permute(*axes) if is_tensor(A) else A.transpose(axes)


def _contiguous(A):
    return A.contiguous() if is_tensor(A) else np.ascontiguousarray(A)


def _empty(shape, like):
    """An uninitialised float64 array of the backend (and device) of ``like``."""
    if is_tensor(like):
        return _torch().empty(shape, dtype=_torch().float64, device=like.device)
    return np.empty(shape)


def _outer_into(a, b, out):
    if is_tensor(out):
        _torch().outer(a, b, out=out)
    else:
        np.multiply.outer(a, b, out=out)


def _maximum_into(a, b):
    """a <- max(a, b), elementwise and in place."""
    if is_tensor(a):
        _torch().maximum(a, b, out=a)
    else:
        np.maximum(a, b, out=a)


def _matmul_into(a, b, out):
    if is_tensor(out):
        _torch().matmul(a, b, out=out)
    else:
        np.matmul(a, b, out=out)


def _channel_reduce(block, estimator, axis, mid):
    """The maximum along ``axis``, or the lower median: the element of rank ``mid`` (from 0) of
    the sorted values, ``mid = (C - 1) // 2`` (torch's ``median`` convention). Both select one
    of the values, so numpy and torch give the same bits."""
    if is_tensor(block):
        return block.amax(axis) if estimator == "max" else block.median(axis).values
    if estimator == "max":
        return block.max(axis=axis)
    return np.take(np.partition(block, mid, axis=axis), mid, axis=axis)


def _triu(A, k=0):
    return _torch().triu(A, k) if is_tensor(A) else np.triu(A, k)


def _zero_diagonal(K):
    if is_tensor(K):
        K.fill_diagonal_(0.0)
    else:
        np.fill_diagonal(K, 0.0)


def _unit_channels(rows):
    """Every column of ``rows`` divided by its L2 norm (silent columns stay 0), numpy or torch.

    Each column is first multiplied by the power of two that brings its largest magnitude into
    [0.5, 1) (exact, as :func:`_column_squares` does), and then divided by its norm, which lies
    in [0.5, sqrt(m)] for m rows: no square and no reciprocal over- or underflows, even for
    channels of 1e300 or of subnormal values. The d exponents and norms are computed on the
    CPU; the passes over ``rows`` run where it lives."""
    top = to_numpy(get_backend(rows).colmax(abs(rows)))
    e = np.where(top > 0.0, np.frexp(top)[1], 0)
    first = np.minimum(-e, 1023)  # 2**first is a float; the rest (subnormal columns) next
    scaled = rows * like(np.ldexp(1.0, first), rows)
    if np.any(first != -e):
        scaled = scaled * like(np.ldexp(1.0, -e - first), rows)
    norms = np.sqrt(np.atleast_1d(to_numpy((scaled * scaled).sum(0))))
    return scaled * like(_reciprocal(norms), rows)


def _column_space(Xc):
    """An orthonormal basis of the column space of ``Xc``, by the rank rule of
    :func:`simmetrics._core.linalg.orthonormal_basis` (singular values below max(n, d) eps s_max
    dropped); torch's SVD for a tensor, on its device."""
    if not is_tensor(Xc):
        return orthonormal_basis(Xc)[0]
    U, s, _ = _torch().linalg.svd(Xc, full_matrices=False)
    rtol = max(Xc.shape) * np.finfo(np.float64).eps
    rank = int((s > rtol * s[0]).sum()) if s.numel() else 0
    return U[:, :rank]


def _tile_elements(H):
    """Default tile size: :data:`_TILE_ELEMENTS` on the CPU, :data:`_DEVICE_TILE_ELEMENTS` on
    an accelerator."""
    on_cpu = not is_tensor(H) or H.device.type == "cpu"
    return _TILE_ELEMENTS if on_cpu else _DEVICE_TILE_ELEMENTS


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
    (two 2 MiB buffers), because numpy's outer product runs about 3 times faster per element
    on rows of 4096 than of 512 (measured: the whole kernel 2.2 times faster, same bits). The
    paper fills K with a Python loop over samples.

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
    if estimator not in _CKA_ESTIMATORS:
        raise ValueError(f"estimator must be one of {_CKA_ESTIMATORS}, got {estimator!r}")
    chunk_size = _check_chunk_size(chunk_size)
    if is_tensor(H):
        H = H.detach().to(_torch().float64)
    if H.ndim == 2:
        H = H[:, :, None]
    n, C, P = H.shape
    shape = _tile_shape(n, C, P, estimator, chunk_size, is_tensor(H), _tile_elements(H))
    if P == 1 and estimator == "max":
        # one channel at a time, its outer product folded into a running maximum: no
        # (r, c, C) array, so a tile is only two r x c arrays that stay in cache; about 1.6
        # times faster than the broadcast product below
        feats = _contiguous(H[:, :, 0].T)  # (C, n)
        # two buffers reused by every tile (fresh multi-MB arrays would cost page faults)
        buffers = _empty((2, shape[0] * shape[1]), H)

        def tile(rows, cols):
            a, b = feats[:, rows], feats[:, cols]
            r, c = a.shape[1], b.shape[1]
            block = buffers[0, : r * c].reshape(r, c)
            scratch = buffers[1, : r * c].reshape(r, c)
            _outer_into(a[0], b[0], block)
            for k in range(1, C):
                _outer_into(a[k], b[k], scratch)
                _maximum_into(block, scratch)
            return block

        axis = None  # the tile is already reduced
    elif P == 1:
        # channels last and contiguous: a tile is a broadcast product, reduced along axis -1
        feats = _contiguous(H[:, :, 0])

        def tile(rows, cols):
            return feats[rows, None, :] * feats[None, cols, :]  # (r, c, C)

        axis = -1
    else:
        # per channel, the sum over positions is a matrix product: (C, r, P) @ (C, P, c)
        feats = _contiguous(_permuted(H, (1, 0, 2)))  # (C, n, P)
        buffer = _empty(C * shape[0] * shape[1], H)  # reused by every tile

        def tile(rows, cols):
            a, b = feats[:, rows], _permuted(feats[:, cols], (0, 2, 1))
            out = buffer[: C * a.shape[1] * b.shape[2]].reshape(C, a.shape[1], b.shape[2])
            _matmul_into(a, b, out)
            return out  # (C, r, c)

        axis = 0
    mid = (C - 1) // 2
    K = _empty((n, n), H)
    for i in range(0, n, shape[0]):
        rows = slice(i, min(n, i + shape[0]))
        for j in range(i, n, shape[1]):  # the tiles of this strip, from the diagonal on
            cols = slice(j, min(n, j + shape[1]))
            block = tile(rows, cols)
            values = block if axis is None else _channel_reduce(block, estimator, axis, mid)
            if j == i:  # the leading square is on the diagonal: keep a < b and mirror it
                h = rows.stop - rows.start
                square = values[:, :h]
                values[:, :h] = _triu(square) + _triu(square, 1).T
            K[rows, cols] = values
            K[cols, rows] = values.T
    _zero_diagonal(K)
    return K


# -- G_sigma-Procrustes ----------------------------------------------------------------------
def _procrustes_invariances(self):
    group = intertwiner_group_name(self.activation)
    groups = set(_group_subgroups(group))
    if self.score_method == "angular":
        groups.add("isotropic_scaling")  # an angle ignores the overall (positive) scale
    if self.center:
        groups.add("translation")
    return frozenset(groups)


def _procrustes_bounds(self):
    """Bounds that hold for fit-on-train/score-on-test: an angle lies in [0, pi] always; the
    canonical forms of held-out stimuli are scaled with the training rms (or whitening), so
    their rms distance has no upper bound (held-out data 1000 times larger than the training
    data give about 1000 times the distance), for every group. On the fitting data the
    normalised groups stay in [0, 2] (paper: [0, 1]), as the class docstring says."""
    if self.score_method == "angular":
        return (0.0, np.pi)
    if self.score_method == "paper":
        return (-np.inf, 1.0)
    return (0.0, np.inf)


@register("intertwiner_procrustes", aliases=("g_procrustes",))
class IntertwinerProcrustes(AlignmentMetric):
    """G_sigma-Procrustes: the Procrustes distance over the intertwiner group of an activation
    (Godfrey et al. 2022, "G_ReLU-Procrustes", generalised to every activation).

    Let G = G_sigma (a group of matrices g acting by X -> X g) and write n = max(n_x, n_y); the
    narrower representation is zero-padded with silent neurons (the paper's convention).

    1. **Canonicalise the continuous part.** For the non-linear activations every g in G is
       P D, P a permutation and D in a diagonal subgroup that the permutations normalise
       (P D P' is diagonal), so a map c with c(X D) = c(X) and c(X P) = c(X) P reduces the
       problem to the discrete part. Per group (rms = root mean square of a neuron over the
       rows):

       - positive scaled permutations (ReLU) and scaled permutations (abs, x^d): divide each
         neuron by its rms (silent neurons stay 0; on held-out stimuli, see below); this
         removes every D > 0;
       - signed permutations (tanh, sin, Gaussian), scaled permutations: the signs are folded
         into the assignment below;
       - permutations (GELU, sigmoid, SiLU, ...): no canonicalisation, scale is information;
       - invertible_linear (identity): whiten, c(X) = sqrt(m) U with X = U S V' the thin SVD
         (rank-revealing), so every orbit point has the same c(X) up to an orthogonal map; the
         remaining orthogonal part is solved by orthogonal Procrustes (an SVD). This is the
         (uncentred) CCA-style shape distance; it needs n_samples > n_neurons to be
         informative (otherwise every full-rank X spans the same space and the distance is 0).

    2. **Solve the discrete part exactly.** With A = c(X), B = c(Y) (m x n), permutations are
       isometries, so ||A - B P||_F^2 = ||A||^2 + ||B||^2 - 2 tr(A'B P) is linear in P and its
       global minimum over all n! permutations is the linear assignment maximising
       sum_i C_{i, pi(i)}, C = A'B (``scipy.optimize.linear_sum_assignment``, exact). For
       signed groups the best sign of each pair is sign(C_ij), so the assignment runs on |C_ij|
       (:func:`optimal_signed_permutation`).

    What is optimised, precisely: d(X, Y) = min over the discrete part h of ||c(X) - c(Y) h||_F,
    which is the distance between the G-orbits of X and Y measured between their canonical
    representatives. It is not min_g ||X - Y g||_F on the raw data: that quantity is neither
    symmetric nor invariant to G acting on X (the paper's normalisation makes the same choice).
    Because c is G-equivariant and h ranges over a group of isometries, d is invariant to G on
    either side, symmetric and, for equal widths, satisfies the triangle inequality (a metric
    on the orbit space; zero exactly when X and Y lie in the same G-orbit).

    Different widths: zero-padding pairs the surplus neurons of the wider layer with silent
    neurons (as :class:`simmetrics.PermutationMetric` does), and the triangle inequality can
    then fail (x -> [x/2, -x/2] -> -x is shorter than x -> -x: pi/2 + 0 against pi for
    ReLU). ``is_metric`` is therefore declared for equal widths only.

    Reported, on the aligned matrices A, B' = c(Y) h (m rows)::

        angular:   arccos( <A, B'>_F / (||A||_F ||B'||_F) )          in [0, pi]
        euclidean: ||A - B'||_F / sqrt(m n)                          (an rms over entries)
        paper:     1 - ||A - B'||_F / (2 sqrt(m n))                  (a similarity)

    For ReLU, "paper" is exactly the paper's reported 1 - d with
    d^2 = (||H1||^2 + ||H2||^2 - 2 sum_i C_{i, pi(i)}) / (4 n) for unit-norm channels (the rms
    scaling multiplies both sides by m), in [0, 1] on the fitting data (in [1 - 1/sqrt 2, 1]
    for non-negative features). Unlike :class:`simmetrics.ShapeMetric` (netrep's convention),
    the Euclidean form is divided by sqrt(m n), so it does not grow with the number of
    stimuli; for the groups with a per-neuron scale it lies in [0, 2] on the fitting data.

    No centring by default: translations are not in G_sigma, and a ReLU network's
    representation is not translation invariant (``center=True`` subtracts the fitted neuron
    means first and adds translation to the invariances).

    Fit on training stimuli, score on held-out ones: ``fit`` learns the means, the per-neuron
    scales (or whiteners) of X and Y and the discrete alignment; ``score`` and ``transform``
    apply them to the given stimuli. What the training stimuli cannot determine is determined
    on the scored stimuli, by rules that keep the held-out value a G-invariant distance
    (acting with any g in G on X, training and held-out stimuli alike, changes nothing; held-out
    Y = X g scores 0 where the fit found g):

    - a neuron **silent on the training stimuli** (all zero; with ``center=True``, constant,
      whose fitted mean is then that constant exactly) has no training rms: for the groups
      with a per-neuron scale it is divided by its rms on the scored stimuli (0 if silent
      there too). So held-out data that differ only in such a neuron get a nonzero distance
      (it was multiplied by 0 before, giving 1.5e-16);
    - a pair of the matching with a silent member adds 0 to the fitted objective, so which
      partner (and sign) such a neuron gets is undetermined: in ``fit`` (``permutation_``),
      pairs of neurons silent on both sides are matched in index order with sign +1; in
      ``score`` and ``transform``, the pairs with a silent member are re-matched among
      themselves (every pair keeping a silent member, the other pairs as fitted) by linear
      assignment on the canonical scored data, signs included;
    - identity activation (GL_n): directions of the neurons that the training rows do not
      span (a silent neuron, fewer stimuli than neurons) are invisible to the fitted
      whitening. The part of the scored data outside the training row space is whitened on
      the scored stimuli and appended as extra columns (aligned between X and Y by orthogonal
      Procrustes on the scored stimuli), and the whitened block is projected off it, so the
      value stays invariant to GL_n; ``transform`` then returns more columns than neurons.

    Declared ``bounds`` hold on held-out data: an angle is in [0, pi]; held-out canonical
    forms are scaled by the training rms or whitening, so the Euclidean form has no upper
    bound (held-out stimuli 1000 times larger than the training ones give about 1000 times
    the distance) and the paper's form no lower bound, for every group.

    Extreme scales: the per-neuron scales and the whitening are computed on the data
    rescaled by exact powers of two (per neuron for the scales) and kept with their exponent
    where float64 cannot hold them in true units (subnormal activations, |x| < 2e-308), so
    ``X * 1e-310`` and ``X * 1e300`` give the value of X for every scale-free combination
    (angular; euclidean and paper for ReLU, abs, x^d and the identity). Held-out stimuli so
    much larger than the training ones that the canonical form overflows get a ValueError.

    Conv features: pass ``layout`` ("nchw", ...); every sample and position is a row, as in the
    paper. With ``score_method="paper"`` a 4-D input without ``layout`` is read as
    (N, C, H, W), the paper's convention. Maps of different spatial sizes (4-D, "nchw" or
    "nhwc") are matched first by nearest-neighbour upsampling of the smaller by an integer
    factor (:func:`upsample_to_match`).

    Parameters
    ----------
    activation : str, (str, number), torch.nn.Module, callable, default "relu"
        The activation whose intertwiner group is used
        (:func:`simmetrics.symmetry.activations.intertwiner_group`), or a group name from
        :data:`INTERTWINER_GROUPS`.
    score_method : {"angular", "euclidean", "paper"}, default "angular"
        "angular" and "euclidean" are **distances**; "paper" is the paper's **similarity** 1 - d.
    center : bool, default False
        Subtract each neuron's mean (learned in ``fit``).
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None

    Attributes
    ----------
    group_ : str
        The group used.
    permutation_ : ndarray of int, shape (n_x,) or None
        Neuron ``permutation_[i]`` of Y is matched with neuron i of X (-1: matched with a
        padding neuron, when X is wider). None for invertible_linear.
    signs_ : ndarray, shape (n_x,) or None
        The sign of each match (all +1 for groups without sign flips).
    scales_ : ndarray, shape (n_x,) or None
        The positive factor of each match: ``X[:, i] ~ signs_[i] * scales_[i] *
        Y[:, permutation_[i]]`` (ratio of the fitted rms; 1 for groups without scalings, 0
        where a neuron is silent or unmatched).
    alignment_ : ndarray, shape (n_y, n_x)
        The fitted group element mapping Y onto X's neurons: ``Y @ alignment_`` approximates
        X (equals it when X = Y g for g in G, with X of full column rank for the identity).
    mean_x_, mean_y_ : ndarray
        Fitted neuron means (zeros unless ``center``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.maximum(rng.normal(size=(200, 6)), 0.0)
    >>> PD = np.eye(6)[[3, 0, 5, 1, 2, 4]] * rng.uniform(0.5, 2.0, size=6)
    >>> metric = IntertwinerProcrustes("relu").fit(X, X @ PD)
    >>> round(metric.score(X, X @ PD), 10), bool(np.allclose(metric.alignment_ @ PD, np.eye(6)))
    (0.0, True)
    >>> Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    >>> round(IntertwinerProcrustes("relu", score_method="paper").fit_score(X, X @ Q), 4)
    0.3605
    """

    kind = param_dependent(
        lambda self: "similarity" if self.score_method == "paper" else "distance"
    )
    bounds = param_dependent(_procrustes_bounds)
    is_metric = param_dependent(lambda self: self.score_method != "paper")
    symmetric = True  # the paper's similarity too: a function of the symmetric distance
    invariances = param_dependent(_procrustes_invariances)
    min_samples = 2
    same_width = False
    reference = _REFERENCE

    _parameter_constraints = {
        "activation": [str, callable],
        "score_method": [Options(_PROCRUSTES_METHODS)],
        "center": [Boolean()],
    }

    def __init__(self, activation="relu", score_method="angular", center=False, layout=None):
        self.activation = activation
        self.score_method = score_method
        self.center = center
        self.layout = layout

    # -- validation ------------------------------------------------------------------------
    def _check_params(self):
        if self.score_method not in _PROCRUSTES_METHODS:
            raise ValueError(
                f"score_method must be one of {_PROCRUSTES_METHODS}, got {self.score_method!r}"
            )
        return intertwiner_group_name(self.activation)

    def _validate(self, X, Y):
        self._check_params()
        default_4d = "nchw" if self.score_method == "paper" else None
        A, B, layout = _prepare_conv(X, Y, self.layout, default_4d)
        return check_pair(A, B, layout=layout, min_samples=self.min_samples,
                          same_width=self.same_width)

    # -- canonical forms -------------------------------------------------------------------
    def _canonicalize(self, Ac, W, e=0):
        """c(Ac) = (Ac 2**-e) W: a per-neuron factor (vector W, scalar or per-neuron e) or a
        whitening matrix. e is 0 except for subnormal-scale data (see :func:`_folded`)."""
        S = np.ldexp(Ac, -e) if np.any(e) else Ac
        with np.errstate(over="ignore", invalid="ignore"):  # refused below
            C = S * W if W.ndim == 1 else S @ W
        if not np.all(np.isfinite(C)):
            raise ValueError(
                "the scored stimuli are too large for the scale fitted on the training "
                "stimuli: their canonical form (each neuron divided by its training rms, or "
                "whitened) overflows float64; fit and score on data of comparable scale"
            )
        return C

    def _whitener(self, Ac):
        """The canonicalising map of the (centred) training data and its power-of-two
        exponent: a vector (per-neuron factor) or a matrix (whitening), computed on the data
        rescaled by exact powers of two (per neuron for the factors), so subnormal and 1e300
        activations give the map of the unscaled data."""
        if self.group_ == "invertible_linear":
            top = float(np.max(np.abs(Ac)))
            e = int(np.frexp(top)[1]) if top > 0.0 else 0
            _, s, Vt = orthonormal_basis(np.ldexp(Ac, -e))
            return _folded(_whitening_map(s, Vt, Ac.shape[0]), e)
        if self.group_ in _SCALED:
            squares, e = _column_squares(Ac)
            return _folded(_reciprocal(np.sqrt(squares / Ac.shape[0])), e)
        return np.ones(Ac.shape[1]), 0

    def _fit(self, X, Y):
        self.group_ = self._check_params()
        check_nonconstant(X, "X")
        check_nonconstant(Y, "Y")
        if self.center:
            # the alignment is learned on accurately centred data (two passes,
            # simmetrics._core.linalg.center): with large means, X - mean_x_ keeps a constant
            # rounding residual that the whitening would take for a direction of the data
            (Xc, self.mean_x_), (Yc, self.mean_y_) = _fitted_centring(X), _fitted_centring(Y)
        else:
            self.mean_x_, self.mean_y_ = np.zeros(X.shape[1]), np.zeros(Y.shape[1])
            Xc, Yc = X, Y
        self._wx, ex = self._whitener(Xc)
        self._wy, ey = self._whitener(Yc)
        width = max(X.shape[1], Y.shape[1])
        A = zero_pad(self._canonicalize(Xc, self._wx, ex), width)
        B = zero_pad(self._canonicalize(Yc, self._wy, ey), width)
        silent = None
        if self.group_ == "invertible_linear":
            self._rotation = procrustes_rotation(A, B)
        else:
            if self.group_ in _SIGNED:
                perm, signs = optimal_signed_permutation(A, B)
            else:
                perm, signs = optimal_permutation(A, B), np.ones(width)
            silent = (~A.any(axis=0), ~B.any(axis=0))  # padding included
            self._perm, self._signs = _silent_pairs_in_order(perm, signs, *silent)
        self._describe_alignment(X.shape[1], Y.shape[1], ex, ey, silent)

    def _describe_alignment(self, nx, ny, ex=0, ey=0, silent=None):
        """The user-facing attributes: the fitted group element and its parts.

        Also records what held-out scoring needs besides the maps: the power-of-two exponents
        ``ex``, ``ey`` of the maps (0: the maps are in true units) and, for the permutation
        groups, which neurons were silent on the training stimuli (two masks over the padded
        width; None: those whose factor is 0)."""
        self._ex, self._ey = ex, ey
        if self.group_ == "invertible_linear":
            rx, ry = self._wx.shape[1], self._wy.shape[1]
            # X ~ c(X) W_x^+ and c(X) ~ Y W_y R: the inverse of the whitening is pinv(W_x);
            # with exponents, c(X) = X 2**-ex W_x, so the element gains 2**(ex - ey)
            with np.errstate(over="ignore", under="ignore"):
                self.alignment_ = np.ldexp(
                    self._wy @ self._rotation[:ry, :rx] @ np.linalg.pinv(self._wx), ex - ey)
            self.permutation_ = self.signs_ = self.scales_ = None
            self._silent = None
            return
        width = len(self._perm)
        if silent is None:
            silent = tuple(np.concatenate([w == 0.0, np.ones(width - len(w), dtype=bool)])
                           for w in (self._wx, self._wy))
        self._silent = silent
        perm = self._perm[:nx].copy()
        matched = perm < ny
        perm[~matched] = -1
        scales = np.zeros(nx)
        idx = np.flatnonzero(matched)
        # c(X)[:, i] = X[:, i] 2**-ex_i wx_i  ~  s_i Y[:, j] 2**-ey_j wy_j
        #   =>  X[:, i] ~ s_i (wy_j / wx_i) 2**(ex_i - ey_j) Y[:, j]
        shift = (np.broadcast_to(ex, (nx,))[idx] - np.broadcast_to(ey, (ny,))[perm[idx]])
        with np.errstate(over="ignore", under="ignore"):
            scales[idx] = np.ldexp(self._wy[perm[idx]] * _reciprocal(self._wx[idx]), shift)
        self.permutation_ = perm
        self.signs_ = self._signs[:nx].copy()
        self.scales_ = scales
        self.alignment_ = np.zeros((ny, nx))
        self.alignment_[perm[idx], idx] = self.signs_[idx] * scales[idx]

    # -- alignment and score ---------------------------------------------------------------
    def _heldout_factors(self, Xc, W, e):
        """c(Xc) for the per-neuron groups on scored stimuli: the fitted factors, and a neuron
        silent on the training stimuli (factor 0) divided by its rms on ``Xc``."""
        A = self._canonicalize(Xc, W, e)
        silent = W == 0.0
        if self.group_ in _SCALED and silent.any():
            A[:, silent] = _unit_rms_columns(Xc[:, silent])
        return A

    def _heldout_whitened(self, X, Xc, W, e):
        """(main, extra) for the identity group on scored stimuli X (m rows), Xc = X - mean.

        main = c(Xc) = Xc 2**-e W, the training whitening. Directions of the neurons that the
        training rows never spanned (a silent neuron, fewer stimuli than neurons) are invisible
        to it: the part of Xc outside the training row space, Z = Xc (I - V V') (V: the
        orthonormal columns of W, which are orthogonal), is whitened on the scored stimuli,
        extra = sqrt(m) U_z (U_z: orthonormal basis of Z's column space, singular values
        below max(m, d) eps ||X||_F dropped as rounding: the uncentred X, whose size sets the
        rounding of X - mean, a constant row of about eps |mean|), and main is projected off
        span(U_z). Both blocks are then G-equivariant up to an orthogonal map (GL_n maps the
        unseen part of one representation to the unseen part of the other), so held-out
        values stay invariant."""
        main = self._canonicalize(Xc, W, e)
        m, d = Xc.shape
        if W.shape[1] >= d:
            return main, np.zeros((m, 0))
        V = _unit_rms_columns(W)  # orthogonal columns: unit rms, i.e. norm sqrt(d)
        top = float(np.max(np.abs(Xc)))
        shift = -int(np.frexp(top)[1]) if top > 0.0 else 0
        T = np.ldexp(Xc, shift)  # exact; the basis below does not depend on the scale
        Z = T - (T @ V) @ V.T / d
        U, s, _ = np.linalg.svd(Z, full_matrices=False)
        with np.errstate(over="ignore", under="ignore"):
            floor = np.ldexp(frobenius_norm(X), shift)
        keep = s > max(m, d) * np.finfo(np.float64).eps * max(floor, frobenius_norm(T))
        Uz = U[:, keep]
        if Uz.shape[1]:
            main = main - Uz @ (Uz.T @ main)
        return main, np.sqrt(m) * Uz

    def _transform(self, X, Y):
        # the fitted widths, from the fitted maps (set inside fit, before n_features_x_)
        width = max(self._wx.shape[0], self._wy.shape[0])
        Xc, Yc = X - self.mean_x_, Y - self.mean_y_
        if self.group_ == "invertible_linear":
            (Ma, Ea), (Mb, Eb) = (self._heldout_whitened(X, Xc, self._wx, self._ex),
                                  self._heldout_whitened(Y, Yc, self._wy, self._ey))
            A, B = zero_pad(Ma, width), zero_pad(Mb, width) @ self._rotation
            k = max(Ea.shape[1], Eb.shape[1])
            if k:  # the unseen directions, aligned on the scored stimuli
                Ea, Eb = zero_pad(Ea, k), zero_pad(Eb, k)
                A, B = np.hstack([A, Ea]), np.hstack([B, Eb @ procrustes_rotation(Ea, Eb)])
            return A, B
        A = zero_pad(self._heldout_factors(Xc, self._wx, self._ex), width)
        B = zero_pad(self._heldout_factors(Yc, self._wy, self._ey), width)
        perm, signs = _rematch_undetermined(
            lambda rows, cols: cross_in_range(A[:, rows], B[:, cols]), self._perm,
            self._signs, *self._silent, signed=self.group_ in _SIGNED)
        return A, B[:, perm] * signs

    def _score(self, X, Y):
        self._check_params()
        check_nonconstant(X, "X")
        check_nonconstant(Y, "Y")
        A, B = self._transform(X, Y)
        if self.score_method == "angular":
            return angular_distance(A, B)
        # an rms over m x n entries, n = the fitted width (the identity group's held-out
        # unseen directions add columns, not neurons); no overflow or underflow at 1e+-300
        width = max(self._wx.shape[0], self._wy.shape[0])
        rms = frobenius_norm(A - B) / np.sqrt(A.shape[0] * width)
        return rms if self.score_method == "euclidean" else 1.0 - 0.5 * rms

    # -- streaming (simmetrics.stream_score): fit and score from second moments --------------
    # For the per-neuron groups the canonical forms, the assignment and the distance need only
    # the (uncentred, or centred with the fitted means) X'X, Y'Y and X'Y. The identity group
    # whitens, which X'X cannot do where it has rounded away small directions (one stimulus
    # 1e8 times the others): it runs the whole-data fit and distance on rows standing in for
    # the data (PairMoments.factor_rows, the data's conditioning), and without a factor uses
    # X'X only where simmetrics.moments.gram_factor finds its digits sufficient.
    def _batch_layout(self, X, Y):
        """What ``_validate`` does before ``check_pair``, for one batch of a stream."""
        self._check_params()
        default_4d = "nchw" if self.score_method == "paper" else None
        return _prepare_conv(X, Y, self.layout, default_4d)

    #: the hooks below take statistics at any power-of-two level (``stats.exponents``) and
    #: give the value in the data's units (see simmetrics.streaming._for_metric)
    _moments_any_scale = True

    @property
    def _moments_factor(self):
        """The identity group whitens: stream_score accumulates PairMoments.factor, and the
        fit and the distance come from rows standing in for the data (PairMoments.factor_rows)
        with the data's conditioning; the other groups need only diagonals and cross-products
        of the second moments."""
        try:
            return intertwiner_group_name(self.activation) == "invertible_linear"
        except (TypeError, ValueError):  # reported by the parameter checks
            return False

    def _moments_parts(self, stats):
        """The statistics as exactly centred parts and offsets, at their power-of-two level
        (X_s = X 2^-ex, Y_s = Y 2^-ey): n, Gx = Xc'Xc, Gy, C = Xc'Yc and dx = mean(X_s) -
        mean_x_ 2^-ex, dy. About the fitted means, X'X = Gx + n dx dx' (likewise C); the two
        parts are never added: with a large mean (1e8 +- 1e-3) the sum would round away Gx."""
        self._check_params()
        S = stats.to_numpy()
        check_nonconstant_moments(S.x, "X")
        check_nonconstant_moments(S.y, "Y")
        Sc = S.centred()
        n, sx, sy = S.n, Sc.x.sum, Sc.y.sum  # the residual sums of the centring (rounding)
        ex, ey = S.exponents
        dx = (Sc.x.shift - _at_level(self.mean_x_, -ex)) + sx / n
        dy = (Sc.y.shift - _at_level(self.mean_y_, -ey)) + sy / n
        return (n, Sc.x.gram - np.outer(sx, sx / n), Sc.y.gram - np.outer(sy, sy / n),
                Sc.cross - np.outer(sx, sy / n), dx, dy)

    def _whitener_from_parts(self, G, d, n, rep=None, name="X"):
        """The canonicalising map of data with centred Gram G and offset d (X'X = G + n dd'),
        at the statistics' level (statistics without a factor). The identity group whitens by
        the SVD of the square root [M ; sqrt(n) d'] of G + n dd', M'M = G the square root that
        :func:`simmetrics.moments.gram_factor` accepts (refused, naming fit_score, where G's
        digits do not suffice; ``rep`` gives the neurons' extremes), which resolves singular
        values down to max(n, d) eps of the largest as the data's SVD does; the scaled groups
        divide by the rms of every neuron, sqrt(diag(G)/n + d^2)."""
        if self.group_ == "invertible_linear":
            M = gram_factor(rep, name, centred=True, gram=G)
            _, sv, Vt, e = rows_svd(np.vstack([M, np.sqrt(n) * d[None, :]]), n)
            return _whitening_map(times_pow2(sv, e), Vt, n)
        if self.group_ in _SCALED:
            return _reciprocal(np.sqrt(np.diag(G) / n + d * d))
        return np.ones(G.shape[0])

    def _canonical_parts(self, parts, exponents):
        """The canonical forms' parts, per side at its own power-of-two level: A = c(X) =
        (Ac + 1 a') 2^kx with ||Ac||^2 = aa, likewise B, and M = Ac'Bc (zero-padded to the
        common width); the fitted maps, at the statistics' level, by :func:`_level_map`."""
        n, Gx, Gy, C, dx, dy = parts
        (wx, kx), (wy, ky) = (_level_map(self._wx, self._ex, exponents[0]),
                              _level_map(self._wy, self._ey, exponents[1]))
        if wx.ndim == 1:
            aa = float(np.sum(wx**2 * np.diag(Gx)))
            bb = float(np.sum(wy**2 * np.diag(Gy)))
            M = wx[:, None] * C * wy[None, :]
            a, b = wx * dx, wy * dy
        else:
            aa = float(np.sum((Gx @ wx) * wx))
            bb = float(np.sum((Gy @ wy) * wy))
            M = wx.T @ C @ wy
            a, b = wx.T @ dx, wy.T @ dy
        width = max(Gx.shape[0], Gy.shape[0])
        return aa, bb, pad2(M, width, width), _pad1(a, width), _pad1(b, width), kx, ky

    def _fit_from_moments(self, stats):
        self.group_ = self._check_params()
        S = stats.to_numpy()
        ex, ey = S.exponents
        if self.center:
            self.mean_x_, self.mean_y_ = S.x.mean, S.y.mean
        else:
            self.mean_x_, self.mean_y_ = np.zeros(S.x.width), np.zeros(S.y.width)
        if self.group_ == "invertible_linear" and S.factor is not None:
            return self._fit_identity_from_rows(S)
        parts = self._moments_parts(S)
        n, Gx, Gy, _, dx, dy = parts
        # the maps at the statistics' level: c(X) = X_s W = (X 2^-ex) W, as the whole-data
        # maps with an exponent; the permutation groups' identity map stays in true units
        whitens = self.group_ == "invertible_linear" or self.group_ in _SCALED
        self._wx = self._whitener_from_parts(Gx, dx, n, S.x, "X")
        self._wy = self._whitener_from_parts(Gy, dy, n, S.y, "Y")
        self._ex, self._ey = (ex, ey) if whitens else (0, 0)
        aa, bb, M, a, b, _, _ = self._canonical_parts(parts, (ex, ey))
        M = M + n * np.outer(a, b)  # A'B, the two parts at one level (for the alignment only)
        if self.group_ == "invertible_linear":
            self._rotation = rotation_from_cross(pow2_rescale(M.T))
        elif self.group_ in _SIGNED:
            self._perm, self._signs = _signed_assignment_from_cross(M)
        else:
            self._perm, self._signs = assignment_from_cross(pow2_rescale(M)), np.ones(len(M))
        self._describe_alignment(S.x.width, S.y.width, self._ex, self._ey)

    def _fit_identity_from_rows(self, S):
        """The whole-data fit of the identity group (:meth:`_fit`) on rows standing in for
        the data about the fitted means (:meth:`simmetrics.PairMoments.factor_rows`, at the
        statistics' levels X_s = X 2^-ex): c(X) = sqrt(n) U, U the orthonormal basis of the
        rows' column space (the whole-data rank rule for n rows), and the rotation of
        orthogonal Procrustes between the padded canonical forms."""
        n, (ex, ey) = S.n, S.exponents
        maps, forms = [], []
        for rows, e in zip(S.shifted(self.mean_x_, self.mean_y_).factor_rows(), (ex, ey)):
            U, s, Vt, k = rows_svd(rows, n)  # of rows 2^-k: c(X) = (X 2^-(e + k)) W
            maps.append(_folded(_whitening_map(s, Vt, n), e + k))
            forms.append(np.sqrt(n) * U)
        (self._wx, ex), (self._wy, ey) = maps
        width = max(S.x.width, S.y.width)
        self._rotation = procrustes_rotation(zero_pad(forms[0], width), zero_pad(forms[1], width))
        self._describe_alignment(S.x.width, S.y.width, ex, ey)

    def _identity_score_from_rows(self, S):
        """The whole-data distance of the identity group (:meth:`_score`) on rows standing
        in for the data about the fitted means, each side at its own level (the fitted maps
        brought there by :func:`_level_map`)."""
        rows = S.shifted(self.mean_x_, self.mean_y_).factor_rows()
        (wx, kx), (wy, ky) = (_level_map(self._wx, self._ex, S.exponents[0]),
                              _level_map(self._wy, self._ey, S.exponents[1]))
        width = max(self._wx.shape[0], self._wy.shape[0])
        A = zero_pad(rows[0] @ wx, width)  # c(X) 2^-kx
        B = zero_pad(rows[1] @ wy, width) @ self._rotation  # c(Y) R 2^-ky
        if self.score_method == "angular":
            return angular_distance(A, B)
        k = max(kx, ky)  # both at the larger level, then the rms back in the data's units
        with np.errstate(under="ignore"):
            diff = times_pow2(A, kx - k) - times_pow2(B, ky - k)
        rms = float(times_pow2(frobenius_norm(diff) / np.sqrt(S.n * width), k))
        return rms if self.score_method == "euclidean" else 1.0 - 0.5 * rms

    def _score_from_moments(self, stats):
        S = stats.to_numpy()
        if self.group_ == "invertible_linear" and S.factor is not None:
            return self._identity_score_from_rows(S)
        parts = self._moments_parts(S)
        if self.group_ == "invertible_linear":  # the Gram route, where its digits suffice
            gram_factor(S.x, "X", gram=parts[1])
            gram_factor(S.y, "Y", gram=parts[2])
        aa, bb, M, a, b, kx, ky = self._canonical_parts(parts, S.exponents)
        n = S.n
        if self.group_ == "invertible_linear":
            ab = float(np.sum(M * self._rotation.T))  # <Ac, Bc R> = tr(Ac'Bc R)
            b = self._rotation.T @ b  # the offset row of B R
        else:
            ab = float(np.sum(M[np.arange(len(M)), self._perm] * self._signs))
            b = b[self._perm] * self._signs
        if self.score_method == "angular":
            # the angle between A and B R, each side at its own level (the angle ignores
            # scale): Kahan's 2 atan2(||a - b||, ||a + b||) on unit-norm versions, the offset
            # rows subtracted as vectors (no cancellation of two large products)
            na, nb = aa + n * float(a @ a), bb + n * float(b @ b)
            for name, sq in (("X", na), ("Y", nb)):
                if not sq > 0.0:
                    raise ValueError(
                        f"the aligned {name} is zero (no variance left after centring with "
                        "the fitted means and whitening), so the angular distance is undefined"
                    )
            ua, ub = 1.0 / np.sqrt(na), 1.0 / np.sqrt(nb)
            cross = 2.0 * ab * ua * ub
            diff = aa * ua * ua + bb * ub * ub - cross + n * float(np.sum((a * ua - b * ub)**2))
            both = aa * ua * ua + bb * ub * ub + cross + n * float(np.sum((a * ua + b * ub)**2))
            return float(2.0 * np.arctan2(np.sqrt(max(diff, 0.0)), np.sqrt(max(both, 0.0))))
        # euclidean: both sides at the larger level k, then the rms scaled back by 2^k
        k = max(kx, ky)
        fx, fy = 2.0 ** max(kx - k, -1074), 2.0 ** max(ky - k, -1074)
        diff = (fx * fx * aa + fy * fy * bb - 2.0 * fx * fy * ab
                + n * float(np.sum((fx * a - fy * b) ** 2)))
        rms = float(times_pow2(np.sqrt(max(diff, 0.0)) / np.sqrt(n * len(M)), k))
        return rms if self.score_method == "euclidean" else 1.0 - 0.5 * rms


def _pad1(v, width):
    """v with zeros appended up to ``width``."""
    out = np.zeros(width)
    out[: v.shape[0]] = v
    return out


def _at_level(v, k):
    """v 2^k (exact unless it over- or underflows)."""
    return v if k == 0 else times_pow2(np.asarray(v, dtype=np.float64), k)


def _level_map(W, e, level):
    """A fitted map (W, e) (c(X) = (X 2^-e) W, e a scalar or one per neuron) at the level of
    statistics of X_s = X 2^-level, as (W', k) with c(X) = X_s W' 2^k and max |W'| in
    [0.5, 1): X_s 2^(level - e) W, the powers of two gathered into one exponent k, so that
    neither W' nor X_s W' overflows whatever the level."""
    with np.errstate(divide="ignore"):
        mant, ew = np.frexp(W)
    shift = np.asarray(level - np.asarray(e), dtype=np.int64)
    if W.ndim == 2:
        shift = np.broadcast_to(shift, (W.shape[0],))[:, None] if shift.ndim else shift
    total = ew + shift
    live = W != 0.0
    if not live.any():
        return W, 0
    k = int(total[live].max())
    return np.where(live, np.ldexp(mant, np.maximum(total - k, -1100)), 0.0), k


def _whitening_map(s, Vt, m):
    """The identity group's canonicalising map V S^(-1) sqrt(m): c(X) = X V S^-1 sqrt(m) is
    sqrt(m) times an orthonormal basis of X's column space (m rows)."""
    return Vt.T * (np.sqrt(m) / s)


# -- G_sigma-CKA -----------------------------------------------------------------------------
def _cka_kernel_group(group):
    """The group whose invariances the kernel has: the per-channel products are even in each
    channel, so sign flips always cancel; scalings cancel where channels are normalised."""
    if group in _SCALED:
        return "scaled_permutation"
    if group == "invertible_linear":
        return "invertible_linear"
    return "signed_permutation"


def _cka_invariances(self):
    group = _cka_kernel_group(intertwiner_group_name(self.activation))
    return frozenset(_group_subgroups(group) | {"isotropic_scaling", "translation"})


def _kernel_input_shape(raw, M):
    """(stimuli, positions, channels) of one input: ``raw`` as given, ``M`` validated (rows x
    channels, or stimuli x channels x positions with positions summed)."""
    if M.ndim == 3:
        return int(M.shape[0]), int(M.shape[2]), int(M.shape[1])
    rows, C = int(M.shape[0]), int(M.shape[1])
    stimuli = int(raw.shape[0]) if hasattr(raw, "shape") and len(raw.shape) else len(raw)
    if stimuli < 1 or rows % stimuli:
        stimuli = rows
    return stimuli, rows // stimuli, C


def _cka_peak_bytes(shapes, summed, group, estimator, chunk_size, torch_like=False,
                    tile_elements=_TILE_ELEMENTS):
    """Estimated peak memory of IntertwinerCKA on inputs of the given (stimuli, positions,
    channels) shapes, whose kernels are held at once: the n x n float64 kernels (n = stimuli
    with positions summed, stimuli x positions otherwise), the validated inputs, three copies
    of one input made by its channel normalisation (rescaled, centred, normalised or
    whitened), and the kernel's tile memory (:func:`_tile_bytes`), plus 10 %. Checked against
    the allocations numpy reports to ``tracemalloc`` (tests/test_trust_intertwiner.py): the
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


def _rows(H):
    """Features (n, C, P) as the (n P, C) matrix of their rows, sample by sample."""
    n, C, P = H.shape
    return _permuted(H, (0, 2, 1)).reshape(n * P, C)


def _cka_features(H, group):
    """Centre each channel over samples and positions, then normalise: per channel for groups
    with a per-neuron scale, globally (which CKA ignores) otherwise. numpy or torch."""
    n, C, P = H.shape
    # two-pass centring of every channel over the rows (samples and positions), on
    # power-of-two rescaled data (exact), so that squares neither overflow nor underflow
    rows = center(pow2_rescale(_rows(H)))
    if group in _SCALED:
        rows = _unit_channels(rows)
    else:
        total = frobenius_norm(rows)
        rows = rows / total if total > 0.0 else rows
    return _permuted(rows.reshape(n, P, C), (0, 2, 1))


def _intertwiner_kernel(H, group, estimator, chunk_size):
    """The n x n kernel of IntertwinerCKA for features H (n, C, P), numpy or torch."""
    n = H.shape[0]
    if group == "invertible_linear":
        U = _column_space(center(pow2_rescale(_rows(H))))
        F = U.reshape(n, -1)  # per sample: its whitened rows, concatenated
        K = F @ F.T
        _zero_diagonal(K)
        return K
    return channel_kernel(_cka_features(H, group), estimator, chunk_size)


#: Whether IntertwinerCKA computes CPU input (numpy arrays, CPU tensors) with torch's CPU
#: kernels (numpy arrays wrapped by ``torch.from_numpy``, no copy) rather than numpy's. Off:
#: torch's threaded kernels were faster on an idle machine but several times slower while
#: another process kept a core busy (the timings are in benchmarks/README.md, "IntertwinerCKA
#: on torch's CPU kernels"). The same code runs either way (the tests run both).
_TORCH_ON_CPU = False


def _on_device_path(A):
    """Whether IntertwinerCKA keeps ``A`` where it is: a torch tensor on an accelerator with
    float64 arithmetic (CUDA and the like). MPS has no float64, so MPS tensors take the CPU
    path (copied to the CPU, as every metric's validation does). The tests send CPU tensors
    down this path by patching this function."""
    return on_accelerator(A) and A.device.type != "mps"


def _same_place(a, b):
    """Two :class:`~simmetrics.metrics.hsic.UnbiasedGram` states whose arrays live in one place: where
    they differ (pairwise over representations on different devices), the CPU one (numpy or
    torch) is copied to the other's device."""
    def where(state):
        return state.K.device if is_tensor(state.K) else None

    if where(a) == where(b):
        return a, b
    if where(b) is None or where(b).type == "cpu":
        return a, UnbiasedGram(like(b.K, a.K))
    return UnbiasedGram(like(a.K, b.K)), b


@register("intertwiner_cka", aliases=("g_cka",))
class IntertwinerCKA(Metric):
    """G_sigma-CKA: CKA with the paper's max-over-channels kernel (Godfrey et al. 2022,
    "G_ReLU-CKA"), for the intertwiner group of any activation.

    1. Per channel c: centre over samples and positions; for groups with a per-neuron scale
       (ReLU: positive scaled permutations; abs, x^d: scaled permutations) also divide by the
       channel's L2 norm (silent channels stay 0), as in the paper.
    2. Kernel between samples (:func:`channel_kernel`)::

           K_ab = max_c  sum_p H[a, c, p] H[b, c, p]        ("median": median over c)

       with zero diagonal.
    3. CKA with the unbiased HSIC of Song et al. 2012 (:func:`simmetrics.metrics.hsic.hsic_unbiased`,
       evaluated by :class:`simmetrics.metrics.hsic.UnbiasedGram`):
       HSIC1(K, L) / sqrt(HSIC1(K, K) HSIC1(L, L)). The paper's code builds K with a zero
       diagonal and its HSIC1 does not zero it again; the unbiased HSIC here zeroes diagonals
       itself, so the two agree. Each kernel is first U-centred entry by entry
       (:func:`simmetrics.metrics.hsic.u_centred`; the unbiased HSIC is unchanged in exact arithmetic),
       which keeps
       the digits the sums formula loses when one stimulus dominates. The self-terms have the
       rounding floor of :func:`simmetrics.metrics.hsic.hsic_self`.

    Which transformations leave the value unchanged (each verified in the tests):

    - any channel permutation (max and median are symmetric functions of the channels);
    - sign flips of single channels, for every activation: the per-channel term
      H[a, c] . H[b, c] is even in channel c, so a flip cancels. For ReLU and GELU this is an
      invariance beyond G_sigma (inherent to any per-channel product kernel);
    - per-channel positive or negative scalings only where the channels are normalised (ReLU,
      abs, x^d): the invariance group is then the scaled permutations. For tanh, sin and
      GELU-like activations (signed permutations, permutations) the channels are only centred,
      so a non-uniform rescaling of the neurons changes the value, as it should;
    - isotropic scaling (K scales by c^2, which CKA ignores) and translations (the centring);
    - identity activation (G = GL_n): the max kernel cannot be invariant to rotations, so the
      kernel is instead the linear kernel of the whitened (centred) features, the projection
      onto their column space; invariant to every invertible linear map (``estimator`` is not
      used). Needs n_samples (rows) > n_neurons to be informative.

    Not invariant to a general orthogonal map of the neurons for any non-linear activation:
    that is the paper's point. An exactly G-invariant CKA would need a quadratic assignment
    problem; the max-over-channels kernel is the paper's tractable substitute.

    Rows and positions: by default (``positions="rows"``) each row of the validated matrix is a
    stimulus, the package's convention for every layout (conv features with
    ``layout="nchw"`` give n * h * w rows). ``positions="sum"`` is the paper's conv kernel:
    the stimuli are the n samples, and each channel's inner product sums over the positions
    (h * w, or tokens for "ntd"); X and Y may then have different spatial sizes.

    Torch tensors and devices: torch tensors on an accelerator (CUDA) stay on their device.
    Validation, the channel normalisation, the kernel and the unbiased HSIC all run there in
    float64 (float32 and float16 input is promoted on the device); only scalars and the C
    per-channel norms come back to the CPU. A numpy partner, or a CPU tensor, is copied to the
    accelerator tensor's device. MPS tensors are copied to the CPU, because MPS has no float64.
    The kernel and the HSIC are written once for both libraries (:func:`channel_kernel` and
    :class:`simmetrics.metrics.hsic.UnbiasedGram` take numpy arrays and tensors); the device runs the
    same code as numpy does, and the values agree to about 1e-13 (for one position the
    maxima and medians are the same bits). The identity activation's whitened kernel uses
    torch's SVD on the device.

    CPU input (numpy arrays, CPU tensors) is computed with numpy. torch's CPU kernels were
    measured too (N = 10,000, C = 64, ``fit_score``, 2 cores): 1.8 times faster than numpy
    for one position on an idle machine, 1.1 times for 4 x 4 positions, but 3 to 10 times
    slower than numpy whenever another process kept one core busy (its two threads wait for
    each other after every operation), so numpy stays the CPU path.

    Memory and time: the kernel is built in tiles of ``chunk_size`` x ``chunk_size`` samples
    (:func:`channel_kernel`), about ``8 * chunk_size**2 * C`` bytes per tile (twice for
    "median"), plus the two n x n float64 matrices K and L (the HSIC forms no copies);
    ``chunk_size=None`` uses tiles of about 8 MiB on the CPU, 128 MiB on an accelerator. At
    n = 10,000, K and L take 1.6 GB. Time is O(n^2 C) (n^2 P C with positions summed).
    Before any kernel is built, the peak (kernels, validated inputs, normalisation copies,
    tiles) is estimated and checked against the memory budget
    (:func:`simmetrics._core.memory.check_memory`; ``simmetrics.set_memory_budget``, the
    environment variable ``SIMMETRICS_MEMORY_BUDGET``; accelerator work is measured against
    the same budget): with ``positions="rows"`` and a conv layout the rows are stimuli x
    positions (540 images of 16 x 8 x 8: 34,560 rows, 8.9 GiB per kernel), and the refusal
    (:class:`simmetrics._core.memory.MemoryBudgetError`) names the rows, their positions and the
    alternatives (``positions="sum"``, fewer stimuli, a streaming metric).

    A **similarity** in [-1, 1] (the unbiased HSIC is an inner product of U-centred kernels, so
    Cauchy-Schwarz applies); 1 for X and X g, g in the invariance group. Needs n >= 4 samples.
    Not a metric; symmetric in X and Y (exactly: the same sums in the same order).

    Parameters
    ----------
    activation : str, (str, number), torch.nn.Module, callable, default "relu"
        The activation whose intertwiner group is used, or a name from
        :data:`INTERTWINER_GROUPS`.
    estimator : {"max", "median"}, default "max"
        How the per-channel kernels are combined.
    positions : {"rows", "sum"}, default "rows"
        "rows": every row (sample and position) is a stimulus; "sum": the stimuli are the
        samples, and positions are summed inside each channel's inner product (the paper).
    chunk_size : int or None, default None
        Samples per side of a tile of the kernel computation.
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.maximum(rng.normal(size=(100, 8)), 0.0)
    >>> PD = np.eye(8)[rng.permutation(8)] * rng.uniform(0.5, 2.0, size=8)
    >>> round(IntertwinerCKA().fit_score(X, X @ PD), 10)
    1.0
    >>> Q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    >>> round(IntertwinerCKA().fit_score(X, X @ Q), 4)
    0.7012
    """

    kind = "similarity"
    bounds = (-1.0, 1.0)
    is_metric = False
    invariances = param_dependent(_cka_invariances)
    min_samples = 4
    same_width = False
    symmetric = True
    reference = _REFERENCE + "; unbiased HSIC: Song et al. 2012"

    _parameter_constraints = {
        "activation": [str, callable],
        "estimator": [Options(_CKA_ESTIMATORS)],
        "positions": [Options(_CKA_POSITIONS)],
        "chunk_size": [None, Interval(Integral, 1, None)],
    }

    def __init__(self, activation="relu", estimator="max", positions="rows", chunk_size=None,
                 layout=None):
        self.activation = activation
        self.estimator = estimator
        self.positions = positions
        self.chunk_size = chunk_size
        self.layout = layout

    def _check_params(self):
        if self.estimator not in _CKA_ESTIMATORS:
            raise ValueError(f"estimator must be one of {_CKA_ESTIMATORS}, got {self.estimator!r}")
        if self.positions not in _CKA_POSITIONS:
            raise ValueError(f"positions must be one of {_CKA_POSITIONS}, got {self.positions!r}")
        _check_chunk_size(self.chunk_size)
        return intertwiner_group_name(self.activation)

    # -- validation: numpy on the CPU, torch tensors kept on their accelerator --------------
    def _validate(self, X, Y):
        """Both inputs through :meth:`_validate_one`, on the device of the first one that
        stays on its accelerator (if any); then the sample counts must agree."""
        self._check_params()
        device = next((A.device for A in (X, Y) if _on_device_path(A)), None)
        A, B = self._validated(X, "X", device), self._validated(Y, "Y", device)
        if self.positions == "rows":
            check_matching_shapes(tuple(A.shape), tuple(B.shape),
                                  raw_shapes=(shape_of(X), shape_of(Y)), layout=self.layout)
        elif A.shape[0] != B.shape[0]:
            raise ValueError(
                "X and Y must have the same number of samples: "
                f"X has {A.shape[0]}, Y has {B.shape[0]}"
            )
        self._check_memory((X, A), (Y, B))  # both kernels are held at once
        return A, B

    def _validate_one(self, A, name, device=None):
        """One input as the metric reads it (:meth:`_validated`), refused with
        :class:`simmetrics._core.memory.MemoryBudgetError` when its kernel would exceed the memory
        budget (:func:`simmetrics.pairwise` prepares one kernel per representation)."""
        M = self._validated(A, name, device)
        self._check_memory((A, M))
        return M

    def _check_memory(self, *inputs):
        """Refuse, before any kernel is built, work whose estimated peak exceeds the memory
        budget (:func:`simmetrics._core.memory.check_memory`); ``inputs`` are (as given, validated)
        pairs whose kernels are held at once. The message names the rows, whether they come
        from positions, and the alternatives."""
        group = intertwiner_group_name(self.activation)
        shapes = [_kernel_input_shape(raw, M) for raw, M in inputs]
        torch_like = any(is_tensor(M) for _, M in inputs)
        tiles = next((_tile_elements(M) for _, M in inputs if is_tensor(M)), _TILE_ELEMENTS)

        def peak(summed):
            return _cka_peak_bytes(shapes, summed, group, self.estimator, self.chunk_size,
                                   torch_like, tiles)

        summed = self.positions == "sum"
        need = peak(summed)
        if need <= get_memory_budget():
            return
        stimuli, positions, C = shapes[0]
        n = stimuli if summed else stimuli * positions
        count = len(inputs)
        kernels = (f"{count} float64 {n:,} x {n:,} kernel" + ("s" if count > 1 else "")
                   + (" and its working memory" if count == 1 else " and their working memory"))
        streaming = ("a streaming metric, whose memory does not grow with the stimuli "
                     "(simmetrics.stream_score with 'intertwiner_procrustes' or 'linear_cka')")
        fewer = "fewer stimuli (the kernels grow with the square of their number)"
        if positions > 1 and not summed:
            what = (f"IntertwinerCKA on {n:,} rows ({stimuli:,} stimuli x {positions:,} "
                    f"positions: with positions='rows' every position of every stimulus is a "
                    f"row), {kernels}")
            alternatives = [
                f"positions='sum' (the paper's conv kernel: the {stimuli:,} stimuli are the "
                "rows, positions are summed inside each channel's product; about "
                f"{format_bytes(peak(True))})", fewer, streaming]
        else:
            summed_text = f" ({positions:,} positions summed)" if positions > 1 else ""
            what = f"IntertwinerCKA on {n:,} stimuli{summed_text}, {kernels}"
            alternatives = [fewer, streaming]
        check_memory(need, what, alternatives)

    def _validated(self, A, name, device=None):
        """One input as the metric reads it: the (n, d) matrix of rows, or, with
        ``positions="sum"``, an (n, C, P) array that keeps each sample's positions together.

        A torch tensor on an accelerator, or any input when ``device`` is given (the partner
        of such a tensor), becomes a float64 tensor on that device, checked there
        (:func:`simmetrics.moments.check_batch_pair`'s checks); everything else becomes a
        float64 numpy array (:func:`simmetrics._core.validation.check_representation`). Bad input
        gets the package's standard messages either way."""
        self._check_params()
        summed = self.positions == "sum"
        min_samples = 1 if summed else self.min_samples
        if device is None and _on_device_path(A):
            device = A.device
        if device is None:
            if not summed:
                return check_representation(A, name, layout=self.layout,
                                            min_samples=min_samples)
            A = as_float_array(A, name)
            M = check_representation(A, name, layout=self.layout, min_samples=1)
        else:
            torch = _torch()
            if not is_tensor(A):
                A = tensor_from_numpy(as_float_array(A, name))
            if isinstance(A, torch.Tensor) and A.device.type != "meta" and A.device != device:
                A = A.to(device)
            M = _torch_matrix(A, name, self.layout, min_samples)
        if not summed:
            return M
        n = A.shape[0]
        if n < self.min_samples:
            raise ValueError(
                f"{name} has {n} samples, but this estimator needs at least {self.min_samples}"
            )
        # every layout orders the rows sample by sample
        return _contiguous(_permuted(M.reshape(n, -1, M.shape[1]), (0, 2, 1)))

    # -- the value: one kernel per input, then the HSIC of the pair -------------------------
    def _partial_fit(self, A, name):
        """The kernel of one validated input, with its HSIC sums
        (:class:`simmetrics.metrics.hsic.UnbiasedGram`), where the input lives."""
        group = self._check_params()
        H = A if A.ndim == 3 else A[:, :, None]
        check_nonconstant_array(_rows(H), name)
        if _TORCH_ON_CPU and not is_tensor(H):
            H = tensor_from_numpy(H)
        K = _intertwiner_kernel(H, group, self.estimator, self.chunk_size)
        return UnbiasedGram(u_centred(K))

    def _finalize_fit_score(self, a, b):
        a, b = _same_place(a, b)
        # self-terms with hsic_self's floor: a kernel that the U-centring removes (the
        # whitened kernel with n - 1 <= d) gives rounding noise, returned as 0 so CKA raises
        return cka_from_hsic(a.hsic(b), a.self_hsic, b.self_hsic, "unbiased")


# -- the paper's functions -------------------------------------------------------------------
def paper_grelu_procrustes_similarity(H1, H2):
    """The paper's G_ReLU-Procrustes similarity 1 - d (pnnl/modelsym ``wreath_procrustes``).

    H1, H2 are (N, C) or (N, C, H, W) features (channels = neurons; samples and positions
    together are the rows). Unequal widths: zero-pad with silent channels; unequal spatial
    sizes: nearest-neighbour upsampling by an integer factor. Each channel is divided by its
    L2 norm, C = H1'H2, pi = linear_sum_assignment(C, maximize=True) and::

        d^2 = (||H1||^2 + ||H2||^2 - 2 sum_i C_{i, pi(i)}) / (4 n),   n = max(C1, C2)

    Equal to ``IntertwinerProcrustes("relu", score_method="paper").fit_score(H1, H2)``, which
    this function calls; the difference A - B' is formed explicitly, so X and X P D give
    exactly 1 up to rounding, never a square root of a rounding error.

    Returns
    -------
    float
        A **similarity** in [0, 1].

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> H = np.maximum(rng.normal(size=(10, 4, 3, 3)), 0.0)
    >>> paper_grelu_procrustes_similarity(H, 5.0 * H[:, ::-1])
    1.0
    """
    return IntertwinerProcrustes("positive_scaled_permutation", score_method="paper") \
        .fit_score(H1, H2)


def paper_ortho_procrustes_similarity(H1, H2):
    """The paper's orthogonal Procrustes baseline 1 - d (pnnl/modelsym ``ortho_procrustes``).

    H1, H2 are (N, C) or (N, C, H, W) features, padded and upsampled as in
    :func:`paper_grelu_procrustes_similarity`; each whole tensor is scaled to unit Frobenius
    norm (no centring) and, with the rows being samples and positions::

        d = sqrt( ||H1||^2 + ||H2||^2 - 2 ||H1' H2||_* ) / 2        (= sqrt(2 - 2 ||H1'H2||_*) / 2)

    Computed as d = ||H1 - H2 R||_F / 2 with R the optimal rotation
    (:func:`simmetrics.metrics.shape.procrustes_rotation`), which equals the formula above (the
    minimum of ||H1 - H2 R||^2 over orthogonal R is the radicand) but is accurate where d is
    near 0. The paper's code evaluates the radicand: where H2 = H1 Q (Q orthogonal) it is
    2 - 2 ||H1'H2||_* = 2 - 2 (1 + rounding error), a tiny number of either sign, and its
    unclipped square root is NaN when the rounding falls below 0 (the NaN of the reference
    value for X and X Q); the correct value there is 1.

    Returns
    -------
    float
        A **similarity** in [0, 1].

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> H = rng.normal(size=(50, 6))
    >>> Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    >>> round(paper_ortho_procrustes_similarity(H, 3.0 * H @ Q), 12)
    1.0
    """
    A, B, layout = _prepare_conv(H1, H2, None, "nchw")
    A, B = check_pair(A, B, layout=layout)
    for name, M in (("H1", A), ("H2", B)):
        if not M.any():
            raise ValueError(f"{name} is all zeros, so its Frobenius normalisation is undefined")
    width = max(A.shape[1], B.shape[1])
    A = zero_pad(A, width) / np.linalg.norm(A)
    B = zero_pad(B, width) / np.linalg.norm(B)
    return float(1.0 - 0.5 * np.linalg.norm(A - B @ procrustes_rotation(A, B)))


def paper_grelu_cka(H1, H2, estimator="max"):
    """The paper's G_ReLU-CKA (pnnl/modelsym ``wreath_cka``) of (N, C) or (N, C, H, W)
    features: per channel centred and L2-normalised over samples and positions, kernel
    K_ab = max_c sum_{h,w} H[a, c, h, w] H[b, c, h, w] (or the median over c) with zero
    diagonal, then CKA with the unbiased HSIC.

    Equal to ``IntertwinerCKA("relu", estimator, positions="sum", layout="nchw")`` for 4-D input
    (which this function calls); the spatial sizes of H1 and H2 may differ.

    Returns
    -------
    float
        A **similarity** in [-1, 1].

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> H = np.maximum(rng.normal(size=(20, 3, 2, 2)), 0.0)
    >>> round(paper_grelu_cka(H, 2.0 * H[:, [2, 0, 1]]), 12)
    1.0
    """
    # the number of axes only: a tensor is not copied off its device for it
    ndim = max(H.ndim if is_tensor(H) and hasattr(H, "ndim") else np.ndim(as_float_array(H, name))
               for H, name in ((H1, "H1"), (H2, "H2")))
    layout = "nchw" if ndim == 4 else None
    metric = IntertwinerCKA("positive_scaled_permutation", estimator=estimator,
                            positions="sum", layout=layout)
    return metric.fit_score(H1, H2)
