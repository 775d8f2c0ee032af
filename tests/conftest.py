"""Shared fixtures: the reference data sets computed by independent implementations, and the
array libraries the generic suites hand their data in (``nx``).

tests/data/reference is a copy of the project's shared/reference folder (see its README.md):
values produced by other projects' code (netrep, Kornblith et al.'s demo, ckatorch, repsim,
rsatoolbox, cca-zoo, POT, the paper's modelsym code) on fixed synthetic data.
"""

import json
import sys
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

# the shared test modules (metric_configs, user_data) are imported by name from every folder
# of the suite, which mirrors the package's layout
sys.path.insert(0, str(Path(__file__).parent))


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


@pytest.fixture(scope="session")
def seed11():
    """The arrays of seed11 (X, Y, Z, Xpd, Xq, Xs, Ys, Xqs, ...) and its reference values
    (``values['X_Y'][key]``; its README.md gives every key's convention and peer)."""
    data = _load("seed11", ["X", "Y", "Z", "Xpd", "Xq", "Q", "perm", "scales", "R", "R_signal",
                            "M", "Xs", "Ys", "Xqs", "Q12"])
    data["values"] = json.loads((REFERENCE / "seed11" / "values.json").read_text())
    return data


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


class InputBackend:
    """How a test hands its (numpy) data to a metric: as numpy arrays, or as CPU torch tensors.

    ``from_numpy(A)`` keeps the dtype (a float64 array gives a float64 tensor, float32 gives
    float32) and never shares memory with a write-protected array; the expected values of a
    test do not depend on the backend, so one test body checks both (POT's ``nx`` fixture).
    """

    def __init__(self, name):
        self.name = name

    def from_numpy(self, A):
        A = np.asarray(A)
        if self.name == "numpy":
            return A
        import torch

        # torch.from_numpy needs a writable, C-ordered array: a copy only where A is not one
        return torch.from_numpy(np.require(A, requirements=["C", "W"]))

    def __repr__(self):
        return f"InputBackend({self.name!r})"


BACKENDS = ["numpy", "torch"]


@pytest.fixture(params=BACKENDS)
def nx(request):
    """The input backend of a test: "numpy" (arrays) or "torch" (CPU tensors).

    With "torch", torch's CPU ops run on one thread for the test (as the generic suites limit
    BLAS to one): on small matrices and shared cores its thread pool only adds waiting."""
    if request.param == "numpy":
        yield InputBackend("numpy")
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield InputBackend("torch")
    finally:
        torch.set_num_threads(threads)
