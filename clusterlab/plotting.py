"""Plots used across the notebooks: pure functions, ``ax=None`` in, the axes out.

Every function accepts NumPy arrays, torch tensors (any device) or lists, draws on
``ax`` (a new ``plt.subplots()`` figure when ``ax`` is None) and returns the axes.
matplotlib is imported inside the functions, so ``import clusterlab.plotting`` is
cheap.
"""

from __future__ import annotations

import numbers

import numpy as np

from clusterlab._validate import (
    check_dense,
    check_float,
    check_int,
    check_k,
    check_seed,
    to_numpy,
)
from clusterlab.device import format_seconds

__all__ = [
    "animate_kmeans",
    "animate_meanshift",
    "plot_cluster_sizes",
    "plot_clusters",
    "plot_elbow",
    "plot_history",
    "plot_kmeans_state",
    "plot_meanshift_state",
    "plot_timings",
]

_HISTORY_LABELS = {
    "obj": "objective (inertia)",
    "time": "time (s)",
    "imbalance": "imbalance factor",
    "n_split": "empty clusters split",
}


# --------------------------------------------------------------------------- helpers


def _axes(ax):
    """``ax``, or the axes of a new ``plt.subplots()`` figure when ``ax`` is None."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    return ax


def _int_labels(name: str, labels, n: int | None = None) -> np.ndarray:
    """``labels`` as a 1-D int64 array (of length ``n`` when given), or raise."""
    arr = to_numpy(check_dense(labels, name))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have one entry per point ({n}), got {arr.shape[0]}")
    kind = arr.dtype.kind
    if kind in "iu":
        return arr.astype(np.int64)
    if kind != "f":
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
        raise ValueError(f"{name} must hold integers, got non-integral values")
    return arr.astype(np.int64)


def _label_colors(labels: np.ndarray) -> np.ndarray:
    """RGBA colours of integer labels (tab10 up to 10 labels, else tab20, cycling;
    negative labels, e.g. noise, in grey)."""
    import matplotlib as mpl

    top = int(labels.max()) if labels.size else 0
    cmap = mpl.colormaps["tab10" if top < 10 else "tab20"]
    colors = cmap(np.mod(labels, cmap.N))
    colors[labels < 0] = (0.6, 0.6, 0.6, 1.0)
    return colors


def _points_2d(name: str, x) -> np.ndarray:
    """``x`` as a NumPy (n, d) array of finite real numbers, d >= 2, or raise."""
    arr = to_numpy(check_dense(x, name))
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"{name} must have shape (n, d) with d >= 2, got shape {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be real numbers, got dtype {arr.dtype}")
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} contains NaN or inf ({int(bad.sum())} values; first at index {idx}: "
            f"{arr[idx]}): matplotlib would leave those points out without a word"
        )
    return arr


def _median_seconds(name: str, value) -> float:
    """Seconds from a number, a ``Timing`` (its median) or a sequence (its median)."""
    if hasattr(value, "median") and not isinstance(value, np.ndarray):
        value = value.median
    if isinstance(value, bool):
        raise TypeError(f"{name} must be seconds, got {value!r}")
    if isinstance(value, numbers.Real):
        s = float(value)
    else:
        arr = np.asarray(to_numpy(value), dtype=np.float64).ravel()
        if arr.size == 0:
            raise ValueError(f"{name} is an empty sequence of times")
        s = float(np.median(arr))
    if not np.isfinite(s) or s <= 0:
        raise ValueError(f"{name} must be a finite time > 0 s, got {s}")
    return s


def _fmt_ratio(r: float) -> str:
    """A speed ratio with three significant digits and no exponent ("3,000", "12.5")."""
    return f"{r:,.0f}" if r >= 100 else f"{r:.3g}"


# --------------------------------------------------------------------------- plots


def plot_clusters(
    x,
    labels=None,
    centroids=None,
    *,
    n_samples=None,
    ax=None,
    title=None,
    max_points=20000,
    seed=0,
):
    """Scatter the first two columns of ``x``, coloured by cluster.

    Generalises the lesson's ``plot_data(centroids, data, n_samples)``: when
    ``labels`` is None and ``n_samples`` is given, ``x`` is read as consecutive
    blocks of ``n_samples`` points and coloured by block.

    Parameters
    ----------
    x : array-like of shape (n, d), d >= 2
        Points (NumPy, torch or list); only columns 0 and 1 are drawn.
    labels : array-like of shape (n,) of int, optional
        Cluster of each point; negative labels (noise) are drawn in grey.
    centroids : array-like of shape (k, d), optional
        Drawn as large ``X`` markers with a black edge, centroid ``i`` in the
        colour of label ``i``.
    n_samples : int, optional
        Block size for colouring when ``labels`` is None.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure when None.
    title : str, optional
        Axes title.
    max_points : int, default 20000
        Above this many points, a seeded random subset of ``max_points`` points
        is drawn (so plotting a million points stays fast).
    seed : int, default 0
        Seed of ``np.random.default_rng`` for the subset.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on: ``ax.collections[0]`` holds the points, and
        ``ax.collections[1]`` the centroids when given.
    """
    pts = _points_2d("x", x)
    n = pts.shape[0]
    max_points = check_int(max_points, "max_points", low=1)
    seed = check_seed(seed)
    if labels is not None:
        lab = _int_labels("labels", labels, n)
    elif n_samples is not None:
        n_samples = check_int(n_samples, "n_samples", low=1)
        lab = np.arange(n, dtype=np.int64) // n_samples
    else:
        lab = None
    cents = None if centroids is None else _points_2d("centroids", centroids)

    if n > max_points:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(n, size=max_points, replace=False))
        pts = pts[idx]
        lab = None if lab is None else lab[idx]

    ax = _axes(ax)
    m = pts.shape[0]
    size = float(np.clip(4000.0 / max(m, 1), 1.0, 30.0))
    colors = "tab:blue" if lab is None else _label_colors(lab)
    ax.scatter(pts[:, 0], pts[:, 1], s=size, c=colors, alpha=0.7, linewidths=0)
    if cents is not None:
        k = cents.shape[0]
        if lab is None:
            face = "black"
            edge = "white"
        else:
            face = _label_colors(np.arange(k, dtype=np.int64))
            edge = "black"
        ax.scatter(
            cents[:, 0],
            cents[:, 1],
            s=220,
            marker="X",
            c=face,
            edgecolors=edge,
            linewidths=1.8,
            zorder=3,
        )
    if title is not None:
        ax.set_title(title)
    return ax


def plot_history(history, *, key="obj", ax=None, label=None):
    """One quantity of a k-means run over the iterations (one line per call).

    Parameters
    ----------
    history : list of dict, or an object with a ``history`` attribute
        One dict per iteration with keys ``obj``, ``time``, ``imbalance``,
        ``n_split`` (``res.history`` of :func:`clusterlab.kmeans`); a result
        object itself is accepted too.
    key : str, default "obj"
        The quantity to draw.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on (call again with the same ``ax`` to compare runs).
    label : str, optional
        Legend entry of this line.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if hasattr(history, "history") and not isinstance(history, (list, tuple)):
        history = history.history
    if not isinstance(history, (list, tuple)):
        raise TypeError(f"history must be a list of dicts, got {type(history).__name__}")
    if len(history) == 0:
        raise ValueError("history is empty: nothing to plot")
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, got {key!r}")
    for i, row in enumerate(history):
        if not isinstance(row, dict):
            raise TypeError(f"history[{i}] must be a dict, got {type(row).__name__}")
        if key not in row:
            raise ValueError(f"key {key!r} not in history[{i}] (keys: {sorted(row)})")
    values = np.array([float(row[key]) for row in history])
    iters = np.arange(1, len(values) + 1)

    ax = _axes(ax)
    ax.plot(iters, values, marker="o" if len(values) <= 50 else None, markersize=3, label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel(_HISTORY_LABELS.get(key, key))
    if label is not None:
        ax.legend()
    return ax


def plot_elbow(ks, inertias, *, k_marked=None, ax=None):
    """Inertia against the number of clusters (the elbow plot).

    Parameters
    ----------
    ks : array-like of shape (m,)
        Numbers of clusters tried.
    inertias : array-like of shape (m,)
        Inertia of the run with each ``k``.
    k_marked : int, optional
        Draw a dashed vertical line at this ``k`` (e.g. the widget's current k).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.lines[0]`` is the curve, ``ax.lines[1]`` the marker when given.
    """
    k_arr = np.asarray(to_numpy(ks), dtype=np.float64).ravel()
    y = np.asarray(to_numpy(inertias), dtype=np.float64).ravel()
    if k_arr.size == 0:
        raise ValueError("ks is empty: nothing to plot")
    if k_arr.shape != y.shape:
        raise ValueError(
            f"ks and inertias must have the same length, got {k_arr.size} and {y.size}"
        )
    if not (np.all(np.isfinite(k_arr)) and np.all(np.isfinite(y))):
        raise ValueError("ks and inertias must be finite, got NaN or inf")
    if k_marked is not None:
        k_marked = check_float(k_marked, "k_marked")
        if k_marked == int(k_marked):
            k_marked = int(k_marked)

    ax = _axes(ax)
    ax.plot(k_arr, y, marker="o")
    if k_marked is not None:
        ax.axvline(float(k_marked), color="tab:red", linestyle="--", label=f"k = {k_marked}")
        ax.legend()
    ax.set_xlabel("k (number of clusters)")
    ax.set_ylabel("inertia")
    return ax


def plot_cluster_sizes(labels, k=None, *, ax=None):
    """Cluster sizes as bars, largest first, with the ideal size ``N / k``.

    The title reports faiss's imbalance factor ``k * sum(size²) / N²`` (1 when
    all clusters have the same size).

    Parameters
    ----------
    labels : array-like of shape (n,) of int
        Cluster of each point, in ``[0, k)``.
    k : int, optional
        Number of clusters (empty ones included), at most the number of points;
        ``labels.max() + 1`` when None.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.patches`` holds the ``k`` bars; ``ax.lines[0]`` is the ideal size.
    """
    lab = _int_labels("labels", labels)
    if lab.size == 0:
        raise ValueError("labels is empty: nothing to plot")
    if lab.min() < 0:
        raise ValueError(f"labels must be >= 0, got {int(lab.min())}")
    if k is None:
        if lab.max() >= lab.size:  # k-means never has more clusters than points
            raise ValueError(
                f"labels must be < n={lab.size} (the number of points; k <= n), got label "
                f"{int(lab.max())}"
            )
        k = int(lab.max()) + 1
    else:
        k = check_k(k, lab.size)  # at most as many clusters (bars) as points
        if lab.max() >= k:
            raise ValueError(f"labels must be < k={k}, got label {int(lab.max())}")
    sizes = np.sort(np.bincount(lab, minlength=k))[::-1]
    n = lab.size
    imbalance = k * float(np.sum(sizes.astype(np.float64) ** 2)) / float(n) ** 2

    ax = _axes(ax)
    ax.bar(np.arange(k), sizes, width=0.9 if k <= 100 else 1.0, color="tab:blue")
    ax.axhline(n / k, color="tab:red", linestyle="--", label=f"ideal N/k = {n / k:.4g}")
    ax.set_xlabel("cluster (sorted by size)")
    ax.set_ylabel("points")
    ax.set_title(f"cluster sizes: k = {k}, imbalance {imbalance:.3f}")
    ax.legend()
    return ax


def plot_timings(names, seconds, *, baseline=None, ax=None, title=None):
    """Horizontal bars of run times, each labelled with its time and speed ratio.

    Parameters
    ----------
    names : sequence of str, length m
        One name per implementation, drawn top to bottom.
    seconds : sequence, length m
        For each name: seconds (float), a :class:`clusterlab.device.Timing` (its
        median is used) or a sequence of times (their median is used).
    baseline : str or int, optional
        Name or index of the reference; each bar then also shows
        ``baseline / time`` as ``"N× faster"`` / ``"N× slower"``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.patches`` holds the ``m`` bars, ``ax.texts`` their labels. The
        x axis is logarithmic when the slowest is over 100× the fastest.
    """
    if isinstance(names, str):
        raise TypeError(f"names must be a sequence of str, got the str {names!r}")
    names = [str(nm) for nm in names]
    if isinstance(seconds, (str, bytes)):
        raise TypeError(f"seconds must be a sequence, got {seconds!r}")
    seconds = list(seconds) if not hasattr(seconds, "shape") else list(to_numpy(seconds))
    if len(names) == 0:
        raise ValueError("names is empty: nothing to plot")
    if len(names) != len(seconds):
        raise ValueError(
            f"names and seconds must have the same length, got {len(names)} and {len(seconds)}"
        )
    t = np.array([_median_seconds(f"seconds[{i}]", v) for i, v in enumerate(seconds)])

    base = None
    if baseline is not None:
        if isinstance(baseline, str):
            if baseline not in names:
                raise ValueError(f"baseline {baseline!r} is not one of names {names}")
            base = names.index(baseline)
        elif isinstance(baseline, numbers.Integral) and not isinstance(baseline, bool):
            if not -len(names) <= baseline < len(names):
                raise ValueError(f"baseline index {baseline} out of range for {len(names)} names")
            base = int(baseline) % len(names)
        else:
            raise TypeError(f"baseline must be a name (str) or an index (int), got {baseline!r}")

    ax = _axes(ax)
    pos = np.arange(len(names))
    colors = ["tab:gray" if i == base else "tab:blue" for i in range(len(names))]
    ax.barh(pos, t, color=colors)
    ax.set_yticks(pos, labels=names)
    ax.invert_yaxis()
    log = t.max() / t.min() > 100
    if log:
        ax.set_xscale("log")
        ax.set_xlim(t.min() / 3, t.max() * 30)
    else:
        ax.set_xlim(0, t.max() * 1.45)
    for i, ti in enumerate(t):
        text = format_seconds(ti)
        if base is not None:
            if i == base:
                text += "  (baseline)"
            else:
                r = t[base] / ti
                word = "faster" if r >= 1 else "slower"
                text += f"  ({_fmt_ratio(max(r, 1 / r))}× {word})"
        ax.text(ti * (1.1 if log else 1.0), i, "  " + text, va="center", ha="left", fontsize=9)
    ax.set_xlabel("time (s, median)" + (", log scale" if log else ""))
    if title is not None:
        ax.set_title(title)
    return ax


def plot_kmeans_state(
    x,
    centroids,
    labels,
    *,
    trail=None,
    ax=None,
    title=None,
    max_points=20000,
    seed=0,
):
    """One state of Lloyd's algorithm: points by cluster, centroids, and their path.

    Parameters
    ----------
    x : array-like of shape (n, d), d >= 2
        Points; only columns 0 and 1 are drawn.
    centroids : array-like of shape (k, d)
        The current centroids (large ``X`` markers, centroid ``i`` in the colour
        of label ``i``).
    labels : array-like of shape (n,) of int
        Cluster of each point, in ``0 .. k-1`` (anything else is refused).
    trail : array-like of shape (t, k, d), optional
        Earlier centroids, oldest first (e.g. after 0, 1, ..., i-1 updates). Each
        centroid's path ``trail[:, i] -> centroids[i]`` is drawn as a line with
        small dots, in the centroid's colour.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure when None.
    title : str, optional
        Axes title.
    max_points, seed
        As in :func:`plot_clusters`.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.collections[0]`` holds the points, ``ax.collections[1]`` the
        centroids; ``ax.lines`` holds the ``k`` paths when ``trail`` has rows.
    """
    pts = _points_2d("x", x)
    cents = _points_2d("centroids", centroids)
    k = cents.shape[0]
    if cents.shape[1] != pts.shape[1]:
        raise ValueError(
            f"centroids must have shape (k, {pts.shape[1]}) like x of shape {pts.shape}, "
            f"got shape {cents.shape}"
        )
    lab = _int_labels("labels", labels, pts.shape[0])
    if lab.size and (lab.min() < 0 or lab.max() >= k):
        raise ValueError(
            f"labels must index the {k} centroids (0 to {k - 1}), "
            f"got values from {int(lab.min())} to {int(lab.max())}"
        )
    path = None
    if trail is not None:
        path = to_numpy(trail)
        if path.ndim != 3 or path.shape[1:] != cents.shape:
            raise ValueError(
                f"trail must have shape (t, {k}, {cents.shape[1]}) like the centroids, "
                f"got shape {path.shape}"
            )
        if path.dtype.kind not in "iuf" or not np.all(np.isfinite(path)):
            raise ValueError("trail must hold finite real numbers")
    ax = plot_clusters(pts, lab, cents, ax=ax, title=title, max_points=max_points, seed=seed)
    if path is not None and path.shape[0] > 0:
        full = np.concatenate([path[:, :, :2], cents[None, :, :2]], axis=0)  # (t+1, k, 2)
        colors = _label_colors(np.arange(k, dtype=np.int64))
        for i in range(k):
            ax.plot(
                full[:, i, 0],
                full[:, i, 1],
                color=colors[i],
                marker="o",
                markersize=3,
                markeredgecolor="black",
                markeredgewidth=0.5,
                linewidth=1.5,
                zorder=2.5,
            )
    return ax


def plot_meanshift_state(
    x,
    points,
    centers,
    labels,
    *,
    bandwidth=None,
    estimate=None,
    ax=None,
    title=None,
    max_points=20000,
    seed=0,
):
    """A mean-shift result: the data by cluster, where each point moved, the modes.

    Parameters
    ----------
    x : array-like of shape (n, d), d >= 2
        The data (drawn faint, coloured by cluster).
    points : array-like of shape (n, d)
        The shifted points (where each point of ``x`` converged), drawn as small
        black dots.
    centers : array-like of shape (m, d)
        The merged modes, drawn as large ``X`` markers in the colour of their label.
    labels : array-like of shape (n,) of int
        Index into ``centers`` of each point.
    bandwidth : float, optional
        Draw a circle of this radius (the kernel's width ``h``) around
        ``centers[0]``, to compare the kernel's size with the clusters'.
    estimate : float, optional
        Draw a dashed grey circle of this radius around ``centers[0]`` (e.g.
        :func:`clusterlab.estimate_bandwidth`'s value).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure when None.
    title : str, optional
        Axes title.
    max_points, seed
        As in :func:`plot_clusters` (the same subset of ``x`` and ``points``).

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.collections[0]`` holds the data, ``[1]`` the shifted points,
        ``[2]`` the centres; ``ax.patches`` the circles. The aspect ratio is
        equal, so circles look round.
    """
    pts = _points_2d("x", x)
    n = pts.shape[0]
    moved = _points_2d("points", points)
    if moved.shape[0] != n:
        raise ValueError(f"points must have one row per point of x ({n}), got {moved.shape[0]}")
    cents = _points_2d("centers", centers)
    lab = _int_labels("labels", labels, n)
    if lab.size and (lab.min() < 0 or lab.max() >= cents.shape[0]):
        raise ValueError(
            f"labels must index centers (0 to {cents.shape[0] - 1}), "
            f"got values from {int(lab.min())} to {int(lab.max())}"
        )
    radii = {}
    for name, value in (("bandwidth", bandwidth), ("estimate", estimate)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a number, got {value!r}")
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be finite and > 0, got {value}")
        radii[name] = float(value)
    max_points = check_int(max_points, "max_points", low=1)
    seed = check_seed(seed)
    if n > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
        pts, moved, lab = pts[idx], moved[idx], lab[idx]

    import matplotlib.patches as mpatches

    ax = _axes(ax)
    m = pts.shape[0]
    size = float(np.clip(4000.0 / max(m, 1), 1.0, 30.0))
    ax.scatter(pts[:, 0], pts[:, 1], s=size, c=_label_colors(lab), alpha=0.35, linewidths=0)
    ax.scatter(
        moved[:, 0],
        moved[:, 1],
        s=10,
        c="black",
        marker=".",
        linewidths=0,
        label="shifted points",
        zorder=2.5,
    )
    k = cents.shape[0]
    ax.scatter(
        cents[:, 0],
        cents[:, 1],
        s=220,
        marker="X",
        c=_label_colors(np.arange(k, dtype=np.int64)),
        edgecolors="black",
        linewidths=1.8,
        zorder=3,
        label=f"{k} centre{'s' if k != 1 else ''}",
    )
    styles = {
        "bandwidth": {"edgecolor": "black", "linestyle": "-", "label": "bandwidth h"},
        "estimate": {"edgecolor": "tab:gray", "linestyle": "--", "label": "estimate_bandwidth"},
    }
    for name, radius in radii.items():
        ax.add_patch(
            mpatches.Circle(
                (float(cents[0, 0]), float(cents[0, 1])),
                radius,
                fill=False,
                linewidth=1.5,
                zorder=2.6,
                **styles[name],
            )
        )
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="best", fontsize=8)
    if title is not None:
        ax.set_title(title)
    return ax


#: The largest side of an animation frame, in pixels: every frame is one PNG in the
#: HTML that ``FuncAnimation.to_jshtml()`` writes, so frames stay small.
ANIMATION_MAX_PIXELS = 2000


def _frames(name: str, value, shape_text: str) -> np.ndarray:
    """A (t, ...) array from an array or a sequence of per-frame arrays, or raise."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{name} must hold at least one frame, got an empty sequence")
        parts = [to_numpy(check_dense(v, f"{name}[{i}]")) for i, v in enumerate(value)]
        shapes = {p.shape for p in parts}
        if len(shapes) != 1:
            raise ValueError(
                f"{name} must be frames of one shape {shape_text}, got shapes {sorted(shapes)}"
            )
        return np.stack(parts)
    return to_numpy(check_dense(value, name))


def animate_kmeans(
    x,
    centroids,
    labels=None,
    *,
    titles=None,
    interval=700,
    figsize=(4.5, 4.5),
    dpi=72,
    trail=True,
    max_points=2000,
    seed=0,
):
    """Lloyd's iterations as an animation: points coloured by label, centroids moving.

    Frame ``i`` is :func:`plot_kmeans_state` of ``centroids[i]`` and ``labels[i]``, with
    the path of every centroid through frames ``0 .. i``; the axes limits are the same
    in every frame, so only the clustering moves. The figure is made without pyplot, so
    nothing is shown until the animation is rendered: in a notebook,
    ``IPython.display.HTML(anim.to_jshtml())`` embeds every frame as a PNG with play
    controls, and the saved notebook plays it without a kernel.

    Parameters
    ----------
    x : array-like of shape (n, d), d >= 2
        Points; only columns 0 and 1 are drawn.
    centroids : array-like of shape (t, k, d), or a sequence of t arrays (k, d)
        The centroids of each frame, e.g. after 0, 1, ..., t-1 Lloyd updates:
        ``[cl.kmeans(x, k, init=c0, max_iter=i, tol=0).centroids for i in range(t)]``.
    labels : array-like of shape (t, n) of int, or a sequence of t arrays (n,), optional
        The label of each point in each frame, in ``0 .. k-1``. By default each point's
        nearest centroid of that frame (float64 squared distances).
    titles : sequence of t str, optional
        One title per frame; by default ``"iteration i: J = ..."`` with the inertia of
        that frame's labels and centroids over all n points.
    interval : int, default 700
        Milliseconds between frames, >= 1.
    figsize : (float, float), default (4.5, 4.5)
        Figure size in inches.
    dpi : int, default 72
        Resolution; ``figsize * dpi`` is at most ``ANIMATION_MAX_PIXELS`` (2,000) pixels
        a side, since every frame is stored as an image.
    trail : bool, default True
        Draw each centroid's path through the earlier frames.
    max_points : int, default 2000
        Above this many points a seeded random subset is drawn (the same in every
        frame); labels and inertia still use every point.
    seed : int, default 0
        Seed of the subset.

    Returns
    -------
    matplotlib.animation.FuncAnimation
        ``t`` frames on one axes (``ax.collections[0]`` the points, ``[1]`` the
        centroids, as in :func:`plot_kmeans_state`).

    Raises
    ------
    ValueError, TypeError
        Before anything is drawn, naming the argument and its value: ``centroids`` not
        of shape (t, k, d) with t >= 1 and d as in ``x``, or not finite; ``labels`` not
        one row of n integers in ``0 .. k-1`` per frame; ``titles`` not t strings; a bad
        ``interval``, ``figsize``, ``dpi``, ``trail``, ``max_points`` or ``seed``.
    """
    pts = _points_2d("x", x)
    n, d = pts.shape
    cents = _frames("centroids", centroids, f"(k, {d})")
    if cents.ndim != 3:
        raise ValueError(f"centroids must have shape (t, k, d), got shape {cents.shape}")
    t, k = cents.shape[:2]
    if t == 0 or k == 0:
        raise ValueError(
            f"centroids must hold at least one frame of at least one centroid, got shape "
            f"{cents.shape}"
        )
    if cents.shape[2] != d:
        raise ValueError(
            f"centroids must have shape (t, k, {d}) like x of shape {pts.shape}, got shape "
            f"{cents.shape}"
        )
    if cents.dtype.kind not in "iuf" or not np.all(np.isfinite(cents)):
        raise ValueError("centroids must hold finite real numbers")
    cents = cents.astype(np.float64)
    if labels is None:
        lab = np.stack([_nearest(pts, cents[i]) for i in range(t)])
    else:
        lab = _frames("labels", labels, f"({n},)")
        if lab.ndim != 2 or lab.shape != (t, n):
            raise ValueError(
                f"labels must have one row per frame of centroids and one label per point, "
                f"shape ({t}, {n}), got shape {lab.shape}"
            )
        lab = np.stack([_int_labels(f"labels[{i}]", row, n) for i, row in enumerate(lab)])
        if lab.min() < 0 or lab.max() >= k:
            raise ValueError(
                f"labels must index the {k} centroids (0 to {k - 1}), got values from "
                f"{int(lab.min())} to {int(lab.max())}"
            )
    if titles is None:
        p64 = pts.astype(np.float64)
        titles = [
            f"iteration {i}: J = {float(((p64 - cents[i][lab[i]]) ** 2).sum()):.4g}"
            for i in range(t)
        ]
    else:
        titles = _frame_titles(titles, t)
    interval = check_int(interval, "interval", low=1)
    if not isinstance(trail, (bool, np.bool_)):
        raise TypeError(f"trail must be True or False, got {trail!r}")
    max_points = check_int(max_points, "max_points", low=1)
    seed = check_seed(seed)
    fig, ax = _animation_figure(figsize, dpi)
    if n > max_points:  # one subset for every frame
        idx = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
        pts, lab = pts[idx], lab[:, idx]

    from matplotlib.animation import FuncAnimation
    lo, hi = _padded_limits(pts, cents)

    def draw(i):
        ax.clear()
        plot_kmeans_state(
            pts,
            cents[i],
            lab[i],
            trail=cents[:i] if trail else None,
            ax=ax,
            title=titles[i],
            max_points=max(len(pts), 1),
        )
        ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
        ax.set_aspect("equal", adjustable="box")
        return ()

    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.08, top=0.9)
    return FuncAnimation(fig, draw, frames=t, interval=interval, blit=False)


def _nearest(points, centres):
    """(n,) index of each point's nearest centre: the package's NumPy assignment (blocked)."""
    from clusterlab.kmeans import assign

    return np.asarray(assign(np.asarray(points, dtype=np.float64),
                             np.asarray(centres, dtype=np.float64), backend="numpy")[1])


def _frame_titles(titles, t):
    """``titles`` checked to be ``t`` strings, one per frame, as a list."""
    if isinstance(titles, str) or not hasattr(titles, "__len__") or len(titles) != t:
        raise ValueError(f"titles must be a sequence of {t} strings (one per frame), got {titles!r}")
    if not all(isinstance(s, str) for s in titles):
        raise TypeError("titles must hold strings")
    return list(titles)


def _padded_limits(*arrays):
    """(lo, hi) of the first two coordinates over every frame of ``arrays``, 5 % padded:
    fixed axes, so that an animation does not rescale from frame to frame."""
    both = np.concatenate([np.asarray(a)[..., :2].reshape(-1, 2) for a in arrays])
    lo, hi = both.min(0), both.max(0)
    pad = 0.05 * np.maximum(hi - lo, 1e-12)
    return lo - pad, hi + pad


def _animation_figure(figsize, dpi):
    """A pyplot-free Figure and axes for an animation, after checking its size."""
    dpi = check_int(dpi, "dpi", low=1)
    if isinstance(figsize, (str, bytes)) or not hasattr(figsize, "__len__") or len(figsize) != 2:
        raise TypeError(f"figsize must be (width, height) in inches, got {figsize!r}")
    size = tuple(check_float(v, f"figsize[{i}]", positive=True) for i, v in enumerate(figsize))
    if max(size) * dpi > ANIMATION_MAX_PIXELS:
        raise ValueError(
            f"figsize={tuple(figsize)} at dpi={dpi} is {size[0] * dpi:.0f} x "
            f"{size[1] * dpi:.0f} pixels; at most {ANIMATION_MAX_PIXELS} a side (every "
            "frame is stored as an image)"
        )
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def animate_meanshift(
    x,
    trajectory,
    labels=None,
    centers=None,
    *,
    titles=None,
    interval=400,
    figsize=(4.5, 4.5),
    dpi=72,
    trails=40,
    max_points=2000,
    seed=0,
):
    """Mean shift as an animation: every point moving along its trajectory to a mode.

    The data stay in place (light grey), the shifted points move frame by frame, coloured
    by the cluster they end in, and the paths of a few of them are drawn as they grow;
    the modes are marked in every frame. The axes limits are the same in every frame.
    The figure is made without pyplot (nothing to close, nothing shown until rendered):
    in a notebook, ``IPython.display.HTML(anim.to_jshtml())`` embeds every frame as a PNG
    with play controls, and the saved notebook plays it without a kernel.

    Parameters
    ----------
    x : array-like of shape (n, d), d >= 2
        The data; only columns 0 and 1 are drawn.
    trajectory : array-like of shape (t, n, d), or a sequence of t arrays (n, d)
        Where the points are in each frame, e.g. after 0, 1, ..., t-1 steps:
        ``[x] + [cl.meanshift(x, h, max_iter=s, tol=0).points for s in range(1, t)]``.
    labels : array-like of shape (n,) of int, optional
        The cluster each point ends in (its colour in every frame), e.g.
        ``cl.meanshift(x, h).labels``; negative labels are drawn grey. By default each
        point's nearest centre at the last frame when ``centers`` is given, else one
        colour for all.
    centers : array-like of shape (m, d), optional
        The modes, drawn as large ``X`` markers in the colour of their label.
    titles : sequence of t str, optional
        One title per frame; by default ``"step i: median move ..."``, the median distance
        the points moved since the previous frame.
    interval : int, default 400
        Milliseconds between frames, >= 1.
    figsize : (float, float), default (4.5, 4.5)
        Figure size in inches.
    dpi : int, default 72
        Resolution; ``figsize * dpi`` is at most ``ANIMATION_MAX_PIXELS`` (2,000) pixels
        a side, since every frame is stored as an image.
    trails : int, default 40
        How many points (a seeded random choice) have their path drawn; 0 for none.
    max_points : int, default 2000
        Above this many points a seeded random subset is drawn (the same in every frame).
    seed : int, default 0
        Seed of the subsets.

    Returns
    -------
    matplotlib.animation.FuncAnimation
        ``t`` frames on one axes: ``ax.collections[0]`` the data, ``[1]`` the moving
        points (their offsets are frame ``i``'s positions), ``[2]`` the centres when
        given; ``ax.lines`` the ``trails`` paths.

    Raises
    ------
    ValueError, TypeError
        Before anything is drawn, naming the argument and its value: ``trajectory`` not
        of shape (t, n, d) with t >= 1 and (n, d) as ``x``, or not finite; ``labels`` not
        n integers (in ``0 .. m-1`` when ``centers`` are given); ``centers`` not of width
        d; ``titles`` not t strings; a bad ``interval``, ``figsize``, ``dpi``, ``trails``,
        ``max_points`` or ``seed``.
    """
    data = _points_2d("x", x)
    n, d = data.shape
    traj = _frames("trajectory", trajectory, f"({n}, {d})")
    if traj.ndim != 3 or traj.shape[0] == 0 or traj.shape[1:] != (n, d):
        raise ValueError(
            f"trajectory must have shape (t, {n}, {d}) with t >= 1, one frame of every point "
            f"of x (shape {data.shape}), got shape {traj.shape}"
        )
    if traj.dtype.kind not in "iuf" or not np.all(np.isfinite(traj)):
        raise ValueError("trajectory must hold finite real numbers")
    traj = traj.astype(np.float64)
    t = traj.shape[0]
    cents = None
    if centers is not None:
        cents = _points_2d("centers", centers).astype(np.float64)
        if cents.shape[1] != d:
            raise ValueError(
                f"centers must have shape (m, {d}) like x of shape {data.shape}, got shape "
                f"{cents.shape}"
            )
    if labels is not None:
        lab = _int_labels("labels", labels, n)
        if cents is not None and lab.size and (lab.min() < 0 or lab.max() >= len(cents)):
            raise ValueError(
                f"labels must index the {len(cents)} centers (0 to {len(cents) - 1}), got "
                f"values from {int(lab.min())} to {int(lab.max())}"
            )
    elif cents is not None:
        lab = _nearest(traj[-1], cents)
    else:
        lab = np.zeros(n, dtype=np.int64)
    if titles is None:
        moved = [0.0] + [
            float(np.median(np.linalg.norm(traj[i] - traj[i - 1], axis=1))) for i in range(1, t)
        ]
        titles = ["step 0: the points start on the data"] + [
            f"step {i}: median move {moved[i]:.2g}" for i in range(1, t)
        ]
    else:
        titles = _frame_titles(titles, t)
    interval = check_int(interval, "interval", low=1)
    trails = check_int(trails, "trails", low=0)
    max_points = check_int(max_points, "max_points", low=1)
    seed = check_seed(seed)
    fig, ax = _animation_figure(figsize, dpi)

    rng = np.random.default_rng(seed)
    idx = np.arange(n) if n <= max_points else np.sort(rng.choice(n, max_points, replace=False))
    data, traj, lab = data[idx], traj[:, idx], lab[idx]
    path_idx = rng.choice(len(idx), size=min(trails, len(idx)), replace=False)
    colors = _label_colors(lab)
    lo, hi = _padded_limits(data, traj, *(() if cents is None else (cents,)))
    size = float(np.clip(3000.0 / max(len(idx), 1), 2.0, 30.0))

    ax.scatter(data[:, 0], data[:, 1], s=size, color="lightgray", linewidths=0, zorder=1)
    paths = [
        ax.plot([], [], color=colors[j], linewidth=0.8, alpha=0.8, zorder=1.5)[0]
        for j in path_idx
    ]
    moving = ax.scatter(
        traj[0, :, 0], traj[0, :, 1], s=size, c=colors, linewidths=0, zorder=2
    )
    if cents is not None:
        ax.scatter(
            cents[:, 0],
            cents[:, 1],
            s=160,
            marker="X",
            c=_label_colors(np.arange(len(cents), dtype=np.int64)),
            edgecolors="black",
            linewidths=1.5,
            zorder=3,
        )
    ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
    ax.set_aspect("equal", adjustable="box")
    title = ax.set_title(titles[0], fontsize=10)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.08, top=0.9)

    def draw(i):
        moving.set_offsets(traj[i, :, :2])
        for line, j in zip(paths, path_idx, strict=True):
            line.set_data(traj[: i + 1, j, 0], traj[: i + 1, j, 1])
        title.set_text(titles[i])
        return (moving, *paths, title)

    from matplotlib.animation import FuncAnimation

    return FuncAnimation(fig, draw, frames=t, interval=interval, blit=False)
