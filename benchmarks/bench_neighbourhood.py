"""Time simmetrics' neighbourhood measures against the raw BLAS work and the peers' approaches.

Issue 14: MutualKNN, JaccardKNN, RankSimilarity, SecondOrderCosine and the ordered-list measures
CycleKNN, LCSKNN and EditDistanceKNN at n = 10,000 samples, d = 512 neurons (two related
ReLU-like representations) should take seconds, forming the n x n cosine similarities only a
block of rows at a time (never the n x n matrix, never n x n x k), and be faster than
platonic-rep's and ReSi's implementations on the same data.

Neither peer is on PyPI and their code is not copied here: each peer's *approach* is
re-implemented in this script from its published description (tests/data/reference/seed11/
README.md), and labelled so:

- platonic-rep (Huh et al. 2024, minyoungg/platonic-rep, ``metrics.py``): the full n x n torch
  Gram matrix of the L2-normalised rows (float64 tensors), its diagonal set to -1e8, each whole
  row sorted with ``argsort(descending=True)`` and its first k kept, as ``metrics.py``'s
  ``compute_nearest_neighbors`` does (a ``topk`` would give the same lists where nothing ties,
  much faster: ``--peer-topk`` times that variant instead, which is not the peer's code).
  ``mutual_knn``: two
  n x n 0/1 masks scattered from the neighbour indices, multiplied and summed per row;
  ``cycle_knn``: the (n, k, k) X-neighbours of the Y-neighbours indexed from the two lists,
  compared with each row's own index, a float32 mean; ``lcs_knn`` and ``edit_distance_knn``: a
  plain-Python dynamic programme per row on the numpy rows of the two index lists (the longest
  common subsequence with its full (k + 1) x (k + 1) table, mean in float32; the Levenshtein
  distance with two rows of the table, as torchaudio's ``edit_distance`` that platonic-rep calls;
  pymp absent, so the rows run one after another);
- ReSi (Klabunde et al. 2025, mklabunde/resi): scikit-learn ``NearestNeighbors(metric="cosine")``
  k-NN lists (self dropped), then per-row Python set operations; the second-order cosine reads
  the rows of the two full n x n cosine-distance matrices (scikit-learn's ``cosine_distances``)
  restricted to the union of the two neighbour sets. Each ReSi measure is a separate call that
  finds its own neighbour lists, as each simmetrics ``fit_score`` does.

The bound is the work every peer does: the n x n products X X' and Y Y' a block of rows at a
time, and an ``argpartition`` of each block (the k largest per row). simmetrics' search reads
each block of the symmetric matrix both ways (its rows and its columns), so it does half those
multiply-adds, and a row takes a block's entries above its running k-th largest only, without a
partition: its time can be below that bound. The products it cannot avoid, the blocks of X X'
and Y Y' on and above the diagonal, are timed as a second bound.
Every peer value is checked against simmetrics' (to 1e-12; to 2^-22 relative where the peer
returns a float32 mean, cycle_knn and lcs_knn; on these data nothing ties, so the tie rules of
simmetrics do not come into play). Every ratio is between figures of this run.

Usage::

    python benchmarks/bench_neighbourhood.py                              # the full run
    python benchmarks/bench_neighbourhood.py --blas-threads 1 --clock cpu # steadier when shared
    python benchmarks/bench_neighbourhood.py --quick                      # a smoke test (seconds)
"""

import argparse
import os
import platform
import sys
import time

import numpy as np

from harness import cpu_name, median_time
import simmetrics
from simmetrics import (LCSKNN, CycleKNN, EditDistanceKNN, JaccardKNN, MutualKNN, RankSimilarity,
                        SecondOrderCosine)

CLOCK = time.perf_counter  # --clock cpu: time.process_time (CPU seconds of this process)
RESULTS = []  # (section, name, seconds, role) with role "bound", "simmetrics" or "peer"
TARGETS = []  # (description, measured, required, met, kind) with kind "seconds" or "speed-up"
CHECKS = []  # (measure, peer, difference, tolerance, what the tolerance is)
#: Relative rounding of a float32 mean (one rounding of the quotient, or two through 1/n).
FLOAT32_RELATIVE = 2.0**-22
#: Similarity entries per block of rows in the bound (rows x n): simmetrics' chunk size.
BLOCK_ENTRIES = 2**22
K = 10


def timed(fn, repeats):
    """Median time of ``fn()`` by the script's ``CLOCK`` over ``repeats`` runs and its last
    result (:func:`harness.median_time`)."""
    return median_time(fn, repeats, CLOCK)


def run(section, name, fn, repeats, role):
    seconds, value = timed(fn, repeats)
    RESULTS.append((section, name, seconds, role))
    shown = "" if value is None else f"   value {float(value):.12f}"
    print(f"  {name:<66s} {seconds:8.2f} s{shown}", flush=True)
    return seconds, value


def seconds_of(section, name):
    return next(s for sec, n, s, _ in RESULTS if sec == section and n == name)


# -- data --------------------------------------------------------------------------------------
def related_relu(rng, n, d, latent=16):
    """Two related post-ReLU-like representations: ReLU of two different random maps of the same
    ``latent``-dimensional variables plus independent noise (so the neighbourhoods are partly
    shared), each with about half its entries exactly zero."""
    L = rng.normal(size=(n, latent))
    X = np.maximum(L @ rng.normal(size=(latent, d)) + 2.0 * rng.normal(size=(n, d)), 0.0)
    Y = np.maximum(L @ rng.normal(size=(latent, d)) + 2.0 * rng.normal(size=(n, d)), 0.0)
    return X, Y


# -- the bound -----------------------------------------------------------------------------------
def blas_bound(X, Y, k):
    """The blocked n x n products A A' of both inputs and an argpartition of each block."""
    n = X.shape[0]
    rows = max(1, BLOCK_ENTRIES // n)
    for A in (X, Y):
        for lo in range(0, n, rows):
            S = A[lo:lo + rows] @ A.T
            np.argpartition(S, n - k - 1, axis=1)  # the k + 1 largest (self among them)


def symmetric_products(X, Y, block=None):
    """The blocks on and above the diagonal of X X' and Y Y' (``block`` x ``block``, as
    simmetrics' search forms them): the products no neighbour search can avoid."""
    from simmetrics.metrics.knn import _BLOCK
    block = _BLOCK if block is None else block
    n = X.shape[0]
    for A in (X, Y):
        for lo in range(0, n, block):
            for lo2 in range(lo, n, block):
                A[lo:lo + block] @ A[lo2:lo2 + block].T


# -- platonic-rep's approach, re-implemented from its description -----------------------------
def platonic_neighbours(A, k, normalize=True):
    """platonic-rep's neighbour lists (see the module docstring): the full n x n Gram matrix in
    torch (rows L2-normalised first when ``normalize``: its ``compute_score`` default, keys
    ``_l2rows``; else the raw inner products, keys ``_raw``), self at -1e8, the k largest of
    each row, most similar first: an (n, k) int64 tensor."""
    import torch

    F = torch.from_numpy(np.ascontiguousarray(A, dtype=np.float64))
    if normalize:
        F = torch.nn.functional.normalize(F, dim=1)
    G = F @ F.T  # the full n x n Gram matrix
    G.fill_diagonal_(-1e8)  # a sample is not its own neighbour
    if PEER_TOPK:  # the faster variant (not the peer's code): the same lists where nothing ties
        return G.topk(k, dim=1).indices
    return G.argsort(dim=1, descending=True)[:, :k]  # the peer sorts each whole row


#: ``--peer-topk``: time platonic-rep's approach with ``topk`` instead of its full ``argsort``.
PEER_TOPK = False


def platonic_mutual_knn(X, Y, k):
    """Mutual kNN the way platonic-rep computes it (see the module docstring): full n x n
    Gram matrices in torch, sorted rows, n x n masks."""
    import torch

    a, b = platonic_neighbours(X, k), platonic_neighbours(Y, k)
    n = a.shape[0]
    ones = torch.ones(n, k, dtype=torch.float64)
    mask_a = torch.zeros(n, n, dtype=torch.float64).scatter_(1, a, ones)
    mask_b = torch.zeros(n, n, dtype=torch.float64).scatter_(1, b, ones)
    return float(((mask_a * mask_b).sum(dim=1) / k).mean())


def platonic_cycle_knn(X, Y, k, normalize=True):
    """Cycle kNN the way platonic-rep computes it: for each sample i, the X-lists of the samples
    in i's Y-list, gathered into an (n, k, k) index tensor; i counts when its own index is among
    them; the fraction as a float32 mean (platonic-rep's ``.float()...mean()``)."""
    import torch

    in_x, in_y = platonic_neighbours(X, k, normalize), platonic_neighbours(Y, k, normalize)
    n = in_x.shape[0]
    way_back = in_x[in_y]  # (n, k, k): way_back[i, a] is the X-list of the a-th Y-neighbour of i
    found = (way_back == torch.arange(n)[:, None, None]).flatten(start_dim=1).any(dim=1)
    return float(found.float().mean())


def _lcs_length_python(x, y):
    """Longest common subsequence of two sequences: the textbook (len x + 1) x (len y + 1)
    table, filled cell by cell in plain Python."""
    table = [[0] * (len(y) + 1) for _ in range(len(x) + 1)]
    for a in range(1, len(x) + 1):
        above, row = table[a - 1], table[a]
        for b in range(1, len(y) + 1):
            row[b] = above[b - 1] + 1 if x[a - 1] == y[b - 1] else max(above[b], row[b - 1])
    return table[len(x)][len(y)]


def _levenshtein_python(x, y):
    """Levenshtein distance of two sequences (unit costs), two rows of the table in plain
    Python (the algorithm of torchaudio's ``edit_distance``)."""
    previous = list(range(len(y) + 1))
    for a in range(1, len(x) + 1):
        current = [a] + [0] * len(y)
        for b in range(1, len(y) + 1):
            if x[a - 1] == y[b - 1]:
                current[b] = previous[b - 1]
            else:
                current[b] = 1 + min(previous[b - 1], previous[b], current[b - 1])
        previous = current
    return previous[len(y)]


def _per_row_python(in_x, in_y, fn):
    """``fn`` on each pair of rows of two (n, k) index tensors, one row after another, on their
    numpy rows (platonic-rep's serial ``compute_distance`` without pymp): a float64 tensor."""
    import torch

    a, b = in_x.numpy(), in_y.numpy()
    out = np.zeros(a.shape[0])
    for i in range(a.shape[0]):
        out[i] = fn(a[i], b[i])
    return torch.tensor(out)


def platonic_lcs_knn(X, Y, k, normalize=True):
    """LCS kNN the way platonic-rep computes it: the per-row plain-Python LCS of the two ordered
    lists, averaged in float32 (range 0 to k)."""
    lengths = _per_row_python(platonic_neighbours(X, k, normalize),
                              platonic_neighbours(Y, k, normalize), _lcs_length_python)
    return float(lengths.float().mean())


def platonic_edit_distance_knn(X, Y, k, normalize=True):
    """Edit-distance kNN the way platonic-rep computes it: 1 - (mean per-row plain-Python
    Levenshtein distance of the two ordered lists) / k, in float64."""
    distances = _per_row_python(platonic_neighbours(X, k, normalize),
                                platonic_neighbours(Y, k, normalize), _levenshtein_python)
    return float(1.0 - distances.mean() / k)


# -- ReSi's approach, re-implemented from its description -------------------------------------
def resi_neighbours(A, k):
    """k-NN lists by cosine distance (scikit-learn, brute force), nearest first, self dropped
    (``kneighbors()`` without a query excludes each point from its own list)."""
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=k, metric="cosine").fit(A).kneighbors(
        return_distance=False)


def resi_jaccard(X, Y, k):
    na, nb = resi_neighbours(X, k), resi_neighbours(Y, k)
    values = []
    for a, b in zip(na.tolist(), nb.tolist()):
        a, b = set(a), set(b)
        values.append(len(a & b) / len(a | b))
    return float(np.mean(values))


def resi_rank_similarity(X, Y, k):
    na, nb = resi_neighbours(X, k), resi_neighbours(Y, k)
    values = []
    for a, b in zip(na.tolist(), nb.tolist()):
        ra = {j: r for r, j in enumerate(a, start=1)}
        rb = {j: r for r, j in enumerate(b, start=1)}
        shared = ra.keys() & rb.keys()
        if not shared:
            values.append(0.0)
            continue
        total = sum(2.0 / ((1 + abs(ra[j] - rb[j])) * (ra[j] + rb[j])) for j in shared)
        values.append(total / sum(1.0 / q for q in range(1, len(shared) + 1)))
    return float(np.mean(values))


def resi_second_order_cosine(X, Y, k):
    from sklearn.metrics.pairwise import cosine_distances

    na, nb = resi_neighbours(X, k), resi_neighbours(Y, k)
    DA, DB = cosine_distances(X), cosine_distances(Y)  # the full n x n distance matrices
    values = []
    for i, (a, b) in enumerate(zip(na.tolist(), nb.tolist())):
        union = sorted(set(a) | set(b))
        u, v = DA[i, union], DB[i, union]
        values.append(float(u @ v) / (np.linalg.norm(u) * np.linalg.norm(v)))
    return float(np.mean(values))


# -- the benchmark ---------------------------------------------------------------------------
MEASURES = (  # (simmetrics class, peer, peer's function, whether the peer returns float32)
    (MutualKNN, "platonic-rep", platonic_mutual_knn, False),
    (JaccardKNN, "ReSi", resi_jaccard, False),
    (RankSimilarity, "ReSi", resi_rank_similarity, False),
    (SecondOrderCosine, "ReSi", resi_second_order_cosine, False),
    (CycleKNN, "platonic-rep", platonic_cycle_knn, True),
    (LCSKNN, "platonic-rep", platonic_lcs_knn, True),
    (EditDistanceKNN, "platonic-rep", platonic_edit_distance_knn, False),
)


def bench_neighbourhood(rng, n, d, repeats, seconds_target):
    section = f"neighbourhood measures (k = {K}), n = {n:,}, d = {d} (two ReLU-like), float64"
    print(f"\n{section}")
    X, Y = related_relu(rng, n, d)
    print(f"  zeros: X {np.mean(X == 0):.0%}, Y {np.mean(Y == 0):.0%} of the entries")
    # warm-up on 300 rows (imports, first calls of the kernels), not timed
    blas_bound(X[:300], Y[:300], K)
    for cls, _, peer_fn, _ in MEASURES:
        cls(k=K).fit_score(X[:300], Y[:300]), peer_fn(X[:300], Y[:300], K)
    bound_name = f"BLAS bound: X X', Y Y' in {max(1, BLOCK_ENTRIES // n)}-row blocks + argpartition"
    run(section, bound_name, lambda: blas_bound(X, Y, K), repeats, "bound")
    bound = seconds_of(section, bound_name)
    half_name = "products alone: the blocks of X X', Y Y' on and above the diagonal"
    run(section, half_name, lambda: symmetric_products(X, Y), repeats, "bound")
    half = seconds_of(section, half_name)
    for cls, peer, peer_fn, float32 in MEASURES:
        ours_name = f"simmetrics {cls.__name__}(k={K}).fit_score"
        peer_name = f"{peer}'s approach, re-implemented from its description"
        ours, value = run(section, ours_name, lambda: cls(k=K).fit_score(X, Y), repeats,
                          "simmetrics")
        theirs, peer_value = run(section, f"  {peer_name}", lambda: peer_fn(X, Y, K), 1, "peer")
        difference = abs(value - peer_value)
        tolerance = 1e-12 + (FLOAT32_RELATIVE * abs(value) if float32 else 0.0)
        what = " (float32 mean, to 2^-22 relative)" if float32 else ""
        CHECKS.append((cls.__name__, peer, difference, tolerance, what))
        note = ("" if difference <= tolerance
                else f"   (NOT within {tolerance:.1e}: see the check lines)")
        print(f"    {cls.__name__} / bound: {ours / bound:.2f} (/ products alone: "
              f"{ours / half:.2f});  {peer} approach / bound: "
              f"{theirs / bound:.2f};  speed-up over {peer}'s approach: {theirs / ours:.2f}x;"
              f"  |difference| {difference:.1e}{note}", flush=True)
        TARGETS.append((f"{cls.__name__} at n = {n:,}, d = {d} within {seconds_target:g} s "
                        "(seconds)", ours, seconds_target, ours <= seconds_target, "seconds"))
        TARGETS.append((f"{cls.__name__} faster than {peer}'s approach (speed-up)",
                        theirs / ours, 1.0, theirs > ours, "speed-up"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs per simmetrics/bound timing (median; the peers run once)")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="limit BLAS (and torch) threads (default: the libraries' default)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or CPU time of this process (steadier on a loaded "
                             "machine; with several threads it adds up their times)")
    parser.add_argument("--peer-topk", action="store_true",
                        help="time platonic-rep's approach with topk instead of its argsort of "
                             "every row (a faster variant; not the peer's code)")
    args = parser.parse_args(argv)
    global CLOCK, PEER_TOPK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    PEER_TOPK = args.peer_topk
    import sklearn
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    torch_threads = torch.get_num_threads()
    if args.blas_threads:
        torch.set_num_threads(args.blas_threads)
    try:
        return _main(args, torch, sklearn, threadpool_info, threadpool_limits)
    finally:  # a caller (the smoke test) keeps its own torch threads
        torch.set_num_threads(torch_threads)


def _main(args, torch, sklearn, threadpool_info, threadpool_limits):
    blas = [f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    print(f"simmetrics {simmetrics.__version__}, numpy {np.__version__}, scikit-learn "
          f"{sklearn.__version__}, torch {torch.__version__} ({torch.get_num_threads()} "
          f"threads), Python {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs ({cpu_name()}), BLAS: {', '.join(blas)}")
    if args.blas_threads:
        print(f"BLAS limited to {args.blas_threads} thread(s)")
    print(f"clock: {'CPU time of this process' if args.clock == 'cpu' else 'wall time'}")
    print("platonic-rep's neighbour lists: "
          + ("topk (--peer-topk: a faster variant, not the peer's code)" if PEER_TOPK
             else "argsort of every row, as its compute_nearest_neighbors"))
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    n, d = (1_500, 64) if args.quick else (10_000, 512)
    with threadpool_limits(args.blas_threads):
        bench_neighbourhood(rng, n, d, args.repeats, 10.0)
    print("\nchecks: simmetrics against the peers' approaches on these data (to 1e-12):")
    for measure, peer, difference, tolerance, what in CHECKS:
        ok = "agree" if difference <= tolerance else "DIFFER"
        print(f"  [{ok}] {measure} vs {peer}'s approach{what}: |difference| {difference:.1e}")
    print("\ntargets of issue 14 (measured within this run; 'in seconds' read as within 10 s):")
    for description, value, required, met, kind in TARGETS:
        shown = (f"{value:.2f} s (<= {required:g})" if kind == "seconds"
                 else f"{value:.2f}x (> {required:g})")
        print(f"  [{'met' if met else 'MISSED'}] {description}: {shown}")
    print(f"\ntotal wall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
