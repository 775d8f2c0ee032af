"""Intertwiner-invariant metrics: G_sigma-Procrustes and G_sigma-CKA.

Godfrey, Brown, Emerson, Kvinge, "On the Symmetries of Deep Learning Models and their Internal
Representations", NeurIPS 2022 (arXiv 2205.14258). The symmetries of a network with activation
sigma act on a hidden representation X (n_samples x n_neurons) as X -> X g' with g in the
*intertwiner group* G_sigma (:func:`simmetrics.intertwiners.intertwiner_group`): positive scaled
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

from ._linalg import center, frobenius_norm, orthonormal_basis, pow2_rescale
from ._registry import register
from ._validation import (
    as_float_array,
    check_matching_shapes,
    check_nonconstant,
    check_pair,
    check_representation,
)
from .base import GROUP_NAMES, AlignmentMetric, Metric, param_dependent
from .cka import _on_accelerator
from .hsic import UnbiasedGram, cka_from_hsic
from .moments import (
    _colmax,
    _is_torch,
    _like,
    _numpy,
    _tensor_from_numpy,
    _torch_matrix,
    check_nonconstant_array,
    check_nonconstant_moments,
    spectrum_from_gram,
)
from .shape import (
    _assignment_from_cross,
    _cross_in_range,
    _distance_from_products,
    _pad2,
    _rotation_from_cross,
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
        Anything :func:`simmetrics.intertwiners.intertwiner_group` accepts (``"relu"``,
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
    from .intertwiners import intertwiner_group

    return intertwiner_group(activation).group.name


def _group_subgroups(name):
    from .groups import get_group

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
    return _signed_assignment_from_cross(_cross_in_range(A, B))


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


def _neuron_rms(X):
    """Root mean square of every column (neuron) of X (no overflow or underflow)."""
    squares, e = _column_squares(X)
    return np.ldexp(np.sqrt(squares / X.shape[0]), e)


def _reciprocal(s):
    """1 / s, with 0 where s == 0 (silent neurons stay silent)."""
    out = np.zeros_like(s)
    np.divide(1.0, s, out=out, where=s > 0.0)
    return out


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
    return A.permute(*axes) if _is_torch(A) else A.transpose(axes)


def _contiguous(A):
    return A.contiguous() if _is_torch(A) else np.ascontiguousarray(A)


def _empty(shape, like):
    """An uninitialised float64 array of the backend (and device) of ``like``."""
    if _is_torch(like):
        return _torch().empty(shape, dtype=_torch().float64, device=like.device)
    return np.empty(shape)


def _outer_into(a, b, out):
    if _is_torch(out):
        _torch().outer(a, b, out=out)
    else:
        np.multiply.outer(a, b, out=out)


def _maximum_into(a, b):
    """a <- max(a, b), elementwise and in place."""
    if _is_torch(a):
        _torch().maximum(a, b, out=a)
    else:
        np.maximum(a, b, out=a)


def _matmul_into(a, b, out):
    if _is_torch(out):
        _torch().matmul(a, b, out=out)
    else:
        np.matmul(a, b, out=out)


def _channel_reduce(block, estimator, axis, mid):
    """The maximum along ``axis``, or the lower median: the element of rank ``mid`` (from 0) of
    the sorted values, ``mid = (C - 1) // 2`` (torch's ``median`` convention). Both select one
    of the values, so numpy and torch give the same bits."""
    if _is_torch(block):
        return block.amax(axis) if estimator == "max" else block.median(axis).values
    if estimator == "max":
        return block.max(axis=axis)
    return np.take(np.partition(block, mid, axis=axis), mid, axis=axis)


def _triu(A, k=0):
    return _torch().triu(A, k) if _is_torch(A) else np.triu(A, k)


def _zero_diagonal(K):
    if _is_torch(K):
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
    top = _numpy(_colmax(abs(rows)))
    e = np.where(top > 0.0, np.frexp(top)[1], 0)
    first = np.minimum(-e, 1023)  # 2**first is a float; the rest (subnormal columns) next
    scaled = rows * _like(np.ldexp(1.0, first), rows)
    if np.any(first != -e):
        scaled = scaled * _like(np.ldexp(1.0, -e - first), rows)
    norms = np.sqrt(np.atleast_1d(_numpy((scaled * scaled).sum(0))))
    return scaled * _like(_reciprocal(norms), rows)


def _column_space(Xc):
    """An orthonormal basis of the column space of ``Xc``, by the rank rule of
    :func:`simmetrics._linalg.orthonormal_basis` (singular values below max(n, d) eps s_max
    dropped); torch's SVD for a tensor, on its device."""
    if not _is_torch(Xc):
        return orthonormal_basis(Xc)[0]
    U, s, _ = _torch().linalg.svd(Xc, full_matrices=False)
    rtol = max(Xc.shape) * np.finfo(np.float64).eps
    rank = int((s > rtol * s[0]).sum()) if s.numel() else 0
    return U[:, :rank]


def _tile_elements(H):
    """Default tile size: :data:`_TILE_ELEMENTS` on the CPU, :data:`_DEVICE_TILE_ELEMENTS` on
    an accelerator."""
    on_cpu = not _is_torch(H) or H.device.type == "cpu"
    return _TILE_ELEMENTS if on_cpu else _DEVICE_TILE_ELEMENTS


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
    if _is_torch(H):
        H = H.detach().to(_torch().float64)
    if H.ndim == 2:
        H = H[:, :, None]
    n, C, P = H.shape
    tile_elements = _tile_elements(H)
    if chunk_size:
        shape = (chunk_size, chunk_size)
    elif P == 1 and estimator == "max":
        shape = _NUMPY_STRIP if not _is_torch(H) else (int(np.sqrt(tile_elements / 4)),) * 2
    else:
        shape = (max(1, int(np.sqrt(tile_elements / C))),) * 2
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
    if self.score_method == "angular":
        return (0.0, np.pi)
    normalised = intertwiner_group_name(self.activation) in _SCALED | {"invertible_linear"}
    if self.score_method == "paper":
        return (0.0, 1.0) if normalised else (-np.inf, 1.0)
    return (0.0, 2.0) if normalised else (0.0, np.inf)


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
         neuron by its rms (silent neurons stay 0); this removes every D > 0;
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
    scaling multiplies both sides by m), in [0, 1] (in [1 - 1/sqrt 2, 1] for non-negative
    features). Unlike :class:`simmetrics.ShapeMetric` (netrep's convention), the Euclidean form
    is divided by sqrt(m n), so it does not grow with the number of stimuli; for the groups with
    a per-neuron scale it lies in [0, 2] on the fitting data.

    No centring by default: translations are not in G_sigma, and a ReLU network's
    representation is not translation invariant (``center=True`` subtracts the fitted neuron
    means first and adds translation to the invariances).

    Fit on training stimuli, score on held-out ones: ``fit`` learns the means, the per-neuron
    scales (or whiteners) of X and Y and the discrete alignment; ``score`` and ``transform``
    apply them to the given stimuli (the declared bounds hold on the fitting data).

    Conv features: pass ``layout`` ("nchw", ...); every sample and position is a row, as in the
    paper. With ``score_method="paper"`` a 4-D input without ``layout`` is read as
    (N, C, H, W), the paper's convention. Maps of different spatial sizes (4-D, "nchw" or
    "nhwc") are matched first by nearest-neighbour upsampling of the smaller by an integer
    factor (:func:`upsample_to_match`).

    Parameters
    ----------
    activation : str, (str, number), torch.nn.Module, callable, default "relu"
        The activation whose intertwiner group is used
        (:func:`simmetrics.intertwiners.intertwiner_group`), or a group name from
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
    def _canonicalize(self, Ac, W):
        return Ac * W if W.ndim == 1 else Ac @ W

    def _whitener(self, Ac):
        """The canonicalising map: a vector (per-neuron factor) or a matrix (whitening)."""
        if self.group_ == "invertible_linear":
            _, s, Vt = orthonormal_basis(Ac)
            return _whitening_map(s, Vt, Ac.shape[0])
        if self.group_ in _SCALED:
            return _reciprocal(_neuron_rms(Ac))
        return np.ones(Ac.shape[1])

    def _fit(self, X, Y):
        self.group_ = self._check_params()
        check_nonconstant(X, "X")
        check_nonconstant(Y, "Y")
        if self.center:
            self.mean_x_, self.mean_y_ = X.mean(axis=0), Y.mean(axis=0)
            # the alignment is learned on accurately centred data (two passes,
            # simmetrics._linalg.center): with large means, X - mean_x_ keeps a constant
            # rounding residual that the whitening would take for a direction of the data
            Xc, Yc = center(X), center(Y)
        else:
            self.mean_x_, self.mean_y_ = np.zeros(X.shape[1]), np.zeros(Y.shape[1])
            Xc, Yc = X, Y
        self._wx = self._whitener(Xc)
        self._wy = self._whitener(Yc)
        width = max(X.shape[1], Y.shape[1])
        A = zero_pad(self._canonicalize(Xc, self._wx), width)
        B = zero_pad(self._canonicalize(Yc, self._wy), width)
        if self.group_ == "invertible_linear":
            self._rotation = procrustes_rotation(A, B)
        elif self.group_ in _SIGNED:
            self._perm, self._signs = optimal_signed_permutation(A, B)
        else:
            self._perm, self._signs = optimal_permutation(A, B), np.ones(width)
        self._describe_alignment(X.shape[1], Y.shape[1])

    def _describe_alignment(self, nx, ny):
        """The user-facing attributes: the fitted group element and its parts."""
        if self.group_ == "invertible_linear":
            rx, ry = self._wx.shape[1], self._wy.shape[1]
            # X ~ c(X) W_x^+ and c(X) ~ Y W_y R: the inverse of the whitening is pinv(W_x)
            self.alignment_ = self._wy @ self._rotation[:ry, :rx] @ np.linalg.pinv(self._wx)
            self.permutation_ = self.signs_ = self.scales_ = None
            return
        perm = self._perm[:nx].copy()
        matched = perm < ny
        perm[~matched] = -1
        scales = np.zeros(nx)
        idx = np.flatnonzero(matched)
        # c(X)[:, i] = X[:, i] wx_i  ~  s_i Y[:, j] wy_j  =>  X[:, i] ~ s_i (wy_j / wx_i) Y[:, j]
        scales[idx] = self._wy[perm[idx]] * _reciprocal(self._wx[idx])
        self.permutation_ = perm
        self.signs_ = self._signs[:nx].copy()
        self.scales_ = scales
        self.alignment_ = np.zeros((ny, nx))
        self.alignment_[perm[idx], idx] = self.signs_[idx] * scales[idx]

    # -- alignment and score ---------------------------------------------------------------
    def _transform(self, X, Y):
        # the fitted widths, from the fitted maps (set inside fit, before n_features_x_)
        width = max(self._wx.shape[0], self._wy.shape[0])
        A = zero_pad(self._canonicalize(X - self.mean_x_, self._wx), width)
        B = zero_pad(self._canonicalize(Y - self.mean_y_, self._wy), width)
        if self.group_ == "invertible_linear":
            return A, B @ self._rotation
        return A, B[:, self._perm] * self._signs

    def _score(self, X, Y):
        self._check_params()
        check_nonconstant(X, "X")
        check_nonconstant(Y, "Y")
        A, B = self._transform(X, Y)
        if self.score_method == "angular":
            return angular_distance(A, B)
        rms = frobenius_norm(A - B) / np.sqrt(A.size)  # no overflow or underflow at 1e+-300
        return rms if self.score_method == "euclidean" else 1.0 - 0.5 * rms

    # -- streaming (simmetrics.stream_score): fit and score from second moments --------------
    # The canonical forms, the assignment and the distance need only the (uncentred, or
    # centred with the fitted means) X'X, Y'Y and X'Y. The whole-data route above is kept for
    # whole data: the whitening of the identity group takes the SVD of the data (better
    # conditioned than the eigen-decomposition of X'X), and its angle is accurate near 0.
    def _batch_layout(self, X, Y):
        """What ``_validate`` does before ``check_pair``, for one batch of a stream."""
        self._check_params()
        default_4d = "nchw" if self.score_method == "paper" else None
        return _prepare_conv(X, Y, self.layout, default_4d)

    def _whitener_from_moments(self, G, n):
        if self.group_ == "invertible_linear":
            return _whitening_map(*spectrum_from_gram(G, n), n)
        if self.group_ in _SCALED:
            return _reciprocal(np.sqrt(np.diag(G) / n))  # the rms of every neuron
        return np.ones(G.shape[0])

    def _canonical_moments(self, S):
        """||c(X)||^2, ||c(Y)||^2 and c(X)'c(Y) (zero-padded to the common width)."""
        wx, wy = self._wx, self._wy
        if wx.ndim == 1:
            aa = float(np.sum(wx**2 * np.diag(S.x.gram)))
            bb = float(np.sum(wy**2 * np.diag(S.y.gram)))
            M = wx[:, None] * S.cross * wy[None, :]
        else:
            aa = float(np.trace(wx.T @ S.x.gram @ wx))
            bb = float(np.trace(wy.T @ S.y.gram @ wy))
            M = wx.T @ S.cross @ wy
        width = max(S.x.width, S.y.width)
        return aa, bb, _pad2(M, width, width)

    def _checked_moments(self, stats):
        self._check_params()
        S = stats.to_numpy()
        check_nonconstant_moments(S.x, "X")
        check_nonconstant_moments(S.y, "Y")
        return S

    def _fit_from_moments(self, stats):
        self.group_ = self._check_params()
        S = self._checked_moments(stats)
        if self.center:
            self.mean_x_, self.mean_y_ = S.x.mean, S.y.mean
        else:
            self.mean_x_, self.mean_y_ = np.zeros(S.x.width), np.zeros(S.y.width)
        S = S.shifted(self.mean_x_, self.mean_y_)
        self._wx = self._whitener_from_moments(S.x.gram, S.n)
        self._wy = self._whitener_from_moments(S.y.gram, S.n)
        M = self._canonical_moments(S)[2]
        if self.group_ == "invertible_linear":
            self._rotation = _rotation_from_cross(pow2_rescale(M.T))
        elif self.group_ in _SIGNED:
            self._perm, self._signs = _signed_assignment_from_cross(M)
        else:
            self._perm, self._signs = _assignment_from_cross(pow2_rescale(M)), np.ones(len(M))
        self._describe_alignment(S.x.width, S.y.width)

    def _score_from_moments(self, stats):
        S = self._checked_moments(stats).shifted(self.mean_x_, self.mean_y_)
        aa, bb, M = self._canonical_moments(S)
        if self.group_ == "invertible_linear":
            ab = float(np.sum(M * self._rotation.T))  # <A, B R> = tr(A'B R)
        else:
            ab = float(np.sum(M[np.arange(len(M)), self._perm] * self._signs))
        if self.score_method == "angular":
            return _distance_from_products(aa, bb, ab, "angular")
        rms = _distance_from_products(aa, bb, ab, "euclidean") / np.sqrt(S.n * len(M))
        return rms if self.score_method == "euclidean" else 1.0 - 0.5 * rms


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
#: measured at N = 10,000, C = 64 on 2 cores, torch (2 threads) took 4.3 s against numpy's
#: 8.0 s for one position and 19.5 s against 22.3 s for 4 x 4 positions on an idle machine,
#: but 62 to 150 s while another process kept a core busy (numpy's single-threaded kernels
#: do not slow down that way). The same code runs either way (the tests run both).
_TORCH_ON_CPU = False


def _on_device_path(A):
    """Whether IntertwinerCKA keeps ``A`` where it is: a torch tensor on an accelerator with
    float64 arithmetic (CUDA and the like). MPS has no float64, so MPS tensors take the CPU
    path (copied to the CPU, as every metric's validation does). The tests send CPU tensors
    down this path by patching this function."""
    return _on_accelerator(A) and A.device.type != "mps"


def _same_place(a, b):
    """Two :class:`~simmetrics.hsic.UnbiasedGram` states whose arrays live in one place: where
    they differ (pairwise over representations on different devices), the CPU one (numpy or
    torch) is copied to the other's device."""
    def where(state):
        return state.K.device if _is_torch(state.K) else None

    if where(a) == where(b):
        return a, b
    if where(b) is None or where(b).type == "cpu":
        return a, UnbiasedGram(_like(b.K, a.K))
    return UnbiasedGram(_like(a.K, b.K)), b


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
    3. CKA with the unbiased HSIC of Song et al. 2012 (:func:`simmetrics.hsic.hsic_unbiased`,
       evaluated by :class:`simmetrics.hsic.UnbiasedGram`):
       HSIC1(K, L) / sqrt(HSIC1(K, K) HSIC1(L, L)). The paper's code builds K with a zero
       diagonal and its HSIC1 does not zero it again; the unbiased HSIC here zeroes diagonals
       itself, so the two agree. The self-terms have the rounding floor of
       :func:`simmetrics.hsic.hsic_self`.

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
    :class:`simmetrics.hsic.UnbiasedGram` take numpy arrays and tensors); the device runs the
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
        A, B = self._validate_one(X, "X", device), self._validate_one(Y, "Y", device)
        if self.positions == "rows":
            check_matching_shapes(tuple(A.shape), tuple(B.shape))
        elif A.shape[0] != B.shape[0]:
            raise ValueError(
                "X and Y must have the same number of samples: "
                f"X has {A.shape[0]}, Y has {B.shape[0]}"
            )
        return A, B

    def _validate_one(self, A, name, device=None):
        """One input as the metric reads it: the (n, d) matrix of rows, or, with
        ``positions="sum"``, an (n, C, P) array that keeps each sample's positions together.

        A torch tensor on an accelerator, or any input when ``device`` is given (the partner
        of such a tensor), becomes a float64 tensor on that device, checked there
        (:func:`simmetrics.moments.check_batch_pair`'s checks); everything else becomes a
        float64 numpy array (:func:`simmetrics._validation.check_representation`). Bad input
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
            if not _is_torch(A):
                A = _tensor_from_numpy(as_float_array(A, name))
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
    def _prepare(self, A, name):
        """The kernel of one validated input, with its HSIC sums
        (:class:`simmetrics.hsic.UnbiasedGram`), where the input lives."""
        group = self._check_params()
        H = A if A.ndim == 3 else A[:, :, None]
        check_nonconstant_array(_rows(H), name)
        if _TORCH_ON_CPU and not _is_torch(H):
            H = _tensor_from_numpy(H)
        return UnbiasedGram(_intertwiner_kernel(H, group, self.estimator, self.chunk_size))

    def _fit_score_prepared(self, a, b):
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
    (:func:`simmetrics.shape.procrustes_rotation`), which equals the formula above (the
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
    ndim = max(H.ndim if _is_torch(H) and hasattr(H, "ndim") else np.ndim(as_float_array(H, name))
               for H, name in ((H1, "H1"), (H2, "H2")))
    layout = "nchw" if ndim == 4 else None
    metric = IntertwinerCKA("positive_scaled_permutation", estimator=estimator,
                            positions="sum", layout=layout)
    return metric.fit_score(H1, H2)
