"""Noise ceilings of repeated measurements: how well the data predict themselves.

A neuron recorded on repeated presentations of the same stimuli cannot be predicted better
than its own repetitions predict each other. :func:`split_half_consistency` estimates that
ceiling as Brain-Score's ``InternalConsistency`` does (Schrimpf et al. 2018, bioRxiv 407007;
brain-score/vision ``metrics/internal_consistency``): split the repetitions into two halves,
average each half over its repetitions, take the Pearson r of every neuron between the two
half-averages over the stimuli, and correct it for the halving by Spearman-Brown (Spearman
1910, Brown 1910, British Journal of Psychology 3) with n = 2::

    r_full = 2 r / (1 + r)

the reliability of an average over all repetitions from that of an average over half of them.
The median over neurons of one split, averaged over random splits, is the ceiling.

A model's predictivity (:class:`simmetrics.LinearPredictivity`) is then reported *ceiled*,
as a share of what the data allow: :func:`ceiled_score` = score / ceiling (Brain-Score's
normalisation; it can exceed 1 where the ceiling is itself a noisy estimate)::

    >>> import numpy as np
    >>> from sklearn.model_selection import cross_val_score
    >>> from simmetrics import LinearPredictivity, split_half_consistency, ceiled_score
    >>> rng = np.random.default_rng(0)
    >>> signal = rng.normal(size=(120, 20))
    >>> trials = signal + 0.7 * rng.normal(size=(6, 120, 20))     # repetitions x stimuli x neurons
    >>> model = np.tanh(signal @ rng.normal(size=(20, 30)))        # a model's features
    >>> raw = cross_val_score(LinearPredictivity(), model, trials.mean(axis=0), cv=5).mean()
    >>> ceiling = split_half_consistency(trials).value
    >>> bool(0 < raw < ceiling < 1), bool(0 < ceiled_score(raw, ceiling) < 1)
    (True, True)
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["SplitHalfConsistency", "split_half_consistency", "spearman_brown", "ceiled_score"]


def spearman_brown(r, n=2):
    """The Spearman-Brown prophecy n r / (1 + (n - 1) r): the reliability of a measurement n
    times as long, from the reliability r of one.

    Examples
    --------
    >>> float(spearman_brown(0.5))
    0.6666666666666666
    """
    r = np.asarray(r, dtype=float)
    return n * r / (1.0 + (n - 1.0) * r)


@dataclass(frozen=True)
class SplitHalfConsistency:
    """Result of :func:`split_half_consistency`.

    Attributes
    ----------
    value : float
        The ceiling: the mean over splits of the median over neurons.
    per_split : ndarray (n_splits,)
        The median over neurons of each split.
    per_neuron : ndarray (n_splits, n_neurons)
        The Spearman-Brown corrected r of every neuron in every split (NaN where a neuron is
        constant in one half, left out of that split's median).
    halves : list of (ndarray, ndarray)
        The repetition indices of the two halves of each split.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> result = split_half_consistency(rng.normal(size=(30, 8))[None]
    ...                                 + 0.1 * rng.normal(size=(4, 30, 8)), n_splits=2)
    >>> result.per_neuron.shape, bool(result.value > 0.95)
    ((2, 8), True)
    """

    value: float
    per_split: np.ndarray
    per_neuron: np.ndarray
    halves: list


def _check_trials(R):
    R = np.asarray(R, dtype=float)
    if R.ndim != 3:
        raise ValueError(
            f"R must be a (repetitions, stimuli, neurons) array of repeated measurements, got "
            f"shape {R.shape}"
        )
    reps, stimuli, _ = R.shape
    if reps < 2:
        raise ValueError(f"R needs at least 2 repetitions to split in halves, got {reps}")
    if stimuli < 3:
        raise ValueError(f"R needs at least 3 stimuli for a correlation over them, got {stimuli}")
    if not np.all(np.isfinite(R)):
        raise ValueError(f"R contains {int(np.sum(~np.isfinite(R)))} NaN or infinite values")
    return R


def _halves(reps, n_splits, random_state):
    """Brain-Score's halves: scikit-learn's ShuffleSplit(n_splits, train_size=0.5) over the
    repetitions (floor(reps / 2) in the first half, the rest in the second)."""
    from sklearn.model_selection import ShuffleSplit

    splitter = ShuffleSplit(n_splits=n_splits, train_size=0.5, test_size=None,
                            random_state=random_state)
    return [(np.asarray(a), np.asarray(b)) for a, b in splitter.split(np.arange(reps))]


def _column_r(A, B):
    """Pearson r of each column of A with the same column of B (NaN where either is
    constant, exactly)."""
    live = (np.ptp(A, axis=0) > 0) & (np.ptp(B, axis=0) > 0)
    out = np.full(A.shape[1], np.nan)
    Ac = A[:, live] - A[:, live].mean(axis=0)
    Bc = B[:, live] - B[:, live].mean(axis=0)
    Ac /= np.sqrt(np.einsum("ij,ij->j", Ac, Ac))
    Bc /= np.sqrt(np.einsum("ij,ij->j", Bc, Bc))
    out[live] = np.clip(np.einsum("ij,ij->j", Ac, Bc), -1.0, 1.0)
    return out


def split_half_consistency(R, n_splits=10, random_state=1, halves=None):
    """Split-half internal consistency of repeated measurements with the Spearman-Brown
    correction: Brain-Score's ``InternalConsistency()`` ceiling (module text).

    Parameters
    ----------
    R : array-like, shape (n_repetitions, n_stimuli, n_neurons)
        Every neuron's response to every stimulus on every repetition.
    n_splits : int, default 10
        Random half-splits of the repetitions.
    random_state : int or None, default 1
        Seed of the splits (Brain-Score's 1 reproduces its values).
    halves : list of (indices, indices), optional
        The repetitions of each split's two halves, instead of random ones.

    Returns
    -------
    SplitHalfConsistency
        ``value`` the ceiling, with the per-split and per-neuron values.

    Raises
    ------
    ValueError
        Not a 3-D array, fewer than 2 repetitions or 3 stimuli, NaN, or a split where every
        neuron is constant in a half.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> R = rng.normal(size=(60, 15))[None] + rng.normal(size=(4, 60, 15))  # noise = signal
    >>> result = split_half_consistency(R)
    >>> result.per_split.shape, bool(0.6 < result.value < 0.9)   # 4 trials: 4/(4+1) = 0.8
    ((10,), True)
    """
    R = _check_trials(R)
    if halves is None:
        if not (isinstance(n_splits, (int, np.integer)) and not isinstance(n_splits, bool)
                and n_splits >= 1):
            raise ValueError(f"n_splits must be a positive int, got {n_splits!r}")
        halves = _halves(R.shape[0], int(n_splits), random_state)
    else:
        halves = [(np.asarray(a, dtype=int), np.asarray(b, dtype=int)) for a, b in halves]
        for a, b in halves:
            if a.size == 0 or b.size == 0 or np.intersect1d(a, b).size:
                raise ValueError("halves must be pairs of non-empty, disjoint repetition indices")
    per_neuron = np.empty((len(halves), R.shape[2]))
    for k, (a, b) in enumerate(halves):
        r = _column_r(R[a].mean(axis=0), R[b].mean(axis=0))
        if np.all(np.isnan(r)):
            raise ValueError(
                f"in split {k} every neuron is constant in one half, so no consistency is "
                "defined"
            )
        per_neuron[k] = spearman_brown(r)
    per_split = np.array([np.median(row[~np.isnan(row)]) for row in per_neuron])
    return SplitHalfConsistency(float(per_split.mean()), per_split, per_neuron, halves)


def ceiled_score(score, ceiling):
    """A score as a share of the noise ceiling: ``score / ceiling`` (Brain-Score's ceiled
    score). The ceiling must be positive; the ratio is not clipped (a ceiling estimated from
    few repetitions can lie below a model's score).

    Examples
    --------
    >>> ceiled_score(0.45, 0.9)
    0.5
    """
    ceiling = float(getattr(ceiling, "value", ceiling))
    if not np.isfinite(ceiling) or ceiling <= 0:
        raise ValueError(f"ceiling must be a positive number, got {ceiling!r}")
    return float(score) / ceiling
