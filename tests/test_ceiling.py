"""Split-half internal consistency (Spearman-Brown corrected) and ceiled scores.

Reference values: tests/data/reference/seed11, pair "R" (README.md, section Brain-Score, "R
keys"): brainscore_vision 2.4.2 ``InternalConsistency()`` on R.npy (5 repetitions x 60
stimuli x 30 neurons) as 300 presentations with coords stimulus_id and repetition.
"""

import numpy as np
import pytest

from simmetrics import ceiled_score, split_half_consistency
from simmetrics.ceiling import spearman_brown


def test_split_half_consistency_equals_brainscores(seed11):
    values = seed11["values"]["R"]
    result = split_half_consistency(seed11["R"])
    assert result.value == pytest.approx(
        values["brainscore_internal_consistency_spearman_brown_median_10split_mean"], abs=1e-12)
    assert np.max(np.abs(result.per_split - np.array(
        values["brainscore_internal_consistency_per_split_median"]))) <= 1e-12
    assert [a.size for a, _ in result.halves] == [2] * 10  # 2 versus 3 repetitions


def test_per_neuron_values_by_a_second_route(seed11):
    # one split recomputed with numpy's corrcoef and the prophecy written out: 2r / (1 + r)
    R = seed11["R"]
    result = split_half_consistency(R, n_splits=3, random_state=4)
    a, b = result.halves[1]
    A, B = R[a].mean(axis=0), R[b].mean(axis=0)
    r = np.array([np.corrcoef(A[:, j], B[:, j])[0, 1] for j in range(R.shape[2])])
    assert np.max(np.abs(result.per_neuron[1] - 2 * r / (1 + r))) <= 1e-12
    assert result.per_split[1] == pytest.approx(np.median(2 * r / (1 + r)), abs=1e-12)


def test_ceiling_of_noiseless_repetitions_is_one_and_of_pure_noise_near_zero():
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(50, 8))
    assert split_half_consistency(np.stack([signal] * 4)).value == pytest.approx(1.0, abs=1e-12)
    noise = rng.normal(size=(40, 400, 20))
    assert abs(split_half_consistency(noise).value) < 0.15


def test_given_halves_and_a_silent_neuron(seed11):
    R = seed11["R"].copy()
    R[:, :, 3] = 0.0  # a silent neuron has no consistency: left out of the median
    result = split_half_consistency(R, halves=[([0, 1], [2, 3, 4])])
    assert np.isnan(result.per_neuron[0, 3])
    assert np.isfinite(result.value)


def test_ceiled_score_and_bad_input():
    assert ceiled_score(0.3, 0.6) == pytest.approx(0.5)
    assert spearman_brown(1.0) == 1.0
    with pytest.raises(ValueError, match="ceiling"):
        ceiled_score(0.3, 0.0)
    with pytest.raises(ValueError, match="R must be"):
        split_half_consistency(np.ones((5, 6)))
    with pytest.raises(ValueError, match="at least 2 repetitions"):
        split_half_consistency(np.ones((1, 6, 3)))
    with pytest.raises(ValueError, match="every neuron is constant"):
        split_half_consistency(np.ones((4, 6, 3)))
    with pytest.raises(ValueError, match="halves"):
        split_half_consistency(np.ones((4, 6, 3)), halves=[([0, 1], [1, 2])])
