"""Shared fixtures: the reference data sets computed by independent implementations.

tests/data/reference is a copy of the project's shared/reference folder (see its README.md):
values produced by other projects' code (netrep, Kornblith et al.'s demo, ckatorch, repsim,
rsatoolbox, cca-zoo, POT, the paper's modelsym code) on fixed synthetic data.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

# Every hypothesis test draws the same examples on every run and machine (a fresh CI clone must
# not find a new counterexample by chance); `pytest --hypothesis-profile=hunt` draws fresh
# random examples instead, to hunt for new ones.
settings.register_profile("deterministic", derandomize=True, database=None, deadline=None)
settings.register_profile("hunt", derandomize=False, database=None, deadline=None,
                          max_examples=1000)
settings.load_profile("deterministic")

REFERENCE = Path(__file__).parent / "data" / "reference"


def _load(folder, names):
    return {name: np.load(REFERENCE / folder / f"{name}.npy") for name in names}


@pytest.fixture(scope="session")
def seed0():
    """X, Y, Z, W, Q_rotation and the reference values of seed0 (``values['X_Y'][...]``)."""
    data = _load("seed0", ["X", "Y", "Z", "W", "Q_rotation"])
    data["values"] = json.loads((REFERENCE / "seed0" / "reference_values.json").read_text())[
        "results"
    ]
    return data


@pytest.fixture(scope="session")
def seed7():
    """X, Xpd, Xq, Y, Z, Hc1, Hc2 and the reference values of seed7 (``values['X_Y'][...]``)."""
    data = _load("seed7", ["X", "Xpd", "Xq", "Y", "Z", "Hc1", "Hc2"])
    data["values"] = json.loads((REFERENCE / "seed7" / "values.json").read_text())["values"]
    return data


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
