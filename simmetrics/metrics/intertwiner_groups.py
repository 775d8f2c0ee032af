"""The intertwiner groups as the intertwiner metrics name them, and the conv features they read.

Shared by :mod:`simmetrics.metrics.intertwiner_procrustes` and
:mod:`simmetrics.metrics.intertwiner_cka`:

- :data:`INTERTWINER_GROUPS` and :func:`intertwiner_group_name`: the intertwiner group G_sigma
  of an activation (:func:`simmetrics.symmetry.activations.intertwiner_group`), by name;
  :data:`SCALED` and :data:`SIGNED`: the groups whose diagonal part contains positive scalings,
  sign flips; :func:`group_subgroups`: the invariances a group implies;
- :data:`REFERENCE`: the paper (Godfrey et al. 2022);
- :func:`upsample_to_match` and :func:`prepare_conv`: conv feature maps of different spatial
  sizes matched by nearest-neighbour upsampling (the paper's convention).
"""

import numpy as np

from .._core.validation import as_float_array
from ..base import GROUP_NAMES

__all__ = ["INTERTWINER_GROUPS", "intertwiner_group_name", "upsample_to_match"]

#: The groups that occur as intertwiner groups of coordinatewise activations.
INTERTWINER_GROUPS = (
    "positive_scaled_permutation",
    "signed_permutation",
    "permutation",
    "scaled_permutation",
    "invertible_linear",
)
# groups whose diagonal part contains positive scalings (the per-neuron scale is a symmetry)
SCALED = frozenset({"positive_scaled_permutation", "scaled_permutation"})
# groups whose diagonal part contains sign flips
SIGNED = frozenset({"signed_permutation", "scaled_permutation"})
#: The paper both intertwiner metrics come from.
REFERENCE = (
    "Godfrey, Brown, Emerson, Kvinge, 'On the Symmetries of Deep Learning Models and their "
    "Internal Representations', NeurIPS 2022 (arXiv 2205.14258)"
)


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


def group_subgroups(name):
    """Names of the named groups contained in the group ``name`` (itself included)."""
    from ..symmetry.groups import get_group

    return get_group(name).subgroups


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


def prepare_conv(X, Y, layout, default_4d):
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
