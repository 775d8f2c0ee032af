"""The ``simmetrics`` command line.

    simmetrics demo       two MLPs trained on digits, every metric, one table
    simmetrics metrics    every metric's kind, bounds, is_metric, invariances and source
    simmetrics invariances [--metric NAME ...] [--group NAME ...] [--markdown]
                          the measured invariance table
"""

import argparse
import sys

from ._registry import available_metrics, metric_class

__all__ = ["main"]


def _metrics_table():
    rows = []
    for name in available_metrics():
        cls = metric_class(name)
        rows.append([
            name,
            cls.kind,
            "[{:.3g}, {:.3g}]".format(*cls.bounds),
            "yes" if cls.is_metric else "no",
            ", ".join(sorted(cls.invariances)) or "-",
            cls.reference,
        ])
    head = ["metric", "kind", "range", "metric axioms", "invariances (defaults)", "source"]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    lines = [fmt.format(*head), fmt.format(*["-" * w for w in widths])]
    return "\n".join(line.rstrip() for line in lines + [fmt.format(*r) for r in rows])


def _cmd_demo(args):
    from .demo import format_demo, run_demo

    print(format_demo(run_demo(epochs=args.epochs)))


def _cmd_metrics(args):
    print(_metrics_table())


def _cmd_invariances(args):
    from .invariance import invariance_table

    table = invariance_table(args.metric, args.group)
    print(table.to_markdown() if args.markdown else table)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="simmetrics", description="Representation-similarity metrics."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="score two small digits networks with every metric")
    demo.add_argument("--epochs", type=int, default=60, help="training epochs (default 60)")
    demo.set_defaults(func=_cmd_demo)
    metrics = sub.add_parser("metrics", help="list the metrics and what their numbers mean")
    metrics.set_defaults(func=_cmd_metrics)
    inv = sub.add_parser("invariances", help="measure every metric against every group")
    inv.add_argument("--metric", action="append", help="a metric name (repeatable; default all)")
    inv.add_argument("--group", action="append", help="a group name (repeatable; default all)")
    inv.add_argument("--markdown", action="store_true", help="print a markdown table")
    inv.set_defaults(func=_cmd_invariances)
    return parser


def main(argv=None):
    """Entry point of the ``simmetrics`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"simmetrics: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
