"""RESET and REPAIR (Jordan, Sedghi, Saukh, Entezari, Neyshabur, "REPAIR: REnormalizing
Permuted Activations for Interpolation Repair", ICLR 2023): the renormalisation of an
interpolated network's hidden statistics that :func:`simmetrics.nn.barrier.loss_barrier`
applies with ``repair="reset_bn"`` / ``repair="repair"``.

Interpolating two networks' weights shrinks the variance of its hidden units ("variance
collapse", Jordan et al.); RESET recomputes BatchNorm's running statistics of the
interpolated network, REPAIR rescales and shifts each hidden channel so that its mean and
standard deviation are the interpolation of the end models'. Both work in place on a network
(a copy that :mod:`simmetrics.nn.barrier` made) and measure on batches of (inputs, targets).
"""

__all__ = ["reset_batchnorm", "repair_sites", "repair_network", "measure_pre_activations",
           "batchnorms", "move_input"]


def _torch():
    import torch

    return torch


def _batchnorm_type():
    from torch import nn

    return nn.modules.batchnorm._BatchNorm


def move_input(x, device, dtype):
    """``x`` on ``device``, floating-point inputs cast to ``dtype`` (None: unchanged)."""
    if dtype is not None and x.is_floating_point():
        return x.to(device=device, dtype=dtype)
    return x.to(device) if device is not None else x


# -- RESET: BatchNorm statistics recomputed ---------------------------------------------------
def batchnorms(net):
    """The BatchNorm modules of ``net`` that keep running statistics."""
    bn = _batchnorm_type()
    return [m for m in net.modules() if isinstance(m, bn) and m.track_running_stats]


def reset_batchnorm(net, data, device=None, dtype=None):
    """Recompute the running statistics of every BatchNorm of ``net`` on ``data`` (RESET,
    Jordan et al. 2023), in place; returns ``net`` in evaluation mode.

    Each BatchNorm's statistics are reset and ``momentum`` set to None (a cumulative average),
    then ``data`` goes through ``net`` with only the BatchNorm modules in training mode (dropout
    and every other module stay in evaluation mode, so the statistics are those of the network
    that is evaluated), under ``torch.no_grad()``; the momenta are restored. As in torch, the
    running mean is then the average of the batch means and the running variance the average
    of the unbiased batch variances, each BatchNorm's input being normalised by its
    predecessors' batch statistics: one batch holding all the data gives the data's own
    statistics, equal batches the data mean.
    """
    torch = _torch()
    bns = batchnorms(net)
    momenta = [m.momentum for m in bns]
    net.eval()
    try:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        with torch.no_grad():
            for x, _ in data:
                net(move_input(x, device, dtype))
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        net.eval()
    return net


# -- REPAIR: per-channel statistics of the pre-activations -------------------------------------
def _is_activation(module):
    return type(module).__module__ == "torch.nn.modules.activation"


def _leaves(module, prefix):
    from torch import nn

    for name, child in module.named_children():
        full = prefix + name
        if isinstance(child, nn.Sequential):
            yield from _leaves(child, full + ".")
        elif any(True for _ in child.children()):
            raise ValueError(
                f"repair='repair' follows nn.Sequential models of leaf modules; module "
                f"{full!r} is a {type(child).__name__} with submodules, whose forward it "
                "cannot follow (use repair='reset_bn' for BatchNorm networks, or None)")
        else:
            yield full, child


def repair_sites(model):
    """The hidden layers REPAIR corrects: ``(name, layer, batchnorm or None, activation,
    channel_axis)`` for every ``nn.Linear`` / ``nn.Conv1d/2d/3d`` of an ``nn.Sequential``
    (nested Sequentials are walked in order) followed, directly or after one BatchNorm, by a
    torch activation module (a class of ``torch.nn.modules.activation``: ReLU, GELU, Tanh, ...).

    Raises
    ------
    ValueError
        A model that is not an ``nn.Sequential``, a submodule with children of its own (a
        residual block), no such hidden layer, a module object used twice, a BatchNorm
        without running statistics.
    """
    from torch import nn

    if not isinstance(model, nn.Sequential):
        raise ValueError(f"repair='repair' handles nn.Sequential MLPs and CNNs; model_a is a "
                         f"{type(model).__name__} (use repair='reset_bn' for BatchNorm "
                         "networks, or None)")
    leaves = list(_leaves(model, ""))
    seen = {}
    for name, m in leaves:
        if id(m) in seen:
            raise ValueError(f"repair='repair': modules {seen[id(m)]!r} and {name!r} are one "
                             "object used twice; its correction would apply at both places")
        seen[id(m)] = name
    layers = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    sites = []
    for k, (name, layer) in enumerate(leaves):
        if not isinstance(layer, layers):
            continue
        j, bn = k + 1, None
        if j < len(leaves) and isinstance(leaves[j][1], _batchnorm_type()):
            bn, j = leaves[j][1], j + 1
        if j < len(leaves) and _is_activation(leaves[j][1]):
            if bn is not None and not bn.track_running_stats:
                raise ValueError(f"repair='repair': the BatchNorm after {name!r} has no running "
                                 "statistics (track_running_stats=False)")
            sites.append((name, layer, bn, leaves[j][1], -1 if isinstance(layer, nn.Linear)
                          else 1))
    if not sites:
        raise ValueError("repair='repair': model_a has no hidden layer (an nn.Linear or "
                         "nn.Conv followed by an activation module, optionally through a "
                         "BatchNorm) to correct")
    return sites


class _Stop(Exception):
    """Raised by a hook once the statistics of a pass are recorded: the rest of the forward
    pass is not needed."""


class _ChannelMoments:
    """Per-channel count, mean and sum of squared deviations in float64, merged batch by batch
    (Chan, Golub, LeVeque 1979)."""

    def __init__(self, axis):
        self.axis, self.n, self.mean, self.m2 = axis, 0, None, None

    def add(self, z):
        torch = _torch()
        z = z.detach().to(torch.float64)
        z = z.movedim(self.axis % z.ndim, -1).reshape(-1, z.shape[self.axis])
        nb = z.shape[0]
        if nb == 0:
            return
        mb = z.mean(0)
        m2b = ((z - mb) ** 2).sum(0)
        if self.n == 0:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        n = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2b + delta ** 2 * (self.n * nb / n)
        self.n = n

    def std(self):
        return (self.m2 / self.n).sqrt()


def measure_pre_activations(net, sites, data, device=None, dtype=None):
    """The per-channel moments of the pre-activations (the activations' inputs) at ``sites``,
    in one pass over data, each forward stopped after the last site."""
    torch = _torch()
    moments = [_ChannelMoments(s[4]) for s in sites]
    handles = []

    def hook(k):
        def record(module, args):
            moments[k].add(args[0])
            if k == len(sites) - 1:
                raise _Stop

        return record

    try:
        for k, site in enumerate(sites):
            handles.append(site[3].register_forward_pre_hook(hook(k)))
        with torch.no_grad():
            for x, _ in data:
                try:
                    net(move_input(x, device, dtype))
                except _Stop:
                    pass
    finally:
        for handle in handles:
            handle.remove()
    return moments


def _fold(layer, bn, s, c):
    """Make the pre-activation z become s * z + c per channel, folded into the BatchNorm's
    affine part (gamma -> s gamma, beta -> s beta + c) or, without one, into the layer
    (W -> diag(s) W, b -> s b + c); a missing bias or affine part is created."""
    torch = _torch()
    target = bn if bn is not None else layer
    with torch.no_grad():
        w, b = target.weight, target.bias
        if w is None:  # a BatchNorm with affine=False: gamma = 1
            like = layer.weight
            target.weight = torch.nn.Parameter(
                torch.ones(len(s), dtype=like.dtype, device=like.device))
            w = target.weight
        shape = (-1,) + (1,) * (w.ndim - 1)
        w.copy_((w.to(torch.float64) * s.to(w.device).view(shape)).to(w.dtype))
        new_b = c if b is None else s * b.to(torch.float64) + c
        if b is None:
            target.bias = torch.nn.Parameter(new_b.to(device=w.device, dtype=w.dtype))
        else:
            b.copy_(new_b.to(b.device, b.dtype))
        if bn is not None:
            bn.affine = True


def repair_network(net, targets, data, device=None, dtype=None):
    """REPAIR (Jordan et al. 2023) of ``net``, in place, layer by layer.

    ``targets`` holds one (mean, std) pair of per-channel float64 tensors per site of
    :func:`repair_sites`. For each site in order, with the corrections of the earlier sites in
    place, the pre-activation z (the activation's input: the layer's output, or the BatchNorm's)
    is measured on ``data`` (channel mean mu and standard deviation sigma over every sample and
    position, ddof 0) and replaced by

        z' = s z + c,   s = std_t / sigma,   c = mean_t - s mu,

    so z' has exactly the target statistics on ``data``; the affine map is folded into the
    BatchNorm's weight and bias or into the layer's weight and bias (:func:`_fold`), so the
    repaired network has the original modules. A channel whose sigma is 0 (a constant) is only
    shifted (s = 1). Costs one partial pass over data per site.
    """
    sites = repair_sites(net)
    for site, (mean_t, std_t) in zip(sites, targets):
        mom = measure_pre_activations(net, [site], data, device, dtype)[0]
        mu, sigma = mom.mean, mom.std()
        flat = sigma <= 1e-300
        s = std_t.to(sigma.device) / sigma.where(~flat, sigma.new_ones(()))
        s = s.where(~flat, s.new_ones(()))
        c = mean_t.to(mu.device) - s * mu
        _fold(site[1], site[2], s, c)
    return net
