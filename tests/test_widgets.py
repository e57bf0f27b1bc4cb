"""Headless tests of clusterlab.widgets (and the two plot functions the explorers wrap).

The explorers are driven as a learner would drive them, by setting the controls'
``.value``; each test then checks what the callback produced against clusterlab itself.
No browser and no kernel: the figure is a PNG put into the Output's ``outputs``.
"""

from __future__ import annotations

import base64
import importlib
import os
import subprocess
import sys
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pytest

import clusterlab as cl

widgets = pytest.importorskip("ipywidgets", reason="the explorers need ipywidgets")

from clusterlab import widgets as clw  # noqa: E402
from clusterlab.plotting import plot_kmeans_state, plot_meanshift_state  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _agg(agg_backend):
    """Every test here draws off-screen (the shared fixture in conftest.py)."""


@pytest.fixture
def km():
    ex = clw.kmeans_explorer(raise_errors=True)
    yield ex
    ex.close()


@pytest.fixture
def ms():
    ex = clw.meanshift_explorer(raise_errors=True)
    yield ex
    ex.close()


def _png(ex) -> bytes:
    """The PNG shown in the explorer's Output (and check that it is the only output)."""
    (out,) = ex.out.outputs
    assert out["output_type"] == "display_data"
    data = base64.b64decode(out["data"]["image/png"])
    assert data.startswith(PNG_MAGIC)
    return data


def _reference_kmeans(dataset, k, init, iteration, seed=0):
    x = clw.load_dataset(dataset, seed)
    return cl.kmeans(x, k, init=init, max_iter=iteration, tol=0, seed=seed, backend="numpy")


def _no_error(ex):
    assert ex.last["error"] is None, ex.last.get("traceback")
    assert ex.last["n_errors"] == 0


# --------------------------------------------------------------------------- data sets


def test_datasets_are_the_course_data():
    x = clw.load_dataset("six blobs")
    np.testing.assert_array_equal(x, cl.data.make_six_blobs(seed=0)[0])
    np.testing.assert_array_equal(
        clw.load_dataset("make_blobs (scaled)"), cl.data.make_scaled_blobs(seed=0)[0]
    )
    np.testing.assert_array_equal(clw.load_dataset("moons"), cl.data.make_moons_data(seed=0)[0])
    digits = clw.load_dataset("digits (2-D PCA)")
    full = cl.data.load_digits_2d(seed=0)[0]
    assert digits.shape == (clw.DIGITS_POINTS, 2)
    # a subset of the rows of the full projection, in order
    idx = [int(np.flatnonzero((full == row).all(1))[0]) for row in digits[:50]]
    assert idx == sorted(idx)
    # a fresh copy each time: changing it does not change the next one
    x[0] = 1e6
    assert clw.load_dataset("six blobs")[0, 0] != 1e6
    with pytest.raises(ValueError, match="dataset must be one of"):
        clw.load_dataset("iris")


def test_silhouette_matches_sklearn_and_is_none_when_undefined():
    from sklearn.metrics import silhouette_score

    x = clw.load_dataset("moons")
    labels = cl.kmeans(x, 2, seed=0, backend="numpy").labels
    assert clw.silhouette(x, labels) == pytest.approx(silhouette_score(x, labels))
    assert clw.silhouette(x, np.zeros(len(x), dtype=int)) is None
    big = clw.load_dataset("six blobs")
    lab = cl.kmeans(big, 6, seed=0, backend="numpy").labels
    sub = clw.silhouette(big, lab, max_points=300, seed=1)
    assert sub == pytest.approx(silhouette_score(big, lab, sample_size=300, random_state=1))
    assert sub != pytest.approx(silhouette_score(big, lab), abs=1e-6)  # really subsampled


# --------------------------------------------------------------------------- k-means explorer


def test_kmeans_explorer_first_state(km):
    assert isinstance(km, widgets.VBox)
    _no_error(km)
    last = km.last
    assert (last["dataset"], last["k"], last["init"], last["iteration"]) == (
        "six blobs",
        6,
        "k-means++",
        30,
    )
    ref = _reference_kmeans("six blobs", 6, "k-means++", 30)
    assert last["inertia"] == ref.inertia
    assert last["n_clusters"] == 6
    assert 0.5 < last["silhouette"] <= 1.0  # six well separated blobs
    assert last["redraws"] == 1
    assert last["converged_at"] is not None and 0 < last["converged_at"] < 30
    _png(km)
    assert "inertia" in km.status.value and "silhouette" in km.status.value
    # the figure: points, centroids at the result's centroids, and the elbow
    ax1, ax2 = km.fig.axes
    np.testing.assert_allclose(ax1.collections[1].get_offsets(), ref.centroids, rtol=1e-6)
    ks, inertias = km.elbow()
    np.testing.assert_array_equal(ax2.lines[0].get_xdata(), ks)
    assert inertias[5] == ref.inertia
    assert ax2.lines[1].get_xdata()[0] == 6  # the current k marked


@pytest.mark.parametrize("k", [1, 2, 9, 15])
def test_kmeans_k_slider(km, k):
    before_png, before_redraws = _png(km), km.last["redraws"]
    before = km.fig.axes[0].collections[1].get_offsets().copy()
    km.k_slider.value = k
    _no_error(km)
    ref = _reference_kmeans("six blobs", k, "k-means++", 30)
    assert km.last["k"] == k
    assert km.last["inertia"] == ref.inertia
    assert km.last["n_clusters"] == len(np.unique(ref.labels))
    if k == 1:
        assert km.last["silhouette"] is None
        assert "undefined" in km.status.value
    else:
        assert -1.0 <= km.last["silhouette"] <= 1.0
    assert km.last["redraws"] == before_redraws + 1
    after = km.fig.axes[0].collections[1].get_offsets()
    assert after.shape == (k, 2) and before.shape == (6, 2)
    np.testing.assert_allclose(after, ref.centroids, rtol=1e-6)
    assert _png(km) != before_png
    assert km.fig.axes[1].lines[1].get_xdata()[0] == k


def test_kmeans_iteration_stepper(km):
    km.init_dropdown.value = "random"  # random starts move more: a visible path
    inertias = []
    for it in range(0, 6):
        km.iter_slider.value = it
        _no_error(km)
        ref = _reference_kmeans("six blobs", 6, "random", it)
        assert km.last["iteration"] == it
        assert km.last["inertia"] == ref.inertia
        ax = km.fig.axes[0]
        np.testing.assert_allclose(ax.collections[1].get_offsets(), ref.centroids, rtol=1e-6)
        # one path per centroid once there is a past; it ends at the current centroid
        paths = [ln for ln in ax.lines]
        assert len(paths) == (0 if it == 0 else 6)
        for j, ln in enumerate(paths):
            assert len(ln.get_xdata()) == it + 1
            np.testing.assert_allclose(
                [ln.get_xdata()[-1], ln.get_ydata()[-1]], ref.centroids[j], rtol=1e-6
            )
        inertias.append(km.last["inertia"])
    # Lloyd never increases the objective
    assert all(b <= a * (1 + 1e-6) for a, b in zip(inertias, inertias[1:], strict=False))
    assert inertias[-1] < inertias[0]
    # the iteration 0 state is the initialisation
    init = _reference_kmeans("six blobs", 6, "random", 0).centroids
    x = clw.load_dataset("six blobs")
    assert all((x == c).all(1).any() for c in init)  # random init picks data points
    # the play button drives the iteration slider (a link in the browser)
    assert km._link.source == (km.play, "value")
    assert km._link.target == (km.iter_slider, "value")
    assert km.play.max == km.iter_slider.max == 30


@pytest.mark.parametrize("dataset", clw.DATASETS)
@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_kmeans_dataset_and_init(km, dataset, init):
    km.k_slider.value = 4
    km.init_dropdown.value = init
    km.dataset_dropdown.value = dataset
    _no_error(km)
    ref = _reference_kmeans(dataset, 4, init, 30)
    assert (km.last["dataset"], km.last["init"]) == (dataset, init)
    assert km.last["inertia"] == ref.inertia
    assert km.last["n_points"] == len(clw.load_dataset(dataset))
    assert -1.0 <= km.last["silhouette"] <= 1.0
    ks, inertias = km.elbow()
    assert list(ks) == list(range(1, 16))
    assert inertias[3] == ref.inertia
    assert inertias[0] > inertias[-1]


def test_kmeans_caches(km):
    misses = km._elbow.cache_info().misses
    km.k_slider.value = 3
    km.k_slider.value = 6
    assert km._elbow.cache_info().misses == misses  # one elbow per (dataset, init)
    hits = km._state.cache_info().hits
    km.k_slider.value = 3  # seen before: from the cache
    assert km._state.cache_info().hits == hits + 1
    km.init_dropdown.value = "random"
    assert km._elbow.cache_info().misses == misses + 1


def test_kmeans_moons_is_cut_by_a_straight_line(km):
    """k = 2 on the moons: k-means splits the plane in two half-planes, not the moons."""
    from sklearn.metrics import adjusted_rand_score

    km.dataset_dropdown.value = "moons"
    km.k_slider.value = 2
    _no_error(km)
    y = cl.data.make_moons_data(seed=0)[1]
    labels = _reference_kmeans("moons", 2, "k-means++", 30).labels
    assert adjusted_rand_score(y, labels) < 0.6


def test_kmeans_explorer_bad_arguments():
    with pytest.raises(ValueError, match="dataset must be one of"):
        clw.kmeans_explorer(dataset="iris")
    with pytest.raises(ValueError, match="init must be one of"):
        clw.kmeans_explorer(init="farthest")
    with pytest.raises(ValueError, match="k must be in"):
        clw.kmeans_explorer(k=16)
    with pytest.raises(ValueError, match="iteration must be in"):
        clw.kmeans_explorer(iteration=31)


# --------------------------------------------------------------------------- mean-shift explorer


def _reference_meanshift(dataset, bandwidth):
    x = clw.load_dataset(dataset)
    return cl.meanshift(x, bandwidth, max_iter=50, tol=1e-2, seed=0, backend="numpy")


def test_meanshift_explorer_first_state(ms):
    assert isinstance(ms, widgets.VBox)
    _no_error(ms)
    x = clw.load_dataset("six blobs")
    est = cl.estimate_bandwidth(x)
    assert ms.last["estimate"] == pytest.approx(est, rel=1e-5)
    s = ms.bandwidth_slider
    assert s.min < est < s.max
    assert ms.last["bandwidth"] == pytest.approx(0.25 * est, abs=s.step)
    assert ms.last["n_clusters"] == 6  # the six blobs
    assert ms.last["sizes"] == [250] * 6
    assert ms.last["redraws"] == 1
    _png(ms)
    assert f"h = {est:.3g}" in ms.estimate_label.value
    assert "6 clusters found" in ms.status.value
    # the figure: data, shifted points, centres, the h circle and the estimate circle
    ax = ms.fig.axes[0]
    ref = _reference_meanshift("six blobs", ms.last["bandwidth"])
    np.testing.assert_allclose(ax.collections[1].get_offsets(), ref.points, rtol=1e-5)
    np.testing.assert_allclose(ax.collections[2].get_offsets(), ref.centers, rtol=1e-5)
    radii = sorted(p.get_radius() for p in ax.patches)
    assert radii == pytest.approx(sorted([ms.last["bandwidth"], ms.last["estimate"]]))


def test_meanshift_bandwidth_slider(ms):
    s = ms.bandwidth_slider
    counts = {}
    for h in (s.min, 2.0, 10.0, 15.0, s.max):
        before_png, before_redraws = _png(ms), ms.last["redraws"]
        before = ms.fig.axes[0].collections[2].get_offsets().copy()
        s.value = h
        _no_error(ms)
        ref = _reference_meanshift("six blobs", h)
        assert ms.last["bandwidth"] == pytest.approx(h)
        assert ms.last["n_clusters"] == len(ref.centers)
        assert ms.last["n_iter"] == ref.n_iter
        assert ms.last["redraws"] == before_redraws + 1
        assert _png(ms) != before_png
        after = ms.fig.axes[0].collections[2].get_offsets()
        assert after.shape != before.shape or not np.allclose(after, before)
        counts[h] = ms.last["n_clusters"]
    assert counts[2.0] == 6  # the right scale finds the six blobs
    assert counts[s.max] == 1  # too large: everything merges
    assert counts[15.0] < 6  # blobs start to merge


def test_meanshift_small_bandwidth_fragments_the_moons(ms):
    ms.dataset_dropdown.value = "moons"
    _no_error(ms)
    ms.bandwidth_slider.value = ms.bandwidth_slider.min
    many = ms.last["n_clusters"]
    ms.bandwidth_slider.value = ms.bandwidth_slider.max
    assert many > 10 and ms.last["n_clusters"] == 1


def test_use_estimate_button(ms):
    est = ms.estimate()
    assert ms.bandwidth_slider.value != pytest.approx(est)
    redraws = ms.last["redraws"]
    ms.estimate_button.click()
    _no_error(ms)
    assert ms.bandwidth_slider.value == pytest.approx(est)
    assert ms.last["bandwidth"] == pytest.approx(est)
    assert ms.last["redraws"] == redraws + 1
    assert ms.last["n_clusters"] == len(_reference_meanshift("six blobs", est).centers)
    assert "1.00 × the estimate" in ms.status.value


@pytest.mark.parametrize("dataset", clw.DATASETS[1:])
def test_meanshift_dataset_keeps_the_ratio(ms, dataset):
    ratio = ms.bandwidth_slider.value / ms.estimate()
    ms.dataset_dropdown.value = dataset
    _no_error(ms)
    est = cl.estimate_bandwidth(clw.load_dataset(dataset))
    s = ms.bandwidth_slider
    assert ms.last["dataset"] == dataset
    assert ms.last["estimate"] == pytest.approx(est, rel=1e-5)
    assert s.min <= 0.06 * est and s.max >= 1.4 * est and s.step <= est / 50
    assert s.value / est == pytest.approx(ratio, abs=s.step / est)
    assert ms.last["n_clusters"] == len(_reference_meanshift(dataset, s.value).centers)
    assert ms.last["redraws"] == 2  # one redraw for the whole change


def test_meanshift_explorer_bad_bandwidth():
    with pytest.raises(ValueError, match="bandwidth must be in"):
        clw.meanshift_explorer(bandwidth=1000.0)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("make", [clw.kmeans_explorer, clw.meanshift_explorer])
def test_callback_error_is_shown_not_swallowed(make, monkeypatch):
    ex = make()  # raise_errors=False: as in the notebook
    _no_error(ex)
    redraws = ex.last["redraws"]

    def boom(**params):
        raise RuntimeError(f"boom at {params}")

    monkeypatch.setattr(ex, "compute", boom)
    slider = ex.k_slider if hasattr(ex, "k_slider") else ex.bandwidth_slider
    slider.value = slider.max
    assert ex.last["error"].startswith("RuntimeError: boom at")
    assert ex.last["n_errors"] == 1
    assert ex.last["redraws"] == redraws  # nothing was drawn
    (out,) = ex.out.outputs
    assert out["output_type"] == "stream" and out["name"] == "stderr"
    assert "Traceback" in out["text"] and "RuntimeError: boom at" in out["text"]
    assert "error in the redraw" in ex.status.value and "boom" in ex.status.value

    # with raise_errors (tests) the error propagates to whoever set the value
    ex.raise_errors = True
    with pytest.raises(RuntimeError, match="boom"):
        slider.value = slider.min
    assert ex.last["n_errors"] == 2

    # once the cause is gone, the next redraw shows a figure again
    monkeypatch.undo()
    slider.value = slider.max
    assert ex.last["error"] is None and ex.last["redraws"] == redraws + 1
    _png(ex)
    ex.close()


# --------------------------------------------------------------------------- every state draws
# (how long a redraw takes is the benchmark's business, not a test's: a wall-clock limit
# fails on a busy machine for reasons that are not bugs)


def _uncached_redraw(ex, control, value):
    """One redraw that recomputes (cache cleared); checks that it drew and counted once."""
    ex.clear_cache()
    before = ex.last["redraws"]
    if control.value == value:
        ex.redraw()
    else:
        control.value = value
    _no_error(ex)
    assert ex.last["redraws"] == before + 1
    assert isinstance(ex.last["seconds"], float)  # recorded, never judged
    return _png(ex)


def test_each_dataset_redraws_at_its_cheapest_and_dearest_state():
    km = clw.kmeans_explorer(raise_errors=True)
    ms = clw.meanshift_explorer(raise_errors=True)
    for dataset in clw.DATASETS:
        km.dataset_dropdown.value = dataset
        pngs = []
        for k, it in ((2, 1), (15, 30)):  # the cheapest and the dearest state
            km.iter_slider.value = it
            pngs.append(_uncached_redraw(km, km.k_slider, k))
            assert (km.last["dataset"], km.last["k"]) == (dataset, k)
        assert pngs[0] != pngs[1]
        ms.dataset_dropdown.value = dataset
        s = ms.bandwidth_slider
        for h in (s.min, ms.estimate() * 0.25):  # small h: slow climbs, many modes
            _uncached_redraw(ms, s, h)
            assert ms.last["dataset"] == dataset and ms.last["n_clusters"] >= 1
    # cached: drawing only, the same state drawn again
    before, png = km.last["redraws"], _png(km)
    km.redraw()
    _no_error(km)
    assert km.last["redraws"] == before + 1 and _png(km) == png
    km.close()
    ms.close()


# --------------------------------------------------------------------------- ipywidgets missing


def test_missing_ipywidgets_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # "import ipywidgets" now fails
    monkeypatch.delitem(sys.modules, "clusterlab.widgets")
    monkeypatch.delattr(cl, "widgets")
    with pytest.raises(ImportError, match=r"pip install ipywidgets==8\.1\.9"):
        importlib.import_module("clusterlab.widgets")
    with pytest.raises(ImportError, match=r"pip install ipywidgets==8\.1\.9"):
        cl.widgets.kmeans_explorer()
    # the rest of the package works
    x = cl.data.make_six_blobs(seed=0)[0]
    assert cl.kmeans(x, 6, seed=0, backend="numpy").centroids.shape == (6, 2)


def test_import_clusterlab_without_ipywidgets_in_a_fresh_process():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["ipywidgets"] = None
        import clusterlab as cl
        assert "ipywidgets" not in [m for m, v in sys.modules.items() if v is not None]
        x = cl.data.make_six_blobs(seed=0)[0]
        print("kmeans", cl.kmeans(x, 6, seed=0, backend="numpy").centroids.shape)
        try:
            cl.widgets.meanshift_explorer()
        except ImportError as err:
            print("ImportError:", err)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert "kmeans (6, 2)" in proc.stdout
    assert "ImportError: clusterlab.widgets needs ipywidgets: pip install ipywidgets==8.1.9" in (
        proc.stdout
    )


# --------------------------------------------------------------------------- plot functions


def test_plot_kmeans_state_draws_paths_ending_at_the_centroids():
    x = clw.load_dataset("six blobs")
    runs = [_reference_kmeans("six blobs", 3, "random", i) for i in range(4)]
    trail = np.stack([r.centroids for r in runs[:3]])
    ax = plot_kmeans_state(x, runs[3].centroids, runs[3].labels, trail=trail, title="t")
    assert ax.get_title() == "t"
    assert len(ax.collections) == 2 and len(ax.lines) == 3
    for j, ln in enumerate(ax.lines):
        np.testing.assert_allclose(ln.get_xdata(), [*trail[:, j, 0], runs[3].centroids[j, 0]])
    # no trail, or an empty one: no lines
    assert len(plot_kmeans_state(x, runs[0].centroids, runs[0].labels).lines) == 0
    empty = np.empty((0, 3, 2))
    assert len(plot_kmeans_state(x, runs[0].centroids, runs[0].labels, trail=empty).lines) == 0
    with pytest.raises(ValueError, match="trail must have shape"):
        plot_kmeans_state(x, runs[0].centroids, runs[0].labels, trail=trail[:, :2])
    with pytest.raises(ValueError, match="finite"):
        plot_kmeans_state(x, runs[0].centroids, runs[0].labels, trail=trail * np.nan)


def test_plot_meanshift_state_draws_points_centres_and_circles():
    x = clw.load_dataset("moons")
    res = _reference_meanshift("moons", 0.3)
    fig, ax = plt.subplots()
    out = plot_meanshift_state(
        x, res.points, res.centers, res.labels, bandwidth=0.3, estimate=0.86, ax=ax
    )
    assert out is ax
    assert len(ax.collections) == 3
    np.testing.assert_allclose(ax.collections[1].get_offsets(), res.points)
    np.testing.assert_allclose(ax.collections[2].get_offsets(), res.centers)
    assert [p.get_radius() for p in ax.patches] == pytest.approx([0.3, 0.86])
    np.testing.assert_allclose(ax.patches[0].center, res.centers[0])
    assert ax.get_aspect() == 1.0
    assert len(plot_meanshift_state(x, res.points, res.centers, res.labels).patches) == 0
    with pytest.raises(ValueError, match="labels must index centers"):
        plot_meanshift_state(x, res.points, res.centers[:1], res.labels)
    with pytest.raises(ValueError, match="one row per point"):
        plot_meanshift_state(x, res.points[:-1], res.centers, res.labels)
    with pytest.raises(ValueError, match="bandwidth must be finite and > 0"):
        plot_meanshift_state(x, res.points, res.centers, res.labels, bandwidth=0.0)


@pytest.mark.parametrize("make", [clw.kmeans_explorer, clw.meanshift_explorer])
def test_close_closes_every_widget_inside(make):
    ex = make()
    inner = [w for w in ex.children] + [ex.out, ex.status]
    assert ex.comm is not None and all(w.comm is not None for w in inner)
    ex.close()
    assert ex.comm is None and all(w.comm is None for w in inner)


# --------------------------------------------------------------------------- bad numbers


def _nothing_computed(monkeypatch):
    """Bad arguments are refused before anything runs (a huge max_iter or k_max let
    through would keep the explorer busy for hours): computing fails at once here."""

    def stub(*args, **kwargs):
        raise AssertionError("computed before the arguments were checked")

    for name in ("kmeans", "meanshift", "estimate_bandwidth"):
        monkeypatch.setattr(clw, name, stub)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"k": 3.5}, TypeError, r"k must be an integer, got 3.5 \(float\)"),
        ({"k": "3"}, TypeError, r"k must be an integer, got '3' \(str\)"),
        ({"k": True}, TypeError, r"k must be an integer, got True"),
        ({"k": 0}, ValueError, r"k must be in \[1, 15\], got 0"),
        ({"iteration": 2.0}, TypeError, r"iteration must be an integer, got 2.0"),
        ({"k_max": 10**6}, ValueError, r"k_max must be in \[1, 1500\], got 1000000"),
        ({"k_max": float("nan")}, TypeError, r"k_max must be an integer, got nan"),
        ({"max_iter": 2**31}, ValueError, r"max_iter must be in \[0, 100\], got 2147483648"),
        ({"seed": -1}, ValueError, r"seed must be >= 0, got -1"),
        ({"backend": "cupy"}, ValueError, r"backend must be one of .*; got 'cupy'"),
        ({"silhouette_points": 1}, ValueError, r"silhouette_points must be >= 2, got 1"),
        ({"dpi": 0}, ValueError, r"dpi must be in \[1, 10000\], got 0"),
        ({"figsize": (float("nan"), 4)}, ValueError, r"figsize\[0\] must be finite, got nan"),
        ({"figsize": (1e9, 4)}, ValueError, r"figsize=\(1000000000.0, 4\) at dpi=80 is 80000000000 x 320 pixels"),
        ({"figsize": "big"}, TypeError, r"figsize must be \(width, height\) in inches, got 'big'"),
        ({"raise_errors": "yes"}, TypeError, r"raise_errors must be True or False, got 'yes'"),
    ],
)
def test_kmeans_explorer_refuses_bad_numbers_naming_them(kwargs, exc, match, monkeypatch):
    _nothing_computed(monkeypatch)
    with pytest.raises(exc, match=match):
        clw.kmeans_explorer(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"ratio": float("nan")}, ValueError, r"ratio must be finite, got nan"),
        ({"ratio": -0.5}, ValueError, r"ratio must be > 0, got -0.5"),
        ({"ratio": "a quarter"}, TypeError, r"ratio must be a real number, got 'a quarter'"),
        ({"bandwidth": float("inf")}, ValueError, r"bandwidth must be finite, got inf"),
        ({"bandwidth": 0.0}, ValueError, r"bandwidth must be > 0, got 0.0"),
        ({"quantile": 1.5}, ValueError, r"quantile must be <= 1.0, got 1.5"),
        ({"max_iter": 2.5}, TypeError, r"max_iter must be an integer, got 2.5"),
        ({"max_iter": 10**9}, ValueError, r"max_iter must be in \[0, 1000\], got 1000000000"),
        ({"tol": float("nan")}, ValueError, r"tol must be finite, got nan"),
        ({"seed": 0.5}, TypeError, r"seed must be an integer, got 0.5"),
        ({"dataset": ["moons"]}, ValueError, r"dataset must be one of"),
    ],
)
def test_meanshift_explorer_refuses_bad_numbers_naming_them(kwargs, exc, match, monkeypatch):
    _nothing_computed(monkeypatch)
    with pytest.raises(exc, match=match):
        clw.meanshift_explorer(**kwargs)


def test_explorer_compute_refuses_what_it_would_have_rounded(km, ms):
    with pytest.raises(TypeError, match=r"k must be an integer, got 3.5"):
        km.compute("six blobs", 3.5, "random", 2)
    with pytest.raises(ValueError, match=r"iteration must be in \[0, 30\], got 31"):
        km.compute("six blobs", 3, "random", 31)
    with pytest.raises(ValueError, match=r"init must be one of"):
        km.elbow(init="farthest")
    with pytest.raises(ValueError, match=r"bandwidth must be finite, got nan"):
        ms.compute("moons", float("nan"))
    state = km.compute("six blobs", np.int64(3), "random", 2)  # NumPy integers are integers
    assert state["centroids"].shape == (3, 2)
