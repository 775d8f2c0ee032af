"""Figures rendered to PNG files (Agg backend): heatmap, invariance table, stitching bars."""

import sys
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

import simmetrics  # noqa: E402
from simmetrics.invariance import InvarianceRow, InvarianceTable, invariance_table  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 2000
    # the IHDR chunk holds a non-empty image size
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 100 and height > 100


def test_similarity_matrix_heatmap(tmp_path, rng):
    layers = [rng.normal(size=(30, 4)) for _ in range(3)]
    M = simmetrics.pairwise("linear_cka", layers, [layers[0], layers[2]])
    ax = simmetrics.plot_similarity_matrix(M, ["a", "b", "c"], ["a", "c"], title="cka")
    assert len(ax.texts) == M.size  # one annotation per cell
    assert [t.get_text() for t in ax.texts][:2] == [f"{M[0, 0]:.2f}", f"{M[0, 1]:.2f}"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert ax.get_title() == "cka"
    ax.figure.savefig(tmp_path / "m.png")
    _assert_png(tmp_path / "m.png")


def test_heatmap_options(tmp_path):
    fig, ax = plt.subplots()
    out = simmetrics.plot_similarity_matrix(np.eye(3), ax=ax, annotate=False, colorbar=False)
    assert out is ax and len(ax.texts) == 0 and len(fig.axes) == 1
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]
    ax = simmetrics.plot_similarity_matrix([[0.0, 1.0]], fmt=".1f", cmap="viridis_r")
    # contrast: black text on the light end of the colour map, white on the dark end
    assert [t.get_text() for t in ax.texts] == ["0.0", "1.0"]
    assert ax.texts[0].get_color() == "black" and ax.texts[1].get_color() == "white"


def test_heatmap_bad_input():
    with pytest.raises(ValueError, match="non-empty 2-D matrix"):
        simmetrics.plot_similarity_matrix([1.0, 2.0])
    with pytest.raises(ValueError, match="NaN or infinite"):
        simmetrics.plot_similarity_matrix([[np.nan]])
    with pytest.raises(ValueError, match="row_labels has 1 labels for 2 rows"):
        simmetrics.plot_similarity_matrix(np.eye(2), row_labels=["a"])


def test_invariance_table_figure(tmp_path):
    table = invariance_table(["linear_cka", "procrustes"], ["orthogonal", "scaled_permutation"])
    ax = simmetrics.plot_invariance_table(table)
    # measured: both are rotation invariant, neither is invariant to diagonal scaling
    assert [t.get_text() for t in ax.texts] == ["yes", "no", "yes", "no"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["LinearCKA()", "OrthogonalProcrustes()"]
    ax.figure.savefig(tmp_path / "inv.png")
    _assert_png(tmp_path / "inv.png")


def test_invariance_table_flags_disagreements():
    rows = [InvarianceRow("M()", "orthogonal", True, False, 0.3),
            InvarianceRow("M()", "permutation", False, True, 0.0)]
    ax = simmetrics.plot_invariance_table(InvarianceTable(rows))
    assert [t.get_text() for t in ax.texts] == ["no !", "yes !"]
    with pytest.raises(TypeError, match="must be an InvarianceTable"):
        simmetrics.plot_invariance_table({"rows": 1})
    with pytest.raises(ValueError, match="no rows"):
        simmetrics.plot_invariance_table(InvarianceTable([]))


def test_stitching_penalty_bars(tmp_path):
    penalties = {"identity": 0.01, "permutation": (0.03, 0.01), "orthogonal": (0.2, 0.05),
                 "negative": -0.02}
    ax = simmetrics.plot_stitching_penalties(penalties, title="stitching")
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([0.01, 0.03, 0.2, -0.02])
    assert [t.get_text() for t in ax.texts] == ["0.010", "0.030", "0.200", "-0.020"]
    [error_bars] = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(error_bars.get_segments()) == 4  # one vertical error bar per bar
    ax.figure.savefig(tmp_path / "stitch.png")
    _assert_png(tmp_path / "stitch.png")
    for bad in ({}, {"a": (1.0, 2.0, 3.0)}, {"a": np.nan}, {"a": "x"}, [0.1, 0.2]):
        with pytest.raises(ValueError, match="penalties"):
            simmetrics.plot_stitching_penalties(bad)


def test_stitching_results_are_averaged_over_runs():
    # stand-ins for simmetrics.nn.stitching.StitchResult: only .kind and .penalty are read
    runs = [SimpleNamespace(kind=k, penalty=p) for k, p in
            [("direct", 0.0), ("full", 0.1), ("direct", 0.02), ("full", 0.3)]]
    ax = simmetrics.plot_stitching_penalties(runs)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["direct", "full"]
    assert [p.get_height() for p in ax.patches] == pytest.approx([0.01, 0.2])
    [error_bars] = [c for c in ax.collections if isinstance(c, LineCollection)]
    # +- the sample standard deviation of each group: 0.01 * sqrt(2) and 0.1 * sqrt(2)
    spans = [abs(seg[1, 1] - seg[0, 1]) / 2 for seg in error_bars.get_segments()]
    assert spans == pytest.approx([0.01 * 2**0.5, 0.1 * 2**0.5])
    ax = simmetrics.plot_stitching_penalties({"one": runs[1], "all full": [runs[1], runs[3]]})
    assert [p.get_height() for p in ax.patches] == pytest.approx([0.1, 0.2])


def test_clear_error_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install 'simmetrics\[plot\]'"):
        simmetrics.plot_similarity_matrix(np.eye(2))
    with pytest.raises(ImportError, match=r"simmetrics\[plot\]"):
        simmetrics.plot_stitching_penalties({"a": 1.0})


def test_mask_upper_blanks_the_cells_above_the_diagonal():
    M = np.array([[1.0, 0.3, 0.2], [0.3, 1.0, 0.6], [0.2, 0.6, 1.0]])
    ax = simmetrics.plot_similarity_matrix(M, mask_upper=True)
    shown = ax.get_images()[0].get_array()
    np.testing.assert_array_equal(np.ma.getmaskarray(shown), np.triu(np.ones((3, 3), bool), 1))
    assert [t.get_text() for t in ax.texts] == ["1.00", "0.30", "1.00", "0.20", "0.60", "1.00"]
    with pytest.raises(TypeError, match="mask_upper must be True or False"):
        simmetrics.plot_similarity_matrix(M, mask_upper="yes")
    plt.close("all")


def test_several_metrics_side_by_side_share_one_colour_scale():
    from simmetrics.nn.comparison import ModelComparison

    values = {"linear_cka": [[0.9, 0.85], [0.88, 0.92]], "rsa": [[0.4, -0.2], [0.1, 0.3]],
              "procrustes": [[0.5, 0.7], [0.6, 0.4]]}
    result = ModelComparison(values, ["a1", "a2"], ["b1", "b2"], names=("A", "B"))
    axes = result.plot_metrics(["linear_cka", "rsa"])
    # linear CKA's bounds [0, 1] and RSA's [-1, 1]: the union, on both panels
    assert [ax.get_images()[0].get_clim() for ax in axes] == [(-1.0, 1.0), (-1.0, 1.0)]
    assert [ax.get_title() for ax in axes] == ["linear_cka", "rsa"]
    assert len(axes[0].figure.axes) == 3  # two panels and one colour bar
    assert axes[0].figure.axes[-1].get_ylabel() == "linear_cka, rsa (similarity)"
    with pytest.raises(ValueError, match="mixes similarities and distances"):
        result.plot_metrics()  # procrustes is a distance
    with pytest.raises(ValueError, match="axes has 1 axes for 2 metrics"):
        result.plot_metrics(["linear_cka", "rsa"], axes=[axes[0]])
    plt.close("all")
