"""Shared fixtures: the reference data sets computed by independent implementations.

tests/data/reference is a copy of the project's shared/reference folder (see its README.md):
values produced by other projects' code (netrep, Kornblith et al.'s demo, ckatorch, repsim,
rsatoolbox, cca-zoo, POT, the paper's modelsym code) on fixed synthetic data.
"""

import json
from pathlib import Path

import numpy as np
import pytest

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
