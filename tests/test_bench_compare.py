"""benchmarks/bench_compare.py (issue 16): its smoke run (--quick) prints the four timed rows,
the ratios, ckatorch's one-call error and agreeing checks; and every implementation's 8 x 8
matrix equals a reference computed here from stored activations by the n x n definitions
(written differently from simmetrics' feature-space moments and from the peers' trace
formulas):

- compare_models: the biased linear CKA of all rows, <HKH, HLH> / (||HKH|| ||HLH||) with
  K = X X', L = Y Y', H = I - 11'/n (Kornblith et al. 2019, eq. 4 and HSIC_0 of Gretton 2005);
- MinibatchCKA, ckatorch's hsic1, torch-cka: Nguyen, Raghu, Kornblith 2021 eq. 3 on the same
  batches, each batch's unbiased HSIC_1 (Song et al. 2012) as the inner product of U-centred
  Grams over n_b (n_b - 3) (the U-centring of Szekely & Rizzo 2014, which gives the same
  estimator as Song et al.'s three-term formula)."""

import re

import numpy as np
import pytest
import torch

from tests.benchmark_scripts import load

pytestmark = pytest.mark.slow  # seconds: deselect with -m "not slow" while developing

ROW = re.compile(r"^  (.+?) +([0-9.]+) +([0-9.]+) +([0-9]+) +(-?[0-9]+)  (.+)$", flags=re.M)
CHECK = re.compile(r"^  \[(agree|DIFFER)\] (.+): max \|difference\| ([0-9.e+-]+) "
                   r"\(tolerance ([0-9.e+-]+)\)$", flags=re.M)


@pytest.fixture(scope="module")
def bench():
    return load("bench_compare")


def _stored(bench, sizes):
    """Every block output of both models for all images, per batch: hooks written here."""
    a, b, layers_a, layers_b, loader = bench.setup(sizes)
    out = {}
    for model, layers, tag in ((a, layers_a, "a"), (b, layers_b, "b")):
        modules = dict(model.named_modules())
        for name in layers:
            modules[name].register_forward_hook(
                lambda m, i, o, key=(tag, name): out.setdefault(key, []).append(
                    o.detach().reshape(o.shape[0], -1).numpy().astype(np.float64)))
    with torch.no_grad():
        for (x,) in loader:
            a(x)
            b(x)
    return ([out[("a", n)] for n in layers_a], [out[("b", n)] for n in layers_b])


def _biased_cka(X, Y):
    n = X.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    Kc, Lc = H @ (X @ X.T) @ H, H @ (Y @ Y.T) @ H
    return np.sum(Kc * Lc) / (np.linalg.norm(Kc) * np.linalg.norm(Lc))


def _u_centred(K):
    n = K.shape[0]
    K = K - np.diag(np.diag(K))
    rows = K.sum(axis=1)
    U = K - rows[:, None] / (n - 2) - rows[None, :] / (n - 2) + K.sum() / ((n - 1) * (n - 2))
    np.fill_diagonal(U, 0.0)
    return U


def _minibatch_cka(batches_x, batches_y):
    """Nguyen et al. eq. 3 from the U-centred Grams of each batch."""
    xy = xx = yy = 0.0
    for X, Y in zip(batches_x, batches_y):
        n = X.shape[0]
        U, V = _u_centred(X @ X.T), _u_centred(Y @ Y.T)
        xy += np.sum(U * V) / (n * (n - 3))
        xx += np.sum(U * U) / (n * (n - 3))
        yy += np.sum(V * V) / (n * (n - 3))
    return xy / np.sqrt(xx * yy)


@pytest.fixture(scope="module")
def references(bench):
    side_a, side_b = _stored(bench, bench.QUICK)
    full = np.array([[_biased_cka(np.concatenate(A), np.concatenate(B)) for B in side_b]
                     for A in side_a])
    minibatch = np.array([[_minibatch_cka(A, B) for B in side_b] for A in side_a])
    return full, minibatch


def test_the_shapes_are_those_of_the_issue(bench):
    assert bench.FULL == {"n": 10_000, "size": 32, "batch": 500}
    _, _, layers_a, layers_b, loader = bench.setup({**bench.QUICK, "n": 4})
    assert len(layers_a) == len(layers_b) == 8
    assert next(iter(loader))[0].shape == (4, 3, 32, 32)


def test_compare_models_gives_the_full_data_biased_cka(bench, references):
    full, minibatch = references
    matrix = bench.run_simmetrics(*bench.setup(bench.QUICK))
    assert matrix.shape == (8, 8)
    assert np.max(np.abs(matrix - full)) <= 1e-10
    # another estimator: on 100-row batches the minibatch values are not the full-data ones
    assert np.max(np.abs(minibatch - full)) > 1e-2


@pytest.mark.parametrize("name", ["simmetrics_minibatch", "ckatorch", "torch_cka"])
def test_the_minibatch_routes_give_nguyens_estimator(bench, references, name):
    _, minibatch = references
    matrix = bench.RUNS[name](*bench.setup(bench.QUICK))  # fresh models: the peers keep hooks
    # float64 routes 1e-10; torch-cka works in float32 (the script's stated tolerance)
    tolerance = bench.TOLERANCE.get(name, 1e-10)
    assert np.max(np.abs(matrix - minibatch)) <= tolerance


def test_quick_run_prints_times_memory_ratios_and_checks(bench, capsys):
    assert bench.main(["--quick", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert ("ckatorch CKA(a, b, layers, second_layers)(loader) one call on these models: "
            "RuntimeError: batch1 must be a 3D tensor" in out)
    rows = ROW.findall(out.split("  implementation")[1].split("\nratios")[0])
    labels = [label for _, label, _ in bench.IMPLEMENTATIONS]
    assert [r[0] for r in rows] == labels
    for _, wall, cpu, peak, extra, estimator in rows:
        assert float(wall) > 0 and float(cpu) > 0 and int(peak) > 100  # MiB: torch alone
    ratios = out.split("\nratios, peer / simmetrics compare_models (within this run)\n")[1]
    for label in labels[1:]:
        assert re.search(rf"^  {re.escape(label)} +wall +[0-9.]+ +CPU +[0-9.]+ +memory beyond "
                         r"setup +-?[0-9.]+$", ratios, flags=re.M)
    checks = CHECK.findall(out)
    assert [c[1] for c in checks] == labels[2:]
    for state, _, difference, tolerance in checks:
        assert state == "agree" and float(difference) <= float(tolerance)
    assert re.search(r"\ntotal wall time [0-9]+ s\n$", out)


def test_torch_cka_in_float64_gives_nguyens_estimator_to_rounding(bench):
    """torch-cka's float32 difference is rounding: its same code in float64 (models, images,
    its ones vectors and HSIC matrix all follow the default dtype) meets 1e-10."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        side_a, side_b = _stored(bench, bench.QUICK)
        expected = np.array([[_minibatch_cka(A, B) for B in side_b] for A in side_a])
        matrix = bench.run_torch_cka(*bench.setup(bench.QUICK))
    finally:
        torch.set_default_dtype(default)
    assert np.max(np.abs(matrix - expected)) <= 1e-10
