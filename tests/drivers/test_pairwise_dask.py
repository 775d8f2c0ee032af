"""simmetrics.pairwise on a real dask.distributed cluster, through joblib's dask backend.

A LocalCluster with 2 worker processes is started; ``with joblib.parallel_backend("dask")``
sends pairwise's tasks (the per-representation steps, the pairs, the Gram tiles) to it. The
expected values are the serial results computed in this process.
"""

import distributed
import joblib
import numpy as np
import pytest

import simmetrics

pytestmark = pytest.mark.slow  # seconds: deselect with -m "not slow" while developing


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, memory_limit="2GiB")
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


def _layers(seed, n, widths):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, widths[0]))
    out = [X]
    for w in widths[1:]:
        out.append(np.tanh(out[-1] @ rng.normal(size=(out[-1].shape[1], w)))
                   + 0.3 * rng.normal(size=(n, w)))
    return out


@pytest.mark.parametrize("metric", [
    simmetrics.LinearCKA(),  # feature space: prepared sides, then pairs
    simmetrics.OrthogonalProcrustes(),
    simmetrics.PWCCA(),  # asymmetric: every ordered pair
    simmetrics.IntertwinerProcrustes(),  # no per-representation step
], ids=repr)
def test_cluster_result_equals_the_serial_one(client, metric):
    layers = _layers(0, 80, (6, 5, 7, 4))
    serial = simmetrics.pairwise(metric, layers)
    with distributed.get_task_stream(client) as stream, joblib.parallel_backend("dask"):
        on_cluster = simmetrics.pairwise(metric, layers)
    # equal up to rounding: a state shipped to a worker is a copy, so a representation paired
    # with itself takes a general product there instead of a symmetric one (on the diagonal)
    np.testing.assert_allclose(on_cluster, serial, rtol=0, atol=1e-14)
    # the work really ran on the cluster's workers
    assert stream.data and {task["worker"] for task in stream.data} <= set(
        client.scheduler_info()["workers"])


def test_gram_space_tiles_on_the_cluster(client, monkeypatch):
    # many wide layers, few stimuli: linear CKA takes the tiled Gram route, one task per row
    # of tiles (small tiles so there are several)
    from simmetrics.metrics import cka_gram

    monkeypatch.setattr(cka_gram, "_GRAM_TILE", 8)
    layers = _layers(1, 30, (40, 50, 45))
    for debiased in (False, True):
        metric = simmetrics.LinearCKA(debiased=debiased)
        serial = simmetrics.pairwise(metric, layers)
        with joblib.parallel_backend("dask"):
            on_cluster = simmetrics.pairwise(metric, layers)
        np.testing.assert_allclose(on_cluster, serial, rtol=0, atol=1e-14)
