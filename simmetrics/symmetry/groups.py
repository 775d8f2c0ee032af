"""Transformation groups acting on the neuron axis of a representation.

A representation is a matrix X of shape (n_samples, n) whose columns are neurons. A linear group
G inside GL_n acts by ``X -> X g'`` (every sample vector x becomes g x); the translation group
acts by ``X -> X + 1 g'``. The groups named in :data:`simmetrics.base.GROUP_NAMES` are:

================================  =====================================================
``permutation``                   P (permutation matrices)
``signed_permutation``            P D, D diagonal with entries +-1
``positive_scaled_permutation``   P D, D diagonal with entries > 0 (G_ReLU of Godfrey et al.)
``scaled_permutation``            P D, D diagonal and invertible (monomial matrices)
``orthogonal``                    Q with Q'Q = I
``invertible_linear``             GL_n
``isotropic_scaling``             c I, c > 0
``translation``                   x -> x + t (acts on samples, not a matrix group)
================================  =====================================================

Godfrey, Brown, Emerson, Kvinge, "On the Symmetries of Deep Learning Models and their Internal
Representations", NeurIPS 2022, show that these groups (the intertwiner groups of activation
functions, see :mod:`simmetrics.symmetry.activations`) are the symmetries a network's architecture
induces on its hidden representations.

Each group is an object with ``sample`` (a random element, drawn from an explicit random state,
never numpy's global one), ``act`` and ``contains``; :func:`is_subgroup` gives the inclusions
between them, which the invariance table uses (a metric invariant to a group is invariant to
each of its subgroups).
"""

import difflib

import numpy as np

from .._core.validation import as_float_array, check_random_state
from ..base import GROUP_NAMES

__all__ = [
    "Group",
    "Permutation",
    "SignedPermutation",
    "PositiveScaledPermutation",
    "ScaledPermutation",
    "Orthogonal",
    "InvertibleLinear",
    "IsotropicScaling",
    "Translation",
    "get_group",
    "available_groups",
    "is_subgroup",
    "monomial_parts",
    "inverse_matrix",
    "random_permutation_matrix",
    "random_orthogonal",
]


# -- small helpers ---------------------------------------------------------------------------
def _check_n(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer (the number of neurons), got {n!r}")
    return int(n)


def _check_positive(value, name):
    value = float(value)
    if not np.isfinite(value) or value <= 0.0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


def random_permutation_matrix(n, random_state=None):
    """A uniformly random n x n permutation matrix P (float64), ``P[i, perm[i]] = 1``.

    Acting on a representation, ``X @ P.T`` has column i equal to column ``perm[i]`` of X.

    Examples
    --------
    >>> P = random_permutation_matrix(4, random_state=0)
    >>> P.sum(axis=0).tolist(), P.sum(axis=1).tolist()
    ([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0])
    """
    n = _check_n(n)
    rng = check_random_state(random_state)
    P = np.zeros((n, n))
    P[np.arange(n), rng.permutation(n)] = 1.0
    return P


def random_orthogonal(n, random_state=None):
    """A Haar-distributed random orthogonal n x n matrix.

    QR decomposition of a standard Gaussian matrix, with the columns of Q multiplied by the
    signs of R's diagonal so that the result is Haar distributed (Mezzadri, "How to generate
    random matrices from the classical compact groups", Notices AMS 2007).

    Examples
    --------
    >>> Q = random_orthogonal(5, random_state=0)
    >>> bool(np.allclose(Q.T @ Q, np.eye(5), atol=1e-12))
    True
    """
    n = _check_n(n)
    rng = check_random_state(random_state)
    Q, R = np.linalg.qr(rng.normal(size=(n, n)))
    signs = np.sign(np.diag(R))
    signs[signs == 0] = 1.0
    return Q * signs[None, :]


def monomial_parts(A, atol=1e-10):
    """Split a monomial matrix A = P D into its permutation and its diagonal.

    An entry counts as zero when ``|a_ij| <= atol * max_j |a_ij|`` (relative to its row), so
    the test does not depend on the overall scale of A. A is monomial when every row and every
    column has exactly one entry that is not zero.

    Parameters
    ----------
    A : array-like, shape (n, n)
    atol : float
        Relative tolerance for an entry to count as zero.

    Returns
    -------
    (perm, d) or None
        ``perm`` (int array) and ``d`` (float array) with ``A[i, perm[i]] = d[perm[i]]``, i.e.
        ``A = P @ diag(d)`` where ``P[i, perm[i]] = 1``; None when A is not monomial.

    Examples
    --------
    >>> perm, d = monomial_parts([[0.0, 2.0], [-3.0, 0.0]])
    >>> perm.tolist(), d.tolist()
    ([1, 0], [-3.0, 2.0])
    >>> monomial_parts([[1.0, 1.0], [0.0, 1.0]]) is None
    True
    """
    A = _as_square(A)
    if A is None:
        return None
    n = A.shape[0]
    row_max = np.abs(A).max(axis=1)
    if np.any(row_max == 0.0):
        return None
    nonzero = np.abs(A) > atol * row_max[:, None]
    if np.any(nonzero.sum(axis=1) != 1) or np.any(nonzero.sum(axis=0) != 1):
        return None
    perm = np.argmax(nonzero, axis=1)
    d = np.empty(n)
    d[perm] = A[np.arange(n), perm]
    return perm, d


def inverse_matrix(A):
    """The inverse of an invertible square matrix; exact (entrywise reciprocals, transposed)
    when A is monomial, ``numpy.linalg.inv`` otherwise.

    Examples
    --------
    >>> inverse_matrix([[0.0, 4.0], [-2.0, 0.0]]).tolist()
    [[0.0, -0.5], [0.25, 0.0]]
    """
    M = _as_square(A)
    if M is None:
        raise ValueError("A must be a finite square matrix to be inverted")
    parts = monomial_parts(M, atol=0.0)
    if parts is None:
        return np.linalg.inv(M)
    inv = np.zeros((M.shape[1], M.shape[0]))
    rows, cols = np.nonzero(M)
    inv[cols, rows] = 1.0 / M[rows, cols]
    return inv


def _as_square(A):
    """A as a finite float64 square matrix, or None when it is not one."""
    try:
        A = as_float_array(A, "A")
    except TypeError:
        return None
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        return None
    if not np.all(np.isfinite(A)):
        return None
    return A


# -- the groups ------------------------------------------------------------------------------
class Group:
    """A transformation group acting on the neuron axis of representations.

    Subclasses set ``name`` (one of :data:`simmetrics.base.GROUP_NAMES`) and implement
    ``sample`` and ``contains``. Linear groups act by ``X -> X @ g.T``.

    Attributes
    ----------
    name : str
        The group's name.
    description : str
        The elements in words.
    linear : bool
        True for matrix groups (elements are n x n matrices), False for translations
        (elements are length-n vectors).

    Examples
    --------
    >>> G = get_group("positive_scaled_permutation")
    >>> A = G.sample(4, random_state=0)
    >>> G.contains(A), get_group("permutation").contains(A)
    (True, False)
    >>> G.act(np.ones((2, 4)), A).shape
    (2, 4)
    """

    name = ""
    description = ""
    linear = True

    def sample(self, n, random_state=None):
        """A random element for n neurons: an n x n float64 matrix (a length-n vector for
        translations)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def contains(self, A, atol=1e-10):
        """Whether ``A`` is an element of the group (to tolerance ``atol``)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def act(self, X, g):
        """Apply the element ``g`` to every sample of ``X`` (n_samples, n): ``X @ g.T``.

        Returns a new float64 array; ``X`` is not modified.
        """
        X = as_float_array(X, "X")
        g = as_float_array(g, "g")
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_neurons), got shape {X.shape}")
        if g.ndim != 2 or g.shape != (X.shape[1], X.shape[1]):
            raise ValueError(
                f"g must be a {X.shape[1]} x {X.shape[1]} matrix to act on X with "
                f"{X.shape[1]} neurons, got shape {g.shape}"
            )
        return X @ g.T

    def identity(self, n):
        """The identity element for n neurons."""
        return np.eye(_check_n(n))

    def inverse(self, g):
        """The inverse element: ``g^-1`` (exact for monomial matrices, whose inverse is
        D^-1 P')."""
        return inverse_matrix(g)

    @property
    def subgroups(self):
        """Names of the named groups contained in this one (itself included)."""
        return frozenset(name for name in GROUP_NAMES if is_subgroup(name, self.name))

    @property
    def supergroups(self):
        """Names of the named groups that contain this one (itself included)."""
        return frozenset(name for name in GROUP_NAMES if is_subgroup(self.name, name))

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self):
        return hash((type(self), tuple(sorted(vars(self).items()))))


class Permutation(Group):
    """Permutation matrices P: reordering the neurons.

    Examples
    --------
    >>> G = Permutation()
    >>> X = np.arange(6.0).reshape(2, 3)
    >>> P = G.sample(3, random_state=0)
    >>> G.contains(P), sorted(G.act(X, P)[0].tolist())
    (True, [0.0, 1.0, 2.0])
    """

    name = "permutation"
    description = "P: permutation matrices"

    def sample(self, n, random_state=None):
        return random_permutation_matrix(n, random_state)

    def contains(self, A, atol=1e-10):
        parts = monomial_parts(A, atol)
        return parts is not None and bool(np.all(np.abs(parts[1] - 1.0) <= atol))


class SignedPermutation(Group):
    """Signed permutation matrices P D, D = diag(+-1): the intertwiner group of tanh and other
    odd activations (also the orthogonal matrices that are monomial).

    Examples
    --------
    >>> G = SignedPermutation()
    >>> A = G.sample(4, random_state=0)
    >>> G.contains(A), sorted(np.abs(A).sum(axis=0).tolist())
    (True, [1.0, 1.0, 1.0, 1.0])
    """

    name = "signed_permutation"
    description = "P D with D diagonal, entries +-1"

    def sample(self, n, random_state=None):
        rng = check_random_state(random_state)
        P = random_permutation_matrix(n, rng)
        signs = rng.choice(np.array([-1.0, 1.0]), size=n)
        return P * signs[None, :]

    def contains(self, A, atol=1e-10):
        parts = monomial_parts(A, atol)
        return parts is not None and bool(np.all(np.abs(np.abs(parts[1]) - 1.0) <= atol))


class PositiveScaledPermutation(Group):
    """Positive scaled permutations P D, D diagonal with positive entries: G_ReLU, the
    intertwiner group of ReLU, LeakyReLU and PReLU (Godfrey et al. 2022, Table 1).

    Random elements draw the scales log-normally, ``d_i = exp(sigma z_i)`` with z standard
    normal (median scale 1).

    Parameters
    ----------
    sigma : float, default 1.0
        Standard deviation of log(d_i) in ``sample``.

    Examples
    --------
    >>> G = PositiveScaledPermutation()
    >>> A = G.sample(4, random_state=0)
    >>> G.contains(A), G.contains(-A)
    (True, False)
    """

    name = "positive_scaled_permutation"
    description = "P D with D diagonal, entries > 0 (G_ReLU)"

    def __init__(self, sigma=1.0):
        self.sigma = _check_positive(sigma, "sigma")

    def sample(self, n, random_state=None):
        rng = check_random_state(random_state)
        P = random_permutation_matrix(n, rng)
        return P * np.exp(self.sigma * rng.normal(size=n))[None, :]

    def contains(self, A, atol=1e-10):
        parts = monomial_parts(A, atol)
        return parts is not None and bool(np.all(parts[1] > 0.0))


class ScaledPermutation(Group):
    """Scaled permutations (monomial matrices) P D, D diagonal and invertible: the intertwiner
    group of abs and of x^d.

    Random elements draw independent random signs and log-normal magnitudes.

    Parameters
    ----------
    sigma : float, default 1.0
        Standard deviation of log|d_i| in ``sample``.

    Examples
    --------
    >>> G = ScaledPermutation()
    >>> G.contains([[0.0, -2.0], [0.5, 0.0]]), G.contains([[1.0, 1.0], [0.0, 1.0]])
    (True, False)
    """

    name = "scaled_permutation"
    description = "P D with D diagonal and invertible (monomial matrices)"

    def __init__(self, sigma=1.0):
        self.sigma = _check_positive(sigma, "sigma")

    def sample(self, n, random_state=None):
        rng = check_random_state(random_state)
        P = random_permutation_matrix(n, rng)
        signs = rng.choice(np.array([-1.0, 1.0]), size=n)
        return P * (signs * np.exp(self.sigma * rng.normal(size=n)))[None, :]

    def contains(self, A, atol=1e-10):
        return monomial_parts(A, atol) is not None


class Orthogonal(Group):
    """Orthogonal matrices Q (Q'Q = I); ``sample`` is Haar distributed.

    ``contains`` tests ``max |Q'Q - I| <= atol``.

    Examples
    --------
    >>> G = Orthogonal()
    >>> G.contains(G.sample(6, random_state=0)), G.contains(2 * np.eye(6))
    (True, False)
    """

    name = "orthogonal"
    description = "Q with Q'Q = I"

    def sample(self, n, random_state=None):
        return random_orthogonal(n, random_state)

    def contains(self, A, atol=1e-10):
        A = _as_square(A)
        if A is None:
            return False
        return bool(np.max(np.abs(A.T @ A - np.eye(A.shape[0]))) <= atol)


class InvertibleLinear(Group):
    """Invertible matrices GL_n.

    ``sample`` returns a well-conditioned random matrix U diag(s) V' with U, V Haar orthogonal
    and log(s_i) uniform on [-log(max_cond)/2, log(max_cond)/2], so its condition number is
    below ``max_cond``. ``contains`` asks for a finite square matrix whose smallest singular
    value exceeds ``atol`` times its largest.

    Parameters
    ----------
    max_cond : float, default 50.0
        Bound on the condition number of sampled elements.

    Examples
    --------
    >>> G = InvertibleLinear()
    >>> A = G.sample(8, random_state=0)
    >>> G.contains(A), bool(np.linalg.cond(A) < 50), G.contains(np.ones((3, 3)))
    (True, True, False)
    """

    name = "invertible_linear"
    description = "GL_n: every invertible matrix"

    def __init__(self, max_cond=50.0):
        self.max_cond = _check_positive(max_cond, "max_cond")
        if self.max_cond <= 1.0:
            raise ValueError(f"max_cond must be larger than 1, got {max_cond!r}")

    def sample(self, n, random_state=None):
        rng = check_random_state(random_state)
        U = random_orthogonal(n, rng)
        V = random_orthogonal(n, rng)
        half = 0.5 * np.log(self.max_cond)
        s = np.exp(rng.uniform(-half, half, size=n))
        return (U * s[None, :]) @ V.T

    def contains(self, A, atol=1e-10):
        A = _as_square(A)
        if A is None:
            return False
        s = np.linalg.svd(A, compute_uv=False)
        return bool(s[0] > 0.0 and s[-1] > atol * s[0])


class IsotropicScaling(Group):
    """Isotropic scalings c I with c > 0.

    ``sample`` draws c log-uniformly on [low, high] (default [1e-2, 1e2]).

    Parameters
    ----------
    low, high : float, default 1e-2, 1e2
        The range of sampled scales.

    Examples
    --------
    >>> G = IsotropicScaling()
    >>> G.contains(3 * np.eye(2)), G.contains(np.diag([1.0, 2.0])), G.contains(-np.eye(2))
    (True, False, False)
    """

    name = "isotropic_scaling"
    description = "c I with c > 0"

    def __init__(self, low=1e-2, high=1e2):
        self.low = _check_positive(low, "low")
        self.high = _check_positive(high, "high")
        if self.low > self.high:
            raise ValueError(f"low must not exceed high, got low={low!r}, high={high!r}")

    def sample(self, n, random_state=None):
        n = _check_n(n)
        rng = check_random_state(random_state)
        c = np.exp(rng.uniform(np.log(self.low), np.log(self.high)))
        return c * np.eye(n)

    def contains(self, A, atol=1e-10):
        A = _as_square(A)
        if A is None:
            return False
        c = A[0, 0]
        if c <= 0.0:
            return False
        return bool(np.max(np.abs(A - c * np.eye(A.shape[0]))) <= atol * c)


class Translation(Group):
    """Translations x -> x + t of every sample (shifting each neuron by a constant).

    Elements are length-n vectors t; ``act(X, t) = X + t``. ``sample`` draws t with
    independent N(0, scale^2) entries.

    Parameters
    ----------
    scale : float, default 10.0
        Standard deviation of the sampled shifts.

    Examples
    --------
    >>> G = Translation()
    >>> G.act(np.zeros((2, 3)), np.array([1.0, 2.0, 3.0]))[1].tolist()
    [1.0, 2.0, 3.0]
    """

    name = "translation"
    description = "x -> x + t (a shift of every neuron)"
    linear = False

    def __init__(self, scale=10.0):
        self.scale = _check_positive(scale, "scale")

    def sample(self, n, random_state=None):
        n = _check_n(n)
        return self.scale * check_random_state(random_state).normal(size=n)

    def act(self, X, g):
        X = as_float_array(X, "X")
        g = as_float_array(g, "g")
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_neurons), got shape {X.shape}")
        if g.shape != (X.shape[1],):
            raise ValueError(
                f"a translation of {X.shape[1]} neurons is a vector of length {X.shape[1]}, "
                f"got shape {g.shape}"
            )
        return X + g[None, :]

    def contains(self, A, atol=1e-10):
        try:
            A = as_float_array(A, "A")
        except TypeError:
            return False
        return bool(A.ndim == 1 and A.size > 0 and np.all(np.isfinite(A)))

    def identity(self, n):
        return np.zeros(_check_n(n))

    def inverse(self, g):
        return -as_float_array(g, "g")


_GROUPS = {
    cls.name: cls
    for cls in (
        Permutation,
        SignedPermutation,
        PositiveScaledPermutation,
        ScaledPermutation,
        Orthogonal,
        InvertibleLinear,
        IsotropicScaling,
        Translation,
    )
}
assert tuple(sorted(_GROUPS)) == tuple(sorted(GROUP_NAMES))

# Direct inclusions a -> groups that contain a; is_subgroup takes the transitive closure.
_PARENTS = {
    "permutation": ("signed_permutation", "positive_scaled_permutation"),
    "signed_permutation": ("scaled_permutation", "orthogonal"),
    "positive_scaled_permutation": ("scaled_permutation",),
    "isotropic_scaling": ("positive_scaled_permutation",),
    "scaled_permutation": ("invertible_linear",),
    "orthogonal": ("invertible_linear",),
    "invertible_linear": (),
    "translation": (),
}


def _canonical(name):
    if isinstance(name, Group):
        return name.name
    if not isinstance(name, str):
        raise TypeError(f"group name must be a str or a Group, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key in _GROUPS:
        return key
    close = difflib.get_close_matches(key, list(_GROUPS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"unknown group {name!r}{hint} Available: {', '.join(available_groups())}"
    )


def available_groups():
    """The names of the transformation groups, in the order of
    :data:`simmetrics.base.GROUP_NAMES`.

    Examples
    --------
    >>> available_groups()[:3]
    ['permutation', 'signed_permutation', 'positive_scaled_permutation']
    """
    return list(GROUP_NAMES)


def get_group(name, **params):
    """The group called ``name`` (a :class:`Group`), built with ``params`` (e.g. ``sigma``).

    Names are case-insensitive; an unknown name raises a ``ValueError`` with a did-you-mean
    suggestion. A :class:`Group` instance is returned unchanged.

    Examples
    --------
    >>> get_group("orthogonal")
    Orthogonal()
    >>> get_group("positive_scaled_permutation", sigma=0.5)
    PositiveScaledPermutation(sigma=0.5)
    >>> get_group("permutaton")
    Traceback (most recent call last):
    ...
    ValueError: unknown group 'permutaton'; did you mean 'permutation'? ...
    """
    if isinstance(name, Group):
        if params:
            raise TypeError("params cannot be given together with a Group instance")
        return name
    return _GROUPS[_canonical(name)](**params)


def is_subgroup(a, b):
    """Whether group ``a`` is contained in group ``b`` (every group contains itself).

    The inclusions are: permutation < signed_permutation < orthogonal < invertible_linear;
    permutation < positive_scaled_permutation < scaled_permutation < invertible_linear;
    signed_permutation < scaled_permutation; isotropic_scaling < positive_scaled_permutation.
    Translations are not linear and contain, and are contained in, none of the others.

    Examples
    --------
    >>> is_subgroup("permutation", "orthogonal"), is_subgroup("orthogonal", "scaled_permutation")
    (True, False)
    >>> is_subgroup("isotropic_scaling", "invertible_linear")
    True
    """
    a, b = _canonical(a), _canonical(b)
    seen, todo = set(), [a]
    while todo:
        g = todo.pop()
        if g == b:
            return True
        if g not in seen:
            seen.add(g)
            todo.extend(_PARENTS[g])
    return False
