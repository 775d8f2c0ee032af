"""RSA: simmetrics against rsatoolbox 0.3.2 (calc_rdm + compare), on the same data in one run.

For each RDM x comparison it times ``RSA(rdm=..., compare=...).fit_score(X, Y)`` and
rsatoolbox's ``compare(calc_rdm(Dataset(X)), calc_rdm(Dataset(Y)), method)``, checks that the
two values agree, and prints the ratio (rsatoolbox time / simmetrics time). Sizes: n = 2,000
stimuli and d = 512 neurons (the size of the outside benchmark the issue quotes), then
n = 10,000 where rsatoolbox can (its RDMs are full n x n matrices; its whitened comparisons
build an m x m covariance and are run only up to n = 100 here).

    python benchmarks/bench_rsa.py                 # full run (minutes)
    python benchmarks/bench_rsa.py --quick         # a smoke test (seconds)
"""

import argparse
import os
import platform
import time

import numpy as np

import simmetrics

RSATOOLBOX_NAMES = {"spearman": "spearman", "pearson": "corr", "kendall": "kendall",
                    "cosine": "cosine", "cosine_cov": "cosine_cov", "corr_cov": "corr_cov",
                    "rho_a": "rho-a", "tau_a": "tau-a", "bures": "bures",
                    "bures_metric": "bures_metric"}
#: (rdm, compare, the largest n rsatoolbox is run at)
CASES = [("correlation", "spearman", 10_000), ("euclidean", "pearson", 10_000),
         ("euclidean", "cosine", 10_000), ("correlation", "rho_a", 10_000),
         ("euclidean", "cosine_cov", 100), ("poisson", "pearson", 2_000)]


def data(rng, n, d):
    """Related non-negative representations (poisson needs rates >= 0)."""
    L = rng.normal(size=(n, 8))
    X = np.maximum(L @ rng.normal(size=(8, d)) + 0.5 * rng.normal(size=(n, d)), 0.0)
    Y = np.maximum(L @ rng.normal(size=(8, d)) + rng.normal(size=(n, d)), 0.0)
    return X, Y


def rsatoolbox_rsa(X, Y, rdm_method, compare):
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm
    from rsatoolbox.rdm import compare as rsa_compare

    rx = calc_rdm(Dataset(X), method=rdm_method)
    ry = calc_rdm(Dataset(Y), method=rdm_method)
    return float(rsa_compare(rx, ry, method=RSATOOLBOX_NAMES[compare])[0, 0])


def timed(fn, repeats=1):
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return value, float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--repeats", type=int, default=1, help="runs per timing (median)")
    args = parser.parse_args(argv)
    from importlib.metadata import version

    print(f"simmetrics {simmetrics.__version__}, rsatoolbox {version('rsatoolbox')}, numpy "
          f"{np.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    sizes = [(300, 64), (1_000, 64)] if args.quick else [(2_000, 512), (10_000, 512)]
    rng = np.random.default_rng(0)
    worst = 0.0
    for n, d in sizes:
        X, Y = data(rng, n, d)
        print(f"\nRSA, n = {n:,}, d = {d}")
        print(f"  {'rdm':<12} {'compare':<11} {'simmetrics s':>13} {'rsatoolbox s':>13} "
              f"{'ratio':>7} {'|difference|':>13}")
        for rdm_method, compare, peer_max in CASES:
            value, ours = timed(lambda: simmetrics.RSA(rdm=rdm_method, compare=compare)
                                .fit_score(X, Y), args.repeats)
            peer_n = min(n, peer_max if not args.quick else n)
            if peer_n < n:
                print(f"  {rdm_method:<12} {compare:<11} {ours:13.3f} {'(not run)':>13}")
                continue
            ref, theirs = timed(lambda: rsatoolbox_rsa(X, Y, rdm_method, compare))
            diff = abs(value - ref)
            worst = max(worst, diff)
            print(f"  {rdm_method:<12} {compare:<11} {ours:13.3f} {theirs:13.3f} "
                  f"{theirs / ours:7.2f} {diff:13.2e}")
    print(f"\nlargest |simmetrics - rsatoolbox|: {worst:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
