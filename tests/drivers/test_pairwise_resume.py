"""simmetrics.pairwise with a cache folder (a killed job resumes, a new representation costs one
row, no stale reads) and with a memory budget (blocks of pairs that recompute their states).

Expected values are always the matrix of a plain ``pairwise`` call without cache or budget (the
same per-pair code: the comparisons allow rounding only), and the counts of computed pairs are
what the cache folder holds, counted here by listing it.
"""

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import simmetrics
from simmetrics._core.state_cache import StateCache, array_digest, params_digest

ROOT = Path(__file__).resolve().parents[2]

#: A job in its own process: L = 8 representations, OrthogonalProcrustes slowed down by a sleep
#: per pair (argv[3] seconds), the matrix and the stats written next to argv[2].
SCRIPT = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import simmetrics

    class SlowProcrustes(simmetrics.OrthogonalProcrustes):
        def _finalize_fit_score(self, a, b):
            time.sleep(float(sys.argv[3]))
            return super()._finalize_fit_score(a, b)

    rng = np.random.default_rng(0)
    reps = [rng.normal(size=(50, 5)) for _ in range(8)]
    reps = [reps[0]] + [np.tanh(A + 0.5 * reps[0]) for A in reps[1:]]
    M, stats = simmetrics.pairwise(SlowProcrustes(), reps, cache=sys.argv[1], return_stats=True)
    np.save(sys.argv[2] + ".npy", M)
    with open(sys.argv[2] + ".json", "w") as f:
        json.dump(stats, f)
""")


def _pair_files(folder):
    pairs = Path(folder) / "pairs"
    return sorted(p for p in pairs.glob("*.f8")) if pairs.is_dir() else []


def _run(script, cache, out, sleep, wait=True):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(script), str(cache), str(out), str(sleep)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if wait:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    return proc


def _result(out):
    with open(f"{out}.json") as f:
        return np.load(f"{out}.npy"), json.load(f)


@pytest.mark.slow
def test_a_killed_job_resumes_computing_only_the_missing_pairs(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    total = 8 * 9 // 2  # symmetric: the unordered pairs and the diagonal
    # the uninterrupted run, in its own cache folder
    _run(script, tmp_path / "full", tmp_path / "full_out", 0.0)
    expected, stats = _result(tmp_path / "full_out")
    assert stats["pairs_computed"] == total and stats["pairs_read"] == 0
    assert len(_pair_files(tmp_path / "full")) == total
    # the same job, slowed down, killed (SIGKILL: no clean-up) after 10 pairs are finished
    cache = tmp_path / "killed"
    proc = _run(script, cache, tmp_path / "killed_out", 0.15, wait=False)
    deadline = time.monotonic() + 120
    while len(_pair_files(cache)) < 10:
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() < deadline, "the job wrote no pair values"
        time.sleep(0.02)
    proc.kill()
    proc.communicate()
    finished = len(_pair_files(cache))
    assert 10 <= finished < total  # killed part way
    # no half-written value is visible: every finished file holds one float64
    assert all(p.stat().st_size == 8 for p in _pair_files(cache))
    # restarted: the same matrix, and only the pairs that were not on disk are computed
    _run(script, cache, tmp_path / "resumed_out", 0.0)
    resumed, stats = _result(tmp_path / "resumed_out")
    np.testing.assert_allclose(resumed, expected, rtol=0, atol=1e-12)
    assert stats["pairs_computed"] == total - finished
    assert stats["pairs_read"] == finished
    assert stats["states_computed"] == 0 and stats["states_read"] == 8  # prepared before
    assert len(_pair_files(cache)) == total


def _layers(seed, L, n=40, width=5):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, width))
    return [base] + [np.tanh(base @ rng.normal(size=(width, width))) + 0.3 * rng.normal(
        size=(n, width)) for _ in range(L - 1)]


@pytest.mark.parametrize("metric,per_new", [
    (simmetrics.OrthogonalProcrustes(), lambda L: L + 1),  # symmetric: its row and diagonal
    (simmetrics.PWCCA(), lambda L: 2 * L + 1),  # asymmetric: its row, column and diagonal
    (simmetrics.IntertwinerProcrustes(), lambda L: L + 1),  # no per-representation step
], ids=["procrustes", "pwcca", "intertwiner_procrustes"])
def test_adding_one_representation_computes_one_row(tmp_path, metric, per_new):
    layers = _layers(1, 6)
    if "Intertwiner" in type(metric).__name__:
        layers = [np.maximum(A, 0.0) + 0.01 for A in layers]
    L = 5
    first, stats = simmetrics.pairwise(metric, layers[:L], cache=tmp_path, return_stats=True)
    assert stats["pairs_read"] == 0
    grown, stats = simmetrics.pairwise(metric, layers, cache=tmp_path, return_stats=True)
    assert stats["pairs_computed"] == per_new(L)
    assert stats["pairs_read"] == stats["pairs"] - per_new(L)
    if metric._partial_fit is not None:  # the old states are read back, one is prepared
        assert (stats["states_computed"], stats["states_read"]) == (1, L)
    expected = simmetrics.pairwise(metric, layers)
    np.testing.assert_allclose(grown, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(first, expected[:L, :L], rtol=0, atol=1e-12)
    # the same call once more reads everything
    again, stats = simmetrics.pairwise(metric, layers, cache=tmp_path, return_stats=True)
    assert stats["pairs_computed"] == 0 and stats["mode"] == "cached"
    np.testing.assert_array_equal(again, grown)  # the stored float64 values, read back


def test_reordered_and_rectangular_calls_read_the_same_values(tmp_path):
    # keys are of the contents, not of names or positions
    layers = _layers(2, 4)
    metric = simmetrics.OrthogonalProcrustes()
    simmetrics.pairwise(metric, layers, cache=tmp_path)
    named = {f"layer{k}": A for k, A in zip((3, 1, 2, 0), layers[::-1])}
    M, stats = simmetrics.pairwise(metric, named, cache=tmp_path, return_stats=True)
    assert stats["pairs_computed"] == 0
    assert M.row_labels == ("layer3", "layer1", "layer2", "layer0")
    np.testing.assert_allclose(M, simmetrics.pairwise(metric, layers[::-1]), rtol=0, atol=1e-12)
    R, stats = simmetrics.pairwise(metric, layers[:2], layers[2:], cache=tmp_path,
                                   return_stats=True)
    assert stats["pairs_computed"] == 0 and R.shape == (2, 2)


def test_changed_data_or_parameters_are_new_keys(tmp_path):
    layers = _layers(3, 4)
    metric = simmetrics.ShapeMetric(alpha=0.5)
    simmetrics.pairwise(metric, layers, cache=tmp_path)
    # one value of one representation changed: its row is recomputed, nothing stale is read
    changed = [A.copy() for A in layers]
    changed[2][7, 3] += 1e-9
    M, stats = simmetrics.pairwise(metric, changed, cache=tmp_path, return_stats=True)
    assert stats["pairs_computed"] == 4  # (0, 2), (1, 2), (2, 2), (2, 3)
    np.testing.assert_allclose(M, simmetrics.pairwise(metric, changed), rtol=0, atol=1e-12)
    # another parameter: every pair is recomputed, with that parameter's values
    other = simmetrics.ShapeMetric(alpha=0.25)
    M, stats = simmetrics.pairwise(other, layers, cache=tmp_path, return_stats=True)
    assert stats["pairs_computed"] == 10 and stats["states_read"] == 0
    np.testing.assert_allclose(M, simmetrics.pairwise(other, layers), rtol=0, atol=1e-12)
    assert np.abs(M - simmetrics.pairwise(metric, layers)).max() > 1e-3  # really different


def test_keys_of_bytes_shape_dtype_class_and_params():
    A = np.arange(12.0).reshape(4, 3)
    assert array_digest(A) == array_digest(np.array(A, order="F"))  # same values, C order
    assert array_digest(A) != array_digest(A.reshape(3, 4))  # same bytes, other shape
    assert array_digest(A) != array_digest(A.view(np.int64))  # same bytes, other dtype
    assert array_digest(A) != array_digest(A, salt="0.2.0")  # another package version
    assert params_digest(simmetrics.KernelCKA(sigma=1.0)) != params_digest(
        simmetrics.KernelCKA(sigma=1.0 + 1e-15))
    assert params_digest(simmetrics.KernelCKA()) != params_digest(simmetrics.LinearCKA())

    def kernel_a(X):
        return X @ X.T

    def kernel_b(X):
        return 2 * X @ X.T

    assert params_digest(simmetrics.KernelCKA(kernel=kernel_a)) != params_digest(
        simmetrics.KernelCKA(kernel=kernel_b))
    # a state key mixes in the metric's key: the same array under two metrics differs
    one = StateCache.__new__(StateCache)
    one.metric_key, one.symmetric = params_digest(simmetrics.CCA()), False
    two = StateCache.__new__(StateCache)
    two.metric_key, two.symmetric = params_digest(simmetrics.SVCCA()), False
    assert one.state_key(A) != two.state_key(A)
    assert one.pair_key("a", "b") != one.pair_key("b", "a")  # asymmetric: ordered


def test_a_truncated_value_file_is_recomputed(tmp_path):
    layers = _layers(4, 3)
    metric = simmetrics.OrthogonalProcrustes()
    expected = simmetrics.pairwise(metric, layers, cache=tmp_path)
    victim = _pair_files(tmp_path)[0]
    victim.write_bytes(b"\x00\x01")
    M, stats = simmetrics.pairwise(metric, layers, cache=tmp_path, return_stats=True)
    assert stats["pairs_computed"] == 1
    np.testing.assert_array_equal(M, expected)


# -- memory budget ---------------------------------------------------------------------------
@pytest.mark.parametrize("metric", [simmetrics.KernelCKA(), simmetrics.RSA(),
                                    simmetrics.OrthogonalProcrustes(), simmetrics.PWCCA()],
                         ids=repr)
def test_a_budget_for_a_few_states_gives_the_same_matrix(metric):
    layers = _layers(5, 7, n=80)
    n, d, L = 80, 5, len(layers)
    expected = simmetrics.pairwise(metric, layers)
    if metric._memory_bytes is not None:
        every = metric._memory_bytes(n, d, L, 1)[0]
        budget = metric._memory_bytes(n, d, 4, 1)[0]  # two representations per side
    else:  # one float64 copy of the input per state and per running preparation
        every, budget = 8 * n * d * (L + 1), 8 * n * d * (4 + 1)
    assert budget < every
    M, stats = simmetrics.pairwise(metric, layers, memory_budget=budget, return_stats=True)
    np.testing.assert_allclose(M, expected, rtol=0, atol=1e-12)
    assert stats["mode"] == "blocks" and stats["block_side"] == 2
    assert stats["states_computed"] > L  # recomputed per block instead of held
    # the budget as a string, and one that holds everything
    M, stats = simmetrics.pairwise(metric, layers, memory_budget=f"{every}B",
                                   return_stats=True)
    assert stats["mode"] == "all" and stats["states_computed"] == L
    np.testing.assert_allclose(M, expected, rtol=0, atol=1e-12)


def test_a_budget_with_a_cache_reads_states_instead_of_recomputing(tmp_path):
    metric = simmetrics.KernelCKA()
    layers = _layers(6, 6, n=60)
    budget = metric._memory_bytes(60, 5, 2, 1)[0]  # one pair: blocks of 1 x 1
    M, stats = simmetrics.pairwise(metric, layers, memory_budget=budget, cache=tmp_path,
                                   return_stats=True)
    assert stats["block_side"] == 1 and stats["tasks"] == 21
    # every block prepares its own states; the first preparation of each is written, later
    # blocks read it back (a block on the diagonal holds one representation)
    assert stats["states_computed"] + stats["states_read"] == 6 * 5 + 6
    assert stats["states_computed"] == 6  # serial: the first block of each prepares it
    np.testing.assert_allclose(M, simmetrics.pairwise(metric, layers), rtol=0, atol=1e-12)


def test_a_budget_below_one_pair_is_refused_with_the_bytes_needed():
    metric = simmetrics.KernelCKA()
    layers = _layers(7, 3, n=100)
    need = metric._memory_bytes(100, 5, 2, 1)[0]
    with pytest.raises(simmetrics.MemoryBudgetError) as info:
        simmetrics.pairwise(metric, layers, memory_budget=need - 1)
    text = str(info.value)
    assert "memory_budget" in text and f"{need:,} bytes" in text and "KernelCKA" in text
    assert isinstance(info.value, MemoryError)
    simmetrics.pairwise(metric, layers, memory_budget=need)  # exactly one pair runs
    with pytest.raises(ValueError, match="memory_budget: cannot read 'lots'"):
        simmetrics.pairwise(metric, layers, memory_budget="lots")
    with pytest.raises(TypeError, match="memory_budget: a memory budget must be a number"):
        simmetrics.pairwise(metric, layers, memory_budget=True)
    with pytest.raises(TypeError, match="cache must be a folder path"):
        simmetrics.pairwise(metric, layers, cache=3)


def test_the_default_still_holds_every_state_within_the_global_budget():
    # memory_budget=None: the global budget refuses a set whose states do not fit together
    metric = simmetrics.KernelCKA()
    layers = _layers(8, 6, n=200)
    pair = metric._memory_bytes(200, 5, 2)[0]
    with simmetrics.memory_budget(pair), pytest.raises(simmetrics.MemoryBudgetError,
                                                       match="6 representations"):
        simmetrics.pairwise(metric, layers)
    with simmetrics.memory_budget(pair):  # the same budget passed to pairwise: blocks
        M = simmetrics.pairwise(metric, layers, memory_budget=pair)
    np.testing.assert_allclose(M, simmetrics.pairwise(metric, layers), rtol=0, atol=1e-12)


# -- dask: blocks of pairs per task, values written by the workers ---------------------------
@pytest.mark.slow
def test_blocks_of_pairs_on_a_dask_cluster_write_the_cache(tmp_path):
    distributed = pytest.importorskip("distributed")
    import joblib

    layers = _layers(9, 20, n=60)
    metric = simmetrics.OrthogonalProcrustes()
    expected = simmetrics.pairwise(metric, layers)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, memory_limit="2GiB")
    with distributed.Client(cluster) as client:
        with distributed.get_task_stream(client) as stream, joblib.parallel_backend("dask"):
            M, stats = simmetrics.pairwise(metric, layers, cache=tmp_path, return_stats=True)
        keys = [str(task["key"]) for task in stream.data]
    cluster.close()
    np.testing.assert_allclose(M, expected, rtol=0, atol=1e-14)
    # joblib names each dask task after the calls it batches: 20 preparations, then blocks of
    # 3 x 3 pairs (20 representations, 2 workers: 7 runs of rows, 7 * 8 / 2 blocks), never one
    # task per pair
    calls = {}
    for key in keys:
        match = re.match(r"batch_of_(\w+?)_(\d+)_calls", key)
        calls[match.group(1)] = calls.get(match.group(1), 0) + int(match.group(2))
    assert calls == {"_prepare_cached": 20, "_block_task": stats["tasks"]}
    assert stats["pairs_computed"] == 210 and stats["tasks"] == 28 and stats["block_side"] == 3
    # the workers wrote every value: a second call reads them all
    _, stats = simmetrics.pairwise(metric, layers, cache=tmp_path, return_stats=True)
    assert stats["pairs_computed"] == 0 and len(_pair_files(tmp_path)) == 210


def test_a_function_parameter_is_keyed_by_what_it_closes_over():
    # two closures of one function with different captured values are different kernels, so
    # they must not share cached values; the same captured value gives the same key
    def linear_kernel_times(c):
        def kernel(A):
            return c * (A @ A.T)
        return kernel

    def key(kernel):
        return params_digest(simmetrics.KernelCKA(kernel=kernel))

    assert key(linear_kernel_times(1.0)) == key(linear_kernel_times(1.0))
    assert key(linear_kernel_times(1.0)) != key(linear_kernel_times(2.0))

    def recursive(A, depth=1):  # refers to itself through its closure: the key still ends
        return A @ A.T if depth == 0 else again(A, depth - 1)

    again = recursive
    assert key(recursive) == key(recursive)
