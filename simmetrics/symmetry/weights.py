"""Weight-space symmetries of torch models: apply an intertwiner to a hidden layer.

For a hidden layer h -> W2 sigma(W1 h + b1) + b2 and A in the intertwiner group G_sigma of the
activation (see :func:`simmetrics.symmetry.activations.intertwiner_group`),

    (W1, b1, W2)  ->  (A W1, A b1, W2 phi(A)^-1)

leaves the network function unchanged (Godfrey, Brown, Emerson, Kvinge, NeurIPS 2022, Section 3),
while the hidden representation moves: pre-activation z -> A z, post-activation
sigma(z) -> phi(A) sigma(z); for a representation matrix H (samples x neurons), H -> H phi(A)'.

``nn.Linear`` and ``nn.Conv1d/2d/3d`` (``groups=1``) are supported; for convolutions A acts on the
output channels of the first layer and phi(A)^-1 on the input channels of the second (or on the
channel blocks of an ``nn.Linear`` that reads the flattened, channel-major conv features).

BatchNorm between the layer and its activation. In both training and evaluation mode BatchNorm
computes y = gamma (z - mu) / sqrt(v + eps) + beta per channel. For a monomial A = P D
(A y has entries d_{pi(i)} y_{pi(i)}) the transformation that reproduces y -> A y exactly is

    W1 -> P W1, b1 -> P b1                     (the layer is only permuted),
    mu -> P mu, v -> P v                        (running statistics re-indexed),
    gamma -> P D gamma, beta -> P D beta        (the scales D move into BatchNorm's affine part),

so eps needs no adjustment, the running statistics remain the true statistics of the new
pre-normalisation activations, and batch statistics in training mode transform the same way.
The pre-normalisation activations therefore move by P, and the post-BatchNorm (pre-activation)
ones by A. A BatchNorm without affine parameters can only absorb a permutation.
"""

import copy

import numpy as np

from .groups import inverse_matrix, monomial_parts
from .activations import intertwiner_group

__all__ = ["apply_intertwiner", "apply_intertwiner_"]


def _torch():
    import torch

    return torch


def _is_conv(module):
    from torch import nn

    return isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d))


def _is_batchnorm(module):
    from torch import nn

    return isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d))


def _check_layer(layer, name):
    from torch import nn

    if isinstance(layer, nn.Linear):
        return
    if _is_conv(layer):
        if layer.groups != 1:
            raise ValueError(
                f"{name} is a grouped convolution (groups={layer.groups}); only groups=1 is "
                "supported, since a permutation may move channels across groups"
            )
        return
    raise TypeError(
        f"{name} must be an nn.Linear or an nn.Conv1d/2d/3d, got {type(layer).__name__}"
    )


def _width(layer):
    return layer.out_features if hasattr(layer, "out_features") else layer.out_channels


def _as_tensor(M, like):
    torch = _torch()
    return torch.as_tensor(np.ascontiguousarray(M), dtype=torch.float64, device=like.device)


def _left_multiply(M, W):
    """M @ W along W's first axis (output units/channels), in float64."""
    torch = _torch()
    W64 = W.detach().to(torch.float64)
    out = torch.tensordot(_as_tensor(M, W), W64, dims=([1], [0]))
    return out.to(W.dtype)


def _right_multiply(W, M, block=1):
    """W @ kron(M, I_block) along W's second axis (input units/channels), in float64."""
    torch = _torch()
    W64 = W.detach().to(torch.float64)
    Mt = _as_tensor(M, W)
    if block > 1:
        Mt = torch.kron(Mt, torch.eye(block, dtype=torch.float64, device=W.device))
    out = torch.movedim(torch.tensordot(W64, Mt, dims=([1], [0])), -1, 1)
    return out.to(W.dtype)


def _set(param, value):
    torch = _torch()
    with torch.no_grad():
        param.copy_(value)


def _next_block(layer, next_layer, n):
    """How many inputs of ``next_layer`` belong to each hidden unit (1, or H*W*... when an
    nn.Linear reads flattened conv features)."""
    from torch import nn

    _check_layer(next_layer, "next_layer")
    if _is_conv(next_layer):
        if next_layer.in_channels != n:
            raise ValueError(
                f"next_layer has {next_layer.in_channels} input channels, but the hidden layer "
                f"has {n}"
            )
        return 1
    assert isinstance(next_layer, nn.Linear)
    m = next_layer.in_features
    if m == n:
        return 1
    if _is_conv(layer) and m % n == 0:
        return m // n
    raise ValueError(
        f"next_layer has {m} input features, but the hidden layer has {n} units"
        + (" (and not a multiple of them, as flattened conv features would be)"
           if _is_conv(layer) else "")
    )


def apply_intertwiner(layer, next_layer, A, activation, batchnorm=None, atol=1e-10):
    """Transform a hidden layer by an element A of its activation's intertwiner group.

    Returns new modules (deep copies); the inputs are not modified. The network
    ``next_layer(sigma(batchnorm(layer(h))))`` computes the same function before and after
    (up to floating-point rounding), while its hidden units are permuted and rescaled:

    - without BatchNorm: (W1, b1, W2) -> (A W1, A b1, W2 phi(A)^-1) (Godfrey et al. 2022);
    - with BatchNorm (A must be monomial, A = P D): the layer is permuted by P, BatchNorm's
      running statistics re-indexed by P and its affine weight and bias multiplied by P D
      (see the module docstring), so the BatchNorm output moves by A.

    Either way the post-activation representation H (samples x units) becomes H phi(A)'.

    Parameters
    ----------
    layer : nn.Linear or nn.Conv1d/2d/3d
        The layer producing the hidden units (A acts on its output units/channels).
    next_layer : nn.Linear or nn.Conv1d/2d/3d
        The layer reading them (phi(A)^-1 acts on its input units/channels; an nn.Linear
        after a convolution may read the flattened, channel-major features).
    A : array-like or torch.Tensor, shape (n, n)
        An element of G_sigma for n hidden units.
    activation : str, tuple, nn.Module or callable
        The activation between the layers (anything :func:`intertwiner_group` accepts).
    batchnorm : nn.BatchNorm1d/2d/3d, optional
        A BatchNorm between ``layer`` and the activation.
    atol : float, default 1e-10
        Tolerance of the membership test ``G_sigma.contains(A)``.

    Returns
    -------
    (new_layer, new_next_layer) or (new_layer, new_next_layer, new_batchnorm)

    Raises
    ------
    ValueError
        A is not in G_sigma (for example an orthogonal matrix for ReLU), has the wrong shape,
        or is not monomial while a BatchNorm is present.
    TypeError
        Unsupported module types.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from simmetrics import get_group
    >>> _ = torch.manual_seed(0)
    >>> l1, l2 = nn.Linear(3, 4), nn.Linear(4, 2)
    >>> A = get_group("positive_scaled_permutation").sample(4, random_state=0)
    >>> m1, m2 = apply_intertwiner(l1, l2, A, "relu")
    >>> x = torch.randn(5, 3)
    >>> bool(torch.allclose(l2(torch.relu(l1(x))), m2(torch.relu(m1(x))), atol=1e-5))
    True
    >>> Q = get_group("orthogonal").sample(4, random_state=0)
    >>> apply_intertwiner(l1, l2, Q, "relu")
    Traceback (most recent call last):
    ...
    ValueError: A (shape (4, 4)) is not in the intertwiner group of relu ...
    """
    torch = _torch()
    _check_layer(layer, "layer")
    n = _width(layer)
    if isinstance(A, torch.Tensor):
        A = A.detach().cpu().numpy()
    A = np.asarray(A, dtype=np.float64)
    if A.shape != (n, n):
        raise ValueError(f"A must be {n} x {n} for a layer with {n} hidden units, got {A.shape}")
    it = intertwiner_group(activation)
    B = it.phi(A, atol=atol)  # checks A in G_sigma
    block = _next_block(layer, next_layer, n)

    if batchnorm is not None:
        if not _is_batchnorm(batchnorm):
            raise TypeError(
                f"batchnorm must be an nn.BatchNorm1d/2d/3d, got {type(batchnorm).__name__}"
            )
        if batchnorm.num_features != n:
            raise ValueError(
                f"batchnorm has {batchnorm.num_features} features, but the layer has {n} units"
            )
        parts = monomial_parts(A, atol)
        if parts is None:
            raise ValueError(
                "with a BatchNorm between the layer and the activation, A must be monomial "
                "(P D): BatchNorm acts on each channel separately, so a matrix that mixes "
                "channels cannot pass through it"
            )
        perm, d = parts
        P = np.zeros((n, n))
        P[np.arange(n), perm] = 1.0
        if not batchnorm.affine and not np.allclose(d, 1.0, rtol=0.0, atol=atol):
            raise ValueError(
                "batchnorm has no affine parameters (affine=False), so it cannot absorb the "
                "scales D of A = P D; only permutations can be applied"
            )
        layer_map = P
    else:
        layer_map = A

    new_layer = copy.deepcopy(layer)
    _set(new_layer.weight, _left_multiply(layer_map, layer.weight))
    if layer.bias is not None:
        _set(new_layer.bias, _left_multiply(layer_map, layer.bias))

    new_next = copy.deepcopy(next_layer)
    _set(new_next.weight, _right_multiply(next_layer.weight, inverse_matrix(B), block))

    if batchnorm is None:
        return new_layer, new_next

    new_bn = copy.deepcopy(batchnorm)
    idx = torch.as_tensor(perm, dtype=torch.long)
    if batchnorm.affine:
        scale = torch.as_tensor(d[perm], dtype=torch.float64)
        for name in ("weight", "bias"):
            old = getattr(batchnorm, name).detach()
            new = old.to(torch.float64).cpu()[idx] * scale
            _set(getattr(new_bn, name), new.to(dtype=old.dtype, device=old.device))
    for name in ("running_mean", "running_var"):
        old = getattr(batchnorm, name)
        if old is not None:
            _set(getattr(new_bn, name), old.detach()[idx.to(old.device)])
    return new_layer, new_next, new_bn


def _passes_through(module, B):
    """Whether a module between the activation and the next layer commutes with the channel
    map B (a monomial matrix when the activation is non-linear)."""
    from torch import nn

    if isinstance(module, (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
                           nn.Flatten)):
        return True
    pools_avg = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
                 nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
    if isinstance(module, pools_avg):
        return True  # linear and channelwise: commutes with every channel map
    pools_max = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d,
                 nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
    if isinstance(module, pools_max):
        # max(d x) = d max(x) only for d > 0: B must be a positive scaled permutation
        return monomial_parts(B, 0.0) is not None and bool(np.all(B >= 0.0))
    return False


def apply_intertwiner_(model, index, A, atol=1e-10):
    """Apply an intertwiner to hidden layer ``model[index]`` of an ``nn.Sequential``, in place.

    The modules after ``model[index]`` (an nn.Linear or nn.Conv) must be: an optional
    BatchNorm, an optional activation module (none means the identity), any number of
    nn.Identity, nn.Dropout, nn.Flatten, average-pooling or max-pooling modules (max pooling
    only when phi(A) has non-negative entries), and then the next nn.Linear or nn.Conv. Those
    modules are replaced by the transformed copies of :func:`apply_intertwiner` (dropout acts
    on the permuted and rescaled units, so in training mode the function is unchanged in
    distribution, and exactly in evaluation mode).

    Parameters
    ----------
    model : nn.Sequential
    index : int
        Position of the hidden layer in ``model``.
    A : array-like, shape (n, n)
        An element of the intertwiner group of the activation that follows.
    atol : float, default 1e-10
        Tolerance of the membership test.

    Returns
    -------
    model
        The same object, modified.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from simmetrics import intertwiner_group
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 1)).eval()
    >>> x = torch.randn(4, 3)
    >>> before = net(x)
    >>> A = intertwiner_group(nn.Tanh()).group.sample(6, random_state=1)
    >>> after = apply_intertwiner_(net, 0, A)(x)
    >>> bool(torch.allclose(before, after, atol=1e-6))
    True
    """
    from torch import nn

    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential, got {type(model).__name__}")
    n_mod = len(model)
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError(f"index must be an int, got {type(index).__name__}")
    if index < 0:
        index += n_mod
    if not 0 <= index < n_mod:
        raise ValueError(f"index {index} is out of range for a Sequential of {n_mod} modules")
    layer = model[index]
    _check_layer(layer, f"model[{index}]")
    pos = index + 1
    bn_pos = None
    if pos < n_mod and _is_batchnorm(model[pos]):
        bn_pos, pos = pos, pos + 1
    activation = "identity"
    if pos < n_mod and not isinstance(model[pos], nn.Linear) and not _is_conv(model[pos]):
        if not _passes_through(model[pos], np.eye(1)) or isinstance(model[pos], nn.Identity):
            activation = model[pos]
            pos += 1
    it = intertwiner_group(activation)
    B = it.phi(np.asarray(A, dtype=np.float64), atol=atol)
    while pos < n_mod and not isinstance(model[pos], nn.Linear) and not _is_conv(model[pos]):
        if not _passes_through(model[pos], B):
            raise ValueError(
                f"model[{pos}] ({type(model[pos]).__name__}) sits between the activation and "
                "the next layer and does not commute with phi(A); supported in between: "
                "Identity, Dropout, Flatten, average pooling, and max pooling when phi(A) >= 0"
            )
        pos += 1
    if pos >= n_mod:
        raise ValueError(
            f"no nn.Linear or nn.Conv follows model[{index}]; the last hidden layer's units "
            "are the model's output and cannot be transformed"
        )
    bn = model[bn_pos] if bn_pos is not None else None
    out = apply_intertwiner(layer, model[pos], A, it, batchnorm=bn, atol=atol)
    model[index] = out[0]
    model[pos] = out[1]
    if bn_pos is not None:
        model[bn_pos] = out[2]
    return model
