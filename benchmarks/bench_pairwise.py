"""Issue 19: simmetrics.pairwise over many representations, serial against a dask LocalCluster,
and the cost of resuming a killed job from its cache folder.

For each metric (linear CKA and orthogonal Procrustes), on L representations of n stimuli and d
neurons (default 200 of 5,000 x 512, float64, one BLAS thread everywhere):

- serial, no cache: ``pairwise(metric, reps, n_jobs=1)`` as a user calls it (linear CKA takes
  its Gram-space route there when that is cheaper);
- serial, with a cache: the same matrix computed pair by pair from the prepared states, each
  value written to the cache folder as it is finished (the route every resumable run takes);
- dask: the cached run on a ``distributed.LocalCluster`` of ``--workers`` single-threaded
  worker processes through ``joblib.parallel_backend("dask")``; the parallel efficiency is
  serial / (workers x dask), both with a cache, so the same work is compared;
- resume: the cached serial job started in a subprocess, killed (SIGKILL) once half of its pairs
  are on disk, and restarted here: the restart's time against the ideal (the serial run's time
  times the share of pairs that were missing) and against the whole serial run.

Every matrix is checked against the serial one (largest difference printed). Usage::

    python benchmarks/bench_pairwise.py                  # 200 x (5,000 x 512): hours on 2 cores
    python benchmarks/bench_pairwise.py --reps 40 --rows 2000 --width 128
    python benchmarks/bench_pairwise.py --quick          # smoke test, seconds
"""

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy: the workers inherit it too
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import simmetrics  # noqa: E402
from harness import cpu_name  # noqa: E402

METRICS = {"linear CKA": "linear_cka", "orthogonal Procrustes": "procrustes"}


def representations(L, n, d, seed=0):
    """L related float64 (n, d) representations: a shared part plus each one's own noise."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((n, d))
    return [shared + (0.3 + 0.1 * (k % 5)) * rng.standard_normal((n, d)) for k in range(L)]


def pair_files(cache):
    folder = Path(cache) / "pairs"
    return sum(1 for p in folder.glob("*.f8")) if folder.is_dir() else 0


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def child(argv):
    """The job the resume step kills: the cached serial run in its own process."""
    cache, name, L, n, d = argv[0], argv[1], *map(int, argv[2:5])
    simmetrics.pairwise(name, representations(L, n, d), n_jobs=1, cache=cache)
    return 0


def resume(name, reps, cache, total):
    """Kill the cached job once half its pairs are on disk, restart it; (finished, stats, s)."""
    cmd = [sys.executable, __file__, "--child", str(cache), name, str(len(reps)),
           str(reps[0].shape[0]), str(reps[0].shape[1])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while pair_files(cache) < total // 2:
        if proc.poll() is not None:
            raise RuntimeError(f"the job ended before it was killed: {proc.stderr.read()}")
        time.sleep(0.01)
    proc.kill()
    proc.communicate()
    finished = pair_files(cache)
    (M, stats), seconds = timed(lambda: simmetrics.pairwise(name, reps, n_jobs=1, cache=cache,
                                                            return_stats=True))
    return finished, M, stats, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--rows", type=int, default=5_000)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child)
    if args.quick:
        args.reps, args.rows, args.width = 12, 300, 16
    import distributed
    import joblib
    from threadpoolctl import threadpool_limits

    L, n, d, workers = args.reps, args.rows, args.width, args.workers
    total = L * (L + 1) // 2
    print(f"simmetrics {simmetrics.__version__}, numpy {np.__version__}, dask.distributed "
          f"{distributed.__version__}, Python {platform.python_version()}, {cpu_name()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"{L} representations of {n:,} x {d} (float64), {total:,} pairs with the diagonal; "
          f"one BLAS thread; LocalCluster of {workers} worker processes x 1 thread")
    reps = representations(L, n, d)
    root = Path(tempfile.mkdtemp(prefix="bench_pairwise_"))
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    try:
        with threadpool_limits(1):
            for title, name in METRICS.items():
                print(f"\n{title} ({name})")
                _, plain = timed(lambda: simmetrics.pairwise(name, reps, n_jobs=1))
                print(f"  serial, no cache (the default route)      {plain:10.2f} s")
                (serial, stats), t_serial = timed(lambda: simmetrics.pairwise(
                    name, reps, n_jobs=1, cache=root / f"{name}-serial", return_stats=True))
                print(f"  serial, cache (pair by pair from states)  {t_serial:10.2f} s  "
                      f"({stats['pairs_computed']:,} pairs, {stats['tasks']} tasks)")
                with joblib.parallel_backend("dask"):
                    (on_cluster, stats), t_dask = timed(lambda: simmetrics.pairwise(
                        name, reps, cache=root / f"{name}-dask", return_stats=True))
                print(f"  dask, {workers} workers, cache                   {t_dask:10.2f} s  "
                      f"({stats['tasks']} tasks of up to {stats['block_side']} x "
                      f"{stats['block_side']} pairs)")
                print(f"  parallel efficiency serial / ({workers} x dask): "
                      f"{t_serial / (workers * t_dask):.2f}  (speed-up {t_serial / t_dask:.2f}x)")
                print(f"  largest difference dask vs serial: "
                      f"{np.abs(on_cluster - serial).max():.1e}")
                finished, resumed, stats, t_resume = resume(name, reps, root / f"{name}-kill",
                                                            total)
                missing = total - finished
                ideal = t_serial * missing / total
                print(f"  killed after {finished:,} of {total:,} pairs; the restart computed "
                      f"{stats['pairs_computed']:,} (missing {missing:,}), read "
                      f"{stats['pairs_read']:,} in {t_resume:.2f} s")
                print(f"  resume cost: {t_resume / ideal:.2f} x the ideal (serial time x "
                      f"missing share), {t_resume / t_serial:.2f} x the whole serial run")
                print(f"  largest difference resumed vs serial: "
                      f"{np.abs(resumed - serial).max():.1e}")
                for folder in root.iterdir():
                    shutil.rmtree(folder, ignore_errors=True)
        print(f"\nload average at the end {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (a "
              "load above the CPU count means the workers shared cores with other jobs)")
    finally:
        client.close()
        cluster.close()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
