"""G_sigma-CKA: :class:`IntertwinerCKA`, CKA (unbiased HSIC) with the paper's
max-over-channels kernel (Godfrey et al. 2022, "G_ReLU-CKA"), for the intertwiner group of any
activation.

Here: the channel normalisation (centring, per-channel unit norms), the identity activation's
whitened kernel, the device route of torch tensors and the metric class; the tiled kernel and
the memory estimate are in :mod:`simmetrics.metrics.intertwiner_kernel`.
"""

import numpy as np

from .._core.backend import get_backend, is_tensor, like, tensor_from_numpy, to_numpy
from .._core.linalg import center, frobenius_norm, pow2_rescale
from .._core.memory import check_memory, format_bytes, get_memory_budget
from .._core.params import Integral, Interval, Options
from .._core.registry import register
from .._core.validation import (
    check_matching_shapes,
    check_representation,
    shape_of,
)
from ..base import Metric, param_dependent
from ..moments import check_nonconstant_array
from .hsic import UnbiasedGram, cka_from_hsic, u_centred
from .intertwiner_alignment import reciprocal
from .kernel_cka_gradient import gram_cka
from .intertwiner_groups import REFERENCE, SCALED, group_subgroups, intertwiner_group_name
from .intertwiner_kernel import (
    CKA_ESTIMATORS,
    channel_kernel,
    check_chunk_size,
    kernel_formula,
    cka_peak_bytes,
    tile_elements,
)

__all__ = ["IntertwinerCKA"]

_CKA_POSITIONS = ("rows", "sum")


def _cka_kernel_group(group):
    """The group whose invariances the kernel has: the per-channel products are even in each
    channel, so sign flips always cancel; scalings cancel where channels are normalised."""
    if group in SCALED:
        return "scaled_permutation"
    if group == "invertible_linear":
        return "invertible_linear"
    return "signed_permutation"


def _cka_invariances(self):
    group = _cka_kernel_group(intertwiner_group_name(self.activation))
    return frozenset(group_subgroups(group) | {"isotropic_scaling", "translation"})


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


def _rows(H):
    """Features (n, C, P) as the (n P, C) matrix of their rows, sample by sample."""
    n, C, P = H.shape
    return get_backend(H).permute(H, (0, 2, 1)).reshape(n * P, C)


def _unit_channels(rows):
    """Every column of ``rows`` divided by its L2 norm (silent columns stay 0), numpy or torch.

    Each column is first multiplied by the power of two that brings its largest magnitude into
    [0.5, 1) (exact, as :func:`column_squares` does), and then divided by its norm, which lies
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
    return scaled * like(reciprocal(norms), rows)


def _column_space(Xc):
    """An orthonormal basis of the column space of ``Xc``, by the rank rule of
    :func:`simmetrics._core.linalg.orthonormal_basis` (singular values below max(n, d) eps s_max
    dropped); the backend's thin SVD (torch's for a tensor, on its device)."""
    U, s, _ = get_backend(Xc).svd(Xc)
    rtol = max(Xc.shape) * np.finfo(np.float64).eps
    rank = int((s > rtol * s[0]).sum()) if s.shape[0] else 0
    return U[:, :rank]


def _cka_features(H, group):
    """Centre each channel over samples and positions, then normalise: per channel for groups
    with a per-neuron scale, globally (which CKA ignores) otherwise. numpy or torch."""
    n, C, P = H.shape
    # two-pass centring of every channel over the rows (samples and positions), on
    # power-of-two rescaled data (exact), so that squares neither overflow nor underflow
    rows = center(pow2_rescale(_rows(H)))
    if group in SCALED:
        rows = _unit_channels(rows)
    else:
        total = frobenius_norm(rows)
        rows = rows / total if total > 0.0 else rows
    return get_backend(rows).permute(rows.reshape(n, P, C), (0, 2, 1))


def _intertwiner_kernel(H, group, estimator, chunk_size):
    """The n x n kernel of IntertwinerCKA for features H (n, C, P), numpy or torch."""
    n = H.shape[0]
    if group == "invertible_linear":
        U = _column_space(center(pow2_rescale(_rows(H))))
        F = U.reshape(n, -1)  # per sample: its whitened rows, concatenated
        K = F @ F.T
        get_backend(K).zero_diagonal(K)
        return K
    return channel_kernel(_cka_features(H, group), estimator, chunk_size)


#: Whether IntertwinerCKA computes CPU input (numpy arrays, CPU tensors) with torch's CPU
#: kernels (numpy arrays wrapped by ``torch.from_numpy``, no copy) rather than numpy's. Off
#: (the measurements behind this decision: benchmarks/README.md, "IntertwinerCKA on torch's
#: CPU kernels"). The same code runs either way (the tests run both).
_TORCH_ON_CPU = False


def _same_place(a, b):
    """Two :class:`~simmetrics.metrics.hsic.UnbiasedGram` states whose arrays live in one
    place: where they differ (pairwise over representations on different devices), the CPU one
    (numpy or torch) is copied to the other's device."""
    def where(state):
        return get_backend(state.K).device  # None for numpy

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
    3. CKA with the unbiased HSIC of Song et al. 2012
       (:func:`simmetrics.metrics.hsic.hsic_unbiased`, evaluated by
       :class:`simmetrics.metrics.hsic.UnbiasedGram`):
       HSIC1(K, L) / sqrt(HSIC1(K, K) HSIC1(L, L)). The paper's code builds K with a zero
       diagonal and its HSIC1 does not zero it again; the unbiased HSIC here zeroes diagonals
       itself, so the two agree. Each kernel is first U-centred entry by entry
       (:func:`simmetrics.metrics.hsic.u_centred`; the unbiased HSIC is unchanged in exact
       arithmetic), which keeps the digits the sums formula loses when one stimulus dominates.
       The self-terms have the rounding floor of :func:`simmetrics.metrics.hsic.hsic_self`.

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
    :class:`simmetrics.metrics.hsic.UnbiasedGram` take numpy arrays and tensors); the device
    runs the same code as numpy does, and the values agree to about 1e-13 (for one position the
    maxima and medians are the same bits). The identity activation's whitened kernel uses
    torch's SVD on the device.

    CPU input (numpy arrays, CPU tensors) is computed with numpy, not with torch's CPU
    kernels (the measurements behind this choice are in benchmarks/README.md,
    "IntertwinerCKA on torch's CPU kernels").

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
    reference = REFERENCE + "; unbiased HSIC: Song et al. 2012"
    #: torch tensors on an accelerator with float64 arithmetic stay there (kernels and HSIC
    #: on the device); CPU tensors and everything else are read as float64 numpy arrays
    device_policy = "accelerator"

    _parameter_constraints = {
        "activation": [str, callable],
        "estimator": [Options(CKA_ESTIMATORS)],
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
        if self.estimator not in CKA_ESTIMATORS:
            raise ValueError(f"estimator must be one of {CKA_ESTIMATORS}, got {self.estimator!r}")
        if self.positions not in _CKA_POSITIONS:
            raise ValueError(f"positions must be one of {_CKA_POSITIONS}, got {self.positions!r}")
        check_chunk_size(self.chunk_size)
        return intertwiner_group_name(self.activation)

    # -- validation: numpy on the CPU, torch tensors kept on their accelerator --------------
    def _validate(self, X, Y):
        """Both inputs through :meth:`_validated`; where one stays on its device
        (``device_policy``), the other joins it there; then the sample counts must agree."""
        self._check_params()
        A, B = self._validated(X, "X"), self._validated(Y, "Y")
        nx = get_backend(A, B)
        A, B = (M if nx.owns(M) else nx.asarray(M) for M in (A, B))
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

    def _validate_one(self, A, name):
        """One input as the metric reads it (:meth:`_validated`), refused with
        :class:`simmetrics._core.memory.MemoryBudgetError` when its kernel would exceed the memory
        budget (:func:`simmetrics.pairwise` prepares one kernel per representation)."""
        M = self._validated(A, name)
        self._check_memory((A, M))
        return M

    def _check_memory(self, *inputs):
        """Refuse, before any kernel is built, work whose estimated peak exceeds the memory
        budget (:func:`simmetrics._core.memory.check_memory`); ``inputs`` are (as given, validated)
        pairs whose kernels are held at once. The message names the rows, whether they come
        from positions, and the alternatives."""
        group = intertwiner_group_name(self.activation)
        shapes = [_kernel_input_shape(raw, M) for raw, M in inputs]
        nx = get_backend(*(M for _, M in inputs))
        torch_like = nx.is_torch
        # the default tiles of the first input of that backend (tensors: its device)
        tiles = tile_elements(next((M for _, M in inputs if nx.owns(M)), inputs[0][1]))

        def peak(summed):
            return cka_peak_bytes(shapes, summed, group, self.estimator, self.chunk_size,
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

    def _validated(self, A, name):
        """One input as the metric reads it: the (n, d) matrix of rows, or, with
        ``positions="sum"``, an (n, C, P) array that keeps each sample's positions together.

        The package's one validation path
        (:func:`simmetrics._core.validation.check_representation`) with this class's
        ``device_policy``: a torch tensor on an accelerator stays a float64 tensor there,
        everything else becomes a float64 numpy array; bad input gets the standard messages."""
        self._check_params()
        summed = self.positions == "sum"
        min_samples = 1 if summed else self.min_samples
        M = check_representation(A, name, layout=self.layout, min_samples=min_samples,
                                 policy=self.device_policy)
        if not summed:
            return M
        n = shape_of(A)[0]
        if n < self.min_samples:
            raise ValueError(
                f"{name} has {n} samples, but this estimator needs at least {self.min_samples}"
            )
        # every layout orders the rows sample by sample
        nx = get_backend(M)
        return nx.contiguous(nx.permute(M.reshape(n, -1, M.shape[1]), (0, 2, 1)))

    # -- the value: one kernel per input, then the HSIC of the pair -------------------------
    def _partial_fit(self, A, name):
        """The kernel of one validated input, with its HSIC sums
        (:class:`simmetrics.metrics.hsic.UnbiasedGram`), where the input lives."""
        group = self._check_params()
        H = A if A.ndim == 3 else A[:, :, None]
        check_nonconstant_array(_rows(H), name)
        if _TORCH_ON_CPU and not is_tensor(H):  # backend site: the CPU-kernel switch
            H = tensor_from_numpy(H)
        K = _intertwiner_kernel(H, group, self.estimator, self.chunk_size)
        return UnbiasedGram(u_centred(K))

    # -- gradients (simmetrics.functional) ------------------------------------------------
    def _gradient_rows(self, X, Y, nx):
        """The rows of :meth:`Metric._gradient_rows`; with ``positions="sum"`` each input as
        the (n, C, P) array :meth:`_validated` makes (a sample's positions together)."""
        rows = super()._gradient_rows(X, Y, nx)
        if self.positions == "rows":
            return rows
        return tuple(nx.permute(M.reshape(shape_of(A)[0], -1, M.shape[1]), (0, 2, 1))
                     for A, M in zip((X, Y), rows))

    def _gradient_formula(self, X, Y, nx):
        """The value as a differentiable expression of the rows (or (n, C, P) features):
        both kernels by :func:`simmetrics.metrics.intertwiner_kernel.kernel_formula`, which
        holds fixed the channel each entry's maximum (or median) selects (locally constant:
        Danskin's theorem for a maximum over finitely many channels), and their CKA with the
        unbiased HSIC (:func:`simmetrics.metrics.kernel_cka_gradient.gram_cka`). A silent
        channel (constant over the rows) gets zero gradient for the groups that normalise
        channels (ReLU, abs, x^d): there the value jumps under any perturbation of it. The
        identity activation needs linearly independent centred columns. Runs on the inputs'
        device for accelerator tensors (``device_policy``)."""
        group = intertwiner_group_name(self.activation)
        K, L = (kernel_formula(A, group, self.estimator, self.chunk_size, nx) for A in (X, Y))
        return gram_cka(K, L, True, nx)

    def _finalize_fit_score(self, a, b):
        a, b = _same_place(a, b)
        # self-terms with hsic_self's floor: a kernel that the U-centring removes (the
        # whitened kernel with n - 1 <= d) gives rounding noise, returned as 0 so CKA raises
        return cka_from_hsic(a.hsic(b), a.self_hsic, b.self_hsic, "unbiased")
