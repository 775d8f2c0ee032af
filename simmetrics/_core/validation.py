"""Input checking shared by every metric: one place where arrays become float64 matrices.

Every public entry point turns its inputs into C-contiguous float64 numpy arrays of shape
(n_samples, n_neurons) here, so that float32 and integer input accumulate in float64 and numpy
and torch input give the same numbers. Bad input raises a ``ValueError`` or ``TypeError`` whose
message names the argument and the problem; nothing downstream ever sees a NaN or an inf.
"""

import numbers

import numpy as np

from .backend import NUMPY, get_backend, host_array, keeps, to_numpy

__all__ = [
    "LAYOUTS",
    "as_float_array",
    "check_representation",
    "layout_rows",
    "check_pair",
    "check_batch_pair",
    "check_nonconstant",
    "check_matching_shapes",
    "check_random_state",
    "shape_of",
    "POSITION_AXES",
    "stimulus_positions",
    "rows_per_stimulus",
    "positions_differ_message",
]

#: Layouts accepted for inputs with more than two axes.
#:
#: - ``"nchw"``: conv features (n, c, h, w); channels are the neurons, and every sample and
#:   spatial position is a row, giving (n * h * w, c).
#: - ``"nhwc"``: conv features (n, h, w, c), same reading, giving (n * h * w, c).
#: - ``"ntd"``: token features (n, t, d); every sample and token is a row, giving (n * t, d).
#: - ``"flatten"``: any (n, ...) array; everything after the first axis is a neuron, giving
#:   (n, prod(rest)). This is Kornblith et al.'s convention for conv layers.
LAYOUTS = ("nchw", "nhwc", "ntd", "flatten")

_EXPECTED_NDIM = {"nchw": 4, "nhwc": 4, "ntd": 3}

#: The layouts whose rows are the positions (or tokens) of each stimulus, and the axes of the
#: input that hold those positions.
POSITION_AXES = {"nchw": (2, 3), "nhwc": (1, 2), "ntd": (1,)}


def _to_numpy(X, name):
    """Bring torch tensors, pandas frames, lists and memmaps to a plain numpy array (no copy
    where none is needed)."""
    if X is None:
        raise TypeError(f"{name} is None; expected an array of shape (n_samples, n_neurons)")
    X = host_array(X, name)  # a torch tensor's own checks, then its host copy
    module = type(X).__module__
    if module.startswith("scipy.sparse"):
        raise TypeError(
            f"{name} is a scipy sparse matrix; representation metrics need dense activations: "
            f"pass {name}.toarray()"
        )
    if hasattr(X, "to_numpy") and module.startswith("pandas"):
        X = X.to_numpy()
    if isinstance(X, np.ma.MaskedArray):
        masked = int(np.ma.count_masked(X))
        if masked:  # np.asarray would silently use the values under the mask
            raise ValueError(
                f"{name} is a masked array with {masked} masked entries; every value is needed: "
                f"fill them ({name}.filled(...)) or drop those samples"
            )
        X = X.data
    try:
        return np.asarray(X)
    except (ValueError, TypeError) as exc:  # ragged lists and the like
        raise TypeError(f"{name} cannot be read as a numeric array: {exc}") from None


def as_float_array(X, name="X"):
    """Return ``X`` as a float64 numpy array of any shape, with its dtype checked.

    Parameters
    ----------
    X : array-like or torch.Tensor
        Real numbers: integer input is cast, float32/float16 input is promoted to float64.
    name : str
        The argument's name, used in error messages.

    Returns
    -------
    numpy.ndarray
        float64, never a view that a caller could write through to ``X``'s buffer by accident
        (the arrays we return are only read).

    Examples
    --------
    >>> as_float_array([[1, 2], [3, 4]]).dtype
    dtype('float64')
    """
    A = _to_numpy(X, name)
    kind = A.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} has complex dtype {A.dtype}; expected real numbers")
    if kind == "b":
        raise TypeError(f"{name} has boolean dtype; expected real numbers (cast it explicitly)")
    if kind not in "iuf":
        raise TypeError(f"{name} has non-numeric dtype {A.dtype}; expected real numbers")
    return np.asarray(A, dtype=np.float64)


def _apply_layout(A, name, layout, nx=NUMPY):
    if layout is None:
        if A.ndim != 2:
            shape = "x".join(map(str, A.shape)) or "scalar"
            hint = (
                f"; pass layout= one of {LAYOUTS} to say which axis holds the neurons"
                if A.ndim > 2
                else "; reshape a single feature to (n_samples, 1)"
            )
            raise ValueError(
                f"{name} must be 2-D (n_samples, n_neurons), got a {A.ndim}-D array of shape "
                f"({shape}){hint}"
            )
        return A
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be None or one of {LAYOUTS}, got {layout!r}")
    if layout == "flatten":
        if A.ndim < 2:
            raise ValueError(f"{name} must have at least 2 axes for layout='flatten', got {A.ndim}")
        return A.reshape(A.shape[0], -1)
    want = _EXPECTED_NDIM[layout]
    if A.ndim != want:
        raise ValueError(
            f"{name} must be {want}-D for layout={layout!r}, got a {A.ndim}-D array of shape "
            f"{tuple(A.shape)}"
        )
    if layout == "nchw":
        A = nx.moveaxis(A, 1, -1)
    return A.reshape(-1, A.shape[-1])


def layout_rows(A, name, layout, nx=NUMPY):
    """``A`` (an array of ``nx``, with its autograd history where it has one) reshaped to the
    (n_samples, n_neurons) rows ``layout`` reads; the shape errors of :func:`check_representation`."""
    return _apply_layout(A, name, layout, nx)


def check_representation(X, name="X", layout=None, min_samples=2, min_features=1,
                         policy="host"):
    """Validate one representation and return it as a float64 (n_samples, n_neurons) matrix.

    The one validation path for arrays and tensors: a torch tensor that ``policy`` keeps where
    it lives (see :data:`simmetrics._core.backend.DEVICE_POLICIES`) is checked and reshaped on
    its device through the backend, with the same tests and messages as the host route.

    Parameters
    ----------
    X : array-like or torch.Tensor
        Activations, shape (n_samples, n_neurons), or 3-D/4-D with ``layout``.
    name : str
        Argument name used in messages ("X", "Y", ...).
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}
        How to read inputs with more than two axes; see :data:`LAYOUTS`.
    min_samples : int
        The fewest rows the estimator can work with.
    min_features : int
        The fewest columns the estimator can work with.
    policy : {"host", "accelerator", "tensor"}
        The metric's ``device_policy``: whether a tensor stays a tensor on its device.

    Returns
    -------
    numpy.ndarray of float64, shape (n_samples, n_neurons)
        Or a float64 torch tensor on the input's device, where ``policy`` keeps it.

    Raises
    ------
    TypeError
        Non-numeric, boolean or complex dtype; sparse input.
    ValueError
        Wrong number of axes, empty input, NaN or inf, too few samples.

    Examples
    --------
    >>> check_representation(np.zeros((4, 2, 3, 3)), layout="nchw").shape
    (36, 2)
    >>> check_representation([1.0, 2.0])
    Traceback (most recent call last):
    ...
    ValueError: X must be 2-D (n_samples, n_neurons), got a 1-D array of shape (2); ...
    """
    nx = get_backend(X) if keeps(X, policy) else NUMPY
    A = _apply_layout(nx.read(X, name), name, layout, nx)
    n, d = A.shape
    if n == 0 or d == 0:
        raise ValueError(f"{name} is empty: shape ({n}, {d})")
    if not nx.all_finite(A):
        values = to_numpy(A)
        finite = np.isfinite(values)
        n_nan = int(np.isnan(values).sum())
        n_inf = int(values.size - finite.sum() - n_nan)
        raise ValueError(f"{name} contains {n_nan} NaN and {n_inf} infinite values")
    if n < min_samples:
        raise ValueError(
            f"{name} has {n} samples, but this estimator needs at least {min_samples}"
        )
    if d < min_features:
        raise ValueError(f"{name} has {d} neurons, but this estimator needs at least {min_features}")
    return nx.contiguous(A)


def check_pair(X, Y, layout=None, min_samples=2, same_width=False, policy="host"):
    """Validate two representations of the same stimuli.

    Both go through :func:`check_representation`; then their sample counts must agree (and,
    with ``same_width=True``, their widths). Where ``policy`` keeps one of them on its device,
    the other joins it there (so both are computed on by one backend).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)

    Examples
    --------
    >>> check_pair(np.ones((5, 2)), np.ones((4, 2)))
    Traceback (most recent call last):
    ...
    ValueError: X and Y must have the same number of samples (rows): X has 5, Y has 4
    """
    raw = (shape_of(X), shape_of(Y)) if layout in _EXPECTED_NDIM else None
    kept = [A for A in (X, Y) if keeps(A, policy)]
    nx = get_backend(*kept) if kept else NUMPY
    X = check_representation(X, "X", layout=layout, min_samples=min_samples, policy=policy)
    Y = check_representation(Y, "Y", layout=layout, min_samples=min_samples, policy=policy)
    X, Y = (A if nx.owns(A) else nx.asarray(A) for A in (X, Y))
    check_matching_shapes(tuple(X.shape), tuple(Y.shape), same_width, raw, layout)
    return X, Y


def check_batch_pair(X, Y, layout=None, min_samples=1, same_width=False):
    """Validate one batch (X, Y) of a stream: :func:`check_pair` with the streaming policy,
    "tensor" (a torch tensor stays a float64 tensor on its device, the CPU included, and a
    numpy partner joins it there; numpy input gives float64 numpy matrices).

    Examples
    --------
    >>> X, Y = check_batch_pair(np.ones((2, 3, 2, 2)), np.zeros((2, 3, 2, 2)), layout="nchw")
    >>> X.shape, X.dtype
    ((8, 3), dtype('float64'))
    """
    return check_pair(X, Y, layout=layout, min_samples=min_samples, same_width=same_width,
                      policy="tensor")


def shape_of(A):
    """The shape of an input as given (array, tensor, nested lists), or None where it has none
    (ragged lists, None): only used to word error messages."""
    shape = getattr(A, "shape", None)
    if shape is None:
        try:
            shape = np.shape(A)
        except (ValueError, TypeError):
            return None
    return tuple(int(s) for s in shape)


def stimulus_positions(raw, layout):
    """How the rows of a representation read with ``layout`` came from its stimuli:
    ``(n_stimuli, [h, w])`` (or ``[t]``) for the conv and token layouts, else None. ``raw`` is
    the input as given (any array-like; only its shape is read)."""
    axes = POSITION_AXES.get(layout)
    shape = shape_of(raw)
    if axes is None or shape is None or len(shape) <= max(axes):
        return None
    return shape[0], [shape[a] for a in axes]


def rows_per_stimulus(shape, layout):
    """(count, words) of the rows one stimulus becomes under ``layout``."""
    dims = [shape[a] for a in POSITION_AXES[layout]]
    if layout == "ntd":
        return dims[0], f"{dims[0]} tokens"
    h, w = dims
    return h * w, f"{h * w} positions ({h} x {w})"


def positions_differ_message(name0, name, shape0, shape, layout):
    """The message for inputs of the same stimuli that a conv / token layout turns into
    different numbers of rows (their positions per stimulus differ), with the ways out."""
    stimuli = shape0[0]
    (p0, w0), (p, w) = rows_per_stimulus(shape0, layout), rows_per_stimulus(shape, layout)
    unit = "token" if layout == "ntd" else "spatial position"
    pool = "A.mean(axis=1)" if layout == "ntd" else (
        "A.mean(axis=(2, 3))" if layout == "nchw" else "A.mean(axis=(1, 2))")
    return (
        f"every representation holds {stimuli} stimuli, but layout={layout!r} makes one row "
        f"per stimulus and {unit}, and the layers differ there: {name0} has {stimuli} x {w0} = "
        f"{stimuli * p0} rows, {name} has {stimuli} x {w} = {stimuli * p} rows. To compare "
        f"layers of different sizes use layout='flatten' (one row per stimulus, every {unit} x "
        f"channel a neuron), pool the {unit}s first ({pool} per layer), or a metric with a "
        f"positions option (IntertwinerCKA(positions='sum', layout={layout!r}) sums them "
        "inside its kernel)"
    )


def check_matching_shapes(x_shape, y_shape, same_width=False, raw_shapes=None, layout=None):
    """Raise unless two (n, d) shapes have the same n (and, with ``same_width``, the same d).

    ``raw_shapes`` (the inputs' shapes before ``layout`` turned them into rows) lets the message
    name the real cause when both inputs hold the same stimuli but a conv or token layout gives
    them different numbers of positions."""
    if x_shape[0] != y_shape[0]:
        if (raw_shapes is not None and layout in _EXPECTED_NDIM
                and all(s is not None and len(s) == _EXPECTED_NDIM[layout] for s in raw_shapes)
                and raw_shapes[0][0] == raw_shapes[1][0]):
            raise ValueError(positions_differ_message("X", "Y", *raw_shapes, layout))
        raise ValueError(
            "X and Y must have the same number of samples (rows): "
            f"X has {x_shape[0]}, Y has {y_shape[0]}"
        )
    if same_width and x_shape[1] != y_shape[1]:
        raise ValueError(
            f"X and Y must have the same number of neurons for this metric: X has {x_shape[1]}, "
            f"Y has {y_shape[1]}"
        )


def check_nonconstant(X, name):
    """Raise if every neuron of ``X`` is constant across samples (zero total variance).

    The test is exact (each column's range is zero), so it does not depend on how rounding
    errors fall when the columns are centred.

    Examples
    --------
    >>> check_nonconstant(np.ones((3, 2)), "Y")
    Traceback (most recent call last):
    ...
    ValueError: Y has zero variance: every neuron is constant across samples
    """
    if np.ptp(X, axis=0).max() == 0.0:
        raise ValueError(f"{name} has zero variance: every neuron is constant across samples")
    return X


def check_random_state(seed):
    """A ``numpy.random.Generator`` from None, an int or a Generator; the global state is
    never used.

    Examples
    --------
    >>> bool(check_random_state(0).integers(10) == check_random_state(0).integers(10))
    True
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, numbers.Integral):
        return np.random.default_rng(seed)
    if isinstance(seed, np.random.RandomState):
        return np.random.default_rng(seed.randint(2**31))
    raise TypeError(f"random_state must be None, an int or a numpy Generator, got {type(seed)}")
