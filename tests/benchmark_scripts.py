"""Loading the scripts in benchmarks/ (not a package) as modules, for their smoke tests."""

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    """The script ``benchmarks/<name>.py`` as a module (its ``main`` not run), with the folder on
    the path as when the script runs (its shared ``harness`` module is imported by name)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
