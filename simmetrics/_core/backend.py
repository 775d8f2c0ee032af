"""The one place where numpy arrays and torch tensors differ.

Every metric, the moments, streaming and pairwise compute through a *backend*: an object whose
methods spell one operation for one array library, chosen once from the inputs with
:func:`get_backend` (POT's ``get_backend(*arrays)`` is the model). Code outside this module
writes ``nx = get_backend(X, Y)`` and then ``nx.row_sq(Z)``, ``nx.concat((A, B), axis=1)``,
``nx.to_numpy(G)``, and never asks which library it holds.

- :class:`NumpyBackend`: numpy arrays (float64 on the host).
- :class:`TorchBackend`: torch tensors, on the device of the first tensor among the inputs;
  values it creates are float64 on that device. torch is imported only when a tensor is seen, so
  ``import simmetrics`` does not import torch.

Where a metric runs is declared per class by ``Metric.device_policy`` (see
:class:`simmetrics.Metric`): ``"host"`` metrics read every input as a float64 numpy array (a
tensor is copied to the host once, at validation); ``"accelerator"`` metrics keep a tensor that
lives on an accelerator with float64 arithmetic where it is and compute there through
:class:`TorchBackend`. :func:`on_accelerator` is that test.

Examples
--------
>>> import numpy as np
>>> nx = get_backend(np.ones((2, 3)))
>>> nx.name, nx.row_sq(np.ones((2, 3))).tolist()
('numpy', [3.0, 3.0])
>>> import torch
>>> tx = get_backend(np.ones(2), torch.zeros(2))
>>> tx.name, tx.asarray([1, 2]).dtype
('torch', torch.float64)
"""

import numpy as np

__all__ = [
    "NumpyBackend",
    "TorchBackend",
    "get_backend",
    "is_tensor",
    "on_accelerator",
    "on_float64_accelerator",
    "to_numpy",
    "tensor_from_numpy",
    "like",
    "DEVICE_POLICIES",
    "keeps",
    "host_array",
]


def is_tensor(A):
    """Whether ``A`` is a torch object (tested by its type's module, so torch is not imported
    for numpy input)."""
    return type(A).__module__.startswith("torch")


def on_accelerator(A):
    """Whether ``A`` is a torch tensor on a device other than the CPU. "meta" tensors hold no
    values and count as not (their validation says so)."""
    device = getattr(getattr(A, "device", None), "type", "cpu")
    return is_tensor(A) and device not in ("cpu", "meta")


def on_float64_accelerator(A):
    """:func:`on_accelerator`, excluding Apple's MPS, which has no float64 arithmetic (MPS
    tensors are copied to the host like CPU ones)."""
    return on_accelerator(A) and A.device.type != "mps"


def to_numpy(A):
    """A numpy float64 array (a Python float for 0-d values, None for None) from a numpy value
    or a torch tensor on any device (detached)."""
    if A is None:
        return None
    if is_tensor(A):
        A = A.detach().cpu().numpy()
    A = np.asarray(A, dtype=np.float64)
    return float(A) if A.ndim == 0 else A


def tensor_from_numpy(A):
    """A CPU tensor sharing the memory of the numpy array ``A`` (a copy where ``A`` is not
    writeable or not contiguous, which torch's wrapper does not support)."""
    import torch

    A = np.ascontiguousarray(A)
    return torch.from_numpy(A if A.flags.writeable else A.copy())


def like(value, ref):
    """``value`` (array, tensor or number) as float64 in the backend and on the device of
    ``ref``."""
    return get_backend(ref).asarray(value)


def get_backend(*arrays):
    """The backend of ``arrays``: :class:`TorchBackend` on the first tensor's device if any of
    them is a torch tensor, else :class:`NumpyBackend`. None entries are ignored.

    Examples
    --------
    >>> get_backend(np.zeros(3), None).name
    'numpy'
    """
    for A in arrays:
        if is_tensor(A) and hasattr(A, "device"):
            return TorchBackend(A.device)
    return NUMPY


#: The values of ``Metric.device_policy``: where a metric computes on a torch tensor.
#: "host": on the host, in numpy (the tensor is copied once); "accelerator": a tensor on an
#: accelerator with float64 arithmetic stays on its device, other input goes to the host;
#: "tensor": every tensor stays on its device, the CPU included (the streaming statistics).
DEVICE_POLICIES = ("host", "accelerator", "tensor")


def keeps(X, policy):
    """Whether a metric with ``device_policy`` ``policy`` computes on ``X`` where it lives
    (through :class:`TorchBackend`) instead of on a host copy."""
    if policy not in DEVICE_POLICIES:
        raise ValueError(f"device_policy must be one of {DEVICE_POLICIES}, got {policy!r}")
    if policy == "accelerator":
        return on_float64_accelerator(X)
    # "meta" tensors hold no values: they take the host route, whose validation says so
    return policy == "tensor" and is_tensor(X) and getattr(X, "device", None) is not None \
        and X.device.type != "meta"


def host_array(X, name):
    """A torch tensor as a numpy array on the host (detached; half precision promoted to
    float32), after the checks that only a tensor needs, each raising a ``TypeError`` that
    names ``name``; any other input is returned as it is.

    Examples
    --------
    >>> import torch
    >>> host_array(torch.ones(2, dtype=torch.float16), "X").dtype
    dtype('float32')
    >>> host_array(torch.ones(2, dtype=torch.bool), "Y")
    Traceback (most recent call last):
    ...
    TypeError: Y has boolean dtype; expected real numbers
    """
    if not is_tensor(X):
        return X
    import torch

    T = TorchBackend.checked(X, name)
    if T.dtype in (torch.float16, torch.bfloat16):
        T = T.to(torch.float32)
    return T.cpu().numpy()


class NumpyBackend:
    """numpy spelling of the operations the package needs (float64 on the host)."""

    name = "numpy"
    is_torch = False
    device = None

    def __repr__(self):
        return "NumpyBackend()"

    def __eq__(self, other):
        return isinstance(other, NumpyBackend)

    def __hash__(self):
        return hash("numpy")

    # -- conversion --------------------------------------------------------------------------
    def owns(self, A):
        """Whether ``A`` is already an array of this backend (and device)."""
        return isinstance(A, np.ndarray)

    def read(self, X, name):
        """``X`` (any array-like, a tensor included) as a float64 numpy array, its dtype
        checked (:func:`simmetrics._core.validation.as_float_array`)."""
        from .validation import as_float_array

        return as_float_array(X, name)

    def asarray(self, value):
        """``value`` as a float64 array of this backend."""
        return np.asarray(to_numpy(value) if is_tensor(value) else value, dtype=np.float64)

    def to_numpy(self, A):
        return to_numpy(A)

    def scalar(self, a):
        """A 0-d value as a Python float."""
        return float(a)

    def empty(self, shape):
        """An uninitialised float64 array."""
        return np.empty(shape)

    def detach_float64(self, A):
        """``A`` with no autograd history, as a kernel computes on it: a numpy array has none
        and is returned as it is (in its own dtype: validated input is float64 already); a
        tensor is detached and promoted to float64 on its device."""
        return A

    # -- shape -------------------------------------------------------------------------------
    def permute(self, A, axes):
        return A.transpose(axes)

    def moveaxis(self, A, source, destination):
        return np.moveaxis(A, source, destination)

    def contiguous(self, A):
        return np.ascontiguousarray(A)

    def concat(self, arrays, axis=0):
        return np.concatenate(arrays, axis=axis)

    def stack(self, arrays, axis=0):
        return np.stack(arrays, axis=axis)

    def triu(self, A, k=0):
        return np.triu(A, k)

    def tril(self, A, k=0):
        return np.tril(A, k)

    def zero_diagonal(self, K):
        """Set the diagonal of the square matrix ``K`` to 0, in place."""
        np.fill_diagonal(K, 0.0)

    # -- reductions --------------------------------------------------------------------------
    def row_sq(self, Z):
        """k_i = ||z_i||^2 for every row of ``Z``."""
        return np.einsum("ij,ij->i", Z, Z)

    def colmin(self, A):
        return A.min(axis=0)

    def colmax(self, A):
        return A.max(axis=0)

    def minimum(self, a, b):
        return np.minimum(a, b)

    def maximum(self, a, b):
        return np.maximum(a, b)

    def all_finite(self, A):
        """Whether every entry of ``A`` is finite, as a Python bool."""
        return bool(np.all(np.isfinite(A)))

    def inner(self, A, B):
        """sum_ij A_ij B_ij as a Python float, with no temporary of A's size."""
        return float(np.einsum("ij,ij->", A, B))

    def vector_norm(self, A):
        """The L2 norm of all entries, as a Python float."""
        return float(np.linalg.norm(A))

    def lower_median(self, A, axis):
        """The element of rank (m - 1) // 2 along ``axis`` (torch's ``median`` convention: one
        of the values, so both backends give the same bits)."""
        mid = (A.shape[axis] - 1) // 2
        return np.take(np.partition(A, mid, axis=axis), mid, axis=axis)

    def amax(self, A, axis):
        return A.max(axis=axis)

    def amin(self, A, axis):
        return A.min(axis=axis)

    # -- in-place products -------------------------------------------------------------------
    def outer_into(self, a, b, out):
        np.multiply.outer(a, b, out=out)

    def maximum_into(self, a, b):
        """a <- max(a, b), elementwise and in place."""
        np.maximum(a, b, out=a)

    def matmul_into(self, a, b, out):
        np.matmul(a, b, out=out)

    def unit_norm(self, A):
        """A <- A / ||A|| (the L2 norm of all entries), in place; the norm stays a value of this
        backend (a CUDA tensor divided by a host scalar is multiplied by its reciprocal)."""
        A /= np.linalg.norm(A)

    # -- decompositions ----------------------------------------------------------------------
    def qr_r(self, F):
        """The triangular factor R of F = QR (only R is formed)."""
        return np.linalg.qr(F, mode="r")

    def svd(self, A):
        """The thin SVD (U, s, Vt)."""
        return np.linalg.svd(A, full_matrices=False)

    def qr_r_on_triangle(self, T, rows):
        """The R of the QR decomposition of [T; rows] for an upper-triangular d x d ``T``, in
        O(rows d^2) (LAPACK's dtpqrt, the QR of a triangle stacked on rows), or None where the
        backend has no such routine or it fails (the caller then takes the full QR)."""
        from scipy.linalg import lapack

        out, _, _, info = lapack.dtpqrt(0, min(T.shape[1], 32), np.array(T), rows)
        return np.triu(out) if info == 0 else None

    # -- differentiable math (the gradient formulas of simmetrics.functional) -----------------
    # Operations that return values of this backend (never Python floats), so that a formula
    # written with them keeps torch's autograd history; numpy evaluates the same formula.
    def sqrt(self, a):
        return np.sqrt(a)

    def abs(self, a):
        return np.abs(a)

    def log(self, a):
        return np.log(a)

    def exp(self, a):
        return np.exp(a)

    def arccos(self, a):
        return np.arccos(a)

    def clip(self, a, lo=None, hi=None):
        return np.clip(a, lo, hi)

    def trace(self, A):
        return np.trace(A)

    def diag(self, A):
        """The diagonal of a matrix, or the diagonal matrix of a vector."""
        return np.diag(A)

    def eye(self, n):
        return np.eye(n)

    def svdvals(self, A):
        """The singular values of ``A`` (differentiable where they are distinct and nonzero)."""
        return np.linalg.svd(A, compute_uv=False)

    def eigh(self, A):
        """(eigenvalues ascending, eigenvectors) of a symmetric matrix."""
        return np.linalg.eigh(A)

    def eigvalsh(self, A):
        return np.linalg.eigvalsh(A)

    def cholesky(self, A):
        """The lower Cholesky factor of a symmetric positive definite matrix."""
        return np.linalg.cholesky(A)

    def solve(self, A, B):
        return np.linalg.solve(A, B)

    def frobenius(self, A):
        """sqrt(sum_ij A_ij^2) as a value of this backend."""
        return np.sqrt(np.sum(A * A))

    def arctan2(self, y, x):
        """The angle of the point (x, y), elementwise (Kahan's accurate angle between two unit
        vectors is 2 arctan2(||a - b||, ||a + b||))."""
        return np.arctan2(y, x)

    def take(self, a, index):
        """``a[index]`` for a vector ``a`` and an integer numpy array ``index`` (a gather)."""
        return a[index]

    def segment_sum(self, a, ids, count):
        """The ``count`` sums of the entries of the vector ``a`` with each label in ``ids`` (an
        integer numpy array of a's length, labels 0..count-1): a scatter-add."""
        return np.bincount(ids, weights=a, minlength=count)

    def expm1(self, a):
        """exp(a) - 1, accurate for small ``a``."""
        return np.expm1(a)

    def median(self, A):
        """The median of all entries of ``A`` (numpy's convention: the mean of the two middle
        values for an even count), as a value of this backend; torch passes its gradient to
        the middle entries (an order statistic is locally a fixed entry)."""
        return np.median(A)

    def channel_choice(self, P, estimator, axis):
        """The index along ``axis`` of the value a channel reduction selects (an integer array
        of this backend, no gradient): the maximum ("max") or the element of rank
        (m - 1) // 2 ("median", :meth:`lower_median`'s)."""
        if estimator == "max":
            return np.argmax(P, axis=axis)
        mid = (P.shape[axis] - 1) // 2
        return np.take(np.argpartition(P, mid, axis=axis), mid, axis=axis)

    def selected_products(self, H, index, side=None):
        """K_ab = sum_p H[a, I_ab, p] H[b, I_ab, p] for features ``H`` (n, C, P) and a symmetric
        (n, n) integer matrix ``I`` of channels (those a reduction selected, see
        :meth:`channel_choice`): the chosen channel of both samples gathered entry by entry,
        in square tiles of ``side`` samples (None: one tile of all n) on and above the
        diagonal, mirrored below (:func:`simmetrics._core.autograd.selected_products`), so
        O(n^2 P) work and K plus one tile's gathers in memory. torch differentiates it with
        respect to H, ``I`` held fixed, by the matching scatter, in the same tiles."""
        from .autograd import selected_products

        n, C = H.shape[:2]
        return selected_products(H, index, side or n, np.arange(n) * C, np.empty((n, n)))

    def stop_gradient(self, A):
        """``A`` as a constant of a formula: the same values, no gradient passed through."""
        return A

    # -- results and gradients (simmetrics.functional) ------------------------------------------
    def needs_gradient(self, *inputs):
        """Whether a value computed from ``inputs`` must carry a gradient: never for numpy."""
        return False

    def result(self, value):
        """A metric's value as this backend hands it back: a Python float for numpy."""
        return float(value)

    def with_gradient(self, value, formula, *inputs):  # pragma: no cover - torch only
        raise TypeError("numpy values carry no gradient")


class TorchBackend(NumpyBackend):
    """torch spelling of the same operations; values it creates are float64 on ``device``."""

    name = "torch"
    is_torch = True

    def __init__(self, device="cpu"):
        import torch

        self.torch = torch
        self.device = torch.device(device)

    def __repr__(self):
        return f"TorchBackend(device={str(self.device)!r})"

    def __eq__(self, other):
        return isinstance(other, TorchBackend) and other.device == self.device

    def __hash__(self):
        return hash(("torch", str(self.device)))

    def owns(self, A):
        return isinstance(A, self.torch.Tensor) and A.device == self.device

    @staticmethod
    def checked(X, name):
        """``X`` detached, after the checks only a tensor needs (a ``TypeError`` naming
        ``name`` for a torch object that is not a tensor, complex or boolean dtype, a sparse
        layout, the "meta" device)."""
        import torch

        if not isinstance(X, torch.Tensor):
            raise TypeError(f"{name} is a {type(X).__name__}, not an array or tensor")
        if X.is_complex():
            raise TypeError(f"{name} has complex dtype {X.dtype}; expected real numbers")
        if X.dtype == torch.bool:
            raise TypeError(f"{name} has boolean dtype; expected real numbers")
        if X.layout != torch.strided:
            raise TypeError(f"{name} is a sparse tensor ({X.layout}); pass {name}.to_dense()")
        if X.device.type == "meta":
            raise TypeError(
                f"{name} is a tensor on the 'meta' device, which has a shape but no values; "
                f"materialise it on a real device (cpu, cuda) first"
            )
        return X.detach()

    def read(self, X, name):
        """``X`` as a float64 tensor on this backend's device (a host array is copied there),
        after :meth:`checked`'s tests for a tensor."""
        if is_tensor(X):
            return self.checked(X, name).to(device=self.device, dtype=self.torch.float64)
        return self.asarray(X)

    def asarray(self, value):
        if is_tensor(value):
            return value.to(device=self.device, dtype=self.torch.float64)
        value = np.asarray(value, dtype=np.float64)
        if value.ndim == 0:
            return self.torch.tensor(float(value), dtype=self.torch.float64, device=self.device)
        # read-only arrays (a validated input may be one) are copied: torch cannot wrap them
        return tensor_from_numpy(value).to(self.device)

    def scalar(self, a):
        return float(a)

    def empty(self, shape):
        return self.torch.empty(shape, dtype=self.torch.float64, device=self.device)

    def detach_float64(self, A):
        return A.detach().to(self.torch.float64)

    def permute(self, A, axes):
        return A.permute(*axes)

    def moveaxis(self, A, source, destination):
        return self.torch.movedim(A, source, destination)

    def contiguous(self, A):
        return A.contiguous()

    def concat(self, arrays, axis=0):
        return self.torch.cat(tuple(arrays), dim=axis)

    def stack(self, arrays, axis=0):
        return self.torch.stack(tuple(arrays), dim=axis)

    def triu(self, A, k=0):
        return self.torch.triu(A, k)

    def tril(self, A, k=0):
        return self.torch.tril(A, k)

    def zero_diagonal(self, K):
        K.fill_diagonal_(0.0)

    def row_sq(self, Z):
        return self.torch.einsum("ij,ij->i", Z, Z)

    def colmin(self, A):
        return A.amin(0)

    def colmax(self, A):
        return A.amax(0)

    def minimum(self, a, b):
        return self.torch.minimum(a, b)

    def maximum(self, a, b):
        return self.torch.maximum(a, b)

    def all_finite(self, A):
        return bool(self.torch.isfinite(A).all())

    def inner(self, A, B):
        return float(self.torch.dot(A.reshape(-1), B.reshape(-1)))

    def vector_norm(self, A):
        return float(self.torch.linalg.vector_norm(A))

    def lower_median(self, A, axis):
        return A.median(axis).values

    def amax(self, A, axis):
        return A.amax(axis)

    def amin(self, A, axis):
        return A.amin(axis)

    def outer_into(self, a, b, out):
        self.torch.outer(a, b, out=out)

    def maximum_into(self, a, b):
        self.torch.maximum(a, b, out=a)

    def matmul_into(self, a, b, out):
        self.torch.matmul(a, b, out=out)

    def unit_norm(self, A):
        A /= self.torch.linalg.vector_norm(A)

    def qr_r(self, F):
        return self.torch.linalg.qr(F, mode="r").R

    def svd(self, A):
        return self.torch.linalg.svd(A, full_matrices=False)

    def qr_r_on_triangle(self, T, rows):
        return None  # torch has no structured QR: the caller takes the full one

    def sqrt(self, a):
        return self.torch.sqrt(a)

    def abs(self, a):
        return self.torch.abs(a)

    def log(self, a):
        return self.torch.log(a)

    def exp(self, a):
        return self.torch.exp(a)

    def arccos(self, a):
        return self.torch.arccos(a)

    def clip(self, a, lo=None, hi=None):
        return self.torch.clamp(a, lo, hi)

    def trace(self, A):
        return self.torch.trace(A)

    def diag(self, A):
        return self.torch.diag(A)

    def eye(self, n):
        return self.torch.eye(n, dtype=self.torch.float64, device=self.device)

    def svdvals(self, A):
        return self.torch.linalg.svdvals(A)

    def eigh(self, A):
        return self.torch.linalg.eigh(A)

    def eigvalsh(self, A):
        return self.torch.linalg.eigvalsh(A)

    def cholesky(self, A):
        return self.torch.linalg.cholesky(A)

    def solve(self, A, B):
        return self.torch.linalg.solve(A, B)

    def frobenius(self, A):
        return self.torch.linalg.vector_norm(A)

    def arctan2(self, y, x):
        return self.torch.atan2(y, x)

    def take(self, a, index):
        return a[self.torch.as_tensor(index, dtype=self.torch.int64, device=a.device)]

    def segment_sum(self, a, ids, count):
        ids = self.torch.as_tensor(ids, dtype=self.torch.int64, device=a.device)
        return self.torch.zeros(count, dtype=a.dtype, device=a.device).index_add(0, ids, a)

    def expm1(self, a):
        return self.torch.expm1(a)

    def median(self, A):
        flat = A.reshape(-1)
        m = flat.shape[0]
        low = self.torch.kthvalue(flat, (m + 1) // 2).values
        high = self.torch.kthvalue(flat, m // 2 + 1).values
        return (low + high) / 2.0

    def channel_choice(self, P, estimator, axis):
        if estimator == "max":
            return P.argmax(axis)
        return P.median(axis).indices  # the element of rank (m - 1) // 2, as lower_median

    def selected_products(self, H, index, side=None):
        from .autograd import selected_products_function

        return selected_products_function().apply(H, index, side or H.shape[0])

    def stop_gradient(self, A):
        return A.detach()

    def needs_gradient(self, *inputs):
        """Whether autograd is recording and one of ``inputs`` is a tensor that requires grad."""
        return self.torch.is_grad_enabled() and any(
            is_tensor(A) and getattr(A, "requires_grad", False) for A in inputs)

    def result(self, value):
        """A 0-d float64 tensor on this backend's device."""
        return self.torch.tensor(float(value), dtype=self.torch.float64, device=self.device)

    def with_gradient(self, value, formula, *inputs):
        """``value`` as a 0-d float64 tensor whose gradient with respect to the tensors among
        ``inputs`` is that of ``formula(*inputs)``, a differentiable expression of the same
        value: the number comes from the metric's own route (its guarded numerics), the
        gradient from torch's autograd of the formula, evaluated in float64 when backward runs
        (each gradient is handed back in its input's dtype)."""
        from .autograd import metric_value_function

        return metric_value_function().apply(self.result(value), formula, *inputs)


#: The numpy backend (stateless, shared).
NUMPY = NumpyBackend()

