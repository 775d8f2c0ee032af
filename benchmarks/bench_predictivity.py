"""Regression predictivity when features outnumber stimuli: the dual (kernel) form's memory.

Brain-Score's threads report ridge predictivity running out of memory on wide layers (issue
#533, 60 GB; PR #2383, a 62 GB coefficient matrix): the primal coefficients are d x t. Here
LinearPredictivity(regression="ridge" | "linear" | "ridgecv") fits in dual form when d > n:
the n x n centred kernel, built a block of columns at a time, and n x t dual coefficients.
This script fits on n_train stimuli of d features predicting t targets, scores n_test
held-out stimuli, and reports time and the peak memory allocated beyond the data
(tracemalloc: numpy's allocations are traced), against the 2 GB target.

    python benchmarks/bench_predictivity.py            # d = 50,000, t = 5,000, n = 2,000
    python benchmarks/bench_predictivity.py --quick    # d = 5,000, t = 500, n = 400
"""

import argparse
import os
import sys
import time
import tracemalloc

TARGET_BYTES = 2 * 10**9


def _data(n, d, t, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 20))
    X = np.empty((n, d))
    step = 5000
    for j in range(0, d, step):  # the model's features, made a block at a time
        w = rng.standard_normal((20, min(step, d - j)))
        X[:, j:j + step] = np.maximum(latent @ w + rng.standard_normal((n, w.shape[1])), 0.0)
    Y = latent @ rng.standard_normal((20, t)) + 2.0 * rng.standard_normal((n, t))
    return X, Y


def run(n, d, t, regressions, train_share=0.9):
    from simmetrics import LinearPredictivity

    X, Y = _data(n, d, t)
    n_train = int(round(train_share * n))
    rows = []
    for regression in regressions:
        metric = LinearPredictivity(regression=regression)
        tracemalloc.start()
        start = time.perf_counter()
        metric.fit(X[:n_train], Y[:n_train])
        value = metric.score(X[n_train:], Y[n_train:])
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows.append((regression, metric.coef_ is None, value, seconds, peak))
    return X.nbytes + Y.nbytes, rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d = 5,000, t = 500, n = 400")
    parser.add_argument("--ridgecv", action="store_true",
                        help="also RidgeCV at full size (99 leave-one-out fits of n^2 t each: "
                             "minutes); --quick always includes it")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="BLAS threads (set before numpy is imported)")
    args = parser.parse_args(argv)
    if args.blas_threads is not None:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(args.blas_threads)
    n, d, t = (400, 5000, 500) if args.quick else (2000, 50000, 5000)
    regressions = ("ridge", "linear") + (("ridgecv",) if args.quick or args.ridgecv else ())
    data_bytes, rows = run(n, d, t, regressions)
    print(f"\nregression predictivity in dual form, n = {n:,} (90% train), d = {d:,}, "
          f"t = {t:,}; data {data_bytes / 1e9:.2f} GB")
    print(f"  the primal coefficients would be d x t = {8 * d * t / 1e9:.2f} GB")
    ok = True
    for regression, dual, value, seconds, peak in rows:
        within = peak < TARGET_BYTES
        ok &= within and dual
        print(f"  LinearPredictivity(regression={regression!r}): dual form {dual}, "
              f"value {value:.6f}, {seconds:.2f} s, peak beyond the data {peak / 1e9:.3f} GB "
              f"[{'within' if within else 'OVER'} 2 GB]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
