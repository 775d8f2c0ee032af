"""The package's ``torch.autograd.Function`` definitions: torch-only by nature, each defined on
first use (torch is imported only when a tensor is seen).

- :func:`metric_value_function`: a metric's value with the autograd of its gradient formula
  as its gradient (:meth:`simmetrics._core.backend.TorchBackend.with_gradient`).
- :func:`selected_products_function`: the kernel of the channels a reduction selected
  (the backend's ``selected_products``).

The selected kernel (used by the gradient formula of :class:`simmetrics.IntertwinerCKA`).

With features H (n, C, P) and a symmetric (n, n) integer matrix I of channels (the argmax or
arg-median of the per-channel products, held fixed)::

    K_ab = sum_p H[a, I_ab, p] H[b, I_ab, p]

formed by gathering, for each entry, the chosen channel of both samples (O(n^2 P) work, where
a sum over channels of masked n x n products would take O(C n^2 P)), in square tiles of
samples on and above the diagonal, each mirrored below. Its gradient, for an incoming n x n
gradient W and S = W + W', is the matching scatter::

    dH[a, c, p] = sum_b S_ab [I_ab = c] H[b, c, p]

added tile by tile (a tile above the diagonal scatters into its rows and, mirrored, into its
columns); the backward pass saves only H and I, so the memory is the n x n kernel and one
tile's gathers (see :func:`selected_products`).
"""

__all__ = ["metric_value_function", "selected_products", "selected_products_function"]


_METRIC_VALUE = []


def metric_value_function():
    """The ``torch.autograd.Function`` of :meth:`TorchBackend.with_gradient`."""
    if _METRIC_VALUE:
        return _METRIC_VALUE[0]
    import torch

    class MetricValue(torch.autograd.Function):
        """Forward: the metric's value, already computed. Backward: the vector-Jacobian
        product of the gradient formula at the saved inputs (first order only)."""

        @staticmethod
        def forward(ctx, value, formula, *inputs):
            ctx.formula = formula
            ctx.inputs = inputs
            return value.clone()

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, grad):
            with torch.enable_grad():
                leaves = [A.detach().to(torch.float64).requires_grad_(A.requires_grad)
                          if isinstance(A, torch.Tensor) else A for A in ctx.inputs]
                wanted = [A for A in leaves if isinstance(A, torch.Tensor) and A.requires_grad]
                value = ctx.formula(*leaves)
                found = torch.autograd.grad(value, wanted, grad.to(value.dtype),
                                            allow_unused=True)
            found = iter(found)
            out = [None, None]
            for A, leaf in zip(ctx.inputs, leaves):
                if isinstance(leaf, torch.Tensor) and leaf.requires_grad:
                    g = next(found)
                    out.append(torch.zeros_like(A) if g is None else g.to(A.dtype))
                else:
                    out.append(None)
            return tuple(out)

    _METRIC_VALUE.append(MetricValue)
    return MetricValue




def _upper_tiles(n, side):
    """(rows, cols) slices of the square tiles of ``side`` samples on and above the diagonal
    of an n x n matrix; a tile whose rows equal its columns is on the diagonal."""
    for i in range(0, n, side):
        rows = slice(i, min(n, i + side))
        for j in range(i, n, side):
            yield rows, slice(j, min(n, j + side))


def _gather_indices(index, offsets, rows, cols):
    """Rows of H.reshape(n * C, P) holding H[a, I_ab] and H[b, I_ab] for a tile (a in rows, b
    in cols): a * C + I_ab and b * C + I_ab (``offsets`` is C * arange(n))."""
    choice = index[rows, cols]
    return offsets[rows, None] + choice, offsets[None, cols] + choice


def selected_products(H, index, side, offsets, K):
    """K_ab = sum_p H[a, I_ab, p] H[b, I_ab, p], written into ``K`` (n, n) and returned, for
    numpy arrays or torch tensors alike (``offsets`` = C * arange(n), an integer array of the
    same library; ``index`` I symmetric).

    For each square tile of ``side`` samples on and above the diagonal the chosen channel of
    both samples is gathered, (r, c, P) values each, multiplied and summed over positions; the
    tile is mirrored below (I symmetric makes K symmetric: the product commutes and the sum
    over p runs in the same order, so the mirror is the value the lower entry would get). One
    position gives exactly the product H[a, I_ab] H[b, I_ab]. Memory: K and one tile's
    gathers, about 7 r c P values."""
    n, C, P = H.shape
    flat = H.reshape(n * C, P)
    for rows, cols in _upper_tiles(n, side):
        mine, theirs = _gather_indices(index, offsets, rows, cols)
        block = (flat[mine] * flat[theirs]).sum(-1)
        K[rows, cols] = block
        if cols != rows:
            K[cols, rows] = block.T
    return K


_FUNCTION = []


def selected_products_function():
    """The ``torch.autograd.Function`` (first order) of the selected kernel, defined on first
    use (torch is imported only when a tensor is seen): ``apply(H, index, side)``."""
    if _FUNCTION:
        return _FUNCTION[0]
    import torch

    class SelectedProducts(torch.autograd.Function):
        @staticmethod
        def forward(ctx, H, index, side):
            ctx.save_for_backward(H, index)
            ctx.side = side
            n = H.shape[0]
            offsets = torch.arange(n, device=H.device) * H.shape[1]
            K = torch.empty((n, n), dtype=H.dtype, device=H.device)
            return selected_products(H, index, side, offsets, K)

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, grad):
            """dH[a, c, :] = sum_b S_ab [I_ab = c] H[b, c, :] with S = W + W', scattered tile by
            tile: a diagonal tile into its rows, a tile above it into its rows (the gathered
            H[b, I_ab]) and its columns (H[a, I_ab], the mirrored tile's share)."""
            H, index = ctx.saved_tensors
            n, C, P = H.shape
            flat = H.reshape(n * C, P)
            offsets = torch.arange(n, device=H.device) * C
            out = torch.zeros((n * C, P), dtype=H.dtype, device=H.device)
            for rows, cols in _upper_tiles(n, ctx.side):
                mine, theirs = _gather_indices(index, offsets, rows, cols)
                S = (grad[rows, cols] + grad[cols, rows].T)[..., None]
                out.index_add_(0, mine.reshape(-1), (S * flat[theirs]).reshape(-1, P))
                if cols != rows:
                    out.index_add_(0, theirs.reshape(-1), (S * flat[mine]).reshape(-1, P))
            return out.reshape(n, C, P), None, None

    _FUNCTION.append(SelectedProducts)
    return SelectedProducts
