"""The package's ``torch.autograd.Function`` definitions: torch-only by nature, each defined on
first use (torch is imported only when a tensor is seen).

- :func:`metric_value_function`: a metric's value with the autograd of its gradient formula
  as its gradient (:meth:`simmetrics._core.backend.TorchBackend.with_gradient`).
- :func:`selected_products_function`: the kernel of the channels a reduction selected
  (the backend's ``selected_products``).

The selected kernel (used by the gradient formula of :class:`simmetrics.IntertwinerCKA`).

With features H (n, C, P) and a symmetric (n, n) integer matrix I of channels (the argmax or
arg-median of the per-channel products, held fixed)::

    K_ab = sum_p H[a, I_ab, p] H[b, I_ab, p] = sum_c [I_ab = c] (H_c H_c')_ab

formed one channel at a time (no n x n x C array). Its gradient with respect to channel c,
for an incoming n x n gradient W and the mask M_c = [I = c], is (W o M_c + (W o M_c)') H_c:
the backward pass below computes it channel by channel and saves only H and I (O(n^2) memory,
where autograd of the masked sum would keep one n x n mask per channel).
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




def selected_products(H, index, K, where):
    """K + sum_c where(I == c, H_c H_c', 0), for numpy (``where=numpy.where``) or torch."""
    for c in range(H.shape[1]):
        chosen = index == c
        if chosen.any():
            K = K + where(chosen, H[:, c, :] @ H[:, c, :].T, 0.0)
    return K


_FUNCTION = []


def selected_products_function():
    """The ``torch.autograd.Function`` (first order) of the selected kernel, defined on first
    use (torch is imported only when a tensor is seen)."""
    if _FUNCTION:
        return _FUNCTION[0]
    import torch

    class SelectedProducts(torch.autograd.Function):
        @staticmethod
        def forward(ctx, H, index):
            ctx.save_for_backward(H, index)
            K = torch.zeros((H.shape[0], H.shape[0]), dtype=H.dtype, device=H.device)
            return selected_products(H, index, K, torch.where)

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, grad):
            H, index = ctx.saved_tensors
            out = torch.zeros_like(H)
            for c in range(H.shape[1]):
                chosen = index == c
                if chosen.any():
                    W = torch.where(chosen, grad, 0.0)
                    out[:, c, :] = (W + W.T) @ H[:, c, :]
            return out, None

    _FUNCTION.append(SelectedProducts)
    return SelectedProducts
