"""The paper's experiments at laptop scale: model stitching (E1), the intertwiner sanity test
(E2) and the metric comparison across seeds (E3), on scikit-learn's digits.

The command line of the reproduction, run as ``python -m simmetrics.paper``: :func:`main` runs
the study (:func:`simmetrics.paper.experiments.run_experiments`, or reads a saved
``results.json``) and writes its report (:mod:`simmetrics.paper.report`).
``python -m simmetrics.paper barrier --out results/ [--docs docs] [--smoke]`` runs the
alignment and loss-barrier study instead (:mod:`simmetrics.paper.barrier_study`).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .config import ExperimentConfig
from .experiments import run_experiments
from .report import format_report, write_figures, write_report

__all__ = ["main"]


def main(argv=None):
    """``python -m simmetrics.paper --out results/ [--docs docs/] [--smoke]
    [--n-jobs N] [--no-figures] [--from-json results/results.json]``; ``python -m
    simmetrics.paper barrier ...`` runs the alignment and loss-barrier study instead
    (:func:`simmetrics.paper.barrier_study.main`, which takes the same flags)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["barrier"]:
        from .barrier_study import main as barrier_main

        return barrier_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m simmetrics.paper",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results", help="output folder (default results/)")
    parser.add_argument("--docs", default=None,
                        help="also write the report as DOCS/experiments.md with figures in "
                             "DOCS/figures/ (the committed copy)")
    parser.add_argument("--smoke", action="store_true", help="the tiny test configuration")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="parallel processes (default: one per CPU core, at most one per "
                             "task); the numbers do not depend on it")
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--from-json", default=None, metavar="RESULTS_JSON",
                        help="do not run anything: render the report and figures again from a "
                             "results.json written by an earlier run (same numbers)")
    args = parser.parse_args(argv)
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        wall = results.pop("wall_seconds", None)
    else:
        config = ExperimentConfig.smoke() if args.smoke else ExperimentConfig()
        n_jobs = args.n_jobs or min(os.cpu_count() or 1,
                                    len(config.architectures) * len(config.activations))
        start = time.perf_counter()
        results = run_experiments(config, n_jobs=n_jobs, progress=True)
        wall = time.perf_counter() - start
    text = write_report(results, args.out, wall, figures=not args.no_figures)
    if args.docs:
        docs = Path(args.docs)
        docs.mkdir(parents=True, exist_ok=True)
        paths = {}
        if not args.no_figures:
            paths = {k: f"figures/{v}" for k, v in write_figures(results, docs / "figures").items()}
        (docs / "experiments.md").write_text(format_report(results, wall, paths))
    print(text)
    print(f"\nwrote {Path(args.out) / 'report.md'}" +
          (f" and {Path(args.docs) / 'experiments.md'}" if args.docs else ""), file=sys.stderr)
    return 0

