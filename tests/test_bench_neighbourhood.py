"""benchmarks/bench_neighbourhood.py: its smoke test (--quick) times every measure against its
peer's approach and prints every check and target line; the peers' approaches re-implemented in
the script reproduce the peers' own values stored in seed11 (so the benchmark times what the
peers compute)."""

import re

import pytest

from tests.benchmark_scripts import load

pytestmark = pytest.mark.slow  # seconds: deselect with -m "not slow" while developing

PAIRS = ("X_Y", "X_Z", "X_Xpd", "X_Xq")
NAMES = ("MutualKNN", "JaccardKNN", "RankSimilarity", "SecondOrderCosine", "CycleKNN", "LCSKNN",
         "EditDistanceKNN")


@pytest.fixture(scope="module")
def bench():
    return load("bench_neighbourhood")


def test_quick_run_prints_every_measure_check_and_target(bench, capsys):
    assert bench.main(["--quick", "--blas-threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "\nneighbourhood measures (k = 10), n = 1,500, d = 64" in out
    for name in NAMES:
        assert f"simmetrics {name}(k=10).fit_score" in out
    assert out.count("re-implemented from its description") == 7
    checks = out.split("checks: simmetrics against the peers' approaches")[1].split("targets")[0]
    # the peers' approaches give simmetrics' values on these data (nothing ties there): to
    # 1e-12, or to a float32 rounding (relative 2^-22 of values up to k = 10: below 3e-6) where
    # the peer takes its mean in float32 (platonic-rep's cycle_knn and lcs_knn)
    lines = re.findall(r"^  \[(agree|DIFFER)\] (\w+) vs (.*)\|difference\| ([0-9.e+-]+)$", checks,
                       flags=re.M)
    assert [name for _, name, _, _ in lines] == list(NAMES)
    for verdict, name, what, difference in lines:
        assert verdict == "agree", name
        float32 = name in ("CycleKNN", "LCSKNN")
        assert ("float32 mean" in what) == float32, name
        assert float(difference) <= (3e-6 if float32 else 1e-12), name
    targets = out.split("targets of issue 14")[1]
    assert len(re.findall(r"^  \[(met|MISSED)\] ", targets, flags=re.M)) == 14


@pytest.mark.parametrize("pair", PAIRS)
def test_the_peer_approaches_reproduce_the_peers_values(bench, seed11, pair):
    # seed11 values: platonic_* from minyoungg/platonic-rep dcd76ba (mutual_knn with the
    # default row normalisation, "_l2rows"), resi_* from mklabunde/resi 24ab9e5 (defaults)
    X, other = seed11["X"], seed11[pair.split("_")[1]]
    values = seed11["values"][pair]
    got = {
        "platonic_mutual_knn_topk10_l2rows": bench.platonic_mutual_knn(X, other, 10),
        "resi_jaccard_k10_cosine": bench.resi_jaccard(X, other, 10),
        "resi_rank_similarity_k10_cosine": bench.resi_rank_similarity(X, other, 10),
        "resi_second_order_cosine_similarity_k10": bench.resi_second_order_cosine(X, other, 10),
    }
    # platonic-rep's ordered-list measures (same commit), on the rows as given ("_raw") and
    # L2-normalised ("_l2rows"); cycle_knn and lcs_knn are float32 means there and here
    for suffix, normalize in (("raw", False), ("l2rows", True)):
        got[f"platonic_cycle_knn_topk10_{suffix}"] = bench.platonic_cycle_knn(
            X, other, 10, normalize=normalize)
        got[f"platonic_lcs_knn_topk10_{suffix}"] = bench.platonic_lcs_knn(
            X, other, 10, normalize=normalize)
        got[f"platonic_edit_distance_knn_topk10_{suffix}"] = bench.platonic_edit_distance_knn(
            X, other, 10, normalize=normalize)
    assert len(got) == 10
    for key, value in got.items():
        assert value == pytest.approx(values[key], abs=1e-10), key
