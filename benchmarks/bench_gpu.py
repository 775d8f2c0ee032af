"""Time simmetrics on a CUDA GPU: linear CKA, streaming and IntertwinerCKA on device tensors.

Every figure is a median over ``--repeats`` timed calls after one untimed warm-up call, with
``torch.cuda.synchronize()`` before the clock starts and before it stops, so each figure is the
whole device work of the call; every ratio is between figures measured in this same run.

- linear CKA, n = 1,000,000, d = 1,024, float32 CUDA tensors: ``LinearCKA().fit_score`` and
  ``LinearCKA(debiased=True).fit_score`` against the bound "float64 X'X, Y'Y, X'Y on the
  device" (the conversion to float64 included: the metric accumulates in float64), and
  ``simmetrics.stream_score`` over 100,000-row device batches;
- IntertwinerCKA (ReLU, max over channels) at N = 10,000, C = 64, dense and with 4 x 4
  positions summed (``positions="sum"``), float32 data: on the device, against the same metric
  on the same data as numpy arrays (the CPU path, numpy's kernels, timed in this run: one
  call, it takes seconds), and the two values side by side.

Usage::

    python benchmarks/bench_gpu.py                        # needs CUDA; about a minute on an H200
    python benchmarks/bench_gpu.py --device cpu --quick   # the whole script on the CPU, small
                                                          # sizes: a smoke test (seconds)

Without CUDA (and without ``--device cpu``) it prints one line saying the GPU part was skipped
and exits with status 0.
"""

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

import simmetrics
from simmetrics import IntertwinerCKA, LinearCKA

FULL = dict(n=1_000_000, d=1_024, batch=100_000, N=10_000, C=64, repeats=5, cka_repeats=3)
QUICK = dict(n=20_000, d=64, batch=2_000, N=300, C=16, repeats=2, cka_repeats=2)


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats, warmup=True):
    """Median wall time of ``fn()`` over ``repeats`` calls (after one untimed warm-up call),
    the device synchronised around each call; and the last result."""
    if warmup:
        fn()
    times, out = [], None
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def line(name, seconds, value=None):
    shown = "" if value is None else f"   value {float(value):.12f}"
    print(f"  {name:<62s} {seconds:9.4f} s{shown}", flush=True)


# -- data ----------------------------------------------------------------------------------
def linear_data(device, n, d, seed=0):
    """Two related float32 (n, d) tensors made on ``device``: X ~ N(0, 1) and
    Y = tanh(X W / 32) + 0.5 noise."""
    import torch

    gen = torch.Generator(device=device).manual_seed(seed)
    X = torch.randn(n, d, device=device, generator=gen)
    W = torch.randn(d, d, device=device, generator=gen)
    Y = torch.tanh(X @ W / 32) + 0.5 * torch.randn(n, d, device=device, generator=gen)
    return X, Y


def intertwiner_data(N, C, spatial, seed=0):
    """float32 numpy ReLU features (N, C, spatial, spatial) of two related layers (as in
    bench_metrics.py), and the metric that reads them: dense (N, C) for ``spatial == 1``,
    ``positions="sum"`` with layout "nchw" otherwise."""
    rng = np.random.default_rng(seed)
    H1 = np.maximum(rng.normal(size=(N, C, spatial, spatial)), 0.0)
    mix = rng.normal(size=(C, C)) / np.sqrt(C)
    H2 = np.maximum(np.einsum("nchw,cd->ndhw", H1, mix) + 0.5 * rng.normal(size=H1.shape), 0.0)
    H1, H2 = H1.astype(np.float32), H2.astype(np.float32)
    if spatial == 1:
        return H1[:, :, 0, 0], H2[:, :, 0, 0], IntertwinerCKA("relu")
    return H1, H2, IntertwinerCKA("relu", positions="sum", layout="nchw")


# -- linear CKA and streaming ------------------------------------------------------------------
def bench_linear_cka(device, n, d, batch, repeats):
    import torch

    print(f"\n== linear CKA on {device}: n = {n:,}, d = {d:,}, float32 tensors ==", flush=True)
    X, Y = linear_data(device, n, d)

    def bound():  # the three products in float64 on the device, the conversion included
        A, B = X.double(), Y.double()
        return A.T @ A, B.T @ B, A.T @ B

    seconds = {}
    seconds["bound"], _ = timed(bound, device, repeats)
    line("bound: float64 X'X, Y'Y, X'Y on the device", seconds["bound"])
    for name, metric in (("LinearCKA().fit_score", LinearCKA()),
                         ("LinearCKA(debiased=True).fit_score", LinearCKA(debiased=True))):
        seconds[name], value = timed(lambda: metric.fit_score(X, Y), device, repeats)
        line(name, seconds[name], value)
    batches = [(X[i:i + batch], Y[i:i + batch]) for i in range(0, n, batch)]
    name = f"stream_score(LinearCKA(), {len(batches)} batches of {batch:,} rows)"
    seconds[name], value = timed(lambda: simmetrics.stream_score(LinearCKA(), batches), device,
                                 repeats)
    line(name, seconds[name], value)
    for key, value in seconds.items():
        if key != "bound":
            print(f"    ratio {key} / bound: {value / seconds['bound']:.2f}")
    if device.type == "cuda":
        print(f"    peak device memory: {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    del X, Y, batches


# -- IntertwinerCKA ----------------------------------------------------------------------------
def bench_intertwiner_cka(device, N, C, spatial, repeats):
    import torch

    shape = "dense" if spatial == 1 else f"{spatial} x {spatial} positions summed"
    print(f"\n== IntertwinerCKA (ReLU, max) on {device}: N = {N:,}, C = {C}, {shape} ==",
          flush=True)
    A, B, metric = intertwiner_data(N, C, spatial)
    tA, tB = torch.from_numpy(A).to(device), torch.from_numpy(B).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    on_device, value = timed(lambda: metric.fit_score(tA, tB), device, repeats)
    line(f"{device} tensors (float32, computed in float64 there)", on_device, value)
    if device.type == "cuda":
        print(f"    peak device memory: {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    # the CPU path (numpy's kernels) on the same data as numpy arrays; one call, it is slow
    on_cpu, cpu_value = timed(lambda: metric.fit_score(A, B), torch.device("cpu"), 1,
                              warmup=False)
    line("CPU path: the same data as numpy arrays (1 call)", on_cpu, cpu_value)
    print(f"    speed-up {device} / CPU path: {on_cpu / on_device:.1f}x; "
          f"|value difference| {abs(value - cpu_value):.1e}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda",
                        help="torch device to benchmark (default cuda; cpu for a smoke test)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per figure")
    args = parser.parse_args(argv)
    import torch

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device (torch.cuda.is_available() is False): the GPU benchmark is "
              "skipped")
        return 0
    sizes = dict(QUICK if args.quick else FULL)
    if args.repeats:
        sizes["repeats"] = sizes["cka_repeats"] = args.repeats
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"simmetrics {simmetrics.__version__}, torch {torch.__version__}, CUDA "
          f"{torch.version.cuda or 'none'}, numpy {np.__version__}, Python "
          f"{platform.python_version()}")
    print(f"device {device}: {name or 'CPU'}; CPU: {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} torch threads")
    start = time.perf_counter()
    bench_linear_cka(device, sizes["n"], sizes["d"], sizes["batch"], sizes["repeats"])
    for spatial in (1, 4):
        bench_intertwiner_cka(device, sizes["N"], sizes["C"], spatial, sizes["cka_repeats"])
    print(f"\ntotal wall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
