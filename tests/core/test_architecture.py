"""The architecture issue's "done when", checked on the source (issue 12).

- (a) no library module (``simmetrics/**/*.py`` outside the paper's subpackage) is longer than
  ``MAX_LINES`` lines;
- (b) no module imports a private name (``_x``) from another module that is not private
  (a module is private when a part of its dotted name after ``simmetrics`` starts with ``_``,
  e.g. ``simmetrics._core.linalg``: shared helpers live there or get a public name);
- (c) outside ``simmetrics/_core/backend.py`` no code branches on torch vs numpy, except the
  modules of ``ALLOWED_MODULES`` (torch-only code, each with its reason) and lines that carry
  a ``# backend site: <reason>`` comment;
- (d) ``import simmetrics`` imports neither the paper's subpackage nor torch;
- (e) the drivers (pairwise, streaming, stats, invariance) discover no hook with ``hasattr`` or
  ``getattr`` on a metric, and every private hook they use on a metric is declared on the base
  classes of :mod:`simmetrics.base`.

Each check walks the syntax trees of the package's files (comments and docstrings are not
code), and fails with the list of offenders (file:line and what was found).
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import simmetrics.base as base

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 700
BACKEND = "simmetrics/_core/backend.py"
PAPER = "simmetrics/paper/"
DRIVERS = ("simmetrics/pairwise.py", "simmetrics/streaming.py", "simmetrics/stats.py",
           "simmetrics/invariance.py")

#: Modules (a path, or a folder ending in "/": every module under it) where torch-specific code
#: is the subject, not a numpy/torch branch of shared math, with the reason.
ALLOWED_MODULES = {
    "simmetrics/nn/": "torch model tools: feature extraction from torch modules, stitching "
                      "layers trained in torch, the digits models",
    "simmetrics/symmetry/weights.py": "weight-space actions on torch modules' parameters "
                                      "(torch weight surgery)",
    "simmetrics/symmetry/activations.py": "maps torch activation modules (torch.nn.ReLU, ...) "
                                          "to their intertwiner groups",
    "simmetrics/io.py": "reads torch .pt files (torch.load) into representations",
    "simmetrics/losses.py": "torch.nn.Module training losses (imported only on request)",
    "simmetrics/_core/autograd.py": "torch.autograd.Function definitions (torch-only by "
                                    "nature; imported when a gradient is asked for)",
    PAPER: "the paper's reproduction trains and probes torch models; outside the library's "
           "import graph (test_import_loads_neither_the_paper_nor_torch)",
}

#: Calls that ask which array library (or device) an input belongs to; a leading underscore
#: (a private copy of one of them) counts the same.
BRANCH_CALLS = {"is_tensor", "is_torch", "on_accelerator", "on_float64_accelerator",
                "on_device_path"}
SITE_COMMENT = re.compile(r"#\s*backend site:\s*\S")


def _relative(path):
    return path.relative_to(ROOT).as_posix()


def _modules(root=ROOT):
    return sorted((root / "simmetrics").rglob("*.py"))


def _library_modules():
    return [p for p in _modules() if not _relative(p).startswith(PAPER)]


def _module_name(path, root=ROOT):
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_private_module(dotted):
    """``simmetrics._core.linalg`` and ``simmetrics.metrics._helpers`` are private;
    ``simmetrics.moments`` is not."""
    return any(part.startswith("_") for part in dotted.split(".")[1:])


def _is_private_name(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _tree(path):
    return ast.parse(path.read_text(), filename=str(path))


def _parents(tree):
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    return parents


def _report(title, offenders):
    return f"{title} ({len(offenders)}):\n  " + "\n  ".join(offenders)


# -- (a) module length ---------------------------------------------------------------------------
def test_no_library_module_is_longer_than_700_lines():
    long = [f"{_relative(p)}: {n} lines"
            for p in _library_modules()
            if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not long, _report(f"library modules longer than {MAX_LINES} lines (split them by "
                             "topic, one idea per file)", long)


# -- (b) private names across module boundaries --------------------------------------------------
def _import_target(path, node, root=ROOT):
    """The dotted module an ``ImportFrom`` reads from (relative imports resolved)."""
    if not node.level:
        return node.module
    me = _module_name(path, root).split(".")
    package = me if path.name == "__init__.py" else me[:-1]
    base_parts = package[: len(package) - node.level + 1]
    return ".".join(base_parts + ([node.module] if node.module else []))


def _is_module(dotted, root=ROOT):
    relative = Path(*dotted.split("."))
    return (root / relative).with_suffix(".py").is_file() \
        or (root / relative / "__init__.py").is_file()


def _ours(dotted):
    return dotted is not None and (dotted == "simmetrics" or dotted.startswith("simmetrics."))


def private_imports(root=ROOT):
    """``module:line: target.name`` for every private name imported from a non-private module
    of the package (importing a private *module*, e.g. ``from . import _core``, is fine), or
    read from such a module imported whole (``from . import moments``; ``moments._x``)."""
    found = []
    for path in _modules(root):
        me = _module_name(path, root)
        relative = path.relative_to(root).as_posix()
        tree = _tree(path)
        modules = {}  # local name -> a non-private module of the package bound to it
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if _ours(alias.name) and alias.asname and not _is_private_module(alias.name):
                        modules[alias.asname] = alias.name
            if not isinstance(node, ast.ImportFrom):
                continue
            target = _import_target(path, node, root)
            if not _ours(target):
                continue
            for alias in node.names:
                dotted = f"{target}.{alias.name}"
                if _is_module(dotted, root):
                    if not _is_private_module(dotted):
                        modules[alias.asname or alias.name] = dotted
                elif _is_private_name(alias.name) and not _is_private_module(target) \
                        and target != me:
                    found.append(f"{relative}:{node.lineno}: {dotted}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in modules and _is_private_name(node.attr) \
                    and modules[node.value.id] != me \
                    and not _is_module(f"{modules[node.value.id]}.{node.attr}", root):
                found.append(f"{relative}:{node.lineno}: "
                             f"{modules[node.value.id]}.{node.attr}")
    return found


def test_no_module_imports_a_private_name_from_a_public_module():
    found = private_imports()
    assert not found, _report(
        "private names imported across module boundaries (give them a public name in the "
        "module that owns them, or move them to simmetrics/_core/)", found)


def test_the_private_import_finder_finds_each_kind_of_import(tmp_path):
    # a scratch package: the check above passes only if it can fail
    files = {
        "simmetrics/__init__.py": "",
        "simmetrics/moments.py": "_helper = 1\n",
        "simmetrics/_core/__init__.py": "",
        "simmetrics/_core/linalg.py": "_ok = 1\n",
        "simmetrics/metrics/__init__.py": "",
        "simmetrics/metrics/cka.py": (
            "from ..moments import _helper\n"            # a private name: found
            "from simmetrics.moments import _helper as h\n"  # absolute, renamed: found
            "from .. import moments, _core\n"             # modules: fine
            "from .._core.linalg import _ok\n"            # from a private module: fine
            "from ..moments import __doc__\n"             # a dunder: fine
            "x = moments._helper\n"                       # read from the module: found
        ),
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert private_imports(tmp_path) == [
        "simmetrics/metrics/cka.py:1: simmetrics.moments._helper",
        "simmetrics/metrics/cka.py:2: simmetrics.moments._helper",
        "simmetrics/metrics/cka.py:6: simmetrics.moments._helper",
    ]


# -- (c) torch/numpy branches outside the backend ------------------------------------------------
def _call_name(func):
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _mentions_torch(node):
    """Whether an expression names torch: a ``torch...`` string, or ``torch.Tensor``-like
    attributes."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) \
                and sub.value.startswith("torch"):
            return True
        if isinstance(sub, ast.Name) and sub.id == "torch":
            return True
        if isinstance(sub, ast.Attribute) and sub.attr == "Tensor":
            return True
    return False


def _scope(node, parents):
    """The innermost function (or the module) around ``node``."""
    while node in parents and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        node = parents[node]
    return node


def _statement(node, parents):
    while not isinstance(node, ast.stmt) and node in parents:
        node = parents[node]
    return node


def _expression(node, parents):
    """The whole expression ``node`` is part of (e.g. the test of an ``if``, not its body)."""
    while node in parents and not isinstance(parents[node], ast.stmt):
        node = parents[node]
    return node


def _torch_strings(scope):
    """``"torch"``-prefixed strings compared with or tested as a prefix in ``scope``
    (``x.startswith("torch")``, ``"torch" in x``, ``x == "torch"``)."""
    for sub in ast.walk(scope):
        if isinstance(sub, ast.Call) and _call_name(sub.func) == "startswith" \
                and any(_mentions_torch(a) for a in sub.args):
            return True
        if isinstance(sub, ast.Compare) and _mentions_torch(sub):
            return True
    return False


def branch_sites(path):
    """``(line, what)`` for every place in ``path`` that asks whether an input is a torch
    object: ``type(X).__module__`` tested against "torch", ``isinstance(x, torch.Tensor)``,
    the predicates of ``BRANCH_CALLS``, and ``import torch``."""
    tree = _tree(path)
    parents = _parents(tree)
    sites = []
    for node in ast.walk(tree):
        what = None
        if isinstance(node, ast.Attribute) and node.attr == "__module__":
            if _mentions_torch(_expression(node, parents)) \
                    or _torch_strings(_scope(node, parents)):
                what = "__module__ tested for torch"
        elif isinstance(node, ast.Call):
            name = _call_name(node.func)
            if name == "isinstance" and len(node.args) == 2 and _mentions_torch(node.args[1]):
                what = "isinstance(..., torch.Tensor)"
            elif name is not None and name.lstrip("_") in BRANCH_CALLS:
                what = f"{name}(...) call"
        elif isinstance(node, ast.Import):
            if any(a.name == "torch" or a.name.startswith("torch.") for a in node.names):
                what = "import torch"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and (node.module == "torch" or node.module.startswith("torch.")):
            what = f"from {node.module} import ..."
        if what is not None:
            sites.append((node, what))
    lines = path.read_text().splitlines()
    out = []
    for node, what in sites:
        first = _statement(node, parents).lineno
        span = lines[min(first, node.lineno) - 1: node.end_lineno]
        if not any(SITE_COMMENT.search(line) for line in span):
            out.append((node.lineno, what))
    return sorted(set(out))


def _allowed(relative):
    return any(relative == key or (key.endswith("/") and relative.startswith(key))
               for key in ALLOWED_MODULES)


def test_no_torch_numpy_branch_outside_the_backend():
    found = []
    for path in _modules():
        relative = _relative(path)
        if relative == BACKEND or _allowed(relative):
            continue
        found += [f"{relative}:{line}: {what}" for line, what in branch_sites(path)]
    assert not found, _report(
        f"torch/numpy branches outside {BACKEND} (use get_backend(...) and a backend method, "
        "or mark a site that must stay with '# backend site: <reason>')", found)


#: "At most a handful of documented sites" (the issue): the ``# backend site:`` comments outside
#: the backend and the allowed modules.
HANDFUL = 8


def documented_sites():
    """``file:line: reason`` of every ``# backend site:`` comment outside the backend and the
    modules of ``ALLOWED_MODULES`` (the list the architecture note gives)."""
    sites = []
    for path in _modules():
        relative = _relative(path)
        if relative == BACKEND or _allowed(relative):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = re.search(r"#\s*backend site:\s*(.*)", line)
            if match:
                sites.append(f"{relative}:{number}: {match.group(1).strip()}")
    return sites


def test_the_documented_sites_are_a_handful():
    sites = documented_sites()
    assert len(sites) <= HANDFUL, _report(
        f"more than {HANDFUL} documented backend sites (move the branches into the backend)",
        sites)


def test_the_allowed_modules_exist_and_say_why():
    # an allow-list entry for a module that moved would silently allow nothing
    for key, reason in ALLOWED_MODULES.items():
        target = ROOT / key
        assert (target.is_dir() if key.endswith("/") else target.is_file()), key
        assert reason.strip(), key


def test_the_branch_finder_finds_each_kind_of_branch(tmp_path):
    # the check above passes only if it can fail: each pattern it looks for, in a scratch file
    source = '''
import numpy as np
import torch


def a(X):
    if type(X).__module__.startswith("torch"):
        return X


def b(X):
    module = type(X).__module__
    return module.startswith("torch")


def c(X):
    return isinstance(X, torch.Tensor) or _is_torch(X) or on_float64_accelerator(X)


def d(X):
    if is_tensor(X):  # backend site: the device route is chosen from the input
        return X
    return type(X).__module__.startswith("pandas")
'''
    path = tmp_path / "scratch.py"
    path.write_text(source)
    found = [what for _, what in branch_sites(path)]
    assert found.count("import torch") == 1
    assert found.count("__module__ tested for torch") == 2
    assert "isinstance(..., torch.Tensor)" in found
    assert "_is_torch(...) call" in found and "on_float64_accelerator(...) call" in found
    assert "is_tensor(...) call" not in found  # it carries the comment
    assert len(found) == 6, found  # and the pandas test is not a torch branch


# -- (d) the import graph ----------------------------------------------------------------------
def test_import_loads_neither_the_paper_nor_torch():
    code = ("import sys, simmetrics\n"
            "paper = sorted(m for m in sys.modules if m.startswith('simmetrics.paper'))\n"
            "print(repr((paper, 'torch' in sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    paper, torch_loaded = ast.literal_eval(out.strip().splitlines()[-1])
    assert not paper, f"import simmetrics imports the paper's code: {paper}"
    assert not torch_loaded, "import simmetrics imports torch (it must stay lazy)"


# -- (e) the drivers call only declared hooks ----------------------------------------------------
#: The classes whose attributes are the contract (``AlignmentMetric`` adds the fitted-alignment
#: hooks, e.g. ``_check_fitted``, that the drivers call on alignment metrics only).
CONTRACT = (base.Metric, base.AlignmentMetric)
#: Names a driver gives to a metric object.
METRIC_NAME = re.compile(r"(^|_)(metric|metrics|estimator|pair|twin|fitted)($|_)|^m$")


def _is_metric_expr(node):
    """Whether an expression is, by its spelling, a metric: ``metric``, ``pair``,
    ``type(metric)``, ``metric_class(name)``, ``clone(metric)``..."""
    if isinstance(node, ast.Name):
        return bool(METRIC_NAME.search(node.id))
    if isinstance(node, ast.Call):
        name = _call_name(node.func)
        if name in ("metric_class", "get_metric", "as_metric", "clone"):
            return True
        if name == "type" and node.args:
            return _is_metric_expr(node.args[0])
    if isinstance(node, ast.Subscript):
        return _is_metric_expr(node.value)
    return False


def driver_hook_uses():
    """(dynamic, undeclared): ``hasattr``/``getattr`` on a metric in the drivers, and private
    attributes they read on a metric that the base classes do not declare."""
    dynamic, undeclared = [], []
    for relative in DRIVERS:
        path = ROOT / relative
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Call) and _call_name(node.func) in ("hasattr", "getattr") \
                    and isinstance(node.func, ast.Name) and node.args \
                    and _is_metric_expr(node.args[0]):
                dynamic.append(f"{relative}:{node.lineno}: {ast.unparse(node)}")
            if isinstance(node, ast.Attribute) and _is_private_name(node.attr) \
                    and _is_metric_expr(node.value) \
                    and not any(hasattr(cls, node.attr) for cls in CONTRACT):
                undeclared.append(f"{relative}:{node.lineno}: {ast.unparse(node)}")
    return dynamic, undeclared


def test_drivers_do_not_discover_hooks_with_hasattr_or_getattr():
    dynamic, _ = driver_hook_uses()
    assert not dynamic, _report(
        "hooks discovered with hasattr/getattr in the drivers (declare them on "
        "simmetrics.base.Metric with a default and read them directly)", dynamic)


def test_drivers_call_only_hooks_declared_on_the_base_class():
    _, undeclared = driver_hook_uses()
    assert not undeclared, _report(
        "private hooks the drivers use on a metric but simmetrics.base does not declare",
        undeclared)


def test_the_drivers_use_the_contract_at_all():
    # the checks above read the drivers' metric hooks; if a rename made the metric spelling
    # unrecognisable they would pass vacuously
    used = set()
    for relative in DRIVERS:
        for node in ast.walk(_tree(ROOT / relative)):
            if isinstance(node, ast.Attribute) and _is_private_name(node.attr) \
                    and _is_metric_expr(node.value):
                used.add(node.attr)
    assert {"_validate_params", "_score_from_moments", "_partial_fit"} <= used, sorted(used)
