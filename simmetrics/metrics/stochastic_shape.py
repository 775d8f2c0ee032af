"""Stochastic shape metrics: distances between networks whose responses vary from trial to trial.

Each input holds the responses of one network to the same stimuli on several repeats (trials),
an array of shape (n_stimuli, n_repeats, n_neurons). Duong, Zhou, Nassar, Berman, Olieslagers,
Williams, "Representational dissimilarity metric spaces for stochastic neural networks", ICLR
2023, compare two such networks by a ground distance between their response distributions to
each stimulus, averaged over stimuli and minimised over one orthogonal map Q of the neurons
applied to every response of the second network::

    d(X, Y)^2 = min_Q  mean_i  g(P_i^X, Q P_i^Y)^2

- :class:`GaussianStochasticShape` (``gaussian_stochastic_shape``): each P_i is summarised by
  its mean mu_i and covariance S_i, and g^2 = alpha ||mu_i^X - Q mu_i^Y||^2 + (2 - alpha)
  B^2(S_i^X, Q S_i^Y Q'), B the Bures distance; alpha = 1 is the 2-Wasserstein distance between
  Gaussians, alpha = 2 uses the means only (the Procrustes distance of the means, times
  sqrt(2 / n)), alpha = 0 the covariances only.
- :class:`EnergyStochasticShape` (``energy_stochastic_shape``): g^2 = E||x - Q y|| - (E||x -
  x'|| + E||y - y'||) / 2, half the energy distance of Szekely and Rizzo, estimated from the
  repeats.

Conventions are those of netrep (ahwillia/netrep, commit 0186b8a, ``GaussianStochasticMetric``
with ``group="orth", init="means"`` and ``EnergyStochasticMetric(group="orth")``); the code is
written here from the definitions. The choices, and where they differ from netrep:

1. **Input.** Numpy arrays or torch tensors of shape (n_stimuli, n_repeats, n_neurons), read
   as float64 on the host. Every representation needs at least 2 repeats (a covariance, a
   within-network distance); X and Y must hold the same stimuli and the same neurons (Q is
   square), and may have different numbers of repeats. A 2-D input, fewer than 2 repeats,
   different stimuli or widths, NaN or inf, is a ``ValueError`` naming the argument. The
   package's checks (dtype, NaN/inf counts) run through
   :func:`simmetrics._core.validation.check_representation` on the (n_stimuli * n_repeats,
   n_neurons) view, so the messages are the package's; the metric overrides only
   ``_validate_one`` and ``_validate``. A validated representation is held with its axes
   ordered (stimuli, neurons, repeats), so that axis 0 and axis 1 keep the package's meaning
   (stimuli, neurons) for every driver (``fit``'s ``n_features_x_``, :func:`simmetrics.pairwise`'s
   width checks). ``layout`` must be None (the axes are fixed as above).
2. **Alignment.** Alternating minimisation from netrep's initialisation "means": Q starts as
   the Procrustes rotation of the means; the Gaussian metric then alternates a rotation U_i per
   stimulus for the Bures term (B^2(A, B) = min_U ||A^1/2 - U B^1/2||^2) with one Procrustes
   step for Q on the stacked means and square roots (weights sqrt(alpha) and sqrt(2 - alpha));
   the energy metric minimises the mean distance by iteratively reweighted Procrustes steps
   (weights 1 / max(residual, 1e-12 times the data's scale)). Each step is equivariant under
   orthogonal maps of either input, so the value is exactly invariant (to rounding) under
   them. netrep weights its Gaussian fitting problem by alpha and (2 - alpha) instead of their
   square roots, which is the same problem for alpha in {0, 1, 2} only; here the problem
   minimised is the distance reported, for every alpha.
3. **Stopping.** After at least 3 steps (Gaussian) or 2 (energy), when the objective's decrease
   is at most ``tol`` times its value (relative, so scaling both inputs by c scales the value
   by c exactly; netrep's rule is absolute). ``niter`` caps the steps (netrep's defaults, 1000
   and 100); reaching the cap raises a ``sklearn.exceptions.ConvergenceWarning``. alpha = 0
   converges slowly: on seed11's Xs, Ys the cap of 1000 steps is reached (netrep stops there
   too, with the same value), and 1412 steps give a value 1.6e-3 lower.
4. **Near zero.** The Gaussian value is the root of a sum of explicit squared residuals
   (mean differences and Procrustes residuals of the covariance square roots), non-negative by
   construction: no sign convention and no clipping (netrep takes tr A + tr B - 2 ||A^1/2
   B^1/2||_*, which rounds to -4e-16 on seed11's Xs, Xs Q and passes the sign through the
   root: -1.9e-8). The energy estimate itself can be negative: netrep's ``estimator="unbiased"``
   averages the within-network distances over the r (r - 1) / 2 pairs of distinct repeats
   (an unbiased estimate of E||x - x'||), so identical inputs give a negative estimate; like
   netrep the value is sqrt(max(estimate, 0)). ``estimator="plugin"`` takes the energy
   distance of the empirical distributions of the repeats (the within-network mean over all r^2
   pairs), never negative but for rounding (clipped at 0), and a metric on every sample.
5. **Metric axioms.** The Gaussian value is a metric between the fitted Gaussians (a
   pseudometric: alpha = 0 ignores the means, alpha = 2 the covariances) when the alignment
   reaches the global minimum. The unbiased energy estimate is not a metric on finite samples:
   three networks with the same response distributions give estimates around 0, clipped
   unevenly, and the triangle inequality fails (``is_metric`` is False for it); the plug-in
   estimate is a metric.
6. **Invariances.** Orthogonal maps of the neurons (and their subgroups, signed and plain
   permutations) for both. Translation only for the Gaussian metric at alpha = 0 is a property
   of the objective, but the initialisation from the means moves under translation and the
   slow alpha = 0 iterations stop elsewhere: not declared. Neither is invariant to scaling.
"""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .._core.linalg import abs_max, times_pow2
from .._core.params import Integral, Interval, Options, Real
from .._core.registry import register
from .._core.validation import as_float_array, check_representation, shape_of
from ..base import Metric, param_dependent
from .stochastic_shape_gradient import energy_formula, gaussian_formula

__all__ = ["GaussianStochasticShape", "EnergyStochasticShape"]

_REFERENCE = (
    "Duong, Zhou, Nassar, Berman, Olieslagers, Williams, 'Representational dissimilarity metric "
    "spaces for stochastic neural networks', ICLR 2023 (conventions of netrep, "
    "ahwillia/netrep 0186b8a)"
)

_INVARIANCES = frozenset({"orthogonal", "signed_permutation", "permutation"})

#: Residual norms below this fraction of the data's scale get the weight of this floor in the
#: reweighted Procrustes steps of the energy metric.
_RESIDUAL_FLOOR = 1e-12

#: Entries of the (stimuli x repeats x repeats x neurons) differences formed at once.
_BLOCK_ENTRIES = 2**22


def _polar(M):
    """The orthogonal factor of the polar decomposition of each square matrix in ``M``
    (U W' for M = U S W'): the rotation R maximising tr(R' M)."""
    U, _, Wt = np.linalg.svd(M)
    return U @ Wt


class _Scaled:
    """Per-representation arrays held in units of 2^e (``e`` from the data's largest
    magnitude), so that squares neither overflow nor underflow; powers of two are exact."""

    __slots__ = ("arrays", "e")

    def __init__(self, arrays, e):
        self.arrays, self.e = arrays, e


def _exponent(A):
    top = abs_max(A)
    return int(np.frexp(top)[1]) if top > 0.0 else 0


def _common(state_x, state_y, even=False):
    """Both states' arrays in the units 2^e of the larger one (``even``: e rounded up to an
    even number, for values whose root is taken), and e."""
    e = max(state_x.e, state_y.e)
    e += e % 2 if even else 0
    out = [[times_pow2(a, s.e - e) for a in s.arrays] for s in (state_x, state_y)]
    return out[0], out[1], e


def _pair_norms(A, B):
    """||a_k - b_l|| for every stimulus and every pair of repeats: (n, r_a, r_b) from A (n, d,
    r_a) and B (n, d, r_b), formed as explicit differences a block of stimuli at a time."""
    n, d, ra = A.shape
    rb = B.shape[2]
    out = np.empty((n, ra, rb))
    step = max(1, _BLOCK_ENTRIES // max(1, d * ra * rb))
    for start in range(0, n, step):
        a, b = A[start:start + step], B[start:start + step]
        diff = a[:, :, :, None] - b[:, :, None, :]
        out[start:start + step] = np.sqrt(np.einsum("ndkl,ndkl->nkl", diff, diff))
    return out


class _StochasticMetric(Metric):
    """What both stochastic shape metrics share: 3-D input, validation, the pair step."""

    kind = "distance"
    bounds = (0.0, float("inf"))
    same_width = True
    reference = _REFERENCE
    input_repeats = True
    def _gradient_rows(self, X, Y, nx):
        """The inputs as they are given, (n_stimuli, n_repeats, n_neurons), as float64 values
        of ``nx`` (the formulas read the repeats' axis themselves)."""
        return nx.asarray(X), nx.asarray(Y)
    invariances = _INVARIANCES
    _parameter_constraints = {
        "layout": [None],
        "niter": [Interval(Integral, 1, None)],
        "tol": [Interval(Real, 0, None, closed="left")],
    }

    def _validate_one(self, A, name):
        """One representation: a float64 (n_stimuli, n_neurons, n_repeats) array (see the
        module docstring, point 1)."""
        B = as_float_array(A, name)
        if B.ndim != 3:
            shape = "x".join(map(str, B.shape)) or "scalar"
            hint = ("; a deterministic (n_stimuli, n_neurons) representation has no "
                    "trial-to-trial variability to compare: use a shape metric such as "
                    "'procrustes'" if B.ndim == 2 else "")
            raise ValueError(
                f"{name} must be 3-D (n_stimuli, n_repeats, n_neurons) for "
                f"{type(self).__name__}, got a {B.ndim}-D array of shape ({shape}){hint}")
        n, r, d = B.shape
        check_representation(B.reshape(n * r, d), name, min_samples=0)  # empty, NaN, inf
        if r < 2:
            raise ValueError(
                f"{name} has {r} repeat per stimulus (axis 1), but {type(self).__name__} "
                "needs at least 2 to estimate each stimulus's response distribution")
        if n < self.min_samples:
            raise ValueError(f"{name} has {n} stimuli, but this estimator needs at least "
                             f"{self.min_samples}")
        self._check_rows(n, d)
        return np.ascontiguousarray(np.moveaxis(B, 1, 2))

    def _validate(self, X, Y):
        shapes = shape_of(X), shape_of(Y)
        X, Y = self._validate_one(X, "X"), self._validate_one(Y, "Y")
        if X.shape[0] != Y.shape[0]:
            raise ValueError(
                "X and Y must hold the same stimuli (axis 0): "
                f"X has {X.shape[0]}, Y has {Y.shape[0]} (shapes {shapes[0]} and {shapes[1]})")
        if X.shape[1] != Y.shape[1]:
            raise ValueError(
                "X and Y must have the same number of neurons (axis 2) for this metric: "
                f"X has {X.shape[1]}, Y has {Y.shape[1]}")
        return X, Y

    def _converged(self, steps):
        if steps >= self.niter:
            warnings.warn(
                f"{type(self).__name__} stopped at niter={self.niter} steps before the "
                f"relative decrease fell below tol={self.tol:g}; increase niter",
                ConvergenceWarning, stacklevel=4)


@register("gaussian_stochastic_shape")
class GaussianStochasticShape(_StochasticMetric):
    """Gaussian stochastic shape distance: Wasserstein-type distance between the stimuli's
    Gaussian response distributions, minimised over an orthogonal map of the neurons.

    With mu_i, S_i the mean and covariance (``numpy.cov``, ddof 1) of the repeats to stimulus
    i, and Q orthogonal (Duong et al., ICLR 2023, eq. for the interpolated ground metric)::

        d_alpha(X, Y) = sqrt( min_Q mean_i [ alpha ||mu_i^X - Q mu_i^Y||^2
                                             + (2 - alpha) B^2(S_i^X, Q S_i^Y Q') ] )
        B^2(A, B) = tr A + tr B - 2 tr (A^1/2 B A^1/2)^1/2 = min_U ||A^1/2 - U B^1/2||_F^2

    alpha = 1 is the 2-Wasserstein distance, alpha = 2 the means only, alpha = 0 the
    covariances only. Convention of netrep's ``GaussianStochasticMetric(alpha, group="orth",
    init="means")``; see :mod:`simmetrics.metrics.stochastic_shape` for the alignment, the
    stopping rule and where this differs from netrep.

    Parameters
    ----------
    alpha : float in [0, 2]
        Weight of the means against the covariances.
    niter : int
        The most alternating steps (netrep's default, 1000).
    tol : float
        Stop when a step lowers the squared distance by at most ``tol`` times its value.
    layout : None
        The axes are fixed: (n_stimuli, n_repeats, n_neurons).

    Attributes
    ----------
    alignment_ : ndarray (n_neurons, n_neurons)
        After ``fit_score``: Q' in row form (``Y_repeat @ alignment_`` is aligned to X).
    n_iter_ : int
        Steps run.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 10, 4)) + rng.normal(size=(30, 1, 4))
    >>> Q = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    >>> round(GaussianStochasticShape().fit_score(X, X @ Q), 8)
    0.0
    >>> GaussianStochasticShape(alpha=2.0).fit_score(X, X + 1.0) > 0
    True
    """

    is_metric = True
    _parameter_constraints = {"alpha": [Interval(Real, 0, 2, closed="both")]}

    def __init__(self, alpha=1.0, niter=1000, tol=1e-8, layout=None):
        self.alpha = alpha
        self.niter = niter
        self.tol = tol
        self.layout = layout

    def _memory_bytes(self, n, d, count, jobs=1):
        """Each prepared representation holds n d x d covariance roots; a pair step about
        six more n x d x d arrays (products, SVD factors, residuals)."""
        held = count + 6 * jobs
        return 8 * n * d * d * held, f"about {held} float64 arrays of {n:,} x {d} x {d}"

    def _partial_fit(self, A, name):
        """Means (n, d) and symmetric square roots of the covariances (n, d, d)."""
        e = _exponent(A)
        A = times_pow2(A, -e)
        mu = A.mean(axis=2)
        C = A - mu[:, :, None]
        C -= C.mean(axis=2, keepdims=True)  # second pass: see simmetrics._core.linalg.center
        cov = np.einsum("nik,njk->nij", C, C) / (A.shape[2] - 1)
        w, V = np.linalg.eigh(cov)
        root = (V * np.sqrt(np.maximum(w, 0.0))[:, None, :]) @ V.transpose(0, 2, 1)
        return _Scaled((mu, root), e)

    def _gradient_formula(self, X, Y, nx):
        """The value at the fitted alignment (Danskin's theorem), the Bures terms through the
        factors of the covariances: :func:`simmetrics.metrics.stochastic_shape_gradient.gaussian_formula`."""
        return gaussian_formula(X, Y, nx.asarray(self.alignment_), self.alpha, nx)

    def _finalize_fit_score(self, state_x, state_y):
        (mx, Rx), (my, Ry), e = _common(state_x, state_y)
        a, b = float(self.alpha), 2.0 - float(self.alpha)
        n = mx.shape[0]
        T = _polar(my.T @ mx)  # netrep's init="means": Procrustes of the means, my @ T ~ mx
        previous, steps = np.inf, 0
        for steps in range(1, self.niter + 1):
            # per stimulus, the rotation U_i of the Bures term: min ||Rx_i - U_i' Ry_i T||
            U = _polar(Ry @ T @ Rx)
            B = U.transpose(0, 2, 1) @ Ry
            T = _polar(a * (my.T @ mx) + b * np.einsum("nji,njk->ik", B, Rx))
            loss = (a * np.sum((mx - my @ T) ** 2) + b * np.sum((Rx - B @ T) ** 2)) / n
            if steps >= 3 and previous - loss <= self.tol * loss:
                break
            previous = loss
        else:
            self._converged(steps)
        # the value at the final Q: explicit residuals (each Bures term at its optimal U_i)
        U = _polar(Ry @ T @ Rx)
        bures = np.sum((Rx - U.transpose(0, 2, 1) @ Ry @ T) ** 2, axis=(1, 2))
        means = np.sum((mx - my @ T) ** 2, axis=1)
        self.alignment_, self.n_iter_ = T, steps
        return float(times_pow2(np.sqrt(np.mean(a * means + b * bures)), e))


@register("energy_stochastic_shape")
class EnergyStochasticShape(_StochasticMetric):
    """Energy stochastic shape distance: the energy distance between the stimuli's response
    distributions, estimated from the repeats and minimised over an orthogonal map.

    With x_ik the response of X to stimulus i on repeat k (r_x repeats), y_il likewise, and Q
    orthogonal (Duong et al., ICLR 2023, the energy-distance stochastic metric; Szekely and
    Rizzo, J. Stat. Plann. Inference 2013, the energy distance)::

        e(X, Y) = min_Q mean_i mean_(k, l) ||x_ik - Q y_il||
                  - (w(X) + w(Y)) / 2
        w(X)    = mean_i mean_(k < k') ||x_ik - x_ik'||       (estimator="unbiased", netrep)
                  mean_i mean_(k, k') ||x_ik - x_ik'||        (estimator="plugin")
        d(X, Y) = sqrt(max(e(X, Y), 0))

    Convention of netrep's ``EnergyStochasticMetric(group="orth")`` (its value is half the
    energy distance of Szekely and Rizzo, under the root); see
    :mod:`simmetrics.metrics.stochastic_shape` for the alignment (iteratively reweighted
    Procrustes), the stopping rule, and why only the plug-in estimate is a metric.

    Parameters
    ----------
    niter : int
        The most reweighted Procrustes steps (netrep's default, 100).
    tol : float
        Stop when a step lowers the mean distance by at most ``tol`` times its value.
    estimator : {"unbiased", "plugin"}
        How the within-network term is averaged (above): netrep's unbiased estimate (can be
        negative, so identical inputs give 0 after clipping, and no triangle inequality on
        finite samples), or the empirical distributions' energy distance (a metric).
    layout : None
        The axes are fixed: (n_stimuli, n_repeats, n_neurons).

    Attributes
    ----------
    alignment_ : ndarray (n_neurons, n_neurons)
        After ``fit_score``: Q' in row form (``Y_repeat @ alignment_`` is aligned to X).
    n_iter_ : int
        Steps run.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 10, 4)) + rng.normal(size=(30, 1, 4))
    >>> Q = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    >>> EnergyStochasticShape().fit_score(X, X @ Q)
    0.0
    >>> EnergyStochasticShape(estimator="plugin").fit_score(X, X + 1.0) > 0.5
    True
    """

    is_metric = param_dependent(lambda self: self.estimator == "plugin")
    _parameter_constraints = {"estimator": [Options({"unbiased", "plugin"})]}

    def __init__(self, niter=100, tol=1e-6, estimator="unbiased", layout=None):
        self.niter = niter
        self.tol = tol
        self.estimator = estimator
        self.layout = layout

    def _partial_fit(self, A, name):
        """The responses (n, d, r) and the within-network term w (in the same units)."""
        e = _exponent(A)
        A = times_pow2(A, -e)
        r = A.shape[2]
        pairs = r * (r - 1) if self.estimator == "unbiased" else r * r
        within = np.sum(_pair_norms(A, A)) / (A.shape[0] * pairs)  # the diagonal is 0
        return _Scaled((A, np.float64(within)), e)

    def _gradient_formula(self, X, Y, nx):
        """The value at the fitted alignment (Danskin's theorem):
        :func:`simmetrics.metrics.stochastic_shape_gradient.energy_formula`."""
        return energy_formula(X, Y, nx.asarray(self.alignment_), self.estimator == "unbiased",
                              nx)

    def _finalize_fit_score(self, state_x, state_y):
        (X, wx), (Y, wy), e = _common(state_x, state_y, even=True)
        floor = _RESIDUAL_FLOOR * max(abs_max(X), abs_max(Y))
        weights = np.ones((X.shape[0], X.shape[2], Y.shape[2]))
        previous, steps = np.inf, 0
        for steps in range(1, self.niter + 1):
            # Procrustes with weights w_ikl on the pairs: max sum w <x_ik, Q' y_il>, row form
            T = _polar(np.einsum("nkl,njl,nik->ji", weights, Y, X))
            resid = _pair_norms(X, np.einsum("njl,ji->nil", Y, T))
            loss = float(np.mean(resid))
            if steps >= 2 and previous - loss <= self.tol * loss:
                break
            previous = loss
            weights = 1.0 / np.maximum(resid, floor)
        else:
            self._converged(steps)
        self.alignment_, self.n_iter_ = T, steps
        estimate = loss - 0.5 * (wx + wy)
        # the estimate is in units of 2^e (a distance), its root in units of 2^(e / 2)
        return float(times_pow2(np.sqrt(max(estimate, 0.0)), e // 2))
