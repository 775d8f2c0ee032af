"""Regression predictivity: how well a linear map fitted on training stimuli predicts held-out
responses, Brain-Score's model-to-brain score.

:class:`LinearPredictivity` fits a regression from a source (the model X) to a target (the
neurons Y) in ``fit`` and, in ``score``, predicts the target of other stimuli and takes the
median over target columns of the Pearson r between prediction and target, Brain-Score's
``CrossRegressedCorrelation`` (Schrimpf et al. 2018, "Brain-Score: which artificial neural
network for object recognition is most brain-like?", bioRxiv 407007; Yamins et al. 2014,
PNAS, for the linear-regression predictivity of neural responses). With scikit-learn's
cross-validation it gives Brain-Score's per-split values::

    cross_val_score(LinearPredictivity(), X, Y, cv=ShuffleSplit(10, train_size=0.9,
                                                                random_state=1))

The regressions are in :mod:`simmetrics.metrics.regression`. Linear, ridge and
neuron-to-neuron predictivity depend on the data only through second moments (X'X, X'Y, Y'Y,
the sums), so they stream exactly
(:func:`simmetrics.stream_score`, and ``score_from_moments(..., fit=False)`` on a held-out
stream); where features outnumber the training stimuli they are solved in dual (kernel) form,
in O(n^2 + n t) memory beyond the data (never the d x t coefficient matrix). Noise ceilings
are in :mod:`simmetrics.ceiling`.
"""

import warnings

import numpy as np

from .._core.linalg import abs_max, pow2_rescale, times_pow2
from .._core.params import Boolean, Integral, Interval, Options, Real
from .._core.registry import register
from .._core.validation import check_nonconstant
from ..base import AlignmentMetric, param_dependent
from ..moments import check_nonconstant_moments
from .regression import (
    BRAINSCORE_ALPHAS,
    best_single_source,
    centred_cross_kernel,
    least_squares_primal,
    pls_nipals,
    ridge_dual,
    ridge_from_spectrum,
    ridge_loo_select,
    ridge_primal,
    spectrum_of,
)

__all__ = ["LinearPredictivity", "BRAINSCORE_ALPHAS", "ConstantColumnsWarning",
           "median_correlation"]

REGRESSIONS = ("pls", "ridge", "ridgecv", "linear", "neuron_to_neuron")
_STREAMING = ("linear", "ridge", "neuron_to_neuron")
_KERNEL_ROUTES = ("linear", "ridge", "ridgecv")
#: regressions whose predictions scale with the source (least squares, PLS, neuron-to-neuron):
#: extreme sources are fitted after an exact power-of-two rescaling
_SCALE_FREE = ("linear", "pls", "neuron_to_neuron")
#: data outside [2^-100, 2^100] in magnitude are rescaled by a power of two (as the moments are)
_SAFE_EXPONENT = 100


def _exponent(A):
    """The power-of-two exponent e that brings A's largest magnitude into [0.5, 1) when it is
    outside [2^-100, 2^100] (squares would over- or underflow), else 0."""
    top = abs_max(A)
    if top == 0.0 or 2.0**-_SAFE_EXPONENT <= top <= 2.0**_SAFE_EXPONENT:
        return 0
    return -int(np.frexp(top)[1])

_INVARIANCES = {
    # least squares: any invertible map of the source, any non-zero scaling of each target
    # column (its prediction scales with it); neither side: a rotation of the target
    "linear": frozenset({"permutation", "signed_permutation", "positive_scaled_permutation",
                         "scaled_permutation", "isotropic_scaling", "translation"}),
    # a fixed penalty: rotations of the source, scalings of target columns, not both
    "ridge": frozenset({"permutation", "signed_permutation", "translation"}),
    "ridgecv": frozenset({"permutation", "signed_permutation", "translation"}),
    # the most correlated unit: its sign matters
    "neuron_to_neuron": frozenset({"permutation", "positive_scaled_permutation",
                                   "isotropic_scaling", "translation"}),
}
#: NIPALS with Brain-Score's stopping rule depends on which target column starts the power
#: iteration; run to convergence (tol=0) it is the exact PLS, invariant to signed permutations
_PLS_INVARIANCES = frozenset({"isotropic_scaling", "translation"})
_PLS_CONVERGED = _PLS_INVARIANCES | {"permutation", "signed_permutation"}


def _invariances(metric):
    if metric.regression == "pls":
        return _PLS_CONVERGED if metric.tol == 0 else _PLS_INVARIANCES
    return _INVARIANCES.get(metric.regression, frozenset())


class ConstantColumnsWarning(UserWarning):
    """Columns left out of a predictivity median because their Pearson r is undefined."""


def median_correlation(P, T):
    """(median, skipped): the median over columns of the Pearson r between the columns of
    prediction P and target T, leaving out (and counting) the columns where either is
    constant on these rows, whose r is undefined (Brain-Score's median skips the NaN that
    ``scipy.stats.pearsonr`` returns there). All columns undefined: a ``ValueError``."""
    P, T = pow2_rescale(P), pow2_rescale(T)  # exact: r is unchanged, no square overflows
    live = (np.ptp(T, axis=0) > 0) & (np.ptp(P, axis=0) > 0)
    if not live.any():
        raise ValueError(
            "every target column (or its prediction) is constant on the scored stimuli, so "
            "no Pearson r is defined: score on stimuli where the target varies"
        )
    Pc = P[:, live] - P[:, live].mean(axis=0)
    Tc = T[:, live] - T[:, live].mean(axis=0)
    Pc /= np.sqrt(np.einsum("ij,ij->j", Pc, Pc))
    Tc /= np.sqrt(np.einsum("ij,ij->j", Tc, Tc))
    r = np.clip(np.einsum("ij,ij->j", Pc, Tc), -1.0, 1.0)
    return float(np.median(r)), int(live.size - live.sum()), r, live


@register("linear_predictivity", aliases=("brainscore_predictivity",))
class LinearPredictivity(AlignmentMetric):
    """Cross-validated regression predictivity (Brain-Score's ``CrossRegressedCorrelation``).

    ``fit(X, Y)`` fits a linear map from the source X to the target Y on training stimuli
    (``reverse=True``: from Y to X); ``score(X, Y)`` predicts the target of the stimuli given
    and returns::

        median_j  r(prediction_j, target_j)        (Pearson r over the scored stimuli)

    Target columns that are constant on the scored stimuli (or whose prediction is, e.g. a
    target silent on every training stimulus) have no r: they are left out of the median, as
    Brain-Score's NaN-skipping median does, counted in ``n_skipped_`` and announced by a
    :class:`ConstantColumnsWarning`; if none is left, ``score`` raises. Being a median, the
    value does not move when a minority of target neurons is badly predicted
    (:meth:`per_column_r` gives every neuron's r). ``fit_score`` scores the training stimuli
    themselves (in-sample r).

    Regressions (every one with an intercept; Brain-Score 2.4.2's settings, scikit-learn's
    definitions, written here with numpy, :mod:`simmetrics.metrics.regression`):

    - ``"pls"``: PLS regression with ``n_components`` components and no scaling
      (``PLSRegression(n_components=25, scale=False)``), by NIPALS with scikit-learn's
      stopping rule (``tol``, ``max_iter``); more components than source columns is an error
      (as in Brain-Score and scikit-learn), more than n_train - 1 are cut to n_train - 1
      (``n_components_``);
    - ``"ridge"``: ridge, B = (Sc'Sc + alpha I)^-1 Sc'Tc (``Ridge(alpha=1)``);
    - ``"ridgecv"``: ridge with alpha chosen from ``alphas`` (Brain-Score's 99 values, 0.01
      to 1e7) by the exact leave-one-out error summed over targets (``RidgeCV``; ``alpha_``);
    - ``"linear"``: least squares, minimum-norm where the source is rank-deficient
      (``LinearRegression``);
    - ``"neuron_to_neuron"``: each target column predicted by the single source column most
      correlated with it on the training stimuli (``mapping_``; the lowest index on a tie).

    With ``solver="auto"`` linear, ridge and RidgeCV use the dual (kernel) form when the
    source has more columns than training stimuli: A = (Kc + alpha I)^-1 Tc with the centred
    kernel Kc = Sc Sc', predictions Kc(test, train) A; the training source is kept
    (``X_fit_``) instead of the d x t coefficients.

    A **similarity** in [-1, 1]; asymmetric (``reverse`` swaps the roles), not a metric.
    Invariances (declared for either side, measured by the test suite): every regression
    centres, so translation; least squares any invertible map of the source and any non-zero
    scaling of a target column, hence the scaled permutations; ridge and RidgeCV signed
    permutations only (a fixed penalty is not scale-free); neuron-to-neuron positive scalings
    and permutations; PLS isotropic scaling (and signed permutations when ``tol=0`` runs
    NIPALS to convergence: Brain-Score's early stop depends on the first target column).
    Held out, least squares with more source columns than stimuli is the minimum-norm
    solution, which depends on the source's scaling.

    Parameters
    ----------
    regression : {"pls", "ridge", "ridgecv", "linear", "neuron_to_neuron"}, default "linear"
        Least squares by default: the regression whose value on identical inputs is 1 and
        that sees through any invertible map of the source; Brain-Score's benchmarks use
        "pls" (its ``CrossRegressedCorrelation`` default) or "ridgecv".
    n_components : int >= 1, default 25
        PLS components (Brain-Score's 25).
    alpha : float >= 0, default 1.0
        Ridge penalty (``regression="ridge"``).
    alphas : sequence of float > 0 or None, default None
        RidgeCV's candidates; None is Brain-Score's list (:data:`BRAINSCORE_ALPHAS`).
    reverse : bool, default False
        Predict X from Y (Brain-Score's ``ReverseCrossRegressedCorrelation``).
    tol : float >= 0, default 1e-6
        NIPALS stopping threshold on the squared change of the weights (scikit-learn's).
    max_iter : int >= 1, default 500
        NIPALS iterations per component at most.
    solver : {"auto", "primal", "dual"}, default "auto"
        Primal (d x d) or dual (n x n) form of linear, ridge and RidgeCV.
    layout : {None, "nchw", "nhwc", "ntd", "flatten"}, default None
        How to read inputs with more than two axes (see :data:`simmetrics.LAYOUTS`).

    Attributes
    ----------
    coef_ : ndarray (d_source, d_target) or None
        The map of centred source to centred target (None in dual form).
    dual_coef_, X_fit_ : ndarray or None
        Dual coefficients and the training source (dual form only).
    mean_source_, mean_target_ : ndarray
        Training means (prediction = (S - mean_source_) coef_ + mean_target_).
    alpha_ : float
        RidgeCV's alpha (the fixed alpha for ridge, 0 for least squares).
    n_components_ : int
        PLS components used.
    mapping_ : ndarray of int
        Neuron-to-neuron: the source column of each target column (-1: constant target).
    n_skipped_ : int
        Set by ``score``: target columns left out of the median.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 10))
    >>> Y = X @ rng.normal(size=(10, 5)) + 0.5 * rng.normal(size=(200, 5))
    >>> metric = LinearPredictivity(regression="ridge").fit(X[:150], Y[:150])
    >>> bool(0.8 < metric.score(X[150:], Y[150:]) < 1.0)
    True
    >>> from sklearn.model_selection import cross_val_score, ShuffleSplit
    >>> scores = cross_val_score(LinearPredictivity(regression="linear"), X, Y,
    ...                          cv=ShuffleSplit(3, train_size=0.9, random_state=1))
    >>> scores.shape
    (3,)
    """

    kind = "similarity"
    bounds = (-1.0, 1.0)
    is_metric = False
    symmetric = False
    invariances = param_dependent(_invariances)
    min_samples = 3
    same_width = False
    reference = ("Schrimpf et al. 2018, Brain-Score: which artificial neural network for object "
                 "recognition is most brain-like?, bioRxiv 407007; convention of Brain-Score "
                 "vision 2.4.2 (CrossRegressedCorrelation)")
    # its fit_score is a held-in median of correlations (piecewise in which column is the
    # median) after a fitted regression; no gradient formula is written for it yet
    _gradient_note = ("no gradient formula is written yet for the regression predictivity (a "
                      "median over target neurons of fitted-regression correlations); train "
                      "with linear_regression (R^2 of the least-squares map) or linear_cka")

    _parameter_constraints = {
        "regression": [Options(REGRESSIONS)],
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "alphas": [None, list, tuple, np.ndarray],
        "reverse": [Boolean()],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "solver": [Options(("auto", "primal", "dual"))],
    }

    def __init__(self, regression="linear", n_components=25, alpha=1.0, alphas=None,
                 reverse=False, tol=1e-6, max_iter=500, solver="auto", layout=None):
        self.regression = regression
        self.n_components = n_components
        self.alpha = alpha
        self.alphas = alphas
        self.reverse = reverse
        self.tol = tol
        self.max_iter = max_iter
        self.solver = solver
        self.layout = layout

    # -- parameters and roles -----------------------------------------------------------------
    def _alpha_list(self):
        if self.alphas is None:
            return BRAINSCORE_ALPHAS
        values = np.asarray(self.alphas, dtype=float).ravel()
        if values.size == 0 or not np.all(np.isfinite(values)) or not np.all(values > 0):
            raise ValueError(
                f"alphas must be a non-empty sequence of positive finite numbers, got "
                f"{self.alphas!r}"
            )
        return tuple(float(a) for a in values)

    def _roles(self, X, Y):
        """(source, target, their names)."""
        return (Y, X, "Y", "X") if self.reverse else (X, Y, "X", "Y")

    def _dual(self, n, d):
        if self.regression not in _KERNEL_ROUTES:
            return False
        return self.solver == "dual" or (self.solver == "auto" and d > n)

    # -- memory: the kernel (n x n) or Gram (d x d) and a centred block ---------------------------
    def _memory_bytes(self, n, d, count, jobs=1):
        """Peak bytes of one regression on n stimuli and d columns: the n x n kernel or
        d x d Gram (the smaller), its factorisation, and centred copies of the data."""
        m = min(n, d)
        nbytes = 8 * (3 * m * m + 2 * n * d)
        return nbytes, (f"the {m:,} x {m:,} {'kernel' if n <= d else 'Gram matrix'} of the "
                        "regression, its factorisation and centred copies of the data")

    # -- fit -------------------------------------------------------------------------------------
    def _fit(self, X, Y):
        S, T, s_name, _ = self._roles(X, Y)
        check_nonconstant(S, s_name)
        n, d = S.shape
        regression = self.regression
        self.source_exponent_ = _exponent(S) if regression in _SCALE_FREE else 0
        self.target_exponent_ = _exponent(T)
        self.moment_exponents_ = (-self.source_exponent_, -self.target_exponent_)
        self.mean_source_ = S.mean(axis=0)
        self.mean_target_ = T.mean(axis=0)
        self.coef_ = self.dual_coef_ = self.X_fit_ = None
        self.alpha_ = float(self.alpha) if regression == "ridge" else 0.0
        Tc = times_pow2(T - self.mean_target_, self.target_exponent_)
        if regression == "neuron_to_neuron":
            self.mapping_ = best_single_source(S, T)
            return
        if self._dual(n, d):
            Sx = times_pow2(S, self.source_exponent_) if self.source_exponent_ else S
            Kc = centred_cross_kernel(Sx, Sx, times_pow2(self.mean_source_,
                                                        self.source_exponent_))
            if regression == "ridgecv":
                U, values, _ = spectrum_of(Kc=Kc)
                self.alpha_, _ = ridge_loo_select(U, values, Tc, self._alpha_list())
                self.dual_coef_ = ridge_from_spectrum(U, values, None, Tc, self.alpha_)
            else:
                self.dual_coef_ = ridge_dual(Kc, Tc, self.alpha_)
            self.X_fit_ = S
            self._check_finite(self.dual_coef_, s_name)
            return
        Sc = times_pow2(S - self.mean_source_, self.source_exponent_)
        if regression == "pls":
            if int(self.n_components) > d:
                raise ValueError(
                    f"n_components={self.n_components} exceeds the {d} columns of the source "
                    f"{s_name}: PLS has at most {d} components (Brain-Score and scikit-learn "
                    "raise here too)"
                )
            wanted = min(int(self.n_components), n - 1)
            self.coef_, self.n_components_ = pls_nipals(Sc, Tc, wanted, float(self.tol),
                                                        int(self.max_iter))
        elif regression == "ridgecv":
            U, values, V = spectrum_of(Sc=Sc)
            self.alpha_, _ = ridge_loo_select(U, values, Tc, self._alpha_list())
            self.coef_ = ridge_from_spectrum(U, values, V, Tc, self.alpha_)
        elif regression == "ridge" and self.alpha_ > 0:
            self.coef_ = ridge_primal(Sc, Tc, self.alpha_)
        else:
            self.coef_ = least_squares_primal(Sc, Tc)
        self._check_finite(self.coef_, s_name)

    @staticmethod
    def _check_finite(coef, name):
        if not np.all(np.isfinite(coef)):
            raise ValueError(
                f"the regression's coefficients overflow for these values of {name} (ridge's "
                "fixed penalty depends on the data's scale, so it is not rescaled): bring "
                f"{name} to ordinary magnitudes, or use regression='linear'"
            )

    # -- predict and score -----------------------------------------------------------------------
    def _predict(self, S):
        if self.regression == "neuron_to_neuron":
            mapping = self.mapping_
            P = np.empty((S.shape[0], mapping.size))
            known = mapping >= 0
            P[:, known] = S[:, mapping[known]]
            P[:, ~known] = self.mean_target_[~known]  # constant: skipped when scored
            return P
        e = self.source_exponent_
        if self.coef_ is None:
            A, B, mean = S, self.X_fit_, self.mean_source_
            if e:
                A, B, mean = times_pow2(A, e), times_pow2(B, e), times_pow2(mean, e)
            centred = centred_cross_kernel(A, B, mean) @ self.dual_coef_
        else:
            centred = times_pow2(S - self.mean_source_, e) @ self.coef_
        # in the target's units (the intercept does not change any r)
        return times_pow2(centred, -self.target_exponent_) + self.mean_target_

    def _report_skipped(self, skipped, total):
        self.n_skipped_ = skipped
        if skipped:
            warnings.warn(
                f"{skipped} of {total} target columns are constant on the scored stimuli (or "
                "have a constant prediction), so their Pearson r is undefined: they are left "
                "out of the median (n_skipped_), as Brain-Score does",
                ConstantColumnsWarning, stacklevel=3,
            )

    def _score(self, X, Y):
        S, T, _, _ = self._roles(X, Y)
        value, skipped, _, _ = median_correlation(self._predict(S), T)
        self._report_skipped(skipped, T.shape[1])
        return value

    def per_column_r(self, X, Y):
        """The held-out Pearson r of every target column (NaN where it is left out), the
        values whose median :meth:`score` returns (Brain-Score's per-neuroid scores)."""
        self._validate_params()
        X, Y = self._validate(X, Y)
        self._check_fitted(X, Y)
        S, T, _, _ = self._roles(X, Y)
        _, _, r, live = median_correlation(self._predict(S), T)
        out = np.full(T.shape[1], np.nan)
        out[live] = r
        return out

    def _transform(self, X, Y):
        """(prediction of Y, Y), or with ``reverse`` (X, prediction of X)."""
        if self.reverse:
            return X, self._predict(Y)
        return self._predict(X), Y

    # -- streaming (linear, ridge, neuron-to-neuron): X'X, X'Y, Y'Y and the sums suffice --------
    def _moment_stats(self, stats, exponents=None):
        """The statistics as (source, target), at ``exponents`` (the fitted ones when scoring)
        or, fitting, at their own level where the regression is scale-free and in the data's
        units for ridge, whose penalty is not."""
        S = stats.to_numpy()
        S = S.swapped() if self.reverse else S
        if exponents is None:
            exponents = (S.exponents if self.regression in _SCALE_FREE
                         else (0, S.exponents[1]))
        if S.exponents != tuple(exponents):
            with np.errstate(over="ignore", under="ignore"):
                S = S.at_exponents(*exponents)
            if not all(np.all(np.isfinite(a)) for a in (S.x.gram, S.y.gram, S.cross)):
                name = "Y" if self.reverse else "X"
                raise ValueError(
                    f"the batches' values of {name} are too large or small for float64 second "
                    "moments at the scale this regression was fitted at: rescale the batches, "
                    "or use fit and score on the data"
                )
        return S

    def _fit_moments(self, stats):
        S = self._moment_stats(stats)
        check_nonconstant_moments(S.x, "Y" if self.reverse else "X")
        self.moment_exponents_ = S.exponents  # statistics of (S 2^-ex, T 2^-ey)
        self.source_exponent_, self.target_exponent_ = -S.exponents[0], -S.exponents[1]
        self.mean_source_, self.mean_target_ = S.x.mean, S.y.mean
        C = S.centred()
        self.coef_ = self.dual_coef_ = self.X_fit_ = None
        self.alpha_ = float(self.alpha) if self.regression == "ridge" else 0.0
        if self.regression == "neuron_to_neuron":
            self.mapping_ = self._mapping_from_moments(C)
            return
        G = np.array(C.x.gram, dtype=float)
        if self.alpha_ > 0:
            G[np.diag_indices_from(G)] += self.alpha_
            self.coef_ = np.linalg.solve(G, C.cross)
        else:
            values, vectors = np.linalg.eigh(0.5 * (G + G.T))
            keep = values > values.max() * G.shape[0] * np.finfo(float).eps
            U = vectors[:, keep]
            self.coef_ = U @ ((U.T @ C.cross) / values[keep][:, None])
        self._check_finite(self.coef_, "Y" if self.reverse else "X")

    @staticmethod
    def _live(rep):
        """Columns that vary (exactly, from the recorded extremes where there are some)."""
        var = np.diag(rep.gram).copy()
        live = var > 0
        if rep.minimum is not None:
            live &= np.asarray(rep.maximum) != np.asarray(rep.minimum)
        return live, var

    def _mapping_from_moments(self, C):
        live_s, var_s = self._live(C.x)
        live_t, var_t = self._live(C.y)
        r = np.full(C.cross.shape, -np.inf)  # (source, target)
        a, b = np.flatnonzero(live_s), np.flatnonzero(live_t)
        r[np.ix_(a, b)] = (C.cross[np.ix_(a, b)] / np.sqrt(var_s[a])[:, None]
                           / np.sqrt(var_t[b])[None, :])
        return np.where(live_t & live_s.any(), np.argmax(r, axis=0), -1)

    def _score_moments(self, stats):
        fitted = getattr(self, "moment_exponents_", None)
        S = self._moment_stats(stats, fitted)
        C = S.centred()  # about the scored stimuli's own means
        live_t, var_t = self._live(C.y)
        if self.regression == "neuron_to_neuron":
            m = self.mapping_
            known = m >= 0
            live_s, var_s = self._live(C.x)
            cov = np.zeros(m.size)
            var_p = np.zeros(m.size)
            cov[known] = C.cross[m[known], np.flatnonzero(known)]
            var_p[known] = np.where(live_s[m[known]], var_s[m[known]], 0.0)
        else:
            B = self.coef_
            if B is None:  # fitted in dual form: B = Sc'A, formed for the moments
                B = times_pow2(self.X_fit_ - self.mean_source_, self.source_exponent_).T \
                    @ self.dual_coef_
            cov = np.einsum("ij,ij->j", B, C.cross)
            var_p = np.einsum("ij,ij->j", B, C.x.gram @ B)
            if not self._live(C.x)[0].any():
                var_p[:] = 0.0
        live = live_t & (var_p > 0)
        if not live.any():
            raise ValueError(
                "every target column (or its prediction) is constant on the scored stimuli, "
                "so no Pearson r is defined: score on stimuli where the target varies"
            )
        r = np.clip(cov[live] / np.sqrt(var_p[live]) / np.sqrt(var_t[live]), -1.0, 1.0)
        self._report_skipped(int(live.size - live.sum()), live.size)
        return float(np.median(r))

    # linear, ridge and neuron-to-neuron stream (on the class: the default, least squares); the others have no moments
    # route, so these are None for them and stream_score names the metrics that stream
    _fit_from_moments = param_dependent(
        lambda self: self._fit_moments if self.regression in _STREAMING else None)
    _score_from_moments = param_dependent(
        lambda self: self._score_moments if self.regression in _STREAMING else None)
