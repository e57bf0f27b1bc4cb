"""Tests of clusterlab.plotting: each plot returns its axes with the right artists."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from clusterlab.device import Timing
from clusterlab.plotting import (
    plot_cluster_sizes,
    plot_clusters,
    plot_elbow,
    plot_history,
    plot_kmeans_state,
    plot_timings,
)


@pytest.fixture(autouse=True)
def _agg(agg_backend):
    """Every test here draws off-screen (the shared fixture in conftest.py)."""


def _points(n=60, k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2)).astype(np.float32)
    labels = np.arange(n) % k
    return x, labels


# --------------------------------------------------------------------------- plot_clusters


def test_plot_clusters_new_axes_points_and_centroids():
    x, labels = _points(60, 3)
    cents = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    n_figs = len(plt.get_fignums())
    ax = plot_clusters(x, labels, cents, title="demo")
    assert isinstance(ax, matplotlib.axes.Axes)
    assert len(plt.get_fignums()) == n_figs + 1
    assert len(ax.collections) == 2
    pts, cen = ax.collections
    np.testing.assert_allclose(pts.get_offsets(), x)
    assert cen.get_offsets().shape == (3, 2)
    assert cen.get_sizes()[0] > pts.get_sizes()[0]  # centroids drawn larger
    assert ax.get_title() == "demo"
    # points of different labels get different colours, same label the same colour
    fc = pts.get_facecolors()
    assert not np.allclose(fc[0], fc[1])
    np.testing.assert_allclose(fc[0], fc[3])
    # centroid i has the colour of label i
    np.testing.assert_allclose(cen.get_facecolors()[1][:3], fc[1][:3])


def test_plot_clusters_reuses_ax():
    fig, ax = plt.subplots()
    x, labels = _points()
    n_figs = len(plt.get_fignums())
    out = plot_clusters(x, labels, ax=ax)
    assert out is ax
    assert len(plt.get_fignums()) == n_figs
    assert len(ax.collections) == 1


def test_plot_clusters_block_colouring_like_plot_data():
    # the lesson's plot_data(centroids, data, n_samples): blocks of n_samples points
    x, _ = _points(40)
    ax = plot_clusters(x, centroids=np.zeros((4, 2)), n_samples=10)
    fc = ax.collections[0].get_facecolors()
    assert fc.shape[0] == 40
    np.testing.assert_allclose(fc[0], fc[9])  # same block
    assert not np.allclose(fc[9], fc[10])  # next block
    assert ax.collections[1].get_offsets().shape == (4, 2)


def test_plot_clusters_no_labels_single_colour():
    x, _ = _points(30)
    ax = plot_clusters(x)
    fc = ax.collections[0].get_facecolors()
    assert len(np.unique(fc.round(6), axis=0)) == 1


def test_plot_clusters_subsamples_above_max_points():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5000, 3))
    labels = rng.integers(0, 5, 5000)
    ax = plot_clusters(x, labels, max_points=500, seed=1)
    off = ax.collections[0].get_offsets()
    assert off.shape == (500, 2)
    # the drawn points are rows of x (first two columns)
    rows = {tuple(r) for r in x[:, :2].round(9)}
    assert all(tuple(r) in rows for r in np.asarray(off).round(9))
    # seeded: same seed same subset, other seed another subset
    again = plot_clusters(x, labels, max_points=500, seed=1).collections[0].get_offsets()
    other = plot_clusters(x, labels, max_points=500, seed=2).collections[0].get_offsets()
    np.testing.assert_array_equal(off, again)
    assert not np.array_equal(off, other)


def test_plot_clusters_accepts_torch():
    x = torch.randn(25, 2)
    labels = torch.arange(25) % 2
    cents = torch.zeros(2, 2)
    ax = plot_clusters(x, labels, cents)
    np.testing.assert_allclose(ax.collections[0].get_offsets(), x.numpy())
    assert ax.collections[1].get_offsets().shape == (2, 2)


def test_plot_clusters_bad_arguments():
    x, labels = _points(10)
    with pytest.raises(ValueError, match=r"x.*\(10,\)"):
        plot_clusters(np.zeros(10))
    with pytest.raises(ValueError, match="labels.*10.*9"):
        plot_clusters(x, labels[:9])
    with pytest.raises(ValueError, match="max_points.*0"):
        plot_clusters(x, max_points=0)
    with pytest.raises(ValueError, match="n_samples.*-3"):
        plot_clusters(x, n_samples=-3)
    with pytest.raises(ValueError, match="labels.*integers"):
        plot_clusters(x, np.full(10, 0.5))


# --------------------------------------------------------------------------- plot_history


HISTORY = [
    {"obj": 10.0, "time": 0.01, "imbalance": 1.5, "n_split": 1},
    {"obj": 7.0, "time": 0.02, "imbalance": 1.3, "n_split": 0},
    {"obj": 6.5, "time": 0.03, "imbalance": 1.2, "n_split": 0},
]


def test_plot_history_one_line_per_call():
    ax = plot_history(HISTORY)
    assert len(ax.lines) == 1
    xs, ys = ax.lines[0].get_data()
    np.testing.assert_array_equal(xs, [1, 2, 3])
    np.testing.assert_array_equal(ys, [10.0, 7.0, 6.5])
    out = plot_history(HISTORY, key="imbalance", ax=ax, label="run 2")
    assert out is ax
    assert len(ax.lines) == 2
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), [1.5, 1.3, 1.2])
    assert ax.get_legend() is not None


def test_plot_history_accepts_result_object():
    class Res:
        history = HISTORY

    ax = plot_history(Res(), key="n_split")
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [1, 0, 0])


def test_plot_history_bad_arguments():
    with pytest.raises(ValueError, match="'inertia'"):
        plot_history(HISTORY, key="inertia")
    with pytest.raises(ValueError, match="empty"):
        plot_history([])
    with pytest.raises(TypeError, match="history"):
        plot_history(3.0)


# --------------------------------------------------------------------------- plot_elbow


def test_plot_elbow_with_marker():
    ks = [1, 2, 3, 4, 5]
    inertias = [100.0, 40.0, 20.0, 18.0, 17.0]
    ax = plot_elbow(ks, inertias, k_marked=3)
    assert len(ax.lines) == 2
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), ks)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), inertias)
    np.testing.assert_array_equal(ax.lines[1].get_xdata(), [3, 3])  # vertical line at k = 3


def test_plot_elbow_reuses_ax_without_marker():
    fig, ax = plt.subplots()
    out = plot_elbow(np.arange(1, 4), torch.tensor([3.0, 2.0, 1.5]), ax=ax)
    assert out is ax
    assert len(ax.lines) == 1


def test_plot_elbow_bad_arguments():
    with pytest.raises(ValueError, match="3 and 2"):
        plot_elbow([1, 2, 3], [1.0, 2.0])
    with pytest.raises(ValueError, match="empty"):
        plot_elbow([], [])


# --------------------------------------------------------------------------- plot_cluster_sizes


def test_plot_cluster_sizes_bars_sorted_and_ideal_line():
    labels = np.array([0] * 5 + [1] * 2 + [2] * 8 + [4] * 1)  # cluster 3 is empty
    ax = plot_cluster_sizes(labels, k=5)
    heights = [p.get_height() for p in ax.patches]
    assert heights == [8, 5, 2, 1, 0]
    assert len(ax.lines) == 1
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [16 / 5, 16 / 5])
    # k * sum(size^2) / N^2 = 5 * 94 / 256
    assert f"{5 * 94 / 256:.3f}" in ax.get_title()


def test_plot_cluster_sizes_default_k_torch_and_ax():
    fig, ax = plt.subplots()
    out = plot_cluster_sizes(torch.tensor([0, 1, 1, 2, 2, 2]), ax=ax)
    assert out is ax
    assert [p.get_height() for p in ax.patches] == [3, 2, 1]


def test_plot_cluster_sizes_bad_arguments():
    with pytest.raises(ValueError, match="k=2.*label 2"):
        plot_cluster_sizes([0, 1, 2], k=2)
    with pytest.raises(ValueError, match="-1"):
        plot_cluster_sizes([0, -1, 2])
    with pytest.raises(ValueError, match="k.*0"):
        plot_cluster_sizes([0, 0], k=0)


# --------------------------------------------------------------------------- plot_timings


def test_plot_timings_bars_texts_and_ratios():
    names = ["loops", "numpy", "torch"]
    seconds = [2.0, 0.5, Timing(median=0.25, times=(0.24, 0.25, 0.3), first=1.0, repeat=3)]
    ax = plot_timings(names, seconds, baseline="loops", title="ladder")
    assert len(ax.patches) == 3
    widths = [p.get_width() for p in ax.patches]
    assert widths == [2.0, 0.5, 0.25]
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 3
    assert "2.00 s" in texts[0] and "baseline" in texts[0]
    assert "500 ms" in texts[1] and "4× faster" in texts[1]
    assert "250 ms" in texts[2] and "8× faster" in texts[2]
    assert ax.get_xscale() == "linear"
    assert ax.get_title() == "ladder"
    assert [t.get_text() for t in ax.get_yticklabels()] == names


def test_plot_timings_log_scale_and_slower_ratio_and_ax():
    fig, ax = plt.subplots()
    out = plot_timings(["a", "b"], [[1e-4, 2e-4, 3e-4], 0.1], baseline=0, ax=ax)
    assert out is ax
    assert ax.get_xscale() == "log"  # 0.1 / 2e-4 = 500x spread
    assert "500× slower" in ax.texts[1].get_text()
    ax2 = plot_timings(["slow", "fast"], [12.0, 0.004], baseline="slow")
    assert "3,000× faster" in ax2.texts[1].get_text()
    assert "200 µs" in ax.texts[0].get_text()


def test_plot_timings_without_baseline_has_no_ratio():
    ax = plot_timings(["x"], [0.01])
    assert ax.texts[0].get_text().strip() == "10.0 ms"


def test_plot_timings_bad_arguments():
    with pytest.raises(ValueError, match="2 and 1"):
        plot_timings(["a", "b"], [1.0])
    with pytest.raises(ValueError, match="'c'"):
        plot_timings(["a", "b"], [1.0, 2.0], baseline="c")
    with pytest.raises(ValueError, match=r"seconds\[1\].*-2"):
        plot_timings(["a", "b"], [1.0, -2.0])
    with pytest.raises(ValueError, match="index 5"):
        plot_timings(["a", "b"], [1.0, 2.0], baseline=5)


# --------------------------------------------------------------------------- bad numbers


def test_plot_kmeans_state_refuses_labels_that_index_no_centroid():
    x, labels = _points(30, 3)
    cents = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    assert len(plot_kmeans_state(x, cents, labels).collections) == 2  # 0..2: fine
    bad = labels.copy()
    bad[5] = 3
    with pytest.raises(ValueError, match=r"labels must index the 3 centroids \(0 to 2\), got values from 0 to 3"):
        plot_kmeans_state(x, cents, bad)
    bad[5] = -1
    with pytest.raises(ValueError, match=r"got values from -1 to 2"):
        plot_kmeans_state(x, cents, bad)
    with pytest.raises(ValueError, match=r"labels.*integers"):
        plot_kmeans_state(x, cents, labels + 0.5)
    with pytest.raises(ValueError, match=r"labels must have one entry per point \(30\), got 29"):
        plot_kmeans_state(x, cents, labels[:-1])
    with pytest.raises(ValueError, match=r"centroids must have shape \(k, 2\) like x of shape \(30, 2\), got shape \(3, 3\)"):
        plot_kmeans_state(x, np.zeros((3, 3)), labels)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_points_with_nan_or_inf_are_refused_not_dropped(value):
    x, labels = _points(10, 2)
    x[4, 1] = value
    with pytest.raises(ValueError, match=r"x contains NaN or inf \(1 values; first at index \(4, 1\)"):
        plot_clusters(x, labels)
    cents = np.zeros((2, 2))
    cents[1, 0] = value
    with pytest.raises(ValueError, match=r"centroids contains NaN or inf .*index \(1, 0\)"):
        plot_kmeans_state(_points(10, 2)[0], cents, labels)


def test_sparse_and_masked_points_are_refused_with_advice():
    sp = pytest.importorskip("scipy.sparse")
    x, labels = _points(10, 2)
    with pytest.raises(TypeError, match=r"x is a sparse matrix .*x\.toarray\(\)"):
        plot_clusters(sp.csr_matrix(x), labels)
    with pytest.raises(TypeError, match=r"x is a sparse torch tensor .*x\.to_dense\(\)"):
        plot_clusters(torch.from_numpy(x).to_sparse(), labels)
    m = np.ma.masked_array(x, mask=np.zeros_like(x, dtype=bool))
    m[2, 0] = np.ma.masked
    with pytest.raises(TypeError, match=r"x is a masked array with 1 masked value"):
        plot_clusters(m, labels)
    m.mask[:] = False  # nothing masked: its data are plotted
    np.testing.assert_allclose(plot_clusters(m, labels).collections[0].get_offsets(), x)


def test_plot_elbow_marker_must_be_a_finite_number():
    with pytest.raises(ValueError, match=r"k_marked must be finite, got nan"):
        plot_elbow([1, 2, 3], [3.0, 2.0, 1.0], k_marked=float("nan"))
    with pytest.raises(TypeError, match=r"k_marked must be a real number, got '2'"):
        plot_elbow([1, 2, 3], [3.0, 2.0, 1.0], k_marked="2")
    ax = plot_elbow([1, 2, 3], [3.0, 2.0, 1.0], k_marked=np.int64(2))
    assert ax.get_legend().get_texts()[0].get_text() == "k = 2"


def test_plot_cluster_sizes_bounds_k_by_the_number_of_points():
    with pytest.raises(ValueError, match=r"k=1099511627776 is larger than the number of points n=3"):
        plot_cluster_sizes([0, 1, 1], k=2**40)
    with pytest.raises(ValueError, match=r"labels must be < n=3 .*got label 1000000000000000000"):
        plot_cluster_sizes([0, 1, 10**18])  # k from the labels: not 1e18 bars
    with pytest.raises(TypeError, match=r"k must be an integer, got 2.5"):
        plot_cluster_sizes([0, 1, 1], k=2.5)
