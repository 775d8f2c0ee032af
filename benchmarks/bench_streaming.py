"""Stream 10,000,000 rows of two 256-neuron representations through exact second-moment
statistics, generated batch by batch, and report the time and the peak memory.

The whole data would take 2 x 10,000,000 x 256 x 8 bytes = 41 GB in float64; the stream keeps one
batch and the O(d^2) statistics. The data are X ~ N(0, I) (drawn in float32, as activations
usually are) and Y = a X P + b E with P a fixed permutation of the neurons and E the batch's X
with its rows shifted by one and its neurons permuted by another fixed permutation (so E is
independent of X row by row and costs no second draw). The population CKA (biased and debiased
alike) is a^2 / (a^2 + b^2) = 0.36: the streamed estimates are printed beside it. One pass
serves every streaming metric; linear CKA (both), CCA and Procrustes are then scored from the
same statistics.

Usage::

    python benchmarks/bench_streaming.py                       # 10,000,000 x 256 (minutes)
    python benchmarks/bench_streaming.py --rows 200000 --quick # a smoke test
    python benchmarks/bench_streaming.py --blas-threads 1

On a machine with a CUDA GPU the same stream also runs with the batches generated on the device
(torch path: the products run there in float64); it is skipped with a printed line otherwise.
"""

import argparse
import os
import platform
import resource
import sys
import time
import tracemalloc

import numpy as np

import simmetrics
from simmetrics import CCA, LinearCKA, OrthogonalProcrustes, score_from_moments, stream_moments

A, B = 0.6, 0.8  # Y = A X P + B E


def numpy_batches(rows, width, batch, seed, clock):
    """Batches generated on the fly; the time spent generating is added to ``clock[0]``."""
    rng = np.random.default_rng(seed)
    perm, other = rng.permutation(width), rng.permutation(width)
    done = 0
    while done < rows:
        start = time.perf_counter()
        b = min(batch, rows - done)
        X = rng.standard_normal((b, width), dtype=np.float32)
        Y = A * X[:, perm] + B * np.roll(X, 1, axis=0)[:, other]
        clock[0] += time.perf_counter() - start
        done += b
        yield X, Y


def report_scores(stats):
    population = A * A / (A * A + B * B)
    print(f"  population CKA {population:.6f} (both estimators estimate it)")
    for metric in (LinearCKA(), LinearCKA(debiased=True), CCA(), OrthogonalProcrustes()):
        start = time.perf_counter()
        value = score_from_moments(metric, stats)
        print(f"  {metric!r:<34s} {value:.6f}   (scored from the statistics in "
              f"{time.perf_counter() - start:.3f} s)")


def cpu_stream(rows, width, batch, factor=True):
    print(f"\nnumpy: {rows:,} rows x {width} neurons (X and Y), batches of {batch:,} rows, "
          f"factor={factor} ({'with' if factor else 'without'} the triangular factor that the "
          "whitening metrics use on ill-conditioned data)")
    clock = [0.0]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    start = time.perf_counter()
    stats = stream_moments(numpy_batches(rows, width, batch, 0, clock), factor=factor)
    total = time.perf_counter() - start
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    full = 2 * rows * width * 8
    # a float32 batch, its validated float64 copy and the centred copy
    batch_bytes = 2 * batch * width * (4 + 8 + 8)
    print(f"  wall time {total:.1f} s: generating the data {clock[0]:.1f} s, the stream "
          f"{total - clock[0]:.1f} s ({rows / (total - clock[0]) / 1e6:.2f} M rows/s)")
    print(f"  peak memory allocated during the stream (tracemalloc): {peak / 2**20:.1f} MiB; "
          f"one batch with its float64 copies is {batch_bytes / 2**20:.1f} MiB, the statistics "
          f"{(3 * width * width * 8) / 2**20:.1f} MiB, the whole data in float64 would be "
          f"{full / 2**30:.1f} GiB")
    print(f"  process peak RSS {rss / 2**10:.0f} MiB (before the stream: {rss_before / 2**10:.0f}"
          f" MiB, the interpreter, numpy, scipy and torch loaded)")
    report_scores(stats)
    return total, peak


def cuda_stream(rows, width, batch):
    try:
        import torch
    except ImportError:  # pragma: no cover
        print("\ntorch not installed: CUDA stream skipped")
        return
    if not torch.cuda.is_available():
        print("\nno CUDA device: the GPU stream (batches generated on the device, products in "
              "float64 there) is skipped")
        return
    device = torch.device("cuda")
    print(f"\ntorch on {torch.cuda.get_device_name(0)}: {rows:,} rows x {width} neurons, "
          f"batches of {batch:,} generated on the device (float32)")
    gen = torch.Generator(device=device).manual_seed(0)
    perm = torch.randperm(width, generator=gen, device=device)
    other = torch.randperm(width, generator=gen, device=device)

    def batches():
        done = 0
        while done < rows:
            b = min(batch, rows - done)
            X = torch.randn(b, width, generator=gen, device=device)
            Y = A * X[:, perm] + B * torch.roll(X, 1, dims=0)[:, other]
            done += b
            yield X, Y

    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    start = time.perf_counter()
    stats = stream_moments(batches())
    torch.cuda.synchronize()
    total = time.perf_counter() - start
    print(f"  wall time {total:.1f} s including generation ({rows / total / 1e6:.2f} M rows/s); "
          f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    report_scores(stats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--blas-threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="200,000 rows")
    parser.add_argument("--skip-cpu", action="store_true", help="only the CUDA stream")
    parser.add_argument("--factor", choices=("yes", "no", "both"), default="both",
                        help="accumulate PairMoments.factor (stream_moments' default), not, or "
                             "time both (default)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows = min(args.rows, 200_000)
    from threadpoolctl import threadpool_limits

    print(f"simmetrics {simmetrics.__version__}, numpy {np.__version__}, Python "
          f"{platform.python_version()}, {os.cpu_count()} CPUs"
          + (f", BLAS limited to {args.blas_threads} thread(s)" if args.blas_threads else ""))
    with threadpool_limits(args.blas_threads):
        if not args.skip_cpu:
            for factor in {"yes": [True], "no": [False], "both": [False, True]}[args.factor]:
                cpu_stream(args.rows, args.width, args.batch, factor)
        cuda_stream(args.rows, args.width, 4 * args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
