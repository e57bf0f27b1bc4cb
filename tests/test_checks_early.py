"""Self-checks of notebooks 00, 01 and 02's exercises: each accepts right answers written in
different ways, and fails a technique-skipping one and a wrong one with a message that says
what is missing. Also: the watch they use, and ``plotting.animate_kmeans``."""

from __future__ import annotations

import gc
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import clusterlab as cl  # noqa: E402
from clusterlab import checks as ck  # noqa: E402
from clusterlab.plotting import animate_kmeans  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def passes(check, fn, capsys):
    ok = check(fn)
    out = capsys.readouterr().out
    assert ok is True, out
    assert "✗" not in out
    return out


def fails(check, fn, capsys, *words):
    with np.errstate(all="ignore"):
        ok = check(fn)
    out = capsys.readouterr().out
    assert ok is False, out
    for word in words:
        assert word in out, out
    return out


# ------------------------------------------------------------------------ the watch


def test_watch_counts_steps_of_a_python_loop_and_stops_it():
    def loop(n):
        total = 0
        for i in range(n):
            total += i
        return total

    small = ck._traced(loop, 10)
    large = ck._traced(loop, 1_000)
    assert small["out"] == 45 and large["out"] == 499_500
    assert large["steps"] - small["steps"] >= 990
    stopped = ck._traced(loop, 10**9, max_steps=500)
    assert stopped["stopped"] is True and stopped["out"] is None


def test_watch_sees_numpy_allocations_and_modules():
    info = ck._traced(lambda: np.ones(1_000_000).sum())
    assert info["peak"] >= 8_000_000
    assert any(m.startswith("numpy") for m in info["modules"])
    assert ck._traced(lambda: 1 + 1)["peak"] < 100_000


def test_watch_restores_the_previous_tracer():
    import sys

    before = sys.gettrace()
    with pytest.raises(ZeroDivisionError):
        ck._traced(lambda: 1 / 0)
    assert sys.gettrace() is before


# ------------------------------------------------------------------------ 02: check_assign


def centred(x, c):
    m = c.mean(0)
    xc, cc = x - m, c - m
    return ((xc * xc).sum(1)[:, None] - 2 * xc @ cc.T + (cc * cc).sum(1)[None, :]).argmin(1)


def naive(x, c):
    return ((x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None, :]).argmin(1)


@pytest.mark.parametrize(
    "right",
    [
        centred,
        lambda x, c: ((x[:, None] - c[None]) ** 2).sum(2).argmin(1),  # broadcast, no expansion
        lambda x, c: naive(x.astype(np.float64), c.astype(np.float64)),  # float64 is enough
        lambda x, c: np.stack([((x - cj) ** 2).sum(1) for cj in c], 1).argmin(1),  # loop over k
    ],
    ids=["centred", "broadcast", "float64", "loop-over-centroids"],
)
def test_check_assign_accepts_right_solutions(right, capsys):
    passes(ck.check_assign, right, capsys)


def test_the_naive_expanded_form_really_picks_wrong_centroids_far_from_the_origin():
    rng = np.random.default_rng(0)
    x = (1e4 + rng.normal(scale=3, size=(1000, 2))).astype(np.float32)
    c = x[:20] + rng.normal(size=(20, 2)).astype(np.float32)
    exact = ((x.astype(np.float64)[:, None] - c.astype(np.float64)[None]) ** 2).sum(2)
    assert (naive(x, c) != exact.argmin(1)).sum() > 50
    assert (centred(x, c) == exact.argmin(1)).all()


def test_check_assign_fails_the_naive_expanded_form_and_names_the_trap(capsys):
    out = fails(ck.check_assign, naive, capsys, "precision trap", "cancellation", "Centre first")
    assert "✓ check_assign — 200 points" in out  # near the origin it is right


def test_check_assign_fails_a_loop_over_points(capsys):
    def loop(x, c):
        m = c.mean(0)
        return np.array([int(((xi - m - (c - m)) ** 2).sum(1).argmin()) for xi in x])

    out = fails(ck.check_assign, loop, capsys, "a Python loop over the points")
    assert out.count("✓") == 5  # right labels everywhere else


def test_check_assign_fails_apply_along_axis_and_the_packages_assign(capsys):
    def along(x, c):
        return np.apply_along_axis(lambda r: ((r - c) ** 2).sum(1).argmin(), 1, x)

    fails(ck.check_assign, along, capsys, "a Python loop over the points")
    fails(ck.check_assign, lambda x, c: cl.assign(x, c)[1], capsys, "clusterlab's own code")


def test_check_assign_fails_wrong_labels_and_float_labels(capsys):
    fails(
        ck.check_assign,
        lambda x, c: ((x[:, None] - c[None]) ** 2).sum(2).argmax(1),
        capsys,
        "not given their nearest centroid",
    )
    fails(ck.check_assign, lambda x, c: centred(x, c).astype(float), capsys, "integers")


# ------------------------------------------------------------------------ 00: bytes, what fits


def bytes_of(shape, dtype):
    return math.prod(shape) * np.dtype(dtype).itemsize


def test_check_bytes_of(capsys):
    passes(ck.check_bytes_of, bytes_of, capsys)
    passes(
        ck.check_bytes_of,
        lambda s, t: int(np.prod(s, dtype=np.int64)) * np.dtype(t).itemsize,
        capsys,
    )
    fails(
        ck.check_bytes_of,
        lambda s, t: np.empty(s, dtype=t).nbytes if math.prod(s) < 10**6 else bytes_of(s, t),
        capsys,
        "allocated",
        "without making the array",
    )
    fails(
        ck.check_bytes_of,
        lambda s, t: np.prod(s) * np.dtype(t).itemsize,
        capsys,
        "expected a Python int",
    )
    fails(ck.check_bytes_of, lambda s, t: math.prod(s) * 4, capsys, "expected 80")


def test_check_largest_n(capsys):
    passes(ck.check_largest_n, lambda r, t, b: b // bytes_of((1, *r), t), capsys)

    def bisect(r, t, b):  # another right way: a binary search (few steps)
        lo, hi = 0, b + 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if bytes_of((mid, *r), t) <= b else (lo, mid)
        return lo

    passes(ck.check_largest_n, bisect, capsys)

    def count_up(r, t, b):
        n = 0
        while bytes_of((n + 1, *r), t) <= b:
            n += 1
        return n

    fails(ck.check_largest_n, count_up, capsys, "one row at a time")
    fails(
        ck.check_largest_n,
        lambda r, t, b: int(b / bytes_of((1, *r), t)),
        capsys,
        "integer division",
    )
    fails(ck.check_largest_n, lambda r, t, b: b // bytes_of(r, t) - 1, capsys, "expected")


# ------------------------------------------------------------------------ 01: the data tour


def four_datasets(order=(0, 1, 2, 3), labelled=True, titled=True):
    x6, y6, _ = cl.data.make_six_blobs(seed=0)
    xs, ys = cl.data.make_scaled_blobs(300, 4, seed=0)
    xm, ym = cl.data.make_moons_data(400, seed=0)
    xd2, yd2 = cl.data.load_digits_2d(seed=0)
    sets = [(x6, y6, "six blobs"), (xs, ys, "scaled"), (xm, ym, "moons"), (xd2, yd2, "digits")]
    fig, axes = plt.subplots(2, 2)
    for ax, i in zip(axes.ravel(), order, strict=True):
        x, y, title = sets[i]
        cl.plotting.plot_clusters(
            x, labels=y if labelled else None, ax=ax, title=title if titled else None
        )
    return fig


def test_check_four_datasets(capsys):
    passes(ck.check_four_datasets, four_datasets, capsys)
    passes(ck.check_four_datasets, lambda: four_datasets(order=(3, 2, 1, 0)), capsys)

    def plain_scatter():  # another way: matplotlib alone, coloured by label
        fig, axes = plt.subplots(2, 2)
        for ax, (x, y) in zip(
            axes.ravel(),
            [
                cl.data.make_six_blobs(seed=0)[:2],
                cl.data.make_scaled_blobs(300, 4, seed=0),
                cl.data.make_moons_data(400, seed=0),
                cl.data.load_digits_2d(seed=0),
            ],
            strict=True,
        ):
            ax.scatter(x[:, 0], x[:, 1], c=y, cmap="tab10", s=3)
            ax.set_title("data")
        return fig

    passes(ck.check_four_datasets, plain_scatter, capsys)
    fails(ck.check_four_datasets, lambda: four_datasets(labelled=False), capsys, "true labels")
    fails(ck.check_four_datasets, lambda: four_datasets(titled=False), capsys, "no title")
    fails(ck.check_four_datasets, lambda: four_datasets(order=(0, 0, 1, 2)), capsys, "both show")
    fails(ck.check_four_datasets, lambda: plt.subplots(2, 2)[0], capsys, "no scatter")
    fails(ck.check_four_datasets, lambda: 4, capsys, "expected a matplotlib Figure")


def standardise(x):
    std = x.std(0)
    return (x - x.mean(0)) / np.where(std == 0, 1, std)


def test_check_standardise(capsys):
    from sklearn.preprocessing import StandardScaler

    passes(ck.check_standardise, standardise, capsys)
    passes(ck.check_standardise, lambda x: standardise(np.asarray(x, dtype=np.float64)), capsys)
    fails(ck.check_standardise, lambda x: StandardScaler().fit_transform(x), capsys, "scikit-learn")

    def one_pass(x):
        std = np.sqrt(np.maximum((x * x).mean(0) - x.mean(0) ** 2, 0))
        return (x - x.mean(0)) / np.where(std == 0, 1, std)

    out = fails(ck.check_standardise, one_pass, capsys, "subtract the mean first")
    assert out.count("✗") == 1  # only the far-from-origin case

    def in_place(x):
        x -= x.mean(0)
        std = x.std(0)
        x /= np.where(std == 0, 1, std)
        return x

    fails(ck.check_standardise, in_place, capsys, "the input was modified")
    fails(ck.check_standardise, lambda x: (x - x.mean(0)) / x.std(0), capsys, "NaN")
    fails(
        ck.check_standardise,
        lambda x: (x - x.mean(0)) / x.std(0, ddof=1).clip(1e-9),
        capsys,
        "differs",
    )


def test_check_distance_shares(capsys):
    def shares(x):
        v = np.asarray(x, dtype=np.float64).var(0)
        return v / v.sum()

    passes(ck.check_distance_shares, shares, capsys)
    passes(ck.check_distance_shares, lambda x: x.var(0) / x.var(0).sum(), capsys)

    def pairs(x):  # right numbers, but a table of all n^2 pairs
        d2 = (x[:, None, :] - x[None, :, :]) ** 2
        m = d2.mean((0, 1))
        return m / m.sum()

    fails(ck.check_distance_shares, pairs, capsys, "grows like n²")

    def one_pass(x):
        v = (x * x).mean(0) - x.mean(0) ** 2
        return v / v.sum()

    fails(ck.check_distance_shares, one_pass, capsys, "subtract the mean first")
    fails(ck.check_distance_shares, lambda x: x.std(0) / x.std(0).sum(), capsys, "differs")
    fails(ck.check_distance_shares, lambda x: x.var(0), capsys, "add up to")


# ------------------------------------------------------------------------ animate_kmeans


@pytest.mark.filterwarnings("ignore:Animation was deleted without rendering")
def test_animate_kmeans_from_a_history_of_states():
    from matplotlib.animation import FuncAnimation

    x, _, _ = cl.data.make_six_blobs(50, seed=0)
    c0 = cl.kmeans_plusplus(x, 6, seed=0)
    states = [cl.kmeans(x, 6, init=c0, max_iter=i, tol=0) for i in range(4)]
    anim = animate_kmeans(
        x, [s.centroids for s in states], [s.labels for s in states], figsize=(3, 3), dpi=40
    )
    assert isinstance(anim, FuncAnimation)
    fig = anim._fig
    ax = fig.axes[0]
    frames = list(anim.new_frame_seq())
    assert len(frames) == 4
    for i in frames:
        anim._func(i)
        pts, cents = ax.collections[0], ax.collections[1]
        np.testing.assert_allclose(cents.get_offsets(), states[i].centroids[:, :2])
        assert len(pts.get_offsets()) == len(x)
        assert f"{i}" in ax.get_title()
    # colours follow the labels of the frame shown: two points with one label share a colour
    lab = states[-1].labels
    a, b = np.flatnonzero(lab == lab[0])[:2]
    colours = pts.get_facecolors()
    np.testing.assert_allclose(colours[a], colours[b])
    plt.close(fig)
    del anim, fig, ax
    gc.collect()  # deleted here, where the filter above applies, not during a later test


@pytest.mark.filterwarnings("ignore:Animation was deleted without rendering")
def test_animate_kmeans_labels_default_to_the_nearest_centroid_and_html_is_small():
    x, _, _ = cl.data.make_six_blobs(40, seed=1)
    traj = np.stack([cl.kmeans(x, 6, max_iter=i, tol=0, seed=1).centroids for i in range(3)])
    anim = animate_kmeans(x, traj, figsize=(2.5, 2.5), dpi=30, interval=200)
    ax = anim._fig.axes[0]
    anim._func(2)
    want = cl.assign(x, traj[2])[1]
    got_colours = ax.collections[0].get_facecolors()
    same = want == want[0]
    np.testing.assert_allclose(got_colours[same], np.repeat(got_colours[:1], same.sum(), 0))
    html = anim.to_jshtml()
    assert "<img" in html or "animation" in html.lower()
    assert len(html) < 200_000
    plt.close(anim._fig)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        (dict(centroids=np.zeros((6, 2))), ValueError, "shape (t, k, d)"),
        (dict(centroids=np.zeros((0, 6, 2))), ValueError, "at least one frame"),
        (dict(centroids=np.zeros((3, 6, 3))), ValueError, "like x"),
        (dict(centroids=np.full((3, 6, 2), np.nan)), ValueError, "finite"),
        (dict(labels=np.zeros((2, 60), dtype=int)), ValueError, "one row per frame"),
        (dict(labels=np.full((3, 60), 6)), ValueError, "0 to 5"),
        (dict(interval=0), ValueError, "interval"),
        (dict(dpi=10_000), ValueError, "pixels"),
        (dict(figsize=(3, -1)), ValueError, "figsize"),
        (dict(titles=["a"]), ValueError, "titles"),
    ],
)
def test_animate_kmeans_refuses_bad_arguments(kwargs, error, words):
    rng = np.random.default_rng(0)
    args = dict(x=rng.normal(size=(60, 2)), centroids=rng.normal(size=(3, 6, 2)))
    args.update(kwargs)
    with pytest.raises(error, match=None) as info:
        animate_kmeans(args.pop("x"), args.pop("centroids"), **args)
    assert words in str(info.value)
    assert plt.get_fignums() == []  # nothing left open on an error
