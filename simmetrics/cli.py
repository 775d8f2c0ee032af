"""The ``simmetrics`` command line.

    simmetrics score A B [--metric NAME ...] [--param NAME=VALUE ...] [--layout LAYOUT]
                         [--key KEY] [--permutations N] [--bootstrap N] [--json | --csv]
                          two representations (.npy, .npz, .pt/.pth, .csv) compared
    simmetrics pairwise FILES... --metric NAME [--plot OUT.png] [--json | --csv]
                          the matrix of one metric between every pair of representations
    simmetrics demo [--epochs N] [--metric NAME ...]
                          two MLPs trained on digits, every metric, one table
    simmetrics metrics [--json]
                          every metric's kind, bounds, is_metric, invariances and source
    simmetrics invariances [--metric NAME ...] [--group NAME ...] [--markdown] [--plot OUT.png]
                          the measured invariance table

Errors are one line on stderr and exit status 2: unreadable or empty files, bad values,
out-of-memory (with the size and what to do instead), each naming the input. Notes (what a CSV
file was read as: rows, columns, header, index column; a dequantized tensor) and progress bars
(pairwise, permutation tests, bootstrap; only when stderr is a terminal) go to stderr, unless
``--quiet``.

``--param NAME=VALUE`` values are Python literals (``k=5``, ``sigma=0.5``) or bare words
(``kernel=rbf``); for a boolean parameter (declared ``Boolean()`` in the metric's
``_parameter_constraints``, or, where undeclared, one whose default is a bool) the words
true/false, yes/no and 1/0 in any case are read as True / False, and anything else is an error.
"""

import argparse
import ast
import csv
import io
import json
import math
import re
import sys
from pathlib import Path

from ._core.registry import available_metrics, get_metric, metric_class, resolve_name

__all__ = ["main", "build_parser"]

# Errors shown as one line; anything else is a bug and keeps its traceback.
_USER_ERRORS = (ValueError, TypeError, OSError, ArithmeticError, ImportError)


def _table(head, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    lines = [fmt.format(*head), fmt.format(*["-" * w for w in widths])]
    return "\n".join(line.rstrip() for line in lines + [fmt.format(*r) for r in rows])


def _range(bounds):
    return "[{:.3g}, {:.3g}]".format(*bounds)


def _metrics_table():
    rows = []
    for name in available_metrics():
        cls = metric_class(name)
        rows.append([
            name,
            cls.kind,
            _range(cls.bounds),
            "yes" if cls.is_metric else "no",
            ", ".join(sorted(cls.invariances)) or "-",
            cls.reference,
        ])
    head = ["metric", "kind", "range", "metric axioms", "invariances (defaults)", "source"]
    return _table(head, rows)


def _finite_or_none(x):
    return float(x) if math.isfinite(x) else None


def _print_csv(head, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(head)
    writer.writerows(rows)
    sys.stdout.write(buffer.getvalue())


def _show_progress(args):
    return not args.quiet and sys.stderr.isatty()


def _note(args, text):
    if not getattr(args, "quiet", False):
        print(f"simmetrics: {text}", file=sys.stderr)


# -- inputs -----------------------------------------------------------------------------------
def _checked(array, label, layout):
    """Fail early, naming the file, on what no metric could use (NaN, wrong number of axes)."""
    from ._core.validation import check_representation

    check_representation(array, label, layout=layout, min_samples=1)
    return array


def _same_stimuli(labels, arrays):
    n0 = arrays[0].shape[0]
    for label, A in zip(labels, arrays):
        if A.shape[0] != n0:
            raise ValueError(
                f"{labels[0]} has {n0} stimuli (first axis) but {label} has {A.shape[0]}; the "
                "representations must hold the same stimuli in the same order"
            )


def _same_positions(labels, arrays, layout):
    """With a conv / token layout every stimulus is a row per position: the same stimuli in
    layers of different spatial sizes cannot be compared row by row (say so, and the fixes)."""
    if layout not in ("nchw", "nhwc", "ntd"):
        return
    from ._core.validation import positions_differ_message, rows_per_stimulus

    counts = [rows_per_stimulus(A.shape, layout)[0] for A in arrays]
    for label, A, count in zip(labels, arrays, counts):
        if count != counts[0]:
            raise ValueError(_for_the_command_line(
                positions_differ_message(labels[0], label, arrays[0].shape, A.shape, layout)))


def _for_the_command_line(message):
    return message.replace("layout='flatten'", "--layout flatten")


def _parse_param(text):
    """(metric class or None, parameter name, the raw value text) of one --param."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"--param {text!r}: expected NAME=VALUE, e.g. --param debiased=True")
    scope, _, name = name.rpartition(".")
    return (metric_class(scope) if scope else None), name, raw.strip()


def _declared_constraints(cls, name):
    """The constraint list declared for ``name`` by ``cls`` or a base class (None: none)."""
    for klass in cls.__mro__:
        declared = vars(klass).get("_parameter_constraints") or {}
        if name in declared:
            return list(declared[name])
    return None


_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def _param_value(cls, name, raw, text):
    """The value of ``--param name=raw`` for the metric class ``cls``.

    Boolean parameters (a ``Boolean()`` constraint; where ``cls`` declares nothing for
    ``name``, a bool default) read true/false, yes/no (any case) and, when only a bool (or
    None) is accepted, 1/0; any other word is an error naming the parameter. Every other
    value is a Python literal, or the bare word as a string.
    """
    from ._core.params import Boolean

    constraints = _declared_constraints(cls, name)
    if constraints is None:
        boolean = only = isinstance(cls().get_params().get(name), bool)
        allows_none = False
    else:
        boolean = any(isinstance(c, Boolean) for c in constraints)
        only = boolean and all(isinstance(c, Boolean) or c is None for c in constraints)
        allows_none = None in constraints
    if boolean:
        word = raw.lower()
        true, false = (_TRUE, _FALSE) if only else (_TRUE[:2], _FALSE[:2])
        if word in true:
            return True
        if word in false:
            return False
        if only and allows_none and word == "none":
            return None
        if only:
            raise ValueError(
                f"--param {text!r}: {name} of {cls.name} is a boolean: use true/false, yes/no "
                f"or 1/0 (any case){', or none' if allows_none else ''}"
            )
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw  # a bare word is a string: --param kernel=rbf


def _build_metrics(names, param_texts, layout):
    """[(label, metric, user_params)] for the --metric names and --param settings."""
    # a similarity-repository name (e.g. cka-kernel=linear-hsic=song-score) brings parameters
    fixed = {}
    for n in names:
        resolved = resolve_name(n)
        fixed.setdefault(metric_class(n), resolved[1] if resolved else {})
    classes = list(fixed)
    params = {cls: {} for cls in classes}
    for text in param_texts or ():
        scope, name, raw = _parse_param(text)
        if scope is not None and scope not in params:
            raise ValueError(f"--param {text!r}: {scope.name} is not one of the --metric names")
        targets = [c for c in classes if scope in (None, c) and name in c().get_params()]
        if not targets:
            where = [scope] if scope is not None else classes
            known = sorted({p for c in where for p in c().get_params()} - {"layout"})
            raise ValueError(
                f"--param {text!r}: {name!r} is not a parameter of "
                f"{', '.join(c.name for c in where)} (parameters: {', '.join(known) or 'none'})"
            )
        for cls in targets:
            params[cls][name] = _param_value(cls, name, raw, text)
    out = []
    for cls in classes:
        given = params[cls]
        label = cls.name
        clash = [k for k in given if k in fixed[cls] and given[k] != fixed[cls][k]]
        if clash:
            raise ValueError(f"--param {clash[0]}={given[clash[0]]!r} conflicts with the metric "
                             f"name's {clash[0]}={fixed[cls][clash[0]]!r}")
        given = {**fixed[cls], **given}
        if given:
            label += "(" + ", ".join(f"{k}={v!r}" for k, v in given.items()) + ")"
        layout_param = {} if layout is None else {"layout": layout}
        metric = get_metric(cls.name, **given, **layout_param)
        try:  # a bad --param value fails now, before any file is compared
            getattr(metric, "_validate_params", lambda: None)()
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{label}: {exc}") from None
        out.append((label, metric, given))
    return out


_FLAGS = {"auto": None, "yes": True, "no": False}


def _select(path, key, args, infos):
    """The arrays of ``path`` by name: all of them, or the one named ``key`` (a file holding a
    single unnamed array ignores ``key``, so one --key can serve a .npz next to a .npy). What
    was read is appended to ``infos``."""
    from .io import load_arrays, load_representation

    flags = {"header": _FLAGS[getattr(args, "csv_header", "auto")],
             "index": _FLAGS[getattr(args, "csv_index", "auto")]}
    arrays, read = load_arrays(path, return_info=True, **flags)
    if key is None or list(arrays) == [""]:
        infos.extend(read.values())
        return arrays
    array, info = load_representation(path, key, return_info=True, **flags)
    infos.append(info)
    return {key: array}


def _report(args, infos):
    """A note for every input whose reading involved a choice: a CSV file's header and index
    column, a dequantized or densified tensor."""
    for info in infos:
        if info.header is not None or info.notes:
            _note(args, f"read {info.summary()}")


def _load_one(path, key, layout, args, infos):
    arrays = _select(path, key, args, infos)
    if len(arrays) > 1:
        from .io import load_representation

        load_representation(path)  # raises: names the arrays and asks for --key
    return _checked(next(iter(arrays.values())), str(path), layout)


def _load_many(paths, key, layout, args, infos):
    """Labels, sources (for messages) and arrays of every representation in ``paths``; a .npz
    or saved dict holding several arrays contributes all of them (unless --key picks one)."""
    stems = [Path(p).stem for p in paths]
    unique = len(set(stems)) == len(stems)
    labels, sources, arrays = [], [], []
    for path, stem in zip(paths, stems):
        base = stem if unique else str(path)
        for name, array in _select(path, key, args, infos).items():
            if name and len(paths) == 1 and key is None:
                label = name
            else:
                label = f"{base}:{name}" if name else base
            source = f"{path}:{name}" if name else str(path)
            labels.append(label)
            sources.append(source)
            arrays.append(_checked(array, source, layout))
    return labels, sources, arrays


# -- commands ---------------------------------------------------------------------------------
def _cmd_demo(args):
    from .demo import format_demo, run_demo

    # resolve the names first: a typo fails before any training
    names = [metric_class(m).name for m in args.metric] if args.metric else None
    print(format_demo(run_demo(epochs=args.epochs, metrics=names)))


def _cmd_metrics(args):
    if args.json:
        records = []
        for name in available_metrics():
            cls = metric_class(name)
            records.append({
                "metric": name,
                "kind": cls.kind,
                "bounds": [_finite_or_none(b) for b in cls.bounds],
                "is_metric": bool(cls.is_metric),
                "invariances": sorted(cls.invariances),
                "reference": cls.reference,
            })
        print(json.dumps(records, indent=2))
    else:
        print(_metrics_table())


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "--plot needs matplotlib, which is not installed: pip install 'simmetrics[plot]'"
        ) from None
    return matplotlib


def _check_plot_path(path):
    """Before any work: the folder exists, matplotlib is there and knows the format."""
    if path is None:
        return
    _matplotlib()
    from matplotlib.backend_bases import FigureCanvasBase

    folder = Path(path).parent
    if not folder.is_dir():
        raise FileNotFoundError(f"--plot {path}: folder {str(folder)!r} does not exist")
    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in formats:
        raise ValueError(
            f"--plot {path}: unknown image format {suffix!r}; use one of {', '.join(formats)}"
        )


def _save_plot(path, draw, *args, **kwargs):
    _matplotlib().use("Agg")
    import matplotlib.pyplot as plt

    ax = draw(*args, **kwargs)
    try:
        ax.figure.savefig(path, dpi=150)
    finally:
        plt.close(ax.figure)


def _cmd_invariances(args):
    from .invariance import invariance_table

    _check_plot_path(args.plot)
    table = invariance_table(args.metric, args.group)
    print(table.to_markdown() if args.markdown else table)
    if args.plot:
        from .plots import plot_invariance_table

        _save_plot(args.plot, plot_invariance_table, table)
        _note(args, f"wrote {args.plot}")


def _cmd_score(args):
    from sklearn.base import clone

    infos = []
    X = _load_one(args.a, args.key_a or args.key, args.layout, args, infos)
    Y = _load_one(args.b, args.key_b or args.key, args.layout, args, infos)
    _same_stimuli([args.a, args.b], [X, Y])
    _same_positions([args.a, args.b], [X, Y], args.layout)
    explicit = bool(args.metric)
    metrics = _build_metrics(args.metric or available_metrics(), args.param, args.layout)
    _report(args, infos)  # after every input and --param error, so that an error is one line
    progress = _show_progress(args)
    records, failures = [], []
    for label, metric, given in metrics:
        try:
            value = clone(metric).fit_score(X, Y)
        except (ValueError, TypeError) as exc:
            if explicit:
                raise type(exc)(f"{label}: {exc}") from None
            failures.append((label, exc))
            continue
        record = {"metric": label, "kind": metric.kind, "bounds": metric.bounds,
                  "value": value, "params": given}
        if args.permutations:
            from .stats import permutation_test

            res = permutation_test(metric, X, Y, n_permutations=args.permutations,
                                   random_state=args.seed, n_jobs=args.n_jobs,
                                   progress=progress)
            record.update(pvalue=res.pvalue, n_permutations=args.permutations)
        if args.bootstrap:
            from .stats import bootstrap_ci

            res = bootstrap_ci(metric, X, Y, n_bootstraps=args.bootstrap,
                               confidence=args.confidence, random_state=args.seed,
                               n_jobs=args.n_jobs, progress=progress)
            record.update(ci_low=res.low, ci_high=res.high, confidence=args.confidence,
                          ci_method=res.method)
        records.append(record)
    if not records:
        label, exc = failures[0]
        raise type(exc)(f"no metric could compare these inputs; {label}: {exc}")
    for label, exc in failures:
        _note(args, f"skipped {label}: {' '.join(str(exc).split())}")

    stats_keys = [k for k in ("pvalue", "ci_low", "ci_high") if k in records[0]]
    if args.json:
        out = []
        for r in records:
            r = dict(r, bounds=[_finite_or_none(b) for b in r["bounds"]])
            out.append(r)
        print(json.dumps(out, indent=2))
    elif args.csv:
        _print_csv(["metric", "kind", "value"] + stats_keys,
                   [[r["metric"], r["kind"], repr(r["value"])] + [repr(r[k]) for k in stats_keys]
                    for r in records])
    else:
        head = ["metric", "kind", "range", "value"]
        if "pvalue" in stats_keys:
            head.append(f"p ({args.permutations} perm.)")
        if "ci_low" in stats_keys:
            # the interval method is chosen per metric (stats.bootstrap_ci, method="auto")
            methods = sorted({r["ci_method"] for r in records if "ci_method" in r})
            head.append(f"{args.confidence:.0%} CI ({args.bootstrap} x {'/'.join(methods)})")
        rows = []
        for r in records:
            row = [r["metric"], r["kind"], _range(r["bounds"]), f"{r['value']:.4f}"]
            if "pvalue" in r:
                row.append(f"{r['pvalue']:.3g}")
            if "ci_low" in r:
                row.append(f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]")
            rows.append(row)
        shape = lambda A: " x ".join(map(str, A.shape))  # noqa: E731
        print(f"{args.a} ({shape(X)}) vs {args.b} ({shape(Y)})\n")
        print(_table(head, rows))


def _cmd_pairwise(args):
    from .pairwise import pairwise

    _check_plot_path(args.plot)
    infos = []
    labels, sources, arrays = _load_many(args.files, args.key, args.layout, args, infos)
    if len(arrays) < 2:
        raise ValueError(
            f"pairwise needs at least two representations, got {len(arrays)} ({sources[0]}): "
            "pass more files, or a .npz / .pt file holding several arrays"
        )
    _same_stimuli(sources, arrays)
    [(label, metric, _)] = _build_metrics([args.metric], args.param, args.layout)
    _report(args, infos)
    try:
        M = pairwise(metric, arrays, n_jobs=args.n_jobs, progress=_show_progress(args))
    except (ValueError, TypeError) as exc:  # name the files, not reps[i]
        message = re.sub(r"reps\[(\d+)\]", lambda m: sources[int(m.group(1))], str(exc))
        message = _for_the_command_line(message)
        raise type(exc)(message) from None
    if args.json:
        print(json.dumps({"metric": label, "kind": metric.kind, "labels": labels,
                          "row_labels": labels, "col_labels": labels, "matrix": M.tolist()},
                         indent=2))
    elif args.csv:
        _print_csv([""] + labels, [[lab] + [repr(float(v)) for v in row]
                                   for lab, row in zip(labels, M)])
    else:
        print(f"{label} ({metric.kind}, range {_range(metric.bounds)}) between "
              f"{len(labels)} representations of {arrays[0].shape[0]} stimuli\n")
        print(_table([""] + labels, [[lab] + [f"{v:.4f}" for v in row]
                                     for lab, row in zip(labels, M)]))
    if args.plot:
        from .plots import plot_similarity_matrix

        cmap = "viridis" if metric.kind == "similarity" else "viridis_r"
        _save_plot(args.plot, plot_similarity_matrix, M, labels, labels, cmap=cmap,
                   title=f"{label} ({metric.kind})")
        _note(args, f"wrote {args.plot}")


# -- parser -----------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_input_options(p):
    from ._core.validation import LAYOUTS

    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="a metric parameter, e.g. debiased=True or linear_cka.debiased=True "
                        "(repeatable; values are Python literals, bare words are strings; "
                        "booleans: true/false, yes/no, 1/0 in any case)")
    p.add_argument("--layout", choices=LAYOUTS,
                   help="how to read arrays with more than two axes (first axis = stimuli)")
    p.add_argument("--key", help="which array of a .npz file or saved dict of tensors")
    p.add_argument("--csv-header", choices=list(_FLAGS), default="auto",
                   help="whether line 1 of a CSV file holds column names (default: detected; "
                        "see simmetrics.io.load_arrays)")
    p.add_argument("--csv-index", choices=list(_FLAGS), default="auto",
                   help="whether column 1 of a CSV file holds row labels, not a neuron "
                        "(default: detected)")
    p.add_argument("--n-jobs", type=int, default=None, help="parallel jobs (joblib; -1: all)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or notes")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON")
    fmt.add_argument("--csv", action="store_true", help="print CSV")


def build_parser():
    """The argparse parser of the ``simmetrics`` command (one-line usage errors).

    Examples
    --------
    >>> args = build_parser().parse_args(["score", "a.npy", "b.npy", "-m", "cka", "--json"])
    >>> args.command, args.metric, args.json
    ('score', ['cka'], True)
    """
    parser = _Parser(
        prog="simmetrics",
        description="Representation-similarity metrics. Inputs are .npy, .npz, .pt/.pth or "
                    ".csv files of shape (n_stimuli, n_neurons) (or more axes with --layout).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    score = sub.add_parser("score", help="compare two representations of the same stimuli")
    score.add_argument("a", metavar="A", help="first representation file")
    score.add_argument("b", metavar="B", help="second representation file")
    score.add_argument("--metric", "-m", action="append",
                       help="a metric name (repeatable; default: every metric that applies)")
    _add_input_options(score)
    score.add_argument("--key-a", help="--key for A only")
    score.add_argument("--key-b", help="--key for B only")
    score.add_argument("--permutations", type=_positive_int, metavar="N",
                       help="add a permutation-test p-value from N shuffles of B's stimuli")
    score.add_argument("--bootstrap", type=_positive_int, metavar="N",
                       help="add a confidence interval from N resamples of stimuli: percentile "
                            "bootstrap, or subsampling without replacement for the metrics that "
                            "repeated stimuli bias (simmetrics.bootstrap_ci, method='auto')")
    score.add_argument("--confidence", type=float, default=0.95,
                       help="bootstrap confidence level (default 0.95)")
    score.add_argument("--seed", type=int, default=0,
                       help="random seed of --permutations and --bootstrap (default 0)")
    score.set_defaults(func=_cmd_score)

    pair = sub.add_parser("pairwise", help="one metric between every pair of representations")
    pair.add_argument("files", nargs="+", metavar="FILE",
                      help="representation files (a .npz or dict file holding several arrays "
                           "contributes all of them)")
    pair.add_argument("--metric", "-m", required=True, help="the metric name")
    _add_input_options(pair)
    pair.add_argument("--plot", metavar="OUT.png", help="also save a heatmap of the matrix")
    pair.set_defaults(func=_cmd_pairwise)

    demo = sub.add_parser("demo", help="score two small digits networks with every metric")
    demo.add_argument("--epochs", type=int, default=60, help="training epochs (default 60)")
    demo.add_argument("--metric", "-m", action="append",
                      help="a metric name (repeatable; default every metric)")
    demo.set_defaults(func=_cmd_demo)
    metrics = sub.add_parser("metrics", help="list the metrics and what their numbers mean")
    metrics.add_argument("--json", action="store_true", help="print JSON (null bound: none)")
    metrics.set_defaults(func=_cmd_metrics)
    inv = sub.add_parser("invariances", help="measure every metric against every group")
    inv.add_argument("--metric", "-m", action="append",
                     help="a metric name (repeatable; default all)")
    inv.add_argument("--group", action="append", help="a group name (repeatable; default all)")
    inv.add_argument("--markdown", action="store_true", help="print a markdown table")
    inv.add_argument("--plot", metavar="OUT.png", help="also save the table as a figure")
    inv.add_argument("--quiet", "-q", action="store_true", help="no notes on stderr")
    inv.set_defaults(func=_cmd_invariances)
    return parser


def _inputs(args):
    if getattr(args, "command", None) == "score":
        return f"comparing {args.a} with {args.b}"
    files = list(getattr(args, "files", ()) or ())
    if files:
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        return f"comparing the representations of {shown}"
    return f"running {getattr(args, 'command', 'simmetrics')}"


def _memory_message(args, exc):
    """One line for a MemoryError: the inputs, the size, what to do instead."""
    from ._core.memory import MemoryBudgetError

    if isinstance(exc, MemoryBudgetError):  # already says the size and the alternatives
        return f"{_inputs(args)}: {exc}"
    what = str(exc).strip() or "an allocation failed"
    return (
        f"out of memory {_inputs(args)}: {what}; try fewer stimuli, pool the positions of conv "
        "layers (or --layout flatten instead of nchw / nhwc, which make a row per position), or "
        "a metric whose memory grows with the neurons rather than with the stimuli squared "
        "(linear_cka, cca, procrustes); SIMMETRICS_MEMORY_BUDGET sets the size that metrics "
        "refuse up front"
    )


def main(argv=None):
    """Entry point of the ``simmetrics`` console script; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 on a usage or input error or a lack of memory (reported as one line
        on stderr), 130 when interrupted.

    Examples
    --------
    >>> main(["metrics"])  # doctest: +ELLIPSIS
    metric ... source
    ...
    linear_cka ... similarity ...
    ...
    0
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already reported on one line
        return exc.code if isinstance(exc.code, int) else 0
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("\nsimmetrics: interrupted", file=sys.stderr)
        return 130
    except MemoryError as exc:  # the budget's refusal (also a ValueError) or a failed allocation
        print(f"simmetrics: error: {' '.join(_memory_message(args, exc).split())}",
              file=sys.stderr)
        return 2
    except _USER_ERRORS as exc:
        print(f"simmetrics: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
