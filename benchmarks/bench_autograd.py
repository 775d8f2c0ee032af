"""Time forward and backward passes of simmetrics' differentiable metrics (issue 13).

``simmetrics.functional.<name>(X, Y)`` on torch tensors that require grad gives a 0-d tensor
whose backward is the autograd of the metric's gradient formula (``Metric._gradient_formula``,
evaluated in float64 when backward runs). This script times, at n = 10,000 samples and
d = 512 neurons, float64 and float32 inputs, on the CPU:

- "forward+backward": ``value = functional.<name>(X, Y)`` with X and Y both requiring grad,
  then ``value.backward()`` (fresh leaves each call), for linear CKA, orthogonal Procrustes
  and IntertwinerCKA; a metric that has no gradient formula yet
  (``functional.is_differentiable(name)`` False) is reported as "not differentiable yet";
- "forward-only": the same call under ``torch.no_grad()``;
- the BLAS bound: the d x d products X'X, Y'Y, X'Y in float64 with torch on the same data (the
  conversion of float32 input included); for linear CKA also the bound of forward and backward
  together, those three products and the four n x d times d x d products its gradient needs
  (X Sxx, Y Sxy', X Sxy, Y Syy with Sxx = X'X, Sxy = X'Y, Syy = Y'Y of the centred data);
- ckatorch 1.0.3's linear CKA on the first ``--ckatorch-n`` rows of the same tensors (default
  2,000 on the CPU, all n on a GPU): its default ``cka_base(kernel="linear")``
  (``method="fro_norm"``) forms the n x n Gram matrices and centres them on *detached* copies,
  so its result has no gradient (checked here at run time); the differentiable routes are
  ``cka_base(kernel="linear", method="hsic")``, the biased CKA from n x n Grams K = XX',
  L = YY', the n x n centring matrix H and the n x n x n products KH, LH, (KH)(LH) for each of
  its three HSICs, and ``cka_batch`` on a batch of one, the unbiased HSIC (the debiased CKA)
  from the n x n Grams and the n x n x n product KL. Their cost grows as n^3, which is why they
  run on fewer rows on the CPU; simmetrics' forward+backward is timed on the same rows, and the
  gradients with respect to X and Y of both are compared (max |difference|, float64 input).

Every figure is a median of ``--repeats`` timed calls after an untimed warm-up call; a call
whose warm-up takes more than 5 s is timed once (the warm-up is that run). Every ratio is
between figures measured in this run and printed with its numerator and denominator.

When a CUDA GPU is available, the same on the GPU (ckatorch on all n rows there), and linear
CKA at n = 1,000,000, d = 1,024 on float32 device tensors against its float64 products on the
device, with the target "within 1.3x" for forward-only (against X'X, Y'Y, X'Y) and for
forward+backward (against those and the gradient's four products). That part is refused when
the device's free memory is below an estimate of its peak.

Usage::

    python benchmarks/bench_autograd.py --blas-threads 1            # the full run (minutes)
    python benchmarks/bench_autograd.py --blas-threads 1 --clock cpu
    python benchmarks/bench_autograd.py --quick                     # a smoke test (seconds)
    python benchmarks/bench_autograd.py --quick --gpu-device cpu    # also the GPU part's code,
                                                                    # on the CPU (smoke test)
"""

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

from harness import cpu_name
import simmetrics
from simmetrics import functional, get_metric

CLOCK = time.perf_counter  # --clock cpu: time.process_time (CPU seconds of this process)
SLOW = 5.0  # seconds: a call whose warm-up takes longer is timed once
METRICS = (("linear CKA", "linear_cka"), ("orthogonal Procrustes", "procrustes"),
           ("IntertwinerCKA", "intertwiner_cka"))
FULL = dict(n=10_000, d=512, ckatorch_n=2_000, big_n=1_000_000, big_d=1_024)
QUICK = dict(n=600, d=32, ckatorch_n=300, big_n=20_000, big_d=64)
#: Bytes of memory per float32 input element (X and Y together: 2 n d elements) that the
#: large linear CKA part is taken to need at its peak: the inputs (4) and, during backward,
#: their float64 leaves, centred copies and gradients (8 + 8 + 8) and the float32 gradients (4);
#: on the CPU at n = 100,000, d = 1,024 the peak RSS of forward+backward rose 28.5 bytes per
#: element above the inputs'. 40 leaves room for the CUDA caching allocator.
PEAK_BYTES_PER_ELEMENT = 40
CHECKS = []  # (description, max |difference|, largest |gradient|)
TARGETS = []  # (description, numerator, denominator, required, met)


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats):
    """(median seconds, runs, last result) of ``fn()``: one untimed warm-up call, then
    ``repeats`` timed calls; if the warm-up took more than :data:`SLOW` seconds it is the one
    timed run. The device is synchronised around each call; CUDA calls use the wall clock."""
    clock = CLOCK if device.type == "cpu" else time.perf_counter
    times = []
    for i in range(repeats + 1):
        _sync(device)
        start = clock()
        out = fn()
        _sync(device)
        elapsed = clock() - start
        if i == 0 and elapsed > SLOW:
            return elapsed, 1, out
        if i > 0:
            times.append(elapsed)
    return statistics.median(times), repeats, out


def line(name, seconds, runs, value=None):
    shown = "" if value is None else f"   value {float(value):.12f}"
    runs_text = "1 run" if runs == 1 else f"median of {runs}"
    print(f"  {name:<64s} {seconds:9.4f} s ({runs_text}){shown}", flush=True)


def ratio(name, numerator, denominator):
    print(f"    ratio {name}: {numerator:.4f} s / {denominator:.4f} s = "
          f"{numerator / denominator:.2f}", flush=True)
    return numerator / denominator


# -- data --------------------------------------------------------------------------------------
def related_data(n, d, seed=0):
    """Two related float64 (n, d) CPU tensors: X ~ N(0, 1) and Y = tanh(X W / 32) + 0.5 noise
    with W ~ N(0, 1) (d x d)."""
    import torch

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = np.tanh(X @ rng.normal(size=(d, d)) / 32) + 0.5 * rng.normal(size=(n, d))
    return torch.from_numpy(X), torch.from_numpy(Y)


def device_data(device, n, d, seed=0):
    """The same construction drawn on ``device`` directly, in float32 (the large GPU part)."""
    import torch

    gen = torch.Generator(device=device).manual_seed(seed)
    X = torch.randn(n, d, device=device, generator=gen)
    W = torch.randn(d, d, device=device, generator=gen)
    Y = torch.tanh(X @ W / 32) + 0.5 * torch.randn(n, d, device=device, generator=gen)
    return X, Y


# -- what is timed -------------------------------------------------------------------------------
def forward_backward(fn, X, Y):
    """``fn`` on fresh leaves of X and Y that require grad, then backward; the value and the two
    gradients."""
    A, B = X.detach().requires_grad_(True), Y.detach().requires_grad_(True)
    value = fn(A, B)
    value.backward()
    return value.detach(), A.grad, B.grad


def forward_only(fn, X, Y):
    import torch

    with torch.no_grad():
        return fn(X.detach().requires_grad_(True), Y.detach().requires_grad_(True))


def products(X, Y):
    """The bound: float64 X'X, Y'Y, X'Y (the conversion of other dtypes included)."""
    A, B = X.double(), Y.double()
    return A.T @ A, B.T @ B, A.T @ B


def products_with_gradient(X, Y):
    """The bound of linear CKA's forward and backward passes: the three products of the
    centred float64 data and the four n x d products of the gradient."""
    A, B = X.double(), Y.double()
    A, B = A - A.mean(dim=0), B - B.mean(dim=0)
    Sxx, Syy, Sxy = A.T @ A, B.T @ B, A.T @ B
    for left, right in ((A, Sxx), (B, Sxy.T), (A, Sxy), (B, Syy)):
        left @ right
    return Sxx, Syy, Sxy


# -- the sections ----------------------------------------------------------------------------
def bench_metrics(device, X, Y, repeats, label, metrics):
    """Forward-only, forward+backward and the bounds for each of ``metrics`` (pairs of
    :data:`METRICS`)."""
    print(f"\n== {label} ==", flush=True)
    bound, runs, _ = timed(lambda: products(X, Y), device, repeats)
    line("BLAS bound: float64 X'X, Y'Y, X'Y (torch)", bound, runs)
    bound_fb, runs, _ = timed(lambda: products_with_gradient(X, Y), device, repeats)
    line("BLAS bound with the gradient: also X Sxx, Y Sxy', X Sxy, Y Syy", bound_fb, runs)
    out = {}
    for title, name in metrics:
        fn = getattr(functional, name)
        fwd, runs, value = timed(lambda: forward_only(fn, X, Y), device, repeats)
        line(f"{title}: forward-only (torch.no_grad())", fwd, runs, value)
        if not functional.is_differentiable(get_metric(name)):
            print(f"  {title}: forward+backward: not differentiable yet "
                  f"(simmetrics.functional.is_differentiable({name!r}) is False)", flush=True)
            ratio(f"{title} forward-only / BLAS bound", fwd, bound)
            continue
        fb, runs, (fb_value, _, _) = timed(lambda: forward_backward(fn, X, Y), device, repeats)
        line(f"{title}: forward+backward (gradients w.r.t. X and Y)", fb, runs, fb_value)
        ratio(f"{title} forward+backward / forward-only", fb, fwd)
        ratio(f"{title} forward-only / BLAS bound", fwd, bound)
        ratio(f"{title} forward+backward / BLAS bound", fb, bound)
        if name == "linear_cka":
            ratio(f"{title} forward+backward / BLAS bound with the gradient", fb, bound_fb)
        out[name] = fb
    return out


def bench_ckatorch(device, X, Y, n_rows, repeats, check, where):
    """ckatorch's linear CKA routes and simmetrics' forward+backward on the first ``n_rows``
    rows; with ``check``, their gradients compared."""
    from ckatorch.core import cka_base, cka_batch

    X, Y = X[:n_rows], Y[:n_rows]
    print(f"  -- ckatorch on the first {n_rows:,} rows of the same tensors --", flush=True)
    plain = cka_base(X.detach().requires_grad_(True), Y.detach().requires_grad_(True),
                     kernel="linear")
    state = "has a gradient" if plain.requires_grad else (
        "gives no gradient: it centres detached copies of its n x n Gram matrices, so its "
        "result has requires_grad=False")
    print(f"  ckatorch cka_base(kernel='linear') (method='fro_norm', its default) {state}")
    routes = (
        ("biased", "ckatorch cka_base(kernel='linear', method='hsic'): n x n Grams, H, KH, LH, "
         "(KH)(LH)", lambda A, B: cka_base(A, B, kernel="linear", method="hsic"),
         "simmetrics functional.linear_cka", functional.linear_cka),
        ("debiased", "ckatorch cka_batch (batch of 1: unbiased HSIC; n x n Grams, KL)",
         lambda A, B: cka_batch(A[None], B[None]),
         "simmetrics functional.linear_cka(debiased=True)",
         lambda A, B: functional.linear_cka(A, B, debiased=True)),
    )
    for kind, peer_name, peer, ours_name, ours in routes:
        theirs, runs, (peer_value, pgx, pgy) = timed(lambda: forward_backward(peer, X, Y),
                                                      device, repeats)
        line(f"{peer_name}", theirs, runs, peer_value)
        mine, runs, (our_value, gx, gy) = timed(lambda: forward_backward(ours, X, Y), device,
                                                repeats)
        line(f"{ours_name}, forward+backward", mine, runs, our_value)
        ratio(f"ckatorch / simmetrics ({kind} linear CKA, forward+backward, "
              f"n = {n_rows:,})", theirs, mine)
        if check:
            difference = max(float((gx - pgx).abs().max()), float((gy - pgy).abs().max()))
            largest = max(float(gx.abs().max()), float(gy.abs().max()))
            CHECKS.append((f"{kind} linear CKA, {where}, n = {n_rows:,}: simmetrics vs "
                           f"ckatorch, gradients w.r.t. X and Y", difference, largest))
            CHECKS.append((f"{kind} linear CKA, {where}, n = {n_rows:,}: values",
                           abs(float(our_value) - float(peer_value)), abs(float(our_value))))


def bench_large_linear_cka(device, n, d, repeats):
    """Linear CKA at ``n`` x ``d`` on float32 device tensors against its float64 products."""
    import torch

    print(f"\n== linear CKA on {device}: n = {n:,}, d = {d:,}, float32 tensors ==", flush=True)
    need = PEAK_BYTES_PER_ELEMENT * 2 * n * d
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
    else:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    print(f"  memory: {free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB; this part is "
          f"estimated to need {need / 2**30:.1f} GiB")
    if free < need:
        print("  REFUSED: not enough free memory for this part; not measured")
        TARGETS.append((f"linear CKA at n = {n:,}, d = {d:,} on {device}: refused (memory)",
                        None, None, 1.3, False))
        return
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    X, Y = device_data(device, n, d)
    fn = functional.linear_cka
    bound, runs, _ = timed(lambda: products(X, Y), device, repeats)
    line("bound: float64 X'X, Y'Y, X'Y on the device", bound, runs)
    bound_fb, runs, _ = timed(lambda: products_with_gradient(X, Y), device, repeats)
    line("bound with the gradient: also X Sxx, Y Sxy', X Sxy, Y Syy", bound_fb, runs)
    fwd, runs, value = timed(lambda: forward_only(fn, X, Y), device, repeats)
    line("linear CKA forward-only (torch.no_grad())", fwd, runs, value)
    fb, runs, (fb_value, _, _) = timed(lambda: forward_backward(fn, X, Y), device, repeats)
    line("linear CKA forward+backward (gradients w.r.t. X and Y)", fb, runs, fb_value)
    ratio("forward+backward / forward-only", fb, fwd)
    ratio("forward+backward / bound X'X, Y'Y, X'Y", fb, bound)
    for description, numerator, denominator in (
            ("forward-only within 1.3x of float64 X'X, Y'Y, X'Y", fwd, bound),
            ("forward+backward within 1.3x of its float64 products (with the gradient's)",
             fb, bound_fb)):
        r = ratio(description.split(" within")[0] + " / its bound", numerator, denominator)
        TARGETS.append((f"linear CKA at n = {n:,}, d = {d:,} on {device}: {description}",
                        numerator, denominator, 1.3, r <= 1.3))
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        print(f"    peak device memory: {peak / 2**30:.1f} GiB "
              f"({peak / (2 * n * d):.1f} bytes per input element)")


# -- the script -----------------------------------------------------------------------------
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per figure")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="limit BLAS (and torch) threads (default: the libraries' default)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="CPU figures: wall time, or CPU time of this process")
    parser.add_argument("--ckatorch-n", type=int, default=None,
                        help="rows for the ckatorch comparison on the CPU (n^3 cost)")
    parser.add_argument("--gpu-device", default="cuda",
                        help="device of the GPU part (default cuda; cpu runs its code on the "
                             "CPU, for a smoke test)")
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    import torch
    from threadpoolctl import threadpool_limits

    CHECKS.clear()
    TARGETS.clear()
    torch_threads = torch.get_num_threads()
    if args.blas_threads:
        torch.set_num_threads(args.blas_threads)
    try:
        with threadpool_limits(args.blas_threads):
            return _main(args, torch)
    finally:  # a caller (the smoke test) keeps its own torch threads
        torch.set_num_threads(torch_threads)


def _main(args, torch):
    import ckatorch  # noqa: F401  (the test extra; its version is printed)
    from importlib.metadata import version
    from threadpoolctl import threadpool_info

    sizes = dict(QUICK if args.quick else FULL)
    if args.ckatorch_n:
        sizes["ckatorch_n"] = args.ckatorch_n
    blas = [f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    print(f"simmetrics {simmetrics.__version__}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), ckatorch {version('ckatorch')}, numpy "
          f"{np.__version__}, Python {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs ({cpu_name()}), BLAS: {', '.join(blas)}")
    if args.blas_threads:
        print(f"BLAS limited to {args.blas_threads} thread(s)")
    print(f"clock (CPU figures): "
          f"{'CPU time of this process' if args.clock == 'cpu' else 'wall time'}")
    print("differentiable now: " + ", ".join(
        f"{name} {functional.is_differentiable(name)}" for _, name in METRICS))
    start = time.perf_counter()
    n, d = sizes["n"], sizes["d"]
    cpu = torch.device("cpu")
    X, Y = related_data(n, d)
    for dtype in (torch.float64, torch.float32):
        A, B = X.to(dtype), Y.to(dtype)
        kind = str(dtype).replace("torch.", "")
        bench_metrics(cpu, A, B, args.repeats, f"CPU: n = {n:,}, d = {d}, {kind} inputs",
                      METRICS[:2])
        bench_ckatorch(cpu, A, B, min(n, sizes["ckatorch_n"]), args.repeats,
                       check=dtype == torch.float64, where="CPU")
    for dtype in (torch.float64, torch.float32):  # last: minutes per call at the full size
        kind = str(dtype).replace("torch.", "")
        bench_metrics(cpu, X.to(dtype), Y.to(dtype), args.repeats,
                      f"CPU: {METRICS[2][0]}, n = {n:,}, d = {d}, {kind} inputs", METRICS[2:])
    gpu = torch.device(args.gpu_device)
    if gpu.type == "cuda" and not torch.cuda.is_available():
        print("\nno CUDA device (torch.cuda.is_available() is False): the GPU part is skipped")
    else:
        name = torch.cuda.get_device_name(gpu) if gpu.type == "cuda" else cpu_name()
        print(f"\nGPU part on {gpu}: {name}" + ("" if gpu.type == "cuda" else
                                                 " (the GPU part's code run on the CPU)"))
        for dtype in (torch.float64, torch.float32):
            A, B = X.to(device=gpu, dtype=dtype), Y.to(device=gpu, dtype=dtype)
            kind = str(dtype).replace("torch.", "")
            bench_metrics(gpu, A, B, args.repeats, f"{gpu}: n = {n:,}, d = {d}, {kind} inputs",
                          METRICS)
            rows = n if gpu.type == "cuda" else min(n, sizes["ckatorch_n"])
            bench_ckatorch(gpu, A, B, rows, args.repeats, check=dtype == torch.float64,
                           where=f"GPU part on {gpu}")
            del A, B
        bench_large_linear_cka(gpu, sizes["big_n"], sizes["big_d"], args.repeats)
    print("\nchecks: simmetrics' gradients and values against ckatorch's, float64 inputs "
          "(max |difference|, to 1e-10):")
    for description, difference, largest in CHECKS:
        ok = "agree" if difference <= 1e-10 else "DIFFER"
        print(f"  [{ok}] {description}: max |difference| {difference:.1e} "
              f"(largest |entry| {largest:.1e})")
    print("\ntargets of issue 13 (measured within this run):")
    if not TARGETS:
        print("  none measured here (the 1.3x target is for the GPU part)")
    for description, numerator, denominator, required, met in TARGETS:
        shown = ("not measured" if numerator is None else
                 f"{numerator:.4f} s / {denominator:.4f} s = {numerator / denominator:.2f} "
                 f"(<= {required:g})")
        print(f"  [{'met' if met else 'MISSED'}] {description}: {shown}")
    print(f"\ntotal wall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
