"""Input validation helpers: layouts, the equal-width requirement, random states.

The bad-input catalogue (one rejected or accepted case per row, run through every registered
metric) is tests/core/test_bad_input.py."""

import numpy as np
import pytest

from simmetrics._core.validation import check_pair, check_random_state, check_representation

rng = np.random.default_rng(0)
GOOD = rng.normal(size=(20, 3))


@pytest.mark.parametrize(
    "layout, shape, expected",
    [("nchw", (5, 3, 2, 2), (20, 3)), ("nhwc", (5, 2, 2, 3), (20, 3)), ("ntd", (5, 4, 3), (20, 3)),
     ("flatten", (5, 3, 2, 2), (5, 12))],
)
def test_layouts(layout, shape, expected):
    A = np.arange(np.prod(shape), dtype=float).reshape(shape)
    assert check_representation(A, layout=layout).shape == expected


def test_nchw_keeps_channels_as_columns():
    A = np.random.default_rng(2).normal(size=(2, 3, 2, 2))
    M = check_representation(A, layout="nchw")
    np.testing.assert_array_equal(M[:, 1], A[:, 1].reshape(-1))


def test_layout_errors():
    with pytest.raises(ValueError, match="layout must be None or one of"):
        check_representation(GOOD, layout="nwhc")
    with pytest.raises(ValueError, match=r"X must be 4-D for layout='nchw', got a 2-D"):
        check_representation(GOOD, layout="nchw")


def test_same_width_requirement():
    with pytest.raises(ValueError, match="X has 3, Y has 2"):
        check_pair(GOOD, GOOD[:, :2], same_width=True)


def test_random_state_never_touches_global_state():
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    check_random_state(None).normal(size=10)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    with pytest.raises(TypeError, match="random_state must be"):
        check_random_state("seed")
